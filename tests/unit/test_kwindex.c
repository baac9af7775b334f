/* test_kwindex.c -- assistd's keyword index: segments (round trip, ids,
 * damaged bytes refused), the per-store in-memory index kept up to date
 * with files joining, being replaced and leaving (tombstones, rebuild),
 * the cache's memory budget (LRU eviction, never of an index in use), and
 * searches running while another thread commits files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jansson.h>

#include "ingest/chunk.h"
#include "ingest/ingest.h"
#include "search/kwindex.h"
#include "search/search.h"
#include "store/store.h"
#include "util/alloc.h"

#include "fixture_store.h"

static void test_segment(void **state)
{
    (void)state;
    ad_chunk_row rows[3] = {
        {"Dogs run; dogs sleep.", 21, NULL, 0}, {"", 0, NULL, 0}, {"cats run", 8, NULL, 0}};
    ad_buf b;
    ad_buf_init(&b, AD_KWSEG_MAX);
    assert_int_equal(ad_kwseg_build(rows, 3, &b), AD_OK);
    size_t n = 0;
    assert_true(ad_kwseg_valid((const unsigned char *)b.ptr, b.len, &n));
    assert_int_equal(n, 3);
    int64_t ids[3] = {7, 1LL << 40, 9};
    assert_int_equal(ad_kwseg_set_ids((unsigned char *)b.ptr, b.len, ids, 3), AD_OK);
    assert_int_equal(ad_kwseg_set_ids((unsigned char *)b.ptr, b.len, ids, 2), AD_EINVAL);
    assert_true(ad_kwseg_valid((const unsigned char *)b.ptr, b.len, &n));
    /* every truncation is refused; so is trailing garbage */
    for (size_t len = 0; len < b.len; len++)
        assert_false(ad_kwseg_valid((const unsigned char *)b.ptr, len, NULL));
    assert_int_equal(ad_buf_addc(&b, 0), AD_OK);
    assert_false(ad_kwseg_valid((const unsigned char *)b.ptr, b.len, NULL));
    b.len--;
    /* flipped bytes never crash the checker */
    unsigned char *copy = malloc(b.len);
    for (size_t i = 0; i < b.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, b.ptr, b.len);
            copy[i] ^= (unsigned char)(1u << bit);
            (void)ad_kwseg_valid(copy, b.len, NULL);
        }
    free(copy);
    /* an empty file */
    ad_buf_reset(&b);
    assert_int_equal(ad_kwseg_build(rows, 0, &b), AD_OK);
    assert_true(ad_kwseg_valid((const unsigned char *)b.ptr, b.len, &n));
    assert_int_equal(n, 0);
    /* a buffer too small */
    ad_buf small;
    ad_buf_init(&small, 8);
    assert_int_equal(ad_kwseg_build(rows, 3, &small), AD_ETOOBIG);
    ad_buf_free(&small);
    ad_buf_free(&b);
}

/* ------------------------------------------------------------ fast build */

/* The text of NFCorpus (titles and abstracts, a blank line between
 * documents; AD_NFCORPUS or ../shared/data/nfcorpus/corpus.jsonl), or NULL
 * when it is not there. */
static char *load_corpus(size_t *len)
{
    const char *path = getenv("AD_NFCORPUS");
    if (!path)
        path = "../shared/data/nfcorpus/corpus.jsonl";
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    ad_buf b;
    ad_buf_init(&b, 64u << 20);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *doc = json_loadb(line, (size_t)n, 0, NULL);
        assert_non_null(doc);
        const char *title = json_string_value(json_object_get(doc, "title"));
        const char *text = json_string_value(json_object_get(doc, "text"));
        assert_int_equal(ad_buf_add(&b, title ? title : "", title ? strlen(title) : 0), AD_OK);
        assert_int_equal(ad_buf_add(&b, "\n", 1), AD_OK);
        assert_int_equal(ad_buf_add(&b, text ? text : "", text ? strlen(text) : 0), AD_OK);
        assert_int_equal(ad_buf_add(&b, "\n\n", 2), AD_OK);
        json_decref(doc);
    }
    free(line);
    fclose(f);
    *len = b.len;
    return ad_buf_steal(&b);
}

