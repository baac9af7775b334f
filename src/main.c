/*
 * main.c -- start-up and shutdown.
 *
 * Order matters: configuration, keys, data directory (stale temporaries
 * removed), store (migrations applied), then the HTTP front. Shutdown on
 * SIGINT/SIGTERM runs the other way round: stop accepting and finish the
 * connections, then close the store, so every acknowledged write is already
 * committed when the process exits. Signals are taken synchronously with
 * sigwait on the main thread -- no async-signal-safety puzzles.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/server.h"
#include "http/auth.h"
#include "http/http.h"
#include "http/metrics.h"
#include "api/api.h"
#include "http/request.h"
#include "run/backends.h"
#include "ingest/ingest.h"
#include "run/engine.h"
#include "run/tokenizer.h"
#include "sandbox/sandbox.h"
#include "search/kwindex.h"
#include "store/blob.h"
#include "store/store.h"
#include "util/alloc.h"

static void parse_models(ad_server *srv)
{
    size_t cap = 1;
    for (const char *p = srv->cfg.models; *p; p++)
        cap += *p == ',';
    srv->models = ad_calloc(cap + 1, sizeof *srv->models);
    const char *p = srv->cfg.models;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        while (n && *p == ' ') {
            p++;
            n--;
        }
        while (n && p[n - 1] == ' ')
            n--;
        if (n)
            srv->models[srv->nmodels++] = ad_strndup(p, n);
        if (!c)
            break;
        p = c + 1;
    }
}

typedef struct sweep_ctx {
    ad_db *db;
    const char *kind;
} sweep_ctx;

/* Whether a live object owns the blob; on a store error, keep the blob. */
static bool blob_live(void *ud, const char *id)
{
    sweep_ctx *c = ud;
    bool exists = true;
    if (ad_db_exists_any(c->db, c->kind, id, &exists))
        return true;
    return exists;
}

/* Removes file and part bytes that no live row refers to (see blob.h). */
static void sweep_blobs(ad_server *srv)
{
    static const char *const pairs[][2] = {{"files", "file"}, {"parts", "upload_part"}};
    sweep_ctx c = {.db = ad_store_acquire(srv->store)};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int removed = 0;
        c.kind = pairs[i][1];
        if (ad_blob_sweep(srv->cfg.data_dir, pairs[i][0], blob_live, &c, &removed))
            ad_log(&srv->log, AD_LOG_WARN, "blob: cannot sweep %s", pairs[i][0]);
        else if (removed)
            ad_log(&srv->log, AD_LOG_INFO, "blob: removed %d orphan %s blob(s)", removed,
                   pairs[i][0]);
    }
    ad_store_release(srv->store, c.db);
}

/* Both encodings are loaded at start (~9 MB, ~40 ms): runs count tokens for
 * truncation and budgets, file_search chunks by tokens. */
static ad_err load_tokenizers(ad_server *srv)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/tokenizer", srv->cfg.share_dir);
    ad_err rc = ad_tokenizer_load(dir, "o200k_base", &srv->tok_o200k);
    if (!rc)
        rc = ad_tokenizer_load(dir, "cl100k_base", &srv->tok_cl100k);
    if (rc)
        ad_log(&srv->log, AD_LOG_ERROR, "cannot load the tokenizer tables from %s: %s", dir,
               ad_strerror(rc));
    return rc;
}

