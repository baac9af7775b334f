/*
 * sbx_internal.h -- pieces of the code_interpreter sandbox shared between the
 * files of src/sandbox/ (and their unit and fuzz tests); not for other modules.
 *
 *  - proto.c: the streaming parser of the driver's frames and the bounded
 *    collector of what the cell printed. Both consume untrusted bytes.
 *  - seccomp.c: the seccomp filter, compiled to BPF.
 *  - files.c: snapshots of a session directory and safe copies in and out.
 *
 * Ownership is stated with each type below.
 */
#ifndef AD_SBX_INTERNAL_H
#define AD_SBX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* ---- frames: TYPE SP LENGTH LF PAYLOAD (see share/sandbox/driver.py) ---- */

/* Called once per complete frame; p is valid only during the call. A
 * non-AD_OK return stops parsing and becomes the parser's sticky error. */
typedef ad_err (*ad_sbx_frame_fn)(void *ctx, char type, const char *p, size_t n);

/* Streaming parser. The struct is the caller's; ad_sbx_proto_free releases
 * the payload buffer. After an error every further feed returns it again. */
typedef struct ad_sbx_proto {
    int state;  /* 0 header, 1 payload, 2 failed */
    ad_err err; /* sticky error once state == 2 */
    char head[16];
    size_t hlen;
    char type;
    size_t need; /* payload bytes still missing */
    ad_buf payload;
} ad_sbx_proto;

void ad_sbx_proto_init(ad_sbx_proto *p, size_t max_payload);
void ad_sbx_proto_reset(ad_sbx_proto *p); /* back to the start of a frame */
void ad_sbx_proto_free(ad_sbx_proto *p);
/* AD_EINVAL on a malformed header, AD_ETOOBIG on a payload over the limit,
 * or the callback's error. */
ad_err ad_sbx_proto_feed(ad_sbx_proto *p, const char *data, size_t n, ad_sbx_frame_fn fn,
                         void *ctx);
/* Appends one frame to out. */
ad_err ad_sbx_frame_append(ad_buf *out, char type, const char *payload, size_t n);

/* ---- bounded output collector ---- */

/* Keeps the first `head_max` bytes and the last `tail_max` bytes of a stream
 * and counts what was dropped in between. The struct is the caller's;
 * ad_sbx_out_free releases its memory. */
typedef struct ad_sbx_out {
    char *head;
    size_t head_len, head_max;
    char *tail; /* ring buffer */
    size_t tail_len, tail_pos, tail_max;
    uint64_t dropped;
} ad_sbx_out;

void ad_sbx_out_init(ad_sbx_out *o, size_t head_max, size_t tail_max);
void ad_sbx_out_add(ad_sbx_out *o, const char *p, size_t n);
/* The collected text as valid UTF-8 without NUL bytes (invalid sequences
 * become U+FFFD) with a "[... N bytes truncated ...]" marker where bytes were
 * dropped; the caller frees *text with ad_free. */
void ad_sbx_out_finish(ad_sbx_out *o, char **text, size_t *len);
void ad_sbx_out_free(ad_sbx_out *o);

/* ---- seccomp ---- */

/* The seccomp BPF program (raw struct sock_filter array) for --seccomp,
 * appended to out. AD_EINTERNAL when libseccomp fails. */
ad_err ad_sbx_seccomp_bpf(ad_buf *out);

/* ---- session directory ---- */

typedef struct ad_sbx_entry {
    char name[256]; /* path relative to the session directory */
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino;
} ad_sbx_entry;

/* A snapshot of the regular files under a directory (symlinks and special
 * files are ignored, never followed). Owned by the caller; free with
 * ad_sbx_snap_free. */
typedef struct ad_sbx_snap {
    ad_sbx_entry *e;
    size_t n, cap;
    uint64_t total; /* bytes in regular files */
    bool truncated; /* more entries (or depth) than the scan looks at */
} ad_sbx_snap;

ad_err ad_sbx_snap_take(int dirfd, ad_sbx_snap *s);
void ad_sbx_snap_free(ad_sbx_snap *s);
/* Entry of `name` in s, or NULL. */
const ad_sbx_entry *ad_sbx_snap_find(const ad_sbx_snap *s, const char *name);
/* Total bytes of regular files under dirfd; UINT64_MAX (over any quota)
 * when the tree is more than 64 levels deep or has more than 200,000 names,
 * which the scan does not measure. */
uint64_t ad_sbx_dir_usage(int dirfd);

/* True for a name usable as one /mnt/data file name: 1-255 bytes, no '/',
 * no NUL, not "." or "..". */
bool ad_sbx_name_ok(const char *name);
/* Copies host file `src` to dirfd/name unless an identical regular file is
 * already there. Never follows a symlink planted in dirfd; the new file is
 * chowned to uid/gid when uid != (uid_t)-1. */
ad_err ad_sbx_copy_in(int dirfd, const char *name, const char *src, uid_t uid, gid_t gid);
/* Copies dirfd/relpath (a regular file, no symlink anywhere on the path, at
 * most max bytes) to the new host file dst (O_EXCL). */
ad_err ad_sbx_copy_out(int dirfd, const char *relpath, const char *dst, uint64_t max);
/* Removes everything under dirfd/name (no symlinks followed, any depth),
 * then the entry. */
void ad_sbx_rm_rf_at(int dirfd, const char *name);
/* Removes everything under dirfd, leaving the directory itself. */
void ad_sbx_rm_contents(int dirfd);

#endif
