/*
 * test_http_sse.c -- unit tests for run event streams (src/http/sse.c).
 *
 * A real libmicrohttpd daemon, configured like the server's (epoll, thread
 * pool, suspend/resume), answers every request with an ad_sse stream; the
 * test thread is the producer, and a raw TCP client reads the response
 * and decodes its chunked body byte by byte. The cases check what a client
 * can observe: every event arrives once, in order, correctly framed, both
 * before and after the stream switches to direct writes; the response ends
 * with the last chunk and the connection stays usable (keep-alive); a
 * client that does not read gets its bytes queued, the drain callback
 * fires once it reads again, and nothing is lost; a client that goes away
 * is noticed (ad_sse_attached) without crashing; and with the hub off the
 * classic resume-per-event path produces the same bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/request.h"
#include "http/sse.h"
#include "util/alloc.h"
#include "util/buf.h"

typedef struct fixture {
    struct MHD_Daemon *d;
    ad_server srv;
    unsigned short port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ad_sse *latest; /* the producer reference of the newest stream */
    atomic_int drains;
} fixture;

static void on_drain(void *ud)
{
    fixture *f = ud;
    atomic_fetch_add(&f->drains, 1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    fixture *f = cls;
    (void)url, (void)method, (void)upload, (void)upload_size;
    if (!*con_cls) { /* headers only: come back for the body */
        *con_cls = f;
        return MHD_YES;
    }
    ad_req req;
    memset(&req, 0, sizeof req);
    req.srv = &f->srv;
    req.conn = conn;
    req.http11 = !strcmp(version, MHD_HTTP_VERSION_1_1); /* as the front sets it */
    ad_sse *s = ad_sse_new(on_drain, f);
    ad_sse_send(s, "thread.run.created", "{\"n\":0}", 7);
    ad_sse_respond(&req, s);
    struct MHD_Response *r = ad_sse_response(s);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    pthread_mutex_lock(&f->mu);
    f->latest = s; /* the test takes over the producer reference */
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return ret;
}

/* mode: 0 classic (no hub), 1 direct with inline writes, 2 hub writes. */
static fixture *start_timeout(int mode, unsigned timeout)
{
    fixture *f = ad_calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (mode)
        assert_int_equal(ad_sse_hub_start(&f->srv.sse_hub, mode == 2), AD_OK);
    f->d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
                         0, NULL, NULL, handler, f, MHD_OPTION_THREAD_POOL_SIZE, 2u,
                         MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_END);
    assert_non_null(f->d);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = di->port;
    return f;
}

static fixture *start(int mode)
{
    return start_timeout(mode, 30);
}

static void stop(fixture *f)
{
    MHD_stop_daemon(f->d);
    ad_sse_hub_stop(f->srv.sse_hub);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    ad_free(f);
}

static int client(fixture *f, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends one request and waits for the handler's stream. */
static ad_sse *request(fixture *f, int fd)
{
    static const char req[] = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n";
    pthread_mutex_lock(&f->mu);
    f->latest = NULL;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    pthread_mutex_lock(&f->mu);
    while (!f->latest)
        pthread_cond_wait(&f->cv, &f->mu);
    ad_sse *s = f->latest;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* A byte-at-a-time reader of one HTTP response with a chunked body. */
typedef struct rd {
    int fd;
    char buf[65536];
    size_t len, pos;
} rd;

static int rd_byte(rd *r)
{
    if (r->pos == r->len) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return -1;
        ssize_t n = recv(r->fd, r->buf, sizeof r->buf, 0);
        if (n <= 0)
            return -1;
        r->len = (size_t)n;
        r->pos = 0;
    }
    return (unsigned char)r->buf[r->pos++];
}

static bool rd_line(rd *r, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        int c = rd_byte(r);
        if (c < 0)
            return false;
        if (c == '\n')
            break;
        if (c != '\r' && n + 1 < cap)
            out[n++] = (char)c;
    }
    out[n] = '\0';
    return true;
}

/* Reads the head (status 200, chunked) and then body chunks into body,
 * until the last chunk (returns true) or want bytes are in body (false). */
static void rd_head(rd *r)
{
    char line[1024];
    assert_true(rd_line(r, line, sizeof line));
    assert_string_equal(line, "HTTP/1.1 200 OK");
    bool chunked = false;
    while (rd_line(r, line, sizeof line) && line[0])
        if (strcasestr(line, "transfer-encoding: chunked"))
            chunked = true;
    assert_true(chunked);
}

