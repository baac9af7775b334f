/*
 * engine.c -- the run engine (see engine.h).
 *
 * A run in the engine is a `job`: its ids, the stream attached to it, the
 * model call in flight and what that call has produced so far (the open
 * assistant message, the open tool_calls step). Jobs exist only while the
 * engine is doing something for the run; a run that waits in
 * requires_action has no job, only an expiry timer.
 *
 * Every transition is a read-modify-write of the stored object inside one
 * write transaction (ad_db_begin), so that changes handlers make meanwhile
 * (metadata, a cancel request) are never lost, and the event that announces
 * it carries exactly the committed JSON.
 *
 * One model call produces, in stream order: text (a message_creation step
 * and its message, opened at the first text piece), then tool calls (a
 * tool_calls step, opened at the first call; an open message is completed
 * first, as OpenAI's event order has it). When the call ends: function calls
 * put the run in requires_action; otherwise the run completes (or ends
 * incomplete when max_completion_tokens cut it off). After tool outputs are
 * submitted, the handler queues the run again and the next call carries the
 * whole exchange so far (prompt.c).
 *
 * Time: a once-a-second tick sends heartbeats (": keep-alive" after
 * --sse-heartbeat seconds of silence) and expires runs still working at
 * their expires_at (--run-ttl after creation, as OpenAI's 10 minutes): the
 * model call is stopped and the run, its open step and message end expired.
 * A run waiting for tool outputs has a timer of its own instead (expire_cb).
 */
#include "run/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "run/backends.h"
#include "run/prompt.h"
#include "run/tokenizer.h"
#include "run/tools.h"
#include "run/upstream.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/str.h"

#define JSON_MAX  (64u * 1024 * 1024)
#define RESTARTED "The run was interrupted by a restart of the server."

typedef struct job job;

struct ad_engine {
    ad_server *srv;
    ad_upstream *up;
    ad_toolpool *pool; /* built-in tool executions (run/tools.h) */
    ad_db *db;         /* loop thread only */
    job *jobs;
    bool stopping;
    pthread_mutex_t tasks_mu; /* tasks posted to the loop and not yet run */
    struct task *tasks;
    pthread_mutex_t mu; /* ad_engine_recover and _stop wait for the loop with these */
    pthread_cond_t cv;
    bool recovered, stopped;
};

typedef struct call_state {
    char id[AD_ID_MAX]; /* our call_ id */
    ad_buf name, args;
    ad_tool_kind kind;
    ad_jsfield code; /* code_interpreter: the code, decoded as it streams */
} call_state;

struct job {
    job *next;
    ad_engine *e;
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX], assistant_id[AD_ID_MAX];
    ad_sse *sse;
    ad_up_call *call;
    bool cancel_requested;
    bool expire_requested; /* expires_at passed while the run was active */
    int64_t expires_at;    /* 0: none */
    bool paused;
    /* the model call in flight */
    char msg_id[AD_ID_MAX], msg_step_id[AD_ID_MAX];
    ad_buf text;
    bool text_announced;
    char tool_step_id[AD_ID_MAX];
    call_state calls[AD_CS_MAX_TOOL_CALLS];
    int ncalls;
    /* built-in tools */
    json_t *tools;     /* the run's tools (which calls are built-in) */
    int tools_pending; /* executions in the pool */
    const char *tool_fail_code;
    char tool_fail_msg[256];
    ad_cs_turn *usage; /* the finished call's usage, kept while tools run */
    json_t *images;    /* figures to show in the next message (file ids) */
    int text_index;    /* content index of the open message's text part */
};

/* ---- posted work carries ids by value ---- */

typedef struct task {
    struct task *prev, *next; /* in ad_engine.tasks until run or dropped */
    ad_engine *e;
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX];
    ad_sse *sse;
    bool cancel;
} task;

/* Posted work that the loop may drop unrun at shutdown stays on a list so
 * that ad_engine_free can release it (upstream.h: dropped work's ud remains
 * the poster's). */
static task *task_new(ad_engine *e)
{
    task *tk = ad_calloc(1, sizeof *tk);
    tk->e = e;
    pthread_mutex_lock(&e->tasks_mu);
    tk->next = e->tasks;
    if (e->tasks)
        e->tasks->prev = tk;
    e->tasks = tk;
    pthread_mutex_unlock(&e->tasks_mu);
    return tk;
}

