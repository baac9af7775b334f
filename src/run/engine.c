/*
 * engine.c -- the run engine (see engine.h).
 *
 * A run in the engine is a `job`: its ids, the stream attached to it, the
 * model call in flight and what that call has produced so far (the open
 * assistant message, the open tool_calls step). Jobs exist only while the
 * engine is doing something for the run; a run that waits in
 * requires_action has no job, only an expiry timer.
 *
 * Writes. The loop thread relays tokens and never waits for SQLite: every
 * change the engine makes to the store is an `op`, a list of actions
 * (`act`: update the run, end a step, close a message, insert a step, ...)
 * handed to the store writer (store/writer.h), which applies queued ops in
 * order with group commit on a thread of its own. What changes at one
 * moment of a run goes into one op, hence one transaction: ending a run
 * (its usage, message, steps and status) is one op, starting one another.
 * Every action is a read-modify-write of the stored object inside the
 * writer's transaction, so changes handlers make meanwhile (metadata, a
 * cancel request) are never lost, and the events that announce it carry
 * exactly the committed JSON.
 *
 * Events and commits. An action's events are produced while it is applied
 * and sent by the writer thread right after the commit (writer_done), before
 * anything else is sent for that run: a client that reads the run, or
 * submits tool outputs, right after an event finds the state it announced,
 * and nothing announced is lost by kill -9. Events that need no write (text
 * and tool-call deltas) are sent from the loop directly -- unless the job
 * has ops in flight: then they are held on the job (in order) and sent when
 * the writer's completion comes back to the loop (ops_done), or by the
 * writer ahead of the events of the job's next op, so a delta never
 * overtakes the message.created it belongs to nor trails the
 * message.completed after it.
 *
 * Cost. Parsing and dumping JSON is most of what a run costs before its
 * first token, so: an object is dumped once for its write and every event
 * that shows it; the writer keeps the objects it wrote last (the parse
 * cache below) and the run a handler built comes with its parse; text
 * deltas are written without jansson; the first text delta travels in the
 * op that opens its message (sent by the writer right after that commit,
 * not by the loop after hearing of it); and ops a stream waits on (run
 * creation, in_progress, the message's opening) are urgent, ahead of other
 * runs' ops in the writer (writer.h, Priority). A streamed createRun is
 * itself an op (ad_engine_create): the writer stores the run with other
 * writes and the loop starts it once committed.
 *
 * Reads. The loop still reads the store to build prompts, count earlier
 * file_search calls and load a run it starts. Such reads that depend on this
 * job's own writes wait for them: `then` is a continuation that ops_done runs
 * once the job has nothing in flight (after tool results, before the next
 * model call; after a tool_calls step is stored, before tools are started).
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
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "run/backends.h"
#include "run/prompt.h"
#include "run/tokenizer.h"
#include "run/tools.h"
#include "run/upstream.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

#define JSON_MAX  (64u * 1024 * 1024)
#define RESTARTED "The run was interrupted by a restart of the server."
#define SHUTDOWN  "The server is shutting down."
/* Ops waiting for the writer before a producer has to wait (writer.h). */
#define WRITER_QUEUE_MAX 65536

typedef struct job job;
typedef struct op op;

/* Streamed creations reserved (ad_engine_reserve) and not yet stored or
 * refused: thread id -> run id, chained in buckets, under pend_mu. At most
 * one per thread; as many as creations wait for the writer. */
#define PEND_BUCKETS 256

typedef struct pend {
    struct pend *next;
    char thread_id[AD_ID_MAX], run_id[AD_ID_MAX];
} pend;

struct ad_engine {
    ad_server *srv;
    ad_upstream *up;
    ad_writer *writer;     /* NULL once stopped */
    ad_toolpool *pool;     /* built-in tool executions (run/tools.h) */
    ad_db *db;             /* loop thread only: reads, and start-up repair */
    struct wcache *wcache; /* writer thread only (see the parse cache) */
    /* ad_engine_create submits from handler threads: under submit_mu, and
     * only while create_open (ad_engine_stop closes it before the writer
     * goes). */
    pthread_mutex_t submit_mu;
    bool create_open;
    pthread_mutex_t pend_mu;
    pend *pend[PEND_BUCKETS]; /* under pend_mu */
    job *jobs;
    /* Loop thread only. closing: shutdown began (stop_all); every run in
     * flight is being ended failed, committed and announced, and no new
     * model call or tool starts. stopping: that is done (no job is left);
     * nothing is written any more. */
    bool closing, close_check_posted;
    bool stopping;
    pthread_mutex_t tasks_mu; /* tasks posted to the loop and not yet run */
    struct task *tasks;
    /* Loop thread only: runs to start (begin_job), oldest first, taken a
     * slice at a time by run_starts (see Starts below). */
    struct task *starts, *starts_tail;
    bool starts_posted;
    int64_t starts_end_us; /* when the last slice ended */
    pthread_mutex_t mu;    /* ad_engine_recover and _stop wait for the loop with these */
    pthread_cond_t cv;
    bool recovered, stopped, flushed;
    /* For /metrics (ad_engine_metrics, any thread); written by the loop. */
    atomic_long m_jobs;         /* jobs alive */
    atomic_long m_paused;       /* model calls paused for a lagging client */
    atomic_ullong m_pauses;     /* ... ever */
    atomic_ullong m_jobs_total; /* jobs ever begun */
    /* Streamed creations handed to the writer whose completion the loop has
     * not seen yet (ad_engine_create, ops_done): shutdown waits for them. */
    atomic_long creates_inflight;
};

/* ---- events: SSE frames waiting to be sent ---- */

typedef struct ev {
    struct ev *next;
    char name[48];
    char *data;
    size_t len;
} ev;

typedef struct evq {
    ev *head, *tail;
} evq;

/* Queues an event whose data is s[0..len), a malloc'd string the queue
 * takes over (freed with free()); returns len. */
static size_t evq_take(evq *q, const char *event, char *s, size_t len)
{
    ev *v = ad_calloc(1, sizeof *v);
    ad_strlcpy(v->name, event, sizeof v->name);
    v->data = s;
    v->len = len;
    if (q->tail)
        q->tail->next = v;
    else
        q->head = v;
    q->tail = v;
    return len;
}

/* Queues an event with a copy of the text s[0..len) (an object dumped once
 * for its write and for every event that shows it). */
static size_t evq_text(evq *q, const char *event, const char *s, size_t len)
{
    return evq_take(q, event, ad_strndup(s, len), len);
}

/* Queues an event; returns the bytes of its data. */
static size_t evq_push(evq *q, const char *event, const json_t *obj)
{
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    return s ? evq_take(q, event, s, strlen(s)) : 0;
}

static void evq_clear(evq *q)
{
    ev *v = q->head;
    while (v) {
        ev *next = v->next;
        free(v->data);
        ad_free(v);
        v = next;
    }
    q->head = q->tail = NULL;
}

/* Sends and empties q; returns the bytes waiting on the stream. */
static size_t evq_send(evq *q, ad_sse *sse)
{
    size_t waiting = 0;
    for (ev *v = q->head; v; v = v->next)
        waiting = ad_sse_send(sse, v->name, v->data, v->len);
    evq_clear(q);
    return waiting;
}

typedef struct call_state {
    char id[AD_ID_MAX]; /* our call_ id */
    ad_buf name, args;
    ad_tool_kind kind;
    ad_jsfield code; /* code_interpreter: the code, decoded as it streams */
    bool held;       /* not relayed live: announced whole when the call ends */
} call_state;

/* Token counts of one model call (copied out of the parser's turn). */
typedef struct usage_t {
    bool have;
    int64_t prompt, completion, total;
} usage_t;

struct job {
    job *next;
    ad_engine *e;
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX], assistant_id[AD_ID_MAX];
    ad_sse *sse;
    bool step_content; /* the stream shows file_search result content */
    ad_up_call *call;
    bool cancel_requested;
    bool expire_requested; /* expires_at passed while the run was active */
    bool save_failed;      /* an op of the job could not be committed */
    int64_t expires_at;    /* 0: none */
    bool paused;
    /* ops: see the top comment */
    int inflight;         /* submitted, completion not yet back on the loop */
    int inflight_normal;  /* of which ordinary (see submit: 0 or inflight) */
    evq held;             /* events waiting for the ops in flight */
    size_t held_bytes;    /* held since inflight was last 0 (see announce) */
    void (*then)(job *j); /* runs once nothing is in flight */
    bool ended;           /* job_end ran: freed once nothing is in flight */
    /* the model call in flight */
    char msg_id[AD_ID_MAX], msg_step_id[AD_ID_MAX];
    ad_buf text;
    bool text_announced;
    char *refusal; /* the model's refusal, for the message's close (owned) */
    size_t refusal_len;
    char tool_step_id[AD_ID_MAX];
    call_state *calls; /* AD_CS_MAX_TOOL_CALLS, made at the first call */
    int ncalls;
    int live_call;     /* the one tool call relayed piece by piece, or -1 */
    bool calls_stored; /* the calls are on their step (A_STEP_CALLS) */
    /* built-in tools */
    json_t *tools;     /* the run's tools (which calls are built-in) */
    int tools_pending; /* executions in the pool */
    const char *tool_fail_code;
    char tool_fail_msg[256];
    json_t *images; /* figures to show in the next message (file ids) */
    int text_index; /* content index of the open message's text part */
};

/* ---- posted work carries ids by value ---- */

typedef struct task {
    struct task *prev, *next; /* in ad_engine.tasks until run or dropped */
    struct task *qnext;       /* in ad_engine's start queue */
    ad_engine *e;
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX];
    ad_sse *sse;
    bool cancel;
    bool step_content; /* AD_ENGINE_STEP_CONTENT */
    long delay_ms;     /* repair_cb: how long this attempt was put off */
    char *run_text;    /* ad_engine_run_stored: the run as stored, and its */
    json_t *run;       /* parse (a reference; never changed) */
    bool started;      /* ad_engine_create: the run was stored in progress */
} task;

/* Posted work that the loop may drop unrun at shutdown stays on a list so
 * that ad_engine_free can release it (upstream.h: dropped work's ud remains
 * the poster's). */
/* A task about one run; its ids are copied. */
static task *task_new(ad_engine *e, const char *project, const char *thread_id, const char *run_id)
{
    task *tk = ad_calloc(1, sizeof *tk);
    tk->e = e;
    ad_strlcpy(tk->project, project, sizeof tk->project);
    ad_strlcpy(tk->thread_id, thread_id, sizeof tk->thread_id);
    ad_strlcpy(tk->run_id, run_id, sizeof tk->run_id);
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
    ad_free(tk->run_text);
    json_decref(tk->run);
    ad_free(tk);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static usage_t usage_of(const ad_cs_turn *t)
{
    usage_t u = {.have = false};
    if (t && t->have_usage) {
        u.have = true;
        u.prompt = t->prompt_tokens;
        u.completion = t->completion_tokens;
        u.total = t->total_tokens ? t->total_tokens : t->prompt_tokens + t->completion_tokens;
    }
    return u;
}

/* ---- store helpers (any thread, on the connection given) ---- */

static json_t *load(ad_db *db, const char *project, const char *kind, const char *id)
{
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    json_t *v = NULL;
    if (ad_db_get(db, project, kind, id, &b) == AD_OK)
        v = json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    return v;
}

/* The compact JSON of obj (malloc'd, freed with free(); *len its length),
 * or NULL. Writes and their events share one dump of each object. */
static char *dump(const json_t *obj, size_t *len)
{
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    *len = s ? strlen(s) : 0;
    return s;
}

/* Replaces a stored object with the text s[0..len) (NULL: dump failed). */
/* load() of a run that may come with the text it was stored with and its
 * parse: the parse (a new reference) when the stored text is still exactly
 * that text, otherwise the stored run parsed. */
static json_t *load_hinted(ad_db *db, const char *project, const char *run_id, const char *text,
                           json_t *parsed)
{
    if (!text || !parsed)
        return load(db, project, "run", run_id);
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    json_t *v = NULL;
    if (ad_db_get(db, project, "run", run_id, &b) == AD_OK) {
        size_t len = strlen(text);
        v = b.len == len && !memcmp(b.ptr, text, len) ? json_incref(parsed)
                                                      : json_loadb(b.ptr, b.len, 0, NULL);
    }
    ad_buf_free(&b);
    return v;
}

static ad_err save_text(ad_db *db, const char *project, const char *kind, const char *id,
                        const char *aux, const char *s, size_t len)
{
    return s ? ad_db_update(db, project, kind, id, aux, s, len) : AD_EINTERNAL;
}

static ad_err save(ad_db *db, const char *project, const char *kind, const char *id,
                   const char *aux, const json_t *obj)
{
    size_t len;
    char *s = dump(obj, &len);
    ad_err rc = save_text(db, project, kind, id, aux, s, len);
    free(s);
    return rc;
}

/* Inserts a new object with the text s[0..len) (NULL: dump failed). */
static ad_err insert_text(ad_db *db, const char *project, const char *kind, const char *id,
                          const char *parent, const char *aux, int64_t created, const char *s,
                          size_t len)
{
    if (!s)
        return AD_EINTERNAL;
    ad_obj o = {.kind = kind,
                .id = id,
                .project = project,
                .parent = parent,
                .aux = aux,
                .created_at = created};
    return ad_db_put(db, &o, s, len);
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

static void add_usage(json_t *obj, const usage_t *t)
{
    if (!t || !t->have)
        return;
    json_t *u = json_object_get(obj, "usage");
    if (!json_is_object(u)) {
        u = json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)0, "completion_tokens",
                      (json_int_t)0, "total_tokens", (json_int_t)0);
        json_object_set_new(obj, "usage", u);
    }
    const char *keys[3] = {"prompt_tokens", "completion_tokens", "total_tokens"};
    int64_t add[3] = {t->prompt, t->completion, t->total};
    for (int i = 0; i < 3; i++)
        json_object_set_new(u, keys[i],
                            json_integer(json_integer_value(json_object_get(u, keys[i])) + add[i]));
}

