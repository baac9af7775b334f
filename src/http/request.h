/*
 * request.h -- one HTTP request as handlers see it, and the route table.
 *
 * The HTTP front (http/server.c) builds an ad_req when a request's headers
 * arrive, matches it to a route, authenticates it, gathers the body (a
 * bounded JSON buffer, or a multipart stream whose file part goes straight
 * to a temporary file) and then calls the route's handler once, on an HTTP
 * worker thread. The handler fills in the response through the helpers in
 * api/reply.h and returns; the front sends it and, when the connection has
 * finished with it, frees the request with everything it owns.
 *
 * Ownership: the front owns the ad_req. Strings in it live in req->arena or
 * in libmicrohttpd's connection memory and are valid until the request
 * completes. A handler may allocate from req->arena freely and must not
 * free the request. A store connection taken with ad_req_db is returned by
 * the front after the handler.
 */
#ifndef AD_REQUEST_H
#define AD_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/server.h"
#include "store/blob.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/buf.h"

struct MHD_Connection;
typedef struct ad_mp ad_mp;
typedef struct ad_sse ad_sse;
typedef struct ad_req ad_req;
typedef void (*ad_handler)(ad_req *req);

enum {
    AD_R_BETA = 1u << 0,      /* /v1: needs OpenAI-Beta: assistants=v2 */
    AD_R_MULTIPART = 1u << 1, /* body is multipart/form-data (a file upload) */
    AD_R_PART = 1u << 2,      /* multipart bounded by max_part instead of max_upload */
    AD_R_PUBLIC = 1u << 3,    /* no API key needed (health, metrics) */
    AD_R_ROOT = 1u << 4,      /* served at the root, not under /v1 or /openai */
};

#define AD_MAX_PARAMS 4

typedef struct ad_route {
    const char *method;
    const char *pattern; /* "/threads/{}/messages/{}": {} matches one segment */
    ad_handler handler;
    unsigned flags;
    const char *name; /* metrics label, e.g. "assistants.retrieve" */
} ad_route;

extern const ad_route ad_routes[];
extern const size_t ad_nroutes;

typedef struct ad_form_field {
    const char *name, *value;
    struct ad_form_field *next;
} ad_form_field;

#define AD_REQ_HEADERS_MAX 6

struct ad_req {
    ad_server *srv;
    struct MHD_Connection *conn;
    ad_arena *arena;
    const char *method;
    const char *url; /* as received, without the query */
    char id[64];     /* request id, sent as x-request-id (AD_ID_MAX) */
    struct timespec t0;

    const ad_route *route; /* NULL when no route matched */
    size_t route_index;    /* index in ad_routes; ad_nroutes when unmatched */
    const char *params[AD_MAX_PARAMS];
    int nparams;
    bool azure;          /* arrived on /openai/... */
    bool http11;         /* HTTP/1.1 (chunked responses possible), not 1.0 */
    const char *project; /* owner of everything this request touches */
    ad_db *db;           /* lent by ad_req_db, returned by the front */

    /* body */
    bool failed;        /* an error response has been prepared during upload */
    uint64_t discarded; /* body bytes dropped after the error */
    ad_buf body;        /* JSON bodies */
    json_t *json;
    ad_mp *mp; /* multipart parser */
    ad_form_field *form;
    ad_buf field; /* value of the multipart field being read */
    const char *cur_name;
    bool in_file;
    bool have_file;
    const char *file_field, *file_name, *file_ctype;
    ad_blob_tmp file; /* fd -1 when none */

    /* response */
    int status;
    ad_buf out;
    const char *ctype;
    int out_fd;  /* >= 0: send this file instead of out */
    ad_sse *sse; /* non-NULL: a Server-Sent Events stream (http/sse.h) */
    uint64_t out_size;
    const char *hdr_name[AD_REQ_HEADERS_MAX], *hdr_value[AD_REQ_HEADERS_MAX];
    int nhdr;
    bool responded;

    /* deferred work (ad_req_defer) */
    void (*deferred)(ad_req *req, void *ud);
    void *deferred_ud;
    ad_req *defer_next; /* the defer queue (http/server.c) */
};

/* Borrows the request's store connection (acquired on first use). */
ad_db *ad_req_db(ad_req *req);
/* A query-string value, or NULL. */
const char *ad_req_query(ad_req *req, const char *key);
/* A request header, or NULL. */
const char *ad_req_header(ad_req *req, const char *name);
/* A multipart form field (non-file) value, or NULL. */
const char *ad_req_form(ad_req *req, const char *name);
/* Adds a response header (copied into the arena; at most
 * AD_REQ_HEADERS_MAX, more are dropped). */
void ad_req_add_header(ad_req *req, const char *name, const char *value);
/* For a handler whose work blocks (a call to a remote service): it returns
 * without responding after ad_req_defer, and work(req, ud) runs later on one
 * of the front's defer threads, where blocking is allowed, with the
 * connection suspended meanwhile; work responds as a handler does (if it
 * does not, the client gets a 500). Until work returns it owns req (the
 * arena, the parsed body, ad_req_db) and whatever ud points to; nothing
 * else touches them. ud must outlive the call (the request's arena does). */
void ad_req_defer(ad_req *req, void (*work)(ad_req *req, void *ud), void *ud);

#endif