static void task_free(task *tk)
{
    ad_engine *e = tk->e;
    pthread_mutex_lock(&e->tasks_mu);
    if (tk->prev)
        tk->prev->next = tk->next;
    else
        e->tasks = tk->next;
    if (tk->next)
        tk->next->prev = tk->prev;
    pthread_mutex_unlock(&e->tasks_mu);
    if (tk->sse) {
        ad_sse_close(tk->sse);
        ad_sse_unref(tk->sse);
    }
    ad_free(tk);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ---- store helpers (loop thread) ---- */

static json_t *load(ad_engine *e, const char *project, const char *kind, const char *id)
{
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    json_t *v = NULL;
    if (ad_db_get(e->db, project, kind, id, &b) == AD_OK)
        v = json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    return v;
}

static ad_err save(ad_engine *e, const char *project, const char *kind, const char *id,
                   const char *aux, const json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (!s)
        return AD_EINTERNAL;
    ad_err rc = ad_db_update(e->db, project, kind, id, aux, s, strlen(s));
    free(s);
    return rc;
}

static ad_err insert(ad_engine *e, const char *project, const char *kind, const char *id,
                     const char *parent, const char *aux, int64_t created, const json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (!s)
        return AD_EINTERNAL;
    ad_obj o = {.kind = kind,
                .id = id,
                .project = project,
                .parent = parent,
                .aux = aux,
                .created_at = created};
    ad_err rc = ad_db_put(e->db, &o, s, strlen(s));
    free(s);
    return rc;
}

static void announce(job *j, const char *event, const json_t *obj)
{
    if (!j->sse)
        return;
    char *s = json_dumps(obj, JSON_COMPACT);
    if (!s)
        return;
    size_t waiting = ad_sse_send(j->sse, event, s, strlen(s));
    free(s);
    /* Back-pressure: stop reading the model while the client lags. */
    if (waiting >= AD_SSE_HIGH_WATER && j->call && !j->paused) {
        j->paused = true;
        ad_upstream_pause(j->e->up, j->call);
    }
}

static bool is_terminal(const char *status)
{
    return !strcmp(status, "completed") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled") || !strcmp(status, "expired") ||
           !strcmp(status, "incomplete");
}

static const char *status_of(const json_t *run)
{
    const char *s = json_string_value(json_object_get(run, "status"));
    return s ? s : "";
}

/* ---- jobs ---- */

static job *find_job(ad_engine *e, const char *run_id)
{
    for (job *j = e->jobs; j; j = j->next)
        if (!strcmp(j->run_id, run_id))
            return j;
    return NULL;
}

static void reset_call_state(job *j)
{
    ad_buf_free(&j->text);
    ad_buf_init(&j->text, 8u * 1024 * 1024);
    j->msg_id[0] = j->msg_step_id[0] = j->tool_step_id[0] = '\0';
    j->text_announced = false;
    for (int i = 0; i < j->ncalls; i++) {
        ad_buf_free(&j->calls[i].name);
        ad_buf_free(&j->calls[i].args);
    }
    j->ncalls = 0;
}

static void job_end(job *j)
{
    ad_engine *e = j->e;
    for (job **p = &e->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (j->sse) {
        ad_sse_close(j->sse);
        ad_sse_unref(j->sse);
    }
    reset_call_state(j);
    ad_buf_free(&j->text);
    json_decref(j->tools);
    json_decref(j->images);
    ad_free(j->usage);
    ad_free(j);
}

/* ---- run transitions ---- */

typedef void (*run_edit)(json_t *run, void *arg);

/* Applies edit to the stored run in a transaction; announces event with the
 * committed run (event may be NULL). aux: "active" or "" (terminal). Returns
 * the committed run (new reference) or NULL. */
static json_t *update_run(job *j, run_edit edit, void *arg, const char *event)
{
    ad_engine *e = j->e;
    if (ad_db_begin(e->db))
        return NULL;
    json_t *run = load(e, j->project, "run", j->run_id);
    if (!run) {
        ad_db_rollback(e->db);
        return NULL;
    }
    edit(run, arg);
    const char *aux = is_terminal(status_of(run)) ? "" : "active";
    if (save(e, j->project, "run", j->run_id, aux, run) || ad_db_commit(e->db)) {
        ad_db_rollback(e->db);
        json_decref(run);
        return NULL;
    }
    if (event)
        announce(j, event, run);
    return run;
}

static void edit_in_progress(json_t *run, void *arg)
{
    (void)arg;
    json_object_set_new(run, "status", json_string("in_progress"));
    if (json_is_null(json_object_get(run, "started_at")))
        json_object_set_new(run, "started_at", json_integer(now_s()));
}

typedef struct end_args {
    const char *status; /* completed, failed, cancelled, expired, incomplete */
    const char *code, *message;
    const char *incomplete_reason;
} end_args;

static void add_usage(json_t *obj, const ad_cs_turn *t)
{
    if (!t || !t->have_usage)
        return;
    json_t *u = json_object_get(obj, "usage");
    if (!json_is_object(u)) {
        u = json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)0, "completion_tokens",
                      (json_int_t)0, "total_tokens", (json_int_t)0);
        json_object_set_new(obj, "usage", u);
    }
    const char *keys[3] = {"prompt_tokens", "completion_tokens", "total_tokens"};
    int64_t add[3] = {t->prompt_tokens, t->completion_tokens,
                      t->total_tokens ? t->total_tokens : t->prompt_tokens + t->completion_tokens};
    for (int i = 0; i < 3; i++)
        json_object_set_new(u, keys[i],
                            json_integer(json_integer_value(json_object_get(u, keys[i])) + add[i]));
}

static void edit_end(json_t *run, void *arg)
{
    end_args *a = arg;
    int64_t now = now_s();
    json_object_set_new(run, "status", json_string(a->status));
    json_object_set_new(run, "expires_at", json_null());
    json_object_set_new(run, "required_action", json_null());
    if (!strcmp(a->status, "completed"))
        json_object_set_new(run, "completed_at", json_integer(now));
    if (!strcmp(a->status, "failed"))
        json_object_set_new(run, "failed_at", json_integer(now));
    if (!strcmp(a->status, "cancelled"))
        json_object_set_new(run, "cancelled_at", json_integer(now));
    if (a->code)
        json_object_set_new(run, "last_error",
                            json_pack("{s:s,s:s}", "code", a->code, "message", a->message));
    if (a->incomplete_reason)
        json_object_set_new(run, "incomplete_details",
                            json_pack("{s:s}", "reason", a->incomplete_reason));
    if (json_is_null(json_object_get(run, "usage")))
        json_object_set_new(run, "usage",
                            json_pack("{s:i,s:i,s:i}", "prompt_tokens", 0, "completion_tokens", 0,
                                      "total_tokens", 0));
}

static void edit_usage(json_t *run, void *arg)
{
    add_usage(run, arg);
}

/* ---- steps and messages ---- */

static json_t *new_step(job *j, const char *id, const char *type, json_t *details)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:n,s:n,s:n,s:n,s:n,s:o,s:n,s:{}}", "id", id,
                     "object", "thread.run.step", "created_at", (json_int_t)now_s(), "run_id",
                     j->run_id, "assistant_id", j->assistant_id, "thread_id", j->thread_id, "type",
                     type, "status", "in_progress", "cancelled_at", "completed_at", "expired_at",
                     "failed_at", "last_error", "step_details", details, "usage", "metadata");
}

/* Ends a step (status, timestamps, usage) and announces it. */
static void end_step(job *j, const char *step_id, const char *status, const ad_cs_turn *usage,
                     const char *code, const char *message)
{
    ad_engine *e = j->e;
    if (ad_db_begin(e->db))
        return;
    json_t *st = load(e, j->project, "step", step_id);
    if (!st || strcmp(status_of(st), "in_progress") != 0) {
        ad_db_rollback(e->db);
        json_decref(st);
        return;
    }
    int64_t now = now_s();
    json_object_set_new(st, "status", json_string(status));
    const char *field = !strcmp(status, "completed")   ? "completed_at"
                        : !strcmp(status, "cancelled") ? "cancelled_at"
                        : !strcmp(status, "expired")   ? "expired_at"
                                                       : "failed_at";
    json_object_set_new(st, field, json_integer(now));
    if (code)
        json_object_set_new(st, "last_error",
                            json_pack("{s:s,s:s}", "code", code, "message", message));
    if (!strcmp(status, "completed")) {
        if (usage && usage->have_usage)
            add_usage(st, usage);
        else if (!json_is_object(json_object_get(st, "usage")))
            json_object_set_new(st, "usage",
                                json_pack("{s:i,s:i,s:i}", "prompt_tokens", 0, "completion_tokens",
                                          0, "total_tokens", 0));
    }
    if (save(e, j->project, "step", step_id, NULL, st) || ad_db_commit(e->db)) {
        ad_db_rollback(e->db);
        json_decref(st);
        return;
    }
    char ev[64];
    snprintf(ev, sizeof ev, "thread.run.step.%s", status);
    /* Streams show file_search results without their content, as a list
     * without include[] does (the stored step keeps it). */
    ad_tools_strip_content(st);
    announce(j, ev, st);
    json_decref(st);
}

/* The content of a run's message: the figures code_interpreter made since
 * the previous message, then the text with its annotations (tools.h). */
