/*
 * chat_stream.c -- SSE framing and chat.completion.chunk folding (see
 * chat_stream.h for the contract).
 *
 * Design.
 *
 * Framing is a byte-at-a-time state machine that follows the WHATWG
 * event-stream rules, so the result cannot depend on how libcurl cuts the
 * body: a line ends at LF, CRLF or a lone CR (a CR at the end of one feed and
 * an LF at the start of the next are one line end: skip_lf survives across
 * feeds); a line starting with ':' is a comment; otherwise the field name runs
 * to the first ':' and one space after it is dropped; only `data` matters
 * (event/id/retry and unknown fields are ignored), and its value is appended
 * to the event buffer followed by LF; a blank line dispatches the event with
 * the final LF removed; a leading UTF-8 BOM on the first line is ignored.
 * Comment and ignored lines are skipped without being buffered, so a huge
 * heartbeat costs no memory; data bytes go straight into the event buffer,
 * whose hard maximum is max_event (+1 for the trailing LF). At end of input a
 * half-received event is dropped (as the spec and the SDKs do), so nothing is
 * ever reported for it.
 *
 * A dispatched event is `[DONE]` (the end: everything after it is ignored),
 * empty/blank (a keep-alive, ignored) or one JSON object, parsed whole with
 * jansson (JSON_ALLOW_NUL: model text may contain U+0000, which is why text
 * pieces travel with a length). Chunk handling is deliberately strict about
 * the shape of the fields it uses (choices, delta, tool_calls, content,
 * usage, ...: wrong types are AD_EINVAL) and silent about everything else, so
 * vendor extras (service_tier, obfuscation, timings, stop_reason,
 * reasoning_content, prompt_filter_results, ...) pass through.
 *
 * Tool calls are merged into slots. The upstream `index` names the slot in
 * the normal case, but real servers deviate: some omit `index`, some send
 * every parallel call with index 0 (Ollama, some proxies), some re-send the
 * id. Resolution, in order: an id already seen routes to its slot; an
 * explicit index maps to its slot (index i starts as slot i, or the next free
 * slot if i was taken by an index-less call), and a *different* id arriving
 * at a mapped index opens a new slot that the index then maps to; an element
 * without index continues the last index-less call unless it carries a new
 * id or a second name, which opens the next slot. Well-formed OpenAI streams
 * therefore get slot == index. on_tool_call_start fires when a slot's name is
 * first known; argument bytes that arrive before the name are held and
 * delivered in one piece right after the start, so a consumer always sees
 * start before args.
 *
 * Errors are sticky: the first one is remembered with a message (bounded,
 * valid UTF-8) and every later call returns it without side effects. The
 * messages name the event by its ordinal, never a byte offset, so they are
 * identical however the input was split.
 *
 * A body whose first non-blank byte is '{' is not SSE: the upstream ignored
 * stream:true, or sent an error object. It is buffered (max_event) and folded
 * at ad_cs_finish like ad_cs_feed_completion.
 */
#include "run/chat_stream.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/str.h"

#define DEF_MAX_EVENT ((size_t)1 << 20)
#define DEF_MAX_TEXT  ((size_t)8 << 20)
#define DEF_MAX_ARGS  ((size_t)1 << 20)
#define MAX_CALL_ID   1024
#define MAX_CALL_NAME 1024

enum mode { M_SNIFF, M_SSE, M_BODY };
enum lstate { L_START, L_FIELD, L_VALUE, L_DATA, L_IGNORE };

struct ad_cs {
    ad_cs_turn turn;
    ad_cs_limits lim;
    ad_cs_callbacks cb;
    void *ud;

    ad_err rc;       /* sticky first error */
    bool finished;   /* ad_cs_finish was called */
    bool fed;        /* ad_cs_feed got bytes */
    enum mode mode;  /* sniffing, SSE, or a plain JSON body */
    enum lstate ls;  /* position inside the current line */
    bool skip_lf;    /* the last line ended with CR: swallow one LF */
    bool first_line; /* still on the first line (BOM allowed) */
    char field[8];   /* field name so far ("data" plus a BOM fits) */
    size_t field_len;
    ad_buf data;                       /* data of the event being received */
    ad_buf body;                       /* M_BODY: the whole JSON body */
    size_t events;                     /* dispatched events with data */
    char where[40];                    /* "event N" or "response body", for messages */
    int implicit_slot;                 /* slot of the last call sent without index, or -1 */
    int slot_of[AD_CS_MAX_TOOL_CALLS]; /* upstream index -> slot, or -1 */
    bool used[AD_CS_MAX_TOOL_CALLS];
    bool started[AD_CS_MAX_TOOL_CALLS]; /* on_tool_call_start fired */
    char err[512];
    char err_code[64];
};