static bool rd_chunks(rd *r, ad_buf *body, size_t want)
{
    char line[64];
    while (!want || body->len < want) {
        assert_true(rd_line(r, line, sizeof line));
        unsigned long n = strtoul(line, NULL, 16);
        if (n == 0) {
            assert_true(rd_line(r, line, sizeof line)); /* the empty trailer line */
            assert_string_equal(line, "");
            return true;
        }
        for (unsigned long i = 0; i < n; i++) {
            int c = rd_byte(r);
            assert_true(c >= 0);
            char ch = (char)c;
            assert_int_equal(ad_buf_add(body, &ch, 1), AD_OK);
        }
        assert_true(rd_line(r, line, sizeof line));
        assert_string_equal(line, "");
    }
    return false;
}

static void wait_direct(ad_sse *s, bool expect)
{
    for (int i = 0; i < 2000 && ad_sse_direct(s) != expect; i++)
        usleep(1000);
    assert_int_equal(ad_sse_direct(s), expect);
}

static void expect_events(const ad_buf *body, int from, int to, bool done)
{
    ad_buf want;
    ad_buf_init(&want, 64u << 20);
    for (int i = from; i < to; i++)
        ad_buf_printf(&want, "event: %s\ndata: {\"n\":%d}\n\n",
                      i ? "thread.message.delta" : "thread.run.created", i);
    if (done)
        ad_buf_addstr(&want, "event: done\ndata: [DONE]\n\n");
    assert_int_equal(body->len, want.len);
    assert_memory_equal(body->ptr, want.ptr, want.len);
    ad_buf_free(&want);
}

static void send_n(ad_sse *s, int from, int to)
{
    char json[64];
    for (int i = from; i < to; i++) {
        int n = snprintf(json, sizeof json, "{\"n\":%d}", i);
        ad_sse_send(s, "thread.message.delta", json, (size_t)n);
    }
}

/* Two streams one after the other on one keep-alive connection. */
static void stream_and_reuse(int mode)
{
    bool direct = mode != 0;
    fixture *f = start(mode);
    int fd = client(f, 0);
    rd r = {.fd = fd};
    for (int round = 0; round < 2; round++) {
        ad_sse *s = request(f, fd);
        rd_head(&r);
        ad_buf body;
        ad_buf_init(&body, 1u << 20);
        const size_t first = strlen("event: thread.run.created\ndata: {\"n\":0}\n\n");
        assert_false(rd_chunks(&r, &body, first));
        /* Queue drained: with the hub, the stream now writes directly. */
        wait_direct(s, direct);
        send_n(s, 1, 200);
        assert_true(ad_sse_attached(s));
        ad_sse_close(s);
        assert_true(rd_chunks(&r, &body, 0));
        expect_events(&body, 0, 200, true);
        ad_buf_free(&body);
        ad_sse_unref(s);
    }
    close(fd);
    stop(f);
}

static void test_direct_stream(void **state)
{
    (void)state;
    stream_and_reuse(1);
}

static void test_hub_stream(void **state)
{
    (void)state;
    stream_and_reuse(2);
}

static void test_classic_stream(void **state)
{
    (void)state;
    stream_and_reuse(0);
}

/* A client that does not read: bytes queue up past the high-water mark,
 * the hub flushes them once it reads, drain fires, nothing is lost. */
static void slow_reader(int mode)
{
    fixture *f = start(mode);
    int fd = client(f, 4096);
    rd r = {.fd = fd};
    ad_sse *s = request(f, fd);
    rd_head(&r);
    ad_buf body;
    ad_buf_init(&body, 64u << 20);
    assert_false(rd_chunks(&r, &body, strlen("event: thread.run.created\ndata: {\"n\":0}\n\n")));
    wait_direct(s, true);
    int n = 1;
    size_t waiting = 0;
    while (waiting < AD_SSE_HIGH_WATER && n < 200000) {
        char json[64];
        int len = snprintf(json, sizeof json, "{\"n\":%d}", n++);
        waiting = ad_sse_send(s, "thread.message.delta", json, (size_t)len);
    }
    assert_true(waiting >= AD_SSE_HIGH_WATER);
    assert_int_equal(atomic_load(&f->drains), 0);
    ad_sse_close(s);
    assert_true(rd_chunks(&r, &body, 0));
    expect_events(&body, 0, n, true);
    assert_int_equal(atomic_load(&f->drains), 1);
    assert_int_equal(ad_sse_waiting(s), 0);
    ad_buf_free(&body);
    ad_sse_unref(s);
    close(fd);
    stop(f);
}

