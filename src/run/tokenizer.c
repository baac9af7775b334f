/*
 * tokenizer.c -- byte-pair-encoding token counts (the idea is in tokenizer.h).
 *
 * A loaded tokenizer is four read-only things:
 *   data   the .bpe file as read; after its text header come the records
 *          <u8 length><bytes>, so the token bytes are used in place;
 *   slots  an open-addressing hash table (linear probing, load <= 0.5) from
 *          token bytes to rank. A slot is 8 bytes: where the token's bytes
 *          are ((offset in data << 8) | length: lengths are 1..255 and files
 *          are capped at 16 MB) and (rank << 14 | 14 bits of the hash). A
 *          probe that misses is rejected by length and hash bits without
 *          touching the token bytes; a hit costs the slot and the bytes;
 *   pair2  the rank of every two-byte string (NO_RANK if not a token), the
 *          first lookups of every merge, straight from a 256 KB array;
 *   re     the pre-tokenizer regex, compiled (and JIT-compiled) once.
 *
 * Encoding one call: split the input into maximal well-formed UTF-8 runs and
 * the invalid byte runs between them; run the regex over each valid run with
 * PCRE2_NO_UTF_CHECK (we validated already: letting PCRE2 check would rescan
 * the rest of the subject on every match, which is quadratic); feed every
 * match, and every invalid run, to encode_piece -- a match one step late,
 * after its cache entry (below) was prefetched while the regex found the
 * next one.
 *
 * merge_piece (a piece the cache does not answer) keeps its parts as a doubly
 * linked list over byte offsets (a part is named by its first byte): nxt/prv
 * link the parts, tk is the token of a part, pair the rank of the part
 * merged with its successor (NO_RANK when that is not a token). Merging part i with its successor j
 * makes tk[i] = pair[i], unlinks j, and recomputes the only two pair ranks
 * that changed, pair[i] and pair[prv[i]]. The next merge is the lowest
 * (pair rank, offset), which is tiktoken's order (lowest rank, leftmost).
 * Short pieces find it by scanning the list; long ones keep every pair rank
 * ever set in a binary min-heap keyed (rank << 32 | offset) and discard stale
 * entries when popped (an entry is live while its part exists and still has
 * that pair rank; a live entry always matches the current state exactly, so
 * duplicates are harmless). The heap starts with < n entries and each merge
 * pops one and pushes at most two, so it never holds more than 2n: a piece of
 * n bytes needs 32n bytes of scratch, freed when the call returns.
 *
 * Piece cache. Natural text repeats its words, and a word that is not one
 * token costs a merge (several hash probes, each likely a cache miss in the
 * 4 MB table); even a word that is one token costs a probe and a compare of
 * its bytes in the 1.6 MB file. So pieces of 3..CACHE_KEY bytes that give at
 * most CACHE_IDS tokens are remembered in a direct-mapped table of
 * CACHE_SLOTS 64-byte entries (4 MB, allocated at load but touched only as
 * used; 4 MB of NFCorpus text has ~36,000 distinct pieces), shared by
 * all threads without a lock: each entry is eight atomic words guarded by a
 * sequence number (a seqlock). A writer claims the entry by moving the
 * sequence from even to odd with a compare-and-swap (if another thread holds
 * it, the insert is simply skipped), stores the words, and releases it at
 * the next even number; a reader copies the words between two reads of the
 * sequence and uses them only if both were the same even number, so it
 * never sees half an entry. A hit also needs the same length and 48 bits of
 * the hash, and the key bytes themselves are compared, so an entry is only
 * ever used for exactly its own piece; a collision just replaces the entry.
 * The cache can only change speed, never output: it stores what the merge
 * computed. ad_tokenizer_set_cache(t, false) bypasses it (benchmarks).
 *
 * The per-call state (PCRE2 match data, the merge arrays) is allocated per
 * call; after load the tokenizer's only writes are the cache's, which are
 * atomic as described, hence thread safety.
 * If PCRE2 ever fails to match (a resource limit -- not expected with these
 * patterns), the rest of that run counts one token per byte: an upper bound,
 * so truncation stays on the safe side.
 */
#include "run/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/alloc.h"
#include "util/str.h"

