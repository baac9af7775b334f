/*
 * files.c -- /files: upload (multipart), list, retrieve, delete and
 * download, plus the File helpers uploads.c uses to publish a completed
 * Upload.
 *
 * Storage. A File is one "file" row holding the OpenAIFile JSON exactly as
 * the API returns it (aux = purpose, so GET /files?purpose= is an indexed
 * filter), its bytes under DATA/files/<id>, and one private "file_meta" row
 * (id "meta:<file id>", parent = the file id) with what the API object must
 * not show: {"content_type": ...}. The content type is the multipart part's
 * Content-Type when it says something (not application/octet-stream), the
 * Upload's mime_type for completed Uploads, else a guess from the filename's
 * extension; a File without a meta row (made by other code) falls back to
 * the guess at download time.
 *
 * Crash safety: the bytes are published (tmp + fsync + rename) before the
 * rows are inserted, and the rows are deleted before the bytes, so a crash
 * can leave orphan bytes (harmless, swept at start-up) but never a row
 * without its bytes.
 *
 * Expiry: expires_at comes from expires_after (anchor created_at, 3600 to
 * 2592000 seconds) or, as OpenAI documents, 30 days for purpose=batch;
 * otherwise it is null. A File past expires_at is treated as deleted: every
 * read answers 404 and purges it (rows first, then bytes); lists skip it and
 * purge a bounded number per request.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/json.h"
#include "util/str.h"

#define BATCH_TTL   (30 * 24 * 3600) /* default expiry of purpose=batch files */
#define META_ID_MAX (AD_ID_MAX + 8)
#define PURGE_MAX   64 /* expired files purged by one list request */
#define CTYPE_MAX   200

/* ---- helpers shared with uploads.c ---- */

json_t *ad_file_object(const char *id, uint64_t bytes, int64_t created_at, const char *filename,
                       const char *purpose, int64_t expires_at)
{
    json_t *name = json_string(filename);
    if (!name)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("file"));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "created_at", json_integer(created_at));
    json_object_set_new(o, "expires_at", expires_at ? json_integer(expires_at) : json_null());
    json_object_set_new(o, "filename", name);
    json_object_set_new(o, "purpose", json_string(purpose));
    json_object_set_new(o, "status", json_string("processed"));
    json_object_set_new(o, "status_details", json_null());
    return o;
}

int64_t ad_file_expires_at(const char *purpose, int64_t created_at, int64_t seconds)
{
    if (seconds > 0)
        return created_at + seconds;
    if (!strcmp(purpose, "batch"))
        return created_at + BATCH_TTL;
    return 0;
}

typedef struct ext_type {
    const char *ext, *type;
} ext_type;

static const ext_type ext_types[] = {
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"log", "text/plain"},
    {"md", "text/markdown"},
    {"markdown", "text/markdown"},
    {"json", "application/json"},
    {"jsonl", "application/jsonl"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"svg", "image/svg+xml"},
    {"py", "text/x-python"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"ts", "application/typescript"},
    {"sh", "application/x-sh"},
    {"c", "text/x-c"},
    {"h", "text/x-c"},
    {"cpp", "text/x-c++"},
    {"cc", "text/x-c++"},
    {"cs", "text/x-csharp"},
    {"java", "text/x-java"},
    {"go", "text/x-golang"},
    {"rb", "text/x-ruby"},
    {"php", "text/x-php"},
    {"tex", "text/x-tex"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"zip", "application/zip"},
    {"tar", "application/x-tar"},
    {"gz", "application/gzip"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
};

const char *ad_file_guess_ctype(const char *filename)
{
    const char *dot = filename ? strrchr(filename, '.') : NULL;
    if (dot && dot[1] && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof ext_types / sizeof ext_types[0]; i++)
            if (!strcasecmp(dot + 1, ext_types[i].ext))
                return ext_types[i].type;
    return "application/octet-stream";
}

