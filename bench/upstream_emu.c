/*
 * upstream_emu.c -- a fast scripted chat-completions upstream for the runs
 * benchmark (bench/runs.sh). Not part of the server build.
 *
 * The idea: one thread, one epoll loop, one timer heap. Every connection is
 * a small state machine (read the request head, read the body, stream the
 * answer, back to reading on the same keep-alive connection). A streaming
 * answer is exactly what OpenAI sends for `stream: true`: the response head
 * (Transfer-Encoding: chunked, text/event-stream), a role chunk, N content
 * chunks of one token each, a chunk carrying finish_reason "stop", a usage
 * chunk when stream_options.include_usage is set, and `data: [DONE]`. Each
 * SSE event is one HTTP chunk. The first content chunk goes out with the
 * response head (no artificial delay unless asked); the next ones wait
 * `interval_ms` each, on a binary min-heap keyed by due time, so 5,000+
 * concurrent streams cost one heap entry and a ~300-byte write per token.
 *
 * What a request streams is set per process (--tokens, --interval-ms,
 * --first-ms) and can be overridden per request by a directive anywhere in
 * the request body -- the benchmark puts it in the run's
 * additional_instructions, which assistd copies into the prompt:
 *   emu:tokens=N,interval_ms=M[,first_ms=F]
 *
 * Output is buffered per connection only when the socket is full (the
 * client, e.g. assistd pausing a call for back-pressure, is not reading);
 * that buffer has a hard cap, past which the connection is dropped.
 * GET .../models answers a one-model list; a request without
 * `"stream":true` gets one chat.completion object.
 *
 * Usage: upstream_emu [--port P] [--tokens N] [--interval-ms M] [--first-ms F]
 * Prints "listening on 127.0.0.1:PORT" once ready; SIGINT/SIGTERM stop it
 * and it prints its totals (requests, tokens, streams) to stderr.
 *
 * Ownership: every struct conn is owned by the loop (allocated on accept,
 * freed on close, removed from the heap first); nothing else is shared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_MAX   (1024 * 1024)     /* request head + body */
#define OUT_CAP  (4 * 1024 * 1024) /* unsent bytes before a connection is dropped */
#define HEAD_MAX (16 * 1024)
#define MAX_EV   512

typedef enum { C_HEAD, C_BODY, C_STREAM } cstate;

typedef struct conn {
    int fd;
    cstate st;
    char *in;
    size_t inlen, incap;
    size_t body_at, body_len; /* body is in[body_at .. body_at + body_len) */
    char *out;                /* unsent bytes out[outoff .. outlen) */
    size_t outlen, outoff, outcap;
    bool want_out; /* EPOLLOUT registered */
    bool closing;  /* close once out is flushed */
    /* the stream in progress */
    long tokens, sent, interval_ms;
    bool usage;
    char model[64];
    uint64_t sid;
    int64_t due; /* ns, CLOCK_MONOTONIC */
    size_t hidx; /* index in the heap, or SIZE_MAX */
} conn;

typedef struct emu {
    int ep, lfd;
    long tokens, interval_ms, first_ms;
    conn **heap;
    size_t nheap, capheap;
    uint64_t next_sid;
    unsigned long long requests, streams, tokens_sent, dropped;
    long nconns, maxconns;
} emu;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("upstream_emu: out of memory\n", stderr);
        abort();
    }
    return q;
}

/* ---- timer heap (min by due) ---- */

static void heap_swap(emu *e, size_t a, size_t b)
{
    conn *t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
    e->heap[a]->hidx = a;
    e->heap[b]->hidx = b;
}

static void heap_up(emu *e, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (e->heap[p]->due <= e->heap[i]->due)
            break;
        heap_swap(e, p, i);
        i = p;
    }
}

