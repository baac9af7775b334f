/*
 * sqlite.c -- the SQLite backend of store.h.
 *
 * One table holds every object: key columns for lookup and paging, and the
 * API JSON as the body. The sequence number (an INTEGER PRIMARY KEY, i.e. the
 * rowid, AUTOINCREMENT so numbers are never reused) orders objects by
 * creation; cursors are resolved to a sequence number and the page is a range
 * scan on the (project, kind, parent, seq) index. A deleted object keeps its
 * row with body NULL (a tombstone) so that cursors stay valid.
 *
 * The database runs in WAL mode with synchronous=NORMAL: a committed
 * transaction survives a crash of the process (kill -9) -- only a power loss
 * may lose the last commits -- and readers never block the writer. Writers
 * take the lock up front (BEGIN IMMEDIATE) and wait up to busy_timeout for
 * each other. Schema changes are numbered migrations applied at start-up in
 * one transaction each, tracked with PRAGMA user_version.
 *
 * file_search chunks live beside the objects in a table of their own
 * (migration 2): each chunk's text and an optional float32 embedding, and
 * since migration 4 one keyword segment per (store, file) for assistd's own
 * index (search/kwindex.h; FTS5 served until then); see store.h.
 *
 * The pool holds one connection per HTTP worker thread; acquire blocks on a
 * condition variable when all are lent out, which bounds concurrency at the
 * store instead of failing requests.
 *
 * Writers are serialised in-process by one mutex (taken by ad_db_begin and
 * by every write made outside a transaction) before SQLite's own lock is
 * asked for. SQLite would serialise them anyway, but its busy handler waits
 * by sleeping in growing steps, which turned write contention into tail
 * latencies of hundreds of milliseconds; a mutex hands the lock over at once.
 *
 * Checkpoints run on a thread of their own, never inside a commit: every
 * connection has wal_autocheckpoint=0, and the checkpointer (one more
 * connection, outside the pool) runs a PASSIVE checkpoint every
 * CKPT_PERIOD_MS -- it copies what it can without waiting for or blocking
 * anyone, and its fsyncs hold up no request. Copying does not shorten the
 * WAL: a writer starts it over only if, when its transaction began,
 * everything had been copied and no reader was inside the WAL, which under
 * steady writes is seldom so. So once the WAL holds CKPT_RESTART_FRAMES, a
 * RESTART checkpoint is run with the writer mutex held: it copies the rest,
 * waits up to CKPT_RESTART_WAIT_MS for readers to leave the WAL (reads are
 * short; a long one puts the restart off to a later period), and the next
 * write starts the WAL from the beginning, reusing the file's blocks.
 * Writers queue on the mutex meanwhile instead of sleeping in SQLite's busy
 * handler. A WAL that one large transaction grew is cut back to
 * WAL_SIZE_LIMIT when it restarts (journal_size_limit).
 *
 * The checkpointer's connection reads the database once at start: until a
 * connection has, SQLite's checkpoint call silently does nothing. (It did
 * nothing here until that read was added: no checkpoint ran while the
 * server was up, and the WAL grew by every write -- 45 MB/s under the runs
 * benchmark -- until the server stopped.)
 */
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "search/fts5.h"
#include "search/kwindex.h"
#include "util/alloc.h"
#include "util/str.h"

#define CKPT_PERIOD_MS       200
#define CKPT_RESTART_FRAMES  16384 /* 64 MiB of 4 KiB pages */
#define CKPT_RESTART_WAIT_MS 20
#define CKPT_BUSY_MS         2000
#define WAL_SIZE_LIMIT       "134217728" /* bytes a restarted WAL file keeps */

