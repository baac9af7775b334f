/*
 * chunk.c -- token-bounded, overlapping chunks of extracted text (the idea is
 * in chunk.h).
 *
 * The whole text is encoded once; replacing every token id by the byte
 * offset where the token starts (ad_tokenizer_token_bytes, summed) gives a
 * sorted array off[0..nt] (off[nt] == len), so "the byte position k tokens
 * after s" is one binary search. Tokens may end inside a UTF-8 character;
 * chunk boundaries are therefore chosen among byte positions, classified by
 * what a cut there would split:
 *
 *   PARA  the start of a word after whitespace holding 2+ newlines
 *   LINE  ... after whitespace holding one newline
 *   SENT  ... after whitespace that follows . ! ? (possibly closed by a quote
 *         or bracket), or right after a CJK full stop / ! / ?
 *   WORD  ... after other whitespace
 *   CHAR  any other UTF-8 character boundary
 *
 * A chunk starting at s gets the window [s, L) of max_tokens tokens; its end
 * is the strongest boundary in the window's last part (at least
 * overlap + (max - overlap) / 2 tokens in, so every chunk moves the start on
 * by at least half the stride, and past the previous chunk's end, so that no
 * chunk lies inside the one before), the last such boundary of that class. The
 * next chunk starts about overlap_tokens before the end: the strongest
 * boundary within a quarter of the overlap either side of that point, the
 * nearest one on ties. Since a substring does not always tokenize exactly as
 * the same bytes inside the whole text, each chunk is counted on its own and
 * a chunk over the maximum is recomputed with a smaller window.
 *
 * Counting a chunk without tokenizing it again. Call p a hard cut when
 * t[p-1] is an ASCII character other than whitespace and t[p] is a space.
 * In both published pre-tokenizer patterns (o200k_base, cl100k_base) a
 * space can only be the first character of a piece or part of a piece made
 * of whitespace alone, so no piece holds both t[p-1] and t[p]: every split
 * of every substring containing both has a piece boundary at p. Nor does
 * matching a piece that ends at p look past t[p] (the elements that could
 * take more would have to take that space). So in valid UTF-8 (one run for
 * the tokenizer), for hard cuts s < h1 <= h2 < e, the pieces of t[s..e)
 * between h1 and h2 are the whole text's, and since a piece's tokens depend
 * on the piece alone,
 *     count(t[s..e)) = count(t[s..h1)) + (tokens of the text in [h1, h2))
 *                      + count(t[h2..e)),
 * the middle read off the offsets array. h1 is the first hard cut after s,
 * h2 the last before e (a word or two each); a chunk with none near its
 * ends, text that is not valid UTF-8, or another encoding is counted whole.
 * The unit tests check every chunk's count against a full count.
 */
#include "ingest/chunk.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/alloc.h"

#define CUT_SCAN 256 /* bytes searched for a hard cut at each end of a chunk */

enum { B_NONE, B_CHAR, B_WORD, B_SENT, B_LINE, B_PARA };

typedef struct {
    const ad_tokenizer *tok;
    const unsigned char *t;
    size_t len;
    uint32_t *off; /* off[i]: byte where token i starts; off[nt] == len */
    size_t nt;
    bool cuts; /* hard cuts may be used (valid UTF-8, a known encoding) */
} doc;

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Length of the well-formed UTF-8 sequence at t[q..len), or 0. */
static size_t seq_len(const doc *d, size_t q)
{
    const unsigned char *t = d->t + q;
    size_t n = d->len - q, k;
    if (t[0] < 0xC2 || t[0] > 0xF4)
        return t[0] < 0x80;
    k = t[0] < 0xE0 ? 2 : t[0] < 0xF0 ? 3 : 4;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((t[i] & 0xC0) != 0x80)
            return 0;
    if ((t[0] == 0xE0 && t[1] < 0xA0) || (t[0] == 0xED && t[1] >= 0xA0) ||
        (t[0] == 0xF0 && t[1] < 0x90) || (t[0] == 0xF4 && t[1] >= 0x90))
        return 0;
    return k;
}

/* Whether p is not inside a well-formed UTF-8 character (a stray
 * continuation byte of invalid text may be cut before). */
static bool char_start(const doc *d, size_t p)
{
    if (p >= d->len || (d->t[p] & 0xC0) != 0x80)
        return true;
    for (size_t k = 1; k <= 3 && k <= p; k++) {
        unsigned char c = d->t[p - k];
        if ((c & 0xC0) != 0x80)
            return seq_len(d, p - k) <= k;
    }
    return true;
}

