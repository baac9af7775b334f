/*
 * ingest.c -- the ingestion workers and the stored form of vector store
 * files (see ingest.h for both).
 *
 * Design. A FIFO of small jobs (project, store, file) under one mutex feeds
 * a fixed pool of threads. A job holds no state of its own: the worker reads
 * the vector store file row, does the slow work (extract, chunk, embed)
 * without holding a store connection, then commits the outcome in one
 * transaction that first re-reads the row and writes only if it is still
 * in_progress -- so a cancel or a delete that happened meanwhile wins, and a
 * job run twice (after a restart) writes once. Nothing else synchronises
 * workers with handlers.
 *
 * Shutdown: the stopping flag is checked between the stages of a job; a job
 * abandoned there stays in_progress and is queued again at the next start
 * (ad_ingest_start scans for them), as is one interrupted by a crash.
 *
 * usage_bytes of a file: the bytes of its chunk texts plus their embeddings
 * (what the store keeps for it), known once it is completed; 0 before.
 */
#include "ingest/ingest.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/chunk.h"
#include "ingest/extract.h"
#include "run/backends.h"
#include "search/embed.h"
#include "search/kwindex.h"
#include "store/blob.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/str.h"

/* Extracted text of one file held in memory by a worker. A file within
 * OpenAI's limit of AD_CHUNK_MAX_TOKENS tokens has far less text (about 4
 * bytes a token); more fails the file as invalid_file before chunking. */
#define TEXT_MAX    (64u * 1024 * 1024)
#define MAX_THREADS 8

typedef struct job {
    ad_ingest *ing;
    char project[256];
    char store_id[64];
    char file_id[64];
    struct job *next;
} job;

struct ad_ingest {
    ad_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    bool stopping;
    pthread_t threads[MAX_THREADS];
    unsigned nthreads;
};

/* ---------------------------------------------------------------- rows */

void ad_vsf_rowid(char out[AD_VSF_ROWID_MAX], const char *parent, const char *file_id)
{
    snprintf(out, AD_VSF_ROWID_MAX, "%s/%s", parent, file_id);
}

json_t *ad_vsf_load(ad_db *db, const char *project, const char *store_id, const char *file_id,
                    ad_err *rc)
{
    char rid[AD_VSF_ROWID_MAX];
    ad_vsf_rowid(rid, store_id, file_id);
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    json_t *v = NULL;
    *rc = ad_db_get(db, project, "vector_store_file", rid, &b);
    if (!*rc) {
        v = json_loadb(b.ptr, b.len, 0, NULL);
        if (!v)
            *rc = AD_EDB;
    }
    ad_buf_free(&b);
    return v;
}

/* Inserts or replaces one row of a vector store file (kind
 * "vector_store_file" or "vector_store_batch_file"), aux = its status. */
static ad_err put_row(ad_db *db, const char *project, const char *kind, const char *parent,
                      const char *file, const char *status, int64_t created, const char *json,
                      size_t len, bool insert)
{
    char rid[AD_VSF_ROWID_MAX];
    ad_vsf_rowid(rid, parent, file);
    if (!insert)
        return ad_db_update(db, project, kind, rid, status, json, len);
    ad_obj o = {.kind = kind,
                .id = rid,
                .project = project,
                .parent = parent,
                .aux = status,
                .created_at = created};
    return ad_db_put(db, &o, json, len);
}

ad_err ad_vsf_save(ad_db *db, const char *project, const json_t *vsf, bool insert)
{
    const char *store = json_string_value(json_object_get(vsf, "vector_store_id"));
    const char *file = json_string_value(json_object_get(vsf, "id"));
    const char *status = json_string_value(json_object_get(vsf, "status"));
    const char *batch = json_string_value(json_object_get(vsf, "_batch"));
    if (!store || !file || !status)
        return AD_EINTERNAL;
    char *s = json_dumps(vsf, AD_JSON_COMPACT);
    if (!s)
        return AD_EINTERNAL;
    size_t len = strlen(s);
    int64_t created = (int64_t)json_integer_value(json_object_get(vsf, "created_at"));
    ad_err rc =
        put_row(db, project, "vector_store_file", store, file, status, created, s, len, insert);
    if (!rc && batch) {
        rc = put_row(db, project, "vector_store_batch_file", batch, file, status, created, s, len,
                     insert);
        if (!insert && rc == AD_ENOTFOUND) /* the batch row is gone: nothing to keep in step */
            rc = AD_OK;
    }
    free(s);
    return rc;
}