/* The client hangs up mid-stream: writes fail, the stream reports the
 * client gone, later appends are dropped, and nothing leaks or crashes. */
static void client_gone(int mode)
{
    fixture *f = start(mode);
    int fd = client(f, 0);
    rd r = {.fd = fd};
    ad_sse *s = request(f, fd);
    rd_head(&r);
    ad_buf body;
    ad_buf_init(&body, 1u << 20);
    assert_false(rd_chunks(&r, &body, strlen("event: thread.run.created\ndata: {\"n\":0}\n\n")));
    wait_direct(s, true);
    close(fd);
    int i = 1;
    for (; i < 5000 && ad_sse_attached(s); i++) {
        send_n(s, i, i + 1);
        usleep(200);
    }
    assert_false(ad_sse_attached(s));
    assert_int_equal(ad_sse_send(s, "thread.message.delta", "{}", 2), 0);
    ad_sse_close(s);
    ad_buf_free(&body);
    ad_sse_unref(s);
    stop(f);
}

/* Shutdown with a stream in direct mode and bytes queued, closed by its
 * producer or not: libmicrohttpd refuses to stop with suspended
 * connections, so quiesce must hand every one back. */
static void stop_with_stream(int mode, bool closed)
{
    fixture *f = start(mode);
    int fd = client(f, 4096);
    rd r = {.fd = fd};
    ad_sse *s = request(f, fd);
    rd_head(&r);
    ad_buf body;
    ad_buf_init(&body, 1u << 20);
    assert_false(rd_chunks(&r, &body, strlen("event: thread.run.created\ndata: {\"n\":0}\n\n")));
    wait_direct(s, true);
    /* More than the socket buffers take: some bytes queue. */
    for (int i = 1; i < 400000 && !ad_sse_waiting(s); i++)
        send_n(s, i, i + 1);
    assert_true(ad_sse_waiting(s) > 0);
    if (closed)
        ad_sse_close(s); /* what the engine does before the front stops */
    ad_sse_hub_quiesce(f->srv.sse_hub);
    MHD_stop_daemon(f->d);
    f->d = NULL;
    assert_false(ad_sse_attached(s));
    ad_sse_close(s);
    ad_sse_unref(s);
    ad_sse_hub_stop(f->srv.sse_hub);
    f->srv.sse_hub = NULL;
    ad_buf_free(&body);
    close(fd);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    ad_free(f);
}

/* A direct stream that lasts longer than the connection timeout still
 * ends properly: libmicrohttpd does not time out a suspended connection
 * and restarts the timer on resume. */
static void test_longer_than_timeout(void **state)
{
    (void)state;
    for (int mode = 1; mode <= 2; mode++) {
        fixture *f = start_timeout(mode, 1);
        int fd = client(f, 0);
        rd r = {.fd = fd};
        ad_sse *s = request(f, fd);
        rd_head(&r);
        ad_buf body;
        ad_buf_init(&body, 1u << 20);
        assert_false(
            rd_chunks(&r, &body, strlen("event: thread.run.created\ndata: {\"n\":0}\n\n")));
        wait_direct(s, true);
        for (int i = 1; i < 6; i++) {
            usleep(500 * 1000);
            send_n(s, i, i + 1);
        }
        ad_sse_close(s);
        assert_true(rd_chunks(&r, &body, 0));
        expect_events(&body, 0, 6, true);
        ad_buf_free(&body);
        ad_sse_unref(s);
        close(fd);
        stop(f);
    }
}

static void test_slow_reader(void **state)
{
    (void)state;
    slow_reader(1);
    slow_reader(2);
}

static void test_client_gone(void **state)
{
    (void)state;
    client_gone(1);
    client_gone(2);
}

static void test_stop_with_open_stream(void **state)
{
    (void)state;
    stop_with_stream(1, false);
    stop_with_stream(2, false);
}

static void test_stop_with_closed_stream(void **state)
{
    (void)state;
    stop_with_stream(1, true);
    stop_with_stream(2, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_stream),
        cmocka_unit_test(test_hub_stream),
        cmocka_unit_test(test_classic_stream),
        cmocka_unit_test(test_longer_than_timeout),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_stop_with_open_stream),
        cmocka_unit_test(test_stop_with_closed_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
