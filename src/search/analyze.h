/*
 * analyze.h -- the keyword analyzer: text -> index terms, for both the
 * chunks (search/kwindex.c builds segments with it) and the queries.
 *
 * Words are cut the way SQLite FTS5's unicode61 tokenizer (with
 * remove_diacritics) wrapped in its porter tokenizer cut them, which is what
 * assistd indexed with before it had an index of its own:
 *   - a token is a run of word characters: ASCII letters and digits, and
 *     non-ASCII characters other than the punctuation, space and symbol
 *     blocks (general punctuation, Latin-1 signs, arrows, box drawing,
 *     emoji, ...); everything else separates tokens;
 *   - ASCII is case-folded; Latin-1 and Latin Extended-A letters are folded
 *     to their base letter (e -> e for e-acute, and so on) and lower case;
 *     Greek and Cyrillic capitals are lower-cased; combining diacritical
 *     marks (U+0300..U+036F) are dropped from inside a token;
 *   - a token of 3..64 bytes is then reduced by the Porter stemmer
 *     (M.F. Porter, "An algorithm for suffix stripping", 1980).
 * Invalid UTF-8 bytes separate tokens. Tokens longer than AD_TERM_MAX bytes
 * are cut there (on a character boundary).
 *
 * Ownership: nothing is allocated; terms are passed to the callback in a
 * buffer of the analyzer valid for the duration of the call.
 */
#ifndef AD_ANALYZE_H
#define AD_ANALYZE_H

#include <stddef.h>

#define AD_TERM_MAX 128 /* bytes of a term (longer tokens are cut) */

/* Called once per token: term[0..tlen) its index form, text[start..end) the
 * bytes it came from (its surface form). */
typedef void (*ad_token_fn)(void *ud, const char *term, size_t tlen, size_t start, size_t end);

/* Analyzes text[0..len); returns the number of tokens. */
size_t ad_analyze(const char *text, size_t len, ad_token_fn fn, void *ud);

/* The same tokens in their folded form before stemming: ad_porter_stem of
 * a copy of term[0..tlen) is the term ad_analyze hands over (stemming
 * never writes past tlen). For callers that stem each distinct word once
 * (search/kwindex.c's segment builder). */
size_t ad_analyze_folded(const char *text, size_t len, ad_token_fn fn, void *ud);

/* Porter-stems w[0..n) in place (lower-case ASCII letters are stemmed, any
 * other byte counts as a consonant); returns the new length. Words under 3
 * or over 64 bytes are left as they are. */
size_t ad_porter_stem(char *w, size_t n);

#endif