ad_err ad_vsf_remove(ad_db *db, const char *project, const char *store_id, const char *file_id)
{
    ad_err rc;
    json_t *v = ad_vsf_load(db, project, store_id, file_id, &rc);
    if (!v)
        return rc;
    char rid[AD_VSF_ROWID_MAX];
    ad_vsf_rowid(rid, store_id, file_id);
    rc = ad_db_purge(db, project, "vector_store_file", rid);
    const char *batch = json_string_value(json_object_get(v, "_batch"));
    if (!rc && batch) {
        ad_vsf_rowid(rid, batch, file_id);
        rc = ad_db_purge(db, project, "vector_store_batch_file", rid);
        if (rc == AD_ENOTFOUND)
            rc = AD_OK;
    }
    if (!rc)
        rc = ad_db_chunks_delete(db, store_id, file_id);
    json_decref(v);
    return rc;
}

typedef struct store_ids {
    char (*ids)[AD_VSF_ROWID_MAX];
    size_t n, cap;
} store_ids;

static ad_err collect_store(void *ud, const char *id, const char *json, size_t len)
{
    (void)json;
    (void)len;
    store_ids *a = ud;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->ids = ad_realloc(a->ids, a->cap * sizeof *a->ids);
    }
    ad_strlcpy(a->ids[a->n++], id, sizeof a->ids[0]);
    return AD_OK;
}

ad_err ad_vsf_remove_everywhere(ad_db *db, const char *project, const char *file_id)
{
    /* Every store of the project is asked (an indexed range scan, then one
     * lookup by row id each): no index leads from a file to its stores. */
    ad_list_q q = {.project = project,
                   .kind = "vector_store",
                   .parent = "",
                   .limit = (int64_t)1 << 40,
                   .asc = true};
    store_ids a = {0};
    bool more;
    ad_err rc = ad_db_list(db, &q, collect_store, &a, &more);
    for (size_t i = 0; i < a.n && !rc; i++) {
        rc = ad_vsf_remove(db, project, a.ids[i], file_id);
        if (rc == AD_ENOTFOUND)
            rc = AD_OK;
    }
    ad_free(a.ids);
    return rc;
}

json_t *ad_vsf_public(const json_t *obj)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (key[0] != '_')
            json_object_set(out, key, v);
    }
    return out;
}

json_t *ad_vs_file_counts(ad_db *db, const char *project, const char *kind, const char *parent,
                          int64_t *usage)
{
    ad_tally t[8];
    size_t n = 0;
    if (ad_db_tally(db, project, kind, parent, "$.usage_bytes", t, 8, &n))
        return NULL;
    int64_t in_progress = 0, completed = 0, failed = 0, cancelled = 0, total = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        total += t[i].count;
        bytes += t[i].sum;
        if (!strcmp(t[i].aux, "in_progress"))
            in_progress = t[i].count;
        else if (!strcmp(t[i].aux, "completed"))
            completed = t[i].count;
        else if (!strcmp(t[i].aux, "failed"))
            failed = t[i].count;
        else if (!strcmp(t[i].aux, "cancelled"))
            cancelled = t[i].count;
    }
    if (usage)
        *usage = bytes;
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "in_progress", (json_int_t)in_progress,
                     "completed", (json_int_t)completed, "failed", (json_int_t)failed, "cancelled",
                     (json_int_t)cancelled, "total", (json_int_t)total);
}

