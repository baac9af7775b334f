/*
 * upstream.c -- the upstream loop: one thread driving libcurl's multi
 * interface for every chat-completions call, plus posted work and timers
 * (see upstream.h).
 *
 * Thread model. ad_upstream_new starts one loop thread. Only three things
 * cross threads, all under u->mu: the FIFO of posted functions, the timer
 * heap and the stopping flag; other threads wake the loop through an
 * eventfd. Everything else -- the list of calls, the "kick" list,
 * every easy handle -- belongs to the loop thread and has no lock.
 * curl_global_init is not thread-safe and must run once per process: it is
 * done in ad_upstream_new (and ad_upstream_list_models) under pthread_once,
 * the one piece of process-wide state here; curl_global_cleanup is never
 * called (the process exits).
 *
 * One loop iteration: take the posted functions and run them in order; run
 * the timers that are due (a binary min-heap ordered by due time, then by
 * posting order, so equal delays fire in order; it grows with use); process
 * the kick list; libcurl's own timeout if due (curl_multi_socket_action
 * with CURL_SOCKET_TIMEOUT); handle finished transfers; kick list again;
 * then epoll_wait for the nearest of curl's timeout and the next timer (0
 * when work is pending), and curl_multi_socket_action for each ready
 * socket only. libcurl tells the loop which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> epoll_ctl) and when it next needs a call
 * (CURLMOPT_TIMERFUNCTION), so an iteration costs what the ready sockets
 * cost, not a poll and a walk over every transfer (curl_multi_poll +
 * curl_multi_perform did both, which dominated at thousands of streams).
 *
 * Re-entrancy. Handler callbacks (on_text, ...) run inside libcurl's write
 * callback, where libcurl forbids adding or removing easy handles. So the
 * public call operations never touch the multi handle directly: start,
 * cancel, pause and resume mark the call and put it on the kick list,
 * which the loop processes outside any libcurl callback. on_done is only
 * ever called from there or from the finished-transfer step, never from
 * inside a libcurl callback and never synchronously from an ad_upstream_*
 * function, so on_done may call anything (including ad_upstream_call).
 *
 * Pause. The response is fed to the chat_stream parser one line at a
 * time; when a handler asks to pause, feeding stops at the end of the
 * current line, the rest of libcurl's buffer is kept in `held` (bounded)
 * and the next write callback returns CURL_WRITEFUNC_PAUSE (libcurl keeps
 * that data); the kick step also calls curl_easy_pause(CURLPAUSE_RECV).
 * Hence no handler callback of a paused call fires until it is resumed.
 * Resuming feeds `held` first and then curl_easy_pause(CURLPAUSE_CONT),
 * from the kick step. A transfer that finishes while bytes are held waits
 * (DRAINING) until they are fed.
 *
 * HTTP/1.1 is forced: one connection per call in flight (reused from the
 * multi's pool afterwards), so a cancel closes that connection and the
 * upstream sees the abort at once, and pausing is plain TCP back-pressure.
 *
 * Attempts. Each attempt is a fresh easy handle and a fresh parser (so a
 * retry never sees bytes of the previous attempt). A failed attempt is
 * retried when it was a 408/429/5xx answer or a connection-level failure
 * (connect/resolve/send/receive errors, or a timeout before any response
 * header), nothing has been relayed to a handler, and fewer than
 * max_retries retries were made. The back-off is 500 ms * 2^(n-1) with
 * +-20% jitter, capped at 8 s; Retry-After (seconds) or retry-after-ms
 * replace it, capped at 60 s.
 *
 * Timeouts. Connect: CURLOPT_CONNECTTIMEOUT_MS. Idle (no byte for
 * timeout_idle_ms, response headers included): a per-attempt timer on the
 * heap, re-armed from the time of the last byte, so it is as precise as
 * the setting; a paused call is never idle (the pause is ours). libcurl's
 * CURLOPT_LOW_SPEED_LIMIT=1 / CURLOPT_LOW_SPEED_TIME (seconds, rounded up)
 * are set too, as a backstop: libcurl averages speed over ~5 s, so on its
 * own it fires up to 5 s late.
 *
 * Shutdown. ad_upstream_free (never from the loop thread) sets `stopping`
 * and joins: the loop stops at the top of its next iteration, so posted
 * functions and timers not yet run are dropped unrun (their ud remains the
 * poster's to free), then every call is cancelled and gets on_done on the
 * loop thread (a call started from such an on_done is cancelled at once).
 *
 * Outcomes. ad_up_result.rc is AD_OK on a complete answer; AD_ESTATE only
 * when cancelled; AD_EINVAL for invalid_prompt (or a malformed stream);
 * AD_ETOOBIG when the answer crossed a parser limit; AD_EIO for other
 * upstream failures; a handler's own error when a handler refused a piece.
 *
 * Errors. Messages given to on_done are meant for API users: they quote
 * the upstream's error.message (never its raw body), never contain the
 * backend's API key (scrubbed), and never name the upstream host. Logs
 * carry method, host, status, duration and attempts, never keys or bodies.
 */
#include "run/upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/json.h"
#include "util/str.h"

#define BACKOFF_BASE_MS    500
#define BACKOFF_CAP_MS     8000
#define RETRY_AFTER_CAP_MS 60000
#define ERR_BODY_MAX       (64 * 1024)   /* error answers kept for error.message */
#define HELD_MAX           (1024 * 1024) /* bytes kept back while paused */
#define CS_MAX_EVENT       (1024 * 1024)
#define CS_MAX_TEXT        (4 * 1024 * 1024)
#define CS_MAX_ARGS        (1024 * 1024)
#define MSG_MAX            512
#define POLL_CAP_MS        60000
#define LIST_MAX           (1024 * 1024)
#define LIST_TIMEOUT_MS    10000
#define USER_AGENT         "assistd/0.1"
#define EPOLL_BATCH        512

