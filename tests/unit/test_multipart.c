/*
 * test_multipart.c -- unit tests for the streaming multipart/form-data
 * parser (src/http/multipart.c).
 *
 * Every body is parsed several ways: whole, one byte at a time, in random
 * chunk sizes (many seeds) and split in two at every byte offset. The
 * callbacks record a transcript (part headers, data coalesced, part ends)
 * and every way must produce the identical transcript, return codes and
 * error message; the tests then assert on the whole-body result. Failure
 * injection in the callbacks checks that an error aborts parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "http/multipart.h"
#include "util/alloc.h"
#include "util/buf.h"

#define MAXP   16
#define LIT(s) s, sizeof(s) - 1

typedef struct part {
    char *name, *filename, *ctype;
    ad_buf data;
    bool ended;
} part;

typedef struct rec {
    part parts[MAXP];
    int nparts, nends;
    bool in_part, last_was_data, aborted;
    ad_buf log;
    size_t delivered;
    /* Failure injection: fail the n-th call (1-based) of a callback. */
    int fail_begin, fail_data, fail_end;
    ad_err fail_rc;
    int calls_begin, calls_data, calls_end;
} rec;

typedef struct result {
    ad_err feed_rc, finish_rc;
    const char *msg;
    rec r;
} result;

enum { M_WHOLE, M_BYTES, M_RANDOM, M_SPLIT };

static ad_err on_begin(void *ud, const char *name, const char *filename, const char *ctype)
{
    rec *r = ud;
    assert_false(r->aborted);
    assert_false(r->in_part);
    assert_non_null(name);
    if (++r->calls_begin == r->fail_begin) {
        r->aborted = true;
        return r->fail_rc;
    }
    assert_true(r->nparts < MAXP);
    part *p = &r->parts[r->nparts++];
    p->name = ad_strdup(name);
    p->filename = filename ? ad_strdup(filename) : NULL;
    p->ctype = ctype ? ad_strdup(ctype) : NULL;
    ad_buf_init(&p->data, 1u << 24);
    p->ended = false;
    r->in_part = true;
    r->last_was_data = false;
    assert_int_equal(ad_buf_addc(&r->log, 'B'), AD_OK);
    assert_int_equal(ad_buf_add(&r->log, name, strlen(name) + 1), AD_OK);
    if (filename)
        assert_int_equal(ad_buf_add(&r->log, filename, strlen(filename) + 1), AD_OK);
    else
        assert_int_equal(ad_buf_addstr(&r->log, "(nofile)"), AD_OK);
    if (ctype)
        assert_int_equal(ad_buf_add(&r->log, ctype, strlen(ctype) + 1), AD_OK);
    else
        assert_int_equal(ad_buf_addstr(&r->log, "(notype)"), AD_OK);
    return AD_OK;
}

static ad_err on_data(void *ud, const char *data, size_t len)
{
    rec *r = ud;
    assert_false(r->aborted);
    assert_true(r->in_part);
    assert_non_null(data);
    assert_true(len > 0);
    if (++r->calls_data == r->fail_data) {
        r->aborted = true;
        return r->fail_rc;
    }
    assert_int_equal(ad_buf_add(&r->parts[r->nparts - 1].data, data, len), AD_OK);
    if (!r->last_was_data)
        assert_int_equal(ad_buf_addc(&r->log, 'D'), AD_OK);
    assert_int_equal(ad_buf_add(&r->log, data, len), AD_OK);
    r->last_was_data = true;
    r->delivered += len;
    return AD_OK;
}

static ad_err on_end(void *ud)
{
    rec *r = ud;
    assert_false(r->aborted);
    assert_true(r->in_part);
    if (++r->calls_end == r->fail_end) {
        r->aborted = true;
        return r->fail_rc;
    }
    r->in_part = false;
    r->parts[r->nparts - 1].ended = true;
    r->nends++;
    r->last_was_data = false;
    assert_int_equal(ad_buf_addc(&r->log, 'E'), AD_OK);
    return AD_OK;
}

static const ad_mp_callbacks CB = {on_begin, on_data, on_end};