static json_t *usage_json(const usage_t *u)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->prompt, "completion_tokens",
                     (json_int_t)u->completion, "total_tokens", (json_int_t)u->total);
}

static json_t *zero_usage(void)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", 0, "completion_tokens", 0, "total_tokens",
                     0);
}

/* ---- actions: the writes an op makes, in order, in one transaction ---- */

typedef enum {
    A_RUN,        /* run: usage, then the edit; event */
    A_STEP_END,   /* a step in progress ends (status, timestamps, usage); event */
    A_MSG_CLOSE,  /* a message in progress ends (content, annotations); events */
    A_OPEN_MSG,   /* message_creation step + its message inserted; events */
    A_TOOL_STEP,  /* tool_calls step inserted; events */
    A_SWEEP_STEP, /* every step of the run still in progress ends */
    A_SWEEP_MSG,  /* every message of the run still in progress ends incomplete */
    A_STEP_CALLS, /* the tool_calls step gets its calls (and the call's usage) */
    A_TOOL_DONE,  /* a built-in call's result: on the step and in its callio row */
    A_EVENT,      /* an event, in order with the others */
    A_CANCELLING, /* announce thread.run.cancelling if the run is stored so */
    A_EXPIRE,     /* a run waiting for tool outputs whose expires_at passed */
    A_REPAIR,     /* a run no job works on any more ends (failed, or cancelled) */
    A_CREATE,     /* a run a handler built is stored as queued (ad_engine_create) */
} act_kind;

typedef enum { R_NONE, R_IN_PROGRESS, R_END, R_REQUIRES_ACTION } run_edit;

typedef struct act {
    struct act *next;
    act_kind k;
    char id[AD_ID_MAX]; /* step or message */
    /* A_RUN */
    run_edit edit;
    const char *status; /* static strings: run / step / message status */
    const char *incomplete_reason, *reason;
    char code[64], message[512]; /* last_error, when code[0] */
    usage_t usage;
    bool event; /* A_RUN: announce */
    /* objects (owned): A_OPEN_MSG step + message, A_TOOL_STEP step,
     * A_STEP_CALLS / A_RUN(requires_action) calls, A_EVENT data */
    json_t *obj, *obj2;
    char event_name[48];
    /* A_MSG_CLOSE; A_EVENT: the data when not obj */
    char *text; /* owned; NULL: keep the stored content */
    size_t len;
    json_t *images; /* owned: figures shown in this message / the opened one */
    bool has_tools;
    int text_index;
    char *refusal; /* owned: a refusal part after the text, when not NULL */
    size_t refusal_len;
    /* A_TOOL_DONE */
    ad_tool_work *work; /* owned */
    /* A_CREATE: text is the run as created (queued), stored its in-progress
     * form (obj: a parse of stored for the writer's cache, given to it) */
    int64_t created;
    char *stored;
    size_t stored_len;
} act;

static void act_free(act *a)
{
    ad_free(a->refusal);
    ad_free(a->stored);
    json_decref(a->obj);
    json_decref(a->obj2);
    json_decref(a->images);
    ad_free(a->text);
    if (a->work)
        ad_tool_work_free(a->work);
    ad_free(a);
}

static void set_error(act *a, const char *code, const char *message)
{
    if (!code)
        return;
    ad_strlcpy(a->code, code, sizeof a->code);
    ad_strlcpy(a->message, message ? message : "", sizeof a->message);
}

/* FNV-1a of a NUL-terminated id. */
static uint32_t id_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* ---- reserved creations (see pend) ---- */

bool ad_engine_reserve(ad_engine *e, const char *thread_id, const char *run_id,
                       char active[AD_ID_MAX])
{
    pend **b = &e->pend[id_hash(thread_id) % PEND_BUCKETS];
    bool ok = true;
    pthread_mutex_lock(&e->pend_mu);
    for (pend *p = *b; p; p = p->next)
        if (!strcmp(p->thread_id, thread_id)) {
            ad_strlcpy(active, p->run_id, AD_ID_MAX);
            ok = false;
            break;
        }
    if (ok) {
        pend *p = ad_calloc(1, sizeof *p);
        ad_strlcpy(p->thread_id, thread_id, sizeof p->thread_id);
        ad_strlcpy(p->run_id, run_id, sizeof p->run_id);
        p->next = *b;
        *b = p;
    }
    pthread_mutex_unlock(&e->pend_mu);
    return ok;
}

bool ad_engine_pending(ad_engine *e, const char *thread_id, char active[AD_ID_MAX])
{
    bool found = false;
    pthread_mutex_lock(&e->pend_mu);
    for (pend *p = e->pend[id_hash(thread_id) % PEND_BUCKETS]; p; p = p->next)
        if (!strcmp(p->thread_id, thread_id)) {
            ad_strlcpy(active, p->run_id, AD_ID_MAX);
            found = true;
            break;
        }
    pthread_mutex_unlock(&e->pend_mu);
    return found;
}

/* The creation of run_id is stored (committed) or refused: its thread is
 * judged by the store again. */
void ad_engine_release(ad_engine *e, const char *thread_id, const char *run_id)
{
    pthread_mutex_lock(&e->pend_mu);
    for (pend **p = &e->pend[id_hash(thread_id) % PEND_BUCKETS]; *p; p = &(*p)->next)
        if (!strcmp((*p)->thread_id, thread_id) && !strcmp((*p)->run_id, run_id)) {
            pend *dead = *p;
            *p = dead->next;
            ad_free(dead);
            break;
        }
    pthread_mutex_unlock(&e->pend_mu);
}

/* ---- the writer's parse cache ----
 *
 * Every action is a read-modify-write of a stored object, and parsing the
 * JSON read back is most of a write's cost: a run is read, changed and
 * written two or three times in a few milliseconds. The writer thread keeps
 * the objects it wrote last, each with the exact text it stored; a read
 * still fetches the stored text, and uses the kept object only when the
 * text is byte for byte the one kept -- so a change made meanwhile by
 * anyone else (a handler's metadata edit, a cancel), or a transaction
 * rolled back, simply misses and is parsed as before. A kept object is
 * never changed while kept: a read takes it out (the reader owns it), a
 * write puts the new one in, and only objects no act shares are put (the
 * inserted message and step are copied). Writer thread only. */
#define WCACHE_SLOTS 512
/* Larger objects (long messages, steps with search results) are not kept:
 * the kept texts stay under WCACHE_SLOTS * WCACHE_OBJ_MAX (8 MB), their
 * parses a small multiple of that. */
#define WCACHE_OBJ_MAX (16u * 1024)

typedef struct wslot {
    char id[AD_ID_MAX];
    char *text; /* the stored text obj was parsed from / dumped to */
    size_t len;
    json_t *obj; /* owned; NULL: empty */
} wslot;

typedef struct wcache {
    wslot slot[WCACHE_SLOTS];
} wcache;

static wslot *wcache_slot(wcache *wc, const char *id)
{
    return &wc->slot[id_hash(id) % WCACHE_SLOTS];
}

static void wslot_clear(wslot *sl)
{
    json_decref(sl->obj);
    ad_free(sl->text);
    sl->obj = NULL;
    sl->text = NULL;
    sl->len = 0;
}

static void wcache_free(wcache *wc)
{
    if (!wc)
        return;
    for (size_t i = 0; i < WCACHE_SLOTS; i++)
        wslot_clear(&wc->slot[i]);
    ad_free(wc);
}

/* The kept object of id if text[0..len) is what it was kept with, else
 * NULL. Borrowed: the caller must not change it. */
static const json_t *wcache_peek(wcache *wc, const char *id, const char *text, size_t len)
{
    if (!wc)
        return NULL;
    wslot *sl = wcache_slot(wc, id);
    if (sl->obj && sl->len == len && !strcmp(sl->id, id) && !memcmp(sl->text, text, len))
        return sl->obj;
    return NULL;
}

/* Keeps obj (a reference is taken) as the parse of text[0..len). */
static void wcache_put(wcache *wc, const char *id, const char *text, size_t len, json_t *obj)
{
    if (!wc || !text || !obj)
        return;
    wslot *sl = wcache_slot(wc, id);
    wslot_clear(sl);
    if (len > WCACHE_OBJ_MAX)
        return;
    ad_strlcpy(sl->id, id, sizeof sl->id);
    sl->text = ad_strndup(text, len);
    sl->len = len;
    sl->obj = json_incref(obj);
}

/* What applying actions needs to know (the op's ids, its connection). */
typedef struct wctx {
    ad_db *db;
    wcache *cache; /* the writer's (NULL: none, e.g. start-up repair) */
    const char *project, *thread_id, *run_id;
    evq *out;
    bool step_content; /* events keep file_search result content */
    int rearm_ms;      /* A_EXPIRE: >= 0 to look again after that long */
    bool refused;      /* A_CREATE: a check failed, nothing was written */
} wctx;

/* load() for actions: the kept object when the stored text is the one it
 * was kept with (taken out of the cache: the caller owns it). */
static json_t *load_w(wctx *c, const char *kind, const char *id)
{
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    json_t *v = NULL;
    if (ad_db_get(c->db, c->project, kind, id, &b) == AD_OK) {
        if (wcache_peek(c->cache, id, b.ptr, b.len)) {
            wslot *sl = wcache_slot(c->cache, id);
            v = sl->obj;
            sl->obj = NULL;
            wslot_clear(sl);
        } else {
            v = json_loadb(b.ptr, b.len, 0, NULL);
        }
    }
    ad_buf_free(&b);
    return v;
}