/* Boundary class of cutting the text at p (0 < p < len). */
static int classify(const doc *d, size_t p)
{
    const unsigned char *t = d->t;
    if (!char_start(d, p))
        return B_NONE;
    if (is_ws(t[p]))
        return B_CHAR;
    if (!is_ws(t[p - 1])) {
        if (p >= 3 && ((t[p - 3] == 0xE3 && t[p - 2] == 0x80 && t[p - 1] == 0x82) || /* 。 */
                       (t[p - 3] == 0xEF && t[p - 2] == 0xBC &&
                        (t[p - 1] == 0x81 || t[p - 1] == 0x9F)))) /* ！ ？ */
            return B_SENT;
        return B_CHAR;
    }
    size_t q = p, nl = 0;
    while (q > 0 && is_ws(t[q - 1])) {
        nl += t[q - 1] == '\n';
        q--;
    }
    if (nl >= 2)
        return B_PARA;
    if (nl == 1)
        return B_LINE;
    while (q > 0 && (t[q - 1] == '"' || t[q - 1] == '\'' || t[q - 1] == ')' || t[q - 1] == ']'))
        q--;
    if (q > 0 && (t[q - 1] == '.' || t[q - 1] == '!' || t[q - 1] == '?'))
        return B_SENT;
    return B_WORD;
}

/* Whether the text is well-formed UTF-8 by the tokenizer's rules (which
 * seq_len mirrors), so that the tokenizer sees it as one valid run. */
static bool all_valid(const doc *d)
{
    for (size_t q = 0; q < d->len;) {
        if (d->t[q] < 0x80) {
            q++;
            continue;
        }
        size_t k = seq_len(d, q);
        if (!k)
            return false;
        q += k;
    }
    return true;
}

/* p is a hard cut (see the top of the file); 0 < p < len. */
static bool hard_cut(const doc *d, size_t p)
{
    unsigned char a = d->t[p - 1];
    return d->t[p] == ' ' && a < 0x80 && !is_ws(a);
}

