/*
 * threads.c -- /threads: create, retrieve, modify, delete.
 *
 * A thread is a small top-level object {id, object, created_at, metadata,
 * tool_resources} (the field order of the spec's examples; tool_resources is
 * {} when none were given). Creating a thread with `messages` stores the
 * thread and every message, in the given order, in one store transaction:
 * either all of them exist afterwards or none does. The messages share the
 * thread's created_at and keep their order through the store's creation
 * sequence. The answer is the thread alone, as OpenAI's.
 *
 * Modify replaces tool_resources and metadata when present (absent: kept).
 * Delete soft-deletes the thread and all its messages in one transaction,
 * so a message of a deleted thread answers 404 afterwards.
 *
 * ad_api_thread_put is the core of create, shared with createThreadAndRun
 * (api/runs.c): it runs inside the caller's transaction.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/sandbox.h"
#include "util/id.h"
#include "util/json.h"

/*
 * Creates a thread (and its initial messages) from a validated
 * CreateThreadRequest, with the caller's transaction open. Returns the
 * thread object (new reference), or NULL after answering an error.
 */
json_t *ad_api_thread_put(ad_req *req, const json_t *body)
{
    json_t *tr =
        ad_api_tool_resources(req, json_object_get(body, "tool_resources"), "tool_resources");
    if (!tr)
        return NULL;
    char id[AD_ID_MAX];
    ad_id_new(id, "thread_");
    int64_t now = ad_now();
    json_t *obj =
        json_pack("{s:s, s:s, s:I}", "id", id, "object", "thread", "created_at", (json_int_t)now);
    ad_api_set_metadata(obj, body);
    json_object_set_new(obj, "tool_resources", tr);
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    if (!s) {
        json_decref(obj);
        ad_reply_internal(req, AD_EINTERNAL);
        return NULL;
    }
    ad_obj o = {.kind = "thread",
                .id = id,
                .project = req->project,
                .parent = "",
                .aux = "",
                .created_at = now};
    ad_err rc = ad_db_put(ad_req_db(req), &o, s, strlen(s));
    free(s);
    if (!ad_api_ok(req, rc)) {
        json_decref(obj);
        return NULL;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(body, "messages"), i, m)
    {
        char p[64];
        snprintf(p, sizeof p, "messages[%zu]", i);
        if (!ad_api_message_put(req, id, m, now, p, NULL)) {
            json_decref(obj);
            return NULL;
        }
    }
    if (json_array_size(json_object_get(body, "messages"))) {
        /* file_search attachments may have given the thread a vector store. */
        json_t *fresh = ad_api_load(req, "thread", id, "thread");
        if (!fresh) {
            json_decref(obj);
            return NULL;
        }
        json_object_set(obj, "tool_resources", json_object_get(fresh, "tool_resources"));
        json_decref(fresh);
    }
    return obj;
}

static bool commit_reply(ad_req *req, json_t *obj)
{
    ad_err rc = ad_db_commit(ad_req_db(req));
    if (rc) {
        json_decref(obj);
        ad_reply_internal(req, rc);
        return false;
    }
    ad_reply_json(req, 200, obj);
    return true;
}

void ad_h_threads_create(ad_req *req)
{
    const json_t *body = ad_api_body(req, &ad_schema_create_thread);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *obj = ad_api_thread_put(req, body);
    if (!obj || !commit_reply(req, obj))
        ad_db_rollback(db);
}

void ad_h_threads_get(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_"))
        return;
    ad_api_get_reply(req, "thread", req->params[0], "thread");
}

void ad_h_threads_modify(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_"))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_modify_thread);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *obj = ad_api_load(req, "thread", req->params[0], "thread");
    if (!obj)
        goto fail;
    if (json_object_get(body, "tool_resources")) {
        json_t *tr =
            ad_api_tool_resources(req, json_object_get(body, "tool_resources"), "tool_resources");
        if (!tr)
            goto fail;
        json_object_set_new(obj, "tool_resources", tr);
    }
    if (json_object_get(body, "metadata"))
        ad_api_set_metadata(obj, body);
    ad_err rc = ad_api_save(req, "thread", req->params[0], NULL, obj);
    if (rc) {
        ad_reply_internal(req, rc);
        goto fail;
    }
    if (commit_reply(req, obj))
        return;
    obj = NULL; /* commit_reply consumed it */
fail:
    json_decref(obj);
    ad_db_rollback(db);
}

void ad_h_threads_delete(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_"))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    ad_err rc = ad_db_delete(db, req->project, "thread", req->params[0]);
    if (rc == AD_ENOTFOUND) {
        ad_db_rollback(db);
        ad_reply_not_found(req, "thread", req->params[0]);
        return;
    }
    /* Its messages and runs go with it (steps are reached only through
     * their run, so they are gone too). */
    if (!rc)
        rc = ad_db_delete_children(db, req->project, "message", req->params[0], NULL);
    if (!rc)
        rc = ad_db_delete_children(db, req->project, "run", req->params[0], NULL);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_reply_internal(req, rc);
        return;
    }
    /* Its code_interpreter session ends (sandbox/sandbox.h). */
    if (req->srv->sandbox)
        ad_sandbox_end(req->srv->sandbox, req->params[0]);
    ad_api_deleted(req, req->params[0], "thread.deleted");
}