static void rec_free(rec *r)
{
    for (int i = 0; i < r->nparts; i++) {
        ad_free(r->parts[i].name);
        ad_free(r->parts[i].filename);
        ad_free(r->parts[i].ctype);
        ad_buf_free(&r->parts[i].data);
    }
    ad_buf_free(&r->log);
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Parses body one way. fail_cfg (may be NULL) supplies failure injection. */
static void run(result *res, const char *boundary, const char *body, size_t len, size_t maxhdr,
                int mode, uint32_t seed, const rec *fail_cfg)
{
    memset(res, 0, sizeof(*res));
    ad_buf_init(&res->r.log, 1u << 26);
    if (fail_cfg) {
        res->r.fail_begin = fail_cfg->fail_begin;
        res->r.fail_data = fail_cfg->fail_data;
        res->r.fail_end = fail_cfg->fail_end;
        res->r.fail_rc = fail_cfg->fail_rc;
    }
    ad_mp *mp = ad_mp_new(boundary, &CB, &res->r, maxhdr);
    assert_non_null(mp);
    assert_string_equal(ad_mp_error(mp), "");

    uint32_t rng = seed * 2654435761u + 1;
    size_t off = 0;
    ad_err rc = AD_OK;
    bool first = true;
    do {
        size_t n = len - off;
        if (mode == M_BYTES)
            n = n ? 1 : 0;
        else if (mode == M_RANDOM)
            n = n ? 1 + xorshift(&rng) % (n < 97 ? n : 97) : 0;
        else if (mode == M_SPLIT && first)
            n = seed < len ? seed : len;
        first = false;
        rc = ad_mp_feed(mp, body + off, n);
        off += n;
    } while (rc == AD_OK && off < len);
    res->feed_rc = rc;
    if (rc != AD_OK) {
        /* The first error sticks. */
        assert_int_equal(ad_mp_feed(mp, "x", 1), rc);
        assert_string_not_equal(ad_mp_error(mp), "");
    }
    res->finish_rc = ad_mp_finish(mp);
    if (rc != AD_OK)
        assert_int_equal(res->finish_rc, rc);
    res->msg = ad_mp_error(mp);
    assert_true((res->finish_rc == AD_OK) == (res->msg[0] == '\0'));
    assert_true(res->r.delivered <= len);
    ad_mp_free(mp);
}

static void assert_same(const result *a, const result *b)
{
    assert_int_equal(a->feed_rc, b->feed_rc);
    assert_int_equal(a->finish_rc, b->finish_rc);
    assert_string_equal(a->msg, b->msg);
    assert_int_equal(a->r.nparts, b->r.nparts);
    assert_int_equal(a->r.nends, b->r.nends);
    assert_int_equal(a->r.log.len, b->r.log.len);
    if (a->r.log.len)
        assert_memory_equal(a->r.log.ptr, b->r.log.ptr, a->r.log.len);
}

/* Parses body whole into out, then checks that every other way of feeding
 * it gives the same result. */
static void parse_all(result *out, const char *boundary, const char *body, size_t len,
                      size_t maxhdr)
{
    result other;
    run(out, boundary, body, len, maxhdr, M_WHOLE, 0, NULL);
    run(&other, boundary, body, len, maxhdr, M_BYTES, 0, NULL);
    assert_same(out, &other);
    rec_free(&other.r);
    for (uint32_t seed = 1; seed <= 24; seed++) {
        run(&other, boundary, body, len, maxhdr, M_RANDOM, seed, NULL);
        assert_same(out, &other);
        rec_free(&other.r);
    }
    for (uint32_t at = 0; at <= len; at++) {
        run(&other, boundary, body, len, maxhdr, M_SPLIT, at, NULL);
        assert_same(out, &other);
        rec_free(&other.r);
    }
}

static void assert_part(const result *res, int i, const char *name, const char *filename,
                        const char *ctype, const char *data, size_t len)
{
    assert_true(i < res->r.nparts);
    const part *p = &res->r.parts[i];
    assert_string_equal(p->name, name);
    if (filename)
        assert_string_equal(p->filename, filename);
    else
        assert_null(p->filename);
    if (ctype)
        assert_string_equal(p->ctype, ctype);
    else
        assert_null(p->ctype);
    assert_int_equal(p->data.len, len);
    if (len)
        assert_memory_equal(p->data.ptr, data, len);
}

static void assert_ok(const result *res, int nparts)
{
    assert_int_equal(res->feed_rc, AD_OK);
    assert_int_equal(res->finish_rc, AD_OK);
    assert_string_equal(res->msg, "");
    assert_int_equal(res->r.nparts, nparts);
    assert_int_equal(res->r.nends, nparts);
}

/* Expects body to fail with rc and msg while feeding. */
static void expect_error(const char *boundary, const char *body, size_t len, size_t maxhdr,
                         ad_err rc, const char *msg, int nparts, int nends)
{
    result res;
    parse_all(&res, boundary, body, len, maxhdr);
    assert_int_equal(res.feed_rc, rc);
    assert_int_equal(res.finish_rc, rc);
    assert_string_equal(res.msg, msg);
    assert_int_equal(res.r.nparts, nparts);
    assert_int_equal(res.r.nends, nends);
    rec_free(&res.r);
}

/* ---------------------------------------------------------------------------
 * ad_mp_boundary
 * ------------------------------------------------------------------------ */

static void expect_boundary(const char *ct, const char *want)
{
    char out[AD_MP_BOUNDARY_MAX + 1];
    assert_int_equal(ad_mp_boundary(ct, out, sizeof(out)), AD_OK);
    assert_string_equal(out, want);
}

static void test_boundary_ok(void **state)
{
    (void)state;
    expect_boundary("multipart/form-data; boundary=abc", "abc");
    expect_boundary("multipart/form-data;boundary=----formdata-undici-026579892907",
                    "----formdata-undici-026579892907");
    expect_boundary("MULTIPART/Form-Data; charset=utf-8; BOUNDARY=\"a b'()+_,-./:=?\"",
                    "a b'()+_,-./:=?");
    expect_boundary("multipart/form-data; boundary=\"x\\yz\"", "xyz");
    expect_boundary("  multipart/form-data ; boundary = q1 ;", "q1");
    expect_boundary("multipart/form-data; x=\"a;boundary=evil\"; boundary=good", "good");
    expect_boundary("multipart/form-data; boundary=\"--:=?\"", "--:=?");

    char ct[128] = "multipart/form-data; boundary=";
    size_t off = strlen(ct);
    memset(ct + off, 'z', 70);
    ct[off + 70] = '\0';
    expect_boundary(ct, ct + off);
}

static void test_boundary_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "text/plain; boundary=abc",
        "multipart/mixed; boundary=abc",
        "multipart/form-datax; boundary=abc",
        "multipart/form-data",
        "multipart/form-data;",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=a@b",
        "multipart/form-data; boundary=\"abc \"",
        "multipart/form-data; boundary=\"a\\\"b\"",
        "multipart/form-data; boundary=a b",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary=\"abc",
        "multipart/form-data; boundary=\"abc\\",
        "multipart/form-data boundary=abc",
        "multipart/form-data; =abc",
        "multipart/form-data; boundary abc",
        "multipart/form-data; boundary=\"a\r\nb\"",
        "multipart/form-data; boundary=\"a\xc3\xa9\"",
        "multipart/form-data; charset=\"unterminated; boundary=abc",
    };
    char out[AD_MP_BOUNDARY_MAX + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(out, "junk", 5);
        assert_int_equal(ad_mp_boundary(bad[i], out, sizeof(out)), AD_EINVAL);
        assert_string_equal(out, "");
    }
    assert_int_equal(ad_mp_boundary(NULL, out, sizeof(out)), AD_EINVAL);
    assert_int_equal(ad_mp_boundary("multipart/form-data; boundary=abc", NULL, 0), AD_EINVAL);
    /* 71 characters is one too many. */
    char ct[128] = "multipart/form-data; boundary=";
    size_t off = strlen(ct);
    memset(ct + off, 'z', 71);
    ct[off + 71] = '\0';
    assert_int_equal(ad_mp_boundary(ct, out, sizeof(out)), AD_EINVAL);
    /* The boundary must fit in out. */
    char small[4];
    assert_int_equal(ad_mp_boundary("multipart/form-data; boundary=abcd", small, sizeof(small)),
                     AD_EINVAL);
    assert_int_equal(ad_mp_boundary("multipart/form-data; boundary=abc", small, sizeof(small)),
                     AD_OK);
    assert_string_equal(small, "abc");
}