#define NO_RANK     UINT32_MAX
#define DEAD        UINT32_MAX
#define MAX_FILE    (16u << 20) /* offsets into the file must fit 24 bits */
#define SMALL_PIECE 64          /* pieces up to this merge by linear scan */
#define MAX_NAME    32
#define TAG_BITS    14
#define MAX_RANKS   (1u << (32 - TAG_BITS)) /* 262144; o200k_base has 199998 */

#define CACHE_SLOTS 65536 /* entries of the piece cache, a power of two */
#define CACHE_KEY   24    /* longest cached piece, bytes (3 words) */
#define CACHE_IDS   6     /* most tokens of a cached piece (3 words) */

/* One piece cache entry: w[0] the sequence (odd while written), w[1] the
 * piece's length << 56 | token count << 48 | 48 bits of its hash (0: empty),
 * w[2..4] its bytes zero-padded, w[5..7] its token ids, two a word. */
typedef struct {
    alignas(64) _Atomic uint64_t w[8];
} centry;

typedef struct {
    uint32_t ref;      /* offset of the token's bytes in data << 8 | length; 0: empty */
    uint32_t rank_tag; /* rank << TAG_BITS | TAG_BITS bits of the hash */
} slot;

struct ad_tokenizer {
    char name[MAX_NAME];
    uint8_t *data; /* the whole .bpe file */
    size_t data_len;
    uint32_t n; /* ranks are 0..n-1 */
    uint32_t max_len;
    slot *slots;
    size_t mask;      /* number of slots - 1 */
    uint32_t *pair2;  /* rank of the two bytes (a << 8 | b) */
    uint8_t *tok_len; /* byte length of each rank */
    uint32_t byte_rank[256];
    pcre2_general_context *gctx;
    pcre2_code *re;
    bool jit;
    bool use_cache;
    centry *cache; /* CACHE_SLOTS entries, 64-byte aligned inside cache_mem */
    void *cache_mem;
    size_t mem;
};

/* ---- hashing and rank lookup ------------------------------------------ */

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * Hash of p[0..n), n >= 1. Short keys (most lookups are 2..8 bytes) take one
 * word built from overlapping reads, which with n mixed in is injective;
 * longer ones fold 8-byte words. Never reads outside p[0..n).
 */
static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull * (n + 1), w;
    if (n <= 8) {
        if (n >= 4)
            w = rd32(p) | rd32(p + n - 4) << 32;
        else
            w = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
    } else {
        for (size_t i = 0; i + 8 < n; i += 8) {
            h = (h ^ rd64(p + i)) * 0xbf58476d1ce4e5b9ull;
            h ^= h >> 31;
        }
        w = rd64(p + n - 8);
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static bool bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n > 8)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* The slot for p[0..n) of hash h: the one holding it, or the empty one
 * ending its probe. */
static const slot *find_slot_h(const ad_tokenizer *t, const uint8_t *p, size_t n, uint64_t h)
{
    uint32_t tag = (uint32_t)(h >> 40) & ((1u << TAG_BITS) - 1);
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        const slot *s = &t->slots[i];
        if (s->ref == 0)
            return s;
        if ((s->ref & 0xff) == n && (s->rank_tag & ((1u << TAG_BITS) - 1)) == tag &&
            bytes_equal(t->data + (s->ref >> 8), p, n))
            return s;
    }
}

static const slot *find_slot(const ad_tokenizer *t, const uint8_t *p, size_t n)
{
    return find_slot_h(t, p, n, hash_bytes(p, n));
}

static uint32_t rank_of(const ad_tokenizer *t, const uint8_t *p, size_t n)
{
    if (n == 0 || n > t->max_len)
        return NO_RANK;
    const slot *s = find_slot(t, p, n);
    return s->ref ? s->rank_tag >> TAG_BITS : NO_RANK;
}

/* Inserts the token of rank r at data offset off; false if already there. */
static bool insert_rank(ad_tokenizer *t, uint32_t r, uint32_t off, uint32_t len)
{
    slot *s = (slot *)find_slot(t, t->data + off, len);
    if (s->ref)
        return false;
    uint64_t h = hash_bytes(t->data + off, len);
    s->ref = off << 8 | len;
    s->rank_tag = r << TAG_BITS | ((uint32_t)(h >> 40) & ((1u << TAG_BITS) - 1));
    return true;
}

/* ---- output ------------------------------------------------------------ */

