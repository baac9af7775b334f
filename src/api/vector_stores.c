/*
 * vector_stores.c -- /vector_stores: stores, their files, file batches, the
 * file content and search endpoints.
 *
 * Storage is described in ingest/ingest.h. What the API shows but is not
 * stored -- a store's file_counts, usage_bytes, status and expires_at, a
 * batch's file_counts and status -- is computed on every read from the
 * file rows (ad_vector_store_render), so no counter can drift from the
 * files it counts. Every response is therefore rendered here rather than
 * passed through from the store.
 *
 * Attaching files: the vector store file rows are created in_progress in
 * the request's transaction and queued for the ingestion workers only after
 * the commit, so a worker never sees a row that may still be rolled back.
 * Re-attaching a file that is already in the store replaces it (its chunks
 * are dropped and it is processed again).
 *
 * Expiry (expires_after, anchor last_active_at): a store past expires_at
 * reports status "expired"; attaching files, modifying and searching it then
 * answer 400 ("Vector store vs_... is expired. ..."); reading, listing and
 * deleting still work. Searches and attachments refresh last_active_at.
 *
 * Search answers one result per chunk, best first: {file_id, filename,
 * score (0..1, see search/search.h), attributes, content:[{type:"text",
 * text}]}. rewrite_query is accepted; the query is used as given and
 * search_query reports it. The file content endpoint returns the file's
 * chunks in order (they overlap, as the chunking strategy says), in one page.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "run/backends.h"
#include "search/kwindex.h"
#include "search/search.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

/* SDK pollers (createAndPoll, uploadAndPoll) wait this long between reads. */
#define POLL_AFTER_MS "200"
#define ALL_ROWS      ((int64_t)1 << 40) /* "no limit" for internal listings */

static const char *const statuses[] = {"in_progress", "completed", "failed", "cancelled", NULL};

/* ---------------------------------------------------------------- helpers */

static void reply_expired(ad_req *req, const char *id)
{
    ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                   "Vector store %s is expired. Create a new vector store and try again.", id);
}

/* Loads a store and renders it; NULL after answering (404/500). With
 * writable, an expired store is answered 400 too. */
static json_t *load_store(ad_req *req, const char *id, bool writable)
{
    json_t *vs = ad_api_load(req, "vector_store", id, "vector store");
    if (!vs)
        return NULL;
    bool expired = false;
    ad_err rc = ad_vector_store_render(ad_req_db(req), req->project, vs, ad_now(), &expired);
    if (rc) {
        json_decref(vs);
        ad_reply_internal(req, rc);
        return NULL;
    }
    if (writable && expired) {
        json_decref(vs);
        reply_expired(req, id);
        return NULL;
    }
    return vs;
}

/* The response form of a request chunking strategy: always static. */
static json_t *resolve_chunking(const json_t *cs)
{
    const char *type = json_string_value(json_object_get(cs, "type"));
    json_int_t max = 800, overlap = 400;
    if (type && !strcmp(type, "static")) {
        const json_t *st = json_object_get(cs, "static");
        max = json_integer_value(json_object_get(st, "max_chunk_size_tokens"));
        overlap = json_integer_value(json_object_get(st, "chunk_overlap_tokens"));
    }
    return json_pack("{s:s, s:{s:I, s:I}}", "type", "static", "static", "max_chunk_size_tokens",
                     max, "chunk_overlap_tokens", overlap);
}

/* Checks that a file exists in the caller's project; answers 400 otherwise. */
static bool file_exists(ad_req *req, const char *id, const char *param)
{
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    ad_err rc = ad_db_get(ad_req_db(req), req->project, "file", id, &b);
    ad_buf_free(&b);
    if (rc == AD_ENOTFOUND)
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': no file found with id '%.128s'.", param, id);
    else if (rc)
        ad_reply_internal(req, rc);
    return rc == AD_OK;
}

/* Creates (or replaces) a vector store file in the caller's transaction
 * and queues it for ingestion once that transaction commits. */
