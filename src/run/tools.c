/*
 * tools.c -- file_search and code_interpreter inside runs (see tools.h).
 *
 * The pool is a handful of threads around one queue. A thread takes a work
 * item, takes a store connection for it, runs the tool and posts the item
 * to the engine's loop; the loop thread applies the result to the run (the
 * engine owns every run transition). Nothing here touches run state.
 *
 * file_search: the stores searched are the assistant's (or the run's
 * override) and the thread's; a store still indexing is waited for, up to
 * 60 s as OpenAI did; the results go to the model as numbered sources and
 * into the step (content always stored, shown only when include[] asks).
 *
 * code_interpreter: the session is the thread's (variables persist across
 * runs); the input files of the assistant, the thread and the thread's
 * messages' attachments are placed in /mnt/data first; figures and files the
 * code wrote become File objects (purpose assistants_output).
 */
#include "run/tools.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "sandbox/sandbox.h"
#include "search/search.h"
#include "store/blob.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/str.h"

#define TEXT_MAX      (8u * 1024 * 1024)
#define WAIT_READY_MS 60000L
#define FS_DEFAULT    20
#define MAX_QUERIES   8
#define MAX_INPUTS    64

/* ---- what the model is offered ---- */

static bool run_has(const json_t *tools, const char *type)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *ty = json_string_value(json_object_get(t, "type"));
        if (ty && !strcmp(ty, type))
            return true;
    }
    return false;
}

ad_tool_kind ad_tool_kind_of(const json_t *run_tools, const char *name)
{
    if (name && !strcmp(name, AD_TOOL_FILE_SEARCH_NAME) && run_has(run_tools, "file_search"))
        return AD_TOOL_FILE_SEARCH;
    if (name && !strcmp(name, AD_TOOL_CODE_NAME) && run_has(run_tools, "code_interpreter"))
        return AD_TOOL_CODE_INTERPRETER;
    return AD_TOOL_FUNCTION;
}

void ad_tools_chat_defs(const json_t *run_tools, json_t *out)
{
    if (run_has(run_tools, "file_search"))
        json_array_append_new(
            out,
            json_pack(
                "{s:s,s:{s:s,s:s,s:{s:s,s:{s:{s:s,s:{s:s},s:s}},s:[s]}}}", "type", "function",
                "function", "name", AD_TOOL_FILE_SEARCH_NAME, "description",
                "Search the files the user uploaded for passages that answer the question. "
                "Give one or more search queries (rewrite the question into precise queries; "
                "several when it has several parts). The results are sources, each introduced "
                "by a marker such as \xe3\x80\x90"
                "0:1\xe2\x80\xa0"
                "report.pdf\xe3\x80\x91. When your answer uses a source, cite it by writing its "
                "marker exactly as given, right after the statement it supports.",
                "parameters", "type", "object", "properties", "queries", "type", "array", "items",
                "type", "string", "description", "search queries", "required", "queries"));
    if (run_has(run_tools, "code_interpreter"))
        json_array_append_new(
            out, json_pack(
                     "{s:s,s:{s:s,s:s,s:{s:s,s:{s:{s:s,s:s}},s:[s]}}}", "type", "function",
                     "function", "name", AD_TOOL_CODE_NAME, "description",
                     "Run Python 3 code in a stateful, Jupyter-like session: variables and imports "
                     "persist between calls in this conversation, the value of the last expression "
                     "is shown, and matplotlib figures are shown to the user as images. numpy, "
                     "pandas, matplotlib, scipy, sympy, scikit-learn, openpyxl, python-docx and "
                     "Pillow are installed; there is no internet access. The user's files are in "
                     "/mnt/data; save files for the user there and link them in your answer as "
                     "sandbox:/mnt/data/NAME. Use it for any calculation, data analysis or chart.",
                     "parameters", "type", "object", "properties", "code", "type", "string",
                     "description", "the Python code to run", "required", "code"));
}

/* ---- work items ---- */

ad_tool_work *ad_tool_work_new(void)
{
    return ad_calloc(1, sizeof(ad_tool_work));
}

void ad_tool_work_free(ad_tool_work *w)
{
    if (!w)
        return;
    ad_free(w->arguments);
    ad_free(w->model_text);
    json_decref(w->tool);
    json_decref(w->details);
    json_decref(w->images);
    json_decref(w->files);
    ad_free(w);
}

