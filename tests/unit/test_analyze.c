/* test_analyze.c -- the keyword analyzer: Porter stems of known words
 * (Porter's paper and SQLite's porter tokenizer agree on all of them), and
 * tokenizer edge cases checked against what FTS5's unicode61 tokenizer
 * with remove_diacritics produced (punctuation, diacritics, other scripts,
 * long tokens, invalid UTF-8, surface offsets). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jansson.h>

#include "search/analyze.h"

static void check_stem(const char *in, const char *want)
{
    char b[80];
    size_t n = strlen(in);
    memcpy(b, in, n);
    n = ad_porter_stem(b, n);
    b[n] = '\0';
    if (strcmp(b, want) != 0)
        fail_msg("stem(%s) = %s, want %s", in, b, want);
}

static void test_porter(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        /* step 1a */
        {"caresses", "caress"},
        {"ponies", "poni"},
        {"ties", "ti"},
        {"caress", "caress"},
        {"cats", "cat"},
        /* step 1b */
        {"feed", "feed"},
        {"agreed", "agre"},
        {"plastered", "plaster"},
        {"bled", "bled"},
        {"motoring", "motor"},
        {"sing", "sing"},
        {"conflated", "conflat"},
        {"troubled", "troubl"},
        {"sized", "size"},
        {"hopping", "hop"},
        {"tanned", "tan"},
        {"falling", "fall"},
        {"hissing", "hiss"},
        {"fizzed", "fizz"},
        {"failing", "fail"},
        {"filing", "file"},
        /* step 1c */
        {"happy", "happi"},
        {"sky", "sky"},
        /* step 2 */
        {"relational", "relat"},
        {"conditional", "condit"},
        {"rational", "ration"},
        {"valenci", "valenc"},
        {"digitizer", "digit"},
        {"conformabli", "conform"},
        {"radicalli", "radic"},
        {"differentli", "differ"},
        {"vileli", "vile"},
        {"analogousli", "analog"},
        {"vietnamization", "vietnam"},
        {"predication", "predic"},
        {"operator", "oper"},
        {"feudalism", "feudal"},
        {"decisiveness", "decis"},
        {"hopefulness", "hope"},
        {"callousness", "callous"},
        {"formaliti", "formal"},
        {"sensitiviti", "sensit"},
        {"sensibiliti", "sensibl"},
        {"generalization", "gener"},
        {"archaeology", "archaeolog"},
        {"possibly", "possibl"},
        /* step 3 */
        {"triplicate", "triplic"},
        {"formative", "form"},
        {"formalize", "formal"},
        {"electriciti", "electr"},
        {"electrical", "electr"},
        {"hopeful", "hope"},
        {"goodness", "good"},
        /* step 4 */
        {"revival", "reviv"},
        {"allowance", "allow"},
        {"inference", "infer"},
        {"airliner", "airlin"},
        {"gyroscopic", "gyroscop"},
        {"adjustable", "adjust"},
        {"defensible", "defens"},
        {"irritant", "irrit"},
        {"replacement", "replac"},
        {"adjustment", "adjust"},
        {"dependent", "depend"},
        {"adoption", "adopt"},
        {"homologou", "homolog"},
        {"communism", "commun"},
        {"activate", "activ"},
        {"angulariti", "angular"},
        {"homologous", "homolog"},
        {"effective", "effect"},
        {"bowdlerize", "bowdler"},
        /* step 5 */
        {"probate", "probat"},
        {"rate", "rate"},
        {"cease", "ceas"},
        {"controll", "control"},
        {"roll", "roll"},
        /* short and long words are left alone */
        {"is", "is"},
        {"as", "as"},
        {"generalizations", "gener"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        check_stem(pairs[i][0], pairs[i][1]);
    char longw[70];
    memset(longw, 'a', 65);
    memcpy(longw + 65, "ing", 3);
    assert_int_equal(ad_porter_stem(longw, 68), 68);
}

typedef struct toks {
    char out[2048];
    size_t n;
} toks;

