/*
 * extract.c -- plain text out of uploaded files (formats and policies are in
 * extract.h).
 *
 * Everything works on the file's bytes in memory: ad_extract_file maps the
 * file read-only (a 500 MB upload costs page cache, not heap) and hands the
 * mapping to the same code as ad_extract_mem. Only PDF leaves the process:
 * pdftotext runs as a child (posix_spawn, no shell, stdin and stderr on
 * /dev/null) whose stdout is read through a pipe with poll() against a
 * deadline and an output cap, and which is killed when either is crossed.
 *
 * The pieces, in file order:
 *   ctx         where the text goes (the caller's ad_buf), the message, and
 *               the length `out` had on entry, to undo a failed extraction;
 *   decode      BOM sniffing, UTF-16 -> UTF-8, strict UTF-8 and NUL checks:
 *               gives a UTF-8 view of a text file, used by text, HTML and XML;
 *   text        appends decoded text with CRLF/CR turned into LF;
 *   html        a one-pass tag scanner: tags and hidden elements dropped,
 *               entities decoded, whitespace collapsed into at most one
 *               pending break (space < line < paragraph) that is written
 *               only before the next visible character;
 *   zip         central-directory reader; every offset and size is checked
 *               against the buffer before use, inflation is bounded by the
 *               size the entry declares and the limits in extract.h, and the
 *               CRC must match;
 *   xml         a small well-formedness-checking scanner (name stack, quoted
 *               attributes, comments, CDATA, PIs) that feeds the text of t
 *               elements and the breaks of p/br/tab elements (matched by
 *               local name, so any namespace prefix works) to the output;
 *   pdf         the pdftotext child;
 *   dispatch    extension table and content sniffing.
 */
#include "ingest/extract.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "util/alloc.h"
#include "util/str.h"

extern char **environ;

typedef enum { FMT_UNSUPPORTED, FMT_SNIFF, FMT_TEXT, FMT_HTML, FMT_DOCX, FMT_PPTX, FMT_PDF } ffmt;

typedef struct {
    ad_buf *out;
    size_t base; /* out->len on entry */
    char *msg;
    size_t msgsize;
    bool undecodable; /* decode_text refused the bytes as text */
} ctx;

typedef ad_extract_result res;

__attribute__((format(printf, 3, 4))) static res fail(ctx *c, res r, const char *fmt, ...)
{
    if (c->msg && c->msgsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->msgsize, fmt, ap);
        va_end(ap);
    }
    return r;
}

static res too_much(ctx *c)
{
    return fail(c, AD_EXTRACT_INVALID,
                "The file contains more text than file_search can index (limit %zu bytes).",
                c->out->max);
}

static res put(ctx *c, const void *p, size_t n)
{
    return ad_buf_add(c->out, p, n) == AD_OK ? AD_EXTRACT_OK : too_much(c);
}

static bool is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* As ad_utf8_put, but NUL (not text) becomes U+FFFD too. */
static size_t utf8_encode(uint32_t cp, char *o)
{
    return ad_utf8_put(cp ? cp : 0xFFFD, o);
}

/* ---- decode: a UTF-8 view of a text file -------------------------------- */

/* UTF-16 (BOM already removed) to UTF-8 in tmp. */
static res utf16_to_utf8(ctx *c, const unsigned char *p, size_t n, bool be, ad_buf *tmp)
{
    if (n % 2)
        return fail(c, AD_EXTRACT_INVALID, "The file is not valid UTF-16 text (odd length).");
    for (size_t i = 0; i < n; i += 2) {
        uint32_t u = be ? (uint32_t)p[i] << 8 | p[i + 1] : (uint32_t)p[i + 1] << 8 | p[i];
        if (u >= 0xDC00 && u <= 0xDFFF)
            return fail(c, AD_EXTRACT_INVALID, "The file is not valid UTF-16 text.");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 3 >= n)
                return fail(c, AD_EXTRACT_INVALID, "The file is not valid UTF-16 text.");
            uint32_t l =
                be ? (uint32_t)p[i + 2] << 8 | p[i + 3] : (uint32_t)p[i + 3] << 8 | p[i + 2];
            if (l < 0xDC00 || l > 0xDFFF)
                return fail(c, AD_EXTRACT_INVALID, "The file is not valid UTF-16 text.");
            u = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
            i += 2;
        }
        char enc[4];
        size_t k = u == 0 ? 1 : utf8_encode(u, enc);
        if (u == 0)
            enc[0] = '\0'; /* kept, so that the NUL check below sees it */
        if (ad_buf_add(tmp, enc, k))
            return too_much(c);
    }
    return AD_EXTRACT_OK;
}

/*
 * Points *q and *qn at the UTF-8 text of p[0..n): p itself without a UTF-8 BOM,
 * or its UTF-16 conversion in tmp (caller frees tmp). Rejects NUL bytes and
 * invalid UTF-8.
 */
static res decode_text(ctx *c, const char *p, size_t n, ad_buf *tmp, const char **q, size_t *qn)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
        p += 3;
        n -= 3;
    } else if (n >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
        res r = utf16_to_utf8(c, u + 2, n - 2, u[0] == 0xFE, tmp);
        if (r)
            return r;
        p = tmp->ptr ? tmp->ptr : "";
        n = tmp->len;
    }
    c->undecodable = true;
    if (n && memchr(p, '\0', n))
        return fail(c, AD_EXTRACT_INVALID,
                    "The file contains NUL bytes, so it is binary data rather than text.");
    if (!ad_utf8_valid(p, n))
        return fail(c, AD_EXTRACT_INVALID, "The file is not valid UTF-8 text.");
    c->undecodable = false;
    *q = p;
    *qn = n;
    return AD_EXTRACT_OK;
}

/* ---- plain text ----------------------------------------------------------- */

/* Appends UTF-8 p[0..n) with CRLF and lone CR turned into LF. */
static res put_lf(ctx *c, const char *p, size_t n)
{
    while (n) {
        const char *cr = memchr(p, '\r', n);
        size_t k = cr ? (size_t)(cr - p) : n;
        res r = put(c, p, k);
        if (r || !cr)
            return r;
        r = put(c, "\n", 1);
        if (r)
            return r;
        k++;
        if (k < n && p[k] == '\n')
            k++;
        p += k;
        n -= k;
    }
    return AD_EXTRACT_OK;
}

