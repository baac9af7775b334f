/*
 * messages.c -- /threads/{thread_id}/messages: create, list, retrieve,
 * modify, delete.
 *
 * A message is stored with kind "message", parent = its thread id and
 * aux = the id of the run that produced it ("" for messages created through
 * this API), so the list filter `run_id` is a plain aux match in the store.
 *
 * Request content (a string, or parts whose text is a plain string) is
 * rewritten into the response shape once, at creation: text parts become
 * {"type":"text","text":{"value","annotations":[]}}, image parts get their
 * default "detail":"auto". Referenced files (image_file parts, attachments)
 * must exist in the caller's project when the message is created.
 *
 * Status of a message created through the API: the spec's examples of
 * createMessage/getMessage/listMessages omit status and completed_at, and
 * printed SDK objects from the real service show them unset; but the schema
 * makes `status` a required, non-nullable enum (in_progress | incomplete |
 * completed). A message written by a client is finished the moment it is
 * stored, so it is created "completed" with completed_at = created_at
 * (consistent for clients that key off either field); incomplete_details,
 * incomplete_at, assistant_id and run_id are explicit nulls. attachments is
 * [] when none were given, as in every spec example.
 *
 * ad_api_message_put is shared with thread creation (threads.c), which
 * stores a new thread's initial messages in the thread's own transaction.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

/* Largest stored thread or message JSON read back by these handlers. */
#define MSG_MAX_JSON (64u * 1024 * 1024)

/* "[prefix.]list[i].sub": the parameter path of a field inside a list item. */
static void param_path(char *out, size_t cap, const char *prefix, const char *list, size_t i,
                       const char *sub)
{
    snprintf(out, cap, "%s%s%s[%zu].%s", prefix ? prefix : "", prefix && *prefix ? "." : "", list,
             i, sub);
}

/* Checks that a referenced file exists in the caller's project; answers 400
 * with OpenAI's wording otherwise (a malformed id gets the ID-prefix message
 * the real service returns for e.g. 'messages[0].attachments[0].file_id'). */
static bool file_exists(ad_req *req, const char *id, const char *param)
{
    ad_buf b;
    ad_buf_init(&b, MSG_MAX_JSON);
    ad_err rc = ad_db_get(ad_req_db(req), req->project, "file", id, &b);
    ad_buf_free(&b);
    if (rc == AD_OK)
        return true;
    if (rc != AD_ENOTFOUND)
        ad_reply_internal(req, rc);
    else if (!ad_str_has_prefix(id, "file"))
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': '%.128s'. Expected an ID that begins with 'file'.", param,
                       id);
    else
        ad_reply_error(req, 400, "invalid_request_error", param, "invalid_value",
                       "Invalid '%s': no file found with id '%.128s'.", param, id);
    return false;
}

/* {"type":"text","text":{"value":s,"annotations":[]}} */
static json_t *text_part(const char *s)
{
    return json_pack("{s:s, s:{s:s, s:[]}}", "type", "text", "text", "value", s, "annotations");
}

/* Response-shaped content from the request's content (validated). */
static json_t *build_content(ad_req *req, const json_t *content, const char *prefix)
{
    if (json_is_string(content))
        return json_pack("[o]", text_part(json_string_value(content)));
    json_t *out = json_array();
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!type)
            type = "";
        if (!strcmp(type, "text")) {
            json_array_append_new(out, text_part(json_string_value(json_object_get(part, "text"))));
        } else if (!strcmp(type, "image_file") || !strcmp(type, "image_url")) {
            bool file = type[6] == 'f';
            const json_t *img = json_object_get(part, type);
            const char *key = file ? "file_id" : "url";
            const char *val = json_string_value(json_object_get(img, key));
            const char *detail = json_string_value(json_object_get(img, "detail"));
            if (file) {
                char p[300];
                param_path(p, sizeof p, prefix, "content", i, "image_file.file_id");
                if (!file_exists(req, val ? val : "", p)) {
                    json_decref(out);
                    return NULL;
                }
            }
            json_array_append_new(out,
                                  json_pack("{s:s, s:{s:s, s:s}}", "type", type, type, key,
                                            val ? val : "", "detail", detail ? detail : "auto"));
        }
    }
    return out;
}

/* Response-shaped attachments: [{file_id, tools:[{type}]}], [] when absent. */
static json_t *build_attachments(ad_req *req, const json_t *atts, const char *prefix)
{
    json_t *out = json_array();
    size_t i;
    const json_t *a;
    json_array_foreach(atts, i, a)
    {
        char p[300];
        param_path(p, sizeof p, prefix, "attachments", i, "file_id");
        const char *fid = json_string_value(json_object_get(a, "file_id"));
        if (!fid) {
            /* The spec leaves file_id optional; an attachment is meaningless without it. */
            ad_reply_error(req, 400, "invalid_request_error", p, "missing_required_parameter",
                           "Missing required parameter: '%s'.", p);
            json_decref(out);
            return NULL;
        }
        if (!file_exists(req, fid, p)) {
            json_decref(out);
            return NULL;
        }
        json_t *tools = json_array();
        size_t j;
        const json_t *t;
        json_array_foreach(json_object_get(a, "tools"), j, t)
        {
            json_array_append_new(
                tools, json_pack("{s:s}", "type", json_string_value(json_object_get(t, "type"))));
        }
        json_array_append_new(out, json_pack("{s:s, s:o}", "file_id", fid, "tools", tools));
    }
    return out;
}

/*
 * Builds a message from a validated CreateMessageRequest and stores it under
 * thread_id, with the caller's transaction open. param prefixes error
 * parameters ("" for a single message, "messages[2]" inside a thread
 * create). On success *out (when not NULL) gets the object. Returns false
 * after answering an error.
 */