static ad_err apply_run(wctx *c, act *a)
{
    json_t *run = load_w(c, "run", c->run_id);
    if (!run)
        return AD_OK; /* gone (e.g. its thread was deleted): nothing to do */
    int64_t now = now_s();
    switch (a->edit) {
    case R_NONE:
        break;
    case R_IN_PROGRESS:
        json_object_set_new(run, "status", json_string("in_progress"));
        if (json_is_null(json_object_get(run, "started_at")))
            json_object_set_new(run, "started_at", json_integer(now));
        break;
    case R_REQUIRES_ACTION:
        json_object_set_new(run, "status", json_string("requires_action"));
        json_object_set_new(run, "required_action",
                            json_pack("{s:s,s:{s:O}}", "type", "submit_tool_outputs",
                                      "submit_tool_outputs", "tool_calls", a->obj));
        break;
    case R_END:
        json_object_set_new(run, "status", json_string(a->status));
        json_object_set_new(run, "expires_at", json_null());
        json_object_set_new(run, "required_action", json_null());
        if (!strcmp(a->status, "completed"))
            json_object_set_new(run, "completed_at", json_integer(now));
        if (!strcmp(a->status, "failed"))
            json_object_set_new(run, "failed_at", json_integer(now));
        if (!strcmp(a->status, "cancelled"))
            json_object_set_new(run, "cancelled_at", json_integer(now));
        if (a->code[0])
            json_object_set_new(run, "last_error",
                                json_pack("{s:s,s:s}", "code", a->code, "message", a->message));
        if (a->incomplete_reason)
            json_object_set_new(run, "incomplete_details",
                                json_pack("{s:s}", "reason", a->incomplete_reason));
        if (json_is_null(json_object_get(run, "usage")))
            json_object_set_new(run, "usage", zero_usage());
        break;
    }
    /* Usage shows once the run has ended (api.h, AD_EXTRAS_USAGE): until
     * then each call's goes to the run's extras, and the end adds them up. */
    ad_err rc = AD_OK;
    json_t *kept = NULL;
    if (is_terminal(status_of(run))) {
        rc = ad_api_extras_take(c->db, c->project, c->run_id, AD_EXTRAS_USAGE, &kept);
        if (kept)
            ad_api_usage_add(json_object_get(run, "usage"), kept);
        add_usage(run, &a->usage);
    } else if (a->usage.have) {
        json_t *x = ad_api_extras_get(c->db, c->project, c->run_id);
        json_t *sum = json_object_get(x, AD_EXTRAS_USAGE);
        sum = json_is_object(sum) ? json_deep_copy(sum) : zero_usage();
        json_t *u = usage_json(&a->usage);
        ad_api_usage_add(sum, u);
        rc = ad_api_extras_set(c->db, c->project, c->run_id, AD_EXTRAS_USAGE, sum);
        json_decref(u);
        json_decref(sum);
        json_decref(x);
    }
    json_decref(kept);
    if (rc) {
        json_decref(run);
        return rc;
    }
    const char *aux = is_terminal(status_of(run)) ? "" : "active";
    size_t len;
    char *s = dump(run, &len);
    rc = save_text(c->db, c->project, "run", c->run_id, aux, s, len);
    if (!rc && a->edit != R_REQUIRES_ACTION) /* that one shares the act's calls */
        wcache_put(c->cache, c->run_id, s, len, run);
    if (!rc && a->event) {
        char name[64];
        snprintf(name, sizeof name, "thread.run.%s", status_of(run));
        evq_take(c->out, name, s, len);
        s = NULL;
    }
    free(s);
    json_decref(run);
    return rc;
}

/* The usage kept for step step_id (AD_EXTRAS_STEP_USAGE), added to st and
 * dropped from the extras; nothing when what is kept is another step's. */
static ad_err take_step_usage(wctx *c, const char *step_id, json_t *st)
{
    json_t *x = ad_api_extras_get(c->db, c->project, c->run_id);
    json_t *v = json_object_get(x, AD_EXTRAS_STEP_USAGE);
    const char *owner = json_string_value(json_object_get(v, "step_id"));
    ad_err rc = AD_OK;
    if (owner && !strcmp(owner, step_id)) {
        json_t *u = zero_usage();
        ad_api_usage_add(u, v);
        json_object_set_new(st, "usage", u);
        rc = ad_api_extras_set(c->db, c->project, c->run_id, AD_EXTRAS_STEP_USAGE, json_null());
    }
    json_decref(x);
    return rc;
}

static ad_err step_end(wctx *c, const char *step_id, const char *status, const usage_t *usage,
                       const char *code, const char *message)
{
    json_t *st = load_w(c, "step", step_id);
    if (!st || strcmp(status_of(st), "in_progress") != 0) {
        json_decref(st);
        return AD_OK;
    }
    int64_t now = now_s();
    json_object_set_new(st, "status", json_string(status));
    const char *field = !strcmp(status, "completed")   ? "completed_at"
                        : !strcmp(status, "cancelled") ? "cancelled_at"
                        : !strcmp(status, "expired")   ? "expired_at"
                                                       : "failed_at";
    json_object_set_new(st, field, json_integer(now));
    if (code && code[0])
        json_object_set_new(st, "last_error",
                            json_pack("{s:s,s:s}", "code", code, "message", message));
    /* Usage shows once the step has ended (null only while in progress):
     * the call's as given, or, for a tool_calls step, as kept while it
     * waited (step_calls); zero when the call reported none. */
    if (usage && usage->have) {
        add_usage(st, usage);
    } else {
        ad_err rc = take_step_usage(c, step_id, st);
        if (rc) {
            json_decref(st);
            return rc;
        }
    }
    if (!json_is_object(json_object_get(st, "usage")))
        json_object_set_new(st, "usage", zero_usage());
    size_t len;
    char *s = dump(st, &len);
    ad_err rc = save_text(c->db, c->project, "step", step_id, NULL, s, len);
    if (!rc) {
        char name[64];
        snprintf(name, sizeof name, "thread.run.step.%s", status);
        /* Streams show file_search results without their content, as a
         * list without include[] does (the stored step keeps it), unless
         * the createRun request's include[] asked for it. A step without
         * file_search calls is shown as stored. */
        if (c->step_content || !memmem(s, len, "\"file_search\"", 13)) {
            wcache_put(c->cache, step_id, s, len, st);
            evq_take(c->out, name, s, len);
            s = NULL;
        } else {
            ad_tools_strip_content(st);
            evq_push(c->out, name, st);
        }
    }
    free(s);
    json_decref(st);
    return rc;
}

/* The content of a run's message: the figures code_interpreter made since
 * the previous message, then the text with its annotations (tools.h). */
static json_t *text_content(wctx *c, const act *a, json_t **anns)
{
    json_t *content = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(a->images, i, v)
    {
        json_array_append_new(content, json_pack("{s:s,s:{s:O,s:s}}", "type", "image_file",
                                                 "image_file", "file_id", v, "detail", "auto"));
    }
    json_t *an = a->has_tools ? ad_tools_annotate(c->db, c->project, c->run_id, a->text, a->len)
                              : json_array();
    /* A refusal alone (the model sent no text) is the message's only part. */
    if (a->len || !a->refusal)
        json_array_append_new(content, json_pack("{s:s,s:{s:s%,s:O}}", "type", "text", "text",
                                                 "value", a->text, a->len, "annotations", an));
    if (a->refusal)
        json_array_append_new(content, json_pack("{s:s,s:s%}", "type", "refusal", "refusal",
                                                 a->refusal, a->refusal_len));
    *anns = an;
    return content;
}

/* Ends a message of the run: completed or incomplete (with reason). The
 * act's text, when not NULL, becomes its content; otherwise the stored
 * content stays (restart recovery, where the streamed text was only in
 * memory). Only a message still in progress changes. */
static ad_err msg_close(wctx *c, const char *msg_id, const act *a)
{
    json_t *m = load_w(c, "message", msg_id);
    if (!m || strcmp(status_of(m), "in_progress") != 0) {
        json_decref(m);
        return AD_OK;
    }
    int64_t now = now_s();
    json_object_set_new(m, "status", json_string(a->status));
    json_t *anns = NULL;
    if (a->text)
        json_object_set_new(m, "content", text_content(c, a, &anns));
    if (!strcmp(a->status, "completed")) {
        json_object_set_new(m, "completed_at", json_integer(now));
    } else {
        json_object_set_new(m, "incomplete_at", json_integer(now));
        json_object_set_new(m, "incomplete_details", json_pack("{s:s}", "reason", a->reason));
    }
    size_t len;
    char *s = dump(m, &len);
    ad_err rc = save_text(c->db, c->project, "message", msg_id, NULL, s, len);
    if (!rc && json_array_size(anns)) { /* the annotations, as a delta of the text part */
        json_t *list = json_array();
        size_t i;
        json_t *an;
        json_array_foreach(anns, i, an)
        {
            json_t *d = json_deep_copy(an);
            json_object_set_new(d, "index", json_integer((json_int_t)i));
            json_array_append_new(list, d);
        }
        json_t *d = json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:{s:o}}]}}", "id", msg_id, "object",
                              "thread.message.delta", "delta", "content", "index", a->text_index,
                              "type", "text", "text", "annotations", list);
        evq_push(c->out, "thread.message.delta", d);
        json_decref(d);
    }
    if (!rc) {
        wcache_put(c->cache, msg_id, s, len, m);
        evq_take(c->out,
                 !strcmp(a->status, "completed") ? "thread.message.completed"
                                                 : "thread.message.incomplete",
                 s, len);
        s = NULL;
    }
    free(s);
    json_decref(anns);
    json_decref(m);
    return rc;
}

static ad_err open_msg(wctx *c, act *a)
{
    json_t *step = a->obj, *msg = a->obj2;
    int64_t now = json_integer_value(json_object_get(msg, "created_at"));
    const char *step_id = json_string_value(json_object_get(step, "id"));
    const char *msg_id = json_string_value(json_object_get(msg, "id"));
    size_t slen, mlen;
    char *ss = dump(step, &slen), *ms = dump(msg, &mlen);
    ad_err rc = insert_text(c->db, c->project, "step", step_id, c->run_id, "", now, ss, slen);
    if (!rc)
        rc = insert_text(c->db, c->project, "message", msg_id, c->thread_id, c->run_id, now, ms,
                         mlen);
    if (rc) {
        free(ss);
        free(ms);
        return rc;
    }
    if (c->cache) { /* copies: the act keeps its objects for a retry */
        json_t *sc = json_deep_copy(step), *mc = json_deep_copy(msg);
        wcache_put(c->cache, step_id, ss, slen, sc);
        wcache_put(c->cache, msg_id, ms, mlen, mc);
        json_decref(sc);
        json_decref(mc);
    }
    evq_text(c->out, "thread.run.step.created", ss, slen);
    evq_take(c->out, "thread.run.step.in_progress", ss, slen);
    evq_text(c->out, "thread.message.created", ms, mlen);
    evq_take(c->out, "thread.message.in_progress", ms, mlen);
    size_t i;
    json_t *v;
    json_array_foreach(a->images, i, v)
    {
        json_t *d = json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:{s:O,s:s}}]}}", "id", msg_id, "object",
                              "thread.message.delta", "delta", "content", "index", (int)i, "type",
                              "image_file", "image_file", "file_id", v, "detail", "auto");
        evq_push(c->out, "thread.message.delta", d);
        json_decref(d);
    }
    return AD_OK;
}

/* Ids of a run's steps or messages still in progress. A run has a few
 * steps per model call; 64 open at once is far beyond what one call opens. */
typedef struct open_ids {
    char ids[64][AD_ID_MAX];
    int n;
    wcache *cache;
} open_ids;

static ad_err collect_open(void *ud, const char *id, const char *json, size_t len)
{
    open_ids *o = ud;
    const json_t *kept = wcache_peek(o->cache, id, json, len);
    json_t *v = kept ? NULL : json_loadb(json, len, 0, NULL);
    if ((kept || v) && !strcmp(status_of(kept ? kept : v), "in_progress") && o->n < 64)
        ad_strlcpy(o->ids[o->n++], id, AD_ID_MAX);
    json_decref(v);
    return AD_OK;
}

/* The id of the first row listed (create_run: an active run). */
static ad_err first_id(void *ud, const char *id, const char *json, size_t len)
{
    open_ids *o = ud;
    (void)json;
    (void)len;
    if (o->n < 64)
        ad_strlcpy(o->ids[o->n++], id, AD_ID_MAX);
    return AD_OK;
}

/* Ends every step of the run still in progress (e.g. a tool_calls step
 * waiting for outputs when the run is cancelled or expires). */
static ad_err sweep_steps(wctx *c, const act *a)
{
    open_ids o = {.n = 0, .cache = c->cache};
    ad_list_q q = {
        .project = c->project, .kind = "step", .parent = c->run_id, .limit = 1000, .asc = true};
    bool more;
    ad_err rc = ad_db_list(c->db, &q, collect_open, &o, &more);
    for (int i = 0; !rc && i < o.n; i++)
        rc = step_end(c, o.ids[i], a->status, NULL, a->code, a->message);
    return rc;
}

