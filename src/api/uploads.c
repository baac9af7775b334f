/*
 * uploads.c -- /uploads: create, add part, complete, cancel.
 *
 * Storage. An Upload is one "upload" row with the Upload JSON as the API
 * returns it, plus a private "upload_meta" row (id "meta:<upload id>",
 * parent = the upload id) holding what the API object does not show:
 * {"mime_type", "file_seconds" (expires_after of the File to be, 0 when
 * none), "received" (bytes of all parts added so far)}. Each Part is an
 * "upload_part" row whose parent is the upload, with its bytes published
 * under DATA/parts/<part id> before the row is inserted.
 *
 * Life cycle: pending -> completed | cancelled | expired. An Upload expires
 * one hour after creation (expires_at); the first request that touches an
 * expired pending Upload records status "expired" and drops its parts. Every
 * state change happens in one store transaction (BEGIN IMMEDIATE) that
 * re-reads the Upload and checks it is still pending, so a racing complete,
 * cancel or part is refused cleanly; the parts' bytes are removed only after
 * the commit (a crash in between leaves orphan bytes, which the start-up
 * sweep removes, never a row without bytes).
 *
 * Complete streams the named parts, in the given order, through a bounded
 * buffer into a new temporary blob, checks the total against the declared
 * bytes and, when md5 is given, the MD5 of the concatenation (computed here:
 * no crypto library is linked), publishes it as a File (files.c helpers) and
 * answers the Upload with the nested File. The copy runs on the HTTP worker
 * thread; at 8 GB it takes seconds, which is acceptable for an operation
 * clients call once per upload.
 *
 * Limits: bytes <= 8 GiB at creation; the parts of one Upload may total at
 * most 8 GiB ("an Upload can accept at most 8 GB in total"); one part is
 * bounded by --max-part (64 MB) in the HTTP front.
 */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

#define UPLOAD_MAX_BYTES (8ull * 1024 * 1024 * 1024)
#define UPLOAD_TTL       3600
#define COPY_BUF         (1024 * 1024)
#define META_ID_MAX      (AD_ID_MAX + 8)
#define OBJ_MAX          (1024 * 1024) /* one stored Upload or Part */

/* ---- MD5 (RFC 1321) ---- */

typedef struct md5_ctx {
    uint32_t h[4];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
} md5_ctx;

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

static const unsigned char md5_s[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                        5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_init(md5_ctx *c)
{
    c->h[0] = 0x67452301;
    c->h[1] = 0xefcdab89;
    c->h[2] = 0x98badcfe;
    c->h[3] = 0x10325476;
    c->len = 0;
    c->n = 0;
}

static void md5_block(md5_ctx *c, const unsigned char *p)
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    for (unsigned i = 0; i < 64; i++) {
        uint32_t f;
        unsigned g;
        if (i < 16) {
            f = (b & cc) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & cc);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ cc ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = cc ^ (b | ~d);
            g = (7 * i) % 16;
        }
        f += a + md5_k[i] + m[g];
        a = d;
        d = cc;
        cc = b;
        b += (f << md5_s[i]) | (f >> (32 - md5_s[i]));
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
}