static ad_err attach(ad_req *req, const char *store_id, const char *file_id, const json_t *cs,
                     const json_t *attributes, const char *batch_id, int64_t now, json_t **out)
{
    ad_db *db = ad_req_db(req);
    ad_err rc = ad_vsf_remove(db, req->project, store_id, file_id);
    if (rc && rc != AD_ENOTFOUND)
        return rc;
    json_t *vsf = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:n, s:o}", "id", file_id, "object",
                            "vector_store.file", "usage_bytes", (json_int_t)0, "created_at",
                            (json_int_t)now, "vector_store_id", store_id, "status", "in_progress",
                            "last_error", "chunking_strategy", resolve_chunking(cs));
    json_object_set_new(vsf, "attributes",
                        json_is_object(attributes) ? json_deep_copy(attributes) : json_object());
    if (batch_id)
        json_object_set_new(vsf, "_batch", json_string(batch_id));
    rc = ad_vsf_save(db, req->project, vsf, true);
    if (!rc)
        ad_ingest_enqueue(req->srv->ingest, db, req->project, store_id, file_id);
    if (out && !rc)
        *out = vsf;
    else
        json_decref(vsf);
    return rc;
}

/* Ends a handler's transaction: commit, or roll back and answer 500. */
static bool commit(ad_req *req, ad_err rc)
{
    ad_db *db = ad_req_db(req);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_reply_internal(req, rc);
        return false;
    }
    return true;
}

/* Answers a stored vector store with its computed fields (consumes vs). */
static void reply_store(ad_req *req, json_t *vs, int64_t now)
{
    bool expired;
    ad_err rc = ad_vector_store_render(ad_req_db(req), req->project, vs, now, &expired);
    if (rc) {
        json_decref(vs);
        ad_reply_internal(req, rc);
        return;
    }
    ad_reply_json(req, 200, vs);
}

/* ---------------------------------------------------------------- stores */

void ad_h_vector_stores_create(ad_req *req)
{
    const json_t *body = ad_api_body(req, &ad_schema_create_vector_store);
    if (!body)
        return;
    const json_t *ids = json_object_get(body, "file_ids");
    if (json_is_array(ids) && !ad_api_files_exist(req, ids, "file_ids"))
        return;
    char id[AD_ID_MAX];
    ad_id_new(id, "vs_");
    int64_t now = ad_now();
    const json_t *name = json_object_get(body, "name");
    json_t *vs =
        json_pack("{s:s, s:s, s:I, s:s, s:I}", "id", id, "object", "vector_store", "created_at",
                  (json_int_t)now, "name", json_is_string(name) ? json_string_value(name) : "",
                  "last_active_at", (json_int_t)now);
    const json_t *desc = json_object_get(body, "description");
    if (json_is_string(desc))
        json_object_set(vs, "description", (json_t *)desc);
    const json_t *ea = json_object_get(body, "expires_after");
    if (json_is_object(ea))
        json_object_set_new(vs, "expires_after", json_deep_copy(ea));
    ad_api_set_metadata(vs, body);
    char *s = json_dumps(vs, AD_JSON_COMPACT);
    ad_db *db = ad_req_db(req);
    ad_err rc = s ? ad_db_begin(db) : AD_EINTERNAL;
    if (!rc) {
        ad_obj o = {.kind = "vector_store", .id = id, .project = req->project, .created_at = now};
        rc = ad_db_put(db, &o, s, strlen(s));
    }
    free(s);
    size_t i;
    const json_t *f;
    const json_t *cs = json_object_get(body, "chunking_strategy");
    json_array_foreach(ids, i, f)
    {
        if (rc)
            break;
        rc = attach(req, id, json_string_value(f), cs, NULL, NULL, now, NULL);
    }
    if (!commit(req, rc)) {
        json_decref(vs);
        return;
    }
    reply_store(req, vs, now);
}

typedef struct rows_acc {
    json_t *rows;
} rows_acc;

static ad_err collect_row(void *ud, const char *id, const char *json, size_t len)
{
    (void)id;
    rows_acc *a = ud;
    json_t *v = json_loadb(json, len, 0, NULL);
    if (!v)
        return AD_EDB;
    json_array_append_new(a->rows, v);
    return AD_OK;
}

/* Answers a list page of rendered objects. */
static void reply_page(ad_req *req, json_t *data, bool has_more)
{
    size_t n = json_array_size(data);
    json_t *first = n ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = n ? json_object_get(json_array_get(data, n - 1), "id") : NULL;
    json_t *page = json_pack("{s:s, s:o, s:O, s:O, s:b}", "object", "list", "data", data,
                             "first_id", first ? first : json_null(), "last_id",
                             last ? last : json_null(), "has_more", has_more);
    ad_reply_json(req, 200, page);
}