enum {
    S_PUT,
    S_UPDATE,
    S_UPDATE_AUX,
    S_GET,
    S_GET_CHILD,
    S_DELETE,
    S_DELETE_CHILDREN,
    S_COUNT,
    S_SEQ_OF,
    S_EXISTS_ANY,
    S_SCAN,
    S_LIST_DESC,
    S_LIST_ASC,
    S_NTH_DESC,
    S_NTH_ASC,
    S_TALLY,
    S_PURGE,
    S_PURGE_CHILDREN,
    S_CHUNK_INSERT,
    S_CHUNK_DELETE,
    S_CHUNK_VECTORS,
    S_CHUNK_GET,
    S_CHUNK_OF_FILE,
    S_SEG_DELETE,
    S_SEG_PUT,
    S_SEG_VERSION,
    S_SEG_LIST,
    S_SEG_GET,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
    [S_PUT] = "INSERT INTO objects(kind,id,project,parent,aux,created_at,body) "
              "VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_UPDATE] = "UPDATE objects SET body=?4 WHERE project=?1 AND kind=?2 AND id=?3 "
                 "AND body IS NOT NULL",
    [S_UPDATE_AUX] = "UPDATE objects SET body=?4, aux=?5 WHERE project=?1 AND kind=?2 AND id=?3 "
                     "AND body IS NOT NULL",
    [S_GET] = "SELECT body FROM objects WHERE id=?3 AND project=?1 AND kind=?2 "
              "AND body IS NOT NULL",
    [S_GET_CHILD] = "SELECT body FROM objects WHERE id=?4 AND project=?1 AND kind=?2 "
                    "AND parent=?3 AND body IS NOT NULL",
    [S_DELETE] = "UPDATE objects SET body=NULL WHERE project=?1 AND kind=?2 AND id=?3 "
                 "AND body IS NOT NULL",
    [S_DELETE_CHILDREN] = "UPDATE objects SET body=NULL WHERE project=?1 AND kind=?2 "
                          "AND parent=?3 AND body IS NOT NULL",
    [S_COUNT] = "SELECT count(*) FROM objects WHERE project=?1 AND kind=?2 AND parent=?3 "
                "AND body IS NOT NULL",
    [S_SEQ_OF] = "SELECT seq FROM objects WHERE id=?4 AND project=?1 AND kind=?2 AND parent=?3",
    [S_EXISTS_ANY] = "SELECT 1 FROM objects WHERE id=?2 AND kind=?1 AND body IS NOT NULL",
    [S_SCAN] = "SELECT project, parent, id, body FROM objects WHERE kind=?1 AND aux=?2 "
               "AND body IS NOT NULL ORDER BY seq",
#define LIST_SQL                                                                                   \
    "SELECT id, body FROM objects WHERE project=?1 AND kind=?2 AND parent=?3 AND seq>?4 "          \
    "AND seq<?5 AND body IS NOT NULL AND (?6 IS NULL OR aux=?6) ORDER BY seq "
    [S_LIST_DESC] = LIST_SQL "DESC LIMIT ?7",
    [S_LIST_ASC] = LIST_SQL "ASC LIMIT ?7",
#define NTH_SQL                                                                                    \
    "SELECT seq FROM objects WHERE project=?1 AND kind=?2 AND parent=?3 AND seq>?4 "               \
    "AND seq<?5 AND body IS NOT NULL AND (?6 IS NULL OR aux=?6) ORDER BY seq "
    [S_NTH_DESC] = NTH_SQL "DESC LIMIT 1 OFFSET ?7",
    [S_NTH_ASC] = NTH_SQL "ASC LIMIT 1 OFFSET ?7",
    [S_TALLY] = "SELECT aux, count(*), CAST(total(json_extract(body, ?4)) AS INTEGER) FROM objects "
                "WHERE project=?1 AND kind=?2 AND parent=?3 AND body IS NOT NULL GROUP BY aux",
    [S_PURGE] = "DELETE FROM objects WHERE project=?1 AND kind=?2 AND id=?3",
    [S_PURGE_CHILDREN] = "DELETE FROM objects WHERE project=?1 AND kind=?2 AND parent=?3",
    [S_CHUNK_INSERT] = "INSERT INTO chunks(store_id, file_id, ord, text, embedding) "
                       "VALUES(?1,?2,?3,?4,?5)",
    [S_CHUNK_DELETE] = "DELETE FROM chunks WHERE store_id=?1 AND (?2 IS NULL OR file_id=?2)",
    [S_CHUNK_VECTORS] = "SELECT id, file_id, embedding FROM chunks "
                        "WHERE store_id=?1 AND embedding IS NOT NULL",
    [S_CHUNK_GET] = "SELECT text, store_id, file_id FROM chunks WHERE id=?1",
    [S_CHUNK_OF_FILE] = "SELECT text FROM chunks WHERE store_id=?1 AND file_id=?2 ORDER BY ord",
    [S_SEG_DELETE] = "DELETE FROM kw_segments WHERE store_id=?1 AND (?2 IS NULL OR file_id=?2)",
    [S_SEG_PUT] = "INSERT OR REPLACE INTO kw_segments(store_id, file_id, seg) VALUES(?1,?2,?3)",
    [S_SEG_VERSION] = "SELECT count(*), coalesce(max(id), 0) FROM kw_segments WHERE store_id=?1",
    [S_SEG_LIST] = "SELECT id, file_id FROM kw_segments WHERE store_id=?1",
    [S_SEG_GET] = "SELECT seg FROM kw_segments WHERE id=?1",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

/* Numbered migrations; index i brings the schema from version i to i+1. */
static const char *const migrations[] = {
    "CREATE TABLE objects ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL,"
    "  id TEXT NOT NULL UNIQUE,"
    "  project TEXT NOT NULL,"
    "  parent TEXT NOT NULL DEFAULT '',"
    "  aux TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  body TEXT"
    ");"
    "CREATE INDEX objects_page ON objects(project, kind, parent, seq);",
    /* 2: file_search chunks with a BM25 index (external-content FTS5 kept in
     * step by triggers) and optional embeddings. */
    "CREATE TABLE chunks ("
    "  id INTEGER PRIMARY KEY,"
    "  store_id TEXT NOT NULL,"
    "  file_id TEXT NOT NULL,"
    "  ord INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  embedding BLOB"
    ");"
    "CREATE INDEX chunks_owner ON chunks(store_id, file_id, ord);"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
    "  tokenize='porter unicode61 remove_diacritics 2');"
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
    "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;"
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;",
    /* 3: keyword ranking per vector store (search/search.c): the store id is
     * indexed too, so a query is confined to one store inside FTS5, and
     * chunk_stats keeps each store's chunk count and total length in index
     * tokens (from FTS5's docsize rows, search/fts5.h) for its BM25
     * statistics. */
    "DROP TRIGGER chunks_ai;"
    "DROP TRIGGER chunks_ad;"
    "DROP TABLE chunks_fts;"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, store_id, content='chunks',"
    "  content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');"
    "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');"
    "CREATE TABLE chunk_stats ("
    "  store_id TEXT PRIMARY KEY,"
    "  chunks INTEGER NOT NULL,"
    "  tokens INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO chunk_stats SELECT c.store_id, count(*), sum(ad_fts_docsize(d.sz))"
    "  FROM chunks c JOIN chunks_fts_docsize d ON d.id = c.id GROUP BY c.store_id;"
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
    "  INSERT INTO chunks_fts(rowid, text, store_id) VALUES (new.id, new.text, new.store_id);"
    "  INSERT INTO chunk_stats(store_id, chunks, tokens)"
    "    SELECT new.store_id, 1, ad_fts_docsize(sz) FROM chunks_fts_docsize WHERE id = new.id"
    "    ON CONFLICT(store_id) DO UPDATE SET chunks = chunks + 1,"
    "    tokens = tokens + excluded.tokens;"
    "END;"
    "CREATE TRIGGER chunks_bd BEFORE DELETE ON chunks BEGIN"
    "  UPDATE chunk_stats SET chunks = chunks - 1, tokens = tokens - coalesce("
    "    (SELECT ad_fts_docsize(sz) FROM chunks_fts_docsize WHERE id = old.id), 0)"
    "    WHERE store_id = old.store_id;"
    "  DELETE FROM chunk_stats WHERE store_id = old.store_id AND chunks <= 0;"
    "END;"
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, store_id)"
    "    VALUES ('delete', old.id, old.text, old.store_id);"
    "END;",
    /* 4: assistd's own keyword index (search/kwindex.h): one segment per
     * (store, file), written with the file's chunks; FTS5 and its triggers
     * go, so inserting chunks no longer pays for FTS5 indexing. Segment ids
     * are never reused (AUTOINCREMENT): the in-memory indexes detect
     * changes by them. Segments of the chunks already stored are built by
     * build_segments() in the same transaction. */
    "DROP TRIGGER chunks_ai;"
    "DROP TRIGGER chunks_bd;"
    "DROP TRIGGER chunks_ad;"
    "DROP TABLE chunks_fts;"
    "DROP TABLE chunk_stats;"
    "CREATE TABLE kw_segments ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  store_id TEXT NOT NULL,"
    "  file_id TEXT NOT NULL,"
    "  seg BLOB NOT NULL,"
    "  UNIQUE(store_id, file_id)"
    ");",
};