typedef struct {
    uint32_t *ids; /* may be NULL: count only */
    size_t cap;
    size_t count;
} sink;

static void emit(sink *out, uint32_t id)
{
    if (out->count < out->cap)
        out->ids[out->count] = id;
    out->count++;
}

/* ---- byte-pair merge ---------------------------------------------------- */

/* Per-call arrays for merge_piece, from the stack for short pieces. */
typedef struct {
    uint32_t *nxt, *prv, *pair, *tk; /* the arrays for the current piece */
    uint32_t *big;                   /* 4 * cap entries, allocated on demand */
    uint64_t *heap;                  /* 2 * cap entries */
    size_t cap;                      /* bytes of piece big can hold; 0: none */
    uint32_t small[4][SMALL_PIECE];
} scratch;

static void scratch_free(scratch *sc)
{
    if (sc->cap) {
        ad_free(sc->big);
        ad_free(sc->heap);
    }
    sc->cap = 0;
}

/* Points the arrays at room for a piece of n bytes. */
static void scratch_reserve(scratch *sc, size_t n)
{
    if (n <= SMALL_PIECE) {
        sc->nxt = sc->small[0];
        sc->prv = sc->small[1];
        sc->pair = sc->small[2];
        sc->tk = sc->small[3];
        return;
    }
    if (n > sc->cap) {
        scratch_free(sc);
        size_t cap = n < 4096 ? 4096 : n;
        sc->big = ad_malloc(4 * cap * sizeof *sc->big);
        sc->heap = ad_malloc(2 * cap * sizeof *sc->heap);
        sc->cap = cap;
    }
    sc->nxt = sc->big;
    sc->prv = sc->big + sc->cap;
    sc->pair = sc->big + 2 * sc->cap;
    sc->tk = sc->big + 3 * sc->cap;
}

/* Rank of part i merged with its successor, over piece p[0..n). */
static uint32_t pair_rank(const ad_tokenizer *t, const uint8_t *p, uint32_t n, const uint32_t *nxt,
                          uint32_t i)
{
    uint32_t j = nxt[i];
    if (j >= n)
        return NO_RANK;
    return rank_of(t, p + i, nxt[j] - i);
}

static void heap_push(uint64_t *heap, size_t *len, uint64_t key)
{
    size_t i = (*len)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (heap[up] <= key)
            break;
        heap[i] = heap[up];
        i = up;
    }
    heap[i] = key;
}

static uint64_t heap_pop(uint64_t *heap, size_t *len)
{
    uint64_t top = heap[0], key = heap[--*len];
    size_t i = 0, n = *len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap[c + 1] < heap[c])
            c++;
        if (key <= heap[c])
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (n)
        heap[i] = key;
    return top;
}

/* Merges part i with its successor; returns the part whose pair rank changed
 * besides i (its predecessor), or DEAD when i is the first part. */
static uint32_t merge_at(const ad_tokenizer *t, const uint8_t *p, uint32_t n, scratch *sc,
                         uint32_t i)
{
    uint32_t j = sc->nxt[i], k = sc->nxt[j];
    sc->tk[i] = sc->pair[i];
    sc->nxt[i] = k;
    if (k < n)
        sc->prv[k] = i;
    sc->nxt[j] = DEAD;
    sc->pair[i] = pair_rank(t, p, n, sc->nxt, i);
    if (i == 0)
        return DEAD;
    uint32_t h = sc->prv[i];
    sc->pair[h] = pair_rank(t, p, n, sc->nxt, h);
    return h;
}

