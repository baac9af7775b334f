/*
 * common.c -- helpers shared by the handlers (see api.h): body parsing and
 * validation, ID checks, pagination, load/modify/store round trips and the
 * OpenAI wording of their errors.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

int64_t ad_now(void)
{
    return (int64_t)time(NULL);
}

static bool check_id(ad_req *req, const char *id, const char *param, const char *prefix);

bool ad_api_check_id(ad_req *req, int i, const char *param, const char *prefix)
{
    return check_id(req, req->params[i], param, prefix);
}

bool ad_api_check_body_id(ad_req *req, const json_t *body, const char *key, const char *prefix)
{
    const char *id = json_string_value(json_object_get(body, key));
    return check_id(req, id ? id : "", key, prefix);
}

static bool check_id(ad_req *req, const char *id, const char *param, const char *prefix)
{
    size_t pl = strlen(prefix);
    /* Prefix letters without the separator, as OpenAI's message shows them. */
    size_t shown = pl && (prefix[pl - 1] == '_' || prefix[pl - 1] == '-') ? pl - 1 : pl;
    bool ok = strncmp(id, prefix, pl) == 0 && strlen(id) > pl && strlen(id) <= 128;
    for (const char *p = id; ok && *p; p++)
        ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             *p == '_' || *p == '-';
    if (!ok)
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': '%.128s'. Expected an ID that begins with '%.*s'.", param, id,
                       (int)shown, prefix);
    return ok;
}

json_t *ad_api_body(ad_req *req, const ad_vfield *schema)
{
    ad_verr err;
    json_t *body = NULL;
    if (req->body.len == 0) {
        body = json_object();
    } else if (!ad_json_parse_body(req->body.ptr, req->body.len, &body, &err)) {
        ad_reply_verr(req, &err);
        return NULL;
    }
    json_decref(req->json);
    req->json = body;
    /* Azure-shaped paths also know the fields Azure's spec adds (AD_V_AZURE). */
    if (schema &&
        !(req->azure ? ad_validate_azure(body, schema, &err) : ad_validate(body, schema, &err))) {
        ad_reply_verr(req, &err);
        return NULL;
    }
    return body;
}

bool ad_api_page_params(ad_req *req, ad_list_q *q, int64_t def, int64_t max, bool allow_before)
{
    const char *limit = ad_req_query(req, "limit");
    const char *order = ad_req_query(req, "order");
    q->limit = def;
    q->asc = false;
    q->after = ad_req_query(req, "after");
    q->before = allow_before ? ad_req_query(req, "before") : NULL;
    if (q->after && !*q->after)
        q->after = NULL;
    if (q->before && !*q->before)
        q->before = NULL;
    if (limit && *limit) {
        int64_t n;
        if (!ad_parse_i64(limit, &n)) {
            ad_reply_error(req, 400, "invalid_request_error", "limit", "invalid_type",
                           "Invalid type for 'limit': expected an integer, but got a string "
                           "instead.");
            return false;
        }
        if (n < 1) {
            ad_reply_error(req, 400, "invalid_request_error", "limit", "integer_below_min_value",
                           "Invalid 'limit': integer below minimum value. Expected a value >= 1, "
                           "but got %lld instead.",
                           (long long)n);
            return false;
        }
        if (n > max) {
            ad_reply_error(req, 400, "invalid_request_error", "limit", "integer_above_max_value",
                           "Invalid 'limit': integer above maximum value. Expected a value <= "
                           "%lld, but got %lld instead.",
                           (long long)max, (long long)n);
            return false;
        }
        q->limit = n;
    }
    if (order && *order) {
        if (!strcmp(order, "asc")) {
            q->asc = true;
        } else if (strcmp(order, "desc") != 0) {
            ad_reply_error(req, 400, "invalid_request_error", "order", "invalid_value",
                           "Invalid value: '%.64s'. Supported values are: 'asc' and 'desc'.",
                           order);
            return false;
        }
    }
    return true;
}

