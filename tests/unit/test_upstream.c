/* test_upstream.c -- the upstream loop against a tiny HTTP/1.1 server run
 * inside the test (127.0.0.1, port 0, a thread per connection): streaming
 * text and tool calls, retries (429 with Retry-After, 5xx, connection
 * refused with back-off), error mapping (invalid_prompt, server_error, no
 * key in messages), idle timeout, a stream cut after tokens were relayed,
 * the request shape (openai and azure), cancel (the server sees the close),
 * pause/resume, posted work and timers in order, and ad_upstream_free with
 * calls in flight. Synchronisation uses condition variables; the only
 * waits on the clock are the timeouts and back-offs under test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "run/upstream.h"

/* ---- the test server ---- */

typedef enum {
    B_TEXT,        /* 200, SSE "Hello" + usage + [DONE] */
    B_TOOLS,       /* 200, SSE with one tool call in pieces */
    B_429_THEN_OK, /* first request 429 Retry-After: 0, then B_TEXT */
    B_429,         /* always 429, Retry-After: 0 */
    B_500,         /* always 500 with retry-after-ms: 5 */
    B_500_SLOW,    /* always 500, no retry header: exponential back-off */
    B_500_KEY,     /* 500 whose message quotes the API key */
    B_401,         /* 401 */
    B_400_CTX,     /* 400 context_length_exceeded */
    B_400_OTHER,   /* 400 unrelated */
    B_STALL,       /* 200 headers, then nothing until the client closes */
    B_CLOSE_MID,   /* 200, two text events, then close */
    B_HOLD,        /* 200, one text event, then wait for the client to close */
    B_TRICKLE,     /* 200, ten text events 20 ms apart */
    B_BURST,       /* 200, forty text events in one write */
    B_STREAM_ERR,  /* 200, an error event before any token */
    B_MODELS       /* GET /models list */
} behaviour;

#define MAX_CONNS 32
#define REQ_MAX   65536

typedef struct srv {
    int lfd;
    unsigned short port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    behaviour beh;
    int nreq;          /* requests fully read */
    int closes;        /* held connections that saw the client close */
    char req[REQ_MAX]; /* the last request: head and body */
    size_t req_len;
    pthread_t conns[MAX_CONNS];
    int nconns;
} srv;

typedef struct conn {
    srv *s;
    int fd;
} conn;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to 5 s) for the client to close; counts it. */
static void wait_close(conn *c)
{
    char b[256];
    for (int i = 0; i < 50; i++) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t r = recv(c->fd, b, sizeof b, 0);
            if (r <= 0) {
                pthread_mutex_lock(&c->s->mu);
                c->s->closes++;
                pthread_cond_broadcast(&c->s->cv);
                pthread_mutex_unlock(&c->s->mu);
                return;
            }
        }
    }
}

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
#define CHUNK(delta, fin)                                                                          \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"up-model\","    \
    "\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" fin "}]}\n\n"
#define ROLE      CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
#define TEXT(t)   CHUNK("{\"content\":\"" t "\"}", "null")
#define FINISH(r) CHUNK("{}", "\"" r "\"")
#define USAGE                                                                                      \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"            \
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n"
#define DONE "data: [DONE]\n\n"

static void send_json(int fd, const char *status, const char *extra, const char *body)
{
    char head[512];
    snprintf(head, sizeof head,
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
             "Connection: close\r\n\r\n",
             status, strlen(body), extra);
    send_str(fd, head);
    send_str(fd, body);
}

