/*
 * prompt.c -- building the chat-completions request of a run's next model
 * call from what is stored (see prompt.h).
 */
#include "run/prompt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api.h"
#include "run/tools.h"
#include "store/blob.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json.h"

#define JSON_MAX  (64u * 1024 * 1024)
#define IMAGE_MAX (20u * 1024 * 1024) /* largest image_file sent inline */

typedef struct collect {
    json_t *arr;
} collect;

static ad_err collect_row(void *ud, const char *id, const char *json, size_t len)
{
    collect *c = ud;
    (void)id;
    json_t *v = json_loadb(json, len, 0, NULL);
    if (!v)
        return AD_EDB;
    json_array_append_new(c->arr, v);
    return AD_OK;
}

/* All live objects of kind under parent, oldest first. */
static json_t *list_all(ad_db *db, const char *project, const char *kind, const char *parent)
{
    collect c = {.arr = json_array()};
    ad_list_q q = {
        .project = project, .kind = kind, .parent = parent, .limit = 1000000, .asc = true};
    bool more;
    if (ad_db_list(db, &q, collect_row, &c, &more)) {
        json_decref(c.arr);
        return NULL;
    }
    return c.arr;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static ad_err base64_append(ad_buf *out, const unsigned char *p, size_t n)
{
    ad_err rc = AD_OK;
    size_t i = 0;
    for (; i + 3 <= n && !rc; i += 3) {
        char q[4] = {b64[p[i] >> 2], b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                     b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], b64[p[i + 2] & 63]};
        rc = ad_buf_add(out, q, 4);
    }
    if (!rc && n - i == 1) {
        char q[4] = {b64[p[i] >> 2], b64[(p[i] & 3) << 4], '=', '='};
        rc = ad_buf_add(out, q, 4);
    } else if (!rc && n - i == 2) {
        char q[4] = {b64[p[i] >> 2], b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                     b64[(p[i + 1] & 15) << 2], '='};
        rc = ad_buf_add(out, q, 4);
    }
    return rc;
}

static const char *image_type(const char *filename)
{
    const char *dot = filename ? strrchr(filename, '.') : NULL;
    if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        return "image/jpeg";
    if (dot && !strcasecmp(dot, ".gif"))
        return "image/gif";
    if (dot && !strcasecmp(dot, ".webp"))
        return "image/webp";
    return "image/png";
}

/* A data: URL with the bytes of an image file, or NULL. */
static json_t *image_file_url(ad_db *db, const char *data_dir, const char *project,
                              const char *file_id)
{
    ad_buf meta;
    ad_buf_init(&meta, 1024 * 1024);
    json_t *url = NULL;
    int fd = -1;
    uint64_t size = 0;
    if (ad_db_get(db, project, "file", file_id, &meta))
        goto out;
    json_t *f = json_loadb(meta.ptr, meta.len, 0, NULL);
    const char *type = image_type(json_string_value(json_object_get(f, "filename")));
    if (ad_blob_open(data_dir, "files", file_id, &fd, &size) || size > IMAGE_MAX) {
        json_decref(f);
        goto out;
    }
    ad_buf data;
    ad_buf_init(&data, IMAGE_MAX * 2);
    unsigned char *raw = ad_malloc(size ? size : 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, raw + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == size && !ad_buf_printf(&data, "data:%s;base64,", type) &&
        !base64_append(&data, raw, size))
        url = json_stringn(data.ptr, data.len);
    ad_free(raw);
    ad_buf_free(&data);
    json_decref(f);
out:
    if (fd >= 0)
        close(fd);
    ad_buf_free(&meta);
    return url;
}

