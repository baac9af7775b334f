/*
 * writer.c -- group commit on a thread of its own (see writer.h).
 *
 * The queue is two singly linked FIFOs (urgent and ordinary operations,
 * see Priority in writer.h) under one mutex with two condition variables:
 * `more` wakes the writer when work arrives, `room` wakes a producer that
 * found the queue full. The thread detaches a group at once -- every urgent
 * operation waiting (up to GROUP_MAX), or else the first NORMAL_GROUP_MAX
 * ordinary ones; right after an urgent group, ordinary operations waiting
 * go first once, so neither FIFO starves -- so producers are never held up
 * by the transaction, applies the group with one BEGIN IMMEDIATE / COMMIT,
 * and only then calls done. While it works, new operations pile up and
 * become the next group: the busier the store, the larger the groups and
 * the fewer the commits per operation. Ordinary groups are kept small so that an urgent operation
 * arriving meanwhile waits for little.
 */
#include "store/writer.h"

#include <pthread.h>

#include "util/alloc.h"

/* Operations per transaction: large enough to amortise the commit, small
 * enough that the first operation of a group does not wait long for the
 * last. Groups of ordinary operations are smaller: an urgent one arriving
 * meanwhile waits for the group in progress (and a handler's own write
 * transaction for the store's write lock). */
#define GROUP_MAX        128
#define NORMAL_GROUP_MAX 4

/* One FIFO of operations. */
typedef struct wq {
    ad_wop *head, *tail;
} wq;

struct ad_writer {
    ad_store *store;
    ad_db *db;
    const ad_logger *lg;
    void (*done)(void *ud, ad_wop *ops);
    void *ud;
    size_t max_queued;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t more, room;
    wq urgent, normal; /* under mu */
    size_t queued;     /* under mu: both */
    bool stopping;     /* under mu */
    bool last_urgent;  /* writer thread: the group just applied was urgent */
};

/* Applies ops[0..n) in one transaction; false if anything failed (rolled
 * back). */
static bool apply_group(ad_writer *w, ad_wop *ops)
{
    if (ad_db_begin(w->db))
        return false;
    for (ad_wop *op = ops; op; op = op->next)
        if (op->apply(op, w->db)) {
            ad_db_rollback(w->db);
            return false;
        }
    if (ad_db_commit(w->db)) {
        ad_db_rollback(w->db);
        return false;
    }
    for (ad_wop *op = ops; op; op = op->next)
        op->committed = true;
    return true;
}

static void apply_alone(ad_writer *w, ad_wop *op)
{
    ad_wop *next = op->next;
    op->next = NULL;
    op->committed = apply_group(w, op);
    op->next = next;
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-writer");
    ad_writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->urgent.head && !w->normal.head && !w->stopping)
            pthread_cond_wait(&w->more, &w->mu);
        if (!w->urgent.head && !w->normal.head) { /* stopping and drained */
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* Urgent first, but an ordinary group waiting gets its turn after
         * each urgent one: a steady flow of urgent operations (runs
         * starting) cannot starve the others (runs ending). */
        bool urgent = w->urgent.head && (!w->normal.head || !w->last_urgent);
        wq *q = urgent ? &w->urgent : &w->normal;
        size_t max = urgent ? GROUP_MAX : NORMAL_GROUP_MAX;
        w->last_urgent = urgent;
        ad_wop *group = q->head, *last = group;
        size_t n = 1;
        while (last->next && n < max) {
            last = last->next;
            n++;
        }
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        w->queued -= n;
        pthread_cond_broadcast(&w->room);
        pthread_mutex_unlock(&w->mu);

        for (ad_wop *op = group; op; op = op->next)
            op->committed = false;
        if (!apply_group(w, group) && n > 1) {
            ad_log(w->lg, AD_LOG_WARN, "store writer: a group of %zu failed; applying one by one",
                   n);
            for (ad_wop *op = group; op; op = op->next)
                apply_alone(w, op);
        }
        w->done(w->ud, group);
    }
    return NULL;
}

ad_err ad_writer_new(ad_store *store, const ad_logger *lg, size_t max_queued,
                     void (*done)(void *ud, ad_wop *ops), void *ud, ad_writer **out)
{
    ad_writer *w = ad_calloc(1, sizeof *w);
    w->store = store;
    w->lg = lg;
    w->done = done;
    w->ud = ud;
    w->max_queued = max_queued ? max_queued : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->more, NULL);
    pthread_cond_init(&w->room, NULL);
    w->db = ad_store_acquire(store);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        ad_store_release(store, w->db);
        pthread_cond_destroy(&w->room);
        pthread_cond_destroy(&w->more);
        pthread_mutex_destroy(&w->mu);
        ad_free(w);
        return AD_EINTERNAL;
    }
    *out = w;
    return AD_OK;
}

void ad_writer_submit(ad_writer *w, ad_wop *op)
{
    op->next = NULL;
    pthread_mutex_lock(&w->mu);
    while (w->queued >= w->max_queued && !w->stopping)
        pthread_cond_wait(&w->room, &w->mu);
    wq *q = op->urgent ? &w->urgent : &w->normal;
    if (q->tail)
        q->tail->next = op;
    else
        q->head = op;
    q->tail = op;
    w->queued++;
    pthread_cond_signal(&w->more);
    pthread_mutex_unlock(&w->mu);
}

void ad_writer_free(ad_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->more);
    pthread_cond_broadcast(&w->room);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    ad_store_release(w->store, w->db);
    pthread_cond_destroy(&w->room);
    pthread_cond_destroy(&w->more);
    pthread_mutex_destroy(&w->mu);
    ad_free(w);
}
