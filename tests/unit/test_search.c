/* test_search.c -- retrieval rules: the FTS5 query built from user text,
 * reciprocal rank fusion and its 0..1 scores, attribute filters, vector
 * arithmetic, and the chunk index in the store (BM25 order, per-store
 * isolation, deletion, embeddings) with ad_search on top of it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "ingest/ingest.h"
#include "search/search.h"
#include "store/store.h"

#include "fixture_store.h"

static void test_fts_query(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 4096);
    assert_true(ad_fts_query("How often are the Unseal-keys rotated?", &b));
    assert_string_equal(ad_buf_str(&b), "\"often\" OR \"unseal\" OR \"keys\" OR \"rotated\"");
    ad_buf_reset(&b);
    /* only stopwords: kept */
    assert_true(ad_fts_query("Who are you?", &b));
    assert_string_equal(ad_buf_str(&b), "\"who\" OR \"are\" OR \"you\"");
    ad_buf_reset(&b);
    /* FTS5 syntax in the text is never passed through. */
    assert_true(ad_fts_query("a\" NOT b* (c) NEAR/2 d:e", &b));
    assert_string_equal(ad_buf_str(&b), "\"b\" OR \"c\" OR \"near\" OR \"2\" OR \"d\" OR \"e\"");
    ad_buf_reset(&b);
    assert_true(ad_fts_query("Größe café", &b));
    assert_string_equal(ad_buf_str(&b), "\"gr\xc3\xb6\xc3\x9f"
                                        "e\" OR \"caf\xc3\xa9\"");
    ad_buf_reset(&b);
    assert_false(ad_fts_query("  ?!  ", &b));
    assert_false(ad_fts_query("", &b));
    ad_buf_free(&b);
}

static void test_rrf(void **state)
{
    (void)state;
    int64_t a[] = {10, 20, 30};
    int64_t b[] = {20, 40};
    ad_ranked lists[] = {{a, 3}, {b, 2}};
    ad_fused out[5];
    size_t n = ad_rrf_fuse(lists, 2, 60, out);
    assert_int_equal(n, 4);
    /* 20: 1/62 + 1/61 -- first; 10: 1/61; 40: 1/62; 30: 1/63 */
    assert_int_equal(out[0].id, 20);
    assert_int_equal(out[1].id, 10);
    assert_int_equal(out[2].id, 40);
    assert_int_equal(out[3].id, 30);
    double best = 2.0 / 61;
    assert_true(fabs(out[0].score - (1.0 / 62 + 1.0 / 61) / best) < 1e-12);
    assert_true(fabs(out[1].score - (1.0 / 61) / best) < 1e-12);
    assert_true(fabs(out[1].score - 0.5) < 1e-12);
    for (size_t i = 0; i < n; i++)
        assert_true(out[i].score > 0 && out[i].score <= 1);
    /* First in every list scores exactly 1. */
    int64_t c[] = {7, 8};
    ad_ranked same[] = {{c, 2}, {c, 2}, {c, 2}};
    ad_fused o2[6];
    assert_int_equal(ad_rrf_fuse(same, 3, 60, o2), 2);
    assert_true(o2[0].id == 7 && o2[0].score == 1.0);
    assert_true(fabs(o2[1].score - 61.0 / 62) < 1e-12);
    /* A single list: scores fall as 61/(60+rank). */
    ad_ranked one[] = {{a, 3}};
    assert_int_equal(ad_rrf_fuse(one, 1, 60, o2), 3);
    assert_true(o2[0].score == 1.0);
    assert_true(fabs(o2[2].score - 61.0 / 63) < 1e-12);
    /* Ties: smaller id first. */
    int64_t x[] = {5}, y[] = {3};
    ad_ranked tie[] = {{x, 1}, {y, 1}};
    assert_int_equal(ad_rrf_fuse(tie, 2, 60, o2), 2);
    assert_int_equal(o2[0].id, 3);
    assert_int_equal(ad_rrf_fuse(NULL, 0, 60, o2), 0);
}

static bool match(const char *filter, const char *attrs)
{
    json_t *f = json_loads(filter, 0, NULL);
    json_t *a = attrs ? json_loads(attrs, 0, NULL) : NULL;
    assert_non_null(f);
    bool m = ad_filter_match(f, a);
    json_decref(f);
    json_decref(a);
    return m;
}