/* A stored message as a chat message. */
static json_t *chat_message(ad_db *db, const char *data_dir, const char *project, const json_t *msg)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    json_t *content = json_object_get(msg, "content");
    ad_buf text;
    ad_buf_init(&text, JSON_MAX);
    json_t *parts = json_array();
    bool images = false;
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        const char *type = json_string_value(json_object_get(p, "type"));
        if (!type)
            continue;
        bool refusal = !strcmp(type, "refusal");
        if (refusal || !strcmp(type, "text")) {
            /* A refusal (an earlier answer the model refused) goes as its
             * words: a chat message's own "refusal" field is OpenAI's only. */
            const char *v =
                json_string_value(refusal ? json_object_get(p, "refusal")
                                          : json_object_get(json_object_get(p, "text"), "value"));
            if (!v)
                continue;
            if (text.len)
                ad_buf_addstr(&text, "\n");
            ad_buf_addstr(&text, v);
            json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text", "text", v));
        } else if (!strcmp(type, "image_url")) {
            json_t *iu = json_object_get(p, "image_url");
            json_array_append_new(parts,
                                  json_pack("{s:s,s:O}", "type", "image_url", "image_url", iu));
            images = true;
        } else if (!strcmp(type, "image_file")) {
            json_t *img = json_object_get(p, "image_file");
            json_t *url = image_file_url(db, data_dir, project,
                                         json_string_value(json_object_get(img, "file_id")));
            if (url) {
                json_t *iu = json_pack("{s:o}", "url", url);
                const char *detail = json_string_value(json_object_get(img, "detail"));
                if (detail)
                    json_object_set_new(iu, "detail", json_string(detail));
                json_array_append_new(parts,
                                      json_pack("{s:s,s:o}", "type", "image_url", "image_url", iu));
                images = true;
            }
        }
    }
    json_t *m =
        json_pack("{s:s}", "role", role && !strcmp(role, "assistant") ? "assistant" : "user");
    if (images)
        json_object_set_new(m, "content", parts);
    else {
        json_object_set_new(m, "content", json_stringn(ad_buf_str(&text), text.len));
        json_decref(parts);
    }
    ad_buf_free(&text);
    return m;
}

/* History is cut in units: chat messages that go or stay together. A unit
 * is one thread message, or a model answer's tool calls with their outputs
 * (merged into the answer's text message when the answer had text, as the
 * model produced them), so a call is never sent without its output or an
 * output without its call. Units are JSON objects {"msgs": [...], "n": N},
 * N the thread messages in them (0 for a tool group). */
static json_t *unit_new(json_t *first, int n)
{
    json_t *u = json_pack("{s:[],s:i}", "msgs", "n", n);
    json_array_append_new(json_object_get(u, "msgs"), first);
    return u;
}

/* The tool calls of a tool_calls step as an assistant turn's tool_calls and
 * one tool message per call; calls not answered yet are left out. */
static void step_calls(ad_db *db, const char *project, const json_t *d, json_t *tc, json_t *outs)
{
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(d, "tool_calls"), k, c)
    {
        json_t *fn = json_object_get(c, "function");
        const char *ctype = json_string_value(json_object_get(c, "type"));
        if (ctype && (!strcmp(ctype, "code_interpreter") || !strcmp(ctype, "file_search"))) {
            /* A built-in call: what the model sent and read is kept apart
             * from the public step (tools.h). */
            json_t *io = NULL;
            if (ad_tools_callio_get(db, project, json_string_value(json_object_get(c, "id")), &io))
                continue; /* not run yet */
            json_array_append_new(tc,
                                  json_pack("{s:O,s:s,s:{s:s,s:O}}", "id", json_object_get(c, "id"),
                                            "type", "function", "function", "name",
                                            !strcmp(ctype, "file_search") ? AD_TOOL_FILE_SEARCH_NAME
                                                                          : AD_TOOL_CODE_NAME,
                                            "arguments", json_object_get(io, "arguments")));
            json_array_append_new(outs, json_pack("{s:s,s:O,s:O}", "role", "tool", "tool_call_id",
                                                  json_object_get(c, "id"), "content",
                                                  json_object_get(io, "output")));
            json_decref(io);
            continue;
        }
        if (!fn || !ctype || strcmp(ctype, "function") != 0)
            continue;
        json_t *out = json_object_get(fn, "output");
        if (!json_is_string(out))
            continue; /* not answered yet */
        json_array_append_new(tc, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", json_object_get(c, "id"),
                                            "type", "function", "function", "name",
                                            json_object_get(fn, "name"), "arguments",
                                            json_object_get(fn, "arguments")));
        json_array_append_new(outs, json_pack("{s:s,s:O,s:O}", "role", "tool", "tool_call_id",
                                              json_object_get(c, "id"), "content", out));
    }
}

