/*
 * sse.c -- Server-Sent Events responses fed from the engine thread (see
 * sse.h).
 *
 * A stream starts as an ordinary libmicrohttpd response whose content
 * reader takes bytes from a queue. The first time that reader finds the
 * queue empty, the connection is suspended and the stream switches to
 * *direct* mode: from then on the producer writes each event straight to
 * the connection's socket itself, framed as an HTTP/1.1 chunk, with one
 * non-blocking sendmsg and no copy. libmicrohttpd's chunked state machine
 * only asks the reader for more once everything it had was sent, so at the
 * switch nothing of ours is left in its buffers and the byte order holds.
 *
 * Why: every libmicrohttpd resume takes the daemon's mutex and makes the
 * worker walk all of its suspended connections (0.9.75), so resuming once
 * per event costs O(open streams) per token, under a lock the engine's
 * loop waits for. In direct mode a token costs one system call on the
 * producer's thread, whatever the number of open streams.
 *
 * A write that does not complete (the client reads slowly) leaves the rest,
 * still framed, in the queue, and the stream is registered with the hub: one
 * thread with an epoll set that flushes queued streams when their sockets
 * become writable (level-triggered EPOLLOUT, only while bytes are queued),
 * and signals the producer's drain callback below the low-water mark. The
 * producer never writes while bytes are queued, so the queue keeps order.
 *
 * With offload (the default, --sse-hub-writes) the producer does not write
 * at all: it appends the framed chunk to the queue and, if the stream was
 * idle, puts it on the hub's ready list (waking the hub through an eventfd
 * only when it sleeps). The hub writes ready streams in order. The engine
 * loop is the one thread every token goes through, so taking the system
 * call (and the loopback TCP work under it) off that thread roughly halves
 * its cost per token (bench/RESULTS.md, 5,000 streams at 10 tokens/s).
 *
 * When the stream ends (ad_sse_close) and the queue is empty, or a write
 * fails (the client is gone), the connection is handed back: resumed once,
 * and the reader answers end-of-stream (libmicrohttpd writes the last chunk
 * and carries on with keep-alive) or an error (it closes the connection).
 * So a stream costs one suspend and one resume in all, not one per event.
 * The resume itself is made by the hub's resumer thread: it waits for the
 * daemon's mutex (held while a worker walks its suspended connections),
 * and when thousands of streams end together the hub, which writes every
 * other stream, must not wait with it.
 *
 * Lifetimes: the hub holds a reference to every stream registered with it
 * and to every stream on its ready list (dropped when it has been written;
 * the ready list skips streams no longer direct).
 * A stream whose response libmicrohttpd destroys while registered (only at
 * shutdown: a suspended connection is never closed otherwise) is removed
 * from the epoll set and put on the hub's dead list; the hub thread drops
 * those references only after finishing the events of its last epoll_wait,
 * so an event already returned for such a stream never sees freed memory.
 */
#include "http/sse.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/buf.h"

enum mode {
    MODE_MHD,    /* libmicrohttpd pulls bytes through the reader */
    MODE_DIRECT, /* the producer (or the hub) writes chunks to fd */
    MODE_BACK,   /* handed back: the reader ends the response */
};

struct ad_sse_hub {
    int epfd, evfd;
    pthread_t thread;
    pthread_mutex_t mu;          /* guards every field below but the threads and fds */
    ad_sse *dead;                /* streams removed from epfd, references still held */
    ad_sse *direct;              /* every stream in direct mode (no reference: MHD holds one) */
    ad_sse *ready, **ready_tail; /* streams with bytes for the hub to write */
    bool idle;                   /* the hub sleeps: a push must wake it */
    bool offload;                /* producers queue, the hub writes (see the top) */
    bool stopping;
    bool quiesced; /* no more direct mode: the daemon is stopping */
    /* Resumes are made by a thread of their own: MHD_resume_connection
     * waits for the daemon's mutex, which its worker holds while it walks
     * every suspended connection, and the hub must not wait for that. */
    pthread_t resumer;
    pthread_cond_t rcv;    /* resume list, rbusy, rstop changed */
    ad_sse *rq, **rq_tail; /* streams to resume (each holds a reference) */
    bool rbusy, rstop;
};

