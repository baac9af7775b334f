/*
 * extract.h -- the plain text of an uploaded file, for file_search.
 *
 * file_search indexes text, so every file attached to a vector store is first
 * turned into UTF-8 plain text whose paragraphs are separated by a blank line
 * ("\n\n"); ingest/chunk.h then cuts that text into overlapping chunks.
 *
 * Formats, chosen by the extension of the file's original name (compared
 * case-insensitively):
 *
 *   text     .c .cc .cpp .cxx .h .hh .hpp .cs .css .go .java .js .mjs .cjs
 *            .jsx .ts .tsx .json .jsonl .md .markdown .php .py .rb .sh .bash
 *            .tex .txt .csv .tsv .xml .yaml .yml .rst .log .rs .sql .toml
 *            .ini .kt .swift .scala .lua .pl .r
 *            (OpenAI's list for .c .cpp .cs .css .go .java .js .json .md .php
 *            .py .rb .sh .tex .ts .txt; the rest are the same kind of file).
 *            UTF-8, with a byte-order mark stripped, or UTF-16 LE/BE with a
 *            BOM (converted). CRLF and lone CR become LF. Invalid UTF-8, an
 *            unpaired UTF-16 surrogate or a NUL byte make the file
 *            AD_EXTRACT_INVALID (strict: no guessing of legacy code pages).
 *   html     .html .htm .xhtml: same decoding, then tags dropped; the contents
 *            of <script> <style> <head> <template> <noscript> <svg> <iframe>
 *            <object> and comments dropped; entities decoded (the common named ones, &#N; &#xN;);
 *            block elements become paragraph or line breaks; whitespace
 *            collapsed except inside <pre>.
 *   docx     word/document.xml: w:p paragraphs of w:t text, w:tab, w:br.
 *   pptx     ppt/slides/slideN.xml in numeric N order: a:p paragraphs of a:t
 *            text, a:br; one paragraph break between slides.
 *            Both read with an own zip reader (stored and deflated entries,
 *            CRC-checked; no zip64, no encryption) under hard limits: at most
 *            AD_EXTRACT_ZIP_MAX_ENTRIES entries, an entry inflating to at most
 *            AD_EXTRACT_ZIP_MAX_ENTRY bytes and never to more than it declares,
 *            at most AD_EXTRACT_ZIP_MAX_TOTAL inflated per file, and a ratio
 *            guard (an entry over 1 MB may not inflate more than
 *            AD_EXTRACT_ZIP_MAX_RATIO times its compressed size): zip bombs
 *            are AD_EXTRACT_INVALID.
 *   pdf      .pdf: `pdftotext -q -enc UTF-8 -eol unix FILE -` (found in PATH,
 *            spawned without a shell, killed after AD_EXTRACT_PDF_TIMEOUT_S
 *            seconds or when its output passes out's maximum). Page breaks
 *            (form feeds) become paragraph breaks; invalid UTF-8 in its output
 *            is replaced by U+FFFD. Only ad_extract_file reads PDF.
 *
 * A name without an extension is sniffed: "%PDF-" is PDF, a zip holding
 * word/document.xml or ppt/slides/ is DOCX or PPTX, markup starting with
 * <!DOCTYPE html or <html is HTML, and anything else is tried as text.
 * Every other extension (.doc, images, archives, executables, ...) is
 * AD_EXTRACT_UNSUPPORTED.
 *
 * Empty results: a file that yields no text except whitespace (an empty file,
 * a scanned PDF, a DOCX without text) is AD_EXTRACT_INVALID with the message
 * "No text could be extracted from the file." -- file_search can do nothing
 * with it, and OpenAI marks such files failed too.
 *
 * On failure the text appended so far is removed again: `out` is left as the
 * caller passed it. Every function is reentrant and thread-safe (no shared
 * state); ad_extract_file may run a child process.
 *
 * Ownership: `out` and `msg` belong to the caller; nothing returned needs
 * freeing.
 */
#ifndef AD_EXTRACT_H
#define AD_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define AD_EXTRACT_ZIP_MAX_ENTRIES 10000
#define AD_EXTRACT_ZIP_MAX_ENTRY   (64u << 20)
#define AD_EXTRACT_ZIP_MAX_TOTAL   (256u << 20)
#define AD_EXTRACT_ZIP_MAX_RATIO   200
#define AD_EXTRACT_PDF_TIMEOUT_S   60

typedef enum {
    AD_EXTRACT_OK = 0,
    AD_EXTRACT_UNSUPPORTED, /* a file type file_search does not read -> last_error.code
                               "unsupported_file" */
    AD_EXTRACT_INVALID,     /* a supported type but broken/unreadable -> "invalid_file" */
    AD_EXTRACT_IOERR        /* could not read the file from disk (server problem) */
} ad_extract_result;

/* Extracts the plain text of the file at `path` whose original name is `filename`
 * (its extension selects the format; content is sniffed where the extension is
 * missing or generic). Appends UTF-8 text to `out` (bounded by out's maximum;
 * too much text is AD_EXTRACT_INVALID with a message). Paragraphs are separated
 * by a blank line ("\n\n"). On failure writes a one-sentence, user-facing reason
 * into msg (e.g. "The file type .exe is not supported for file_search."). */
ad_extract_result ad_extract_file(const char *path, const char *filename, ad_buf *out, char *msg,
                                  size_t msgsize);
/* The same for bytes already in memory; PDF is not available here (it needs a
 * file for pdftotext), everything else is. Used by the fuzz target. */
ad_extract_result ad_extract_mem(const char *data, size_t len, const char *filename, ad_buf *out,
                                 char *msg, size_t msgsize);
/* Whether the extension of filename is one file_search accepts at all
 * (true for a name without an extension: its content is sniffed). */
bool ad_extract_supported(const char *filename);

#endif