static void test_filters(void **state)
{
    (void)state;
    const char *a = "{\"team\":\"ops\",\"year\":2024,\"score\":4.5,\"public\":true}";
    assert_true(match("{\"type\":\"eq\",\"key\":\"team\",\"value\":\"ops\"}", a));
    assert_false(match("{\"type\":\"eq\",\"key\":\"team\",\"value\":\"sec\"}", a));
    assert_true(match("{\"type\":\"ne\",\"key\":\"team\",\"value\":\"sec\"}", a));
    assert_true(match("{\"type\":\"eq\",\"key\":\"year\",\"value\":2024.0}", a));
    assert_true(match("{\"type\":\"gt\",\"key\":\"year\",\"value\":2023}", a));
    assert_false(match("{\"type\":\"gt\",\"key\":\"year\",\"value\":2024}", a));
    assert_true(match("{\"type\":\"gte\",\"key\":\"year\",\"value\":2024}", a));
    assert_true(match("{\"type\":\"lt\",\"key\":\"score\",\"value\":5}", a));
    assert_true(match("{\"type\":\"lte\",\"key\":\"score\",\"value\":4.5}", a));
    assert_true(match("{\"type\":\"lt\",\"key\":\"team\",\"value\":\"zzz\"}", a));
    assert_true(match("{\"type\":\"eq\",\"key\":\"public\",\"value\":true}", a));
    assert_false(match("{\"type\":\"eq\",\"key\":\"public\",\"value\":false}", a));
    /* different types: never equal, never ordered */
    assert_false(match("{\"type\":\"eq\",\"key\":\"year\",\"value\":\"2024\"}", a));
    assert_false(match("{\"type\":\"gt\",\"key\":\"year\",\"value\":\"1\"}", a));
    assert_true(match("{\"type\":\"ne\",\"key\":\"year\",\"value\":\"2024\"}", a));
    /* in / nin */
    assert_true(match("{\"type\":\"in\",\"key\":\"team\",\"value\":[\"sec\",\"ops\"]}", a));
    assert_false(match("{\"type\":\"in\",\"key\":\"team\",\"value\":[\"sec\"]}", a));
    assert_true(match("{\"type\":\"nin\",\"key\":\"team\",\"value\":[\"sec\"]}", a));
    assert_true(match("{\"type\":\"in\",\"key\":\"year\",\"value\":[2023,2024]}", a));
    /* a missing key never matches, ne and nin included */
    assert_false(match("{\"type\":\"eq\",\"key\":\"nope\",\"value\":\"x\"}", a));
    assert_false(match("{\"type\":\"ne\",\"key\":\"nope\",\"value\":\"x\"}", a));
    assert_false(match("{\"type\":\"nin\",\"key\":\"nope\",\"value\":[\"x\"]}", a));
    assert_false(match("{\"type\":\"eq\",\"key\":\"team\",\"value\":\"ops\"}", NULL));
    /* compound, nested */
    assert_true(match("{\"type\":\"and\",\"filters\":[{\"type\":\"eq\",\"key\":\"team\",\"value\":"
                      "\"ops\"},{\"type\":\"or\",\"filters\":[{\"type\":\"lt\",\"key\":\"year\","
                      "\"value\":2000},{\"type\":\"eq\",\"key\":\"public\",\"value\":true}]}]}",
                      a));
    assert_false(match("{\"type\":\"and\",\"filters\":[{\"type\":\"eq\",\"key\":\"team\",\"value\":"
                       "\"ops\"},{\"type\":\"lt\",\"key\":\"year\",\"value\":2000}]}",
                       a));
    assert_true(match("{\"type\":\"and\",\"filters\":[]}", a));
    assert_false(match("{\"type\":\"or\",\"filters\":[]}", a));
}

static void test_vectors(void **state)
{
    (void)state;
    float v[] = {3, 4, 0, 0, 0};
    ad_vec_normalize(v, 5);
    assert_true(fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[1] - 0.8f) < 1e-6f);
    assert_true(fabs(ad_vec_dot(v, v, 5) - 1.0) < 1e-6);
    float z[] = {0, 0, 0};
    ad_vec_normalize(z, 3);
    assert_true(z[0] == 0 && z[1] == 0 && z[2] == 0);
    float a[] = {1, 2, 3, 4, 5, 6, 7}, b[] = {7, 6, 5, 4, 3, 2, 1};
    assert_true(fabs(ad_vec_dot(a, b, 7) - 84.0) < 1e-9);
}

/* ---- the chunk index and ad_search against a real store ---- */

static int setup(void **state)
{
    return fixture_setup(state, "assistd-search");
}

