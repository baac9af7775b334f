/*
 * assistants.c -- /assistants: create, list, retrieve, modify, delete.
 *
 * Create and modify share one routine that copies the given fields onto the
 * stored object: on modify a field that is present replaces the old value
 * (lists included, as OpenAI documents), a field that is absent is kept.
 *
 * reasoning_effort has no field on AssistantObject: it is kept in the
 * assistant's private extras row (api.h), written in the same transaction
 * as the assistant, and sent to the model by runs that give none of their
 * own (run/prompt.c).
 */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "util/id.h"
#include "util/json.h"

/* Copies body[key] (or null when nullable and null) onto obj[key]. */
static void copy_field(json_t *obj, const json_t *body, const char *key, json_t *if_null)
{
    json_t *v = json_object_get(body, key);
    if (!v) {
        json_decref(if_null);
        return;
    }
    if (json_is_null(v) && if_null)
        json_object_set_new(obj, key, if_null);
    else {
        json_object_set_new(obj, key, json_deep_copy(v));
        json_decref(if_null);
    }
}

/* Tools as OpenAI returns them: function.strict defaults to false. */
static json_t *normalize_tools(const json_t *tools)
{
    json_t *out = json_deep_copy(tools);
    size_t i;
    json_t *t;
    json_array_foreach(out, i, t)
    {
        json_t *fn = json_object_get(t, "function");
        if (json_is_object(fn) && !json_object_get(fn, "strict"))
            json_object_set_new(fn, "strict", json_false());
    }
    return out;
}

/* Applies body to obj, inside the caller's transaction; false after
 * answering an error. */
static bool apply(ad_req *req, json_t *obj, const json_t *body)
{
    const json_t *model = json_object_get(body, "model");
    if (json_is_string(model)) {
        if (!ad_model_known(req->srv, json_string_value(model))) {
            ad_reply_error(req, 400, "invalid_request_error", "model", "model_not_found",
                           "The requested model '%.128s' does not exist.",
                           json_string_value(model));
            return false;
        }
        json_object_set(obj, "model", (json_t *)model);
    }
    copy_field(obj, body, "name", NULL);
    copy_field(obj, body, "description", NULL);
    copy_field(obj, body, "instructions", NULL);
    copy_field(obj, body, "temperature", json_real(1.0));
    copy_field(obj, body, "top_p", json_real(1.0));
    copy_field(obj, body, "response_format", json_string("auto"));
    const json_t *tools = json_object_get(body, "tools");
    if (tools)
        json_object_set_new(obj, "tools",
                            json_is_array(tools) ? normalize_tools(tools) : json_array());
    if (json_object_get(body, "tool_resources")) {
        json_t *tr =
            ad_api_tool_resources(req, json_object_get(body, "tool_resources"), "tool_resources");
        if (!tr)
            return false;
        json_object_set_new(obj, "tool_resources", tr);
    }
    if (json_object_get(body, "metadata"))
        ad_api_set_metadata(obj, body);
    const json_t *effort = json_object_get(body, "reasoning_effort");
    if (effort) {
        ad_err rc = ad_api_extras_set(ad_req_db(req), req->project,
                                      json_string_value(json_object_get(obj, "id")),
                                      "reasoning_effort", effort);
        if (rc) {
            ad_reply_internal(req, rc);
            return false;
        }
    }
    return true;
}

void ad_h_assistants_create(ad_req *req)
{
    const json_t *body = ad_api_body(req, &ad_schema_create_assistant);
    if (!body)
        return;
    char id[AD_ID_MAX];
    ad_id_new(id, "asst_");
    int64_t now = ad_now();
    json_t *obj =
        json_pack("{s:s, s:s, s:I, s:n, s:n, s:s, s:n, s:[], s:{}, s:{}, s:f, s:f, s:s}", "id", id,
                  "object", "assistant", "created_at", (json_int_t)now, "name", "description",
                  "model", "", "instructions", "tools", "tool_resources", "metadata", "top_p", 1.0,
                  "temperature", 1.0, "response_format", "auto");
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db))) {
        json_decref(obj);
        return;
    }
    if (!apply(req, obj, body))
        goto fail;
    ad_obj o = {.kind = "assistant", .id = id, .project = req->project, .created_at = now};
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    ad_err rc = s ? ad_db_put(db, &o, s, strlen(s)) : AD_EINTERNAL;
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        free(s);
        ad_reply_internal(req, rc);
        goto fail;
    }
    ad_reply_raw(req, 200, s, strlen(s));
    free(s);
    json_decref(obj);
    return;
fail:
    ad_db_rollback(db);
    json_decref(obj);
}

void ad_h_assistants_list(ad_req *req)
{
    ad_list_q q = {.project = req->project, .kind = "assistant", .parent = ""};
    if (ad_api_page_params(req, &q, 20, 100, true))
        ad_api_list(req, &q);
}

void ad_h_assistants_get(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "assistant_id", "asst_"))
        return;
    ad_api_get_reply(req, "assistant", req->params[0], "assistant");
}

void ad_h_assistants_modify(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "assistant_id", "asst_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_modify_assistant);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *obj = ad_api_load(req, "assistant", req->params[0], "assistant");
    if (!obj) {
        ad_db_rollback(db);
        return;
    }
    if (!apply(req, obj, body)) {
        ad_db_rollback(db);
        json_decref(obj);
        return;
    }
    ad_err rc = ad_api_save(req, "assistant", req->params[0], NULL, obj);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        json_decref(obj);
        ad_reply_internal(req, rc);
        return;
    }
    ad_reply_json(req, 200, obj);
}

void ad_h_assistants_delete(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "assistant_id", "asst_"))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    ad_err rc = ad_db_delete(db, req->project, "assistant", req->params[0]);
    if (rc == AD_ENOTFOUND) {
        ad_db_rollback(db);
        ad_reply_not_found(req, "assistant", req->params[0]);
        return;
    }
    if (!rc)
        rc = ad_api_extras_delete(db, req->project, req->params[0]);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_reply_internal(req, rc);
        return;
    }
    ad_api_deleted(req, req->params[0], "assistant.deleted");
}
