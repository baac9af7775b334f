/*
 * kwindex.c -- segments, per-store in-memory inverted indexes and their
 * cache (see kwindex.h for the formats and the consistency argument).
 *
 * Design. One hash dictionary type (term bytes in an arena, open
 * addressing on 32-bit slots, each entry a growable array of (chunk, tf)
 * postings) serves both the segment builder, where "chunk" is the ordinal
 * in the file and tf is bumped while the same chunk is being analysed, and
 * the store index, where "chunk" is the position in the store's chunk
 * arrays. Segments are decoded twice when loaded: once to check every
 * bound (a damaged row must not corrupt the index), once to append.
 *
 * Building a segment fast (it runs on every ingest). The builder keeps a
 * second dictionary of the file's distinct folded words (before stemming,
 * ad_analyze_folded): a word is Porter-stemmed once, when first counted,
 * and maps to its term by an array lookup from then on. With overlapping
 * chunks (800/400: every byte in two chunks) the text under a run of
 * chunks is analysed once and each chunk takes the words that start
 * between its first and its last ASCII separator from that pass, analysing
 * only its two ends on its own (seg_run explains why that is exact). Words
 * are counted in the order chunk-by-chunk analysis would count them, so
 * terms enter the dictionary in the same order and the bytes are the same
 * (ad_kwseg_build_plain is that straightforward build, for tests). The
 * output is gathered in a block buffer rather than appended a varint at a
 * time.
 *
 * Ranking is term-at-a-time: each query term's postings add their BM25
 * contribution into a per-chunk accumulator, the chunks touched are
 * remembered in a list, and one pass over that list keeps the k best in a
 * min-heap; only candidates that would enter the heap pay for the filter.
 */
#include "search/kwindex.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "search/analyze.h"
#include "search/search.h"
#include "util/alloc.h"
#include "util/str.h"

/* ---------------------------------------------------------------- dictionary */

typedef struct kpost {
    uint32_t doc, tf;
} kpost;

typedef struct kterm {
    uint32_t off, len; /* bytes in the arena */
    uint32_t n, cap;
    kpost *p;
} kterm;

typedef struct kdict {
    char *arena;
    size_t alen, acap;
    kterm *terms;
    size_t nterms, tcap;
    uint32_t *slots; /* term index + 1; 0 = empty */
    size_t nslots;
    size_t npost_cap; /* sum of the postings capacities */
} kdict;

/* Eight bytes a step (terms are short words); the final mix spreads the
 * bits into the low ones the table's mask keeps. Only in memory: neither
 * segments nor term order depend on it. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) /* not memcpy: a call for a variable n */
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 29);
}

static void dict_free(kdict *d)
{
    for (size_t i = 0; i < d->nterms; i++)
        ad_free(d->terms[i].p);
    ad_free(d->terms);
    ad_free(d->slots);
    ad_free(d->arena);
    memset(d, 0, sizeof *d);
}

static void dict_rehash(kdict *d, size_t nslots)
{
    ad_free(d->slots);
    d->slots = ad_calloc(nslots, sizeof *d->slots);
    d->nslots = nslots;
    for (size_t i = 0; i < d->nterms; i++) {
        size_t j = hash_bytes(d->arena + d->terms[i].off, d->terms[i].len) & (nslots - 1);
        while (d->slots[j])
            j = (j + 1) & (nslots - 1);
        d->slots[j] = (uint32_t)i + 1;
    }
}

/* The entry of term t[0..n); created when create, else NULL if absent. */
static kterm *dict_get(kdict *d, const char *t, size_t n, bool create)
{
    if (!d->nslots) {
        if (!create)
            return NULL;
        dict_rehash(d, 1024);
    }
    size_t j = hash_bytes(t, n) & (d->nslots - 1);
    for (; d->slots[j]; j = (j + 1) & (d->nslots - 1)) {
        kterm *e = &d->terms[d->slots[j] - 1];
        if (e->len == n && !memcmp(d->arena + e->off, t, n))
            return e;
    }
    if (!create)
        return NULL;
    if (d->nterms == d->tcap) {
        d->tcap = d->tcap ? d->tcap * 2 : 1024;
        d->terms = ad_realloc(d->terms, d->tcap * sizeof *d->terms);
    }
    if (d->alen + n > d->acap) {
        while (d->alen + n > d->acap)
            d->acap = d->acap ? d->acap * 2 : 16384;
        d->arena = ad_realloc(d->arena, d->acap);
    }
    memcpy(d->arena + d->alen, t, n);
    kterm *e = &d->terms[d->nterms];
    *e = (kterm){.off = (uint32_t)d->alen, .len = (uint32_t)n};
    d->alen += n;
    d->slots[j] = (uint32_t)++d->nterms;
    if (d->nterms * 2 > d->nslots) {
        dict_rehash(d, d->nslots * 2);
        return &d->terms[d->nterms - 1];
    }
    return e;
}