static void collect(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    toks *t = ud;
    char line[300];
    snprintf(line, sizeof line, "%.*s@%zu-%zu|", (int)tlen, term, start, end);
    strncat(t->out, line, sizeof t->out - strlen(t->out) - 1);
    t->n++;
}

static void check_tokens(const char *text, size_t len, const char *want, size_t count)
{
    toks t = {.out = ""};
    assert_int_equal(ad_analyze(text, len, collect, &t), count);
    assert_int_equal(t.n, count);
    if (strcmp(t.out, want) != 0)
        fail_msg("analyze(%s) = %s, want %s", text, t.out, want);
}

#define CHECK(s, want, n) check_tokens(s, sizeof(s) - 1, want, n)

static void test_tokens(void **state)
{
    (void)state;
    CHECK("Running dogs, RUN!", "run@0-7|dog@8-12|run@14-17|", 3);
    CHECK("", "", 0);
    CHECK(" ,;-- ", "", 0);
    CHECK("it's x-y a_b", "it@0-2|s@3-4|x@5-6|y@7-8|a@9-10|b@11-12|", 6);
    /* Latin diacritics folded, then stemmed as ASCII */
    CHECK("R\xc3\xa9sum\xc3\xa9 na\xc3\xafve", "resum@0-8|naiv@9-15|", 2);
    CHECK("\xc4\x84\xc4\x8c\xc4\x98", "ac@0-6|", 1); /* A-ogonek C-caron E-ogonek */
    /* letters without a base letter kept (lower case), eszett kept */
    CHECK("\xc3\x86r\xc3\xb8 stra\xc3\x9f"
          "e",
          "\xc3\xa6r\xc3\xb8@0-5|stra\xc3\x9f@6-13|", 2);
    /* combining acute dropped inside a word */
    CHECK("cafe\xcc\x81 x", "cafe@0-6|x@7-8|", 2);
    /* general punctuation separates: right quote, em dash, ellipsis, middle dot */
    CHECK("don\xe2\x80\x99t x\xe2\x80\x94y abc\xe2\x80\xa6"
          "def a\xc2\xb7"
          "b",
          "don@0-3|t@6-7|x@8-9|y@12-13|abc@14-17|def@20-23|a@24-25|b@27-28|", 8);
    /* numbers such as fractions and superscripts are word characters */
    CHECK("3\xc2\xbd \xc2\xb2x", "3\xc2\xbd@0-3|\xc2\xb2x@4-7|", 2);
    /* Greek and Cyrillic capitals lower-cased */
    CHECK("\xce\x91\xce\x92\xce\x93 \xd0\x9f\xd1\x80\xd0\xb8",
          "\xce\xb1\xce\xb2\xce\xb3@0-6|"
          "\xd0\xbf\xd1\x80\xd0\xb8@7-13|",
          2);
    /* CJK: one run is one word */
    CHECK("\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x82x", "\xe6\x97\xa5\xe6\x9c\xac@0-6|x@9-10|", 2);
    /* invalid UTF-8 separates */
    CHECK("ab\xff"
          "cd\xc3",
          "ab@0-2|cd@3-5|", 2);
    CHECK("\xe2\x82", "", 0);
    /* a NUL byte in counted text is a separator */
    check_tokens("ab\0cd", 5, "ab@0-2|cd@3-5|", 2);
}

static void count_only(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    (void)term;
    size_t *max = ud;
    if (tlen > *max)
        *max = tlen;
}

static void test_long_token(void **state)
{
    (void)state;
    char big[1000];
    for (size_t i = 0; i < sizeof big; i += 2) {
        big[i] = '\xc3'; /* e-acute, folded to e: 2 bytes in, 1 out */
        big[i + 1] = '\xa9';
    }
    size_t max = 0;
    assert_int_equal(ad_analyze(big, sizeof big, count_only, &max), 1);
    assert_int_equal(max, AD_TERM_MAX);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = i % 3 ? '\xce' : 'a'; /* invalid everywhere but the a's */
    max = 0;
    assert_true(ad_analyze(big, sizeof big, count_only, &max) > 0);
    assert_int_equal(max, 1);
}

/* ------------------------------------------------ the stemmer, plainly */