struct ad_sse {
    pthread_mutex_t mu;
    atomic_int refs;
    ad_buf q; /* pending bytes are q.ptr[off .. q.len); framed in direct mode */
    size_t off;
    enum mode mode;
    bool closed;     /* producer is done: end after the buffer */
    bool gone;       /* the response was destroyed (client gone or stream over) */
    bool failed;     /* a direct write failed: the client is gone */
    bool suspended;  /* MHD mode: the connection is suspended waiting for data */
    bool want_drain; /* producer asked to hear about the low-water mark */
    bool in_hub;     /* registered with hub->epfd (holds a reference) */
    bool queued;     /* on hub->ready (holds a reference) */
    ad_sse *ready_next;
    ad_sse *resume_next;
    int fd;          /* the connection's socket in direct mode */
    ad_sse_hub *hub; /* NULL: direct mode is off */
    ad_sse *dead_next;
    ad_sse *dnext, *dprev; /* hub->direct */
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
    s->fd = -1;
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

static size_t pending(const ad_sse *s)
{
    return s->q.len - s->off;
}

/* Called with mu held: the producer's drain callback when it asked to hear
 * of the low-water mark and the queue is below it (or the stream failed, so
 * it will never drain); the caller invokes it after unlocking. */
static void (*drain_due(ad_sse *s))(void *)
{
    if (!s->want_drain || (!s->failed && pending(s) >= AD_SSE_LOW_WATER))
        return NULL;
    s->want_drain = false;
    return s->drain;
}

/* Called with mu held after bytes were taken from the front of the queue. */
static void consumed(ad_sse *s)
{
    if (s->off == s->q.len) {
        ad_buf_reset(&s->q);
        s->off = 0;
    } else if (s->off > 64 * 1024 && s->off * 2 > s->q.len) {
        memmove(s->q.ptr, s->q.ptr + s->off, s->q.len - s->off);
        s->q.len -= s->off;
        s->off = 0;
    }
}

/* Called with mu held: true when need more bytes fit under the hard cap,
 * moving the pending bytes to the front first if that makes them fit. */
static bool room(ad_sse *s, size_t need)
{
    if (pending(s) + need > AD_SSE_HARD_CAP)
        return false;
    if (s->off && s->q.len + need > AD_SSE_HARD_CAP) {
        memmove(s->q.ptr, s->q.ptr + s->off, pending(s));
        s->q.len -= s->off;
        s->off = 0;
    }
    return true;
}

/* Called with mu held: the connection goes back to libmicrohttpd, whose
 * reader call then ends the response (with an error if failed). */
static void hand_back(ad_sse *s)
{
    ad_sse_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    if (s->dprev)
        s->dprev->dnext = s->dnext;
    else
        h->direct = s->dnext;
    if (s->dnext)
        s->dnext->dprev = s->dprev;
    s->dnext = s->dprev = NULL;
    if (s->conn) {     /* NULL: libmicrohttpd is destroying the response */
        ad_sse_ref(s); /* the resume list's reference */
        s->resume_next = NULL;
        *h->rq_tail = s;
        h->rq_tail = &s->resume_next;
        pthread_cond_broadcast(&h->rcv);
    }
    pthread_mutex_unlock(&h->mu);
    s->mode = MODE_BACK;
    s->fd = -1;
}

/* Called with mu held, in direct mode with the stream in the hub: removes
 * it. The caller drops the hub's reference after unlocking. */
static void hub_remove(ad_sse *s)
{
    epoll_ctl(s->hub->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->in_hub = false;
}

/* ---- libmicrohttpd side ---- */

/* Called with mu held, from the reader, with the queue empty: suspends the
 * connection and switches to direct mode when the hub is on and the
 * socket is known. */
static void park(ad_sse *s)
{
    s->suspended = true;
    MHD_suspend_connection(s->conn);
    if (!s->hub)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd < 0)
        return;
    ad_sse_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    if (!h->quiesced) {
        s->fd = ci->connect_fd;
        s->mode = MODE_DIRECT;
        s->dnext = h->direct;
        if (h->direct)
            h->direct->dprev = s;
        h->direct = s;
    }
    pthread_mutex_unlock(&h->mu);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    ad_sse *s = cls;
    (void)pos;
    void (*drain)(void *) = NULL;
    ssize_t n;
    pthread_mutex_lock(&s->mu);
    size_t avail = pending(s);
    if (s->mode == MODE_BACK) {
        /* Everything queued was written before the hand-back. */
        n = s->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    } else if (avail) {
        n = (ssize_t)(avail < max ? avail : max);
        memcpy(buf, s->q.ptr + s->off, (size_t)n);
        s->off += (size_t)n;
        consumed(s);
        drain = drain_due(s);
    } else if (s->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until the producer appends
         * (MHD mode) or for the rest of the stream (direct mode). */
        park(s);
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
    if (s->in_hub) {
        /* The hub's reference goes to its dead list (see the top). */
        ad_sse_hub *h = s->hub;
        hub_remove(s);
        pthread_mutex_lock(&h->mu);
        s->dead_next = h->dead;
        h->dead = s;
        pthread_mutex_unlock(&h->mu);
        uint64_t one = 1;
        if (write(h->evfd, &one, sizeof one) < 0) {
            /* The counter is only a wake-up; the list is drained anyway. */
        }
    }
    if (s->mode == MODE_DIRECT)
        hand_back(s); /* unlinks it; resuming a closing connection is harmless */
    s->mode = MODE_BACK;
    s->fd = -1;
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
    /* Direct mode frames events as HTTP/1.1 chunks: an HTTP/1.0 response
     * has no chunks (its body ends when the connection closes), so such a
     * client stays on libmicrohttpd's path, which sends bare bytes. */
    s->hub = req->http11 ? req->srv->sse_hub : NULL;
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

/* ---- producer side ---- */

/* Called with mu held in direct mode: a write failed, the client is gone.
 * Nothing is in the hub (the producer only writes with an empty queue). */
static void fail(ad_sse *s)
{
    s->failed = true;
    ad_buf_reset(&s->q);
    s->off = 0;
    hand_back(s);
}

/* Called with mu held in direct mode: sends iov[0..n) as one chunk, or
 * queues what the socket does not take. false: the queue is over the hard
 * cap (the caller cuts the client off). */
static bool direct_send(ad_sse *s, struct iovec *iov, int n, bool *need_hub)
{
    size_t total = 0;
    for (int i = 1; i < n - 1; i++)
        total += iov[i].iov_len;
    char head[24];
    int hl = snprintf(head, sizeof head, "%zx\r\n", total);
    iov[0].iov_base = head;
    iov[0].iov_len = (size_t)hl;
    iov[n - 1].iov_base = (void *)"\r\n";
    iov[n - 1].iov_len = 2;
    total += (size_t)hl + 2;
    size_t sent = 0;
    if (!pending(s)) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w;
        do
            w = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            fail(s);
            return true;
        }
        sent = w > 0 ? (size_t)w : 0;
        if (sent == total)
            return true;
    }
    if (!room(s, total - sent))
        return false;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        ad_buf_add(&s->q, (const char *)iov[i].iov_base + sent, len - sent);
        sent = 0;
    }
    if (!s->in_hub) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
        if (epoll_ctl(s->hub->epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0) {
            s->in_hub = true;
            *need_hub = true;
        } else {
            fail(s);
        }
    }
    return true;
}

