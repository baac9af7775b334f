/*
 * test_chunk.c -- unit tests for src/ingest/chunk (and the one tokenizer
 * function it added, ad_tokenizer_token_bytes).
 *
 * Every chunking result is checked against the invariants of chunk.h by
 * check_chunks: exact token counts of each range, the maximum, UTF-8
 * character boundaries, starts on non-whitespace, strictly advancing ranges
 * with no gap but whitespace, the first chunk at the first non-space and the
 * last at the end. The other tests look at where the cuts fall (paragraph,
 * line, sentence, word, CJK full stop), how large the overlaps are, the
 * 100/4096 extremes, odd inputs (invalid UTF-8, emoji-only text, tiny
 * maxima), a 1 MB text, and exact counts on text built to stress the
 * pre-tokenizer's splits near chunk ends.
 *
 * Data: the rank tables in $AD_TOKENIZER_DIR, default share/tokenizer (run
 * from the repository root).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/chunk.h"
#include "util/alloc.h"
#include "util/buf.h"

static ad_tokenizer *o200k, *cl100k;

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("AD_TOKENIZER_DIR");
    if (!dir)
        dir = AD_TOKENIZER_DEFAULT_DIR;
    if (ad_tokenizer_load(dir, "o200k_base", &o200k) ||
        ad_tokenizer_load(dir, "cl100k_base", &cl100k))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ad_tokenizer_free(o200k);
    ad_tokenizer_free(cl100k);
    return 0;
}

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool boundary(const char *t, size_t len, size_t p)
{
    return p >= len || ((unsigned char)t[p] & 0xC0) != 0x80;
}

/* Asserts every invariant of chunk.h; utf8: the text is valid UTF-8. */
static void check_chunks(const ad_tokenizer *tok, const char *t, size_t len, size_t max,
                         const ad_chunk *c, size_t n, bool utf8)
{
    size_t first = 0;
    while (first < len && ws(t[first]))
        first++;
    if (first == len) {
        assert_int_equal(n, 0);
        return;
    }
    assert_true(n >= 1);
    assert_int_equal(c[0].start, first);
    assert_int_equal(c[n - 1].end, len);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].start < c[i].end);
        assert_true(c[i].end <= len);
        assert_int_equal(c[i].tokens,
                         ad_tokenizer_count(tok, t + c[i].start, c[i].end - c[i].start));
        assert_true(c[i].tokens <= max);
        assert_false(ws(t[c[i].start]));
        if (utf8) {
            assert_true(boundary(t, len, c[i].start));
            assert_true(boundary(t, len, c[i].end));
        }
        if (i) {
            assert_true(c[i].start > c[i - 1].start);
            assert_true(c[i].end > c[i - 1].end);
            for (size_t k = c[i - 1].end; k < c[i].start; k++)
                assert_true(ws(t[k])); /* nothing but whitespace is skipped */
        }
    }
}

static ad_chunk *chunk_ok(const ad_tokenizer *tok, const char *t, size_t len, size_t max,
                          size_t overlap, size_t *n, bool utf8)
{
    ad_chunk *c = NULL;
    assert_int_equal(ad_chunk_text(tok, t, len, max, overlap, &c, n), AD_OK);
    check_chunks(tok, t, len, max, c, *n, utf8);
    return c;
}

/* Deterministic English-like text: sentences of 6..17 words, paragraphs of
 * 2..5 sentences (spw: sentences per paragraph forced when nonzero). */
static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void gen_text(ad_buf *b, size_t bytes, uint32_t seed, int spp, bool newlines)
{
    static const char *const words[] = {
        "the",       "file",      "search",      "tool",     "returns",   "relevant", "chunks",
        "of",        "text",      "from",        "uploaded", "documents", "which",    "are",
        "split",     "into",      "overlapping", "windows",  "assistant", "model",    "answers",
        "questions", "using",     "vector",      "stores",   "and",       "keyword",  "ranking",
        "with",      "citations", "quickly",     "server"};
    size_t nw = sizeof words / sizeof words[0];
    while (b->len < bytes) {
        int sentences = spp ? spp : 2 + (int)(lcg(&seed) % 4);
        for (int s = 0; s < sentences; s++) {
            int n = 6 + (int)(lcg(&seed) % 12);
            for (int w = 0; w < n; w++) {
                const char *word = words[lcg(&seed) % nw];
                if (w == 0) {
                    char cap[32];
                    snprintf(cap, sizeof cap, "%s", word);
                    cap[0] = (char)(cap[0] - 32);
                    ad_buf_addstr(b, cap);
                } else {
                    ad_buf_addc(b, ' ');
                    ad_buf_addstr(b, word);
                }
            }
            ad_buf_addstr(b, s + 1 < sentences ? ". " : ".");
        }
        ad_buf_addstr(b, newlines ? "\n\n" : " ");
    }
}

