/*
 * server.c -- the HTTP front (see http.h and request.h).
 *
 * libmicrohttpd calls on_request several times per request: once when the
 * headers are in, once per chunk of body, and once more when the body is
 * complete. The first call decides everything that does not need the body --
 * URL shape, route, API key, OpenAI-Beta header, declared body size -- so
 * that a bad request is refused before a byte of its body is read. Body
 * chunks go either into a bounded JSON buffer or through the incremental
 * multipart parser, whose file part is written straight to a temporary file.
 * The final call runs the route's handler and queues its response. When
 * libmicrohttpd is done with the request, on_completed writes the access log
 * line, records metrics and frees the request with everything it owns.
 *
 * Handlers run on the pool thread that owns the connection. They do short,
 * bounded work (a few indexed SQLite statements); anything long-running
 * belongs to machinery that suspends the connection and resumes it later:
 * event streams (http/sse.c), and work that blocks (ad_req_defer, below).
 *
 * Deferred work. A handler that must wait for a remote service -- a vector
 * store search that asks the embeddings backend for its queries' vectors --
 * must not hold a pool thread: with the default two, two searches against a
 * slow backend would stop every other request. The handler validates, then
 * calls ad_req_defer; once it returns, the connection is suspended and the
 * request queued for one of DEFER_THREADS threads, which run the work (and
 * give its store connection back) and resume the connection; libmicrohttpd
 * then calls on_request again, which sends the prepared response. A
 * suspended connection is invisible to libmicrohttpd (no timeout, no hang-up
 * noticed), so nothing touches the request meanwhile, and the resume (under
 * the daemon's mutex) orders the work's writes before that last call. At
 * shutdown the threads finish every queued request before the daemon stops
 * (MHD_stop_daemon refuses suspended connections); a request deferred after
 * that runs its work on the pool thread itself.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/reply.h"
#include "http/auth.h"
#include "http/metrics.h"
#include "http/multipart.h"
#include "http/router.h"
#include "http/sse.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/str.h"

#define FIELD_MAX       (64 * 1024) /* one non-file multipart field */
#define FORM_FIELDS_MAX 32
#define DISCARD_MAX     (64ull * 1024 * 1024) /* body bytes read and dropped after an error */
/* Per-connection memory of libmicrohttpd: it bounds the request line and
 * headers, and is cleared on every request, so it is kept small (the SDKs
 * send well under 4 KiB of headers). */
#define CONN_MEMORY (32 * 1024)
#define OUT_MAX     (256ull * 1024 * 1024) /* largest JSON response */
/* Threads for deferred work; each holds a store connection while busy
 * (main.c sizes the pool for them). */
#define DEFER_THREADS 4

/* ---- request helpers (request.h) ---- */

ad_db *ad_req_db(ad_req *req)
{
    if (!req->db)
        req->db = ad_store_acquire(req->srv->store);
    return req->db;
}

