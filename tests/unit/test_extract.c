/*
 * test_extract.c -- unit tests for src/ingest/extract: every supported format
 * read from real fixture files (tests/fixtures/ingest, made by its
 * make_fixtures.py; run from the repository root), the text encodings, the
 * zip reader's defences (truncation, CRC, lying sizes, zip bombs, entry
 * counts), PDF through pdftotext, content sniffing, unsupported types, the
 * empty-text rule and the output bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/extract.h"
#include "util/alloc.h"
#include "util/str.h"

#define FIX "tests/fixtures/ingest/"

/* Extracts fixture `name` (reported to the extractor as `filename`, or the
 * fixture's own name) into a fresh 1 MB buffer. */
static ad_extract_result run_file(const char *name, const char *filename, ad_buf *out, char *msg)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    ad_buf_init(out, 1 << 20);
    msg[0] = 'x';
    msg[1] = '\0';
    return ad_extract_file(path, filename ? filename : name, out, msg, 256);
}

static void expect_text(const char *name, const char *want)
{
    ad_buf out;
    char msg[256];
    ad_extract_result r = run_file(name, NULL, &out, msg);
    if (r != AD_EXTRACT_OK)
        fprintf(stderr, "%s: %d %s\n", name, r, msg);
    assert_int_equal(r, AD_EXTRACT_OK);
    assert_string_equal(msg, ""); /* cleared on success */
    assert_string_equal(ad_buf_str(&out), want);
    assert_true(ad_utf8_valid(out.ptr, out.len));
    ad_buf_free(&out);
}

/* Expects failure r with a message containing `part`; out stays empty. */
static void expect_fail(const char *name, const char *filename, ad_extract_result r,
                        const char *part)
{
    ad_buf out;
    char msg[256];
    ad_extract_result got = run_file(name, filename, &out, msg);
    if (got != r || !strstr(msg, part))
        fprintf(stderr, "%s: got %d \"%s\", want %d \"...%s...\"\n", name, got, msg, r, part);
    assert_int_equal(got, r);
    assert_non_null(strstr(msg, part));
    assert_int_equal(out.len, 0);
    ad_buf_free(&out);
}

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    char *p = ad_malloc((size_t)st.st_size + 1);
    assert_int_equal(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return p;
}

/* ---- text ---------------------------------------------------------------- */

static void text_bom_and_line_ends(void **state)
{
    (void)state;
    expect_text("bom_crlf.txt",
                "First line\nsecond line\n\nNew paragraph \xc3\xa9t\xc3\xa9.\nold mac line\n");
    expect_text("table.csv", "name,qty\napple,3\npear,5\n");
    expect_text("code.py",
                "def greet(name):\n    \"\"\"Say hello.\"\"\"\n    return f\"Hello, {name}!\"\n");
    expect_text("data.json", "{\"city\": \"Z\xc3\xbcrich\", \"population\": 421878}\n");
}

static void text_utf16_both_orders(void **state)
{
    (void)state;
    const char *want = "Hello UTF-16 \xc3\xa9\xe4\xb8\xad \xf0\x9f\x98\x80\nline two\n";
    expect_text("utf16le.txt", want);
    expect_text("utf16be.txt", want);
}

static void text_rejects_bad_encodings(void **state)
{
    (void)state;
    expect_fail("invalid_utf8.txt", NULL, AD_EXTRACT_INVALID, "not valid UTF-8");
    expect_fail("bad_surrogate.txt", NULL, AD_EXTRACT_INVALID, "UTF-16");
    expect_fail("nul.txt", NULL, AD_EXTRACT_INVALID, "NUL");
    /* A UTF-16 file whose text holds U+0000 is binary as well. */
    ad_buf out;
    char msg[128];
    ad_buf_init(&out, 1000);
    assert_int_equal(ad_extract_mem("\xff\xfe"
                                    "a\0\0\0",
                                    6, "x.txt", &out, msg, sizeof msg),
                     AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "NUL"));
    /* Odd-length UTF-16. */
    assert_int_equal(ad_extract_mem("\xfe\xff\0a\0", 5, "x.txt", &out, msg, sizeof msg),
                     AD_EXTRACT_INVALID);
    ad_buf_free(&out);
}

