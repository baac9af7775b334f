/*
 * ingest.h -- vector store files: their stored form, and the background
 * workers that turn an attached file into searchable chunks.
 *
 * Storage (all in the generic object store, store.h):
 *   "vector_store"            id vs_..., the VectorStoreObject without the
 *                             fields computed on read (file_counts,
 *                             usage_bytes, status, expires_at).
 *   "vector_store_file"       id "<vs id>/<file id>", parent = the store,
 *                             aux = status; body = the VectorStoreFileObject
 *                             plus private keys starting with '_' ("_batch":
 *                             the batch that attached it), stripped on output.
 *   "vector_store_file_batch" id vsfb_..., parent = the store.
 *   "vector_store_batch_file" id "<batch id>/<file id>", parent = the batch,
 *                             aux = status, body = a copy of the file's JSON:
 *                             lists and counts of a batch's files are then
 *                             ordinary indexed lists. ad_vsf_save keeps both
 *                             rows in step.
 * Counts and usage are computed on read from these rows (ad_db_tally), so
 * they can never disagree with the files.
 *
 * Pipeline (one job per vector store file, FIFO, a small thread pool):
 * load the file row -> ad_extract_file -> ad_chunk_text (o200k tokens,
 * the file's static chunking) -> embeddings in batches when configured
 * (search/embed.h) -> one transaction: insert the chunks and mark the file
 * completed, only if it is still in_progress (a cancel or delete meanwhile
 * wins). Failures mark it failed with last_error {unsupported_file |
 * invalid_file | server_error}. Durability: files found in_progress at
 * start-up are queued again (the job is idempotent: chunks are written in
 * the same transaction as the status).
 *
 * Ownership and threads: ad_ingest_start creates srv->ingest (owned by the
 * server, freed by ad_ingest_stop, which joins the workers). enqueue is
 * thread-safe. The helpers below run on the caller's connection and
 * transaction.
 */
#ifndef AD_INGEST_H
#define AD_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/server.h"
#include "store/store.h"
#include "util/err.h"

#define AD_VSF_ROWID_MAX 160 /* "<store id>/<file id>" */
#define AD_VS_JSON_MAX   (4u * 1024 * 1024)

typedef struct ad_ingest ad_ingest;

/* Starts nthreads workers and queues every file left in_progress. */
ad_err ad_ingest_start(ad_server *srv, unsigned nthreads);
/* Stops the workers (a job being processed is abandoned and stays
 * in_progress, to be resumed at the next start) and frees srv->ingest. */
void ad_ingest_stop(ad_server *srv);
/* Queues a vector store file for processing once db's open transaction (the
 * one that wrote the file's row) commits; dropped if it rolls back. With db
 * NULL, or no transaction open, it is queued at once. NULL ing (no workers)
 * is ignored. */
void ad_ingest_enqueue(ad_ingest *ing, ad_db *db, const char *project, const char *store_id,
                       const char *file_id);

/* "<store>/<file>" row id of a vector store file, or of a batch member. */
void ad_vsf_rowid(char out[AD_VSF_ROWID_MAX], const char *parent, const char *file_id);
/* Loads a vector store file (with its private keys). New reference or NULL;
 * *rc says why. */
json_t *ad_vsf_load(ad_db *db, const char *project, const char *store_id, const char *file_id,
                    ad_err *rc);
/* Inserts (insert=true) or replaces a vector store file and its batch member
 * row (when it has "_batch"); aux = its status. */
ad_err ad_vsf_save(ad_db *db, const char *project, const json_t *vsf, bool insert);
/* Removes a vector store file, its batch member row and its chunks. */
ad_err ad_vsf_remove(ad_db *db, const char *project, const char *store_id, const char *file_id);
/* Removes a file from every vector store of the project (as ad_vsf_remove;
 * stores without it are skipped): DELETE /files/{id} does, as OpenAI's. */
ad_err ad_vsf_remove_everywhere(ad_db *db, const char *project, const char *file_id);
/* A copy of obj without its private ('_') keys. New reference. */
json_t *ad_vsf_public(const json_t *obj);

/* Adds the computed fields to a stored vector store (file_counts,
 * usage_bytes, status, expires_at); *expired tells whether it has expired. */
ad_err ad_vector_store_render(ad_db *db, const char *project, json_t *vs, int64_t now,
                              bool *expired);
/* Whether a stored vector store has expired at now (expires_after, anchor
 * last_active_at), without reading its files as ad_vector_store_render does. */
bool ad_vector_store_expired(const json_t *vs, int64_t now);
/* Per-status counts of a store's (parent "vector_store_file") or a batch's
 * (parent "vector_store_batch_file") files as a file_counts object; *usage
 * gets the usage_bytes sum. New reference, or NULL on a store error. */
json_t *ad_vs_file_counts(ad_db *db, const char *project, const char *kind, const char *parent,
                          int64_t *usage);
/* Sets last_active_at of a stored vector store to now (saved). */
ad_err ad_vector_store_touch(ad_db *db, const char *project, const char *store_id, int64_t now);

#endif
