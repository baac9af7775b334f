/*
 * runs.c -- /threads/{id}/runs, /threads/runs and run steps.
 *
 * Handlers do the synchronous half of every run operation in one store
 * transaction -- resolve the assistant and thread, refuse a second active
 * run, store the run as queued (with its additional messages), accept tool
 * outputs, mark a run cancelling -- and then hand the run to the engine
 * (run/engine.h), which does everything that waits on the model. With
 * `stream: true` the response is a Server-Sent Events stream: the handler
 * announces what it did itself (thread.created, thread.run.created/queued,
 * or the completed tool_calls step) and the engine continues on the same
 * stream. A streamed createRun (without additional_messages) is the
 * exception: its checks and the run's JSON are made here without a lock,
 * the stream is answered at once, and the engine's writer stores the run
 * with its other writes -- checking the thread and "no active run" again --
 * and announces it once committed (run/engine.h, ad_engine_create).
 *
 * A run is stored with kind "run", parent = its thread, aux = "active"
 * while queued, in progress, waiting for tool outputs or cancelling; steps
 * with kind "step", parent = their run. A createRun reasoning_effort, which
 * RunObject has no field for, goes to the run's private extras row (api.h)
 * in the run's transaction (so such a streamed creation is not handed to
 * the engine's writer); run/prompt.c sends it, else the assistant's.
 *
 * Creation checks what the schema cannot: tool_choice naming a tool must
 * name one of the run's tools (its override, else the assistant's), and
 * createThreadAndRun's tool_resources must reference existing files and
 * vector stores (as a thread's); they override the assistant's, tool by
 * tool, and show on the run (createRun's run shows {}).
 *
 * Steps are shown as stored, except that file_search result content is
 * left out unless include[] names it (OpenAI's value), and that include[]
 * may also name assistd's own "step_details.tool_calls[*].file_search.queries"
 * to get the queries each file_search call searched (read from the call's
 * private callio row, which OpenAI's step object has no field for).
 */
#include "api/api.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "http/sse.h"
#include "run/backends.h"
#include "run/engine.h"
#include "run/tools.h"
#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

#define POLL_AFTER_MS   "200" /* openai-poll-after-ms for the SDK pollers */
#define JSON_MAX        (64u * 1024 * 1024)
#define INCLUDE_CONTENT "step_details.tool_calls[*].file_search.results[*].content"
/* assistd's own: the queries each file_search call searched (run steps). */
#define INCLUDE_QUERIES "step_details.tool_calls[*].file_search.queries"

static ad_err first_id(void *ud, const char *id, const char *json, size_t len)
{
    (void)json;
    (void)len;
    ad_strlcpy(ud, id, AD_ID_MAX);
    return AD_OK;
}

/* The thread's active run as stored (reservations aside). */
static bool stored_active_run(ad_req *req, const char *thread_id, char out[AD_ID_MAX])
{
    ad_list_q q = {.project = req->project,
                   .kind = "run",
                   .parent = thread_id,
                   .aux = "active",
                   .limit = 1,
                   .asc = true};
    bool more;
    out[0] = '\0';
    ad_db_list(ad_req_db(req), &q, first_id, out, &more);
    return out[0] != '\0';
}

bool ad_api_active_run(ad_req *req, const char *thread_id, char out[AD_ID_MAX])
{
    out[0] = '\0';
    /* A creation reserved but not stored yet counts; asked first, as its
     * reservation ends only once the run is committed. */
    if (req->srv->engine && ad_engine_pending(req->srv->engine, thread_id, out))
        return true;
    return stored_active_run(req, thread_id, out);
}

static bool known_include(const char *v)
{
    return v && (!strcmp(v, INCLUDE_CONTENT) || !strcmp(v, INCLUDE_QUERIES));
}

/* The first include[] value that is not a supported one, if any. */
static enum MHD_Result find_bad_include(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    const char **bad = cls;
    (void)kind;
    if (key && !strcmp(key, "include[]") && !known_include(value)) {
        *bad = value ? value : "";
        return MHD_NO; /* stop at the first */
    }
    return MHD_YES;
}

/* include[] (repeatable; the key and value arrive percent-decoded) may name
 * file_search result content (OpenAI's: on createRun, the streamed step
 * events then carry it) and file_search queries (assistd's: only the step
 * endpoints add them; run creation accepts and ignores it). */