/* A client-supplied media type worth keeping: "type/subtype[; params]" in
 * printable ASCII, bounded, and more specific than application/octet-stream. */
bool ad_file_ctype_usable(const char *ctype)
{
    if (!ctype || !*ctype || strlen(ctype) > CTYPE_MAX || !strchr(ctype, '/'))
        return false;
    for (const char *p = ctype; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    size_t n = strcspn(ctype, ";");
    while (n && ctype[n - 1] == ' ')
        n--;
    return !(n == strlen("application/octet-stream") &&
             !strncasecmp(ctype, "application/octet-stream", n));
}

static void meta_id(char out[META_ID_MAX], const char *file_id)
{
    snprintf(out, META_ID_MAX, "meta:%s", file_id);
}

ad_err ad_file_insert(ad_db *db, const char *project, const json_t *file, const char *ctype)
{
    const char *id = json_string_value(json_object_get(file, "id"));
    const char *purpose = json_string_value(json_object_get(file, "purpose"));
    char mid[META_ID_MAX];
    ad_err rc = AD_EINTERNAL;
    char *s = NULL, *m = NULL;
    json_t *meta = json_pack("{s:s}", "content_type", ctype);
    if (!id || !purpose || !meta)
        goto out;
    s = json_dumps(file, AD_JSON_COMPACT);
    m = json_dumps(meta, AD_JSON_COMPACT);
    if (!s || !m)
        goto out;
    int64_t created = json_integer_value(json_object_get(file, "created_at"));
    ad_obj o = {.kind = "file",
                .id = id,
                .project = project,
                .parent = "",
                .aux = purpose,
                .created_at = created};
    rc = ad_db_put(db, &o, s, strlen(s));
    if (rc)
        goto out;
    meta_id(mid, id);
    ad_obj mo = {.kind = "file_meta",
                 .id = mid,
                 .project = project,
                 .parent = id,
                 .aux = "",
                 .created_at = created};
    rc = ad_db_put(db, &mo, m, strlen(m));
out:
    json_decref(meta);
    free(s);
    free(m);
    return rc;
}

/* ---- expiry and removal ---- */

/* Whether a stored File JSON has passed its expires_at. The JSON is ours
 * (compact), so the common null case is recognised without parsing. */
static bool json_expired(const char *json, size_t len, int64_t now)
{
    static const char null_exp[] = "\"expires_at\":null";
    if (memmem(json, len, null_exp, sizeof null_exp - 1))
        return false;
    json_t *v = json_loadb(json, len, 0, NULL);
    json_t *e = json_object_get(v, "expires_at");
    bool expired = json_is_integer(e) && json_integer_value(e) <= now;
    json_decref(v);
    return expired;
}

/* Deletes the rows of a File (one transaction), then its bytes. */
static ad_err file_remove(ad_req *req, const char *id)
{
    ad_db *db = ad_req_db(req);
    char mid[META_ID_MAX];
    meta_id(mid, id);
    ad_err rc = ad_db_begin(db);
    if (rc)
        return rc;
    rc = ad_db_delete(db, req->project, "file", id);
    if (!rc) {
        ad_err mrc = ad_db_delete(db, req->project, "file_meta", mid);
        if (mrc && mrc != AD_ENOTFOUND)
            rc = mrc;
    }
    if (!rc) /* "Delete a file and remove it from all vector stores." */
        rc = ad_vsf_remove_everywhere(db, req->project, id);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        return rc;
    }
    ad_err brc = ad_blob_remove(req->srv->cfg.data_dir, "files", id);
    if (brc)
        ad_log(&req->srv->log, AD_LOG_WARN, "files: cannot remove the bytes of %s: %s", id,
               ad_strerror(brc));
    return AD_OK;
}

static void reply_no_file(ad_req *req, const char *id)
{
    ad_reply_error(req, 404, "invalid_request_error", "id", NULL, "No such File object: %s", id);
}