const char *ad_req_query(ad_req *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *ad_req_header(ad_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *ad_req_form(ad_req *req, const char *name)
{
    for (ad_form_field *f = req->form; f; f = f->next)
        if (!strcmp(f->name, name))
            return f->value;
    return NULL;
}

void ad_req_add_header(ad_req *req, const char *name, const char *value)
{
    if (req->nhdr >= AD_REQ_HEADERS_MAX)
        return;
    req->hdr_name[req->nhdr] = ad_arena_strdup(req->arena, name);
    req->hdr_value[req->nhdr] = ad_arena_strdup(req->arena, value);
    req->nhdr++;
}

/* ---- lifecycle ---- */

void ad_req_defer(ad_req *req, void (*work)(ad_req *req, void *ud), void *ud)
{
    req->deferred = work;
    req->deferred_ud = ud;
}

static ad_req *req_new(ad_server *srv, struct MHD_Connection *conn, const char *url,
                       const char *method)
{
    ad_req *req = ad_calloc(1, sizeof *req);
    atomic_fetch_add(&srv->reqs_open, 1);
    req->srv = srv;
    req->conn = conn;
    req->arena = ad_arena_new(4096);
    req->method = method;
    req->url = ad_arena_strdup(req->arena, url);
    clock_gettime(CLOCK_MONOTONIC, &req->t0);
    ad_id_new(req->id, "req_");
    req->route_index = ad_nroutes;
    req->project = "default";
    req->file.fd = -1;
    req->out_fd = -1;
    ad_buf_init(&req->body, srv->cfg.max_json_body);
    ad_buf_init(&req->field, FIELD_MAX);
    ad_buf_init(&req->out, OUT_MAX);
    return req;
}

static void req_free(ad_req *req)
{
    atomic_fetch_sub(&req->srv->reqs_open, 1);
    if (req->db)
        ad_store_release(req->srv->store, req->db);
    json_decref(req->json);
    ad_mp_free(req->mp);
    ad_blob_abort(&req->file);
    if (req->out_fd >= 0)
        close(req->out_fd);
    if (req->sse)
        ad_sse_unref(req->sse);
    ad_buf_free(&req->body);
    ad_buf_free(&req->field);
    ad_buf_free(&req->out);
    ad_arena_free(req->arena);
    ad_free(req);
}

static double elapsed(const ad_req *req)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - req->t0.tv_sec) + (double)(t1.tv_nsec - req->t0.tv_nsec) / 1e9;
}

/* Copies s into out for the access log, percent-encoding control bytes,
 * spaces and non-ASCII. libmicrohttpd hands us the URL already decoded, so
 * "/v1/a%0Astatus=200" would otherwise forge a second log line or field. */