static bool include_ok(ad_req *req)
{
    const char *bad = NULL;
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, find_bad_include, &bad);
    if (bad) {
        ad_reply_error(req, 400, "invalid_request_error", "include", "invalid_value",
                       "Invalid value: '%.128s'. Supported values are: '" INCLUDE_CONTENT
                       "' and '" INCLUDE_QUERIES "'.",
                       bad);
        return false;
    }
    return true;
}

/* Path parameters 0 and 1: a thread id and a run id. */
static bool run_ids(ad_req *req)
{
    return ad_api_check_id(req, 0, "thread_id", "thread_") &&
           ad_api_check_id(req, 1, "run_id", "run_");
}

static json_t *load_child(ad_req *req, const char *kind, const char *parent, const char *id,
                          const char *what);

/* Opens a write transaction and loads the run of the path; NULL (rolled
 * back, answered) on failure. */
static json_t *begin_run(ad_req *req)
{
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return NULL;
    json_t *run = load_child(req, "run", req->params[0], req->params[1], "run");
    if (!run)
        ad_db_rollback(db);
    return run;
}

static void poll_header(ad_req *req)
{
    ad_req_add_header(req, "openai-poll-after-ms", POLL_AFTER_MS);
}

/* Loads an object or answers 404 (no reply when out-of-band errors). */
static json_t *load_child(ad_req *req, const char *kind, const char *parent, const char *id,
                          const char *what)
{
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    ad_err rc = ad_db_get_child(ad_req_db(req), req->project, kind, parent, id, &b);
    json_t *v = NULL;
    if (rc == AD_ENOTFOUND)
        ad_reply_not_found(req, what, id);
    else if (rc)
        ad_reply_internal(req, rc);
    else if (!(v = json_loadb(b.ptr, b.len, 0, NULL)))
        ad_reply_internal(req, AD_EDB);
    ad_buf_free(&b);
    return v;
}

static json_t *pick(const json_t *body, const json_t *assistant, const char *key, json_t *def)
{
    json_t *v = json_object_get(body, key);
    if (v && !json_is_null(v)) {
        json_decref(def);
        return json_deep_copy(v);
    }
    v = assistant ? json_object_get(assistant, key) : NULL;
    if (v && !json_is_null(v)) {
        json_decref(def);
        return json_deep_copy(v);
    }
    return def;
}

/* OpenAI's 400 for a run on a thread with an active one. */
static void reply_active(ad_req *req, const char *thread_id, const char *active)
{
    ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                   "Thread %s already has an active run %s.", thread_id, active);
}

/* Refuses (400) a run on a thread that has an active one. */
static bool no_active_run(ad_req *req, const char *thread_id)
{
    char active[AD_ID_MAX];
    if (ad_api_active_run(req, thread_id, active)) {
        reply_active(req, thread_id, active);
        return false;
    }
    return true;
}

/* Whether tool_choice, when it names a tool, names one of the run's tools
 * (as built: the run's override, else the assistant's): a function by its
 * name, file_search and code_interpreter by type. Answers 400 if not. */
static bool tool_choice_ok(ad_req *req, const json_t *choice, const json_t *tools)
{
    const char *type = json_string_value(json_object_get(choice, "type"));
    if (!type)
        return true; /* "none", "auto", "required" */
    bool fn = !strcmp(type, "function");
    const char *want =
        fn ? json_string_value(json_object_get(json_object_get(choice, "function"), "name")) : type;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *tt = json_string_value(json_object_get(t, "type"));
        const char *name =
            fn ? json_string_value(json_object_get(json_object_get(t, "function"), "name")) : tt;
        if (tt && !strcmp(tt, type) && name && want && !strcmp(name, want))
            return true;
    }
    ad_reply_error(req, 400, "invalid_request_error", "tool_choice", "invalid_value",
                   "Invalid 'tool_choice': no tool named '%.128s' is available to this run.",
                   want ? want : "");
    return false;
}

/* What a run keeps beside its object (its private extras row, api.h):
 * reasoning_effort, which RunObject has no field for. createThreadAndRun
 * has none (its schema has no reasoning_effort). */
static const json_t *run_effort(const json_t *body)
{
    const json_t *v = json_object_get(body, "reasoning_effort");
    return json_is_string(v) ? v : NULL;
}

/* Builds a queued run from the body and its assistant, without writing:
 * NULL after answering an error. *text gets the JSON to store (malloc'd,
 * the caller frees it with free()). Reads only, so createRun does it
 * before taking the store's write lock; the checks that must hold when the
 * run is stored are made again in its transaction (store_run). */