/* Work registered with ad_db_after_commit for the open transaction. */
struct after_hook {
    void (*fn)(void *ud, bool committed);
    void *ud;
    struct after_hook *next;
};

struct ad_db {
    sqlite3 *h;
    sqlite3_stmt *st[S_NSTMT];
    struct ad_db *next_free;
    const ad_logger *log;
    struct ad_store *store;
    bool in_tx;               /* holds store->write_mu */
    struct after_hook *after; /* ad_db_after_commit, newest first */
};

struct ad_store {
    pthread_mutex_t write_mu; /* one writer at a time (see the top comment) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ad_db *free_list;
    ad_db *all;
    unsigned n;
    const ad_logger *log;
    /* the checkpointer (see the top comment) */
    sqlite3 *ckpt_h;
    pthread_t ckpt_thread;
    bool ckpt_running, ckpt_stop; /* under mu */
    pthread_cond_t ckpt_cv;
    /* its counters (ad_store_metrics) */
    atomic_ullong ckpt_passes, ckpt_failures, wal_restarts;
    atomic_llong wal_frames;
};

static ad_err db_error(ad_db *db, const char *what)
{
    ad_log(db->log, AD_LOG_ERROR, "store: %s: %s", what, sqlite3_errmsg(db->h));
    return AD_EDB;
}

static ad_err exec(sqlite3 *h, const ad_logger *lg, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ad_log(lg, AD_LOG_ERROR, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return AD_EDB;
    }
    return AD_OK;
}

/* Writes the segment of one file's chunks (migration 4). */
static ad_err put_segment(sqlite3_stmt *ins, const char *store, const char *file,
                          const ad_chunk_row *rows, const int64_t *ids, size_t n)
{
    ad_buf seg;
    ad_buf_init(&seg, AD_KWSEG_MAX);
    ad_err rc = ad_kwseg_build(rows, n, &seg);
    if (!rc)
        rc = ad_kwseg_set_ids((unsigned char *)seg.ptr, seg.len, ids, n);
    if (!rc) {
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, store, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, file, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 3, seg.ptr, (int)seg.len, SQLITE_STATIC);
        rc = sqlite3_step(ins) == SQLITE_DONE ? AD_OK : AD_EDB;
        sqlite3_reset(ins);
    }
    ad_buf_free(&seg);
    return rc;
}

/* Migration 4's data step: a segment for every file of every store from the
 * chunks already stored, read in (store, file, ord) order. */
static ad_err build_segments(sqlite3 *h)
{
    sqlite3_stmt *sel = NULL, *ins = NULL;
    ad_err rc = AD_EDB;
    if (sqlite3_prepare_v2(h,
                           "SELECT store_id, file_id, id, text FROM chunks "
                           "ORDER BY store_id, file_id, ord",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "INSERT INTO kw_segments(store_id, file_id, seg) VALUES(?1,?2,?3)",
                           -1, &ins, NULL) != SQLITE_OK)
        goto out;
    char store[64] = "", file[64] = "";
    ad_chunk_row *rows = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    rc = AD_OK;
    for (;;) {
        int r = sqlite3_step(sel);
        if (r != SQLITE_ROW && r != SQLITE_DONE) {
            rc = AD_EDB;
            break;
        }
        const char *s = r == SQLITE_ROW ? (const char *)sqlite3_column_text(sel, 0) : NULL;
        const char *f = r == SQLITE_ROW ? (const char *)sqlite3_column_text(sel, 1) : NULL;
        if (n && (r == SQLITE_DONE || strcmp(s ? s : "", store) || strcmp(f ? f : "", file))) {
            rc = put_segment(ins, store, file, rows, ids, n);
            for (size_t i = 0; i < n; i++)
                ad_free((void *)rows[i].text);
            n = 0;
            if (rc)
                break;
        }
        if (r == SQLITE_DONE)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            rows = ad_realloc(rows, cap * sizeof *rows);
            ids = ad_realloc(ids, cap * sizeof *ids);
        }
        ad_strlcpy(store, s ? s : "", sizeof store);
        ad_strlcpy(file, f ? f : "", sizeof file);
        ids[n] = sqlite3_column_int64(sel, 2);
        const char *t = (const char *)sqlite3_column_text(sel, 3); /* then its length */
        size_t len = (size_t)sqlite3_column_bytes(sel, 3);
        rows[n++] = (ad_chunk_row){.text = ad_strndup(t ? t : "", len), .len = len};
    }
    for (size_t i = 0; i < n; i++)
        ad_free((void *)rows[i].text);
    ad_free(rows);
    ad_free(ids);
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    return rc;
}

