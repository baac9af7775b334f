/*
 * server.h -- the one server context.
 *
 * Everything that lives as long as the process -- configuration, logger,
 * key table, store, metrics, the HTTP daemon -- hangs off a single ad_server
 * created by main() and passed (through each request) to every module. There
 * are no other mutable globals. After start-up the configuration, key table
 * and model list are read-only, so threads share them without locks; the
 * store and metrics do their own synchronisation.
 */
#ifndef AD_SERVER_H
#define AD_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/config.h"
#include "util/log.h"

struct MHD_Daemon;
typedef struct ad_auth ad_auth;
typedef struct ad_store ad_store;
typedef struct ad_metrics ad_metrics;
typedef struct ad_backends ad_backends;
typedef struct ad_engine ad_engine;
typedef struct ad_models_cache ad_models_cache;
typedef struct ad_tokenizer ad_tokenizer;
typedef struct ad_sandbox ad_sandbox;
typedef struct ad_ingest ad_ingest;
typedef struct ad_kwcache ad_kwcache;

typedef struct ad_server {
    ad_config cfg;
    ad_logger log;
    ad_auth *auth;
    ad_store *store;
    ad_metrics *metrics;
    struct MHD_Daemon *mhd;
    struct ad_sse_hub *sse_hub;    /* direct-mode SSE writer (http/sse.h); NULL: off */
    struct ad_defer *defer;        /* threads for blocking handlers (http/server.c) */
    ad_backends *backends;         /* model -> upstream (run/backends.h) */
    ad_engine *engine;             /* runs (run/engine.h) */
    ad_models_cache *models_cache; /* zero configuration: the upstream's model list */
    ad_sandbox *sandbox;           /* code_interpreter sessions (sandbox/sandbox.h) */
    ad_tokenizer *tok_o200k;       /* run/tokenizer.h, loaded from share-dir at start */
    ad_tokenizer *tok_cl100k;
    ad_ingest *ingest;        /* vector store file workers (ingest/ingest.h) */
    ad_kwcache *kwcache;      /* per-store keyword indexes (search/kwindex.h) */
    const char **route_names; /* metrics labels, one per route */
    char **models;            /* parsed from cfg.models; NULL-terminated */
    size_t nmodels;
    unsigned short port; /* the bound port (differs from cfg when 0 was asked) */
    /* Set once, when shutdown begins (main.c, cleanup); blocking remote
     * calls made off the loops (embeddings) give up when they see it. */
    atomic_bool stopping;
    /* Requests libmicrohttpd has not completed yet (http/server.c): the
     * front's stop lets them finish, for a while, before the daemon goes. */
    atomic_int reqs_open;
} ad_server;

#endif
