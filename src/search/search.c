/*
 * search.c -- ad_search and ad_vector_stores_wait_ready (see search.h).
 *
 * Design. A search is a pipeline over ranked lists of chunk ids:
 *   1. every store is checked (exists in the caller's project, not expired)
 *      and its last_active_at touched;
 *   2. with an embeddings backend, all queries are embedded in one request;
 *      if that fails the search degrades to keyword-only (logged) rather
 *      than failing;
 *   3. per query, a keyword list and, with embeddings, a vector list
 *      (brute-force dot products of unit vectors, a bounded top list kept
 *      by insertion) -- each at most AD_SEARCH_CANDIDATES long. The keyword
 *      list is BM25 over the store's own index (search/kwindex.h: N,
 *      average length and document frequencies of that store only, so a
 *      store ranks as if it were alone), kept in memory per store and
 *      brought up to date with the committed segments at each search;
 *      stores are then merged by score. A second ranking adds RM3
 *      pseudo-relevance feedback (search.h), the feedback chunks' texts
 *      analysed again (search/analyze.h). ASSISTD_SEARCH_RANKER=bm25
 *      ranks without feedback (benchmarks);
 *   4. the lists are fused by RRF (index.c), the threshold applied, and the
 *      best max_num_results materialised (chunk text, file name,
 *      attributes).
 * Attribute filters are applied while the lists are built, so a filter that
 * excludes most files still fills the lists with files it accepts. Their
 * verdicts are cached per file in a small open-addressing hash table, so a
 * file's row is read once per search. Every ranker value currently runs the
 * same pipeline ("none" included: there is no separate re-ranking stage).
 */
#include "search/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ingest.h"
#include "run/backends.h"
#include "search/embed.h"
#include "search/analyze.h"
#include "search/kwindex.h"
#include "util/alloc.h"
#include "util/str.h"

#define CAND AD_SEARCH_CANDIDATES

/* ---------------------------------------------------------------- file cache */

typedef struct fentry {
    char key[AD_VSF_ROWID_MAX]; /* "" = empty slot */
    bool ok;                    /* passes the filter */
    bool loaded;
    json_t *attributes;
} fentry;

typedef struct fcache {
    fentry *slots;
    size_t cap, n;
} fcache;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static fentry *fc_slot(fcache *c, const char *key)
{
    if ((c->n + 1) * 2 > c->cap) {
        fcache g = {.cap = c->cap ? c->cap * 2 : 64};
        g.slots = ad_calloc(g.cap, sizeof *g.slots);
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].key[0]) {
                size_t j = hash(c->slots[i].key) & (g.cap - 1);
                while (g.slots[j].key[0])
                    j = (j + 1) & (g.cap - 1);
                g.slots[j] = c->slots[i];
            }
        g.n = c->n;
        ad_free(c->slots);
        *c = g;
    }
    size_t j = hash(key) & (c->cap - 1);
    while (c->slots[j].key[0] && strcmp(c->slots[j].key, key) != 0)
        j = (j + 1) & (c->cap - 1);
    if (!c->slots[j].key[0]) {
        ad_strlcpy(c->slots[j].key, key, sizeof c->slots[j].key);
        c->n++;
    }
    return &c->slots[j];
}

static void fc_free(fcache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        json_decref(c->slots[i].attributes);
    ad_free(c->slots);
}

typedef struct sctx {
    ad_db *db;
    const ad_search_req *rq;
    fcache files;
    const char *store; /* the store being scanned */
    /* the list being built */
    int64_t ids[CAND];
    double scores[CAND];
    const char *stores[CAND];
    size_t n;
    const float *qvec;
    size_t dims;
    ad_buf scratch; /* a chunk's text (feedback) */
    ad_kwcache *kw; /* the server's keyword indexes (NULL: private ones) */
    ad_err kw_err;  /* a store error met by a filter during ranking */
} sctx;

/* The cache entry of (store, file), loading the file's attributes and the
 * filter's verdict on first use. NULL on a store error. */
