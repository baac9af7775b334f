/*
 * multipart.c -- incremental multipart/form-data parser (see multipart.h).
 *
 * The body is a byte-at-a-time state machine, but the hot path (part data)
 * is scanned with memchr for '\r', the only byte that can start the
 * delimiter D = "\r\n--" BOUNDARY. The key observation is that '\r' occurs
 * nowhere else in D (a boundary is made of RFC 2046 bchars), so:
 *
 *   - the bytes held back while a delimiter might be starting are always
 *     exactly D[0..match), so no hold-back buffer is needed: if the match
 *     fails, the held bytes are re-emitted straight from D;
 *   - after a mismatch the only possible restart is at a '\r', so plain
 *     "reset to zero and rescan the byte" is a correct KMP fallback.
 *
 * At most strlen(D) - 1 <= AD_MP_BOUNDARY_MAX + 3 bytes are ever held back.
 * Data that belongs to the current feed is delivered as one slice of the
 * caller's buffer (zero copy); only bytes held over from an earlier feed are
 * delivered from D.
 *
 * The very first delimiter may open the body without the leading CRLF; this
 * is handled by starting in the preamble with two bytes ("\r\n") already
 * matched. Preamble bytes are discarded, as is everything after the close
 * delimiter (the epilogue).
 *
 * After a delimiter comes either "--" (close) or optional SP/HT padding and
 * CRLF. part_end for a part is only called once that line is complete, so a
 * truncated or malformed body never reports a part as finished.
 *
 * Part headers are collected into a bounded ad_buf (max_header_bytes counts
 * every header byte including the CRLFs) and parsed once the blank line is
 * seen; CR and LF must come as a pair and other control bytes (but HT) are
 * rejected, so the decoded strings handed to callbacks never contain NUL.
 */
#include "multipart.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/str.h"

#define MP_DEFAULT_HEADER_MAX (16 * 1024)

enum mp_state {
    S_PREAMBLE, /* searching for the first delimiter, discarding bytes */
    S_DELIM,    /* a delimiter was matched: expecting "--", padding or CR */
    S_DASH,     /* seen "-": expecting the second "-" of the close delimiter */
    S_PAD,      /* transport padding (SP/HT) after the boundary */
    S_LF,       /* seen CR after the boundary: expecting LF */
    S_HEADERS,  /* collecting part headers up to the blank line */
    S_BODY,     /* part data, searching for the next delimiter */
    S_EPILOGUE  /* close delimiter seen: everything else is ignored */
};