/* ---- helpers over the store ---- */

static json_t *load_obj(ad_db *db, const char *project, const char *kind, const char *id)
{
    if (!id || !id[0])
        return NULL;
    ad_buf b;
    ad_buf_init(&b, 64u * 1024 * 1024);
    json_t *v = NULL;
    if (!ad_db_get(db, project, kind, id, &b))
        v = json_loadb(b.ptr, b.len, 0, NULL);
    ad_buf_free(&b);
    return v;
}

/* Appends the unique strings of tool_resources.<tool>.<key> of obj to out. */
static void add_ids(json_t *out, const json_t *obj, const char *tool, const char *key)
{
    const json_t *ids =
        json_object_get(json_object_get(json_object_get(obj, "tool_resources"), tool), key);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_string(v))
            continue;
        bool dup = false;
        size_t k;
        json_t *e;
        json_array_foreach(out, k, e) dup |= json_equal(e, v);
        if (!dup)
            json_array_append(out, v);
    }
}

/* The resources of a run: the run's own tool_resources when it has them
 * (createThreadAndRun overrides), else the assistant's; plus the thread's. */
static json_t *resource_ids(ad_db *db, const ad_tool_work *w, const char *tool, const char *key)
{
    json_t *out = json_array();
    json_t *run = load_obj(db, w->project, "run", w->run_id);
    json_t *tr = json_object_get(run, "tool_resources");
    if (json_is_object(tr) && json_object_get(tr, tool)) {
        add_ids(out, run, tool, key);
    } else {
        json_t *a = load_obj(db, w->project, "assistant", w->assistant_id);
        add_ids(out, a, tool, key);
        json_decref(a);
    }
    json_t *t = load_obj(db, w->project, "thread", w->thread_id);
    add_ids(out, t, tool, key);
    json_decref(t);
    json_decref(run);
    return out;
}

/* ---- file_search ---- */

static void fs_fail(ad_tool_work *w, const char *code, const char *msg)
{
    w->failed = true;
    w->fail_code = code;
    w->model_text = ad_strdup(msg);
}

/* Waits for the stores to finish indexing (up to WAIT_READY_MS, as OpenAI),
 * in one-second slices so that a shutdown (*stop) does not wait the rest. */
static ad_err wait_ready(ad_server *srv, ad_db *db, const ad_tool_work *w, const char **sids,
                         size_t ns, const atomic_bool *stop, bool *expired)
{
    ad_err rc = AD_ESTATE;
    for (long waited = 0; waited < WAIT_READY_MS && rc == AD_ESTATE && !atomic_load(stop);
         waited += 1000)
        rc = ad_vector_stores_wait_ready(srv, db, w->project, sids, ns, 1000, expired);
    return rc;
}

/* The queries a file_search call searches, from its parsed arguments: the
 * non-empty strings of "queries" (at most MAX_QUERIES), else a non-empty
 * "query". The pointers borrow from args. */
static size_t fs_queries(const json_t *args, const char *queries[MAX_QUERIES])
{
    size_t nq = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(args, "queries"), i, v)
    {
        if (json_is_string(v) && json_string_length(v) && nq < MAX_QUERIES)
            queries[nq++] = json_string_value(v);
    }
    const char *q1 = json_string_value(json_object_get(args, "query"));
    if (!nq && q1 && *q1)
        queries[nq++] = q1;
    return nq;
}

