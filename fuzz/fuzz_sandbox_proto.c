/*
 * fuzz_sandbox_proto.c -- libFuzzer target for what assistd reads from a
 * code_interpreter sandbox (src/sandbox/proto.c): the frame parser of the
 * driver's control socket and the bounded output collector. The sandboxed
 * code controls both byte streams completely.
 *
 * The input is fed whole, one byte at a time and in PRNG-sized pieces with a
 * small payload limit; the three runs must agree exactly on the return code
 * and on the transcript of frames (type, length, hash of the payload). Each
 * frame must respect the grammar and the limit. The same bytes go through
 * the output collector with small head/tail sizes, in pieces; its result
 * must be valid UTF-8 without NUL bytes, of the length it reports, and must
 * contain the head and the truncation marker exactly when bytes were dropped.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/sbx_internal.h"
#include "util/alloc.h"
#include "util/str.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

#define LIMIT 64

typedef struct track {
    uint64_t hash;
    size_t frames;
    size_t fail_at; /* make the n-th callback fail (0: never) */
} track;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

static ad_err on_frame(void *ctx, char type, const char *p, size_t n)
{
    track *t = ctx;
    CHECK(type >= 'A' && type <= 'Z');
    CHECK(n <= LIMIT);
    CHECK(p != NULL);
    t->frames++;
    t->hash = fnv(t->hash, &type, 1);
    t->hash = fnv(t->hash, &n, sizeof n);
    t->hash = fnv(t->hash, p, n);
    if (t->fail_at && t->frames == t->fail_at)
        return AD_EINTERNAL;
    return AD_OK;
}

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static ad_err feed(const uint8_t *d, size_t n, int mode, uint32_t seed, track *t)
{
    ad_sbx_proto p;
    ad_sbx_proto_init(&p, LIMIT);
    ad_err rc = AD_OK;
    size_t i = 0;
    while (i < n && !rc) {
        size_t k = mode == 0 ? n : mode == 1 ? 1 : 1 + next(&seed) % 17;
        if (k > n - i)
            k = n - i;
        rc = ad_sbx_proto_feed(&p, (const char *)d + i, k, on_frame, t);
        i += k;
    }
    if (rc) /* sticky */
        CHECK(ad_sbx_proto_feed(&p, "R 0\n", 4, on_frame, t) == rc);
    ad_sbx_proto_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = (uint32_t)fnv(14695981039346656037ull, data, size) | 1;
    track a = {14695981039346656037ull, 0, 0}, b = a, c = a;
    ad_err ra = feed(data, size, 0, seed, &a);
    ad_err rb = feed(data, size, 1, seed, &b);
    ad_err rc = feed(data, size, 2, seed, &c);
    CHECK(ra == rb && rb == rc);
    CHECK(a.hash == b.hash && b.hash == c.hash && a.frames == b.frames && b.frames == c.frames);
    if (a.frames > 0) {
        track f = {14695981039346656037ull, 0, 1 + seed % a.frames};
        CHECK(feed(data, size, 2, seed, &f) == AD_EINTERNAL);
        CHECK(f.frames == f.fail_at);
    }

    ad_sbx_out o;
    size_t head = seed % 32, tail = (seed >> 8) % 32;
    ad_sbx_out_init(&o, head, tail);
    for (size_t i = 0; i < size;) {
        size_t k = 1 + next(&seed) % 9;
        if (k > size - i)
            k = size - i;
        ad_sbx_out_add(&o, (const char *)data + i, k);
        i += k;
    }
    char *text;
    size_t len;
    ad_sbx_out_finish(&o, &text, &len);
    CHECK(strlen(text) == len);
    CHECK(ad_utf8_valid(text, len));
    bool dropped = size > head + tail;
    CHECK((strstr(text, "bytes truncated ...]") != NULL) == dropped ||
          (!dropped && memmem(data, size, "bytes truncated ...]", 20)));
    CHECK(o.head_len == (size < head ? size : head));
    ad_free(text);
    ad_sbx_out_free(&o);
    return 0;
}