/* Runs q, answering 400 for an unknown cursor; NULL after answering. */
static json_t *list_rows(ad_req *req, ad_list_q *q, bool *has_more)
{
    rows_acc a = {.rows = json_array()};
    ad_err rc = ad_db_list(ad_req_db(req), q, collect_row, &a, has_more);
    if (rc == AD_ENOTFOUND) {
        const char *param = q->after ? "after" : "before";
        const char *cur = q->after ? q->after : q->before;
        const char *slash = strchr(cur, '/');
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': no object with id '%.128s' in this list.", param,
                       slash ? slash + 1 : cur);
    } else if (rc) {
        ad_reply_internal(req, rc);
    }
    if (rc) {
        json_decref(a.rows);
        return NULL;
    }
    return a.rows;
}

void ad_h_vector_stores_list(ad_req *req)
{
    ad_list_q q = {.project = req->project, .kind = "vector_store", .parent = ""};
    if (!ad_api_page_params(req, &q, 20, 100, true))
        return;
    bool has_more = false;
    json_t *rows = list_rows(req, &q, &has_more);
    if (!rows)
        return;
    size_t i;
    json_t *vs;
    int64_t now = ad_now();
    json_array_foreach(rows, i, vs)
    {
        bool expired;
        ad_err rc = ad_vector_store_render(ad_req_db(req), req->project, vs, now, &expired);
        if (rc) {
            json_decref(rows);
            ad_reply_internal(req, rc);
            return;
        }
    }
    reply_page(req, rows, has_more);
}

void ad_h_vector_stores_get(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    json_t *vs = load_store(req, req->params[0], false);
    if (!vs)
        return;
    ad_req_add_header(req, "openai-poll-after-ms", POLL_AFTER_MS);
    ad_reply_json(req, 200, vs);
}

void ad_h_vector_stores_modify(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_modify_vector_store);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *vs = load_store(req, req->params[0], true);
    if (!vs) {
        ad_db_rollback(db);
        return;
    }
    /* Back to the stored form, then apply. */
    static const char *const computed[] = {"usage_bytes", "file_counts", "status", "expires_at"};
    for (size_t i = 0; i < sizeof computed / sizeof computed[0]; i++)
        json_object_del(vs, computed[i]);
    const json_t *name = json_object_get(body, "name");
    if (name)
        json_object_set_new(vs, "name",
                            json_string(json_is_string(name) ? json_string_value(name) : ""));
    const json_t *ea = json_object_get(body, "expires_after");
    if (json_is_object(ea))
        json_object_set_new(vs, "expires_after", json_deep_copy(ea));
    else if (ea)
        json_object_del(vs, "expires_after");
    if (json_object_get(body, "metadata"))
        ad_api_set_metadata(vs, body);
    int64_t now = ad_now();
    json_object_set_new(vs, "last_active_at", json_integer(now));
    ad_err rc = ad_api_save(req, "vector_store", req->params[0], NULL, vs);
    if (!commit(req, rc)) {
        json_decref(vs);
        return;
    }
    reply_store(req, vs, now);
}

typedef struct ids_acc {
    json_t *ids;
} ids_acc;

static ad_err collect_id(void *ud, const char *id, const char *json, size_t len)
{
    (void)json;
    (void)len;
    ids_acc *a = ud;
    json_array_append_new(a->ids, json_string(id));
    return AD_OK;
}

/* Ids of every live object of a kind under a parent (aux filter optional). */
static ad_err all_ids(ad_db *db, const char *project, const char *kind, const char *parent,
                      const char *aux, json_t **out)
{
    ad_list_q q = {.project = project,
                   .kind = kind,
                   .parent = parent,
                   .aux = aux,
                   .limit = ALL_ROWS,
                   .asc = true};
    ids_acc a = {.ids = json_array()};
    bool more;
    ad_err rc = ad_db_list(db, &q, collect_id, &a, &more);
    if (rc) {
        json_decref(a.ids);
        return rc;
    }
    *out = a.ids;
    return AD_OK;
}