/* The stemmer as first written (analyze.c's before its suffix tests were
 * made cheap: strlen and memcmp for every rule), kept as the oracle the
 * fast one must agree with on every word. */
static bool ref_is_cons(const char *b, size_t i)
{
    switch (b[i]) {
    case 'a':
    case 'e':
    case 'i':
    case 'o':
    case 'u':
        return false;
    case 'y':
        return i == 0 || !ref_is_cons(b, i - 1);
    default:
        return true;
    }
}

/* m of b[0..n): the number of VC sequences. */
static int ref_measure(const char *b, size_t n)
{
    int m = 0;
    size_t i = 0;
    while (i < n && ref_is_cons(b, i))
        i++;
    for (;;) {
        while (i < n && !ref_is_cons(b, i))
            i++;
        if (i >= n)
            return m;
        while (i < n && ref_is_cons(b, i))
            i++;
        m++;
    }
}

static bool ref_has_vowel(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ref_is_cons(b, i))
            return true;
    return false;
}

/* *d: ref_ends with a double consonant */
static bool ref_double_cons(const char *b, size_t n)
{
    return n >= 2 && b[n - 1] == b[n - 2] && ref_is_cons(b, n - 1);
}

/* *o: ref_ends consonant-vowel-consonant, the last not w, x or y */
static bool ref_cvc(const char *b, size_t n)
{
    return n >= 3 && ref_is_cons(b, n - 3) && !ref_is_cons(b, n - 2) && ref_is_cons(b, n - 1) &&
           b[n - 1] != 'w' && b[n - 1] != 'x' && b[n - 1] != 'y';
}

static bool ref_ends(const char *b, size_t n, const char *suf, size_t *stem)
{
    size_t k = strlen(suf);
    if (k > n || memcmp(b + n - k, suf, k) != 0)
        return false;
    *stem = n - k;
    return true;
}

typedef struct ref_rule {
    const char *suf, *rep;
} ref_rule;

/* The first ref_rule whose suffix ref_ends the word decides: its replacement is
 * made when the stem's m exceeds min_m (and, for "ion", the stem ref_ends in s
 * or t). */
static size_t ref_apply_rules(char *b, size_t n, const ref_rule *r, size_t nr, int min_m)
{
    for (size_t i = 0; i < nr; i++) {
        size_t stem;
        if (!ref_ends(b, n, r[i].suf, &stem))
            continue;
        if (!strcmp(r[i].suf, "ion") && (stem == 0 || (b[stem - 1] != 's' && b[stem - 1] != 't')))
            return n;
        if (ref_measure(b, stem) <= min_m)
            return n;
        size_t k = strlen(r[i].rep);
        memcpy(b + stem, r[i].rep, k);
        return stem + k;
    }
    return n;
}

static const ref_rule ref_step2[] = {
    {"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"}, {"izer", "ize"},
    {"bli", "ble"},     {"alli", "al"},     {"entli", "ent"}, {"eli", "e"},     {"ousli", "ous"},
    {"ization", "ize"}, {"ation", "ate"},   {"ator", "ate"},  {"alism", "al"},  {"iveness", "ive"},
    {"fulness", "ful"}, {"ousness", "ous"}, {"aliti", "al"},  {"iviti", "ive"}, {"biliti", "ble"},
    {"logi", "log"},
};

static const ref_rule ref_step3[] = {
    {"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"},
    {"ical", "ic"},  {"ful", ""},   {"ness", ""},
};

static const ref_rule ref_step4[] = {
    {"al", ""},  {"ance", ""},  {"ence", ""}, {"er", ""},  {"ic", ""},  {"able", ""}, {"ible", ""},
    {"ant", ""}, {"ement", ""}, {"ment", ""}, {"ent", ""}, {"ion", ""}, {"ou", ""},   {"ism", ""},
    {"ate", ""}, {"iti", ""},   {"ous", ""},  {"ive", ""}, {"ize", ""},
};

#define REF_NRULES(a) (sizeof(a) / sizeof(a[0]))