static void behave(conn *c, behaviour b, int reqno)
{
    int fd = c->fd;
    switch (b) {
    case B_429_THEN_OK:
        if (reqno == 0) {
            send_json(fd, "429 Too Many Requests", "Retry-After: 0\r\n",
                      "{\"error\":{\"message\":\"Rate limit reached\",\"code\":"
                      "\"rate_limit_exceeded\"}}");
            return;
        }
        /* fall through */
    case B_TEXT:
        send_str(fd, SSE_HEAD ROLE TEXT("Hel") TEXT("lo") FINISH("stop") USAGE DONE);
        return;
    case B_TOOLS:
        send_str(fd, SSE_HEAD CHUNK(
                         "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
                         "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                         "\"get_weather\",\"arguments\":\"\"}}]}",
                         "null") CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":"
                                       "{\"arguments\":\"{\\\"city\\\":\"}}]}",
                                       "null") CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":"
                                                     "{\"arguments\":\"\\\"Paris\\\"}\"}}]}",
                                                     "null") FINISH("tool_calls") USAGE DONE);
        return;
    case B_429:
        send_json(fd, "429 Too Many Requests", "Retry-After: 0\r\n",
                  "{\"error\":{\"message\":\"Slow down\",\"code\":\"rate_limit_exceeded\"}}");
        return;
    case B_500:
        send_json(fd, "500 Internal Server Error", "retry-after-ms: 5\r\n",
                  "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
        return;
    case B_500_SLOW:
        send_json(fd, "500 Internal Server Error", "", "{\"error\":{\"message\":\"boom\"}}");
        return;
    case B_500_KEY:
        send_json(fd, "500 Internal Server Error", "retry-after-ms: 5\r\n",
                  "{\"error\":{\"message\":\"bad key sk-test-key-123 here\"}}");
        return;
    case B_401:
        send_json(fd, "401 Unauthorized", "",
                  "{\"error\":{\"message\":\"Incorrect API key provided: sk-test-key-123\"}}");
        return;
    case B_400_CTX:
        send_json(fd, "400 Bad Request", "",
                  "{\"error\":{\"message\":\"This model's maximum context length is 128000 "
                  "tokens. However, your messages resulted in 130000 tokens.\",\"type\":"
                  "\"invalid_request_error\",\"param\":\"messages\",\"code\":"
                  "\"context_length_exceeded\"}}");
        return;
    case B_400_OTHER:
        send_json(fd, "400 Bad Request", "",
                  "{\"error\":{\"message\":\"Invalid value for 'temperature'.\"}}");
        return;
    case B_STALL:
        send_str(fd, SSE_HEAD);
        wait_close(c);
        return;
    case B_CLOSE_MID:
        send_str(fd, SSE_HEAD ROLE TEXT("Hel") TEXT("lo"));
        return;
    case B_HOLD:
        send_str(fd, SSE_HEAD ROLE TEXT("Hel"));
        wait_close(c);
        return;
    case B_TRICKLE:
        send_str(fd, SSE_HEAD ROLE);
        for (int i = 0; i < 10; i++) {
            send_str(fd, TEXT("x"));
            sleep_ms(20);
        }
        send_str(fd, FINISH("stop") DONE);
        return;
    case B_BURST: {
        char body[8192];
        size_t n = (size_t)snprintf(body, sizeof body, "%s%s", SSE_HEAD, ROLE);
        for (int i = 0; i < 40; i++)
            n += (size_t)snprintf(body + n, sizeof body - n, "%s", TEXT("ab"));
        snprintf(body + n, sizeof body - n, "%s", FINISH("stop") USAGE DONE);
        send_str(fd, body);
        return;
    }
    case B_STREAM_ERR:
        send_str(fd,
                 SSE_HEAD ROLE "data: {\"error\":{\"message\":\"The server had an error\",\"type\":"
                               "\"server_error\"}}\n\n");
        return;
    case B_MODELS:
        send_json(fd, "200 OK", "", "{\"object\":\"list\",\"data\":[{\"id\":\"m1\"}]}");
        return;
    }
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    srv *s = c->s;
    char *buf = malloc(REQ_MAX);
    size_t len = 0, need = 0;
    bool head_done = false;
    while (len < REQ_MAX) {
        ssize_t r = recv(c->fd, buf + len, REQ_MAX - len, 0);
        if (r <= 0)
            goto out;
        len += (size_t)r;
        if (!head_done) {
            const char *e = memmem(buf, len, "\r\n\r\n", 4);
            if (!e)
                continue;
            head_done = true;
            size_t head = (size_t)(e + 4 - buf);
            const char *cl = memmem(buf, head, "Content-Length:", 15);
            if (!cl)
                cl = memmem(buf, head, "content-length:", 15);
            need = head + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        }
        if (len >= need)
            break;
    }
    pthread_mutex_lock(&s->mu);
    int reqno = s->nreq;
    behaviour b = s->beh;
    memcpy(s->req, buf, len);
    s->req[len < REQ_MAX ? len : REQ_MAX - 1] = '\0';
    s->req_len = len;
    s->nreq++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    behave(c, b, reqno);