typedef struct list_acc {
    ad_buf *out;
    char first[160];
    char last[160];
    int64_t n;
    ad_api_row_map map;
    void *map_ud;
} list_acc;

static ad_err list_row(void *ud, const char *id, const char *json, size_t len)
{
    list_acc *a = ud;
    ad_err rc = AD_OK;
    if (a->n++)
        rc = ad_buf_addc(a->out, ',');
    if (!rc && a->map)
        rc = a->map(a->map_ud, json, len, a->out);
    else if (!rc)
        rc = ad_buf_add(a->out, json, len);
    if (a->n == 1)
        ad_strlcpy(a->first, id, sizeof a->first);
    ad_strlcpy(a->last, id, sizeof a->last);
    return rc;
}

void ad_api_list(ad_req *req, ad_list_q *q)
{
    ad_api_list_map(req, q, NULL, NULL);
}

void ad_api_list_map(ad_req *req, ad_list_q *q, ad_api_row_map map, void *ud)
{
    list_acc a = {.out = &req->out, .n = 0, .map = map, .map_ud = ud};
    bool has_more = false;
    ad_buf_reset(&req->out);
    ad_err rc = ad_buf_addstr(&req->out, "{\"object\":\"list\",\"data\":[");
    if (!rc)
        rc = ad_db_list(ad_req_db(req), q, list_row, &a, &has_more);
    if (rc == AD_ENOTFOUND) {
        const char *param = q->after ? "after" : "before";
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': no object with id '%.128s' in this list.", param,
                       q->after ? q->after : q->before);
        return;
    }
    if (rc) {
        ad_reply_internal(req, rc);
        return;
    }
    json_t *first = a.n ? json_string(a.first) : json_null();
    json_t *last = a.n ? json_string(a.last) : json_null();
    char *fs = json_dumps(first, JSON_ENCODE_ANY);
    char *ls = json_dumps(last, JSON_ENCODE_ANY);
    json_decref(first);
    json_decref(last);
    rc = ad_buf_printf(&req->out, "],\"first_id\":%s,\"last_id\":%s,\"has_more\":%s}", fs, ls,
                       has_more ? "true" : "false");
    free(fs);
    free(ls);
    if (rc) {
        ad_reply_internal(req, rc);
        return;
    }
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}

bool ad_api_ok(ad_req *req, ad_err rc)
{
    if (rc)
        ad_reply_internal(req, rc);
    return rc == AD_OK;
}

bool ad_api_thread_exists(ad_req *req, const char *thread_id)
{
    ad_buf b;
    ad_buf_init(&b, 64u * 1024 * 1024); /* a thread object is far smaller */
    ad_err rc = ad_db_get(ad_req_db(req), req->project, "thread", thread_id, &b);
    ad_buf_free(&b);
    if (rc == AD_ENOTFOUND)
        ad_reply_not_found(req, "thread", thread_id);
    else if (rc)
        ad_reply_internal(req, rc);
    return rc == AD_OK;
}

void ad_api_put_reply(ad_req *req, const ad_obj *o, json_t *obj)
{
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    json_decref(obj);
    if (!s) {
        ad_reply_internal(req, AD_EINTERNAL);
        return;
    }
    size_t len = strlen(s);
    ad_err rc = ad_db_put(ad_req_db(req), o, s, len);
    if (ad_api_ok(req, rc))
        ad_reply_raw(req, 200, s, len);
    free(s);
}

json_t *ad_api_load(ad_req *req, const char *kind, const char *id, const char *what)
{
    ad_buf b;
    ad_buf_init(&b, 256u * 1024 * 1024);
    ad_err rc = ad_db_get(ad_req_db(req), req->project, kind, id, &b);
    json_t *v = NULL;
    if (rc == AD_ENOTFOUND) {
        ad_reply_not_found(req, what, id);
    } else if (rc) {
        ad_reply_internal(req, rc);
    } else {
        v = json_loadb(b.ptr, b.len, 0, NULL);
        if (!v)
            ad_reply_internal(req, AD_EDB);
    }
    ad_buf_free(&b);
    return v;
}

