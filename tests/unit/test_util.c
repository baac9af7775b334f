/* test_util.c -- unit tests for src/util: bounded buffers, strict integer and
 * size parsing, UTF-8 checks, constant-time compare, arenas and ids. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/str.h"

static void buf_respects_max(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 10);
    assert_int_equal(ad_buf_addstr(&b, "hello"), AD_OK);
    assert_int_equal(ad_buf_addstr(&b, "world"), AD_OK);
    assert_int_equal(b.len, 10);
    assert_string_equal(ad_buf_str(&b), "helloworld");
    /* One more byte crosses the bound and leaves the content unchanged. */
    assert_int_equal(ad_buf_addc(&b, '!'), AD_ETOOBIG);
    assert_string_equal(ad_buf_str(&b), "helloworld");
    ad_buf_reset(&b);
    assert_int_equal(ad_buf_printf(&b, "%d-%s", 42, "x"), AD_OK);
    assert_string_equal(ad_buf_str(&b), "42-x");
    assert_int_equal(ad_buf_printf(&b, "%s", "0123456789"), AD_ETOOBIG);
    assert_string_equal(ad_buf_str(&b), "42-x");
    char *s = ad_buf_steal(&b);
    assert_string_equal(s, "42-x");
    assert_int_equal(b.len, 0);
    assert_null(b.ptr);
    free(s);
    ad_buf_free(&b);
}

static void buf_empty_is_empty_string(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 100);
    assert_string_equal(ad_buf_str(&b), "");
    assert_int_equal(ad_buf_add(&b, "", 0), AD_OK);
    assert_string_equal(ad_buf_str(&b), "");
    ad_buf_free(&b);
}

static void parse_i64_is_strict(void **state)
{
    (void)state;
    int64_t v;
    assert_true(ad_parse_i64("0", &v));
    assert_int_equal(v, 0);
    assert_true(ad_parse_i64("-42", &v));
    assert_int_equal(v, -42);
    assert_true(ad_parse_i64("9223372036854775807", &v));
    assert_true(v == INT64_MAX);
    assert_true(ad_parse_i64("-9223372036854775808", &v));
    assert_true(v == INT64_MIN);
    assert_false(ad_parse_i64("9223372036854775808", &v));
    assert_false(ad_parse_i64("", &v));
    assert_false(ad_parse_i64("-", &v));
    assert_false(ad_parse_i64("12a", &v));
    assert_false(ad_parse_i64(" 12", &v));
    assert_false(ad_parse_i64("1.5", &v));
    assert_false(ad_parse_i64(NULL, &v));
}

static void parse_size_suffixes(void **state)
{
    (void)state;
    uint64_t v;
    assert_true(ad_parse_size("512M", &v));
    assert_true(v == 512ull * 1024 * 1024);
    assert_true(ad_parse_size("1k", &v));
    assert_int_equal(v, 1024);
    assert_true(ad_parse_size("2G", &v));
    assert_true(v == 2ull << 30);
    assert_true(ad_parse_size("77", &v));
    assert_int_equal(v, 77);
    assert_false(ad_parse_size("M", &v));
    assert_false(ad_parse_size("-1K", &v));
    assert_false(ad_parse_size("99999999999999999999G", &v));
}

