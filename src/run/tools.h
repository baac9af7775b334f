/*
 * tools.h -- the built-in tools of runs: file_search and code_interpreter.
 *
 * The model sees a built-in tool as one more function (names below, with a
 * description that teaches it the conventions: citation markers for
 * file_search, /mnt/data and sandbox: links for code_interpreter). When it
 * calls one, the engine does not stop in requires_action: it hands the call
 * to this module's worker pool, which runs it where blocking is allowed (a
 * search may call the embeddings backend, code runs for seconds), stores
 * what it produced (generated files become File objects), and posts the
 * outcome back to the engine's loop thread.
 *
 * What the model saw of a built-in call -- its arguments and the text of its
 * result -- is kept in a private "callio" row per call (id = the call id,
 * parent = the run), so the next prompt can replay the exchange exactly
 * while the public step object stays as OpenAI's (the step endpoints read
 * it for a file_search call's queries only when include[] asks for them).
 *
 * Citations: file_search results reach the model as numbered sources
 * "【K:I†FILENAME】" (K numbers the run's file_search calls from 0, I the
 * result). ad_tools_annotate turns such markers, and "sandbox:/mnt/data/NAME"
 * links to files code_interpreter made, into message annotations.
 *
 * Ownership: ad_toolpool_new returns a pool owned by the caller (the
 * engine), freed with ad_toolpool_free after the loop has stopped. A work
 * item is allocated by ad_tool_work_new, owned by the pool from
 * ad_toolpool_submit until its done function runs on the loop thread, which
 * then owns it and frees it with ad_tool_work_free.
 */
#ifndef AD_TOOLS_H
#define AD_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/server.h"
#include "run/upstream.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/id.h"

/* Pool threads: a search may wait up to 60 s for a store still indexing and
 * code may run for the sandbox's timeout, so a few slow calls must not hold
 * every other run's tools. Each thread holds a store connection while busy
 * (main.c sizes the pool of connections for it). */
#define AD_TOOL_THREADS 4

#define AD_TOOL_FILE_SEARCH_NAME "file_search"
#define AD_TOOL_CODE_NAME        "code_interpreter"

typedef enum { AD_TOOL_FUNCTION = 0, AD_TOOL_FILE_SEARCH, AD_TOOL_CODE_INTERPRETER } ad_tool_kind;

/* What a model's call named `name` is, given the run's tools: a built-in
 * name counts only when the run has that tool (otherwise it is a function,
 * which the user may have named so). */
ad_tool_kind ad_tool_kind_of(const json_t *run_tools, const char *name);
/* Appends the chat-completions definitions of the run's built-in tools. */
void ad_tools_chat_defs(const json_t *run_tools, json_t *out);

typedef struct ad_tool_work {
    ad_tool_kind kind;
    char project[160];
    char thread_id[AD_ID_MAX], run_id[AD_ID_MAX], assistant_id[AD_ID_MAX];
    char call_id[AD_ID_MAX];
    int index;       /* the call's index in its step */
    int fs_number;   /* file_search: K of this call's markers */
    char *arguments; /* the model's JSON arguments (owned) */
    json_t *tool;    /* the run's tool object, e.g. file_search options (owned) */
    /* results, set by the pool */
    json_t *details;           /* step_details.tool_calls entry, complete (owned) */
    char *model_text;          /* the tool result as the model reads it (owned) */
    json_t *images;            /* code_interpreter: file ids of figures, in order (owned) */
    json_t *files;             /* code_interpreter: [{name, file_id}] files it wrote (owned) */
    bool failed;               /* the tool could not run at all (message in model_text) */
    const char *fail_code;     /* with failed: a run last_error code, or NULL to go on */
    struct ad_tool_work *next; /* pool queue */
} ad_tool_work;

ad_tool_work *ad_tool_work_new(void);
void ad_tool_work_free(ad_tool_work *w);

typedef struct ad_toolpool ad_toolpool;
typedef void (*ad_tool_done_fn)(ad_tool_work *w, void *ud);

/* nthreads worker threads; finished work is posted to up's loop, where
 * done(w, ud) runs. */
ad_err ad_toolpool_new(ad_server *srv, ad_upstream *up, int nthreads, ad_tool_done_fn done,
                       void *ud, ad_toolpool **out);
void ad_toolpool_submit(ad_toolpool *p, ad_tool_work *w);
/* Stops taking work and waits for the executions in progress (their
 * results are still posted). Call while the loop runs. */
void ad_toolpool_stop(ad_toolpool *p);
/* Frees the pool and the work it still holds (queued, or finished with its
 * post dropped). Call after the loop has stopped. */
void ad_toolpool_free(ad_toolpool *p);

/* Removes the content of file_search results from a step object (shown
 * only when include[] asks for it). */
void ad_tools_strip_content(json_t *step);

/* The model-facing text of a stored built-in call: its arguments and
 * result, from the callio row (loop thread: the engine's connection). */
ad_err ad_tools_callio_get(ad_db *db, const char *project, const char *call_id, json_t **out);
ad_err ad_tools_callio_put(ad_db *db, const char *project, const char *run_id, const char *call_id,
                           const char *arguments, const char *text, const json_t *files);

/* The queries a stored file_search call searched (its callio arguments,
 * parsed as the search parses them: "queries", else a single "query"), as
 * a new JSON array of strings owned by the caller (json_decref); NULL when
 * the call has no callio row yet (it has not run) or the row cannot be
 * read. Any thread, with that thread's own connection. */
json_t *ad_tools_file_search_queries(ad_db *db, const char *project, const char *call_id);

/*
 * Annotations for the text of an assistant message of run_id: every
 * "【K:I†NAME】" that names a result of the run's file_search calls becomes a
 * file_citation, every "sandbox:/mnt/data/NAME" that names a file the run's
 * code_interpreter calls made becomes a file_path. Indexes count Unicode code
 * points, as OpenAI's did. Returns a new array (possibly empty).
 */
json_t *ad_tools_annotate(ad_db *db, const char *project, const char *run_id, const char *text,
                          size_t len);

/* Incremental extraction of a JSON string member from streamed arguments
 * ({"code": "..."}): the decoded value is appended to out as the pieces
 * arrive, so the code can be shown while the model writes it. Once the
 * arguments take another shape, nothing more is extracted (the complete
 * input is in the finished step). */
typedef struct ad_jsfield {
    int state; /* 0 before the value, 1 inside, 2 done, 3 gave up */
    char pre[64];
    size_t npre;
    char esc[12]; /* a pending escape sequence */
    size_t nesc;
    unsigned hi_surrogate;
} ad_jsfield;
void ad_jsfield_init(ad_jsfield *f);
/* Feeds a piece; decoded value bytes go to out. */
ad_err ad_jsfield_feed(ad_jsfield *f, const char *key, const char *p, size_t n, ad_buf *out);

#endif