/* Decodes p (decode_text) and hands the UTF-8 text to then. */
static res decoded(ctx *c, const char *p, size_t n, res (*then)(ctx *c, const char *p, size_t n))
{
    ad_buf tmp;
    const char *q = NULL;
    size_t qn = 0;
    ad_buf_init(&tmp, n / 2 * 3 + 16);
    res r = decode_text(c, p, n, &tmp, &q, &qn);
    if (!r)
        r = then(c, q, qn);
    ad_buf_free(&tmp);
    return r;
}

static res extract_text(ctx *c, const char *p, size_t n)
{
    return decoded(c, p, n, put_lf);
}

/* ---- HTML ------------------------------------------------------------------ */

enum { BRK_NONE, BRK_SPACE, BRK_LINE, BRK_PARA };

typedef struct {
    ctx *c;
    int brk;   /* pending break, written before the next visible character */
    bool any;  /* something visible was written */
    bool head; /* inside <head> */
    int hide;  /* depth of template/noscript/... */
    int pre;   /* depth of <pre> */
    res r;     /* first output failure */
} html_st;

static void html_put(html_st *h, const char *s, size_t n)
{
    if (h->r || h->head || h->hide)
        return;
    if (h->any && h->brk) {
        static const char *const seps[] = {"", " ", "\n", "\n\n"};
        const char *sep = seps[h->brk];
        h->r = put(h->c, sep, strlen(sep));
    }
    h->brk = BRK_NONE;
    if (!h->r)
        h->r = put(h->c, s, n);
    h->any = true;
}

static void html_break(html_st *h, int level)
{
    if (level > h->brk)
        h->brk = level;
}

/* One character of text (s[0..n) is one UTF-8 character). */
static void html_char(html_st *h, const char *s, size_t n)
{
    unsigned char ch = (unsigned char)s[0];
    if (n == 1 && is_space(ch)) {
        if (!h->pre) {
            html_break(h, BRK_SPACE);
        } else if (ch == '\n') { /* inside <pre>: a line break, two a paragraph */
            html_break(h, h->brk >= BRK_LINE ? BRK_PARA : BRK_LINE);
        } else if (ch != '\r') {
            html_put(h, s, 1);
        }
        return;
    }
    html_put(h, s, n);
}

typedef struct {
    const char *name;
    uint32_t cp;
} entity;

static const entity ENTITIES[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},      {"apos", '\''},
    {"nbsp", ' '},     {"ensp", ' '},     {"emsp", ' '},     {"thinsp", ' '},    {"shy", 0xAD},
    {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026}, {"mdash", 0x2014},
    {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"sbquo", 0x201A},  {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"laquo", 0xAB},   {"raquo", 0xBB},    {"bull", 0x2022},
    {"middot", 0xB7},  {"euro", 0x20AC},  {"pound", 0xA3},   {"yen", 0xA5},      {"cent", 0xA2},
    {"sect", 0xA7},    {"para", 0xB6},    {"deg", 0xB0},     {"plusmn", 0xB1},   {"times", 0xD7},
    {"divide", 0xF7},  {"frac12", 0xBD},  {"frac14", 0xBC},  {"frac34", 0xBE},   {"sup2", 0xB2},
    {"sup3", 0xB3},    {"micro", 0xB5},   {"iexcl", 0xA1},   {"iquest", 0xBF},   {"larr", 0x2190},
    {"rarr", 0x2192},  {"uarr", 0x2191},  {"darr", 0x2193},  {"le", 0x2264},     {"ge", 0x2265},
    {"ne", 0x2260},    {"infin", 0x221E}, {"minus", 0x2212}, {"dagger", 0x2020}, {"prime", 0x2032},
    {"alpha", 0x3B1},  {"beta", 0x3B2},   {"gamma", 0x3B3},  {"delta", 0x3B4},   {"pi", 0x3C0},
    {"sigma", 0x3C3},  {"mu", 0x3BC},     {"lambda", 0x3BB}, {"omega", 0x3C9},   {"Agrave", 0xC0},
    {"Aacute", 0xC1},  {"Acirc", 0xC2},   {"Auml", 0xC4},    {"Aring", 0xC5},    {"AElig", 0xC6},
    {"Ccedil", 0xC7},  {"Eacute", 0xC9},  {"Egrave", 0xC8},  {"Ntilde", 0xD1},   {"Ouml", 0xD6},
    {"Oslash", 0xD8},  {"Uuml", 0xDC},    {"szlig", 0xDF},   {"agrave", 0xE0},   {"aacute", 0xE1},
    {"acirc", 0xE2},   {"atilde", 0xE3},  {"auml", 0xE4},    {"aring", 0xE5},    {"aelig", 0xE6},
    {"ccedil", 0xE7},  {"egrave", 0xE8},  {"eacute", 0xE9},  {"ecirc", 0xEA},    {"euml", 0xEB},
    {"igrave", 0xEC},  {"iacute", 0xED},  {"icirc", 0xEE},   {"iuml", 0xEF},     {"ntilde", 0xF1},
    {"ograve", 0xF2},  {"oacute", 0xF3},  {"ocirc", 0xF4},   {"otilde", 0xF5},   {"ouml", 0xF6},
    {"oslash", 0xF8},  {"ugrave", 0xF9},  {"uacute", 0xFA},  {"ucirc", 0xFB},    {"uuml", 0xFC},
    {"yacute", 0xFD},  {"yuml", 0xFF},
};

/*
 * Decodes the character reference at p[0..n) (p[0] == '&'). On success
 * returns its length and sets *cp; 0 when it is not one (the '&' is text).
 * Named references need their ';' (case matters, as in HTML); numeric ones
 * may omit it. Out-of-range numbers become U+FFFD (in utf8_encode).
 */