/* Encodes a piece of len >= 3 bytes by merging (the cache's miss path). */
static void merge_piece(const ad_tokenizer *t, const uint8_t *p, size_t len, scratch *sc, sink *out)
{
    uint32_t whole = rank_of(t, p, len);
    if (whole != NO_RANK) {
        emit(out, whole);
        return;
    }
    if (len > UINT32_MAX / 4) { /* offsets are 32-bit: a piece over 1 GB is bytes */
        for (size_t i = 0; i < len; i++)
            emit(out, t->byte_rank[p[i]]);
        return;
    }
    uint32_t n = (uint32_t)len;
    scratch_reserve(sc, n);
    for (uint32_t i = 0; i < n; i++) {
        sc->nxt[i] = i + 1;
        sc->prv[i] = i - 1; /* prv[0] is never read */
        sc->tk[i] = t->byte_rank[p[i]];
    }
    for (uint32_t i = 0; i + 1 < n; i++)
        sc->pair[i] = t->pair2[p[i] << 8 | p[i + 1]];
    sc->pair[n - 1] = NO_RANK;

    if (n <= SMALL_PIECE) {
        for (;;) {
            uint32_t best = NO_RANK, at = 0;
            for (uint32_t i = 0; i < n; i = sc->nxt[i]) {
                if (sc->pair[i] < best) {
                    best = sc->pair[i];
                    at = i;
                }
            }
            if (best == NO_RANK)
                break;
            merge_at(t, p, n, sc, at);
        }
    } else {
        size_t hlen = 0;
        for (uint32_t i = 0; i < n; i++)
            if (sc->pair[i] != NO_RANK)
                heap_push(sc->heap, &hlen, (uint64_t)sc->pair[i] << 32 | i);
        while (hlen) {
            uint64_t key = heap_pop(sc->heap, &hlen);
            uint32_t r = (uint32_t)(key >> 32), i = (uint32_t)key;
            if (sc->nxt[i] == DEAD || sc->pair[i] != r)
                continue; /* stale */
            uint32_t h = merge_at(t, p, n, sc, i);
            if (sc->pair[i] != NO_RANK)
                heap_push(sc->heap, &hlen, (uint64_t)sc->pair[i] << 32 | i);
            if (h != DEAD && sc->pair[h] != NO_RANK)
                heap_push(sc->heap, &hlen, (uint64_t)sc->pair[h] << 32 | h);
        }
    }
    for (uint32_t i = 0; i < n; i = sc->nxt[i])
        emit(out, sc->tk[i]);
}

/* ---- the piece cache ---------------------------------------------------- */

#define META_TOKENS(m) ((size_t)((m) >> 48 & 0xff))

/* Copies entry e's ids into ids if it holds the piece whose length and hash
 * are meta (len << 56 | 48 hash bits) and whose padded bytes are key; the
 * number of ids, or 0 on a miss (a cached piece has at least one token). */
static size_t cache_get(centry *e, uint64_t meta, const uint64_t key[3], uint32_t *ids)
{
    uint64_t v = atomic_load_explicit(&e->w[0], memory_order_acquire);
    if (v & 1)
        return 0;
    uint64_t m = atomic_load_explicit(&e->w[1], memory_order_relaxed);
    if ((m & ~(0xffull << 48)) != meta)
        return 0;
    if (atomic_load_explicit(&e->w[2], memory_order_relaxed) != key[0] ||
        atomic_load_explicit(&e->w[3], memory_order_relaxed) != key[1] ||
        atomic_load_explicit(&e->w[4], memory_order_relaxed) != key[2])
        return 0;
    uint64_t w[3];
    for (size_t i = 0; i < 3; i++)
        w[i] = atomic_load_explicit(&e->w[5 + i], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&e->w[0], memory_order_relaxed) != v)
        return 0; /* written meanwhile: what we read may be torn */
    size_t n = META_TOKENS(m);
    if (n == 0 || n > CACHE_IDS)
        return 0;
    for (size_t i = 0; i < n; i++)
        ids[i] = (uint32_t)(w[i / 2] >> (32 * (i % 2)));
    return n;
}

/* Stores ids[0..n) (1 <= n <= CACHE_IDS) as the tokens of the piece in
 * entry e, unless another thread is writing e right now. */