static ad_err migrate(sqlite3 *h, const ad_logger *lg)
{
    sqlite3_stmt *st;
    int version = 0;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return AD_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int n = (int)(sizeof migrations / sizeof migrations[0]);
    if (version > n) {
        ad_log(lg, AD_LOG_ERROR, "store: database schema %d is newer than this assistd (%d)",
               version, n);
        return AD_EDB;
    }
    for (int v = version; v < n; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v + 1);
        bool segs_failed = false;
        if (exec(h, lg, "BEGIN IMMEDIATE") || exec(h, lg, migrations[v]) ||
            (v + 1 == 4 && (segs_failed = build_segments(h) != AD_OK)) || exec(h, lg, pragma) ||
            exec(h, lg, "COMMIT")) {
            if (segs_failed)
                ad_log(lg, AD_LOG_ERROR, "store: migration 4: building keyword segments: %s",
                       sqlite3_errmsg(h));
            exec(h, lg, "ROLLBACK");
            return AD_EDB;
        }
        ad_log(lg, AD_LOG_INFO, "store: migrated schema to version %d", v + 1);
    }
    return AD_OK;
}

static void db_close(ad_db *db)
{
    if (!db)
        return;
    for (int i = 0; i < S_NSTMT; i++)
        sqlite3_finalize(db->st[i]);
    sqlite3_close(db->h);
    ad_free(db);
}

static ad_err db_open(const char *path, const ad_logger *lg, bool first, ad_db **out)
{
    ad_db *db = ad_calloc(1, sizeof *db);
    db->log = lg;
    ad_err rc = AD_EDB;
    if (sqlite3_open_v2(path, &db->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        ad_log(lg, AD_LOG_ERROR, "store: cannot open %s: %s", path,
               db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db->h, 10000);
    if (exec(db->h, lg, "PRAGMA journal_mode=WAL") ||
        exec(db->h, lg, "PRAGMA synchronous=NORMAL") || exec(db->h, lg, "PRAGMA foreign_keys=ON") ||
        exec(db->h, lg, "PRAGMA wal_autocheckpoint=0") ||
        exec(db->h, lg, "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT))
        goto out;
    if (ad_fts5_register(db->h)) { /* migration 3 needs ad_fts_docsize */
        ad_log(lg, AD_LOG_ERROR, "store: SQLite has no FTS5");
        goto out;
    }
    /* Reads (vector scans, segment loads) come from one shared
     * memory map of the database file instead of each connection's small
     * page cache refilled with pread. */
    if (exec(db->h, lg, "PRAGMA mmap_size=1073741824"))
        goto out;
    if (first && migrate(db->h, lg))
        goto out;
    for (int i = 0; i < S_NSTMT; i++)
        if (sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i],
                               NULL) != SQLITE_OK) {
            rc = db_error(db, "prepare");
            goto out;
        }
    *out = db;
    return AD_OK;
out:
    db_close(db);
    return rc;
}

static void *ckpt_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-checkpoint");
    ad_store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)CKPT_PERIOD_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->ckpt_cv, &s->mu, &ts);
        if (s->ckpt_stop)
            break;
        pthread_mutex_unlock(&s->mu);
        /* "main", not NULL: for all databases at once SQLite leaves nlog
         * undefined (it was -1, and the restart below never ran). */
        int nlog = 0, nckpt = 0;
        int r =
            sqlite3_wal_checkpoint_v2(s->ckpt_h, "main", SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        if (r == SQLITE_OK) {
            atomic_fetch_add(&s->ckpt_passes, 1);
            atomic_store(&s->wal_frames, nlog);
        } else if (r != SQLITE_BUSY) {
            atomic_fetch_add(&s->ckpt_failures, 1);
            ad_log(s->log, AD_LOG_WARN, "store: checkpoint: %s", sqlite3_errmsg(s->ckpt_h));
        }
        if (r == SQLITE_OK && nlog >= CKPT_RESTART_FRAMES) {
            /* With writers held on the mutex, the restart copies what the
             * passive pass could not (writes that came meanwhile) and waits
             * for readers still inside the WAL -- CKPT_RESTART_WAIT_MS at
             * most: a long reader (a large listing, an index load) only puts
             * the restart off to a later period. */
            pthread_mutex_lock(&s->write_mu);
            sqlite3_busy_timeout(s->ckpt_h, CKPT_RESTART_WAIT_MS);
            r = sqlite3_wal_checkpoint_v2(s->ckpt_h, "main", SQLITE_CHECKPOINT_RESTART, &nlog,
                                          &nckpt);
            sqlite3_busy_timeout(s->ckpt_h, CKPT_BUSY_MS);
            pthread_mutex_unlock(&s->write_mu);
            if (r == SQLITE_OK) {
                atomic_fetch_add(&s->wal_restarts, 1);
            } else if (r != SQLITE_BUSY) {
                atomic_fetch_add(&s->ckpt_failures, 1);
                ad_log(s->log, AD_LOG_WARN, "store: restarting checkpoint: %s",
                       sqlite3_errmsg(s->ckpt_h));
            }
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static ad_err ckpt_start(ad_store *s, const char *path)
{
    if (sqlite3_open_v2(path, &s->ckpt_h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        ad_log(s->log, AD_LOG_ERROR, "store: checkpointer: cannot open %s", path);
        return AD_EDB;
    }
    sqlite3_busy_timeout(s->ckpt_h, CKPT_BUSY_MS);
    /* A connection opens the WAL at its first read; until then SQLite's
     * checkpoint call does nothing and reports nothing (nlog -1). Without
     * this read no checkpoint ever ran while the server was up, and the WAL
     * grew until it stopped. */
    if (exec(s->ckpt_h, s->log, "PRAGMA wal_autocheckpoint=0") ||
        exec(s->ckpt_h, s->log, "SELECT count(*) FROM sqlite_schema"))
        return AD_EDB;
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0)
        return AD_EINTERNAL;
    s->ckpt_running = true;
    return AD_OK;
}

void ad_store_metrics(ad_store *s, ad_buf *out)
{
    ad_buf_printf(out,
                  "# HELP assistd_store_checkpoints_total WAL checkpoint passes completed.\n"
                  "# TYPE assistd_store_checkpoints_total counter\n"
                  "assistd_store_checkpoints_total %llu\n"
                  "# HELP assistd_store_checkpoint_failures_total WAL checkpoints that failed "
                  "(not counting ones put off by readers).\n"
                  "# TYPE assistd_store_checkpoint_failures_total counter\n"
                  "assistd_store_checkpoint_failures_total %llu\n"
                  "# HELP assistd_store_wal_restarts_total Times the checkpointer had the WAL "
                  "start over.\n"
                  "# TYPE assistd_store_wal_restarts_total counter\n"
                  "assistd_store_wal_restarts_total %llu\n"
                  "# HELP assistd_store_wal_frames WAL frames at the last checkpoint pass.\n"
                  "# TYPE assistd_store_wal_frames gauge\n"
                  "assistd_store_wal_frames %lld\n",
                  (unsigned long long)atomic_load(&s->ckpt_passes),
                  (unsigned long long)atomic_load(&s->ckpt_failures),
                  (unsigned long long)atomic_load(&s->wal_restarts),
                  (long long)atomic_load(&s->wal_frames));
}

static void ckpt_stop(ad_store *s)
{
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->mu);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->ckpt_thread, NULL);
        s->ckpt_running = false;
    }
    sqlite3_close(s->ckpt_h);
    s->ckpt_h = NULL;
}