/* Closes as incomplete every message of the run still in progress: after a
 * restart, the message a call was streaming into (its text, kept in memory
 * only, is lost; what was stored stays). */
static ad_err sweep_messages(wctx *c, const act *a)
{
    open_ids o = {.n = 0, .cache = c->cache};
    ad_list_q q = {.project = c->project,
                   .kind = "message",
                   .parent = c->thread_id,
                   .aux = c->run_id,
                   .limit = 1000,
                   .asc = true};
    bool more;
    ad_err rc = ad_db_list(c->db, &q, collect_open, &o, &more);
    for (int i = 0; !rc && i < o.n; i++)
        rc = msg_close(c, o.ids[i], a);
    return rc;
}

static ad_err step_calls(wctx *c, const act *a)
{
    json_t *st = load_w(c, "step", a->id);
    if (!st)
        return AD_OK; /* never stored (its opening failed): nothing to add to */
    json_object_set_new(json_object_get(st, "step_details"), "tool_calls", json_incref(a->obj));
    /* The step stays in_progress (usage null) until its tools have run or
     * the outputs arrive; its usage, this call's, is kept until then. */
    ad_err rc = AD_OK;
    if (a->usage.have) {
        json_t *v = usage_json(&a->usage);
        json_object_set_new(v, "step_id", json_string(a->id));
        rc = ad_api_extras_set(c->db, c->project, c->run_id, AD_EXTRAS_STEP_USAGE, v);
        json_decref(v);
    }
    if (!rc)
        rc = save(c->db, c->project, "step", a->id, NULL, st);
    json_decref(st);
    return rc;
}

static void edit_step_call(json_t *st, const ad_tool_work *w)
{
    json_t *calls = json_object_get(json_object_get(st, "step_details"), "tool_calls");
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        if (json_equal(json_object_get(call, "id"), json_object_get(w->details, "id"))) {
            json_array_set(calls, i, w->details);
            return;
        }
    }
}

static ad_err tool_result(wctx *c, const act *a)
{
    const ad_tool_work *w = a->work;
    json_t *st = load_w(c, "step", a->id);
    if (!st)
        return AD_EDB;
    edit_step_call(st, w);
    ad_err rc = save(c->db, c->project, "step", a->id, NULL, st);
    json_decref(st);
    if (!rc)
        rc = ad_tools_callio_put(c->db, c->project, c->run_id, w->call_id, w->arguments,
                                 w->model_text, w->files);
    return rc;
}

static ad_err announce_cancelling(wctx *c)
{
    json_t *run = load_w(c, "run", c->run_id);
    if (run && !strcmp(status_of(run), "cancelling"))
        evq_push(c->out, "thread.run.cancelling", run);
    json_decref(run);
    return AD_OK;
}

static ad_err expire_waiting(wctx *c)
{
    json_t *run = load_w(c, "run", c->run_id);
    ad_err rc = AD_OK;
    if (run && !strcmp(status_of(run), "requires_action")) {
        int64_t exp = json_integer_value(json_object_get(run, "expires_at"));
        if (exp <= now_s()) { /* the waiting tool_calls step expires with the run */
            act a = {.k = A_SWEEP_STEP, .status = "expired"};
            rc = sweep_steps(c, &a);
            act r = {.k = A_RUN, .edit = R_END, .status = "expired"};
            if (!rc)
                rc = apply_run(c, &r);
        } else {
            c->rearm_ms = (int)((exp - now_s()) * 1000);
        }
    }
    json_decref(run);
    return rc;
}

/* A run that is still active in the store although no job works on it any
 * more -- a previous process died, or this one could not commit the run's
 * end -- ends: its open messages incomplete, its open steps and the run
 * cancelled when a cancel was asked for, failed (with a's error) otherwise.
 * A run that ended meanwhile, or waits for tool outputs (answerable; its
 * expiry timer is armed), stays as it is. */
static ad_err repair_run(wctx *c, const act *a)
{
    json_t *run = load_w(c, "run", c->run_id);
    const char *st = run ? status_of(run) : "";
    bool skip = !run || is_terminal(st) || !strcmp(st, "requires_action");
    bool cancelling = !strcmp(st, "cancelling");
    json_decref(run);
    if (skip)
        return AD_OK;
    act m = {.k = A_SWEEP_MSG,
             .status = "incomplete",
             .reason = cancelling ? "run_cancelled" : "run_failed"};
    act s = {.k = A_SWEEP_STEP, .status = cancelling ? "cancelled" : "failed"};
    act r = {.k = A_RUN, .edit = R_END, .status = s.status};
    if (!cancelling) {
        set_error(&s, a->code, a->message);
        set_error(&r, a->code, a->message);
    }
    ad_err rc = sweep_messages(c, &m);
    if (!rc)
        rc = sweep_steps(c, &s);
    if (!rc)
        rc = apply_run(c, &r);
    return rc;
}

/* An "error" event (the data of the stream's error events). */
static void push_error(evq *q, const char *type, const char *message)
{
    json_t *err = json_pack("{s:n,s:s,s:n,s:s}", "code", "message", message, "param", "type", type);
    evq_push(q, "error", err);
    json_decref(err);
}

/* A_CREATE: the checks createRun made before taking the write lock hold
 * still (the thread exists and has no active run), then the run is stored
 * and announced: created and queued as the handler built it (a->text), and
 * in_progress, the form stored (a->stored) -- the run is started as it is
 * stored, so a streamed creation costs one transaction before its model
 * call, not two. When a check fails -- a concurrent request won the race --
 * nothing is written and the stream hears an error instead (*refused). */
static ad_err create_run(wctx *c, act *a, bool *refused)
{
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    ad_err rc = ad_db_get(c->db, c->project, "thread", c->thread_id, &b);
    ad_buf_free(&b);
    char msg[256];
    if (rc == AD_ENOTFOUND) {
        snprintf(msg, sizeof msg, "No thread found with id '%s'.", c->thread_id);
        push_error(c->out, "invalid_request_error", msg);
        *refused = true;
        return AD_OK;
    }
    if (rc)
        return rc;
    open_ids active = {.n = 0};
    ad_list_q q = {.project = c->project,
                   .kind = "run",
                   .parent = c->thread_id,
                   .aux = "active",
                   .limit = 1,
                   .asc = true};
    bool more;
    rc = ad_db_list(c->db, &q, first_id, &active, &more);
    if (rc)
        return rc;
    if (active.n) {
        snprintf(msg, sizeof msg, "Thread %s already has an active run %s.", c->thread_id,
                 active.ids[0]);
        push_error(c->out, "invalid_request_error", msg);
        *refused = true;
        return AD_OK;
    }
    rc = insert_text(c->db, c->project, "run", c->run_id, c->thread_id, "active", a->created,
                     a->stored, a->stored_len);
    if (!rc) {
        evq_text(c->out, "thread.run.created", a->text, a->len);
        evq_text(c->out, "thread.run.queued", a->text, a->len);
        evq_text(c->out, "thread.run.in_progress", a->stored, a->stored_len);
        if (a->obj) { /* once (a retry reads the run back instead) */
            wcache_put(c->cache, c->run_id, a->stored, a->stored_len, a->obj);
            json_decref(a->obj);
            a->obj = NULL;
        }
    }
    return rc;
}

static ad_err apply_acts(wctx *c, act *list)
{
    ad_err rc = AD_OK;
    for (act *a = list; a && !rc; a = a->next) {
        switch (a->k) {
        case A_RUN:
            rc = apply_run(c, a);
            break;
        case A_STEP_END:
            rc = step_end(c, a->id, a->status, &a->usage, a->code, a->message);
            break;
        case A_MSG_CLOSE:
            rc = msg_close(c, a->id, a);
            break;
        case A_OPEN_MSG:
            rc = open_msg(c, a);
            break;
        case A_TOOL_STEP: {
            const char *id = json_string_value(json_object_get(a->obj, "id"));
            size_t len;
            char *s = dump(a->obj, &len);
            rc = insert_text(c->db, c->project, "step", id, c->run_id, "",
                             json_integer_value(json_object_get(a->obj, "created_at")), s, len);
            if (!rc) {
                evq_text(c->out, "thread.run.step.created", s, len);
                evq_take(c->out, "thread.run.step.in_progress", s, len);
                s = NULL;
            }
            free(s);
            break;
        }
        case A_SWEEP_STEP:
            rc = sweep_steps(c, a);
            break;
        case A_SWEEP_MSG:
            rc = sweep_messages(c, a);
            break;
        case A_STEP_CALLS:
            rc = step_calls(c, a);
            break;
        case A_TOOL_DONE:
            rc = tool_result(c, a);
            break;
        case A_EVENT:
            if (a->text)
                evq_text(c->out, a->event_name, a->text, a->len);
            else
                evq_push(c->out, a->event_name, a->obj);
            break;
        case A_CANCELLING:
            rc = announce_cancelling(c);
            break;
        case A_EXPIRE:
            rc = expire_waiting(c);
            break;
        case A_REPAIR:
            rc = repair_run(c, a);
            break;
        case A_CREATE:
            rc = create_run(c, a, &c->refused);
            break;
        }
    }
    return rc;
}

/* ---- ops: actions handed to the writer ---- */

struct op {
    ad_wop w; /* first member: the writer's view of the op */
    ad_engine *e;
    job *j; /* loop side only; NULL for ops without a job */
    char project[160], thread_id[AD_ID_MAX], run_id[AD_ID_MAX];
    ad_sse *sse;       /* a reference, or NULL */
    bool step_content; /* the job's */
    act *acts, *last;
    evq pre;      /* the job's held events: sent first, commit or not */
    evq out;      /* produced by apply; sent by writer_done after the commit */
    int rearm_ms; /* A_EXPIRE */
    /* A parse of the op's run the loop already has (begin_job): given to
     * the writer's cache with the text it came from (both owned). */
    char *seed_text;
    size_t seed_len;
    json_t *seed;
    /* The job's last op (its end, or requires_action): when it cannot be
     * committed, the stream hears an error and the run is repaired later. */
    bool final;
    bool creation; /* a streamed createRun (counted in creates_inflight) */
    long retry_ms; /* A_REPAIR: the delay before the next attempt */
    /* A small write the stream waits for (starting the run, opening its
     * message with the first token): the writer takes it ahead of other
     * runs' ops (writer.h, Priority). */
    bool urgent;
    /* ad_engine_create: once the run is stored the loop starts it (a task
     * with the stream, flags and the handler's parse); refused: a check
     * failed (the stream heard why and ends). */
    struct task *start;
    bool refused;
};

static op *op_new(ad_engine *e, const char *project, const char *thread_id, const char *run_id)
{
    op *o = ad_calloc(1, sizeof *o);
    o->e = e;
    ad_strlcpy(o->project, project, sizeof o->project);
    ad_strlcpy(o->thread_id, thread_id, sizeof o->thread_id);
    ad_strlcpy(o->run_id, run_id, sizeof o->run_id);
    o->rearm_ms = -1;
    return o;
}

static op *op_for(job *j)
{
    op *o = op_new(j->e, j->project, j->thread_id, j->run_id);
    o->j = j;
    o->step_content = j->step_content;
    if (j->sse) {
        ad_sse_ref(j->sse);
        o->sse = j->sse;
    }
    return o;
}

static void op_free(op *o)
{
    act *a = o->acts;
    while (a) {
        act *next = a->next;
        act_free(a);
        a = next;
    }
    evq_clear(&o->pre);
    evq_clear(&o->out);
    if (o->sse)
        ad_sse_unref(o->sse);
    ad_free(o->seed_text);
    json_decref(o->seed);
    if (o->start)
        task_free(o->start);
    ad_free(o);
}

static act *add_act(op *o, act_kind k)
{
    act *a = ad_calloc(1, sizeof *a);
    a->k = k;
    if (o->last)
        o->last->next = a;
    else
        o->acts = a;
    o->last = a;
    return a;
}

