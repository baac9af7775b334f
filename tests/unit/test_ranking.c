/* test_ranking.c -- the keyword ranker: query terms, BM25 arithmetic, RM3
 * feedback terms, the evidence a store's own index holds (term
 * frequencies, lengths, per-store statistics, deletions), and that a store
 * ranks as if it were alone in the database. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "search/kwindex.h"
#include "search/search.h"
#include "store/store.h"

#include "fixture_store.h"

static void test_kw_terms(void **state)
{
    (void)state;
    ad_kw_term t[AD_KW_MAX_WORDS];
    size_t n = ad_kw_terms("Do Statins cause statins-induced CANCER?", t);
    assert_int_equal(n, 4); /* "do" is a stopword; "statins" twice */
    assert_string_equal(t[0].word, "statins");
    assert_true(t[0].weight == 2.0);
    assert_string_equal(t[1].word, "cause");
    assert_string_equal(t[2].word, "induced");
    assert_string_equal(t[3].word, "cancer");
    assert_true(t[3].weight == 1.0);
    /* nothing but stopwords: they are searched for after all */
    n = ad_kw_terms("what is it", t);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].word, "what");
    assert_int_equal(ad_kw_terms("  ?! ", t), 0);
    /* at most AD_KW_MAX_WORDS words */
    char many[2000] = "";
    for (int i = 0; i < 100; i++) {
        char w[16];
        snprintf(w, sizeof w, "w%d ", i);
        strcat(many, w);
    }
    assert_int_equal(ad_kw_terms(many, t), AD_KW_MAX_WORDS);
}

static void test_bm25(void **state)
{
    (void)state;
    assert_true(fabs(ad_bm25_idf(10, 1) - log(1 + 9.5 / 1.5)) < 1e-12);
    assert_true(ad_bm25_idf(10, 1) > ad_bm25_idf(10, 5));
    assert_true(ad_bm25_idf(10, 10) > 0); /* never negative, even in every chunk */
    assert_true(ad_bm25_idf(10, 12) == ad_bm25_idf(10, 10));
    /* length-normalised, saturating term frequency */
    double k1 = AD_BM25_K1;
    assert_true(fabs(ad_bm25_tf(1, 50, 50) - (k1 + 1) / (1 + k1)) < 1e-12);
    assert_true(ad_bm25_tf(2, 50, 50) > ad_bm25_tf(1, 50, 50));
    assert_true(ad_bm25_tf(1, 100, 50) < ad_bm25_tf(1, 50, 50));
    assert_true(ad_bm25_tf(1000, 50, 50) < k1 + 1);
    assert_true(ad_bm25_tf(0, 50, 50) == 0);
    assert_true(ad_bm25_tf(1, 50, 0) == ad_bm25_tf(1, 7, 7)); /* no average: no normalisation */
}

static void test_rm3_terms(void **state)
{
    (void)state;
    /* doc 0 (score 3): statin x2, cancer, the; doc 1 (score 1): cancer, risk */
    const char d0[] = "statin\tStatins\nstatin\tstatin\ncancer\tCancer\nthe\tthe\n";
    const char d1[] = "cancer\tcancer\nrisk\trisk\nx\tx\n";
    const char *docs[] = {d0, d1};
    size_t lens[] = {sizeof d0 - 1, sizeof d1 - 1};
    double scores[] = {3, 1};
    ad_kw_term out[AD_RM3_TERMS];
    size_t n = ad_rm3_terms(docs, lens, scores, 2, AD_RM3_TERMS, out);
    /* statin: 0.75 * 2/4 = 0.375; cancer: 0.75/4 + 0.25/3 = 0.2708; risk:
     * 0.25/3 = 0.0833; "the" (stopword) and "x" (one byte) left out */
    assert_int_equal(n, 3);
    assert_string_equal(out[0].word, "statins"); /* surface of the first occurrence, lower-cased */
    assert_string_equal(out[1].word, "cancer");
    assert_string_equal(out[2].word, "risk");
    double z = 0.375 + 0.75 / 4 + 0.25 / 3 + 0.25 / 3;
    assert_true(fabs(out[0].weight - 0.375 / z) < 1e-9);
    assert_true(fabs(out[2].weight - (0.25 / 3) / z) < 1e-9);
    assert_true(fabs(out[0].weight + out[1].weight + out[2].weight - 1) < 1e-9);
    /* at most max_terms */
    assert_int_equal(ad_rm3_terms(docs, lens, scores, 2, 1, out), 1);
    assert_string_equal(out[0].word, "statins");
    /* nothing to learn from */
    double zero[] = {0, 0};
    assert_int_equal(ad_rm3_terms(docs, lens, zero, 2, AD_RM3_TERMS, out), 0);
    assert_int_equal(ad_rm3_terms(docs, lens, scores, 0, AD_RM3_TERMS, out), 0);
}