static void push_ready(ad_sse *s);

/* Called with mu held in direct mode with offload: queues one chunk; a
 * stream not yet waiting for the hub is to be pushed on its ready list
 * (*push: the caller does it after unlocking, with the reference taken
 * here). */
static void offload_send(ad_sse *s, const char *const *parts, const size_t *lens, int n, bool *push)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i];
    char head[24];
    int hl = snprintf(head, sizeof head, "%zx\r\n", total);
    if (!room(s, (size_t)hl + total + 2)) {
        s->closed = true; /* past the hard cap: cut off after the queue */
        return;
    }
    ad_buf_add(&s->q, head, (size_t)hl);
    for (int i = 0; i < n; i++)
        ad_buf_add(&s->q, parts[i], lens[i]);
    ad_buf_add(&s->q, "\r\n", 2);
    if (!s->queued && !s->in_hub) {
        s->queued = true;
        ad_sse_ref(s); /* the ready list's reference */
        *push = true;
    }
}

/* Appends the concatenation of parts[0..n) (n <= 3) as one unit. */
static size_t append(ad_sse *s, const char *const *parts, const size_t *lens, int n, bool end)
{
    size_t waiting = 0;
    bool need_hub = false, need_ref = false;
    pthread_mutex_lock(&s->mu);
    if (!s->gone && !s->closed && !s->failed) {
        if (s->mode == MODE_DIRECT && s->hub->offload) {
            offload_send(s, parts, lens, n, &need_ref);
            if (end)
                s->closed = true;
            if (s->closed && !s->failed && !pending(s) && !s->queued && !s->in_hub)
                hand_back(s);
        } else if (s->mode == MODE_DIRECT) {
            struct iovec iov[5];
            for (int i = 0; i < n; i++) {
                iov[i + 1].iov_base = (void *)parts[i];
                iov[i + 1].iov_len = lens[i];
            }
            if (!direct_send(s, iov, n + 2, &need_hub))
                s->closed = true; /* past the hard cap: cut off after the queue */
            if (end)
                s->closed = true;
            if (s->closed && !s->failed && !pending(s) && s->mode == MODE_DIRECT)
                hand_back(s);
        } else {
            size_t total = 0;
            for (int i = 0; i < n; i++)
                total += lens[i];
            if (!room(s, total)) {
                /* The client stopped reading past the hard cap: cut it off
                 * by ending the stream; the run goes on. */
                s->closed = true;
            } else {
                for (int i = 0; i < n; i++)
                    ad_buf_add(&s->q, parts[i], lens[i]);
            }
            if (end)
                s->closed = true;
            if (s->suspended && s->mode == MODE_MHD && s->conn) {
                s->suspended = false;
                MHD_resume_connection(s->conn);
            }
        }
        now(&s->last);
        waiting = s->failed ? 0 : pending(s);
        if (waiting >= AD_SSE_HIGH_WATER)
            s->want_drain = true;
    }
    if (need_hub)
        ad_sse_ref(s); /* the hub's reference */
    pthread_mutex_unlock(&s->mu);
    if (need_ref)
        push_ready(s);
    return waiting;
}