static const char *log_safe(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < cap; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%') {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return out;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ad_server *srv = cls;
    ad_req *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    double secs = elapsed(req);
    int status = req->responded ? req->status : 499; /* client went away */
    ad_metrics_request(srv->metrics, req->route_index, status, secs);
    if (srv->cfg.access_log) {
        char method[64], path[1024];
        ad_log(&srv->log, AD_LOG_INFO,
               "access method=%s path=%s status=%d dur_ms=%.3f req=%s project=%s%s",
               log_safe(req->method, method, sizeof method), log_safe(req->url, path, sizeof path),
               status, secs * 1e3, req->id, req->project,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    req_free(req);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    ad_server *srv = cls;
    (void)conn;
    (void)socket_context;
    ad_metrics_conn(srv->metrics, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static void free_cb(void *p)
{
    ad_free(p);
}

static enum MHD_Result send_response(ad_req *req)
{
    struct MHD_Response *resp;
    if (req->sse) {
        resp = ad_sse_response(req->sse);
        if (!resp)
            ad_sse_unref(req->sse); /* the reference ad_sse_respond took */
        req->sse = NULL;
        if (resp)
            MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else if (req->out_fd >= 0) {
        resp = MHD_create_response_from_fd64(req->out_size, req->out_fd);
        if (resp)
            req->out_fd = -1; /* the response owns it now */
    } else {
        size_t len = req->out.len;
        char *body = ad_buf_steal(&req->out);
        resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_cb);
        if (!resp)
            ad_free(body);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            req->ctype ? req->ctype : "application/json");
    MHD_add_response_header(resp, "x-request-id", req->id);
    for (int i = 0; i < req->nhdr; i++)
        MHD_add_response_header(resp, req->hdr_name[i], req->hdr_value[i]);
    enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* ---- the first call: everything decided from the headers ---- */

static const char *presented_key(ad_req *req, size_t *len)
{
    const char *h = ad_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        *len = strlen(h);
        if (*len)
            return h;
        /* An empty bearer token: an api-key header may still carry the key. */
    }
    h = ad_req_header(req, "api-key");
    if (h && *h) {
        *len = strlen(h);
        return h;
    }
    return NULL;
}

static bool authenticate(ad_req *req)
{
    ad_auth *auth = req->srv->auth;
    if (!ad_auth_enabled(auth))
        return true;
    size_t len = 0;
    const char *key = presented_key(req, &len);
    req->project = "-"; /* the access log must not credit a refused request to "default" */
    if (!key) {
        ad_reply_error(req, 401, "invalid_request_error", NULL, NULL,
                       "You didn't provide an API key. You need to provide your API key in an "
                       "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                       "YOUR_KEY), or in an api-key header.");
        return false;
    }
    const char *project = ad_auth_check(auth, key, len);
    if (!project) {
        ad_reply_error(req, 401, "invalid_request_error", NULL, "invalid_api_key",
                       "Incorrect API key provided. Check the keys configured for this assistd "
                       "server.");
        return false;
    }
    req->project = project;
    return true;
}

static bool beta_ok(ad_req *req)
{
    const char *h = ad_req_header(req, "OpenAI-Beta");
    if (h && strstr(h, "assistants=v2"))
        return true;
    if (h && strstr(h, "assistants=v1"))
        ad_reply_error(req, 400, "invalid_request_error", NULL, "invalid_beta",
                       "The v1 Assistants API has been deprecated. Please try again by setting "
                       "the header 'OpenAI-Beta: assistants=v2'.");
    else
        ad_reply_error(req, 400, "invalid_request_error", NULL, "invalid_beta",
                       "You must provide the 'OpenAI-Beta' header to access the Assistants API. "
                       "Please try again by setting the header 'OpenAI-Beta: assistants=v2'.");
    return false;
}

static uint64_t body_limit(const ad_req *req)
{
    if (!req->route || !(req->route->flags & AD_R_MULTIPART))
        return req->srv->cfg.max_json_body;
    /* The multipart envelope adds a little around the file itself. */
    uint64_t file = req->route->flags & AD_R_PART ? req->srv->cfg.max_part_bytes
                                                  : req->srv->cfg.max_upload_bytes;
    return file + 64 * 1024;
}

static ad_err mp_begin(void *ud, const char *name, const char *filename, const char *ctype);
static ad_err mp_data(void *ud, const char *data, size_t len);
static ad_err mp_end(void *ud);
static const ad_mp_callbacks mp_cbs = {mp_begin, mp_data, mp_end};

static void begin(ad_req *req)
{
    ad_server *srv = req->srv;
    ad_shape shape;
    const char *path;
    if (!ad_url_split(req->url, &shape, &path)) {
        ad_reply_error(req, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
                       req->method, req->url);
        return;
    }
    bool root = shape == AD_SHAPE_ROOT;
    req->azure = shape == AD_SHAPE_AZURE || shape == AD_SHAPE_AZURE_V1;
    size_t idx = ad_nroutes;
    ad_match m = ad_route_match(ad_routes, ad_nroutes, root, req->method, path, req->arena, &idx,
                                req->params, &req->nparams);
    /* Matched before authenticating so that a refused request is counted
     * under its route in /metrics; the 404/405 still come after the key
     * check, so an unauthenticated client learns nothing about routes. */
    if (m == AD_MATCH_OK)
        req->route_index = idx;
    if (!root && !authenticate(req))
        return;
    if (m == AD_MATCH_NONE) {
        ad_reply_error(req, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
                       req->method, req->url);
        return;
    }
    if (m == AD_MATCH_METHOD) {
        ad_reply_error(req, 405, "invalid_request_error", NULL, "method_not_allowed",
                       "Method %s is not allowed for URL %s.", req->method, req->url);
        return;
    }
    req->route = &ad_routes[idx];
    const char *api_version = ad_req_query(req, "api-version");
    if (shape == AD_SHAPE_AZURE && (!api_version || !*api_version)) {
        ad_reply_error(req, 400, "invalid_request_error", "api-version",
                       "missing_required_parameter",
                       "Missing required query parameter: 'api-version'. Azure OpenAI URLs "
                       "(/openai/...) take ?api-version=, e.g. 2024-05-01-preview.");
        return;
    }
    if (shape == AD_SHAPE_OPENAI && (req->route->flags & AD_R_BETA) && srv->cfg.require_beta &&
        !beta_ok(req))
        return;

    const char *cl = ad_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t declared;
    if (cl && ad_parse_i64(cl, &declared) && declared > 0 && (uint64_t)declared > body_limit(req)) {
        ad_reply_error(req, 413, "invalid_request_error", NULL, "request_too_large",
                       "The request body is %lld bytes; the limit for this endpoint is %llu "
                       "bytes.",
                       (long long)declared, (unsigned long long)body_limit(req));
        return;
    }
    if (req->route->flags & AD_R_MULTIPART) {
        const char *ct = ad_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
        char boundary[AD_MP_BOUNDARY_MAX + 1];
        if (!ct || ad_mp_boundary(ct, boundary, sizeof boundary) != AD_OK) {
            ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                           "Invalid Content-Type header (%s), expected multipart/form-data "
                           "with a boundary.",
                           ct ? ct : "none");
            return;
        }
        req->mp = ad_mp_new(boundary, &mp_cbs, req, 16 * 1024);
        if (!req->mp) /* a boundary the parser will not use (e.g. trailing space) */
            ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                           "Invalid multipart/form-data boundary in the Content-Type header.");
    }
}

/* ---- body ---- */

static ad_err mp_begin(void *ud, const char *name, const char *filename, const char *ctype)
{
    ad_req *req = ud;
    req->cur_name = ad_arena_strdup(req->arena, name);
    if (filename) {
        if (req->have_file || req->in_file) {
            ad_reply_error(req, 400, "invalid_request_error", name, NULL,
                           "Only one file may be uploaded per request.");
            return AD_EINVAL;
        }
        uint64_t max = req->route->flags & AD_R_PART ? req->srv->cfg.max_part_bytes
                                                     : req->srv->cfg.max_upload_bytes;
        ad_err rc = ad_blob_tmp_open(req->srv->cfg.data_dir, max, &req->file);
        if (rc) {
            ad_reply_internal(req, rc);
            return rc;
        }
        req->in_file = true;
        req->file_field = req->cur_name;
        req->file_name = ad_arena_strdup(req->arena, filename);
        req->file_ctype = ctype ? ad_arena_strdup(req->arena, ctype) : NULL;
        return AD_OK;
    }
    ad_buf_reset(&req->field);
    return AD_OK;
}

static ad_err mp_data(void *ud, const char *data, size_t len)
{
    ad_req *req = ud;
    if (req->in_file) {
        ad_err rc = ad_blob_tmp_write(&req->file, data, len);
        if (rc == AD_ETOOBIG)
            ad_reply_error(req, 413, "invalid_request_error", req->file_field, "file_too_large",
                           "The file is larger than the %llu bytes this endpoint accepts.",
                           (unsigned long long)req->file.max);
        else if (rc)
            ad_reply_internal(req, rc);
        return rc;
    }
    if (ad_buf_add(&req->field, data, len)) {
        ad_reply_error(req, 400, "invalid_request_error", req->cur_name, NULL,
                       "The form field '%s' is longer than %d bytes.", req->cur_name, FIELD_MAX);
        return AD_ETOOBIG;
    }
    return AD_OK;
}

static ad_err mp_end(void *ud)
{
    ad_req *req = ud;
    if (req->in_file) {
        req->in_file = false;
        req->have_file = true;
        return AD_OK;
    }
    int n = 0;
    for (ad_form_field *f = req->form; f; f = f->next)
        n++;
    if (n >= FORM_FIELDS_MAX) {
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Too many form fields (at most %d).", FORM_FIELDS_MAX);
        return AD_ETOOBIG;
    }
    ad_form_field *f = ad_arena_alloc(req->arena, sizeof *f);
    f->name = req->cur_name;
    f->value = ad_arena_strndup(req->arena, ad_buf_str(&req->field), req->field.len);
    f->next = req->form;
    req->form = f;
    return AD_OK;
}

static void absorb(ad_req *req, const char *data, size_t len)
{
    if (req->mp) {
        ad_err rc = ad_mp_feed(req->mp, data, len);
        if (rc && !req->responded)
            ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                           "The multipart/form-data body is malformed: %s.", ad_mp_error(req->mp));
        if (rc)
            req->failed = true;
        return;
    }
    if (ad_buf_add(&req->body, data, len)) {
        ad_reply_error(req, 413, "invalid_request_error", NULL, "request_too_large",
                       "The request body is larger than the %llu bytes this endpoint accepts.",
                       (unsigned long long)req->body.max);
        req->failed = true;
    }
}

/* The handler (or its deferred work) is done with the store: its
 * connection goes back now, not when the response has been sent (a worker
 * runs one handler at a time but may have many responses in flight; holding
 * one connection each exhausts the pool and the worker waits for itself). */
static void release_db(ad_req *req)
{
    if (req->db) {
        ad_store_release(req->srv->store, req->db);
        req->db = NULL;
    }
}

/* Runs a request's deferred work, on whichever thread. */
static void run_deferred(ad_req *req)
{
    void (*work)(ad_req *, void *) = req->deferred;
    req->deferred = NULL;
    work(req, req->deferred_ud);
    if (!req->responded)
        ad_reply_internal(req, AD_EINTERNAL);
    release_db(req);
}

static void finish(ad_req *req)
{
    if (req->mp && ad_mp_finish(req->mp) != AD_OK) {
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "The multipart/form-data body is malformed: %s.", ad_mp_error(req->mp));
        return;
    }
    req->route->handler(req);
    if (req->responded)
        req->deferred = NULL; /* an answer (an error) wins over deferred work */
    else if (!req->deferred)
        ad_reply_internal(req, AD_EINTERNAL);
    release_db(req);
}