static void post_add(kdict *d, kterm *e, uint32_t doc, uint32_t tf)
{
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        d->npost_cap += cap - e->cap;
        e->cap = cap;
        e->p = ad_realloc(e->p, (size_t)cap * sizeof *e->p);
    }
    e->p[e->n++] = (kpost){doc, tf};
}

/* ---------------------------------------------------------------- varints */

/* A segment being written: bytes are gathered here and appended to the
 * output buffer a block at a time (the first error sticks). */
typedef struct wr {
    ad_buf *out;
    ad_err rc;
    size_t n;
    unsigned char tmp[8192];
} wr;

static void wr_flush(wr *w)
{
    if (!w->rc && w->n)
        w->rc = ad_buf_add(w->out, w->tmp, w->n);
    w->n = 0;
}

static void wr_varint(wr *w, uint64_t v)
{
    if (w->n + 10 > sizeof w->tmp)
        wr_flush(w);
    do {
        unsigned char c = (unsigned char)(v & 0x7F);
        v >>= 7;
        w->tmp[w->n++] = v ? (unsigned char)(c | 0x80) : c;
    } while (v);
}

static void wr_bytes(wr *w, const void *p, size_t n)
{
    if (w->n + n > sizeof w->tmp) {
        wr_flush(w);
        if (n > sizeof w->tmp) {
            if (!w->rc)
                w->rc = ad_buf_add(w->out, p, n);
            return;
        }
    }
    memcpy(w->tmp + w->n, p, n);
    w->n += n;
}

typedef struct rd {
    const unsigned char *p, *end;
    bool bad;
} rd;

static uint64_t get_varint(rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static const unsigned char *get_bytes(rd *r, uint64_t n)
{
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *s = r->p;
    r->p += n;
    return s;
}

/* ---------------------------------------------------------------- segments */

typedef struct seg_acc {
    kdict *d; /* the segment's terms */
    uint32_t ord;
    uint32_t len;
    uint32_t *last; /* per term: 1 + the last ordinal it was counted in */
    size_t lcap;
    /* Fast path: every distinct folded word of the file, stemmed once. */
    kdict words;
    uint32_t *map; /* per word: 1 + the index of its term in d; 0: not yet */
    size_t mcap;
} seg_acc;

/* The array p of *cap elements (of size elem), grown if need be to hold
 * index i, the new elements zeroed: doubles from 1024. */
static void *grow_zeroed(void *p, size_t *cap, size_t i, size_t elem)
{
    if (i < *cap)
        return p;
    size_t n = *cap ? *cap * 2 : 1024;
    while (n <= i)
        n *= 2;
    p = ad_realloc(p, n * elem);
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return p;
}

/* Counts one occurrence of term ti (an index into a->d) in chunk a->ord. */
static void seg_count(seg_acc *a, size_t ti)
{
    a->len++;
    a->last = grow_zeroed(a->last, &a->lcap, ti, sizeof *a->last);
    kterm *e = &a->d->terms[ti];
    if (a->last[ti] == a->ord + 1) {
        e->p[e->n - 1].tf++;
    } else {
        post_add(a->d, e, a->ord, 1);
        a->last[ti] = a->ord + 1;
    }
}

/* The plain path: a stemmed term from ad_analyze. */
static void seg_token(void *ud, const char *term, size_t tlen, size_t start, size_t end)
{
    (void)start;
    (void)end;
    seg_acc *a = ud;
    kterm *e = dict_get(a->d, term, tlen, true);
    seg_count(a, (size_t)(e - a->d->terms));
}

/* The index in a->d of word wi's term; the word is stemmed, and its term
 * enters a->d, the first time it is counted. */
static size_t word_term(seg_acc *a, size_t wi)
{
    a->map = grow_zeroed(a->map, &a->mcap, wi, sizeof *a->map);
    if (!a->map[wi]) {
        const kterm *w = &a->words.terms[wi];
        char t[AD_TERM_MAX + 4];
        memcpy(t, a->words.arena + w->off, w->len);
        size_t n = ad_porter_stem(t, w->len);
        kterm *e = dict_get(a->d, t, n, true);
        a->map[wi] = (uint32_t)(e - a->d->terms) + 1;
    }
    return a->map[wi] - 1;
}

static size_t word_id(seg_acc *a, const char *w, size_t n)
{
    return (size_t)(dict_get(&a->words, w, n, true) - a->words.terms);
}

/* The fast path: a folded word from ad_analyze_folded. */
static void seg_word(void *ud, const char *w, size_t n, size_t start, size_t end)
{
    (void)start;
    (void)end;
    seg_acc *a = ud;
    seg_count(a, word_term(a, word_id(a, w, n)));
}

/* The words of a run of overlapping chunks, analysed once (see
 * seg_run). */
typedef struct gtok {
    uint32_t start; /* byte offset in the run */
    uint32_t id;    /* index in seg_acc.words */
} gtok;

typedef struct run_acc {
    seg_acc *a;
    gtok *t;
    size_t n, cap;
} run_acc;

static void run_token(void *ud, const char *w, size_t n, size_t start, size_t end)
{
    (void)end;
    run_acc *r = ud;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->t = ad_realloc(r->t, r->cap * sizeof *r->t);
    }
    r->t[r->n++] = (gtok){(uint32_t)start, (uint32_t)word_id(r->a, w, n)};
}