static void utf8_validation(void **state)
{
    (void)state;
    assert_true(ad_utf8_valid("plain", 5));
    assert_true(ad_utf8_valid("\xc3\xa9", 2));          /* é */
    assert_true(ad_utf8_valid("\xe2\x82\xac", 3));      /* € */
    assert_true(ad_utf8_valid("\xf0\x9f\x98\x80", 4));  /* emoji */
    assert_false(ad_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(ad_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ad_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(ad_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ad_utf8_valid("\x80", 1));             /* stray continuation */
    assert_int_equal(ad_utf8_count("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), 4);
}

static void utf8_encoding(void **state)
{
    (void)state;
    static const struct {
        uint32_t cp;
        const char *want;
    } cases[] = {
        {0x41, "A"},
        {0x7F, "\x7f"},
        {0x80, "\xc2\x80"},
        {0xE9, "\xc3\xa9"},
        {0x7FF, "\xdf\xbf"},
        {0x800, "\xe0\xa0\x80"},
        {0x20AC, "\xe2\x82\xac"},
        {0xFFFF, "\xef\xbf\xbf"},
        {0x10000, "\xf0\x90\x80\x80"},
        {0x1F600, "\xf0\x9f\x98\x80"},
        {0x10FFFF, "\xf4\x8f\xbf\xbf"},
        {0xD800, "\xef\xbf\xbd"},
        {0xDFFF, "\xef\xbf\xbd"},   /* surrogates */
        {0x110000, "\xef\xbf\xbd"}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char u[4];
        size_t n = ad_utf8_put(cases[i].cp, u);
        assert_int_equal(n, strlen(cases[i].want));
        assert_memory_equal(u, cases[i].want, n);
        assert_true(ad_utf8_valid(u, n));
    }
    char z[4] = {'x'};
    assert_int_equal(ad_utf8_put(0, z), 1); /* NUL is one NUL byte */
    assert_int_equal(z[0], 0);
}

static void constant_time_equal(void **state)
{
    (void)state;
    assert_true(ad_ct_equal("secret", 6, "secret", 6));
    assert_false(ad_ct_equal("secret", 6, "secreT", 6));
    assert_false(ad_ct_equal("secret", 6, "secret2", 7));
    assert_false(ad_ct_equal("secret", 6, "sec", 3));
    assert_true(ad_ct_equal("", 0, "", 0));
}

static void strlcpy_truncates(void **state)
{
    (void)state;
    char d[4];
    assert_int_equal(ad_strlcpy(d, "abcdef", sizeof d), 6);
    assert_string_equal(d, "abc");
    assert_int_equal(ad_strlcpy(d, "ab", sizeof d), 2);
    assert_string_equal(d, "ab");
}

static void arena_allocates_and_aligns(void **state)
{
    (void)state;
    ad_arena *a = ad_arena_new(256);
    for (int i = 0; i < 1000; i++) {
        void *p = ad_arena_alloc(a, (size_t)(i % 37) + 1);
        assert_true(((uintptr_t)p & 15) == 0);
        memset(p, 0xAB, (size_t)(i % 37) + 1);
    }
    char *big = ad_arena_alloc(a, 10000); /* larger than a chunk */
    memset(big, 1, 10000);
    assert_string_equal(ad_arena_printf(a, "%s-%d", "x", 7), "x-7");
    assert_string_equal(ad_arena_strndup(a, "hello", 3), "hel");
    ad_arena_free(a);
}

static void ids_have_prefix_and_are_unique(void **state)
{
    (void)state;
    char a[AD_ID_MAX], b[AD_ID_MAX];
    ad_id_new(a, "asst_");
    ad_id_new(b, "asst_");
    assert_int_equal(strlen(a), 5 + AD_ID_RANDOM_LEN);
    assert_memory_equal(a, "asst_", 5);
    assert_string_not_equal(a, b);
    for (const char *p = a + 5; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= 'A' && *p <= 'Z'));
    ad_id_new(a, "file-");
    assert_memory_equal(a, "file-", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_respects_max),
        cmocka_unit_test(buf_empty_is_empty_string),
        cmocka_unit_test(parse_i64_is_strict),
        cmocka_unit_test(parse_size_suffixes),
        cmocka_unit_test(utf8_validation),
        cmocka_unit_test(utf8_encoding),
        cmocka_unit_test(constant_time_equal),
        cmocka_unit_test(strlcpy_truncates),
        cmocka_unit_test(arena_allocates_and_aligns),
        cmocka_unit_test(ids_have_prefix_and_are_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