static json_t *text_content(job *j, const char *text, size_t len, json_t **anns)
{
    json_t *c = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(j->images, i, v)
    {
        json_array_append_new(c, json_pack("{s:s,s:{s:O,s:s}}", "type", "image_file", "image_file",
                                           "file_id", v, "detail", "auto"));
    }
    json_t *a =
        j->tools ? ad_tools_annotate(j->e->db, j->project, j->run_id, text, len) : json_array();
    json_array_append_new(c, json_pack("{s:s,s:{s:s%,s:O}}", "type", "text", "text", "value", text,
                                       len, "annotations", a));
    *anns = a;
    return c;
}

/* Ends a message of the run: completed or incomplete (with reason). text,
 * when not NULL, becomes its content; otherwise the stored content stays
 * (restart recovery, where the streamed text was only in memory). Only a
 * message still in progress changes. */
static void close_message(job *j, const char *msg_id, const char *status, const char *reason,
                          const ad_buf *text)
{
    ad_engine *e = j->e;
    if (ad_db_begin(e->db))
        return;
    json_t *m = load(e, j->project, "message", msg_id);
    if (!m || strcmp(status_of(m), "in_progress") != 0) {
        ad_db_rollback(e->db);
        json_decref(m);
        return;
    }
    int64_t now = now_s();
    json_object_set_new(m, "status", json_string(status));
    json_t *anns = NULL;
    if (text)
        json_object_set_new(m, "content", text_content(j, ad_buf_str(text), text->len, &anns));
    if (!strcmp(status, "completed")) {
        json_object_set_new(m, "completed_at", json_integer(now));
    } else {
        json_object_set_new(m, "incomplete_at", json_integer(now));
        json_object_set_new(m, "incomplete_details", json_pack("{s:s}", "reason", reason));
    }
    if (save(e, j->project, "message", msg_id, NULL, m) || ad_db_commit(e->db)) {
        ad_db_rollback(e->db);
        json_decref(anns);
        json_decref(m);
        return;
    }
    if (json_array_size(anns)) { /* the annotations, as a delta of the text part */
        json_t *list = json_array();
        size_t i;
        json_t *a;
        json_array_foreach(anns, i, a)
        {
            json_t *d = json_deep_copy(a);
            json_object_set_new(d, "index", json_integer((json_int_t)i));
            json_array_append_new(list, d);
        }
        json_t *d = json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:{s:o}}]}}", "id", msg_id, "object",
                              "thread.message.delta", "delta", "content", "index", j->text_index,
                              "type", "text", "text", "annotations", list);
        announce(j, "thread.message.delta", d);
        json_decref(d);
    }
    json_decref(anns);
    if (text) { /* the figures are shown in this message */
        json_decref(j->images);
        j->images = NULL;
    }
    announce(
        j, !strcmp(status, "completed") ? "thread.message.completed" : "thread.message.incomplete",
        m);
    json_decref(m);
}

/* Completes (or marks incomplete) the open message of this call. */
static void end_message(job *j, const char *status, const char *reason)
{
    if (!j->msg_id[0])
        return;
    close_message(j, j->msg_id, status, reason, &j->text);
    j->msg_id[0] = '\0';
}

static ad_err open_message(job *j)
{
    ad_engine *e = j->e;
    char step_id[AD_ID_MAX];
    ad_id_new(j->msg_id, "msg_");
    ad_id_new(step_id, "step_");
    int64_t now = now_s();
    json_t *msg = json_pack(
        "{s:s,s:s,s:I,s:s,s:s,s:n,s:n,s:n,s:s,s:[],s:s,s:s,s:[],s:{}}", "id", j->msg_id, "object",
        "thread.message", "created_at", (json_int_t)now, "thread_id", j->thread_id, "status",
        "in_progress", "incomplete_details", "completed_at", "incomplete_at", "role", "assistant",
        "content", "assistant_id", j->assistant_id, "run_id", j->run_id, "attachments", "metadata");
    json_t *step = new_step(j, step_id, "message_creation",
                            json_pack("{s:s,s:{s:s}}", "type", "message_creation",
                                      "message_creation", "message_id", j->msg_id));
    ad_err rc = ad_db_begin(e->db);
    if (!rc)
        rc = insert(e, j->project, "step", step_id, j->run_id, "", now, step);
    if (!rc)
        rc = insert(e, j->project, "message", j->msg_id, j->thread_id, j->run_id, now, msg);
    if (!rc)
        rc = ad_db_commit(e->db);
    if (rc) {
        ad_db_rollback(e->db);
        j->msg_id[0] = '\0';
    } else {
        ad_strlcpy(j->msg_step_id, step_id, sizeof j->msg_step_id);
        announce(j, "thread.run.step.created", step);
        announce(j, "thread.run.step.in_progress", step);
        announce(j, "thread.message.created", msg);
        announce(j, "thread.message.in_progress", msg);
        j->text_index = (int)json_array_size(j->images);
        size_t i;
        json_t *v;
        json_array_foreach(j->images, i, v)
        {
            json_t *d =
                json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:{s:O,s:s}}]}}", "id", j->msg_id, "object",
                          "thread.message.delta", "delta", "content", "index", (int)i, "type",
                          "image_file", "image_file", "file_id", v, "detail", "auto");
            announce(j, "thread.message.delta", d);
            json_decref(d);
        }
    }
    json_decref(msg);
    json_decref(step);
    return rc;
}

/* The message of this call is complete (text followed by tool calls). */
static void close_message_step(job *j, const ad_cs_turn *usage)
{
    if (!j->msg_step_id[0])
        return;
    end_message(j, "completed", NULL);
    end_step(j, j->msg_step_id, "completed", usage, NULL, NULL);
    j->msg_step_id[0] = '\0';
}

/* ---- upstream callbacks ---- */

static ad_err on_text(void *ud, const char *piece, size_t len)
{
    job *j = ud;
    if (!j->msg_id[0] && !j->msg_step_id[0] && open_message(j))
        return AD_EDB;
    if (ad_buf_add(&j->text, piece, len))
        return AD_ETOOBIG;
    json_t *text = json_pack("{s:s%}", "value", piece, len);
    if (!j->text_announced) {
        json_object_set_new(text, "annotations", json_array());
        j->text_announced = true;
    }
    json_t *d = json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:o}]}}", "id", j->msg_id, "object",
                          "thread.message.delta", "delta", "content", "index", j->text_index,
                          "type", "text", "text", text);
    announce(j, "thread.message.delta", d);
    json_decref(d);
    return AD_OK;
}

static void announce_step_delta(job *j, json_t *tool_call)
{
    json_t *d = json_pack("{s:s,s:s,s:{s:{s:s,s:[o]}}}", "id", j->tool_step_id, "object",
                          "thread.run.step.delta", "delta", "step_details", "type", "tool_calls",
                          "tool_calls", tool_call);
    announce(j, "thread.run.step.delta", d);
    json_decref(d);
}