/* Largest i <= nt with off[i] <= pos. */
static size_t tok_at(const doc *d, size_t pos)
{
    size_t lo = 0, hi = d->nt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (d->off[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Exact token count of text[s..e) (s < e): as ad_tokenizer_count, with the
 * middle between two hard cuts read off the whole text's tokens. */
static size_t span_tokens(const doc *d, size_t s, size_t e)
{
    const char *txt = (const char *)d->t;
    if (d->cuts && e - s > 2) {
        size_t h1 = s + 1, h2 = e - 1, lim1 = e - s > CUT_SCAN ? s + CUT_SCAN : e,
               lim2 = e - s > CUT_SCAN ? e - CUT_SCAN : s;
        while (h1 < lim1 && !hard_cut(d, h1))
            h1++;
        while (h2 > lim2 && !hard_cut(d, h2))
            h2--;
        if (h1 < lim1 && h2 > lim2 && h1 <= h2) {
            size_t a = tok_at(d, h1), b = tok_at(d, h2);
            if (d->off[a] == h1 && d->off[b] == h2) /* piece starts are token starts */
                return ad_tokenizer_count(d->tok, txt + s, h1 - s) + (b - a) +
                       ad_tokenizer_count(d->tok, txt + h2, e - h2);
        }
    }
    return ad_tokenizer_count(d->tok, txt + s, e - s);
}

/* Byte position of token index i (clamped to the end). */
static size_t pos_of(const doc *d, size_t i)
{
    return d->off[i < d->nt ? i : d->nt];
}

/* First character boundary after s (at most len). */
static size_t next_char(const doc *d, size_t s)
{
    size_t p = s + 1;
    while (p < d->len && !char_start(d, p))
        p++;
    return p;
}

/* The last strongest boundary in (lo, hi]; 0 when there is none. */
static size_t best_before(const doc *d, size_t lo, size_t hi)
{
    size_t best = 0;
    int cls = B_NONE;
    for (size_t p = hi; p > lo && cls < B_PARA; p--) {
        int k = classify(d, p);
        if (k > cls) {
            cls = k;
            best = p;
        }
    }
    return best;
}

/* End of the chunk starting at s whose window is lim tokens; past min_end
 * (the previous chunk's end) whenever the window reaches beyond it. */
static size_t chunk_end(const doc *d, size_t s, size_t lim, size_t overlap, size_t min_end)
{
    size_t ts = tok_at(d, s);
    if (ts + lim >= d->nt)
        return d->len;
    size_t hard = pos_of(d, ts + lim);
    size_t lo_tok = overlap + (lim > overlap ? (lim - overlap) / 2 : 0);
    if (lo_tok >= lim)
        lo_tok = lim - 1;
    size_t lo = pos_of(d, ts + lo_tok);
    if (lo < s)
        lo = s;
    if (lo < min_end && min_end < hard) /* a chunk inside the previous one adds nothing */
        lo = min_end;
    size_t e = best_before(d, lo, hard);
    if (!e && lo > min_end && min_end > s)
        e = best_before(d, min_end, lo);
    if (!e && lo > s)
        e = best_before(d, s, lo);
    if (!e) /* not one character boundary in the window: take one character */
        e = next_char(d, s);
    return e;
}

/* Start of the chunk after [s, e): about overlap tokens before e. */
static size_t next_start(const doc *d, size_t s, size_t e, size_t overlap)
{
    size_t p = e;
    if (overlap) {
        size_t te = tok_at(d, e), q = overlap / 4;
        size_t tt = te > overlap ? te - overlap : 0;
        size_t target = pos_of(d, tt);
        size_t wl = pos_of(d, tt > q ? tt - q : 0), wr = pos_of(d, tt + q);
        if (wl < s)
            wl = s;
        if (wr > e)
            wr = e;
        if (target < wl)
            target = wl;
        if (target > wr)
            target = wr;
        /* strongest class in [wl, wr], nearest to target on ties */
        int cls = B_NONE;
        size_t best = 0, dist = SIZE_MAX;
        for (size_t x = wl > s ? wl : s + 1; x <= wr; x++) {
            int k = x >= d->len ? B_PARA : classify(d, x);
            size_t dx = x > target ? x - target : target - x;
            if (k > cls || (k == cls && k != B_NONE && dx < dist)) {
                cls = k;
                best = x;
                dist = dx;
            }
        }
        p = best ? best : e;
    }
    if (p <= s)
        p = next_char(d, s);
    while (p < d->len && is_ws(d->t[p]))
        p++;
    return p;
}

ad_err ad_chunk_text(const ad_tokenizer *tok, const char *text, size_t len, size_t max_tokens,
                     size_t overlap_tokens, ad_chunk **out, size_t *n)
{
    ad_err rc = AD_OK;
    ad_chunk *chunks = NULL;
    size_t count = 0, cap = 0;
    doc d = {.tok = tok, .t = (const unsigned char *)text, .len = len};

    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (!tok || !out || !n || (!text && len) || max_tokens == 0 || overlap_tokens > max_tokens / 2)
        return AD_EINVAL;
    if (len > UINT32_MAX - 1)
        return AD_ETOOBIG;
    size_t s = 0;
    while (s < len && is_ws(d.t[s]))
        s++;
    if (s == len)
        return AD_OK;

    /* Encode once; turn ids into start offsets in place. The array has room
     * for a token every 2 bytes (tokens average 3-5 bytes; 1 is rare), but
     * never more than one past the limit, so a text over the limit is known
     * from the same pass and costs at most 20 MB; only text averaging under
     * 2 bytes a token is encoded a second time. */
    size_t want = len / 2 + 16;
    if (want > AD_CHUNK_MAX_TOKENS + 1)
        want = AD_CHUNK_MAX_TOKENS + 1;
    d.off = ad_malloc((want + 1) * sizeof *d.off);
    d.nt = ad_tokenizer_encode(tok, text, len, d.off, want);
    if (d.nt > AD_CHUNK_MAX_TOKENS) {
        rc = AD_ETOOBIG;
        goto out;
    }
    if (d.nt > want) {
        ad_free(d.off);
        d.off = ad_malloc((d.nt + 1) * sizeof *d.off);
        ad_tokenizer_encode(tok, text, len, d.off, d.nt);
    }
    uint64_t at = 0;
    for (size_t i = 0; i < d.nt; i++) {
        size_t b = ad_tokenizer_token_bytes(tok, d.off[i]);
        d.off[i] = (uint32_t)at;
        at += b;
    }
    d.off[d.nt] = (uint32_t)at;
    if (at != len || d.nt == 0) {
        rc = AD_EINTERNAL; /* the tokens do not spell the text */
        goto out;
    }
    const char *enc = ad_tokenizer_name(tok);
    d.cuts = (!strcmp(enc, "o200k_base") || !strcmp(enc, "cl100k_base")) && all_valid(&d);

    for (;;) {
        size_t lim = max_tokens, e, tokens;
        for (;;) {
            e = chunk_end(&d, s, lim, overlap_tokens, count ? chunks[count - 1].end : 0);
            tokens = span_tokens(&d, s, e);
            if (tokens <= max_tokens || lim == 1)
                break;
            size_t over = tokens - max_tokens;
            lim = lim > over + 1 ? lim - over : 1;
        }
        if (tokens > max_tokens) { /* lim 1 still too much: one character */
            e = next_char(&d, s);
            tokens = ad_tokenizer_count(tok, text + s, e - s);
        }
        if (e < len) { /* only whitespace left: it joins this chunk if it fits */
            size_t k = e;
            while (k < len && is_ws(d.t[k]))
                k++;
            size_t all = k == len ? span_tokens(&d, s, len) : SIZE_MAX;
            if (all <= max_tokens) {
                e = len;
                tokens = all;
            }
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            chunks = ad_realloc(chunks, cap * sizeof *chunks);
        }
        chunks[count].start = s;
        chunks[count].end = e;
        chunks[count].tokens = tokens;
        count++;
        if (e >= len)
            break;
        s = next_start(&d, s, e, overlap_tokens);
        if (s >= len)
            break;
    }
    *out = chunks;
    *n = count;
    chunks = NULL;
out:
    ad_free(chunks);
    ad_free(d.off);
    return rc;
}