/* An ASCII byte that is not a letter or digit: a separator wherever the
 * analyser's decoding of the text began (it cannot be part of a longer
 * character), so no token crosses it. */
static bool ascii_sep(unsigned char c)
{
    return c < 0x80 &&
           !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

/* Rows rows[0..n) (n >= 2) whose bytes are all inside text[0..len):
 * chunk i is text[off[i] .. off[i] + rows[i].len). The text is analysed
 * once; each chunk [s, e) then takes
 *   - the tokens of analysing text[s..a) on its own, a the position after
 *     the first separator byte of the chunk (ascii_sep),
 *   - the whole text's tokens starting in [a, b), b the position after the
 *     chunk's last separator byte: analysing the chunk alone is in the same
 *     state as analysing the whole text at a (no token open, a character
 *     boundary), and no token starting before b reaches past b - 1,
 *   - the tokens of analysing text[b..e) on its own,
 * in that order, which are exactly the tokens of analysing the chunk on its
 * own. Terms enter a->d in the same order as chunk-by-chunk analysis would
 * put them there, so the segment is byte for byte the same. */
static void seg_run(seg_acc *a, uint32_t first, const ad_chunk_row *rows, const size_t *off,
                    size_t n, const char *text, size_t len, uint32_t *lens)
{
    run_acc r = {.a = a};
    ad_analyze_folded(text, len, run_token, &r);
    const unsigned char *u = (const unsigned char *)text;
    size_t lo = 0; /* first token starting at or after the previous chunk's a */
    for (size_t i = 0; i < n; i++) {
        size_t s = off[i], e = s + rows[i].len, x = s, y = e;
        a->ord = first + (uint32_t)i;
        a->len = 0;
        while (x < e && !ascii_sep(u[x]))
            x++;
        if (x == e) { /* no separator: the chunk alone */
            ad_analyze_folded(text + s, e - s, seg_word, a);
            lens[i] = a->len;
            continue;
        }
        while (!ascii_sep(u[y - 1]))
            y--;
        size_t ca = x + 1, cb = y;
        ad_analyze_folded(text + s, ca - s, seg_word, a);
        while (lo < r.n && r.t[lo].start < ca)
            lo++;
        for (size_t k = lo; k < r.n && r.t[k].start < cb; k++)
            seg_count(a, word_term(a, r.t[k].id));
        ad_analyze_folded(text + cb, e - cb, seg_word, a);
        lens[i] = a->len;
    }
    ad_free(r.t);
}

/* The end of the run of rows starting at i: rows i+1, i+2, ... each start
 * inside the row before (so all lie in one object: the text they were cut
 * from) and at or after its start. *base, *len: the run's bytes. */
static size_t run_end(const ad_chunk_row *rows, size_t n, size_t i, const char **base, size_t *len)
{
    uintptr_t s = (uintptr_t)rows[i].text, e = s + rows[i].len;
    size_t j = i + 1;
    for (; j < n; j++) {
        uintptr_t ps = (uintptr_t)rows[j - 1].text, pe = ps + rows[j - 1].len;
        uintptr_t js = (uintptr_t)rows[j].text;
        if (js < ps || js >= pe)
            break;
        if (js + rows[j].len > e)
            e = js + rows[j].len;
    }
    *base = rows[i].text;
    *len = (size_t)(e - s);
    return j;
}

/* Chunk by chunk analysis (fast false), or one analysis per run of
 * overlapping chunks (seg_run). */
static ad_err seg_build(const ad_chunk_row *rows, size_t n, ad_buf *out, bool fast)
{
    kdict d = {0};
    seg_acc a = {.d = &d};
    uint32_t *lens = ad_calloc(n + 1, sizeof *lens);
    size_t *off = NULL;
    for (size_t i = 0; i < n;) {
        const char *base = NULL;
        size_t blen = 0, j = fast ? run_end(rows, n, i, &base, &blen) : i + 1;
        if (j - i < 2 || blen > UINT32_MAX) {
            for (; i < j; i++) {
                a.ord = (uint32_t)i;
                a.len = 0;
                if (fast)
                    ad_analyze_folded(rows[i].text, rows[i].len, seg_word, &a);
                else
                    ad_analyze(rows[i].text, rows[i].len, seg_token, &a);
                lens[i] = a.len;
            }
            continue;
        }
        off = ad_realloc(off, (j - i) * sizeof *off);
        for (size_t k = i; k < j; k++)
            off[k - i] = (size_t)((uintptr_t)rows[k].text - (uintptr_t)base);
        seg_run(&a, (uint32_t)i, rows + i, off, j - i, base, blen, lens + i);
        i = j;
    }
    static const unsigned char zero[8] = {0};
    wr *w = ad_malloc(sizeof *w);
    w->out = out;
    w->rc = AD_OK;
    w->n = 0;
    wr_bytes(w, "K\1", 2);
    wr_varint(w, n);
    for (size_t i = 0; i < n && !w->rc; i++)
        wr_bytes(w, zero, 8);
    for (size_t i = 0; i < n && !w->rc; i++)
        wr_varint(w, lens[i]);
    wr_varint(w, d.nterms);
    for (size_t t = 0; t < d.nterms && !w->rc; t++) {
        const kterm *e = &d.terms[t];
        wr_varint(w, e->len);
        wr_bytes(w, d.arena + e->off, e->len);
        wr_varint(w, e->n);
        uint32_t prev = 0;
        for (uint32_t k = 0; k < e->n; k++) {
            wr_varint(w, e->p[k].doc - prev);
            wr_varint(w, e->p[k].tf);
            prev = e->p[k].doc;
        }
    }
    wr_flush(w);
    ad_err rc = w->rc;
    ad_free(w);
    ad_free(off);
    ad_free(lens);
    ad_free(a.last);
    ad_free(a.map);
    dict_free(&a.words);
    dict_free(&d);
    return rc;
}

ad_err ad_kwseg_build(const ad_chunk_row *rows, size_t n, ad_buf *out)
{
    return seg_build(rows, n, out, true);
}

ad_err ad_kwseg_build_plain(const ad_chunk_row *rows, size_t n, ad_buf *out)
{
    return seg_build(rows, n, out, false);
}

/* Reads a segment's header: *n chunks, *ids the 8-byte id array. */
static bool seg_head(rd *r, uint64_t *n, const unsigned char **ids)
{
    const unsigned char *m = get_bytes(r, 2);
    if (!m || m[0] != 'K' || m[1] != 1)
        return false;
    *n = get_varint(r);
    if (r->bad || *n > UINT32_MAX / 8)
        return false;
    *ids = get_bytes(r, *n * 8);
    return !r->bad;
}

ad_err ad_kwseg_set_ids(unsigned char *seg, size_t len, const int64_t *ids, size_t n)
{
    rd r = {seg, seg + len, false};
    uint64_t cnt;
    const unsigned char *at;
    if (!seg_head(&r, &cnt, &at) || cnt != n)
        return AD_EINVAL;
    unsigned char *w = seg + (at - seg);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            w[8 * i + (size_t)b] = (unsigned char)((uint64_t)ids[i] >> (8 * b));
    return AD_OK;
}

static int64_t get_id(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--)
        v = (v << 8) | p[b];
    return (int64_t)v;
}

