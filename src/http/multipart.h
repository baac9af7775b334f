/*
 * multipart.h -- an incremental multipart/form-data parser (RFC 7578).
 *
 * Uploads can be hundreds of megabytes, so the parser never holds a part in
 * memory: bytes are fed in chunks of any size (as libmicrohttpd delivers
 * them) and part data is handed to the caller's callbacks as it is found,
 * ready to be streamed to disk. Only part headers are buffered, up to a hard
 * limit. The parser is a pure state machine with no I/O, which makes it a
 * libFuzzer target (fuzz/fuzz_multipart.c).
 *
 * Ownership: ad_mp_new returns a parser owned by the caller, released with
 * ad_mp_free. Strings passed to callbacks are owned by the parser and valid
 * only during the callback.
 */
#ifndef AD_MULTIPART_H
#define AD_MULTIPART_H

#include <stddef.h>

#include "util/err.h"

#define AD_MP_BOUNDARY_MAX 70 /* RFC 2046 */

typedef struct ad_mp_callbacks {
    /* A part begins. name is the form field name from Content-Disposition
     * (never NULL; "" if absent), filename is NULL when the part has none,
     * content_type is NULL when the part has no Content-Type header.
     * A non-AD_OK return aborts parsing and is returned by ad_mp_feed. */
    ad_err (*part_begin)(void *ud, const char *name, const char *filename,
                         const char *content_type);
    /* Body bytes of the current part, in order; may be called many times. */
    ad_err (*part_data)(void *ud, const char *data, size_t len);
    /* The current part is complete. */
    ad_err (*part_end)(void *ud);
} ad_mp_callbacks;

typedef struct ad_mp ad_mp;

/* Extracts the boundary parameter from a Content-Type header value such as
 * `multipart/form-data; boundary="abc"`. out must hold AD_MP_BOUNDARY_MAX+1
 * bytes. AD_EINVAL if the type is not multipart/form-data or the boundary is
 * missing, empty, too long or malformed. */
ad_err ad_mp_boundary(const char *content_type, char *out, size_t outsize);

/* max_header_bytes bounds the headers of any one part (e.g. 16 KiB). */
ad_mp *ad_mp_new(const char *boundary, const ad_mp_callbacks *cb, void *ud,
                 size_t max_header_bytes);
/* Feeds the next len bytes. Returns AD_OK, AD_EINVAL on malformed input,
 * AD_ETOOBIG when part headers exceed the limit, or a callback's error.
 * After an error the parser stays failed. Data after the closing boundary
 * (the epilogue) is ignored. */
ad_err ad_mp_feed(ad_mp *mp, const char *data, size_t len);
/* Input is complete: AD_EINVAL unless the closing boundary was seen. */
ad_err ad_mp_finish(ad_mp *mp);
/* Static description of the first error, or "" when none. */
const char *ad_mp_error(const ad_mp *mp);
void ad_mp_free(ad_mp *mp);

#endif