/* ---- tests ---------------------------------------------------------------------- */

static void token_bytes_spell_the_text(void **state)
{
    (void)state;
    const char *t = "Hello, world! \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 tokens\n\n";
    size_t len = strlen(t);
    uint32_t ids[64];
    const ad_tokenizer *toks[] = {o200k, cl100k};
    for (int k = 0; k < 2; k++) {
        size_t n = ad_tokenizer_encode(toks[k], t, len, ids, 64), sum = 0;
        assert_true(n > 0 && n <= 64);
        for (size_t i = 0; i < n; i++) {
            size_t b = ad_tokenizer_token_bytes(toks[k], ids[i]);
            assert_true(b >= 1);
            sum += b;
        }
        assert_int_equal(sum, len);
        assert_int_equal(
            ad_tokenizer_token_bytes(toks[k], (uint32_t)ad_tokenizer_vocab_size(toks[k])), 0);
        assert_int_equal(ad_tokenizer_token_bytes(toks[k], UINT32_MAX), 0);
    }
    /* "Hello" is one 5-byte token, " world" one of 6, in both encodings. */
    assert_int_equal(ad_tokenizer_encode(o200k, "Hello", 5, ids, 64), 1);
    assert_int_equal(ad_tokenizer_token_bytes(o200k, ids[0]), 5);
    assert_int_equal(ad_tokenizer_encode(cl100k, " world", 6, ids, 64), 1);
    assert_int_equal(ad_tokenizer_token_bytes(cl100k, ids[0]), 6);
}

/* More than OpenAI's per-file token limit: refused before the token array
 * is allocated, nothing returned. */
static void over_the_token_limit(void **state)
{
    (void)state;
    size_t reps = AD_CHUNK_MAX_TOKENS + 1, len = 2 * reps;
    char *t = malloc(len);
    for (size_t i = 0; i < reps; i++)
        memcpy(t + 2 * i, " a", 2);
    assert_int_equal(ad_tokenizer_count(o200k, t, 20), 10); /* one token per " a" */
    ad_chunk *c = (ad_chunk *)1;
    size_t n = 7;
    assert_int_equal(ad_chunk_text(o200k, t, len, 800, 400, &c, &n), AD_ETOOBIG);
    assert_null(c);
    assert_int_equal(n, 0);
    /* Just under: one token fewer is chunked normally (only the count is
     * checked here; the chunking itself is covered above). */
    assert_int_equal(ad_tokenizer_count(o200k, t, len - 2), AD_CHUNK_MAX_TOKENS);
    free(t);
}

static void arguments_and_empty_text(void **state)
{
    (void)state;
    ad_chunk *c = (ad_chunk *)1;
    size_t n = 7;
    assert_int_equal(ad_chunk_text(o200k, "abc", 3, 0, 0, &c, &n), AD_EINVAL);
    assert_null(c);
    assert_int_equal(n, 0);
    assert_int_equal(ad_chunk_text(o200k, "abc", 3, 100, 51, &c, &n), AD_EINVAL);
    assert_int_equal(ad_chunk_text(NULL, "abc", 3, 100, 0, &c, &n), AD_EINVAL);
    assert_int_equal(ad_chunk_text(o200k, NULL, 3, 100, 0, &c, &n), AD_EINVAL);
    assert_int_equal(ad_chunk_text(o200k, "abc", 3, 100, 0, NULL, &n), AD_EINVAL);
    assert_int_equal(ad_chunk_text(o200k, NULL, 0, 100, 50, &c, &n), AD_OK);
    assert_int_equal(n, 0);
    assert_null(c);
    assert_int_equal(ad_chunk_text(o200k, " \n\n\t\r\n  ", 8, 800, 400, &c, &n), AD_OK);
    assert_int_equal(n, 0);
    assert_null(c);
    /* A short text is one chunk from its first non-space to its end. */
    const char *t = "\n\n  Just one short paragraph.\n\n";
    c = chunk_ok(o200k, t, strlen(t), 800, 400, &n, true);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].start, 4);
    assert_int_equal(c[0].end, strlen(t));
    ad_free(c);
}

