/*
 * chunk.h -- cutting extracted text into overlapping token-bounded chunks,
 * as OpenAI's file_search does (chunking_strategy auto = 800 tokens with 400
 * overlap; static: max_chunk_size_tokens 100..4096, chunk_overlap_tokens at
 * most half of it -- the API layer validates those numbers).
 *
 * The text is encoded once; the byte length of every token maps token
 * positions to byte offsets, so a chunk's window is found by binary search
 * instead of re-counting. Inside the window the end is put at the best
 * boundary in its last part (paragraph end > line end > sentence end > word
 * boundary > any UTF-8 character boundary), and the next chunk starts about
 * overlap_tokens earlier, snapped the same way. Each chunk's token count is
 * then the exact count of its own bytes (a substring can tokenize slightly
 * differently from the same bytes inside the whole text: a chunk's middle is
 * read off the whole text's tokens, only a word or so at each end is
 * tokenized again, see chunk.c); a chunk over the maximum is shrunk until it
 * fits. Cost: about one encode of the text -- a 1 MB text takes ~30 ms.
 *
 * Ownership: the tokenizer and text are borrowed; *out is allocated with
 * ad_malloc and freed by the caller with ad_free (NULL when *n is 0).
 */
#ifndef AD_CHUNK_H
#define AD_CHUNK_H

#include <stddef.h>

#include "run/tokenizer.h"
#include "util/err.h"

/* OpenAI's limit of tokens per file_search file: a longer text is refused
 * (AD_ETOOBIG) after one encoding pass into an array of at most this many
 * (+1) tokens. */
#define AD_CHUNK_MAX_TOKENS 5000000u

typedef struct ad_chunk {
    size_t start,
        end;       /* byte range [start, end) of the text; always on UTF-8 character boundaries */
    size_t tokens; /* token count of text[start..end) */
} ad_chunk;

/* Splits text into chunks of at most max_tokens tokens, consecutive chunks
 * overlapping by about overlap_tokens tokens (as OpenAI's file_search: auto =
 * 800/400; static: max 100..4096, overlap <= max/2 -- callers validate).
 * Boundaries prefer, in order: a paragraph end (blank line), a line end, a
 * sentence end (. ! ? followed by space), a word boundary (whitespace), and
 * only then any character boundary; a chunk never exceeds max_tokens. Empty or
 * whitespace-only text gives zero chunks. On success *out (ad_malloc'd array,
 * caller frees with ad_free) holds *n chunks in order. Deterministic.
 * Errors: AD_EINVAL when max_tokens is 0, overlap_tokens > max_tokens / 2, or
 * tok/out/n is NULL (or text is NULL with len > 0); AD_ETOOBIG when the text
 * has more than AD_CHUNK_MAX_TOKENS tokens. Memory: 2 bytes per byte of text
 * (at most 20 MB) plus the chunk array. Chunk ranges start at a
 * non-whitespace character; the first starts at the text's first one and the
 * last ends at len (unless the text ends in more whitespace than fits in a
 * chunk), so together they cover all of the text but its leading whitespace.
 * The one case a chunk can exceed max_tokens: a max_tokens below 4, with a
 * single character that alone takes more tokens (it gets a chunk of its own).
 * Text that is not valid UTF-8 is chunked too; boundaries then avoid
 * splitting its valid characters. */
ad_err ad_chunk_text(const ad_tokenizer *tok, const char *text, size_t len, size_t max_tokens,
                     size_t overlap_tokens, ad_chunk **out, size_t *n);

#endif