static ad_err on_tool_call_start(void *ud, int index, const char *id, const char *name)
{
    job *j = ud;
    (void)id; /* the upstream's id; ours is issued below */
    if (index < 0 || index >= AD_CS_MAX_TOOL_CALLS)
        return AD_EINVAL;
    close_message_step(j, NULL);
    if (!j->tool_step_id[0]) {
        char step_id[AD_ID_MAX];
        ad_id_new(step_id, "step_");
        json_t *step = new_step(j, step_id, "tool_calls",
                                json_pack("{s:s,s:[]}", "type", "tool_calls", "tool_calls"));
        if (insert(j->e, j->project, "step", step_id, j->run_id, "", now_s(), step)) {
            json_decref(step);
            return AD_EDB;
        }
        ad_strlcpy(j->tool_step_id, step_id, sizeof j->tool_step_id);
        announce(j, "thread.run.step.created", step);
        announce(j, "thread.run.step.in_progress", step);
        json_decref(step);
    }
    while (j->ncalls <= index) {
        call_state *c = &j->calls[j->ncalls++];
        ad_id_new(c->id, "call_");
        ad_buf_init(&c->name, 256);
        ad_buf_init(&c->args, 4u * 1024 * 1024);
    }
    call_state *c = &j->calls[index];
    ad_buf_reset(&c->name);
    if (ad_buf_addstr(&c->name, name ? name : ""))
        return AD_ETOOBIG;
    c->kind = ad_tool_kind_of(j->tools, ad_buf_str(&c->name));
    ad_jsfield_init(&c->code);
    if (c->kind == AD_TOOL_CODE_INTERPRETER)
        announce_step_delta(j, json_pack("{s:i,s:s,s:s,s:{s:s,s:[]}}", "index", index, "id", c->id,
                                         "type", "code_interpreter", "code_interpreter", "input",
                                         "", "outputs"));
    else if (c->kind == AD_TOOL_FILE_SEARCH)
        announce_step_delta(j, json_pack("{s:i,s:s,s:s,s:{}}", "index", index, "id", c->id, "type",
                                         "file_search", "file_search"));
    else
        announce_step_delta(j, json_pack("{s:i,s:s,s:s,s:{s:s,s:s,s:n}}", "index", index, "id",
                                         c->id, "type", "function", "function", "name",
                                         ad_buf_str(&c->name), "arguments", "", "output"));
    return AD_OK;
}

static ad_err on_tool_call_args(void *ud, int index, const char *piece, size_t len)
{
    job *j = ud;
    if (index < 0 || index >= j->ncalls)
        return AD_EINVAL;
    call_state *c = &j->calls[index];
    if (ad_buf_add(&c->args, piece, len))
        return AD_ETOOBIG;
    if (c->kind == AD_TOOL_CODE_INTERPRETER) {
        /* The code as the model writes it, decoded from its JSON string. */
        ad_buf code;
        ad_buf_init(&code, 4u * 1024 * 1024);
        ad_err rc = ad_jsfield_feed(&c->code, "code", piece, len, &code);
        if (!rc && code.len)
            announce_step_delta(j, json_pack("{s:i,s:s,s:{s:s%}}", "index", index, "type",
                                             "code_interpreter", "code_interpreter", "input",
                                             code.ptr, code.len));
        ad_buf_free(&code);
        return rc;
    }
    if (c->kind == AD_TOOL_FILE_SEARCH)
        return AD_OK;
    announce_step_delta(j, json_pack("{s:i,s:s,s:{s:s%}}", "index", index, "type", "function",
                                     "function", "arguments", piece, len));
    return AD_OK;
}

/* ---- ending a run ---- */

static void fail_open_parts(job *j, const char *step_status, const char *msg_reason,
                            const char *code, const char *message)
{
    if (j->msg_id[0])
        end_message(j, "incomplete", msg_reason);
    if (j->msg_step_id[0])
        end_step(j, j->msg_step_id, step_status, NULL, code, message);
    if (j->tool_step_id[0])
        end_step(j, j->tool_step_id, step_status, NULL, code, message);
    j->msg_step_id[0] = j->tool_step_id[0] = '\0';
}

/* Ids of a run's steps or messages still in progress. A run has a few
 * steps per model call; 64 open at once is far beyond what one call opens. */
typedef struct open_ids {
    char ids[64][AD_ID_MAX];
    int n;
} open_ids;

static ad_err collect_open(void *ud, const char *id, const char *json, size_t len)
{
    open_ids *o = ud;
    json_t *v = json_loadb(json, len, 0, NULL);
    if (v && !strcmp(status_of(v), "in_progress") && o->n < 64)
        ad_strlcpy(o->ids[o->n++], id, AD_ID_MAX);
    json_decref(v);
    return AD_OK;
}

/* Ends every step of the run still in progress (e.g. a tool_calls step
 * waiting for outputs when the run is cancelled or expires); code and
 * message, when not NULL, become the steps' last_error. */
static void sweep_steps(job *j, const char *status, const char *code, const char *message)
{
    open_ids o = {.n = 0};
    ad_list_q q = {
        .project = j->project, .kind = "step", .parent = j->run_id, .limit = 1000, .asc = true};
    bool more;
    if (ad_db_list(j->e->db, &q, collect_open, &o, &more))
        return;
    for (int i = 0; i < o.n; i++)
        end_step(j, o.ids[i], status, NULL, code, message);
}

/* Closes as incomplete every message of the run still in progress: after a
 * restart, the message a call was streaming into (its text, kept in memory
 * only, is lost; what was stored stays). */
static void sweep_messages(job *j, const char *reason)
{
    open_ids o = {.n = 0};
    ad_list_q q = {.project = j->project,
                   .kind = "message",
                   .parent = j->thread_id,
                   .aux = j->run_id,
                   .limit = 1000,
                   .asc = true};
    bool more;
    if (ad_db_list(j->e->db, &q, collect_open, &o, &more))
        return;
    for (int i = 0; i < o.n; i++)
        close_message(j, o.ids[i], "incomplete", reason, NULL);
}

static const char *step_status_for(const char *run_status)
{
    if (!strcmp(run_status, "cancelled") || !strcmp(run_status, "expired") ||
        !strcmp(run_status, "failed"))
        return run_status;
    return "completed";
}

static void finish(job *j, end_args *a)
{
    sweep_steps(j, step_status_for(a->status), NULL, NULL);
    json_t *run = update_run(j, edit_end, a, NULL);
    if (run) {
        char ev[64];
        snprintf(ev, sizeof ev, "thread.run.%s", a->status);
        announce(j, ev, run);
        json_decref(run);
    }
    job_end(j);
}

/* A run that ends (or a server that stops) while its code_interpreter call
 * executes interrupts the code: the execution would otherwise go on to the
 * sandbox timeout, holding a pool thread and the thread's session (the next
 * run's code would wait for it). Its late result is dropped by tool_done. */
