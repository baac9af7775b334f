/*
 * writer.h -- one thread that applies queued store writes with group commit.
 *
 * A producer that must never wait for SQLite (the run engine's loop thread)
 * hands its writes to an ad_writer as operations. The writer thread takes
 * everything queued (up to a group limit), applies the operations in
 * submission order inside one write transaction, commits once, and then
 * hands the whole group, in the same order, to the done callback -- still on
 * the writer thread, after the commit, so whatever done announces is already
 * visible to every connection and durable against kill -9. One thread and
 * one FIFO mean operations are applied and completed in submission order
 * (but see Priority): the writes of one run never overtake each other.
 *
 * Failure isolation: when an operation fails inside a group, the group is
 * rolled back and every operation of it is applied again in a transaction of
 * its own, so one failing operation never takes the others' writes with it.
 * apply may therefore run twice and must reset whatever it produces (e.g.
 * events to send) at its start.
 *
 * Priority: urgent operations (small writes a client is waiting for, such
 * as the message a stream's first token belongs to) have a FIFO of their
 * own, and a group is made of urgent operations alone whenever any wait
 * (except right after an urgent group, when ordinary ones wait: they get
 * one group, so neither FIFO starves); ordinary groups are smaller than
 * urgent ones may be, so an urgent operation waits for little work.
 * Submission order therefore holds within each FIFO, not across them: an
 * operation whose writes must follow others still queued must go into
 * their FIFO (the engine keeps all of a run's operations in flight in one).
 *
 * Bound: at most max_queued operations wait. A producer that finds the queue
 * full waits for room -- the store cannot keep up, and this is the only
 * back-pressure left; in normal operation the queue never gets near it.
 *
 * Ownership: ad_writer_new returns a writer owned by the caller;
 * ad_writer_free applies and completes everything still queued, then joins
 * the thread and returns its connection to the store. A submitted operation
 * belongs to the writer until done receives it; done owns the list.
 */
#ifndef AD_WRITER_H
#define AD_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"

typedef struct ad_writer ad_writer;
typedef struct ad_wop ad_wop;

struct ad_wop {
    ad_wop *next; /* the writer's; in done's list: the next operation of the group */
    /* Writer thread, inside an open transaction on db: make the writes. A
     * non-AD_OK return rolls back (see above). */
    ad_err (*apply)(ad_wop *op, ad_db *db);
    bool committed; /* set before done: the writes of apply are committed */
    /* Set by the producer before submitting: a small write someone waits
     * for (see Priority). */
    bool urgent;
};

/* done(ud, ops) runs on the writer thread after every group, with the
 * group's operations in submission order (linked by next). */
ad_err ad_writer_new(ad_store *store, const ad_logger *lg, size_t max_queued,
                     void (*done)(void *ud, ad_wop *ops), void *ud, ad_writer **out);
/* Any thread. Queues op (see Bound). */
void ad_writer_submit(ad_writer *w, ad_wop *op);
void ad_writer_free(ad_writer *w);

#endif
