/*
 * sandbox_bench.c -- the code_interpreter benchmark (issue #5, "Performance"),
 * driving src/sandbox directly (linked against the release objects), so the
 * figures are the sandbox's own, without HTTP or the model in the way.
 *
 * Measurements, all in one process and one run:
 *   cold     a new session's first result: ad_sandbox_exec of a cell that
 *            imports numpy, pandas and matplotlib.pyplot and prints, timed
 *            around the call. Two sandboxes side by side, alternating: the
 *            baseline without spares (bwrap + Python + the imports on the
 *            critical path) and one with a spare interpreter (the next new
 *            session is handed a pre-started one; the bench waits until the
 *            refilled spare is ready, as for sessions arriving less than
 *            once per start time). Then a burst of new sessions back to
 *            back on the spare sandbox (only the first finds a ready spare).
 *   warm     print(1) round trips on a warm session.
 *   memory   PSS and RSS of every process of a session's tree (bwrap, the
 *            sandbox's init, python3), idle after print(1) and idle after a
 *            pandas + matplotlib chart cell; several sessions live at once so
 *            PSS shares the common pages fairly.
 * Prints a Markdown section on stdout (bench/sandbox.sh puts it into
 * bench/RESULTS.md) and progress on stderr.
 *
 * Usage: sandbox_bench TMPDIR [COLD_RUNS] [WARM_RUNS] [MEM_SESSIONS]
 * (TMPDIR must be reachable by others: sessions run under their own uids
 * when run as root.)
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/str.h"

#define COLD_CELL "import numpy as np, pandas as pd, matplotlib.pyplot as plt\nprint(1)"
#define CHART_CELL                                                                                 \
    "import pandas as pd, matplotlib.pyplot as plt\n"                                              \
    "df = pd.DataFrame({'q': ['Q1','Q2','Q3','Q4'], 'sales': [10, 14, 9, 17]})\n"                  \
    "df.plot.bar(x='q', y='sales'); plt.title('Sales')\n"                                          \
    "print(df.sales.sum())"
#define GIB (1024.0 * 1024 * 1024)

static ad_logger logger = {AD_LOG_WARN, 2};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest-rank percentile of v[0..n) (sorted in place). */
static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    return v[(i > n ? n : i) - 1];
}

static long metric(ad_sandbox *sb, const char *name)
{
    ad_buf b;
    ad_buf_init(&b, 1 << 16);
    ad_sandbox_metrics(sb, &b);
    char pat[160];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(ad_buf_str(&b), pat);
    long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
    ad_buf_free(&b);
    return v;
}

static void wait_metric(ad_sandbox *sb, const char *name, long want)
{
    for (int i = 0; i < 1200 && metric(sb, name) != want; i++)
        usleep(50 * 1000);
    if (metric(sb, name) != want) {
        fprintf(stderr, "bench: %s never reached %ld\n", name, want);
        exit(1);
    }
}

/* Wall-clock ms of one execution; exits unless it ends "ok". */
static double exec_ms(ad_sandbox *sb, const char *key, const char *code)
{
    ad_sbx_result r;
    double t0 = now_ms();
    ad_err e = ad_sandbox_exec(sb, key, code, NULL, 0, &r);
    double t = now_ms() - t0;
    if (e || strcmp(r.exit_reason, "ok")) {
        fprintf(stderr, "bench: %s: %s %s\n", key, e ? "exec failed" : r.exit_reason,
                e ? "" : r.logs);
        exit(1);
    }
    ad_sbx_result_free(&r);
    return t;
}

static ad_sandbox *make(const char *tmp, const char *name, unsigned spares)
{
    ad_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/%s", tmp, name);
    snprintf(cfg.share_dir, sizeof cfg.share_dir, "%s", AD_SHARE_DIR);
    /* The server's defaults (src/core/config.c). */
    cfg.sandbox_cpu_seconds = 120;
    cfg.sandbox_memory = 2ull << 30;
    cfg.sandbox_processes = 64;
    cfg.sandbox_open_files = 256;
    cfg.sandbox_file_size = 512ull << 20;
    cfg.sandbox_disk = 1ull << 30;
    cfg.sandbox_idle = 3600;
    cfg.sandbox_max_sessions = 32;
    cfg.sandbox_timeout = 120;
    cfg.sandbox_spares = spares;
    ad_sandbox *sb;
    if (mkdir(cfg.data_dir, 0711) != 0 || ad_sandbox_new(&cfg, &logger, &sb) != AD_OK) {
        fprintf(stderr, "bench: cannot create the sandbox in %s\n", cfg.data_dir);
        exit(1);
    }
    return sb;
}

/* ---- memory of process trees ---- */