out:
    close(c->fd);
    free(buf);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        conn *c = malloc(sizeof *c);
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        if (s->nconns == MAX_CONNS || pthread_create(&s->conns[s->nconns], NULL, conn_main, c)) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            free(c);
            continue;
        }
        s->nconns++;
        pthread_mutex_unlock(&s->mu);
    }
}

static void srv_start(srv *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->acceptor, NULL, accept_main, s), 0);
}

static void srv_stop(srv *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < s->nconns; i++)
        pthread_join(s->conns[i], NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void srv_set(srv *s, behaviour b)
{
    pthread_mutex_lock(&s->mu);
    s->beh = b;
    pthread_mutex_unlock(&s->mu);
}

/* Waits until *counter >= n (5 s at most). */
static bool srv_wait(srv *s, const int *counter, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&s->mu);
    while (*counter < n)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = *counter >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ---- one call as the engine would drive it ---- */

typedef struct tc {
    ad_upstream *u;
    ad_backend be;
    ad_model model;
    ad_up_call *call;
    json_t *body; /* next body to send (ownership passes to the call) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* filled on the loop thread */
    char text[4096];
    size_t text_len;
    int ntext, text_while_paused, tool_starts;
    char tool_id[64], tool_name[64], tool_args[256];
    bool paused, tool_index_bad, have_turn;
    bool pause_on_first, cancel_on_first, fail_text;
    int done_at_return; /* ndone right after ad_upstream_call returned */
    long pause_ms;
    int ndone;
    bool done_on_loop;
    ad_err rc;
    bool cancelled;
    int status, attempts;
    char code[64], msg[600], finish[32];
    int64_t total_tokens;
} tc;

typedef struct fixture {
    srv s;
    ad_upstream *u;
    ad_logger lg;
    tc t[4];
} fixture;

static void resume_fn(void *ud)
{
    tc *t = ud;
    pthread_mutex_lock(&t->mu);
    t->paused = false;
    pthread_mutex_unlock(&t->mu);
    ad_upstream_resume(t->u, t->call);
}

static ad_err h_text(void *ud, const char *p, size_t n)
{
    tc *t = ud;
    pthread_mutex_lock(&t->mu);
    if (t->paused)
        t->text_while_paused++;
    if (t->text_len + n < sizeof t->text) {
        memcpy(t->text + t->text_len, p, n);
        t->text_len += n;
        t->text[t->text_len] = '\0';
    }
    int k = ++t->ntext;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (k == 1 && t->pause_on_first) {
        pthread_mutex_lock(&t->mu);
        t->paused = true;
        pthread_mutex_unlock(&t->mu);
        ad_upstream_pause(t->u, t->call);
        ad_upstream_post_after(t->u, t->pause_ms, resume_fn, t);
    }
    if (k == 1 && t->cancel_on_first)
        ad_upstream_cancel(t->u, t->call);
    return t->fail_text ? AD_ETOOBIG : AD_OK;
}

static ad_err h_tool_start(void *ud, int index, const char *id, const char *name)
{
    tc *t = ud;
    t->tool_index_bad |= index != 0;
    snprintf(t->tool_id, sizeof t->tool_id, "%s", id);
    snprintf(t->tool_name, sizeof t->tool_name, "%s", name);
    t->tool_starts++;
    return AD_OK;
}

static ad_err h_tool_args(void *ud, int index, const char *p, size_t n)
{
    tc *t = ud;
    t->tool_index_bad |= index != 0;
    size_t l = strlen(t->tool_args);
    if (l + n < sizeof t->tool_args) {
        memcpy(t->tool_args + l, p, n);
        t->tool_args[l + n] = '\0';
    }
    return AD_OK;
}

static void h_done(void *ud, const ad_up_result *r)
{
    tc *t = ud;
    pthread_mutex_lock(&t->mu);
    t->done_on_loop = ad_upstream_on_loop(t->u);
    t->rc = r->rc;
    t->cancelled = r->cancelled;
    t->status = r->http_status;
    t->attempts = r->attempts;
    snprintf(t->code, sizeof t->code, "%s", r->error_code ? r->error_code : "");
    snprintf(t->msg, sizeof t->msg, "%s", r->error_message ? r->error_message : "");
    t->have_turn = r->turn != NULL;
    snprintf(t->finish, sizeof t->finish, "%s", r->turn ? r->turn->finish_reason : "");
    t->total_tokens = r->turn && r->turn->have_usage ? r->turn->total_tokens : -1;
    t->ndone++;
    t->call = NULL;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static const ad_up_handlers handlers = {h_text, h_tool_start, h_tool_args, h_done};

static void start_fn(void *ud)
{
    tc *t = ud;
    json_t *body = t->body;
    t->body = NULL;
    if (!body)
        body = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "Hi");
    t->call = ad_upstream_call(t->u, &t->model, body, &handlers, t);
    pthread_mutex_lock(&t->mu);
    t->done_at_return = t->ndone;
    pthread_mutex_unlock(&t->mu);
}

static void tc_init(tc *t, ad_upstream *u, unsigned short port)
{
    memset(t, 0, sizeof *t);
    t->u = u;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    snprintf(t->be.name, sizeof t->be.name, "test");
    t->be.kind = AD_BACKEND_OPENAI;
    snprintf(t->be.base_url, sizeof t->be.base_url, "http://127.0.0.1:%u/v1", port);
    snprintf(t->be.api_key, sizeof t->be.api_key, "sk-test-key-123");
    t->be.timeout_connect_ms = 2000;
    t->be.timeout_idle_ms = 5000;
    t->be.max_retries = 2;
    snprintf(t->model.id, sizeof t->model.id, "gpt-4o");
    snprintf(t->model.upstream_model, sizeof t->model.upstream_model, "llama3.1");
    t->model.backend = &t->be;
    t->model.context_window = 128000;
}

static void tc_destroy(tc *t)
{
    json_decref(t->body);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

/* Waits for on_done (10 s at most). */
static bool tc_wait(tc *t)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&t->mu);
    while (!t->ndone)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = t->ndone > 0;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static bool tc_wait_text(tc *t, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&t->mu);
    while (t->ntext < n)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = t->ntext >= n;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

/* Runs one call to completion against behaviour b. */
static tc *run_call(fixture *f, behaviour b)
{
    srv_set(&f->s, b);
    tc *t = &f->t[0];
    ad_upstream_post(f->u, start_fn, t);
    assert_true(tc_wait(t));
    assert_true(t->done_on_loop);
    assert_true(t->have_turn);
    assert_int_equal(t->ndone, 1);
    return t;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    srv_start(&f->s);
    f->lg.level = getenv("TEST_UPSTREAM_LOG") ? AD_LOG_DEBUG : AD_LOG_ERROR;
    f->lg.fd = 2;
    if (ad_upstream_new(&f->lg, &f->u))
        return -1;
    for (int i = 0; i < 4; i++)
        tc_init(&f->t[i], f->u, f->s.port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ad_upstream_free(f->u);
    srv_stop(&f->s);
    for (int i = 0; i < 4; i++)
        tc_destroy(&f->t[i]);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void streams_text(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_TEXT);
    assert_int_equal(t->rc, AD_OK);
    assert_false(t->cancelled);
    assert_string_equal(t->text, "Hello");
    assert_int_equal(t->ntext, 2);
    assert_int_equal(t->status, 200);
    assert_int_equal(t->attempts, 1);
    assert_string_equal(t->finish, "stop");
    assert_int_equal(t->total_tokens, 7);
    assert_string_equal(t->code, "");
}

static void streams_tool_calls(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_TOOLS);
    assert_int_equal(t->rc, AD_OK);
    assert_int_equal(t->tool_starts, 1);
    assert_string_equal(t->tool_id, "call_1");
    assert_string_equal(t->tool_name, "get_weather");
    assert_string_equal(t->tool_args, "{\"city\":\"Paris\"}");
    assert_false(t->tool_index_bad);
    assert_string_equal(t->finish, "tool_calls");
    assert_int_equal(t->ntext, 0);
}

static void records_request(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->body = json_pack("{s:[{s:s,s:s},{s:s,s:s}],s:f}", "messages", "role", "system", "content",
                        "Be brief.", "role", "user", "content", "Hi", "temperature", 0.5);
    t = run_call(f, B_TEXT);
    assert_int_equal(t->rc, AD_OK);
    pthread_mutex_lock(&f->s.mu);
    const char *req = f->s.req;
    assert_true(!strncmp(req, "POST /v1/chat/completions HTTP/1.1\r\n", 36));
    assert_non_null(strcasestr(req, "\r\nAuthorization: Bearer sk-test-key-123\r\n"));
    assert_non_null(strcasestr(req, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strcasestr(req, "\r\nAccept: text/event-stream\r\n"));
    assert_null(strcasestr(req, "api-key:"));
    const char *body = strstr(req, "\r\n\r\n") + 4;
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    pthread_mutex_unlock(&f->s.mu);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "llama3.1");
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_true(
        json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
    json_t *msgs = json_object_get(j, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                        "Hi");
    assert_true(json_real_value(json_object_get(j, "temperature")) == 0.5);
    json_decref(j);
}

static void azure_url_and_key(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->be.kind = AD_BACKEND_AZURE;
    snprintf(t->be.base_url, sizeof t->be.base_url, "http://127.0.0.1:%u", f->s.port);
    snprintf(t->be.api_version, sizeof t->be.api_version, "2024-10-21");
    snprintf(t->be.api_key, sizeof t->be.api_key, "az-key-456");
    snprintf(t->model.deployment, sizeof t->model.deployment, "gpt4o dep");
    t->model.upstream_model[0] = '\0';
    t = run_call(f, B_TEXT);
    assert_int_equal(t->rc, AD_OK);
    pthread_mutex_lock(&f->s.mu);
    const char *req = f->s.req;
    assert_true(!strncmp(req,
                         "POST /openai/deployments/gpt4o%20dep/chat/completions"
                         "?api-version=2024-10-21 HTTP/1.1\r\n",
                         strlen("POST /openai/deployments/gpt4o%20dep/chat/completions"
                                "?api-version=2024-10-21 HTTP/1.1\r\n")));
    assert_non_null(strcasestr(req, "\r\napi-key: az-key-456\r\n"));
    assert_null(strcasestr(req, "Authorization:"));
    json_t *j = json_loads(strstr(req, "\r\n\r\n") + 4, 0, NULL);
    pthread_mutex_unlock(&f->s.mu);
    assert_non_null(j);
    assert_null(json_object_get(j, "model"));
    assert_true(json_is_true(json_object_get(j, "stream")));
    json_decref(j);
}

static void retries_429_then_succeeds(void **state)
{
    fixture *f = *state;
    long long t0 = mono_ms();
    tc *t = run_call(f, B_429_THEN_OK);
    assert_true(mono_ms() - t0 < 400); /* Retry-After: 0, not the 500 ms back-off */
    assert_int_equal(t->rc, AD_OK);
    assert_int_equal(t->attempts, 2);
    assert_int_equal(f->s.nreq, 2);
    assert_string_equal(t->text, "Hello");
}

static void rate_limit_exhausted(void **state)
{
    fixture *f = *state;
    f->t[0].be.max_retries = 1;
    tc *t = run_call(f, B_429);
    assert_int_not_equal(t->rc, AD_OK);
    assert_int_equal(t->attempts, 2);
    assert_int_equal(t->status, 429);
    assert_string_equal(t->code, "rate_limit_exceeded");
    assert_string_equal(t->msg, "Slow down");
}

static void server_errors_exhaust_retries(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_500);
    assert_int_not_equal(t->rc, AD_OK);
    assert_int_equal(t->attempts, 3); /* max_retries + 1 */
    assert_int_equal(f->s.nreq, 3);
    assert_int_equal(t->status, 500);
    assert_string_equal(t->code, "server_error");
    assert_non_null(strstr(t->msg, "boom"));
}

static void message_never_contains_key(void **state)
{
    fixture *f = *state;
    f->t[0].be.max_retries = 0;
    tc *t = run_call(f, B_500_KEY);
    assert_string_equal(t->code, "server_error");
    assert_null(strstr(t->msg, "sk-test-key-123"));
    assert_non_null(strstr(t->msg, "bad key"));
    t->ndone = 0;
    t = run_call(f, B_401);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->attempts, 1);
    assert_null(strstr(t->msg, "sk-test"));
}