/* ---- bounded, UTF-8-safe copies and errors ---- */

static size_t u8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* Copies s[0..n) (stopping at a NUL) into dst[cap], cap > 0, truncating at a
 * character boundary; bytes that are not well-formed UTF-8 become '?', and a
 * character cut off by the end of s is dropped. */
static void copy_utf8(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    size_t i = 0;
    while (i < n && s[i] != '\0') {
        size_t k = u8_seq_len((unsigned char)s[i]);
        const char *ch = s + i;
        if (k != 0 && k > n - i)
            break; /* a character cut by the end (of a truncated message) */
        if (k == 0 || !ad_utf8_valid(s + i, k)) {
            ch = "?";
            k = 1;
            i++;
        } else {
            i += k;
        }
        if (k > cap - 1 - o)
            break;
        memcpy(dst + o, ch, k);
        o += k;
    }
    dst[o] = '\0';
}

static ad_err fail(ad_cs *cs, ad_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ad_err fail(ad_cs *cs, ad_err rc, const char *fmt, ...)
{
    char tmp[sizeof cs->err];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        tmp[0] = '\0';
    copy_utf8(cs->err, sizeof cs->err, tmp, strlen(tmp));
    if (cs->err[0] == '\0')
        ad_strlcpy(cs->err, ad_strerror(rc), sizeof cs->err);
    cs->rc = rc;
    return rc;
}

static ad_err cb_failed(ad_cs *cs, ad_err rc, const char *which)
{
    return fail(cs, rc, "%s: %s callback failed: %s", cs->where, which, ad_strerror(rc));
}

/* ---- life cycle ---- */

ad_cs *ad_cs_new(const ad_cs_limits *lim, const ad_cs_callbacks *cb, void *ud)
{
    ad_cs *cs = ad_calloc(1, sizeof *cs);
    if (lim)
        cs->lim = *lim;
    if (!cs->lim.max_event)
        cs->lim.max_event = DEF_MAX_EVENT;
    if (!cs->lim.max_text)
        cs->lim.max_text = DEF_MAX_TEXT;
    if (!cs->lim.max_args)
        cs->lim.max_args = DEF_MAX_ARGS;
    if (cb)
        cs->cb = *cb;
    cs->ud = ud;
    cs->mode = M_SNIFF;
    cs->ls = L_START;
    cs->first_line = true;
    cs->implicit_slot = -1;
    size_t ev = cs->lim.max_event;
    ad_buf_init(&cs->data, ev < (size_t)-1 ? ev + 1 : ev);
    ad_buf_init(&cs->body, ev);
    ad_buf_init(&cs->turn.text, cs->lim.max_text);
    ad_buf_init(&cs->turn.refusal, cs->lim.max_text);
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++) {
        ad_buf_init(&cs->turn.calls[i].id, MAX_CALL_ID);
        ad_buf_init(&cs->turn.calls[i].name, MAX_CALL_NAME);
        ad_buf_init(&cs->turn.calls[i].args, cs->lim.max_args);
        cs->slot_of[i] = -1;
    }
    ad_strlcpy(cs->where, "start", sizeof cs->where);
    return cs;
}

void ad_cs_free(ad_cs *cs)
{
    if (!cs)
        return;
    ad_buf_free(&cs->data);
    ad_buf_free(&cs->body);
    ad_buf_free(&cs->turn.text);
    ad_buf_free(&cs->turn.refusal);
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++) {
        ad_buf_free(&cs->turn.calls[i].id);
        ad_buf_free(&cs->turn.calls[i].name);
        ad_buf_free(&cs->turn.calls[i].args);
    }
    ad_free(cs);
}

const ad_cs_turn *ad_cs_result(const ad_cs *cs)
{
    return &cs->turn;
}

const char *ad_cs_error(const ad_cs *cs)
{
    return cs->err;
}

const char *ad_cs_error_code(const ad_cs *cs)
{
    return cs->err_code;
}

/* ---- JSON helpers ---- */