static void cache_put(centry *e, uint64_t meta, const uint64_t key[3], const uint32_t *ids,
                      size_t n)
{
    uint64_t v = atomic_load_explicit(&e->w[0], memory_order_relaxed);
    if ((v & 1) || !atomic_compare_exchange_strong_explicit(
                       &e->w[0], &v, v + 1, memory_order_acquire, memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    uint64_t w[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        w[i / 2] |= (uint64_t)ids[i] << (32 * (i % 2));
    atomic_store_explicit(&e->w[1], meta | (uint64_t)n << 48, memory_order_relaxed);
    for (size_t i = 0; i < 3; i++) {
        atomic_store_explicit(&e->w[2 + i], key[i], memory_order_relaxed);
        atomic_store_explicit(&e->w[5 + i], w[i], memory_order_relaxed);
    }
    atomic_store_explicit(&e->w[0], v + 2, memory_order_release);
}

/* Whether pieces of len bytes go through the cache. */
static bool cacheable(const ad_tokenizer *t, size_t len)
{
    return t->use_cache && len >= 3 && len <= CACHE_KEY;
}

static centry *cache_entry(const ad_tokenizer *t, uint64_t h)
{
    return &t->cache[(h >> 20) & (CACHE_SLOTS - 1)];
}

/* Emits the tokens of one piece p[0..len): short ones straight from the
 * tables, the rest through the cache or the merge. h is hash_bytes(p, len)
 * when cacheable(t, len), unused otherwise. */
static void encode_piece_h(const ad_tokenizer *t, const uint8_t *p, size_t len, uint64_t h,
                           scratch *sc, sink *out)
{
    if (len == 0)
        return;
    if (len == 1) {
        emit(out, t->byte_rank[p[0]]);
        return;
    }
    if (len == 2) {
        uint32_t r = t->pair2[p[0] << 8 | p[1]];
        if (r != NO_RANK) {
            emit(out, r);
        } else {
            emit(out, t->byte_rank[p[0]]);
            emit(out, t->byte_rank[p[1]]);
        }
        return;
    }
    if (!cacheable(t, len)) {
        merge_piece(t, p, len, sc, out);
        return;
    }
    uint64_t key[3] = {0, 0, 0};
    memcpy(key, p, len);
    uint64_t meta = (uint64_t)len << 56 | (h & 0xffffffffffffull);
    centry *e = cache_entry(t, h);
    uint32_t ids[CACHE_KEY]; /* a piece never has more tokens than bytes */
    size_t n = cache_get(e, meta, key, ids);
    if (!n) {
        sink mine = {ids, CACHE_KEY, 0};
        merge_piece(t, p, len, sc, &mine);
        n = mine.count;
        if (n <= CACHE_IDS)
            cache_put(e, meta, key, ids, n);
    }
    for (size_t i = 0; i < n; i++)
        emit(out, ids[i]);
}

static void encode_piece(const ad_tokenizer *t, const uint8_t *p, size_t len, scratch *sc,
                         sink *out)
{
    encode_piece_h(t, p, len, cacheable(t, len) ? hash_bytes(p, len) : 0, sc, out);
}

/*
 * The piece found last, encoded only once the next one has been found: its
 * cache entry is prefetched when it is found, so the memory latency of the
 * entry (a random line of a 4 MB table) overlaps the regex's next match.
 */
typedef struct {
    const uint8_t *p;
    size_t len; /* 0: none */
    uint64_t h;
} deferred;

static void defer_flush(const ad_tokenizer *t, deferred *d, scratch *sc, sink *out)
{
    if (d->len)
        encode_piece_h(t, d->p, d->len, d->h, sc, out);
    d->len = 0;
}

static void defer_piece(const ad_tokenizer *t, deferred *d, const uint8_t *p, size_t len,
                        scratch *sc, sink *out)
{
    defer_flush(t, d, sc, out);
    d->p = p;
    d->len = len;
    d->h = 0;
    if (cacheable(t, len)) {
        d->h = hash_bytes(p, len);
        __builtin_prefetch(cache_entry(t, d->h));
    }
}

/* ---- UTF-8 and the pre-tokenizer ---------------------------------------- */

/* Length of the well-formed UTF-8 sequence starting p[0..n) (n > 0), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    size_t k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) || /* overlong, surrogate */
        (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))   /* overlong, > U+10FFFF */
        return 0;
    return k;
}

static size_t utf8_valid_prefix(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0)
            break;
        i += k;
    }
    return i;
}

/* Length of the run of bytes at p[0..n) that start no well-formed sequence
 * (at least 1: the caller found p[0] invalid). */
static size_t utf8_invalid_run(const uint8_t *p, size_t n)
{
    size_t i = 1;
    while (i < n && utf8_seq(p + i, n - i) == 0)
        i++;
    return i;
}

static int match_at(const ad_tokenizer *t, const uint8_t *s, size_t n, size_t off,
                    pcre2_match_data *md)
{
    if (t->jit) {
        int rc = pcre2_jit_match(t->re, s, n, off, 0, md, NULL);
        if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH)
            return rc;
    }
    return pcre2_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
}