/* Appends the JSON of a live, unexpired File to out. An expired one is
 * purged and reported as AD_ENOTFOUND. */
static ad_err file_fetch(ad_req *req, const char *id, ad_buf *out)
{
    size_t start = out->len;
    ad_err rc = ad_db_get(ad_req_db(req), req->project, "file", id, out);
    if (rc)
        return rc;
    if (!json_expired(out->ptr + start, out->len - start, ad_now()))
        return AD_OK;
    out->len = start;
    out->ptr[start] = '\0';
    rc = file_remove(req, id);
    return rc && rc != AD_ENOTFOUND ? rc : AD_ENOTFOUND;
}

/* ---- POST /files ---- */

static const char *const e_upload_purpose[] = {"assistants", "batch", "fine-tune", "vision",
                                               "user_data",  "evals", NULL};
static const char *const e_anchor[] = {"created_at", NULL};

static const ad_vfield expires_after_fields[] = {
    {.name = "anchor", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_anchor},
    {.name = "seconds",
     .type = AD_V_INTEGER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 3600,
     .max = 2592000},
    {.name = NULL}};

static const ad_vfield create_file_fields[] = {
    {.name = "purpose", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_upload_purpose},
    {.name = "expires_after", .type = AD_V_OBJECT, .fields = expires_after_fields},
    {.name = NULL}};

static const ad_vfield create_file_schema = {.type = AD_V_OBJECT, .fields = create_file_fields};

/* A form value as JSON: integers where they parse (the form carries only
 * text), strings otherwise; NULL for invalid UTF-8. */
static json_t *form_value(const char *v, bool numeric)
{
    int64_t n;
    if (numeric && ad_parse_i64(v, &n))
        return json_integer(n);
    return json_string(v);
}

/* The multipart fields CreateFileRequest knows, as the JSON object the
 * validator checks: purpose, and expires_after flattened by the SDKs into
 * expires_after[anchor] / expires_after[seconds]. Other fields are ignored. */
