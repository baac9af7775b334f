/*
 * fts5.c -- ad_fts_docsize for the schema migrations (see fts5.h).
 *
 * Design: FTS5 stores one SQLite varint per column in a docsize row:
 * big-endian groups of 7 bits, the high bit set on every byte but the last
 * (the ninth byte, if reached, gives 8 bits). The first is the text
 * column's length in tokens, which migration 3 summed per store.
 */
#include "search/fts5.h"

#include <stddef.h>
#include <stdint.h>

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
    return AD_OK;
}
