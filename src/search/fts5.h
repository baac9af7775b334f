/*
 * fts5.h -- the FTS5 auxiliary functions assistd's keyword ranking needs,
 * registered on every SQLite connection of the store (store/sqlite.c calls
 * ad_fts5_register right after opening one, before the migrations run,
 * since the chunk triggers use ad_fts_docsize).
 *
 * They expose what FTS5 knows about one matching row, so that search/ can
 * compute BM25 with statistics of one vector store instead of FTS5's
 * global ones (see search.c):
 *
 *   ad_fts_tf(t, FIRST[, PRUNE])  a BLOB of little-endian uint32: the text
 *                        length in index tokens, then for each phrase
 *                        FIRST.. of the query, how often it occurs in the
 *                        text column; NULL for a row PRUNE rules out (below)
 *   ad_fts_terms(t)      the row's text as the index tokenizes it: one line
 *                        "TERM\tSURFACE\n" per token, TERM the indexed
 *                        (stemmed, folded) form and SURFACE the bytes of the
 *                        text it came from -- what pseudo-relevance feedback
 *                        reads to expand a query with words of the best
 *                        chunks, quoted in their surface form so that the
 *                        query tokenizer maps them back to TERM.
 *   ad_fts_docsize(sz)   (a plain function) the text length in index tokens
 *                        from a chunks_fts_docsize row's sz BLOB: what the
 *                        chunk triggers add to chunk_stats (an auxiliary
 *                        function cannot serve there: outside MATCH queries
 *                        FTS5 does not load a row's sizes).
 *
 * Ownership: nothing is allocated that outlives a call.
 */
#ifndef AD_FTS5_H
#define AD_FTS5_H

#include <sqlite3.h>
#include <stddef.h>

#include "util/err.h"

/* Most phrases ad_fts_tf reports on (more are not counted). */
#define AD_FTS_MAX_PHRASES 128

/* Pruning for ad_fts_tf (its optional third argument, bound with
 * sqlite3_bind_pointer as type AD_FTS_PRUNE_TYPE): a row whose BM25 score
 * cannot exceed floor -- the score it would have if its text were empty,
 * sum over phrases first+i of w[i] tf (k1 + 1) / (tf + k1 (1 - b)) -- is
 * reported as NULL before its length is read (a lookup per row that
 * dominates the cost of long scans). The caller raises floor as its list
 * of best chunks fills. */
#define AD_FTS_PRUNE_TYPE "ad_fts_prune"
typedef struct ad_fts_prune {
    size_t n;                     /* phrases with a weight */
    double w[AD_FTS_MAX_PHRASES]; /* weight x idf of phrase first + i */
    double k1, b;
    double floor;
} ad_fts_prune;

/* Registers the functions on connection h. AD_EDB when FTS5 is missing. */
ad_err ad_fts5_register(sqlite3 *h);

#endif