bool ad_api_message_put(ad_req *req, const char *thread_id, const json_t *body, int64_t created_at,
                        const char *param, json_t **out)
{
    json_t *content = build_content(req, json_object_get(body, "content"), param);
    if (!content)
        return false;
    json_t *atts = build_attachments(req, json_object_get(body, "attachments"), param);
    if (!atts || !ad_api_thread_file_search(req, thread_id, atts, param)) {
        json_decref(content);
        json_decref(atts);
        return false;
    }
    char id[AD_ID_MAX];
    ad_id_new(id, "msg_");
    const char *role = json_string_value(json_object_get(body, "role"));
    json_t *obj =
        json_pack("{s:s, s:s, s:I, s:n, s:s, s:n, s:s, s:n, s:n, s:I, s:s, s:o, s:o}", "id", id,
                  "object", "thread.message", "created_at", (json_int_t)created_at, "assistant_id",
                  "thread_id", thread_id, "run_id", "status", "completed", "incomplete_details",
                  "incomplete_at", "completed_at", (json_int_t)created_at, "role",
                  role ? role : "user", "content", content, "attachments", atts);
    ad_api_set_metadata(obj, body);
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    if (!s) {
        json_decref(obj);
        ad_reply_internal(req, AD_EINTERNAL);
        return false;
    }
    ad_obj o = {.kind = "message",
                .id = id,
                .project = req->project,
                .parent = thread_id,
                .aux = "",
                .created_at = created_at};
    ad_err rc = ad_db_put(ad_req_db(req), &o, s, strlen(s));
    free(s);
    if (!ad_api_ok(req, rc)) {
        json_decref(obj);
        return false;
    }
    if (out)
        *out = obj;
    else
        json_decref(obj);
    return true;
}

/* Loads message params[1] of thread params[0] into out (raw JSON). Answers
 * 404 naming the thread when the thread is missing, the message otherwise. */
static bool load_message(ad_req *req, ad_buf *out)
{
    ad_err rc = ad_db_get_child(ad_req_db(req), req->project, "message", req->params[0],
                                req->params[1], out);
    if (rc == AD_ENOTFOUND) {
        if (ad_api_thread_exists(req, req->params[0]))
            ad_reply_not_found(req, "message", req->params[1]);
        return false;
    }
    return ad_api_ok(req, rc);
}

static bool check_ids(ad_req *req, bool with_message)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_"))
        return false;
    return !with_message || ad_api_check_id(req, 1, "message_id", "msg_");
}

void ad_h_messages_create(ad_req *req)
{
    if (!check_ids(req, false))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_create_message);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    if (!ad_api_thread_exists(req, req->params[0]))
        goto fail;
    /* A thread is locked while a run is active on it (OpenAI's 400). */
    char active[AD_ID_MAX];
    if (ad_api_active_run(req, req->params[0], active)) {
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Can't add messages to %s while a run %s is active.", req->params[0],
                       active);
        goto fail;
    }
    json_t *obj = NULL;
    if (!ad_api_message_put(req, req->params[0], body, ad_now(), "", &obj))
        goto fail;
    ad_err rc = ad_db_commit(db);
    if (rc) {
        json_decref(obj);
        ad_reply_internal(req, rc);
        goto fail;
    }
    ad_reply_json(req, 200, obj);
    return;
fail:
    ad_db_rollback(db);
}

void ad_h_messages_list(ad_req *req)
{
    if (!check_ids(req, false))
        return;
    ad_list_q q = {.project = req->project, .kind = "message", .parent = req->params[0]};
    if (!ad_api_page_params(req, &q, 20, 100, true))
        return;
    const char *run_id = ad_req_query(req, "run_id");
    if (run_id && *run_id)
        q.aux = run_id;
    if (ad_api_thread_exists(req, req->params[0]))
        ad_api_list(req, &q);
}

void ad_h_messages_get(ad_req *req)
{
    if (!check_ids(req, true))
        return;
    ad_buf_reset(&req->out);
    if (!load_message(req, &req->out))
        return;
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}

void ad_h_messages_modify(ad_req *req)
{
    if (!check_ids(req, true))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_modify_message);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    ad_buf b;
    ad_buf_init(&b, MSG_MAX_JSON);
    json_t *obj = NULL;
    if (!load_message(req, &b))
        goto fail;
    obj = json_loadb(b.ptr, b.len, 0, NULL);
    if (!obj) {
        ad_reply_internal(req, AD_EDB);
        goto fail;
    }
    if (json_object_get(body, "metadata"))
        ad_api_set_metadata(obj, body);
    ad_err rc = ad_api_save(req, "message", req->params[1], NULL, obj);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_reply_internal(req, rc);
        goto fail;
    }
    ad_buf_free(&b);
    ad_reply_json(req, 200, obj);
    return;
fail:
    ad_db_rollback(db);
    json_decref(obj);
    ad_buf_free(&b);
}

void ad_h_messages_delete(ad_req *req)
{
    if (!check_ids(req, true))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    ad_buf b;
    ad_buf_init(&b, MSG_MAX_JSON);
    bool ok = load_message(req, &b);
    ad_buf_free(&b);
    ad_err rc = AD_OK;
    if (ok) {
        rc = ad_db_delete(db, req->project, "message", req->params[1]);
        if (!rc)
            rc = ad_db_commit(db);
        ok = ad_api_ok(req, rc);
    }
    if (!ok) {
        ad_db_rollback(db);
        return;
    }
    ad_api_deleted(req, req->params[1], "thread.message.deleted");
}