static void sizes_and_overlap_auto(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 60000, 1, 0, true);
    size_t n;
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 800, 400, &n, true);
    assert_true(n > 10);
    for (size_t i = 0; i + 1 < n; i++) {
        /* Cut in the last part of the window: between 600 and 800 tokens. */
        assert_true(c[i].tokens >= 560);
        size_t ov = ad_tokenizer_count(o200k, b.ptr + c[i + 1].start, c[i].end - c[i + 1].start);
        if (ov < 250 || ov > 550)
            fprintf(stderr, "chunk %zu: overlap %zu\n", i, ov);
        assert_true(ov >= 250 && ov <= 550); /* about 400 */
    }
    ad_free(c);

    /* No overlap: consecutive chunks touch (only whitespace between). */
    c = chunk_ok(o200k, b.ptr, b.len, 800, 0, &n, true);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(c[i + 1].start >= c[i].end);
    ad_free(c);
    ad_buf_free(&b);
}

static bool after_para(const char *t, size_t p)
{
    return p >= 2 && t[p - 1] == '\n' && t[p - 2] == '\n';
}

static void cuts_prefer_paragraphs(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 40000, 7, 3, true); /* paragraphs of ~50-150 tokens */
    size_t n;
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 800, 400, &n, true);
    assert_true(n > 5);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n)
            assert_true(after_para(b.ptr, c[i].end));
        assert_true(c[i].start == 0 || after_para(b.ptr, c[i].start));
    }
    ad_free(c);
    ad_buf_free(&b);
}

static void cuts_prefer_lines_then_sentences_then_words(void **state)
{
    (void)state;
    ad_buf b;
    size_t n;
    ad_chunk *c;
    /* Lines: single newlines between sentences, no blank lines. */
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 20000, 3, 1, false);
    for (size_t i = 0; i < b.len; i++)
        if (b.ptr[i] == ' ' && i > 0 && b.ptr[i - 1] == '.')
            b.ptr[i] = '\n';
    c = chunk_ok(o200k, b.ptr, b.len, 300, 100, &n, true);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(b.ptr[c[i].end - 1] == '\n' && b.ptr[c[i].end - 2] == '.');
    ad_free(c);
    ad_buf_free(&b);

    /* Sentences: one paragraph of sentences. */
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 20000, 5, 0, false);
    c = chunk_ok(o200k, b.ptr, b.len, 300, 100, &n, true);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n)
            assert_true(b.ptr[c[i].end - 1] == ' ' && b.ptr[c[i].end - 2] == '.');
        if (i)
            assert_true(b.ptr[c[i].start - 1] == ' ' && b.ptr[c[i].start - 2] == '.');
    }
    ad_free(c);

    /* Words: no punctuation at all. */
    for (size_t i = 0; i < b.len; i++)
        if (b.ptr[i] == '.')
            b.ptr[i] = 'x';
    c = chunk_ok(o200k, b.ptr, b.len, 100, 0, &n, true);
    for (size_t i = 0; i + 1 < n; i++) {
        assert_true(b.ptr[c[i].end - 1] == ' ');
        assert_true(c[i].tokens >= 50);
    }
    ad_free(c);
    ad_buf_free(&b);
}

