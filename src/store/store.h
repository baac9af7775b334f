/*
 * store.h -- the narrow interface between handlers and durable storage.
 *
 * assistd stores every API object (assistant, thread, message, file, upload,
 * ...) as the JSON document the API returns, plus a few key columns used to
 * find and page it: kind, id, owning project, parent (the thread of a
 * message, the upload of a part, "" for top-level objects), aux (one
 * secondary filter value: a message's run_id, a file's purpose) and a
 * monotonically increasing sequence number that defines creation order.
 * Reads hand the stored JSON back verbatim, so a retrieve is one indexed
 * lookup and no re-serialisation. The default backend is SQLite in WAL mode
 * (store/sqlite.c); a PostgreSQL backend implements the same functions.
 *
 * Projects: every call takes the caller's project, and an object of another
 * project is indistinguishable from a missing one (AD_ENOTFOUND).
 *
 * Deletion is soft: a deleted object's JSON is dropped but its key row stays
 * as a tombstone, so a pagination cursor that names an object deleted in the
 * meantime still positions correctly (SDK auto-pagination while deleting).
 *
 * Threads: an ad_store is shared; each request borrows one ad_db connection
 * with ad_store_acquire and returns it with ad_store_release. A connection
 * is used by one thread at a time. Writes that touch several objects are
 * wrapped in ad_db_begin (BEGIN IMMEDIATE) / ad_db_commit; a single write
 * outside a transaction is atomic on its own. A commit returns only once the
 * write is durable against a process crash (WAL, synchronous=NORMAL).
 *
 * Ownership: ad_store_open returns a store owned by the caller
 * (ad_store_close). Connections belong to the store. Output buffers are the
 * caller's.
 */
#ifndef AD_STORE_H
#define AD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

typedef struct ad_store ad_store;
typedef struct ad_db ad_db;

typedef struct ad_obj {
    const char *kind; /* "assistant", "thread", "message", "file", ... */
    const char *id;
    const char *project;
    const char *parent; /* "" for top-level objects */
    const char *aux;    /* "" when unused */
    int64_t created_at; /* unix seconds */
} ad_obj;

ad_err ad_store_open(const char *data_dir, unsigned nconns, const ad_logger *lg, ad_store **out);
void ad_store_close(ad_store *s);
ad_db *ad_store_acquire(ad_store *s);
void ad_store_release(ad_store *s, ad_db *db);
/* Appends the checkpointer's counters to out in Prometheus text format
 * (checkpoints run and failed, WAL restarts, WAL frames at the last pass),
 * so that a WAL that stops being checkpointed shows. */
void ad_store_metrics(ad_store *s, ad_buf *out);

ad_err ad_db_begin(ad_db *db);
ad_err ad_db_commit(ad_db *db);
void ad_db_rollback(ad_db *db);
/* Defers fn(ud, committed) until the open transaction ends: committed=true
 * right after a successful ad_db_commit (the writes are visible to every
 * connection), false on ad_db_rollback (also the one ad_store_release makes
 * for a transaction left open). Without an open transaction fn(ud, true)
 * runs at once. Hooks run in registration order, on the calling thread,
 * without the writer lock; fn owns ud (it must free it in both cases). A
 * hook run by ad_store_release must not wait for a connection of the store. */
void ad_db_after_commit(ad_db *db, void (*fn)(void *ud, bool committed), void *ud);

/* Inserts a new object. AD_EEXIST if the id is taken. */
ad_err ad_db_put(ad_db *db, const ad_obj *o, const char *json, size_t len);
/* Replaces the JSON (and aux unless aux is NULL) of a live object. */
ad_err ad_db_update(ad_db *db, const char *project, const char *kind, const char *id,
                    const char *aux, const char *json, size_t len);
/* Appends the JSON of a live object to out. AD_ENOTFOUND if missing. */
ad_err ad_db_get(ad_db *db, const char *project, const char *kind, const char *id, ad_buf *out);
/* Like ad_db_get, also checking the parent (e.g. a message of that thread). */
ad_err ad_db_get_child(ad_db *db, const char *project, const char *kind, const char *parent,
                       const char *id, ad_buf *out);
/* Soft-deletes a live object. AD_ENOTFOUND if missing. */
ad_err ad_db_delete(ad_db *db, const char *project, const char *kind, const char *id);
/* Soft-deletes every live object of a kind under a parent; *count gets the number. */
ad_err ad_db_delete_children(ad_db *db, const char *project, const char *kind, const char *parent,
                             int64_t *count);
/* Counts live objects of a kind under a parent. */
ad_err ad_db_count(ad_db *db, const char *project, const char *kind, const char *parent,
                   int64_t *count);

typedef struct ad_list_q {
    const char *project, *kind, *parent; /* parent "" for top-level kinds */
    const char *aux;                     /* NULL: no filter */
    int64_t limit;                       /* rows wanted (>= 1) */
    bool asc;                            /* order by creation */
    const char *after, *before;          /* cursors (ids), NULL when absent */
} ad_list_q;

/* Called once per row in the requested order; a non-AD_OK return stops the
 * listing with that code. */
typedef ad_err (*ad_list_cb)(void *ud, const char *id, const char *json, size_t len);

