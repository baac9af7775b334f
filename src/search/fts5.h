/*
 * fts5.h -- the one SQLite function the store's schema history still needs
 * from the FTS5 era: migration 3 (store/sqlite.c) filled chunk_stats with
 * ad_fts_docsize, so a database created before migration 4 replaced FTS5
 * with assistd's own keyword index (search/kwindex.h) can only be brought
 * forward with it registered. store/sqlite.c calls ad_fts5_register on
 * every connection before the migrations run.
 *
 *   ad_fts_docsize(sz)   the text length in index tokens from a
 *                        chunks_fts_docsize row's sz BLOB.
 *
 * Ownership: nothing is allocated that outlives a call.
 */
#ifndef AD_FTS5_H
#define AD_FTS5_H

#include <sqlite3.h>

#include "util/err.h"

/* Registers the function on connection h. AD_EDB on failure. */
ad_err ad_fts5_register(sqlite3 *h);

#endif
