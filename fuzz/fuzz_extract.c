/*
 * fuzz_extract.c -- libFuzzer target for src/ingest/extract (and, on what it
 * extracts, src/ingest/chunk). The first input byte picks the file name the
 * rest is extracted as (text, HTML, DOCX, PPTX, no extension, ...), so one
 * corpus drives every format's parser: the text decoders, the HTML scanner,
 * the zip reader with its inflate limits and the XML scanner. Because mutated
 * zip entries rarely survive the CRC check, two more selectors wrap the rest
 * of the input, as is, into a valid stored zip entry (word/document.xml of a
 * .docx, or ppt/slides/slide1.xml of a .pptx) so the XML scanner sees it.
 *
 * Checked: the result is one of the four codes; success appends valid UTF-8
 * holding something besides whitespace and sets no message; failure leaves
 * the output buffer exactly as it was and always explains itself. Successful
 * text is then chunked (64 tokens, overlap 16) and the chunk invariants of
 * chunk.h are asserted. The tokenizer comes from share/tokenizer (run from
 * the repository root, as scripts/run-tests.sh does; AD_TOKENIZER_DIR
 * overrides).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ingest/chunk.h"
#include "ingest/extract.h"
#include "util/alloc.h"
#include "util/str.h"

static ad_tokenizer *tok;

static const char *const names[] = {"a.txt", "b.html", "c.docx", "d.pptx", "e.json", "f.md",
                                    "g.csv", "h.py",   "README", "i.htm",  "j.xml",  "k.pdf",
                                    "l.exe", "m.DOCX", "n.PPTX", "o.tex"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("AD_TOKENIZER_DIR");
    if (ad_tokenizer_load(dir ? dir : AD_TOKENIZER_DEFAULT_DIR, "o200k_base", &tok) != AD_OK) {
        fprintf(stderr, "fuzz_extract: cannot load o200k_base\n");
        abort();
    }
    return 0;
}

static bool only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\n\r\f\v", p[i]))
            return false;
    return true;
}

static void check_chunks(const char *t, size_t len)
{
    ad_chunk *c = NULL;
    size_t n = 0;
    if (ad_chunk_text(tok, t, len, 64, 16, &c, &n) != AD_OK || n == 0)
        abort();
    if (c[n - 1].end != len && !only_space(t + c[n - 1].end, len - c[n - 1].end))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (c[i].start >= c[i].end || c[i].end > len || c[i].tokens > 64)
            abort();
        if (((unsigned char)t[c[i].start] & 0xC0) == 0x80 ||
            (c[i].end < len && ((unsigned char)t[c[i].end] & 0xC0) == 0x80))
            abort(); /* split a character (the text is valid UTF-8) */
        if (i && (c[i].start <= c[i - 1].start || c[i].end <= c[i - 1].end))
            abort();
        if (i && c[i].start > c[i - 1].end &&
            !only_space(t + c[i - 1].end, c[i].start - c[i - 1].end))
            abort(); /* a gap with text in it */
    }
    ad_free(c);
}

static void le16(ad_buf *b, uint32_t v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    ad_buf_add(b, x, 2);
}

static void le32(ad_buf *b, uint32_t v)
{
    le16(b, v & 0xffff);
    le16(b, v >> 16);
}

/* A zip holding one stored entry `entry` with the bytes p[0..n). */
static void zip_one(ad_buf *z, const char *entry, const uint8_t *p, size_t n)
{
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)n), nl = (uint32_t)strlen(entry);
    le32(z, 0x04034b50);
    le16(z, 20);
    le16(z, 0); /* flags */
    le16(z, 0); /* stored */
    le32(z, 0); /* time, date */
    le32(z, crc);
    le32(z, (uint32_t)n);
    le32(z, (uint32_t)n);
    le16(z, nl);
    le16(z, 0);
    ad_buf_add(z, entry, nl);
    ad_buf_add(z, p, n);
    size_t cd = z->len;
    le32(z, 0x02014b50);
    le16(z, 20);
    le16(z, 20);
    le16(z, 0);
    le16(z, 0);
    le32(z, 0);
    le32(z, crc);
    le32(z, (uint32_t)n);
    le32(z, (uint32_t)n);
    le16(z, nl);
    le32(z, 0); /* extra, comment lengths */
    le32(z, 0); /* disk, internal attributes */
    le32(z, 0); /* external attributes */
    le32(z, 0); /* local header offset */
    ad_buf_add(z, entry, nl);
    le32(z, 0x06054b50);
    le32(z, 0);
    le16(z, 1);
    le16(z, 1);
    le32(z, (uint32_t)(z->len - cd - 4 * 2 - 2 * 2));
    le32(z, (uint32_t)cd);
    le16(z, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t nn = sizeof names / sizeof names[0];
    size_t sel = data[0] % (nn + 2);
    const char *name = sel < nn ? names[sel] : NULL;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    ad_buf zip;
    ad_buf_init(&zip, 1 << 22);
    if (sel >= nn) { /* wrap the input into a DOCX or PPTX */
        bool docx = sel == nn;
        name = docx ? "w.docx" : "w.pptx";
        zip_one(&zip, docx ? "word/document.xml" : "ppt/slides/slide1.xml", data + 1, n);
        p = zip.ptr;
        n = zip.len;
    }
    ad_buf out;
    char msg[200];
    ad_buf_init(&out, 1 << 20);
    ad_buf_addstr(&out, "pre");
    ad_extract_result r = ad_extract_mem(p, n, name, &out, msg, sizeof msg);
    switch (r) {
    case AD_EXTRACT_OK:
        if (msg[0] || out.len <= 3 || memcmp(out.ptr, "pre", 3) != 0 ||
            !ad_utf8_valid(out.ptr, out.len) || only_space(out.ptr + 3, out.len - 3))
            abort();
        check_chunks(out.ptr + 3, out.len - 3);
        break;
    case AD_EXTRACT_UNSUPPORTED:
    case AD_EXTRACT_INVALID:
    case AD_EXTRACT_IOERR:
        if (!msg[0] || out.len != 3 || strcmp(ad_buf_str(&out), "pre") != 0)
            abort();
        break;
    default:
        abort();
    }
    ad_buf_free(&out);
    ad_buf_free(&zip);
    return 0;
}