static void interrupt_tools(job *j)
{
    if (!j->tools_pending)
        return;
    for (int i = 0; i < j->ncalls; i++)
        if (j->calls[i].name.len && j->calls[i].kind == AD_TOOL_CODE_INTERPRETER) {
            ad_sandbox_interrupt(j->e->srv->sandbox, j->thread_id);
            return;
        }
}

static void finish_cancelled(job *j)
{
    interrupt_tools(j);
    fail_open_parts(j, "cancelled", "run_cancelled", NULL, NULL);
    end_args a = {.status = "cancelled"};
    finish(j, &a);
}

static void finish_expired(job *j)
{
    interrupt_tools(j);
    fail_open_parts(j, "expired", "run_expired", NULL, NULL);
    end_args a = {.status = "expired"};
    finish(j, &a);
}

static void fail_run(job *j, const char *code, const char *message)
{
    fail_open_parts(j, "failed", "run_failed", code, message);
    end_args a = {.status = "failed", .code = code, .message = message};
    finish(j, &a);
}

static void expire_cb(void *ud);

static void edit_requires_action(json_t *run, void *arg)
{
    job *j = arg;
    json_t *calls = json_array();
    for (int i = 0; i < j->ncalls; i++)
        if (j->calls[i].name.len && j->calls[i].kind == AD_TOOL_FUNCTION)
            json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", j->calls[i].id,
                                                   "type", "function", "function", "name",
                                                   ad_buf_str(&j->calls[i].name), "arguments",
                                                   ad_buf_str(&j->calls[i].args)));
    json_object_set_new(run, "status", json_string("requires_action"));
    json_object_set_new(run, "required_action",
                        json_pack("{s:s,s:{s:o}}", "type", "submit_tool_outputs",
                                  "submit_tool_outputs", "tool_calls", calls));
}

/* The tool_calls step keeps its calls (with output null) until outputs come. */
static ad_err store_tool_calls(job *j)
{
    ad_engine *e = j->e;
    if (ad_db_begin(e->db))
        return AD_EDB;
    json_t *st = load(e, j->project, "step", j->tool_step_id);
    if (!st) {
        ad_db_rollback(e->db);
        return AD_EDB;
    }
    json_t *calls = json_array();
    for (int i = 0; i < j->ncalls; i++) {
        call_state *c = &j->calls[i];
        if (!c->name.len) /* a slot the upstream skipped stays unnamed */
            continue;
        if (c->kind == AD_TOOL_CODE_INTERPRETER) {
            json_t *a = json_loadb(c->args.ptr ? c->args.ptr : "", c->args.len, 0, NULL);
            const char *code = json_string_value(json_object_get(a, "code"));
            json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:[]}}", "id", c->id, "type",
                                                   "code_interpreter", "code_interpreter", "input",
                                                   code ? code : ad_buf_str(&c->args), "outputs"));
            json_decref(a);
        } else if (c->kind == AD_TOOL_FILE_SEARCH) {
            json_array_append_new(
                calls, json_pack("{s:s,s:s,s:{s:{s:s,s:f},s:[]}}", "id", c->id, "type",
                                 "file_search", "file_search", "ranking_options", "ranker",
                                 "default_2024_08_21", "score_threshold", 0.0, "results"));
        } else {
            json_array_append_new(calls,
                                  json_pack("{s:s,s:s,s:{s:s,s:s,s:n}}", "id", c->id, "type",
                                            "function", "function", "name", ad_buf_str(&c->name),
                                            "arguments", ad_buf_str(&c->args), "output"));
        }
    }
    json_object_set_new(json_object_get(st, "step_details"), "tool_calls", calls);
    ad_err rc = save(e, j->project, "step", j->tool_step_id, NULL, st);
    if (!rc)
        rc = ad_db_commit(e->db);
    if (rc)
        ad_db_rollback(e->db);
    json_decref(st);
    return rc;
}

/* requires_action: the function calls wait for the client's outputs. */
static void wait_for_outputs(job *j)
{
    json_t *run = update_run(j, edit_requires_action, j, "thread.run.requires_action");
    if (run) {
        int64_t exp = json_integer_value(json_object_get(run, "expires_at"));
        task *tk = task_new(j->e);
        ad_strlcpy(tk->project, j->project, sizeof tk->project);
        ad_strlcpy(tk->thread_id, j->thread_id, sizeof tk->thread_id);
        ad_strlcpy(tk->run_id, j->run_id, sizeof tk->run_id);
        long ms = exp > now_s() ? (long)(exp - now_s()) * 1000 : 0;
        ad_upstream_post_after(j->e->up, ms, expire_cb, tk);
        json_decref(run);
    }
    job_end(j);
}

/* file_search calls in the run's earlier steps: K of the next call's
 * citation markers continues from there. */
static ad_err count_fs(void *ud, const char *id, const char *json, size_t len)
{
    int *n = ud;
    (void)id;
    json_t *st = json_loadb(json, len, 0, NULL);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(json_object_get(st, "step_details"), "tool_calls"), i, tc)
    {
        const char *type = json_string_value(json_object_get(tc, "type"));
        *n += type && !strcmp(type, "file_search");
    }
    json_decref(st);
    return AD_OK;
}

static json_t *run_tool(const json_t *tools, const char *type)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *ty = json_string_value(json_object_get(t, "type"));
        if (ty && !strcmp(ty, type))
            return t;
    }
    return NULL;
}

/* Hands the built-in calls of the finished model call to the pool; returns
 * how many. The call's usage is kept for the step's end. */
static int submit_builtins(job *j)
{
    int n = 0, fs = 0;
    for (int i = 0; i < j->ncalls; i++)
        n += j->calls[i].name.len && j->calls[i].kind != AD_TOOL_FUNCTION;
    if (!n)
        return 0;
    ad_list_q q = {
        .project = j->project, .kind = "step", .parent = j->run_id, .limit = 1000, .asc = true};
    bool more;
    ad_db_list(j->e->db, &q, count_fs, &fs, &more);
    /* The current step was stored with its file_search calls: not "before". */
    for (int i = 0; i < j->ncalls; i++)
        fs -= j->calls[i].name.len && j->calls[i].kind == AD_TOOL_FILE_SEARCH;
    for (int i = 0; i < j->ncalls; i++) {
        call_state *c = &j->calls[i];
        if (!c->name.len || c->kind == AD_TOOL_FUNCTION)
            continue;
        ad_tool_work *w = ad_tool_work_new();
        w->kind = c->kind;
        ad_strlcpy(w->project, j->project, sizeof w->project);
        ad_strlcpy(w->thread_id, j->thread_id, sizeof w->thread_id);
        ad_strlcpy(w->run_id, j->run_id, sizeof w->run_id);
        ad_strlcpy(w->assistant_id, j->assistant_id, sizeof w->assistant_id);
        ad_strlcpy(w->call_id, c->id, sizeof w->call_id);
        w->index = i;
        w->fs_number = c->kind == AD_TOOL_FILE_SEARCH ? fs++ : 0;
        w->arguments = ad_strndup(ad_buf_str(&c->args), c->args.len);
        w->tool = json_incref(run_tool(
            j->tools, c->kind == AD_TOOL_FILE_SEARCH ? "file_search" : "code_interpreter"));
        ad_toolpool_submit(j->e->pool, w);
    }
    j->tools_pending = n;
    return n;
}