static json_t *form_json(ad_req *req, ad_verr *err)
{
    json_t *o = json_object();
    json_t *exp = NULL;
    for (const ad_form_field *f = req->form; f; f = f->next) {
        const char *key = NULL;
        json_t *target = o;
        bool numeric = false;
        if (!strcmp(f->name, "purpose")) {
            key = "purpose";
        } else if (!strcmp(f->name, "expires_after[anchor]")) {
            key = "anchor";
        } else if (!strcmp(f->name, "expires_after[seconds]")) {
            key = "seconds";
            numeric = true;
        } else {
            continue;
        }
        if (strcmp(key, "purpose")) {
            if (!exp) {
                exp = json_object();
                json_object_set_new(o, "expires_after", exp);
            }
            target = exp;
        }
        json_t *v = form_value(f->value, numeric);
        if (!v) {
            ad_verr_set(err, f->name, "invalid_value",
                        "Invalid value for '%s': the value is not valid UTF-8.", f->name);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(target, key, v);
    }
    return o;
}

void ad_h_files_create(ad_req *req)
{
    ad_verr err;
    json_t *form = NULL, *obj = NULL;
    bool published = false;
    char id[AD_ID_MAX];
    id[0] = '\0';
    if (!req->have_file || strcmp(req->file_field, "file") != 0) {
        ad_reply_error(req, 400, "invalid_request_error", "file", "missing_required_parameter",
                       "Missing required parameter: 'file'.");
        goto out;
    }
    form = form_json(req, &err);
    if (!form || !ad_validate(form, &create_file_schema, &err)) {
        ad_reply_verr(req, &err);
        goto out;
    }
    const char *filename = req->file_name ? req->file_name : "";
    if (!ad_utf8_valid(filename, strlen(filename))) {
        ad_reply_error(req, 400, "invalid_request_error", "file", "invalid_value",
                       "Invalid file name: it is not valid UTF-8.");
        goto out;
    }
    const char *purpose = json_string_value(json_object_get(form, "purpose"));
    int64_t secs =
        json_integer_value(json_object_get(json_object_get(form, "expires_after"), "seconds"));
    int64_t now = ad_now();
    ad_id_new(id, "file-");
    obj = ad_file_object(id, req->file.size, now, filename, purpose,
                         ad_file_expires_at(purpose, now, secs));
    if (!obj) {
        ad_reply_internal(req, AD_EINTERNAL);
        goto out;
    }
    const char *ctype =
        ad_file_ctype_usable(req->file_ctype) ? req->file_ctype : ad_file_guess_ctype(filename);
    ad_err rc = ad_blob_publish(req->srv->cfg.data_dir, &req->file, "files", id);
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    published = true;
    ad_db *db = ad_req_db(req);
    rc = ad_db_begin(db);
    if (!rc)
        rc = ad_file_insert(db, req->project, obj, ctype);
    if (!rc)
        rc = ad_db_commit(db);
    if (rc) {
        ad_db_rollback(db);
        ad_reply_internal(req, rc);
        goto out;
    }
    published = false; /* the rows own the bytes now */
    ad_reply_json(req, 200, obj);
    obj = NULL;
out:
    if (published)
        ad_blob_remove(req->srv->cfg.data_dir, "files", id);
    json_decref(form);
    json_decref(obj);
}

/* ---- GET /files ---- */

typedef struct files_acc {
    ad_buf *out;
    int64_t now;
    int64_t n;                /* visible rows delivered */
    char first[AD_ID_MAX];    /* first visible id */
    char last[AD_ID_MAX];     /* last visible id */
    char last_raw[AD_ID_MAX]; /* last row seen, expired or not (the next cursor) */
    char expired[PURGE_MAX][AD_ID_MAX];
    int nexpired;
} files_acc;

static ad_err files_row(void *ud, const char *id, const char *json, size_t len)
{
    files_acc *a = ud;
    ad_strlcpy(a->last_raw, id, sizeof a->last_raw);
    if (json_expired(json, len, a->now)) {
        if (a->nexpired < PURGE_MAX)
            ad_strlcpy(a->expired[a->nexpired++], id, AD_ID_MAX);
        return AD_OK;
    }
    ad_err rc = AD_OK;
    if (a->n++)
        rc = ad_buf_addc(a->out, ',');
    if (!rc)
        rc = ad_buf_add(a->out, json, len);
    if (a->n == 1)
        ad_strlcpy(a->first, id, sizeof a->first);
    ad_strlcpy(a->last, id, sizeof a->last);
    return rc;
}

void ad_h_files_list(ad_req *req)
{
    ad_list_q q = {.project = req->project, .kind = "file", .parent = ""};
    if (!ad_api_page_params(req, &q, 10000, 10000, false))
        return;
    const char *purpose = ad_req_query(req, "purpose");
    q.aux = purpose && *purpose ? purpose : NULL;

    files_acc *a = ad_calloc(1, sizeof *a);
    a->out = &req->out;
    a->now = ad_now();
    ad_buf_reset(&req->out);
    ad_err rc = ad_buf_addstr(&req->out, "{\"object\":\"list\",\"data\":[");
    bool has_more = false;
    char cursor[AD_ID_MAX];
    /* Expired rows are skipped, so a page may need several store queries;
     * each resumes after the last row seen. */
    for (int64_t limit = q.limit; !rc;) {
        ad_list_q sub = q;
        sub.limit = limit - a->n;
        rc = ad_db_list(ad_req_db(req), &sub, files_row, a, &has_more);
        if (rc || !has_more || a->n >= limit)
            break;
        ad_strlcpy(cursor, a->last_raw, sizeof cursor);
        q.after = cursor;
    }
    if (rc == AD_ENOTFOUND) {
        ad_reply_error(req, 400, "invalid_request_error", "after", "invalid_value",
                       "Invalid 'after': no object with id '%.128s' in this list.", q.after);
        goto out;
    }
    if (!rc) {
        json_t *ids = json_pack("[o,o]", a->n ? json_string(a->first) : json_null(),
                                a->n ? json_string(a->last) : json_null());
        char *fs = json_dumps(json_array_get(ids, 0), JSON_ENCODE_ANY);
        char *ls = json_dumps(json_array_get(ids, 1), JSON_ENCODE_ANY);
        rc = fs && ls
                 ? ad_buf_printf(&req->out, "],\"first_id\":%s,\"last_id\":%s,\"has_more\":%s}", fs,
                                 ls, has_more ? "true" : "false")
                 : AD_EINTERNAL;
        free(fs);
        free(ls);
        json_decref(ids);
    }
    if (rc) {
        ad_reply_internal(req, rc);
        goto out;
    }
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
    for (int i = 0; i < a->nexpired; i++)
        file_remove(req, a->expired[i]);
out:
    ad_free(a);
}

/* ---- GET /files/{id}, DELETE /files/{id}, GET /files/{id}/content ---- */

void ad_h_files_get(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "file_id", "file-"))
        return;
    ad_buf_reset(&req->out);
    ad_err rc = file_fetch(req, req->params[0], &req->out);
    if (rc == AD_ENOTFOUND) {
        reply_no_file(req, req->params[0]);
        return;
    }
    if (!ad_api_ok(req, rc))
        return;
    req->status = 200;
    req->ctype = "application/json";
    req->responded = true;
}

