/*
 * sse.c -- Server-Sent Events responses fed from the engine thread (see
 * sse.h). The buffer is a simple byte queue: append at the end, consume from
 * a read offset, compact when the consumed prefix is large.
 */
#include "http/sse.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/buf.h"

struct ad_sse {
    pthread_mutex_t mu;
    atomic_int refs;
    ad_buf q; /* pending bytes are q.ptr[off .. q.len) */
    size_t off;
    bool closed;     /* producer is done: end after the buffer */
    bool gone;       /* the response was destroyed (client gone or stream over) */
    bool suspended;  /* the connection is suspended waiting for data */
    bool want_drain; /* producer asked to hear about the low-water mark */
    struct MHD_Connection *conn;
    struct timespec last;
    void (*drain)(void *ud);
    void *ud;
};

static void now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

ad_sse *ad_sse_new(void (*drain)(void *ud), void *ud)
{
    ad_sse *s = ad_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->refs, 1);
    ad_buf_init(&s->q, AD_SSE_HARD_CAP);
    s->drain = drain;
    s->ud = ud;
    now(&s->last);
    return s;
}

void ad_sse_ref(ad_sse *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void ad_sse_unref(ad_sse *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    ad_buf_free(&s->q);
    pthread_mutex_destroy(&s->mu);
    ad_free(s);
}

/* Called with mu held: wakes the connection if it sleeps. */
static void wake(ad_sse *s)
{
    if (s->suspended && s->conn) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    ad_sse *s = cls;
    (void)pos;
    void (*drain)(void *) = NULL;
    ssize_t n;
    pthread_mutex_lock(&s->mu);
    size_t avail = s->q.len - s->off;
    if (avail) {
        n = (ssize_t)(avail < max ? avail : max);
        memcpy(buf, s->q.ptr + s->off, (size_t)n);
        s->off += (size_t)n;
        if (s->off == s->q.len) {
            ad_buf_reset(&s->q);
            s->off = 0;
        } else if (s->off > 64 * 1024 && s->off * 2 > s->q.len) {
            memmove(s->q.ptr, s->q.ptr + s->off, s->q.len - s->off);
            s->q.len -= s->off;
            s->off = 0;
        }
        if (s->want_drain && s->q.len - s->off < AD_SSE_LOW_WATER) {
            s->want_drain = false;
            drain = s->drain;
        }
    } else if (s->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until the producer appends. */
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (drain)
        drain(s->ud);
    return n;
}

static void reader_free(void *cls)
{
    ad_sse *s = cls;
    pthread_mutex_lock(&s->mu);
    s->gone = true;
    s->conn = NULL;
    ad_buf_free(&s->q);
    s->off = 0;
    pthread_mutex_unlock(&s->mu);
    ad_sse_unref(s);
}

void ad_sse_respond(ad_req *req, ad_sse *s)
{
    ad_sse_ref(s);
    pthread_mutex_lock(&s->mu);
    s->conn = req->conn;
    pthread_mutex_unlock(&s->mu);
    req->sse = s;
    req->status = 200;
    req->ctype = "text/event-stream";
    req->responded = true;
}

/* Used by the HTTP front to build the response (see server.c). The block
 * size is allocated with every response and a stream lives as long as its
 * run: events are small (a delta is ~200 bytes) and a larger one just takes
 * several reader calls, so 4 KiB rather than 16 KiB (bench/runs.sh measured
 * 4 KiB less RSS per active streaming run at 1,000 streams). */
#define BLOCK_SIZE (4 * 1024)
struct MHD_Response *ad_sse_response(ad_sse *s)
{
    return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK_SIZE, reader, s, reader_free);
}

static size_t append(ad_sse *s, const char *a, size_t alen, const char *b, size_t blen,
                     const char *c, size_t clen)
{
    size_t waiting = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->gone && !s->closed) {
        if (ad_buf_add(&s->q, a, alen) || ad_buf_add(&s->q, b, blen) ||
            ad_buf_add(&s->q, c, clen)) {
            /* The client stopped reading past the hard cap: cut it off by
             * ending the stream; the run goes on. */
            s->closed = true;
        }
        now(&s->last);
        waiting = s->q.len - s->off;
        if (waiting >= AD_SSE_HIGH_WATER)
            s->want_drain = true;
        wake(s);
    }
    pthread_mutex_unlock(&s->mu);
    return waiting;
}

size_t ad_sse_send(ad_sse *s, const char *event, const char *json, size_t len)
{
    char head[96];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", event);
    if (n < 0 || (size_t)n >= sizeof head)
        return 0;
    return append(s, head, (size_t)n, json, len, "\n\n", 2);
}

void ad_sse_heartbeat(ad_sse *s, long idle_ms)
{
    struct timespec t;
    now(&t);
    pthread_mutex_lock(&s->mu);
    long ms = (long)(t.tv_sec - s->last.tv_sec) * 1000 + (t.tv_nsec - s->last.tv_nsec) / 1000000;
    bool due = ms >= idle_ms && !s->gone && !s->closed;
    pthread_mutex_unlock(&s->mu);
    if (due)
        append(s, ": keep-alive\n\n", 14, "", 0, "", 0);
}

size_t ad_sse_waiting(ad_sse *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->q.len - s->off;
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool ad_sse_attached(ad_sse *s)
{
    pthread_mutex_lock(&s->mu);
    bool a = !s->gone;
    pthread_mutex_unlock(&s->mu);
    return a;
}

void ad_sse_close(ad_sse *s)
{
    static const char done[] = "event: done\ndata: [DONE]\n\n";
    pthread_mutex_lock(&s->mu);
    if (!s->gone && !s->closed) {
        if (ad_buf_add(&s->q, done, sizeof done - 1) == AD_OK)
            now(&s->last);
        s->closed = true;
        wake(s);
    }
    pthread_mutex_unlock(&s->mu);
}