/* "null" and absent are the same to every field read here. */
static json_t *get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A string member as a C string, NULL when absent/null; AD_EINVAL otherwise. */
static ad_err get_str(ad_cs *cs, const json_t *obj, const char *key, const char **out)
{
    json_t *v = get(obj, key);
    *out = NULL;
    if (!v)
        return AD_OK;
    if (!json_is_string(v))
        return fail(cs, AD_EINVAL, "%s: \"%s\" is not a string", cs->where, key);
    *out = json_string_value(v);
    return AD_OK;
}

/* ---- upstream errors ---- */

static ad_err upstream_error(ad_cs *cs, const json_t *e)
{
    const char *msg = NULL;
    char *dump = NULL;
    if (json_is_string(e)) {
        msg = json_string_value(e);
    } else if (json_is_object(e)) {
        json_t *m = json_object_get(e, "message");
        json_t *code = json_object_get(e, "code");
        json_t *type = json_object_get(e, "type");
        if (json_is_string(m) && json_string_value(m)[0])
            msg = json_string_value(m);
        if (json_is_string(code) && json_string_value(code)[0]) {
            copy_utf8(cs->err_code, sizeof cs->err_code, json_string_value(code),
                      strlen(json_string_value(code)));
        } else if (json_is_integer(code)) {
            snprintf(cs->err_code, sizeof cs->err_code, "%lld",
                     (long long)json_integer_value(code));
        } else if (json_is_string(type)) {
            copy_utf8(cs->err_code, sizeof cs->err_code, json_string_value(type),
                      strlen(json_string_value(type)));
        }
    }
    if (!msg || !msg[0]) {
        dump = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
        msg = dump;
    }
    ad_err rc = fail(cs, AD_ESTATE, "%s", msg && msg[0] ? msg : "upstream error (no message)");
    free(dump);
    return rc;
}

/* ---- the turn ---- */

static ad_err add_text(ad_cs *cs, const char *p, size_t n)
{
    if (n == 0)
        return AD_OK;
    if (ad_buf_add(&cs->turn.text, p, n))
        return fail(cs, AD_ETOOBIG, "%s: assistant text exceeds max_text (%zu bytes)", cs->where,
                    cs->lim.max_text);
    if (cs->cb.on_text) {
        ad_err rc = cs->cb.on_text(cs->ud, p, n);
        if (rc)
            return cb_failed(cs, rc, "on_text");
    }
    return AD_OK;
}

/* content: a string, or (some servers) an array of parts whose "text" parts count. */
static ad_err add_content(ad_cs *cs, const json_t *c)
{
    if (!c)
        return AD_OK;
    if (json_is_string(c))
        return add_text(cs, json_string_value(c), json_string_length(c));
    if (!json_is_array(c))
        return fail(cs, AD_EINVAL, "%s: \"content\" is neither a string nor an array", cs->where);
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part)
    {
        if (!json_is_object(part))
            return fail(cs, AD_EINVAL, "%s: content part %zu is not an object", cs->where, i);
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (json_is_string(type) && strcmp(json_string_value(type), "text") == 0 &&
            json_is_string(text)) {
            ad_err rc = add_text(cs, json_string_value(text), json_string_length(text));
            if (rc)
                return rc;
        }
    }
    return AD_OK;
}

static void set_small(char *dst, size_t cap, const char *s)
{
    copy_utf8(dst, cap, s, strlen(s));
}

static int new_slot(ad_cs *cs)
{
    return cs->turn.ncalls < AD_CS_MAX_TOOL_CALLS ? cs->turn.ncalls : -1;
}

static int find_id(const ad_cs *cs, const char *id)
{
    for (int s = 0; s < cs->turn.ncalls; s++)
        if (cs->used[s] && strcmp(ad_buf_str(&cs->turn.calls[s].id), id) == 0)
            return s;
    return -1;
}

/* Picks the slot for one tool_calls element (see the design note). idx is the
 * upstream index or -1 when absent; id and name are "" when absent. */
static int resolve_slot(ad_cs *cs, int idx, const char *id, const char *name)
{
    int s;
    if (id[0] && (s = find_id(cs, id)) >= 0) {
        if (idx >= 0)
            cs->slot_of[idx] = s;
        else
            cs->implicit_slot = s;
        return s;
    }
    if (idx >= 0) {
        s = cs->slot_of[idx];
        if (s < 0)
            s = cs->used[idx] ? new_slot(cs) : idx;
        else if (id[0] && cs->turn.calls[s].id.len)
            s = new_slot(cs); /* a different call reusing the index */
        if (s >= 0)
            cs->slot_of[idx] = s;
        return s;
    }
    s = cs->implicit_slot;
    if (s < 0 || (id[0] && cs->turn.calls[s].id.len) || (name[0] && cs->turn.calls[s].name.len))
        s = new_slot(cs);
    if (s >= 0)
        cs->implicit_slot = s;
    return s;
}

