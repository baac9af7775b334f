/*
 * fuzz_analyze.c -- libFuzzer target for the keyword analyzer and segments:
 * arbitrary bytes (invalid UTF-8, NULs, huge tokens) are analysed; every
 * token must be non-empty, at most AD_TERM_MAX bytes, and come from a
 * range of the input that follows the previous one. The bytes, cut into
 * chunks at NULs, must build a segment the checker accepts; cut into
 * overlapping chunks (lengths and steps taken from the first two bytes), they
 * must build the same segment through ad_kwseg_build's single pass as
 * through chunk-by-chunk analysis; ad_analyze_folded's words, stemmed, must be
 * ad_analyze's terms; and the raw bytes, taken as a segment, must be checked
 * without a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "search/analyze.h"
#include "search/kwindex.h"

typedef struct seen {
    size_t size, last_end, n;
} seen;

typedef struct terms {
    char t[64][AD_TERM_MAX + 4];
    size_t len[64], n, at;
} terms;

static void keep(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    terms *t = ud;
    if (t->n < 64) {
        memcpy(t->t[t->n], term, tlen);
        t->len[t->n] = tlen;
    }
    t->n++;
}

static void same_stem(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    terms *t = ud;
    char w[AD_TERM_MAX + 4];
    memcpy(w, term, tlen);
    size_t n = ad_porter_stem(w, tlen);
    size_t i = t->at++;
    if (i < 64 && (i >= t->n || t->len[i] != n || memcmp(t->t[i], w, n) != 0))
        abort();
}

/* Chunks of 1 + data[0] % 48 bytes every 1 + data[1] % that many: each
 * starts inside the one before, as with 800/400 chunking. */
static void check_overlap(const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    size_t len = 1 + data[0] % 48, step = 1 + data[1] % len, n = 0;
    ad_chunk_row rows[256];
    for (size_t s = 2; s < size && n < 256; s += step)
        rows[n++] =
            (ad_chunk_row){(const char *)data + s, s + len <= size ? len : size - s, NULL, 0};
    ad_buf a, b;
    ad_buf_init(&a, AD_KWSEG_MAX);
    ad_buf_init(&b, AD_KWSEG_MAX);
    if (ad_kwseg_build(rows, n, &a) != AD_OK || ad_kwseg_build_plain(rows, n, &b) != AD_OK ||
        a.len != b.len || memcmp(a.ptr, b.ptr, a.len) != 0)
        abort();
    ad_buf_free(&a);
    ad_buf_free(&b);
}

static void on_token(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    seen *s = ud;
    if (!term || tlen == 0 || tlen > AD_TERM_MAX || start >= end || end > s->size ||
        start < s->last_end)
        abort();
    s->last_end = end;
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen s = {.size = size};
    size_t n = ad_analyze((const char *)data, size, on_token, &s);
    if (n != s.n)
        abort();
    ad_chunk_row rows[64];
    size_t nrows = 0, start = 0;
    for (size_t i = 0; i <= size && nrows < 64; i++)
        if (i == size || data[i] == 0) {
            rows[nrows++] = (ad_chunk_row){(const char *)data + start, i - start, NULL, 0};
            start = i + 1;
        }
    ad_buf b;
    ad_buf_init(&b, AD_KWSEG_MAX);
    size_t cnt = 0;
    if (ad_kwseg_build(rows, nrows, &b) != AD_OK ||
        !ad_kwseg_valid((const unsigned char *)b.ptr, b.len, &cnt) || cnt != nrows)
        abort();
    ad_buf_free(&b);
    check_overlap(data, size);
    terms *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    ad_analyze((const char *)data, size, keep, t);
    if (ad_analyze_folded((const char *)data, size, same_stem, t) != t->n || t->at != t->n)
        abort();
    free(t);
    (void)ad_kwseg_valid(data, size, &cnt);
    return 0;
}