static size_t char_ref(const char *p, size_t n, bool named, uint32_t *cp)
{
    size_t i = 1;
    if (i < n && p[i] == '#') {
        i++;
        bool hex = i < n && (p[i] == 'x' || p[i] == 'X');
        if (hex)
            i++;
        size_t d0 = i;
        uint32_t v = 0;
        for (; i < n; i++) {
            char ch = p[i];
            int dv;
            if (ch >= '0' && ch <= '9')
                dv = ch - '0';
            else if (hex && ch >= 'a' && ch <= 'f')
                dv = ch - 'a' + 10;
            else if (hex && ch >= 'A' && ch <= 'F')
                dv = ch - 'A' + 10;
            else
                break;
            v = v * (hex ? 16 : 10) + (uint32_t)dv;
            if (v > 0x110000)
                v = 0x110000; /* saturate: stays out of range */
        }
        if (i == d0)
            return 0;
        if (i < n && p[i] == ';')
            i++;
        *cp = (v >= 0x80 && v < 0xA0) ? 0xFFFD : v; /* C1 controls are not text */
        return i;
    }
    size_t s = i;
    while (i < n && i - s < 10 &&
           ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
            (p[i] >= '0' && p[i] <= '9')))
        i++;
    if (i == s || i >= n || p[i] != ';')
        return 0;
    size_t len = i - s;
    if (named) {
        for (size_t k = 0; k < sizeof ENTITIES / sizeof ENTITIES[0]; k++)
            if (strlen(ENTITIES[k].name) == len && memcmp(ENTITIES[k].name, p + s, len) == 0) {
                *cp = ENTITIES[k].cp;
                return i + 1;
            }
    } else { /* XML: only the five predefined ones */
        for (size_t k = 0; k < 5; k++)
            if (strlen(ENTITIES[k].name) == len && memcmp(ENTITIES[k].name, p + s, len) == 0) {
                *cp = ENTITIES[k].cp;
                return i + 1;
            }
    }
    return 0;
}

/* Length of the UTF-8 character at p[0..n) (valid UTF-8 assumed, n > 0). */
static size_t utf8_len(const char *p, size_t n)
{
    unsigned char ch = (unsigned char)p[0];
    size_t k = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
    return k <= n ? k : n;
}

/* Break level of a tag name; BRK_NONE for inline elements. */
static int html_block(const char *name)
{
    static const char *const para[] = {
        "p",       "div",      "h1",      "h2",     "h3",   "h4",     "h5",     "h6",
        "section", "article",  "header",  "footer", "main", "nav",    "aside",  "blockquote",
        "pre",     "table",    "ul",      "ol",     "dl",   "form",   "figure", "hr",
        "address", "fieldset", "details", "body",   "html", "center", "menu",   "title"};
    static const char *const line[] = {"br",         "li",      "tr",      "dt",     "dd",
                                       "figcaption", "summary", "caption", "option", "legend",
                                       "thead",      "tbody",   "tfoot"};
    static const char *const cell[] = {"td", "th"};
    for (size_t i = 0; i < sizeof para / sizeof para[0]; i++)
        if (!strcmp(name, para[i]))
            return BRK_PARA;
    for (size_t i = 0; i < sizeof line / sizeof line[0]; i++)
        if (!strcmp(name, line[i]))
            return BRK_LINE;
    for (size_t i = 0; i < sizeof cell / sizeof cell[0]; i++)
        if (!strcmp(name, cell[i]))
            return BRK_SPACE;
    return BRK_NONE;
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Index just past the '>' closing the tag whose name ends at i, honouring
 * quoted attribute values; n + 1 when it never closes. *selfclose says "/>". */
static size_t tag_end(const char *p, size_t n, size_t i, bool *selfclose)
{
    char quote = 0;
    *selfclose = false;
    for (; i < n; i++) {
        char ch = p[i];
        if (quote) {
            if (ch == quote)
                quote = 0;
        } else if (ch == '"' || ch == '\'') {
            quote = ch;
        } else if (ch == '>') {
            *selfclose = i > 0 && p[i - 1] == '/';
            return i + 1;
        }
    }
    return n + 1;
}

/* Case-insensitive search for "</name" followed by space, '/' or '>' from i;
 * returns the index of the '<', or n. */
static size_t find_close(const char *p, size_t n, size_t i, const char *name)
{
    size_t k = strlen(name);
    for (; i + 2 + k <= n; i++) {
        if (p[i] != '<' || p[i + 1] != '/' || strncasecmp(p + i + 2, name, k) != 0)
            continue;
        if (i + 2 + k == n)
            return i;
        char ch = p[i + 2 + k];
        if (is_space((unsigned char)ch) || ch == '/' || ch == '>')
            return i;
    }
    return n;
}

static void html_tag(html_st *h, const char *name, bool end, bool selfclose)
{
    static const char *const hidden[] = {"template", "noscript", "svg", "object", "iframe"};
    if (!strcmp(name, "head")) {
        h->head = !end && !selfclose;
        return;
    }
    if (!strcmp(name, "body") && !end)
        h->head = false;
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        if (strcmp(name, hidden[i]) != 0)
            continue;
        if (end && h->hide > 0)
            h->hide--;
        else if (!end && !selfclose && h->hide < 1000)
            h->hide++;
        return;
    }
    if (!strcmp(name, "pre")) {
        if (end && h->pre > 0)
            h->pre--;
        else if (!end && !selfclose)
            h->pre++;
    }
    int b = html_block(name);
    if (b)
        html_break(h, b);
}

static res html_scan(ctx *c, const char *p, size_t n)
{
    html_st h = {.c = c};
    size_t i = 0;
    while (i < n && !h.r) {
        char ch = p[i];
        if (ch == '&') {
            uint32_t cp;
            size_t k = char_ref(p + i, n - i, true, &cp);
            if (k) {
                char enc[4];
                size_t el = utf8_encode(cp, enc);
                html_char(&h, enc, el);
                i += k;
                continue;
            }
        } else if (ch == '<' && i + 1 < n) {
            char nx = p[i + 1];
            bool sc;
            if (nx == '!') {
                if (n - i >= 4 && !memcmp(p + i, "<!--", 4)) {
                    const char *e = memmem(p + i + 4, n - i - 4, "-->", 3);
                    i = e ? (size_t)(e - p) + 3 : n;
                } else {
                    const char *e = memchr(p + i, '>', n - i);
                    i = e ? (size_t)(e - p) + 1 : n;
                }
                continue;
            }
            if (nx == '?') {
                const char *e = memchr(p + i, '>', n - i);
                i = e ? (size_t)(e - p) + 1 : n;
                continue;
            }
            bool end = nx == '/';
            size_t s = i + 1 + end;
            if (s < n && is_alpha(p[s])) {
                char name[16];
                size_t k = 0, j = s;
                while (j < n && (is_alpha(p[j]) || (p[j] >= '0' && p[j] <= '9') || p[j] == '-' ||
                                 p[j] == ':')) {
                    if (k + 1 < sizeof name)
                        name[k++] = (char)(p[j] | 0x20);
                    j++;
                }
                name[k] = '\0';
                if (j - s >= sizeof name)
                    name[0] = '\0'; /* too long to be one we know */
                i = tag_end(p, n, j, &sc);
                if (!end && !sc && (!strcmp(name, "script") || !strcmp(name, "style"))) {
                    i = find_close(p, n, i, name);
                    if (i < n)
                        i = tag_end(p, n, i + 2, &sc);
                    continue;
                }
                html_tag(&h, name, end, sc);
                continue;
            }
        }
        size_t k = utf8_len(p + i, n - i);
        html_char(&h, p + i, k);
        i += k;
    }
    return h.r;
}