ad_err ad_store_open(const char *data_dir, unsigned nconns, const ad_logger *lg, ad_store **out)
{
    char path[2048];
    if ((size_t)snprintf(path, sizeof path, "%s/assistd.db", data_dir) >= sizeof path)
        return AD_EINVAL;
    ad_store *s = ad_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    s->log = lg;
    for (unsigned i = 0; i < nconns; i++) {
        ad_db *db;
        ad_err rc = db_open(path, lg, i == 0, &db);
        if (rc) {
            ad_store_close(s);
            return rc;
        }
        db->store = s;
        db->next_free = s->free_list;
        s->free_list = db;
        s->n++;
    }
    ad_err rc = ckpt_start(s, path);
    if (rc) {
        ad_store_close(s);
        return rc;
    }
    *out = s;
    return AD_OK;
}

void ad_store_close(ad_store *s)
{
    if (!s)
        return;
    ckpt_stop(s);
    ad_db *db = s->free_list;
    while (db) {
        ad_db *next = db->next_free;
        db_close(db);
        db = next;
    }
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    ad_free(s);
}

ad_db *ad_store_acquire(ad_store *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->free_list)
        pthread_cond_wait(&s->cv, &s->mu);
    ad_db *db = s->free_list;
    s->free_list = db->next_free;
    pthread_mutex_unlock(&s->mu);
    return db;
}