ad_err ad_api_save(ad_req *req, const char *kind, const char *id, const char *aux,
                   const json_t *obj)
{
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    if (!s)
        return AD_EINTERNAL;
    ad_err rc = ad_db_update(ad_req_db(req), req->project, kind, id, aux, s, strlen(s));
    free(s);
    return rc;
}

void ad_api_deleted(ad_req *req, const char *id, const char *object)
{
    json_t *o = json_pack("{s:s, s:s, s:b}", "id", id, "object", object, "deleted", 1);
    ad_reply_json(req, 200, o);
}

void ad_api_set_metadata(json_t *obj, const json_t *body)
{
    const json_t *m = json_object_get(body, "metadata");
    json_object_set_new(obj, "metadata", json_is_object(m) ? json_deep_copy(m) : json_object());
}

bool ad_api_files_exist(ad_req *req, const json_t *ids, const char *param)
{
    size_t i;
    const json_t *v;
    ad_buf b;
    ad_buf_init(&b, 1024 * 1024);
    json_array_foreach(ids, i, v)
    {
        ad_buf_reset(&b);
        ad_err rc = ad_db_get(ad_req_db(req), req->project, "file", json_string_value(v), &b);
        if (rc == AD_ENOTFOUND) {
            char p[300];
            snprintf(p, sizeof p, "%s[%zu]", param, i);
            ad_reply_error(req, 400, "invalid_request_error", p, "invalid_value",
                           "Invalid '%s': no file found with id '%.128s'.", p,
                           json_string_value(v));
            ad_buf_free(&b);
            return false;
        }
        if (rc) {
            ad_reply_internal(req, rc);
            ad_buf_free(&b);
            return false;
        }
    }
    ad_buf_free(&b);
    return true;
}

json_t *ad_api_tool_resources(ad_req *req, const json_t *tr, const char *param)
{
    json_t *out = json_object();
    if (!json_is_object(tr))
        return out;
    char p[256];
    const json_t *ci = json_object_get(tr, "code_interpreter");
    if (json_is_object(ci)) {
        const json_t *ids = json_object_get(ci, "file_ids");
        snprintf(p, sizeof p, "%s.code_interpreter.file_ids", param);
        if (json_is_array(ids) && !ad_api_files_exist(req, ids, p)) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, "code_interpreter",
                            json_pack("{s:o}", "file_ids",
                                      json_is_array(ids) ? json_deep_copy(ids) : json_array()));
    }
    const json_t *fs = json_object_get(tr, "file_search");
    if (json_is_object(fs)) {
        const json_t *vs = json_object_get(fs, "vector_stores");
        if (json_is_array(vs) && json_array_size(vs) > 0) {
            /* The helper: create the store (schema: at most one), then
             * reference it like vector_store_ids. */
            const json_t *h = json_array_get(vs, 0);
            char id[64];
            snprintf(p, sizeof p, "%s.file_search.vector_stores[0].file_ids", param);
            if (!ad_api_vector_store_new(req, json_object_get(h, "file_ids"),
                                         json_object_get(h, "chunking_strategy"),
                                         json_object_get(h, "metadata"), "", 0, p, id)) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, "file_search", json_pack("{s:[s]}", "vector_store_ids", id));
            return out;
        }
        const json_t *ids = json_object_get(fs, "vector_store_ids");
        size_t i;
        const json_t *v;
        ad_buf b;
        ad_buf_init(&b, 64 * 1024 * 1024);
        json_array_foreach(ids, i, v)
        {
            ad_buf_reset(&b);
            ad_err rc =
                ad_db_get(ad_req_db(req), req->project, "vector_store", json_string_value(v), &b);
            if (rc) {
                snprintf(p, sizeof p, "%s.file_search.vector_store_ids[%zu]", param, i);
                if (rc == AD_ENOTFOUND)
                    ad_reply_error(req, 400, "invalid_request_error", p, "invalid_value",
                                   "Invalid '%s': no vector store found with id '%.128s'.", p,
                                   json_string_value(v));
                else
                    ad_reply_internal(req, rc);
                ad_buf_free(&b);
                json_decref(out);
                return NULL;
            }
        }
        ad_buf_free(&b);
        json_object_set_new(out, "file_search",
                            json_pack("{s:o}", "vector_store_ids",
                                      json_is_array(ids) ? json_deep_copy(ids) : json_array()));
    }
    return out;
}