bool ad_kwseg_valid(const unsigned char *seg, size_t len, size_t *nchunks)
{
    rd r = {seg, seg + len, false};
    uint64_t n;
    const unsigned char *ids;
    if (!seg_head(&r, &n, &ids))
        return false;
    for (uint64_t i = 0; i < n && !r.bad; i++)
        if (get_varint(&r) > UINT32_MAX)
            r.bad = true;
    uint64_t nt = get_varint(&r);
    for (uint64_t t = 0; t < nt && !r.bad; t++) {
        uint64_t tl = get_varint(&r);
        if (tl == 0 || tl > AD_TERM_MAX || !get_bytes(&r, tl))
            return false;
        uint64_t np = get_varint(&r);
        if (np > n)
            return false;
        uint64_t ord = 0;
        for (uint64_t k = 0; k < np && !r.bad; k++) {
            uint64_t delta = get_varint(&r), tf = get_varint(&r);
            if ((k && !delta) || delta >= n || tf == 0 || tf > UINT32_MAX)
                return false;
            ord += delta;
            if (ord >= n)
                return false;
        }
    }
    if (r.bad || r.p != r.end)
        return false;
    if (nchunks)
        *nchunks = (size_t)n;
    return true;
}

ad_err ad_kw_insert_file(ad_db *db, const char *store_id, const char *file_id,
                         const ad_chunk_row *rows, size_t n, ad_buf *seg)
{
    ad_buf own;
    ad_buf_init(&own, AD_KWSEG_MAX);
    ad_err rc = AD_OK;
    if (!seg) {
        seg = &own;
        rc = ad_kwseg_build(rows, n, seg);
    }
    int64_t *ids = ad_calloc(n + 1, sizeof *ids);
    if (!rc)
        rc = ad_db_chunks_insert(db, store_id, file_id, rows, n, ids);
    if (!rc)
        rc = ad_kwseg_set_ids((unsigned char *)seg->ptr, seg->len, ids, n);
    if (!rc)
        rc = ad_db_kwseg_put(db, store_id, file_id, seg->ptr, seg->len);
    ad_free(ids);
    ad_buf_free(&own);
    return rc;
}