void ad_store_release(ad_store *s, ad_db *db)
{
    if (!db)
        return;
    if (db->in_tx || !sqlite3_get_autocommit(db->h)) { /* a handler left a transaction open */
        ad_log(s->log, AD_LOG_ERROR, "store: rolling back a transaction left open");
        ad_db_rollback(db);
    }
    pthread_mutex_lock(&s->mu);
    db->next_free = s->free_list;
    s->free_list = db;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Binds text parameters 1..n of a statement. */
static sqlite3_stmt *bind(ad_db *db, int which, int n, const char *const *vals)
{
    sqlite3_stmt *st = db->st[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
    return st;
}

static ad_err step_done(ad_db *db, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    ad_err rc = AD_OK;
    if (r == SQLITE_CONSTRAINT)
        rc = AD_EEXIST;
    else if (r != SQLITE_DONE)
        rc = db_error(db, what);
    sqlite3_reset(st);
    return rc;
}

/* A write statement: outside a transaction it takes the writer mutex for
 * its own duration. */
static ad_err write_step(ad_db *db, sqlite3_stmt *st, const char *what)
{
    if (db->in_tx)
        return step_done(db, st, what);
    pthread_mutex_lock(&db->store->write_mu);
    ad_err rc = step_done(db, st, what);
    pthread_mutex_unlock(&db->store->write_mu);
    return rc;
}

ad_err ad_db_begin(ad_db *db)
{
    if (db->in_tx)
        return AD_EINTERNAL; /* transactions do not nest */
    pthread_mutex_lock(&db->store->write_mu);
    ad_err rc = step_done(db, bind(db, S_BEGIN, 0, NULL), "begin");
    if (rc)
        pthread_mutex_unlock(&db->store->write_mu);
    else
        db->in_tx = true;
    return rc;
}

/* Runs (and frees) the after-commit hooks in registration order. Called
 * with the writer mutex released, so a hook may take other locks. */
static void run_after(ad_db *db, bool committed)
{
    struct after_hook *h = db->after, *rev = NULL;
    db->after = NULL;
    while (h) { /* reverse: the list is newest first */
        struct after_hook *next = h->next;
        h->next = rev;
        rev = h;
        h = next;
    }
    while (rev) {
        struct after_hook *next = rev->next;
        rev->fn(rev->ud, committed);
        ad_free(rev);
        rev = next;
    }
}

void ad_db_after_commit(ad_db *db, void (*fn)(void *ud, bool committed), void *ud)
{
    if (!db->in_tx) { /* autocommit: what was written is already durable */
        fn(ud, true);
        return;
    }
    struct after_hook *h = ad_malloc(sizeof *h);
    h->fn = fn;
    h->ud = ud;
    h->next = db->after;
    db->after = h;
}

ad_err ad_db_commit(ad_db *db)
{
    ad_err rc = step_done(db, bind(db, S_COMMIT, 0, NULL), "commit");
    /* On failure the transaction stays open (and the mutex held) until the
     * caller's ad_db_rollback. */
    if (!rc && db->in_tx) {
        db->in_tx = false;
        pthread_mutex_unlock(&db->store->write_mu);
        run_after(db, true);
    }
    return rc;
}

void ad_db_rollback(ad_db *db)
{
    if (!sqlite3_get_autocommit(db->h))
        step_done(db, bind(db, S_ROLLBACK, 0, NULL), "rollback");
    if (db->in_tx) {
        db->in_tx = false;
        pthread_mutex_unlock(&db->store->write_mu);
    }
    run_after(db, false);
}

ad_err ad_db_put(ad_db *db, const ad_obj *o, const char *json, size_t len)
{
    const char *v[5] = {o->kind, o->id, o->project, o->parent ? o->parent : "",
                        o->aux ? o->aux : ""};
    sqlite3_stmt *st = bind(db, S_PUT, 5, v);
    sqlite3_bind_int64(st, 6, o->created_at);
    sqlite3_bind_text(st, 7, json, (int)len, SQLITE_STATIC);
    return write_step(db, st, "insert");
}

ad_err ad_db_update(ad_db *db, const char *project, const char *kind, const char *id,
                    const char *aux, const char *json, size_t len)
{
    const char *v[3] = {project, kind, id};
    sqlite3_stmt *st = bind(db, aux ? S_UPDATE_AUX : S_UPDATE, 3, v);
    sqlite3_bind_text(st, 4, json, (int)len, SQLITE_STATIC);
    if (aux)
        sqlite3_bind_text(st, 5, aux, -1, SQLITE_STATIC);
    ad_err rc = write_step(db, st, "update");
    if (!rc && sqlite3_changes(db->h) == 0)
        rc = AD_ENOTFOUND;
    return rc;
}

/* Appends column 0 of the statement's one row (text or blob, as stored) to
 * out; AD_ENOTFOUND without a row. */
static ad_err fetch_body(ad_db *db, sqlite3_stmt *st, ad_buf *out, const char *what)
{
    int r = sqlite3_step(st);
    ad_err rc;
    if (r == SQLITE_ROW)
        rc = ad_buf_add(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    else if (r == SQLITE_DONE)
        rc = AD_ENOTFOUND;
    else
        rc = db_error(db, what);
    sqlite3_reset(st);
    return rc;
}

ad_err ad_db_get(ad_db *db, const char *project, const char *kind, const char *id, ad_buf *out)
{
    const char *v[3] = {project, kind, id};
    return fetch_body(db, bind(db, S_GET, 3, v), out, "select");
}

ad_err ad_db_get_child(ad_db *db, const char *project, const char *kind, const char *parent,
                       const char *id, ad_buf *out)
{
    const char *v[4] = {project, kind, parent, id};
    return fetch_body(db, bind(db, S_GET_CHILD, 4, v), out, "select");
}

ad_err ad_db_delete(ad_db *db, const char *project, const char *kind, const char *id)
{
    const char *v[3] = {project, kind, id};
    ad_err rc = write_step(db, bind(db, S_DELETE, 3, v), "delete");
    if (!rc && sqlite3_changes(db->h) == 0)
        rc = AD_ENOTFOUND;
    return rc;
}

ad_err ad_db_delete_children(ad_db *db, const char *project, const char *kind, const char *parent,
                             int64_t *count)
{
    const char *v[3] = {project, kind, parent};
    ad_err rc = write_step(db, bind(db, S_DELETE_CHILDREN, 3, v), "delete children");
    if (!rc && count)
        *count = sqlite3_changes(db->h);
    return rc;
}

static ad_err one_int(ad_db *db, sqlite3_stmt *st, int64_t *out)
{
    int r = sqlite3_step(st);
    ad_err rc = AD_OK;
    if (r == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE)
        rc = AD_ENOTFOUND;
    else
        rc = db_error(db, "select");
    sqlite3_reset(st);
    return rc;
}

ad_err ad_db_count(ad_db *db, const char *project, const char *kind, const char *parent,
                   int64_t *count)
{
    const char *v[3] = {project, kind, parent};
    return one_int(db, bind(db, S_COUNT, 3, v), count);
}

ad_err ad_db_exists_any(ad_db *db, const char *kind, const char *id, bool *exists)
{
    const char *v[2] = {kind, id};
    int64_t one;
    ad_err rc = one_int(db, bind(db, S_EXISTS_ANY, 2, v), &one);
    *exists = rc == AD_OK;
    return rc == AD_ENOTFOUND ? AD_OK : rc;
}

/* The sequence number of the n-th (from 0) live row of q's filter inside
 * (lo, hi), scanning ascending or descending; AD_ENOTFOUND past the end. */
static ad_err nth_seq(ad_db *db, const ad_list_q *q, int64_t lo, int64_t hi, bool asc, int64_t n,
                      int64_t *seq)
{
    const char *v[3] = {q->project, q->kind, q->parent};
    sqlite3_stmt *st = bind(db, asc ? S_NTH_ASC : S_NTH_DESC, 3, v);
    sqlite3_bind_int64(st, 4, lo);
    sqlite3_bind_int64(st, 5, hi);
    if (q->aux)
        sqlite3_bind_text(st, 6, q->aux, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, n);
    return one_int(db, st, seq);
}

ad_err ad_db_list(ad_db *db, const ad_list_q *q, ad_list_cb cb, void *ud, bool *has_more)
{
    int64_t lo = INT64_MIN, hi = INT64_MAX, seq;
    ad_err rc;
    *has_more = false;
    const char *cursors[2] = {q->after, q->before};
    for (int i = 0; i < 2; i++) {
        if (!cursors[i])
            continue;
        const char *v[4] = {q->project, q->kind, q->parent, cursors[i]};
        rc = one_int(db, bind(db, S_SEQ_OF, 4, v), &seq);
        if (rc)
            return rc;
        /* "after" means later in the requested order; "before" earlier. */
        bool upper = (i == 0) != q->asc;
        if (upper && seq < hi)
            hi = seq;
        if (!upper && seq > lo)
            lo = seq;
    }
    /* A "before" page is the `limit` rows next to the cursor, not the first
     * rows of the list: scanning from the start would skip the rows between
     * that page and the cursor for a client paging backwards. Find the far
     * edge of the page by scanning away from the cursor, then narrow the
     * window to it; has_more then says whether rows lie beyond that edge.
     * With both cursors the page starts at "after" and "before" only bounds
     * it. */
    bool before_more = false, before_page = false;
    if (q->before && !q->after) {
        int64_t edge, beyond;
        rc = nth_seq(db, q, lo, hi, !q->asc, q->limit - 1, &edge);
        if (rc == AD_OK) {
            rc = nth_seq(db, q, lo, hi, !q->asc, q->limit, &beyond);
            if (rc && rc != AD_ENOTFOUND)
                return rc;
            before_more = rc == AD_OK;
            before_page = true;
            if (q->asc)
                lo = edge - 1;
            else
                hi = edge + 1;
        } else if (rc != AD_ENOTFOUND) {
            return rc;
        }
    }
    const char *v[3] = {q->project, q->kind, q->parent};
    sqlite3_stmt *st = bind(db, q->asc ? S_LIST_ASC : S_LIST_DESC, 3, v);
    sqlite3_bind_int64(st, 4, lo);
    sqlite3_bind_int64(st, 5, hi);
    if (q->aux)
        sqlite3_bind_text(st, 6, q->aux, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, q->limit + 1);
    int64_t n = 0;
    rc = AD_OK;
    for (;;) {
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE)
            break;
        if (r != SQLITE_ROW) {
            rc = db_error(db, "list");
            break;
        }
        if (n == q->limit) {
            *has_more = true;
            break;
        }
        n++;
        rc = cb(ud, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        if (rc)
            break;
    }
    sqlite3_reset(st);
    if (before_page)
        *has_more = before_more;
    return rc;
}

/* Steps a SELECT to the end, calling row() per row; a row() result of
 * AD_ESTATE ends the scan successfully. */
static ad_err scan_rows(ad_db *db, sqlite3_stmt *st, const char *what,
                        ad_err (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
    ad_err rc = AD_OK;
    for (;;) {
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE)
            break;
        if (r != SQLITE_ROW) {
            rc = db_error(db, what);
            break;
        }
        rc = row(st, ctx);
        if (rc)
            break;
    }
    sqlite3_reset(st);
    return rc == AD_ESTATE ? AD_OK : rc;
}

typedef struct scan_ctx {
    ad_scan_cb cb;
    void *ud;
} scan_ctx;

static ad_err scan_row(sqlite3_stmt *st, void *ctx)
{
    const scan_ctx *c = ctx;
    return c->cb(c->ud, (const char *)sqlite3_column_text(st, 0),
                 (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                 (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3));
}

ad_err ad_db_scan(ad_db *db, const char *kind, const char *aux, ad_scan_cb cb, void *ud)
{
    const char *v[2] = {kind, aux};
    scan_ctx c = {cb, ud};
    return scan_rows(db, bind(db, S_SCAN, 2, v), "scan", scan_row, &c);
}

/* ---- vector store support ---- */

typedef struct tally_ctx {
    ad_tally *out;
    size_t cap, *n;
} tally_ctx;

static ad_err tally_row(sqlite3_stmt *st, void *ctx)
{
    tally_ctx *c = ctx;
    if (*c->n == c->cap)
        return AD_OK; /* rows past cap are read and dropped */
    ad_tally *t = &c->out[*c->n];
    const char *aux = (const char *)sqlite3_column_text(st, 0);
    ad_strlcpy(t->aux, aux ? aux : "", sizeof t->aux);
    t->count = sqlite3_column_int64(st, 1);
    t->sum = sqlite3_column_int64(st, 2);
    (*c->n)++;
    return AD_OK;
}

ad_err ad_db_tally(ad_db *db, const char *project, const char *kind, const char *parent,
                   const char *sum_path, ad_tally *out, size_t cap, size_t *n)
{
    const char *v[4] = {project, kind, parent, sum_path};
    tally_ctx c = {out, cap, n};
    *n = 0;
    return scan_rows(db, bind(db, S_TALLY, 4, v), "tally", tally_row, &c);
}

ad_err ad_db_purge(ad_db *db, const char *project, const char *kind, const char *id)
{
    const char *v[3] = {project, kind, id};
    ad_err rc = write_step(db, bind(db, S_PURGE, 3, v), "purge");
    if (!rc && sqlite3_changes(db->h) == 0)
        rc = AD_ENOTFOUND;
    return rc;
}

ad_err ad_db_purge_children(ad_db *db, const char *project, const char *kind, const char *parent)
{
    const char *v[3] = {project, kind, parent};
    return write_step(db, bind(db, S_PURGE_CHILDREN, 3, v), "purge children");
}

ad_err ad_db_chunks_insert(ad_db *db, const char *store_id, const char *file_id,
                           const ad_chunk_row *rows, size_t n, int64_t *ids)
{
    if (!db->in_tx)
        return AD_EINTERNAL; /* many rows: the caller's transaction */
    for (size_t i = 0; i < n; i++) {
        const char *v[2] = {store_id, file_id};
        sqlite3_stmt *st = bind(db, S_CHUNK_INSERT, 2, v);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
        sqlite3_bind_text(st, 4, rows[i].text, (int)rows[i].len, SQLITE_STATIC);
        if (rows[i].vec && rows[i].dims)
            sqlite3_bind_blob(st, 5, rows[i].vec, (int)(rows[i].dims * sizeof(float)),
                              SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5);
        ad_err rc = step_done(db, st, "insert chunk");
        if (rc)
            return rc;
        if (ids)
            ids[i] = (int64_t)sqlite3_last_insert_rowid(db->h);
    }
    return AD_OK;
}

ad_err ad_db_chunks_delete(ad_db *db, const char *store_id, const char *file_id)
{
    /* The chunks and their keyword segment go together. */
    bool own = !db->in_tx;
    ad_err rc = own ? ad_db_begin(db) : AD_OK;
    const char *v[1] = {store_id};
    static const int which[2] = {S_CHUNK_DELETE, S_SEG_DELETE};
    for (int i = 0; i < 2 && !rc; i++) {
        sqlite3_stmt *st = bind(db, which[i], 1, v);
        if (file_id)
            sqlite3_bind_text(st, 2, file_id, -1, SQLITE_STATIC);
        rc = step_done(db, st, "delete chunks");
    }
    if (own && !rc)
        rc = ad_db_commit(db);
    if (own && rc)
        ad_db_rollback(db);
    return rc;
}

ad_err ad_db_kwseg_put(ad_db *db, const char *store_id, const char *file_id, const void *seg,
                       size_t len)
{
    const char *v[2] = {store_id, file_id};
    sqlite3_stmt *st = bind(db, S_SEG_PUT, 2, v);
    sqlite3_bind_blob(st, 3, seg, (int)len, SQLITE_STATIC);
    return write_step(db, st, "put keyword segment");
}

ad_err ad_db_kwseg_version(ad_db *db, const char *store_id, int64_t *count, int64_t *max_id)
{
    const char *v[1] = {store_id};
    sqlite3_stmt *st = bind(db, S_SEG_VERSION, 1, v);
    ad_err rc = sqlite3_step(st) == SQLITE_ROW ? AD_OK : db_error(db, "keyword segments");
    *count = rc ? 0 : sqlite3_column_int64(st, 0);
    *max_id = rc ? 0 : sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return rc;
}

typedef struct kwseg_ctx {
    ad_kwseg_cb cb;
    void *ud;
} kwseg_ctx;

static ad_err kwseg_row(sqlite3_stmt *st, void *ctx)
{
    const kwseg_ctx *c = ctx;
    return c->cb(c->ud, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
}

ad_err ad_db_kwseg_list(ad_db *db, const char *store_id, ad_kwseg_cb cb, void *ud)
{
    const char *v[1] = {store_id};
    kwseg_ctx c = {cb, ud};
    return scan_rows(db, bind(db, S_SEG_LIST, 1, v), "keyword segments", kwseg_row, &c);
}

ad_err ad_db_kwseg_get(ad_db *db, int64_t seg_id, ad_buf *out)
{
    sqlite3_stmt *st = bind(db, S_SEG_GET, 0, NULL);
    sqlite3_bind_int64(st, 1, seg_id);
    return fetch_body(db, st, out, "keyword segment");
}

typedef struct hit_ctx {
    ad_chunk_vec_cb vec;
    ad_chunk_text_cb text;
    void *ud;
} hit_ctx;

static ad_err vector_row(sqlite3_stmt *st, void *ctx)
{
    hit_ctx *h = ctx;
    const void *blob = sqlite3_column_blob(st, 2);
    size_t bytes = (size_t)sqlite3_column_bytes(st, 2);
    if (!blob || bytes % sizeof(float))
        return AD_OK; /* not a vector: skip */
    return h->vec(h->ud, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                  blob, bytes / sizeof(float));
}

ad_err ad_db_chunks_vectors(ad_db *db, const char *store_id, ad_chunk_vec_cb cb, void *ud)
{
    const char *v[1] = {store_id};
    hit_ctx h = {.vec = cb, .ud = ud};
    return scan_rows(db, bind(db, S_CHUNK_VECTORS, 1, v), "vector scan", vector_row, &h);
}

ad_err ad_db_chunk_get(ad_db *db, int64_t chunk_id, ad_buf *out, char store_id[64],
                       char file_id[64])
{
    sqlite3_stmt *st = bind(db, S_CHUNK_GET, 0, NULL);
    sqlite3_bind_int64(st, 1, chunk_id);
    int r = sqlite3_step(st);
    ad_err rc;
    if (r == SQLITE_ROW) {
        rc = ad_buf_add(out, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        const char *s = (const char *)sqlite3_column_text(st, 1);
        const char *f = (const char *)sqlite3_column_text(st, 2);
        ad_strlcpy(store_id, s ? s : "", 64);
        ad_strlcpy(file_id, f ? f : "", 64);
    } else if (r == SQLITE_DONE) {
        rc = AD_ENOTFOUND;
    } else {
        rc = db_error(db, "chunk");
    }
    sqlite3_reset(st);
    return rc;
}

static ad_err text_row(sqlite3_stmt *st, void *ctx)
{
    hit_ctx *h = ctx;
    return h->text(h->ud, (const char *)sqlite3_column_text(st, 0),
                   (size_t)sqlite3_column_bytes(st, 0));
}

ad_err ad_db_chunks_of_file(ad_db *db, const char *store_id, const char *file_id,
                            ad_chunk_text_cb cb, void *ud)
{
    const char *v[2] = {store_id, file_id};
    hit_ctx h = {.text = cb, .ud = ud};
    return scan_rows(db, bind(db, S_CHUNK_OF_FILE, 2, v), "chunks of file", text_row, &h);
}