/* Applies o's actions on db, reading through cache (may be NULL). */
static ad_err op_apply_on(op *o, ad_db *db, wcache *cache)
{
    evq_clear(&o->out);     /* a retry starts afresh */
    if (o->seed && cache) { /* once: the cache then owns it */
        wcache_put(cache, o->run_id, o->seed_text, o->seed_len, o->seed);
        json_decref(o->seed);
        o->seed = NULL;
    }
    wctx c = {.db = db,
              .cache = cache,
              .project = o->project,
              .thread_id = o->thread_id,
              .run_id = o->run_id,
              .out = &o->out,
              .step_content = o->step_content,
              .rearm_ms = -1};
    ad_err rc = apply_acts(&c, o->acts);
    o->rearm_ms = c.rearm_ms;
    o->refused = c.refused;
    return rc;
}

/* Writer thread. */
static ad_err op_apply(ad_wop *w, ad_db *db)
{
    op *o = (op *)w;
    return op_apply_on(o, db, o->e->wcache);
}

static void ops_done(void *ud);

#define SAVE_FAILED "The run could not be saved."

/* Writer thread, after each group: the events of committed ops go out now
 * (in order), then the loop hears of the group. A job's end that could not
 * be committed is announced as an error (the stream then ends). */
static void writer_done(void *ud, ad_wop *ops)
{
    ad_engine *e = ud;
    for (ad_wop *w = ops; w; w = w->next) {
        op *o = (op *)w;
        if (o->sse && o->pre.head)
            evq_send(&o->pre, o->sse);
        if (w->committed && o->sse)
            evq_send(&o->out, o->sse);
        else
            evq_clear(&o->out);
        if (!w->committed && (o->final || o->start) && o->sse) {
            json_t *err = json_pack("{s:s,s:s,s:n,s:s}", "code", "server_error", "message",
                                    SAVE_FAILED, "param", "type", "server_error");
            evq_push(&o->out, "error", err);
            json_decref(err);
            evq_send(&o->out, o->sse);
        }
        if (o->start) /* stored (the store says so from now on) or not */
            ad_engine_release(e, o->thread_id, o->run_id);
    }
    ad_upstream_post(e->up, ops_done, ops);
}

/* Loop thread. A job's ops are counted until their completion is back. */
static void submit(op *o)
{
    ad_engine *e = o->e;
    if (!o->acts || e->stopping || !e->writer) {
        op_free(o);
        return;
    }
    o->w.apply = op_apply;
    if (o->j) {
        /* Events held for the ops in flight go out ahead of this op's. */
        o->pre = o->j->held;
        o->j->held.head = o->j->held.tail = NULL;
        /* An urgent op may overtake other runs' ops, never its own run's:
         * the job's ops in flight are all in one of the writer's FIFOs,
         * which keeps its order whichever FIFO the writer serves first. An
         * op joins the FIFO of those in flight; only with none in flight
         * does it go by its own kind. */
        int urgent_inflight = o->j->inflight - o->j->inflight_normal;
        o->w.urgent = o->j->inflight_normal ? false : urgent_inflight ? true : o->urgent;
        o->j->inflight++;
        if (!o->w.urgent)
            o->j->inflight_normal++;
    } else {
        o->w.urgent = false;
    }
    ad_writer_submit(e->writer, &o->w);
}

/* Start-up repair, on the loop's own connection (nothing else writes yet). */
static void apply_now(ad_engine *e, op *o)
{
    if (ad_db_begin(e->db) == AD_OK) {
        if (op_apply_on(o, e->db, NULL) || ad_db_commit(e->db))
            ad_db_rollback(e->db);
    }
    op_free(o);
}

/* ---- jobs ---- */

static job *find_job(ad_engine *e, const char *run_id)
{
    for (job *j = e->jobs; j; j = j->next)
        if (!strcmp(j->run_id, run_id))
            return j;
    return NULL;
}

/* Back-pressure: a paused model call is not read (its bytes stay in the
 * kernel's socket buffers, then the upstream's) until resume_call. */
static void pause_call(job *j)
{
    j->paused = true;
    atomic_fetch_add(&j->e->m_paused, 1);
    atomic_fetch_add(&j->e->m_pauses, 1);
    ad_upstream_pause(j->e->up, j->call);
}

static void resume_call(job *j)
{
    j->paused = false;
    atomic_fetch_sub(&j->e->m_paused, 1);
    ad_upstream_resume(j->e->up, j->call);
}

static void send_direct(job *j, size_t waiting)
{
    /* Back-pressure: stop reading the model while the client lags. */
    if (waiting >= AD_SSE_HIGH_WATER && j->call && !j->paused)
        pause_call(j);
}

/* An event that needs no write (deltas): now, or after the ops in flight.
 * Held events are bounded as the stream is: past its high-water mark the
 * model call pauses until the writer has caught up (ops_done). */
static void announce(job *j, const char *event, const json_t *obj)
{
    if (!j->sse)
        return;
    if (j->inflight > 0) {
        j->held_bytes += evq_push(&j->held, event, obj);
        send_direct(j, j->held_bytes);
        return;
    }
    char *s = json_dumps(obj, AD_JSON_COMPACT);
    if (!s)
        return;
    size_t waiting = ad_sse_send(j->sse, event, s, strlen(s));
    free(s);
    send_direct(j, waiting);
}

/* The same for an event whose data is already text. */
static void announce_text(job *j, const char *event, const char *s, size_t len)
{
    if (!j->sse)
        return;
    if (j->inflight > 0) {
        j->held_bytes += evq_text(&j->held, event, s, len);
        send_direct(j, j->held_bytes);
        return;
    }
    send_direct(j, ad_sse_send(j->sse, event, s, len));
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
    j->live_call = -1;
    j->calls_stored = false;
}

static void job_free(job *j)
{
    atomic_fetch_sub(&j->e->m_jobs, 1);
    if (j->paused) /* the engine stopped with the call paused */
        atomic_fetch_sub(&j->e->m_paused, 1);
    if (j->sse) {
        if (j->held.head)
            evq_send(&j->held, j->sse);
        ad_sse_close(j->sse);
        ad_sse_unref(j->sse);
    }
    evq_clear(&j->held);
    reset_call_state(j);
    ad_free(j->calls);
    ad_free(j->refusal);
    ad_buf_free(&j->text);
    json_decref(j->tools);
    json_decref(j->images);
    ad_free(j);
}

static void close_check(void *ud);

/* Closing: once no run is left in flight, close_check ends the shutdown's
 * first half. Posted, so it runs after the caller is done with e. */
static void maybe_close(ad_engine *e)
{
    if (e->closing && !e->close_check_posted) {
        e->close_check_posted = true;
        ad_upstream_post(e->up, close_check, e);
    }
}

/* The engine is done with the run. Its stream ends (with done) once the
 * ops still in flight have announced what they committed. */
static void job_end(job *j)
{
    ad_engine *e = j->e;
    for (job **p = &e->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    j->ended = true;
    j->then = NULL;
    if (!j->inflight)
        job_free(j);
    maybe_close(e);
}

/* Runs fn(j) once the job's writes are committed. */
static void after_writes(job *j, void (*fn)(job *j))
{
    if (!j->inflight)
        fn(j);
    else
        j->then = fn;
}

static void expire_cb(void *ud);

static void arm_expiry(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                       long ms)
{
    task *tk = task_new(e, project, thread_id, run_id);
    ad_upstream_post_after(e->up, ms > 0 ? ms : 0, expire_cb, tk);
}

static void repair_cb(void *ud);

/* In ms, the run gets repaired (see repair_run), unless it has ended. */
static void arm_repair(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                       long ms)
{
    task *tk = task_new(e, project, thread_id, run_id);
    tk->delay_ms = ms;
    ad_upstream_post_after(e->up, ms, repair_cb, tk);
}

/* Attempts at repairing a run whose end could not be committed: the first
 * after a second, then less and less often (the store may be full). */
#define REPAIR_FIRST_MS 1000
#define REPAIR_MAX_MS   60000

/* An op that could not be committed and is not followed by another of its
 * job: the run would stay active in the store with nobody working on it
 * (until the next start), so it is tried again. A run's end or a repair:
 * the run gets repaired; an expiry of a waiting run: the expiry. */
static void retry_failed(ad_engine *e, const op *o)
{
    if (e->stopping) /* the next start repairs what is left active */
        return;
    if (o->final || o->retry_ms > 0)
        arm_repair(e, o->project, o->thread_id, o->run_id,
                   o->final ? REPAIR_FIRST_MS : o->retry_ms);
    else if (!o->j && o->acts && o->acts->k == A_EXPIRE)
        arm_expiry(e, o->project, o->thread_id, o->run_id, REPAIR_FIRST_MS);
}

static void begin_job(ad_engine *e, task *tk);
static void queue_start(ad_engine *e, task *tk);

/* Loop thread: the writer finished a group. */
static void ops_done(void *ud)
{
    ad_wop *w = ud;
    while (w) {
        ad_wop *next = w->next;
        op *o = (op *)w;
        ad_engine *e = o->e;
        job *j = o->j;
        bool committed = w->committed, urgent = w->urgent;
        if (!j && committed && o->rearm_ms >= 0 && !e->stopping)
            arm_expiry(e, o->project, o->thread_id, o->run_id, o->rearm_ms);
        if (!committed) {
            ad_log(&e->srv->log, AD_LOG_ERROR, "run %s: a store write failed", o->run_id);
            if (!o->start)
                retry_failed(e, o);
        } else if (o->start && !o->refused && !e->stopping) {
            queue_start(e, o->start); /* the run is stored: it starts */
            o->start = NULL;
        }
        bool creation = o->creation;
        op_free(o); /* an unstarted run's stream ends with it (task_free) */
        if (creation) {
            atomic_fetch_sub(&e->creates_inflight, 1);
            maybe_close(e);
        }
        if (j) {
            if (!committed && !j->ended) {
                j->save_failed = true;
                if (j->call)
                    ad_upstream_cancel(e->up, j->call); /* on_done fails the run */
            }
            if (!urgent)
                j->inflight_normal--;
            if (--j->inflight == 0) {
                if (j->ended) {
                    job_free(j);
                } else {
                    if (j->held.head && j->sse)
                        evq_send(&j->held, j->sse);
                    j->held_bytes = 0;
                    /* A call paused for held events goes on unless the
                     * client lags (then its drain resumes it). */
                    size_t waiting = j->sse ? ad_sse_waiting(j->sse) : 0;
                    send_direct(j, waiting);
                    if (j->paused && j->call && waiting < AD_SSE_HIGH_WATER)
                        resume_call(j);
                    void (*fn)(job *) = j->then;
                    j->then = NULL;
                    if (fn)
                        fn(j);
                }
            }
        }
        w = next;
    }
}

/* ---- building ops ---- */

static act *add_run(op *o, run_edit edit, const char *status, const usage_t *u, bool event)
{
    act *a = add_act(o, A_RUN);
    a->edit = edit;
    a->status = status;
    if (u)
        a->usage = *u;
    a->event = event;
    return a;
}

static void add_end_step(op *o, const char *step_id, const char *status, const usage_t *u,
                         const char *code, const char *message)
{
    act *a = add_act(o, A_STEP_END);
    ad_strlcpy(a->id, step_id, sizeof a->id);
    a->status = status;
    if (u)
        a->usage = *u;
    set_error(a, code, message);
}

/* Closes the open message of this call with the text streamed so far; the
 * figures shown in it go with it. */
static void add_close_message(op *o, job *j, const char *status, const char *reason)
{
    if (!j->msg_id[0])
        return;
    act *a = add_act(o, A_MSG_CLOSE);
    ad_strlcpy(a->id, j->msg_id, sizeof a->id);
    a->status = status;
    a->reason = reason;
    a->text = ad_strndup(ad_buf_str(&j->text), j->text.len);
    a->len = j->text.len;
    a->images = j->images;
    j->images = NULL;
    a->has_tools = j->tools != NULL;
    a->text_index = j->text_index;
    a->refusal = j->refusal;
    a->refusal_len = j->refusal_len;
    j->refusal = NULL;
    j->msg_id[0] = '\0';
}

static const char *step_status_for(const char *run_status)
{
    if (!strcmp(run_status, "cancelled") || !strcmp(run_status, "expired") ||
        !strcmp(run_status, "failed"))
        return run_status;
    return "completed";
}

/* The run's end: steps still open end with it, then the run itself. */
static void add_finish(op *o, const char *status, const char *code, const char *message,
                       const char *incomplete_reason, const usage_t *u)
{
    act *s = add_act(o, A_SWEEP_STEP);
    s->status = step_status_for(status);
    act *r = add_run(o, R_END, status, u, true);
    set_error(r, code, message);
    r->incomplete_reason = incomplete_reason;
}

static json_t *step_tool_calls(job *j);

static void fail_open_parts(op *o, job *j, const char *step_status, const char *msg_reason,
                            const char *code, const char *message)
{
    add_close_message(o, j, "incomplete", msg_reason);
    if (j->msg_step_id[0])
        add_end_step(o, j->msg_step_id, step_status, NULL, code, message);
    if (j->tool_step_id[0] && j->ncalls && !j->calls_stored) {
        /* Cut while the model was still writing its calls: the step keeps
         * them as far as they came (what the first one's deltas showed,
         * and the held ones, never announced before). */
        act *a = add_act(o, A_STEP_CALLS);
        ad_strlcpy(a->id, j->tool_step_id, sizeof a->id);
        a->obj = step_tool_calls(j);
        j->calls_stored = true;
    }
    if (j->tool_step_id[0])
        add_end_step(o, j->tool_step_id, step_status, NULL, code, message);
    j->msg_step_id[0] = j->tool_step_id[0] = '\0';
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

/* Opens this call's message: the op that stores it (and its step), for the
 * caller to add to and submit. */
static op *open_message(job *j)
{
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
    op *o = op_for(j);
    o->urgent = true;
    act *a = add_act(o, A_OPEN_MSG);
    a->obj = step;
    a->obj2 = msg;
    a->images = j->images ? json_deep_copy(j->images) : NULL;
    ad_strlcpy(j->msg_step_id, step_id, sizeof j->msg_step_id);
    j->text_index = (int)json_array_size(j->images);
    return o;
}

/* ---- upstream callbacks ---- */

/* Appends s[0..n) (valid UTF-8) to b as a JSON string, escaped as jansson
 * escapes it: quote, backslash and control characters only. */
static void json_string_append(ad_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    ad_buf_addc(b, '"');
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        ad_buf_add(b, s + from, i - from);
        from = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
            break;
        }
        ad_buf_add(b, esc, elen);
    }
    ad_buf_add(b, s + from, n - from);
    ad_buf_addc(b, '"');
}