static void empty_files_have_no_text(void **state)
{
    (void)state;
    expect_fail("empty.txt", NULL, AD_EXTRACT_INVALID, "No text could be extracted");
    expect_fail("blank.md", NULL, AD_EXTRACT_INVALID, "No text could be extracted");
    expect_fail("empty_text.docx", NULL, AD_EXTRACT_INVALID, "No text could be extracted");
}

/* ---- HTML ------------------------------------------------------------------ */

static void html_page(void **state)
{
    (void)state;
    expect_text("page.html", "Main heading\n\n"
                             "Fish & chips cost \xc2\xa3"
                             "5 \xe2\x80\x94 \"cheap\" \xc2\xa9 \xf0\x9f\x98\x80 caf\xc3\xa9 "
                             "across lines.\n\n"
                             "First div\nafter break\n\n"
                             "one\ntwo\n\n"
                             "a1 b1\na2 b2\n\n"
                             "  indented\n    code\n\n"
                             "Unknown &bogus; entity and a lone &amp stays; 3 < 4 > 2.\n\n"
                             "Attribute with > inside.");
}

static void html_edge_cases(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"<p>a</p><p>b</p>", "a\n\nb"},
        {"x<br/>y<BR>z", "x\ny\nz"},
        {"<SCRIPT>bad()</SCRIPT >ok<STYLE>p{}</style>", "ok"},
        {"<script>never closed", ""},
        {"a<!-- never closed", "a"},
        {"1 < 2 and 3 <4 <>", "1 < 2 and 3 <4 <>"},
        {"&#65;&#x42;&#67 &#0; &#xD800; &#1114112;", "ABC \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd"},
        {"&nbsp;&nbsp;lead and trail&nbsp;", "lead and trail"},
        {"<head><title>t</title></head><body>b</body>", "b"},
        {"<head><title>t</title><body>no end of head</body>", "no end of head"},
        {"<template><p>hidden</p></template>shown", "shown"},
        {"<pre>a\n\n\nb  c</pre>", "a\n\nb  c"},
        {"<a href=\"x>y\">link</a> text", "link text"},
        {"<td>1</td><td>2</td>", "1 2"},
        {"<?xml version='1.0'?><!DOCTYPE html><p>t</p>", "t"},
        {"<p>tab\tand\r\nnewline</p>", "tab and newline"},
        {"&amp;lt;", "&lt;"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_buf out;
        char msg[128];
        ad_buf_init(&out, 4096);
        ad_extract_result r =
            ad_extract_mem(cases[i].in, strlen(cases[i].in), "t.html", &out, msg, sizeof msg);
        if (!*cases[i].want) {
            assert_int_equal(r, AD_EXTRACT_INVALID);
        } else {
            if (r || strcmp(ad_buf_str(&out), cases[i].want))
                fprintf(stderr, "case %zu: %d [%s] want [%s]\n", i, r, ad_buf_str(&out),
                        cases[i].want);
            assert_int_equal(r, AD_EXTRACT_OK);
            assert_string_equal(ad_buf_str(&out), cases[i].want);
        }
        ad_buf_free(&out);
    }
}

static void html_utf16_and_invalid(void **state)
{
    (void)state;
    static const char le[] = "\xff\xfe<\0p\0>\0h\0i\0<\0/\0p\0>\0";
    ad_buf out;
    char msg[128];
    ad_buf_init(&out, 4096);
    assert_int_equal(ad_extract_mem(le, sizeof le - 1, "x.htm", &out, msg, sizeof msg),
                     AD_EXTRACT_OK);
    assert_string_equal(ad_buf_str(&out), "hi");
    ad_buf_reset(&out);
    assert_int_equal(ad_extract_mem("<p>\xff</p>", 8, "x.html", &out, msg, sizeof msg),
                     AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "UTF-8"));
    ad_buf_free(&out);
}

/* ---- DOCX / PPTX ----------------------------------------------------------- */

#define REPORT_TEXT                                                                                \
    "Quarterly report\n\n"                                                                         \
    "Revenue grew 12% in Q3 & Q4.\n\n"                                                             \
    "Name\tValue\nSecond <line>\n\n"                                                               \
    "Caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\n\n"                                                     \
    "cell A\n\ncell B"

static void docx_paragraphs(void **state)
{
    (void)state;
    expect_text("report.docx", REPORT_TEXT);
    expect_text("stored.docx", REPORT_TEXT); /* method 0 entries */
}