void ad_h_vector_stores_delete(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    const char *id = req->params[0];
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *batches = NULL;
    ad_err rc = ad_db_delete(db, req->project, "vector_store", id);
    if (rc == AD_ENOTFOUND) {
        ad_db_rollback(db);
        ad_reply_not_found(req, "vector store", id);
        return;
    }
    if (!rc)
        rc = ad_db_purge_children(db, req->project, "vector_store_file", id);
    if (!rc)
        rc = all_ids(db, req->project, "vector_store_file_batch", id, NULL, &batches);
    size_t i;
    json_t *b;
    json_array_foreach(batches, i, b)
    {
        if (rc)
            break;
        rc =
            ad_db_purge_children(db, req->project, "vector_store_batch_file", json_string_value(b));
    }
    json_decref(batches);
    if (!rc)
        rc = ad_db_delete_children(db, req->project, "vector_store_file_batch", id, NULL);
    if (!rc)
        rc = ad_db_chunks_delete(db, id, NULL);
    if (commit(req, rc)) {
        ad_kwcache_drop(req->srv->kwcache, id);
        ad_api_deleted(req, id, "vector_store.deleted");
    }
}

/* ---------------------------------------------------------------- files */

static bool check_store_and_file(ad_req *req)
{
    return ad_api_check_id(req, 0, "vector_store_id", "vs_") &&
           ad_api_check_id(req, 1, "file_id", "file-");
}

void ad_h_vs_files_create(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_create_vector_store_file);
    if (!body)
        return;
    const char *store = req->params[0];
    const char *file = json_string_value(json_object_get(body, "file_id"));
    if (!ad_api_check_body_id(req, body, "file_id", "file-") || !file_exists(req, file, "file_id"))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *vs = load_store(req, store, true);
    if (!vs) {
        ad_db_rollback(db);
        return;
    }
    json_decref(vs);
    int64_t now = ad_now();
    json_t *vsf = NULL;
    ad_err rc = attach(req, store, file, json_object_get(body, "chunking_strategy"),
                       json_object_get(body, "attributes"), NULL, now, &vsf);
    if (!rc)
        rc = ad_vector_store_touch(db, req->project, store, now);
    if (!commit(req, rc)) {
        json_decref(vsf);
        return;
    }
    ad_reply_json(req, 200, ad_vsf_public(vsf));
    json_decref(vsf);
}

/* Lists the files of a store (batch NULL) or of a batch. */
static void list_files(ad_req *req, const char *store, const char *batch)
{
    const char *parent = batch ? batch : store;
    ad_list_q q = {.project = req->project,
                   .kind = batch ? "vector_store_batch_file" : "vector_store_file",
                   .parent = parent};
    if (!ad_api_page_params(req, &q, 20, 100, true))
        return;
    const char *filter = ad_req_query(req, "filter");
    if (filter && *filter) {
        bool ok = false;
        for (size_t i = 0; statuses[i]; i++)
            ok = ok || !strcmp(filter, statuses[i]);
        if (!ok) {
            ad_reply_error(req, 400, "invalid_request_error", "filter", "invalid_value",
                           "Invalid value: '%.64s'. Supported values are: 'in_progress', "
                           "'completed', 'failed', and 'cancelled'.",
                           filter);
            return;
        }
        q.aux = filter;
    }
    if (q.after)
        q.after = ad_arena_printf(req->arena, "%s/%s", parent, q.after);
    if (q.before)
        q.before = ad_arena_printf(req->arena, "%s/%s", parent, q.before);
    bool has_more = false;
    json_t *rows = list_rows(req, &q, &has_more);
    if (!rows)
        return;
    json_t *data = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(rows, i, v)
    {
        json_array_append_new(data, ad_vsf_public(v));
    }
    json_decref(rows);
    reply_page(req, data, has_more);
}

void ad_h_vs_files_list(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    json_t *vs = load_store(req, req->params[0], false);
    if (!vs)
        return;
    json_decref(vs);
    list_files(req, req->params[0], NULL);
}

/* Loads a vector store file; NULL after answering 404/500. */
static json_t *load_file(ad_req *req)
{
    ad_err rc;
    json_t *v = ad_vsf_load(ad_req_db(req), req->project, req->params[0], req->params[1], &rc);
    if (rc == AD_ENOTFOUND) {
        /* Distinguish the store from the file, as OpenAI's messages do. */
        json_t *vs = ad_api_load(req, "vector_store", req->params[0], "vector store");
        if (vs) {
            json_decref(vs);
            ad_reply_error(req, 404, "invalid_request_error", NULL, NULL,
                           "No file found with id '%s' in vector store '%s'.", req->params[1],
                           req->params[0]);
        }
    } else if (rc) {
        ad_reply_internal(req, rc);
    }
    return v;
}