/* Lists live objects. A cursor naming an unknown object is AD_ENOTFOUND.
 * With after (or no cursor), the page is the first rows following the cursor
 * in the requested order and *has_more tells whether more rows follow it.
 * With before only, the page is the rows just preceding the cursor (still
 * delivered in the requested order) and *has_more tells whether rows lie
 * beyond the page on the side away from the cursor. When both are given,
 * the page starts at after. */
ad_err ad_db_list(ad_db *db, const ad_list_q *q, ad_list_cb cb, void *ud, bool *has_more);

/* Calls cb for every live object of a kind whose aux equals aux, in every
 * project, in creation order (start-up recovery, e.g. runs left active).
 * A non-AD_OK return of cb stops the scan with that code; AD_ESTATE stops
 * it with AD_OK. */
typedef ad_err (*ad_scan_cb)(void *ud, const char *project, const char *parent, const char *id,
                             const char *json, size_t len);
ad_err ad_db_scan(ad_db *db, const char *kind, const char *aux, ad_scan_cb cb, void *ud);

/* Whether a live object of that kind and id exists in any project (used by
 * start-up maintenance, e.g. removing file bytes no row refers to). */
ad_err ad_db_exists_any(ad_db *db, const char *kind, const char *id, bool *exists);

/* ---- vector store support (file_search) ---- */

/* Per-aux totals of a kind's live objects under a parent: the number of
 * rows and the sum of the integer at JSON path `sum_path` of their bodies
 * (e.g. vector store files by status, with their usage_bytes). */
typedef struct ad_tally {
    char aux[32];
    int64_t count;
    int64_t sum;
} ad_tally;
/* Fills out[0..cap) and sets *n (groups beyond cap are dropped). */
ad_err ad_db_tally(ad_db *db, const char *project, const char *kind, const char *parent,
                   const char *sum_path, ad_tally *out, size_t cap, size_t *n);

/* Removes a row for good, tombstone included, so that its id can be used
 * again (objects whose id is derived, e.g. a vector store's file
 * "<store>/<file>"). AD_ENOTFOUND if there is no such row. */
ad_err ad_db_purge(ad_db *db, const char *project, const char *kind, const char *id);
/* The same for every row of a kind under a parent. */
ad_err ad_db_purge_children(ad_db *db, const char *project, const char *kind, const char *parent);

/*
 * Chunks: the searchable pieces of the files of a vector store, in a table
 * of their own with an optional embedding per chunk (float32 BLOB, unit
 * length), and beside them one keyword segment per (store, file): that
 * file's part of assistd's keyword index (search/kwindex.h; the store keeps
 * the bytes, search/ gives them meaning). A chunk row belongs to
 * (store_id, file_id); store ids are globally unique, so a caller that has
 * checked the store belongs to its project may use them directly.
 */
typedef struct ad_chunk_row {
    const char *text; /* UTF-8 */
    size_t len;
    const float *vec; /* NULL when the store has no embeddings */
    size_t dims;
} ad_chunk_row;

/* Inserts rows[0..n) as chunks 0..n-1 of (store_id, file_id), inside the
 * caller's transaction; ids (NULL: not wanted) gets their row ids. */
ad_err ad_db_chunks_insert(ad_db *db, const char *store_id, const char *file_id,
                           const ad_chunk_row *rows, size_t n, int64_t *ids);
/* Removes the chunks and the keyword segment of one file of a store
 * (file_id non-NULL) or of the whole store (file_id NULL), atomically. */
ad_err ad_db_chunks_delete(ad_db *db, const char *store_id, const char *file_id);
/* Every chunk of a store that has an embedding (brute-force dense search).
 * A non-AD_OK return of cb stops the scan; AD_ESTATE stops it without an
 * error. */
typedef ad_err (*ad_chunk_vec_cb)(void *ud, int64_t chunk_id, const char *file_id, const float *vec,
                                  size_t dims);
ad_err ad_db_chunks_vectors(ad_db *db, const char *store_id, ad_chunk_vec_cb cb, void *ud);
/* Appends the text of a chunk to out; *store_id/file_id get its owners. */
ad_err ad_db_chunk_get(ad_db *db, int64_t chunk_id, ad_buf *out, char store_id[64],
                       char file_id[64]);
/* Calls cb with the text of every chunk of a file, in order. */
typedef ad_err (*ad_chunk_text_cb)(void *ud, const char *text, size_t len);
ad_err ad_db_chunks_of_file(ad_db *db, const char *store_id, const char *file_id,
                            ad_chunk_text_cb cb, void *ud);

/* Keyword segments. Each write gets a new segment id, never reused. */
/* Writes (replaces) the segment of (store_id, file_id). */
ad_err ad_db_kwseg_put(ad_db *db, const char *store_id, const char *file_id, const void *seg,
                       size_t len);
/* The number of segments of a store and their largest id (0, 0: none). */
ad_err ad_db_kwseg_version(ad_db *db, const char *store_id, int64_t *count, int64_t *max_id);
/* Calls cb with the id and file of every segment of a store (unordered);
 * a non-AD_OK return stops the listing with that code (AD_ESTATE: with
 * AD_OK). */
typedef ad_err (*ad_kwseg_cb)(void *ud, int64_t seg_id, const char *file_id);
ad_err ad_db_kwseg_list(ad_db *db, const char *store_id, ad_kwseg_cb cb, void *ud);
/* Appends a segment's bytes to out. AD_ENOTFOUND: no such segment. */
ad_err ad_db_kwseg_get(ad_db *db, int64_t seg_id, ad_buf *out);

#endif
