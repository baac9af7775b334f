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
 * ad_engine_stop ends every stream and model call (runs still in flight are
 * failed at the next start-up, see ad_engine_recover) and ad_engine_free
 * releases it. ad_engine_run takes a reference to the stream it is given.
 */
#ifndef AD_ENGINE_H
#define AD_ENGINE_H

#include "core/server.h"
#include "http/sse.h"
#include "util/err.h"

typedef struct ad_engine ad_engine;

ad_err ad_engine_new(ad_server *srv, ad_engine **out);
/* Fails runs a previous process left queued/in_progress/cancelling, and
 * re-arms the expiry of runs waiting in requires_action. Call before
 * serving. */
void ad_engine_recover(ad_engine *e);
void ad_engine_stop(ad_engine *e);
void ad_engine_free(ad_engine *e);

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
/* Any thread. The run was stored as cancelling: stop its model call and
 * finish it as cancelled. */
void ad_engine_cancel(ad_engine *e, const char *project, const char *thread_id, const char *run_id);

#endif