static res extract_html(ctx *c, const char *p, size_t n)
{
    return decoded(c, p, n, html_scan);
}

/* ---- zip ------------------------------------------------------------------- */

typedef struct {
    const unsigned char *z;
    size_t n;
    size_t cd_off, cd_end; /* central directory [cd_off, cd_end) */
    size_t count;          /* entries it declares */
    size_t inflated;       /* bytes inflated so far */
} zipf;

typedef struct {
    const char *name;
    size_t name_len;
    unsigned method, flags;
    uint32_t crc;
    size_t csize, usize, lho;
} zent;

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static res zip_open(ctx *c, const char *data, size_t n, zipf *zf)
{
    const unsigned char *z = (const unsigned char *)data;
    memset(zf, 0, sizeof *zf);
    zf->z = z;
    zf->n = n;
    if (n < 22)
        return fail(c, AD_EXTRACT_INVALID, "The file is not a valid ZIP container.");
    size_t lo = n - 22 > 65535 ? n - 22 - 65535 : 0;
    for (size_t i = n - 22 + 1; i-- > lo;) {
        const unsigned char *e = z + i;
        if (le32(e) != 0x06054b50)
            continue;
        size_t count = le16(e + 10), cd_size = le32(e + 12), cd_off = le32(e + 16);
        if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu)
            return fail(c, AD_EXTRACT_INVALID, "ZIP64 containers are not supported.");
        if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != count)
            return fail(c, AD_EXTRACT_INVALID, "Multi-part ZIP containers are not supported.");
        if (cd_off > i || cd_size > i - cd_off)
            return fail(c, AD_EXTRACT_INVALID, "The file is not a valid ZIP container.");
        if (count > AD_EXTRACT_ZIP_MAX_ENTRIES)
            return fail(c, AD_EXTRACT_INVALID, "The ZIP container has too many entries (over %d).",
                        AD_EXTRACT_ZIP_MAX_ENTRIES);
        zf->cd_off = cd_off;
        zf->cd_end = cd_off + cd_size;
        zf->count = count;
        return AD_EXTRACT_OK;
    }
    return fail(c, AD_EXTRACT_INVALID, "The file is not a valid ZIP container.");
}

/* Reads the central-directory entry at *pos and advances it. */
static res zip_entry(ctx *c, const zipf *zf, size_t *pos, zent *e)
{
    const unsigned char *h = zf->z + *pos;
    if (zf->cd_end - *pos < 46 || le32(h) != 0x02014b50)
        return fail(c, AD_EXTRACT_INVALID, "The ZIP container's directory is damaged.");
    size_t nl = le16(h + 28), el = le16(h + 30), cl = le16(h + 32);
    if (zf->cd_end - *pos - 46 < nl + el + cl)
        return fail(c, AD_EXTRACT_INVALID, "The ZIP container's directory is damaged.");
    e->flags = le16(h + 8);
    e->method = le16(h + 10);
    e->crc = le32(h + 16);
    e->csize = le32(h + 20);
    e->usize = le32(h + 24);
    e->lho = le32(h + 42);
    e->name = (const char *)h + 46;
    e->name_len = nl;
    *pos += 46 + nl + el + cl;
    return AD_EXTRACT_OK;
}

/* Finds the entry called name; *found false when there is none. */
static res zip_find(ctx *c, const zipf *zf, const char *name, zent *e, bool *found)
{
    size_t pos = zf->cd_off, k = strlen(name);
    *found = false;
    for (size_t i = 0; i < zf->count; i++) {
        res r = zip_entry(c, zf, &pos, e);
        if (r)
            return r;
        if (e->name_len == k && !memcmp(e->name, name, k)) {
            *found = true;
            return AD_EXTRACT_OK;
        }
    }
    return AD_EXTRACT_OK;
}

/* The bytes of entry e in *data (ad_malloc'd, NUL-terminated, caller frees)
 * and *len, under the limits of extract.h. */
static res zip_read(ctx *c, zipf *zf, const zent *e, char **data, size_t *len)
{
    res r = AD_EXTRACT_OK;
    char *buf = NULL;
    const size_t MB = 1u << 20;
    *data = NULL;
    *len = 0;
    if (e->flags & 1)
        return fail(c, AD_EXTRACT_INVALID, "The document is encrypted.");
    if (e->usize > AD_EXTRACT_ZIP_MAX_ENTRY || e->usize > AD_EXTRACT_ZIP_MAX_TOTAL - zf->inflated)
        return fail(c, AD_EXTRACT_INVALID, "The document is too large to extract.");
    if (e->usize > MB && e->usize / (e->csize ? e->csize : 1) >= AD_EXTRACT_ZIP_MAX_RATIO)
        return fail(c, AD_EXTRACT_INVALID,
                    "The document is compressed suspiciously well (a ZIP bomb?) and was not "
                    "extracted.");
    if (e->lho > zf->n || zf->n - e->lho < 30 || le32(zf->z + e->lho) != 0x04034b50)
        return fail(c, AD_EXTRACT_INVALID, "The ZIP container is damaged.");
    const unsigned char *lh = zf->z + e->lho;
    size_t skip = 30 + (size_t)le16(lh + 26) + le16(lh + 28);
    if (zf->n - e->lho < skip || zf->n - e->lho - skip < e->csize)
        return fail(c, AD_EXTRACT_INVALID, "The ZIP container is damaged.");
    const unsigned char *src = lh + skip;
    if (e->csize > UINT32_MAX)
        return fail(c, AD_EXTRACT_INVALID, "The document is too large to extract.");
    buf = ad_malloc(e->usize + 1);
    if (e->method == 0) {
        if (e->csize != e->usize) {
            r = fail(c, AD_EXTRACT_INVALID, "The ZIP container is damaged.");
            goto out;
        }
        memcpy(buf, src, e->usize);
    } else if (e->method == 8) {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -15) != Z_OK) {
            r = fail(c, AD_EXTRACT_INVALID, "The document could not be decompressed.");
            goto out;
        }
        zs.next_in = (Bytef *)(uintptr_t)src;
        zs.avail_in = (uInt)e->csize;
        zs.next_out = (Bytef *)buf;
        zs.avail_out = (uInt)e->usize + 1; /* one spare byte detects a lying size */
        int zr = inflate(&zs, Z_FINISH);
        size_t got = zs.total_out;
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || got != e->usize) {
            r = fail(c, AD_EXTRACT_INVALID, "The document could not be decompressed.");
            goto out;
        }
    } else {
        r = fail(c, AD_EXTRACT_INVALID,
                 "The ZIP container uses an unsupported compression method.");
        goto out;
    }
    if (crc32(0L, (const Bytef *)buf, (uInt)e->usize) != e->crc) {
        r = fail(c, AD_EXTRACT_INVALID, "The ZIP container is damaged (checksum mismatch).");
        goto out;
    }
    zf->inflated += e->usize;
    buf[e->usize] = '\0';
    *data = buf;
    *len = e->usize;
    buf = NULL;
