/*
 * index.c -- the pure parts of retrieval (see search.h): picking the words
 * of a user's query, BM25 arithmetic, RM3 feedback words, reciprocal rank fusion with scores mapped
 * to 0..1, attribute filters, and the vector arithmetic of dense search.
 *
 * Design: nothing here touches the store or the network, so every rule that
 * decides a ranking can be unit-tested on its own (tests/unit/test_search.c).
 *
 * Query words: the text is cut into words -- runs of ASCII letters/digits
 * or of non-ASCII bytes (UTF-8 letters of other scripts) -- common English
 * stopwords left out (unless the query is nothing but stopwords, which then
 * are kept): BM25 then ranks chunks by how many and how rare the words they
 * contain are, which is what keyword retrieval wants from a natural
 * language question. search.c analyses each word as the chunks were
 * (search/analyze.h) into index terms.
 *
 * RRF: a chunk's fused score is sum(1 / (k + rank)) over the lists it
 * appears in; dividing by nlists / (k + 1) maps it to 0..1. Fusion collects
 * (id, contribution) pairs, sorts them by id to add up duplicates, then sorts
 * by score: O(m log m) for m pairs, m bounded by lists x candidates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "util/alloc.h"

/* Common English words that carry no topic: left out of keyword queries
 * (they would only reward long chunks). Sorted, for bsearch. */
static const char *const stopwords[] = {
    "a",     "about",  "after", "all",   "also", "an",   "and",   "any",  "are",  "as",
    "at",    "be",     "been",  "but",   "by",   "can",  "could", "did",  "do",   "does",
    "for",   "from",   "had",   "has",   "have", "how",  "i",     "if",   "in",   "into",
    "is",    "it",     "its",   "me",    "my",   "no",   "not",   "of",   "on",   "or",
    "our",   "should", "so",    "than",  "that", "the",  "their", "them", "then", "there",
    "these", "they",   "this",  "those", "to",   "was",  "we",    "were", "what", "when",
    "where", "which",  "who",   "why",   "will", "with", "would", "you",  "your",
};

static int cmp_word(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static bool is_stopword(const unsigned char *w, size_t n)
{
    char low[16];
    if (n >= sizeof low)
        return false;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] - 'A' + 'a' : w[i]);
    low[n] = '\0';
    return bsearch(low, stopwords, sizeof stopwords / sizeof stopwords[0], sizeof stopwords[0],
                   cmp_word) != NULL;
}

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Calls fn for every word of text (stopwords left out with skip_stop), at
 * most AD_KW_MAX_WORDS; returns how many. */
static size_t each_word(const char *text, bool skip_stop,
                        void (*fn)(void *ud, const unsigned char *w, size_t n), void *ud)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t words = 0;
    while (*p && words < AD_KW_MAX_WORDS) {
        while (*p && !word_byte(*p))
            p++;
        const unsigned char *s = p;
        while (*p && word_byte(*p))
            p++;
        size_t n = (size_t)(p - s);
        if (!n)
            break;
        if (n > AD_KW_WORD_MAX) /* keep whole UTF-8 characters */
            for (n = AD_KW_WORD_MAX; n > 0 && (s[n] & 0xC0) == 0x80; n--)
                ;
        if (!n || (skip_stop && is_stopword(s, n)))
            continue;
        fn(ud, s, n);
        words++;
    }
    return words;
}

typedef struct terms_acc {
    ad_kw_term *out;
    size_t n;
} terms_acc;

static void add_term(void *ud, const unsigned char *w, size_t n)
{
    terms_acc *a = ud;
    char low[AD_KW_WORD_MAX + 1];
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] - 'A' + 'a' : w[i]);
    low[n] = '\0';
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->out[i].word, low)) {
            a->out[i].weight += 1;
            return;
        }
    memcpy(a->out[a->n].word, low, n + 1);
    a->out[a->n].weight = 1;
    a->n++;
}

size_t ad_kw_terms(const char *text, ad_kw_term *out)
{
    terms_acc a = {.out = out};
    if (!each_word(text, true, add_term, &a))
        each_word(text, false, add_term, &a);
    return a.n;
}

double ad_bm25_idf(int64_t nchunks, int64_t df)
{
    if (df > nchunks)
        df = nchunks;
    return log(1.0 + ((double)nchunks - (double)df + 0.5) / ((double)df + 0.5));
}

double ad_bm25_tf(double tf, double len, double avglen)
{
    if (tf <= 0)
        return 0;
    double norm = avglen > 0 ? len / avglen : 1.0;
    return tf * (AD_BM25_K1 + 1) / (tf + AD_BM25_K1 * (1 - AD_BM25_B + AD_BM25_B * norm));
}

/* ---- RM3 ---- */

typedef struct fb_entry {
    const char *term; /* into a caller's doc text; NULL = empty slot */
    size_t tlen;
    const char *surface;
    size_t slen;
    double weight;
} fb_entry;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Whether a feedback term may join a query: 2..20 bytes and not a
 * stopword (judged on its surface form). */
static bool fb_usable(const char *term, size_t tlen, const char *surface, size_t slen)
{
    (void)term;
    return tlen >= 2 && tlen <= 20 && slen <= AD_KW_WORD_MAX &&
           !is_stopword((const unsigned char *)surface, slen);
}

static int cmp_fb(const void *a, const void *b)
{
    const fb_entry *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    /* deterministic ties: by term bytes */
    size_t n = x->tlen < y->tlen ? x->tlen : y->tlen;
    int c = memcmp(x->term, y->term, n);
    return c ? c : (x->tlen > y->tlen) - (x->tlen < y->tlen);
}