void ad_h_vs_files_get(ad_req *req)
{
    if (!check_store_and_file(req))
        return;
    json_t *v = load_file(req);
    if (!v)
        return;
    ad_req_add_header(req, "openai-poll-after-ms", POLL_AFTER_MS);
    ad_reply_json(req, 200, ad_vsf_public(v));
    json_decref(v);
}

void ad_h_vs_files_update(ad_req *req)
{
    if (!check_store_and_file(req))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_update_vector_store_file);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *v = load_file(req);
    if (!v) {
        ad_db_rollback(db);
        return;
    }
    const json_t *attrs = json_object_get(body, "attributes");
    json_object_set_new(v, "attributes",
                        json_is_object(attrs) ? json_deep_copy(attrs) : json_object());
    ad_err rc = ad_vsf_save(db, req->project, v, false);
    if (commit(req, rc))
        ad_reply_json(req, 200, ad_vsf_public(v));
    json_decref(v);
}

void ad_h_vs_files_delete(ad_req *req)
{
    if (!check_store_and_file(req))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *v = load_file(req);
    if (!v) {
        ad_db_rollback(db);
        return;
    }
    json_decref(v);
    ad_err rc = ad_vsf_remove(db, req->project, req->params[0], req->params[1]);
    if (commit(req, rc))
        ad_api_deleted(req, req->params[1], "vector_store.file.deleted");
}

static ad_err content_row(void *ud, const char *text, size_t len)
{
    json_t *s = json_stringn(text, len);
    json_array_append_new(ud,
                          json_pack("{s:s, s:o}", "type", "text", "text", s ? s : json_string("")));
    return AD_OK;
}

void ad_h_vs_files_content(ad_req *req)
{
    if (!check_store_and_file(req))
        return;
    json_t *v = load_file(req);
    if (!v)
        return;
    json_decref(v);
    json_t *data = json_array();
    ad_err rc =
        ad_db_chunks_of_file(ad_req_db(req), req->params[0], req->params[1], content_row, data);
    if (rc) {
        json_decref(data);
        ad_reply_internal(req, rc);
        return;
    }
    ad_reply_json(req, 200,
                  json_pack("{s:s, s:o, s:b, s:n}", "object", "vector_store.file_content.page",
                            "data", data, "has_more", 0, "next_page"));
}

/* ---------------------------------------------------------------- batches */

/* Renders a stored batch: file_counts and status from its files. */
static ad_err render_batch(ad_req *req, json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    json_t *counts =
        ad_vs_file_counts(ad_req_db(req), req->project, "vector_store_batch_file", id, NULL);
    if (!counts)
        return AD_EDB;
    const char *stored = json_string_value(json_object_get(b, "status"));
    json_int_t busy = json_integer_value(json_object_get(counts, "in_progress"));
    json_int_t failed = json_integer_value(json_object_get(counts, "failed"));
    json_int_t total = json_integer_value(json_object_get(counts, "total"));
    const char *status = "completed";
    if (stored && !strcmp(stored, "cancelled"))
        status = "cancelled";
    else if (busy)
        status = "in_progress";
    else if (total && failed == total)
        status = "failed";
    json_object_set_new(b, "status", json_string(status));
    json_object_set_new(b, "file_counts", counts);
    return AD_OK;
}

/* Answers a stored batch with its computed fields (consumes b). */
static void reply_batch(ad_req *req, json_t *b)
{
    ad_err rc = render_batch(req, b);
    if (rc) {
        json_decref(b);
        ad_reply_internal(req, rc);
        return;
    }
    ad_reply_json(req, 200, b);
}

/* Loads a batch of the store in params[0]; NULL after answering. */
static json_t *load_batch(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_") ||
        !ad_api_check_id(req, 1, "batch_id", "vsfb_"))
        return NULL;
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    ad_err rc = ad_db_get_child(ad_req_db(req), req->project, "vector_store_file_batch",
                                req->params[0], req->params[1], &b);
    json_t *v = rc ? NULL : json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    if (rc == AD_ENOTFOUND)
        ad_reply_not_found(req, "file batch", req->params[1]);
    else if (rc || !v)
        ad_reply_internal(req, rc ? rc : AD_EDB);
    return v;
}