static void exec_file_search(ad_server *srv, ad_db *db, ad_tool_work *w, const atomic_bool *stop)
{
    json_t *args = json_loads(w->arguments ? w->arguments : "", 0, NULL);
    const char *queries[MAX_QUERIES];
    size_t nq = fs_queries(args, queries);
    size_t i;

    json_t *opts = json_object_get(w->tool, "file_search");
    json_int_t maxn = json_integer_value(json_object_get(opts, "max_num_results"));
    if (maxn < 1 || maxn > 50)
        maxn = FS_DEFAULT;
    json_t *ro = json_object_get(opts, "ranking_options");
    double threshold = json_number_value(json_object_get(ro, "score_threshold"));
    const char *ranker = json_string_value(json_object_get(ro, "ranker"));
    const char *shown_ranker = !ranker || !strcmp(ranker, "auto") ? "default_2024_08_21" : ranker;
    json_t *results = json_array();
    ad_buf text;
    ad_buf_init(&text, TEXT_MAX);

    json_t *stores = resource_ids(db, w, "file_search", "vector_store_ids");
    size_t ns = json_array_size(stores);
    const char **sids = ad_calloc(ns + 1, sizeof *sids);
    for (i = 0; i < ns; i++)
        sids[i] = json_string_value(json_array_get(stores, i));
    char msg[512] = "";
    ad_search_hit *hits = NULL;
    size_t nh = 0;
    if (!nq) {
        ad_buf_addstr(&text, "The file_search call had no query; give one or more queries.");
    } else if (!ns) {
        ad_buf_addstr(&text, "No files are attached to this conversation, so there is nothing "
                             "to search.");
    } else {
        bool expired = false;
        ad_err rc = wait_ready(srv, db, w, sids, ns, stop, &expired);
        if (expired) {
            fs_fail(w, "server_error", "A vector store of this run has expired.");
            goto out;
        }
        if (rc == AD_ENOTFOUND) {
            fs_fail(w, "server_error", "A vector store of this run no longer exists.");
            goto out;
        }
        /* AD_ESTATE (still indexing after 60 s): search what is there. */
        ad_search_req rq = {.project = w->project,
                            .store_ids = sids,
                            .nstores = ns,
                            .queries = queries,
                            .nqueries = nq,
                            .max_num_results = (int)maxn,
                            .score_threshold = threshold,
                            .ranker = ranker};
        rc = ad_search(srv, db, &rq, &hits, &nh, msg, sizeof msg);
        if (rc) {
            fs_fail(w, "server_error", msg[0] ? msg : "The search failed.");
            goto out;
        }
        if (!nh)
            ad_buf_addstr(&text, "The search found nothing relevant in the files.");
        for (i = 0; i < nh; i++) {
            json_array_append_new(results, json_pack("{s:s,s:s,s:f,s:[{s:s,s:s}]}", "file_id",
                                                     hits[i].file_id, "file_name", hits[i].filename,
                                                     "score", hits[i].score, "content", "type",
                                                     "text", "text", hits[i].text));
            ad_buf_printf(&text, "%s\xe3\x80\x90%d:%zu\xe2\x80\xa0%s\xe3\x80\x91\n",
                          i ? "\n\n" : "", w->fs_number, i, hits[i].filename);
            ad_buf_addstr(&text, hits[i].text);
        }
    }
    w->model_text = ad_strndup(ad_buf_str(&text), text.len);
out:
    w->details = json_pack("{s:s,s:s,s:{s:{s:s,s:f},s:o}}", "id", w->call_id, "type", "file_search",
                           "file_search", "ranking_options", "ranker", shown_ranker,
                           "score_threshold", threshold, "results", results);
    ad_search_hits_free(hits, nh);
    ad_free(sids);
    json_decref(stores);
    ad_buf_free(&text);
    json_decref(args);
}

/* ---- code_interpreter ---- */

/* Input files: resources plus attachments of the thread's messages that
 * name code_interpreter. */
typedef struct att_ctx {
    json_t *ids;
} att_ctx;

static ad_err collect_attachments(void *ud, const char *id, const char *json, size_t len)
{
    att_ctx *c = ud;
    (void)id;
    json_t *m = json_loadb(json, len, 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(m, "attachments"), i, a)
    {
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(a, "tools"), k, t)
        {
            const char *ty = json_string_value(json_object_get(t, "type"));
            json_t *fid = json_object_get(a, "file_id");
            if (ty && !strcmp(ty, "code_interpreter") && json_is_string(fid)) {
                bool dup = false;
                size_t x;
                json_t *e;
                json_array_foreach(c->ids, x, e) dup |= json_equal(e, fid);
                if (!dup)
                    json_array_append(c->ids, fid);
            }
        }
    }
    json_decref(m);
    return AD_OK;
}

/* Publishes the bytes at path as a new File (purpose assistants_output);
 * its id goes to out. */