/* ---------------------------------------------------------------------------
 * Well-formed bodies
 * ------------------------------------------------------------------------ */

static void test_single_field(void **state)
{
    (void)state;
    static const char body[] = "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"purpose\"\r\n"
                               "\r\n"
                               "assistants\r\n"
                               "--XyZ--\r\n";
    result res;
    parse_all(&res, "XyZ", LIT(body), 0);
    assert_ok(&res, 1);
    assert_part(&res, 0, "purpose", NULL, NULL, LIT("assistants"));
    rec_free(&res.r);
}

static void test_file_part(void **state)
{
    (void)state;
    static const char body[] = "--b0undary\r\n"
                               "Content-Disposition: form-data; name=\"file\"; "
                               "filename=\"report.pdf\"\r\n"
                               "Content-Type: application/pdf\r\n"
                               "\r\n"
                               "%PDF-1.7\n\x00\x01\x02\xff\r\n"
                               "--b0undary--";
    result res;
    parse_all(&res, "b0undary", LIT(body), 0);
    assert_ok(&res, 1);
    assert_part(&res, 0, "file", "report.pdf", "application/pdf",
                LIT("%PDF-1.7\n\x00\x01\x02\xff"));
    rec_free(&res.r);
}

static void test_several_parts(void **state)
{
    (void)state;
    static const char body[] =
        "--sep\r\n"
        "Content-Disposition: form-data; name=\"purpose\"\r\n"
        "\r\n"
        "fine-tune\r\n"
        "--sep\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n"
        "Content-Type: application/jsonl\r\n"
        "\r\n"
        "{\"a\":1}\n{\"a\":2}\n\r\n"
        "--sep\r\n"
        "Content-Disposition: form-data; name=\"note\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "line1\r\nline2\r\n"
        "--sep--\r\n";
    result res;
    parse_all(&res, "sep", LIT(body), 0);
    assert_ok(&res, 3);
    assert_part(&res, 0, "purpose", NULL, NULL, LIT("fine-tune"));
    assert_part(&res, 1, "file", "a.jsonl", "application/jsonl", LIT("{\"a\":1}\n{\"a\":2}\n"));
    assert_part(&res, 2, "note", NULL, "text/plain; charset=utf-8", LIT("line1\r\nline2"));
    rec_free(&res.r);
}

static void test_empty_part_body(void **state)
{
    (void)state;
    static const char body[] = "--B\r\n"
                               "Content-Disposition: form-data; name=\"empty\"\r\n"
                               "\r\n"
                               "\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n"
                               "Content-Type: application/octet-stream\r\n"
                               "\r\n"
                               "\r\n"
                               "--B--\r\n";
    result res;
    parse_all(&res, "B", LIT(body), 0);
    assert_ok(&res, 2);
    assert_part(&res, 0, "empty", NULL, NULL, "", 0);
    assert_part(&res, 1, "nofile", "", "application/octet-stream", "", 0);
    assert_int_equal(res.r.calls_data, 0);
    rec_free(&res.r);
}

static void test_empty_form(void **state)
{
    (void)state;
    result res;
    parse_all(&res, "B", LIT("--B--\r\n"), 0);
    assert_ok(&res, 0);
    rec_free(&res.r);
    parse_all(&res, "B", LIT("--B--"), 0);
    assert_ok(&res, 0);
    rec_free(&res.r);
}

static void test_binary_tricky(void **state)
{
    (void)state;
    /* Data full of delimiter look-alikes for boundary "bound-ary": CRLF--
     * sequences, every proper prefix of the delimiter, the boundary without
     * its CRLF, a CR run, NULs and a near-miss in the last character. */
    static const char data[] = "\r\n--\r\n-\r\r\n--b\r\n--bo\r\n--bou\r\n--bound-\r\n--bound-ar"
                               "\n--bound-ary--bound-ary\r\r\r\n\r\n--\x00\r\n--bound-arz"
                               "\r\n--BOUND-ARY\r\n\r\n\r\n-bound-ary\r\r\n-\r\n--bound-ar\r";
    static const char body[] =
        "--bound-ary\r\n"
        "Content-Disposition: form-data; name=\"bin\"; filename=\"x.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
        "\r\n--\r\n-\r\r\n--b\r\n--bo\r\n--bou\r\n--bound-\r\n--bound-ar"
        "\n--bound-ary--bound-ary\r\r\r\n\r\n--\x00\r\n--bound-arz"
        "\r\n--BOUND-ARY\r\n\r\n\r\n-bound-ary\r\r\n-\r\n--bound-ar\r"
        "\r\n--bound-ary\r\n"
        "Content-Disposition: form-data; name=\"after\"\r\n"
        "\r\n"
        "\r\r\n--bound-ar\r\n--bound-ary--\r\n";
    result res;
    parse_all(&res, "bound-ary", LIT(body), 0);
    assert_ok(&res, 2);
    assert_part(&res, 0, "bin", "x.bin", "application/octet-stream", LIT(data));
    assert_part(&res, 1, "after", NULL, NULL, LIT("\r\r\n--bound-ar"));
    rec_free(&res.r);
}