/* ---- deferred work (see the top) ---- */

typedef struct ad_defer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ad_req *head, **tail; /* queued requests, their connections suspended */
    bool stopping;        /* no more queueing; the threads drain and end */
    pthread_t threads[DEFER_THREADS];
    int nthreads;
} ad_defer;

static void *defer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-defer");
    ad_defer *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->head && !d->stopping)
            pthread_cond_wait(&d->cv, &d->mu);
        ad_req *req = d->head;
        if (!req) /* stopping, and nothing left */
            break;
        d->head = req->defer_next;
        if (!d->head)
            d->tail = &d->head;
        pthread_mutex_unlock(&d->mu);
        struct MHD_Connection *conn = req->conn;
        run_deferred(req);
        MHD_resume_connection(conn); /* on_request sends the response */
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Suspends the request's connection and queues it; false when the threads
 * are stopping (or never started): the caller runs the work itself. The
 * suspension comes first, so no thread can resume the connection before it
 * is suspended. */
static bool defer_queue(ad_defer *d, ad_req *req)
{
    if (!d)
        return false;
    pthread_mutex_lock(&d->mu);
    bool ok = !d->stopping;
    if (ok) {
        MHD_suspend_connection(req->conn);
        req->defer_next = NULL;
        *d->tail = req;
        d->tail = &req->defer_next;
        pthread_cond_signal(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static ad_err defer_start(ad_server *srv)
{
    ad_defer *d = ad_calloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->tail = &d->head;
    srv->defer = d;
    for (int i = 0; i < DEFER_THREADS; i++) {
        if (pthread_create(&d->threads[i], NULL, defer_main, d) != 0)
            return AD_EINTERNAL; /* defer_stop joins the ones started */
        d->nthreads++;
    }
    return AD_OK;
}

/* Lets the threads finish every queued request (each resumed), then ends
 * them; requests deferred from now on run on their pool thread. */
static void defer_stop(ad_server *srv)
{
    ad_defer *d = srv->defer;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nthreads; i++)
        pthread_join(d->threads[i], NULL);
}

static void defer_free(ad_server *srv)
{
    ad_defer *d = srv->defer;
    if (!d)
        return;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    ad_free(d);
    srv->defer = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    ad_server *srv = cls;
    ad_req *req = *con_cls;
    if (!req) {
        req = req_new(srv, conn, url, method);
        req->http11 = version && !strcmp(version, MHD_HTTP_VERSION_1_1);
        *con_cls = req;
        begin(req);
        if (req->responded) {
            req->failed = true;
            /* Answering before the body is read makes libmicrohttpd close the
             * connection with the body unread: the kernel then resets it and
             * a client still sending sees EPIPE/ECONNRESET instead of the
             * answer (the SDKs report a connection error, and retry). So the
             * body is read and dropped first, unless it is declared larger
             * than we are willing to drop, or the client waits for
             * "100 Continue" before sending it (then it has sent nothing). */
            const char *cl = ad_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
            const char *expect = ad_req_header(req, MHD_HTTP_HEADER_EXPECT);
            int64_t declared;
            if ((cl && ad_parse_i64(cl, &declared) && (uint64_t)declared > DISCARD_MAX) ||
                (expect && strcasestr(expect, "100-continue")))
                return send_response(req);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!req->failed) {
            absorb(req, upload_data, n);
        } else {
            /* Drop what follows an error, up to a bound; then hang up. */
            req->discarded += n;
            if (req->discarded > DISCARD_MAX)
                return MHD_NO;
        }
        return MHD_YES;
    }
    if (!req->responded)
        finish(req);
    if (req->deferred) {
        if (defer_queue(req->srv->defer, req))
            return MHD_YES; /* called again once resumed */
        run_deferred(req);
    }
    return send_response(req);
}

/* ---- start / stop ---- */

static ad_err resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res) != 0 || !res)
        return AD_EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return AD_OK;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