static ad_err publish_file(ad_server *srv, ad_db *db, const char *project, const char *path,
                           const char *name, bool image, char out[AD_ID_MAX])
{
    ad_blob_tmp tmp = {.fd = -1};
    FILE *f = fopen(path, "rb");
    if (!f)
        return AD_EIO;
    ad_err rc = ad_blob_tmp_open(srv->cfg.data_dir, srv->cfg.max_upload_bytes, &tmp);
    char chunk[65536];
    size_t n;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = ad_blob_tmp_write(&tmp, chunk, n);
    if (!rc && ferror(f))
        rc = AD_EIO;
    fclose(f);
    uint64_t size = tmp.size;
    ad_id_new(out, "file-");
    if (!rc)
        rc = ad_blob_publish(srv->cfg.data_dir, &tmp, "files", out);
    else
        ad_blob_abort(&tmp);
    if (rc)
        return rc;
    json_t *file = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:n,s:n}", "id", out, "object", "file",
                             "bytes", (json_int_t)size, "created_at", (json_int_t)time(NULL),
                             "filename", name, "purpose", "assistants_output", "status",
                             "processed", "status_details", "expires_at");
    rc = ad_db_begin(db);
    if (!rc)
        rc = ad_file_insert(db, project, file, image ? "image/png" : "application/octet-stream");
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_blob_remove(srv->cfg.data_dir, "files", out);
    }
    json_decref(file);
    return rc;
}

static void exec_code(ad_server *srv, ad_db *db, ad_tool_work *w)
{
    json_t *args = json_loads(w->arguments ? w->arguments : "", 0, NULL);
    const char *code = json_string_value(json_object_get(args, "code"));
    json_t *outputs = json_array();
    json_t *files = json_array();
    ad_buf text;
    ad_buf_init(&text, TEXT_MAX);
    w->images = json_array();
    if (!code && w->arguments && !args)
        code = w->arguments; /* some models send the bare code */
    if (!srv->sandbox) {
        ad_buf_addstr(&text, "code_interpreter is not available on this server.");
        goto out;
    }
    if (!code) {
        ad_buf_addstr(&text, "The call had no code.");
        goto out;
    }

    /* Input files, under their original names. */
    json_t *ids = resource_ids(db, w, "code_interpreter", "file_ids");
    att_ctx ac = {.ids = ids};
    ad_list_q q = {.project = w->project,
                   .kind = "message",
                   .parent = w->thread_id,
                   .limit = 1000000,
                   .asc = true};
    bool more;
    ad_db_list(db, &q, collect_attachments, &ac, &more);
    ad_sbx_input in[MAX_INPUTS];
    char paths[MAX_INPUTS][1200];
    json_t *names = json_array();
    size_t nin = 0, i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (nin == MAX_INPUTS)
            break;
        json_t *f = load_obj(db, w->project, "file", json_string_value(v));
        const char *fname = json_string_value(json_object_get(f, "filename"));
        /* /mnt/data/NAME takes one path component: the filename's last one,
         * or the file's id when that is no usable name ("", "..", too long). */
        const char *slash = fname ? strrchr(fname, '/') : NULL;
        if (slash)
            fname = slash + 1;
        if (fname &&
            (!*fname || !strcmp(fname, ".") || !strcmp(fname, "..") || strlen(fname) > 255))
            fname = json_string_value(v);
        if (fname && ad_blob_path(srv->cfg.data_dir, "files", json_string_value(v), paths[nin],
                                  sizeof paths[nin])) {
            json_array_append_new(names, json_string(fname));
            in[nin].name = json_string_value(json_array_get(names, json_array_size(names) - 1));
            in[nin].host_path = paths[nin];
            nin++;
        }
        json_decref(f);
    }

    ad_sbx_result res;
    memset(&res, 0, sizeof res);
    ad_err rc = ad_sandbox_exec(srv->sandbox, w->thread_id, code, in, nin, &res);
    json_decref(names);
    json_decref(ids);
    if (rc) {
        ad_buf_printf(&text, "The code could not be run (%s).", ad_strerror(rc));
        goto out;
    }
    /* res.state_lost: the logs begin with the sandbox's notice of what was
     * lost (a restart keeps /mnt/data, an evicted or idle session does not). */
    if (res.logs_len)
        ad_buf_add(&text, res.logs, res.logs_len);
    if (res.logs_len)
        json_array_append_new(
            outputs, json_pack("{s:s,s:s%}", "type", "logs", "logs", res.logs, res.logs_len));
    if (!strcmp(res.exit_reason, "timeout"))
        ad_buf_addstr(&text, "\n[The execution timed out and was interrupted.]");
    else if (!strcmp(res.exit_reason, "killed-memory"))
        ad_buf_addstr(&text, "\n[The execution ran out of memory and was stopped.]");
    for (i = 0; i < res.nfiles; i++) {
        ad_sbx_file *sf = &res.files[i];
        char fid[AD_ID_MAX];
        if (!sf->host_path ||
            publish_file(srv, db, w->project, sf->host_path, sf->name, sf->is_image, fid))
            continue;
        if (sf->is_image) {
            json_array_append_new(
                outputs, json_pack("{s:s,s:{s:s}}", "type", "image", "image", "file_id", fid));
            json_array_append_new(w->images, json_string(fid));
            ad_buf_printf(&text, "\n[A figure was shown to the user as an image.]");
        } else {
            json_array_append_new(files, json_pack("{s:s,s:s}", "name", sf->name, "file_id", fid));
            ad_buf_printf(&text, "\n[File written: sandbox:/mnt/data/%s]", sf->name);
        }
    }
    if (!text.len)
        ad_buf_addstr(&text, "[The code ran and printed nothing.]");
    ad_sbx_result_free(&res);