typedef struct dump_ctx {
    ad_buf *b;
    bool too_big;
} dump_ctx;

static int dump_cb(const char *buffer, size_t size, void *data)
{
    dump_ctx *d = data;
    if (ad_buf_add(d->b, buffer, size)) {
        d->too_big = true;
        return -1;
    }
    return 0;
}

/* Appends one arguments value (a string piece, or a whole object/array that
 * some servers send instead of its JSON text) to slot s. *from gets the
 * offset where the new bytes start. */
static ad_err append_args(ad_cs *cs, int s, const json_t *args, size_t *from)
{
    ad_buf *b = &cs->turn.calls[s].args;
    *from = b->len;
    if (!args)
        return AD_OK;
    if (json_is_string(args)) {
        if (ad_buf_add(b, json_string_value(args), json_string_length(args)))
            goto too_big;
        return AD_OK;
    }
    if (!json_is_object(args) && !json_is_array(args))
        return fail(cs, AD_EINVAL, "%s: tool call \"arguments\" is neither a string nor an object",
                    cs->where);
    dump_ctx d = {b, false};
    if (json_dump_callback(args, dump_cb, &d, JSON_COMPACT) != 0) {
        b->len = *from;
        if (b->ptr)
            b->ptr[b->len] = '\0';
        if (d.too_big)
            goto too_big;
        return fail(cs, AD_EINVAL, "%s: cannot serialise tool call arguments", cs->where);
    }
    return AD_OK;
too_big:
    return fail(cs, AD_ETOOBIG, "%s: arguments of tool call %d exceed max_args (%zu bytes)",
                cs->where, s, cs->lim.max_args);
}

/* One element of delta.tool_calls (pos < 0) or message.tool_calls (pos =
 * its position, which is its index). */
static ad_err tool_call(ad_cs *cs, const json_t *tc, int pos)
{
    if (!json_is_object(tc))
        return fail(cs, AD_EINVAL, "%s: a tool_calls element is not an object", cs->where);
    const char *id, *type, *name = NULL;
    ad_err rc;
    if ((rc = get_str(cs, tc, "id", &id)) || (rc = get_str(cs, tc, "type", &type)))
        return rc;
    json_t *fn = get(tc, "function");
    json_t *args = NULL;
    if (fn) {
        if (!json_is_object(fn))
            return fail(cs, AD_EINVAL, "%s: tool call \"function\" is not an object", cs->where);
        if ((rc = get_str(cs, fn, "name", &name)))
            return rc;
        args = get(fn, "arguments");
    }
    id = id ? id : "";
    name = name ? name : "";

    int idx = pos;
    if (pos < 0) {
        json_t *jidx = get(tc, "index");
        if (jidx) {
            if (!json_is_integer(jidx))
                return fail(cs, AD_EINVAL, "%s: tool call \"index\" is not an integer", cs->where);
            json_int_t v = json_integer_value(jidx);
            if (v < 0 || v >= AD_CS_MAX_TOOL_CALLS)
                return fail(cs, AD_EINVAL, "%s: tool call index %lld out of range (0..%d)",
                            cs->where, (long long)v, AD_CS_MAX_TOOL_CALLS - 1);
            idx = (int)v;
        }
    }
    int s = resolve_slot(cs, idx, id, name);
    if (s < 0)
        return fail(cs, AD_ETOOBIG, "%s: more than %d tool calls", cs->where, AD_CS_MAX_TOOL_CALLS);
    ad_cs_tool_call *call = &cs->turn.calls[s];
    if (!cs->used[s]) {
        cs->used[s] = true;
        ad_strlcpy(call->type, "function", sizeof call->type);
        if (s >= cs->turn.ncalls)
            cs->turn.ncalls = s + 1;
    }
    if (type && type[0])
        set_small(call->type, sizeof call->type, type);
    if (id[0] && call->id.len == 0 && ad_buf_addstr(&call->id, id))
        return fail(cs, AD_ETOOBIG, "%s: tool call id longer than %d bytes", cs->where,
                    MAX_CALL_ID);
    if (name[0] && call->name.len == 0 && ad_buf_addstr(&call->name, name))
        return fail(cs, AD_ETOOBIG, "%s: tool call name longer than %d bytes", cs->where,
                    MAX_CALL_NAME);
    size_t from;
    if ((rc = append_args(cs, s, args, &from)))
        return rc;
    if (!cs->started[s]) {
        if (call->name.len == 0)
            return AD_OK; /* hold the arguments until the name is known */
        cs->started[s] = true;
        from = 0;
        if (cs->cb.on_tool_call_start) {
            rc = cs->cb.on_tool_call_start(cs->ud, s, ad_buf_str(&call->id),
                                           ad_buf_str(&call->name));
            if (rc)
                return cb_failed(cs, rc, "on_tool_call_start");
        }
    }
    if (call->args.len > from && cs->cb.on_tool_call_args) {
        rc = cs->cb.on_tool_call_args(cs->ud, s, call->args.ptr + from, call->args.len - from);
        if (rc)
            return cb_failed(cs, rc, "on_tool_call_args");
    }
    return AD_OK;
}

