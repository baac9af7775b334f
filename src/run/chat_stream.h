/*
 * chat_stream.h -- parsing what an OpenAI-compatible chat-completions
 * endpoint streams back, into one accumulated assistant turn.
 *
 * The upstream answers `stream: true` with Server-Sent Events whose data
 * lines are chat.completion.chunk objects, ending with `data: [DONE]`. Bytes
 * arrive from libcurl in arbitrary pieces; ad_cs_feed splits them into SSE
 * events (any line ending, comments, multi-line data), parses each chunk
 * and folds it into an ad_cs_turn: the text so far, tool calls merged by
 * their `index` (id, name once; arguments concatenated -- or arriving whole,
 * as vLLM and Ollama send them), finish_reason, usage (from the final
 * usage-only chunk of stream_options.include_usage), refusals and content
 * filter results. Azure's first chunk with empty `choices` and
 * prompt_filter_results is accepted. A non-streaming response body (one
 * chat.completion object) can be folded with ad_cs_feed_completion.
 *
 * The caller learns about progress through callbacks, called in stream
 * order from inside ad_cs_feed, so it can relay deltas token by token:
 * on_text for each text piece, on_tool_call_start when a tool call index
 * first appears (with its id and name), on_tool_call_args for argument
 * pieces. The parser is pure (no I/O), bounded (ad_cs_new takes the limits)
 * and a libFuzzer target.
 *
 * Ownership: ad_cs_new returns a parser owned by the caller (ad_cs_free).
 * The turn it fills lives inside the parser and stays valid until
 * ad_cs_free; strings passed to callbacks are valid during the call only.
 *
 * Details the caller relies on:
 *  - Tool call slots. calls[i] is the slot for upstream index i on a
 *    well-formed stream. Deviating servers are repaired (rules and reasons
 *    in chat_stream.c): the index is primary and ids are only hints, so
 *    pieces of one call carrying different ids stay one call and one id at
 *    two indexes gives two calls; a piece at an index already used opens a
 *    new slot only when it brings a name after the slot's arguments form a
 *    complete JSON value (whole calls all sent as index 0); an element
 *    without `index` continues the last such call by the same test; an
 *    earlier call's id sent again at its index goes back to it. ncalls is
 *    the highest slot + 1, so a gap (index 0 and 2 only) leaves an unused
 *    slot with an empty name: skip slots whose name is empty. id is "" when
 *    the upstream sent none (the caller generates one); callbacks receive ""
 *    then, never NULL (an id arriving only after the name is stored in
 *    calls[i].id, not re-announced). A call's id is the first one sent for
 *    it; two calls may have the same id (the caller must not assume ids
 *    are unique).
 *  - on_tool_call_start fires once per slot, when its name is first known,
 *    and always before that slot's on_tool_call_args; argument bytes that
 *    arrived before the name are delivered as one piece right after it.
 *  - text, refusal and args may contain NUL bytes (model output can hold
 *    U+0000): use .len, not strlen. All strings are valid UTF-8.
 *  - A body whose first non-blank byte is '{' is not SSE (the upstream
 *    ignored stream:true, or sent a JSON error body): ad_cs_feed buffers it
 *    (up to max_event) and ad_cs_finish folds it as ad_cs_feed_completion
 *    does, callbacks included.
 *  - Everything after `data: [DONE]` is ignored; an event still open at
 *    ad_cs_finish (no blank line after it) is dropped without callbacks.
 */
#ifndef AD_CHAT_STREAM_H
#define AD_CHAT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define AD_CS_MAX_TOOL_CALLS 128

typedef struct ad_cs_tool_call {
    ad_buf id; /* as sent by the upstream; may be empty (some servers omit it) */
    ad_buf name;
    ad_buf args;   /* JSON text of the arguments, concatenated */
    char type[16]; /* "function" */
} ad_cs_tool_call;

typedef struct ad_cs_turn {
    ad_buf text;    /* assistant content so far */
    ad_buf refusal; /* refusal text, if the model refused */
    ad_cs_tool_call calls[AD_CS_MAX_TOOL_CALLS];
    int ncalls;             /* highest slot + 1 (= highest index + 1 on a well-formed stream) */
    char finish_reason[32]; /* "" until sent: stop, length, tool_calls, content_filter, ... */
    bool have_usage;
    int64_t prompt_tokens, completion_tokens, total_tokens;
    bool content_filtered; /* a content-filter result flagged the output */
    bool done;             /* [DONE] seen (or the completion object folded) */
    char model[128];       /* model name reported by the upstream */
    char id[128];          /* upstream completion id */
} ad_cs_turn;

typedef struct ad_cs_callbacks {
    ad_err (*on_text)(void *ud, const char *piece, size_t len);
    ad_err (*on_tool_call_start)(void *ud, int index, const char *id, const char *name);
    ad_err (*on_tool_call_args)(void *ud, int index, const char *piece, size_t len);
} ad_cs_callbacks;

/* A zero member means its default: 1 MiB, 8 MiB, 1 MiB. */
typedef struct ad_cs_limits {
    size_t max_event; /* largest single SSE event data (bytes), default 1 MiB */
    size_t max_text;  /* largest accumulated text (and refusal), default 8 MiB */
    size_t max_args;  /* largest arguments of one tool call, default 1 MiB */
} ad_cs_limits;

typedef struct ad_cs ad_cs;

/* lim and cb may be NULL; cb may have NULL members. */
ad_cs *ad_cs_new(const ad_cs_limits *lim, const ad_cs_callbacks *cb, void *ud);
/* Feeds the next bytes of the SSE body. AD_EINVAL on malformed chunks (the
 * message is in ad_cs_error), AD_ETOOBIG on a limit, or a callback's error.
 * The first error sticks. An upstream error object sent inside the stream
 * (`data: {"error":{...}}`) is AD_ESTATE with its message in ad_cs_error. */
ad_err ad_cs_feed(ad_cs *cs, const char *data, size_t len);
/* Folds a complete non-streaming chat.completion JSON body. Fires the same
 * callbacks, once each, and sets done. Only on a fresh parser (AD_ESTATE
 * after ad_cs_feed); an error body ({"error":{...}}) is AD_ESTATE as above. */
ad_err ad_cs_feed_completion(ad_cs *cs, const char *json, size_t len);
/* End of input: AD_EINVAL if the stream stopped before [DONE] and before a
 * finish_reason (a broken stream). Calling it twice is harmless; ad_cs_feed
 * after it is AD_ESTATE. */
ad_err ad_cs_finish(ad_cs *cs);
const ad_cs_turn *ad_cs_result(const ad_cs *cs);
/* Message of the sticky error; "" when there is none. Never NULL, bounded,
 * valid UTF-8. For AD_ESTATE it is the upstream's error.message. */
const char *ad_cs_error(const ad_cs *cs);
/* For an upstream error object: its `code` (a string, or an integer in
 * decimal, e.g. "rate_limit_exceeded", "429"), else its `type`; "" when the
 * error did not come from the upstream or carried neither. */
const char *ad_cs_error_code(const ad_cs *cs);
void ad_cs_free(ad_cs *cs);

/* Testing and benchmarking aids. Common chunks are folded by a hand-written
 * fast path instead of jansson; the outcome (callbacks, turn, errors) is
 * identical either way. ad_cs_set_fast(cs, false) sends every chunk through
 * the general parser (default: on); ad_cs_fast_count says how many chunks
 * the fast path folded. */
void ad_cs_set_fast(ad_cs *cs, bool on);
size_t ad_cs_fast_count(const ad_cs *cs);

#endif