static json_t *build_run(ad_req *req, const char *thread_id, const json_t *body, char **text)
{
    *text = NULL;
    const char *asst_id = json_string_value(json_object_get(body, "assistant_id"));
    json_t *asst = ad_api_load(req, "assistant", asst_id, "assistant");
    if (!asst)
        return NULL;
    if (!no_active_run(req, thread_id)) {
        json_decref(asst);
        return NULL;
    }
    json_t *model = pick(body, asst, "model", json_string(""));
    ad_model scratch;
    if (!ad_model_known(req->srv, json_string_value(model)) ||
        !ad_backends_model(req->srv->backends, json_string_value(model), &scratch)) {
        ad_reply_error(req, 400, "invalid_request_error", "model", "model_not_found",
                       "The requested model '%.128s' does not exist.", json_string_value(model));
        json_decref(model);
        json_decref(asst);
        return NULL;
    }
    /* createThreadAndRun's tool_resources override the assistant's, tool
     * by tool (run/tools.c), checked as a thread's are; createRun has
     * none: {}. */
    json_t *resources =
        ad_api_tool_resources(req, json_object_get(body, "tool_resources"), "tool_resources");
    json_t *tools = pick(body, asst, "tools", json_array());
    if (!resources || !tool_choice_ok(req, json_object_get(body, "tool_choice"), tools)) {
        json_decref(resources);
        json_decref(tools);
        json_decref(model);
        json_decref(asst);
        return NULL;
    }
    json_t *instructions = pick(body, asst, "instructions", json_string(""));
    const char *add = json_string_value(json_object_get(body, "additional_instructions"));
    if (add && *add) {
        const char *base = json_string_value(instructions);
        char *joined = ad_arena_printf(req->arena, "%s%s%s", base, *base ? "\n\n" : "", add);
        json_decref(instructions);
        instructions = json_string(joined);
    }
    json_t *ts = json_object_get(body, "truncation_strategy");
    json_t *trunc = json_is_object(ts) ? json_deep_copy(ts)
                                       : json_pack("{s:s,s:n}", "type", "auto", "last_messages");
    if (!json_object_get(trunc, "last_messages"))
        json_object_set_new(trunc, "last_messages", json_null());

    int64_t now = ad_now();
    char id[AD_ID_MAX];
    ad_id_new(id, "run_");
    json_t *mct = json_object_get(body, "max_completion_tokens");
    json_t *mpt = json_object_get(body, "max_prompt_tokens");
    json_t *run = json_pack(
        "{s:s,s:s,s:I,s:s,s:s,s:s,s:n,s:I,s:n,s:n,s:n,s:n,s:n,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
        "s:o,s:o,s:n,s:n,s:o,s:o,s:o}",
        "id", id, "object", "thread.run", "created_at", (json_int_t)now, "assistant_id", asst_id,
        "thread_id", thread_id, "status", "queued", "started_at", "expires_at",
        (json_int_t)(now + req->srv->cfg.run_ttl), "cancelled_at", "failed_at", "completed_at",
        "required_action", "last_error", "model", model, "instructions", instructions, "tools",
        tools, "tool_resources", resources, "metadata",
        json_is_object(json_object_get(body, "metadata"))
            ? json_deep_copy(json_object_get(body, "metadata"))
            : json_object(),
        "temperature", pick(body, asst, "temperature", json_real(1.0)), "top_p",
        pick(body, asst, "top_p", json_real(1.0)), "max_completion_tokens",
        json_is_integer(mct) ? json_deep_copy(mct) : json_null(), "max_prompt_tokens",
        json_is_integer(mpt) ? json_deep_copy(mpt) : json_null(), "truncation_strategy", trunc,
        "incomplete_details", "usage", "response_format",
        pick(body, asst, "response_format", json_string("auto")), "tool_choice",
        pick(body, NULL, "tool_choice", json_string("auto")), "parallel_tool_calls",
        pick(body, NULL, "parallel_tool_calls", json_true()));
    json_decref(asst);
    *text = json_dumps(run, AD_JSON_COMPACT);
    if (!*text) {
        ad_reply_internal(req, AD_EINTERNAL);
        json_decref(run);
        return NULL;
    }
    return run;
}

/* Inside the open transaction: the run's additional messages, then the run
 * (text, from build_run) as queued, and its extras. False after answering
 * an error. */