static void context_length_is_invalid_prompt(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_400_CTX);
    assert_int_not_equal(t->rc, AD_OK);
    assert_int_equal(t->attempts, 1); /* no retry */
    assert_int_equal(f->s.nreq, 1);
    assert_string_equal(t->code, "invalid_prompt");
    assert_non_null(strstr(t->msg, "maximum context length"));
    t->ndone = 0;
    t = run_call(f, B_400_OTHER);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->attempts, 1);
}

static void idle_timeout(void **state)
{
    fixture *f = *state;
    f->t[0].be.timeout_idle_ms = 900; /* rounds up to 1 s */
    long long t0 = mono_ms();
    tc *t = run_call(f, B_STALL);
    long long took = mono_ms() - t0;
    assert_int_not_equal(t->rc, AD_OK);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->attempts, 1); /* a response had started: no retry */
    if (took < 900 || took >= 4000)
        print_error("idle timeout after %lld ms\n", took);
    assert_true(took >= 900 && took < 4000);
    assert_true(srv_wait(&f->s, &f->s.closes, 1));
}

static void close_mid_stream_no_retry(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_CLOSE_MID);
    assert_int_not_equal(t->rc, AD_OK);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->attempts, 1);
    assert_int_equal(f->s.nreq, 1);
    assert_string_equal(t->text, "Hello");
}

