/*
 * runs_load.c -- the load client of the runs benchmark (bench/runs.sh). Not
 * part of the server build.
 *
 * The idea: one thread, one epoll loop, one connection per stream, and an
 * HTTP/1.1 + chunked + SSE parser small enough that the client costs far
 * less CPU per event than the server it measures. Timestamps are
 * CLOCK_MONOTONIC nanoseconds taken when bytes are read; a stream's clock
 * starts when its request is written on an established connection, so a
 * sample measures the server, not connection set-up.
 *
 * Setup (not measured) goes through assistd's REST API on one blocking
 * keep-alive connection: one assistant (model bench-model) and one thread
 * per run, each with one user message (a thread allows one active run).
 * Runs are created with `stream: true` and additional_instructions carrying
 * the emulator's directive (emu:tokens=N,interval_ms=M), which assistd puts
 * into the prompt it sends upstream (bench/upstream_emu.c reads it there).
 *
 * Modes:
 *   ttft     -- rounds of C concurrent requests, alternating between assistd
 *               (POST /v1/threads/{id}/runs, stream) and the emulator
 *               directly (POST /v1/chat/completions, stream) on kept-alive
 *               connections, until each target has S samples. Per sample:
 *               assistd: time to thread.run.created, thread.run.in_progress,
 *               thread.message.created and the first thread.message.delta;
 *               direct: time to the first content chunk.
 *   streams  -- N concurrent streaming runs, created with at most P
 *               creations in flight (a closed-loop ramp); every stream is
 *               followed to thread.run.completed and `done`, its deltas
 *               counted and its inter-delta gaps recorded. The server (and
 *               the emulator) are sampled every 100 ms from /proc: CPU time
 *               and RSS, to report memory per active run and CPU time per
 *               relayed token over the window in which all N streams flow.
 *
 * Output: `key=value` lines on stdout (bench/runs.sh parses them);
 * diagnostics on stderr. Exit status 0 when the measurement ran (errors
 * are reported as counts, not as a failure), 1 when it could not run.
 *
 * Ownership: the stream array and sample arrays are allocated once in main
 * and live until exit; nothing else is allocated per event.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_CAP   4096
#define LINE_CAP   1024
#define RBUF       (256 * 1024)
#define GAP_BUCKET 100000 /* ns: 0.1 ms histogram buckets */
#define GAP_NB     200000 /* up to 20 s */
#define SAMPLE_NS  100000000LL
#define MAX_EV     1024

enum { T_ASSISTD, T_DIRECT };
enum { S_IDLE, S_CONNECTING, S_SENDING, S_HEAD, S_BODY, S_FINISHED };
enum { CK_SIZE, CK_DATA, CK_DATA_END, CK_TRAILER, CK_PLAIN };

typedef struct stream {
    int fd;
    int target;
    int st;
    int idx;
    const char *thread_id;
    char req[1024];
    size_t reqlen, reqoff;
    char head[HEAD_CAP];
    size_t headlen;
    int status;
    bool chunked, conn_close;
    long long clen; /* Content-Length body left (CK_PLAIN) */
    int ck;
    size_t ck_left;
    char cksz[24];
    size_t ckszlen;
    char line[LINE_CAP];
    size_t linelen;
    char event[48];
    char errbody[200];
    size_t errlen;
    /* timestamps, ns (0 = not seen) */
    int64_t t_start, t_created, t_inprog, t_msg, t_first, t_last, t_completed, t_end;
    long deltas;
    int64_t max_gap;
    int64_t max_gap_end; /* when the worst gap ended (mono ns) */
    int max_gap_delta;   /* deltas received before the worst gap */
    bool completed, done, failed_event, error;
    bool creating; /* counted in n_creating */
    char why[96];
} stream;

typedef struct sample {
    int64_t t;
    long long cpu_ticks, emu_ticks;
    long rss_kb;
    long long deltas;
    int active;
} sample;

typedef struct cfg {
    const char *mode;
    char ahost[64];
    int aport;
    char ehost[64];
    int eport;
    const char *key;
    int n, conc, samples, pending, tokens, interval_ms;
    int pid, emu_pid;
    long stall_ms;
    long deadline_s;
} cfg;

static cfg C;
static int ep;
static stream *S;
static char rbuf[RBUF];
static uint32_t *gaps; /* histogram of inter-delta gaps */
static long long total_deltas;
static int n_active;   /* streams between first delta and end */
static int n_creating; /* requests sent, thread.run.created not yet seen */
static int n_finished;
static char assistant_id[64];

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "runs_load: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        die("%s", "out of memory");
    return p;
}

/* ---- /proc sampling ---- */