out:
    ad_free(buf);
    return r;
}

/* ---- XML (DOCX, PPTX) ------------------------------------------------------- */

#define XML_MAX_DEPTH 256
#define XML_MAX_WS    64

typedef struct {
    ctx *c;
    bool para;           /* a paragraph break is pending */
    bool any;            /* visible text was written (this document) */
    char ws[XML_MAX_WS]; /* whitespace waiting for the next visible text */
    size_t nws;
    res r;
} xml_out;

static void xo_para(xml_out *o)
{
    o->para = true;
    o->nws = 0;
}

static void xo_ws(xml_out *o, char ch)
{
    if (o->nws < XML_MAX_WS)
        o->ws[o->nws++] = ch;
}

static void xo_text(xml_out *o, const char *s, size_t n)
{
    if (o->r || n == 0)
        return;
    if (o->any && o->para)
        o->r = put(o->c, "\n\n", 2);
    o->para = false;
    if (!o->r && o->nws)
        o->r = put(o->c, o->ws, o->nws);
    o->nws = 0;
    if (!o->r)
        o->r = put(o->c, s, n);
    o->any = true;
}

/* Text content of a t element: entities decoded, whitespace held back. */
static void xo_chars(xml_out *o, const char *p, size_t n, bool raw)
{
    size_t i = 0, run = 0; /* p[run..i) is visible text not yet written */
    while (i < n) {
        unsigned char ch = (unsigned char)p[i];
        uint32_t cp;
        size_t k;
        if (is_space(ch)) {
            xo_text(o, p + run, i - run);
            xo_ws(o, ch == '\r' ? '\n' : (char)ch);
            run = ++i;
        } else if (ch == '&' && !raw && (k = char_ref(p + i, n - i, false, &cp)) != 0) {
            char enc[4];
            xo_text(o, p + run, i - run);
            size_t el = utf8_encode(cp, enc);
            if (el == 1 && is_space((unsigned char)enc[0]))
                xo_ws(o, enc[0]);
            else
                xo_text(o, enc, el);
            i += k;
            run = i;
        } else {
            i++;
        }
    }
    xo_text(o, p + run, i - run);
}

static bool xml_name_char(char ch)
{
    return is_alpha(ch) || (ch >= '0' && ch <= '9') || ch == ':' || ch == '_' || ch == '-' ||
           ch == '.' || (unsigned char)ch >= 0x80;
}

/* Whether the local part (after any prefix) of name[0..n) is want. */
static bool local_is(const char *name, size_t n, const char *want)
{
    const char *colon = memrchr(name, ':', n);
    if (colon) {
        n -= (size_t)(colon + 1 - name);
        name = colon + 1;
    }
    return strlen(want) == n && !memcmp(name, want, n);
}

static res xml_bad(ctx *c)
{
    return fail(c, AD_EXTRACT_INVALID, "The document's XML is malformed.");
}

/*
 * Scans one XML document p[0..n) (UTF-8), writing the text of its t elements
 * to o: p elements are paragraphs, br/cr line breaks, tab tabs. Checks
 * well-formedness enough to reject damaged or truncated parts: every tag
 * closes, end tags match their start tags, one root element.
 */
static res xml_scan(ctx *c, xml_out *o, const char *p, size_t n)
{
    struct {
        size_t off, len;
    } stack[XML_MAX_DEPTH];
    size_t depth = 0, roots = 0, in_t = 0, i = 0;
    while (i < n && !o->r) {
        const char *lt = memchr(p + i, '<', n - i);
        size_t j = lt ? (size_t)(lt - p) : n;
        if (in_t && j > i)
            xo_chars(o, p + i, j - i, false);
        else if (!depth)
            for (size_t k = i; k < j; k++)
                if (!is_space((unsigned char)p[k]))
                    return xml_bad(c); /* text outside the root */
        if (!lt)
            break;
        i = j;
        size_t rest = n - i;
        if (rest >= 4 && !memcmp(p + i, "<!--", 4)) {
            const char *e = memmem(p + i + 4, rest - 4, "-->", 3);
            if (!e)
                return xml_bad(c);
            i = (size_t)(e - p) + 3;
            continue;
        }
        if (rest >= 9 && !memcmp(p + i, "<![CDATA[", 9)) {
            const char *e = memmem(p + i + 9, rest - 9, "]]>", 3);
            if (!e || !depth)
                return xml_bad(c);
            if (in_t)
                xo_chars(o, p + i + 9, (size_t)(e - p) - i - 9, true);
            i = (size_t)(e - p) + 3;
            continue;
        }
        if (rest >= 2 && p[i + 1] == '?') {
            const char *e = memmem(p + i + 2, rest - 2, "?>", 2);
            if (!e)
                return xml_bad(c);
            i = (size_t)(e - p) + 2;
            continue;
        }
        if (rest >= 2 && p[i + 1] == '!') { /* DOCTYPE: skipped, internal subset too */
            if (depth || roots)
                return xml_bad(c);
            size_t k = i + 2;
            int brackets = 0;
            for (; k < n; k++) {
                if (p[k] == '[')
                    brackets++;
                else if (p[k] == ']')
                    brackets--;
                else if (p[k] == '>' && brackets <= 0)
                    break;
            }
            if (k >= n)
                return xml_bad(c);
            i = k + 1;
            continue;
        }
        bool end = rest >= 2 && p[i + 1] == '/';
        size_t s = i + 1 + end, k = s;
        while (k < n && xml_name_char(p[k]))
            k++;
        if (k == s)
            return xml_bad(c);
        bool sc;
        size_t after = tag_end(p, n, k, &sc);
        if (after > n)
            return xml_bad(c);
        const char *name = p + s;
        size_t nlen = k - s;
        if (end) {
            if (!depth || stack[depth - 1].len != nlen ||
                memcmp(p + stack[depth - 1].off, name, nlen))
                return xml_bad(c);
            depth--;
            if (local_is(name, nlen, "t") && in_t)
                in_t--;
            else if (local_is(name, nlen, "p"))
                xo_para(o);
        } else {
            if (!depth && roots++)
                return xml_bad(c); /* a second root */
            if (local_is(name, nlen, "p")) {
                xo_para(o);
            } else if (local_is(name, nlen, "br") || local_is(name, nlen, "cr")) {
                xo_ws(o, '\n');
            } else if (local_is(name, nlen, "tab")) {
                xo_ws(o, '\t');
            } else if (local_is(name, nlen, "t") && !sc) {
                in_t++;
            }
            if (!sc) {
                if (depth == XML_MAX_DEPTH)
                    return fail(c, AD_EXTRACT_INVALID, "The document's XML is nested too deeply.");
                stack[depth].off = s;
                stack[depth].len = nlen;
                depth++;
            }
        }
        i = after;
    }
    if (o->r)
        return o->r;
    if (depth || !roots)
        return xml_bad(c);
    return AD_EXTRACT_OK;
}