static void test_split_three_ways(void **state)
{
    (void)state;
    /* Every pair of cut points: delimiter, CRLF and header lines get split
     * in every possible place. */
    static const char body[] = "--a-b\r\n"
                               "Content-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n"
                               "Content-Type: text/plain\r\n"
                               "\r\n"
                               "x\r\n--a-\r\ny\r\n"
                               "--a-b\r\n"
                               "Content-Disposition: form-data; name=\"g\"\r\n"
                               "\r\n"
                               "z\r\n"
                               "--a-b--\r\n";
    size_t len = sizeof(body) - 1;
    result want;
    run(&want, "a-b", body, len, 0, M_WHOLE, 0, NULL);
    assert_ok(&want, 2);
    assert_part(&want, 0, "f", "t.txt", "text/plain", LIT("x\r\n--a-\r\ny"));
    assert_part(&want, 1, "g", NULL, NULL, LIT("z"));
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            rec r;
            memset(&r, 0, sizeof(r));
            ad_buf_init(&r.log, 1u << 20);
            ad_mp *mp = ad_mp_new("a-b", &CB, &r, 0);
            assert_int_equal(ad_mp_feed(mp, body, i), AD_OK);
            assert_int_equal(ad_mp_feed(mp, body + i, j - i), AD_OK);
            assert_int_equal(ad_mp_feed(mp, body + j, len - j), AD_OK);
            assert_int_equal(ad_mp_finish(mp), AD_OK);
            assert_int_equal(r.log.len, want.r.log.len);
            assert_memory_equal(r.log.ptr, want.r.log.ptr, r.log.len);
            ad_mp_free(mp);
            rec_free(&r);
        }
    }
    rec_free(&want.r);
}

static void test_holdback_is_bounded(void **state)
{
    (void)state;
    /* Fed one byte at a time, data is delivered as soon as it cannot be
     * part of a delimiter and no more than the delimiter is held back. */
    static const char head[] = "--boundary\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n";
    rec r;
    memset(&r, 0, sizeof(r));
    ad_buf_init(&r.log, 1u << 20);
    ad_mp *mp = ad_mp_new("boundary", &CB, &r, 0);
    assert_int_equal(ad_mp_feed(mp, LIT(head)), AD_OK);
    assert_int_equal(r.nparts, 1);
    static const char data[] = "abc\r\n--boundar";
    for (size_t i = 0; i < sizeof(data) - 1; i++) {
        assert_int_equal(ad_mp_feed(mp, data + i, 1), AD_OK);
        size_t fed = i + 1;
        size_t want = fed <= 3 ? fed : 3; /* "\r\n--boundar" may be a delimiter */
        assert_int_equal(r.delivered, want);
    }
    /* A mismatch releases the held bytes at once. */
    assert_int_equal(ad_mp_feed(mp, "X", 1), AD_OK);
    assert_int_equal(r.delivered, sizeof(data));
    assert_memory_equal(r.parts[0].data.ptr, "abc\r\n--boundarX", sizeof(data));
    /* Plain data is never held back. */
    assert_int_equal(ad_mp_feed(mp, LIT("0123456789")), AD_OK);
    assert_int_equal(r.delivered, sizeof(data) + 10);
    /* The held bytes of an unfinished delimiter are data if it fails. */
    assert_int_equal(ad_mp_feed(mp, LIT("\r\n--")), AD_OK);
    assert_int_equal(r.delivered, sizeof(data) + 10);
    assert_int_equal(ad_mp_feed(mp, LIT("\r\n--boundary--")), AD_OK);
    assert_int_equal(ad_mp_finish(mp), AD_OK);
    assert_int_equal(r.nends, 1);
    assert_int_equal(r.parts[0].data.len, sizeof(data) + 14);
    assert_memory_equal(r.parts[0].data.ptr + sizeof(data) + 10, "\r\n--", 4);
    ad_mp_free(mp);
    rec_free(&r);
}

static void test_large_random_body(void **state)
{
    (void)state;
    /* 256 KiB drawn from a tiny alphabet so that near-delimiters are
     * everywhere; real delimiters are broken up. */
    static const char alphabet[] = "\r\n-ab";
    const char *boundary = "ab-ab";
    size_t dlen = 256 * 1024;
    char *data = ad_malloc(dlen);
    uint32_t rng = 12345;
    for (size_t i = 0; i < dlen; i++)
        data[i] = alphabet[xorshift(&rng) % 5];
    for (char *p = data; (p = memmem(p, dlen - (size_t)(p - data), "\r\n--ab-ab", 9));)
        p[2] = 'x';
    static const char head[] = "--ab-ab\r\nContent-Disposition: form-data; name=\"big\"\r\n\r\n";
    static const char tail[] = "\r\n--ab-ab--\r\n";
    ad_buf body;
    ad_buf_init(&body, 1u << 20);
    assert_int_equal(ad_buf_add(&body, LIT(head)), AD_OK);
    assert_int_equal(ad_buf_add(&body, data, dlen), AD_OK);
    assert_int_equal(ad_buf_add(&body, LIT(tail)), AD_OK);

    for (int mode = M_WHOLE; mode <= M_RANDOM; mode++) {
        result res;
        run(&res, boundary, body.ptr, body.len, 0, mode, 7, NULL);
        assert_ok(&res, 1);
        assert_part(&res, 0, "big", NULL, NULL, data, dlen);
        rec_free(&res.r);
    }
    ad_buf_free(&body);
    ad_free(data);
}