static size_t ref_stem(char *b, size_t n)
{
    if (n < 3 || n > 64)
        return n;
    size_t s;
    /* Step 1a: plurals. */
    if (ref_ends(b, n, "sses", &s) || ref_ends(b, n, "ies", &s))
        n -= 2;
    else if (!ref_ends(b, n, "ss", &s) && ref_ends(b, n, "s", &s))
        n -= 1;
    /* Step 1b: -eed, -ed, -ing. */
    bool again = false;
    if (ref_ends(b, n, "eed", &s)) {
        if (ref_measure(b, s) > 0)
            n -= 1;
    } else if ((ref_ends(b, n, "ed", &s) || ref_ends(b, n, "ing", &s)) && ref_has_vowel(b, s)) {
        n = s;
        again = true;
    }
    if (again) {
        if (ref_ends(b, n, "at", &s) || ref_ends(b, n, "bl", &s) || ref_ends(b, n, "iz", &s))
            b[n++] = 'e';
        else if (ref_double_cons(b, n) && b[n - 1] != 'l' && b[n - 1] != 's' && b[n - 1] != 'z')
            n -= 1;
        else if (ref_measure(b, n) == 1 && ref_cvc(b, n))
            b[n++] = 'e';
    }
    /* Step 1c: y -> i after a vowel somewhere in the stem. */
    if (ref_ends(b, n, "y", &s) && ref_has_vowel(b, s))
        b[n - 1] = 'i';
    n = ref_apply_rules(b, n, ref_step2, REF_NRULES(ref_step2), 0);
    n = ref_apply_rules(b, n, ref_step3, REF_NRULES(ref_step3), 0);
    n = ref_apply_rules(b, n, ref_step4, REF_NRULES(ref_step4), 1);
    /* Step 5a: a final e. */
    if (ref_ends(b, n, "e", &s)) {
        int m = ref_measure(b, s);
        if (m > 1 || (m == 1 && !ref_cvc(b, s)))
            n = s;
    }
    /* Step 5b: -ll with m > 1. */
    if (ref_measure(b, n) > 1 && ref_double_cons(b, n) && b[n - 1] == 'l')
        n -= 1;
    return n;
}

static void check_same_stem(const char *w, size_t n)
{
    char a[80], b[80];
    memcpy(a, w, n);
    memcpy(b, w, n);
    size_t na = ad_porter_stem(a, n), nb = ref_stem(b, n);
    if (na != nb || memcmp(a, b, na) != 0)
        fail_msg("stem(%.*s) = %.*s, the plain stemmer gives %.*s", (int)n, w, (int)na, a, (int)nb,
                 b);
}

typedef struct words {
    size_t n;
} words;

static void stem_each(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    words *w = ud;
    if (tlen < 80)
        check_same_stem(term, tlen);
    w->n++;
}

/* Pairs of the two analyses of one text. */
typedef struct pairs {
    char (*term)[AD_TERM_MAX + 4];
    size_t *len, *start, *end;
    size_t n, cap, at;
    bool bad;
} pairs;

static void keep(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    pairs *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->term = realloc(p->term, p->cap * sizeof *p->term);
        p->len = realloc(p->len, p->cap * sizeof *p->len);
        p->start = realloc(p->start, p->cap * sizeof *p->start);
        p->end = realloc(p->end, p->cap * sizeof *p->end);
        assert_non_null(p->term);
        assert_non_null(p->len);
        assert_non_null(p->start);
        assert_non_null(p->end);
    }
    memcpy(p->term[p->n], term, tlen);
    p->len[p->n] = tlen;
    p->start[p->n] = start;
    p->end[p->n++] = end;
}

static void check_folded(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    pairs *p = ud;
    char t[AD_TERM_MAX + 4];
    memcpy(t, term, tlen);
    size_t n = ad_porter_stem(t, tlen);
    size_t i = p->at++;
    if (i >= p->n || p->len[i] != n || memcmp(p->term[i], t, n) != 0 || p->start[i] != start ||
        p->end[i] != end)
        p->bad = true;
}

/* ad_analyze_folded + ad_porter_stem == ad_analyze, and the stemmer agrees
 * with the plain one on every word of text[0..len). */
