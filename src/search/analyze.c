/*
 * analyze.c -- tokenizer, case/diacritic folding and Porter stemmer (see
 * analyze.h).
 *
 * Design. One pass over the bytes: each UTF-8 character is decoded, classed
 * (word character, dropped diacritic, or separator) and folded, and the
 * folded bytes of a token are collected in a fixed buffer; at a separator
 * the token is stemmed and handed to the callback. Nothing is allocated, so
 * the analyzer costs a few tens of nanoseconds a byte and can run on the
 * ingest workers, outside the store's writer lock.
 *
 * Runs of ASCII letters and digits (most of most text) are copied and
 * lower-cased in a tight loop; only other bytes go through decode/fold.
 *
 * Folding tables cover what real text needs (Latin-1, Latin Extended-A,
 * Greek and Cyrillic capitals); other scripts keep their characters as
 * they are, as one word each run.
 *
 * Stemmer. Written from Porter's 1980 description: a word is
 * [C](VC)^m[V], where C and V are runs of consonants and vowels (y is a
 * vowel after a consonant), and the five steps strip or rewrite suffixes
 * under conditions on m of the remaining stem. Within a step the longest
 * matching suffix of the step's list is the only one considered. Two
 * refinements Porter published later with his reference version are
 * applied, as SQLite's porter tokenizer applies them (so terms stay those
 * assistd indexed before): step 2 rewrites -bli to -ble (instead of -abli
 * to -able) and -logi to -log. Suffix tests know the suffixes' lengths
 * and compare the last byte before anything else (most words fail there),
 * since stemming is where most of the analyser's time went.
 */
#include "search/analyze.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- Porter */

static bool is_cons(const char *b, size_t i)
{
    switch (b[i]) {
    case 'a':
    case 'e':
    case 'i':
    case 'o':
    case 'u':
        return false;
    case 'y':
        return i == 0 || !is_cons(b, i - 1);
    default:
        return true;
    }
}

/* m of b[0..n): the number of VC sequences. */
static int measure(const char *b, size_t n)
{
    int m = 0;
    size_t i = 0;
    while (i < n && is_cons(b, i))
        i++;
    for (;;) {
        while (i < n && !is_cons(b, i))
            i++;
        if (i >= n)
            return m;
        while (i < n && is_cons(b, i))
            i++;
        m++;
    }
}

static bool has_vowel(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_cons(b, i))
            return true;
    return false;
}

/* *d: ends with a double consonant */
static bool double_cons(const char *b, size_t n)
{
    return n >= 2 && b[n - 1] == b[n - 2] && is_cons(b, n - 1);
}

/* *o: ends consonant-vowel-consonant, the last not w, x or y */
static bool cvc(const char *b, size_t n)
{
    return n >= 3 && is_cons(b, n - 3) && !is_cons(b, n - 2) && is_cons(b, n - 1) &&
           b[n - 1] != 'w' && b[n - 1] != 'x' && b[n - 1] != 'y';
}

/* Whether b[0..n) ends with suf[0..k) (*stem: n - k). The last byte is
 * tested first: most words fail there, without a call. */
static inline bool ends_n(const char *b, size_t n, const char *suf, size_t k, size_t *stem)
{
    if (k > n || b[n - 1] != suf[k - 1] || memcmp(b + n - k, suf, k - 1) != 0)
        return false;
    *stem = n - k;
    return true;
}

/* suf: a string literal */
#define ENDS(b, n, suf, stem) ends_n(b, n, suf, sizeof(suf) - 1, stem)

typedef struct rule {
    const char *suf, *rep;
    unsigned char sl, rl; /* their lengths */
    bool ion;             /* the stem must end in s or t */
} rule;

#define R(s, r)                                                                                    \
    {                                                                                              \
        s, r, sizeof(s) - 1, sizeof(r) - 1, false                                                  \
    }

/* The first rule whose suffix ends the word decides: its replacement is
 * made when the stem's m exceeds min_m (and, for "ion", the stem ends in s
 * or t). */
static size_t apply_rules(char *b, size_t n, const rule *r, size_t nr, int min_m)
{
    char last = b[n - 1];
    for (size_t i = 0; i < nr; i++) {
        size_t stem;
        if (r[i].suf[r[i].sl - 1] != last || !ends_n(b, n, r[i].suf, r[i].sl, &stem))
            continue;
        if (r[i].ion && (stem == 0 || (b[stem - 1] != 's' && b[stem - 1] != 't')))
            return n;
        if (measure(b, stem) <= min_m)
            return n;
        memcpy(b + stem, r[i].rep, r[i].rl);
        return stem + r[i].rl;
    }
    return n;
}