out:
    w->details = json_pack("{s:s,s:s,s:{s:s,s:o}}", "id", w->call_id, "type", "code_interpreter",
                           "code_interpreter", "input", code ? code : "", "outputs", outputs);
    w->model_text = ad_strndup(ad_buf_str(&text), text.len);
    w->files = files;
    ad_buf_free(&text);
    json_decref(args);
}

/* ---- the pool ---- */

struct ad_toolpool {
    ad_server *srv;
    ad_upstream *up;
    ad_tool_done_fn done;
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ad_tool_work *head, *tail; /* waiting to run */
    ad_tool_work *finished;    /* run, waiting for the loop (drain) */
    atomic_bool stopping;      /* written under mu; read without it by waits */
    int nthreads;
    pthread_t threads[8];
};

/* On the loop: hands every finished item to the engine. The pool outlives
 * the loop (ad_toolpool_stop, ad_upstream_free, then ad_toolpool_free), so
 * a drain that runs always finds it; one dropped unrun leaves its items on
 * the finished list for ad_toolpool_free. */
static void drain(void *ud)
{
    ad_toolpool *p = ud;
    pthread_mutex_lock(&p->mu);
    ad_tool_work *w = p->finished;
    p->finished = NULL;
    pthread_mutex_unlock(&p->mu);
    while (w) {
        ad_tool_work *next = w->next;
        w->next = NULL;
        p->done(w, p->ud);
        w = next;
    }
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-tools");
    ad_toolpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        ad_tool_work *w = p->head;
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        w->next = NULL;
        ad_db *db = ad_store_acquire(p->srv->store);
        if (w->kind == AD_TOOL_FILE_SEARCH)
            exec_file_search(p->srv, db, w, &p->stopping);
        else
            exec_code(p->srv, db, w);
        ad_store_release(p->srv->store, db);
        pthread_mutex_lock(&p->mu);
        w->next = p->finished; /* drain restores no order; each item stands alone */
        p->finished = w;
        pthread_mutex_unlock(&p->mu);
        ad_upstream_post(p->up, drain, p);
    }
}

ad_err ad_toolpool_new(ad_server *srv, ad_upstream *up, int nthreads, ad_tool_done_fn done,
                       void *ud, ad_toolpool **out)
{
    ad_toolpool *p = ad_calloc(1, sizeof *p);
    p->srv = srv;
    p->up = up;
    p->done = done;
    p->ud = ud;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > 8)
        nthreads = 8;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p))
            break;
        p->nthreads++;
    }
    if (!p->nthreads) {
        ad_toolpool_free(p);
        return AD_EINTERNAL;
    }
    *out = p;
    return AD_OK;
}

void ad_toolpool_submit(ad_toolpool *p, ad_tool_work *w)
{
    pthread_mutex_lock(&p->mu);
    w->next = NULL;
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void ad_toolpool_stop(ad_toolpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

void ad_toolpool_free(ad_toolpool *p)
{
    if (!p)
        return;
    ad_toolpool_stop(p);
    ad_tool_work *lists[2] = {p->head, p->finished};
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            ad_tool_work *w = lists[i];
            lists[i] = w->next;
            ad_tool_work_free(w);
        }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    ad_free(p);
}

void ad_tools_strip_content(json_t *step)
{
    json_t *calls = json_object_get(json_object_get(step, "step_details"), "tool_calls");
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *results =
            json_object_get(json_object_get(json_array_get(calls, i), "file_search"), "results");
        for (size_t k = 0; k < json_array_size(results); k++)
            json_object_del(json_array_get(results, k), "content");
    }
}