size_t ad_sse_send(ad_sse *s, const char *event, const char *json, size_t len)
{
    char head[96];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", event);
    if (n < 0 || (size_t)n >= sizeof head)
        return 0;
    const char *parts[3] = {head, json, "\n\n"};
    size_t lens[3] = {(size_t)n, len, 2};
    return append(s, parts, lens, 3, false);
}

void ad_sse_heartbeat(ad_sse *s, long idle_ms)
{
    struct timespec t;
    now(&t);
    pthread_mutex_lock(&s->mu);
    long ms = (long)(t.tv_sec - s->last.tv_sec) * 1000 + (t.tv_nsec - s->last.tv_nsec) / 1000000;
    bool due = ms >= idle_ms && !s->gone && !s->closed && !s->failed;
    pthread_mutex_unlock(&s->mu);
    if (due) {
        const char *parts[1] = {": keep-alive\n\n"};
        size_t lens[1] = {14};
        append(s, parts, lens, 1, false);
    }
}

size_t ad_sse_waiting(ad_sse *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->failed ? 0 : pending(s);
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool ad_sse_direct(ad_sse *s)
{
    pthread_mutex_lock(&s->mu);
    bool d = s->mode == MODE_DIRECT;
    pthread_mutex_unlock(&s->mu);
    return d;
}

bool ad_sse_attached(ad_sse *s)
{
    pthread_mutex_lock(&s->mu);
    bool a = !s->gone && !s->failed;
    pthread_mutex_unlock(&s->mu);
    return a;
}

void ad_sse_close(ad_sse *s)
{
    static const char done[] = "event: done\ndata: [DONE]\n\n";
    const char *parts[1] = {done};
    size_t lens[1] = {sizeof done - 1};
    append(s, parts, lens, 1, true);
}

/* ---- the hub ---- */

/* Puts s (queued, referenced) on the hub's ready list, waking the hub if
 * it sleeps. Called without s->mu. */
static void push_ready(ad_sse *s)
{
    ad_sse_hub *h = s->hub;
    bool wake = false;
    pthread_mutex_lock(&h->mu);
    s->ready_next = NULL;
    *h->ready_tail = s;
    h->ready_tail = &s->ready_next;
    if (h->idle) {
        h->idle = false;
        wake = true;
    }
    pthread_mutex_unlock(&h->mu);
    if (wake) {
        uint64_t one = 1;
        if (write(h->evfd, &one, sizeof one) < 0) {
            /* A full counter still wakes the hub. */
        }
    }
}

/* Called with mu held: writes what the socket takes. false: it is broken. */
static bool flush(ad_sse *s)
{
    while (pending(s)) {
        ssize_t w = send(s->fd, s->q.ptr + s->off, pending(s), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            s->off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else
            return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

/* Ends a flush: unlocks s, then tells the producer it may go on (drain)
 * and drops the reference the flush held (release). */
static void unlock_then(ad_sse *s, void (*drain)(void *), bool release)
{
    pthread_mutex_unlock(&s->mu);
    if (drain)
        drain(s->ud);
    if (release)
        ad_sse_unref(s);
}

/* A stream from the ready list: write its queue; what the socket does not
 * take waits for EPOLLOUT. */
static void hub_ready(ad_sse *s)
{
    void (*drain)(void *) = NULL;
    bool release = true;
    pthread_mutex_lock(&s->mu);
    s->queued = false;
    if (s->mode == MODE_DIRECT && !s->in_hub) {
        bool ok = flush(s);
        consumed(s);
        if (!ok) {
            fail(s);
        } else if (pending(s)) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
            if (epoll_ctl(s->hub->epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0) {
                s->in_hub = true;
                release = false; /* the reference moves to the epoll set */
            } else {
                fail(s);
            }
        } else if (s->closed) {
            hand_back(s);
        }
        drain = drain_due(s);
    }
    unlock_then(s, drain, release);
}

/* Takes the ready list; NULL (and the hub marked idle) when it is empty. */
static ad_sse *take_ready(ad_sse_hub *h)
{
    pthread_mutex_lock(&h->mu);
    ad_sse *list = h->ready;
    h->ready = NULL;
    h->ready_tail = &h->ready;
    if (!list)
        h->idle = true;
    pthread_mutex_unlock(&h->mu);
    return list;
}

/* One stream's socket is writable (or broken): flush its queue. */
static void hub_flush(ad_sse *s)
{
    void (*drain)(void *) = NULL;
    bool release = false;
    pthread_mutex_lock(&s->mu);
    if (!s->in_hub) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    bool broken = !flush(s);
    consumed(s);
    if (broken || !pending(s)) {
        hub_remove(s);
        release = true;
        if (broken) {
            fail(s);
        } else if (s->closed) {
            hand_back(s);
        }
    }
    drain = drain_due(s);
    unlock_then(s, drain, release);
}

static void hub_reap(ad_sse_hub *h)
{
    pthread_mutex_lock(&h->mu);
    ad_sse *d = h->dead;
    h->dead = NULL;
    pthread_mutex_unlock(&h->mu);
    while (d) {
        ad_sse *next = d->dead_next;
        ad_sse_unref(d);
        d = next;
    }
}

static void *resumer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-sse-resume");
    ad_sse_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->rq && !h->rstop)
            pthread_cond_wait(&h->rcv, &h->mu);
        if (!h->rq) /* stopping with nothing left */
            break;
        ad_sse *s = h->rq;
        h->rq = s->resume_next;
        if (!h->rq)
            h->rq_tail = &h->rq;
        h->rbusy = true;
        pthread_mutex_unlock(&h->mu);
        pthread_mutex_lock(&s->mu);
        struct MHD_Connection *conn = s->conn;
        pthread_mutex_unlock(&s->mu);
        /* Still suspended (only this resume ends that), so conn is valid. */
        if (conn)
            MHD_resume_connection(conn);
        ad_sse_unref(s);
        pthread_mutex_lock(&h->mu);
        h->rbusy = false;
        pthread_cond_broadcast(&h->rcv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void *hub_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-sse-hub");
    ad_sse_hub *h = arg;
    struct epoll_event ev[256];
    for (;;) {
        int n = epoll_wait(h->epfd, ev, 256, -1);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == h) {
                uint64_t v;
                if (read(h->evfd, &v, sizeof v) < 0) {
                    /* Already drained by an earlier wake-up. */
                }
                continue;
            }
            hub_flush(ev[i].data.ptr);
        }
        for (ad_sse *r; (r = take_ready(h));)
            while (r) {
                ad_sse *next = r->ready_next;
                hub_ready(r);
                r = next;
            }
        hub_reap(h);
        pthread_mutex_lock(&h->mu);
        bool stop = h->stopping;
        pthread_mutex_unlock(&h->mu);
        if (stop)
            return NULL;
    }
}

ad_err ad_sse_hub_start(ad_sse_hub **out, bool offload)
{
    ad_sse_hub *h = ad_calloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    h->ready_tail = &h->ready;
    h->rq_tail = &h->rq;
    pthread_cond_init(&h->rcv, NULL);
    h->idle = true;
    h->offload = offload;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = h};
    bool hub_thread = false;
    if (h->epfd < 0 || h->evfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) ||
        !(hub_thread = !pthread_create(&h->thread, NULL, hub_main, h)) ||
        pthread_create(&h->resumer, NULL, resumer_main, h)) {
        if (hub_thread) {
            pthread_mutex_lock(&h->mu);
            h->stopping = true;
            pthread_mutex_unlock(&h->mu);
            uint64_t one = 1;
            if (write(h->evfd, &one, sizeof one) < 0) {
                /* A fresh counter takes one write. */
            }
            pthread_join(h->thread, NULL);
        }
        if (h->epfd >= 0)
            close(h->epfd);
        if (h->evfd >= 0)
            close(h->evfd);
        pthread_cond_destroy(&h->rcv);
        pthread_mutex_destroy(&h->mu);
        ad_free(h);
        return AD_EIO;
    }
    *out = h;
    return AD_OK;
}

