/*
 * test_writer.c -- the store writer (store/writer.h): operations are applied
 * and completed in submission order within their FIFO, urgent operations
 * overtake ordinary ones that wait, a group of urgent operations never
 * contains an ordinary one, ordinary groups stay small and get a turn
 * after each urgent group, stopping drains both FIFOs, every write of a
 * completed operation is committed, and a failing operation does not take
 * the others of its group with it.
 *
 * The writer is held by a first operation whose apply waits on a gate, so
 * the rest queue up behind it in a known state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/writer.h"

#define MAXOPS 64

typedef struct tctx {
    char dir[64];
    ad_logger log;
    ad_store *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_open, holding;
    /* what the writer did, in order (under mu) */
    int applied[MAXOPS], napplied;
    int done[MAXOPS], ndone;
    int group_of[MAXOPS]; /* group number each op completed in */
    bool group_urgent[MAXOPS], group_mixed[MAXOPS];
    int group_size[MAXOPS], ngroups;
} tctx;

typedef struct top {
    ad_wop w; /* first */
    tctx *t;
    int n;
    bool hold; /* wait for the gate in apply */
    bool fail; /* apply fails */
} top;

static ad_err top_apply(ad_wop *w, ad_db *db)
{
    top *o = (top *)w;
    tctx *t = o->t;
    pthread_mutex_lock(&t->mu);
    if (o->hold) {
        t->holding = true;
        pthread_cond_broadcast(&t->cv);
        while (!t->gate_open)
            pthread_cond_wait(&t->cv, &t->mu);
    }
    t->applied[t->napplied++] = o->n;
    pthread_mutex_unlock(&t->mu);
    if (o->fail)
        return AD_EDB;
    char id[32], json[64];
    snprintf(id, sizeof id, "obj_%d", o->n);
    snprintf(json, sizeof json, "{\"n\":%d}", o->n);
    ad_obj obj = {
        .kind = "thing", .id = id, .project = "p", .parent = "", .aux = "", .created_at = 1};
    return ad_db_put(db, &obj, json, strlen(json));
}

