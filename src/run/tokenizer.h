/*
 * tokenizer.h -- exact token counts for OpenAI's cl100k_base and o200k_base.
 *
 * Runs enforce max_prompt_tokens, truncation_strategy and the model's context
 * window, so they need the number of tokens the model will actually see. This
 * is a byte-pair-encoding tokenizer that reproduces tiktoken's encode_ordinary
 * (no special tokens are recognised: "<|endoftext|>" in a message is counted
 * as ordinary text: user content can never inject a special token):
 *
 *   1. a pre-tokenizer regex (PCRE2, UTF + Unicode properties, JIT) splits the
 *      text into pieces -- words with their leading space, runs of up to three
 *      digits, punctuation runs, whitespace runs, English contractions;
 *   2. a piece seen recently is looked up in a bounded cache of pieces and
 *      their ids (natural text repeats its words; see tokenizer.c);
 *   3. a piece that is itself a token is one token; otherwise its bytes are
 *      merged pairwise, always the adjacent pair whose concatenation has the
 *      lowest rank (leftmost on ties), until no adjacent pair is a token. Short
 *      pieces use a linear scan, long ones (a base64 blob is a single piece) a
 *      min-heap, so the merge is O(n log n) and never quadratic.
 *
 * Data: share/tokenizer/<name>.bpe, committed (0.7 MB + 1.6 MB), generated
 * from the npm package `tiktoken` by scripts/tokenizer-data.sh, which also
 * checks that the committed files are its output. Each file holds the
 * encoding's rank table (token bytes in rank order) and its regex pattern,
 * both data as published by OpenAI. At run time the server passes the
 * directory (AD_TOKENIZER_DEFAULT_DIR, relative to the working directory,
 * unless configured otherwise) and the encoding name.
 *
 * Fidelity: ids equal tiktoken's for valid UTF-8 (checked against the npm
 * package's WASM build of tiktoken's Rust core, see the unit test). The
 * patterns are written for Rust's regex, whose \s is Unicode White_Space;
 * PCRE2's \s also takes U+180E, so the loader spells \s out as that set. The
 * one known gap: PCRE2 10.42 has Unicode 14 tables, tiktoken's Rust regex
 * Unicode 16, so characters assigned since (e.g. U+0897, Egyptian hieroglyphs
 * extended-A) may split differently around them.
 * Invalid UTF-8 (which tiktoken cannot take) is defined here: each maximal
 * invalid byte run is a piece of its own between the valid runs around it.
 *
 * Ownership and threads: ad_tokenizer_load returns an object owned by the
 * caller and released with ad_tokenizer_free. It is immutable after load
 * but for its piece cache, which threads share without a lock (a seqlock of
 * atomic words per entry, tokenizer.c); every other function takes it const
 * and may be called from any number of threads at once (each call uses its
 * own scratch memory).
 */
#ifndef AD_TOKENIZER_H
#define AD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ad_tokenizer ad_tokenizer;

/* Where the committed rank tables live, relative to the repository root. */
#define AD_TOKENIZER_DEFAULT_DIR "share/tokenizer"

/*
 * Loads encoding `name` ("o200k_base" | "cl100k_base"). `path` is either a
 * directory holding <name>.bpe, or the .bpe file itself (then `name` may be
 * NULL, and if given must match the file's). On success *out owns the new
 * tokenizer. Errors: AD_EINVAL (bad name, malformed or inconsistent file),
 * AD_ENOTFOUND (no such file), AD_EIO (read error), AD_ETOOBIG (file over
 * 16 MB, or path too long). A pattern that does not compile is AD_EINVAL.
 */
ad_err ad_tokenizer_load(const char *path, const char *name, ad_tokenizer **out);
/* Frees t (NULL is fine). No other thread may be using it. */
void ad_tokenizer_free(ad_tokenizer *t);
/* Turns the piece cache (see above) on (the default after load) or off, for
 * benchmarks and tests; results are the same either way. Call it before t is
 * shared: it is the one function that may not run concurrently with others. */
void ad_tokenizer_set_cache(ad_tokenizer *t, bool on);

/* The encoding's name, e.g. "o200k_base"; owned by t. */
const char *ad_tokenizer_name(const ad_tokenizer *t);
/* Number of ordinary tokens (ranks 0..n-1). */
size_t ad_tokenizer_vocab_size(const ad_tokenizer *t);
/* Heap bytes held by t (file, hash table, regex, JIT code, the 4 MB piece
 * cache, whose pages are touched only as it fills): ~7.4 MB for
 * cl100k_base, ~10.5 MB for o200k_base. Loading takes ~10-30 ms. */
size_t ad_tokenizer_memory(const ad_tokenizer *t);

/* Byte length of token `id` (1..255), 0 for an id outside the vocabulary.
 * The bytes of an encoding's ids, concatenated, are exactly the text encoded,
 * so summing these maps token positions to byte offsets (ingest/chunk.c). */
size_t ad_tokenizer_token_bytes(const ad_tokenizer *t, uint32_t id);

/* Number of tokens of text[0..len) (UTF-8; text may be NULL when len is 0). */
size_t ad_tokenizer_count(const ad_tokenizer *t, const char *text, size_t len);

/*
 * Encodes text[0..len) into ids[0..cap) (ids may be NULL when cap is 0) and
 * returns the total number of tokens, like snprintf: when it exceeds cap, only
 * the first cap ids were stored.
 */
size_t ad_tokenizer_encode(const ad_tokenizer *t, const char *text, size_t len, uint32_t *ids,
                           size_t cap);

/*
 * Chat-format overhead, as OpenAI documents for counting a messages array
 * (the cookbook's num_tokens_from_messages, for gpt-3.5-turbo-0613 and every
 * later chat model): each message costs 3 tokens of framing, a message with
 * a "name" one more, and the reply is primed with 3. So a prompt of messages
 * m_1..m_k costs
 *
 *     ad_tokenizer_chat_overhead(k, number of m_i with a name)
 *       + sum over i of count(role_i) + count(content_i) + count(name_i)
 *
 * where content_i is the text the upstream model sees for that message (for
 * array content, the sum over its text parts). Tools, images and the system
 * prompt built from instructions are messages or extra text on top of this.
 */
#define AD_TOKENIZER_TOKENS_PER_MESSAGE 3
#define AD_TOKENIZER_TOKENS_PER_NAME    1
#define AD_TOKENIZER_REPLY_PRIMING      3
size_t ad_tokenizer_chat_overhead(size_t n_messages, size_t n_named);

#endif