static ad_err on_text(void *ud, const char *piece, size_t len)
{
    job *j = ud;
    /* The first piece opens the message; its delta goes with the op that
     * stores the message, so the writer sends it right after the commit's
     * events instead of the loop after hearing of the commit. */
    op *o = !j->msg_id[0] && !j->msg_step_id[0] ? open_message(j) : NULL;
    if (ad_buf_add(&j->text, piece, len)) {
        if (o)
            submit(o);
        return AD_ETOOBIG;
    }
    if (!ad_utf8_valid(piece, len)) { /* not representable as JSON: no delta */
        if (o)
            submit(o);
        return AD_OK;
    }
    /* The delta is written directly (the hot path of every stream): the
     * JSON jansson would make of
     * {"id","object","delta":{"content":[{"index","type","text":{"value"
     * [,"annotations":[] on the first piece]}}]}}. */
    ad_buf d;
    ad_buf_init(&d, 6 * len + 512);
    ad_buf_printf(&d,
                  "{\"id\":\"%s\",\"object\":\"thread.message.delta\",\"delta\":{\"content\":"
                  "[{\"index\":%d,\"type\":\"text\",\"text\":{\"value\":",
                  j->msg_id, j->text_index);
    json_string_append(&d, piece, len);
    if (!j->text_announced) {
        ad_buf_addstr(&d, ",\"annotations\":[]");
        j->text_announced = true;
    }
    ad_buf_addstr(&d, "}}]}}");
    if (o) {
        act *a = add_act(o, A_EVENT);
        ad_strlcpy(a->event_name, "thread.message.delta", sizeof a->event_name);
        a->text = ad_strndup(ad_buf_str(&d), d.len);
        a->len = d.len;
        submit(o);
    } else {
        announce_text(j, "thread.message.delta", ad_buf_str(&d), d.len);
    }
    ad_buf_free(&d);
    return AD_OK;
}

static json_t *step_delta(job *j, json_t *tool_call)
{
    return json_pack("{s:s,s:s,s:{s:{s:s,s:[o]}}}", "id", j->tool_step_id, "object",
                     "thread.run.step.delta", "delta", "step_details", "type", "tool_calls",
                     "tool_calls", tool_call);
}

static void announce_step_delta(job *j, json_t *tool_call)
{
    json_t *d = step_delta(j, tool_call);
    announce(j, "thread.run.step.delta", d);
    json_decref(d);
}

static ad_err on_tool_call_start(void *ud, int index, const char *id, const char *name)
{
    job *j = ud;
    (void)id; /* the upstream's id; ours is issued below */
    if (index < 0 || index >= AD_CS_MAX_TOOL_CALLS)
        return AD_EINVAL;
    if (j->msg_step_id[0] || !j->tool_step_id[0]) {
        op *o = op_for(j);
        if (j->msg_step_id[0]) { /* the message of this call is complete */
            add_close_message(o, j, "completed", NULL);
            add_end_step(o, j->msg_step_id, "completed", NULL, NULL, NULL);
            j->msg_step_id[0] = '\0';
        }
        if (!j->tool_step_id[0]) {
            char step_id[AD_ID_MAX];
            ad_id_new(step_id, "step_");
            act *a = add_act(o, A_TOOL_STEP);
            a->obj = new_step(j, step_id, "tool_calls",
                              json_pack("{s:s,s:[]}", "type", "tool_calls", "tool_calls"));
            ad_strlcpy(j->tool_step_id, step_id, sizeof j->tool_step_id);
        }
        submit(o);
    }
    if (!j->calls) /* most runs make no tool call: the slots come with the first */
        j->calls = ad_calloc(AD_CS_MAX_TOOL_CALLS, sizeof *j->calls);
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
    /* Parallel calls are relayed one after the other, never interleaved
     * (flush_held_calls says why). */
    if (j->live_call < 0)
        j->live_call = index;
    c->held = j->live_call != index;
    if (c->held)
        return AD_OK;
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
    if (c->held)
        return AD_OK;
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

/* Tool-call deltas. The SDKs' stream helpers (AssistantStream) take a
 * step delta for a new call index as the end of the previous call
 * (toolCallDone fires with the arguments so far), so calls must not be
 * interleaved on the stream, as OpenAI's never were. Upstreams may
 * interleave the pieces of parallel calls, and whether a call is finished
 * is only known when the model's answer ends. So the first call to start is
 * relayed piece by piece; every other call is held and announced whole, in
 * index order, when the answer ends: one delta each with the id, the name
 * and all the arguments (a code_interpreter call: all its code). */
static void flush_held_calls(job *j)
{
    for (int i = 0; i < j->ncalls; i++) {
        call_state *c = &j->calls[i];
        if (!c->held || !c->name.len)
            continue;
        c->held = false;
        if (c->kind == AD_TOOL_CODE_INTERPRETER) {
            json_t *a = json_loadb(c->args.ptr ? c->args.ptr : "", c->args.len, 0, NULL);
            const char *code = json_string_value(json_object_get(a, "code"));
            announce_step_delta(j, json_pack("{s:i,s:s,s:s,s:{s:s,s:[]}}", "index", i, "id", c->id,
                                             "type", "code_interpreter", "code_interpreter",
                                             "input", code ? code : "", "outputs"));
            json_decref(a);
        } else if (c->kind == AD_TOOL_FILE_SEARCH) {
            announce_step_delta(j, json_pack("{s:i,s:s,s:s,s:{}}", "index", i, "id", c->id, "type",
                                             "file_search", "file_search"));
        } else {
            announce_step_delta(
                j, json_pack("{s:i,s:s,s:s,s:{s:s,s:s%,s:n}}", "index", i, "id", c->id, "type",
                             "function", "function", "name", ad_buf_str(&c->name), "arguments",
                             c->args.ptr ? c->args.ptr : "", c->args.len, "output"));
        }
    }
}

/* The model refused (chat-completions delta.refusal, e.g. under a
 * json_schema response_format): a refusal content part follows the text,
 * in a message opened for it if none is. Announced as one delta when the
 * answer ends (refusals are a sentence; the parser collects them). */
static void add_refusal(job *j, const char *s, size_t len)
{
    op *o = !j->msg_id[0] ? open_message(j) : NULL;
    int index = j->text_index + (j->text.len ? 1 : 0);
    json_t *d = json_pack("{s:s,s:s,s:{s:[{s:i,s:s,s:s%}]}}", "id", j->msg_id, "object",
                          "thread.message.delta", "delta", "content", "index", index, "type",
                          "refusal", "refusal", s, len);
    if (o) { /* as the first text delta: sent right after the opening commit */
        act *a = add_act(o, A_EVENT);
        ad_strlcpy(a->event_name, "thread.message.delta", sizeof a->event_name);
        a->obj = d;
        submit(o);
    } else {
        announce(j, "thread.message.delta", d);
        json_decref(d);
    }
    ad_free(j->refusal);
    j->refusal = ad_strndup(s, len);
    j->refusal_len = len;
}

/* ---- ending a run ---- */

/* Submits o with the run's end and lets the job go. */
static void finish(job *j, op *o, const char *status, const char *code, const char *message,
                   const char *incomplete_reason, const usage_t *u)
{
    add_finish(o, status, code, message, incomplete_reason, u);
    o->final = true;
    submit(o);
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

static void finish_cancelled(job *j, const usage_t *u)
{
    interrupt_tools(j);
    op *o = op_for(j);
    fail_open_parts(o, j, "cancelled", "run_cancelled", NULL, NULL);
    finish(j, o, "cancelled", NULL, NULL, NULL, u);
}

static void finish_expired(job *j, const usage_t *u)
{
    interrupt_tools(j);
    op *o = op_for(j);
    fail_open_parts(o, j, "expired", "run_expired", NULL, NULL);
    finish(j, o, "expired", NULL, NULL, NULL, u);
}

static void fail_run(job *j, const char *code, const char *message, const usage_t *u)
{
    op *o = op_for(j);
    fail_open_parts(o, j, "failed", "run_failed", code, message);
    finish(j, o, "failed", code, message, NULL, u);
}

/* Shutdown (closing): the run ends failed now, committed and announced, so
 * that its stream closes with a terminal run event and its pollers see a
 * clear last_error, rather than an in_progress run the next start fails. */
static void shut_down(job *j, const usage_t *u)
{
    interrupt_tools(j);
    fail_run(j, "server_error", SHUTDOWN, u);
}

static bool has_builtin_calls(const job *j)
{
    for (int k = 0; k < j->ncalls; k++)
        if (j->calls[k].name.len && j->calls[k].kind != AD_TOOL_FUNCTION)
            return true;
    return false;
}

/* The function calls of the finished model call, as required_action
 * lists them. */
static json_t *function_calls(job *j)
{
    json_t *calls = json_array();
    for (int i = 0; i < j->ncalls; i++)
        if (j->calls[i].name.len && j->calls[i].kind == AD_TOOL_FUNCTION)
            json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", j->calls[i].id,
                                                   "type", "function", "function", "name",
                                                   ad_buf_str(&j->calls[i].name), "arguments",
                                                   ad_buf_str(&j->calls[i].args)));
    return calls;
}

/* The tool_calls step's calls (with output null) until outputs come. */
static json_t *step_tool_calls(job *j)
{
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
    return calls;
}