static void pptx_slides_in_numeric_order(void **state)
{
    (void)state;
    expect_text("deck.pptx", "One: title\n\nTwo: body & soul\n\nsecond para\n\nTen: the end");
}

static void zip_damage_is_invalid(void **state)
{
    (void)state;
    expect_fail("truncated.docx", NULL, AD_EXTRACT_INVALID, "ZIP");
    expect_fail("not_a_zip.docx", NULL, AD_EXTRACT_INVALID, "ZIP");
    expect_fail("no_document.docx", NULL, AD_EXTRACT_INVALID, "word/document.xml");
    expect_fail("malformed.docx", NULL, AD_EXTRACT_INVALID, "XML");
    expect_fail("bad_crc.docx", NULL, AD_EXTRACT_INVALID, "checksum");
    expect_fail("liar.docx", NULL, AD_EXTRACT_INVALID, "decompressed");
    expect_fail("report.docx", "report.pptx", AD_EXTRACT_INVALID, "PowerPoint");
}

static void zip_bomb_guard(void **state)
{
    (void)state;
    expect_fail("bomb.docx", NULL, AD_EXTRACT_INVALID, "bomb");
}

static void zip_entry_count_limit(void **state)
{
    (void)state;
    /* An empty archive whose end record claims 20000 entries. */
    unsigned char eocd[22] = {'P', 'K', 5, 6, 0, 0, 0, 0, 0x20, 0x4e, 0x20, 0x4e};
    ad_buf out;
    char msg[128];
    ad_buf_init(&out, 4096);
    assert_int_equal(
        ad_extract_mem((const char *)eocd, sizeof eocd, "x.docx", &out, msg, sizeof msg),
        AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "too many entries"));
    /* ZIP64 markers are refused, not misread. */
    memset(eocd + 8, 0xff, 12);
    assert_int_equal(
        ad_extract_mem((const char *)eocd, sizeof eocd, "x.docx", &out, msg, sizeof msg),
        AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "ZIP64"));
    ad_buf_free(&out);
}

/* ---- PDF --------------------------------------------------------------------- */

static void pdf_via_pdftotext(void **state)
{
    (void)state;
    expect_text("sample.pdf", "Hello from page one.\nA second line.\n\nPage two says goodbye.\n\n");
    expect_fail("blank.pdf", NULL, AD_EXTRACT_INVALID, "No text could be extracted");
    expect_fail("broken.pdf", NULL, AD_EXTRACT_INVALID, "PDF");
}

static void pdf_needs_a_file_and_pdftotext(void **state)
{
    (void)state;
    size_t n;
    char *p = slurp("sample.pdf", &n);
    ad_buf out;
    char msg[256];
    ad_buf_init(&out, 4096);
    assert_int_equal(ad_extract_mem(p, n, "sample.pdf", &out, msg, sizeof msg),
                     AD_EXTRACT_UNSUPPORTED);
    ad_free(p);
    ad_buf_free(&out);

    char *saved = ad_strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", "/nonexistent-dir", 1);
    expect_fail("sample.pdf", NULL, AD_EXTRACT_UNSUPPORTED, "pdftotext");
    setenv("PATH", saved, 1);
    ad_free(saved);
}

/* Runs sample.pdf through a fake pdftotext (a shell script) found first in
 * PATH; out is bounded to max. */
static ad_extract_result fake_pdftotext(const char *script, size_t max, ad_buf *out, char *msg)
{
    char dir[] = "/tmp/test_extract_XXXXXX", prog[64];
    assert_non_null(mkdtemp(dir));
    snprintf(prog, sizeof prog, "%s/pdftotext", dir);
    FILE *f = fopen(prog, "w");
    assert_non_null(f);
    fputs(script, f);
    fclose(f);
    assert_int_equal(chmod(prog, 0755), 0);
    char *saved = ad_strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", dir, 1);
    ad_buf_init(out, max);
    ad_extract_result r = ad_extract_file(FIX "sample.pdf", "s.pdf", out, msg, 256);
    setenv("PATH", saved, 1);
    ad_free(saved);
    unlink(prog);
    rmdir(dir);
    return r;
}

