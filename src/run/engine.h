/*
 * engine.h -- the run engine: where an assistant, a thread and a model meet.
 *
 * HTTP handlers do the synchronous part of every run operation -- validate,
 * store the run as queued, accept tool outputs, mark a run cancelling -- and
 * then hand the run to the engine, which does everything that waits: build
 * the prompt, call the model through the upstream loop, turn its streamed
 * answer into messages and run steps, move the run through its statuses and
 * relay every change as Server-Sent Events to an attached stream.
 *
 * All engine state lives on the upstream loop thread (run/upstream.h), so it
 * needs no locks; the entry points below only post work to that thread.
 * Every state change is committed to the store before it is announced.
 * While a run is queued, in progress or cancelling it is "active" in the
 * store (aux column), which is how handlers find the one active run of a
 * thread.
 *
 * Ownership: ad_engine_new returns an engine owned by the caller;
 * ad_engine_stop ends every run in flight failed ("The server is shutting
 * down."; committed and announced, so each stream ends with its terminal
 * run event), stops the writer, and ad_engine_free releases it; what a
 * crash leaves active is repaired at the next start (ad_engine_recover). ad_engine_run takes a
 * reference to the stream it is given.
 */
#ifndef AD_ENGINE_H
#define AD_ENGINE_H

#include <jansson.h>

#include "core/server.h"
#include "http/sse.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/id.h"

typedef struct ad_engine ad_engine;

ad_err ad_engine_new(ad_server *srv, ad_engine **out);
/* Fails runs a previous process left queued/in_progress/cancelling, and
 * re-arms the expiry of runs waiting in requires_action. Call before
 * serving. */
void ad_engine_recover(ad_engine *e);
void ad_engine_stop(ad_engine *e);
void ad_engine_free(ad_engine *e);
/* Any thread: appends the engine's gauges and counters to a /metrics page
 * (Prometheus text): runs being worked on, model calls paused by
 * back-pressure. */
void ad_engine_metrics(ad_engine *e, ad_buf *out);

/* Any thread. A new stream for a run's events, wired to the engine's
 * back-pressure (the caller owns the returned reference). */
ad_sse *ad_engine_stream(ad_engine *e);
/* ad_engine_run flags. */
#define AD_ENGINE_STEP_CONTENT                                                                     \
    1u /* the stream's step events keep file_search result content                                 \
        * (createRun's include[] asked for it) */

/* Any thread. The run (stored as queued, already announced on sse) is
 * processed from here on; sse may be NULL (polling clients). flags: the
 * AD_ENGINE_* values above, for this stream. */
void ad_engine_run(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                   ad_sse *sse, unsigned flags);
/* The same for a run the caller has just stored: text is the JSON it stored
 * (copied) and run its parse (a reference is taken; nobody may change it
 * afterwards). The engine uses them instead of parsing the run again, as
 * long as the stored text is still exactly text. */
void ad_engine_run_stored(ad_engine *e, const char *project, const char *thread_id,
                          const char *run_id, ad_sse *sse, unsigned flags, const char *text,
                          json_t *run);
/* Any thread (createRun), before the thread's active run is looked up in
 * the store: reserves thread_id for the run run_id, so that of two
 * creations racing on one thread exactly one goes on (the other is refused
 * with OpenAI's 400 before it answers anything). A streamed creation then
 * hands the run to ad_engine_create, which releases the reservation once
 * the run is stored or refused; any other caller releases it with
 * ad_engine_release once its own transaction has ended. False, with the
 * reserving run's id in active, when another creation holds the thread. */
bool ad_engine_reserve(ad_engine *e, const char *thread_id, const char *run_id,
                       char active[AD_ID_MAX]);
/* Any thread: ends run_id's reservation of thread_id (nothing if it holds
 * none). */
void ad_engine_release(ad_engine *e, const char *thread_id, const char *run_id);
/* Any thread. Whether a reserved creation on thread_id is not stored yet
 * (its run id in active): until then it counts as the thread's active run
 * for every check a handler makes, so a client that goes on as soon as the
 * stream's headers arrive is refused as by OpenAI. Ask before the store. */
bool ad_engine_pending(ad_engine *e, const char *thread_id, char active[AD_ID_MAX]);
/* Any thread, after ad_engine_reserve. The run a handler has built
 * (text: its JSON, copied; run: its parse, never changed, only copied) is
 * stored by the engine's writer, grouped with other writes, after checking
 * again that its thread exists and has no active run. It is stored in
 * progress (started_at set): sse (a reference is taken) then hears
 * thread.run.created and .queued with the run as built, .in_progress with
 * the run as stored, and the run starts -- or, when a check fails (the
 * thread was deleted after the handler looked; a rival creation cannot get
 * past the reservation), an error event, and ends. */
void ad_engine_create(ad_engine *e, const char *project, const char *thread_id, const char *run_id,
                      ad_sse *sse, unsigned flags, const char *text, json_t *run);
/* Any thread. The run was stored as cancelling: stop its model call and
 * finish it as cancelled. */
void ad_engine_cancel(ad_engine *e, const char *project, const char *thread_id, const char *run_id);

#endif