/* expires_at of a stored vector store, 0 for never. */
static json_int_t expires_at_of(const json_t *vs)
{
    json_t *ea = json_object_get(vs, "expires_after");
    json_int_t last = json_integer_value(json_object_get(vs, "last_active_at"));
    if (!json_is_object(ea))
        return 0;
    return last + json_integer_value(json_object_get(ea, "days")) * 86400;
}

bool ad_vector_store_expired(const json_t *vs, int64_t now)
{
    json_int_t at = expires_at_of(vs);
    return at && now >= at;
}

ad_err ad_vector_store_render(ad_db *db, const char *project, json_t *vs, int64_t now,
                              bool *expired)
{
    const char *id = json_string_value(json_object_get(vs, "id"));
    int64_t usage = 0;
    json_t *counts = ad_vs_file_counts(db, project, "vector_store_file", id ? id : "", &usage);
    if (!counts)
        return AD_EDB;
    bool busy = json_integer_value(json_object_get(counts, "in_progress")) > 0;
    json_int_t expires_at = expires_at_of(vs);
    *expired = ad_vector_store_expired(vs, now);
    json_object_set_new(vs, "usage_bytes", json_integer(usage));
    json_object_set_new(vs, "file_counts", counts);
    json_object_set_new(vs, "status",
                        json_string(*expired ? "expired"
                                    : busy   ? "in_progress"
                                             : "completed"));
    json_object_set_new(vs, "expires_at", expires_at ? json_integer(expires_at) : json_null());
    return AD_OK;
}

ad_err ad_vector_store_touch(ad_db *db, const char *project, const char *store_id, int64_t now)
{
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    ad_err rc = ad_db_get(db, project, "vector_store", store_id, &b);
    json_t *v = rc ? NULL : json_loadb(b.ptr, b.len, 0, NULL);
    if (!rc && !v)
        rc = AD_EDB;
    if (!rc && json_integer_value(json_object_get(v, "last_active_at")) != now) {
        json_object_set_new(v, "last_active_at", json_integer(now));
        char *s = json_dumps(v, AD_JSON_COMPACT);
        rc = s ? ad_db_update(db, project, "vector_store", store_id, NULL, s, strlen(s))
               : AD_EINTERNAL;
        free(s);
    }
    json_decref(v);
    ad_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- worker */

static void push(ad_ingest *ing, job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&ing->mu);
    if (ing->tail)
        ing->tail->next = j;
    else
        ing->head = j;
    ing->tail = j;
    pthread_cond_signal(&ing->cv);
    pthread_mutex_unlock(&ing->mu);
}

static bool stopping(ad_ingest *ing)
{
    pthread_mutex_lock(&ing->mu);
    bool s = ing->stopping;
    pthread_mutex_unlock(&ing->mu);
    return s;
}

/* The outcome of a job: chunks (completed) or an error (failed). */
typedef struct outcome {
    const char *code; /* NULL: completed */
    char message[512];
    ad_chunk_row *rows;
    size_t nrows;
    int64_t usage;
} outcome;

/* The static chunking parameters of a vector store file row (800/400 when
 * it has none). */
static void chunking_of(const json_t *vsf, size_t *max_tokens, size_t *overlap)
{
    json_t *st = json_object_get(json_object_get(vsf, "chunking_strategy"), "static");
    *max_tokens = (size_t)json_integer_value(json_object_get(st, "max_chunk_size_tokens"));
    *overlap = (size_t)json_integer_value(json_object_get(st, "chunk_overlap_tokens"));
    if (!*max_tokens) {
        *max_tokens = 800;
        *overlap = 400;
    }
}

/* Commits the outcome if the file is still in_progress with the chunking the
 * job used (a file re-attached meanwhile with another chunking_strategy is
 * left to the job its re-attachment queued). */