static void stream_error_event(void **state)
{
    fixture *f = *state;
    tc *t = run_call(f, B_STREAM_ERR);
    assert_string_equal(t->code, "server_error");
    assert_non_null(strstr(t->msg, "The server had an error"));
    assert_int_equal(t->attempts, 1);
}

static void connection_refused_backs_off(void **state)
{
    fixture *f = *state;
    /* A port nobody listens on: bind one, then close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    tc *t = &f->t[0];
    snprintf(t->be.base_url, sizeof t->be.base_url, "http://127.0.0.1:%u/v1", ntohs(a.sin_port));
    t->be.max_retries = 1;
    long long t0 = mono_ms();
    t = run_call(f, B_TEXT);
    long long took = mono_ms() - t0;
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->attempts, 2);
    assert_int_equal(t->status, 0);
    assert_non_null(strstr(t->msg, "Could not reach"));
    assert_null(strstr(t->msg, "127.0.0.1"));
    assert_true(took >= 400 && took < 3000); /* 500 ms +-20% back-off */
}

static void bad_call_reports_via_on_done(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->body = json_array(); /* not an object */
    t = run_call(f, B_TEXT);
    assert_int_not_equal(t->rc, AD_OK);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->done_at_return, 0); /* never synchronously */
    assert_int_equal(f->s.nreq, 0);
}