struct ad_mp {
    ad_mp_callbacks cb;
    void *ud;
    char delim[4 + AD_MP_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t dlen;
    size_t match; /* bytes of delim matched (and held back) so far */
    enum mp_state state;
    bool in_part; /* part_begin was called, part_end not yet */
    ad_buf hdr;   /* raw header block of the current part */
    ad_buf name, filename, fname_ext, ctype;
    bool has_name, has_filename, has_fname_ext, has_ctype, has_cd;
    ad_err err;
    const char *errmsg;
};

/* ---------------------------------------------------------------------------
 * Character classes and small string helpers.
 * ------------------------------------------------------------------------ */

/* RFC 7230 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 2046 bcharsnospace. */
static bool is_bchar_nospace(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("'()+_,-./:=?", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *s)
{
    while (is_ows(*s))
        s++;
    return s;
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive ASCII comparison of s[0..n) with the C string lit. */
static bool span_ieq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' ||
            ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return lit[i] == '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A bounded boundary of RFC 2046 bchars, not ending in a space. */
static bool boundary_valid(const char *b, size_t n)
{
    if (n == 0 || n > AD_MP_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != ' ' && !is_bchar_nospace((unsigned char)b[i]))
            return false;
    }
    return true;
}

/*
 * Parses the next `; name=value` parameter of a header value at *sp (a NUL-
 * terminated string). The value is a quoted-string (backslash escapes are
 * undone) or an unquoted run of bytes other than ';', '"', whitespace and
 * controls. The decoded value goes to val. Returns 1 for a parameter, 0 at
 * the end (a trailing ';' is tolerated) and -1 when malformed.
 */
static int param_next(const char **sp, const char **name, size_t *namelen, ad_buf *val)
{
    const char *s = skip_ows(*sp);
    if (*s == '\0')
        return 0;
    if (*s != ';')
        return -1;
    s = skip_ows(s + 1);
    if (*s == '\0')
        return 0;
    *name = s;
    while (is_tchar((unsigned char)*s))
        s++;
    *namelen = (size_t)(s - *name);
    if (*namelen == 0)
        return -1;
    s = skip_ows(s);
    if (*s != '=')
        return -1;
    s = skip_ows(s + 1);
    ad_buf_reset(val);
    if (*s == '"') {
        for (s++;; s++) {
            if (*s == '\0')
                return -1;
            if (*s == '"')
                break;
            if (*s == '\\' && *++s == '\0')
                return -1;
            if (ad_buf_addc(val, *s))
                return -1;
        }
        s++;
    } else {
        const char *v = s;
        while (*s != '\0' && *s != ';' && *s != '"' && (unsigned char)*s > ' ')
            s++;
        if (s == v || ad_buf_add(val, v, (size_t)(s - v)))
            return -1;
    }
    *sp = s;
    return 1;
}

ad_err ad_mp_boundary(const char *content_type, char *out, size_t outsize)
{
    static const char mftype[] = "multipart/form-data";
    if (!content_type || !out || outsize == 0)
        return AD_EINVAL;
    out[0] = '\0';

    const char *s = skip_ows(content_type);
    const char *t = s;
    while (is_tchar((unsigned char)*s) || *s == '/')
        s++;
    if (!span_ieq(t, (size_t)(s - t), mftype))
        return AD_EINVAL;

    ad_buf val;
    ad_buf_init(&val, strlen(content_type));
    ad_err rc = AD_EINVAL;
    bool found = false;
    const char *pname;
    size_t plen;
    int r;
    while ((r = param_next(&s, &pname, &plen, &val)) == 1) {
        if (!span_ieq(pname, plen, "boundary"))
            continue;
        if (found || !boundary_valid(val.ptr, val.len) || val.len >= outsize)
            goto done;
        memcpy(out, val.ptr, val.len + 1);
        found = true;
    }
    if (r == 0 && found)
        rc = AD_OK;
done:
    if (rc)
        out[0] = '\0';
    ad_buf_free(&val);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The parser object.
 * ------------------------------------------------------------------------ */

ad_mp *ad_mp_new(const char *boundary, const ad_mp_callbacks *cb, void *ud, size_t max_header_bytes)
{
    if (!boundary || !cb)
        return NULL;
    size_t blen = strlen(boundary);
    if (!boundary_valid(boundary, blen))
        return NULL;
    if (max_header_bytes == 0)
        max_header_bytes = MP_DEFAULT_HEADER_MAX;
    if (max_header_bytes > SIZE_MAX / 4)
        max_header_bytes = SIZE_MAX / 4;

    ad_mp *mp = ad_calloc(1, sizeof(*mp));
    mp->cb = *cb;
    mp->ud = ud;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, blen + 1);
    mp->dlen = 4 + blen;
    /* The first delimiter may start the body without its CRLF. */
    mp->match = 2;
    mp->state = S_PREAMBLE;
    mp->err = AD_OK;
    mp->errmsg = "";
    ad_buf_init(&mp->hdr, max_header_bytes);
    /* Decoded values are never longer than twice the header block (the
     * ISO-8859-1 to UTF-8 conversion of filename* is the worst case). */
    size_t vmax = 2 * max_header_bytes + 1;
    ad_buf_init(&mp->name, vmax);
    ad_buf_init(&mp->filename, vmax);
    ad_buf_init(&mp->fname_ext, vmax);
    ad_buf_init(&mp->ctype, vmax);
    return mp;
}

void ad_mp_free(ad_mp *mp)
{
    if (!mp)
        return;
    ad_buf_free(&mp->hdr);
    ad_buf_free(&mp->name);
    ad_buf_free(&mp->filename);
    ad_buf_free(&mp->fname_ext);
    ad_buf_free(&mp->ctype);
    ad_free(mp);
}

const char *ad_mp_error(const ad_mp *mp)
{
    return mp ? mp->errmsg : "";
}

static ad_err fail(ad_mp *mp, ad_err rc, const char *msg)
{
    if (mp->err == AD_OK) {
        mp->err = rc;
        mp->errmsg = msg;
    }
    return mp->err;
}

static ad_err cb_fail(ad_mp *mp, ad_err rc)
{
    return fail(mp, rc, "aborted by callback");
}

/* Delivers part data; preamble bytes are dropped. */
static ad_err emit(ad_mp *mp, const char *p, size_t n)
{
    if (n == 0 || mp->state != S_BODY || !mp->cb.part_data)
        return AD_OK;
    ad_err rc = mp->cb.part_data(mp->ud, p, n);
    return rc ? cb_fail(mp, rc) : AD_OK;
}

/* ---------------------------------------------------------------------------
 * Part headers.
 * ------------------------------------------------------------------------ */

/*
 * Decodes an RFC 8187 ext-value (charset'language'pct-encoded) into out as
 * UTF-8. Returns 1 on success, 0 for a charset other than UTF-8 or
 * ISO-8859-1 (the caller then falls back to plain filename) and -1 when
 * malformed or when the result has control bytes or invalid UTF-8.
 */
static int ext_value_decode(const char *v, size_t n, ad_buf *out)
{
    const char *q1 = memchr(v, '\'', n);
    if (!q1)
        return -1;
    const char *q2 = memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v));
    if (!q2)
        return -1;
    bool utf8 = span_ieq(v, (size_t)(q1 - v), "UTF-8");
    if (!utf8 && !span_ieq(v, (size_t)(q1 - v), "ISO-8859-1"))
        return 0;
    ad_buf_reset(out);
    const char *end = v + n;
    for (const char *p = q2 + 1; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            if (end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                return -1;
            c = (unsigned char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        }
        if (c < 0x20 && c != '\t')
            return -1;
        ad_err rc;
        if (utf8 || c < 0x80) {
            rc = ad_buf_addc(out, (char)c);
        } else {
            char u[4]; /* ISO-8859-1: the byte is the code point */
            rc = ad_buf_add(out, u, ad_utf8_put(c, u));
        }
        if (rc)
            return -1;
    }
    if (utf8 && !ad_utf8_valid(out->ptr ? out->ptr : "", out->len))
        return -1;
    return 1;
}

/* Stores a parameter value, rejecting a repeated parameter. */
static bool take_param(bool *seen, ad_buf *dst, const ad_buf *val)
{
    if (*seen)
        return false;
    *seen = true;
    ad_buf_reset(dst);
    return ad_buf_add(dst, val->ptr ? val->ptr : "", val->len) == AD_OK;
}

static ad_err parse_disposition(ad_mp *mp, const char *s)
{
    static const char bad[] = "malformed Content-Disposition";
    const char *t = s;
    while (is_tchar((unsigned char)*s))
        s++;
    if (s == t)
        return fail(mp, AD_EINVAL, bad);
    if (!span_ieq(t, (size_t)(s - t), "form-data"))
        return fail(mp, AD_EINVAL, "Content-Disposition is not form-data");

    ad_buf val;
    ad_buf_init(&val, mp->hdr.len);
    ad_err rc = AD_OK;
    const char *pname;
    size_t plen;
    int r;
    while ((r = param_next(&s, &pname, &plen, &val)) == 1) {
        bool ok = true;
        if (span_ieq(pname, plen, "name")) {
            ok = take_param(&mp->has_name, &mp->name, &val);
        } else if (span_ieq(pname, plen, "filename")) {
            ok = take_param(&mp->has_filename, &mp->filename, &val);
        } else if (span_ieq(pname, plen, "filename*")) {
            if (mp->has_fname_ext) {
                ok = false;
            } else {
                int d = ext_value_decode(ad_buf_str(&val), val.len, &mp->fname_ext);
                ok = d >= 0;
                mp->has_fname_ext = d > 0;
            }
        }
        if (!ok) {
            rc = fail(mp, AD_EINVAL, bad);
            break;
        }
    }
    if (r < 0)
        rc = fail(mp, AD_EINVAL, bad);
    ad_buf_free(&val);
    return rc;
}

static ad_err parse_header_line(ad_mp *mp, char *line)
{
    static const char bad[] = "malformed part headers";
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return fail(mp, AD_EINVAL, bad);
    for (const char *p = line; p < colon; p++) {
        if (!is_tchar((unsigned char)*p))
            return fail(mp, AD_EINVAL, bad);
    }
    size_t nlen = (size_t)(colon - line);
    char *v = (char *)skip_ows(colon + 1);
    size_t vlen = strlen(v);
    while (vlen > 0 && is_ows(v[vlen - 1]))
        vlen--;
    v[vlen] = '\0';

    if (span_ieq(line, nlen, "Content-Disposition")) {
        if (mp->has_cd)
            return fail(mp, AD_EINVAL, "duplicate Content-Disposition");
        mp->has_cd = true;
        return parse_disposition(mp, v);
    }
    if (span_ieq(line, nlen, "Content-Type")) {
        if (mp->has_ctype)
            return fail(mp, AD_EINVAL, "duplicate Content-Type");
        mp->has_ctype = true;
        ad_buf_reset(&mp->ctype);
        if (ad_buf_add(&mp->ctype, v, vlen))
            return fail(mp, AD_ETOOBIG, "part headers too large");
    }
    return AD_OK;
}

/* The header block (ending in the blank line) is complete: parse it and
 * start the part. */
static ad_err headers_done(ad_mp *mp)
{
    char *h = mp->hdr.ptr;
    size_t n = mp->hdr.len;
    mp->has_name = mp->has_filename = mp->has_fname_ext = mp->has_ctype = mp->has_cd = false;
    ad_buf_reset(&mp->name);
    ad_buf_reset(&mp->filename);
    ad_buf_reset(&mp->fname_ext);
    ad_buf_reset(&mp->ctype);

    /* Obsolete line folding: CRLF followed by SP/HT continues a line. */
    if (is_ows(h[0]))
        return fail(mp, AD_EINVAL, "malformed part headers");
    for (size_t i = 0; i + 2 < n; i++) {
        if (h[i] == '\r' && h[i + 1] == '\n' && is_ows(h[i + 2]))
            h[i] = h[i + 1] = ' ';
    }
    /* Every line ends in CRLF (enforced while collecting); the last is empty. */
    char *line = h;
    for (;;) {
        char *cr = strchr(line, '\r');
        if (!cr || cr == line)
            break;
        *cr = '\0';
        ad_err rc = parse_header_line(mp, line);
        if (rc)
            return rc;
        line = cr + 2;
    }
    if (!mp->has_cd)
        return fail(mp, AD_EINVAL, "missing Content-Disposition");

    const char *filename = NULL;
    if (mp->has_fname_ext)
        filename = ad_buf_str(&mp->fname_ext);
    else if (mp->has_filename)
        filename = ad_buf_str(&mp->filename);
    mp->in_part = true;
    mp->state = S_BODY;
    mp->match = 0;
    if (mp->cb.part_begin) {
        ad_err rc = mp->cb.part_begin(mp->ud, ad_buf_str(&mp->name), filename,
                                      mp->has_ctype ? ad_buf_str(&mp->ctype) : NULL);
        if (rc)
            return cb_fail(mp, rc);
    }
    return AD_OK;
}

static ad_err header_byte(ad_mp *mp, char c)
{
    static const char bad[] = "malformed part headers";
    char prev = mp->hdr.len ? mp->hdr.ptr[mp->hdr.len - 1] : '\0';
    if (c == '\n') {
        if (prev != '\r')
            return fail(mp, AD_EINVAL, bad);
    } else if (prev == '\r' || ((unsigned char)c < 0x20 && c != '\t' && c != '\r')) {
        return fail(mp, AD_EINVAL, bad);
    }
    if (ad_buf_addc(&mp->hdr, c))
        return fail(mp, AD_ETOOBIG, "part headers too large");
    size_t n = mp->hdr.len;
    if (c == '\n' && (n == 2 || (n >= 4 && memcmp(mp->hdr.ptr + n - 4, "\r\n\r\n", 4) == 0)))
        return headers_done(mp);
    return AD_OK;
}

/* ---------------------------------------------------------------------------
 * Delimiter search and the feed loop.
 * ------------------------------------------------------------------------ */

/*
 * Scans p[0..n) for the delimiter in S_PREAMBLE or S_BODY, delivering body
 * bytes that cannot be part of it. Sets *used to the bytes consumed: all of
 * them, or up to the end of a delimiter (the state is then S_DELIM).
 */
static ad_err scan(ad_mp *mp, const char *p, size_t n, size_t *used)
{
    size_t old = mp->match; /* matched bytes from earlier feeds, not in p */
    size_t start = 0;       /* p[start..) is not delivered yet */
    size_t i = 0;
    ad_err rc;

    while (i < n) {
        if (mp->match == 0) {
            const char *cr = memchr(p + i, '\r', n - i);
            if (!cr) {
                i = n;
                break;
            }
            i = (size_t)(cr - p) + 1;
            mp->match = 1;
        } else if (p[i] == mp->delim[mp->match]) {
            i++;
            if (++mp->match == mp->dlen) {
                /* Everything undelivered before the delimiter is data. */
                size_t in_p = mp->dlen - old;
                rc = emit(mp, p + start, i - in_p - start);
                mp->match = 0;
                *used = i;
                if (rc)
                    return rc;
                mp->state = S_DELIM;
                return AD_OK;
            }
        } else {
            /* Mismatch: the held bytes were data after all. Those from an
             * earlier feed are re-created from delim; those in p stay in
             * the pending slice. p[i] is rescanned. */
            if (old) {
                rc = emit(mp, mp->delim, old);
                if (rc) {
                    *used = i;
                    return rc;
                }
                old = 0;
            }
            mp->match = 0;
        }
    }
    *used = n;
    /* Hold back the bytes that may start a delimiter. */
    size_t held_in_p = mp->match - old;
    return emit(mp, p + start, n - held_in_p - start);
}

static ad_err part_finished(ad_mp *mp)
{
    if (!mp->in_part)
        return AD_OK;
    mp->in_part = false;
    if (mp->cb.part_end) {
        ad_err rc = mp->cb.part_end(mp->ud);
        if (rc)
            return cb_fail(mp, rc);
    }
    return AD_OK;
}

static ad_err delim_byte(ad_mp *mp, char c)
{
    static const char nocrlf[] = "missing CRLF after boundary";
    switch (mp->state) {
    case S_DELIM:
    case S_PAD:
        if (c == '-' && mp->state == S_DELIM) {
            mp->state = S_DASH;
            return AD_OK;
        }
        if (is_ows(c)) {
            mp->state = S_PAD;
            return AD_OK;
        }
        if (c == '\r') {
            mp->state = S_LF;
            return AD_OK;
        }
        return fail(mp, AD_EINVAL, nocrlf);
    case S_DASH:
        if (c != '-')
            return fail(mp, AD_EINVAL, "malformed closing boundary");
        mp->state = S_EPILOGUE;
        return part_finished(mp);
    case S_LF:
        if (c != '\n')
            return fail(mp, AD_EINVAL, nocrlf);
        mp->state = S_HEADERS;
        ad_buf_reset(&mp->hdr);
        return part_finished(mp);
    default:
        return fail(mp, AD_EINTERNAL, "internal parser error");
    }
}

ad_err ad_mp_feed(ad_mp *mp, const char *data, size_t len)
{
    if (!mp)
        return AD_EINVAL;
    if (mp->err)
        return mp->err;
    if (!data && len)
        return fail(mp, AD_EINVAL, "invalid argument");

    size_t i = 0;
    while (i < len) {
        ad_err rc;
        size_t used;
        switch (mp->state) {
        case S_PREAMBLE:
        case S_BODY:
            rc = scan(mp, data + i, len - i, &used);
            i += used;
            break;
        case S_HEADERS:
            rc = header_byte(mp, data[i++]);
            break;
        case S_EPILOGUE:
            return AD_OK;
        default:
            rc = delim_byte(mp, data[i++]);
            break;
        }
        if (rc)
            return rc;
    }
    return AD_OK;
}

ad_err ad_mp_finish(ad_mp *mp)
{
    if (!mp)
        return AD_EINVAL;
    if (mp->err)
        return mp->err;
    if (mp->state != S_EPILOGUE)
        return fail(mp, AD_EINVAL, "missing closing boundary");
    return AD_OK;
}