typedef struct work {
    void (*fn)(void *ud);
    void *ud;
    struct work *next;
} work;

typedef struct tmr {
    int64_t due; /* CLOCK_MONOTONIC milliseconds */
    uint64_t seq;
    void (*fn)(void *ud);
    void *ud;
    size_t idx; /* position in the heap */
} tmr;

typedef enum {
    ST_NEW,      /* waiting for the kick step to start the first attempt */
    ST_RUNNING,  /* an easy handle is in the multi */
    ST_WAITING,  /* back-off before the next attempt (retry_tmr armed) */
    ST_DRAINING, /* transfer finished while paused with bytes held */
    ST_DONE      /* on_done delivered; freed when off the kick list */
} call_state;

struct ad_up_call {
    ad_upstream *u;
    ad_up_call *prev, *next; /* u->calls */
    ad_up_call *kick_next;
    bool kicked;
    ad_up_handlers h;
    void *ud;
    call_state st;

    /* The request, built once. */
    char *url;
    struct curl_slist *hdrs;
    char *body;
    size_t body_len;
    const char *key; /* the backend's key, for scrubbing messages */
    char host[256];
    long connect_ms, idle_ms;
    int max_retries;

    /* The current attempt. */
    CURL *easy;
    ad_cs *cs;
    int attempts;
    bool relayed; /* a handler callback fired: no more retries */
    long status;
    CURLcode res;
    int64_t retry_after_ms;
    ad_buf errbody, held;
    tmr *retry_tmr;
    tmr *idle_tmr;   /* fires when no byte arrived for idle_ms */
    int64_t last_rx; /* when the last byte (or the attempt start) was seen */
    bool want_pause, curl_paused;
    bool cancelled;
    bool finish;   /* complete at the next kick step with the stored outcome */
    bool failed;   /* the outcome below is already decided (stream/handler error) */
    bool cb_error; /* a handler returned an error */
    int64_t t_start, t_attempt;
    char curl_err[CURL_ERROR_SIZE];

    /* The outcome. */
    ad_err rc;
    const char *code;
    char msg[MSG_MAX];
};

struct ad_upstream {
    ad_logger lgv;
    const ad_logger *lg;
    CURLM *multi;
    int epfd;   /* the sockets libcurl asked for, and wake_fd */
    int wakefd; /* eventfd: posted work, timers, stop */
    pthread_t thread;
    pthread_t loop_tid; /* written by the loop before ad_upstream_new returns */
    sem_t started;

    pthread_mutex_t mu; /* guards the fields up to the next comment */
    work *qhead, *qtail;
    tmr **heap;
    size_t nheap, capheap;
    uint64_t tseq;
    bool stopping;

    /* Loop thread only. */
    ad_up_call *calls;
    ad_up_call *kick_head, *kick_tail;
    bool closing;     /* the loop is cancelling everything and exiting */
    int64_t curl_due; /* when libcurl wants its timeout call; -1: none */
    uint64_t rng;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- timers: a binary min-heap on (due, seq), under u->mu ---- */

static bool tmr_less(const tmr *a, const tmr *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(ad_upstream *u, size_t i, tmr *t)
{
    u->heap[i] = t;
    t->idx = i;
}

static void heap_up(ad_upstream *u, size_t i)
{
    tmr *t = u->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tmr_less(t, u->heap[p]))
            break;
        heap_set(u, i, u->heap[p]);
        i = p;
    }
    heap_set(u, i, t);
}

static void heap_down(ad_upstream *u, size_t i)
{
    tmr *t = u->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const tmr *best = t;
        if (l < u->nheap && tmr_less(u->heap[l], best)) {
            m = l;
            best = u->heap[l];
        }
        if (l + 1 < u->nheap && tmr_less(u->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        heap_set(u, i, u->heap[m]);
        i = m;
    }
    heap_set(u, i, t);
}

static void heap_remove(ad_upstream *u, tmr *t)
{
    size_t i = t->idx;
    tmr *last = u->heap[--u->nheap];
    if (i == u->nheap)
        return;
    heap_set(u, i, last);
    heap_up(u, i);
    heap_down(u, last->idx);
}

static tmr *timer_add(ad_upstream *u, long delay_ms, void (*fn)(void *), void *ud)
{
    tmr *t = ad_calloc(1, sizeof *t);
    t->due = now_ms() + (delay_ms > 0 ? delay_ms : 0);
    t->fn = fn;
    t->ud = ud;
    pthread_mutex_lock(&u->mu);
    if (u->nheap == u->capheap) {
        u->capheap = u->capheap ? u->capheap * 2 : 16;
        u->heap = ad_realloc(u->heap, u->capheap * sizeof *u->heap);
    }
    t->seq = u->tseq++;
    heap_set(u, u->nheap++, t);
    heap_up(u, t->idx);
    pthread_mutex_unlock(&u->mu);
    return t;
}

static void timer_cancel(ad_upstream *u, tmr *t)
{
    pthread_mutex_lock(&u->mu);
    heap_remove(u, t);
    pthread_mutex_unlock(&u->mu);
    ad_free(t);
}

/* Runs the timers due now that were armed before this step began (so a
 * timer re-arming itself with no delay cannot starve the loop). */
static void run_timers(ad_upstream *u)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&u->mu);
    uint64_t limit = u->tseq;
    while (u->nheap && u->heap[0]->due <= now && u->heap[0]->seq < limit) {
        tmr *t = u->heap[0];
        heap_remove(u, t);
        pthread_mutex_unlock(&u->mu);
        t->fn(t->ud);
        ad_free(t);
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
}