static void md5_update(md5_ctx *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    c->len += len;
    if (c->n) {
        size_t take = 64 - c->n < len ? 64 - c->n : len;
        memcpy(c->buf + c->n, p, take);
        c->n += take;
        p += take;
        len -= take;
        if (c->n < 64)
            return;
        md5_block(c, c->buf);
        c->n = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        md5_block(c, p);
    memcpy(c->buf, p, len);
    c->n = len;
}

/* Finishes c and writes the 32-digit lowercase hex digest (+ NUL). */
static void md5_hex(md5_ctx *c, char out[33])
{
    uint64_t bits = c->len * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = c->n < 56 ? 56 - c->n : 120 - c->n;
    for (int i = 0; i < 8; i++)
        pad[padlen + (size_t)i] = (unsigned char)(bits >> (8 * i));
    md5_update(c, pad, padlen + 8);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        unsigned char byte = (unsigned char)(c->h[i / 4] >> (8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[32] = '\0';
}

/* ---- shared pieces ---- */

static void meta_id(char out[META_ID_MAX], const char *upload_id)
{
    snprintf(out, META_ID_MAX, "meta:%s", upload_id);
}

static void reply_no_upload(ad_req *req, const char *id)
{
    ad_reply_error(req, 404, "invalid_request_error", "id", NULL, "No such Upload object: %s", id);
}

/* Loads a stored object (new reference) of req's project. */
static ad_err load(ad_req *req, const char *kind, const char *id, json_t **out)
{
    ad_buf b;
    ad_buf_init(&b, OBJ_MAX);
    ad_err rc = ad_db_get(ad_req_db(req), req->project, kind, id, &b);
    *out = NULL;
    if (!rc) {
        *out = json_loadb(b.ptr, b.len, 0, NULL);
        if (!*out)
            rc = AD_EDB;
    }
    ad_buf_free(&b);
    return rc;
}

static const char *status_of(const json_t *up)
{
    const char *s = json_string_value(json_object_get(up, "status"));
    return s ? s : "";
}

/* Whether a stored pending Upload has passed its expires_at. */
static bool past_expiry(const json_t *up, int64_t now)
{
    return !strcmp(status_of(up), "pending") &&
           json_integer_value(json_object_get(up, "expires_at")) <= now;
}

typedef struct ids_acc {
    ad_buf *ids; /* NUL-separated part ids */
} ids_acc;

static ad_err collect_id(void *ud, const char *id, const char *json, size_t len)
{
    ids_acc *a = ud;
    (void)json;
    (void)len;
    return ad_buf_add(a->ids, id, strlen(id) + 1);
}

/* Appends the ids of every live part of an upload to ids, NUL-separated. */
static ad_err part_ids(ad_req *req, const char *upload_id, ad_buf *ids)
{
    ad_list_q q = {.project = req->project,
                   .kind = "upload_part",
                   .parent = upload_id,
                   .limit = 1000,
                   .asc = true};
    ids_acc a = {ids};
    char cursor[AD_ID_MAX];
    for (;;) {
        bool more = false;
        size_t before = ids->len;
        ad_err rc = ad_db_list(ad_req_db(req), &q, collect_id, &a, &more);
        if (rc || !more || ids->len == before)
            return rc;
        /* Resume after the last id collected. */
        const char *last = ids->ptr + ids->len - 1;
        while (last > ids->ptr && last[-1])
            last--;
        ad_strlcpy(cursor, last, sizeof cursor);
        q.after = cursor;
    }
}

static void remove_part_bytes(ad_req *req, const ad_buf *ids)
{
    for (size_t off = 0; off < ids->len; off += strlen(ids->ptr + off) + 1) {
        ad_err rc = ad_blob_remove(req->srv->cfg.data_dir, "parts", ids->ptr + off);
        if (rc)
            ad_log(&req->srv->log, AD_LOG_WARN, "uploads: cannot remove part %s: %s",
                   ids->ptr + off, ad_strerror(rc));
    }
}

/*
 * Moves a pending Upload to status (completed | cancelled | expired) in one
 * transaction: re-reads it, refuses with AD_ESTATE when it is no longer
 * pending (*out then holds the current object), inserts file (completed
 * only), stores the new status (and file), drops the parts' rows; after the
 * commit removes their bytes. On success *out is the updated Upload.
 */
static ad_err end_upload(ad_req *req, const char *id, const char *status, const json_t *file,
                         const char *ctype, json_t **out)
{
    ad_db *db = ad_req_db(req);
    ad_buf ids;
    ad_buf_init(&ids, 64u * 1024 * 1024);
    json_t *up = NULL;
    *out = NULL;
    ad_err rc = ad_db_begin(db);
    if (rc)
        goto out;
    rc = load(req, "upload", id, &up);
    if (rc)
        goto fail;
    bool expire_now = past_expiry(up, ad_now());
    if (strcmp(status_of(up), "pending") != 0 || (expire_now && strcmp(status, "expired") != 0)) {
        if (expire_now) { /* record the expiry first; the caller reports it */
            ad_db_rollback(db);
            json_decref(up);
            up = NULL;
            rc = end_upload(req, id, "expired", NULL, NULL, &up);
            if (rc && rc != AD_ESTATE)
                goto out;
        }
        rc = AD_ESTATE;
        goto fail;
    }
    rc = part_ids(req, id, &ids);
    if (!rc && file)
        rc = ad_file_insert(db, req->project, file, ctype);
    json_object_set_new(up, "status", json_string(status));
    json_object_set_new(up, "file", file ? json_deep_copy(file) : json_null());
    if (!rc)
        rc = ad_api_save(req, "upload", id, NULL, up);
    if (!rc)
        rc = ad_db_delete_children(db, req->project, "upload_part", id, NULL);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc)
        goto fail;
    remove_part_bytes(req, &ids);
    goto out;
fail:
    ad_db_rollback(db);
out:
    *out = up;
    ad_buf_free(&ids);
    return rc;
}

/* Answers the 400 of an Upload that is not pending (any more). */
static void reply_not_pending(ad_req *req, const json_t *up, const char *action)
{
    const char *st = up ? status_of(up) : "unknown";
    if (!strcmp(st, "expired"))
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Cannot %s: the Upload %s has expired (Uploads expire one hour after "
                       "creation).",
                       action, req->params[0]);
    else
        ad_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                       "Cannot %s: the Upload %s is already %s.", action, req->params[0], st);
}

/* Loads the Upload named by the path for a write; answers 404 or 400 (not
 * pending; an expired one is recorded as such) and returns NULL on failure. */
static json_t *load_pending(ad_req *req, const char *action)
{
    const char *id = req->params[0];
    json_t *up = NULL;
    ad_err rc = load(req, "upload", id, &up);
    if (rc == AD_ENOTFOUND) {
        reply_no_upload(req, id);
        return NULL;
    }
    if (!ad_api_ok(req, rc))
        return NULL;
    if (past_expiry(up, ad_now())) {
        json_decref(up);
        rc = end_upload(req, id, "expired", NULL, NULL, &up);
        if (rc && rc != AD_ESTATE) {
            json_decref(up);
            ad_reply_internal(req, rc);
            return NULL;
        }
    }
    if (strcmp(status_of(up), "pending") != 0) {
        reply_not_pending(req, up, action);
        json_decref(up);
        return NULL;
    }
    return up;
}

/* ---- POST /uploads ---- */

void ad_h_uploads_create(ad_req *req)
{
    const json_t *body = ad_api_body(req, &ad_schema_create_upload);
    if (!body)
        return;
    json_int_t bytes = json_integer_value(json_object_get(body, "bytes"));
    if (bytes < 0) {
        ad_reply_error(req, 400, "invalid_request_error", "bytes", "integer_below_min_value",
                       "Invalid 'bytes': integer below minimum value. Expected a value >= 0, but "
                       "got %lld instead.",
                       (long long)bytes);
        return;
    }
    if ((unsigned long long)bytes > UPLOAD_MAX_BYTES) {
        ad_reply_error(req, 400, "invalid_request_error", "bytes", "integer_above_max_value",
                       "Invalid 'bytes': integer above maximum value. Expected a value <= %llu "
                       "(8 GB), but got %lld instead.",
                       UPLOAD_MAX_BYTES, (long long)bytes);
        return;
    }
    const char *filename = json_string_value(json_object_get(body, "filename"));
    const char *purpose = json_string_value(json_object_get(body, "purpose"));
    const char *mime = json_string_value(json_object_get(body, "mime_type"));
    json_int_t secs =
        json_integer_value(json_object_get(json_object_get(body, "expires_after"), "seconds"));
    char id[AD_ID_MAX], mid[META_ID_MAX];
    ad_id_new(id, "upload_");
    meta_id(mid, id);
    int64_t now = ad_now();
    json_t *up = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:n}", "id", id, "object",
                           "upload", "bytes", bytes, "created_at", (json_int_t)now, "filename",
                           filename, "purpose", purpose, "status", "pending", "expires_at",
                           (json_int_t)(now + UPLOAD_TTL), "file");
    json_t *meta = json_pack("{s:s, s:I, s:I}", "mime_type", mime, "file_seconds", secs, "received",
                             (json_int_t)0);
    char *s = up ? json_dumps(up, AD_JSON_COMPACT) : NULL;
    char *m = meta ? json_dumps(meta, AD_JSON_COMPACT) : NULL;
    ad_err rc = s && m ? AD_OK : AD_EINTERNAL;
    ad_db *db = ad_req_db(req);
    if (!rc)
        rc = ad_db_begin(db);
    if (!rc) {
        ad_obj o = {.kind = "upload",
                    .id = id,
                    .project = req->project,
                    .parent = "",
                    .aux = "",
                    .created_at = now};
        ad_obj mo = {.kind = "upload_meta",
                     .id = mid,
                     .project = req->project,
                     .parent = id,
                     .aux = "",
                     .created_at = now};
        rc = ad_db_put(db, &o, s, strlen(s));
        if (!rc)
            rc = ad_db_put(db, &mo, m, strlen(m));
        if (!rc)
            rc = ad_db_commit(db);
        if (rc)
            ad_db_rollback(db);
    }
    if (ad_api_ok(req, rc))
        ad_reply_raw(req, 200, s, strlen(s));
    free(s);
    free(m);
    json_decref(up);
    json_decref(meta);
}