/* Appends to units the turns of a run's steps, in step order. keep == NULL
 * takes every step (the run being built). Otherwise (an earlier run of the
 * thread) only messages whose id is in keep are sent, and tool calls only
 * when the answer that followed them is; every message sent is recorded in
 * emitted. */
static ad_err run_units(ad_db *db, const char *data_dir, const char *project, const char *run_id,
                        const json_t *keep, json_t *emitted, json_t *units)
{
    json_t *steps = list_all(db, project, "step", run_id);
    if (!steps)
        return AD_EDB;
    size_t i;
    json_t *st;
    ad_buf b;
    ad_buf_init(&b, JSON_MAX);
    json_t *pending = json_array(); /* tool groups waiting for their answer */
    json_t *prev_text = NULL;       /* the unit of the step just before, if a message */
    bool last_kept = keep == NULL;
    json_array_foreach(steps, i, st)
    {
        json_t *d = json_object_get(st, "step_details");
        const char *type = json_string_value(json_object_get(d, "type"));
        json_t *was_text = prev_text;
        prev_text = NULL;
        if (type && !strcmp(type, "message_creation")) {
            const char *mid = json_string_value(
                json_object_get(json_object_get(d, "message_creation"), "message_id"));
            if (!mid)
                continue;
            if (keep && !json_object_get(keep, mid)) {
                json_array_clear(pending); /* its calls go with it */
                last_kept = false;
                continue;
            }
            ad_buf_reset(&b);
            if (ad_db_get(db, project, "message", mid, &b))
                continue; /* deleted */
            json_t *msg = json_loadb(b.ptr, b.len, 0, NULL);
            if (!msg)
                continue;
            json_array_extend(units, pending);
            json_array_clear(pending);
            json_t *u = unit_new(chat_message(db, data_dir, project, msg), 1);
            json_array_append_new(units, u);
            if (emitted)
                json_object_set_new(emitted, mid, json_true());
            prev_text = u;
            last_kept = true;
            json_decref(msg);
        } else if (type && !strcmp(type, "tool_calls")) {
            json_t *tc = json_array();
            json_t *outs = json_array();
            step_calls(db, project, d, tc, outs);
            /* Text and calls from one model answer were one assistant turn
             * (the engine makes a message_creation step, then the
             * tool_calls step): send them back as one message, as the model
             * produced them -- some chat templates refuse two assistant
             * turns in a row. */
            json_t *msgs = was_text ? json_object_get(was_text, "msgs") : NULL;
            json_t *prev = json_array_get(msgs, 0);
            if (!json_array_size(tc)) {
                json_decref(tc);
            } else if (prev && !json_object_get(prev, "tool_calls")) {
                json_object_set_new(prev, "tool_calls", tc);
                json_array_extend(msgs, outs);
            } else {
                json_t *u = unit_new(
                    json_pack("{s:s,s:n,s:o}", "role", "assistant", "content", "tool_calls", tc),
                    0);
                json_array_extend(json_object_get(u, "msgs"), outs);
                json_array_append_new(keep ? pending : units, u);
            }
            json_decref(outs);
        }
    }
    if (last_kept)
        json_array_extend(units, pending);
    json_decref(pending);
    ad_buf_free(&b);
    json_decref(steps);
    return AD_OK;
}

/* The thread's history as units: its messages not made by this run, cut by
 * truncation_strategy last_messages, with the tool calls earlier runs made
 * between them (the model sees the code it ran and what it read, as on
 * OpenAI). *cut counts the messages last_messages left out. */