/* ---------------------------------------------------------------- store */

static int setup(void **state)
{
    return fixture_setup(state, "assistd-ranking");
}

static int teardown(void **state)
{
    unsetenv("ASSISTD_SEARCH_RANKER");
    return fixture_teardown(state);
}

static bool accept_not_b(void *ud, const char *file_id)
{
    int *calls = ud;
    (*calls)++;
    return strcmp(file_id, "file-b") != 0;
}

/* The evidence BM25 is computed from, as the store's own index holds it:
 * statistics of that store only, document frequencies, stemmed term
 * frequencies, deletions. */
static void test_store_evidence(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_storeAAAAAAAA");
    add_store(c->db, "vs_storeBBBBBBBB");
    const char *a[] = {"Running dogs run; the dog ran.", "Cats sleep."};
    const char *b[] = {"Dogs everywhere."};
    add_file(c->db, "vs_storeAAAAAAAA", "file-a", "{}", a, 2, NULL, 0);
    add_file(c->db, "vs_storeBBBBBBBB", "file-b", "{}", b, 1, NULL, 0);

    ad_kwcache *kc = ad_kwcache_new(1u << 30);
    ad_err rc;
    ad_kwidx *x = ad_kwcache_acquire(kc, c->db, "vs_storeAAAAAAAA", &rc);
    assert_non_null(x);
    int64_t chunks = 0;
    double avg = 0;
    ad_kwidx_stats(x, &chunks, &avg);
    assert_int_equal(chunks, 2);
    assert_true(avg == (6 + 2) / 2.0); /* running dogs run the dog ran / cats sleep */
    assert_int_equal(ad_kwidx_df(x, "dog", 3, -1), 1);
    assert_int_equal(ad_kwidx_df(x, "run", 3, -1), 1);
    assert_int_equal(ad_kwidx_df(x, "ran", 3, -1), 1); /* "ran" is not stemmed to run */
    assert_int_equal(ad_kwidx_df(x, "dogs", 4, -1), 0);
    /* BM25 by hand: tf 2 for run and dog, length 6, average 4 */
    ad_kwq q[2] = {{"run", 3, 1.0}, {"dog", 3, 0.5}};
    int64_t ids[4];
    double sc[4];
    assert_int_equal(ad_kwidx_rank(x, q, 2, NULL, NULL, ids, sc, 4), 1);
    double one = 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 6 / 4.0));
    assert_true(fabs(sc[0] - 1.5 * one) < 1e-9);
    ad_kwcache_release(kc, x);

    x = ad_kwcache_acquire(kc, c->db, "vs_storeBBBBBBBB", &rc);
    assert_non_null(x);
    ad_kwidx_stats(x, &chunks, &avg);
    assert_int_equal(chunks, 1);
    assert_true(avg == 2);
    int calls = 0;
    assert_int_equal(ad_kwidx_rank(x, q + 1, 1, accept_not_b, &calls, ids, sc, 4), 0);
    assert_int_equal(calls, 1);
    ad_kwcache_release(kc, x);

    /* removing the file: the loaded index learns it at the next acquire */
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_vsf_remove(c->db, "p", "vs_storeAAAAAAAA", "file-a"), AD_OK);
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    x = ad_kwcache_acquire(kc, c->db, "vs_storeAAAAAAAA", &rc);
    assert_non_null(x);
    ad_kwidx_stats(x, &chunks, &avg);
    assert_true(chunks == 0 && avg == 0);
    assert_int_equal(ad_kwidx_df(x, "dog", 3, -1), 0);
    assert_int_equal(ad_kwidx_rank(x, q, 2, NULL, NULL, ids, sc, 4), 0);
    ad_kwcache_release(kc, x);
    ad_kwcache_free(kc);
}

