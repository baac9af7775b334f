/*
 * kwindex.h -- assistd's own keyword index: per-file segments stored beside
 * the chunks, and per-store inverted indexes in memory built from them.
 *
 * Segment: what one file of one store contributes to the index, built by
 * the ingest worker from the chunk texts (search/analyze.h) before it takes
 * the store's writer lock, and written in the transaction that inserts the
 * chunks (store.h, ad_db_kwseg_put). Layout (varint = unsigned LEB128):
 *   'K' 1                      magic and version
 *   varint nchunks
 *   nchunks x 8 bytes          chunk row ids, little-endian (ad_kwseg_set_ids)
 *   nchunks x varint           chunk lengths in terms
 *   varint nterms
 *   nterms x { varint len, term bytes, varint npostings,
 *              npostings x { varint ordinal delta, varint tf } }
 * Ordinals (0..nchunks-1, the chunk's position in the file) ascend within a
 * term; the first delta is the ordinal itself.
 *
 * In-memory index of one store (ad_kwidx): the segments of every file of
 * the store appended one after another; chunk k (0..) has its row id, its
 * length and its file; the term dictionary is a hash table whose entries
 * hold arrays of (chunk, tf) postings in chunk order. A file that leaves
 * the store is tombstoned (a bit per chunk) and its chunks stop counting
 * in N, total length and df; when a quarter of the chunks are tombstones
 * the index is rebuilt from the segments.
 *
 * Up to date: kw_segments rows get ids that are never reused, so the pair
 * (number of segments of the store, largest segment id) changes whenever a
 * file joins, is replaced or leaves. ad_kwcache_acquire reads the pair
 * (one indexed lookup) and, when it differs from the one the index was
 * built at, synchronises the index: files whose segment is gone are
 * tombstoned, segments it lacks are loaded. A search therefore sees every
 * commit that finished before it started, whichever path made it (ingest,
 * file deletion, store deletion, another process).
 *
 * Cache (ad_kwcache, one per server, hung off ad_server): the loaded
 * indexes, least recently used first out when their memory exceeds the
 * budget (ASSISTD_SEARCH_CACHE_MB). Each index has a read-write lock:
 * searches hold it shared while ranking, a synchronisation holds it
 * exclusively; an index in use is never evicted (reference count). A
 * deleted store's index is dropped at once (ad_kwcache_drop), or with its
 * last search.
 *
 * Ownership: ad_kwcache_new's result is the caller's (ad_kwcache_free).
 * ad_kwcache_acquire lends an index until ad_kwcache_release; with a NULL
 * cache the index is private to the call pair (built, then freed).
 * ad_kwseg_build appends to the caller's buffer.
 */
#ifndef AD_KWINDEX_H
#define AD_KWINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

#define AD_KWSEG_MAX (256u * 1024 * 1024) /* bytes of one segment */

/* Builds the segment of chunks rows[0..n) into out (row ids left 0).
 * AD_ETOOBIG when it would exceed out's maximum. Rows that overlap the row
 * before them (800/400 chunking: rows cut from one text, each starting
 * inside the previous) are analysed in one pass over their text. */
ad_err ad_kwseg_build(const ad_chunk_row *rows, size_t n, ad_buf *out);
/* The same segment, built by analysing each chunk on its own (the plain
 * way ad_kwseg_build's single pass over overlapping chunks must agree
 * with, byte for byte; for tests). */
ad_err ad_kwseg_build_plain(const ad_chunk_row *rows, size_t n, ad_buf *out);
/* Writes the chunk row ids ids[0..n) into a built segment. AD_EINVAL when
 * the segment does not hold n chunks. */
ad_err ad_kwseg_set_ids(unsigned char *seg, size_t len, const int64_t *ids, size_t n);
/* Whether seg[0..len) is a well-formed segment (*nchunks gets its count). */
bool ad_kwseg_valid(const unsigned char *seg, size_t len, size_t *nchunks);
/* Inserts the chunks of (store, file) and their segment, inside the
 * caller's transaction (ad_db_chunks_insert + ad_kwseg_build/set_ids +
 * ad_db_kwseg_put). seg: a segment built from the same rows, or NULL to
 * build it here. */
ad_err ad_kw_insert_file(ad_db *db, const char *store_id, const char *file_id,
                         const ad_chunk_row *rows, size_t n, ad_buf *seg);

typedef struct ad_kwidx ad_kwidx;
typedef struct ad_kwcache ad_kwcache;

/* budget: bytes of loaded indexes kept (at least one index is always kept
 * while it is in use). */
ad_kwcache *ad_kwcache_new(size_t budget);
void ad_kwcache_free(ad_kwcache *c);
/* The budget from ASSISTD_SEARCH_CACHE_MB (default 2048 MB). */
size_t ad_kwcache_env_budget(void);
/* Bytes of the indexes held (for tests and logs). */
size_t ad_kwcache_bytes(ad_kwcache *c);

/* The index of a store, up to date with the store's committed segments,
 * held for reading until ad_kwcache_release. NULL with *rc on a store
 * error. c may be NULL (a private index, built for this use). */
ad_kwidx *ad_kwcache_acquire(ad_kwcache *c, ad_db *db, const char *store_id, ad_err *rc);
void ad_kwcache_release(ad_kwcache *c, ad_kwidx *x);
/* The store store_id was deleted: its index leaves the cache now, or, when
 * a search still holds it, as that search releases it (a later acquire
 * builds a new one). Its memory no longer waits for budget pressure. */
void ad_kwcache_drop(ad_kwcache *c, const char *store_id);

/* Live chunks and their average length in terms. */
void ad_kwidx_stats(const ad_kwidx *x, int64_t *chunks, double *avglen);
/* Live chunks containing term[0..n), counting stopped above limit (< 0:
 * no limit). */
int64_t ad_kwidx_df(const ad_kwidx *x, const char *term, size_t n, int64_t limit);

typedef struct ad_kwq {
    const char *term;
    size_t len;
    double w; /* query weight x idf */
} ad_kwq;

/* Filter verdict for a candidate's file; called at most once per file. */
typedef bool (*ad_kw_accept)(void *ud, const char *file_id);

/* BM25 (k1 AD_BM25_K1, b AD_BM25_B, search.h) of every live chunk
 * containing a query term: score = sum of q[i].w tf (k1 + 1) /
 * (tf + k1 (1 - b + b len / avglen)). The best k chunks with a positive
 * score whose file accept (NULL: all) takes go to ids/scores, best first
 * (ties: smaller row id first); returns how many. */
size_t ad_kwidx_rank(const ad_kwidx *x, const ad_kwq *q, size_t nq, ad_kw_accept accept, void *ud,
                     int64_t *ids, double *scores, size_t k);

#endif