static const rule step2[] = {
    R("ational", "ate"), R("tional", "tion"), R("enci", "ence"),   R("anci", "ance"),
    R("izer", "ize"),    R("bli", "ble"),     R("alli", "al"),     R("entli", "ent"),
    R("eli", "e"),       R("ousli", "ous"),   R("ization", "ize"), R("ation", "ate"),
    R("ator", "ate"),    R("alism", "al"),    R("iveness", "ive"), R("fulness", "ful"),
    R("ousness", "ous"), R("aliti", "al"),    R("iviti", "ive"),   R("biliti", "ble"),
    R("logi", "log"),
};

static const rule step3[] = {
    R("icate", "ic"), R("ative", ""), R("alize", "al"), R("iciti", "ic"),
    R("ical", "ic"),  R("ful", ""),   R("ness", ""),
};

static const rule step4[] = {
    R("al", ""),    R("ance", ""), R("ence", ""), R("er", ""),
    R("ic", ""),    R("able", ""), R("ible", ""), R("ant", ""),
    R("ement", ""), R("ment", ""), R("ent", ""),  {"ion", "", 3, 0, true},
    R("ou", ""),    R("ism", ""),  R("ate", ""),  R("iti", ""),
    R("ous", ""),   R("ive", ""),  R("ize", ""),
};

#define NRULES(a) (sizeof(a) / sizeof(a[0]))

size_t ad_porter_stem(char *b, size_t n)
{
    if (n < 3 || n > 64)
        return n;
    size_t s;
    /* Step 1a: plurals. */
    if (ENDS(b, n, "sses", &s) || ENDS(b, n, "ies", &s))
        n -= 2;
    else if (!ENDS(b, n, "ss", &s) && ENDS(b, n, "s", &s))
        n -= 1;
    /* Step 1b: -eed, -ed, -ing. */
    bool again = false;
    if (ENDS(b, n, "eed", &s)) {
        if (measure(b, s) > 0)
            n -= 1;
    } else if ((ENDS(b, n, "ed", &s) || ENDS(b, n, "ing", &s)) && has_vowel(b, s)) {
        n = s;
        again = true;
    }
    if (again) {
        if (ENDS(b, n, "at", &s) || ENDS(b, n, "bl", &s) || ENDS(b, n, "iz", &s))
            b[n++] = 'e';
        else if (double_cons(b, n) && b[n - 1] != 'l' && b[n - 1] != 's' && b[n - 1] != 'z')
            n -= 1;
        else if (measure(b, n) == 1 && cvc(b, n))
            b[n++] = 'e';
    }
    /* Step 1c: y -> i after a vowel somewhere in the stem. */
    if (ENDS(b, n, "y", &s) && has_vowel(b, s))
        b[n - 1] = 'i';
    n = apply_rules(b, n, step2, NRULES(step2), 0);
    n = apply_rules(b, n, step3, NRULES(step3), 0);
    n = apply_rules(b, n, step4, NRULES(step4), 1);
    /* Step 5a: a final e. */
    if (ENDS(b, n, "e", &s)) {
        int m = measure(b, s);
        if (m > 1 || (m == 1 && !cvc(b, s)))
            n = s;
    }
    /* Step 5b: -ll with m > 1. */
    if (measure(b, n) > 1 && double_cons(b, n) && b[n - 1] == 'l')
        n -= 1;
    return n;
}

/* ---------------------------------------------------------------- folding */

/* Latin-1 U+00C0..U+00FF and Latin Extended-A U+0100..U+017F: the base
 * letter, or '.' when the character has none (kept, lower-cased). */
static const char latin1[] = "aaaaaa.ceeeeiiii.nooooo..uuuuy..aaaaaa.ceeeeiiii.nooooo..uuuuy.y";
static const char latin_a[] = "aaaaaaccccccccdd..eeeeeeeeeegggggggghh..iiiiiiii"
                              "i...jjkk.llllll....nnnnnn...oooooo..rrrrrrssssss"
                              "sstttt..uuuuuuuuuuuuwwyyyzzzzzz.";

enum { SEP, DROP, WORD };