/* ---- POST /uploads/{id}/parts ---- */

void ad_h_uploads_add_part(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "upload_id", "upload_"))
        return;
    const char *uid = req->params[0];
    json_t *up = NULL, *meta = NULL, *part = NULL;
    char pid[AD_ID_MAX], mid[META_ID_MAX];
    bool published = false;
    ad_db *db = ad_req_db(req);
    if (!req->have_file || strcmp(req->file_field, "data") != 0) {
        ad_reply_error(req, 400, "invalid_request_error", "data", "missing_required_parameter",
                       "Missing required parameter: 'data'.");
        goto out;
    }
    up = load_pending(req, "add a part");
    if (!up)
        goto out;
    json_decref(up);
    up = NULL;
    uint64_t size = req->file.size;
    ad_id_new(pid, "part_");
    ad_err rc = ad_blob_publish(req->srv->cfg.data_dir, &req->file, "parts", pid);
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    published = true;
    /* Re-check under the write lock: a complete or cancel may have won. */
    rc = ad_db_begin(db);
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    rc = load(req, "upload", uid, &up);
    if (!rc && (strcmp(status_of(up), "pending") != 0 || past_expiry(up, ad_now()))) {
        ad_db_rollback(db);
        if (past_expiry(up, ad_now())) {
            json_decref(up);
            up = NULL;
            end_upload(req, uid, "expired", NULL, NULL, &up);
        }
        reply_not_pending(req, up, "add a part");
        goto out;
    }
    meta_id(mid, uid);
    if (!rc)
        rc = load(req, "upload_meta", mid, &meta);
    json_int_t received = json_integer_value(json_object_get(meta, "received"));
    if (!rc && (uint64_t)received + size > UPLOAD_MAX_BYTES) {
        ad_db_rollback(db);
        ad_reply_error(req, 400, "invalid_request_error", "data", NULL,
                       "The parts of an Upload may total at most %llu bytes (8 GB); %s already "
                       "holds %lld bytes.",
                       UPLOAD_MAX_BYTES, uid, (long long)received);
        goto out;
    }
    int64_t now = ad_now();
    part = json_pack("{s:s, s:s, s:I, s:s}", "id", pid, "object", "upload.part", "created_at",
                     (json_int_t)now, "upload_id", uid);
    if (!rc) {
        json_object_set_new(meta, "received", json_integer(received + (json_int_t)size));
        char *m = json_dumps(meta, AD_JSON_COMPACT);
        rc = m ? ad_db_update(db, req->project, "upload_meta", mid, NULL, m, strlen(m))
               : AD_EINTERNAL;
        free(m);
    }
    if (!rc) {
        char *s = json_dumps(part, AD_JSON_COMPACT);
        ad_obj o = {.kind = "upload_part",
                    .id = pid,
                    .project = req->project,
                    .parent = uid,
                    .aux = "",
                    .created_at = now};
        rc = s ? ad_db_put(db, &o, s, strlen(s)) : AD_EINTERNAL;
        free(s);
    }
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        if (rc == AD_ENOTFOUND)
            reply_no_upload(req, uid);
        else
            ad_reply_internal(req, rc);
        goto out;
    }
    published = false;
    ad_reply_json(req, 200, part);
    part = NULL;