static ad_err commit_outcome(ad_ingest *ing, const job *j, const outcome *o, size_t max_tokens,
                             size_t overlap)
{
    /* The keyword segment (search/kwindex.h) is built here, on the worker,
     * before the writer lock is taken; only its bytes are written inside. */
    ad_buf seg;
    ad_buf_init(&seg, AD_KWSEG_MAX);
    ad_err rc = o->code ? AD_OK : ad_kwseg_build(o->rows, o->nrows, &seg);
    if (rc) {
        ad_buf_free(&seg);
        return rc;
    }
    ad_db *db = ad_store_acquire(ing->srv->store);
    rc = ad_db_begin(db);
    json_t *v = NULL;
    if (rc)
        goto out;
    v = ad_vsf_load(db, j->project, j->store_id, j->file_id, &rc);
    if (!v) {
        rc = rc == AD_ENOTFOUND ? AD_OK : rc; /* deleted meanwhile */
        goto out;
    }
    const char *status = json_string_value(json_object_get(v, "status"));
    if (!status || strcmp(status, "in_progress") != 0)
        goto out; /* cancelled meanwhile */
    size_t mt, ov;
    chunking_of(v, &mt, &ov);
    if (mt != max_tokens || ov != overlap)
        goto out; /* re-attached with other chunking meanwhile */
    if (o->code) {
        json_object_set_new(v, "status", json_string("failed"));
        json_object_set_new(v, "last_error",
                            json_pack("{s:s, s:s}", "code", o->code, "message", o->message));
    } else {
        rc = ad_db_chunks_delete(db, j->store_id, j->file_id);
        if (!rc)
            rc = ad_kw_insert_file(db, j->store_id, j->file_id, o->rows, o->nrows, &seg);
        if (rc)
            goto out;
        json_object_set_new(v, "status", json_string("completed"));
        json_object_set_new(v, "usage_bytes", json_integer(o->usage));
    }
    rc = ad_vsf_save(db, j->project, v, false);
    if (!rc)
        rc = ad_db_commit(db);
out:
    ad_db_rollback(db); /* a no-op after the commit */
    ad_store_release(ing->srv->store, db);
    json_decref(v);
    ad_buf_free(&seg);
    return rc;
}

static void fail(outcome *o, const char *code, const char *message)
{
    o->code = code;
    ad_strlcpy(o->message, message, sizeof o->message);
}

/* Reads what the job needs from the store: the file's name and the
 * chunking parameters. false when there is nothing (left) to do: the row is
 * gone (deleted; jobs are queued only after the row's commit) or no longer
 * in_progress. */
static bool prepare(ad_ingest *ing, const job *j, char *filename, size_t fnsize, size_t *max_tokens,
                    size_t *overlap, outcome *o)
{
    ad_db *db = ad_store_acquire(ing->srv->store);
    ad_err rc;
    bool go = false;
    json_t *v = ad_vsf_load(db, j->project, j->store_id, j->file_id, &rc);
    json_t *file = NULL;
    if (!v) {
        if (rc != AD_ENOTFOUND)
            ad_log(&ing->srv->log, AD_LOG_ERROR, "ingest: cannot read %s in %s: %s", j->file_id,
                   j->store_id, ad_strerror(rc));
        goto out;
    }
    const char *status = json_string_value(json_object_get(v, "status"));
    if (!status || strcmp(status, "in_progress") != 0)
        goto out;
    chunking_of(v, max_tokens, overlap);
    go = true;
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    rc = ad_db_get(db, j->project, "file", j->file_id, &b);
    if (!rc)
        file = json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    const char *name = json_string_value(json_object_get(file, "filename"));
    if (rc == AD_ENOTFOUND || (!rc && !name))
        fail(o, "invalid_file", "The file no longer exists.");
    else if (rc)
        fail(o, "server_error", "The file could not be read from the store.");
    else
        ad_strlcpy(filename, name, fnsize);
out:
    json_decref(v);
    json_decref(file);
    ad_store_release(ing->srv->store, db);
    return go;
}