static void multibyte_text(void **state)
{
    (void)state;
    ad_buf b;
    size_t n;
    ad_chunk *c;
    /* CJK without spaces, a full stop every 24 characters: cuts after 。 */
    static const char *const han[] = {"\xe4\xb8\xad", "\xe6\x96\x87", "\xe6\x96\x87",
                                      "\xe4\xbb\xb6", "\xe6\x90\x9c", "\xe7\xb4\xa2",
                                      "\xe5\xb7\xa5", "\xe5\x85\xb7"};
    ad_buf_init(&b, 1 << 20);
    uint32_t seed = 11;
    for (int s = 0; s < 400; s++) {
        for (int k = 0; k < 24; k++)
            ad_buf_addstr(&b, han[lcg(&seed) % 8]);
        ad_buf_addstr(&b, "\xe3\x80\x82");
    }
    c = chunk_ok(o200k, b.ptr, b.len, 200, 50, &n, true);
    assert_true(n > 5);
    for (size_t i = 0; i + 1 < n; i++)
        assert_memory_equal(b.ptr + c[i].end - 3, "\xe3\x80\x82", 3);
    ad_free(c);
    ad_buf_free(&b);

    /* Emoji only (4-byte characters, several tokens each): char boundaries. */
    ad_buf_init(&b, 1 << 20);
    static const char *const emo[] = {"\xf0\x9f\x98\x80", "\xf0\x9f\x8e\x89", "\xf0\x9f\xa6\x84",
                                      "\xe2\x9d\xa4\xef\xb8\x8f",
                                      "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"};
    for (int k = 0; k < 3000; k++)
        ad_buf_addstr(&b, emo[lcg(&seed) % 5]);
    c = chunk_ok(o200k, b.ptr, b.len, 100, 50, &n, true);
    ad_free(c);
    c = chunk_ok(cl100k, b.ptr, b.len, 100, 0, &n, true);
    ad_free(c);
    /* Tiny maxima: one character may need more tokens than allowed. */
    ad_chunk *t = NULL;
    size_t small = 400;
    while (!boundary(b.ptr, b.len, small))
        small++;
    assert_int_equal(ad_chunk_text(cl100k, b.ptr, small, 1, 0, &t, &n), AD_OK);
    for (size_t i = 0; i < n; i++) {
        size_t one = t[i].start + 1; /* the end of the chunk's first character */
        while (!boundary(b.ptr, b.len, one))
            one++;
        assert_true(t[i].tokens <= 1 || t[i].end == one);
        assert_true(boundary(b.ptr, b.len, t[i].start) && boundary(b.ptr, b.len, t[i].end));
        assert_true(i == 0 || t[i].start == t[i - 1].end);
    }
    assert_int_equal(t[n - 1].end, small);
    ad_free(t);
    ad_buf_free(&b);

    /* Random mix of scripts, spaces and newlines. */
    ad_buf_init(&b, 1 << 20);
    static const char *const bits[] = {
        "a",   "Zeta",     " ",        "\n",           "\n\n",
        ". ",  "\xc3\xa9", "\xd0\x96", "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
        "123", "\t"};
    for (int k = 0; k < 30000; k++)
        ad_buf_addstr(&b, bits[lcg(&seed) % 12]);
    c = chunk_ok(o200k, b.ptr, b.len, 120, 60, &n, true);
    ad_free(c);
    ad_buf_free(&b);
}

static void invalid_utf8_is_chunked(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    uint32_t seed = 99;
    for (int k = 0; k < 20000; k++)
        ad_buf_addc(&b, (char)(lcg(&seed) & 0xff ? lcg(&seed) : 'a'));
    size_t n;
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 100, 50, &n, false);
    assert_true(n > 10);
    ad_free(c);
    /* Only stray continuation bytes: no character boundary anywhere. */
    char cont[600];
    memset(cont, 0x80, sizeof cont);
    c = chunk_ok(o200k, cont, sizeof cont, 100, 0, &n, false);
    ad_free(c);
    ad_buf_free(&b);
}

static void deterministic(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 30000, 42, 0, true);
    size_t n1, n2;
    ad_chunk *a = chunk_ok(o200k, b.ptr, b.len, 500, 200, &n1, true);
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 500, 200, &n2, true);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, c, n1 * sizeof *a);
    ad_free(a);
    ad_free(c);
    ad_buf_free(&b);
}

static void extremes_100_and_4096(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 120000, 8, 0, true);
    size_t n, n0, total = ad_tokenizer_count(o200k, b.ptr, b.len);
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 100, 0, &n0, true);
    assert_true(n0 >= total / 100 && n0 <= total / 50); /* chunks of 50..100 tokens */
    ad_free(c);
    c = chunk_ok(o200k, b.ptr, b.len, 100, 50, &n, true);
    fprintf(stderr, "    %zu tokens: %zu chunks without overlap, %zu with 50\n", total, n0, n);
    assert_true(n > n0 * 3 / 2); /* the overlap at least halves the stride */
    ad_free(c);
    c = chunk_ok(o200k, b.ptr, b.len, 4096, 2048, &n, true);
    assert_true(n > 5);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(c[i].tokens > 3000);
    ad_free(c);
    c = chunk_ok(cl100k, b.ptr, b.len, 4096, 0, &n, true);
    ad_free(c);
    ad_buf_free(&b);
}

static void one_megabyte(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 2 << 20);
    gen_text(&b, 1 << 20, 2024, 0, true);
    size_t n;
    ad_chunk *c = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ad_chunk_text(o200k, b.ptr, b.len, 800, 400, &c, &n), AD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "    1 MB: %zu chunks in %.0f ms (ASan build)\n", n,
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    check_chunks(o200k, b.ptr, b.len, 800, c, n, true);
    ad_free(c);
    /* One huge "word" (no whitespace at all). */
    memset(b.ptr, 'q', b.len);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    c = chunk_ok(o200k, b.ptr, b.len, 800, 400, &n, true);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "    1 MB of one letter: %zu chunks in %.0f ms\n", n,
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    ad_free(c);
    ad_buf_free(&b);
}