static void test_index_and_search(void **state)
{
    ctx *c = *state;
    put_json(c->db, "vector_store", "vs_a", "", "",
             "{\"id\":\"vs_a\",\"object\":\"vector_store\",\"last_active_at\":1}");
    put_json(c->db, "vector_store", "vs_b", "", "",
             "{\"id\":\"vs_b\",\"object\":\"vector_store\",\"last_active_at\":1}");
    const char *f1[] = {"Rotate the unseal keys every ninety days.", "The root token is revoked."};
    const char *f2[] = {"Alerts are routed to PagerDuty.", "Unseal is mentioned once here."};
    const char *f3[] = {"Unseal keys in another store entirely."};
    add_file(c->db, "vs_a", "file-1", "{\"team\":\"sec\"}", f1, 2, NULL, 0);
    add_file(c->db, "vs_a", "file-2", "{\"team\":\"ops\"}", f2, 2, NULL, 0);
    add_file(c->db, "vs_b", "file-3", "{}", f3, 1, NULL, 0);

    ad_search_hit *h = NULL;
    size_t n = search(c, "vs_a", "unseal keys rotation", NULL, &h);
    assert_int_equal(n, 2); /* "rotation" stems to "rotat", like "rotate" */
    assert_string_equal(h[0].file_id, "file-1");
    assert_string_equal(h[0].filename, "file-1.txt");
    assert_string_equal(h[0].vector_store_id, "vs_a");
    assert_string_equal(h[0].text, "Rotate the unseal keys every ninety days.");
    assert_true(h[0].score == 1.0);
    assert_true(h[1].score < h[0].score);
    assert_string_equal(json_string_value(json_object_get(h[0].attributes, "team")), "sec");
    ad_search_hits_free(h, n);

    /* filters apply while the lists are built */
    n = search(c, "vs_a", "unseal keys", "{\"type\":\"eq\",\"key\":\"team\",\"value\":\"ops\"}",
               &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].file_id, "file-2");
    ad_search_hits_free(h, n);

    /* a store sees only its own chunks */
    n = search(c, "vs_b", "unseal", NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].file_id, "file-3");
    ad_search_hits_free(h, n);

    /* deleting a file removes its chunks from the index */
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_vsf_remove(c->db, "p", "vs_a", "file-1"), AD_OK);
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    n = search(c, "vs_a", "unseal keys rotation", NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].file_id, "file-2");
    ad_search_hits_free(h, n);

    /* an unknown store, or one of another project */
    char msg[256];
    assert_int_equal(fixture_search(c, "p", "vs_zz", "x", NULL, &h, &n, msg, sizeof msg),
                     AD_ENOTFOUND);
    assert_string_equal(msg, "No vector store found with id 'vs_zz'.");
    assert_int_equal(fixture_search(c, "other", "vs_a", "x", NULL, &h, &n, msg, sizeof msg),
                     AD_ENOTFOUND);

    /* counts from the rows */
    int64_t usage = 0;
    json_t *counts = ad_vs_file_counts(c->db, "p", "vector_store_file", "vs_a", &usage);
    assert_int_equal(json_integer_value(json_object_get(counts, "completed")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "total")), 1);
    assert_int_equal(usage, 10);
    json_decref(counts);
}

typedef struct vec_acc {
    float q[3];
    size_t n;
    double dot[2];
} vec_acc;

static ad_err vec_row(void *ud, int64_t id, const char *file, const float *v, size_t dims)
{
    (void)id;
    (void)file;
    vec_acc *x = ud;
    assert_int_equal(dims, 3);
    assert_true(x->n < 2);
    x->dot[x->n++] = ad_vec_dot(v, x->q, dims);
    return AD_OK;
}

static void test_expired_and_vectors(void **state)
{
    ctx *c = *state;
    put_json(c->db, "vector_store", "vs_old", "", "",
             "{\"id\":\"vs_old\",\"last_active_at\":1000,"
             "\"expires_after\":{\"anchor\":\"last_active_at\",\"days\":1}}");
    const char *stores[] = {"vs_old"};
    ad_search_hit *h = NULL;
    size_t n = 0;
    char msg[256];
    assert_int_equal(fixture_search(c, "p", "vs_old", "x", NULL, &h, &n, msg, sizeof msg),
                     AD_ESTATE);
    assert_non_null(strstr(msg, "is expired"));
    bool expired = false;
    assert_int_equal(ad_vector_stores_wait_ready(NULL, c->db, "p", stores, 1, 10, &expired), AD_OK);
    assert_true(expired);

    /* stored vectors come back as written */
    put_json(c->db, "vector_store", "vs_v", "", "", "{\"id\":\"vs_v\",\"last_active_at\":1}");
    const char *t[] = {"alpha", "beta"};
    float vecs[] = {1, 0, 0, 0, 1, 0};
    add_file(c->db, "vs_v", "file-v", "{}", t, 2, vecs, 3);
    vec_acc a = {.q = {0, 1, 0}};
    ad_err rc = ad_db_chunks_vectors(c->db, "vs_v", vec_row, &a);
    assert_int_equal(rc, AD_OK);
    assert_int_equal(a.n, 2);
    assert_true(a.dot[0] == 0.0 && a.dot[1] == 1.0);
}

