/* test_store.c -- the SQLite store: objects, projects, tombstones, cursors,
 * transactions, and persistence across a reopen. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <time.h>

#include "store/store.h"

typedef struct ctx {
    char dir[64];
    ad_logger log;
    ad_store *s;
    ad_db *db;
} ctx;

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/assistd-store-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    c->log.fd = 2;
    c->log.level = AD_LOG_WARN;
    if (ad_store_open(c->dir, 2, &c->log, &c->s))
        return -1;
    c->db = ad_store_acquire(c->s);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    char cmd[128];
    ad_store_release(c->s, c->db);
    ad_store_close(c->s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", c->dir);
    if (system(cmd) != 0)
        return -1;
    free(c);
    return 0;
}

static ad_err put_obj(ad_db *db, const char *project, const char *kind, const char *id,
                      const char *parent, const char *aux)
{
    char json[128];
    int n = snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
    ad_obj o = {.kind = kind,
                .id = id,
                .project = project,
                .parent = parent,
                .aux = aux,
                .created_at = 1700000000};
    return ad_db_put(db, &o, json, (size_t)n);
}

static void put(ad_db *db, const char *project, const char *kind, const char *id,
                const char *parent, const char *aux)
{
    assert_int_equal(put_obj(db, project, kind, id, parent, aux), AD_OK);
}

typedef struct collected {
    char ids[128][16];
    int n;
} collected;

static ad_err collect(void *ud, const char *id, const char *json, size_t len)
{
    collected *c = ud;
    assert_non_null(strstr(json, id));
    assert_true(len > 0);
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
    return AD_OK;
}

static void get_put_update_delete(void **state)
{
    ctx *c = *state;
    ad_buf b;
    ad_buf_init(&b, 1024);
    put(c->db, "p1", "assistant", "asst_1", "", "");
    assert_int_equal(ad_db_get(c->db, "p1", "assistant", "asst_1", &b), AD_OK);
    assert_string_equal(ad_buf_str(&b), "{\"id\":\"asst_1\"}");
    /* Same id again is refused. */
    ad_obj dup = {.kind = "assistant", .id = "asst_1", .project = "p1", .created_at = 1};
    assert_int_equal(ad_db_put(c->db, &dup, "{}", 2), AD_EEXIST);
    /* Another project or kind cannot see it. */
    ad_buf_reset(&b);
    assert_int_equal(ad_db_get(c->db, "p2", "assistant", "asst_1", &b), AD_ENOTFOUND);
    assert_int_equal(ad_db_get(c->db, "p1", "thread", "asst_1", &b), AD_ENOTFOUND);
    assert_int_equal(ad_db_update(c->db, "p2", "assistant", "asst_1", NULL, "{}", 2), AD_ENOTFOUND);
    assert_int_equal(ad_db_delete(c->db, "p2", "assistant", "asst_1"), AD_ENOTFOUND);
    assert_int_equal(ad_db_update(c->db, "p1", "assistant", "asst_1", NULL, "{\"v\":2}", 7), AD_OK);
    ad_buf_reset(&b);
    assert_int_equal(ad_db_get(c->db, "p1", "assistant", "asst_1", &b), AD_OK);
    assert_string_equal(ad_buf_str(&b), "{\"v\":2}");
    assert_int_equal(ad_db_delete(c->db, "p1", "assistant", "asst_1"), AD_OK);
    assert_int_equal(ad_db_delete(c->db, "p1", "assistant", "asst_1"), AD_ENOTFOUND);
    ad_buf_reset(&b);
    assert_int_equal(ad_db_get(c->db, "p1", "assistant", "asst_1", &b), AD_ENOTFOUND);
    bool exists = true;
    assert_int_equal(ad_db_exists_any(c->db, "assistant", "asst_1", &exists), AD_OK);
    assert_false(exists);
    ad_buf_free(&b);
}