/* Encodes well-formed UTF-8 s[0..n). */
static void encode_valid(const ad_tokenizer *t, const uint8_t *s, size_t n, pcre2_match_data *md,
                         scratch *sc, sink *out)
{
    size_t off = 0;
    deferred d = {NULL, 0, 0};
    while (off < n) {
        int rc = match_at(t, s, n, off, md);
        if (rc == PCRE2_ERROR_NOMATCH) { /* every character matches some branch */
            defer_piece(t, &d, s + off, n - off, sc, out);
            break;
        }
        defer_flush(t, &d, sc, out);
        if (rc < 0) { /* a resource limit: count an upper bound */
            for (; off < n; off++)
                emit(out, t->byte_rank[s[off]]);
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms < off || ms > n || me > n) { /* impossible; keep the walk bounded */
            encode_piece(t, s + off, n - off, sc, out);
            break;
        }
        if (ms > off) /* text no branch matched (not expected) is a piece */
            encode_piece(t, s + off, ms - off, sc, out);
        if (me <= ms) { /* an empty match (not expected): take one character */
            if (ms >= n)
                break;
            me = ms + utf8_seq(s + ms, n - ms);
        }
        defer_piece(t, &d, s + ms, me - ms, sc, out);
        off = me;
    }
    defer_flush(t, &d, sc, out);
}

static size_t encode_text(const ad_tokenizer *t, const char *text, size_t len, uint32_t *ids,
                          size_t cap)
{
    sink out = {ids, ids ? cap : 0, 0};
    if (!t || !text || len == 0)
        return 0;
    const uint8_t *p = (const uint8_t *)text;
    scratch sc;
    sc.cap = 0;
    pcre2_match_data *md = pcre2_match_data_create(1, t->gctx); /* aborts on OOM */
    size_t pos = 0;
    while (pos < len) {
        size_t v = utf8_valid_prefix(p + pos, len - pos);
        if (v) {
            encode_valid(t, p + pos, v, md, &sc, &out);
            pos += v;
        }
        if (pos < len) {
            size_t bad = utf8_invalid_run(p + pos, len - pos);
            encode_piece(t, p + pos, bad, &sc, &out);
            pos += bad;
        }
    }
    pcre2_match_data_free(md);
    scratch_free(&sc);
    return out.count;
}

/* ---- loading ------------------------------------------------------------ */

static void *re_malloc(PCRE2_SIZE n, void *ud)
{
    (void)ud;
    return ad_malloc(n);
}

static void re_free(void *p, void *ud)
{
    (void)ud;
    ad_free(p);
}

static bool valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
        if (n + 1 >= MAX_NAME)
            return false;
    }
    return n > 0;
}

static ad_err read_file(const char *path, uint8_t **data, size_t *len)
{
    ad_err rc = AD_OK;
    uint8_t *buf = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR ? AD_ENOTFOUND : AD_EIO;
    if (fstat(fileno(f), &st) != 0) {
        rc = AD_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = AD_EINVAL;
        goto out;
    }
    if (st.st_size > (off_t)MAX_FILE) {
        rc = AD_ETOOBIG;
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = ad_malloc(n + 1);
    if (fread(buf, 1, n, f) != n || fgetc(f) != EOF) { /* changed under us */
        rc = AD_EIO;
        goto out;
    }
    *data = buf;
    *len = n;
    buf = NULL;
out:
    ad_free(buf);
    fclose(f);
    return rc;
}

/* Reads the header line "<key>" or "<key> <value>" at *pos; false on mismatch. */
static bool header_line(const uint8_t *d, size_t len, size_t *pos, const char *key,
                        const char **val, size_t *vlen)
{
    size_t k = strlen(key), i = *pos;
    const uint8_t *nl = memchr(d + i, '\n', len - i);
    if (!nl)
        return false;
    size_t end = (size_t)(nl - d);
    if (end - i < k || memcmp(d + i, key, k) != 0)
        return false;
    i += k;
    if (val) {
        if (i >= end || d[i] != ' ')
            return false;
        *val = (const char *)d + i + 1;
        *vlen = end - i - 1;
    } else if (i != end) {
        return false;
    }
    *pos = end + 1;
    return true;
}

/*
 * The published patterns are written for Rust's regex, where \s is exactly
 * Unicode's White_Space; PCRE2 10.42's \s (with UCP) adds U+180E, which
 * Unicode dropped from White_Space in 6.3 ("x \u180eword" splits differently).
 * Spells the set out: \s -> [WS] and \S -> [^WS] outside a class, \s -> WS
 * inside one. Returns a new string, owned by the caller.
 */
#define WHITE_SPACE                                                                                \
    "\\t\\n\\x{0B}\\f\\r "                                                                         \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static char *rust_space(const char *pat, size_t n)
{
    static const char in_cls[] = WHITE_SPACE, pos[] = "[" WHITE_SPACE "]",
                      neg[] = "[^" WHITE_SPACE "]";
    char *o = ad_malloc(n / 2 * sizeof neg + n + 1),
         *w = o; /* each 2-byte \s grows to at most neg */
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char e = pat[++i];
            const char *rep = NULL;
            if (e == 's')
                rep = in_class ? in_cls : pos;
            else if (e == 'S' && !in_class)
                rep = neg;
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(w, rep, rl);
                w += rl;
            } else {
                *w++ = c;
                *w++ = e;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            class_start = i + 1;
            if (i + 1 < n && pat[i + 1] == '^')
                class_start++;
        } else if (in_class && c == ']' && i != class_start) {
            in_class = false;
        }
        *w++ = c;
    }
    *w = '\0';
    return o;
}