static void check_text(const char *text, size_t len)
{
    words w = {0};
    size_t n = ad_analyze_folded(text, len, stem_each, &w);
    assert_int_equal(n, w.n);
    pairs p = {0};
    assert_int_equal(ad_analyze(text, len, keep, &p), n);
    assert_int_equal(ad_analyze_folded(text, len, check_folded, &p), n);
    assert_false(p.bad);
    assert_int_equal(p.at, p.n);
    free(p.term);
    free(p.len);
    free(p.start);
    free(p.end);
}

static void test_fast_stemmer(void **state)
{
    (void)state;
    /* every word of up to 5 letters over letters the rules turn on */
    static const char abc[] = "abceilnostuyz";
    const size_t k = sizeof abc - 1;
    char w[8];
    for (size_t len = 1; len <= 5; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= k;
        for (size_t x = 0; x < total; x++) {
            size_t v = x;
            for (size_t i = 0; i < len; i++, v /= k)
                w[i] = abc[v % k];
            check_same_stem(w, len);
        }
    }
    /* long words built from the rules' suffixes */
    static const char *const suf[] = {
        "ational", "tional",  "enci",  "anci",  "izer",  "bli",     "alli",    "entli",   "eli",
        "ousli",   "ization", "ation", "ator",  "alism", "iveness", "fulness", "ousness", "aliti",
        "iviti",   "biliti",  "logi",  "icate", "ative", "alize",   "iciti",   "ical",    "ful",
        "ness",    "al",      "ance",  "ence",  "er",    "ic",      "able",    "ible",    "ant",
        "ement",   "ment",    "ent",   "sion",  "tion",  "ion",     "ou",      "ism",     "ate",
        "iti",     "ous",     "ive",   "ize",   "sses",  "ies",     "ss",      "s",       "eed",
        "ed",      "ing",     "at",    "bl",    "iz",    "y",       "e",       "ll",
    };
    static const char *const stems[] = {"",    "c",   "r",      "tr",     "hop",  "conn", "gener",
                                        "rel", "fil", "sensit", "formal", "agre", "bo",   "sky"};
    const size_t ns = sizeof suf / sizeof *suf, nst = sizeof stems / sizeof *stems;
    char b[80];
    for (size_t i = 0; i < nst; i++)
        for (size_t j = 0; j < ns; j++)
            for (size_t m = 0; m < ns; m++) {
                int n = snprintf(b, sizeof b, "%s%s%s", stems[i], suf[j], suf[m]);
                check_same_stem(b, (size_t)n);
            }
    /* Porter's examples and the tokens of the tricky texts */
    static const char text[] =
        "Caf\xc3\xa9 na\xc3\xafve re\xcc\x81sum\xc3\xa9 connections connected, CONNECTING! "
        "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1 bad\xff\xfe bytes \xe2\x82 cut "
        "generalizations relational conditional rational valenci hesitanci digitizer "
        "conformabli radicalli differentli vileli analogousli vietnamization predication "
        "operator feudalism decisiveness hopefulness callousness formaliti sensitiviti "
        "sensibiliti triplicate formative formalize electriciti electrical hopeful goodness";
    check_text(text, sizeof text - 1);

    /* every word of NFCorpus (AD_NFCORPUS or ../shared/data/nfcorpus) */
    const char *path = getenv("AD_NFCORPUS");
    FILE *f = fopen(path ? path : "../shared/data/nfcorpus/corpus.jsonl", "r");
    if (!f) {
        print_message("NFCorpus not found: the real-text comparison is skipped\n");
        return;
    }
    char *line = NULL;
    size_t cap = 0, docs = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_t *doc = json_loadb(line, (size_t)got, 0, NULL);
        assert_non_null(doc);
        const char *fields[] = {"title", "text"};
        for (size_t i = 0; i < 2; i++) {
            const char *t = json_string_value(json_object_get(doc, fields[i]));
            if (t)
                check_text(t, strlen(t));
        }
        json_decref(doc);
        docs++;
    }
    free(line);
    fclose(f);
    assert_true(docs > 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_porter),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_long_token),
        cmocka_unit_test(test_fast_stemmer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