static void heap_down(emu *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->nheap && e->heap[l]->due < e->heap[m]->due)
            m = l;
        if (r < e->nheap && e->heap[r]->due < e->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

static void heap_push(emu *e, conn *c)
{
    if (e->nheap == e->capheap) {
        e->capheap = e->capheap ? e->capheap * 2 : 1024;
        e->heap = xrealloc(e->heap, e->capheap * sizeof *e->heap);
    }
    c->hidx = e->nheap;
    e->heap[e->nheap++] = c;
    heap_up(e, c->hidx);
}

static void heap_remove(emu *e, conn *c)
{
    size_t i = c->hidx;
    if (i == SIZE_MAX)
        return;
    c->hidx = SIZE_MAX;
    e->nheap--;
    if (i == e->nheap)
        return;
    e->heap[i] = e->heap[e->nheap];
    e->heap[i]->hidx = i;
    heap_down(e, i);
    heap_up(e, i);
}

/* ---- output ---- */

static void conn_close(emu *e, conn *c)
{
    heap_remove(e, c);
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    e->nconns--;
}

static void set_out_interest(emu *e, conn *c, bool want)
{
    if (c->want_out == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

/* Writes what is pending; returns false if the connection failed. */
static bool flush_out(emu *e, conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n > 0) {
            c->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(e, c, true);
            return true;
        }
        return false;
    }
    c->outoff = c->outlen = 0;
    set_out_interest(e, c, false);
    return true;
}

static bool out_add(conn *c, const char *p, size_t n)
{
    if (c->outlen - c->outoff + n > OUT_CAP)
        return false;
    if (c->outoff && c->outlen + n > c->outcap) {
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
    }
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + n)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return true;
}

/* Appends one SSE event ("data: PAYLOAD\n\n") as one HTTP chunk. */
static bool out_event(conn *c, const char *payload, size_t plen)
{
    char head[32];
    int hn = snprintf(head, sizeof head, "%zx\r\ndata: ", plen + 8);
    return out_add(c, head, (size_t)hn) && out_add(c, payload, plen) && out_add(c, "\n\n\r\n", 4);
}

/* ---- the answer ---- */

static const char *const words[] = {" the", " quick", " brown", " fox", " jumps", " over",
                                    " a",   " lazy",  " dog",   ",",    " and",   " then"};

static bool chunk(conn *c, const char *delta, const char *finish)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"id\":\"chatcmpl-emu%llu\",\"object\":\"chat.completion.chunk\","
                     "\"created\":%lld,\"model\":\"%s\",\"system_fingerprint\":\"fp_emu\","
                     "\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
                     "\"finish_reason\":%s}]%s}",
                     (unsigned long long)c->sid, (long long)time(NULL), c->model, delta, finish,
                     c->usage ? ",\"usage\":null" : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        return false;
    return out_event(c, buf, (size_t)n);
}

static bool content_chunk(emu *e, conn *c)
{
    char delta[64];
    snprintf(delta, sizeof delta, "{\"content\":\"%s\"}",
             words[c->sent % (sizeof words / sizeof words[0])]);
    c->sent++;
    e->tokens_sent++;
    return chunk(c, delta, "null");
}

/* After the last token: finish_reason, usage, [DONE], end of chunked body. */
static bool finish_stream(conn *c)
{
    if (!chunk(c, "{}", "\"stop\""))
        return false;
    if (c->usage) {
        char buf[512];
        int n = snprintf(buf, sizeof buf,
                         "{\"id\":\"chatcmpl-emu%llu\",\"object\":\"chat.completion.chunk\","
                         "\"created\":%lld,\"model\":\"%s\",\"system_fingerprint\":\"fp_emu\","
                         "\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                         "\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                         (unsigned long long)c->sid, (long long)time(NULL), c->model, 50, c->tokens,
                         c->tokens + 50);
        if (n < 0 || (size_t)n >= sizeof buf || !out_event(c, buf, (size_t)n))
            return false;
    }
    return out_event(c, "[DONE]", 6) && out_add(c, "0\r\n\r\n", 5);
}

static long directive(const char *body, size_t len, const char *key, long dflt)
{
    const char *d = memmem(body, len, "emu:", 4);
    if (!d)
        return dflt;
    const char *end = body + len;
    size_t klen = strlen(key);
    for (const char *p = d + 4;
         p + klen + 1 < end && (*p == ',' || *p == '_' || *p == '=' || (*p >= 'a' && *p <= 'z') ||
                                (*p >= '0' && *p <= '9'));
         p++) {
        if ((p == d + 4 || p[-1] == ',') && !strncmp(p, key, klen) && p[klen] == '=') {
            char *q;
            long v = strtol(p + klen + 1, &q, 10);
            return q > p + klen + 1 && v >= 0 ? v : dflt;
        }
    }
    return dflt;
}

static bool has_json_true(const char *body, size_t len, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = body; (p = memmem(p, len - (size_t)(p - body), key, klen)); p += klen) {
        const char *q = p + klen;
        while (q < body + len && (*q == ' ' || *q == ':'))
            q++;
        if ((size_t)(body + len - q) >= 4 && !memcmp(q, "true", 4))
            return true;
    }
    return false;
}