static void trailing_whitespace_is_covered(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    gen_text(&b, 5000, 4, 0, true);
    for (int i = 0; i < 50; i++)
        ad_buf_addstr(&b, " \n");
    size_t n;
    ad_chunk *c = chunk_ok(o200k, b.ptr, b.len, 100, 20, &n, true);
    ad_free(c);
    ad_buf_free(&b);
}

/* Text that stresses where the pre-tokenizer splits: contractions, runs of
 * punctuation, digits, capitals, tabs, CR LF, several spaces, spaces before
 * punctuation and newlines, Unicode spaces, CJK and emoji, glued or spaced
 * at random. Chunk counts (which chunk.c partly reads off the whole text's
 * tokens) must still equal a full count of every chunk (check_chunks). */
static void counts_are_exact_on_tricky_text(void **state)
{
    (void)state;
    static const char *const frag[] = {"don't",
                                       "WE'VE",
                                       "it's",
                                       "they'll",
                                       "'s",
                                       "'",
                                       "O'Neil",
                                       "word.",
                                       "end!",
                                       "why?",
                                       "\"q\"",
                                       "(x)",
                                       "[1]",
                                       "...",
                                       "--",
                                       "a/b",
                                       "http://x.y/z",
                                       "1234567",
                                       "3.14",
                                       "abc123",
                                       "HTTPServer",
                                       "CamelCase",
                                       "ALLCAPS",
                                       "x",
                                       "\303\251t\303\251",
                                       "\302\240",
                                       "\343\200\200",
                                       "\346\227\245\346\234\254\343\200\202",
                                       "\360\237\216\211",
                                       "\xe2\x80\x94",
                                       ",",
                                       ";",
                                       ":",
                                       "#",
                                       "$5",
                                       "naive",
                                       "the",
                                       "search"};
    static const char *const gap[] = {" ",   " ",  " ",    " ",    "",    "  ",     "   ", "\t",
                                      " \t", "\n", "\n\n", "\r\n", " \n", "  \n  ", "\n ", "\f"};
    const ad_tokenizer *toks[] = {o200k, cl100k};
    static const size_t sizes[][2] = {{100, 50}, {100, 0}, {800, 400}, {300, 10}, {4096, 2048}};
    for (uint32_t seed = 1; seed <= 3; seed++) {
        ad_buf b;
        ad_buf_init(&b, 1u << 20);
        uint32_t x = seed;
        while (b.len < 60000) {
            assert_int_equal(ad_buf_addstr(&b, frag[lcg(&x) % (sizeof frag / sizeof *frag)]),
                             AD_OK);
            assert_int_equal(ad_buf_addstr(&b, gap[lcg(&x) % (sizeof gap / sizeof *gap)]), AD_OK);
        }
        for (size_t k = 0; k < 2; k++)
            for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
                size_t n;
                ad_chunk *c = chunk_ok(toks[k], b.ptr, b.len, sizes[i][0], sizes[i][1], &n, true);
                assert_true(n > 1);
                ad_free(c);
            }
        ad_buf_free(&b);
    }
}

/* With a tiny maximum, the window after a chunk can end inside a character
 * of several tokens (here an emoji) just past the previous chunk's end; the
 * next chunk then ends at the character boundary before it (after the em
 * dash) rather than at that previous end, which would make it a chunk inside
 * the one before (check_chunks asserts ends strictly increase). */
static void no_chunk_inside_the_previous_one(void **state)
{
    (void)state;
    static const char text[] = "a/b  (x) --\t\xe2\x80\x94\xf0\x9f\x8e\x89\t1234567 :\nsearch";
    size_t n;
    ad_chunk *c = chunk_ok(cl100k, text, sizeof text - 1, 5, 2, &n, true);
    assert_true(n >= 4);
    ad_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_bytes_spell_the_text),
        cmocka_unit_test(arguments_and_empty_text),
        cmocka_unit_test(over_the_token_limit),
        cmocka_unit_test(sizes_and_overlap_auto),
        cmocka_unit_test(cuts_prefer_paragraphs),
        cmocka_unit_test(cuts_prefer_lines_then_sentences_then_words),
        cmocka_unit_test(multibyte_text),
        cmocka_unit_test(invalid_utf8_is_chunked),
        cmocka_unit_test(deterministic),
        cmocka_unit_test(extremes_100_and_4096),
        cmocka_unit_test(one_megabyte),
        cmocka_unit_test(trailing_whitespace_is_covered),
        cmocka_unit_test(counts_are_exact_on_tricky_text),
        cmocka_unit_test(no_chunk_inside_the_previous_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