/* Reads, decodes and scans one XML entry. */
static res xml_entry(ctx *c, zipf *zf, const zent *e, xml_out *o)
{
    char *x = NULL;
    size_t xn = 0;
    ad_buf tmp;
    ad_buf_init(&tmp, AD_EXTRACT_ZIP_MAX_ENTRY / 2 * 3 + 16);
    res r = zip_read(c, zf, e, &x, &xn);
    if (r)
        goto out;
    const char *q = NULL;
    size_t qn = 0;
    r = decode_text(c, x, xn, &tmp, &q, &qn);
    if (r) {
        r = xml_bad(c);
        goto out;
    }
    r = xml_scan(c, o, q, qn);
out:
    ad_free(x);
    ad_buf_free(&tmp);
    return r;
}

static res extract_docx(ctx *c, const char *p, size_t n)
{
    zipf zf;
    zent e;
    bool found;
    res r = zip_open(c, p, n, &zf);
    if (!r)
        r = zip_find(c, &zf, "word/document.xml", &e, &found);
    if (r)
        return r;
    if (!found)
        return fail(c, AD_EXTRACT_INVALID,
                    "The file is not a Word document (no word/document.xml).");
    xml_out o = {.c = c};
    return xml_entry(c, &zf, &e, &o);
}

typedef struct {
    int64_t num;
    size_t pos; /* of its central-directory entry */
} slide_ref;

static int slide_cmp(const void *a, const void *b)
{
    const slide_ref *x = a, *y = b;
    if (x->num != y->num)
        return x->num < y->num ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Slide number of "ppt/slides/slideN.xml", or -1. */
static int64_t slide_number(const char *name, size_t n)
{
    static const char pre[] = "ppt/slides/slide", suf[] = ".xml";
    size_t pl = sizeof pre - 1, sl = sizeof suf - 1;
    int64_t v;
    if (n <= pl + sl || n - pl - sl > 9 || memcmp(name, pre, pl) || memcmp(name + n - sl, suf, sl))
        return -1;
    for (size_t i = pl; i < n - sl; i++)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    return ad_parse_i64n(name + pl, n - pl - sl, &v) ? v : -1;
}

static res extract_pptx(ctx *c, const char *p, size_t n)
{
    zipf zf;
    zent e;
    res r = zip_open(c, p, n, &zf);
    if (r)
        return r;
    slide_ref *slides = ad_malloc((zf.count ? zf.count : 1) * sizeof *slides);
    size_t ns = 0, pos = zf.cd_off;
    bool pres = false;
    for (size_t i = 0; i < zf.count; i++) {
        size_t at = pos;
        r = zip_entry(c, &zf, &pos, &e);
        if (r)
            goto out;
        int64_t num = slide_number(e.name, e.name_len);
        if (num >= 0) {
            slides[ns].num = num;
            slides[ns].pos = at;
            ns++;
        }
        if (e.name_len == 20 && !memcmp(e.name, "ppt/presentation.xml", 20))
            pres = true;
    }
    if (!pres && !ns) {
        r = fail(c, AD_EXTRACT_INVALID, "The file is not a PowerPoint presentation.");
        goto out;
    }
    qsort(slides, ns, sizeof *slides, slide_cmp);
    xml_out o = {.c = c};
    for (size_t i = 0; i < ns && !r; i++) {
        pos = slides[i].pos;
        r = zip_entry(c, &zf, &pos, &e);
        if (!r)
            r = xml_entry(c, &zf, &e, &o);
        xo_para(&o);
    }
out:
    ad_free(slides);
    return r;
}

/* ---- PDF ---------------------------------------------------------------------- */

static bool find_in_path(const char *prog, char *out, size_t outsize)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        if (dl > 0) {
            int w = snprintf(out, outsize, "%.*s/%s", (int)dl, path, prog);
            if (w > 0 && (size_t)w < outsize && access(out, X_OK) == 0)
                return true;
        }
        path += dl + (colon != NULL);
    }
    return false;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends pdftotext's output: invalid UTF-8 -> U+FFFD, NUL dropped, CR -> LF,
 * form feed -> paragraph break. */
static res put_pdf_text(ctx *c, const char *p, size_t n)
{
    size_t i = 0, nl = 2; /* newlines the output ends with (2: at its start) */
    bool para = false;
    res r = AD_EXTRACT_OK;
    while (i < n && !r) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\f') {
            para = true;
            i++;
            continue;
        }
        if (ch == '\0') {
            i++;
            continue;
        }
        size_t k = 1;
        const char *s = p + i;
        char rep[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
        if (ch >= 0x80) {
            k = utf8_len(p + i, n - i);
            if (!ad_utf8_valid(p + i, k)) {
                k = 1;
                s = rep;
            }
        }
        if (para && c->out->len > c->base) {
            for (; nl < 2 && !r; nl++)
                r = put(c, "\n", 1);
        }
        para = false;
        if (r)
            break;
        if (ch == '\r' || ch == '\n') {
            if (ch == '\r' && i + 1 < n && p[i + 1] == '\n')
                i++;
            r = put(c, "\n", 1);
            nl++;
        } else {
            r = put(c, s, s == rep ? 3 : k);
            nl = 0;
        }
        i += k;
    }
    return r;
}