/* delta of a chunk, or message of a completion. */
static ad_err fold_message(ad_cs *cs, const json_t *d, bool completion)
{
    ad_err rc = add_content(cs, get(d, "content"));
    if (rc)
        return rc;
    const char *refusal;
    if ((rc = get_str(cs, d, "refusal", &refusal)))
        return rc;
    if (refusal) {
        json_t *r = json_object_get(d, "refusal");
        if (ad_buf_add(&cs->turn.refusal, refusal, json_string_length(r)))
            return fail(cs, AD_ETOOBIG, "%s: refusal exceeds max_text (%zu bytes)", cs->where,
                        cs->lim.max_text);
    }
    json_t *tcs = get(d, "tool_calls");
    if (!tcs)
        return AD_OK;
    if (!json_is_array(tcs))
        return fail(cs, AD_EINVAL, "%s: \"tool_calls\" is not an array", cs->where);
    size_t i;
    json_t *tc;
    json_array_foreach(tcs, i, tc)
    {
        if (completion && i >= AD_CS_MAX_TOOL_CALLS)
            return fail(cs, AD_ETOOBIG, "%s: more than %d tool calls", cs->where,
                        AD_CS_MAX_TOOL_CALLS);
        if ((rc = tool_call(cs, tc, completion ? (int)i : -1)))
            return rc;
    }
    return AD_OK;
}

static bool any_filtered(const json_t *results)
{
    const char *key;
    json_t *cat;
    json_object_foreach((json_t *)results, key, cat)
    {
        (void)key;
        if (json_is_object(cat) && json_is_true(json_object_get(cat, "filtered")))
            return true;
    }
    return false;
}

static ad_err fold_choice(ad_cs *cs, const json_t *ch, bool completion)
{
    const char *what = completion ? "message" : "delta";
    json_t *d = get(ch, what);
    ad_err rc;
    if (d) {
        if (!json_is_object(d))
            return fail(cs, AD_EINVAL, "%s: \"%s\" is not an object", cs->where, what);
        if ((rc = fold_message(cs, d, completion)))
            return rc;
    }
    json_t *cfr = get(ch, "content_filter_results");
    if (json_is_object(cfr) && any_filtered(cfr))
        cs->turn.content_filtered = true;
    const char *fr;
    if ((rc = get_str(cs, ch, "finish_reason", &fr)))
        return rc;
    if (fr && fr[0]) {
        set_small(cs->turn.finish_reason, sizeof cs->turn.finish_reason, fr);
        if (strcmp(fr, "content_filter") == 0)
            cs->turn.content_filtered = true;
    }
    return AD_OK;
}

static int64_t count(const json_t *usage, const char *key, bool *present)
{
    json_t *v = json_object_get(usage, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        *present = false;
        return 0;
    }
    *present = true;
    return (int64_t)json_integer_value(v);
}