static void list_pages_and_cursors(void **state)
{
    ctx *c = *state;
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "a%d", i);
        put(c->db, "p", "assistant", id, "", "");
    }
    put(c->db, "other", "assistant", "x0", "", "");
    collected got = {.n = 0};
    bool more;
    ad_list_q q = {.project = "p", .kind = "assistant", .parent = "", .limit = 3, .asc = false};
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_int_equal(got.n, 3);
    assert_true(more);
    assert_string_equal(got.ids[0], "a9");
    assert_string_equal(got.ids[2], "a7");
    /* after = a7 in desc order continues with a6. */
    q.after = "a7";
    got.n = 0;
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_string_equal(got.ids[0], "a6");
    /* asc with after = a7 gives a8, a9 and no more. */
    q.asc = true;
    got.n = 0;
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_int_equal(got.n, 2);
    assert_false(more);
    assert_string_equal(got.ids[0], "a8");
    /* before = a2 in asc gives a0, a1. */
    q.after = NULL;
    q.before = "a2";
    got.n = 0;
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.ids[0], "a0");
    assert_string_equal(got.ids[1], "a1");
    /* A deleted object still works as a cursor but is not listed. */
    assert_int_equal(ad_db_delete(c->db, "p", "assistant", "a5"), AD_OK);
    q.before = NULL;
    q.after = "a5";
    q.limit = 100;
    got.n = 0;
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_int_equal(got.n, 4);
    assert_string_equal(got.ids[0], "a6");
    /* Unknown cursor, or a cursor of another project. */
    q.after = "zzz";
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_ENOTFOUND);
    q.after = "x0";
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_ENOTFOUND);
}

static void children_and_aux(void **state)
{
    ctx *c = *state;
    put(c->db, "p", "message", "m1", "t1", "run_a");
    put(c->db, "p", "message", "m2", "t1", "");
    put(c->db, "p", "message", "m3", "t1", "run_a");
    put(c->db, "p", "message", "m4", "t2", "run_a");
    collected got = {.n = 0};
    bool more;
    ad_list_q q = {.project = "p",
                   .kind = "message",
                   .parent = "t1",
                   .aux = "run_a",
                   .limit = 20,
                   .asc = true};
    assert_int_equal(ad_db_list(c->db, &q, collect, &got, &more), AD_OK);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.ids[0], "m1");
    assert_string_equal(got.ids[1], "m3");
    ad_buf b;
    ad_buf_init(&b, 256);
    assert_int_equal(ad_db_get_child(c->db, "p", "message", "t2", "m1", &b), AD_ENOTFOUND);
    assert_int_equal(ad_db_get_child(c->db, "p", "message", "t1", "m1", &b), AD_OK);
    int64_t n = 0;
    assert_int_equal(ad_db_count(c->db, "p", "message", "t1", &n), AD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ad_db_delete_children(c->db, "p", "message", "t1", &n), AD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ad_db_count(c->db, "p", "message", "t1", &n), AD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ad_db_count(c->db, "p", "message", "t2", &n), AD_OK);
    assert_int_equal(n, 1);
    ad_buf_free(&b);
}

static void transactions_roll_back(void **state)
{
    ctx *c = *state;
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    put(c->db, "p", "thread", "t9", "", "");
    ad_db_rollback(c->db);
    ad_buf b;
    ad_buf_init(&b, 256);
    assert_int_equal(ad_db_get(c->db, "p", "thread", "t9", &b), AD_ENOTFOUND);
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    put(c->db, "p", "thread", "t9", "", "");
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    assert_int_equal(ad_db_get(c->db, "p", "thread", "t9", &b), AD_OK);
    ad_buf_free(&b);
}

static void survives_reopen(void **state)
{
    ctx *c = *state;
    put(c->db, "p", "assistant", "keep", "", "");
    ad_store_release(c->s, c->db);
    ad_store_close(c->s);
    assert_int_equal(ad_store_open(c->dir, 3, &c->log, &c->s), AD_OK);
    c->db = ad_store_acquire(c->s);
    ad_buf b;
    ad_buf_init(&b, 256);
    assert_int_equal(ad_db_get(c->db, "p", "assistant", "keep", &b), AD_OK);
    assert_string_equal(ad_buf_str(&b), "{\"id\":\"keep\"}");
    ad_buf_free(&b);
}

/* ad_db_after_commit: runs after the commit (the row is then visible to
 * another connection), in order; on rollback with committed=false; at once
 * outside a transaction; and a transaction abandoned at release counts as a
 * rollback. */
typedef struct hook_rec {
    ad_store *s;
    int order[8];
    int committed[8];
    int visible[8];
    int n;
} hook_rec;

typedef struct hook_arg {
    hook_rec *rec;
    int tag;
} hook_arg;