/* Store A: "zebra" is rare there (1 chunk of 4), "lion" common (3 of 4).
 * Another store B, full of zebras, makes "zebra" common in the database as
 * a whole. A's ranking must not change. */
static void test_store_ranks_alone(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_aloneAAAAAAAA");
    add_store(c->db, "vs_zebrasBBBBBBB");
    const char *a[] = {"zebra grass", "lion lion lion grass", "lion rock", "lion tree"};
    add_file(c->db, "vs_aloneAAAAAAAA", "file-z", "{}", a, 1, NULL, 0);
    add_file(c->db, "vs_aloneAAAAAAAA", "file-l", "{}", a + 1, 3, NULL, 0);

    ad_search_hit *h = NULL;
    size_t n = search(c, "vs_aloneAAAAAAAA", "zebra lion", NULL, &h);
    assert_true(n >= 2);
    assert_string_equal(h[0].file_id, "file-z"); /* the rare word wins */
    ad_search_hits_free(h, n);

    const char *z[8];
    for (int i = 0; i < 8; i++)
        z[i] = "zebra zebra stripes";
    for (int f = 0; f < 4; f++) {
        char id[32];
        snprintf(id, sizeof id, "file-zz%d", f);
        add_file(c->db, "vs_zebrasBBBBBBB", id, "{}", z, 8, NULL, 0);
    }
    n = search(c, "vs_aloneAAAAAAAA", "zebra lion", NULL, &h);
    assert_true(n >= 2);
    assert_string_equal(h[0].file_id, "file-z"); /* unchanged */
    for (size_t i = 0; i < n; i++)
        assert_string_equal(h[i].vector_store_id, "vs_aloneAAAAAAAA");
    ad_search_hits_free(h, n);
}

/* Pseudo-relevance feedback finds a chunk that shares no word with the
 * query but many with the chunks that match it best. */
static void test_feedback_expands(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_feedbackAAAAA");
    const char *t[] = {
        "vault unseal keys rotation schedule quarterly",
        "vault unseal keys shamir shares quarterly rotation",
        "shamir shares quarterly rotation schedule",
        "lunch menu pizza",
        "parking garage levels",
    };
    add_file(c->db, "vs_feedbackAAAAA", "file-f", "{}", t, 5, NULL, 0);
    ad_search_hit *h = NULL;
    size_t n = search(c, "vs_feedbackAAAAA", "vault unseal", NULL, &h);
    assert_int_equal(n, 3); /* the third chunk comes in through feedback only */
    assert_string_equal(h[2].text, "shamir shares quarterly rotation schedule");
    ad_search_hits_free(h, n);
}

/* A store of 1 + extra chunks: "needle shared" and extra chunks "shared
 * fillerN". Searching "needle" finds the first; feedback proposes
 * "shared". */
static size_t needle_search(ctx *c, const char *store, int extra)
{
    add_store(c->db, store);
    char **texts = calloc((size_t)extra + 1, sizeof *texts);
    texts[0] = strdup("needle shared");
    for (int i = 1; i <= extra; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "shared filler%d", i);
        texts[i] = strdup(buf);
    }
    char file[64];
    snprintf(file, sizeof file, "file-%s", store);
    add_file(c->db, store, file, "{}", (const char *const *)texts, (size_t)extra + 1, NULL, 0);
    for (int i = 0; i <= extra; i++)
        free(texts[i]);
    free(texts);
    ad_search_hit *h = NULL;
    size_t n = search(c, store, "needle", NULL, &h);
    assert_true(n >= 1);
    assert_string_equal(h[0].text, "needle shared");
    ad_search_hits_free(h, n);
    return n;
}

/* A feedback word in more than 10% of a store's chunks (and more than
 * 100) is left out of the second ranking; in a small store it stays. */
static void test_feedback_common_words(void **state)
{
    ctx *c = *state;
    assert_int_equal(needle_search(c, "vs_smallAAAAAAAA", 50), 10);
    assert_int_equal(needle_search(c, "vs_largeAAAAAAAA", 300), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kw_terms),
        cmocka_unit_test(test_bm25),
        cmocka_unit_test(test_rm3_terms),
        cmocka_unit_test_setup_teardown(test_store_evidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ranks_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback_expands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback_common_words, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
