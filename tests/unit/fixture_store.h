/*
 * fixture_store.h -- a fresh store in a temporary directory for the unit
 * tests of the chunk index and search (test_search.c, test_ranking.c), and
 * the helpers that fill it: vector stores, files with their chunks, and a
 * one-query search. Included by one test file each (everything static).
 *
 * Ownership: fixture_setup allocates the ctx (and the directory) that
 * fixture_teardown frees (and removes); hits from fixture_search are the
 * caller's to free with ad_search_hits_free.
 */
#ifndef AD_FIXTURE_STORE_H
#define AD_FIXTURE_STORE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "search/kwindex.h"
#include "search/search.h"
#include "store/store.h"

typedef struct ctx {
    char dir[64];
    ad_logger log;
    ad_store *s;
    ad_db *db;
} ctx;

/* Opens a store of nconn connections in a new /tmp/<prefix>-XXXXXX; -1 on
 * failure. */
static inline int fixture_setup_n(void **state, const char *prefix, unsigned nconn)
{
    ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/%s-XXXXXX", prefix);
    c->log.fd = 2;
    c->log.level = AD_LOG_WARN;
    if (!mkdtemp(c->dir) || ad_store_open(c->dir, nconn, &c->log, &c->s)) {
        free(c);
        return -1;
    }
    c->db = ad_store_acquire(c->s);
    *state = c;
    return 0;
}

/* A store of two connections. */
static inline int fixture_setup(void **state, const char *prefix)
{
    return fixture_setup_n(state, prefix, 2);
}

static inline int fixture_teardown(void **state)
{
    ctx *c = *state;
    ad_store_release(c->s, c->db);
    ad_store_close(c->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c->dir);
    int rc = system(cmd) == 0 ? 0 : -1;
    free(c);
    return rc;
}

/* Puts an object of project "p". */
static inline void put_json(ad_db *db, const char *kind, const char *id, const char *parent,
                            const char *aux, const char *json)
{
    ad_obj o = {.kind = kind, .id = id, .project = "p", .parent = parent, .aux = aux};
    assert_int_equal(ad_db_put(db, &o, json, strlen(json)), AD_OK);
}

static inline void add_store(ad_db *db, const char *id)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"object\":\"vector_store\",\"last_active_at\":1}",
             id);
    put_json(db, "vector_store", id, "", "", json);
}

/* One completed file "<file>.txt" of n chunks in a store (attrs: a JSON
 * object; vecs: NULL or n embeddings of dims floats). */
static inline void add_file(ad_db *db, const char *store, const char *file, const char *attrs,
                            const char *const *texts, size_t n, const float *vecs, size_t dims)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"vector_store_id\":\"%s\",\"status\":\"completed\","
             "\"usage_bytes\":10,\"created_at\":1,\"attributes\":%s}",
             file, store, attrs);
    json_t *v = json_loads(json, 0, NULL);
    assert_int_equal(ad_vsf_save(db, "p", v, true), AD_OK);
    json_decref(v);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"filename\":\"%s.txt\"}", file, file);
    put_json(db, "file", file, "", "assistants", json);
    ad_chunk_row *rows = calloc(n + 1, sizeof *rows);
    for (size_t i = 0; i < n; i++)
        rows[i] = (ad_chunk_row){texts[i], strlen(texts[i]), vecs ? vecs + i * dims : NULL,
                                 vecs ? dims : 0};
    assert_int_equal(ad_db_begin(db), AD_OK);
    assert_int_equal(ad_kw_insert_file(db, store, file, rows, n, NULL), AD_OK);
    assert_int_equal(ad_db_commit(db), AD_OK);
    free(rows);
}

/* One query over one store of a project (filter: JSON text or NULL), at
 * most 10 hits; returns ad_search's result (msg gets its reason). */
static inline ad_err fixture_search(ctx *c, const char *project, const char *store,
                                    const char *query, const char *filter, ad_search_hit **hits,
                                    size_t *n, char *msg, size_t msgsize)
{
    const char *stores[] = {store};
    const char *queries[] = {query};
    json_t *f = filter ? json_loads(filter, 0, NULL) : NULL;
    ad_search_req rq = {.project = project,
                        .store_ids = stores,
                        .nstores = 1,
                        .queries = queries,
                        .nqueries = 1,
                        .max_num_results = 10,
                        .filters = f};
    ad_err rc = ad_search(NULL, c->db, &rq, hits, n, msg, msgsize);
    json_decref(f);
    return rc;
}

/* fixture_search of project "p" that must succeed; returns the hit count. */
static inline size_t search(ctx *c, const char *store, const char *query, const char *filter,
                            ad_search_hit **hits)
{
    size_t n = 0;
    char msg[256];
    assert_int_equal(fixture_search(c, "p", store, query, filter, hits, &n, msg, sizeof msg),
                     AD_OK);
    return n;
}

#endif