static void hook(void *ud, bool committed)
{
    hook_arg *a = ud;
    hook_rec *r = a->rec;
    if (a->tag < 5) { /* (5 runs inside the release of the other connection) */
        ad_db *other = ad_store_acquire(r->s);
        ad_buf b;
        ad_buf_init(&b, 4096);
        r->visible[r->n] = ad_db_get(other, "p", "thing", "t1", &b) == AD_OK;
        ad_buf_free(&b);
        ad_store_release(r->s, other);
    }
    r->order[r->n] = a->tag;
    r->committed[r->n] = committed;
    r->n++;
    free(a);
}

static hook_arg *harg(hook_rec *r, int tag)
{
    hook_arg *a = malloc(sizeof *a);
    a->rec = r;
    a->tag = tag;
    return a;
}

static void after_commit_hooks(void **state)
{
    ctx *c = *state;
    hook_rec r = {.s = c->s};
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    put(c->db, "p", "thing", "t1", "", "");
    ad_db_after_commit(c->db, hook, harg(&r, 1));
    ad_db_after_commit(c->db, hook, harg(&r, 2));
    assert_int_equal(r.n, 0); /* not before the commit */
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.order[0], 1);
    assert_int_equal(r.order[1], 2);
    assert_true(r.committed[0] && r.committed[1]);
    assert_true(r.visible[0] && r.visible[1]);

    /* Rolled back: told so, and the row it was about never appeared. */
    r.n = 0;
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_db_purge(c->db, "p", "thing", "t1"), AD_OK);
    ad_db_after_commit(c->db, hook, harg(&r, 3));
    ad_db_rollback(c->db);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.order[0], 3);
    assert_false(r.committed[0]);
    assert_true(r.visible[0]); /* the purge was rolled back */
    ad_db_rollback(c->db);     /* a second rollback runs nothing again */
    assert_int_equal(r.n, 1);

    /* No transaction: at once. */
    r.n = 0;
    ad_db_after_commit(c->db, hook, harg(&r, 4));
    assert_int_equal(r.n, 1);
    assert_true(r.committed[0]);

    /* Left open at release: rolled back, hook told so. */
    r.n = 0;
    ad_db *d2 = ad_store_acquire(c->s);
    assert_int_equal(ad_db_begin(d2), AD_OK);
    ad_db_after_commit(d2, hook, harg(&r, 5));
    ad_store_release(c->s, d2); /* logs the abandoned transaction */
    assert_int_equal(r.n, 1);
    assert_false(r.committed[0]);
}

/* The WAL stays bounded while the server writes: the checkpointer copies it
 * into the database and has it start over. (It once never did: its
 * connection had not read the database yet, so SQLite's checkpoint call did
 * nothing, and the WAL grew with every write for as long as the server ran.)
 * With and without a reader that keeps reading meanwhile. */
typedef struct reader_arg {
    ad_store *s;
    atomic_bool stop;
    atomic_long reads;
    atomic_long errors; /* counted, not asserted: cmocka asserts belong to the test's thread */
} reader_arg;

static void *reader(void *p)
{
    reader_arg *r = p;
    ad_db *db = ad_store_acquire(r->s);
    ad_buf b;
    ad_buf_init(&b, 1024);
    while (!atomic_load(&r->stop)) {
        ad_buf_reset(&b);
        if (ad_db_get(db, "p", "anchor", "a1", &b) != AD_OK)
            atomic_fetch_add(&r->errors, 1);
        atomic_fetch_add(&r->reads, 1);
    }
    ad_buf_free(&b);
    ad_store_release(r->s, db);
    return NULL;
}

/* About 100 MB of WAL frames: 12,000 commits of two pages or so. */
static ad_err write_100mb(ctx *c)
{
    static char pad[6000], body[6100];
    memset(pad, 'x', sizeof pad - 1);
    char id[32];
    for (int i = 0; i < 12000; i++) {
        snprintf(id, sizeof id, "w%d", i);
        int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"pad\":\"%s\"}", id, pad);
        ad_obj o = {.kind = "thing",
                    .id = id,
                    .project = "p",
                    .parent = "",
                    .aux = "",
                    .created_at = 1700000000 + i};
        ad_err rc = ad_db_put(c->db, &o, body, (size_t)n);
        if (rc != AD_OK)
            return rc;
    }
    return AD_OK;
}