static void edit_step_call(json_t *st, const ad_tool_work *w)
{
    json_t *calls = json_object_get(json_object_get(st, "step_details"), "tool_calls");
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        if (json_equal(json_object_get(c, "id"), json_object_get(w->details, "id"))) {
            json_array_set(calls, i, w->details);
            return;
        }
    }
}

static void start_call(job *j, json_t *run);

/* On the loop: a built-in call has run (tools.h). */
static void tool_done(ad_tool_work *w, void *ud)
{
    ad_engine *e = ud;
    job *j = e->stopping ? NULL : find_job(e, w->run_id);
    if (!j || !j->tools_pending || !j->tool_step_id[0]) { /* the run ended meanwhile */
        ad_tool_work_free(w);
        return;
    }
    if (ad_db_begin(e->db) == AD_OK) {
        json_t *st = load(e, j->project, "step", j->tool_step_id);
        ad_err rc = st ? AD_OK : AD_EDB;
        if (!rc) {
            edit_step_call(st, w);
            rc = save(e, j->project, "step", j->tool_step_id, NULL, st);
        }
        if (!rc)
            rc = ad_tools_callio_put(e->db, j->project, j->run_id, w->call_id, w->arguments,
                                     w->model_text, w->files);
        if (!rc)
            rc = ad_db_commit(e->db);
        if (rc) {
            ad_db_rollback(e->db);
            if (!j->tool_fail_code) {
                j->tool_fail_code = "server_error";
                ad_strlcpy(j->tool_fail_msg, "The tool call could not be saved.",
                           sizeof j->tool_fail_msg);
            }
        }
        json_decref(st);
    }
    /* Outputs as a step delta (file_search result content only on request). */
    json_t *shown = json_deep_copy(w->details);
    json_object_del(shown, "id");
    json_t *wrap = json_pack("{s:{s:[O]}}", "step_details", "tool_calls", shown);
    ad_tools_strip_content(wrap);
    json_decref(wrap);
    size_t i;
    json_t *r;
    json_t *code = json_object_get(shown, "code_interpreter");
    json_object_del(code, "input");
    json_array_foreach(json_object_get(code, "outputs"), i, r)
    {
        json_object_set_new(r, "index", json_integer((json_int_t)i));
    }
    json_object_set_new(shown, "index", json_integer(w->index));
    announce_step_delta(j, shown);
    if (json_array_size(w->images)) {
        if (!j->images)
            j->images = json_array();
        json_array_extend(j->images, w->images);
    }
    if (w->failed && w->fail_code && !j->tool_fail_code) {
        j->tool_fail_code = w->fail_code;
        ad_strlcpy(j->tool_fail_msg, w->model_text ? w->model_text : "The tool failed.",
                   sizeof j->tool_fail_msg);
    }
    ad_tool_work_free(w);
    if (--j->tools_pending > 0)
        return;
    if (j->cancel_requested) {
        finish_cancelled(j);
        return;
    }
    if (j->expire_requested) {
        finish_expired(j);
        return;
    }
    if (j->tool_fail_code) {
        char msg[256];
        ad_strlcpy(msg, j->tool_fail_msg, sizeof msg);
        fail_run(j, j->tool_fail_code, msg);
        return;
    }
    bool functions = false;
    for (int k = 0; k < j->ncalls; k++)
        functions |= j->calls[k].name.len && j->calls[k].kind == AD_TOOL_FUNCTION;
    if (functions) {
        wait_for_outputs(j);
        return;
    }
    /* Every call answered: the step is complete and the model goes on. */
    end_step(j, j->tool_step_id, "completed", NULL, NULL, NULL);
    j->tool_step_id[0] = '\0';
    json_t *run = load(e, j->project, "run", j->run_id);
    if (!run) {
        fail_run(j, "server_error", "The run could not be read.");
        return;
    }
    start_call(j, run);
    json_decref(run);
}

static void on_done(void *ud, const ad_up_result *res)
{
    job *j = ud;
    j->call = NULL;
    j->paused = false;
    const ad_cs_turn *t = res->turn;
    if (j->e->stopping) { /* shutting down: the run is failed at the next start */
        job_end(j);
        return;
    }
    if (res->cancelled || j->cancel_requested || j->expire_requested) {
        if (t)
            json_decref(update_run(j, edit_usage, (void *)t, NULL));
        if (j->cancel_requested || !j->expire_requested)
            finish_cancelled(j);
        else
            finish_expired(j);
        return;
    }
    if (res->rc) {
        if (t)
            json_decref(update_run(j, edit_usage, (void *)t, NULL));
        fail_run(j, res->error_code ? res->error_code : "server_error",
                 res->error_message ? res->error_message : "The model call failed.");
        return;
    }
    json_decref(update_run(j, edit_usage, (void *)t, NULL));
    bool has_calls = j->ncalls > 0 && j->tool_step_id[0];
    bool cut = !strcmp(t->finish_reason, "length");
    if (j->msg_step_id[0]) {
        if (cut && !has_calls) {
            end_message(j, "incomplete", "max_tokens");
            end_step(j, j->msg_step_id, "completed", t, NULL, NULL);
        } else {
            end_message(j, "completed", NULL);
            end_step(j, j->msg_step_id, "completed", has_calls ? NULL : t, NULL, NULL);
        }
        j->msg_step_id[0] = '\0';
    }
    if (has_calls && !cut) {
        if (store_tool_calls(j)) {
            fail_run(j, "server_error", "The run could not be saved.");
            return;
        }
        /* The step stays in_progress until the outputs arrive; its usage is
         * this call's. */
        ad_engine *e = j->e;
        if (ad_db_begin(e->db) == AD_OK) {
            json_t *st = load(e, j->project, "step", j->tool_step_id);
            if (st) {
                add_usage(st, t);
                save(e, j->project, "step", j->tool_step_id, NULL, st);
                json_decref(st);
            }
            if (ad_db_commit(e->db))
                ad_db_rollback(e->db);
        }
        if (submit_builtins(j) > 0)
            return; /* tool_done goes on */
        wait_for_outputs(j);
        return;
    }
    if (j->tool_step_id[0])
        end_step(j, j->tool_step_id, "completed", t, NULL, NULL);
    end_args a = {.status = "completed"};
    if (cut) {
        a.status = "incomplete";
        a.incomplete_reason = "max_completion_tokens";
    }
    finish(j, &a);
}