static void on_done(void *ud, ad_wop *ops)
{
    tctx *t = ud;
    pthread_mutex_lock(&t->mu);
    int g = t->ngroups++;
    int size = 0, urgent = 0;
    for (ad_wop *w = ops; w; w = w->next) {
        top *o = (top *)w;
        size++;
        urgent += w->urgent;
        t->group_of[o->n] = g;
        t->done[t->ndone++] = w->committed ? o->n : -o->n;
    }
    t->group_size[g] = size;
    t->group_urgent[g] = urgent > 0;
    t->group_mixed[g] = urgent > 0 && urgent < size;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static int setup(void **state)
{
    tctx *t = calloc(1, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/assistd-writer-XXXXXX");
    t->log.fd = 2;
    t->log.level = AD_LOG_ERROR;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (!mkdtemp(t->dir) || ad_store_open(t->dir, 2, &t->log, &t->s)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tctx *t = *state;
    ad_store_close(t->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t->dir);
    int rc = system(cmd) == 0 ? 0 : -1;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return rc;
}

static top *op_new(tctx *t, int n, bool urgent)
{
    top *o = calloc(1, sizeof *o);
    o->t = t;
    o->n = n;
    o->w.apply = top_apply;
    o->w.urgent = urgent;
    return o;
}

/* Submits op 0 (holding the writer; urgent or not) and waits until it is
 * being applied. */
static void hold_writer_as(tctx *t, ad_writer *w, top **ops, bool urgent)
{
    ops[0] = op_new(t, 0, urgent);
    ops[0]->hold = true;
    ad_writer_submit(w, &ops[0]->w);
    pthread_mutex_lock(&t->mu);
    while (!t->holding)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static void hold_writer(tctx *t, ad_writer *w, top **ops)
{
    hold_writer_as(t, w, ops, false);
}

static void release_and_wait(tctx *t, int nops)
{
    pthread_mutex_lock(&t->mu);
    t->gate_open = true;
    pthread_cond_broadcast(&t->cv);
    while (t->ndone < nops)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static bool stored(tctx *t, int n)
{
    ad_db *db = ad_store_acquire(t->s);
    char id[32];
    snprintf(id, sizeof id, "obj_%d", n);
    ad_buf b;
    ad_buf_init(&b, 1024);
    bool ok = ad_db_get(db, "p", "thing", id, &b) == AD_OK;
    ad_buf_free(&b);
    ad_store_release(t->s, db);
    return ok;
}

/* Ordinary 1..10 and urgent 11..14 interleaved behind a held op: the urgent
 * ones are applied first, in their order, in groups of their own; the
 * ordinary ones follow in theirs, in small groups. */
static void urgent_first(void **state)
{
    tctx *t = *state;
    ad_writer *w = NULL;
    assert_int_equal(ad_writer_new(t->s, &t->log, 1000, on_done, t, &w), AD_OK);
    top *ops[MAXOPS] = {0};
    hold_writer(t, w, ops);
    int order[] = {1, 11, 2, 3, 12, 4, 5, 6, 13, 7, 8, 9, 14, 10};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        int n = order[i];
        ops[n] = op_new(t, n, n > 10);
        ad_writer_submit(w, &ops[n]->w);
    }
    release_and_wait(t, 15);
    int want[] = {0, 11, 12, 13, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_int_equal(t->napplied, 15);
    assert_int_equal(t->ndone, 15);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(t->applied[i], want[i]);
        assert_int_equal(t->done[i], want[i]); /* all committed, in order */
        assert_true(stored(t, want[i]));
    }
    for (int g = 0; g < t->ngroups; g++) {
        assert_false(t->group_mixed[g]);
        if (!t->group_urgent[g])
            assert_true(t->group_size[g] <= 4); /* NORMAL_GROUP_MAX */
    }
    assert_int_equal(t->group_of[11], t->group_of[14]); /* the urgent ones: one group */
    assert_true(t->group_of[1] != t->group_of[10]);     /* ten ordinary: split */
    ad_writer_free(w);
    for (int i = 0; i < MAXOPS; i++)
        free(ops[i]);
}

/* A failing op in a group: the group is applied again op by op, so only
 * the failing op is not committed; order is kept. */
static void failure_is_isolated(void **state)
{
    tctx *t = *state;
    ad_writer *w = NULL;
    assert_int_equal(ad_writer_new(t->s, &t->log, 1000, on_done, t, &w), AD_OK);
    top *ops[MAXOPS] = {0};
    hold_writer(t, w, ops);
    for (int n = 1; n <= 3; n++) {
        ops[n] = op_new(t, n, true);
        ops[n]->fail = n == 2;
        ad_writer_submit(w, &ops[n]->w);
    }
    release_and_wait(t, 4);
    assert_int_equal(t->done[0], 0);
    assert_int_equal(t->done[1], 1);
    assert_int_equal(t->done[2], -2);
    assert_int_equal(t->done[3], 3);
    assert_true(stored(t, 1));
    assert_false(stored(t, 2));
    assert_true(stored(t, 3));
    ad_writer_free(w);
    for (int i = 0; i < MAXOPS; i++)
        free(ops[i]);
}

/* Right after an urgent group, ordinary operations waiting get one group
 * (at most 4) before the next urgent one: a steady flow of urgent
 * operations cannot starve them. */
static void ordinary_not_starved(void **state)
{
    tctx *t = *state;
    ad_writer *w = NULL;
    assert_int_equal(ad_writer_new(t->s, &t->log, 1000, on_done, t, &w), AD_OK);
    top *ops[MAXOPS] = {0};
    hold_writer_as(t, w, ops, true); /* an urgent group is in progress */
    int order[] = {1, 11, 2, 3, 12, 4, 5, 13, 6};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        int n = order[i];
        ops[n] = op_new(t, n, n > 10);
        ad_writer_submit(w, &ops[n]->w);
    }
    release_and_wait(t, 10);
    int want[] = {0, 1, 2, 3, 4, 11, 12, 13, 5, 6};
    assert_int_equal(t->ndone, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(t->applied[i], want[i]);
        assert_int_equal(t->done[i], want[i]);
    }
    assert_int_equal(t->group_of[1], t->group_of[4]);
    assert_int_equal(t->group_of[11], t->group_of[13]);
    assert_int_equal(t->group_of[5], t->group_of[6]);
    assert_int_equal(t->ngroups, 4);
    ad_writer_free(w);
    for (int i = 0; i < MAXOPS; i++)
        free(ops[i]);
}

/* Stopping the writer with both FIFOs full: every operation is still
 * applied, committed and completed before ad_writer_free returns. */
static void stop_drains_both(void **state)
{
    tctx *t = *state;
    ad_writer *w = NULL;
    assert_int_equal(ad_writer_new(t->s, &t->log, 1000, on_done, t, &w), AD_OK);
    top *ops[MAXOPS] = {0};
    hold_writer(t, w, ops);
    for (int n = 1; n <= 20; n++) {
        ops[n] = op_new(t, n, n % 3 == 0);
        ad_writer_submit(w, &ops[n]->w);
    }
    pthread_mutex_lock(&t->mu);
    t->gate_open = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    ad_writer_free(w); /* no wait for completions first */
    assert_int_equal(t->ndone, 21);
    for (int i = 0; i < 21; i++)
        assert_true(t->done[i] >= 0); /* committed */
    for (int n = 0; n <= 20; n++)
        assert_true(stored(t, n));
    for (int i = 0; i < MAXOPS; i++)
        free(ops[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(urgent_first, setup, teardown),
        cmocka_unit_test_setup_teardown(failure_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(ordinary_not_starved, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_drains_both, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