/* ---- small helpers ---- */

static uint64_t rng_next(ad_upstream *u)
{
    /* xorshift64*: jitter only, not security. */
    u->rng ^= u->rng >> 12;
    u->rng ^= u->rng << 25;
    u->rng ^= u->rng >> 27;
    return u->rng * UINT64_C(2685821657736338717);
}

static void url_escape(ad_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            ad_buf_addc(b, (char)*p);
        } else {
            ad_buf_addc(b, '%');
            ad_buf_addc(b, hex[*p >> 4]);
            ad_buf_addc(b, hex[*p & 15]);
        }
    }
}

/* The host[:port] of a base URL, without any user information. */
static void url_host(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void scrub_slist(struct curl_slist *l)
{
    for (; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
}

/* Stores the outcome message: the API key (if it appears) masked, cut to
 * MSG_MAX on a UTF-8 boundary. */
static void set_msg(ad_up_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_msg(ad_up_call *c, const char *fmt, ...)
{
    char tmp[MSG_MAX + 1536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        tmp[0] = '\0';
    if (c->key && c->key[0]) {
        size_t kl = strlen(c->key);
        for (char *p = strstr(tmp, c->key); p; p = strstr(p + kl, c->key))
            memset(p, '*', kl);
    }
    size_t len = strlen(tmp);
    if (len > MSG_MAX - 1)
        len = MSG_MAX - 1;
    while (len && !ad_utf8_valid(tmp, len))
        len--;
    memcpy(c->msg, tmp, len);
    c->msg[len] = '\0';
}

static void fail(ad_up_call *c, ad_err rc, const char *code)
{
    c->failed = true;
    c->rc = rc;
    c->code = code;
}

static void kick(ad_upstream *u, ad_up_call *c)
{
    if (c->kicked)
        return;
    c->kicked = true;
    c->kick_next = NULL;
    if (u->kick_tail)
        u->kick_tail->kick_next = c;
    else
        u->kick_head = c;
    u->kick_tail = c;
}

static void call_free(ad_up_call *c)
{
    ad_free(c->url);
    scrub_slist(c->hdrs);
    curl_slist_free_all(c->hdrs);
    free(c->body); /* from json_dumps */
    ad_cs_free(c->cs);
    ad_buf_free(&c->errbody);
    ad_buf_free(&c->held);
    ad_free(c);
}

static void detach_easy(ad_upstream *u, ad_up_call *c)
{
    if (c->idle_tmr) {
        timer_cancel(u, c->idle_tmr);
        c->idle_tmr = NULL;
    }
    if (!c->easy)
        return;
    curl_multi_remove_handle(u->multi, c->easy);
    curl_easy_cleanup(c->easy);
    c->easy = NULL;
    c->curl_paused = false;
}

/* Delivers on_done (exactly once) and frees the call. Loop thread, outside
 * libcurl callbacks. */
static void complete(ad_upstream *u, ad_up_call *c)
{
    if (c->st == ST_DONE)
        return;
    detach_easy(u, c);
    if (c->retry_tmr) {
        timer_cancel(u, c->retry_tmr);
        c->retry_tmr = NULL;
    }
    ad_up_result r;
    memset(&r, 0, sizeof r);
    if (c->cancelled) {
        r.rc = AD_ESTATE;
        r.cancelled = true;
        r.error_code = "server_error";
        r.error_message = "The model call was cancelled.";
    } else {
        r.rc = c->rc;
        if (c->rc) {
            r.error_code = c->code ? c->code : "server_error";
            r.error_message = c->msg[0] ? c->msg : "The model call failed.";
        }
    }
    r.http_status = (int)c->status;
    r.turn = ad_cs_result(c->cs);
    r.attempts = c->attempts;
    ad_log(u->lg, r.rc ? AD_LOG_INFO : AD_LOG_DEBUG,
           "upstream POST %s: status %ld, %d attempt(s), %lld ms, %s", c->host, c->status,
           c->attempts, (long long)(now_ms() - c->t_start),
           r.cancelled ? "cancelled"
           : r.rc      ? r.error_code
                       : "ok");
    c->st = ST_DONE;
    if (c->prev)
        c->prev->next = c->next;
    else
        u->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->h.on_done)
        c->h.on_done(c->ud, &r);
    if (!c->kicked)
        call_free(c);
}

/* ---- parser callbacks: forward to the handlers ---- */

static ad_err fwd_text(void *ud, const char *piece, size_t len)
{
    ad_up_call *c = ud;
    if (c->cancelled)
        return AD_ESTATE;
    c->relayed = true;
    ad_err rc = c->h.on_text ? c->h.on_text(c->ud, piece, len) : AD_OK;
    c->cb_error = c->cb_error || rc;
    return rc;
}

static ad_err fwd_tool_start(void *ud, int index, const char *id, const char *name)
{
    ad_up_call *c = ud;
    if (c->cancelled)
        return AD_ESTATE;
    c->relayed = true;
    ad_err rc = c->h.on_tool_call_start ? c->h.on_tool_call_start(c->ud, index, id, name) : AD_OK;
    c->cb_error = c->cb_error || rc;
    return rc;
}

static ad_err fwd_tool_args(void *ud, int index, const char *piece, size_t len)
{
    ad_up_call *c = ud;
    if (c->cancelled)
        return AD_ESTATE;
    c->relayed = true;
    ad_err rc = c->h.on_tool_call_args ? c->h.on_tool_call_args(c->ud, index, piece, len) : AD_OK;
    c->cb_error = c->cb_error || rc;
    return rc;
}

static bool is_invalid_prompt(const char *msg, const char *code);

/* Records why the parser refused the stream. An error event inside the
 * stream is classified like an HTTP error (rate limit, invalid prompt),
 * server_error otherwise. */
static void stream_failed(ad_up_call *c, ad_err rc)
{
    fail(c, rc == AD_ESTATE ? AD_EIO : rc, "server_error");
    if (c->cancelled)
        return;
    if (c->cb_error)
        set_msg(c, "The model's response could not be relayed.");
    else if (rc == AD_ESTATE) {
        const char *code = ad_cs_error_code(c->cs), *m = ad_cs_error(c->cs);
        if (!strcmp(code, "rate_limit_exceeded") || !strcmp(code, "429"))
            c->code = "rate_limit_exceeded";
        else if (is_invalid_prompt(m, code))
            c->code = "invalid_prompt";
        set_msg(c, "The model provider reported an error: %s", m);
    } else if (rc == AD_ETOOBIG)
        set_msg(c, "The model's response exceeded a size limit.");
    else
        set_msg(c, "The model provider sent a malformed response: %s", ad_cs_error(c->cs));
}

/* Feeds SSE bytes line by line, stopping after a line during which a
 * handler paused or cancelled the call. Returns the bytes consumed. */
static size_t feed_lines(ad_up_call *c, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        const char *nl = memchr(p + off, '\n', n - off);
        size_t end = nl ? (size_t)(nl - p) + 1 : n;
        ad_err rc = ad_cs_feed(c->cs, p + off, end - off);
        off = end;
        if (rc) {
            stream_failed(c, rc);
            return off;
        }
        if (c->want_pause || c->cancelled)
            break;
    }
    return off;
}

/* ---- libcurl callbacks ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    ad_up_call *c = ud;
    size_t n = size * nmemb;
    c->last_rx = now_ms();
    if (c->cancelled || c->finish || c->failed)
        return 0; /* aborts the transfer */
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status < 200 || c->status > 299) {
        if (c->errbody.len < ERR_BODY_MAX)
            ad_buf_add(&c->errbody, p,
                       n < ERR_BODY_MAX - c->errbody.len ? n : ERR_BODY_MAX - c->errbody.len);
        return n;
    }
    if (c->want_pause || c->held.len) {
        c->curl_paused = true;
        return CURL_WRITEFUNC_PAUSE; /* libcurl keeps these bytes */
    }
    size_t used = feed_lines(c, p, n);
    if (c->failed || c->cancelled)
        return 0;
    if (used < n && ad_buf_add(&c->held, p + used, n - used)) {
        fail(c, AD_ETOOBIG, "server_error");
        set_msg(c, "The model's response exceeded a size limit.");
        return 0;
    }
    return n;
}