static const ad_up_handlers handlers = {on_text, on_tool_call_start, on_tool_call_args, on_done};

/* ---- starting a call ---- */

static void start_call(job *j, json_t *run)
{
    ad_engine *e = j->e;
    ad_model scratch;
    const char *model_id = json_string_value(json_object_get(run, "model"));
    const ad_model *m = ad_backends_model(e->srv->backends, model_id ? model_id : "", &scratch);
    if (!m) {
        fail_run(j, "invalid_prompt", "The run's model is not configured on this server.");
        return;
    }
    const ad_tokenizer *tok =
        !strcmp(m->tokenizer, "cl100k_base") ? e->srv->tok_cl100k : e->srv->tok_o200k;
    char err[256] = "";
    ad_prompt p;
    ad_prompt_status ps =
        ad_prompt_build(e->db, e->srv->cfg.data_dir, j->project, run, m, tok, &p, err, sizeof err);
    switch (ps) {
    case AD_PROMPT_OK:
        break;
    case AD_PROMPT_PROMPT_BUDGET:
    case AD_PROMPT_COMPLETION_BUDGET: {
        /* Nothing is open: budgets are checked before the call. */
        end_args a = {.status = "incomplete",
                      .incomplete_reason = ps == AD_PROMPT_PROMPT_BUDGET ? "max_prompt_tokens"
                                                                         : "max_completion_tokens"};
        finish(j, &a);
        return;
    }
    case AD_PROMPT_TOO_LONG:
        fail_run(j, "invalid_prompt", err);
        return;
    case AD_PROMPT_ERROR:
    default:
        fail_run(j, "server_error", err[0] ? err : "The prompt could not be built.");
        return;
    }
    if (p.dropped)
        ad_log(&e->srv->log, AD_LOG_DEBUG,
               "run %s: %zu prompt tokens, %zu history message(s) left out", j->run_id,
               p.prompt_tokens, p.dropped);
    reset_call_state(j);
    j->call = ad_upstream_call(e->up, m, p.body, &handlers, j);
}

static void begin_job(ad_engine *e, task *tk)
{
    job *j = find_job(e, tk->run_id);
    if (j) { /* already running (should not happen): just attach the stream */
        if (tk->sse) {
            if (j->sse)
                ad_sse_unref(j->sse);
            j->sse = tk->sse;
            tk->sse = NULL;
        }
        return;
    }
    json_t *run = load(e, tk->project, "run", tk->run_id);
    if (!run) {
        if (tk->sse) {
            ad_sse_close(tk->sse);
            ad_sse_unref(tk->sse);
        }
        return;
    }
    j = ad_calloc(1, sizeof *j);
    j->e = e;
    ad_strlcpy(j->project, tk->project, sizeof j->project);
    ad_strlcpy(j->thread_id, tk->thread_id, sizeof j->thread_id);
    ad_strlcpy(j->run_id, tk->run_id, sizeof j->run_id);
    ad_strlcpy(j->assistant_id, json_string_value(json_object_get(run, "assistant_id")),
               sizeof j->assistant_id);
    ad_buf_init(&j->text, 8u * 1024 * 1024);
    j->sse = tk->sse;
    tk->sse = NULL;
    j->expires_at = json_integer_value(json_object_get(run, "expires_at"));
    j->tools = json_incref(json_object_get(run, "tools"));
    j->next = e->jobs;
    e->jobs = j;
    const char *st = status_of(run);
    if (!strcmp(st, "cancelling")) {
        json_decref(run);
        finish_cancelled(j);
        return;
    }
    if (strcmp(st, "queued") != 0) { /* nothing to do (terminal or waiting) */
        json_decref(run);
        job_end(j);
        return;
    }
    json_decref(run);
    run = update_run(j, edit_in_progress, NULL, "thread.run.in_progress");
    if (!run) {
        fail_run(j, "server_error", "The run could not be saved.");
        return;
    }
    start_call(j, run);
    json_decref(run);
}

/* ---- posted entry points ---- */

static void run_task(void *ud)
{
    task *tk = ud;
    if (tk->e->stopping) {
        /* task_free ends the stream */
    } else if (tk->cancel) {
        job *j = find_job(tk->e, tk->run_id);
        if (j && !j->cancel_requested) {
            /* The handler stored the run as cancelling; the stream hears it. */
            json_t *run = j->sse ? load(tk->e, j->project, "run", j->run_id) : NULL;
            if (run && !strcmp(status_of(run), "cancelling"))
                announce(j, "thread.run.cancelling", run);
            json_decref(run);
        }
        if (j) {
            j->cancel_requested = true;
            if (j->call)
                ad_upstream_cancel(tk->e->up, j->call);
            else
                finish_cancelled(j);
        } else {
            begin_job(tk->e, tk); /* waiting run: stored as cancelling */
        }
    } else {
        begin_job(tk->e, tk);
    }
    task_free(tk);
}

static void expire_cb(void *ud)
{
    task *tk = ud;
    ad_engine *e = tk->e;
    if (!e->stopping && !find_job(e, tk->run_id)) {
        json_t *run = load(e, tk->project, "run", tk->run_id);
        if (run && !strcmp(status_of(run), "requires_action") &&
            json_integer_value(json_object_get(run, "expires_at")) <= now_s()) {
            /* The waiting tool_calls step expires with the run. */
            job tmp;
            memset(&tmp, 0, sizeof tmp);
            tmp.e = e;
            ad_strlcpy(tmp.project, tk->project, sizeof tmp.project);
            ad_strlcpy(tmp.run_id, tk->run_id, sizeof tmp.run_id);
            sweep_steps(&tmp, "expired", NULL, NULL);
            end_args a = {.status = "expired"};
            json_decref(update_run(&tmp, edit_end, &a, NULL));
        } else if (run && !strcmp(status_of(run), "requires_action")) {
            long ms =
                (long)(json_integer_value(json_object_get(run, "expires_at")) - now_s()) * 1000;
            task *again = task_new(e);
            ad_strlcpy(again->project, tk->project, sizeof again->project);
            ad_strlcpy(again->thread_id, tk->thread_id, sizeof again->thread_id);
            ad_strlcpy(again->run_id, tk->run_id, sizeof again->run_id);
            ad_upstream_post_after(e->up, ms > 0 ? ms : 0, expire_cb, again);
        }
        json_decref(run);
    }
    task_free(tk);
}

static void post(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                 ad_sse *sse, bool cancel)
{
    task *tk = task_new(e);
    ad_strlcpy(tk->project, project, sizeof tk->project);
    ad_strlcpy(tk->thread_id, thread_id, sizeof tk->thread_id);
    ad_strlcpy(tk->run_id, run_id, sizeof tk->run_id);
    if (sse) {
        ad_sse_ref(sse);
        tk->sse = sse;
    }
    tk->cancel = cancel;
    ad_upstream_post(e->up, run_task, tk);
}

