/*
 * fts5.c -- FTS5 auxiliary functions for keyword ranking (see fts5.h).
 *
 * Design: FTS5's own bm25() takes its IDF and average length from the whole
 * index, which holds every vector store; a store must rank as if it were
 * alone, and the ranker wants its own BM25 parameters and query weights. So
 * the SQL side only reports raw evidence per matching row -- term
 * frequencies from the phrase position lists (xPhraseFirst/xPhraseNext,
 * counting hits in the text column) and the row's length from FTS5's
 * document-size record (xColumnSize) -- and search/ does the arithmetic.
 * The per-store totals come from the same document-size records, read by
 * the chunk triggers through ad_fts_docsize.
 * ad_fts_terms tokenizes the row's text with the table's own tokenizer
 * (xTokenize), so the terms it reports are exactly the index's.
 *
 * The fts5_api pointer is obtained the documented way: SELECT fts5(?1)
 * with the pointer bound as type "fts5_api_ptr".
 */
#include "search/fts5.h"

#include <stdint.h>
#include <string.h>

static fts5_api *api_of(sqlite3 *h)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
    sqlite3_finalize(st);
    return api;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void fn_tf(const Fts5ExtensionApi *x, Fts5Context *f, sqlite3_context *ctx, int nval,
                  sqlite3_value **val)
{
    unsigned char out[4 * (AD_FTS_MAX_PHRASES + 1)];
    int first = nval > 0 ? sqlite3_value_int(val[0]) : 0;
    const ad_fts_prune *pr = nval > 1 ? sqlite3_value_pointer(val[1], AD_FTS_PRUNE_TYPE) : NULL;
    int np = x->xPhraseCount(f);
    if (first < 0)
        first = 0;
    if (np - first > AD_FTS_MAX_PHRASES)
        np = first + AD_FTS_MAX_PHRASES;
    size_t k = 1;
    double best = 0;
    for (int p = first; p < np; p++, k++) {
        Fts5PhraseIter it;
        int col = 0, off = 0;
        uint32_t n = 0;
        int rc = x->xPhraseFirst(f, p, &it, &col, &off);
        if (rc != SQLITE_OK) {
            sqlite3_result_error_code(ctx, rc);
            return;
        }
        for (; col >= 0; x->xPhraseNext(f, &it, &col, &off))
            n += col == 0;
        put32(out + 4 * k, n);
        if (pr && n && (size_t)(k - 1) < pr->n)
            best += pr->w[k - 1] * n * (pr->k1 + 1) / (n + pr->k1 * (1 - pr->b));
    }
    if (pr && best <= pr->floor) {
        sqlite3_result_null(ctx);
        return;
    }
    int len = 0;
    int rc = x->xColumnSize(f, 0, &len);
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    put32(out, (uint32_t)len);
    sqlite3_result_blob(ctx, out, (int)(4 * k), SQLITE_TRANSIENT);
}

typedef struct terms_ctx {
    sqlite3_str *out;
    const char *text;
} terms_ctx;

static int on_token(void *ud, int flags, const char *tok, int ntok, int start, int end)
{
    terms_ctx *t = ud;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    sqlite3_str_append(t->out, tok, ntok);
    sqlite3_str_appendchar(t->out, 1, '\t');
    sqlite3_str_append(t->out, t->text + start, end - start);
    sqlite3_str_appendchar(t->out, 1, '\n');
    return sqlite3_str_errcode(t->out);
}

static void fn_terms(const Fts5ExtensionApi *x, Fts5Context *f, sqlite3_context *ctx, int nval,
                     sqlite3_value **val)
{
    (void)nval;
    (void)val;
    const char *text = NULL;
    int n = 0;
    int rc = x->xColumnText(f, 0, &text, &n);
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    terms_ctx t = {.out = sqlite3_str_new(NULL), .text = text};
    rc = text ? x->xTokenize(f, text, n, &t, on_token) : SQLITE_OK;
    int len = sqlite3_str_length(t.out);
    char *s = sqlite3_str_finish(t.out);
    if (rc != SQLITE_OK) {
        sqlite3_free(s);
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    sqlite3_result_text(ctx, s ? s : "", s ? len : 0, s ? sqlite3_free : SQLITE_STATIC);
}

/* ad_fts_docsize(sz): the first varint of a chunks_fts_docsize row (the
 * text column's length in tokens). FTS5 stores one SQLite varint per
 * column there: big-endian groups of 7 bits, the high bit set on every
 * byte but the last (the ninth byte, if reached, gives 8 bits). */
static void fn_docsize(sqlite3_context *ctx, int nval, sqlite3_value **val)
{
    (void)nval;
    const unsigned char *b = sqlite3_value_blob(val[0]);
    int n = sqlite3_value_bytes(val[0]);
    uint64_t v = 0;
    for (int i = 0; b && i < n && i < 9; i++) {
        if (i == 8) {
            v = (v << 8) | b[i];
            break;
        }
        v = (v << 7) | (b[i] & 0x7F);
        if (!(b[i] & 0x80))
            break;
    }
    sqlite3_result_int64(ctx, (sqlite3_int64)v);
}

ad_err ad_fts5_register(sqlite3 *h)
{
    if (sqlite3_create_function_v2(h, "ad_fts_docsize", 1,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                   fn_docsize, NULL, NULL, NULL) != SQLITE_OK)
        return AD_EDB;
    fts5_api *api = api_of(h);
    if (!api || api->iVersion < 2)
        return AD_EDB;
    if (api->xCreateFunction(api, "ad_fts_tf", NULL, fn_tf, NULL) != SQLITE_OK ||
        api->xCreateFunction(api, "ad_fts_terms", NULL, fn_terms, NULL) != SQLITE_OK)
        return AD_EDB;
    return AD_OK;
}