static long long proc_ticks(int pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p)
        return 0;
    /* after ") ": field 3 is state; utime is field 14, stime 15 */
    long long ut = 0, st = 0;
    int field = 2;
    for (char *q = p + 1; *q && field < 15;) {
        while (*q == ' ')
            q++;
        field++;
        char *end;
        long long v = strtoll(q, &end, 10);
        if (field == 14)
            ut = v;
        if (field == 15)
            st = v;
        q = end == q ? q + 1 : end;
        while (*q && *q != ' ')
            q++;
    }
    return ut + st;
}

static long proc_status_kb(int pid, const char *key)
{
    if (pid <= 0)
        return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* ---- blocking REST calls for setup ---- */

static int connect_to(const char *host, int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int rest_fd = -1;

/* POSTs body to path on assistd; copies the "id" of the answer into id. */
static void rest_create(const char *path, const char *body, char *id, size_t idcap)
{
    char req[2048];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rest_fd < 0)
            rest_fd = connect_to(C.ahost, C.aport, false);
        if (rest_fd < 0)
            die("cannot connect to assistd for %s", path);
        int n = snprintf(req, sizeof req,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                         "OpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         path, C.ahost, C.aport, C.key, strlen(body), body);
        if (n < 0 || (size_t)n >= sizeof req)
            die("request too long for %s", path);
        if (send(rest_fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            close(rest_fd);
            rest_fd = -1;
            continue;
        }
        size_t len = 0;
        char *hend = NULL;
        long long clen = -1;
        for (;;) {
            ssize_t r = recv(rest_fd, rbuf + len, RBUF - 1 - len, 0);
            if (r <= 0)
                break;
            len += (size_t)r;
            rbuf[len] = '\0';
            if (!hend && (hend = strstr(rbuf, "\r\n\r\n"))) {
                char *cl = strcasestr(rbuf, "\r\ncontent-length:");
                if (cl && cl < hend)
                    clen = strtoll(cl + 17, NULL, 10);
            }
            if (hend && clen >= 0 && len >= (size_t)(hend + 4 - rbuf) + (size_t)clen)
                break;
        }
        if (!hend || clen < 0) {
            close(rest_fd);
            rest_fd = -1;
            continue;
        }
        if (strncmp(rbuf, "HTTP/1.1 200", 12))
            die("setup request failed: %s", rbuf);
        char *p = strstr(hend, "\"id\":\"");
        if (!p)
            die("no id in: %s", hend);
        p += 6;
        size_t i = 0;
        while (p[i] && p[i] != '"' && i + 1 < idcap) {
            id[i] = p[i];
            i++;
        }
        id[i] = '\0';
        return;
    }
    die("setup request to %s failed twice", path);
}

/* ---- streams ---- */

static void gap_add(int64_t g)
{
    int64_t b = g / GAP_BUCKET;
    gaps[b >= GAP_NB ? GAP_NB - 1 : b]++;
}

static double gap_pct(double q)
{
    unsigned long long total = 0, acc = 0;
    for (int i = 0; i < GAP_NB; i++)
        total += gaps[i];
    if (!total)
        return 0;
    unsigned long long want = (unsigned long long)(q * (double)total);
    if (want >= total)
        want = total - 1;
    for (int i = 0; i < GAP_NB; i++) {
        acc += gaps[i];
        if (acc > want)
            return (i + 0.5) * GAP_BUCKET / 1e6;
    }
    return 0;
}

static void build_request(stream *s)
{
    char body[512];
    int bn;
    if (s->target == T_ASSISTD) {
        bn = snprintf(body, sizeof body,
                      "{\"assistant_id\":\"%s\",\"stream\":true,\"additional_instructions\":"
                      "\"emu:tokens=%d,interval_ms=%d\"}",
                      assistant_id, C.tokens, C.interval_ms);
        s->reqlen = (size_t)snprintf(s->req, sizeof s->req,
                                     "POST /v1/threads/%s/runs HTTP/1.1\r\nHost: %s:%d\r\n"
                                     "Authorization: Bearer %s\r\nOpenAI-Beta: assistants=v2\r\n"
                                     "Content-Type: application/json\r\nAccept: "
                                     "text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
                                     s->thread_id, C.ahost, C.aport, C.key, bn, body);
    } else {
        bn = snprintf(body, sizeof body,
                      "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"system\",\"content\":"
                      "\"You are a benchmark.\\n\\nemu:tokens=%d,interval_ms=%d\"},{\"role\":"
                      "\"user\",\"content\":\"Tell me a long story.\"}],\"stream\":true,"
                      "\"stream_options\":{\"include_usage\":true}}",
                      C.tokens, C.interval_ms);
        s->reqlen = (size_t)snprintf(s->req, sizeof s->req,
                                     "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                                     "Authorization: Bearer emu\r\nContent-Type: "
                                     "application/json\r\nAccept: text/event-stream\r\n"
                                     "Content-Length: %d\r\n\r\n%s",
                                     C.ehost, C.eport, bn, body);
    }
    s->reqoff = 0;
}

static void reset_response(stream *s)
{
    s->headlen = 0;
    s->status = 0;
    s->chunked = s->conn_close = false;
    s->clen = -1;
    s->ck = CK_SIZE;
    s->ck_left = 0;
    s->ckszlen = 0;
    s->linelen = 0;
    s->event[0] = '\0';
    s->errlen = 0;
    s->t_start = s->t_created = s->t_inprog = s->t_msg = s->t_first = s->t_last = 0;
    s->t_completed = s->t_end = 0;
    s->deltas = 0;
    s->max_gap = 0;
    s->completed = s->done = s->failed_event = s->error = false;
    s->why[0] = '\0';
}

static void set_events(stream *s, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
}

static void close_fd(stream *s)
{
    if (s->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
}

static void fail(stream *s, const char *why)
{
    if (!s->error) {
        s->error = true;
        snprintf(s->why, sizeof s->why, "%s", why);
    }
}

/* The response ended (or failed): the stream is over. */
static void finish_stream(stream *s, int64_t now)
{
    if (s->st == S_FINISHED)
        return;
    if (s->t_first && !s->t_end)
        n_active--;
    if (s->creating) {
        s->creating = false;
        n_creating--;
    }
    n_finished++;
    s->t_end = now;
    s->st = S_FINISHED;
    if (s->target == T_ASSISTD && !s->error && (!s->completed || !s->done))
        fail(s, s->failed_event ? "thread.run.failed" : "stream ended early");
    if (s->target == T_DIRECT && !s->error && !s->done)
        fail(s, "stream ended without [DONE]");
    if (s->error || s->conn_close)
        close_fd(s);
}

/* Starts the request on a connected (or connecting) slot. */
static void start_request(stream *s)
{
    reset_response(s);
    build_request(s);
    if (s->target == T_ASSISTD) {
        s->creating = true;
        n_creating++;
    }
    if (s->fd < 0) {
        const char *host = s->target == T_ASSISTD ? C.ahost : C.ehost;
        int port = s->target == T_ASSISTD ? C.aport : C.eport;
        s->fd = connect_to(host, port, true);
        if (s->fd < 0) {
            fail(s, "connect failed");
            finish_stream(s, mono_ns());
            return;
        }
        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
        s->st = S_CONNECTING;
        return;
    }
    s->st = S_SENDING;
    set_events(s, EPOLLOUT);
}

static void on_sse_event(stream *s, int64_t now)
{
    const char *ev = s->event;
    if (s->target == T_DIRECT)
        return;
    if (!strcmp(ev, "thread.message.delta")) {
        if (!s->t_first) {
            s->t_first = now;
            n_active++;
        } else {
            int64_t g = now - s->t_last;
            gap_add(g);
            if (g > s->max_gap) {
                s->max_gap = g;
                s->max_gap_end = now;
                s->max_gap_delta = s->deltas;
            }
        }
        s->t_last = now;
        s->deltas++;
        total_deltas++;
    } else if (!strcmp(ev, "thread.run.created")) {
        s->t_created = now;
        if (s->creating) {
            s->creating = false;
            n_creating--;
        }
    } else if (!strcmp(ev, "thread.run.in_progress")) {
        s->t_inprog = now;
    } else if (!strcmp(ev, "thread.message.created")) {
        s->t_msg = now;
    } else if (!strcmp(ev, "thread.run.completed")) {
        s->completed = true;
        s->t_completed = now;
    } else if (!strcmp(ev, "thread.run.failed") || !strcmp(ev, "error") ||
               !strcmp(ev, "thread.run.expired") || !strcmp(ev, "thread.run.cancelled") ||
               !strcmp(ev, "thread.run.incomplete")) {
        s->failed_event = true;
    } else if (!strcmp(ev, "done")) {
        s->done = true;
    }
}

/* One SSE line (without its line end). */
static void on_line(stream *s, int64_t now)
{
    const char *l = s->line;
    size_t n = s->linelen;
    if (n == 0) {
        if (s->event[0] || s->target == T_DIRECT)
            on_sse_event(s, now);
        s->event[0] = '\0';
        return;
    }
    if (n > 7 && !memcmp(l, "event: ", 7)) {
        size_t k = n - 7 < sizeof s->event - 1 ? n - 7 : sizeof s->event - 1;
        memcpy(s->event, l + 7, k);
        s->event[k] = '\0';
        return;
    }
    if (s->target == T_DIRECT && n > 6 && !memcmp(l, "data: ", 6)) {
        if (n >= 12 && !memcmp(l + 6, "[DONE]", 6)) {
            s->done = true;
            return;
        }
        const char *p = memmem(l, n, "\"delta\":{\"content\":\"", 20);
        if (p && p + 20 < l + n && p[20] != '"') {
            if (!s->t_first) {
                s->t_first = now;
            } else {
                int64_t g = now - s->t_last;
                if (g > s->max_gap)
                    s->max_gap = g;
            }
            s->t_last = now;
            s->deltas++;
        }
    }
}

static void feed_sse(stream *s, const char *p, size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n') {
            if (s->linelen && s->line[s->linelen - 1] == '\r')
                s->linelen--;
            on_line(s, now);
            s->linelen = 0;
        } else if (s->linelen < LINE_CAP) {
            s->line[s->linelen++] = ch; /* longer lines are truncated: only prefixes matter */
        }
    }
}

/* Body bytes: HTTP status != 200 bodies are kept for the report. */
static void body_bytes(stream *s, const char *p, size_t n, int64_t now)
{
    if (s->status != 200) {
        size_t k = sizeof s->errbody - 1 - s->errlen;
        if (k > n)
            k = n;
        memcpy(s->errbody + s->errlen, p, k);
        s->errlen += k;
        s->errbody[s->errlen] = '\0';
        return;
    }
    feed_sse(s, p, n, now);
}

/* Response bytes after the head; returns bytes used, sets S_FINISHED at the end. */
static size_t feed_body(stream *s, const char *p, size_t n, int64_t now)
{
    size_t i = 0;
    while (i < n && s->st == S_BODY) {
        switch (s->ck) {
        case CK_PLAIN: {
            size_t k = (long long)(n - i) < s->clen ? n - i : (size_t)s->clen;
            body_bytes(s, p + i, k, now);
            i += k;
            s->clen -= (long long)k;
            if (s->clen == 0)
                finish_stream(s, now);
            break;
        }
        case CK_SIZE:
            if (p[i] == '\n') {
                s->cksz[s->ckszlen] = '\0';
                s->ck_left = (size_t)strtoul(s->cksz, NULL, 16);
                s->ckszlen = 0;
                s->ck = s->ck_left ? CK_DATA : CK_TRAILER;
            } else if (s->ckszlen < sizeof s->cksz - 1) {
                s->cksz[s->ckszlen++] = p[i];
            }
            i++;
            break;
        case CK_DATA: {
            size_t k = n - i < s->ck_left ? n - i : s->ck_left;
            body_bytes(s, p + i, k, now);
            i += k;
            s->ck_left -= k;
            if (!s->ck_left)
                s->ck = CK_DATA_END;
            break;
        }
        case CK_DATA_END: /* the CRLF after the data */
            if (p[i] == '\n')
                s->ck = CK_SIZE;
            i++;
            break;
        case CK_TRAILER: /* after "0\r\n": lines until an empty one */
            if (p[i] == '\n') {
                if (s->ckszlen == 0) {
                    i++;
                    if (s->status != 200) {
                        char why[96];
                        snprintf(why, sizeof why, "HTTP %d: %.70s", s->status, s->errbody);
                        fail(s, why);
                    }
                    finish_stream(s, now);
                    break;
                }
                s->ckszlen = 0;
            } else if (p[i] != '\r') {
                s->ckszlen++;
            }
            i++;
            break;
        }
    }
    if (s->st == S_FINISHED && s->status != 200 && !s->error) {
        char why[96];
        snprintf(why, sizeof why, "HTTP %d: %.70s", s->status, s->errbody);
        fail(s, why);
    }
    return i;
}

static void on_head(stream *s)
{
    s->head[s->headlen] = '\0';
    s->status = (int)strtol(s->head + 9, NULL, 10);
    for (char *l = strstr(s->head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (!strncasecmp(h, "transfer-encoding:", 18) && strcasestr(h, "chunked"))
            s->chunked = true;
        else if (!strncasecmp(h, "content-length:", 15))
            s->clen = strtoll(h + 15, NULL, 10);
        else if (!strncasecmp(h, "connection:", 11) && strcasestr(h, "close"))
            s->conn_close = true;
    }
    s->ck = s->chunked ? CK_SIZE : CK_PLAIN;
    if (!s->chunked && s->clen < 0) {
        s->conn_close = true; /* body until EOF */
        s->clen = (long long)1 << 62;
    }
}

static void on_readable(stream *s)
{
    ssize_t n = recv(s->fd, rbuf, RBUF, 0);
    int64_t now = mono_ns();
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (s->st == S_BODY && s->ck == CK_PLAIN && s->conn_close) {
            finish_stream(s, now);
        } else if (s->st != S_FINISHED) {
            fail(s, n == 0 ? "connection closed by server" : "recv error");
            finish_stream(s, now);
        }
        close_fd(s);
        return;
    }
    size_t i = 0;
    while (i < (size_t)n && s->st != S_FINISHED) {
        if (s->st == S_HEAD) {
            /* copy byte-wise until the blank line (heads are small) */
            while (i < (size_t)n && s->st == S_HEAD) {
                if (s->headlen >= HEAD_CAP - 1) {
                    fail(s, "response head too large");
                    finish_stream(s, now);
                    break;
                }
                s->head[s->headlen++] = rbuf[i++];
                if (s->headlen >= 4 && !memcmp(s->head + s->headlen - 4, "\r\n\r\n", 4)) {
                    on_head(s);
                    s->st = S_BODY;
                }
            }
        } else if (s->st == S_BODY) {
            i += feed_body(s, rbuf + i, (size_t)n - i, now);
        } else {
            break; /* bytes before we sent anything: ignore */
        }
    }
}

static void on_writable(stream *s)
{
    if (s->st == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fail(s, "connect failed");
            finish_stream(s, mono_ns());
            close_fd(s);
            return;
        }
        s->st = S_SENDING;
    }
    if (s->st != S_SENDING)
        return;
    if (!s->t_start)
        s->t_start = mono_ns();
    ssize_t n = send(s->fd, s->req + s->reqoff, s->reqlen - s->reqoff, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        fail(s, "send failed");
        finish_stream(s, mono_ns());
        close_fd(s);
        return;
    }
    s->reqoff += (size_t)n;
    if (s->reqoff == s->reqlen) {
        s->st = S_HEAD;
        set_events(s, EPOLLIN);
    }
}