void ad_engine_run(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                   ad_sse *sse)
{
    post(e, project, thread_id, run_id, sse, false);
}

void ad_engine_cancel(ad_engine *e, const char *project, const char *thread_id, const char *run_id)
{
    post(e, project, thread_id, run_id, NULL, true);
}

/* ---- back-pressure and heartbeats ---- */

static void drain_all(void *ud)
{
    ad_engine *e = ud;
    for (job *j = e->jobs; j; j = j->next)
        if (j->paused && j->call && (!j->sse || ad_sse_waiting(j->sse) < AD_SSE_LOW_WATER)) {
            j->paused = false;
            ad_upstream_resume(e->up, j->call);
        }
}

/* From a libmicrohttpd thread: a lagging client caught up. */
static void drain_cb(void *ud)
{
    ad_engine *e = ud;
    ad_upstream_post(e->up, drain_all, e);
}

ad_sse *ad_engine_stream(ad_engine *e)
{
    return ad_sse_new(drain_cb, e);
}

static void tick(void *ud)
{
    ad_engine *e = ud;
    if (e->stopping)
        return;
    int64_t now = now_s();
    for (job *j = e->jobs, *next; j; j = next) {
        next = j->next;
        /* A run still working when its expires_at passes expires (as on
         * OpenAI); one waiting for tool outputs has its own timer. */
        if (j->expires_at && now >= j->expires_at && !j->expire_requested && !j->cancel_requested) {
            j->expire_requested = true;
            if (j->call)
                ad_upstream_cancel(e->up, j->call); /* on_done finishes it */
            else
                finish_expired(j);
            continue;
        }
        if (j->sse)
            ad_sse_heartbeat(j->sse, (long)e->srv->cfg.sse_heartbeat * 1000);
        /* A paused call whose client has caught up or left resumes. */
        if (j->paused && j->call && (!j->sse || !ad_sse_attached(j->sse))) {
            j->paused = false;
            ad_upstream_resume(e->up, j->call);
        }
    }
    ad_upstream_post_after(e->up, 1000, tick, e);
}

/* ---- lifecycle ---- */

ad_err ad_engine_new(ad_server *srv, ad_engine **out)
{
    ad_engine *e = ad_calloc(1, sizeof *e);
    e->srv = srv;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->tasks_mu, NULL);
    ad_err rc = ad_upstream_new(&srv->log, &e->up);
    if (rc) {
        ad_free(e);
        return rc;
    }
    e->db = ad_store_acquire(srv->store);
    rc = ad_toolpool_new(srv, e->up, AD_TOOL_THREADS, tool_done, e, &e->pool);
    if (rc) {
        ad_upstream_free(e->up);
        ad_store_release(srv->store, e->db);
        ad_free(e);
        return rc;
    }
    ad_upstream_post_after(e->up, 1000, tick, e);
    *out = e;
    return AD_OK;
}

typedef struct stale {
    struct stale *next;
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX];
    char status[32];
} stale;

static ad_err collect_stale(void *ud, const char *project, const char *parent, const char *id,
                            const char *json, size_t len)
{
    stale **list = ud;
    json_t *run = json_loadb(json, len, 0, NULL);
    stale *s = ad_calloc(1, sizeof *s);
    ad_strlcpy(s->project, project, sizeof s->project);
    ad_strlcpy(s->thread_id, parent, sizeof s->thread_id);
    ad_strlcpy(s->run_id, id, sizeof s->run_id);
    ad_strlcpy(s->status, run ? status_of(run) : "", sizeof s->status);
    json_decref(run);
    s->next = *list;
    *list = s;
    return AD_OK;
}

typedef struct recover_task {
    ad_engine *e;
    stale *list;
} recover_task;

static void recover(void *ud)
{
    recover_task *r = ud;
    ad_engine *e = r->e;
    stale *s = r->list;
    while (s) {
        stale *next = s->next;
        job tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.e = e;
        ad_strlcpy(tmp.project, s->project, sizeof tmp.project);
        ad_strlcpy(tmp.thread_id, s->thread_id, sizeof tmp.thread_id);
        ad_strlcpy(tmp.run_id, s->run_id, sizeof tmp.run_id);
        if (!strcmp(s->status, "requires_action")) {
            /* Still answerable: re-arm its expiry. */
            task *tk = task_new(e);
            ad_strlcpy(tk->project, s->project, sizeof tk->project);
            ad_strlcpy(tk->thread_id, s->thread_id, sizeof tk->thread_id);
            ad_strlcpy(tk->run_id, s->run_id, sizeof tk->run_id);
            ad_upstream_post(e->up, expire_cb, tk);
        } else if (!strcmp(s->status, "cancelling")) {
            sweep_messages(&tmp, "run_cancelled");
            sweep_steps(&tmp, "cancelled", NULL, NULL);
            end_args a = {.status = "cancelled"};
            json_decref(update_run(&tmp, edit_end, &a, NULL));
        } else {
            end_args a = {.status = "failed", .code = "server_error", .message = RESTARTED};
            sweep_messages(&tmp, "run_failed");
            sweep_steps(&tmp, "failed", a.code, a.message);
            json_decref(update_run(&tmp, edit_end, &a, NULL));
        }
        ad_free(s);
        s = next;
    }
    ad_free(r);
    pthread_mutex_lock(&e->mu);
    e->recovered = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ad_engine_recover(ad_engine *e)
{
    /* Collected on this thread (before serving), repaired on the loop. */
    recover_task *r = ad_calloc(1, sizeof *r);
    r->e = e;
    ad_db *db = ad_store_acquire(e->srv->store);
    ad_db_scan(db, "run", "active", collect_stale, &r->list);
    ad_store_release(e->srv->store, db);
    ad_upstream_post(e->up, recover, r);
    /* Wait for the repair, so that the first request already sees it. */
    pthread_mutex_lock(&e->mu);
    while (!e->recovered)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static void stop_all(void *ud)
{
    ad_engine *e = ud;
    e->stopping = true;
    job *j = e->jobs;
    while (j) {
        job *next = j->next;
        /* The run stays active in the store; the next start fails it. */
        if (j->call)
            ad_upstream_cancel(e->up, j->call); /* on_done ends the job */
        else
            job_end(j);
        j = next;
    }
    pthread_mutex_lock(&e->mu);
    e->stopped = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ad_engine_stop(ad_engine *e)
{
    if (!e)
        return;
    ad_upstream_post(e->up, stop_all, e);
    pthread_mutex_lock(&e->mu);
    while (!e->stopped)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

void ad_engine_free(ad_engine *e)
{
    if (!e)
        return;
    ad_toolpool_stop(e->pool); /* executions in progress still post */
    ad_upstream_free(e->up);
    ad_toolpool_free(e->pool);
    while (e->tasks) /* dropped unrun by the loop */
        task_free(e->tasks);
    ad_store_release(e->srv->store, e->db);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->tasks_mu);
    ad_free(e);
}