void ad_api_get_reply(ad_req *req, const char *kind, const char *id, const char *what)
{
    ad_buf_reset(&req->out);
    ad_err rc = ad_db_get(ad_req_db(req), req->project, kind, id, &req->out);
    if (rc == AD_ENOTFOUND) {
        ad_reply_not_found(req, what, id);
        return;
    }
    if (!ad_api_ok(req, rc))
        return;
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}

/* ---- extras: settings an API object has no field for ---- */

#define EXTRAS_ID_MAX (AD_ID_MAX + 8)

/* "extras:<owner id>"; false when the owner's id is too long for one. */
static bool extras_id(char out[EXTRAS_ID_MAX], const char *owner_id)
{
    int n = snprintf(out, EXTRAS_ID_MAX, "extras:%s", owner_id ? owner_id : "");
    return owner_id && *owner_id && n > 0 && n < EXTRAS_ID_MAX;
}

json_t *ad_api_extras_get(ad_db *db, const char *project, const char *owner_id)
{
    char id[EXTRAS_ID_MAX];
    if (!extras_id(id, owner_id))
        return NULL;
    ad_buf b;
    ad_buf_init(&b, 64 * 1024);
    json_t *v = NULL;
    if (!ad_db_get(db, project, "extras", id, &b))
        v = json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

ad_err ad_api_extras_set(ad_db *db, const char *project, const char *owner_id, const char *key,
                         const json_t *value)
{
    char id[EXTRAS_ID_MAX];
    if (!extras_id(id, owner_id))
        return AD_EINVAL;
    json_t *old = ad_api_extras_get(db, project, owner_id);
    json_t *v = old ? json_incref(old) : json_object();
    json_object_set_new(v, key, json_deep_copy(value));
    char *s = json_dumps(v, AD_JSON_COMPACT);
    ad_err rc = AD_EINTERNAL;
    if (!s)
        goto out;
    if (old) {
        rc = ad_db_update(db, project, "extras", id, NULL, s, strlen(s));
    } else {
        ad_obj o = {.kind = "extras",
                    .id = id,
                    .project = project,
                    .parent = owner_id,
                    .aux = "",
                    .created_at = ad_now()};
        rc = ad_db_put(db, &o, s, strlen(s));
    }
out:
    free(s);
    json_decref(v);
    json_decref(old);
    return rc;
}

ad_err ad_api_extras_take(ad_db *db, const char *project, const char *owner_id, const char *key,
                          json_t **out)
{
    *out = NULL;
    json_t *x = ad_api_extras_get(db, project, owner_id);
    json_t *v = json_object_get(x, key);
    if (!v || json_is_null(v)) {
        json_decref(x);
        return AD_OK;
    }
    *out = json_incref(v);
    json_decref(x);
    ad_err rc = ad_api_extras_set(db, project, owner_id, key, json_null());
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

void ad_api_usage_add(json_t *into, const json_t *counts)
{
    static const char *const keys[3] = {"prompt_tokens", "completion_tokens", "total_tokens"};
    for (int i = 0; i < 3; i++)
        json_object_set_new(into, keys[i],
                            json_integer(json_integer_value(json_object_get(into, keys[i])) +
                                         json_integer_value(json_object_get(counts, keys[i]))));
}

ad_err ad_api_extras_delete(ad_db *db, const char *project, const char *owner_id)
{
    char id[EXTRAS_ID_MAX];
    if (!extras_id(id, owner_id))
        return AD_OK;
    ad_err rc = ad_db_delete(db, project, "extras", id);
    return rc == AD_ENOTFOUND ? AD_OK : rc;
}