/* Builds the segment of rows both ways and requires the same bytes. */
static void check_same(const ad_chunk_row *rows, size_t n)
{
    ad_buf fast, plain;
    ad_buf_init(&fast, AD_KWSEG_MAX);
    ad_buf_init(&plain, AD_KWSEG_MAX);
    assert_int_equal(ad_kwseg_build(rows, n, &fast), AD_OK);
    assert_int_equal(ad_kwseg_build_plain(rows, n, &plain), AD_OK);
    assert_int_equal(fast.len, plain.len);
    assert_memory_equal(fast.ptr, plain.ptr, fast.len);
    size_t got = 0;
    assert_true(ad_kwseg_valid((const unsigned char *)fast.ptr, fast.len, &got));
    assert_int_equal(got, n);
    ad_buf_free(&fast);
    ad_buf_free(&plain);
}

/* Overlapping chunks cut at arbitrary byte positions (inside words, inside
 * UTF-8 characters, between a letter and its combining accent): each chunk
 * starts inside the one before, as 800/400 chunks do. */
static void check_random_cuts(const char *text, size_t len, unsigned seed, size_t maxlen)
{
    ad_chunk_row *rows = ad_calloc(len + 1, sizeof *rows);
    size_t n = 0, s = 0;
    while (s < len) {
        seed = seed * 1103515245u + 12345u;
        size_t l = 1 + (seed >> 8) % maxlen;
        if (l > len - s)
            l = len - s;
        rows[n++] = (ad_chunk_row){text + s, l, NULL, 0};
        seed = seed * 1103515245u + 12345u;
        size_t step = l > 1 ? 1 + (seed >> 8) % (l - 1) : 1; /* 1..l-1: overlap */
        if ((seed >> 4) % 16 == 0)
            step = l; /* now and then no overlap: a new run */
        s += step;
    }
    check_same(rows, n);
    ad_free(rows);
}

/* Several threads building segments at once get the plain build's bytes
 * (the builder keeps no state between calls). */
typedef struct par {
    const ad_chunk_row *rows;
    size_t n;
    const ad_buf *want;
    int bad;
} par;

static void *build_many(void *arg)
{
    par *p = arg;
    for (int r = 0; r < 20; r++) {
        ad_buf b;
        ad_buf_init(&b, AD_KWSEG_MAX);
        if (ad_kwseg_build(p->rows, p->n, &b) != AD_OK || b.len != p->want->len ||
            memcmp(b.ptr, p->want->ptr, b.len) != 0)
            p->bad++;
        ad_buf_free(&b);
    }
    return NULL;
}