/* Compares a header line's name, case-insensitively. Returns its trimmed
 * value, or NULL. */
static const char *header_value(const char *line, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl))
        return NULL;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

/* The integer part of a non-negative decimal number ("12" or "12.5");
 * -1 for anything else (an HTTP date, say). */
static int64_t header_int(const char *v, size_t n)
{
    size_t d = 0;
    while (d < n && v[d] >= '0' && v[d] <= '9')
        d++;
    if (!d || d > 9)
        return -1;
    for (size_t i = d + (d < n && v[d] == '.'); i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return -1;
    if (d < n && v[d] != '.')
        return -1;
    int64_t x;
    return ad_parse_i64n(v, d, &x) ? x : -1;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    ad_up_call *c = ud;
    size_t n = size * nmemb, vl;
    const char *v;
    c->last_rx = now_ms();
    if (n >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100, say) */
        c->retry_after_ms = -1;
    } else if ((v = header_value(p, n, "retry-after-ms", &vl))) {
        int64_t ms = header_int(v, vl); /* preferred over retry-after */
        if (ms >= 0)
            c->retry_after_ms = ms;
    } else if ((v = header_value(p, n, "retry-after", &vl))) {
        int64_t s = header_int(v, vl);
        if (s >= 0 && c->retry_after_ms < 0)
            c->retry_after_ms = s * 1000; /* capped when used */
    }
    return n;
}

/* ---- attempts ---- */

static void idle_fire(void *ud);

static void start_attempt(ad_upstream *u, ad_up_call *c)
{
    static const ad_cs_limits lim = {CS_MAX_EVENT, CS_MAX_TEXT, CS_MAX_ARGS};
    static const ad_cs_callbacks cbs = {fwd_text, fwd_tool_start, fwd_tool_args};
    c->attempts++;
    c->status = 0;
    c->res = CURLE_OK;
    c->retry_after_ms = -1;
    c->curl_paused = false;
    c->curl_err[0] = '\0';
    ad_buf_reset(&c->errbody);
    ad_buf_reset(&c->held);
    ad_cs_free(c->cs);
    c->cs = ad_cs_new(&lim, &cbs, c);
    c->t_attempt = now_ms();
    CURL *e = curl_easy_init();
    if (!e)
        goto bad;
    c->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (c->idle_ms + 999) / 1000);
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK)
        goto bad;
    c->st = ST_RUNNING;
    c->last_rx = now_ms();
    c->idle_tmr = timer_add(u, c->idle_ms, idle_fire, c);
    return;
