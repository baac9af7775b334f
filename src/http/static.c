/*
 * static.c -- read-only file serving for the playground (see static.h).
 *
 * The idea: never build a path string and hand it to open(). The URL tail
 * is first checked lexically (ad_static_path_ok: no "..", no hidden names,
 * no control bytes), then resolved by walking its segments with openat(),
 * each with O_NOFOLLOW, starting from a descriptor of the playground
 * directory. A symlink anywhere on the way fails with ELOOP (or ENOTDIR),
 * so the walk cannot leave the directory even if someone plants a link in
 * it. The final descriptor must be a regular file; libmicrohttpd sends it
 * with sendfile and closes it, so nothing is read into memory.
 *
 * libmicrohttpd hands us the URL percent-decoded; a "%00" ends the string
 * there, so the name looked up can only be a prefix of the one asked for --
 * still checked and resolved below the root like any other.
 *
 * vite names its bundles assets/NAME-HASH.ext, so those are cached for a
 * year ("immutable"); everything else (index.html) is "no-cache" so a new
 * build is picked up at the next load. When the client accepts gzip and the
 * build left a precompressed NAME.gz beside the file, that is sent instead
 * with Content-Encoding: gzip.
 *
 * Every file is sent with an ETag made of its size and modification time
 * (and "-gz" for the compressed one: another representation), so the
 * "no-cache" index.html is revalidated with If-None-Match and answered 304
 * without a body while the build has not changed.
 */
#include "http/static.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/reply.h"
#include "util/log.h"
#include "util/str.h"

#define REL_MAX 512

bool ad_static_path_ok(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n > REL_MAX || rel[0] == '/')
        return false;
    const char *seg = rel;
    for (const char *p = rel;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(p - seg);
            if (len == 0 || seg[0] == '.') /* "", ".", "..", ".hidden" */
                return false;
            if (c == '\0')
                return true;
            seg = p + 1;
            continue;
        }
        if (c < 0x21 || c > 0x7e || c == '\\')
            return false;
    }
}

static const struct {
    const char *ext, *ctype;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
};

const char *ad_static_ctype(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].ctype;
    return "application/octet-stream";
}

/* Is the q parameter in [p, end) zero ("q=0", "q=0.0", "q=0.000")? */
static bool q_zero(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p >= end || *p != '0')
                return false;
            for (p++; p < end && *p != ';'; p++)
                if (*p != '.' && *p != '0' && *p != ' ')
                    return false;
            return true;
        }
        while (p < end && *p != ';')
            p++;
    }
    return false;
}

bool ad_static_accepts_gzip(const char *ae)
{
    if (!ae)
        return false;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - tok);
        const char *params = p;
        while (*p && *p != ',')
            p++;
        bool match = (len == 4 && !strncasecmp(tok, "gzip", 4)) || (len == 1 && tok[0] == '*');
        if (match && !q_zero(params, p))
            return true;
    }
    return false;
}

bool ad_static_etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false; /* malformed: name nothing */
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        size_t len = (size_t)(end - p) + 1;
        if (len == elen && !memcmp(p, etag, len))
            return true;
        p = end + 1;
    }
}