static void pdf_child_output_and_failures(void **state)
{
    (void)state;
    ad_buf out;
    char msg[256];
    /* CRLF, repeated form feeds, invalid UTF-8 and NUL in the output. */
    assert_int_equal(fake_pdftotext("#!/bin/sh\nprintf 'p1\\r\\nline\\f\\fp2 \\377 x\\000y\\f'\n",
                                    4096, &out, msg),
                     AD_EXTRACT_OK);
    assert_string_equal(ad_buf_str(&out), "p1\nline\n\np2 \xef\xbf\xbd xy");
    ad_buf_free(&out);
    /* The exact argument vector; stdin is /dev/null, stderr is discarded. */
    assert_int_equal(
        fake_pdftotext("#!/bin/sh\ncat; echo noise >&2; printf '%s|' \"$@\"\n", 4096, &out, msg),
        AD_EXTRACT_OK);
    assert_string_equal(ad_buf_str(&out), "-q|-enc|UTF-8|-eol|unix|" FIX "sample.pdf|-|");
    ad_buf_free(&out);
    /* A failing reader: invalid, whatever it printed. */
    assert_int_equal(fake_pdftotext("#!/bin/sh\necho partial; exit 3\n", 4096, &out, msg),
                     AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "damaged or encrypted"));
    assert_int_equal(out.len, 0);
    ad_buf_free(&out);
    /* Endless output: cut off at the bound, the child killed and reaped. */
    assert_int_equal(
        fake_pdftotext("#!/bin/sh\nexec /usr/bin/yes aaaaaaaaaaaaaaaa\n", 100000, &out, msg),
        AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "more text than file_search can index"));
    assert_int_equal(out.len, 0);
    ad_buf_free(&out);
    /* Killed by a signal. */
    assert_int_equal(fake_pdftotext("#!/bin/sh\necho x; kill -9 $$\n", 4096, &out, msg),
                     AD_EXTRACT_INVALID);
    ad_buf_free(&out);
}

/* ---- dispatch ------------------------------------------------------------------ */

static void unsupported_types(void **state)
{
    (void)state;
    expect_fail("image.png", NULL, AD_EXTRACT_UNSUPPORTED, "The file type .png is not supported");
    expect_fail("blob", "setup.EXE", AD_EXTRACT_UNSUPPORTED, ".EXE is not supported");
    expect_fail("report.docx", "archive.zip", AD_EXTRACT_UNSUPPORTED, ".zip");
    expect_fail("report.docx", "old.doc", AD_EXTRACT_UNSUPPORTED, ".docx");
    expect_fail("README", "weird.a\x01b", AD_EXTRACT_UNSUPPORTED, "This file type");
    assert_true(ad_extract_supported("A.PDF"));
    assert_true(ad_extract_supported("dir.v2/notes.Docx"));
    assert_true(ad_extract_supported("slides.pptx"));
    assert_true(ad_extract_supported("main.rs"));
    assert_true(ad_extract_supported("Makefile")); /* no extension: sniffed */
    assert_false(ad_extract_supported("photo.jpeg"));
    assert_false(ad_extract_supported("x.exe"));
    assert_true(ad_extract_supported("v1.2/data")); /* dot in the directory: no extension */
    assert_false(ad_extract_supported("book.xlsx"));
}

static void sniffing_without_extension(void **state)
{
    (void)state;
    expect_text("README", "No extension here, but plain text.\n");
    expect_text("page_noext", "Sniffed HTML");
    expect_text("report_noext", REPORT_TEXT);
    expect_text("sample_noext", "Sniffed PDF text.\n\n");
    expect_fail("blob", NULL, AD_EXTRACT_UNSUPPORTED, "no extension");
    expect_fail("no_document.docx", "noext", AD_EXTRACT_UNSUPPORTED, "no extension");
    expect_fail("invalid_utf8.txt", "noext", AD_EXTRACT_UNSUPPORTED, "no extension");
    /* Sniffed text over the bound is "too much text", not "unsupported". */
    ad_buf out;
    char msg[256];
    ad_buf_init(&out, 10);
    assert_int_equal(ad_extract_file(FIX "README", "README", &out, msg, sizeof msg),
                     AD_EXTRACT_INVALID);
    assert_non_null(strstr(msg, "more text"));
    ad_buf_free(&out);
}