/* Processes a job (the caller frees it). */
static void process(ad_ingest *ing, const job *j)
{
    ad_server *srv = ing->srv;
    outcome o = {0};
    char filename[512] = "";
    size_t max_tokens = 0, overlap = 0;
    ad_buf text;
    ad_buf_init(&text, TEXT_MAX);
    ad_chunk *chunks = NULL;
    size_t nchunks = 0;
    float *vecs = NULL;
    size_t dims = 0;
    const char **texts = NULL;
    size_t *lens = NULL;

    if (!prepare(ing, j, filename, sizeof filename, &max_tokens, &overlap, &o))
        goto out;
    if (o.code)
        goto commit;
    char path[1200];
    if (!ad_blob_path(srv->cfg.data_dir, "files", j->file_id, path, sizeof path)) {
        fail(&o, "server_error", "The file's bytes could not be located.");
        goto commit;
    }
    char msg[400] = "";
    switch (ad_extract_file(path, filename, &text, msg, sizeof msg)) {
    case AD_EXTRACT_OK:
        break;
    case AD_EXTRACT_UNSUPPORTED:
        fail(&o, "unsupported_file", msg[0] ? msg : "The file type is not supported.");
        goto commit;
    case AD_EXTRACT_INVALID:
        fail(&o, "invalid_file", msg[0] ? msg : "The file could not be parsed.");
        goto commit;
    default:
        fail(&o, "server_error", msg[0] ? msg : "The file could not be read.");
        goto commit;
    }
    if (stopping(ing))
        goto out;
    ad_err crc = ad_chunk_text(srv->tok_o200k, text.ptr ? text.ptr : "", text.len, max_tokens,
                               overlap, &chunks, &nchunks);
    if (crc == AD_ETOOBIG) {
        snprintf(msg, sizeof msg, "The file contains more than the maximum of %u tokens per file.",
                 (unsigned)AD_CHUNK_MAX_TOKENS);
        fail(&o, "invalid_file", msg);
        goto commit;
    }
    if (crc) {
        fail(&o, "server_error", "The file's text could not be split into chunks.");
        goto commit;
    }
    if (!nchunks) {
        fail(&o, "invalid_file", "No text could be extracted from the file.");
        goto commit;
    }
    texts = ad_calloc(nchunks, sizeof *texts);
    lens = ad_calloc(nchunks, sizeof *lens);
    for (size_t i = 0; i < nchunks; i++) {
        texts[i] = text.ptr + chunks[i].start;
        lens[i] = chunks[i].end - chunks[i].start;
    }
    const ad_embeddings_cfg *ecfg = ad_backends_embeddings(srv->backends);
    if (ecfg) {
        msg[0] = '\0';
        ad_err erc =
            ad_embed(ecfg, &srv->stopping, texts, lens, nchunks, &vecs, &dims, msg, sizeof msg);
        if (erc) {
            /* Cut short by shutdown (the server's flag is set long before
             * ing->stopping): left in_progress for the next start. */
            if (erc == AD_ECANCELED || stopping(ing))
                goto out;
            char m2[520];
            snprintf(m2, sizeof m2, "Embedding the file failed: %s", msg);
            fail(&o, "server_error", m2);
            goto commit;
        }
    }
    if (stopping(ing))
        goto out;
    o.rows = ad_calloc(nchunks, sizeof *o.rows);
    o.nrows = nchunks;
    for (size_t i = 0; i < nchunks; i++) {
        o.rows[i].text = texts[i];
        o.rows[i].len = lens[i];
        o.rows[i].vec = vecs ? vecs + i * dims : NULL;
        o.rows[i].dims = vecs ? dims : 0;
        o.usage += (int64_t)(lens[i] + (vecs ? dims * sizeof(float) : 0));
    }
commit:;
    ad_err rc = commit_outcome(ing, j, &o, max_tokens, overlap);
    if (rc)
        ad_log(&srv->log, AD_LOG_ERROR, "ingest: cannot store the outcome of %s in %s: %s",
               j->file_id, j->store_id, ad_strerror(rc));
    else if (o.code)
        ad_log(&srv->log, AD_LOG_INFO, "ingest: %s in %s failed: %s", j->file_id, j->store_id,
               o.code);
    else
        ad_log(&srv->log, AD_LOG_INFO, "ingest: %s in %s completed (%zu chunks)", j->file_id,
               j->store_id, o.nrows);
out:
    ad_free(o.rows);
    ad_free(texts);
    ad_free(lens);
    ad_free(vecs);
    ad_free(chunks);
    ad_buf_free(&text);
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-ingest");
    ad_ingest *ing = arg;
    for (;;) {
        pthread_mutex_lock(&ing->mu);
        while (!ing->head && !ing->stopping)
            pthread_cond_wait(&ing->cv, &ing->mu);
        if (ing->stopping) {
            pthread_mutex_unlock(&ing->mu);
            return NULL;
        }
        job *j = ing->head;
        ing->head = j->next;
        if (!ing->head)
            ing->tail = NULL;
        pthread_mutex_unlock(&ing->mu);
        process(ing, j);
        ad_free(j);
    }
}