static bool store_run(ad_req *req, const char *thread_id, const json_t *body, const json_t *run,
                      const char *text)
{
    int64_t now = json_integer_value(json_object_get(run, "created_at"));
    json_t *extra = json_object_get(body, "additional_messages");
    size_t i;
    json_t *m;
    json_array_foreach(extra, i, m)
    {
        char p[64];
        snprintf(p, sizeof p, "additional_messages[%zu]", i);
        if (!ad_api_message_put(req, thread_id, m, now, p, NULL))
            return false;
    }
    ad_obj o = {.kind = "run",
                .id = json_string_value(json_object_get(run, "id")),
                .project = req->project,
                .parent = thread_id,
                .aux = "active",
                .created_at = now};
    ad_err rc = ad_db_put(ad_req_db(req), &o, text, strlen(text));
    if (!rc && run_effort(body))
        rc = ad_api_extras_set(ad_req_db(req), req->project, o.id, "reasoning_effort",
                               run_effort(body));
    if (rc)
        ad_reply_internal(req, rc);
    return rc == AD_OK;
}

static void send_event(ad_sse *sse, const char *event, const json_t *obj)
{
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    if (s) {
        ad_sse_send(sse, event, s, strlen(s));
        free(s);
    }
}

/* Commits, then answers (JSON or a stream) and hands the run to the engine.
 * thread is announced first when not NULL (createThreadAndRun). */
static bool wants_step_content(ad_req *req);

/* flags: AD_ENGINE_* for the stream (run/engine.h). text: the run's
 * stored JSON, shown as it is (one dump for the write and the answer). */
static void start(ad_req *req, const json_t *body, json_t *thread, json_t *run, const char *text,
                  unsigned flags)
{
    ad_db *db = ad_req_db(req);
    ad_err rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_reply_internal(req, rc);
        return;
    }
    const char *thread_id = json_string_value(json_object_get(run, "thread_id"));
    const char *run_id = json_string_value(json_object_get(run, "id"));
    if (json_is_true(json_object_get(body, "stream"))) {
        ad_sse *sse = ad_engine_stream(req->srv->engine);
        if (thread)
            send_event(sse, "thread.created", thread);
        ad_sse_send(sse, "thread.run.created", text, strlen(text));
        ad_sse_send(sse, "thread.run.queued", text, strlen(text));
        ad_sse_respond(req, sse);
        ad_engine_run_stored(req->srv->engine, req->project, thread_id, run_id, sse, flags, text,
                             run);
        ad_sse_unref(sse);
    } else {
        poll_header(req);
        ad_engine_run_stored(req->srv->engine, req->project, thread_id, run_id, NULL, 0, text, run);
        ad_reply_raw(req, 200, text, strlen(text));
    }
}

/* Once shutdown has begun no run starts or goes on (the engine is ending
 * those in flight): 503, which the SDKs retry, rather than a run that
 * would wait in the store for the next start. */
static bool not_stopping(ad_req *req)
{
    if (!atomic_load(&req->srv->stopping))
        return true;
    ad_reply_error(req, 503, "server_error", NULL, NULL, "The server is shutting down.");
    return false;
}

void ad_h_runs_create(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_") || !include_ok(req) || !not_stopping(req))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_create_run);
    if (!body)
        return;
    if (!ad_api_check_body_id(req, body, "assistant_id", "asst_"))
        return;
    /* The run is built before the write lock is taken (concurrent
     * creations queue on it); when it is stored, what must hold then is
     * checked again: the thread exists and has no active run. */
    const char *thread_id = req->params[0];
    char *text = NULL;
    json_t *run =
        ad_api_thread_exists(req, thread_id) ? build_run(req, thread_id, body, &text) : NULL;
    if (!run)
        return;
    unsigned flags = wants_step_content(req) ? AD_ENGINE_STEP_CONTENT : 0;
    /* The thread is reserved for this run until it is stored: of two
     * creations racing on a thread, the second to reserve is refused here,
     * and the store is asked again after reserving, so a run committed by
     * a creation that reserved and released in between is seen. Either way
     * the loser gets OpenAI's 400 before anything was answered -- never a
     * stream that holds only an error. */
    ad_engine *eng = req->srv->engine;
    const char *run_id = json_string_value(json_object_get(run, "id"));
    char active[AD_ID_MAX];
    bool reserved = ad_engine_reserve(eng, thread_id, run_id, active);
    if (reserved && stored_active_run(req, thread_id, active)) {
        ad_engine_release(eng, thread_id, run_id);
        reserved = false;
    }
    if (!reserved) {
        reply_active(req, thread_id, active);
        free(text);
        json_decref(run);
        return;
    }
    if (json_is_true(json_object_get(body, "stream")) &&
        !json_array_size(json_object_get(body, "additional_messages")) && !run_effort(body)) {
        /* A stream answers at once; the engine's writer stores the run
         * with its other writes (one commit for many creations, no wait
         * for the write lock here), announces it once committed and then
         * releases the thread. A run with additional messages or extras
         * to store beside it takes the transaction below instead. */
        ad_sse *sse = ad_engine_stream(req->srv->engine);
        ad_sse_respond(req, sse);
        ad_engine_create(req->srv->engine, req->project, thread_id, run_id, sse, flags, text, run);
        ad_sse_unref(sse);
        free(text);
        json_decref(run);
        return;
    }
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        goto out;
    if (!ad_api_thread_exists(req, thread_id) || !store_run(req, thread_id, body, run, text)) {
        ad_db_rollback(db);
        goto out;
    }
    start(req, body, NULL, run, text, flags);
out:
    ad_engine_release(eng, thread_id, run_id); /* committed (or not) */
    free(text);
    json_decref(run);
}