/* ---- callio rows ---- */

ad_err ad_tools_callio_get(ad_db *db, const char *project, const char *call_id, json_t **out)
{
    *out = load_obj(db, project, "callio", call_id);
    return *out ? AD_OK : AD_ENOTFOUND;
}

ad_err ad_tools_callio_put(ad_db *db, const char *project, const char *run_id, const char *call_id,
                           const char *arguments, const char *text, const json_t *files)
{
    json_t *f = files ? json_deep_copy(files) : json_array();
    json_t *v = json_pack("{s:s,s:s,s:o}", "arguments", arguments ? arguments : "", "output",
                          text ? text : "", "files", f);
    char *s = json_dumps(v, AD_JSON_COMPACT);
    json_decref(v);
    if (!s)
        return AD_EINTERNAL;
    ad_obj o = {.kind = "callio",
                .id = call_id,
                .project = project,
                .parent = run_id,
                .aux = "",
                .created_at = (int64_t)time(NULL)};
    ad_err rc = ad_db_put(db, &o, s, strlen(s));
    free(s);
    return rc;
}

json_t *ad_tools_file_search_queries(ad_db *db, const char *project, const char *call_id)
{
    json_t *io = NULL;
    if (ad_tools_callio_get(db, project, call_id, &io))
        return NULL;
    const char *args = json_string_value(json_object_get(io, "arguments"));
    json_t *parsed = json_loads(args ? args : "", 0, NULL);
    const char *queries[MAX_QUERIES];
    size_t nq = fs_queries(parsed, queries);
    json_t *out = json_array();
    for (size_t i = 0; i < nq; i++)
        json_array_append_new(out, json_string(queries[i]));
    json_decref(parsed);
    json_decref(io);
    return out;
}

/* ---- annotations ---- */

typedef struct ann_ctx {
    ad_db *db;
    const char *project;
    json_t *fs;    /* [[file_id...], ...] per file_search call, in order */
    json_t *names; /* [[file_name...], ...] */
    json_t *files; /* {name: file_id} made by code_interpreter */
} ann_ctx;

static ad_err collect_step(void *ud, const char *id, const char *json, size_t len)
{
    ann_ctx *c = ud;
    (void)id;
    json_t *st = json_loadb(json, len, 0, NULL);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(json_object_get(st, "step_details"), "tool_calls"), i, tc)
    {
        const char *type = json_string_value(json_object_get(tc, "type"));
        if (type && !strcmp(type, "file_search")) {
            json_t *ids = json_array(), *names = json_array();
            size_t k;
            json_t *r;
            json_array_foreach(json_object_get(json_object_get(tc, "file_search"), "results"), k, r)
            {
                json_array_append(ids, json_object_get(r, "file_id"));
                json_array_append(names, json_object_get(r, "file_name"));
            }
            json_array_append_new(c->fs, ids);
            json_array_append_new(c->names, names);
        } else if (type && !strcmp(type, "code_interpreter")) {
            json_t *io = NULL;
            if (!ad_tools_callio_get(c->db, c->project,
                                     json_string_value(json_object_get(tc, "id")), &io)) {
                size_t k;
                json_t *f;
                json_array_foreach(json_object_get(io, "files"), k, f)
                {
                    const char *n = json_string_value(json_object_get(f, "name"));
                    if (n)
                        json_object_set(c->files, n, json_object_get(f, "file_id"));
                }
                json_decref(io);
            }
        }
    }
    json_decref(st);
    return AD_OK;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

#define LB     "\xe3\x80\x90" /* 【 */
#define RB     "\xe3\x80\x91" /* 】 */
#define DAGGER "\xe2\x80\xa0" /* † */

