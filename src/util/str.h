/*
 * str.h -- small, safe string helpers used instead of the banned libc calls
 * (atoi, strtok, strcpy, sprintf): strict integer parsing that rejects junk
 * and overflow, UTF-8 checks, and constant-time comparison for secrets.
 */
#ifndef AD_STR_H
#define AD_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a whole decimal integer (optional leading '-'); false on junk,
 * empty input or overflow. */
bool ad_parse_i64(const char *s, int64_t *out);
/* Like ad_parse_i64 for a counted (not NUL-terminated) string. */
bool ad_parse_i64n(const char *s, size_t n, int64_t *out);
/* Parses a size with an optional K/M/G suffix (powers of 1024). */
bool ad_parse_size(const char *s, uint64_t *out);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool ad_utf8_valid(const char *s, size_t n);
/* Writes code point cp as UTF-8 to out and returns its length (1-4); a
 * surrogate or a value over U+10FFFF is written as U+FFFD. U+0000 is one
 * NUL byte (callers that must not produce one map it first). */
size_t ad_utf8_put(uint32_t cp, char out[4]);
/* Number of code points in well-formed UTF-8 s[0..n). */
size_t ad_utf8_count(const char *s, size_t n);

/* Compares two byte strings in time that depends only on their lengths. */
bool ad_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Copies at most dstsize-1 bytes and always terminates (dstsize > 0).
 * Returns strlen(src) so that truncation can be detected. */
size_t ad_strlcpy(char *dst, const char *src, size_t dstsize);

bool ad_str_has_prefix(const char *s, const char *prefix);

#endif