static ad_err compile_pattern(ad_tokenizer *t, const char *pat, size_t n)
{
    ad_err rc = AD_OK;
    int err;
    PCRE2_SIZE erroff;
    char *wide = rust_space(pat, n);
    pcre2_compile_context *cc = pcre2_compile_context_create(t->gctx);
    t->re = pcre2_compile((PCRE2_SPTR)wide, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_AUTO_CAPTURE | PCRE2_NEVER_BACKSLASH_C,
                          &err, &erroff, cc);
    if (!t->re) {
        rc = AD_EINVAL;
        goto out;
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    size_t sz = 0, jsz = 0;
    if (pcre2_pattern_info(t->re, PCRE2_INFO_SIZE, &sz) == 0)
        t->mem += sz;
    if (t->jit && pcre2_pattern_info(t->re, PCRE2_INFO_JITSIZE, &jsz) == 0)
        t->mem += jsz;
out:
    pcre2_compile_context_free(cc);
    ad_free(wide);
    return rc;
}

/* Parses the file in t->data into the rank table, the hash and the regex. */
static ad_err parse(ad_tokenizer *t, const char *want_name)
{
    const uint8_t *d = t->data;
    size_t len = t->data_len, pos = 0, vlen = 0;
    const char *val = NULL;
    int64_t count = 0;

    if (!header_line(d, len, &pos, "assistd-bpe 1", NULL, NULL) ||
        !header_line(d, len, &pos, "name", &val, &vlen) || vlen == 0 || vlen >= MAX_NAME)
        return AD_EINVAL;
    memcpy(t->name, val, vlen);
    t->name[vlen] = '\0';
    if (!valid_name(t->name) || (want_name && strcmp(want_name, t->name) != 0))
        return AD_EINVAL;
    if (!header_line(d, len, &pos, "source", &val, &vlen) ||
        !header_line(d, len, &pos, "count", &val, &vlen) || !ad_parse_i64n(val, vlen, &count) ||
        count < 256 || count > (int64_t)(len / 2))
        return AD_EINVAL;
    if (count > (int64_t)MAX_RANKS)
        return AD_EINVAL;
    t->n = (uint32_t)count;
    if (!header_line(d, len, &pos, "pattern", &val, &vlen) || vlen == 0)
        return AD_EINVAL;
    const char *pat = val;
    size_t pat_len = vlen;
    if (!header_line(d, len, &pos, "data", NULL, NULL))
        return AD_EINVAL;

    size_t slots = 1024;
    while (slots < 2 * (size_t)t->n)
        slots *= 2;
    t->slots = ad_calloc(slots, sizeof *t->slots);
    t->mask = slots - 1;
    t->tok_len = ad_malloc(t->n);
    for (uint32_t r = 0; r < t->n; r++) {
        if (pos >= len || d[pos] == 0 || d[pos] > len - pos - 1)
            return AD_EINVAL;
        uint32_t l = d[pos];
        t->tok_len[r] = (uint8_t)l;
        if (!insert_rank(t, r, (uint32_t)pos + 1, l))
            return AD_EINVAL; /* the same bytes twice */
        if (l > t->max_len)
            t->max_len = l;
        pos += 1 + l;
    }
    if (pos != len)
        return AD_EINVAL;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t one[1] = {(uint8_t)b};
        t->byte_rank[b] = rank_of(t, one, 1);
        if (t->byte_rank[b] == NO_RANK)
            return AD_EINVAL; /* BPE needs every single byte */
    }
    t->pair2 = ad_malloc(65536 * sizeof *t->pair2);
    for (unsigned ab = 0; ab < 65536; ab++) {
        uint8_t two[2] = {(uint8_t)(ab >> 8), (uint8_t)ab};
        t->pair2[ab] = rank_of(t, two, 2);
    }
    size_t csize = CACHE_SLOTS * sizeof(centry);
    t->cache_mem = ad_calloc(1, csize + alignof(centry));
    uintptr_t at = (uintptr_t)t->cache_mem;
    t->cache = (centry *)(at + (alignof(centry) - at % alignof(centry)) % alignof(centry));
    t->use_cache = true;
    t->mem += sizeof *t + t->data_len + slots * sizeof *t->slots + 65536 * sizeof *t->pair2 + t->n +
              csize;
    return compile_pattern(t, pat, pat_len);
}