void ad_h_runs_create_thread_and_run(ad_req *req)
{
    if (!not_stopping(req))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_create_thread_and_run);
    if (!body)
        return;
    if (!ad_api_check_body_id(req, body, "assistant_id", "asst_"))
        return;
    ad_db *db = ad_req_db(req);
    if (!ad_api_ok(req, ad_db_begin(db)))
        return;
    json_t *tbody = json_object_get(body, "thread");
    json_t *empty = NULL;
    if (!json_is_object(tbody))
        tbody = empty = json_object();
    json_t *thread = ad_api_thread_put(req, tbody);
    json_decref(empty);
    if (!thread) {
        ad_db_rollback(db);
        return;
    }
    const char *thread_id = json_string_value(json_object_get(thread, "id"));
    char *text = NULL;
    json_t *run = build_run(req, thread_id, body, &text);
    if (!run || !store_run(req, thread_id, body, run, text)) {
        ad_db_rollback(db);
        free(text);
        json_decref(run);
        json_decref(thread);
        return;
    }
    start(req, body, thread, run, text, 0);
    free(text);
    json_decref(thread);
    json_decref(run);
}

void ad_h_runs_list(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_"))
        return;
    ad_list_q q = {.project = req->project, .kind = "run", .parent = req->params[0]};
    if (!ad_api_page_params(req, &q, 20, 100, true))
        return;
    json_t *thread = ad_api_load(req, "thread", req->params[0], "thread");
    if (!thread)
        return;
    json_decref(thread);
    ad_api_list(req, &q);
}

void ad_h_runs_get(ad_req *req)
{
    if (!run_ids(req))
        return;
    ad_buf_reset(&req->out);
    ad_err rc = ad_db_get_child(ad_req_db(req), req->project, "run", req->params[0], req->params[1],
                                &req->out);
    if (rc == AD_ENOTFOUND) {
        ad_reply_not_found(req, "run", req->params[1]);
        return;
    }
    if (!ad_api_ok(req, rc))
        return;
    poll_header(req);
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}

void ad_h_runs_modify(ad_req *req)
{
    if (!run_ids(req))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_modify_run);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    json_t *run = begin_run(req);
    if (!run)
        return;
    if (json_object_get(body, "metadata"))
        ad_api_set_metadata(run, body);
    ad_err rc = ad_api_save(req, "run", req->params[1], NULL, run);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        json_decref(run);
        ad_reply_internal(req, rc);
        return;
    }
    ad_reply_json(req, 200, run);
}

void ad_h_runs_cancel(ad_req *req)
{
    if (!run_ids(req))
        return;
    ad_db *db = ad_req_db(req);
    json_t *run = begin_run(req);
    if (!run)
        return;
    const char *st = json_string_value(json_object_get(run, "status"));
    if (!st ||
        (strcmp(st, "queued") && strcmp(st, "in_progress") && strcmp(st, "requires_action"))) {
        ad_db_rollback(db);
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Cannot cancel run with status '%s'.", st ? st : "unknown");
        json_decref(run);
        return;
    }
    json_object_set_new(run, "status", json_string("cancelling"));
    ad_err rc = ad_api_save(req, "run", req->params[1], "active", run);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        json_decref(run);
        ad_reply_internal(req, rc);
        return;
    }
    ad_engine_cancel(req->srv->engine, req->project, req->params[0], req->params[1]);
    poll_header(req);
    ad_reply_json(req, 200, run);
}