/* Parses 【K:I†NAME】 at p (len n); *end gets its byte length. */
static bool parse_marker(const char *p, size_t n, long *k, long *i, const char **name,
                         size_t *namelen, size_t *end)
{
    if (n < 3 || memcmp(p, LB, 3) != 0)
        return false;
    size_t j = 3;
    long a = 0, b = 0;
    size_t d = 0;
    while (j < n && is_digit(p[j]) && d < 6) {
        a = a * 10 + (p[j++] - '0');
        d++;
    }
    if (!d || j >= n || p[j] != ':')
        return false;
    j++;
    d = 0;
    while (j < n && is_digit(p[j]) && d < 6) {
        b = b * 10 + (p[j++] - '0');
        d++;
    }
    if (!d)
        return false;
    const char *nm = p + j;
    size_t nl = 0;
    if (j + 3 <= n && !memcmp(p + j, DAGGER, 3)) {
        j += 3;
        nm = p + j;
        while (j + 3 <= n && memcmp(p + j, RB, 3) != 0 && p[j] != '\n' && nl < 512) {
            j++;
            nl++;
        }
    }
    if (j + 3 > n || memcmp(p + j, RB, 3) != 0)
        return false;
    *k = a;
    *i = b;
    *name = nm;
    *namelen = nl;
    *end = j + 3;
    return true;
}

json_t *ad_tools_annotate(ad_db *db, const char *project, const char *run_id, const char *text,
                          size_t len)
{
    json_t *out = json_array();
    bool markers = false, links = false;
    for (size_t i = 0; i + 3 <= len && !markers; i++)
        markers = !memcmp(text + i, LB, 3);
    links = memmem(text, len, "sandbox:/mnt/data/", 18) != NULL;
    if (!markers && !links)
        return out;
    ann_ctx c = {.db = db,
                 .project = project,
                 .fs = json_array(),
                 .names = json_array(),
                 .files = json_object()};
    ad_list_q q = {
        .project = project, .kind = "step", .parent = run_id, .limit = 1000, .asc = true};
    bool more;
    ad_db_list(db, &q, collect_step, &c, &more);
    size_t i = 0;
    while (i < len) {
        long k, r;
        const char *name;
        size_t nl, end;
        if (markers && parse_marker(text + i, len - i, &k, &r, &name, &nl, &end)) {
            json_t *ids = json_array_get(c.fs, (size_t)k);
            json_t *fid = json_array_get(ids, (size_t)r);
            if (!fid && nl) { /* wrong numbers, right name: cite that file */
                for (size_t x = 0; !fid && x < json_array_size(c.names); x++) {
                    json_t *ns = json_array_get(c.names, x);
                    for (size_t y = 0; !fid && y < json_array_size(ns); y++) {
                        json_t *nv = json_array_get(ns, y);
                        if (json_string_length(nv) == nl &&
                            !memcmp(json_string_value(nv), name, nl))
                            fid = json_array_get(json_array_get(c.fs, x), y);
                    }
                }
            }
            if (json_is_string(fid)) {
                size_t s = ad_utf8_count(text, i);
                json_array_append_new(
                    out, json_pack("{s:s,s:s%,s:{s:O},s:I,s:I}", "type", "file_citation", "text",
                                   text + i, end, "file_citation", "file_id", fid, "start_index",
                                   (json_int_t)s, "end_index",
                                   (json_int_t)(s + ad_utf8_count(text + i, end))));
            }
            i += end;
            continue;
        }
        if (links && len - i >= 18 && !memcmp(text + i, "sandbox:/mnt/data/", 18)) {
            size_t j = i + 18;
            while (j < len && text[j] != ')' && text[j] != ']' && text[j] != ' ' &&
                   text[j] != '\n' && text[j] != '\t' && text[j] != '"' && text[j] != '\'' &&
                   text[j] != '>' && text[j] != '`')
                j++;
            /* A sentence's full stop is not part of the name. */
            while (j > i + 18 && (text[j - 1] == '.' || text[j - 1] == ','))
                j--;
            char nm[512];
            size_t nlen = j - (i + 18);
            if (nlen && nlen < sizeof nm) {
                memcpy(nm, text + i + 18, nlen);
                nm[nlen] = '\0';
                json_t *fid = json_object_get(c.files, nm);
                if (json_is_string(fid)) {
                    size_t s = ad_utf8_count(text, i);
                    json_array_append_new(
                        out, json_pack("{s:s,s:s%,s:{s:O},s:I,s:I}", "type", "file_path", "text",
                                       text + i, j - i, "file_path", "file_id", fid, "start_index",
                                       (json_int_t)s, "end_index",
                                       (json_int_t)(s + ad_utf8_count(text + i, j - i))));
                }
            }
            i = j > i ? j : i + 1;
            continue;
        }
        i++;
    }
    json_decref(c.fs);
    json_decref(c.names);
    json_decref(c.files);
    return out;
}