out:
    if (published)
        ad_blob_remove(req->srv->cfg.data_dir, "parts", pid);
    json_decref(up);
    json_decref(meta);
    json_decref(part);
}

/* ---- POST /uploads/{id}/complete ---- */

/* Appends one part's bytes to t (and to md5 when non-NULL). */
static ad_err copy_part(ad_req *req, const char *pid, ad_blob_tmp *t, md5_ctx *md5, char *buf)
{
    int fd = -1;
    uint64_t size;
    ad_err rc = ad_blob_open(req->srv->cfg.data_dir, "parts", pid, &fd, &size);
    if (rc)
        return rc;
    for (;;) {
        ssize_t r = read(fd, buf, COPY_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = AD_EIO;
            break;
        }
        if (r == 0)
            break;
        if (md5)
            md5_update(md5, buf, (size_t)r);
        rc = ad_blob_tmp_write(t, buf, (size_t)r);
        if (rc)
            break;
    }
    close(fd);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A string that occurs twice in the array, or NULL (sorting: n log n). */
static const char *first_duplicate(const json_t *ids)
{
    size_t n = json_array_size(ids);
    const char *dup = NULL;
    if (n < 2)
        return NULL;
    const char **v = ad_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(ids, i));
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(v[i - 1], v[i]))
            dup = v[i];
    ad_free(v);
    return dup;
}