static ad_err fold_usage(ad_cs *cs, const json_t *u)
{
    if (!u)
        return AD_OK;
    if (!json_is_object(u))
        return fail(cs, AD_EINVAL, "%s: \"usage\" is not an object", cs->where);
    bool p, c, t;
    ad_cs_turn *turn = &cs->turn;
    turn->prompt_tokens = count(u, "prompt_tokens", &p);
    turn->completion_tokens = count(u, "completion_tokens", &c);
    turn->total_tokens = count(u, "total_tokens", &t);
    if (!t)
        turn->total_tokens = turn->prompt_tokens > INT64_MAX - turn->completion_tokens
                                 ? INT64_MAX
                                 : turn->prompt_tokens + turn->completion_tokens;
    turn->have_usage = true;
    return AD_OK;
}

/* One chunk (completion = false) or one chat.completion body. */
static ad_err fold_object(ad_cs *cs, const json_t *root, bool completion)
{
    if (!json_is_object(root))
        return fail(cs, AD_EINVAL, "%s: %s is not a JSON object", cs->where,
                    completion ? "response" : "chunk");
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e) || (json_is_string(e) && json_string_length(e) > 0))
        return upstream_error(cs, e); /* null, false, "" are not errors */
    json_t *obj = json_object_get(root, "object");
    if (json_is_string(obj) && strcmp(json_string_value(obj), "error") == 0)
        return upstream_error(cs, root); /* older vLLM: the error object itself */

    json_t *v = json_object_get(root, "id");
    if (json_is_string(v) && json_string_value(v)[0])
        set_small(cs->turn.id, sizeof cs->turn.id, json_string_value(v));
    v = json_object_get(root, "model");
    if (json_is_string(v) && json_string_value(v)[0])
        set_small(cs->turn.model, sizeof cs->turn.model, json_string_value(v));

    ad_err rc;
    json_t *choices = get(root, "choices");
    if (choices) {
        if (!json_is_array(choices))
            return fail(cs, AD_EINVAL, "%s: \"choices\" is not an array", cs->where);
        size_t i;
        json_t *ch;
        json_array_foreach(choices, i, ch)
        {
            if (!json_is_object(ch))
                return fail(cs, AD_EINVAL, "%s: choice %zu is not an object", cs->where, i);
            json_t *ji = get(ch, "index");
            if (ji && !json_is_integer(ji))
                return fail(cs, AD_EINVAL, "%s: choice \"index\" is not an integer", cs->where);
            if (ji && json_integer_value(ji) != 0)
                continue; /* n > 1: only the first choice is ours */
            if ((rc = fold_choice(cs, ch, completion)))
                return rc;
        }
    }
    return fold_usage(cs, get(root, "usage"));
}

static ad_err fold_json(ad_cs *cs, const char *p, size_t n, bool completion)
{
    json_error_t je;
    json_t *root = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!root)
        return fail(cs, AD_EINVAL, "%s: malformed JSON: %s (line %d, column %d)", cs->where,
                    je.text, je.line, je.column);
    ad_err rc = fold_object(cs, root, completion);
    json_decref(root);
    if (!rc && completion)
        cs->turn.done = true;
    return rc;
}

/* ---- SSE framing ---- */

static ad_err dispatch(ad_cs *cs)
{
    ad_buf *b = &cs->data;
    if (b->len == 0)
        return AD_OK;        /* no data lines: nothing to dispatch */
    b->ptr[--b->len] = '\0'; /* the LF after the last data line */
    cs->events++;
    snprintf(cs->where, sizeof cs->where, "event %zu", cs->events);
    const char *p = b->ptr;
    size_t n = b->len;
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
        n--;
    }
    ad_err rc = AD_OK;
    if (n == 0)
        ; /* a blank data line: keep-alive */
    else if (n >= 6 && memcmp(p, "[DONE]", 6) == 0)
        cs->turn.done = true;
    else
        rc = fold_json(cs, p, n, false);
    ad_buf_reset(b);
    return rc;
}

static ad_err add_data(ad_cs *cs, const char *p, size_t n)
{
    if (ad_buf_add(&cs->data, p, n))
        return fail(cs, AD_ETOOBIG, "event %zu: SSE event larger than max_event (%zu bytes)",
                    cs->events + 1, cs->lim.max_event);
    return AD_OK;
}

static bool is_data_field(const ad_cs *cs)
{
    const char *f = cs->field;
    size_t n = cs->field_len;
    if (cs->first_line && n >= 3 && memcmp(f, "\xEF\xBB\xBF", 3) == 0) {
        f += 3;
        n -= 3;
    }
    return n == 4 && memcmp(f, "data", 4) == 0;
}