/* requires_action: the function calls wait for the client's outputs. */
static void wait_for_outputs(job *j)
{
    op *o = op_for(j);
    act *a = add_run(o, R_REQUIRES_ACTION, NULL, NULL, true);
    a->obj = function_calls(j);
    o->final = true;
    submit(o);
    arm_expiry(j->e, j->project, j->thread_id, j->run_id,
               j->expires_at > now_s() ? (long)(j->expires_at - now_s()) * 1000 : 0);
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
    ad_db_list(j->e->db, &q, count_fs, &fs, &more); /* committed: see tools_or_wait */
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

static void start_call(job *j, json_t *run);

/* The next model call, once the tool results are committed (the prompt
 * reads them, and the run's usage so far). */
static void next_call(job *j)
{
    if (j->e->closing) {
        shut_down(j, NULL);
        return;
    }
    json_t *run = load(j->e->db, j->project, "run", j->run_id);
    if (!run) {
        fail_run(j, "server_error", "The run could not be read.", NULL);
        return;
    }
    start_call(j, run);
    json_decref(run);
}

/* Every built-in call of the step has its result, committed. */
static void tools_all_done(job *j)
{
    if (j->cancel_requested) {
        finish_cancelled(j, NULL);
        return;
    }
    if (j->expire_requested) {
        finish_expired(j, NULL);
        return;
    }
    if (j->save_failed) {
        fail_run(j, "server_error", "The tool call could not be saved.", NULL);
        return;
    }
    if (j->tool_fail_code) {
        char code[64], msg[256];
        ad_strlcpy(code, j->tool_fail_code, sizeof code);
        ad_strlcpy(msg, j->tool_fail_msg, sizeof msg);
        fail_run(j, code, msg, NULL);
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
    op *o = op_for(j);
    add_end_step(o, j->tool_step_id, "completed", NULL, NULL, NULL);
    submit(o);
    j->tool_step_id[0] = '\0';
    after_writes(j, next_call);
}

/* On the loop: a built-in call has run (tools.h). */
static void tool_done(ad_tool_work *w, void *ud)
{
    ad_engine *e = ud;
    /* Once shutdown began, results are dropped: a cell the sandbox's own
     * shutdown interrupted did not run to its end, and stop_all ends the
     * run without them. */
    job *j = e->stopping || atomic_load(&e->srv->stopping) ? NULL : find_job(e, w->run_id);
    if (!j || !j->tools_pending || !j->tool_step_id[0]) { /* the run ended meanwhile */
        ad_tool_work_free(w);
        return;
    }
    /* Outputs as a step delta (file_search result content only on request),
     * sent once the result is committed. */
    json_t *shown = json_deep_copy(w->details);
    json_object_del(shown, "id");
    json_t *wrap = json_pack("{s:{s:[O]}}", "step_details", "tool_calls", shown);
    if (!j->step_content)
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
    if (json_array_size(w->images)) {
        json_t *copy = json_deep_copy(w->images);
        if (!j->images)
            j->images = json_array();
        json_array_extend(j->images, copy);
        json_decref(copy);
    }
    if (w->failed && w->fail_code && !j->tool_fail_code) {
        j->tool_fail_code = w->fail_code;
        ad_strlcpy(j->tool_fail_msg, w->model_text ? w->model_text : "The tool failed.",
                   sizeof j->tool_fail_msg);
    }
    op *o = op_for(j);
    act *a = add_act(o, A_TOOL_DONE);
    ad_strlcpy(a->id, j->tool_step_id, sizeof a->id);
    a->work = w;
    /* A file_search call's delta stays what the model's call announced,
     * "file_search": {} (the spec: "always going to be an empty object");
     * its results arrive with thread.run.step.completed. */
    const char *ctype = json_string_value(json_object_get(w->details, "type"));
    if (ctype && !strcmp(ctype, "file_search")) {
        json_decref(shown);
    } else {
        act *d = add_act(o, A_EVENT);
        ad_strlcpy(d->event_name, "thread.run.step.delta", sizeof d->event_name);
        d->obj = step_delta(j, shown);
    }
    submit(o);
    if (--j->tools_pending > 0)
        return;
    after_writes(j, tools_all_done);
}

/* The finished call's tool_calls step is committed (submit_builtins counts
 * the run's earlier file_search calls from the store). */
static void tools_or_wait(job *j)
{
    if (j->save_failed) {
        fail_run(j, "server_error", SAVE_FAILED, NULL);
        return;
    }
    if (j->e->closing && has_builtin_calls(j)) { /* no tool starts any more */
        shut_down(j, NULL);
        return;
    }
    if (submit_builtins(j) > 0)
        return; /* tool_done goes on */
    wait_for_outputs(j);
}

static void on_done(void *ud, const ad_up_result *res)
{
    job *j = ud;
    j->call = NULL;
    if (j->paused) {
        j->paused = false;
        atomic_fetch_sub(&j->e->m_paused, 1);
    }
    const ad_cs_turn *t = res->turn;
    usage_t u = usage_of(t);
    if (j->e->stopping) { /* cannot happen: stopping waits for every job to end */
        job_end(j);
        return;
    }
    if (j->save_failed) {
        fail_run(j, "server_error", SAVE_FAILED, &u);
        return;
    }
    if (res->cancelled || j->cancel_requested || j->expire_requested) {
        if (j->e->closing && !j->cancel_requested && !j->expire_requested)
            shut_down(j, &u); /* stop_all cancelled the call */
        else if (j->cancel_requested || !j->expire_requested)
            finish_cancelled(j, &u);
        else
            finish_expired(j, &u);
        return;
    }
    if (res->rc) {
        fail_run(j, res->error_code ? res->error_code : "server_error",
                 res->error_message ? res->error_message : "The model call failed.", &u);
        return;
    }
    flush_held_calls(j);
    bool has_calls = j->ncalls > 0 && j->tool_step_id[0];
    if (t->refusal.len && !has_calls && ad_utf8_valid(t->refusal.ptr, t->refusal.len))
        add_refusal(j, ad_buf_str(&t->refusal), t->refusal.len);
    bool cut = !strcmp(t->finish_reason, "length");
    /* The provider's content filter stopped the answer (Azure): the message
     * ends incomplete for that reason; the run itself completes (its
     * incomplete_details only name token limits). */
    bool filtered = !strcmp(t->finish_reason, "content_filter");
    op *o = op_for(j);
    if (j->msg_step_id[0]) {
        if ((cut || filtered) && !has_calls) {
            add_close_message(o, j, "incomplete", cut ? "max_tokens" : "content_filter");
            add_end_step(o, j->msg_step_id, "completed", &u, NULL, NULL);
        } else {
            add_close_message(o, j, "completed", NULL);
            add_end_step(o, j->msg_step_id, "completed", has_calls ? NULL : &u, NULL, NULL);
        }
        j->msg_step_id[0] = '\0';
    }
    if (has_calls && !cut) {
        add_run(o, R_NONE, NULL, &u, false);
        act *a = add_act(o, A_STEP_CALLS);
        ad_strlcpy(a->id, j->tool_step_id, sizeof a->id);
        a->obj = step_tool_calls(j);
        a->usage = u;
        j->calls_stored = true;
        submit(o);
        after_writes(j, tools_or_wait);
        return;
    }
    if (j->tool_step_id[0])
        add_end_step(o, j->tool_step_id, "completed", &u, NULL, NULL);
    if (cut)
        finish(j, o, "incomplete", NULL, NULL, "max_completion_tokens", &u);
    else
        finish(j, o, "completed", NULL, NULL, NULL, &u);
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
        fail_run(j, "invalid_prompt", "The run's model is not configured on this server.", NULL);
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
    case AD_PROMPT_COMPLETION_BUDGET:
        /* Nothing is open: budgets are checked before the call. */
        finish(j, op_for(j), "incomplete", NULL, NULL,
               ps == AD_PROMPT_PROMPT_BUDGET ? "max_prompt_tokens" : "max_completion_tokens", NULL);
        return;
    case AD_PROMPT_TOO_LONG:
        fail_run(j, "invalid_prompt", err, NULL);
        return;
    case AD_PROMPT_ERROR:
    default:
        fail_run(j, "server_error", err[0] ? err : "The prompt could not be built.", NULL);
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
            j->step_content = tk->step_content;
            tk->sse = NULL;
        }
        return;
    }
    /* The run as the handler committed it: what this job writes comes
     * after that. */
    json_t *run = load_hinted(e->db, tk->project, tk->run_id, tk->run_text, tk->run);
    if (!run) {
        if (tk->sse) {
            ad_sse_close(tk->sse);
            ad_sse_unref(tk->sse);
            tk->sse = NULL;
        }
        return;
    }
    j = ad_calloc(1, sizeof *j);
    j->e = e;
    atomic_fetch_add(&e->m_jobs, 1);
    atomic_fetch_add(&e->m_jobs_total, 1);
    ad_strlcpy(j->project, tk->project, sizeof j->project);
    ad_strlcpy(j->thread_id, tk->thread_id, sizeof j->thread_id);
    ad_strlcpy(j->run_id, tk->run_id, sizeof j->run_id);
    j->step_content = tk->step_content;
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
        finish_cancelled(j, NULL);
        return;
    }
    /* A streamed creation was stored in progress (create_run). */
    bool started = tk->started && !strcmp(st, "in_progress");
    if (!started && strcmp(st, "queued") != 0) { /* nothing to do (terminal or waiting) */
        json_decref(run);
        job_end(j);
        return;
    }
    if (e->closing) { /* a start that came too late: no model call any more */
        json_decref(run);
        shut_down(j, NULL);
        return;
    }
    if (!started) {
        /* in_progress is committed (and announced) by the writer while the
         * prompt is built and the model called: neither depends on it. */
        op *o = op_for(j);
        o->urgent = true;
        add_run(o, R_IN_PROGRESS, NULL, NULL, true);
        if (tk->run_text && run == tk->run) {
            /* The writer reads the run back: hand it this parse (a copy,
             * as the loop goes on reading its own) for its cache. */
            o->seed_text = tk->run_text;
            o->seed_len = strlen(tk->run_text);
            tk->run_text = NULL;
            o->seed = json_deep_copy(run);
        }
        submit(o);
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
        if (j && !j->cancel_requested && j->sse) {
            /* The handler stored the run as cancelling; the stream hears it. */
            op *o = op_for(j);
            add_act(o, A_CANCELLING);
            submit(o);
        }
        if (j) {
            j->cancel_requested = true;
            if (j->call)
                ad_upstream_cancel(tk->e->up, j->call);
            else
                finish_cancelled(j, NULL);
        } else {
            begin_job(tk->e, tk); /* waiting run: stored as cancelling */
        }
    } else {
        begin_job(tk->e, tk);
    }
    task_free(tk);
}

/* A run waiting for tool outputs reaches its expires_at (checked and
 * changed by the writer; ops_done re-arms the timer if it is not due). */
static void expire_cb(void *ud)
{
    task *tk = ud;
    ad_engine *e = tk->e;
    if (!e->stopping && !find_job(e, tk->run_id)) {
        op *o = op_new(e, tk->project, tk->thread_id, tk->run_id);
        add_act(o, A_EXPIRE);
        submit(o);
    }
    task_free(tk);
}

static void repair_cb(void *ud)
{
    task *tk = ud;
    ad_engine *e = tk->e;
    if (e->stopping) {
        /* the next start repairs it */
    } else if (find_job(e, tk->run_id)) { /* a cancel took the run up again */
        arm_repair(e, tk->project, tk->thread_id, tk->run_id, tk->delay_ms);
    } else {
        op *o = op_new(e, tk->project, tk->thread_id, tk->run_id);
        set_error(add_act(o, A_REPAIR), "server_error", SAVE_FAILED);
        o->retry_ms = tk->delay_ms * 2 < REPAIR_MAX_MS ? tk->delay_ms * 2 : REPAIR_MAX_MS;
        submit(o);
    }
    task_free(tk);
}

/* ---- starts ----
 *
 * Starting a run (begin_job: loading it, building the prompt with its token
 * count, starting the model call) costs a few hundred microseconds of loop
 * time; relaying a token costs a few. When thousands of runs are created
 * at once, starting them all before the loop next reads its sockets would
 * hold every stream already flowing for as long (and the writer's
 * completions, which release a stream's held deltas, wait behind them in
 * the same queue). So starts wait in a queue of their own, and run_starts
 * takes them a slice at a time (at least one): the rest waits for the
 * loop's next turn, after the sockets and whatever was posted meanwhile. A
 * slice lasts half as long as the loop spent on everything else since the
 * last one, between START_SLICE_MIN_US and START_SLICE_MAX_US: under load
 * starts get a third of the loop, and a turn stays short enough for the
 * streams already flowing. (Running every start at once meant gaps of over
 * a second at 5,000 streams; a fixed 2 ms slice kept the gaps under 0.3 s
 * but runs created late in a burst of 5,000 waited up to 9 s (p99) for
 * their first token; a third: gaps under 0.45 s, first tokens within
 * 2.7 s.) Starts keep their order; cancels do not wait here (run_task copes
 * with a cancel that arrives before its run's start). */