static ad_err history_units(ad_db *db, const char *data_dir, const char *project, const json_t *run,
                            json_t *units, size_t *cut)
{
    const char *run_id = json_string_value(json_object_get(run, "id"));
    json_t *all =
        list_all(db, project, "message", json_string_value(json_object_get(run, "thread_id")));
    if (!all)
        return AD_EDB;
    json_t *history = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        const char *rid = json_string_value(json_object_get(m, "run_id"));
        if (!rid || strcmp(rid, run_id) != 0)
            json_array_append(history, m);
    }
    json_decref(all);
    size_t first = 0;
    json_t *ts = json_object_get(run, "truncation_strategy");
    const char *ttype = json_string_value(json_object_get(ts, "type"));
    json_t *last = json_object_get(ts, "last_messages");
    if (ttype && !strcmp(ttype, "last_messages") && json_is_integer(last) &&
        json_integer_value(last) > 0 && (size_t)json_integer_value(last) < json_array_size(history))
        first = json_array_size(history) - (size_t)json_integer_value(last);
    *cut = first;
    json_t *keep = json_object();
    for (i = first; i < json_array_size(history); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(history, i), "id"));
        if (id)
            json_object_set_new(keep, id, json_true());
    }
    json_t *expanded = json_object();
    json_t *emitted = json_object();
    ad_err rc = AD_OK;
    for (i = first; i < json_array_size(history) && !rc; i++) {
        m = json_array_get(history, i);
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *rid = json_string_value(json_object_get(m, "run_id"));
        if (rid && !json_object_get(expanded, rid)) {
            json_object_set_new(expanded, rid, json_true());
            rc = run_units(db, data_dir, project, rid, keep, emitted, units);
        }
        if (!rc && !(id && json_object_get(emitted, id)))
            json_array_append_new(units, unit_new(chat_message(db, data_dir, project, m), 1));
    }
    json_decref(keep);
    json_decref(expanded);
    json_decref(emitted);
    json_decref(history);
    return rc;
}

static json_t *chat_tools(const json_t *tools)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        if (type && !strcmp(type, "function"))
            json_array_append_new(out, json_pack("{s:s,s:O}", "type", "function", "function",
                                                 json_object_get(t, "function")));
    }
    ad_tools_chat_defs(tools, out);
    return out;
}

/* ---- token accounting ---- */

/* Images cost what OpenAI's vision models charge for them: 85 tokens at
 * detail "low"; otherwise the image's 512-px tiles at 170 each plus 85. The
 * size of an image is not known without decoding it, so "high"/"auto" is
 * counted as a 1024x1024 image (4 tiles): 765. */
#define IMAGE_TOKENS_LOW  85
#define IMAGE_TOKENS_HIGH 765

static size_t count_str(const ad_tokenizer *tok, const json_t *s)
{
    const char *v = json_string_value(s);
    return v ? ad_tokenizer_count(tok, v, json_string_length(s)) : 0;
}

/* Tokens of one chat message, framing included (tokenizer.h). */
static size_t message_tokens(const ad_tokenizer *tok, const json_t *m)
{
    size_t n = AD_TOKENIZER_TOKENS_PER_MESSAGE + count_str(tok, json_object_get(m, "role"));
    json_t *content = json_object_get(m, "content");
    if (json_is_string(content)) {
        n += count_str(tok, content);
    } else if (json_is_array(content)) {
        size_t i;
        json_t *p;
        json_array_foreach(content, i, p)
        {
            const char *type = json_string_value(json_object_get(p, "type"));
            if (type && !strcmp(type, "text")) {
                n += count_str(tok, json_object_get(p, "text"));
            } else if (type && !strcmp(type, "image_url")) {
                const char *d =
                    json_string_value(json_object_get(json_object_get(p, "image_url"), "detail"));
                n += d && !strcmp(d, "low") ? IMAGE_TOKENS_LOW : IMAGE_TOKENS_HIGH;
            }
        }
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(m, "tool_calls"), i, c)
    {
        json_t *fn = json_object_get(c, "function");
        n += AD_TOKENIZER_TOKENS_PER_MESSAGE + count_str(tok, json_object_get(c, "id")) +
             count_str(tok, json_object_get(fn, "name")) +
             count_str(tok, json_object_get(fn, "arguments"));
    }
    n += count_str(tok, json_object_get(m, "tool_call_id"));
    return n;
}

/* Tool definitions reach the model as text the provider renders from them;
 * their compact JSON is a close, slightly generous stand-in. */
static size_t tools_tokens(const ad_tokenizer *tok, const json_t *tools)
{
    if (!json_array_size(tools))
        return 0;
    char *s = json_dumps(tools, AD_JSON_COMPACT);
    size_t n = s ? ad_tokenizer_count(tok, s, strlen(s)) : 0;
    free(s);
    return n;
}

