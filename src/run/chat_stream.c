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
 * reasoning_content, prompt_filter_results, ...) pass through. Because
 * parsing every token's chunk into a jansson tree is most of the relay's
 * CPU, the common chunk shapes (content deltas, the role chunk) first meet a
 * hand-written scanner that folds them directly and gives up -- leaving the
 * chunk to jansson -- on anything it cannot decide exactly (see "fast path"
 * below); the outcome is identical either way.
 *
 * Tool calls are merged into slots. The upstream `index` names the slot in
 * the normal case, but real servers deviate: some omit `index`; some send
 * every parallel call with index 0 (Ollama, some proxies), with or without
 * ids; some re-send the id; and some send a different id on every piece of
 * one call (vLLM with gpt-oss, vllm-project/vllm#23522; Poolside) or one id
 * for several calls. So an explicit index is primary and an id is only a
 * hint. Resolution of one tool_calls element:
 *  - An id that an *earlier* call at the same index (or one sent without
 *    index) already has routes back to that call, and the index follows it
 *    (a re-sent header). An id seen at another index is ignored: it never
 *    pulls a piece away from its own index.
 *  - An unmapped index i opens slot i (or the next free slot if an
 *    index-less call took it). A piece at a mapped index continues that
 *    slot unless it clearly starts a new call: it carries a name, the slot
 *    has one, and the slot's arguments so far are a complete JSON value (or
 *    still empty and the names differ); then the next slot opens and the
 *    index maps to it. The slot's own header sent again (same id and name,
 *    no arguments) is not a new call. A new id alone never opens a slot, so
 *    unstable ids cannot split a call, and a name repeated while the
 *    arguments are unfinished cannot either.
 *  - An element without index continues the last index-less call unless it
 *    starts a new call by the same test, or brings an id never seen while
 *    the slot has an id and complete arguments; then the next slot opens.
 * Why the argument test: whole calls (vLLM, Ollama) arrive with complete
 * arguments, so a following name is a new call; a piece of an unfinished
 * call (OpenAI streams arguments in pieces) cannot close a previous value.
 * Its cost stays linear: scan_args follows strings and nesting as bytes are
 * appended and jansson validates a closed value once per slot. What it
 * cannot tell apart: two calls to the same function without arguments at
 * one index merge into one whatever their ids (a different id is what an
 * unstable id looks like): a call is lost, but nothing is invalid; and a
 * name, even a different one, arriving while the arguments are unfinished
 * is taken as part of that call (ARGS_FIRST in the tests). Well-formed
 * OpenAI streams get slot == index. on_tool_call_start fires when a slot's
 * name is first known; argument bytes that arrive before the name are held
 * and delivered in one piece right after the start, so a consumer always
 * sees start before args.
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
#include "util/json.h"
#include "util/str.h"

#define DEF_MAX_EVENT ((size_t)1 << 20)
#define DEF_MAX_TEXT  ((size_t)8 << 20)
#define DEF_MAX_ARGS  ((size_t)1 << 20)
#define MAX_CALL_ID   1024
#define MAX_CALL_NAME 1024
#define MAX_BARE_ARGS 64 /* longest top-level scalar arguments checked for completeness */

enum mode { M_SNIFF, M_SSE, M_BODY };
/* Where a slot's arguments stand as JSON text (see scan_args): nothing but
 * blanks yet; inside an object, array or string; inside a bare top-level
 * scalar; a value closed (then only blanks), not yet or confirmed valid by
 * jansson; not one valid JSON value, whatever follows. */
enum jstate { J_EMPTY, J_OPEN, J_TOKEN, J_CLOSED, J_COMPLETE, J_BAD };