static void test_preamble_epilogue(void **state)
{
    (void)state;
    static const char body[] = "This is the preamble. --B is not a delimiter here,\r\n"
                               "--Bx would be one... no: only at a line start\r\n"
                               "\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "1\r\n"
                               "--B--  \r\n"
                               "This is the epilogue.\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"ignored\"\r\n"
                               "\r\n"
                               "2\r\n"
                               "--B--\r\n";
    /* "\r\n--Bx" in the preamble is a malformed delimiter line. */
    expect_error("B", LIT(body), 0, AD_EINVAL, "missing CRLF after boundary", 0, 0);

    static const char good[] = "preamble --B --B-- \r\n--\r\n"
                               "\r\n--B\r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "1\r\n"
                               "--B--  \r\n"
                               "This is the epilogue.\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"ignored\"\r\n"
                               "\r\n"
                               "2\r\n"
                               "--B--\r\n";
    result res;
    parse_all(&res, "B", LIT(good), 0);
    assert_ok(&res, 1);
    assert_part(&res, 0, "a", NULL, NULL, LIT("1"));
    rec_free(&res.r);
}

static void test_transport_padding(void **state)
{
    (void)state;
    static const char body[] = "--B \t \r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "1\r\n"
                               "--B\t\r\n"
                               "Content-Disposition: form-data; name=\"b\"\r\n"
                               "\r\n"
                               "2\r\n"
                               "--B--";
    result res;
    parse_all(&res, "B", LIT(body), 0);
    assert_ok(&res, 2);
    assert_part(&res, 0, "a", NULL, NULL, LIT("1"));
    assert_part(&res, 1, "b", NULL, NULL, LIT("2"));
    rec_free(&res.r);
}

/* ---------------------------------------------------------------------------
 * Truncated and malformed bodies
 * ------------------------------------------------------------------------ */

static void test_truncated(void **state)
{
    (void)state;
    static const char body[] = "--B\r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "first\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"b\"\r\n"
                               "\r\n"
                               "second part\r\n"
                               "--B--\r\n";
    size_t full = sizeof(body) - 1;
    size_t close_at = full - strlen("\r\n--B--\r\n");
    /* Every prefix that stops before the second dash of the close
     * delimiter is truncated: feeding succeeds, finishing does not, and the
     * unfinished part never sees part_end. */
    for (size_t len = 0; len < close_at + 7; len++) {
        result res;
        parse_all(&res, "B", body, len, 0);
        assert_int_equal(res.feed_rc, AD_OK);
        assert_int_equal(res.finish_rc, AD_EINVAL);
        assert_string_equal(res.msg, "missing closing boundary");
        assert_true(res.r.nends <= 1);
        if (res.r.nparts == 2) {
            assert_int_equal(res.r.nends, 1);
            assert_false(res.r.parts[1].ended);
            /* Never more than the body so far; held back only a possible
             * delimiter prefix. */
            const part *p = &res.r.parts[1];
            assert_true(p->data.len <= strlen("second part"));
            if (p->data.len)
                assert_memory_equal(p->data.ptr, "second part", p->data.len);
        }
        rec_free(&res.r);
    }

    /* Cut in the middle of the second body: exactly what arrived. */
    result res;
    size_t cut = (size_t)(strstr(body, "second") - body) + 6;
    parse_all(&res, "B", body, cut, 0);
    assert_int_equal(res.finish_rc, AD_EINVAL);
    assert_int_equal(res.r.nparts, 2);
    assert_int_equal(res.r.nends, 1);
    assert_part(&res, 0, "a", NULL, NULL, LIT("first"));
    assert_part(&res, 1, "b", NULL, NULL, LIT("second"));
    rec_free(&res.r);

    /* Cut right after the close delimiter's boundary: the last part is
     * still not finished. */
    parse_all(&res, "B", body, close_at + 5, 0);
    assert_int_equal(res.finish_rc, AD_EINVAL);
    assert_int_equal(res.r.nparts, 2);
    assert_int_equal(res.r.nends, 1);
    assert_part(&res, 1, "b", NULL, NULL, LIT("second part"));
    rec_free(&res.r);

    /* The full body and the body without its final CRLF are fine. */
    for (size_t len = full - 2; len <= full; len++) {
        parse_all(&res, "B", body, len, 0);
        assert_ok(&res, 2);
        rec_free(&res.r);
    }

    /* Nothing at all. */
    parse_all(&res, "B", "", 0, 0);
    assert_int_equal(res.finish_rc, AD_EINVAL);
    assert_string_equal(res.msg, "missing closing boundary");
    rec_free(&res.r);
}

static void test_missing_crlf_after_boundary(void **state)
{
    (void)state;
    expect_error("B", LIT("--Bxyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--"),
                 0, AD_EINVAL, "missing CRLF after boundary", 0, 0);
    expect_error("B", LIT("--B\rX"), 0, AD_EINVAL, "missing CRLF after boundary", 0, 0);
    expect_error("B", LIT("--B\nContent-Disposition: form-data; name=\"a\"\n\n1\n--B--"), 0,
                 AD_EINVAL, "missing CRLF after boundary", 0, 0);
    expect_error("B", LIT("--B  x\r\n"), 0, AD_EINVAL, "missing CRLF after boundary", 0, 0);
    /* Padding is only allowed before CRLF, not before the closing "--". */
    expect_error("B", LIT("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B --"),
                 0, AD_EINVAL, "missing CRLF after boundary", 1, 0);
    /* A bad delimiter line after a part: the part is not ended. */
    expect_error("B",
                 LIT("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B2\r\n"
                     "Content-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--B--"),
                 0, AD_EINVAL, "missing CRLF after boundary", 1, 0);
    expect_error("B", LIT("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B-x"), 0,
                 AD_EINVAL, "malformed closing boundary", 1, 0);
}