bad:
    if (c->easy) {
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    fail(c, AD_EINTERNAL, "server_error");
    set_msg(c, "The model call could not be started.");
    complete(u, c);
}

static void retry_fire(void *ud)
{
    ad_up_call *c = ud;
    c->retry_tmr = NULL;
    start_attempt(c->u, c);
}

static bool transport_retryable(CURLcode res, long status)
{
    switch (res) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    case CURLE_OPERATION_TIMEDOUT:
        return status == 0; /* connect timeout, or no answer at all */
    default:
        return false;
    }
}

/* error.message (or a few other shapes servers use) of an error body. */
static void error_parts(const ad_buf *body, char *msg, size_t msize, char *code, size_t csize)
{
    msg[0] = code[0] = '\0';
    json_t *j = body->len ? json_loadb(body->ptr, body->len, 0, NULL) : NULL;
    if (!j)
        return;
    json_t *e = json_object_get(j, "error");
    json_t *m = NULL, *cd = NULL;
    if (json_is_object(e)) {
        m = json_object_get(e, "message");
        cd = json_object_get(e, "code");
    } else if (json_is_string(e)) {
        m = e; /* Ollama: {"error": "..."} */
    } else {
        m = json_object_get(j, "message");
        if (!json_is_string(m))
            m = json_object_get(j, "detail"); /* FastAPI servers (vLLM) */
    }
    if (json_is_string(m))
        ad_strlcpy(msg, json_string_value(m), msize);
    if (json_is_string(cd))
        ad_strlcpy(code, json_string_value(cd), csize);
    json_decref(j);
}

static bool is_invalid_prompt(const char *msg, const char *code)
{
    static const char *const codes[] = {"context_length_exceeded", "content_filter",
                                        "invalid_prompt", "content_policy_violation"};
    static const char *const words[] = {
        "content filter", "content_filter", "content management policy",
        "context length", "context_length", "maximum context"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!strcmp(code, codes[i]))
            return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(msg, words[i]))
            return true;
    return false;
}

static int64_t backoff_ms(ad_upstream *u, const ad_up_call *c)
{
    if (c->retry_after_ms >= 0)
        return c->retry_after_ms > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : c->retry_after_ms;
    int64_t d = BACKOFF_BASE_MS;
    for (int i = 1; i < c->attempts && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    int64_t span = d * 2 / 5; /* +-20% */
    d = d - span / 2 + (int64_t)(rng_next(u) % (uint64_t)(span + 1));
    return d > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : d;
}

/* The transfer of an attempt ended (easy handle already detached): succeed,
 * retry or fail. */
static void conclude(ad_upstream *u, ad_up_call *c)
{
    long st = c->status;
    CURLcode res = c->res;
    bool retry = false;
    if (c->failed || c->cancelled)
        goto done;
    if (res == CURLE_OK && st >= 200 && st <= 299) {
        ad_err rc = ad_cs_finish(c->cs); /* also folds a non-streaming body */
        if (rc)
            stream_failed(c, rc);
        else
            c->rc = AD_OK;
        goto done;
    }
    if (st >= 300) {
        char m[MSG_MAX + 1536], code[64]; /* room to scrub a key cut by MSG_MAX */
        error_parts(&c->errbody, m, sizeof m, code, sizeof code);
        retry = st == 408 || st == 429 || st >= 500;
        if (st == 429) {
            fail(c, AD_EIO, "rate_limit_exceeded");
            set_msg(c, "%s", m[0] ? m : "The model provider's rate limit was exceeded.");
        } else if (st == 400 && is_invalid_prompt(m, code)) {
            fail(c, AD_EINVAL, "invalid_prompt");
            set_msg(c, "%s", m);
        } else if (st == 401 || st == 403) {
            fail(c, AD_EIO, "server_error");
            set_msg(c, "The model provider refused assistd's credentials (HTTP %ld).", st);
        } else {
            fail(c, AD_EIO, "server_error");
            if (m[0])
                set_msg(c, "The model provider returned HTTP %ld: %s", st, m);
            else
                set_msg(c, "The model provider returned HTTP %ld.", st);
        }
    } else {
        retry = transport_retryable(res, st);
        fail(c, AD_EIO, "server_error");
        if (res == CURLE_OPERATION_TIMEDOUT)
            set_msg(c, "The model provider did not respond in time.");
        else if (res == CURLE_OK)
            set_msg(c, "The model provider returned HTTP %ld.", st);
        else
            set_msg(c, "Could not reach the model provider: %s.", curl_easy_strerror(res));
    }
    ad_log(u->lg, AD_LOG_DEBUG, "upstream POST %s: attempt %d: status %ld, %lld ms%s%s", c->host,
           c->attempts, st, (long long)(now_ms() - c->t_attempt), res ? ", " : "",
           res ? (c->curl_err[0] ? c->curl_err : curl_easy_strerror(res)) : "");
    if (retry && !c->relayed && c->attempts <= c->max_retries && !u->closing) {
        int64_t d = backoff_ms(u, c);
        ad_log(u->lg, AD_LOG_INFO, "upstream POST %s: status %ld, retry %d in %lld ms", c->host, st,
               c->attempts, (long long)d);
        c->failed = false;
        c->rc = AD_OK;
        c->code = NULL;
        c->msg[0] = '\0';
        c->st = ST_WAITING;
        c->retry_tmr = timer_add(u, (long)d, retry_fire, c);
        return;
    }
done:
    complete(u, c);
}

static void attempt_done(ad_upstream *u, ad_up_call *c, CURLcode res)
{
    if (c->st != ST_RUNNING)
        return;
    c->res = res;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    detach_easy(u, c);
    if (!c->cancelled && !c->failed && res == CURLE_OK && c->held.len) {
        c->st = ST_DRAINING; /* the last bytes wait for ad_upstream_resume */
        return;
    }
    conclude(u, c);
}

/* The idle timer: fails the attempt when no byte arrived for idle_ms
 * (a paused call is never idle: the pause is ours). */
static void idle_fire(void *ud)
{
    ad_up_call *c = ud;
    c->idle_tmr = NULL;
    if (c->st != ST_RUNNING || !c->easy)
        return;
    int64_t now = now_ms();
    if (c->want_pause || c->curl_paused)
        c->last_rx = now;
    int64_t left = c->last_rx + c->idle_ms - now;
    if (left > 0) {
        c->idle_tmr = timer_add(c->u, (long)left, idle_fire, c);
        return;
    }
    attempt_done(c->u, c, CURLE_OPERATION_TIMEDOUT);
}

/* Brings a running call's pause state in line with what the engine asked. */
static void sync_pause(ad_upstream *u, ad_up_call *c)
{
    if (c->want_pause) {
        if (c->easy && !c->curl_paused) {
            c->curl_paused = true;
            c->last_rx = now_ms();
            curl_easy_pause(c->easy, CURLPAUSE_RECV);
        }
        return;
    }
    if (c->held.len) {
        ad_buf tmp = c->held;
        ad_buf_init(&c->held, HELD_MAX);
        size_t used = feed_lines(c, tmp.ptr, tmp.len);
        if (used < tmp.len && !c->failed && !c->cancelled)
            ad_buf_add(&c->held, tmp.ptr + used, tmp.len - used); /* fits: it was held */
        ad_buf_free(&tmp);
        if (c->failed || c->cancelled) {
            complete(u, c);
            return;
        }
        if (c->want_pause)
            return;
    }
    if (c->st == ST_DRAINING) {
        conclude(u, c);
        return;
    }
    if (c->easy && c->curl_paused) {
        c->curl_paused = false;
        c->last_rx = now_ms(); /* the idle clock restarts */
        /* May deliver kept bytes through on_write right here. */
        CURLcode rc = curl_easy_pause(c->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK || c->failed || c->cancelled) {
            if (!c->failed && !c->cancelled) {
                fail(c, AD_EIO, "server_error");
                set_msg(c, "Could not reach the model provider: %s.", curl_easy_strerror(rc));
            }
            complete(u, c);
        }
    }
}

static void run_kicks(ad_upstream *u)
{
    ad_up_call *c;
    while ((c = u->kick_head)) {
        u->kick_head = c->kick_next;
        if (!u->kick_head)
            u->kick_tail = NULL;
        c->kick_next = NULL;
        c->kicked = false;
        if (c->st == ST_DONE)
            call_free(c);
        else if (c->cancelled || c->finish)
            complete(u, c);
        else if (c->st == ST_NEW)
            start_attempt(u, c);
        else if (c->st == ST_RUNNING || c->st == ST_DRAINING)
            sync_pause(u, c);
    }
}

static void drain_info(ad_upstream *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        ad_up_call *c = (ad_up_call *)priv;
        if (c && c->easy == e)
            attempt_done(u, c, res);
    }
}

