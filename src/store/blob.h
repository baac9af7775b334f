/*
 * blob.h -- file bytes on disk, published atomically.
 *
 * Uploaded bytes are streamed into a temporary file under DATA/tmp, and only
 * when complete are they fsynced, renamed to DATA/files/ID and the directory
 * fsynced. A crash at any moment therefore leaves either no file or the
 * whole file, never a half-written one under its final name. Temporary files
 * left by a crash are removed at start-up, as are published files that no
 * live object refers to (the bytes are published before the row is inserted,
 * and the row deleted before the bytes).
 *
 * Ownership: an ad_blob_tmp is a caller-owned value; ad_blob_publish or
 * ad_blob_abort must end it exactly once.
 */
#ifndef AD_BLOB_H
#define AD_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/log.h"

typedef struct ad_blob_tmp {
    int fd;
    uint64_t size;
    uint64_t max;    /* writes beyond max fail with AD_ETOOBIG */
    char path[1100]; /* temporary path */
} ad_blob_tmp;

/* Creates DATA/tmp and DATA/files if needed and removes stale temporaries. */
ad_err ad_blob_init(const char *data_dir, const ad_logger *lg);
ad_err ad_blob_tmp_open(const char *data_dir, uint64_t max, ad_blob_tmp *t);
ad_err ad_blob_tmp_write(ad_blob_tmp *t, const void *p, size_t n);
/* fsync, rename to DATA/<subdir>/<id>, fsync the directory; ends t. */
ad_err ad_blob_publish(const char *data_dir, ad_blob_tmp *t, const char *subdir, const char *id);
/* Closes and removes the temporary; ends t. Safe on a zeroed/closed t. */
void ad_blob_abort(ad_blob_tmp *t);
/* Path of a published blob; false if it does not fit. */
bool ad_blob_path(const char *data_dir, const char *subdir, const char *id, char *out,
                  size_t outsize);
/* Opens a published blob read-only; *size gets its length. */
ad_err ad_blob_open(const char *data_dir, const char *subdir, const char *id, int *fd,
                    uint64_t *size);
ad_err ad_blob_remove(const char *data_dir, const char *subdir, const char *id);

/* Start-up maintenance: removes every published blob of DATA/<subdir> for
 * which live(ud, id) is false -- bytes whose row a crash kept from being
 * inserted, or whose row was deleted before the bytes. Call it before the
 * HTTP front starts (a blob is published before its row). *removed gets the
 * count. */
typedef bool (*ad_blob_live_fn)(void *ud, const char *id);
ad_err ad_blob_sweep(const char *data_dir, const char *subdir, ad_blob_live_fn live, void *ud,
                     int *removed);

#endif