static void handler_error_ends_call(void **state)
{
    fixture *f = *state;
    f->t[0].fail_text = true;
    tc *t = run_call(f, B_TEXT);
    assert_int_equal(t->rc, AD_ETOOBIG);
    assert_string_equal(t->code, "server_error");
    assert_int_equal(t->ntext, 1);
    assert_int_equal(t->attempts, 1);
}

/* Posted: cancels t->call from outside any libcurl callback. */
static void cancel_fn(void *ud)
{
    tc *t = ud;
    ad_upstream_cancel(t->u, t->call);
}

static void cancel_from_loop(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    srv_set(&f->s, B_HOLD);
    ad_upstream_post(f->u, start_fn, t);
    assert_true(tc_wait_text(t, 1));
    ad_upstream_post(f->u, cancel_fn, t);
    assert_true(tc_wait(t));
    assert_true(t->cancelled);
    assert_int_equal(t->rc, AD_ESTATE);
    assert_int_equal(t->ndone, 1);
    assert_true(srv_wait(&f->s, &f->s.closes, 1)); /* the upstream saw the abort */
}

static void cancel_from_callback(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->cancel_on_first = true;
    t = run_call(f, B_HOLD);
    assert_true(t->cancelled);
    assert_int_equal(t->rc, AD_ESTATE);
    assert_int_equal(t->ntext, 1);
    assert_true(srv_wait(&f->s, &f->s.closes, 1));
}