/* ---------------------------------------------------------------- the index */

typedef struct kfile {
    int64_t seg;
    char file_id[64];
    uint32_t first, n;
    bool alive;
} kfile;

struct ad_kwidx {
    pthread_rwlock_t lock;
    kdict dict;
    int64_t *ids;
    uint32_t *lens, *fileof;
    size_t nchunks, ccap;
    uint64_t *dead; /* tombstones, a bit per chunk */
    size_t ndead;
    uint64_t live_len;
    kfile *files;
    size_t nfiles, fcap;
    int64_t vcount, vmax; /* the segments' version this index reflects */
    bool synced;
    /* the cache's bookkeeping (under its mutex) */
    char store[64];
    unsigned refs;
    bool dropped; /* its store is gone: freed when the last user releases it */
    uint64_t used;
    size_t acct; /* bytes counted in the cache's total */
    struct ad_kwidx *next;
};

static void idx_clear(ad_kwidx *x)
{
    dict_free(&x->dict);
    ad_free(x->ids);
    ad_free(x->lens);
    ad_free(x->fileof);
    ad_free(x->dead);
    ad_free(x->files);
    x->ids = NULL;
    x->lens = x->fileof = NULL;
    x->dead = NULL;
    x->files = NULL;
    x->nchunks = x->ccap = x->ndead = x->nfiles = x->fcap = 0;
    x->live_len = 0;
    x->synced = false;
}

static ad_kwidx *idx_new(const char *store)
{
    ad_kwidx *x = ad_calloc(1, sizeof *x);
    pthread_rwlock_init(&x->lock, NULL);
    ad_strlcpy(x->store, store, sizeof x->store);
    return x;
}

static void idx_free(ad_kwidx *x)
{
    if (!x)
        return;
    idx_clear(x);
    pthread_rwlock_destroy(&x->lock);
    ad_free(x);
}

static size_t idx_bytes(const ad_kwidx *x)
{
    return sizeof *x + x->dict.acap + x->dict.tcap * sizeof(kterm) +
           x->dict.nslots * sizeof(uint32_t) + x->dict.npost_cap * sizeof(kpost) +
           x->ccap * (sizeof(int64_t) + 2 * sizeof(uint32_t) + 1) + x->fcap * sizeof(kfile);
}

static bool is_dead(const ad_kwidx *x, uint32_t k)
{
    return x->ndead && (x->dead[k >> 6] >> (k & 63)) & 1;
}