void ad_h_vs_batches_create(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_create_vector_store_file_batch);
    if (!body)
        return;
    const char *store = req->params[0];
    const json_t *ids = json_object_get(body, "file_ids");
    const json_t *files = json_object_get(body, "files");
    size_t i;
    const json_t *f;
    if (ids && !ad_api_files_exist(req, ids, "file_ids"))
        return;
    json_array_foreach(files, i, f)
    {
        char p[64];
        snprintf(p, sizeof p, "files[%zu].file_id", i);
        if (!file_exists(req, json_string_value(json_object_get(f, "file_id")), p))
            return;
    }
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *vs = load_store(req, store, true);
    if (!vs) {
        ad_db_rollback(db);
        return;
    }
    json_decref(vs);
    char id[AD_ID_MAX];
    ad_id_new(id, "vsfb_");
    int64_t now = ad_now();
    json_t *batch =
        json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", id, "object", "vector_store.files_batch",
                  "created_at", (json_int_t)now, "vector_store_id", store, "status", "in_progress");
    char *s = json_dumps(batch, AD_JSON_COMPACT);
    ad_obj o = {.kind = "vector_store_file_batch",
                .id = id,
                .project = req->project,
                .parent = store,
                .created_at = now};
    ad_err rc = s ? ad_db_put(db, &o, s, strlen(s)) : AD_EINTERNAL;
    free(s);
    const json_t *list = ids ? ids : files;
    json_t *seen = json_object();
    json_array_foreach(list, i, f)
    {
        if (rc)
            break;
        const json_t *cs = json_object_get(ids ? body : f, "chunking_strategy");
        const json_t *attrs = json_object_get(ids ? body : f, "attributes");
        const char *fid =
            ids ? json_string_value(f) : json_string_value(json_object_get(f, "file_id"));
        if (json_object_get(seen, fid))
            continue; /* the same file twice in one batch: attached once */
        json_object_set_new(seen, fid, json_true());
        rc = attach(req, store, fid, cs, attrs, id, now, NULL);
    }
    json_decref(seen);
    if (!rc)
        rc = ad_vector_store_touch(db, req->project, store, now);
    if (!commit(req, rc)) {
        json_decref(batch);
        return;
    }
    reply_batch(req, batch);
}

void ad_h_vs_batches_get(ad_req *req)
{
    json_t *b = load_batch(req);
    if (!b)
        return;
    ad_req_add_header(req, "openai-poll-after-ms", POLL_AFTER_MS);
    reply_batch(req, b);
}

void ad_h_vs_batches_cancel(ad_req *req)
{
    ad_db *db = ad_req_db(req);
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_") ||
        !ad_api_check_id(req, 1, "batch_id", "vsfb_"))
        return;
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *b = load_batch(req);
    if (!b) {
        ad_db_rollback(db);
        return;
    }
    json_t *busy = NULL;
    ad_err rc =
        all_ids(db, req->project, "vector_store_batch_file", req->params[1], "in_progress", &busy);
    size_t nbusy = json_array_size(busy);
    size_t i;
    json_t *rid;
    json_array_foreach(busy, i, rid)
    {
        if (rc)
            break;
        const char *slash = strchr(json_string_value(rid), '/');
        if (!slash)
            continue;
        json_t *v = ad_vsf_load(db, req->project, req->params[0], slash + 1, &rc);
        if (rc == AD_ENOTFOUND) {
            rc = AD_OK;
            continue;
        }
        if (rc)
            break;
        const char *vb = json_string_value(json_object_get(v, "_batch"));
        if (vb && !strcmp(vb, req->params[1])) {
            json_object_set_new(v, "status", json_string("cancelled"));
            rc = ad_vsf_save(db, req->project, v, false);
        }
        json_decref(v);
    }
    json_decref(busy);
    if (!rc && nbusy > 0) {
        json_object_set_new(b, "status", json_string("cancelled"));
        rc = ad_api_save(req, "vector_store_file_batch", req->params[1], NULL, b);
    }
    if (!commit(req, rc)) {
        json_decref(b);
        return;
    }
    reply_batch(req, b);
}