static int next_timeout(ad_upstream *u)
{
    if (u->kick_head)
        return 0;
    long t = POLL_CAP_MS;
    pthread_mutex_lock(&u->mu);
    if (u->qhead)
        t = 0;
    else if (u->nheap) {
        int64_t d = u->heap[0]->due - now_ms();
        if (d < t)
            t = d < 0 ? 0 : (long)d;
    }
    pthread_mutex_unlock(&u->mu);
    if (t > 0 && u->curl_due >= 0) {
        int64_t d = u->curl_due - now_ms();
        if (d < t)
            t = d < 0 ? 0 : (long)d;
    }
    return (int)t;
}

static void *loop_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-engine");
    ad_upstream *u = arg;
    u->loop_tid = pthread_self();
    sem_post(&u->started);
    for (;;) {
        pthread_mutex_lock(&u->mu);
        bool stop = u->stopping;
        work *w = stop ? NULL : u->qhead;
        if (!stop)
            u->qhead = u->qtail = NULL;
        pthread_mutex_unlock(&u->mu);
        if (stop)
            break;
        while (w) {
            work *next = w->next;
            w->fn(w->ud);
            ad_free(w);
            w = next;
        }
        run_timers(u);
        run_kicks(u);
        int running = 0;
        if (u->curl_due >= 0 && u->curl_due <= now_ms()) {
            u->curl_due = -1; /* the timer callback sets the next one */
            CURLMcode mc = curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            if (mc != CURLM_OK)
                ad_log(u->lg, AD_LOG_ERROR, "upstream: curl_multi_socket_action: %s",
                       curl_multi_strerror(mc));
        }
        /* Also transfers a resume (curl_easy_pause in run_kicks) finished. */
        drain_info(u);
        run_kicks(u);
        struct epoll_event evs[EPOLL_BATCH];
        int n = epoll_wait(u->epfd, evs, EPOLL_BATCH, next_timeout(u));
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == u->wakefd) {
                uint64_t v;
                while (read(u->wakefd, &v, sizeof v) < 0 && errno == EINTR)
                    ;
                continue;
            }
            int mask = 0;
            if (evs[i].events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;
            curl_multi_socket_action(u->multi, fd, mask, &running);
        }
        if (n > 0) {
            drain_info(u);
            run_kicks(u);
        }
    }
    /* Shutting down: every call still gets its on_done, from here. Calls
     * started by those on_done callbacks are cancelled at once. */
    u->closing = true;
    while (u->calls || u->kick_head) {
        for (ad_up_call *c = u->calls; c; c = c->next)
            if (!c->cancelled) {
                c->cancelled = true;
                kick(u, c);
            }
        run_kicks(u);
    }
    return NULL;
}