static ad_err end_line(ad_cs *cs)
{
    ad_err rc = AD_OK;
    switch (cs->ls) {
    case L_START:
        rc = dispatch(cs);
        break;
    case L_FIELD:
        if (is_data_field(cs))
            rc = add_data(cs, "\n", 1); /* "data" alone: an empty data line */
        break;
    case L_VALUE:
    case L_DATA:
        rc = add_data(cs, "\n", 1);
        break;
    case L_IGNORE:
        break;
    }
    cs->ls = L_START;
    cs->first_line = false;
    return rc;
}

static size_t scan_eol(const char *p, size_t i, size_t n)
{
    while (i < n && p[i] != '\n' && p[i] != '\r')
        i++;
    return i;
}

ad_err ad_cs_feed(ad_cs *cs, const char *data, size_t len)
{
    if (cs->rc)
        return cs->rc;
    if (cs->finished)
        return fail(cs, AD_ESTATE, "ad_cs_feed after ad_cs_finish");
    if (cs->turn.done || len == 0)
        return AD_OK; /* after [DONE] nothing counts */
    cs->fed = true;
    if (cs->mode == M_SNIFF) {
        /* the first non-blank byte of the body decides; blanks before it are
         * harmless to the SSE machine, which sees them either way */
        size_t k = 0;
        while (k < len && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r' || data[k] == '\n'))
            k++;
        if (k < len && data[k] == '{') {
            cs->mode = M_BODY;
            data += k;
            len -= k;
        } else if (k < len) {
            cs->mode = M_SSE;
        }
    }
    if (cs->mode == M_BODY) {
        if (ad_buf_add(&cs->body, data, len))
            return fail(cs, AD_ETOOBIG, "response body larger than max_event (%zu bytes)",
                        cs->lim.max_event);
        return AD_OK;
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        if (cs->skip_lf) {
            cs->skip_lf = false;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            cs->skip_lf = c == '\r';
            i++;
            ad_err rc = end_line(cs);
            if (rc)
                return rc;
            if (cs->turn.done)
                return AD_OK;
            continue;
        }
        switch (cs->ls) {
        case L_START:
            if (c == ':') {
                cs->ls = L_IGNORE; /* a comment */
                i++;
                break;
            }
            cs->ls = L_FIELD;
            cs->field_len = 0;
            break; /* c is handled as L_FIELD on the next turn */
        case L_FIELD:
            if (c == ':') {
                cs->ls = is_data_field(cs) ? L_VALUE : L_IGNORE;
                i++;
            } else if (cs->field_len == sizeof cs->field) {
                cs->ls = L_IGNORE; /* too long to be "data" */
            } else {
                cs->field[cs->field_len++] = (char)c;
                i++;
            }
            break;
        case L_VALUE:
            cs->ls = L_DATA;
            if (c == ' ')
                i++; /* one space after the colon is not part of the value */
            break;
        case L_DATA: {
            size_t j = scan_eol(data, i, len);
            ad_err rc = add_data(cs, data + i, j - i);
            if (rc)
                return rc;
            i = j;
            break;
        }
        case L_IGNORE:
            i = scan_eol(data, i, len);
            break;
        }
    }
    return AD_OK;
}

ad_err ad_cs_feed_completion(ad_cs *cs, const char *json, size_t len)
{
    if (cs->rc)
        return cs->rc;
    if (cs->finished || cs->fed || cs->turn.done)
        return fail(cs, AD_ESTATE, "ad_cs_feed_completion on a parser that already has input");
    if (len > cs->lim.max_event)
        return fail(cs, AD_ETOOBIG, "response body larger than max_event (%zu bytes)",
                    cs->lim.max_event);
    ad_strlcpy(cs->where, "response body", sizeof cs->where);
    return fold_json(cs, json, len, true);
}

ad_err ad_cs_finish(ad_cs *cs)
{
    if (cs->rc)
        return cs->rc;
    if (cs->finished)
        return AD_OK;
    cs->finished = true;
    if (cs->mode == M_BODY) {
        ad_strlcpy(cs->where, "response body", sizeof cs->where);
        return fold_json(cs, ad_buf_str(&cs->body), cs->body.len, true);
    }
    if (cs->turn.done || cs->turn.finish_reason[0])
        return AD_OK;
    return fail(cs, AD_EINVAL, "stream ended before [DONE] and without a finish_reason (%zu %s)",
                cs->events, cs->events == 1 ? "event" : "events");
}