static res extract_pdf(ctx *c, const char *path)
{
    res r = AD_EXTRACT_OK;
    char prog[4096], arg[4200];
    int fds[2] = {-1, -1};
    pid_t pid = -1;
    ad_buf raw;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_ok = false, at_ok = false, killed = false;

    ad_buf_init(&raw, c->out->max);
    if (!find_in_path("pdftotext", prog, sizeof prog))
        return fail(c, AD_EXTRACT_UNSUPPORTED,
                    "PDF files cannot be read on this server (pdftotext is not installed).");
    int w = snprintf(arg, sizeof arg, "%s%s", path[0] == '-' ? "./" : "", path);
    if (w < 0 || (size_t)w >= sizeof arg)
        return fail(c, AD_EXTRACT_IOERR, "The file could not be read (path too long).");
    if (pipe2(fds, O_CLOEXEC) != 0) {
        r = fail(c, AD_EXTRACT_IOERR, "The PDF reader could not be started.");
        goto out;
    }
    fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    at_ok = posix_spawnattr_init(&at) == 0;
    if (!fa_ok || !at_ok || posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1) ||
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)) {
        r = fail(c, AD_EXTRACT_IOERR, "The PDF reader could not be started.");
        goto out;
    }
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"pdftotext", "-q", "-enc", "UTF-8", "-eol", "unix", arg, "-", NULL};
    if (posix_spawn(&pid, prog, &fa, &at, argv, environ) != 0) {
        pid = -1;
        r = fail(c, AD_EXTRACT_IOERR, "The PDF reader could not be started.");
        goto out;
    }
    close(fds[1]);
    fds[1] = -1;

    int64_t deadline = now_ms() + (int64_t)AD_EXTRACT_PDF_TIMEOUT_S * 1000;
    char chunk[65536];
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            r = fail(c, AD_EXTRACT_INVALID, "Reading the PDF took too long (over %d seconds).",
                     AD_EXTRACT_PDF_TIMEOUT_S);
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno != EINTR) {
            r = fail(c, AD_EXTRACT_IOERR, "The PDF reader's output could not be read.");
            break;
        }
        if (pr <= 0)
            continue;
        ssize_t got = read(fds[0], chunk, sizeof chunk);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0) {
            r = fail(c, AD_EXTRACT_IOERR, "The PDF reader's output could not be read.");
            break;
        }
        if (got == 0)
            break;
        if (ad_buf_add(&raw, chunk, (size_t)got)) {
            r = too_much(c);
            break;
        }
    }
    if (r) {
        kill(pid, SIGKILL);
        killed = true;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (!r && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
        r = fail(c, AD_EXTRACT_INVALID,
                 "The PDF file could not be read; it may be damaged or encrypted.");
    if (!r && !killed)
        r = put_pdf_text(c, raw.ptr ? raw.ptr : "", raw.len);
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    ad_buf_free(&raw);
    return r;
}

/* ---- dispatch ------------------------------------------------------------------ */

typedef struct {
    const char *ext;
    ffmt f;
} ext_fmt;

static const ext_fmt EXTS[] = {
    {"txt", FMT_TEXT},   {"md", FMT_TEXT},    {"markdown", FMT_TEXT}, {"rst", FMT_TEXT},
    {"tex", FMT_TEXT},   {"log", FMT_TEXT},   {"csv", FMT_TEXT},      {"tsv", FMT_TEXT},
    {"json", FMT_TEXT},  {"jsonl", FMT_TEXT}, {"xml", FMT_TEXT},      {"yaml", FMT_TEXT},
    {"yml", FMT_TEXT},   {"toml", FMT_TEXT},  {"ini", FMT_TEXT},      {"c", FMT_TEXT},
    {"h", FMT_TEXT},     {"cc", FMT_TEXT},    {"cpp", FMT_TEXT},      {"cxx", FMT_TEXT},
    {"hh", FMT_TEXT},    {"hpp", FMT_TEXT},   {"cs", FMT_TEXT},       {"css", FMT_TEXT},
    {"go", FMT_TEXT},    {"java", FMT_TEXT},  {"js", FMT_TEXT},       {"mjs", FMT_TEXT},
    {"cjs", FMT_TEXT},   {"jsx", FMT_TEXT},   {"ts", FMT_TEXT},       {"tsx", FMT_TEXT},
    {"php", FMT_TEXT},   {"py", FMT_TEXT},    {"rb", FMT_TEXT},       {"sh", FMT_TEXT},
    {"bash", FMT_TEXT},  {"rs", FMT_TEXT},    {"sql", FMT_TEXT},      {"kt", FMT_TEXT},
    {"swift", FMT_TEXT}, {"scala", FMT_TEXT}, {"lua", FMT_TEXT},      {"pl", FMT_TEXT},
    {"r", FMT_TEXT},     {"html", FMT_HTML},  {"htm", FMT_HTML},      {"xhtml", FMT_HTML},
    {"docx", FMT_DOCX},  {"pptx", FMT_PPTX},  {"pdf", FMT_PDF},
};

/* The extension of filename's last path component (after its last dot), or
 * NULL when it has none. */
static const char *ext_of(const char *filename)
{
    if (!filename)
        return NULL;
    const char *base = filename;
    for (const char *s = filename; *s; s++)
        if (*s == '/' || *s == '\\')
            base = s + 1;
    const char *dot = strrchr(base, '.');
    return dot && dot[1] ? dot + 1 : NULL;
}

static ffmt fmt_of(const char *filename)
{
    const char *ext = ext_of(filename);
    if (!ext)
        return FMT_SNIFF;
    for (size_t i = 0; i < sizeof EXTS / sizeof EXTS[0]; i++)
        if (!strcasecmp(ext, EXTS[i].ext))
            return EXTS[i].f;
    return FMT_UNSUPPORTED;
}

bool ad_extract_supported(const char *filename)
{
    return fmt_of(filename) != FMT_UNSUPPORTED;
}

static res unsupported(ctx *c, const char *filename)
{
    const char *ext = ext_of(filename);
    bool printable = ext && strlen(ext) <= 16;
    for (const char *s = ext; printable && *s; s++)
        if (!(is_alpha(*s) || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            printable = false;
    if (printable && !strcasecmp(ext, "doc"))
        return fail(c, AD_EXTRACT_UNSUPPORTED,
                    "The file type .doc (legacy Word) is not supported for file_search; save it "
                    "as .docx.");
    if (printable)
        return fail(c, AD_EXTRACT_UNSUPPORTED,
                    "The file type .%s is not supported for file_search.", ext);
    return fail(c, AD_EXTRACT_UNSUPPORTED, "This file type is not supported for file_search.");
}

/* Format of a file named without an extension, from its first bytes. */
static ffmt sniff(ctx *c, const char *p, size_t n)
{
    if (n >= 5 && !memcmp(p, "%PDF-", 5))
        return FMT_PDF;
    if (n >= 4 && !memcmp(p, "PK\x03\x04", 4)) {
        zipf zf;
        zent e;
        bool found = false;
        char saved = c->msgsize ? c->msg[0] : 0;
        if (!zip_open(c, p, n, &zf) && !zip_find(c, &zf, "word/document.xml", &e, &found) && found)
            return FMT_DOCX;
        if (!zip_find(c, &zf, "ppt/presentation.xml", &e, &found) && found)
            return FMT_PPTX;
        if (c->msgsize)
            c->msg[0] = saved;
        return FMT_UNSUPPORTED;
    }
    size_t i = 0;
    if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < n && is_space((unsigned char)p[i]))
        i++;
    if ((n - i >= 14 && !strncasecmp(p + i, "<!doctype html", 14)) ||
        (n - i >= 5 && !strncasecmp(p + i, "<html", 5)))
        return FMT_HTML;
    return FMT_TEXT;
}

static res extract_data(ctx *c, const char *p, size_t n, const char *filename, ffmt f)
{
    switch (f) {
    case FMT_TEXT:
        return extract_text(c, p, n);
    case FMT_HTML:
        return extract_html(c, p, n);
    case FMT_DOCX:
        return extract_docx(c, p, n);
    case FMT_PPTX:
        return extract_pptx(c, p, n);
    case FMT_PDF:
        return fail(c, AD_EXTRACT_UNSUPPORTED,
                    "PDF text can only be extracted from a file on disk.");
    case FMT_SNIFF:
    case FMT_UNSUPPORTED:
        break;
    }
    return unsupported(c, filename);
}

static void begin(ctx *c, ad_buf *out, char *msg, size_t msgsize)
{
    c->out = out;
    c->base = out->len;
    c->msg = msg;
    c->msgsize = msg ? msgsize : 0;
    c->undecodable = false;
    if (c->msgsize)
        msg[0] = '\0';
}

/* Empty-text rule on success; on failure, undoes the partial text. */
static res finish(ctx *c, res r)
{
    if (!r) {
        bool text = false;
        for (size_t i = c->base; i < c->out->len && !text; i++)
            text = !is_space((unsigned char)c->out->ptr[i]);
        if (!text)
            r = fail(c, AD_EXTRACT_INVALID, "No text could be extracted from the file.");
    }
    if (r && c->out->ptr) {
        c->out->len = c->base;
        c->out->ptr[c->base] = '\0';
    }
    return r;
}

/* Extraction of sniffed content: content that is not text is unsupported
 * (it is of no type we know) rather than invalid. */
static res extract_sniffed(ctx *c, const char *p, size_t n, const char *filename, ffmt f)
{
    res r = extract_data(c, p, n, filename, f);
    if (r == AD_EXTRACT_INVALID && f == FMT_TEXT && c->undecodable)
        r = fail(c, AD_EXTRACT_UNSUPPORTED,
                 "The file has no extension and its content is not a supported type.");
    return r;
}

ad_extract_result ad_extract_mem(const char *data, size_t len, const char *filename, ad_buf *out,
                                 char *msg, size_t msgsize)
{
    ctx c;
    begin(&c, out, msg, msgsize);
    if (!data)
        len = 0;
    ffmt f = fmt_of(filename);
    if (f == FMT_UNSUPPORTED)
        return unsupported(&c, filename);
    res r;
    if (f == FMT_SNIFF) {
        f = sniff(&c, data ? data : "", len);
        r = f == FMT_UNSUPPORTED
                ? fail(&c, AD_EXTRACT_UNSUPPORTED,
                       "The file has no extension and its content is not a supported type.")
                : extract_sniffed(&c, data ? data : "", len, filename, f);
    } else {
        r = extract_data(&c, data ? data : "", len, filename, f);
    }
    return finish(&c, r);
}

ad_extract_result ad_extract_file(const char *path, const char *filename, ad_buf *out, char *msg,
                                  size_t msgsize)
{
    ctx c;
    res r = AD_EXTRACT_OK;
    begin(&c, out, msg, msgsize);
    ffmt f = fmt_of(filename);
    if (f == FMT_UNSUPPORTED)
        return unsupported(&c, filename);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    void *map = NULL;
    size_t n = 0;
    if (fd < 0)
        return fail(&c, AD_EXTRACT_IOERR, "The file could not be read from storage.");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SIZE_MAX) {
        r = fail(&c, AD_EXTRACT_IOERR, "The file could not be read from storage.");
        goto out;
    }
    n = (size_t)st.st_size;
    if (n) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            r = fail(&c, AD_EXTRACT_IOERR, "The file could not be read from storage.");
            goto out;
        }
    }
    const char *p = map ? (const char *)map : "";
    if (f == FMT_SNIFF) {
        f = sniff(&c, p, n);
        if (f == FMT_UNSUPPORTED)
            r = fail(&c, AD_EXTRACT_UNSUPPORTED,
                     "The file has no extension and its content is not a supported type.");
        else if (f == FMT_PDF)
            r = extract_pdf(&c, path);
        else
            r = extract_sniffed(&c, p, n, filename, f);
    } else if (f == FMT_PDF) {
        r = extract_pdf(&c, path);
    } else {
        r = extract_data(&c, p, n, filename, f);
    }
    r = finish(&c, r);
out:
    if (map)
        munmap(map, n);
    close(fd);
    return r;
}