void ad_h_files_delete(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "file_id", "file-"))
        return;
    const char *id = req->params[0];
    ad_buf b;
    ad_buf_init(&b, 1024 * 1024);
    ad_err rc = file_fetch(req, id, &b);
    ad_buf_free(&b);
    if (!rc)
        rc = file_remove(req, id);
    if (rc == AD_ENOTFOUND) {
        reply_no_file(req, id);
        return;
    }
    if (ad_api_ok(req, rc))
        ad_api_deleted(req, id, "file");
}

void ad_h_files_content(ad_req *req)
{
    if (!ad_api_check_id(req, 0, "file_id", "file-"))
        return;
    const char *id = req->params[0];
    ad_buf b;
    ad_buf_init(&b, 1024 * 1024);
    json_t *file = NULL, *meta = NULL;
    int fd = -1;
    ad_err rc = file_fetch(req, id, &b);
    if (rc == AD_ENOTFOUND) {
        reply_no_file(req, id);
        goto out;
    }
    if (!ad_api_ok(req, rc))
        goto out;
    file = json_loadb(b.ptr, b.len, 0, NULL);
    char mid[META_ID_MAX];
    meta_id(mid, id);
    ad_buf_reset(&b);
    rc = ad_db_get(ad_req_db(req), req->project, "file_meta", mid, &b);
    if (rc && rc != AD_ENOTFOUND) {
        ad_reply_internal(req, rc);
        goto out;
    }
    if (!rc)
        meta = json_loadb(b.ptr, b.len, 0, NULL);
    const char *ctype = json_string_value(json_object_get(meta, "content_type"));
    if (!ad_file_ctype_usable(ctype))
        ctype = ad_file_guess_ctype(json_string_value(json_object_get(file, "filename")));
    uint64_t size = 0;
    rc = ad_blob_open(req->srv->cfg.data_dir, "files", id, &fd, &size);
    if (rc) {
        /* A row without bytes should not exist (see the top of the file). */
        ad_log(&req->srv->log, AD_LOG_ERROR, "files: the bytes of %s are missing", id);
        ad_reply_internal(req, rc);
        goto out;
    }
    ad_reply_fd(req, fd, size, ad_arena_strdup(req->arena, ctype));
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    json_decref(file);
    json_decref(meta);
    ad_buf_free(&b);
}
