/*
 * upstream.h -- calling chat-completions endpoints, and the event loop the
 * run engine lives on.
 *
 * One thread drives libcurl's multi interface for every model call in
 * flight (no thread per run). Work from other threads reaches it through
 * ad_upstream_post, which queues a function and wakes the loop
 * (an eventfd in its epoll set); the run engine keeps all run state on this thread,
 * so run state needs no locks.
 *
 * A call streams (`stream: true`, `stream_options.include_usage`) and its
 * bytes go through the chat_stream parser; the handler callbacks fire on
 * the loop thread as pieces arrive, then on_done exactly once. 429 and 5xx
 * answers (and connection failures) are retried with exponential back-off
 * plus jitter, honouring Retry-After, up to the backend's max_retries --
 * but only while nothing has been relayed. Failures map to the run's
 * last_error codes: rate_limit_exceeded (429), invalid_prompt (400 with a
 * content-filter or context-length cause), server_error (everything else).
 * Timeouts: connect, and idle (no byte for timeout_idle_ms).
 *
 * Back-pressure: ad_upstream_pause stops reading a call's response
 * (CURLPAUSE_RECV, so TCP pushes back on the upstream) and
 * ad_upstream_resume restarts it; the engine pauses when a slow streaming
 * client has too much unsent data.
 *
 * Ownership: ad_upstream_new returns a loop owned by the caller;
 * ad_upstream_free cancels every call (each still gets on_done) and joins
 * the thread. ad_upstream_call takes ownership of the request body; the
 * returned handle stays valid until on_done has returned.
 */
#ifndef AD_UPSTREAM_H
#define AD_UPSTREAM_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "run/backends.h"
#include "run/chat_stream.h"
#include "util/err.h"
#include "util/log.h"

typedef struct ad_upstream ad_upstream;
typedef struct ad_up_call ad_up_call;

typedef struct ad_up_result {
    ad_err rc;       /* AD_OK when the model answered completely */
    bool cancelled;  /* ad_upstream_cancel ended it */
    int http_status; /* last HTTP status (0 if none) */
    const char
        *error_code; /* on failure: "server_error", "rate_limit_exceeded", "invalid_prompt" */
    const char *error_message; /* on failure: human-readable, safe to show to API users */
    const ad_cs_turn *turn;    /* what was received (also on failure); valid during on_done */
    int attempts;
} ad_up_result;

typedef struct ad_up_handlers {
    ad_err (*on_text)(void *ud, const char *piece, size_t len);
    ad_err (*on_tool_call_start)(void *ud, int index, const char *id, const char *name);
    ad_err (*on_tool_call_args)(void *ud, int index, const char *piece, size_t len);
    void (*on_done)(void *ud, const ad_up_result *res);
} ad_up_handlers;

ad_err ad_upstream_new(const ad_logger *lg, ad_upstream **out);
void ad_upstream_free(ad_upstream *u);

/* Loop thread only. Starts a chat-completions call for model with body (a
 * chat-completions request without model/stream/stream_options: they are
 * set here). Never NULL: a call that cannot start reports it via on_done
 * from the loop. */
ad_up_call *ad_upstream_call(ad_upstream *u, const ad_model *model, json_t *body,
                             const ad_up_handlers *h, void *ud);
/* Loop thread only. Ends the call soon; on_done(cancelled) follows. */
void ad_upstream_cancel(ad_upstream *u, ad_up_call *c);
void ad_upstream_pause(ad_upstream *u, ad_up_call *c);
void ad_upstream_resume(ad_upstream *u, ad_up_call *c);

/* Any thread. Runs fn(ud) on the loop thread soon, in posting order. */
void ad_upstream_post(ad_upstream *u, void (*fn)(void *ud), void *ud);
/* Any thread. Runs fn(ud) on the loop thread after delay_ms (timers for
 * run expiry, retries). */
void ad_upstream_post_after(ad_upstream *u, long delay_ms, void (*fn)(void *ud), void *ud);
/* Loop thread only: true if called from the loop thread. */
bool ad_upstream_on_loop(const ad_upstream *u);

/* Blocking GET {base_url}/models of an openai backend, for GET /v1/models in
 * pass-through mode; out gets the raw JSON body. Any thread but the loop's
 * (see api/models.c: a background refresher). abort_flag (may be NULL) ends
 * the transfer early when it becomes true. */
ad_err ad_upstream_list_models(const ad_backend *be, ad_buf *out, const atomic_bool *abort_flag);

#endif
