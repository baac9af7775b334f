/*
 * tokenizer_bench.c -- throughput of the o200k_base tokenizer and of the
 * chunker on real text (issue #4, ingestion), linked against the release
 * objects so the figures are the code's own, without HTTP or the store.
 *
 * Text: the titles and abstracts of NFCorpus (corpus.jsonl), joined by blank
 * lines, up to MB megabytes. Measurements, all in one process and one run,
 * best of REPS repetitions each:
 *   count     ad_tokenizer_count over the whole text in one call;
 *   count 4k  the same text in 4 KB calls (cut at a space), as prompt
 *             building and the chunker's per-chunk recounts call it;
 *   chunk     ad_chunk_text with 800/400 (the API's default) and 100/0.
 * Every measurement runs twice: on a tokenizer without its piece cache
 * (ad_tokenizer_set_cache(t, false): the baseline, the code path before the
 * cache) and with it (the default), on separate tokenizers so that neither
 * warms the other. Both must give the same token counts and chunks; the run
 * fails (exit 1) otherwise. Rates are MB of text per second of CPU time of
 * this thread (CLOCK_THREAD_CPUTIME_ID: the machine is shared, and wall time
 * would count other processes' load).
 *
 * Usage: tokenizer_bench [CORPUS.jsonl] [MB] [REPS] [both|cache|nocache]
 * (defaults ../shared/data/nfcorpus/corpus.jsonl, 8, 3, both; run from the
 * repository root, which holds share/tokenizer). cache / nocache run only
 * that side (for profiling) and print its figures in both columns.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/chunk.h"
#include "run/tokenizer.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/str.h"

#define LINE_MAX_BYTES (1u << 20)
#define CALL_BYTES     4096

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends the corpus's titles and texts to b until it holds max bytes. */
static bool load_corpus(const char *path, ad_buf *b, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char *line = ad_malloc(LINE_MAX_BYTES);
    while (b->len < max && fgets(line, LINE_MAX_BYTES, f)) {
        json_t *d = json_loads(line, 0, NULL);
        const char *fields[] = {"title", "text"};
        for (size_t i = 0; d && i < 2; i++) {
            const char *s = json_string_value(json_object_get(d, fields[i]));
            if (s && *s) {
                if (ad_buf_add(b, s, strlen(s)) || ad_buf_add(b, "\n\n", 2))
                    break;
            }
        }
        json_decref(d);
    }
    ad_free(line);
    fclose(f);
    return b->len > 0;
}

static size_t count_calls(const ad_tokenizer *t, const char *s, size_t len)
{
    size_t total = 0, at = 0;
    while (at < len) {
        size_t n = len - at < CALL_BYTES ? len - at : CALL_BYTES;
        while (at + n < len && n > 1 && s[at + n] != ' ')
            n--;
        total += ad_tokenizer_count(t, s + at, n);
        at += n;
    }
    return total;
}

typedef struct {
    double best;   /* seconds of CPU, best repetition */
    size_t result; /* tokens counted, or chunks made */
    uint64_t hash; /* of the chunk ranges and counts (chunk runs) */
} run;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static run measure(const ad_tokenizer *t, int what, const char *s, size_t len, int reps)
{
    run r = {.best = 1e300};
    for (int i = 0; i < reps; i++) {
        double t0 = cpu_now();
        size_t res = 0;
        uint64_t h = 0;
        if (what == 0) {
            res = ad_tokenizer_count(t, s, len);
        } else if (what == 1) {
            res = count_calls(t, s, len);
        } else {
            ad_chunk *c = NULL;
            size_t n = 0;
            size_t mx = what == 2 ? 800 : 100, ov = what == 2 ? 400 : 0;
            if (ad_chunk_text(t, s, len, mx, ov, &c, &n) == AD_OK) {
                res = n;
                for (size_t k = 0; k < n; k++)
                    h = mix(mix(mix(h, c[k].start), c[k].end), c[k].tokens);
            }
            ad_free(c);
        }
        double dt = cpu_now() - t0;
        if (dt < r.best)
            r.best = dt;
        r.result = res;
        r.hash = h;
    }
    return r;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "../shared/data/nfcorpus/corpus.jsonl";
    int64_t mb = 8, reps = 3;
    if ((argc > 2 && (!ad_parse_i64(argv[2], &mb) || mb < 1 || mb > 256)) ||
        (argc > 3 && (!ad_parse_i64(argv[3], &reps) || reps < 1 || reps > 100))) {
        fprintf(stderr, "usage: tokenizer_bench [CORPUS.jsonl] [MB 1..256] [REPS 1..100] "
                        "[both|cache|nocache]\n");
        return 2;
    }
    ad_buf text;
    ad_buf_init(&text, (size_t)mb << 21);
    if (!load_corpus(path, &text, (size_t)mb << 20)) {
        fprintf(stderr, "tokenizer_bench: cannot read %s\n", path);
        return 1;
    }
    ad_tokenizer *base = NULL, *cached = NULL;
    if (ad_tokenizer_load(AD_TOKENIZER_DEFAULT_DIR, "o200k_base", &base) ||
        ad_tokenizer_load(AD_TOKENIZER_DEFAULT_DIR, "o200k_base", &cached)) {
        fprintf(stderr, "tokenizer_bench: cannot load %s/o200k_base.bpe\n",
                AD_TOKENIZER_DEFAULT_DIR);
        return 1;
    }
    ad_tokenizer_set_cache(base, false);
    const char *only = argc > 4 ? argv[4] : "both";
    bool run_base = strcmp(only, "cache") != 0, run_cached = strcmp(only, "nocache") != 0;
    double mbytes = (double)text.len / 1e6;
    printf("tokenizer_bench: %.1f MB of NFCorpus text, o200k_base, best of %d, MB per CPU-second\n",
           mbytes, (int)reps);
    printf("%-22s %10s %10s %8s %12s\n", "", "no cache", "cache", "speedup", "result");
    static const char *names[] = {"count (one call)", "count (4 KB calls)", "chunk 800/400",
                                  "chunk 100/0"};
    int bad = 0;
    for (int w = 0; w < 4; w++) {
        run a = measure(run_base ? base : cached, w, text.ptr, text.len, (int)reps);
        run b = run_cached && run_base ? measure(cached, w, text.ptr, text.len, (int)reps) : a;
        printf("%-22s %10.2f %10.2f %7.2fx %12zu\n", names[w], mbytes / a.best, mbytes / b.best,
               a.best / b.best, b.result);
        if (a.result != b.result || a.hash != b.hash) {
            fprintf(stderr, "tokenizer_bench: %s differs: %zu vs %zu\n", names[w], a.result,
                    b.result);
            bad = 1;
        }
        fflush(stdout);
    }
    ad_tokenizer_free(base);
    ad_tokenizer_free(cached);
    ad_buf_free(&text);
    return bad;
}