/* Children of every thread of pid p (the sandbox's background thread forks). */
static size_t children(pid_t p, pid_t *out, size_t max)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)p);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char cp[400];
        snprintf(cp, sizeof cp, "%s/%s/children", path, de->d_name);
        FILE *f = fopen(cp, "r");
        int c;
        while (f && n < max && fscanf(f, "%d", &c) == 1)
            out[n++] = (pid_t)c;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static void proc_mem(pid_t p, long *pss, long *rss)
{
    char path[96], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)p);
    FILE *f = fopen(path, "r");
    long v;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "Pss: %ld", &v) == 1)
            *pss += v;
        else if (sscanf(line, "Rss: %ld", &v) == 1)
            *rss += v;
    }
    if (f)
        fclose(f);
}

static void tree_mem(pid_t root, long *pss, long *rss, int *nproc)
{
    proc_mem(root, pss, rss);
    (*nproc)++;
    pid_t kids[64];
    size_t n = children(root, kids, 64);
    for (size_t i = 0; i < n; i++)
        tree_mem(kids[i], pss, rss, nproc);
}

/* Per session (one bwrap child of this process): median PSS and RSS in KiB. */
static int session_mem(double *pss_med, double *rss_med, double *pss_py)
{
    pid_t roots[256];
    size_t n = children(getpid(), roots, 256);
    double pss[256], rss[256], py[256];
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        char path[96], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/%d/comm", (int)roots[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, "bwrap", 5))
            continue;
        long ps = 0, rs = 0;
        int np = 0;
        tree_mem(roots[i], &ps, &rs, &np);
        /* The interpreter alone: the last process of the chain. */
        pid_t kid[4], grand[4];
        long pp = 0, pr = 0;
        if (children(roots[i], kid, 4) == 1 && children(kid[0], grand, 4) == 1)
            proc_mem(grand[0], &pp, &pr);
        pss[k] = (double)ps;
        rss[k] = (double)rs;
        py[k] = (double)pp;
        k++;
    }
    if (!k)
        return 0;
    *pss_med = pct(pss, (size_t)k, 50);
    *rss_med = pct(rss, (size_t)k, 50);
    *pss_py = pct(py, (size_t)k, 50);
    return k;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TMPDIR [COLD_RUNS] [WARM_RUNS] [MEM_SESSIONS]\n", argv[0]);
        return 2;
    }
    const char *tmp = argv[1];
    int64_t cr = 7, wr = 500, ms = 4;
    if ((argc > 2 && !ad_parse_i64(argv[2], &cr)) || (argc > 3 && !ad_parse_i64(argv[3], &wr)) ||
        (argc > 4 && !ad_parse_i64(argv[4], &ms)) || cr < 1 || cr > 100 || wr < 10 || wr > 100000 ||
        ms < 1 || ms > 32)
        return 2;
    int cold_runs = (int)cr, warm_runs = (int)wr, mem_sessions = (int)ms;

    /* ---- cold starts ---- */
    ad_sandbox *base = make(tmp, "base", 0), *sp = make(tmp, "spare", 1);
    fprintf(stderr, "bench: warming up\n");
    double first_base = exec_ms(base, "w", COLD_CELL);
    double first_sp = exec_ms(sp, "w", COLD_CELL); /* arms the spare */
    double *cb = ad_calloc((size_t)cold_runs, sizeof(double));
    double *cs = ad_calloc((size_t)cold_runs, sizeof(double));
    double *burst = ad_calloc((size_t)cold_runs, sizeof(double));
    for (int i = 0; i < cold_runs; i++) {
        char key[32];
        snprintf(key, sizeof key, "cold-%d", i);
        cb[i] = exec_ms(base, key, COLD_CELL);
        ad_sandbox_end(base, key);
        wait_metric(sp, "assistd_sandbox_spares_ready", 1);
        cs[i] = exec_ms(sp, key, COLD_CELL);
        ad_sandbox_end(sp, key);
        fprintf(stderr, "bench: cold %d: no spare %.1f ms, spare %.1f ms\n", i, cb[i], cs[i]);
    }
    wait_metric(sp, "assistd_sandbox_spares_ready", 1);
    for (int i = 0; i < cold_runs; i++) {
        char key[32];
        snprintf(key, sizeof key, "burst-%d", i);
        burst[i] = exec_ms(sp, key, COLD_CELL);
        fprintf(stderr, "bench: burst %d: %.1f ms\n", i, burst[i]);
    }
    long handouts = metric(sp, "assistd_sandbox_spare_handouts_total");
    for (int i = 0; i < cold_runs; i++) {
        char key[32];
        snprintf(key, sizeof key, "burst-%d", i);
        ad_sandbox_end(sp, key);
    }

    /* ---- warm round trips ---- */
    double *w = ad_calloc((size_t)warm_runs, sizeof(double));
    for (int i = 0; i < 20; i++)
        (void)exec_ms(base, "w", "print(1)");
    for (int i = 0; i < warm_runs; i++)
        w[i] = exec_ms(base, "w", "print(1)");
    double w50 = pct(w, (size_t)warm_runs, 50), w90 = pct(w, (size_t)warm_runs, 90),
           w99 = pct(w, (size_t)warm_runs, 99);
    fprintf(stderr, "bench: warm print(1) p50 %.2f ms\n", w50);
    ad_sandbox_free(base);
    ad_sandbox_free(sp);

    /* ---- memory ---- */
    ad_sandbox *m = make(tmp, "mem", 0);
    for (int i = 0; i < mem_sessions; i++) {
        char key[32];
        snprintf(key, sizeof key, "mem-%d", i);
        (void)exec_ms(m, key, "print(1)");
    }
    sleep(1);
    double pss1 = 0, rss1 = 0, py1 = 0, pss2 = 0, rss2 = 0, py2 = 0;
    int k1 = session_mem(&pss1, &rss1, &py1);
    for (int i = 0; i < mem_sessions; i++) {
        char key[32];
        snprintf(key, sizeof key, "mem-%d", i);
        (void)exec_ms(m, key, CHART_CELL);
    }
    sleep(1);
    int k2 = session_mem(&pss2, &rss2, &py2);
    ad_sandbox_free(m);
    if (k1 != mem_sessions || k2 != mem_sessions) {
        fprintf(stderr, "bench: found %d/%d session trees, want %d\n", k1, k2, mem_sessions);
        return 1;
    }

    double b50 = pct(cb, (size_t)cold_runs, 50), b90 = pct(cb, (size_t)cold_runs, 90);
    double s50 = pct(cs, (size_t)cold_runs, 50), s90 = pct(cs, (size_t)cold_runs, 90);
    double u50 = pct(burst, (size_t)cold_runs, 50);
    double per_pss = pss2 / 1024.0, per_rss = rss2 / 1024.0; /* MiB, after a chart */
    printf("| measurement | result | target |\n|---|---:|---|\n");
    printf("| cold session start to first result, **with a ready spare** (p50 / p90 of %d) | "
           "**%.1f ms** / %.1f ms | p50 < 400 ms: **%s** |\n",
           cold_runs, s50, s90, s50 < 400 ? "met" : "missed");
    printf("| baseline in the same run: cold start **without** spares (p50 / p90 of %d) | "
           "%.0f ms / %.0f ms | |\n",
           cold_runs, b50, b90);
    printf("| a burst of %d new sessions back to back (one spare; p50) | %.0f ms | |\n", cold_runs,
           u50);
    printf("| the server's first session (before any spare exists): no spares / spares | "
           "%.0f ms / %.0f ms | |\n",
           first_base, first_sp);
    printf("| warm `print(1)` round trip (p50 / p90 / p99 of %d) | **%.2f ms** / %.2f ms / "
           "%.2f ms | p50 < 5 ms: **%s** |\n",
           warm_runs, w50, w90, w99, w50 < 5 ? "met" : "missed");
    printf("| idle session after `print(1)`: PSS / RSS of the tree (python alone: PSS) "
           "(median of %d live) | %.1f MiB / %.1f MiB (%.1f MiB) | |\n",
           mem_sessions, pss1 / 1024.0, rss1 / 1024.0, py1 / 1024.0);
    printf("| idle session after a pandas + matplotlib chart: PSS / RSS (python: PSS) | "
           "%.1f MiB / %.1f MiB (%.1f MiB) | |\n",
           pss2 / 1024.0, rss2 / 1024.0, py2 / 1024.0);
    printf("\nSpare handouts in the spare sandbox: %ld for %d new sessions (in the burst, "
           "every session after the first was handed the spare still being started and "
           "waited for its imports).\n",
           handouts, 2 * cold_runs);
    printf("\n**Sessions in 24 GiB.** Idle, after a chart: 24 GiB / %.1f MiB PSS = **%.0f "
           "sessions** (%.0f by RSS, which counts shared library pages once per session). "
           "With the defaults the binding limit is `--sandbox-max-sessions` = 32 live "
           "sessions plus `--sandbox-spares` = 1 spare: 33 interpreters, about %.1f GiB "
           "idle. Under load the per-session memory is bounded only per process "
           "(`--sandbox-memory` 2 GiB of address space, `--sandbox-processes` 64, plus up to "
           "`--sandbox-disk` 1 GiB of /tmp tmpfs): one session with one busy process can "
           "hold about 3 GiB, so 24 GiB holds %d such sessions and 32 sessions at their "
           "limits would not fit; there memory, not the session count, binds.\n",
           per_pss, 24 * 1024.0 / per_pss, 24 * 1024.0 / per_rss, 33 * per_pss / 1024.0,
           (int)(24 * GIB / (3 * GIB)));
    ad_free(cb);
    ad_free(cs);
    ad_free(burst);
    ad_free(w);
    return 0;
}