/* Classes and folds code point c (*out: the folded code point). */
static int fold(uint32_t c, uint32_t *out)
{
    *out = c;
    if (c < 0x80) {
        if (c >= 'A' && c <= 'Z') {
            *out = c + 32;
            return WORD;
        }
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? WORD : SEP;
    }
    if (c == 0xB5) { /* micro sign: folded to Greek mu, as Unicode case folding does */
        *out = 0x3BC;
        return WORD;
    }
    if (c < 0xC0) /* Latin-1 signs; ordinal indicators, micro and fractions are words */
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
                       (c >= 0xBC && c <= 0xBE)
                   ? WORD
                   : SEP;
    if (c == 0xD7 || c == 0xF7)
        return SEP;
    if (c < 0x100) {
        char base = latin1[c - 0xC0];
        *out = base != '.' ? (uint32_t)base : (c <= 0xDE ? c + 32 : c);
        return WORD;
    }
    if (c < 0x180) {
        char base = latin_a[c - 0x100];
        if (base != '.') {
            *out = (uint32_t)base;
        } else if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) {
            *out = c | 1; /* even: capital, odd: small */
        } else if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) {
            *out = (c & 1) ? c + 1 : c; /* odd: capital */
        }
        return WORD;
    }
    if (c >= 0x300 && c <= 0x36F)
        return DROP;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) {
        *out = c + 32;
        return WORD;
    }
    if (c >= 0x410 && c <= 0x42F) {
        *out = c + 32;
        return WORD;
    }
    if (c >= 0x400 && c <= 0x40F) {
        *out = c + 80;
        return WORD;
    }
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x207A && c <= 0x207E) ||
        (c >= 0x208A && c <= 0x208E) || (c >= 0x20A0 && c <= 0x20CF) ||
        (c >= 0x2100 && c <= 0x214F) || (c >= 0x2190 && c <= 0x2BFF) ||
        (c >= 0x2E00 && c <= 0x2E7F) || (c >= 0x3000 && c <= 0x3004) ||
        (c >= 0x3008 && c <= 0x303F) || (c >= 0xFE30 && c <= 0xFE4F) ||
        (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65) ||
        (c >= 0xFFF0 && c <= 0xFFFF) || c == 0xFEFF || (c >= 0x1F000 && c <= 0x1FAFF))
        return SEP;
    return WORD;
}

/* Decodes one UTF-8 character at p[0..n); *len gets its byte count (1 for
 * an invalid byte, reported as code point 0xFFFD, a separator). */
static uint32_t decode(const unsigned char *p, size_t n, size_t *len)
{
    unsigned char b = p[0];
    *len = 1;
    if (b < 0x80)
        return b;
    size_t k;
    uint32_t c;
    if (b >= 0xC2 && b <= 0xDF) {
        k = 2;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        k = 3;
        c = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        k = 4;
        c = b & 0x07;
    } else {
        return 0xFFFD;
    }
    if (k > n)
        return 0xFFFD;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0xFFFD;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0xFFFD;
    *len = k;
    return c;
}

static size_t encode(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ASCII letters and digits: word characters whatever comes around them
 * (fold's ASCII cases, taken a run at a time). */
static inline bool ascii_word(unsigned char c)
{
    return (unsigned)(c - 'a') < 26u || (unsigned)(c - 'A') < 26u || (unsigned)(c - '0') < 10u;
}

static size_t analyze(const char *text, size_t len, ad_token_fn fn, void *ud, bool stem)
{
    const unsigned char *p = (const unsigned char *)text;
    char term[AD_TERM_MAX + 4];
    size_t tl = 0, start = 0, end = 0, count = 0;
    bool in = false, cut = false;
    for (size_t i = 0; i <= len;) {
        if (i < len && ascii_word(p[i])) { /* a run of ASCII letters and digits */
            if (!in) {
                in = true;
                cut = false;
                tl = 0;
                start = i;
            }
            do {
                if (!cut && tl < AD_TERM_MAX)
                    term[tl++] = (char)((unsigned)(p[i] - 'A') < 26u ? p[i] + 32 : p[i]);
                else
                    cut = true;
                i++;
            } while (i < len && ascii_word(p[i]));
            end = i;
            continue;
        }
        size_t k = 1;
        uint32_t f = 0;
        int cls = SEP;
        if (i < len) {
            uint32_t c = p[i] < 0x80 ? p[i] : decode(p + i, len - i, &k);
            cls = fold(c, &f);
        }
        if (cls == WORD) {
            if (!in) {
                in = true;
                cut = false;
                tl = 0;
                start = i;
            }
            char enc[4];
            size_t el = f < 0x80 ? (enc[0] = (char)f, 1) : encode(f, enc);
            if (!cut && tl + el <= AD_TERM_MAX) {
                memcpy(term + tl, enc, el);
                tl += el;
            } else {
                cut = true; /* keep whole characters, and only a prefix */
            }
            end = i + k;
        } else if (cls == DROP && in) {
            end = i + k;
        } else if (cls == SEP && in) {
            in = false;
            if (stem)
                tl = ad_porter_stem(term, tl);
            fn(ud, term, tl, start, end);
            count++;
        }
        i += k;
    }
    return count;
}

size_t ad_analyze(const char *text, size_t len, ad_token_fn fn, void *ud)
{
    return analyze(text, len, fn, ud, true);
}

size_t ad_analyze_folded(const char *text, size_t len, ad_token_fn fn, void *ud)
{
    return analyze(text, len, fn, ud, false);
}