size_t ad_rm3_terms(const char *const *docs, const size_t *lens, const double *scores, size_t ndocs,
                    size_t max_terms, ad_kw_term *out)
{
    size_t total = 0;
    double ssum = 0;
    for (size_t d = 0; d < ndocs; d++) {
        for (size_t i = 0; i < lens[d]; i++)
            total += docs[d][i] == '\n';
        ssum += scores[d] > 0 ? scores[d] : 0;
    }
    if (!total || ssum <= 0 || !max_terms)
        return 0;
    size_t cap = 64;
    while (cap < total * 2)
        cap *= 2;
    fb_entry *tab = ad_calloc(cap, sizeof *tab);
    for (size_t d = 0; d < ndocs; d++) {
        size_t len = 0;
        for (size_t i = 0; i < lens[d]; i++)
            len += docs[d][i] == '\n';
        if (!len || scores[d] <= 0)
            continue;
        double share = (scores[d] / ssum) / (double)len;
        const char *p = docs[d], *end = docs[d] + lens[d];
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                break;
            const char *tab_at = memchr(p, '\t', (size_t)(nl - p));
            if (tab_at) {
                const char *t = p, *sf = tab_at + 1;
                size_t tl = (size_t)(tab_at - p), sl = (size_t)(nl - sf);
                if (fb_usable(t, tl, sf, sl)) {
                    size_t j = hash_bytes(t, tl) & (cap - 1);
                    while (tab[j].term && (tab[j].tlen != tl || memcmp(tab[j].term, t, tl)))
                        j = (j + 1) & (cap - 1);
                    if (!tab[j].term)
                        tab[j] = (fb_entry){.term = t, .tlen = tl, .surface = sf, .slen = sl};
                    tab[j].weight += share;
                }
            }
            p = nl + 1;
        }
    }
    size_t m = 0;
    for (size_t j = 0; j < cap; j++)
        if (tab[j].term)
            tab[m++] = tab[j];
    qsort(tab, m, sizeof *tab, cmp_fb);
    size_t k = m < max_terms ? m : max_terms;
    double z = 0;
    for (size_t i = 0; i < k; i++)
        z += tab[i].weight;
    for (size_t i = 0; i < k; i++) {
        for (size_t c = 0; c < tab[i].slen; c++) {
            char ch = tab[i].surface[c];
            out[i].word[c] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        out[i].word[tab[i].slen] = '\0';
        out[i].weight = z > 0 ? tab[i].weight / z : 0;
    }
    ad_free(tab);
    return k;
}

static int cmp_id(const void *a, const void *b)
{
    const ad_fused *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_score(const void *a, const void *b)
{
    const ad_fused *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

size_t ad_rrf_fuse(const ad_ranked *lists, size_t nlists, int k, ad_fused *out)
{
    size_t m = 0;
    for (size_t l = 0; l < nlists; l++)
        for (size_t r = 0; r < lists[l].n; r++) {
            out[m].id = lists[l].ids[r];
            out[m].score = 1.0 / (double)(k + (int)r + 1);
            m++;
        }
    if (!m)
        return 0;
    qsort(out, m, sizeof *out, cmp_id);
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u && out[u - 1].id == out[i].id)
            out[u - 1].score += out[i].score;
        else
            out[u++] = out[i];
    }
    double best = (double)nlists / (double)(k + 1);
    for (size_t i = 0; i < u; i++) {
        double s = out[i].score / best;
        out[i].score = s > 1.0 ? 1.0 : s;
    }
    qsort(out, u, sizeof *out, cmp_score);
    return u;
}

/* -1, 0, 1, or 2 when a and b cannot be ordered (different types). */
static int compare(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return (c > 0) - (c < 0);
    }
    if (json_is_boolean(a) && json_is_boolean(b))
        return json_is_true(a) == json_is_true(b) ? 0 : 2;
    return 2;
}

static bool in_list(const json_t *v, const json_t *list)
{
    if (!json_is_array(list))
        return compare(v, list) == 0;
    size_t i;
    const json_t *x;
    json_array_foreach(list, i, x)
    {
        if (compare(v, x) == 0)
            return true;
    }
    return false;
}

bool ad_filter_match(const json_t *filter, const json_t *attributes)
{
    const char *type = json_string_value(json_object_get(filter, "type"));
    if (!type)
        return false;
    if (!strcmp(type, "and") || !strcmp(type, "or")) {
        bool and = type[0] == 'a';
        size_t i;
        const json_t *f;
        json_array_foreach(json_object_get(filter, "filters"), i, f)
        {
            bool m = ad_filter_match(f, attributes);
            if (and&&!m)
                return false;
            if (!and&&m)
                return true;
        }
        return and;
    }
    const char *key = json_string_value(json_object_get(filter, "key"));
    const json_t *want = json_object_get(filter, "value");
    const json_t *have = key ? json_object_get(attributes, key) : NULL;
    if (!have || !want)
        return false;
    if (!strcmp(type, "in"))
        return in_list(have, want);
    if (!strcmp(type, "nin"))
        return !in_list(have, want);
    int c = compare(have, want);
    if (!strcmp(type, "eq"))
        return c == 0;
    if (!strcmp(type, "ne"))
        return c != 0;
    if (c == 2)
        return false;
    if (!strcmp(type, "gt"))
        return c > 0;
    if (!strcmp(type, "gte"))
        return c >= 0;
    if (!strcmp(type, "lt"))
        return c < 0;
    if (!strcmp(type, "lte"))
        return c <= 0;
    return false;
}

void ad_vec_normalize(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    if (s <= 0)
        return;
    double inv = 1.0 / sqrt(s);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(v[i] * inv);
}

double ad_vec_dot(const float *a, const float *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0; /* four lanes: lets the compiler vectorise */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (double)s0 + s1 + s2 + s3;
}