/* libcurl: watch s for what (or stop watching it). */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    ad_upstream *u = userp;
    (void)e;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        /* Fails harmlessly when the socket is already closed (and so gone
         * from the set). */
        epoll_ctl(u->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = 0, .data.fd = s};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(u->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT &&
        epoll_ctl(u->epfd, EPOLL_CTL_ADD, s, &ev) != 0)
        ad_log(u->lg, AD_LOG_ERROR, "upstream: epoll_ctl: %s", strerror(errno));
    return 0;
}

/* libcurl: call curl_multi_socket_action(CURL_SOCKET_TIMEOUT) in
 * timeout_ms (-1: no timeout wanted). Done by the loop, never from here. */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    ad_upstream *u = userp;
    (void)m;
    u->curl_due = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

static void wake(ad_upstream *u)
{
    uint64_t one = 1;
    while (write(u->wakefd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* ---- public API ---- */

ad_err ad_upstream_new(const ad_logger *lg, ad_upstream **out)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    ad_upstream *u = ad_calloc(1, sizeof *u);
    if (lg) {
        u->lgv = *lg;
        u->lg = &u->lgv;
    }
    if (getrandom(&u->rng, sizeof u->rng, 0) != sizeof u->rng || !u->rng)
        u->rng = (uint64_t)now_ms() | 1;
    u->multi = curl_multi_init();
    u->curl_due = -1;
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    u->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event wev = {.events = EPOLLIN, .data.fd = u->wakefd};
    if (!u->multi || u->epfd < 0 || u->wakefd < 0 ||
        epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->wakefd, &wev) != 0) {
        if (u->multi)
            curl_multi_cleanup(u->multi);
        if (u->epfd >= 0)
            close(u->epfd);
        if (u->wakefd >= 0)
            close(u->wakefd);
        ad_free(u);
        return AD_EINTERNAL;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    pthread_mutex_init(&u->mu, NULL);
    sem_init(&u->started, 0, 0);
    if (pthread_create(&u->thread, NULL, loop_main, u) != 0) {
        sem_destroy(&u->started);
        pthread_mutex_destroy(&u->mu);
        curl_multi_cleanup(u->multi);
        close(u->epfd);
        close(u->wakefd);
        ad_free(u);
        return AD_EINTERNAL;
    }
    while (sem_wait(&u->started) != 0)
        ;
    *out = u;
    return AD_OK;
}

void ad_upstream_free(ad_upstream *u)
{
    if (!u)
        return;
    if (ad_upstream_on_loop(u)) {
        ad_log(u->lg, AD_LOG_ERROR, "upstream: ad_upstream_free called on the loop thread");
        abort();
    }
    pthread_mutex_lock(&u->mu);
    u->stopping = true;
    pthread_mutex_unlock(&u->mu);
    wake(u);
    pthread_join(u->thread, NULL);
    /* Work posted but not run is dropped (its ud is the poster's). */
    for (work *w = u->qhead, *next; w; w = next) {
        next = w->next;
        ad_free(w);
    }
    for (size_t i = 0; i < u->nheap; i++)
        ad_free(u->heap[i]);
    ad_free(u->heap);
    curl_multi_cleanup(u->multi);
    close(u->epfd);
    close(u->wakefd);
    sem_destroy(&u->started);
    pthread_mutex_destroy(&u->mu);
    ad_free(u);
}

bool ad_upstream_on_loop(const ad_upstream *u)
{
    return pthread_equal(pthread_self(), u->loop_tid) != 0;
}

void ad_upstream_post(ad_upstream *u, void (*fn)(void *ud), void *ud)
{
    work *w = ad_malloc(sizeof *w);
    w->fn = fn;
    w->ud = ud;
    w->next = NULL;
    pthread_mutex_lock(&u->mu);
    if (u->qtail)
        u->qtail->next = w;
    else
        u->qhead = w;
    u->qtail = w;
    pthread_mutex_unlock(&u->mu);
    wake(u);
}

void ad_upstream_post_after(ad_upstream *u, long delay_ms, void (*fn)(void *ud), void *ud)
{
    timer_add(u, delay_ms, fn, ud);
    wake(u);
}

/* Builds URL, headers and body. false (with the outcome set) on failure. */
static bool prepare(ad_up_call *c, const ad_model *model, json_t *body)
{
    const ad_backend *be = model ? model->backend : NULL;
    if (!be || !json_is_object(body)) {
        fail(c, AD_EINVAL, "server_error");
        set_msg(c, "The model call was malformed.");
        return false;
    }
    c->key = be->api_key;
    url_host(be->base_url, c->host, sizeof c->host);
    c->connect_ms = be->timeout_connect_ms > 0 ? be->timeout_connect_ms : 10000;
    c->idle_ms = be->timeout_idle_ms > 0 ? be->timeout_idle_ms : 120000;
    c->max_retries = be->max_retries > 0 ? be->max_retries : 0;

    ad_buf b;
    ad_buf_init(&b, 8192);
    ad_buf_addstr(&b, be->base_url);
    if (be->kind == AD_BACKEND_AZURE) {
        ad_buf_addstr(&b, "/openai/deployments/");
        url_escape(&b, model->deployment[0] ? model->deployment : model->id);
        ad_buf_addstr(&b, "/chat/completions?api-version=");
        url_escape(&b, be->api_version);
    } else {
        ad_buf_addstr(&b, "/chat/completions");
        json_object_set_new(
            body, "model",
            json_string(model->upstream_model[0] ? model->upstream_model : model->id));
    }
    c->url = ad_buf_steal(&b);

    c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: text/event-stream");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
    if (be->api_key[0]) {
        ad_buf_init(&b, sizeof be->api_key + 64);
        if (be->kind == AD_BACKEND_AZURE)
            ad_buf_printf(&b, "api-key: %s", be->api_key);
        else
            ad_buf_printf(&b, "Authorization: Bearer %s", be->api_key);
        c->hdrs = curl_slist_append(c->hdrs, ad_buf_str(&b));
        if (b.ptr)
            explicit_bzero(b.ptr, b.len);
        ad_buf_free(&b);
    }

    json_t *so = json_object();
    json_object_set_new(so, "include_usage", json_true());
    json_object_set_new(body, "stream", json_true());
    json_object_set_new(body, "stream_options", so);
    c->body = json_dumps(body, AD_JSON_COMPACT);
    if (!c->url[0] || !c->hdrs || !c->body) {
        fail(c, AD_EINTERNAL, "server_error");
        set_msg(c, "The model call could not be prepared.");
        return false;
    }
    c->body_len = strlen(c->body);
    return true;
}

ad_up_call *ad_upstream_call(ad_upstream *u, const ad_model *model, json_t *body,
                             const ad_up_handlers *h, void *ud)
{
    static const ad_cs_limits lim = {CS_MAX_EVENT, CS_MAX_TEXT, CS_MAX_ARGS};
    ad_up_call *c = ad_calloc(1, sizeof *c);
    c->u = u;
    c->h = *h;
    c->ud = ud;
    c->st = ST_NEW;
    c->t_start = now_ms();
    c->retry_after_ms = -1;
    ad_buf_init(&c->errbody, ERR_BODY_MAX);
    ad_buf_init(&c->held, HELD_MAX);
    c->cs = ad_cs_new(&lim, NULL, NULL);
    c->next = u->calls;
    if (u->calls)
        u->calls->prev = c;
    u->calls = c;
    if (!prepare(c, model, body))
        c->finish = true;
    json_decref(body);
    if (u->closing)
        c->cancelled = true;
    kick(u, c);
    return c;
}

void ad_upstream_cancel(ad_upstream *u, ad_up_call *c)
{
    if (!c || c->st == ST_DONE || c->cancelled)
        return;
    c->cancelled = true;
    kick(u, c);
}

void ad_upstream_pause(ad_upstream *u, ad_up_call *c)
{
    if (!c || c->st == ST_DONE || c->want_pause)
        return;
    c->want_pause = true;
    kick(u, c);
}

void ad_upstream_resume(ad_upstream *u, ad_up_call *c)
{
    if (!c || c->st == ST_DONE || !c->want_pause)
        return;
    c->want_pause = false;
    kick(u, c);
}

/* ---- GET /models ---- */

typedef struct list_ctx {
    ad_buf *out;
    size_t start;
    bool too_big;
} list_ctx;

static size_t list_write(char *p, size_t size, size_t nmemb, void *ud)
{
    list_ctx *lc = ud;
    size_t n = size * nmemb;
    if (lc->out->len - lc->start + n > LIST_MAX || ad_buf_add(lc->out, p, n)) {
        lc->too_big = true;
        return 0;
    }
    return n;
}

/* Aborts the transfer as soon as *abort becomes true. */
static int list_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_bool *abort_flag = ud;
    return abort_flag && atomic_load(abort_flag) ? 1 : 0;
}

ad_err ad_upstream_list_models(const ad_backend *be, ad_buf *out, const atomic_bool *abort_flag)
{
    pthread_once(&curl_once, curl_init_once);
    if (be->kind != AD_BACKEND_OPENAI)
        return AD_EINVAL;
    ad_err rc = AD_EIO;
    struct curl_slist *hdrs = NULL;
    list_ctx lc = {out, out->len, false};
    ad_buf b;
    ad_buf_init(&b, sizeof be->base_url + sizeof be->api_key + 64);
    CURL *e = curl_easy_init();
    if (!e)
        return AD_EINTERNAL;
    ad_buf_printf(&b, "%s/models", be->base_url);
    curl_easy_setopt(e, CURLOPT_URL, ad_buf_str(&b));
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (be->api_key[0]) {
        ad_buf_reset(&b);
        ad_buf_printf(&b, "Authorization: Bearer %s", be->api_key);
        hdrs = curl_slist_append(hdrs, ad_buf_str(&b));
        if (b.ptr)
            explicit_bzero(b.ptr, b.len);
    }
    if (!hdrs) {
        rc = AD_EINTERNAL;
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, list_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &lc);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)LIST_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, list_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)abort_flag);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     be->timeout_connect_ms > 0 && be->timeout_connect_ms < LIST_TIMEOUT_MS
                         ? be->timeout_connect_ms
                         : (long)LIST_TIMEOUT_MS);
    CURLcode res = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (lc.too_big)
        rc = AD_ETOOBIG;
    else if (res == CURLE_OK && status >= 200 && status <= 299)
        rc = AD_OK;
out:
    if (rc && out->len > lc.start) {
        out->len = lc.start;
        out->ptr[out->len] = '\0';
    }
    scrub_slist(hdrs);
    curl_slist_free_all(hdrs);
    ad_buf_free(&b);
    curl_easy_cleanup(e);
    return rc;
}