static void cleanup(ad_server *srv)
{
    /* Embeddings calls in flight (deferred searches, file_search tools,
     * ingestion) give up now rather than hold up the stops below. */
    atomic_store(&srv->stopping, true);
    /* Streams end first, so that no connection stays suspended, then the
     * front stops, then the model calls and the store. */
    ad_sandbox_shutdown(srv->sandbox); /* running cells end within ~250 ms */
    ad_engine_stop(srv->engine);
    ad_http_stop(srv);
    ad_ingest_stop(srv); /* after the front: no handler queues work any more */
    ad_engine_free(srv->engine);
    ad_sandbox_free(srv->sandbox); /* after the engine: no execution is running */
    ad_models_cache_stop(srv);
    ad_backends_free(srv->backends);
    ad_store_close(srv->store);
    ad_kwcache_free(srv->kwcache);
    ad_auth_free(srv->auth);
    ad_metrics_free(srv->metrics);
    ad_free(srv->route_names);
    ad_tokenizer_free(srv->tok_o200k);
    ad_tokenizer_free(srv->tok_cl100k);
    for (size_t i = 0; i < srv->nmodels; i++)
        ad_free(srv->models[i]);
    ad_free(srv->models);
}

int main(int argc, char **argv)
{
    ad_server srv;
    memset(&srv, 0, sizeof srv);
    switch (ad_config_load(&srv.cfg, argc, argv, stdout, stderr)) {
    case AD_CONFIG_EXIT_OK:
        return 0;
    case AD_CONFIG_ERROR:
        return 2;
    case AD_CONFIG_OK:
        break;
    }
    srv.log.fd = 2;
    srv.log.level = srv.cfg.log_level;

    /* Block the shutdown signals in every thread; main waits for them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int code = 1;
    if (ad_auth_load(srv.cfg.api_keys, srv.cfg.keys_file, stderr, &srv.auth))
        goto out;
    parse_models(&srv);
    if (ad_backends_load(srv.cfg.config, stderr, &srv.backends))
        goto out;
    /* The metrics keep this array: it lives until cleanup. Sized from the
     * table, so no route is ever left without a name. */
    srv.route_names = ad_calloc(ad_nroutes + 1, sizeof *srv.route_names);
    for (size_t i = 0; i < ad_nroutes; i++)
        srv.route_names[i] = ad_routes[i].name;
    srv.metrics = ad_metrics_new(ad_nroutes, srv.route_names);
    if (load_tokenizers(&srv))
        goto out;
    if (ad_blob_init(srv.cfg.data_dir, &srv.log)) {
        ad_log(&srv.log, AD_LOG_ERROR, "cannot prepare data directory %s", srv.cfg.data_dir);
        goto out;
    }
    /* One connection per HTTP thread, plus fourteen for background work and
     * deferred requests (see docs/ARCHITECTURE.md, Storage). */
    if (ad_store_open(srv.cfg.data_dir, srv.cfg.threads + 14, &srv.log, &srv.store))
        goto out;
    sweep_blobs(&srv);
    srv.kwcache = ad_kwcache_new(ad_kwcache_env_budget());
    /* Without a working sandbox the server still serves; code_interpreter
     * calls then tell the model it is not available. */
    if (ad_sandbox_new(&srv.cfg, &srv.log, &srv.sandbox)) {
        srv.sandbox = NULL;
        ad_log(&srv.log, AD_LOG_WARN, "code_interpreter is unavailable: the sandbox did not start");
    }
    if (ad_engine_new(&srv, &srv.engine))
        goto out;
    ad_engine_recover(srv.engine);
    if (ad_ingest_start(&srv, 2))
        goto out;
    if (ad_models_cache_start(&srv))
        goto out;
    if (ad_http_start(&srv))
        goto out;
    ad_log(&srv.log, AD_LOG_INFO, "assistd listening on %s:%u (data %s, %zu API key(s)%s)",
           srv.cfg.listen_host, srv.port, srv.cfg.data_dir, ad_auth_count(srv.auth),
           ad_auth_enabled(srv.auth) ? "" : ", authentication off");

    int sig = 0;
    sigwait(&sigs, &sig);
    ad_log(&srv.log, AD_LOG_INFO, "received %s, shutting down",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    code = 0;
out:
    cleanup(&srv);
    if (code == 0)
        ad_log(&srv.log, AD_LOG_INFO, "stopped");
    return code;
}