/* A database left at schema 2 by an older assistd (chunks indexed without
 * their store, no chunk_stats) is migrated at open: the index is rebuilt
 * with the store ids, the statistics counted, and the old chunks found. */
static void test_migration_from_v2(void **state)
{
    (void)state;
    static const char *const v2 =
        "CREATE TABLE objects (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        "  id TEXT NOT NULL UNIQUE, project TEXT NOT NULL, parent TEXT NOT NULL DEFAULT '',"
        "  aux TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, body TEXT);"
        "CREATE INDEX objects_page ON objects(project, kind, parent, seq);"
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY, store_id TEXT NOT NULL,"
        "  file_id TEXT NOT NULL, ord INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB);"
        "CREATE INDEX chunks_owner ON chunks(store_id, file_id, ord);"
        "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
        "  tokenize='porter unicode61 remove_diacritics 2');"
        "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
        "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;"
        "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);"
        "  END;"
        "INSERT INTO chunks(store_id, file_id, ord, text) VALUES"
        "  ('vs_oldAAAAAAAAAA', 'file-1', 0, 'Rotate the unseal keys every ninety days.'),"
        "  ('vs_oldAAAAAAAAAA', 'file-1', 1, 'The root token is revoked.'),"
        "  ('vs_oldAAAAAAAAAA', 'file-2', 0, 'Alerts go to PagerDuty.'),"
        "  ('vs_otherBBBBBBBB', 'file-3', 0, 'Unseal keys of another store.');"
        "PRAGMA user_version=2;";
    ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/assistd-migrate-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    char path[128];
    snprintf(path, sizeof path, "%s/assistd.db", c->dir);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, v2, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    c->log.fd = 2;
    c->log.level = AD_LOG_WARN;
    assert_int_equal(ad_store_open(c->dir, 2, &c->log, &c->s), AD_OK);
    c->db = ad_store_acquire(c->s);
    void *st = c;
    int64_t chunks = 0, tokens = 0;
    assert_int_equal(ad_db_chunks_stats(c->db, "vs_oldAAAAAAAAAA", &chunks, &tokens), AD_OK);
    assert_int_equal(chunks, 3);
    assert_int_equal(tokens, 7 + 5 + 4); /* index tokens of the three chunks */
    assert_int_equal(ad_db_chunks_stats(c->db, "vs_otherBBBBBBBB", &chunks, &tokens), AD_OK);
    assert_int_equal(chunks, 1);

    add_store(c->db, "vs_oldAAAAAAAAAA");
    ad_search_hit *hits = NULL;
    size_t n = search(c, "vs_oldAAAAAAAAAA", "unseal keys", NULL, &hits);
    assert_int_equal(n, 1); /* the other store's chunk is not seen */
    assert_string_equal(hits[0].file_id, "file-1");
    assert_string_equal(hits[0].text, "Rotate the unseal keys every ninety days.");
    ad_search_hits_free(hits, n);
    /* the migrated triggers keep the index and the statistics in step */
    const char *more[] = {"PagerDuty pages the on-call engineer."};
    add_file(c->db, "vs_oldAAAAAAAAAA", "file-4", "{}", more, 1, NULL, 0);
    n = search(c, "vs_oldAAAAAAAAAA", "PagerDuty", NULL, &hits);
    assert_int_equal(n, 2);
    ad_search_hits_free(hits, n);
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_db_chunks_delete(c->db, "vs_oldAAAAAAAAAA", "file-1"), AD_OK);
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    assert_int_equal(ad_db_chunks_stats(c->db, "vs_oldAAAAAAAAAA", &chunks, &tokens), AD_OK);
    assert_int_equal(chunks, 2);
    assert_int_equal(tokens, 4 + 6); /* PagerDuty pages the on call engineer */
    assert_int_equal(fixture_teardown(&st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fts_query),
        cmocka_unit_test(test_rrf),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test_setup_teardown(test_index_and_search, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_expired_and_vectors, setup, fixture_teardown),
        cmocka_unit_test(test_migration_from_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