/* Frames in the WAL, as SQLite counts them (a passive checkpoint of its
 * own, from a connection outside the store); -1 when SQLite fails. No
 * asserts here: a failure must not leave the test while a reader runs. */
static int wal_frames(const ctx *c)
{
    char path[96];
    snprintf(path, sizeof path, "%s/assistd.db", c->dir);
    sqlite3 *h = NULL;
    int nlog = -1, nckpt = -1;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        goto out;
    /* As the store's own connections do: a reader that arrives while a
     * RESTART holds the read marks waits for it instead of failing BUSY. */
    sqlite3_busy_timeout(h, 10000);
    if (sqlite3_exec(h, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    /* A passive checkpoint fails BUSY, without waiting, while the store's
     * checkpointer runs one; it is tried again a little later. */
    for (int tries = 0;; tries++) {
        int rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        if (rc == SQLITE_OK)
            goto out;
        if (rc != SQLITE_BUSY || tries == 500)
            goto fail;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
fail:
    fprintf(stderr, "wal_frames: %s\n", sqlite3_errmsg(h));
    nlog = -1;
out:
    sqlite3_close(h);
    return nlog;
}

/* After a burst of writes the checkpointer has the WAL start over: a write
 * made a little later lands at its beginning. "A little later" is three
 * checkpoint periods on a quiet machine; a loaded one (CI under ASan) gets
 * up to 10 s, a write every 200 ms, each looking where it landed. Returns
 * the frames the last look found (the caller asserts 1..63). */
static int wal_after_burst(ctx *c)
{
    int frames = -1;
    for (int i = 0; i < 50; i++) {
        struct timespec ts = {0, 200000000}; /* one checkpoint period */
        nanosleep(&ts, NULL);
        char id[32];
        snprintf(id, sizeof id, "after%d", i);
        if (put_obj(c->db, "p", "thing", id, "", "") != AD_OK)
            return -1;
        frames = wal_frames(c);
        if (frames < 0 || (frames < 64 && i >= 2))
            break;
    }
    return frames;
}

/* Before the fix a burst stayed in the WAL: about 25,000 frames. */
#define assert_wal_restarted(frames)                                                               \
    do {                                                                                           \
        assert_true((frames) >= 0);                                                                \
        assert_true((frames) < 64);                                                                \
    } while (0)

/* A counter of ad_store_metrics' text (-1 when absent). */
static long long metric(ad_store *s, const char *name)
{
    ad_buf b;
    ad_buf_init(&b, 1 << 16);
    ad_store_metrics(s, &b);
    long long v = -1;
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(ad_buf_str(&b), key);
    if (p)
        v = strtoll(p + strlen(key), NULL, 10);
    ad_buf_free(&b);
    return v;
}

static void wal_stays_bounded(void **state)
{
    ctx *c = *state;
    assert_int_equal(write_100mb(c), AD_OK);
    int frames = wal_after_burst(c);
    assert_wal_restarted(frames);
    /* ... and /metrics shows the checkpointer at work. */
    assert_true(metric(c->s, "assistd_store_checkpoints_total") >= 1);
    assert_int_equal(metric(c->s, "assistd_store_checkpoint_failures_total"), 0);
    assert_true(metric(c->s, "assistd_store_wal_restarts_total") >= 0);
    assert_true(metric(c->s, "assistd_store_wal_frames") >= 0);
}

static void wal_stays_bounded_while_read(void **state)
{
    ctx *c = *state;
    put(c->db, "p", "anchor", "a1", "", "");
    reader_arg r = {.s = c->s};
    atomic_init(&r.stop, false);
    atomic_init(&r.reads, 0);
    atomic_init(&r.errors, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader, &r), 0);
    ad_err written = write_100mb(c);
    int frames = written == AD_OK ? wal_after_burst(c) : -1;
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(written, AD_OK);
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_wal_restarted(frames);
    assert_true(atomic_load(&r.reads) > 100); /* it really read throughout */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_put_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_and_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(children_and_aux, setup, teardown),
        cmocka_unit_test_setup_teardown(transactions_roll_back, setup, teardown),
        cmocka_unit_test_setup_teardown(survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(after_commit_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(wal_stays_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(wal_stays_bounded_while_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
