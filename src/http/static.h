/*
 * static.h -- the playground's built files, served read-only at
 * /playground and /playground/... without an API key.
 *
 * The files live in cfg.playground_dir (the Makefile builds them there with
 * vite). Every request opens the file again below that directory, one path
 * segment at a time with O_NOFOLLOW, so no symlink, ".." or hidden name can
 * lead outside it; the open descriptor is handed to libmicrohttpd, which
 * sends it without reading it into memory.
 *
 * Ownership: ad_static_open returns a descriptor the caller closes. Nothing
 * else here allocates beyond the request's arena.
 */
#ifndef AD_STATIC_H
#define AD_STATIC_H

#include <stdbool.h>
#include <sys/stat.h>

#include "http/request.h"

/* The URL prefix the playground is served under. */
#define AD_PLAYGROUND_PREFIX "/playground"

/* True when rel (the part of the URL after "/playground/", already
 * percent-decoded) is a path that may be looked up: relative, at most 512
 * bytes, printable ASCII only, no empty, "." or ".." segments and no
 * segment starting with a dot. */
bool ad_static_path_ok(const char *rel);

/* The Content-Type for a file name, by its extension (case-insensitive);
 * "application/octet-stream" when unknown. */
const char *ad_static_ctype(const char *name);

/* True when an Accept-Encoding header value accepts gzip (a "gzip" or "*"
 * token whose q is not 0). NULL accepts nothing. */
bool ad_static_accepts_gzip(const char *accept_encoding);

/* True when an If-None-Match header value names etag (a quoted entity tag,
 * as sent in ETag): a list of entity tags compared weakly (a W/ prefix is
 * ignored), or "*". NULL or a malformed list names nothing. */
bool ad_static_etag_matches(const char *if_none_match, const char *etag);

/* Opens root/rel for reading, refusing symlinks in every component (also in
 * rel's directories) and anything but a regular file. rel must satisfy
 * ad_static_path_ok. Returns the descriptor (fstat in *st) or -1 with errno
 * set (ENOENT, ELOOP, EISDIR, EACCES, ...). */
int ad_static_open(const char *root, const char *rel, struct stat *st);

/* Handler of GET/HEAD /playground and /playground/... (req->url). */
void ad_h_playground(ad_req *req);

#endif