static void check_parallel(const char *text, size_t len)
{
    enum { N = 4 };
    ad_chunk_row *rows = ad_calloc(len / 100 + 1, sizeof *rows);
    size_t n = 0;
    for (size_t s = 0; s < len; s += 100) /* 200-byte chunks, half overlapping */
        rows[n++] = (ad_chunk_row){text + s, len - s < 200 ? len - s : 200, NULL, 0};
    ad_buf want;
    ad_buf_init(&want, AD_KWSEG_MAX);
    assert_int_equal(ad_kwseg_build_plain(rows, n, &want), AD_OK);
    pthread_t th[N];
    par p[N];
    for (int i = 0; i < N; i++) {
        p[i] = (par){rows, n, &want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, build_many, &p[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(p[i].bad, 0);
    }
    ad_buf_free(&want);
    ad_free(rows);
}

static void test_fast_build(void **state)
{
    (void)state;
    /* words cut by chunk boundaries, accents, long tokens, invalid bytes */
    static const char tricky[] =
        "Caf\xc3\xa9 na\xc3\xafve re\xcc\x81sum\xc3\xa9 connections connected, CONNECTING! "
        "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1 \xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0 "
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x80\x82 bad\xff\xfe bytes \xe2\x82 cut "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa end\xcc\x81 "
        "generalizations relational 1995\xe2\x80\x93"
        "2003 (31,236 cases) \xc2\xb5g/day.";
    size_t tl = sizeof tricky - 1;
    for (unsigned seed = 1; seed <= 300; seed++)
        check_random_cuts(tricky, tl, seed, 2 + seed % 60);
    /* one row, two rows, the same row twice, rows that are not slices */
    ad_chunk_row two[] = {{tricky, 40, NULL, 0}, {tricky + 10, 50, NULL, 0}};
    check_same(two, 2);
    ad_chunk_row same[] = {{tricky, 40, NULL, 0}, {tricky, 40, NULL, 0}, {tricky, 40, NULL, 0}};
    check_same(same, 3);
    ad_chunk_row apart[] = {{"running dogs", 12, NULL, 0}, {tricky + 5, 30, NULL, 0}};
    check_same(apart, 2);

    size_t len = 0;
    char *text = load_corpus(&len);
    if (!text) {
        print_message("NFCorpus not found: the real-text comparison is skipped\n");
        return;
    }
    assert_true(len > 1000000);
    /* the real chunker, default chunking and a small one */
    const char *dir = getenv("AD_TOKENIZER_DIR");
    ad_tokenizer *tok = NULL;
    assert_int_equal(ad_tokenizer_load(dir ? dir : AD_TOKENIZER_DEFAULT_DIR, "o200k_base", &tok),
                     AD_OK);
    static const size_t cfg[][2] = {{800, 400}, {100, 50}, {100, 0}};
    for (size_t c = 0; c < 3; c++) {
        ad_chunk *chunks = NULL;
        size_t nch = 0;
        assert_int_equal(ad_chunk_text(tok, text, len, cfg[c][0], cfg[c][1], &chunks, &nch), AD_OK);
        ad_chunk_row *rows = ad_calloc(nch, sizeof *rows);
        for (size_t i = 0; i < nch; i++)
            rows[i] =
                (ad_chunk_row){text + chunks[i].start, chunks[i].end - chunks[i].start, NULL, 0};
        check_same(rows, nch);
        ad_free(rows);
        ad_free(chunks);
    }
    ad_tokenizer_free(tok);
    check_parallel(text, 200000);
    /* arbitrary cuts through real text */
    check_random_cuts(text, len < 2000000 ? len : 2000000, 7, 5000);
    check_random_cuts(text, 300000, 11, 300);
    ad_free(text);
}

static int setup(void **state)
{
    return fixture_setup(state, "assistd-kwindex");
}

static void add1(ctx *c, const char *store, const char *file, const char *text)
{
    const char *t[] = {text};
    add_file(c->db, store, file, "{}", t, 1, NULL, 0);
}

static void remove_file(ctx *c, const char *store, const char *file)
{
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_vsf_remove(c->db, "p", store, file), AD_OK);
    assert_int_equal(ad_db_commit(c->db), AD_OK);
}

static int64_t live_chunks(ad_kwcache *kc, ad_db *db, const char *store, int64_t *df_zebra)
{
    ad_err rc;
    ad_kwidx *x = ad_kwcache_acquire(kc, db, store, &rc);
    assert_non_null(x);
    int64_t n;
    double avg;
    ad_kwidx_stats(x, &n, &avg);
    if (df_zebra)
        *df_zebra = ad_kwidx_df(x, "zebra", 5, -1);
    ad_kwcache_release(kc, x);
    return n;
}

static void test_incremental(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_incAAAAAAAAAA");
    ad_kwcache *kc = ad_kwcache_new(1u << 30);
    int64_t df = 0;
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 0);
    add1(c, "vs_incAAAAAAAAAA", "file-1", "zebra one");
    add1(c, "vs_incAAAAAAAAAA", "file-2", "zebra two");
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 2);
    assert_int_equal(df, 2);
    /* a file replaced: its old chunks leave, the new ones count */
    assert_int_equal(ad_db_begin(c->db), AD_OK);
    assert_int_equal(ad_db_chunks_delete(c->db, "vs_incAAAAAAAAAA", "file-1"), AD_OK);
    ad_chunk_row rows[2] = {{"lion", 4, NULL, 0}, {"tiger", 5, NULL, 0}};
    assert_int_equal(ad_kw_insert_file(c->db, "vs_incAAAAAAAAAA", "file-1", rows, 2, NULL), AD_OK);
    assert_int_equal(ad_db_commit(c->db), AD_OK);
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 3);
    assert_int_equal(df, 1);
    /* many files, then most of them leave: tombstones, then a rebuild */
    for (int i = 0; i < 20; i++) {
        char f[32];
        snprintf(f, sizeof f, "file-m%d", i);
        add1(c, "vs_incAAAAAAAAAA", f, "zebra many");
    }
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 23);
    assert_int_equal(df, 21);
    remove_file(c, "vs_incAAAAAAAAAA", "file-m0");
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 22);
    assert_int_equal(df, 20);
    size_t before = ad_kwcache_bytes(kc);
    for (int i = 1; i < 20; i++) {
        char f[32];
        snprintf(f, sizeof f, "file-m%d", i);
        remove_file(c, "vs_incAAAAAAAAAA", f);
    }
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 3);
    assert_int_equal(df, 1);
    assert_true(ad_kwcache_bytes(kc) <= before); /* rebuilt without the tombstones */
    /* the whole store goes */
    assert_int_equal(ad_db_chunks_delete(c->db, "vs_incAAAAAAAAAA", NULL), AD_OK);
    assert_int_equal(live_chunks(kc, c->db, "vs_incAAAAAAAAAA", &df), 0);
    assert_int_equal(df, 0);
    ad_kwcache_free(kc);
}