typedef struct jscan {
    enum jstate st;
    bool in_str, esc; /* J_OPEN: inside a string, after its backslash */
    size_t depth;     /* J_OPEN: open objects and arrays */
} jscan;
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
    int opened_at[AD_CS_MAX_TOOL_CALLS]; /* upstream index that opened the slot, or -1 */
    jscan scan[AD_CS_MAX_TOOL_CALLS];    /* the slot's arguments so far */
    bool started[AD_CS_MAX_TOOL_CALLS];  /* on_tool_call_start fired */
    char err[512];
    char err_code[64];
    bool fast;        /* try the fast path for chunks (ad_cs_set_fast) */
    size_t fast_hits; /* chunks it folded */
    ad_buf scratch;   /* fast path: decoded strings of the current chunk */
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
    ad_buf_init(&cs->scratch, ev < (size_t)-1 ? ev + 1 : ev);
    cs->fast = true;
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
    ad_buf_free(&cs->scratch);
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

void ad_cs_set_fast(ad_cs *cs, bool on)
{
    cs->fast = on;
}

size_t ad_cs_fast_count(const ad_cs *cs)
{
    return cs->fast_hits;
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
        dump = json_dumps(e, AD_JSON_COMPACT | JSON_ENCODE_ANY);
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

/* The newest slot whose id is id: among all slots when idx < 0, else among
 * those opened at upstream index idx or without an index (an id never pulls
 * a piece away from its own index). -1 when none. */
static int find_id(const ad_cs *cs, const char *id, int idx)
{
    for (int s = cs->turn.ncalls - 1; s >= 0; s--)
        if (cs->used[s] && (idx < 0 || cs->opened_at[s] == idx || cs->opened_at[s] < 0) &&
            strcmp(ad_buf_str(&cs->turn.calls[s].id), id) == 0)
            return s;
    return -1;
}

static bool json_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Follows the structure of argument text as it is appended: strings (and
 * their escapes) and nesting, so that it knows, in time linear in the bytes,
 * when a top-level value has closed. Validity is left to jansson, asked at
 * most once per slot (args_complete). */
static void scan_args(jscan *j, const char *p, size_t n)
{
    for (size_t i = 0; i < n && j->st != J_BAD; i++) {
        char c = p[i];
        switch (j->st) {
        case J_EMPTY:
            if (json_blank(c))
                break;
            if (c == '{' || c == '[') {
                j->depth = 1;
                j->st = J_OPEN;
            } else if (c == '"') {
                j->in_str = true; /* a top-level string: depth 0 */
                j->st = J_OPEN;
            } else {
                j->st = memchr("}],:", c, 4) ? J_BAD : J_TOKEN;
            }
            break;
        case J_OPEN:
            if (j->in_str) {
                if (j->esc)
                    j->esc = false;
                else if (c == '\\')
                    j->esc = true;
                else if (c == '"') {
                    j->in_str = false;
                    if (j->depth == 0)
                        j->st = J_CLOSED;
                }
            } else if (c == '"') {
                j->in_str = true;
            } else if (c == '{' || c == '[') {
                j->depth++;
            } else if ((c == '}' || c == ']') && --j->depth == 0) {
                j->st = J_CLOSED;
            }
            break;
        case J_TOKEN:
            if (json_blank(c))
                j->st = J_CLOSED;
            else if (memchr("{}[]\",:", c, 7))
                j->st = J_BAD;
            break;
        case J_CLOSED:
        case J_COMPLETE:
            if (!json_blank(c))
                j->st = J_BAD; /* something after the value */
            break;
        case J_BAD:
            break;
        }
    }
}

static bool json_text_valid(const ad_buf *b)
{
    json_error_t je;
    json_t *v = json_loadb(b->ptr ? b->ptr : "", b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    json_decref(v);
    return v != NULL;
}

/* Are slot s's arguments so far one complete, valid JSON value? */
static bool args_complete(ad_cs *cs, int s)
{
    jscan *j = &cs->scan[s];
    const ad_buf *a = &cs->turn.calls[s].args;
    if (j->st == J_TOKEN) /* 1 may become 12: ask again each time (short) */
        return a->len <= MAX_BARE_ARGS && json_text_valid(a);
    if (j->st == J_CLOSED)
        j->st = json_text_valid(a) ? J_COMPLETE : J_BAD;
    return j->st == J_COMPLETE;
}

/* Does a piece bringing id, name (either may be "") and no_args clearly
 * begin a call other than slot s? Only a name can say so, and only after
 * slot s has one and its arguments are finished: complete JSON, or still
 * empty when the name differs. The slot's own header sent again (same id,
 * same name, no arguments) is not a new call. */
static bool starts_call(ad_cs *cs, int s, const char *id, const char *name, bool no_args)
{
    const ad_cs_tool_call *c = &cs->turn.calls[s];
    if (!name[0] || c->name.len == 0)
        return false;
    bool same_name = strcmp(ad_buf_str(&c->name), name) == 0;
    if (same_name && no_args && id[0] && strcmp(ad_buf_str(&c->id), id) == 0)
        return false;
    if (cs->scan[s].st == J_EMPTY)
        return !same_name;
    return args_complete(cs, s);
}

/* Picks the slot for one tool_calls element (see the design note). idx is the
 * upstream index or -1 when absent; id and name are "" when absent; no_args:
 * the element has no arguments or "". */
static int resolve_slot(ad_cs *cs, int idx, const char *id, const char *name, bool no_args)
{
    int cur = idx >= 0 ? cs->slot_of[idx] : cs->implicit_slot;
    int s = id[0] ? find_id(cs, id, idx) : -1;
    bool earlier = s >= 0 && s != cur; /* an earlier call's id again: back to it */
    if (!earlier && idx >= 0) {
        if (cur < 0)
            s = cs->used[idx] ? new_slot(cs) : idx;
        else
            s = starts_call(cs, cur, id, name, no_args) ? new_slot(cs) : cur;
    } else if (!earlier) {
        bool new_id = id[0] && s < 0 && cur >= 0 && cs->turn.calls[cur].id.len;
        if (cur < 0 || starts_call(cs, cur, id, name, no_args) ||
            (new_id && args_complete(cs, cur)))
            s = new_slot(cs);
        else
            s = cur;
    }
    if (s >= 0) {
        if (idx >= 0)
            cs->slot_of[idx] = s;
        else
            cs->implicit_slot = s;
    }
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
        if (b->len > *from)
            scan_args(&cs->scan[s], b->ptr + *from, b->len - *from);
        return AD_OK;
    }
    if (!json_is_object(args) && !json_is_array(args))
        return fail(cs, AD_EINVAL, "%s: tool call \"arguments\" is neither a string nor an object",
                    cs->where);
    dump_ctx d = {b, false};
    if (json_dump_callback(args, dump_cb, &d, AD_JSON_COMPACT) != 0) {
        b->len = *from;
        if (b->ptr)
            b->ptr[b->len] = '\0';
        if (d.too_big)
            goto too_big;
        return fail(cs, AD_EINVAL, "%s: cannot serialise tool call arguments", cs->where);
    }
    if (b->len > *from)
        scan_args(&cs->scan[s], b->ptr + *from, b->len - *from);
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
    bool no_args = !args || (json_is_string(args) && json_string_length(args) == 0);
    int s = resolve_slot(cs, idx, id, name, no_args);
    if (s < 0)
        return fail(cs, AD_ETOOBIG, "%s: more than %d tool calls", cs->where, AD_CS_MAX_TOOL_CALLS);
    ad_cs_tool_call *call = &cs->turn.calls[s];
    if (!cs->used[s]) {
        cs->used[s] = true;
        cs->opened_at[s] = idx;
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

/* ---- fast path for the common chunk shapes ----
 *
 * Nearly every event of a stream is a content delta (or the role chunk
 * before it) whose only effects are: turn.id, turn.model, one text piece and
 * possibly the content-filter flag. fast_scan recognises such a chunk with a
 * hand-written validating scanner and fast_apply performs those effects, so
 * jansson's tree (allocation per value, hashing per key) is skipped.
 *
 * The fast path is only an optimisation: fast_scan has no side effects and
 * answers false ("not sure") for anything outside what it fully understands,
 * and the chunk then goes through fold_json as before. It accepts only input
 * that jansson also accepts (strict JSON grammar, UTF-8 checked, escapes
 * checked incl. surrogate pairs, no control characters in strings, numbers
 * short enough that jansson cannot report an overflow, bounded nesting) and
 * whose meaning to fold_object it can decide exactly: any duplicate of a key
 * fold_object reads (jansson keeps the last one), any key written with an
 * escape, a non-null error/usage/refusal/tool_calls/finish_reason, an
 * "object" of "error", content that is not a string, more than one choice,
 * are all "not sure". Unknown members are validated and skipped. Effects are
 * applied in fold_object's order (id, model, text, content filter), so even
 * a failing on_text or a full max_text leaves the same state.
 * ad_cs_set_fast(cs, false) turns the path off for differential tests. */

#define FAST_MAX_DEPTH 32
#define FAST_MAX_KEYS  16

typedef struct fspan {
    const char *p; /* raw bytes between the quotes */
    size_t n;
    bool esc; /* contains a backslash escape */
} fspan;

typedef struct fchunk {
    bool has_id, has_model, has_content, fold, filtered;
    fspan id, model, content;
} fchunk;

typedef struct fcur {
    const char *p, *e;
} fcur;

static void f_ws(fcur *c)
{
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Consumes ch (after blanks); false when the next byte is something else. */
static bool f_eat(fcur *c, char ch)
{
    f_ws(c);
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool f_peek(fcur *c, char ch)
{
    f_ws(c);
    return c->p < c->e && *c->p == ch;
}

static int hexval(char h)
{
    if (h >= '0' && h <= '9')
        return h - '0';
    if (h >= 'a' && h <= 'f')
        return h - 'a' + 10;
    if (h >= 'A' && h <= 'F')
        return h - 'A' + 10;
    return -1;
}

/* Four hex digits at p (p + 4 <= e checked by the caller). */
static long hex4(const char *p)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p[k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* String bytes: 1 plain ASCII, 2 a byte >= 0x80 (checked as UTF-8 at the
 * end), 0 for '"', '\\' and control bytes. */
static const unsigned char STR_PLAIN[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* A string at c->p (which is at '"'): validated as jansson does; the raw
 * span goes to out. */
static bool f_str(fcur *c, fspan *out)
{
    if (c->p >= c->e || *c->p != '"')
        return false;
    const char *s = ++c->p, *e = c->e;
    bool esc = false, high = false;
    const char *p = s;
    for (;;) {
        while (p < e && STR_PLAIN[(unsigned char)*p] == 1)
            p++;
        if (p < e && (unsigned char)*p >= 0x80) {
            high = true;
            p++;
            continue;
        }
        if (p >= e || (unsigned char)*p < 0x20)
            return false;
        if (*p == '"')
            break;
        esc = true; /* a backslash */
        if (e - p < 2)
            return false;
        char x = p[1];
        if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' || x == 'r' ||
            x == 't') {
            p += 2;
            continue;
        }
        if (x != 'u' || e - p < 6)
            return false;
        long u = hex4(p + 2);
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return false;
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (e - p < 6 || p[0] != '\\' || p[1] != 'u')
                return false;
            long lo = hex4(p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return false;
            p += 6;
        }
    }
    if (high && !ad_utf8_valid(s, (size_t)(p - s)))
        return false;
    out->p = s;
    out->n = (size_t)(p - s);
    out->esc = esc;
    c->p = p + 1;
    return true;
}

/* An object key (no escapes: jansson compares decoded keys and refuses NUL
 * in them), then the ':'. */
static bool f_key(fcur *c, fspan *k)
{
    f_ws(c);
    return f_str(c, k) && !k->esc && f_eat(c, ':');
}

static bool key_is(const fspan *k, const char *name)
{
    size_t n = strlen(name);
    return k->n == n && memcmp(k->p, name, n) == 0;
}

/* Marks bit in *seen; false on a duplicate. */
static bool once(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

static bool f_lit(fcur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* A number in strict JSON grammar, short enough that jansson neither
 * overflows an integer nor a double. is_int and ival describe an integer. */
static bool f_num(fcur *c, bool *is_int, int64_t *ival)
{
    const char *p = c->p, *e = c->e;
    bool neg = false;
    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    const char *d = p;
    if (p < e && *p == '0') {
        p++;
    } else {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    size_t idigits = (size_t)(p - d), fdigits = 0, edigits = 0;
    if (idigits == 0)
        return false;
    if (p < e && *p >= '0' && *p <= '9')
        return false; /* a leading zero */
    bool real = false;
    if (p < e && *p == '.') {
        real = true;
        const char *f = ++p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        fdigits = (size_t)(p - f);
        if (fdigits == 0)
            return false;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        const char *x = p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        edigits = (size_t)(p - x);
        if (edigits == 0 || edigits > 2)
            return false;
    }
    if (real ? idigits + fdigits > 40 : idigits > 18)
        return false;
    *is_int = !real;
    *ival = 0;
    if (!real) {
        for (const char *q = d; q < d + idigits; q++)
            *ival = *ival * 10 + (*q - '0');
        if (neg)
            *ival = -*ival;
    }
    c->p = p;
    return true;
}

/* Any value, validated and skipped. */
static bool f_skip(fcur *c, int depth)
{
    f_ws(c);
    if (c->p >= c->e || depth > FAST_MAX_DEPTH)
        return false;
    fspan s;
    bool is_int;
    int64_t iv;
    switch (*c->p) {
    case '"':
        return f_str(c, &s);
    case 't':
        return f_lit(c, "true");
    case 'f':
        return f_lit(c, "false");
    case 'n':
        return f_lit(c, "null");
    case '{':
        c->p++;
        if (f_eat(c, '}'))
            return true;
        do {
            if (!f_key(c, &s) || !f_skip(c, depth + 1))
                return false;
        } while (f_eat(c, ','));
        return f_eat(c, '}');
    case '[':
        c->p++;
        if (f_eat(c, ']'))
            return true;
        do {
            if (!f_skip(c, depth + 1))
                return false;
        } while (f_eat(c, ','));
        return f_eat(c, ']');
    default:
        return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) && f_num(c, &is_int, &iv);
    }
}

/* "null" (after blanks); false otherwise, without consuming. */
static bool f_null(fcur *c)
{
    f_ws(c);
    return f_lit(c, "null");
}

/* One category of content_filter_results: *hit when its "filtered" is true. */
static bool f_filter_cat(fcur *c, bool *hit)
{
    if (!f_peek(c, '{'))
        return f_skip(c, 2); /* not an object: any_filtered ignores it */
    c->p++;
    if (f_eat(c, '}'))
        return true;
    unsigned seen = 0;
    do {
        fspan k;
        if (!f_key(c, &k))
            return false;
        if (key_is(&k, "filtered")) {
            if (!once(&seen, 1))
                return false;
            f_ws(c);
            if (f_lit(c, "true"))
                *hit = true;
            else if (!f_skip(c, 3))
                return false;
        } else if (!f_skip(c, 3)) {
            return false;
        }
    } while (f_eat(c, ','));
    return f_eat(c, '}');
}

static bool f_filters(fcur *c, bool *filtered)
{
    if (!f_peek(c, '{'))
        return f_skip(c, 1); /* not an object: ignored */
    c->p++;
    if (f_eat(c, '}'))
        return true;
    fspan keys[FAST_MAX_KEYS] = {{NULL, 0, false}};
    size_t nkeys = 0;
    do {
        fspan k;
        if (!f_key(c, &k) || nkeys == FAST_MAX_KEYS)
            return false;
        for (size_t i = 0; i < nkeys; i++)
            if (keys[i].n == k.n && memcmp(keys[i].p, k.p, k.n) == 0)
                return false; /* jansson would keep only the last one */
        keys[nkeys++] = k;
        if (!f_filter_cat(c, filtered))
            return false;
    } while (f_eat(c, ','));
    return f_eat(c, '}');
}

static bool f_delta(fcur *c, fchunk *fc)
{
    if (f_null(c))
        return true;
    if (!f_eat(c, '{'))
        return false;
    if (f_eat(c, '}'))
        return true;
    unsigned seen = 0;
    do {
        fspan k;
        if (!f_key(c, &k))
            return false;
        if (key_is(&k, "content")) {
            if (!once(&seen, 1))
                return false;
            if (f_null(c))
                continue;
            if (!f_str(c, &fc->content))
                return false;
            fc->has_content = true;
        } else if (key_is(&k, "refusal")) {
            if (!once(&seen, 2) || !f_null(c))
                return false;
        } else if (key_is(&k, "tool_calls")) {
            if (!once(&seen, 4) || !f_null(c))
                return false;
        } else if (!f_skip(c, 2)) {
            return false;
        }
    } while (f_eat(c, ','));
    return f_eat(c, '}');
}

static bool f_choice(fcur *c, fchunk *fc)
{
    if (!f_eat(c, '{'))
        return false;
    unsigned seen = 0;
    int64_t index = 0;
    bool filtered = false;
    if (!f_eat(c, '}')) {
        do {
            fspan k;
            if (!f_key(c, &k))
                return false;
            if (key_is(&k, "index")) {
                bool is_int;
                if (!once(&seen, 1))
                    return false;
                if (f_null(c))
                    continue;
                if (!f_num(c, &is_int, &index) || !is_int)
                    return false;
            } else if (key_is(&k, "delta")) {
                if (!once(&seen, 2) || !f_delta(c, fc))
                    return false;
            } else if (key_is(&k, "finish_reason")) {
                if (!once(&seen, 4) || !f_null(c))
                    return false;
            } else if (key_is(&k, "content_filter_results")) {
                if (!once(&seen, 8) || !f_filters(c, &filtered))
                    return false;
            } else if (!f_skip(c, 1)) {
                return false;
            }
        } while (f_eat(c, ','));
        if (!f_eat(c, '}'))
            return false;
    }
    fc->fold = index == 0; /* n > 1: only the first choice is ours */
    fc->filtered = filtered && fc->fold;
    fc->has_content &= fc->fold;
    return true;
}

/* Recognises one chunk; false when not sure (then nothing happened). */
static bool fast_scan(const char *p, size_t n, fchunk *fc)
{
    fcur c = {p, p + n};
    memset(fc, 0, sizeof *fc);
    if (!f_eat(&c, '{'))
        return false;
    unsigned seen = 0;
    if (!f_eat(&c, '}')) {
        do {
            fspan k, v;
            if (!f_key(&c, &k))
                return false;
            f_ws(&c);
            if (key_is(&k, "error")) {
                if (!once(&seen, 1) || !f_null(&c))
                    return false;
            } else if (key_is(&k, "object")) {
                if (!once(&seen, 2))
                    return false;
                if (!f_peek(&c, '"')) {
                    if (!f_skip(&c, 1))
                        return false;
                } else if (!f_str(&c, &v) || v.esc || key_is(&v, "error")) {
                    return false;
                }
            } else if (key_is(&k, "id") || key_is(&k, "model")) {
                bool id = k.n == 2;
                if (!once(&seen, id ? 4 : 8))
                    return false;
                if (!f_peek(&c, '"')) {
                    if (!f_skip(&c, 1)) /* not a string: ignored */
                        return false;
                } else if (!f_str(&c, id ? &fc->id : &fc->model)) {
                    return false;
                } else {
                    *(id ? &fc->has_id : &fc->has_model) = true;
                }
            } else if (key_is(&k, "choices")) {
                if (!once(&seen, 16))
                    return false;
                if (f_null(&c))
                    continue;
                if (!f_eat(&c, '['))
                    return false;
                if (!f_eat(&c, ']') && (!f_choice(&c, fc) || !f_eat(&c, ']')))
                    return false; /* more than one choice: not here */
            } else if (key_is(&k, "usage")) {
                if (!once(&seen, 32) || !f_null(&c))
                    return false;
            } else if (!f_skip(&c, 1)) {
                return false;
            }
        } while (f_eat(&c, ','));
        if (!f_eat(&c, '}'))
            return false;
    }
    f_ws(&c);
    return c.p == c.e;
}

/* Decodes a validated string span into b (which has room: decoding never
 * grows a string). */
static void f_decode(const fspan *s, ad_buf *b)
{
    const char *p = s->p, *e = s->p + s->n;
    while (p < e) {
        const char *q = p;
        while (q < e && *q != '\\')
            q++;
        if (q > p)
            (void)ad_buf_add(b, p, (size_t)(q - p));
        if (q >= e)
            break;
        char x = q[1], ch;
        p = q + 2;
        switch (x) {
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4(q + 2);
            p = q + 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(p + 2) - 0xDC00);
                p += 6;
            }
            char u[4];
            (void)ad_buf_add(b, u, ad_utf8_put(cp, u));
            continue;
        }
        default:
            ch = x; /* " \ / */
        }
        (void)ad_buf_addc(b, ch);
    }
}

/* A string's bytes: raw when it has no escapes, else decoded into scratch. */
static void f_text(ad_cs *cs, const fspan *s, const char **p, size_t *n)
{
    if (!s->esc) {
        *p = s->p;
        *n = s->n;
        return;
    }
    size_t at = cs->scratch.len;
    f_decode(s, &cs->scratch);
    *p = cs->scratch.ptr + at;
    *n = cs->scratch.len - at;
}

/* set_small for a string of n bytes (valid UTF-8, maybe with NULs); every
 * chunk repeats id and model, so an unchanged value is not copied again
 * (copying valid UTF-8 shorter than cap is the identity). */
static void set_span(char *dst, size_t cap, const char *p, size_t n)
{
    if (n == 0 || p[0] == '\0')
        return; /* fold_object skips an empty string */
    if (n < cap && memcmp(dst, p, n) == 0 && dst[n] == '\0')
        return;
    copy_utf8(dst, cap, p, n);
}

static ad_err fast_apply(ad_cs *cs, const fchunk *fc)
{
    const char *p;
    size_t n;
    ad_buf_reset(&cs->scratch);
    cs->fast_hits++;
    if (fc->has_id) {
        f_text(cs, &fc->id, &p, &n);
        set_span(cs->turn.id, sizeof cs->turn.id, p, n);
    }
    if (fc->has_model) {
        f_text(cs, &fc->model, &p, &n);
        set_span(cs->turn.model, sizeof cs->turn.model, p, n);
    }
    if (fc->has_content) {
        f_text(cs, &fc->content, &p, &n);
        ad_err rc = add_text(cs, p, n);
        if (rc)
            return rc;
    }
    if (fc->filtered)
        cs->turn.content_filtered = true;
    return AD_OK;
}

/* One streamed chunk: the fast path when it is sure, else jansson. */
static ad_err fold_chunk(ad_cs *cs, const char *p, size_t n)
{
    fchunk fc;
    if (cs->fast && fast_scan(p, n, &fc))
        return fast_apply(cs, &fc);
    return fold_json(cs, p, n, false);
}

/* ---- SSE framing ---- */

/* cs->where = "event N" (once per event: cheaper than snprintf). */
static void set_where(ad_cs *cs)
{
    char digits[24];
    size_t k = 0;
    size_t v = cs->events;
    do {
        digits[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(cs->where, "event ", 6);
    for (size_t i = 0; i < k; i++)
        cs->where[6 + i] = digits[k - 1 - i];
    cs->where[6 + k] = '\0';
}

static ad_err dispatch(ad_cs *cs)
{
    ad_buf *b = &cs->data;
    if (b->len == 0)
        return AD_OK;        /* no data lines: nothing to dispatch */
    b->ptr[--b->len] = '\0'; /* the LF after the last data line */
    cs->events++;
    set_where(cs);
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
        rc = fold_chunk(cs, p, n);
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
    const char *lf = memchr(p + i, '\n', n - i);
    size_t j = lf ? (size_t)(lf - p) : n;
    const char *cr = memchr(p + i, '\r', j - i);
    return cr ? (size_t)(cr - p) : j;
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