static void test_oversized_headers(void **state)
{
    (void)state;
    static const char body[] = "--B\r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "1\r\n"
                               "--B--";
    size_t hdr = strlen("Content-Disposition: form-data; name=\"a\"\r\n\r\n");
    result res;
    parse_all(&res, "B", LIT(body), hdr); /* exactly at the limit */
    assert_ok(&res, 1);
    assert_part(&res, 0, "a", NULL, NULL, LIT("1"));
    rec_free(&res.r);
    expect_error("B", LIT(body), hdr - 1, AD_ETOOBIG, "part headers too large", 0, 0);

    /* The default limit (16 KiB) applies when 0 is passed. */
    ad_buf big;
    ad_buf_init(&big, 1u << 20);
    assert_int_equal(ad_buf_addstr(&big, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n"),
                     AD_OK);
    assert_int_equal(ad_buf_addstr(&big, "X-Filler: "), AD_OK);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(ad_buf_addc(&big, 'f'), AD_OK);
    assert_int_equal(ad_buf_addstr(&big, "\r\n\r\n1\r\n--B--"), AD_OK);
    run(&res, "B", big.ptr, big.len, 0, M_RANDOM, 3, NULL);
    assert_int_equal(res.feed_rc, AD_ETOOBIG);
    assert_string_equal(res.msg, "part headers too large");
    assert_int_equal(res.r.nparts, 0);
    rec_free(&res.r);
    /* ... and a larger explicit limit accepts it. */
    run(&res, "B", big.ptr, big.len, 32 * 1024, M_RANDOM, 3, NULL);
    assert_ok(&res, 1);
    rec_free(&res.r);
    ad_buf_free(&big);
}

static void test_bad_headers(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Content-Type: text/plain\r\n\r\n", "missing Content-Disposition"},
        {"\r\n", "missing Content-Disposition"},
        {"X-Other: 1\r\n\r\n", "missing Content-Disposition"},
        {"Content-Disposition: attachment; filename=\"a\"\r\n\r\n",
         "Content-Disposition is not form-data"},
        {"Content-Disposition: form-dataX; name=\"a\"\r\n\r\n",
         "Content-Disposition is not form-data"},
        {"Content-Disposition:\r\n\r\n", "malformed Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\r\n\r\n", "malformed Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"; name=\"b\"\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; name=\r\n\r\n", "malformed Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\" junk\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data name=\"a\"\r\n\r\n", "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=UTF-8''%G1\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=UTF-8''%FF\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=UTF-8''%00\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=UTF-8''a%2\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=noquotes\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; filename*=UTF-8''a; filename*=UTF-8''b\r\n\r\n",
         "malformed Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data\r\n\r\n",
         "duplicate Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"\r\nContent-Type: a/b\r\ncontent-type: "
         "c/d\r\n\r\n",
         "duplicate Content-Type"},
        {"Content-Disposition: form-data; name=\"a\"\n\r\n", "malformed part headers"},
        {"Content-Disposition: form-data; name=\"a\"\r\n\n", "malformed part headers"},
        {"Content-Disposition: form-data; name=\"a\"\rX\r\n\r\n", "malformed part headers"},
        {"Content-Disposition form-data; name=\"a\"\r\n\r\n", "malformed part headers"},
        {"Content-Disposition : form-data; name=\"a\"\r\n\r\n", "malformed part headers"},
        {": x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n", "malformed part headers"},
        {" Content-Disposition: form-data; name=\"a\"\r\n\r\n", "malformed part headers"},
        {"Content-Disposition: form-data; name=\"a\x01\"\r\n\r\n", "malformed part headers"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_buf b;
        ad_buf_init(&b, 4096);
        assert_int_equal(ad_buf_addstr(&b, "--B\r\n"), AD_OK);
        assert_int_equal(ad_buf_addstr(&b, cases[i][0]), AD_OK);
        assert_int_equal(ad_buf_addstr(&b, "data\r\n--B--\r\n"), AD_OK);
        expect_error("B", b.ptr, b.len, 0, AD_EINVAL, cases[i][1], 0, 0);
        ad_buf_free(&b);
    }
    /* A NUL in a header line. */
    expect_error("B", LIT("--B\r\nContent-Disposition: form-data; name=\"a\x00\"\r\n\r\n--B--"), 0,
                 AD_EINVAL, "malformed part headers", 0, 0);
    /* The second part's headers fail after the first part ended. */
    expect_error("B",
                 LIT("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                     "--B\r\nContent-Type: text/plain\r\n\r\n2\r\n--B--"),
                 0, AD_EINVAL, "missing Content-Disposition", 1, 1);
}

static void test_header_variants(void **state)
{
    (void)state;
    static const char body[] =
        "--B\r\n"
        "content-disposition:FORM-DATA;NAME=field1 ; Filename=plain.txt\r\n"
        "X-Unknown: whatever; name=\"nope\"\r\n"
        "CONTENT-TYPE:   text/plain;charset=UTF-8   \r\n"
        "\r\n"
        "v1\r\n"
        "--B\r\n"
        "Content-Disposition: form-data;\r\n"
        " name=\"folded\";\r\n"
        "\tfilename=\"f.txt\"\r\n"
        "\r\n"
        "v2\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; filename=\"only-file.bin\"; foo=bar; x*=y;\r\n"
        "\r\n"
        "v3\r\n"
        "--B\r\n"
        "Content-Disposition: form-data\r\n"
        "\r\n"
        "v4\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"caf\xc3\xa9\"; filename=\"\xe2\x82\xac.txt\"\r\n"
        "\r\n"
        "v5\r\n"
        "--B--\r\n";
    result res;
    parse_all(&res, "B", LIT(body), 0);
    assert_ok(&res, 5);
    assert_part(&res, 0, "field1", "plain.txt", "text/plain;charset=UTF-8", LIT("v1"));
    assert_part(&res, 1, "folded", "f.txt", NULL, LIT("v2"));
    assert_part(&res, 2, "", "only-file.bin", NULL, LIT("v3"));
    assert_part(&res, 3, "", NULL, NULL, LIT("v4"));
    assert_part(&res, 4, "caf\xc3\xa9", "\xe2\x82\xac.txt", NULL, LIT("v5"));
    rec_free(&res.r);
}

static void test_filename_escapes(void **state)
{
    (void)state;
    static const char body[] = "--B\r\n"
                               "Content-Disposition: form-data; name=\"q\\\"n\"; "
                               "filename=\"a\\\"b\\\\c;d.txt\"\r\n"
                               "\r\n"
                               "x\r\n"
                               "--B\r\n"
                               "Content-Disposition: form-data; name=\"file\"; "
                               "filename=\"notes %22v1%22.txt\"\r\n"
                               "\r\n"
                               "y\r\n"
                               "--B--\r\n";
    result res;
    parse_all(&res, "B", LIT(body), 0);
    assert_ok(&res, 2);
    assert_part(&res, 0, "q\"n", "a\"b\\c;d.txt", NULL, LIT("x"));
    /* WHATWG percent-escaping (undici, curl >= 7.81) is passed through. */
    assert_part(&res, 1, "file", "notes %22v1%22.txt", NULL, LIT("y"));
    rec_free(&res.r);
}

static void test_filename_star(void **state)
{
    (void)state;
    static const char body[] =
        "--B\r\n"
        "Content-Disposition: form-data; name=\"f\"; filename=\"fallback.txt\"; "
        "filename*=UTF-8''%E2%82%AC%20rates.txt\r\n"
        "\r\n"
        "1\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"g\"; filename*=utf-8'en'a%22b; "
        "filename=\"later.txt\"\r\n"
        "\r\n"
        "2\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"h\"; filename*=ISO-8859-1''caf%E9.txt\r\n"
        "\r\n"
        "3\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"i\"; filename*=KOI8-R''%C1; filename=k.txt\r\n"
        "\r\n"
        "4\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"j\"; filename*=\"UTF-8''q%2Bq%2bq\"\r\n"
        "\r\n"
        "5\r\n"
        "--B--\r\n";
    result res;
    parse_all(&res, "B", LIT(body), 0);
    assert_ok(&res, 5);
    assert_part(&res, 0, "f", "\xe2\x82\xac rates.txt", NULL, LIT("1"));
    assert_part(&res, 1, "g", "a\"b", NULL, LIT("2"));
    assert_part(&res, 2, "h", "caf\xc3\xa9.txt", NULL, LIT("3"));
    assert_part(&res, 3, "i", "k.txt", NULL, LIT("4")); /* unknown charset: fall back */
    assert_part(&res, 4, "j", "q+q+q", NULL, LIT("5"));
    rec_free(&res.r);
}

/* ---------------------------------------------------------------------------
 * Callbacks, real clients and API edges
 * ------------------------------------------------------------------------ */

static const char TWO_PARTS[] = "--B\r\n"
                                "Content-Disposition: form-data; name=\"a\"\r\n"
                                "\r\n"
                                "first value\r\n"
                                "--B\r\n"
                                "Content-Disposition: form-data; name=\"b\"\r\n"
                                "\r\n"
                                "second\r\n"
                                "--B--\r\n";

static void test_callback_abort(void **state)
{
    (void)state;
    for (int mode = M_WHOLE; mode <= M_RANDOM; mode++) {
        rec cfg;
        result res;

        memset(&cfg, 0, sizeof(cfg));
        cfg.fail_begin = 1;
        cfg.fail_rc = AD_EIO;
        run(&res, "B", LIT(TWO_PARTS), 0, mode, 5, &cfg);
        assert_int_equal(res.feed_rc, AD_EIO);
        assert_int_equal(res.finish_rc, AD_EIO);
        assert_string_equal(res.msg, "aborted by callback");
        assert_int_equal(res.r.calls_begin, 1);
        assert_int_equal(res.r.calls_data, 0);
        assert_int_equal(res.r.calls_end, 0);
        rec_free(&res.r);

        memset(&cfg, 0, sizeof(cfg));
        cfg.fail_data = 1;
        cfg.fail_rc = AD_EDB;
        run(&res, "B", LIT(TWO_PARTS), 0, mode, 5, &cfg);
        assert_int_equal(res.feed_rc, AD_EDB);
        assert_int_equal(res.finish_rc, AD_EDB);
        assert_int_equal(res.r.calls_begin, 1);
        assert_int_equal(res.r.calls_data, 1);
        assert_int_equal(res.r.calls_end, 0);
        rec_free(&res.r);

        memset(&cfg, 0, sizeof(cfg));
        cfg.fail_end = 1;
        cfg.fail_rc = AD_ETOOBIG;
        run(&res, "B", LIT(TWO_PARTS), 0, mode, 5, &cfg);
        assert_int_equal(res.feed_rc, AD_ETOOBIG);
        assert_string_equal(res.msg, "aborted by callback");
        assert_int_equal(res.r.calls_begin, 1);
        assert_int_equal(res.r.calls_end, 1);
        assert_part(&res, 0, "a", NULL, NULL, LIT("first value"));
        rec_free(&res.r);

        memset(&cfg, 0, sizeof(cfg));
        cfg.fail_begin = 2;
        cfg.fail_rc = AD_ESTATE;
        run(&res, "B", LIT(TWO_PARTS), 0, mode, 5, &cfg);
        assert_int_equal(res.feed_rc, AD_ESTATE);
        assert_int_equal(res.r.calls_begin, 2);
        assert_int_equal(res.r.nends, 1);
        rec_free(&res.r);
    }
}

static void test_null_callbacks(void **state)
{
    (void)state;
    ad_mp_callbacks none = {NULL, NULL, NULL};
    ad_mp *mp = ad_mp_new("B", &none, NULL, 0);
    assert_non_null(mp);
    assert_int_equal(ad_mp_feed(mp, LIT(TWO_PARTS)), AD_OK);
    assert_int_equal(ad_mp_finish(mp), AD_OK);
    ad_mp_free(mp);
}

static void test_real_clients(void **state)
{
    (void)state;
    char b[AD_MP_BOUNDARY_MAX + 1];
    result res;

    /* Node 20 fetch (undici), as used by the openai SDK. */
    assert_int_equal(
        ad_mp_boundary("multipart/form-data; boundary=----formdata-undici-026579892907", b,
                       sizeof(b)),
        AD_OK);
    static const char undici[] =
        "------formdata-undici-026579892907\r\n"
        "Content-Disposition: form-data; name=\"purpose\"\r\n"
        "\r\n"
        "assistants\r\n"
        "------formdata-undici-026579892907\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"notes %22v1%22.txt\"\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "hello\r\n--world\nline2\n\r\n"
        "------formdata-undici-026579892907--\r\n";
    parse_all(&res, b, LIT(undici), 16 * 1024);
    assert_ok(&res, 2);
    assert_part(&res, 0, "purpose", NULL, NULL, LIT("assistants"));
    assert_part(&res, 1, "file", "notes %22v1%22.txt", "text/plain",
                LIT("hello\r\n--world\nline2\n"));
    rec_free(&res.r);

    /* curl 7.88 -F purpose=assistants -F 'file=@data.csv;type=text/csv'. */
    assert_int_equal(
        ad_mp_boundary("multipart/form-data; boundary=------------------------a5810fdfea36267d", b,
                       sizeof(b)),
        AD_OK);
    static const char curl[] =
        "--------------------------a5810fdfea36267d\r\n"
        "Content-Disposition: form-data; name=\"purpose\"\r\n"
        "\r\n"
        "assistants\r\n"
        "--------------------------a5810fdfea36267d\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"data.csv\"\r\n"
        "Content-Type: text/csv\r\n"
        "\r\n"
        "a,b\r\n1,2\r\n\r\n"
        "--------------------------a5810fdfea36267d--\r\n";
    parse_all(&res, b, LIT(curl), 16 * 1024);
    assert_ok(&res, 2);
    assert_part(&res, 0, "purpose", NULL, NULL, LIT("assistants"));
    assert_part(&res, 1, "file", "data.csv", "text/csv", LIT("a,b\r\n1,2\r\n"));
    rec_free(&res.r);
}

static void test_api_edges(void **state)
{
    (void)state;
    char b71[72];
    memset(b71, 'a', 71);
    b71[71] = '\0';
    assert_null(ad_mp_new(NULL, &CB, NULL, 0));
    assert_null(ad_mp_new("", &CB, NULL, 0));
    assert_null(ad_mp_new(b71, &CB, NULL, 0));
    assert_null(ad_mp_new("a\rb", &CB, NULL, 0));
    assert_null(ad_mp_new("abc ", &CB, NULL, 0));
    assert_null(ad_mp_new("B", NULL, NULL, 0));
    b71[70] = '\0';
    ad_mp *mp = ad_mp_new(b71, &CB, NULL, 0);
    assert_non_null(mp);
    ad_mp_free(mp);

    assert_int_equal(ad_mp_feed(NULL, "x", 1), AD_EINVAL);
    assert_int_equal(ad_mp_finish(NULL), AD_EINVAL);
    assert_string_equal(ad_mp_error(NULL), "");
    ad_mp_free(NULL);

    rec r;
    memset(&r, 0, sizeof(r));
    ad_buf_init(&r.log, 1024);
    mp = ad_mp_new("B", &CB, &r, 0);
    assert_int_equal(ad_mp_feed(mp, NULL, 0), AD_OK);
    assert_int_equal(ad_mp_feed(mp, "", 0), AD_OK);
    assert_int_equal(ad_mp_feed(mp, NULL, 3), AD_EINVAL);
    assert_int_equal(ad_mp_feed(mp, LIT(TWO_PARTS)), AD_EINVAL);
    assert_int_equal(r.nparts, 0);
    ad_mp_free(mp);
    rec_free(&r);

    /* Epilogue data after a successful finish is still ignored. */
    memset(&r, 0, sizeof(r));
    ad_buf_init(&r.log, 1024);
    mp = ad_mp_new("B", &CB, &r, 0);
    assert_int_equal(ad_mp_feed(mp, LIT(TWO_PARTS)), AD_OK);
    assert_int_equal(ad_mp_finish(mp), AD_OK);
    assert_int_equal(ad_mp_feed(mp, LIT(TWO_PARTS)), AD_OK);
    assert_int_equal(ad_mp_finish(mp), AD_OK);
    assert_int_equal(r.nparts, 2);
    assert_string_equal(ad_mp_error(mp), "");
    ad_mp_free(mp);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_ok),
        cmocka_unit_test(test_boundary_bad),
        cmocka_unit_test(test_single_field),
        cmocka_unit_test(test_file_part),
        cmocka_unit_test(test_several_parts),
        cmocka_unit_test(test_empty_part_body),
        cmocka_unit_test(test_empty_form),
        cmocka_unit_test(test_binary_tricky),
        cmocka_unit_test(test_split_three_ways),
        cmocka_unit_test(test_holdback_is_bounded),
        cmocka_unit_test(test_large_random_body),
        cmocka_unit_test(test_preamble_epilogue),
        cmocka_unit_test(test_transport_padding),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_crlf_after_boundary),
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_header_variants),
        cmocka_unit_test(test_filename_escapes),
        cmocka_unit_test(test_filename_star),
        cmocka_unit_test(test_callback_abort),
        cmocka_unit_test(test_null_callbacks),
        cmocka_unit_test(test_real_clients),
        cmocka_unit_test(test_api_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