static fentry *file_entry(sctx *c, const char *store, const char *file)
{
    char key[AD_VSF_ROWID_MAX];
    ad_vsf_rowid(key, store, file);
    fentry *e = fc_slot(&c->files, key);
    if (e->loaded)
        return e;
    ad_err rc;
    json_t *v = ad_vsf_load(c->db, c->rq->project, store, file, &rc);
    if (!v && rc != AD_ENOTFOUND)
        return NULL;
    json_t *attrs = json_object_get(v, "attributes");
    e->attributes = json_is_object(attrs) ? json_incref(attrs) : NULL;
    e->ok = v && (!c->rq->filters || ad_filter_match(c->rq->filters, e->attributes));
    e->loaded = true;
    json_decref(v);
    return e;
}

/* Whether a chunk of file (in the store being scanned) passes the
 * request's filter; always without one. *rc gets a store error. */
static bool file_passes(sctx *c, const char *file, ad_err *rc)
{
    *rc = AD_OK;
    if (!c->rq->filters)
        return true;
    fentry *e = file_entry(c, c->store, file);
    if (!e)
        *rc = AD_EDB;
    return e && e->ok;
}

/* Inserts (id, score) into the bounded top list, best first. */
static void top_insert(sctx *c, int64_t id, double score)
{
    if (c->n == CAND && score <= c->scores[CAND - 1])
        return;
    size_t i = c->n < CAND ? c->n++ : CAND - 1;
    while (i > 0 && c->scores[i - 1] < score) {
        c->ids[i] = c->ids[i - 1];
        c->scores[i] = c->scores[i - 1];
        c->stores[i] = c->stores[i - 1];
        i--;
    }
    c->ids[i] = id;
    c->scores[i] = score;
    c->stores[i] = c->store;
}

static ad_err vector_hit(void *ud, int64_t id, const char *file, const float *vec, size_t dims)
{
    sctx *c = ud;
    if (dims != c->dims)
        return AD_OK;
    double s = ad_vec_dot(c->qvec, vec, dims);
    if (c->n == CAND && s <= c->scores[CAND - 1])
        return AD_OK;
    ad_err rc;
    if (!file_passes(c, file, &rc))
        return rc;
    top_insert(c, id, s);
    return AD_OK;
}

