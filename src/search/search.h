/*
 * search.h -- file_search retrieval over vector stores: keyword (BM25 over
 * assistd's own per-store index, search/kwindex.h), dense vectors (cosine over stored embeddings,
 * when an embeddings backend is configured), fused by reciprocal rank fusion.
 *
 * Scores. Every ranked list (one keyword list and, with embeddings, one
 * vector list per query) contributes 1/(k + rank) to a chunk, k = 60,
 * rank from 1. The fused sum is divided by its largest possible value,
 * nlists/(k + 1) (a chunk ranked first in every list), so a score is in
 * 0..1, 1 meaning "best in every list"; score_threshold applies to it.
 *
 * Filters on file attributes: ComparisonFilter {type eq|ne|gt|gte|lt|lte|
 * in|nin, key, value} and CompoundFilter {type and|or, filters}. A
 * comparison on a key the file does not have is false (also for ne/nin);
 * gt/gte/lt/lte compare numbers numerically and strings by bytes, and are
 * false across types.
 *
 * Ownership: hits are allocated by ad_search and freed by the caller with
 * ad_search_hits_free. The pure helpers write into caller-owned memory.
 */
#ifndef AD_SEARCH_H
#define AD_SEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/server.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

#define AD_RRF_K             60
#define AD_SEARCH_CANDIDATES 100 /* depth of each ranked list before fusion */

typedef struct ad_search_hit {
    char vector_store_id[64];
    char file_id[64];
    char filename[512];
    double score;       /* 0..1, higher is better */
    char *text;         /* the chunk's text, ad_malloc'd, owned by the hit array */
    json_t *attributes; /* the vector store file's attributes object, or NULL; owned */
} ad_search_hit;

typedef struct ad_search_req {
    const char *project;
    const char *const *store_ids;
    size_t nstores;
    const char *const *queries;
    size_t nqueries;
    int max_num_results;    /* 1..50 */
    double score_threshold; /* 0..1; 0 = keep all */
    const char *ranker;     /* "auto" or a named ranker; NULL = auto */
    const json_t *filters;  /* NULL or a ComparisonFilter/CompoundFilter */
} ad_search_req;

/* Searches; blocking (may call the embeddings backend): call it from a worker
 * thread, never from the run engine's loop thread. Touches last_active_at of
 * the stores searched. On success *hits (caller frees with ad_search_hits_free)
 * holds *n hits, best first. Errors with a user-facing reason in msg:
 * AD_ENOTFOUND a store does not exist, AD_ESTATE a store has expired,
 * AD_ECANCELED the server began to stop while the queries were embedded (a
 * failed embedding otherwise leaves a keyword-only search). */
ad_err ad_search(ad_server *srv, ad_db *db, const ad_search_req *rq, ad_search_hit **hits,
                 size_t *n, char *msg, size_t msgsize);
void ad_search_hits_free(ad_search_hit *hits, size_t n);

/* Waits up to timeout_ms until no file of these stores is in_progress.
 * AD_OK ready; AD_ESTATE timed out; AD_ENOTFOUND a store is missing. Sets
 * *expired when a store has expired. Blocking; worker threads only. */
ad_err ad_vector_stores_wait_ready(ad_server *srv, ad_db *db, const char *project,
                                   const char *const *ids, size_t n, long timeout_ms,
                                   bool *expired);

/* ---- pure helpers (search/index.c) ---- */

/* ---- keyword ranking (index.c; how it is used: search.c) ----
 *
 * BM25 with the statistics of one vector store: N chunks, average length
 * avgdl (index tokens), df chunks containing the term;
 *   idf = ln(1 + (N - df + 0.5) / (df + 0.5))        (never negative)
 *   term score = weight * idf * tf (k1 + 1) / (tf + k1 (1 - b + b len / avgdl))
 * with k1 = 1.2, b = 0.75. Pseudo-relevance feedback (RM3): the
 * AD_RM3_DOCS best chunks of the first ranking vote for their words, each
 * chunk with weight score / sum of scores and each word with its share
 * tf / len of the chunk; the AD_RM3_TERMS words with the most votes
 * (stopwords and words under 2 or over 20 bytes left out) join the query,
 * the original words keeping AD_RM3_ORIG_WEIGHT of the total weight. A
 * feedback word found in more than AD_RM3_MAX_DF of the store's chunks (and
 * in more than AD_RM3_MAX_DF_MIN) is left out of that store's second ranking: counting it stops
 * there, and it would make the second ranking walk most of the store for a word whose IDF is low
 * (chosen for speed; its quality effect is in bench/RESULTS.md). */
#define AD_BM25_K1         1.2
#define AD_BM25_B          0.75
#define AD_RM3_DOCS        10
#define AD_RM3_TERMS       10
#define AD_RM3_ORIG_WEIGHT 0.5
#define AD_RM3_MAX_DF      0.1 /* of the store's chunks */
#define AD_RM3_MAX_DF_MIN  100
#define AD_KW_MAX_WORDS    64
#define AD_KW_WORD_MAX     64 /* bytes */

typedef struct ad_kw_term {
    char word[AD_KW_WORD_MAX + 1]; /* as written (lower-cased ASCII); analysed into terms */
    double weight;
} ad_kw_term;

/* The words of a user query (words: runs of ASCII letters/digits or of
 * non-ASCII bytes; stopwords out unless nothing else is left), equal words
 * merged, each weighted by its count; at most AD_KW_MAX_WORDS. Returns the
 * number of terms. */
size_t ad_kw_terms(const char *text, ad_kw_term *out);
/* BM25 inverse document frequency (see above). */
double ad_bm25_idf(int64_t nchunks, int64_t df);
/* One term's BM25 contribution, without weight and idf. */
double ad_bm25_tf(double tf, double len, double avglen);
/* RM3 feedback words (see above) from the best chunks as analysed
 * (search/analyze.h), one line "TERM\tSURFACE\n" per token (docs[i] of
 * lens[i] bytes, first-ranking score scores[i]): at most max_terms words,
 * best first, weights summing to 1, each word in the surface form of its
 * first occurrence (lower-cased ASCII), which the analyzer maps back to
 * TERM. Returns the count. */
size_t ad_rm3_terms(const char *const *docs, const size_t *lens, const double *scores, size_t ndocs,
                    size_t max_terms, ad_kw_term *out);

/* One ranked list: chunk ids, best first. */
typedef struct ad_ranked {
    const int64_t *ids;
    size_t n;
} ad_ranked;

typedef struct ad_fused {
    int64_t id;
    double score; /* 0..1 (see the top of this file) */
} ad_fused;

/* Fuses lists[0..nlists) by reciprocal rank fusion with constant k into
 * out (capacity: the sum of the list lengths), best first (ties: smaller
 * id first); returns the number of distinct ids. */
size_t ad_rrf_fuse(const ad_ranked *lists, size_t nlists, int k, ad_fused *out);

/* Whether a file's attributes (object or NULL) satisfy a validated filter. */
bool ad_filter_match(const json_t *filter, const json_t *attributes);

/* Scales v[0..n) to unit length (a zero vector stays zero). */
void ad_vec_normalize(float *v, size_t n);
/* Dot product of a[0..n) and b[0..n). */
double ad_vec_dot(const float *a, const float *b, size_t n);

#endif