void ad_h_vs_batches_files(ad_req *req)
{
    json_t *b = load_batch(req);
    if (!b)
        return;
    json_decref(b);
    list_files(req, req->params[0], req->params[1]);
}

/* ---------------------------------------------------------------- search */

/* A search, built by the handler and run by search_run: on the handler's
 * thread, or, when its queries are to be embedded (a remote call that may
 * take seconds), as deferred work (http/request.h, ad_req_defer). Lives in
 * the request's arena. */
typedef struct search_job {
    const char *store;
    ad_search_req rq;
    json_t *echo; /* the queries as given, for search_query (owned) */
} search_job;

static void search_run(ad_req *req, void *ud)
{
    search_job *sj = ud;
    ad_search_hit *hits = NULL;
    size_t n = 0;
    char msg[512];
    ad_err rc = ad_search(req->srv, ad_req_db(req), &sj->rq, &hits, &n, msg, sizeof msg);
    if (rc == AD_ENOTFOUND) {
        json_decref(sj->echo);
        ad_reply_not_found(req, "vector store", sj->store);
        return;
    }
    if (rc == AD_ESTATE) {
        json_decref(sj->echo);
        reply_expired(req, sj->store);
        return;
    }
    if (rc == AD_ECANCELED) { /* shutdown began while its query was embedded */
        json_decref(sj->echo);
        ad_reply_error(req, 503, "server_error", NULL, NULL, "The server is shutting down.");
        return;
    }
    if (rc) {
        json_decref(sj->echo);
        ad_reply_internal(req, rc);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *text = json_string(hits[i].text);
        json_t *item =
            json_pack("{s:s, s:s, s:f, s:o, s:[{s:s, s:o}]}", "file_id", hits[i].file_id,
                      "filename", hits[i].filename, "score", hits[i].score, "attributes",
                      hits[i].attributes ? json_incref(hits[i].attributes) : json_object(),
                      "content", "type", "text", "text", text ? text : json_string(""));
        if (item)
            json_array_append_new(data, item);
    }
    ad_search_hits_free(hits, n);
    ad_reply_json(req, 200,
                  json_pack("{s:s, s:o, s:o, s:b, s:n}", "object",
                            "vector_store.search_results.page", "search_query", sj->echo, "data",
                            data, "has_more", 0, "next_page"));
}

void ad_h_vector_stores_search(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "vector_store_id", "vs_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_search_vector_store);
    if (!body)
        return;
    const json_t *query = json_object_get(body, "query");
    size_t nq = json_is_array(query) ? json_array_size(query) : 1;
    const char **queries = ad_arena_alloc(req->arena, nq * sizeof *queries);
    search_job *sj = ad_arena_alloc(req->arena, sizeof *sj);
    sj->echo = json_array();
    for (size_t i = 0; i < nq; i++) {
        const json_t *q = json_is_array(query) ? json_array_get(query, i) : query;
        queries[i] = json_string_value(q);
        json_array_append(sj->echo, (json_t *)q);
    }
    const json_t *ro = json_object_get(body, "ranking_options");
    const json_t *mx = json_object_get(body, "max_num_results");
    sj->store = req->params[0];
    sj->rq = (ad_search_req){
        .project = req->project,
        .store_ids = &sj->store,
        .nstores = 1,
        .queries = queries,
        .nqueries = nq,
        .max_num_results = mx ? (int)json_integer_value(mx) : 10,
        .score_threshold = json_number_value(json_object_get(ro, "score_threshold")),
        .ranker = json_string_value(json_object_get(ro, "ranker")),
        .filters = json_object_get(body, "filters"),
    };
    if (ad_backends_embeddings(req->srv->backends))
        ad_req_defer(req, search_run, sj);
    else
        search_run(req, sj);
}

/* ---------------------------------------------------------------- helpers for threads/assistants
 */