void ad_h_uploads_complete(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "upload_id", "upload_"))
        return;
    const char *uid = req->params[0];
    const json_t *body = ad_api_body(req, &ad_schema_complete_upload);
    if (!body)
        return;
    const json_t *ids = json_object_get(body, "part_ids");
    const char *want_md5 = json_string_value(json_object_get(body, "md5"));
    json_t *up = NULL, *meta = NULL, *file = NULL, *done = NULL;
    ad_blob_tmp t = {.fd = -1};
    char *buf = NULL;
    char fid[AD_ID_MAX], mid[META_ID_MAX];
    bool published = false;
    ad_err rc;
    size_t i, n = json_array_size(ids);

    up = load_pending(req, "complete it");
    if (!up)
        goto out;
    meta_id(mid, uid);
    rc = load(req, "upload_meta", mid, &meta);
    if (rc && rc != AD_ENOTFOUND) {
        ad_reply_internal(req, rc);
        goto out;
    }
    const char *dup = first_duplicate(ids);
    if (dup) {
        ad_reply_error(req, 400, "invalid_request_error", "part_ids", "invalid_value",
                       "Invalid 'part_ids': part '%.64s' is listed more than once.", dup);
        goto out;
    }
    /* Every part must belong to this Upload; sum their sizes. */
    uint64_t total = 0;
    ad_buf scratch;
    ad_buf_init(&scratch, OBJ_MAX);
    for (i = 0; i < n; i++) {
        const char *pid = json_string_value(json_array_get(ids, i));
        ad_buf_reset(&scratch);
        rc = ad_db_get_child(ad_req_db(req), req->project, "upload_part", uid, pid, &scratch);
        int fd = -1;
        uint64_t size = 0;
        if (!rc)
            rc = ad_blob_open(req->srv->cfg.data_dir, "parts", pid, &fd, &size);
        if (fd >= 0)
            close(fd);
        if (rc == AD_ENOTFOUND) {
            ad_buf_free(&scratch);
            /* A concurrent complete or cancel may have ended the Upload and
             * removed its parts since it was read: say that, as the loser
             * of the race would have heard a moment later. */
            json_t *again = load_pending(req, "complete it");
            if (!again)
                goto out;
            json_decref(again);
            ad_reply_error(req, 400, "invalid_request_error", "part_ids", "invalid_value",
                           "Invalid 'part_ids[%zu]': no part with id '%.64s' was added to the "
                           "Upload %s.",
                           i, pid, uid);
            goto out;
        }
        if (rc) {
            ad_buf_free(&scratch);
            ad_reply_internal(req, rc);
            goto out;
        }
        total += size;
    }
    ad_buf_free(&scratch);
    uint64_t declared = (uint64_t)json_integer_value(json_object_get(up, "bytes"));
    if (total != declared) {
        ad_reply_error(req, 400, "invalid_request_error", "part_ids", NULL,
                       "The parts total %llu bytes, but the Upload was created with bytes=%llu; "
                       "they must match.",
                       (unsigned long long)total, (unsigned long long)declared);
        goto out;
    }

    /* Concatenate in the given order. */
    md5_ctx md5;
    md5_init(&md5);
    rc = ad_blob_tmp_open(req->srv->cfg.data_dir, declared, &t);
    buf = ad_malloc(COPY_BUF);
    for (i = 0; !rc && i < n; i++)
        rc = copy_part(req, json_string_value(json_array_get(ids, i)), &t, want_md5 ? &md5 : NULL,
                       buf);
    if (!rc && t.size != declared)
        rc = AD_ETOOBIG; /* a part changed under us: cannot happen with our own writers */
    if (rc == AD_ENOTFOUND) {
        /* A racing complete or cancel removed the parts: report its outcome. */
        json_decref(up);
        up = NULL;
        if (load(req, "upload", uid, &up) == AD_OK && strcmp(status_of(up), "pending") != 0) {
            reply_not_pending(req, up, "complete it");
            goto out;
        }
    }
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    if (want_md5) {
        char got[33];
        md5_hex(&md5, got);
        if (strcasecmp(got, want_md5) != 0) {
            ad_reply_error(req, 400, "invalid_request_error", "md5", "invalid_value",
                           "The md5 checksum '%.64s' does not match the uploaded bytes (md5 %s).",
                           want_md5, got);
            goto out;
        }
    }

    /* Publish as a File, then record everything in one transaction. */
    const char *filename = json_string_value(json_object_get(up, "filename"));
    const char *purpose = json_string_value(json_object_get(up, "purpose"));
    const char *mime = json_string_value(json_object_get(meta, "mime_type"));
    int64_t secs = json_integer_value(json_object_get(meta, "file_seconds"));
    int64_t now = ad_now();
    ad_id_new(fid, "file-");
    file = ad_file_object(fid, declared, now, filename ? filename : "", purpose ? purpose : "",
                          ad_file_expires_at(purpose ? purpose : "", now, secs));
    if (!file) {
        ad_reply_internal(req, AD_EINTERNAL);
        goto out;
    }
    rc = ad_blob_publish(req->srv->cfg.data_dir, &t, "files", fid);
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    published = true;
    const char *ctype = ad_file_ctype_usable(mime) ? mime : ad_file_guess_ctype(filename);
    rc = end_upload(req, uid, "completed", file, ctype, &done);
    if (rc == AD_ESTATE) {
        reply_not_pending(req, done, "complete it");
        goto out;
    }
    if (rc == AD_ENOTFOUND) {
        reply_no_upload(req, uid);
        goto out;
    }
    if (!ad_api_ok(req, rc))
        goto out;
    published = false; /* the File row owns the bytes */
    ad_reply_json(req, 200, done);
    done = NULL;
out:
    ad_blob_abort(&t);
    if (published)
        ad_blob_remove(req->srv->cfg.data_dir, "files", fid);
    ad_free(buf);
    json_decref(up);
    json_decref(meta);
    json_decref(file);
    json_decref(done);
}

/* ---- POST /uploads/{id}/cancel ---- */

void ad_h_uploads_cancel(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "upload_id", "upload_"))
        return;
    json_t *up = load_pending(req, "cancel it");
    if (!up)
        return;
    json_decref(up);
    ad_err rc = end_upload(req, req->params[0], "cancelled", NULL, NULL, &up);
    if (rc == AD_ESTATE)
        reply_not_pending(req, up, "cancel it");
    else if (rc == AD_ENOTFOUND)
        reply_no_upload(req, req->params[0]);
    else if (ad_api_ok(req, rc)) {
        ad_reply_json(req, 200, up);
        up = NULL;
    }
    json_decref(up);
}