/* What the run's earlier calls used: what its object shows plus what its
 * extras keep until it ends (api.h, AD_EXTRAS_USAGE). */
static int64_t usage_of(const json_t *run, const json_t *extras, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(run, "usage"), key)) +
           json_integer_value(json_object_get(json_object_get(extras, AD_EXTRAS_USAGE), key));
}

/* What the completion may still use: max_completion_tokens minus what the
 * run's earlier calls produced; INT64_MAX when unlimited. */
static int64_t completion_left(const json_t *run, const json_t *extras)
{
    json_t *mct = json_object_get(run, "max_completion_tokens");
    if (!json_is_integer(mct))
        return INT64_MAX;
    return json_integer_value(mct) - usage_of(run, extras, "completion_tokens");
}

/* reasoning_effort: the run's own (createRun, in its extras), else its
 * assistant's, read from their private extras rows (api.h: neither object
 * shows it); NULL when neither has one. New reference. */
static json_t *reasoning_effort(ad_db *db, const char *project, const json_t *run,
                                const json_t *extras)
{
    json_t *v = json_object_get(extras, "reasoning_effort");
    if (json_is_string(v))
        return json_incref(v);
    json_t *x =
        ad_api_extras_get(db, project, json_string_value(json_object_get(run, "assistant_id")));
    v = json_object_get(x, "reasoning_effort");
    json_t *out = json_is_string(v) ? json_incref(v) : NULL;
    json_decref(x);
    return out;
}