ad_err ad_tokenizer_load(const char *path, const char *name, ad_tokenizer **out)
{
    ad_err rc = AD_OK;
    ad_tokenizer *t = NULL;
    char file[4096];
    struct stat st;

    if (!out)
        return AD_EINVAL;
    *out = NULL;
    if (!path || !*path || (name && !valid_name(name)))
        return AD_EINVAL;
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? AD_ENOTFOUND : AD_EIO;
    if (S_ISDIR(st.st_mode)) {
        if (!name)
            return AD_EINVAL;
        int w = snprintf(file, sizeof file, "%s/%s.bpe", path, name);
        if (w < 0 || (size_t)w >= sizeof file)
            return AD_ETOOBIG;
    } else if (ad_strlcpy(file, path, sizeof file) >= sizeof file) {
        return AD_ETOOBIG;
    }

    t = ad_calloc(1, sizeof *t);
    rc = read_file(file, &t->data, &t->data_len);
    if (rc)
        goto out;
    t->gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
    rc = parse(t, name);
    if (rc)
        goto out;
    *out = t;
    t = NULL;
out:
    ad_tokenizer_free(t);
    return rc;
}

void ad_tokenizer_free(ad_tokenizer *t)
{
    if (!t)
        return;
    pcre2_code_free(t->re);
    pcre2_general_context_free(t->gctx);
    ad_free(t->slots);
    ad_free(t->pair2);
    ad_free(t->tok_len);
    ad_free(t->cache_mem);
    ad_free(t->data);
    ad_free(t);
}

void ad_tokenizer_set_cache(ad_tokenizer *t, bool on)
{
    t->use_cache = on;
}

const char *ad_tokenizer_name(const ad_tokenizer *t)
{
    return t->name;
}

size_t ad_tokenizer_vocab_size(const ad_tokenizer *t)
{
    return t->n;
}

size_t ad_tokenizer_memory(const ad_tokenizer *t)
{
    return t->mem;
}

size_t ad_tokenizer_token_bytes(const ad_tokenizer *t, uint32_t id)
{
    return id < t->n ? t->tok_len[id] : 0;
}

size_t ad_tokenizer_count(const ad_tokenizer *t, const char *text, size_t len)
{
    return encode_text(t, text, len, NULL, 0);
}

size_t ad_tokenizer_encode(const ad_tokenizer *t, const char *text, size_t len, uint32_t *ids,
                           size_t cap)
{
    return encode_text(t, text, len, ids, cap);
}

size_t ad_tokenizer_chat_overhead(size_t n_messages, size_t n_named)
{
    return n_messages * AD_TOKENIZER_TOKENS_PER_MESSAGE + n_named * AD_TOKENIZER_TOKENS_PER_NAME +
           AD_TOKENIZER_REPLY_PRIMING;
}