/* Appends a validated segment of file_id. */
static void idx_load(ad_kwidx *x, int64_t seg_id, const char *file_id, const unsigned char *seg,
                     size_t len)
{
    rd r = {seg, seg + len, false};
    uint64_t n;
    const unsigned char *ids;
    seg_head(&r, &n, &ids);
    if (x->nchunks + n > x->ccap) {
        size_t cap = x->ccap ? x->ccap : 1024;
        while (cap < x->nchunks + n)
            cap *= 2;
        x->ids = ad_realloc(x->ids, cap * sizeof *x->ids);
        x->lens = ad_realloc(x->lens, cap * sizeof *x->lens);
        x->fileof = ad_realloc(x->fileof, cap * sizeof *x->fileof);
        x->dead = ad_realloc(x->dead, (cap / 64 + 1) * sizeof *x->dead);
        memset(x->dead + (x->ccap ? x->ccap / 64 + 1 : 0), 0,
               (cap / 64 + 1 - (x->ccap ? x->ccap / 64 + 1 : 0)) * sizeof *x->dead);
        x->ccap = cap;
    }
    if (x->nfiles == x->fcap) {
        x->fcap = x->fcap ? x->fcap * 2 : 16;
        x->files = ad_realloc(x->files, x->fcap * sizeof *x->files);
    }
    uint32_t base = (uint32_t)x->nchunks, fi = (uint32_t)x->nfiles++;
    kfile *f = &x->files[fi];
    *f = (kfile){.seg = seg_id, .first = base, .n = (uint32_t)n, .alive = true};
    ad_strlcpy(f->file_id, file_id, sizeof f->file_id);
    for (uint64_t i = 0; i < n; i++) {
        x->ids[base + i] = get_id(ids + 8 * i);
        x->lens[base + i] = (uint32_t)get_varint(&r);
        x->fileof[base + i] = fi;
        x->live_len += x->lens[base + i];
    }
    x->nchunks += n;
    uint64_t nt = get_varint(&r);
    for (uint64_t t = 0; t < nt; t++) {
        uint64_t tl = get_varint(&r);
        const unsigned char *tb = get_bytes(&r, tl);
        kterm *e = dict_get(&x->dict, (const char *)tb, tl, true);
        uint64_t np = get_varint(&r), ord = 0;
        for (uint64_t k = 0; k < np; k++) {
            ord += get_varint(&r);
            post_add(&x->dict, e, base + (uint32_t)ord, (uint32_t)get_varint(&r));
        }
    }
}

static void idx_kill(ad_kwidx *x, kfile *f)
{
    f->alive = false;
    for (uint32_t k = f->first; k < f->first + f->n; k++) {
        x->dead[k >> 6] |= 1ull << (k & 63);
        x->live_len -= x->lens[k];
    }
    x->ndead += f->n;
}

typedef struct listed {
    int64_t seg;
    char file_id[64];
} listed;

typedef struct list_acc {
    listed *v;
    size_t n, cap;
} list_acc;

static ad_err on_listed(void *ud, int64_t seg_id, const char *file_id)
{
    list_acc *a = ud;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = ad_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n].seg = seg_id;
    ad_strlcpy(a->v[a->n].file_id, file_id ? file_id : "", sizeof a->v[0].file_id);
    a->n++;
    return AD_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_listed(const void *a, const void *b)
{
    return cmp_i64(&((const listed *)a)->seg, &((const listed *)b)->seg);
}

/* Brings x up to date with the store's segments (x held exclusively). */
static ad_err idx_sync(ad_kwidx *x, ad_db *db)
{
    list_acc l = {0};
    ad_err rc = ad_db_kwseg_list(db, x->store, on_listed, &l);
    if (rc)
        goto out;
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_listed);
    /* Files whose segment is gone leave. */
    for (size_t i = 0; i < x->nfiles; i++) {
        kfile *f = &x->files[i];
        listed key = {.seg = f->seg};
        if (f->alive && (!l.n || !bsearch(&key, l.v, l.n, sizeof *l.v, cmp_listed)))
            idx_kill(x, f);
    }
    if (x->ndead && x->ndead * 4 >= x->nchunks)
        idx_clear(x); /* mostly tombstones: rebuild */
    int64_t *have = ad_calloc(x->nfiles + 1, sizeof *have);
    size_t nh = 0;
    for (size_t i = 0; i < x->nfiles; i++)
        if (x->files[i].alive)
            have[nh++] = x->files[i].seg;
    if (nh)
        qsort(have, nh, sizeof *have, cmp_i64);
    ad_buf b;
    ad_buf_init(&b, AD_KWSEG_MAX);
    int64_t count = 0, vmax = 0;
    for (size_t i = 0; i < l.n && !rc; i++) {
        count++;
        vmax = l.v[i].seg > vmax ? l.v[i].seg : vmax;
        if (nh && bsearch(&l.v[i].seg, have, nh, sizeof *have, cmp_i64))
            continue;
        ad_buf_reset(&b);
        ad_err r = ad_db_kwseg_get(db, l.v[i].seg, &b);
        if (r == AD_ENOTFOUND)
            continue; /* left meanwhile: the next version check sees it */
        rc = r;
        size_t n = 0;
        if (!rc && !ad_kwseg_valid((const unsigned char *)b.ptr, b.len, &n))
            continue; /* a damaged segment: its file is not searchable */
        if (!rc && x->nchunks + n < UINT32_MAX)
            idx_load(x, l.v[i].seg, l.v[i].file_id, (const unsigned char *)b.ptr, b.len);
    }
    ad_buf_free(&b);
    ad_free(have);
    if (!rc) {
        x->vcount = count;
        x->vmax = vmax;
        x->synced = true;
    }