/* Runs the loop until every stream in [0, count) is finished or the deadline. */
static void poll_once(int timeout_ms)
{
    static struct epoll_event evs[MAX_EV];
    int n = epoll_wait(ep, evs, MAX_EV, timeout_ms);
    for (int i = 0; i < n; i++) {
        stream *s = evs[i].data.ptr;
        if (s->fd < 0)
            continue;
        if (evs[i].events & EPOLLOUT)
            on_writable(s);
        if (s->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            on_readable(s);
    }
}

/* ---- statistics helpers ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static void print_pcts(const char *name, int64_t *v, size_t n)
{
    printf("%s_p50_ms=%.3f\n%s_p90_ms=%.3f\n%s_p99_ms=%.3f\n%s_max_ms=%.3f\n", name, pct(v, n, 0.5),
           name, pct(v, n, 0.9), name, pct(v, n, 0.99), name, pct(v, n, 1.0));
}

/* ---- setup ---- */

static char (*thread_ids)[64];

static void setup(int nthreads)
{
    rest_create("/v1/assistants",
                "{\"model\":\"bench-model\",\"name\":\"runs-bench\",\"instructions\":\"You are a "
                "benchmark assistant.\"}",
                assistant_id, sizeof assistant_id);
    thread_ids = xcalloc((size_t)nthreads, sizeof *thread_ids);
    int64_t t0 = mono_ns();
    for (int i = 0; i < nthreads; i++)
        rest_create("/v1/threads",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story.\"}]}",
                    thread_ids[i], sizeof thread_ids[i]);
    fprintf(stderr, "runs_load: setup: assistant and %d threads in %.2f s\n", nthreads,
            (double)(mono_ns() - t0) / 1e9);
    if (rest_fd >= 0)
        close(rest_fd);
    rest_fd = -1;
}

/* ---- mode ttft ---- */

static int run_ttft(void)
{
    int conc = C.conc;
    setup(C.samples);
    S = xcalloc((size_t)conc * 2, sizeof *S);
    for (int i = 0; i < conc * 2; i++) {
        S[i].fd = -1;
        S[i].idx = i;
        S[i].target = i < conc ? T_ASSISTD : T_DIRECT;
    }
    size_t cap = (size_t)C.samples + (size_t)conc;
    int64_t *a_created = xcalloc(cap, 8), *a_inprog = xcalloc(cap, 8), *a_msg = xcalloc(cap, 8),
            *a_first = xcalloc(cap, 8), *d_first = xcalloc(cap, 8);
    size_t na = 0, nd = 0, errors = 0, nthread = 0;
    long long cpu0 = proc_ticks(C.pid), emu0 = proc_ticks(C.emu_pid);
    long long tok_through = 0;
    int64_t t0 = mono_ns();
    /* round r: assistd batch then direct batch (even r) or the reverse (odd r) */
    for (int r = 0; na < (size_t)C.samples || nd < (size_t)C.samples; r++) {
        for (int half = 0; half < 2; half++) {
            int target = (r % 2 == 0) == (half == 0) ? T_ASSISTD : T_DIRECT;
            stream *base = target == T_ASSISTD ? S : S + conc;
            int k = conc;
            if (target == T_ASSISTD && (size_t)k > (size_t)C.samples - nthread)
                k = (int)((size_t)C.samples - nthread);
            if (k <= 0)
                continue;
            for (int i = 0; i < k; i++) {
                if (target == T_ASSISTD)
                    base[i].thread_id = thread_ids[nthread++];
                start_request(&base[i]);
            }
            int64_t deadline = mono_ns() + 30000000000LL;
            for (;;) {
                int left = 0;
                for (int i = 0; i < k; i++)
                    left += base[i].st != S_FINISHED;
                if (!left || mono_ns() > deadline)
                    break;
                poll_once(100);
            }
            for (int i = 0; i < k; i++) {
                stream *s = &base[i];
                if (s->st != S_FINISHED)
                    fail(s, "timeout"), finish_stream(s, mono_ns()), close_fd(s);
                if (s->error || !s->t_first) {
                    errors++;
                    if (errors <= 5)
                        fprintf(stderr, "runs_load: %s sample failed: %s\n",
                                target == T_ASSISTD ? "assistd" : "direct", s->why);
                    continue;
                }
                if (target == T_ASSISTD) {
                    a_created[na] = s->t_created - s->t_start;
                    a_inprog[na] = s->t_inprog - s->t_start;
                    a_msg[na] = s->t_msg - s->t_start;
                    a_first[na++] = s->t_first - s->t_start;
                    tok_through += s->deltas;
                } else if (nd < (size_t)C.samples) {
                    d_first[nd++] = s->t_first - s->t_start;
                }
            }
        }
        if (r > 10 * C.samples)
            break;
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    long long cpu1 = proc_ticks(C.pid), emu1 = proc_ticks(C.emu_pid);
    long hz = sysconf(_SC_CLK_TCK);
    printf("mode=ttft\nconcurrency=%d\nsamples_assistd=%zu\nsamples_direct=%zu\nerrors=%zu\n", conc,
           na, nd, errors);
    printf("elapsed_s=%.2f\n", secs);
    print_pcts("direct_first", d_first, nd);
    print_pcts("assistd_created", a_created, na);
    print_pcts("assistd_in_progress", a_inprog, na);
    print_pcts("assistd_message_created", a_msg, na);
    /* print_pcts sorts: copy percentiles before the difference */
    double a50 = pct(a_first, na, 0.5), a99 = pct(a_first, na, 0.99);
    double d50 = pct(d_first, nd, 0.5), d99 = pct(d_first, nd, 0.99);
    print_pcts("assistd_first", a_first, na);
    printf("overhead_p50_ms=%.3f\noverhead_p99_ms=%.3f\n", a50 - d50, a99 - d99);
    printf("ratio_p50=%.2f\nratio_p99=%.2f\n", d50 > 0 ? a50 / d50 : 0, d99 > 0 ? a99 / d99 : 0);
    printf("assistd_cpu_s=%.2f\nemu_cpu_s=%.2f\ntokens_through_assistd=%lld\n",
           (double)(cpu1 - cpu0) / (double)hz, (double)(emu1 - emu0) / (double)hz, tok_through);
    return na && nd ? 0 : 1;
}

/* ---- mode streams ---- */

static int run_streams(void)
{
    int n = C.n;
    setup(n);
    S = xcalloc((size_t)n, sizeof *S);
    for (int i = 0; i < n; i++) {
        S[i].fd = -1;
        S[i].idx = i;
        S[i].target = T_ASSISTD;
        S[i].thread_id = thread_ids[i];
    }
    size_t maxs = (size_t)(C.deadline_s * 1000000000LL / SAMPLE_NS) + 16;
    sample *sm = xcalloc(maxs, sizeof *sm);
    size_t ns = 0;
    long hz = sysconf(_SC_CLK_TCK);
    /* idle baseline: RSS after setup, before any run */
    usleep(300000);
    long rss_idle = proc_status_kb(C.pid, "VmRSS");
    long long cpu_start = proc_ticks(C.pid), emu_start = proc_ticks(C.emu_pid);
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = mono_ns(), next_sample = t0;
    int64_t deadline = t0 + C.deadline_s * 1000000000LL;
    int launched = 0, peak_active = 0;
    int64_t t_all_created = 0;
    n_finished = 0;
    while (n_finished < n && mono_ns() < deadline) {
        /* closed-loop ramp: at most C.pending creations in flight */
        while (launched < n && n_creating < C.pending)
            start_request(&S[launched++]);
        poll_once(5);
        int64_t now = mono_ns();
        if (n_active > peak_active)
            peak_active = n_active;
        if (now >= next_sample && ns < maxs) {
            sm[ns].t = now;
            sm[ns].cpu_ticks = proc_ticks(C.pid);
            sm[ns].emu_ticks = proc_ticks(C.emu_pid);
            sm[ns].rss_kb = proc_status_kb(C.pid, "VmRSS");
            sm[ns].deltas = total_deltas;
            sm[ns].active = n_active;
            ns++;
            next_sample += SAMPLE_NS;
        }
        if (!t_all_created && launched == n && n_creating == 0)
            t_all_created = now;
    }
    int64_t t_end = mono_ns();
    long long cpu_end = proc_ticks(C.pid), emu_end = proc_ticks(C.emu_pid);
    long hwm = proc_status_kb(C.pid, "VmHWM");
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);

    /* per-stream verdicts */
    int ok = 0, errors = 0, unfinished = 0, stalled = 0, short_count = 0;
    int64_t ws = 0, we = INT64_MAX;
    int64_t *ttft = xcalloc((size_t)n, 8), *created = xcalloc((size_t)n, 8),
            *maxgap = xcalloc((size_t)n, 8), *stall_at = xcalloc((size_t)n, 8),
            *stall_delta = xcalloc((size_t)n, 8);
    size_t nst = 0;
    size_t nt = 0;
    /* Streams that did not complete, by reason (the first REASONS kinds). */
    enum { REASONS = 8 };
    const char *reason[REASONS];
    int reason_n[REASONS], nreason = 0;
    for (int i = 0; i < n; i++) {
        stream *s = &S[i];
        if (s->st != S_FINISHED) {
            unfinished++;
            fail(s, "unfinished at the deadline");
            close_fd(s);
        }
        if (s->error) {
            errors++;
            if (errors <= 5)
                fprintf(stderr, "runs_load: stream %d: %s\n", i, s->why);
            int k = 0;
            while (k < nreason && strcmp(reason[k], s->why) != 0)
                k++;
            if (k == nreason && nreason < REASONS) {
                reason[k] = s->why;
                reason_n[nreason++] = 0;
            }
            if (k < nreason)
                reason_n[k]++;
        }
        if (s->max_gap > C.stall_ms * 1000000LL) {
            stalled++;
            /* Where the stall was: seconds into the test when the worst
             * gap started, and how many deltas the stream had by then. */
            stall_at[nst] = s->max_gap_end - s->max_gap - t0;
            stall_delta[nst++] = (int64_t)s->max_gap_delta * 1000000; /* printed as "ms" */
        }
        if (!s->error && s->deltas != C.tokens)
            short_count++;
        if (!s->error && s->deltas == C.tokens && s->max_gap <= C.stall_ms * 1000000LL)
            ok++;
        if (s->t_first) {
            ttft[nt] = s->t_first - s->t_start;
            created[nt] = s->t_created ? s->t_created - s->t_start : 0;
            maxgap[nt++] = s->max_gap;
            if (s->t_first > ws)
                ws = s->t_first;
        }
        if (s->t_last && s->t_last < we)
            we = s->t_last; /* the first stream to stop receiving */
    }
    /* steady window: all streams have had their first delta and none has ended */
    size_t i0 = ns, i1 = ns;
    for (size_t i = 0; i < ns; i++) {
        if (i0 == ns && sm[i].t >= ws)
            i0 = i;
        if (sm[i].t <= we)
            i1 = i;
    }
    bool steady = i0 < ns && i1 < ns && i1 > i0 + 5;
    long rss_peak = 0;
    int active_min = n;
    if (steady) {
        for (size_t i = i0; i <= i1; i++) {
            if (sm[i].rss_kb > rss_peak)
                rss_peak = sm[i].rss_kb;
            if (sm[i].active < active_min)
                active_min = sm[i].active;
        }
    } else {
        for (size_t i = 0; i < ns; i++)
            if (sm[i].rss_kb > rss_peak)
                rss_peak = sm[i].rss_kb;
        active_min = 0;
    }
    printf("mode=streams\nn=%d\ntokens=%d\ninterval_ms=%d\npending=%d\n", n, C.tokens,
           C.interval_ms, C.pending);
    printf("ok=%d\nerrors=%d\nunfinished=%d\nstalled=%d\nshort=%d\nstall_ms=%ld\n", ok, errors,
           unfinished, stalled, short_count, C.stall_ms);
    for (int k = 0; k < nreason; k++)
        printf("error_reason=%d %s\n", reason_n[k], reason[k]);
    printf("peak_active=%d\nsteady=%d\nsteady_active_min=%d\n", peak_active, steady ? 1 : 0,
           active_min);
    printf("ramp_s=%.2f\nelapsed_s=%.2f\n",
           t_all_created ? (double)(t_all_created - t0) / 1e9 : -1.0, (double)(t_end - t0) / 1e9);
    print_pcts("created", created, nt);
    print_pcts("ttft", ttft, nt);
    printf("gap_p50_ms=%.2f\ngap_p99_ms=%.2f\ngap_p999_ms=%.2f\n", gap_pct(0.5), gap_pct(0.99),
           gap_pct(0.999));
    print_pcts("stream_max_gap", maxgap, nt);
    /* For stalled streams only: when their worst gap began (ms since the
     * first run was created) and after how many deltas (the _ms suffix of
     * print_pcts; the values are counts). */
    print_pcts("stall_start", stall_at, nst);
    print_pcts("stall_after_deltas", stall_delta, nst);
    printf("deltas_total=%lld\n", total_deltas);
    printf("rss_idle_kb=%ld\nrss_peak_kb=%ld\nhwm_kb=%ld\n", rss_idle, rss_peak, hwm);
    printf("mem_per_run_kb=%.1f\n", n ? (double)(rss_peak - rss_idle) / n : 0.0);
    printf("cpu_total_s=%.2f\n", (double)(cpu_end - cpu_start) / (double)hz);
    printf("cpu_per_token_total_us=%.2f\n",
           total_deltas ? (double)(cpu_end - cpu_start) / (double)hz * 1e6 / (double)total_deltas
                        : 0.0);
    if (steady) {
        double cs = (double)(sm[i1].cpu_ticks - sm[i0].cpu_ticks) / (double)hz;
        double es = (double)(sm[i1].emu_ticks - sm[i0].emu_ticks) / (double)hz;
        long long dd = sm[i1].deltas - sm[i0].deltas;
        double wsec = (double)(sm[i1].t - sm[i0].t) / 1e9;
        printf("steady_s=%.2f\nsteady_deltas=%lld\nsteady_tokens_per_s=%.0f\n", wsec, dd,
               wsec > 0 ? (double)dd / wsec : 0.0);
        printf("steady_cpu_s=%.2f\nsteady_cpu_pct=%.0f\ncpu_per_token_steady_us=%.2f\n", cs,
               wsec > 0 ? cs / wsec * 100 : 0.0, dd ? cs * 1e6 / (double)dd : 0.0);
        printf("steady_emu_cpu_pct=%.0f\n", wsec > 0 ? es / wsec * 100 : 0.0);
    }
    double client_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                        (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                        (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                        (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("emu_cpu_s=%.2f\nclient_cpu_s=%.2f\n", (double)(emu_end - emu_start) / (double)hz,
           client_cpu);
    return 0;
}

/* ---- arguments ---- */

static void parse_hostport(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= cap)
        die("expected HOST:PORT, got %s", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535)
        die("bad port in %s", s);
    *port = (int)p;
}

static long num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        die("bad number for %s", what);
    return v;
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "usage: runs_load ttft|streams --assistd HOST:PORT --emu HOST:PORT --key KEY\n"
        "         [--samples S] [--conc C]                       (ttft)\n"
        "         [--n N] [--pending P] [--stall-ms MS] [--deadline S] (streams)\n"
        "         [--tokens T] [--interval-ms I] [--pid PID] [--emu-pid PID]\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    C.mode = argv[1];
    C.conc = 1;
    C.samples = 300;
    C.n = 100;
    C.pending = 32;
    C.tokens = 5;
    C.stall_ms = 1000;
    C.deadline_s = 300;
    C.key = "";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--assistd"))
            parse_hostport(v, C.ahost, sizeof C.ahost, &C.aport);
        else if (!strcmp(k, "--emu"))
            parse_hostport(v, C.ehost, sizeof C.ehost, &C.eport);
        else if (!strcmp(k, "--key"))
            C.key = v;
        else if (!strcmp(k, "--samples"))
            C.samples = (int)num(v, k);
        else if (!strcmp(k, "--conc"))
            C.conc = (int)num(v, k);
        else if (!strcmp(k, "--n"))
            C.n = (int)num(v, k);
        else if (!strcmp(k, "--pending"))
            C.pending = (int)num(v, k);
        else if (!strcmp(k, "--tokens"))
            C.tokens = (int)num(v, k);
        else if (!strcmp(k, "--interval-ms"))
            C.interval_ms = (int)num(v, k);
        else if (!strcmp(k, "--pid"))
            C.pid = (int)num(v, k);
        else if (!strcmp(k, "--emu-pid"))
            C.emu_pid = (int)num(v, k);
        else if (!strcmp(k, "--stall-ms"))
            C.stall_ms = num(v, k);
        else if (!strcmp(k, "--deadline"))
            C.deadline_s = num(v, k);
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!C.aport || !C.eport || C.conc < 1 || C.conc > 4096 || C.n < 1 || C.pending < 1 ||
        C.tokens < 1) {
        fputs(usage, stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    gaps = xcalloc(GAP_NB, sizeof *gaps);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!strcmp(C.mode, "ttft"))
        return run_ttft();
    if (!strcmp(C.mode, "streams"))
        return run_streams();
    fputs(usage, stderr);
    return 2;
}