bool ad_api_vector_store_new(ad_req *req, const json_t *file_ids, const json_t *chunking,
                             const json_t *metadata, const char *name, int expire_days,
                             const char *param, char out[AD_ID_MAX])
{
    if (json_is_array(file_ids) && !ad_api_files_exist(req, file_ids, param))
        return false;
    ad_id_new(out, "vs_");
    int64_t now = ad_now();
    json_t *vs =
        json_pack("{s:s, s:s, s:I, s:s, s:I}", "id", out, "object", "vector_store", "created_at",
                  (json_int_t)now, "name", name ? name : "", "last_active_at", (json_int_t)now);
    if (expire_days > 0)
        json_object_set_new(
            vs, "expires_after",
            json_pack("{s:s, s:i}", "anchor", "last_active_at", "days", expire_days));
    json_object_set_new(vs, "metadata",
                        json_is_object(metadata) ? json_deep_copy(metadata) : json_object());
    char *s = json_dumps(vs, AD_JSON_COMPACT);
    json_decref(vs);
    ad_obj o = {.kind = "vector_store", .id = out, .project = req->project, .created_at = now};
    ad_err rc = s ? ad_db_put(ad_req_db(req), &o, s, strlen(s)) : AD_EINTERNAL;
    free(s);
    size_t i;
    const json_t *f;
    json_array_foreach(file_ids, i, f)
    {
        if (rc)
            break;
        rc = attach(req, out, json_string_value(f), chunking, NULL, NULL, now, NULL);
    }
    return ad_api_ok(req, rc);
}

bool ad_api_thread_file_search(ad_req *req, const char *thread_id, const json_t *attachments,
                               const char *param)
{
    json_t *ids = json_array();
    size_t i, k;
    const json_t *a, *t;
    json_array_foreach(attachments, i, a)
    {
        json_array_foreach(json_object_get(a, "tools"), k, t)
        {
            const char *type = json_string_value(json_object_get(t, "type"));
            if (type && !strcmp(type, "file_search"))
                json_array_append(ids, json_object_get(a, "file_id"));
        }
    }
    if (!json_array_size(ids)) {
        json_decref(ids);
        return true;
    }
    bool ok = false;
    json_t *thread = ad_api_load(req, "thread", thread_id, "thread");
    if (!thread)
        goto out;
    json_t *tr = json_object_get(thread, "tool_resources");
    if (!json_is_object(tr)) {
        tr = json_object();
        json_object_set_new(thread, "tool_resources", tr);
    }
    json_t *fs = json_object_get(tr, "file_search");
    const char *store =
        json_string_value(json_array_get(json_object_get(fs, "vector_store_ids"), 0));
    char vsid[AD_ID_MAX];
    if (store) {
        /* A store deleted or expired since is replaced by a new one. */
        ad_buf b;
        ad_buf_init(&b, AD_VS_JSON_MAX);
        ad_err rc = ad_db_get(ad_req_db(req), req->project, "vector_store", store, &b);
        json_t *vs = rc ? NULL : json_loadb(b.ptr, b.len, 0, NULL);
        ad_buf_free(&b);
        bool expired = true;
        if (vs)
            rc = ad_vector_store_render(ad_req_db(req), req->project, vs, ad_now(), &expired);
        json_decref(vs);
        if (rc && rc != AD_ENOTFOUND) {
            ad_reply_internal(req, rc);
            goto out;
        }
        if (expired)
            store = NULL;
    }
    if (store) {
        /* Attach to the thread's store (no files check needed: the
         * message already checked them). */
        int64_t now = ad_now();
        ad_err rc = AD_OK;
        json_array_foreach(ids, i, t)
        {
            rc = attach(req, store, json_string_value(t), NULL, NULL, NULL, now, NULL);
            if (rc)
                break;
        }
        if (!rc)
            rc = ad_vector_store_touch(ad_req_db(req), req->project, store, now);
        ok = ad_api_ok(req, rc);
        goto out;
    }
    /* As OpenAI: a store per thread, expiring 7 days after its last use. */
    char name[AD_ID_MAX + 32];
    snprintf(name, sizeof name, "Vector store for %s", thread_id);
    char p[300];
    snprintf(p, sizeof p, "%s%sattachments", param, *param ? "." : "");
    if (!ad_api_vector_store_new(req, ids, NULL, NULL, name, 7, p, vsid))
        goto out;
    json_object_set_new(tr, "file_search", json_pack("{s:[s]}", "vector_store_ids", vsid));
    ok = ad_api_ok(req, ad_api_save(req, "thread", thread_id, NULL, thread));
out:
    json_decref(thread);
    json_decref(ids);
    return ok;
}