out:
    ad_free(l.v);
    return rc;
}

void ad_kwidx_stats(const ad_kwidx *x, int64_t *chunks, double *avglen)
{
    size_t live = x->nchunks - x->ndead;
    *chunks = (int64_t)live;
    *avglen = live ? (double)x->live_len / (double)live : 0;
}

int64_t ad_kwidx_df(const ad_kwidx *x, const char *term, size_t n, int64_t limit)
{
    const kterm *e = dict_get((kdict *)&x->dict, term, n, false);
    if (!e)
        return 0;
    if (!x->ndead)
        return e->n;
    int64_t df = 0;
    for (uint32_t i = 0; i < e->n && (limit < 0 || df <= limit); i++)
        df += !is_dead(x, e->p[i].doc);
    return df;
}

typedef struct cand {
    double score;
    int64_t id;
} cand;

/* a is worse than b */
static bool worse(const cand *a, const cand *b)
{
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void heap_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

size_t ad_kwidx_rank(const ad_kwidx *x, const ad_kwq *q, size_t nq, ad_kw_accept accept, void *ud,
                     int64_t *ids, double *scores, size_t k)
{
    if (!x->nchunks || !k)
        return 0;
    int64_t live;
    double avg;
    ad_kwidx_stats(x, &live, &avg);
    if (live <= 0)
        return 0;
    double *acc = ad_calloc(x->nchunks, sizeof *acc);
    uint32_t *touched = NULL;
    size_t nt = 0, tcap = 0;
    const double k1 = AD_BM25_K1, b = AD_BM25_B;
    for (size_t i = 0; i < nq; i++) {
        const kterm *e = dict_get((kdict *)&x->dict, q[i].term, q[i].len, false);
        if (!e || q[i].w <= 0)
            continue;
        if (nt + e->n > tcap) {
            tcap = tcap ? tcap : 1024;
            while (tcap < nt + e->n)
                tcap *= 2;
            touched = ad_realloc(touched, tcap * sizeof *touched);
        }
        double w = q[i].w * (k1 + 1);
        for (uint32_t j = 0; j < e->n; j++) {
            uint32_t d = e->p[j].doc;
            if (is_dead(x, d))
                continue;
            double tf = e->p[j].tf;
            double norm = k1 * (1 - b + b * (double)x->lens[d] / avg);
            if (acc[d] == 0)
                touched[nt++] = d;
            acc[d] += w * tf / (tf + norm);
        }
    }
    signed char *verdict = accept ? ad_calloc(x->nfiles + 1, 1) : NULL;
    cand *h = ad_calloc(k, sizeof *h);
    size_t n = 0;
    for (size_t i = 0; i < nt; i++) {
        uint32_t d = touched[i];
        cand c = {acc[d], x->ids[d]};
        if (c.score <= 0 || (n == k && !worse(&h[0], &c)))
            continue;
        if (verdict) {
            uint32_t f = x->fileof[d];
            if (!verdict[f])
                verdict[f] = accept(ud, x->files[f].file_id) ? 1 : -1;
            if (verdict[f] < 0)
                continue;
        }
        if (n < k) {
            h[n++] = c;
            for (size_t j = n - 1; j > 0;) { /* sift up */
                size_t p = (j - 1) / 2;
                if (!worse(&h[j], &h[p]))
                    break;
                cand t = h[j];
                h[j] = h[p];
                h[p] = t;
                j = p;
            }
        } else {
            h[0] = c;
            heap_down(h, n, 0);
        }
    }
    if (n)
        qsort(h, n, sizeof *h, cmp_cand);
    for (size_t i = 0; i < n; i++) {
        ids[i] = h[i].id;
        scores[i] = h[i].score;
    }
    ad_free(h);
    ad_free(verdict);
    ad_free(touched);
    ad_free(acc);
    return n;
}

/* ---------------------------------------------------------------- the cache */

struct ad_kwcache {
    pthread_mutex_t mu;
    size_t budget, bytes;
    uint64_t tick;
    ad_kwidx *list;
};

ad_kwcache *ad_kwcache_new(size_t budget)
{
    ad_kwcache *c = ad_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
    return c;
}

void ad_kwcache_free(ad_kwcache *c)
{
    if (!c)
        return;
    while (c->list) {
        ad_kwidx *x = c->list;
        c->list = x->next;
        idx_free(x);
    }
    pthread_mutex_destroy(&c->mu);
    ad_free(c);
}

size_t ad_kwcache_env_budget(void)
{
    const char *v = getenv("ASSISTD_SEARCH_CACHE_MB");
    int64_t mb = 0;
    if (!v || !ad_parse_i64(v, &mb) || mb <= 0 || mb > (int64_t)1 << 30)
        mb = 2048;
    return (size_t)mb * 1024 * 1024;
}

size_t ad_kwcache_bytes(ad_kwcache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t b = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return b;
}

/* Evicts least recently used indexes not in use while over budget (mu held). */
static void evict(ad_kwcache *c)
{
    while (c->bytes > c->budget) {
        ad_kwidx **victim = NULL;
        for (ad_kwidx **p = &c->list; *p; p = &(*p)->next)
            if (!(*p)->refs && (!victim || (*p)->used < (*victim)->used))
                victim = p;
        if (!victim)
            return;
        ad_kwidx *x = *victim;
        *victim = x->next;
        c->bytes -= x->acct;
        idx_free(x);
    }
}

/* Takes x off the cache's list and frees it (mu held, x unused). */
static void unlink_free(ad_kwcache *c, ad_kwidx *x)
{
    for (ad_kwidx **p = &c->list; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    c->bytes -= x->acct;
    idx_free(x);
}

/* Drops a use of x (mu held): a dropped index goes with its last use. */
static void unref(ad_kwcache *c, ad_kwidx *x)
{
    if (--x->refs == 0 && x->dropped)
        unlink_free(c, x);
}

ad_kwidx *ad_kwcache_acquire(ad_kwcache *c, ad_db *db, const char *store_id, ad_err *rc)
{
    *rc = AD_OK;
    ad_kwidx *x = NULL;
    if (!c) {
        x = idx_new(store_id);
        *rc = idx_sync(x, db);
        if (*rc) {
            idx_free(x);
            return NULL;
        }
        return x;
    }
    pthread_mutex_lock(&c->mu);
    for (x = c->list; x && (x->dropped || strcmp(x->store, store_id) != 0); x = x->next)
        ;
    if (!x) {
        x = idx_new(store_id);
        x->next = c->list;
        c->list = x;
    }
    x->refs++;
    x->used = ++c->tick;
    pthread_mutex_unlock(&c->mu);
    int64_t count = 0, vmax = 0;
    *rc = ad_db_kwseg_version(db, store_id, &count, &vmax);
    if (*rc) {
        pthread_mutex_lock(&c->mu);
        unref(c, x);
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    pthread_rwlock_rdlock(&x->lock);
    if (x->synced && x->vcount == count && x->vmax == vmax)
        return x;
    pthread_rwlock_unlock(&x->lock);
    pthread_rwlock_wrlock(&x->lock);
    if (!x->synced || x->vcount != count || x->vmax != vmax)
        *rc = idx_sync(x, db);
    size_t bytes = idx_bytes(x);
    pthread_rwlock_unlock(&x->lock);
    pthread_mutex_lock(&c->mu);
    c->bytes = c->bytes - x->acct + bytes;
    x->acct = bytes;
    if (*rc)
        unref(c, x);
    evict(c);
    pthread_mutex_unlock(&c->mu);
    if (*rc)
        return NULL;
    pthread_rwlock_rdlock(&x->lock);
    if (!x->synced) { /* another thread's rebuild failed half-way meanwhile */
        ad_kwcache_release(c, x);
        *rc = AD_EDB;
        return NULL;
    }
    return x;
}

void ad_kwcache_release(ad_kwcache *c, ad_kwidx *x)
{
    if (!x)
        return;
    if (!c) {
        idx_free(x);
        return;
    }
    pthread_rwlock_unlock(&x->lock);
    pthread_mutex_lock(&c->mu);
    unref(c, x);
    evict(c);
    pthread_mutex_unlock(&c->mu);
}

void ad_kwcache_drop(ad_kwcache *c, const char *store_id)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (ad_kwidx *x = c->list, *next; x; x = next) {
        next = x->next;
        if (x->dropped || strcmp(x->store, store_id) != 0)
            continue;
        if (x->refs)
            x->dropped = true;
        else
            unlink_free(c, x);
    }
    pthread_mutex_unlock(&c->mu);
}