static void after_commit(void *ud, bool committed)
{
    job *j = ud;
    if (committed)
        push(j->ing, j);
    else
        ad_free(j);
}

void ad_ingest_enqueue(ad_ingest *ing, ad_db *db, const char *project, const char *store_id,
                       const char *file_id)
{
    if (!ing)
        return;
    job *j = ad_calloc(1, sizeof *j);
    j->ing = ing;
    ad_strlcpy(j->project, project, sizeof j->project);
    ad_strlcpy(j->store_id, store_id, sizeof j->store_id);
    ad_strlcpy(j->file_id, file_id, sizeof j->file_id);
    if (db)
        ad_db_after_commit(db, after_commit, j);
    else
        push(ing, j);
}

static ad_err recover_row(void *ud, const char *project, const char *parent, const char *id,
                          const char *json, size_t len)
{
    (void)json;
    (void)len;
    const char *slash = strchr(id, '/');
    if (slash)
        ad_ingest_enqueue(ud, NULL, project, parent, slash + 1);
    return AD_OK;
}

ad_err ad_ingest_start(ad_server *srv, unsigned nthreads)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ad_ingest *ing = ad_calloc(1, sizeof *ing);
    ing->srv = srv;
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->cv, NULL);
    srv->ingest = ing;
    /* Files a previous process left in_progress are queued before any new one. */
    ad_db *db = ad_store_acquire(srv->store);
    ad_err rc = ad_db_scan(db, "vector_store_file", "in_progress", recover_row, ing);
    ad_store_release(srv->store, db);
    if (rc)
        ad_log(&srv->log, AD_LOG_ERROR, "ingest: cannot find interrupted files");
    if (ing->head)
        ad_log(&srv->log, AD_LOG_INFO, "ingest: resuming interrupted vector store files");
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    for (unsigned i = 0; i < nthreads; i++) {
        if (pthread_create(&ing->threads[i], NULL, worker, ing) != 0) {
            ad_log(&srv->log, AD_LOG_ERROR, "ingest: cannot start a worker thread");
            return AD_EINTERNAL;
        }
        ing->nthreads++;
    }
    return AD_OK;
}

void ad_ingest_stop(ad_server *srv)
{
    ad_ingest *ing = srv->ingest;
    if (!ing)
        return;
    pthread_mutex_lock(&ing->mu);
    ing->stopping = true;
    pthread_cond_broadcast(&ing->cv);
    pthread_mutex_unlock(&ing->mu);
    for (unsigned i = 0; i < ing->nthreads; i++)
        pthread_join(ing->threads[i], NULL);
    while (ing->head) {
        job *j = ing->head;
        ing->head = j->next;
        ad_free(j);
    }
    pthread_cond_destroy(&ing->cv);
    pthread_mutex_destroy(&ing->mu);
    ad_free(ing);
    srv->ingest = NULL;
}