typedef struct scored {
    int64_t id;
    double score;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* A query term in index form (search/analyze.h) with its weight. */
typedef struct kwterm {
    char term[AD_TERM_MAX + 1];
    size_t len;
    double weight;
} kwterm;

#define MAX_TERMS (AD_KW_MAX_WORDS * 4 + AD_RM3_TERMS * 2)

typedef struct term_acc {
    kwterm *out;
    size_t n;
    double weight;
} term_acc;

/* Adds a term (merging equal ones: their weights add up, as two query
 * phrases of the same term would). */
static void add_kwterm(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    term_acc *a = ud;
    for (size_t i = 0; i < a->n; i++)
        if (a->out[i].len == tlen && !memcmp(a->out[i].term, term, tlen)) {
            a->out[i].weight += a->weight;
            return;
        }
    if (a->n == MAX_TERMS || !tlen)
        return;
    memcpy(a->out[a->n].term, term, tlen);
    a->out[a->n].term[tlen] = '\0';
    a->out[a->n].len = tlen;
    a->out[a->n].weight = a->weight;
    a->n++;
}

/* Analyzes weighted words into terms appended to a->out. */
static void words_to_terms(const ad_kw_term *words, size_t n, term_acc *a)
{
    for (size_t i = 0; i < n; i++) {
        a->weight = words[i].weight;
        ad_analyze(words[i].word, strlen(words[i].word), add_kwterm, a);
    }
}

/* Filter verdict for a keyword candidate's file (ad_kwidx_rank). */
static bool kw_accept(void *ud, const char *file_id)
{
    sctx *c = ud;
    ad_err rc;
    bool ok = file_passes(c, file_id, &rc);
    if (rc)
        c->kw_err = rc;
    return ok;
}

/* Ranks the chunks of store c->store for terms[0..n) by BM25 with the
 * store's own statistics (search/kwindex.h); the best CAND are appended to
 * all[] (*m counts). df[i] is the store's document frequency of terms[i],
 * counted here when negative (and kept for the next ranking of the same
 * terms). Terms from index nfb on are feedback words, left out when too
 * common (search.h). */
static ad_err bm25_store(sctx *c, const kwterm *terms, size_t n, size_t nfb, int64_t *df,
                         scored *all, size_t *m)
{
    ad_err rc;
    ad_kwidx *x = ad_kwcache_acquire(c->kw, c->db, c->store, &rc);
    if (!x)
        return rc;
    int64_t nchunks;
    double avglen;
    ad_kwidx_stats(x, &nchunks, &avglen);
    ad_kwq q[MAX_TERMS];
    size_t nq = 0;
    int64_t maxdf = (int64_t)(AD_RM3_MAX_DF * (double)nchunks);
    if (maxdf < AD_RM3_MAX_DF_MIN)
        maxdf = AD_RM3_MAX_DF_MIN;
    for (size_t i = 0; i < n && nchunks > 0; i++) {
        bool original = i < nfb; /* feedback words: the df cut applies */
        if (df[i] < 0)
            df[i] = ad_kwidx_df(x, terms[i].term, terms[i].len, original ? -1 : maxdf + 1);
        if (df[i] > 0 && (original || df[i] <= maxdf))
            q[nq++] = (ad_kwq){terms[i].term, terms[i].len,
                               terms[i].weight * ad_bm25_idf(nchunks, df[i])};
    }
    int64_t ids[CAND];
    double scores[CAND];
    c->kw_err = AD_OK;
    size_t got =
        nq ? ad_kwidx_rank(x, q, nq, c->rq->filters ? kw_accept : NULL, c, ids, scores, CAND) : 0;
    ad_kwcache_release(c->kw, x);
    for (size_t i = 0; i < got; i++)
        all[(*m)++] = (scored){ids[i], scores[i]};
    return c->kw_err;
}

/* One weighted query over every store: all[] gets each store's best CAND,
 * *m counts them; dfs holds MAX_TERMS document frequencies per store. */
static ad_err bm25_all(sctx *c, const kwterm *terms, size_t n, size_t nfb, int64_t *dfs,
                       scored *all, size_t *m)
{
    ad_err rc = AD_OK;
    *m = 0;
    for (size_t s = 0; s < c->rq->nstores && !rc; s++) {
        c->store = c->rq->store_ids[s];
        rc = bm25_store(c, terms, n, nfb, dfs + s * MAX_TERMS, all, m);
    }
    qsort(all, *m, sizeof *all, cmp_scored);
    return rc;
}

typedef struct lines_acc {
    ad_buf *out;
    const char *text;
    bool full;
} lines_acc;

/* "TERM\tSURFACE\n" per token: what ad_rm3_terms reads. */
static void add_line(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    lines_acc *a = ud;
    if (a->full)
        return;
    a->full = ad_buf_add(a->out, term, tlen) || ad_buf_addc(a->out, '\t') ||
              ad_buf_add(a->out, a->text + start, end - start) || ad_buf_addc(a->out, '\n');
}

/* The default ranker: BM25 per store, then RM3 pseudo-relevance feedback
 * (search.h): the words of the best chunks of a first ranking are added
 * to the query and everything is ranked again. */
static ad_err keyword_list_bm25(sctx *c, const char *query, bool feedback, scored *all, size_t *m)
{
    ad_kw_term words[AD_KW_MAX_WORDS] = {0};
    kwterm *terms = ad_calloc(MAX_TERMS, sizeof *terms);
    term_acc ta = {.out = terms};
    size_t nwords = ad_kw_terms(query, words);
    words_to_terms(words, nwords, &ta);
    size_t n = ta.n;
    *m = 0;
    int64_t *dfs = ad_calloc(c->rq->nstores * MAX_TERMS + 1, sizeof *dfs);
    ad_err rc = AD_OK;
    if (!n)
        goto out;
    for (size_t i = 0; i < c->rq->nstores * MAX_TERMS; i++)
        dfs[i] = -1;
    rc = bm25_all(c, terms, n, n, dfs, all, m);
    if (rc || !*m || !feedback)
        goto out;
    /* Feedback from the first ranking's best chunks, analysed again. */
    size_t nfb = *m < AD_RM3_DOCS ? *m : AD_RM3_DOCS;
    ad_buf docs[AD_RM3_DOCS];
    const char *texts[AD_RM3_DOCS];
    size_t lens[AD_RM3_DOCS];
    double scores[AD_RM3_DOCS];
    for (size_t i = 0; i < nfb; i++)
        ad_buf_init(&docs[i], 64u * 1024 * 1024);
    size_t got = 0;
    for (size_t i = 0; i < nfb && !rc; i++) {
        char store[64], file[64];
        ad_buf_reset(&c->scratch);
        ad_err r = ad_db_chunk_get(c->db, all[i].id, &c->scratch, store, file);
        if (r == AD_ENOTFOUND)
            continue;
        rc = r;
        if (rc)
            break;
        lines_acc la = {.out = &docs[got], .text = c->scratch.ptr ? c->scratch.ptr : ""};
        ad_analyze(la.text, c->scratch.len, add_line, &la);
        texts[got] = docs[got].ptr ? docs[got].ptr : "";
        lens[got] = docs[got].len;
        scores[got] = all[i].score;
        got++;
    }
    ad_kw_term fb[AD_RM3_TERMS];
    size_t nf = rc ? 0 : ad_rm3_terms(texts, lens, scores, got, AD_RM3_TERMS, fb);
    for (size_t i = 0; i < nfb; i++)
        ad_buf_free(&docs[i]);
    if (rc || !nf)
        goto out;
    /* The expanded query: the original terms share AD_RM3_ORIG_WEIGHT, the
     * feedback words the rest (a term in both gets both shares). */
    double qsum = 0;
    for (size_t i = 0; i < n; i++)
        qsum += terms[i].weight;
    for (size_t i = 0; i < n; i++)
        terms[i].weight = AD_RM3_ORIG_WEIGHT * terms[i].weight / qsum;
    for (size_t j = 0; j < nf; j++)
        fb[j].weight *= 1 - AD_RM3_ORIG_WEIGHT;
    words_to_terms(fb, nf, &ta);
    rc = bm25_all(c, terms, ta.n, n, dfs, all, m);
out:
    ad_free(dfs);
    ad_free(terms);
    return rc;
}

/* The keyword list of one query over every store: ids[] (CAND capacity). */
static ad_err keyword_list(sctx *c, const char *query, int64_t *ids, size_t *n)
{
    *n = 0;
    scored *all = ad_calloc(CAND * c->rq->nstores + 1, sizeof *all);
    size_t m = 0;
    const char *ranker = getenv("ASSISTD_SEARCH_RANKER");
    ad_err rc = keyword_list_bm25(c, query, !ranker || strcmp(ranker, "bm25") != 0, all, &m);
    for (size_t i = 0; i < m && i < CAND; i++)
        ids[(*n)++] = all[i].id;
    ad_free(all);
    return rc;
}

static ad_err vector_list(sctx *c, const float *qvec, size_t dims, int64_t *ids, size_t *n)
{
    c->n = 0;
    c->qvec = qvec;
    c->dims = dims;
    ad_err rc = AD_OK;
    for (size_t s = 0; s < c->rq->nstores && !rc; s++) {
        c->store = c->rq->store_ids[s];
        rc = ad_db_chunks_vectors(c->db, c->store, vector_hit, c);
    }
    for (size_t i = 0; i < c->n; i++)
        ids[i] = c->ids[i];
    *n = c->n;
    return rc;
}

/* Checks and touches every store. */
static ad_err check_stores(ad_db *db, const ad_search_req *rq, int64_t now, char *msg,
                           size_t msgsize)
{
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    ad_err rc = AD_OK;
    for (size_t i = 0; i < rq->nstores && !rc; i++) {
        const char *id = rq->store_ids[i];
        ad_buf_reset(&b);
        rc = ad_db_get(db, rq->project, "vector_store", id, &b);
        if (rc == AD_ENOTFOUND) {
            snprintf(msg, msgsize, "No vector store found with id '%.128s'.", id);
            break;
        }
        json_t *vs = rc ? NULL : json_loadb(b.ptr, b.len, 0, NULL);
        if (!rc && !vs)
            rc = AD_EDB;
        bool expired = !rc && ad_vector_store_expired(vs, now);
        json_decref(vs);
        if (!rc && expired) {
            snprintf(msg, msgsize,
                     "Vector store %.128s is expired. Create a new vector store and try again.",
                     id);
            rc = AD_ESTATE;
        }
        if (!rc)
            rc = ad_vector_store_touch(db, rq->project, id, now);
    }
    ad_buf_free(&b);
    if (rc && rc != AD_ENOTFOUND && rc != AD_ESTATE)
        snprintf(msg, msgsize, "The vector store could not be read.");
    return rc;
}

/* Fills hit h from chunk id; false when the chunk vanished meanwhile. */
static ad_err materialise(sctx *c, int64_t id, double score, ad_search_hit *h, bool *ok)
{
    ad_buf b;
    ad_buf_init(&b, 64u * 1024 * 1024);
    *ok = false;
    ad_err rc = ad_db_chunk_get(c->db, id, &b, h->vector_store_id, h->file_id);
    if (rc == AD_ENOTFOUND) {
        ad_buf_free(&b);
        return AD_OK;
    }
    if (rc) {
        ad_buf_free(&b);
        return rc;
    }
    /* Candidates come from the indexes of the requested stores; a chunk of
     * any other store is never shown (defence in depth). */
    bool mine = false;
    for (size_t i = 0; i < c->rq->nstores && !mine; i++)
        mine = !strcmp(c->rq->store_ids[i], h->vector_store_id);
    if (!mine) {
        ad_buf_free(&b);
        return AD_OK;
    }
    fentry *e = file_entry(c, h->vector_store_id, h->file_id);
    if (!e) {
        ad_buf_free(&b);
        return AD_EDB;
    }
    /* The filter was applied to the file the index holds the chunk under;
     * the row read now must pass it too (a chunk id freed by a deletion
     * and reused by a file ingested since the index was read, or a
     * damaged segment, would otherwise slip past it). */
    if (c->rq->filters && !e->ok) {
        ad_buf_free(&b);
        return AD_OK;
    }
    h->score = score;
    h->text = ad_strndup(b.ptr ? b.ptr : "", b.len);
    h->attributes = e->attributes ? json_deep_copy(e->attributes) : NULL;
    ad_buf_reset(&b);
    if (!ad_db_get(c->db, c->rq->project, "file", h->file_id, &b)) {
        json_t *f = json_loadb(b.ptr, b.len, 0, NULL);
        const char *name = json_string_value(json_object_get(f, "filename"));
        ad_strlcpy(h->filename, name ? name : "", sizeof h->filename);
        json_decref(f);
    }
    ad_buf_free(&b);
    *ok = true;
    return AD_OK;
}

ad_err ad_search(ad_server *srv, ad_db *db, const ad_search_req *rq, ad_search_hit **hits,
                 size_t *n, char *msg, size_t msgsize)
{
    *hits = NULL;
    *n = 0;
    msg[0] = '\0';
    int64_t now = (int64_t)time(NULL);
    ad_err rc = check_stores(db, rq, now, msg, msgsize);
    if (rc)
        return rc;
    sctx *c = ad_calloc(1, sizeof *c);
    c->db = db;
    c->rq = rq;
    c->kw = srv ? srv->kwcache : NULL;
    ad_buf_init(&c->scratch, 64u * 1024 * 1024);
    size_t nq = rq->nqueries;
    float *qvecs = NULL;
    size_t dims = 0;
    const ad_embeddings_cfg *ecfg = srv ? ad_backends_embeddings(srv->backends) : NULL;
    if (ecfg && nq) {
        size_t *lens = ad_calloc(nq, sizeof *lens);
        for (size_t i = 0; i < nq; i++)
            lens[i] = strlen(rq->queries[i]);
        char emsg[300] = "";
        rc =
            ad_embed(ecfg, &srv->stopping, rq->queries, lens, nq, &qvecs, &dims, emsg, sizeof emsg);
        if (rc && rc != AD_ECANCELED) {
            ad_log(&srv->log, AD_LOG_WARN, "search: embedding the query failed (%s); keyword only",
                   emsg);
            rc = AD_OK;
        }
        ad_free(lens);
    }
    size_t maxlists = nq * 2;
    int64_t *ids = ad_calloc(maxlists * CAND + 1, sizeof *ids);
    ad_ranked *lists = ad_calloc(maxlists + 1, sizeof *lists);
    ad_fused *fused = ad_calloc(maxlists * CAND + 1, sizeof *fused);
    size_t nlists = 0, total = 0;
    for (size_t q = 0; q < nq && !rc; q++) {
        size_t k = 0;
        /* Empty lists are left out: they would only lower every score. */
        rc = keyword_list(c, rq->queries[q], ids + total, &k);
        if (k)
            lists[nlists++] = (ad_ranked){ids + total, k};
        total += k;
        if (!rc && qvecs) {
            rc = vector_list(c, qvecs + q * dims, dims, ids + total, &k);
            if (k)
                lists[nlists++] = (ad_ranked){ids + total, k};
            total += k;
        }
    }
    size_t nf = rc ? 0 : ad_rrf_fuse(lists, nlists, AD_RRF_K, fused);
    int want = rq->max_num_results > 0 ? rq->max_num_results : 10;
    ad_search_hit *out = ad_calloc((size_t)want + 1, sizeof *out);
    size_t got = 0;
    for (size_t i = 0; i < nf && !rc && got < (size_t)want; i++) {
        if (fused[i].score < rq->score_threshold)
            break;
        bool ok = false;
        rc = materialise(c, fused[i].id, fused[i].score, &out[got], &ok);
        if (ok)
            got++;
    }
    if (rc) {
        snprintf(msg, msgsize, "%s",
                 rc == AD_ECANCELED ? "The server is shutting down." : "The search failed.");
        ad_search_hits_free(out, got + 1);
    } else {
        *hits = out;
        *n = got;
    }
    ad_free(fused);
    ad_free(lists);
    ad_free(ids);
    ad_free(qvecs);
    fc_free(&c->files);
    ad_buf_free(&c->scratch);
    ad_free(c);
    return rc;
}

void ad_search_hits_free(ad_search_hit *hits, size_t n)
{
    if (!hits)
        return;
    for (size_t i = 0; i < n; i++) {
        ad_free(hits[i].text);
        json_decref(hits[i].attributes);
    }
    ad_free(hits);
}

ad_err ad_vector_stores_wait_ready(ad_server *srv, ad_db *db, const char *project,
                                   const char *const *ids, size_t n, long timeout_ms, bool *expired)
{
    (void)srv;
    *expired = false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ad_buf b;
    ad_buf_init(&b, AD_VS_JSON_MAX);
    ad_err rc = AD_OK;
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < n && !rc; i++) {
            ad_buf_reset(&b);
            rc = ad_db_get(db, project, "vector_store", ids[i], &b);
            json_t *vs = rc ? NULL : json_loadb(b.ptr, b.len, 0, NULL);
            if (!rc && !vs)
                rc = AD_EDB;
            bool exp = false;
            if (!rc)
                rc = ad_vector_store_render(db, project, vs, (int64_t)time(NULL), &exp);
            if (!rc) {
                *expired = *expired || exp;
                busy = busy || json_integer_value(json_object_get(
                                   json_object_get(vs, "file_counts"), "in_progress")) > 0;
            }
            json_decref(vs);
        }
        if (rc || !busy)
            break;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) {
            rc = AD_ESTATE;
            break;
        }
        struct timespec d = {0, 100 * 1000000L};
        nanosleep(&d, NULL);
    }
    ad_buf_free(&b);
    return rc;
}