static void output_is_appended_bounded_and_undone(void **state)
{
    (void)state;
    char msg[256];
    ad_buf out;
    /* Appends after what is there. */
    ad_buf_init(&out, 1 << 20);
    ad_buf_addstr(&out, "PREFIX|");
    assert_int_equal(ad_extract_file(FIX "table.csv", "table.csv", &out, msg, sizeof msg),
                     AD_EXTRACT_OK);
    assert_string_equal(ad_buf_str(&out), "PREFIX|name,qty\napple,3\npear,5\n");
    /* A failure leaves it as it was. */
    assert_int_equal(ad_extract_file(FIX "malformed.docx", "m.docx", &out, msg, sizeof msg),
                     AD_EXTRACT_INVALID);
    assert_string_equal(ad_buf_str(&out), "PREFIX|name,qty\napple,3\npear,5\n");
    ad_buf_free(&out);

    /* Too much text for the bound: invalid, with the limit in the message. */
    const char *kinds[] = {"report.docx", "page.html", "bom_crlf.txt", "deck.pptx", "sample.pdf"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", kinds[i]);
        ad_buf_init(&out, 20);
        ad_buf_addstr(&out, "keep");
        assert_int_equal(ad_extract_file(path, kinds[i], &out, msg, sizeof msg),
                         AD_EXTRACT_INVALID);
        assert_non_null(strstr(msg, "more text than file_search can index (limit 20 bytes)"));
        assert_string_equal(ad_buf_str(&out), "keep");
        ad_buf_free(&out);
    }

    /* A small msg buffer is truncated, never overrun; NULL msg is allowed. */
    ad_buf_init(&out, 100);
    char tiny[8];
    assert_int_equal(ad_extract_mem("x", 1, "a.exe", &out, tiny, sizeof tiny),
                     AD_EXTRACT_UNSUPPORTED);
    assert_string_equal(tiny, "The fil");
    assert_int_equal(ad_extract_mem("x", 1, "a.exe", &out, NULL, 0), AD_EXTRACT_UNSUPPORTED);
    assert_int_equal(ad_extract_mem(NULL, 0, "a.txt", &out, NULL, 0), AD_EXTRACT_INVALID);
    ad_buf_free(&out);
}

static void missing_file_is_ioerr(void **state)
{
    (void)state;
    expect_fail("does-not-exist.txt", NULL, AD_EXTRACT_IOERR, "could not be read");
    expect_fail("", "dir.txt", AD_EXTRACT_IOERR, "could not be read"); /* a directory */
}

static void mem_matches_file(void **state)
{
    (void)state;
    const char *names[] = {"report.docx",  "deck.pptx",    "page.html", "utf16be.txt",
                           "bom_crlf.txt", "report_noext", "README"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n;
        char *p = slurp(names[i], &n);
        char msg[256], path[256];
        ad_buf a, b;
        ad_buf_init(&a, 1 << 20);
        ad_buf_init(&b, 1 << 20);
        snprintf(path, sizeof path, FIX "%s", names[i]);
        assert_int_equal(ad_extract_mem(p, n, names[i], &a, msg, sizeof msg), AD_EXTRACT_OK);
        assert_int_equal(ad_extract_file(path, names[i], &b, msg, sizeof msg), AD_EXTRACT_OK);
        assert_string_equal(ad_buf_str(&a), ad_buf_str(&b));
        ad_buf_free(&a);
        ad_buf_free(&b);
        ad_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_bom_and_line_ends),
        cmocka_unit_test(text_utf16_both_orders),
        cmocka_unit_test(text_rejects_bad_encodings),
        cmocka_unit_test(empty_files_have_no_text),
        cmocka_unit_test(html_page),
        cmocka_unit_test(html_edge_cases),
        cmocka_unit_test(html_utf16_and_invalid),
        cmocka_unit_test(docx_paragraphs),
        cmocka_unit_test(pptx_slides_in_numeric_order),
        cmocka_unit_test(zip_damage_is_invalid),
        cmocka_unit_test(zip_bomb_guard),
        cmocka_unit_test(zip_entry_count_limit),
        cmocka_unit_test(pdf_via_pdftotext),
        cmocka_unit_test(pdf_needs_a_file_and_pdftotext),
        cmocka_unit_test(pdf_child_output_and_failures),
        cmocka_unit_test(unsupported_types),
        cmocka_unit_test(sniffing_without_extension),
        cmocka_unit_test(output_is_appended_bounded_and_undone),
        cmocka_unit_test(missing_file_is_ioerr),
        cmocka_unit_test(mem_matches_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