/* ---- streamed {"code": "..."} ---- */

void ad_jsfield_init(ad_jsfield *f)
{
    memset(f, 0, sizeof *f);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Whether pre is a prefix of (or matches) {ws "key" ws : ws " ; 1 when
 * complete, 0 when still possible, -1 when not this shape. */
static int match_prefix(const char *pre, size_t n, const char *key)
{
    size_t i = 0, kl = strlen(key);
    while (i < n && is_ws(pre[i]))
        i++;
    if (i == n)
        return 0;
    if (pre[i++] != '{')
        return -1;
    while (i < n && is_ws(pre[i]))
        i++;
    if (i == n)
        return 0;
    if (pre[i++] != '"')
        return -1;
    for (size_t k = 0; k < kl; k++, i++) {
        if (i == n)
            return 0;
        if (pre[i] != key[k])
            return -1;
    }
    if (i == n)
        return 0;
    if (pre[i++] != '"')
        return -1;
    while (i < n && is_ws(pre[i]))
        i++;
    if (i == n)
        return 0;
    if (pre[i++] != ':')
        return -1;
    while (i < n && is_ws(pre[i]))
        i++;
    if (i == n)
        return 0;
    if (pre[i++] != '"')
        return -1;
    return i == n ? 1 : -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static ad_err put_cp(ad_buf *out, unsigned cp)
{
    char u[4];
    return ad_buf_add(out, u, ad_utf8_put(cp, u));
}

ad_err ad_jsfield_feed(ad_jsfield *f, const char *key, const char *p, size_t n, ad_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (f->state == 0) {
            if (f->npre + 1 >= sizeof f->pre) {
                f->state = 3;
                return AD_OK;
            }
            f->pre[f->npre++] = c;
            int m = match_prefix(f->pre, f->npre, key);
            if (m < 0)
                f->state = 3;
            else if (m > 0)
                f->state = 1;
            continue;
        }
        if (f->state != 1)
            return AD_OK;
        if (f->nesc) {
            f->esc[f->nesc++] = c;
            if (f->esc[1] == 'u') {
                if (f->nesc < 6)
                    continue;
                unsigned cp = 0;
                for (int k = 2; k < 6; k++) {
                    int h = hexval(f->esc[k]);
                    if (h < 0) {
                        f->state = 3;
                        return AD_OK;
                    }
                    cp = cp * 16 + (unsigned)h;
                }
                f->nesc = 0;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    f->hi_surrogate = cp;
                    continue;
                }
                if (cp >= 0xDC00 && cp < 0xE000 && f->hi_surrogate) {
                    cp = 0x10000 + ((f->hi_surrogate - 0xD800) << 10) + (cp - 0xDC00);
                    f->hi_surrogate = 0;
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    cp = 0xFFFD;
                }
                ad_err rc = put_cp(out, cp);
                if (rc)
                    return rc;
                continue;
            }
            char d;
            switch (c) {
            case 'n':
                d = '\n';
                break;
            case 't':
                d = '\t';
                break;
            case 'r':
                d = '\r';
                break;
            case 'b':
                d = '\b';
                break;
            case 'f':
                d = '\f';
                break;
            case '"':
            case '\\':
            case '/':
                d = c;
                break;
            default:
                f->state = 3;
                return AD_OK;
            }
            f->nesc = 0;
            ad_err rc = ad_buf_add(out, &d, 1);
            if (rc)
                return rc;
            continue;
        }
        if (c == '\\') {
            f->esc[0] = c;
            f->nesc = 1;
            continue;
        }
        if (f->hi_surrogate) { /* a lone high surrogate */
            f->hi_surrogate = 0;
            ad_err rc = put_cp(out, 0xFFFD);
            if (rc)
                return rc;
        }
        if (c == '"') {
            f->state = 2;
            return AD_OK;
        }
        ad_err rc = ad_buf_add(out, &c, 1);
        if (rc)
            return rc;
    }
    return AD_OK;
}