/* The in-progress tool_calls step of a run waiting for outputs. */
static ad_err waiting_step(void *ud, const char *id, const char *json, size_t len)
{
    json_t **out = ud;
    json_t *st = json_loadb(json, len, 0, NULL);
    const char *status = json_string_value(json_object_get(st, "status"));
    const char *type = json_string_value(json_object_get(st, "type"));
    (void)id;
    if (status && type && !strcmp(status, "in_progress") && !strcmp(type, "tool_calls") && !*out)
        *out = st;
    else
        json_decref(st);
    return AD_OK;
}

/* *step = the waiting tool_calls step of the run in req->params[1] (NULL
 * if none; the caller owns it). Newest first: a run with more steps than
 * one page still finds it. */
static ad_err find_waiting_step(ad_req *req, json_t **step)
{
    ad_list_q q = {.project = req->project,
                   .kind = "step",
                   .parent = req->params[1],
                   .limit = 1000,
                   .asc = false};
    bool more;
    *step = NULL;
    return ad_db_list(ad_req_db(req), &q, waiting_step, step, &more);
}

/* A waiting tool_calls step ends (completed or expired): the usage of the
 * call that made it, kept while it waited (api.h, AD_EXTRAS_STEP_USAGE),
 * shows now; zero when none was kept. In the open transaction. */
static ad_err take_step_usage(ad_req *req, json_t *step)
{
    json_t *kept = NULL;
    ad_err rc = ad_api_extras_take(ad_req_db(req), req->project, req->params[1],
                                   AD_EXTRAS_STEP_USAGE, &kept);
    const char *owner = json_string_value(json_object_get(kept, "step_id"));
    const char *step_id = json_string_value(json_object_get(step, "id"));
    if (!json_is_object(json_object_get(step, "usage")))
        json_object_set_new(step, "usage", json_object());
    ad_api_usage_add(json_object_get(step, "usage"),
                     owner && step_id && !strcmp(owner, step_id) ? kept : NULL);
    json_decref(kept);
    return rc;
}

/* Expires a run waiting for tool outputs, with its waiting step, inside
 * the open transaction, and commits (as the engine's expiry would). */
static void expire_waiting(ad_req *req, json_t *run)
{
    ad_db *db = ad_req_db(req);
    int64_t now = ad_now();
    json_t *step = NULL;
    ad_err rc = find_waiting_step(req, &step);
    if (!rc && step) {
        json_object_set_new(step, "status", json_string("expired"));
        json_object_set_new(step, "expired_at", json_integer(now));
        rc = take_step_usage(req, step);
        if (!rc)
            rc = ad_api_save(req, "step", json_string_value(json_object_get(step, "id")), NULL,
                             step);
    }
    json_decref(step);
    json_object_set_new(run, "status", json_string("expired"));
    json_object_set_new(run, "expires_at", json_null());
    json_object_set_new(run, "required_action", json_null());
    /* Ended: its calls' usage shows now (api.h, AD_EXTRAS_USAGE). */
    if (!json_is_object(json_object_get(run, "usage")))
        json_object_set_new(run, "usage", json_object());
    json_t *kept = NULL;
    if (!rc)
        rc = ad_api_extras_take(db, req->project, req->params[1], AD_EXTRAS_USAGE, &kept);
    ad_api_usage_add(json_object_get(run, "usage"), kept);
    json_decref(kept);
    if (!rc)
        rc = ad_api_save(req, "run", req->params[1], "", run);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc)
        ad_db_rollback(db); /* the engine's timer expires it instead */
}

/* "['a', 'b']" for error messages. */
static const char *id_list(ad_req *req, const json_t *ids)
{
    ad_buf b;
    ad_buf_init(&b, 64 * 1024);
    ad_buf_addc(&b, '[');
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (ad_buf_printf(&b, "%s'%s'", i ? ", " : "", json_string_value(v)))
            break;
    }
    ad_buf_addc(&b, ']');
    const char *s = ad_arena_strdup(req->arena, ad_buf_str(&b));
    ad_buf_free(&b);
    return s;
}