static void pause_resume_burst(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->pause_on_first = true;
    t->pause_ms = 1200; /* longer than the idle timeout: paused calls never idle out */
    t->be.timeout_idle_ms = 1000;
    long long t0 = mono_ms();
    t = run_call(f, B_BURST);
    assert_int_equal(t->rc, AD_OK);
    assert_true(mono_ms() - t0 >= 1200);
    assert_int_equal(t->text_while_paused, 0);
    assert_int_equal(t->ntext, 40);
    assert_int_equal(t->text_len, 80);
    assert_int_equal(t->total_tokens, 7);
}

static void pause_resume_trickle(void **state)
{
    fixture *f = *state;
    tc *t = &f->t[0];
    t->pause_on_first = true;
    t->pause_ms = 300;
    t = run_call(f, B_TRICKLE);
    assert_int_equal(t->rc, AD_OK);
    assert_int_equal(t->text_while_paused, 0);
    assert_string_equal(t->text, "xxxxxxxxxx");
}

typedef struct order {
    ad_upstream *u;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen[128];
    int n, want;
    bool all_on_loop;
} order;

typedef struct order_item {
    order *o;
    int v;
} order_item;

static void order_fn(void *ud)
{
    order_item *it = ud;
    order *o = it->o;
    pthread_mutex_lock(&o->mu);
    if (!ad_upstream_on_loop(o->u))
        o->all_on_loop = false;
    o->seen[o->n++] = it->v;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void order_wait(order *o)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&o->mu);
    while (o->n < o->want)
        if (pthread_cond_timedwait(&o->cv, &o->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&o->mu);
}