#define START_SLICE_MIN_US 2000
#define START_SLICE_MAX_US 20000

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void run_starts(void *ud)
{
    ad_engine *e = ud;
    e->starts_posted = false;
    int64_t t0 = mono_us(), slice = (t0 - e->starts_end_us) / 2;
    if (slice < START_SLICE_MIN_US)
        slice = START_SLICE_MIN_US;
    if (slice > START_SLICE_MAX_US)
        slice = START_SLICE_MAX_US;
    while (e->starts) {
        task *tk = e->starts;
        e->starts = tk->qnext;
        if (!e->starts)
            e->starts_tail = NULL;
        run_task(tk);
        if (!e->stopping && mono_us() - t0 >= slice)
            break;
    }
    e->starts_end_us = mono_us();
    if (e->starts) {
        e->starts_posted = true;
        ad_upstream_post(e->up, run_starts, e);
    }
    maybe_close(e); /* a start that found nothing to do ends no job */
}

/* Loop thread: tk (a start) runs after the starts queued before it. */
static void queue_start(ad_engine *e, task *tk)
{
    tk->qnext = NULL;
    if (e->starts_tail)
        e->starts_tail->qnext = tk;
    else
        e->starts = tk;
    e->starts_tail = tk;
    if (!e->starts_posted) {
        e->starts_posted = true;
        ad_upstream_post(e->up, run_starts, e);
    }
}

static void post_start(void *ud)
{
    task *tk = ud;
    queue_start(tk->e, tk);
}

static void post(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                 ad_sse *sse, bool cancel, unsigned flags, const char *text, json_t *run)
{
    task *tk = task_new(e, project, thread_id, run_id);
    if (sse) {
        ad_sse_ref(sse);
        tk->sse = sse;
    }
    tk->cancel = cancel;
    tk->step_content = (flags & AD_ENGINE_STEP_CONTENT) != 0;
    if (text && run) {
        tk->run_text = ad_strdup(text);
        tk->run = json_incref(run);
    }
    ad_upstream_post(e->up, cancel ? run_task : post_start, tk);
}

void ad_engine_run(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                   ad_sse *sse, unsigned flags)
{
    post(e, project, thread_id, run_id, sse, false, flags, NULL, NULL);
}

void ad_engine_run_stored(ad_engine *e, const char *project, const char *thread_id,
                          const char *run_id, ad_sse *sse, unsigned flags, const char *text,
                          json_t *run)
{
    post(e, project, thread_id, run_id, sse, false, flags, text, run);
}

void ad_engine_create(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                      ad_sse *sse, unsigned flags, const char *text, json_t *run)
{
    op *o = op_new(e, project, thread_id, run_id);
    act *a = add_act(o, A_CREATE);
    a->text = ad_strdup(text);
    a->len = strlen(text);
    a->created = json_integer_value(json_object_get(run, "created_at"));
    /* Stored in progress (create_run): its text and two parses, the
     * writer's (for its cache) and the loop's, made here rather than on
     * either of those busier threads. */
    json_t *prog = json_deep_copy(run);
    json_object_set_new(prog, "status", json_string("in_progress"));
    json_object_set_new(prog, "started_at", json_integer(now_s()));
    a->stored = dump(prog, &a->stored_len);
    a->obj = json_deep_copy(prog);
    ad_sse_ref(sse);
    o->sse = sse;
    o->w.apply = op_apply;
    o->w.urgent = true; /* nothing of this run can be queued before it */
    /* What begin_job needs once the run is stored (freed with the op). */
    task *tk = task_new(e, project, thread_id, run_id);
    ad_sse_ref(sse);
    tk->sse = sse;
    tk->step_content = (flags & AD_ENGINE_STEP_CONTENT) != 0;
    tk->started = true;
    tk->run_text = a->stored ? ad_strdup(a->stored) : NULL;
    tk->run = prog;
    o->start = tk;
    pthread_mutex_lock(&e->submit_mu);
    ad_writer *w = e->create_open ? e->writer : NULL;
    if (w) {
        o->creation = true;
        atomic_fetch_add(&e->creates_inflight, 1);
        ad_writer_submit(w, &o->w);
    }
    pthread_mutex_unlock(&e->submit_mu);
    if (!w) { /* stopping: nothing is stored, the stream says so and ends */
        push_error(&o->out, "server_error", SHUTDOWN);
        evq_send(&o->out, sse);
        ad_engine_release(e, thread_id, run_id);
        op_free(o);
    }
}

void ad_engine_cancel(ad_engine *e, const char *project, const char *thread_id, const char *run_id)
{
    post(e, project, thread_id, run_id, NULL, true, 0, NULL, NULL);
}

/* ---- back-pressure and heartbeats ---- */

static void drain_all(void *ud)
{
    ad_engine *e = ud;
    for (job *j = e->jobs; j; j = j->next)
        if (j->paused && j->call && j->held_bytes < AD_SSE_HIGH_WATER &&
            (!j->sse || ad_sse_waiting(j->sse) < AD_SSE_LOW_WATER))
            resume_call(j);
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
                finish_expired(j, NULL);
            continue;
        }
        if (j->sse)
            ad_sse_heartbeat(j->sse, (long)e->srv->cfg.sse_heartbeat * 1000);
        /* A paused call whose client has caught up or left resumes. */
        if (j->paused && j->call && j->held_bytes < AD_SSE_HIGH_WATER &&
            (!j->sse || !ad_sse_attached(j->sse)))
            resume_call(j);
    }
    ad_upstream_post_after(e->up, 1000, tick, e);
}

/* ---- lifecycle ---- */

void ad_engine_metrics(ad_engine *e, ad_buf *out)
{
    ad_buf_printf(out,
                  "# HELP assistd_runs_active Runs the engine is working on (calling the model "
                  "or running tools).\n"
                  "# TYPE assistd_runs_active gauge\n"
                  "assistd_runs_active %ld\n"
                  "# HELP assistd_runs_started_total Runs (or resumptions after tool outputs) "
                  "the engine began work on.\n"
                  "# TYPE assistd_runs_started_total counter\n"
                  "assistd_runs_started_total %llu\n"
                  "# HELP assistd_model_calls_paused Model calls not being read because their "
                  "stream's client lags (back-pressure).\n"
                  "# TYPE assistd_model_calls_paused gauge\n"
                  "assistd_model_calls_paused %ld\n"
                  "# HELP assistd_model_call_pauses_total Times a model call was paused for a "
                  "lagging client.\n"
                  "# TYPE assistd_model_call_pauses_total counter\n"
                  "assistd_model_call_pauses_total %llu\n",
                  atomic_load(&e->m_jobs), (unsigned long long)atomic_load(&e->m_jobs_total),
                  atomic_load(&e->m_paused), (unsigned long long)atomic_load(&e->m_pauses));
}

ad_err ad_engine_new(ad_server *srv, ad_engine **out)
{
    ad_engine *e = ad_calloc(1, sizeof *e);
    e->srv = srv;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->tasks_mu, NULL);
    pthread_mutex_init(&e->submit_mu, NULL);
    pthread_mutex_init(&e->pend_mu, NULL);
    atomic_init(&e->m_jobs, 0);
    atomic_init(&e->m_paused, 0);
    atomic_init(&e->m_pauses, 0);
    atomic_init(&e->m_jobs_total, 0);
    ad_err rc = ad_upstream_new(&srv->log, &e->up);
    if (rc) {
        ad_free(e);
        return rc;
    }
    e->db = ad_store_acquire(srv->store);
    e->wcache = ad_calloc(1, sizeof *e->wcache);
    rc = ad_writer_new(srv->store, &srv->log, WRITER_QUEUE_MAX, writer_done, e, &e->writer);
    if (!rc)
        rc = ad_toolpool_new(srv, e->up, AD_TOOL_THREADS, tool_done, e, &e->pool);
    if (rc) {
        ad_writer_free(e->writer);
        ad_upstream_free(e->up);
        ad_store_release(srv->store, e->db);
        wcache_free(e->wcache);
        ad_free(e);
        return rc;
    }
    ad_upstream_post_after(e->up, 1000, tick, e);
    e->create_open = true;
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

/* Each stale run is repaired in one transaction: its open messages and
 * steps, then the run. */
static void recover(void *ud)
{
    recover_task *r = ud;
    ad_engine *e = r->e;
    stale *s = r->list;
    while (s) {
        stale *next = s->next;
        if (!strcmp(s->status, "requires_action")) {
            /* Still answerable: re-arm its expiry. */
            task *tk = task_new(e, s->project, s->thread_id, s->run_id);
            ad_upstream_post(e->up, expire_cb, tk);
        } else {
            op *o = op_new(e, s->project, s->thread_id, s->run_id);
            set_error(add_act(o, A_REPAIR), "server_error", RESTARTED);
            apply_now(e, o);
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

/* Shutdown, first half: every run in flight ends failed ("The server is
 * shutting down."), its end committed and announced like any other, so a
 * stream closes with its terminal run event and the next start has nothing
 * to repair. Model calls are cancelled (on_done then ends the run), other
 * jobs (waiting for tools or for writes) end at once; runs still on their
 * way in -- starts queued, streamed creations the writer has not finished
 * (ad_engine_stop took no new one) -- begin and are ended the same way
 * (begin_job); tool results that come later are dropped. Once no job, start
 * or creation is left, close_check sets stopping and lets ad_engine_stop go
 * on. */
static void stop_all(void *ud)
{
    ad_engine *e = ud;
    e->closing = true;
    job *j = e->jobs;
    while (j) {
        job *next = j->next;
        if (j->call)
            ad_upstream_cancel(e->up, j->call); /* on_done ends the job */
        else
            shut_down(j, NULL);
        j = next;
    }
    maybe_close(e);
}

/* Shutdown, second half: no job is left; nothing more is written. */
static void close_check(void *ud)
{
    ad_engine *e = ud;
    e->close_check_posted = false;
    /* Runs still on their way in -- a job, a start queued, a streamed
     * creation the writer has not finished -- each post this again when
     * they are done (job_end, run_starts, ops_done). */
    if (e->stopping || e->jobs || e->starts || e->starts_posted ||
        atomic_load(&e->creates_inflight) > 0)
        return;
    e->stopping = true;
    pthread_mutex_lock(&e->mu);
    e->stopped = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Posted after the writer has stopped: every completion it posted has run
 * before this (posts run in order). */
static void flush_mark(void *ud)
{
    ad_engine *e = ud;
    pthread_mutex_lock(&e->mu);
    e->flushed = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ad_engine_stop(ad_engine *e)
{
    if (!e)
        return;
    /* No streamed creation is taken from here on (those already with the
     * writer are started, and ended, by the closing below). */
    pthread_mutex_lock(&e->submit_mu);
    e->create_open = false;
    pthread_mutex_unlock(&e->submit_mu);
    ad_upstream_post(e->up, stop_all, e);
    pthread_mutex_lock(&e->mu);
    while (!e->stopped)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    /* Nothing is submitted any more (stopping); what was is committed and
     * completed on the loop, so no job or op is left behind. */
    ad_writer_free(e->writer);
    e->writer = NULL;
    ad_upstream_post(e->up, flush_mark, e);
    pthread_mutex_lock(&e->mu);
    while (!e->flushed)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

void ad_engine_free(ad_engine *e)
{
    if (!e)
        return;
    ad_toolpool_stop(e->pool); /* executions in progress still post */
    ad_writer_free(e->writer); /* only if ad_engine_stop was not called */
    e->writer = NULL;
    ad_upstream_free(e->up);
    ad_toolpool_free(e->pool);
    while (e->tasks) /* dropped unrun by the loop */
        task_free(e->tasks);
    ad_store_release(e->srv->store, e->db);
    wcache_free(e->wcache); /* the writer has stopped */
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->tasks_mu);
    pthread_mutex_destroy(&e->submit_mu);
    for (size_t i = 0; i < PEND_BUCKETS; i++) /* none once handlers are gone */
        while (e->pend[i]) {
            pend *p = e->pend[i];
            e->pend[i] = p->next;
            ad_free(p);
        }
    pthread_mutex_destroy(&e->pend_mu);
    ad_free(e);
}