/* How long quiesce goes on writing what streams still have queued, in
 * all: the last events of runs the engine ended at shutdown are there. */
#define QUIESCE_FLUSH_MS 2000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called with mu held, in direct mode: writes what is queued, waiting for
 * the socket until deadline. True when nothing is left. */
static bool flush_until(ad_sse *s, int64_t deadline)
{
    while (pending(s)) {
        if (!flush(s))
            return false; /* the client is gone */
        int64_t left = deadline - mono_ms();
        if (!pending(s) || left <= 0)
            break;
        struct pollfd p = {.fd = s->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return false;
    }
    return !pending(s);
}

void ad_sse_hub_quiesce(ad_sse_hub *h)
{
    if (!h)
        return;
    int64_t deadline = mono_ms() + QUIESCE_FLUSH_MS;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        h->quiesced = true;
        ad_sse *s = h->direct;
        if (s)
            ad_sse_ref(s); /* libmicrohttpd's reference keeps it alive until here */
        if (!s) {
            /* Every hand-back is queued: wait until each is resumed, since
             * libmicrohttpd stops only without suspended connections. */
            while (h->rq || h->rbusy)
                pthread_cond_wait(&h->rcv, &h->mu);
            pthread_mutex_unlock(&h->mu);
            return;
        }
        pthread_mutex_unlock(&h->mu);
        bool release = false;
        pthread_mutex_lock(&s->mu);
        if (s->mode == MODE_DIRECT) {
            if (s->in_hub) {
                hub_remove(s);
                release = true;
            }
            /* What is queued is written first (the hub may not have got to
             * a run's last events), for a while. Then unsent bytes or a
             * stream still open: the client cannot get a complete response
             * any more, so the connection is closed. */
            if (!s->failed && !flush_until(s, deadline))
                s->failed = true;
            if (!s->closed)
                s->failed = true;
            ad_buf_reset(&s->q);
            s->off = 0;
            hand_back(s);
        }
        pthread_mutex_unlock(&s->mu);
        if (release)
            ad_sse_unref(s);
        ad_sse_unref(s);
    }
}

void ad_sse_hub_stop(ad_sse_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    uint64_t one = 1;
    if (write(h->evfd, &one, sizeof one) < 0) {
        /* The counter cannot overflow from one write; nothing to do. */
    }
    pthread_join(h->thread, NULL);
    pthread_mutex_lock(&h->mu);
    h->rstop = true;
    pthread_cond_broadcast(&h->rcv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->resumer, NULL); /* it empties the list before it stops */
    for (ad_sse *r; (r = take_ready(h));)
        while (r) {
            ad_sse *next = r->ready_next;
            hub_ready(r); /* every stream is handed back by now: this releases it */
            r = next;
        }
    hub_reap(h);
    close(h->epfd);
    close(h->evfd);
    pthread_cond_destroy(&h->rcv);
    pthread_mutex_destroy(&h->mu);
    ad_free(h);
}
