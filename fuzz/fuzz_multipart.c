/*
 * fuzz_multipart.c -- libFuzzer target for the multipart/form-data parser.
 *
 * Input format: the first line (up to '\n', at most 256 bytes) is the
 * Content-Type header value, run through ad_mp_boundary; the rest is the
 * body. When the header yields no boundary, "b" is used so that the body is
 * still parsed. The body is parsed whole, one byte at a time and in chunk
 * sizes drawn from a PRNG seeded by a hash of the input; all three must see
 * identical callbacks (hashed transcript), return codes and error text.
 * A fourth run makes a callback fail part-way and checks that nothing is
 * called after the failure. Callbacks check the API invariants (strings are
 * terminated, data only inside a part, begin/end properly nested) and abort
 * on any violation.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

typedef struct track {
    uint64_t hash; /* FNV-1a of the transcript, data coalesced */
    size_t begins, ends, data_calls, delivered;
    bool in_part, last_data, failed;
    size_t fail_at; /* fail the n-th callback (1-based); 0 never */
    size_t calls;
} track;

typedef struct outcome {
    ad_err feed_rc, finish_rc;
    const char *msg;
    track t;
} outcome;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= s[i];
        *h *= 1099511628211ull;
    }
}

static ad_err maybe_fail(track *t)
{
    CHECK(!t->failed);
    if (++t->calls == t->fail_at) {
        t->failed = true;
        return AD_EIO;
    }
    return AD_OK;
}

static ad_err on_begin(void *ud, const char *name, const char *filename, const char *ctype)
{
    track *t = ud;
    CHECK(!t->in_part);
    CHECK(name != NULL);
    mix(&t->hash, "B", 1);
    mix(&t->hash, name, strlen(name) + 1);
    if (filename)
        mix(&t->hash, filename, strlen(filename) + 1);
    else
        mix(&t->hash, "\xff", 1);
    if (ctype)
        mix(&t->hash, ctype, strlen(ctype) + 1);
    else
        mix(&t->hash, "\xfe", 1);
    t->begins++;
    t->last_data = false;
    if (maybe_fail(t))
        return AD_EIO;
    t->in_part = true;
    return AD_OK;
}

static ad_err on_data(void *ud, const char *data, size_t len)
{
    track *t = ud;
    CHECK(t->in_part);
    CHECK(data != NULL && len > 0);
    if (!t->last_data)
        mix(&t->hash, "D", 1);
    mix(&t->hash, data, len);
    t->last_data = true;
    t->data_calls++;
    t->delivered += len;
    return maybe_fail(t);
}

static ad_err on_end(void *ud)
{
    track *t = ud;
    CHECK(t->in_part);
    mix(&t->hash, "E", 1);
    t->last_data = false;
    t->ends++;
    t->in_part = false;
    return maybe_fail(t);
}

static const ad_mp_callbacks CB = {on_begin, on_data, on_end};

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

enum { WHOLE, BYTES, CHUNKS };

static void parse(outcome *o, const char *boundary, const char *body, size_t len, size_t maxhdr,
                  int mode, uint32_t seed, size_t fail_at)
{
    memset(o, 0, sizeof(*o));
    o->t.hash = 14695981039346656037ull;
    o->t.fail_at = fail_at;
    ad_mp *mp = ad_mp_new(boundary, &CB, &o->t, maxhdr);
    CHECK(mp != NULL);
    uint32_t rng = seed | 1;
    size_t off = 0;
    ad_err rc = AD_OK;
    while (rc == AD_OK && off < len) {
        size_t n = len - off;
        if (mode == BYTES)
            n = 1;
        else if (mode == CHUNKS)
            n = 1 + xorshift(&rng) % (n < 80 ? n : 80);
        rc = ad_mp_feed(mp, body + off, n);
        off += n;
    }
    o->feed_rc = rc;
    if (rc != AD_OK)
        CHECK(ad_mp_feed(mp, body, len) == rc); /* errors stick */
    o->finish_rc = ad_mp_finish(mp);
    o->msg = ad_mp_error(mp);
    ad_mp_free(mp);

    CHECK(o->msg != NULL);
    CHECK((o->finish_rc == AD_OK) == (o->msg[0] == '\0'));
    if (rc != AD_OK)
        CHECK(o->finish_rc == rc);
    CHECK(o->t.delivered <= len);
    CHECK(o->t.ends <= o->t.begins && o->t.begins - o->t.ends <= 1);
    if (o->finish_rc == AD_OK)
        CHECK(o->t.begins == o->t.ends && !o->t.in_part);
}

static void same(const outcome *a, const outcome *b)
{
    CHECK(a->feed_rc == b->feed_rc);
    CHECK(a->finish_rc == b->finish_rc);
    CHECK(strcmp(a->msg, b->msg) == 0);
    CHECK(a->t.hash == b->t.hash);
    CHECK(a->t.begins == b->t.begins && a->t.ends == b->t.ends);
    CHECK(a->t.delivered == b->t.delivered);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t ctlen = 0;
    while (ctlen < size && ctlen < 256 && in[ctlen] != '\n')
        ctlen++;
    char ct[257];
    memcpy(ct, in, ctlen);
    ct[ctlen] = '\0';
    const char *body = in + ctlen + (ctlen < size);
    size_t len = size - (size_t)(body - in);

    char boundary[AD_MP_BOUNDARY_MAX + 1];
    if (ad_mp_boundary(ct, boundary, sizeof(boundary)) == AD_OK) {
        size_t blen = strlen(boundary);
        CHECK(blen >= 1 && blen <= AD_MP_BOUNDARY_MAX);
    } else {
        CHECK(boundary[0] == '\0');
        memcpy(boundary, "b", 2);
    }

    uint64_t h = 14695981039346656037ull;
    mix(&h, data, size);
    size_t maxhdr = (h >> 40) % 4 == 0 ? 0 : 8 + (size_t)((h >> 20) % 512);

    outcome whole, other;
    parse(&whole, boundary, body, len, maxhdr, WHOLE, 0, 0);
    parse(&other, boundary, body, len, maxhdr, BYTES, 0, 0);
    same(&whole, &other);
    parse(&other, boundary, body, len, maxhdr, CHUNKS, (uint32_t)h, 0);
    same(&whole, &other);

    /* Fail one callback part-way: the error is returned and sticks, and
     * the callbacks check that nothing is called afterwards. */
    size_t ncalls = whole.t.begins + whole.t.ends + whole.t.data_calls;
    if (ncalls > 0) {
        size_t fail_at = 1 + (size_t)(h % ncalls);
        parse(&other, boundary, body, len, maxhdr, CHUNKS, (uint32_t)(h >> 32), fail_at);
        if (other.t.failed) {
            CHECK(other.feed_rc == AD_EIO && other.finish_rc == AD_EIO);
            CHECK(strcmp(other.msg, "aborted by callback") == 0);
        }
    }
    return 0;
}