ad_prompt_status ad_prompt_build(ad_db *db, const char *data_dir, const char *project,
                                 const json_t *run, const ad_model *model, const ad_tokenizer *tok,
                                 ad_prompt *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    const char *run_id = json_string_value(json_object_get(run, "id"));
    const char *thread_id = json_string_value(json_object_get(run, "thread_id"));
    if (!run_id || !thread_id) {
        snprintf(err, errsize, "The run is malformed.");
        return AD_PROMPT_ERROR;
    }
    /* The run's private extras (api.h): its reasoning_effort, and the usage
     * of its earlier calls while the run does not show it yet. */
    json_t *extras = ad_api_extras_get(db, project, run_id);
    int64_t cleft = completion_left(run, extras);
    if (cleft <= 0) {
        json_decref(extras);
        snprintf(err, errsize, "The run used its max_completion_tokens.");
        return AD_PROMPT_COMPLETION_BUDGET;
    }

    json_t *hist = json_array(); /* units, oldest first */
    json_t *tail = json_array(); /* this run's units */
    size_t i;
    json_t *m;
    if (history_units(db, data_dir, project, run, hist, &out->dropped) ||
        run_units(db, data_dir, project, run_id, NULL, NULL, tail)) {
        snprintf(err, errsize, "The thread's messages or the run's steps could not be read.");
        json_decref(hist);
        json_decref(tail);
        json_decref(extras);
        return AD_PROMPT_ERROR;
    }
    json_t *tools = chat_tools(json_object_get(run, "tools"));

    /* The budget. The context window holds the prompt and the answer: room
     * is kept for the answer (the completion budget when one is set, at most
     * half the window; else a sixteenth of the window). max_prompt_tokens is
     * over the whole run, so what earlier calls used is subtracted. */
    int64_t window = model && model->context_window > 0 ? model->context_window : 128000;
    int64_t reserve = cleft != INT64_MAX ? (cleft < window / 2 ? cleft : window / 2) : window / 16;
    int64_t limit = window - reserve;
    bool by_mpt = false;
    json_t *mpt = json_object_get(run, "max_prompt_tokens");
    if (json_is_integer(mpt)) {
        int64_t left = json_integer_value(mpt) - usage_of(run, extras, "prompt_tokens");
        if (left < limit) {
            limit = left;
            by_mpt = true;
        }
    }

    /* Fixed: the instructions, the tools, this run's own turns and the reply
     * priming. History goes oldest first until the rest fits; the newest
     * history message always stays (a prompt without the user's question
     * is no answer to it). */
    const char *instr = json_string_value(json_object_get(run, "instructions"));
    json_t *sys =
        instr && *instr ? json_pack("{s:s,s:s}", "role", "system", "content", instr) : NULL;
    size_t fixed = AD_TOKENIZER_REPLY_PRIMING + tools_tokens(tok, tools);
    if (sys)
        fixed += message_tokens(tok, sys);
    json_t *u;
    json_array_foreach(tail, i, u)
    {
        size_t k;
        json_array_foreach(json_object_get(u, "msgs"), k, m) fixed += message_tokens(tok, m);
    }
    size_t nh = json_array_size(hist);
    size_t *cost = ad_calloc(nh + 1, sizeof *cost);
    size_t hist_total = 0;
    json_array_foreach(hist, i, u)
    {
        size_t k;
        json_array_foreach(json_object_get(u, "msgs"), k, m) cost[i] += message_tokens(tok, m);
        hist_total += cost[i];
    }
    size_t keep_from = 0, total = fixed + hist_total;
    while (keep_from + 1 < nh && (int64_t)total > limit) {
        total -= cost[keep_from];
        out->dropped +=
            (size_t)json_integer_value(json_object_get(json_array_get(hist, keep_from), "n"));
        keep_from++;
    }
    ad_free(cost);
    if ((int64_t)total > limit) {
        if (by_mpt)
            snprintf(err, errsize,
                     "The prompt needs %zu tokens but only %lld remain of max_prompt_tokens.",
                     total, (long long)(limit > 0 ? limit : 0));
        else
            snprintf(err, errsize,
                     "The prompt needs %zu tokens, more than the %lld that model '%s' can take "
                     "with room for its answer.",
                     total, (long long)limit, model ? model->id : "");
        json_decref(sys);
        json_decref(hist);
        json_decref(tail);
        json_decref(tools);
        json_decref(extras);
        return by_mpt ? AD_PROMPT_PROMPT_BUDGET : AD_PROMPT_TOO_LONG;
    }
    out->prompt_tokens = total;

    json_t *messages = json_array();
    if (sys)
        json_array_append_new(messages, sys);
    for (i = keep_from; i < nh; i++)
        json_array_extend(messages, json_object_get(json_array_get(hist, i), "msgs"));
    json_array_foreach(tail, i, u)
    {
        json_array_extend(messages, json_object_get(u, "msgs"));
    }
    json_decref(hist);
    json_decref(tail);

    json_t *body = json_pack("{s:o}", "messages", messages);
    if (json_array_size(tools)) {
        json_object_set_new(body, "tools", tools);
        json_t *tc = json_object_get(run, "tool_choice");
        if (json_is_string(tc)) {
            json_object_set(body, "tool_choice", tc);
        } else if (json_is_object(tc)) {
            const char *t = json_string_value(json_object_get(tc, "type"));
            if (t && !strcmp(t, "function"))
                json_object_set(body, "tool_choice", tc);
            else if (t && (!strcmp(t, "file_search") || !strcmp(t, "code_interpreter")))
                json_object_set_new(body, "tool_choice",
                                    json_pack("{s:s,s:{s:s}}", "type", "function", "function",
                                              "name",
                                              !strcmp(t, "file_search") ? AD_TOOL_FILE_SEARCH_NAME
                                                                        : AD_TOOL_CODE_NAME));
        }
        json_t *ptc = json_object_get(run, "parallel_tool_calls");
        if (json_is_boolean(ptc))
            json_object_set(body, "parallel_tool_calls", ptc);
    } else {
        json_decref(tools);
    }
    json_t *rf = json_object_get(run, "response_format");
    if (json_is_object(rf))
        json_object_set(body, "response_format", rf);
    const char *copy[] = {"temperature", "top_p"};
    for (i = 0; i < 2; i++) {
        json_t *v = json_object_get(run, copy[i]);
        if (json_is_number(v))
            json_object_set(body, copy[i], v);
    }
    json_t *effort = reasoning_effort(db, project, run, extras);
    json_decref(extras);
    if (effort)
        json_object_set_new(body, "reasoning_effort", effort);
    /* The answer may use what is left of the run's completion budget. */
    if (cleft != INT64_MAX)
        json_object_set_new(body, "max_completion_tokens", json_integer(cleft));
    out->body = body;
    return AD_PROMPT_OK;
}