ad_err ad_http_start(ad_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(srv->cfg.listen_host, srv->cfg.listen_port, &ss, &sslen)) {
        ad_log(&srv->log, AD_LOG_ERROR, "cannot resolve listen address %s", srv->cfg.listen_host);
        return AD_EINVAL;
    }
    if (!ad_auth_enabled(srv->auth) && !is_loopback(&ss)) {
        ad_log(&srv->log, AD_LOG_ERROR,
               "refusing to listen on %s without API keys: set ASSISTD_API_KEYS or "
               "ASSISTD_KEYS_FILE, or listen on a loopback address",
               srv->cfg.listen_host);
        return AD_EINVAL;
    }
    if (srv->cfg.sse_direct && ad_sse_hub_start(&srv->sse_hub, srv->cfg.sse_hub_writes)) {
        ad_log(&srv->log, AD_LOG_ERROR, "cannot start the event-stream writer thread");
        return AD_EIO;
    }
    if (defer_start(srv)) {
        ad_log(&srv->log, AD_LOG_ERROR, "cannot start the deferred-work threads");
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->mhd = MHD_start_daemon(
        flags, (uint16_t)srv->cfg.listen_port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, srv->cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, srv->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        srv->cfg.conn_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_END);
    if (!srv->mhd) {
        ad_log(&srv->log, AD_LOG_ERROR, "cannot listen on %s:%d", srv->cfg.listen_host,
               srv->cfg.listen_port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : (unsigned short)srv->cfg.listen_port;
    return AD_OK;
fail:
    defer_stop(srv);
    defer_free(srv);
    ad_sse_hub_stop(srv->sse_hub);
    srv->sse_hub = NULL;
    return AD_EIO;
}

/* How long the front's stop waits for open requests to complete. */
#define STOP_WAIT_MS 2000

void ad_http_stop(ad_server *srv)
{
    ad_sse_hub_quiesce(srv->sse_hub);
    defer_stop(srv); /* every deferred request resumed */
    /* MHD_stop_daemon closes every connection at once: a request whose
     * answer is ready but not yet written -- a resumed deferred search, a
     * stream handed back whose last chunk libmicrohttpd still has to send
     * -- would lose it. Open requests get a while to complete first. */
    for (int waited = 0; srv->mhd && atomic_load(&srv->reqs_open) > 0 && waited < STOP_WAIT_MS;
         waited += 10) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (srv->mhd)
        MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
    defer_free(srv);
    /* After the daemon: every response (and so every stream) is gone. */
    ad_sse_hub_stop(srv->sse_hub);
    srv->sse_hub = NULL;
}