void ad_h_runs_submit_tool_outputs(ad_req *req)
{
    if (!run_ids(req) || !not_stopping(req))
        return;
    const json_t *body = ad_api_body(req, &ad_schema_submit_tool_outputs);
    if (!body)
        return;
    ad_db *db = ad_req_db(req);
    json_t *run = begin_run(req);
    json_t *step = NULL, *expected = NULL, *got = NULL;
    if (!run)
        return;
    const char *st = json_string_value(json_object_get(run, "status"));
    json_t *exp = json_object_get(run, "expires_at");
    if (st && !strcmp(st, "requires_action") && json_is_integer(exp) &&
        json_integer_value(exp) <= ad_now()) {
        /* Past expires_at, before the engine's timer got to it: the run
         * expires now, and the outputs come too late. */
        expire_waiting(req, run);
        st = "expired";
    }
    if (!st || strcmp(st, "requires_action") != 0) {
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Runs in status \"%s\" do not accept tool outputs.", st ? st : "unknown");
        goto fail;
    }
    json_t *pending = json_object_get(
        json_object_get(json_object_get(run, "required_action"), "submit_tool_outputs"),
        "tool_calls");
    expected = json_array();
    got = json_array();
    size_t i;
    json_t *v;
    for (i = 0; i < json_array_size(pending); i++)
        json_array_append(expected, json_object_get(json_array_get(pending, i), "id"));
    json_t *outs = json_object_get(body, "tool_outputs");
    bool ok = json_array_size(outs) == json_array_size(expected);
    json_array_foreach(outs, i, v)
    {
        json_t *cid = json_object_get(v, "tool_call_id");
        if (!json_is_string(cid)) {
            char p[64];
            snprintf(p, sizeof p, "tool_outputs[%zu].tool_call_id", i);
            ad_reply_error(req, 400, "invalid_request_error", p, "missing_required_parameter",
                           "Missing required parameter: '%s'.", p);
            goto fail;
        }
        bool known = false, dup = false;
        size_t k;
        json_t *e;
        json_array_foreach(expected, k, e) known |= json_equal(e, cid);
        json_array_foreach(got, k, e) dup |= json_equal(e, cid);
        ok = ok && known && !dup;
        json_array_append(got, cid);
    }
    if (!ok) {
        ad_reply_error(req, 400, "invalid_request_error", "tool_outputs", NULL,
                       "Expected tool outputs for call_ids %s, got %s", id_list(req, expected),
                       id_list(req, got));
        goto fail;
    }
    /* Record each output on the waiting step and complete it. */
    ad_err rc = find_waiting_step(req, &step);
    if (rc || !step) {
        ad_reply_internal(req, rc ? rc : AD_EINTERNAL);
        goto fail;
    }
    json_t *calls = json_object_get(json_object_get(step, "step_details"), "tool_calls");
    json_array_foreach(calls, i, v)
    {
        size_t k;
        json_t *o;
        json_array_foreach(outs, k, o)
        {
            if (json_equal(json_object_get(o, "tool_call_id"), json_object_get(v, "id"))) {
                json_t *out = json_object_get(o, "output");
                json_object_set_new(json_object_get(v, "function"), "output",
                                    json_is_string(out) ? json_incref(out) : json_string(""));
            }
        }
    }
    json_object_set_new(step, "status", json_string("completed"));
    json_object_set_new(step, "completed_at", json_integer(ad_now()));
    const char *step_id = json_string_value(json_object_get(step, "id"));
    rc = take_step_usage(req, step);
    if (rc) {
        ad_reply_internal(req, rc);
        goto fail;
    }
    json_object_set_new(run, "status", json_string("queued"));
    json_object_set_new(run, "required_action", json_null());
    rc = ad_api_save(req, "step", step_id, NULL, step);
    if (!rc)
        rc = ad_api_save(req, "run", req->params[1], "active", run);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_reply_internal(req, rc);
        goto fail;
    }
    if (json_is_true(json_object_get(body, "stream"))) {
        ad_sse *sse = ad_engine_stream(req->srv->engine);
        send_event(sse, "thread.run.step.completed", step);
        send_event(sse, "thread.run.queued", run);
        ad_sse_respond(req, sse);
        ad_engine_run(req->srv->engine, req->project, req->params[0], req->params[1], sse, 0);
        ad_sse_unref(sse);
    } else {
        poll_header(req);
        ad_engine_run(req->srv->engine, req->project, req->params[0], req->params[1], NULL, 0);
        ad_reply_json(req, 200, json_incref(run));
    }
    json_decref(run);
    json_decref(step);
    json_decref(expected);
    json_decref(got);
    return;