static void posted_run_in_order(void **state)
{
    fixture *f = *state;
    order o = {.u = f->u, .want = 100, .all_on_loop = true};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    order_item items[100];
    assert_false(ad_upstream_on_loop(f->u));
    for (int i = 0; i < 100; i++) {
        items[i] = (order_item){&o, i};
        ad_upstream_post(f->u, order_fn, &items[i]);
    }
    order_wait(&o);
    assert_int_equal(o.n, 100);
    assert_true(o.all_on_loop);
    for (int i = 0; i < 100; i++)
        assert_int_equal(o.seen[i], i);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
}

static void timers_fire_in_order(void **state)
{
    fixture *f = *state;
    order o = {.u = f->u, .want = 6, .all_on_loop = true};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    static const long delays[] = {120, 40, 80, 40, 0, 10};
    static const int expect[] = {4, 5, 1, 3, 2, 0};
    order_item items[6];
    long long t0 = mono_ms();
    for (int i = 0; i < 6; i++) {
        items[i] = (order_item){&o, i};
        ad_upstream_post_after(f->u, delays[i], order_fn, &items[i]);
    }
    order_wait(&o);
    long long took = mono_ms() - t0;
    assert_int_equal(o.n, 6);
    assert_true(o.all_on_loop);
    for (int i = 0; i < 6; i++)
        assert_int_equal(o.seen[i], expect[i]);
    assert_true(took >= 120);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
}

static void free_with_calls_in_flight(void **state)
{
    fixture *f = *state;
    srv_set(&f->s, B_HOLD);
    for (int i = 0; i < 3; i++)
        ad_upstream_post(f->u, start_fn, &f->t[i]);
    for (int i = 0; i < 3; i++)
        assert_true(tc_wait_text(&f->t[i], 1));
    /* A fourth call waits in back-off: it gets on_done too. */
    f->t[3].be.max_retries = 3;
    srv_set(&f->s, B_500_SLOW);
    ad_upstream_post(f->u, start_fn, &f->t[3]);
    assert_true(srv_wait(&f->s, &f->s.nreq, 4));
    ad_upstream_free(f->u);
    f->u = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->t[i].ndone, 1);
        assert_true(f->t[i].cancelled);
        assert_true(f->t[i].done_on_loop);
    }
    assert_true(srv_wait(&f->s, &f->s.closes, 3));
}

static void list_models(void **state)
{
    fixture *f = *state;
    srv_set(&f->s, B_MODELS);
    ad_buf out;
    ad_buf_init(&out, 1 << 20);
    assert_int_equal(ad_upstream_list_models(&f->t[0].be, &out, NULL), AD_OK);
    json_t *j = json_loads(ad_buf_str(&out), 0, NULL);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")),
        "m1");
    json_decref(j);
    pthread_mutex_lock(&f->s.mu);
    assert_true(!strncmp(f->s.req, "GET /v1/models HTTP/1.1\r\n", 25));
    assert_non_null(strcasestr(f->s.req, "\r\nAuthorization: Bearer sk-test-key-123\r\n"));
    pthread_mutex_unlock(&f->s.mu);
    ad_buf_reset(&out);
    srv_set(&f->s, B_500);
    assert_int_equal(ad_upstream_list_models(&f->t[0].be, &out, NULL), AD_EIO);
    assert_int_equal(out.len, 0);
    ad_buf_free(&out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(streams_text),
        T(streams_tool_calls),
        T(records_request),
        T(azure_url_and_key),
        T(retries_429_then_succeeds),
        T(rate_limit_exhausted),
        T(server_errors_exhaust_retries),
        T(message_never_contains_key),
        T(context_length_is_invalid_prompt),
        T(idle_timeout),
        T(close_mid_stream_no_retry),
        T(stream_error_event),
        T(connection_refused_backs_off),
        T(bad_call_reports_via_on_done),
        T(handler_error_ends_call),
        T(cancel_from_loop),
        T(cancel_from_callback),
        T(pause_resume_burst),
        T(pause_resume_trickle),
        T(posted_run_in_order),
        T(timers_fire_in_order),
        T(free_with_calls_in_flight),
        T(list_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