static void test_budget(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_budgetAAAAAAA");
    add_store(c->db, "vs_budgetBBBBBBB");
    add1(c, "vs_budgetAAAAAAA", "file-a", "zebra a");
    add1(c, "vs_budgetBBBBBBB", "file-b", "zebra b");
    ad_kwcache *kc = ad_kwcache_new(1); /* nothing fits */
    ad_err rc;
    ad_kwidx *a = ad_kwcache_acquire(kc, c->db, "vs_budgetAAAAAAA", &rc);
    assert_non_null(a);
    assert_true(ad_kwcache_bytes(kc) > 0); /* in use: kept */
    ad_kwidx *b = ad_kwcache_acquire(kc, c->db, "vs_budgetBBBBBBB", &rc);
    assert_non_null(b);
    assert_int_equal(ad_kwidx_df(a, "zebra", 5, -1), 1);
    assert_int_equal(ad_kwidx_df(b, "zebra", 5, -1), 1);
    ad_kwcache_release(kc, a);
    ad_kwcache_release(kc, b);
    assert_int_equal(ad_kwcache_bytes(kc), 0); /* evicted once released */
    ad_kwcache_free(kc);
    /* a roomy budget keeps both; the least recently used goes first */
    kc = ad_kwcache_new(1u << 30);
    assert_int_equal(live_chunks(kc, c->db, "vs_budgetAAAAAAA", NULL), 1);
    size_t one = ad_kwcache_bytes(kc);
    assert_int_equal(live_chunks(kc, c->db, "vs_budgetBBBBBBB", NULL), 1);
    assert_int_equal(ad_kwcache_bytes(kc), 2 * one);
    ad_kwcache_free(kc);
}

/* A deleted store's index leaves the cache at once, or, while a search
 * holds it, when that search lets go; the other store's stays. */