int ad_static_open(const char *root, const char *rel, struct stat *st)
{
    if (!ad_static_path_ok(rel)) {
        errno = EACCES;
        return -1;
    }
    int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    char seg[REL_MAX + 1];
    const char *p = rel;
    int fd = -1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(seg, p, len);
        seg[len] = '\0';
        if (slash) {
            int next = openat(dir, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int saved = errno;
            close(dir);
            if (next < 0) {
                errno = saved;
                return -1;
            }
            dir = next;
            p = slash + 1;
            continue;
        }
        fd = openat(dir, seg, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        int saved = errno;
        close(dir);
        errno = saved;
        break;
    }
    if (fd < 0)
        return -1;
    errno = 0;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int saved = errno == 0 && S_ISDIR(st->st_mode) ? EISDIR : EACCES;
        close(fd);
        errno = saved;
        return -1;
    }
    /* O_NONBLOCK only kept a FIFO from blocking the open; files ignore it,
     * but clear it anyway so sendfile sees an ordinary descriptor. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void not_built(ad_req *req, const char *root)
{
    /* The path goes to the log only: this answer needs no key. */
    ad_log(&req->srv->log, AD_LOG_WARN, "playground requested but %s is not a directory", root);
    ad_reply_error(req, 404, "invalid_request_error", NULL, "playground_not_built",
                   "The playground is not built. Build it with `make` in the assistd checkout "
                   "(it runs npm ci and vite build in playground/), or point --playground-dir "
                   "/ ASSISTD_PLAYGROUND_DIR at a built copy.");
}

void ad_h_playground(ad_req *req)
{
    const char *root = req->srv->cfg.playground_dir;
    const char *url = req->url;
    const size_t plen = strlen(AD_PLAYGROUND_PREFIX);
    if (strncmp(url, AD_PLAYGROUND_PREFIX, plen) != 0 || (url[plen] != '\0' && url[plen] != '/')) {
        ad_reply_error(req, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
                       req->method, url);
        return;
    }
    if (url[plen] == '\0') {
        /* The page loads its assets by relative URLs: they need the slash. */
        ad_buf_reset(&req->out);
        ad_buf_addstr(&req->out, "Moved to " AD_PLAYGROUND_PREFIX "/\n");
        req->status = 308;
        req->ctype = "text/plain; charset=utf-8";
        req->responded = true;
        ad_req_add_header(req, "Location", AD_PLAYGROUND_PREFIX "/");
        return;
    }
    const char *rel = url + plen + 1;
    if (!*rel)
        rel = "index.html";
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        not_built(req, root);
        return;
    }
    if (!ad_static_path_ok(rel)) {
        ad_reply_error(req, 404, "invalid_request_error", NULL, NULL,
                       "No playground file found at '%s'.", url);
        return;
    }
    bool immutable = ad_str_has_prefix(rel, "assets/");
    const char *ctype = ad_static_ctype(rel);
    int fd = -1;
    bool gz = false;
    if (ad_static_accepts_gzip(ad_req_header(req, "Accept-Encoding"))) {
        char gzname[REL_MAX + 8];
        snprintf(gzname, sizeof gzname, "%s.gz", rel);
        fd = ad_static_open(root, gzname, &st);
        gz = fd >= 0;
    }
    if (fd < 0)
        fd = ad_static_open(root, rel, &st);
    if (fd < 0) {
        if (errno == EISDIR)
            ad_reply_error(req, 404, "invalid_request_error", NULL, NULL,
                           "'%s' is a directory; the playground is at " AD_PLAYGROUND_PREFIX "/.",
                           url);
        else
            ad_reply_error(req, 404, "invalid_request_error", NULL, NULL,
                           "No playground file found at '%s'.", url);
        return;
    }
    char etag[80];
    snprintf(etag, sizeof etag, "\"%llx-%llx%s\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec,
             gz ? "-gz" : "");
    ad_reply_fd(req, fd, (uint64_t)st.st_size, ctype);
    /* A 304 is built as the 200 would be: libmicrohttpd sends no body with
     * it but keeps Content-Length, which RFC 9110 allows only when it is
     * the 200's. */
    if (ad_static_etag_matches(ad_req_header(req, "If-None-Match"), etag))
        req->status = 304;
    ad_req_add_header(req, "ETag", etag);
    ad_req_add_header(req, "Cache-Control",
                      immutable ? "public, max-age=31536000, immutable" : "no-cache");
    ad_req_add_header(req, "Vary", "Accept-Encoding");
    ad_req_add_header(req, "X-Content-Type-Options", "nosniff");
    if (gz && req->status != 304)
        ad_req_add_header(req, "Content-Encoding", "gzip");
}