fail:
    ad_db_rollback(db);
    json_decref(run);
    json_decref(step);
    json_decref(expected);
    json_decref(got);
}

/* How steps are shown: what include[] asked for, and where to read the
 * queries of file_search calls from. */
typedef struct step_view {
    bool content; /* keep file_search result content */
    bool queries; /* add file_search.queries */
    ad_db *db;
    const char *project;
} step_view;

/* Adds "queries" to every file_search call of the step that has run. */
static void add_queries(const step_view *v, json_t *step)
{
    json_t *calls = json_object_get(json_object_get(step, "step_details"), "tool_calls");
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        const char *type = json_string_value(json_object_get(call, "type"));
        const char *id = json_string_value(json_object_get(call, "id"));
        json_t *fs = json_object_get(call, "file_search");
        if (!type || strcmp(type, "file_search") != 0 || !id || !json_is_object(fs))
            continue;
        json_t *q = ad_tools_file_search_queries(v->db, v->project, id);
        if (q)
            json_object_set_new(fs, "queries", q);
    }
}

/* A stored step as shown: file_search result content only when include[]
 * asked for it (the step keeps it, so the quote behind every citation stays
 * retrievable), and the queries of its file_search calls when include[]
 * asked for those. A step without file_search calls, or one wanting content
 * and no queries, is copied as stored without being parsed. */
static ad_err show_step(void *ud, const char *json, size_t len, ad_buf *out)
{
    const step_view *v = ud;
    if ((v->content && !v->queries) || !memmem(json, len, "\"file_search\"", 13))
        return ad_buf_add(out, json, len);
    json_t *st = json_loadb(json, len, 0, NULL);
    if (!st)
        return ad_buf_add(out, json, len);
    if (!v->content)
        ad_tools_strip_content(st);
    if (v->queries)
        add_queries(v, st);
    char *s = json_dumps(st, AD_JSON_COMPACT);
    ad_err rc = s ? ad_buf_addstr(out, s) : AD_EINTERNAL;
    free(s);
    json_decref(st);
    return rc;
}

/* Which include[] values were given (include_ok has refused every other). */
static enum MHD_Result note_include(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    step_view *v = cls;
    (void)kind;
    if (key && !strcmp(key, "include[]") && value) {
        if (!strcmp(value, INCLUDE_CONTENT))
            v->content = true;
        else if (!strcmp(value, INCLUDE_QUERIES))
            v->queries = true;
    }
    return MHD_YES;
}

static step_view view_of(ad_req *req)
{
    step_view v = {.db = ad_req_db(req), .project = req->project};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, note_include, &v);
    return v;
}

/* createRun: whether include[] asked for file_search result content, which
 * the streamed step events then carry (the only include that changes what a
 * run shows; see AD_ENGINE_STEP_CONTENT). */
static bool wants_step_content(ad_req *req)
{
    return view_of(req).content;
}

void ad_h_steps_list(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_") ||
        !ad_api_check_id(req, 1, "run_id", "run_") || !include_ok(req))
        return;
    ad_list_q q = {.project = req->project, .kind = "step", .parent = req->params[1]};
    if (!ad_api_page_params(req, &q, 20, 100, true))
        return;
    json_t *run = load_child(req, "run", req->params[0], req->params[1], "run");
    if (!run)
        return;
    json_decref(run);
    step_view v = view_of(req);
    ad_api_list_map(req, &q, show_step, &v);
}

void ad_h_steps_get(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "thread_id", "thread_") ||
        !ad_api_check_id(req, 1, "run_id", "run_") ||
        !ad_api_check_id(req, 2, "step_id", "step_") || !include_ok(req))
        return;
    json_t *run = load_child(req, "run", req->params[0], req->params[1], "run");
    if (!run)
        return;
    json_decref(run);
    ad_buf raw;
    ad_buf_init(&raw, 64u * 1024 * 1024);
    ad_err rc =
        ad_db_get_child(ad_req_db(req), req->project, "step", req->params[1], req->params[2], &raw);
    if (rc == AD_ENOTFOUND) {
        ad_buf_free(&raw);
        ad_reply_not_found(req, "run step", req->params[2]);
        return;
    }
    step_view v = view_of(req);
    ad_buf_reset(&req->out);
    if (!rc)
        rc = show_step(&v, raw.ptr, raw.len, &req->out);
    ad_buf_free(&raw);
    if (!ad_api_ok(req, rc))
        return;
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}