static void test_drop(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_dropAAAAAAAAA");
    add_store(c->db, "vs_dropBBBBBBBBB");
    add1(c, "vs_dropAAAAAAAAA", "file-a", "zebra a");
    add1(c, "vs_dropBBBBBBBBB", "file-b", "zebra b");
    ad_kwcache *kc = ad_kwcache_new(1u << 30);
    assert_int_equal(live_chunks(kc, c->db, "vs_dropAAAAAAAAA", NULL), 1);
    size_t one = ad_kwcache_bytes(kc);
    assert_true(one > 0);
    assert_int_equal(live_chunks(kc, c->db, "vs_dropBBBBBBBBB", NULL), 1);
    assert_int_equal(ad_kwcache_bytes(kc), 2 * one);
    ad_kwcache_drop(kc, "vs_dropAAAAAAAAA");
    assert_int_equal(ad_kwcache_bytes(kc), one);
    ad_kwcache_drop(kc, "vs_nosuchstoreAA"); /* unknown: nothing happens */
    assert_int_equal(ad_kwcache_bytes(kc), one);
    /* In use: dropped when released; meanwhile a new acquire gets a new one. */
    ad_err rc;
    ad_kwidx *b = ad_kwcache_acquire(kc, c->db, "vs_dropBBBBBBBBB", &rc);
    assert_non_null(b);
    ad_kwcache_drop(kc, "vs_dropBBBBBBBBB");
    assert_int_equal(ad_kwcache_bytes(kc), one);
    assert_int_equal(ad_kwidx_df(b, "zebra", 5, -1), 1); /* still usable */
    ad_kwidx *b2 = ad_kwcache_acquire(kc, c->db, "vs_dropBBBBBBBBB", &rc);
    assert_non_null(b2);
    assert_true(b2 != b);
    assert_int_equal(ad_kwcache_bytes(kc), 2 * one);
    ad_kwcache_release(kc, b);
    assert_int_equal(ad_kwcache_bytes(kc), one); /* the dropped one is gone */
    ad_kwcache_release(kc, b2);
    assert_int_equal(ad_kwcache_bytes(kc), one); /* the new one stays */
    ad_kwcache_free(kc);
}

typedef struct writer {
    ctx *c;
    int files;
} writer;

static void *write_files(void *arg)
{
    writer *w = arg;
    ad_db *db = ad_store_acquire(w->c->s);
    for (int i = 0; i < w->files; i++) {
        char f[32];
        snprintf(f, sizeof f, "file-w%d", i);
        const char *t[] = {"zebra stripes", "zebra herd"};
        add_file(db, "vs_threadAAAAAAA", f, "{}", t, 2, NULL, 0);
    }
    ad_store_release(w->c->s, db);
    return NULL;
}

typedef struct reader {
    ad_store *s;
    ad_kwcache *kc;
    int64_t last;
    int rounds;
} reader;

static void *read_index(void *arg)
{
    reader *r = arg;
    ad_db *db = ad_store_acquire(r->s);
    for (int i = 0; i < r->rounds; i++) {
        ad_err rc;
        ad_kwidx *x = ad_kwcache_acquire(r->kc, db, "vs_threadAAAAAAA", &rc);
        if (!x)
            break;
        int64_t n;
        double avg;
        ad_kwidx_stats(x, &n, &avg);
        /* every chunk has "zebra"; files join whole; never goes back */
        if (ad_kwidx_df(x, "zebra", 5, -1) != n || n % 2 || n < r->last)
            r->last = -1000000;
        else
            r->last = n;
        ad_kwcache_release(r->kc, x);
    }
    ad_store_release(r->s, db);
    return NULL;
}

static void test_concurrent(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_threadAAAAAAA");
    ad_kwcache *kc = ad_kwcache_new(1u << 30);
    /* the fixture's connection is lent to the reader; the writer takes the other */
    ad_store_release(c->s, c->db);
    writer w = {c, 30};
    reader r = {c->s, kc, 0, 300};
    pthread_t tw, tr;
    assert_int_equal(pthread_create(&tw, NULL, write_files, &w), 0);
    assert_int_equal(pthread_create(&tr, NULL, read_index, &r), 0);
    pthread_join(tw, NULL);
    pthread_join(tr, NULL);
    c->db = ad_store_acquire(c->s);
    assert_true(r.last >= 0);
    assert_int_equal(live_chunks(kc, c->db, "vs_threadAAAAAAA", NULL), 60);
    ad_kwcache_free(kc);
}