static bool reply_simple(conn *c, int status, const char *reason, const char *ctype,
                         const char *body)
{
    char head[256];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: keep-alive\r\n\r\n",
                     status, reason, ctype, blen);
    return out_add(c, head, (size_t)n) && out_add(c, body, blen);
}

/* A complete request is in c->in; answers it (c->st is C_HEAD on entry and
 * becomes C_STREAM while tokens remain on the heap). Returns false on
 * failure. */
static bool handle(emu *e, conn *c, const char *method, const char *path)
{
    e->requests++;
    const char *body = c->in + c->body_at;
    size_t blen = c->body_len;
    size_t plen = strlen(path);
    if (!strcmp(method, "GET") && plen >= 7 && !strcmp(path + plen - 7, "/models"))
        return reply_simple(c, 200, "OK", "application/json",
                            "{\"object\":\"list\",\"data\":[{\"id\":\"bench-model\",\"object\":"
                            "\"model\",\"created\":0,\"owned_by\":\"emu\"}]}");
    if (strcmp(method, "POST") || !strstr(path, "/chat/completions"))
        return reply_simple(c, 404, "Not Found", "application/json",
                            "{\"error\":{\"message\":\"not found\",\"type\":"
                            "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    c->tokens = directive(body, blen, "tokens", e->tokens);
    c->interval_ms = directive(body, blen, "interval_ms", e->interval_ms);
    long first_ms = directive(body, blen, "first_ms", e->first_ms);
    c->usage = has_json_true(body, blen, "\"include_usage\"");
    c->sent = 0;
    c->sid = ++e->next_sid;
    snprintf(c->model, sizeof c->model, "bench-model");
    if (!has_json_true(body, blen, "\"stream\"")) {
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"id\":\"chatcmpl-emu%llu\",\"object\":\"chat.completion\",\"created\":%lld,"
                 "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                 "\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}],\"usage\":{"
                 "\"prompt_tokens\":50,\"completion_tokens\":1,\"total_tokens\":51}}",
                 (unsigned long long)c->sid, (long long)time(NULL), c->model);
        return reply_simple(c, 200, "OK", "application/json", buf);
    }
    e->streams++;
    static const char head[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
        "Cache-Control: no-cache\r\n\r\n";
    if (!out_add(c, head, sizeof head - 1) ||
        !chunk(c, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null"))
        return false;
    if (c->tokens == 0)
        return finish_stream(c);
    if (first_ms > 0) {
        c->st = C_STREAM;
        c->due = mono_ns() + (int64_t)first_ms * 1000000;
        heap_push(e, c);
        return true;
    }
    if (!content_chunk(e, c))
        return false;
    if (c->interval_ms == 0) { /* everything at once */
        while (c->sent < c->tokens)
            if (!content_chunk(e, c))
                return false;
    }
    if (c->sent >= c->tokens)
        return finish_stream(c);
    c->st = C_STREAM;
    c->due = mono_ns() + (int64_t)c->interval_ms * 1000000;
    heap_push(e, c);
    return true;
}

/* Parses as many complete requests as are buffered (not while streaming). */
static bool process_input(emu *e, conn *c)
{
    while (c->st != C_STREAM) {
        if (c->st == C_HEAD) {
            char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
            if (!end)
                return c->inlen < HEAD_MAX;
            size_t hlen = (size_t)(end - c->in) + 4;
            long long clen = 0;
            bool expect = false;
            for (char *l = memchr(c->in, '\n', hlen); l && l < c->in + hlen;) {
                l++;
                if (!strncasecmp(l, "content-length:", 15))
                    clen = strtoll(l + 15, NULL, 10);
                else if (!strncasecmp(l, "expect:", 7))
                    expect = true;
                else if (!strncasecmp(l, "transfer-encoding:", 18))
                    return false; /* chunked request bodies are not needed here */
                l = memchr(l, '\n', (size_t)(c->in + hlen - l));
            }
            if (clen < 0 || clen > IN_MAX - HEAD_MAX)
                return false;
            c->body_at = hlen;
            c->body_len = (size_t)clen;
            c->st = C_BODY;
            if (expect && c->inlen < hlen + c->body_len) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (!out_add(c, cont, sizeof cont - 1))
                    return false;
            }
        }
        if (c->inlen < c->body_at + c->body_len)
            return true;
        char method[16], path[512];
        const char *sp = memchr(c->in, ' ', c->body_at);
        const char *sp2 = sp ? memchr(sp + 1, ' ', c->body_at - (size_t)(sp + 1 - c->in)) : NULL;
        if (!sp || !sp2 || (size_t)(sp - c->in) >= sizeof method ||
            (size_t)(sp2 - sp - 1) >= sizeof path)
            return false;
        memcpy(method, c->in, (size_t)(sp - c->in));
        method[sp - c->in] = '\0';
        memcpy(path, sp + 1, (size_t)(sp2 - sp - 1));
        path[sp2 - sp - 1] = '\0';
        size_t used = c->body_at + c->body_len;
        c->st = C_HEAD;
        if (!handle(e, c, method, path))
            return false;
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
    return true;
}

static void on_readable(emu *e, conn *c)
{
    for (;;) {
        if (c->incap - c->inlen < 4096) {
            if (c->incap >= IN_MAX) {
                conn_close(e, c);
                return;
            }
            c->incap = c->incap ? c->incap * 2 : 8192;
            c->in = xrealloc(c->in, c->incap);
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
        if (n > 0) {
            c->inlen += (size_t)n;
            break; /* level-triggered: more data brings another event */
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(e, c); /* EOF or error: the client went away (a cancel) */
        return;
    }
    if (!process_input(e, c) || !flush_out(e, c))
        conn_close(e, c);
}

static void on_accept(emu *e)
{
    for (;;) {
        int fd = accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->hidx = SIZE_MAX;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            free(c);
            continue;
        }
        if (++e->nconns > e->maxconns)
            e->maxconns = e->nconns;
    }
}

/* Sends every token that is due. */
static void run_timers(emu *e)
{
    int64_t now = mono_ns();
    while (e->nheap && e->heap[0]->due <= now) {
        conn *c = e->heap[0];
        heap_remove(e, c);
        bool ok = content_chunk(e, c);
        if (ok && c->sent >= c->tokens) {
            ok = finish_stream(c);
            c->st = C_HEAD;
        } else if (ok) {
            c->due += (int64_t)c->interval_ms * 1000000;
            if (c->due < now) /* we fell behind: do not burst to catch up */
                c->due = now;
            heap_push(e, c);
        }
        if (!ok) {
            e->dropped++;
            conn_close(e, c);
            continue;
        }
        if (!flush_out(e, c)) {
            conn_close(e, c);
            continue;
        }
        /* A pipelined next request may be waiting behind a finished stream. */
        if (c->st == C_HEAD && c->inlen && (!process_input(e, c) || !flush_out(e, c)))
            conn_close(e, c);
    }
}

static long parse_long(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) {
        fprintf(stderr, "upstream_emu: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    emu e;
    memset(&e, 0, sizeof e);
    e.tokens = 20;
    long port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = parse_long(argv[i + 1], "port");
        else if (!strcmp(argv[i], "--tokens"))
            e.tokens = parse_long(argv[i + 1], "tokens");
        else if (!strcmp(argv[i], "--interval-ms"))
            e.interval_ms = parse_long(argv[i + 1], "interval");
        else if (!strcmp(argv[i], "--first-ms"))
            e.first_ms = parse_long(argv[i + 1], "first-ms");
        else {
            fprintf(stderr, "usage: upstream_emu [--port P] [--tokens N] [--interval-ms M] "
                            "[--first-ms F]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    e.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(e.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(e.lfd, (struct sockaddr *)&sin, sizeof sin) || listen(e.lfd, 4096)) {
        perror("upstream_emu: bind/listen");
        return 1;
    }
    socklen_t sl = sizeof sin;
    getsockname(e.lfd, (struct sockaddr *)&sin, &sl);
    e.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(e.ep, EPOLL_CTL_ADD, e.lfd, &lev);
    printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct epoll_event evs[MAX_EV];
    while (!stop_flag) {
        int timeout = -1;
        if (e.nheap) {
            int64_t d = e.heap[0]->due - mono_ns();
            timeout = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
        }
        int n = epoll_wait(e.ep, evs, MAX_EV, timeout);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(&e);
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (!flush_out(&e, c)) {
                    conn_close(&e, c);
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(&e, c); /* may free c */
        }
        run_timers(&e);
    }
    fprintf(stderr,
            "upstream_emu: requests=%llu streams=%llu tokens=%llu dropped=%llu max_conns=%ld\n",
            e.requests, e.streams, e.tokens_sent, e.dropped, e.maxconns);
    return 0;
}