/* Several searching threads (each on its own connection) share one cache
 * while a writer adds files and removes each one's predecessor (so
 * tombstones pile up and the index is rebuilt): every reader always sees
 * whole files only and never an index that went back in time, with a
 * roomy budget and with one so small that every release evicts. */
typedef struct churn {
    ctx *c;
    int files, round;
} churn;

static void *add_and_remove(void *arg)
{
    churn *w = arg;
    ad_db *db = ad_store_acquire(w->c->s);
    for (int i = 0; i < w->files; i++) {
        char f[32];
        snprintf(f, sizeof f, "file-r%dc%d", w->round, i);
        const char *t[] = {"zebra stripes", "zebra herd"};
        add_file(db, "vs_churnAAAAAAAA", f, "{}", t, 2, NULL, 0);
        if (i) { /* the file before leaves: one or two files live */
            snprintf(f, sizeof f, "file-r%dc%d", w->round, i - 1);
            assert_int_equal(ad_db_begin(db), AD_OK);
            assert_int_equal(ad_vsf_remove(db, "p", "vs_churnAAAAAAAA", f), AD_OK);
            assert_int_equal(ad_db_commit(db), AD_OK);
        }
    }
    ad_store_release(w->c->s, db);
    return NULL;
}

static void *read_churn(void *arg)
{
    reader *r = arg;
    ad_db *db = ad_store_acquire(r->s);
    for (int i = 0; i < r->rounds; i++) {
        ad_err rc;
        ad_kwidx *x = ad_kwcache_acquire(r->kc, db, "vs_churnAAAAAAAA", &rc);
        if (!x) {
            r->last = -1000000;
            break;
        }
        int64_t n;
        double avg;
        ad_kwidx_stats(x, &n, &avg);
        /* whole files of two chunks each, one or two files live */
        int64_t hits[4];
        double scores[4];
        ad_kwq q = {"zebra", 5, 1.0};
        size_t got = ad_kwidx_rank(x, &q, 1, NULL, NULL, hits, scores, 4);
        if (ad_kwidx_df(x, "zebra", 5, -1) != n || n % 2 || n > 4 ||
            got != (size_t)(n < 4 ? n : 4) || (n && avg != 2.0))
            r->last = -1000000;
        ad_kwcache_release(r->kc, x);
    }
    ad_store_release(r->s, db);
    return NULL;
}

static void test_concurrent_churn(void **state)
{
    ctx *c = *state;
    add_store(c->db, "vs_churnAAAAAAAA");
    for (int round = 0; round < 2; round++) {
        ad_kwcache *kc = ad_kwcache_new(round ? 1 : 1u << 30);
        enum { NR = 3 };
        churn w = {c, 40, round};
        reader r[NR];
        pthread_t tw, tr[NR];
        for (int i = 0; i < NR; i++) {
            r[i] = (reader){c->s, kc, 0, 400};
            assert_int_equal(pthread_create(&tr[i], NULL, read_churn, &r[i]), 0);
        }
        assert_int_equal(pthread_create(&tw, NULL, add_and_remove, &w), 0);
        pthread_join(tw, NULL);
        for (int i = 0; i < NR; i++) {
            pthread_join(tr[i], NULL);
            assert_true(r[i].last >= 0);
        }
        assert_int_equal(live_chunks(kc, c->db, "vs_churnAAAAAAAA", NULL), 2);
        if (round)
            assert_int_equal(ad_kwcache_bytes(kc), 0); /* nothing kept over the budget */
        ad_kwcache_free(kc);
        /* the next round starts from an empty store */
        assert_int_equal(ad_db_begin(c->db), AD_OK);
        char last[32];
        snprintf(last, sizeof last, "file-r%dc39", round);
        assert_int_equal(ad_vsf_remove(c->db, "p", "vs_churnAAAAAAAA", last), AD_OK);
        assert_int_equal(ad_db_commit(c->db), AD_OK);
    }
}

static int setup_many(void **state)
{
    return fixture_setup_n(state, "assistd-kwchurn", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment),
        cmocka_unit_test(test_fast_build),
        cmocka_unit_test_setup_teardown(test_incremental, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_drop, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_churn, setup_many, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
