/*
 * test_sandbox.c -- the code_interpreter sandbox, end to end: real bwrap and
 * python3 processes started by src/sandbox/sandbox.c, plus the frame parser
 * and the output collector on their own.
 *
 * One sandbox with default-like limits (short timeout) serves most tests and
 * reuses a few sessions, because starting an interpreter with numpy, pandas
 * and matplotlib preloaded costs about a second. A second sandbox with tiny
 * limits (2 sessions, 6 s idle, 8 MiB disk) covers quota, eviction and idle
 * (and the reset notice after them); others cover spare interpreters, the
 * execution log and metrics, and ending a session while its code runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "sandbox/sbx_internal.h"
#include "util/alloc.h"
#include "util/str.h"

static char datadir[] = "/tmp/assistd-sbx-test-XXXXXX";
static ad_logger logger = {AD_LOG_WARN, 2};
static ad_sandbox *sb;

static void cfg_init(ad_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", datadir);
    snprintf(cfg->share_dir, sizeof cfg->share_dir, "%s", AD_SHARE_DIR);
    cfg->sandbox_cpu_seconds = 30;
    cfg->sandbox_memory = 2ull << 30;
    cfg->sandbox_processes = 64;
    cfg->sandbox_open_files = 256;
    cfg->sandbox_file_size = 64ull << 20;
    cfg->sandbox_disk = 128ull << 20;
    cfg->sandbox_idle = 3600;
    cfg->sandbox_max_sessions = 8;
    cfg->sandbox_timeout = 6; /* a cold sympy import on a loaded machine takes seconds */
}

static int group_setup(void **state)
{
    (void)state;
    if (!mkdtemp(datadir) || chmod(datadir, 0755) != 0)
        return -1;
    setenv("ASSISTD_SECRET_FOR_TEST", "do-not-leak", 1);
    ad_config cfg;
    cfg_init(&cfg);
    return ad_sandbox_new(&cfg, &logger, &sb) == AD_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    ad_sandbox_free(sb);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", datadir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs code in session key, asserts AD_OK, returns the result (caller frees). */
static ad_sbx_result run(const char *key, const char *code)
{
    ad_sbx_result r;
    assert_int_equal(ad_sandbox_exec(sb, key, code, NULL, 0, &r), AD_OK);
    assert_non_null(r.logs);
    assert_non_null(r.exit_reason);
    return r;
}

static void expect(const char *key, const char *code, const char *reason, const char *needle)
{
    ad_sbx_result r = run(key, code);
    if (strcmp(r.exit_reason, reason) || (needle && !strstr(r.logs, needle)))
        fail_msg("code %s: reason %s (want %s), logs:\n%s", code, r.exit_reason, reason, r.logs);
    ad_sbx_result_free(&r);
}

static void test_math_seeds(void **state)
{
    (void)state;
    expect("math", "import sympy as sp\nx = sp.symbols('x')\nsp.integrate(x**2, (x, 0, 3))", "ok",
           "9");
    expect("math", "sp.solve(3*x + 11 - 14, x)", "ok", "[1]");
    ad_sbx_result r = run("math", "x = (14 - 11) / 3\nx");
    assert_string_equal(r.logs, "1.0\n");
    assert_false(r.state_lost);
    assert_int_equal(r.nfiles, 0);
    ad_sbx_result_free(&r);
    expect("math", "print('out'); import sys; print('err', file=sys.stderr); 1/0", "error",
           "ZeroDivisionError");
    expect("math", "def f(:\n", "error", "SyntaxError");
    expect("math", "None", "ok", NULL);
}

static void test_state_per_session(void **state)
{
    (void)state;
    expect("sess-a", "secret_value = 4242", "ok", NULL);
    expect("sess-a", "print(secret_value)", "ok", "4242");
    expect("sess-b", "print(secret_value)", "error", "NameError");
    /* Files are private to a session too. */
    expect("sess-a", "open('/mnt/data/mine.txt','w').write('a')", "ok", NULL);
    expect("sess-b", "import os; print(sorted(os.listdir('/mnt/data')))", "ok", "[]");
}

static void test_figure_png(void **state)
{
    (void)state;
    ad_sbx_result r = run("sess-a", "import matplotlib.pyplot as plt\n"
                                    "plt.bar(['q1','q2'], [3, 5]); plt.title('sales')\n"
                                    "plt.figure(); plt.plot([1,2,3])\n");
    assert_string_equal(r.exit_reason, "ok");
    assert_int_equal(r.nfiles, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_true(r.files[i].is_image);
        unsigned char magic[8] = {0};
        int fd = open(r.files[i].host_path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, magic, 8), 8);
        close(fd);
        assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
        assert_true(r.files[i].size > 1000);
    }
    char *kept = r.files[0].host_path;
    ad_sbx_result_free(&r);
    assert_int_equal(access(kept, F_OK), -1); /* freed with the result */
    /* Figures are closed after each cell. */
    ad_sbx_result r2 = run("sess-a", "len(plt.get_fignums())");
    assert_string_equal(r2.logs, "0\n");
    assert_int_equal(r2.nfiles, 0);
    ad_sbx_result_free(&r2);
}

static void test_csv_in_out(void **state)
{
    (void)state;
    char in[512];
    snprintf(in, sizeof in, "%s/upload.csv", datadir);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs("region,amount\nnorth,10\nsouth,20\nnorth,5\n", f);
    fclose(f);
    ad_sbx_input inp = {"sales.csv", in};
    ad_sbx_result r;
    assert_int_equal(ad_sandbox_exec(sb, "sess-csv",
                                     "import pandas as pd\n"
                                     "df = pd.read_csv('/mnt/data/sales.csv')\n"
                                     "t = df.groupby('region').amount.sum()\n"
                                     "t.to_csv('/mnt/data/totals.csv')\n"
                                     "print(t['north'])\n",
                                     &inp, 1, &r),
                     AD_OK);
    assert_string_equal(r.exit_reason, "ok");
    assert_non_null(strstr(r.logs, "15"));
    assert_int_equal(r.nfiles, 1); /* the input itself is not reported */
    assert_string_equal(r.files[0].name, "totals.csv");
    assert_false(r.files[0].is_image);
    char buf[256] = {0};
    int fd = open(r.files[0].host_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    assert_non_null(strstr(buf, "north,15"));
    /* The caller may take the file: rename it away and clear host_path. */
    char taken[512];
    snprintf(taken, sizeof taken, "%s/taken.csv", datadir);
    assert_int_equal(rename(r.files[0].host_path, taken), 0);
    ad_free(r.files[0].host_path);
    r.files[0].host_path = NULL;
    ad_sbx_result_free(&r);
    assert_int_equal(access(taken, F_OK), 0);
    /* Same input again: unchanged, nothing new reported. */
    assert_int_equal(ad_sandbox_exec(sb, "sess-csv", "len(df)", &inp, 1, &r), AD_OK);
    assert_string_equal(r.logs, "3\n");
    assert_int_equal(r.nfiles, 0);
    ad_sbx_result_free(&r);
    /* A symlink planted under an input's name is replaced, not written through. */
    char target[512];
    snprintf(target, sizeof target, "%s/victim.txt", datadir);
    f = fopen(target, "w");
    fputs("untouched", f);
    fclose(f);
    char code[700];
    snprintf(code, sizeof code,
             "import os\nos.remove('/mnt/data/sales.csv')\n"
             "os.symlink('%s', '/mnt/data/sales.csv')\n",
             target);
    expect("sess-csv", code, "ok", NULL);
    assert_int_equal(
        ad_sandbox_exec(sb, "sess-csv", "print(open('/mnt/data/sales.csv').read())", &inp, 1, &r),
        AD_OK);
    assert_non_null(strstr(r.logs, "north,10"));
    ad_sbx_result_free(&r);
    fd = open(target, O_RDONLY);
    memset(buf, 0, sizeof buf);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    assert_string_equal(buf, "untouched");
    /* A symlink the code creates is never followed when collecting files. */
    snprintf(code, sizeof code, "import os\nos.symlink('/etc/shadow', '/mnt/data/sh')\n");
    ad_sbx_result r3 = run("sess-csv", code);
    assert_int_equal(r3.nfiles, 0);
    ad_sbx_result_free(&r3);
}

static void test_timeout_keeps_state(void **state)
{
    (void)state;
    expect("sess-t", "kept = 'still here'", "ok", NULL);
    expect("sess-t", "while True:\n    pass\n", "timeout", "KeyboardInterrupt");
    ad_sbx_result r = run("sess-t", "print(kept)");
    assert_string_equal(r.exit_reason, "ok");
    assert_false(r.state_lost);
    assert_non_null(strstr(r.logs, "still here"));
    ad_sbx_result_free(&r);
    /* Code that ignores SIGINT is killed after the grace period. */
    expect("sess-t",
           "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
           "timeout", "timed out");
    r = run("sess-t", "print('alive')");
    assert_string_equal(r.exit_reason, "ok");
    assert_true(r.state_lost);
    assert_non_null(strstr(r.logs, "alive"));
    ad_sbx_result_free(&r);
}

static void test_crash_restarts(void **state)
{
    (void)state;
    expect("sess-c", "v = 1", "ok", NULL);
    expect("sess-c", "import os\nos._exit(3)", "crashed", "ended unexpectedly");
    ad_sbx_result r = run("sess-c", "print('v' in globals())");
    assert_true(r.state_lost);
    assert_string_equal(r.exit_reason, "ok");
    assert_non_null(strstr(r.logs, "False"));
    assert_non_null(strstr(r.logs, "restarted"));
    ad_sbx_result_free(&r);
    expect("sess-c", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "crashed", NULL);
    expect("sess-c", "import ctypes\nctypes.string_at(0)", "crashed", NULL);
    /* Writing junk on the protocol socket only breaks this session. */
    expect("sess-c",
           "import os\nfor fd in range(3, 20):\n    try: os.write(fd, b'garbage\\n')\n"
           "    except OSError: pass\nimport time; time.sleep(0.5)",
           "crashed", NULL);
    expect("sess-c", "print('back')", "ok", "back");
}

static void test_memory_hog(void **state)
{
    (void)state;
    expect("sess-m", "keep = 7\nblob = bytearray(3 * 1024**3)", "killed-memory", "MemoryError");
    expect("sess-m", "import numpy as np\nbig = np.ones((40000, 40000))", "killed-memory",
           "MemoryError");
    ad_sbx_result r = run("sess-m", "print(keep)");
    assert_string_equal(r.exit_reason, "ok");
    assert_false(r.state_lost);
    ad_sbx_result_free(&r);
}

static void test_isolation(void **state)
{
    (void)state;
    /* No network: only AF_UNIX sockets exist, and there is no route anyway. */
    expect("sess-i",
           "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
           "except OSError as e:\n    print('blocked', e.errno)\n",
           "ok", "blocked 1");
    expect("sess-i",
           "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n"
           "except OSError as e:\n    print('dns blocked')\n",
           "ok", "dns blocked");
    expect("sess-i", "import socket\na, b = socket.socketpair()\na.send(b'x'); b.recv(1)", "ok",
           "b'x'");
    /* No view of the host's files. */
    char code[1024];
    snprintf(code, sizeof code,
             "import os\nfor p in ['/work', '/root', '/etc/shadow', '/home', '%s', '%s']:\n"
             "    print(p, os.path.exists(p))\n",
             datadir, AD_SHARE_DIR);
    ad_sbx_result r = run("sess-i", code);
    assert_null(strstr(r.logs, "True"));
    ad_sbx_result_free(&r);
    /* Read-only system, writable /mnt/data and /tmp. */
    r = run("sess-i",
            "import os\nfor p in ['/usr/x', '/etc/x', '/x', '/bin/x', '/mnt/x', '/dev/x', "
            "'/etc/passwd']:\n"
            "    try:\n        open(p, 'w')\n        print('WROTE', p)\n"
            "    except OSError:\n        pass\n"
            "open('/tmp/t', 'w').write('t'); open('/mnt/data/t', 'w').write('t')\n"
            "open('/dev/shm/t', 'w').write('t'); print('done')");
    assert_string_equal(r.exit_reason, "ok");
    if (strstr(r.logs, "WROTE") || !strstr(r.logs, "done"))
        fail_msg("writes outside /mnt/data, /tmp and /dev/shm: %s", r.logs);
    ad_sbx_result_free(&r);
    /* A clean environment. */
    r = run("sess-i", "import os\nprint(sorted(os.environ))");
    assert_null(strstr(r.logs, "ASSISTD"));
    assert_non_null(strstr(r.logs, "MPLBACKEND"));
    ad_sbx_result_free(&r);
    /* No host processes: only the sandbox's own few. */
    expect("sess-i",
           "import os\nprint('procs', len([p for p in os.listdir('/proc') if p.isdigit()]) < 6)",
           "ok", "procs True");
    /* Refused system calls fail with EPERM, the session goes on. */
    expect("sess-i",
           "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
           "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"
           "print('mount', libc.mount(b'x', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n"
           "print('ptrace', libc.ptrace(0, 0, None, None), ctypes.get_errno())\n",
           "ok", "unshare -1 1\nmount -1 1\nptrace -1 1");
    /* Not root inside, and no capabilities. */
    expect("sess-i", "import os\nprint(os.getuid(), os.geteuid())", "ok", "1000 1000");
    /* Threads and subprocesses still work. */
    expect("sess-i",
           "import subprocess\nprint(subprocess.run(['echo', 'sub'], "
           "capture_output=True).stdout)",
           "ok", "b'sub\\n'");
}

static void test_fork_bomb(void **state)
{
    (void)state;
    ad_sbx_result r =
        run("sess-f", "import os, time\nkids = []\n"
                      "try:\n    for i in range(500):\n"
                      "        pid = os.fork()\n"
                      "        if pid == 0:\n            time.sleep(30); os._exit(0)\n"
                      "        kids.append(pid)\n"
                      "except OSError as e:\n    print('stopped at', len(kids))\n"
                      "for k in kids:\n    os.kill(k, 9)\n"
                      "for k in kids:\n    os.waitpid(k, 0)\n");
    assert_string_equal(r.exit_reason, "ok");
    const char *p = strstr(r.logs, "stopped at ");
    if (!p)
        fail_msg("fork bomb not contained: %s", r.logs);
    long n = strtol(p + 11, NULL, 10);
    assert_true(n > 0 && n < 64);
    ad_sbx_result_free(&r);
    expect("sess-f", "print('ok after bomb')", "ok", "ok after bomb");
}

static void test_output_bounded(void **state)
{
    (void)state;
    ad_sbx_result r = run("sess-o", "import sys\nfor i in range(200):\n"
                                    "    sys.stdout.write('y' * 50000 + '\\n')\nprint('THE END')");
    assert_string_equal(r.exit_reason, "ok");
    assert_true(r.logs_len < 70 * 1024);
    assert_non_null(strstr(r.logs, "bytes truncated"));
    assert_non_null(strstr(r.logs, "THE END"));
    ad_sbx_result_free(&r);
    /* Raw bytes that are not UTF-8 come back as valid UTF-8. */
    r = run("sess-o", "import os\nos.write(1, b'a\\xff\\x00b\\n')");
    assert_true(ad_utf8_valid(r.logs, r.logs_len));
    assert_int_equal(strlen(r.logs), r.logs_len);
    ad_sbx_result_free(&r);
}

static void test_signals_and_pipes(void **state)
{
    (void)state;
    /* assistd (here: this test process) is not visible, so it cannot be
     * signalled; the sandbox's own init ignores signals from inside. */
    char code[512];
    snprintf(code, sizeof code,
             "import os, signal\n"
             "for p in (%d, %d):\n"
             "    try:\n        os.kill(p, signal.SIGKILL); print('KILLED', p)\n"
             "    except ProcessLookupError:\n        print('no such process')\n"
             "os.kill(os.getppid(), signal.SIGKILL)\n"
             "os.kill(1, signal.SIGTERM)\n"
             "import time; time.sleep(0.3)\nprint('parent', os.getppid())",
             (int)getpid(), (int)getppid());
    expect("sess-c", "kept = 5", "ok", NULL);
    ad_sbx_result r = run("sess-c", code);
    if (strstr(r.logs, "KILLED") || !strstr(r.logs, "no such process"))
        fail_msg("signals escaped: %s", r.logs);
    ad_sbx_result_free(&r);
    /* kill(-1) reaches nothing outside the sandbox (the kernel finds no
     * process it may signal). (Session key shared with test_crash_restarts: the main
     * sandbox has 8 slots and test_bad_calls needs sess-a to stay.) */
    expect("sess-c", "import os, signal\nos.kill(-1, signal.SIGKILL)", "error", "No such process");
    r = run("sess-c", "kept = 6\nprint('after kill -1')");
    assert_non_null(strstr(r.logs, "after kill -1"));
    ad_sbx_result_free(&r);
    /* Closing stdout and stderr silences that cell only: the next cell's
     * output arrives and the state is kept. */
    expect("sess-c", "import os\nos.close(1)\nos.close(2)\nprint('lost')", "error", NULL);
    r = run("sess-c", "print('heard', kept)");
    assert_false(r.state_lost);
    assert_non_null(strstr(r.logs, "heard 6"));
    ad_sbx_result_free(&r);
    /* Closing every descriptor (the protocol socket and the output pipe
     * included) ends the session, which restarts and prints again. */
    expect("sess-c", "import os\nos.closerange(0, 4096)\nimport time; time.sleep(0.3)", "crashed",
           NULL);
    r = run("sess-c", "print('heard again')");
    assert_true(r.state_lost);
    assert_non_null(strstr(r.logs, "heard again"));
    ad_sbx_result_free(&r);
    /* A frame header announcing a huge payload, and a flood of bytes on the
     * protocol socket: refused at once (bounded), this session only. */
    expect("sess-c",
           "import os, stat\n"
           "for fd in range(3, 64):\n"
           "    try:\n"
           "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
           "            os.write(fd, b'I 999999999999\\n' + b'x' * (1 << 20))\n"
           "    except OSError:\n        pass\n"
           "import time; time.sleep(0.5)",
           "crashed", NULL);
    expect("sess-c", "print('fine')", "ok", "fine");
}

static void test_bad_calls(void **state)
{
    (void)state;
    ad_sbx_result r;
    assert_int_equal(ad_sandbox_exec(sb, "", "1", NULL, 0, &r), AD_EINVAL);
    assert_int_equal(ad_sandbox_exec(sb, "has space", "1", NULL, 0, &r), AD_EINVAL);
    ad_sbx_input bad = {"../x", "/etc/hostname"};
    assert_int_equal(ad_sandbox_exec(sb, "sess-a", "1", &bad, 1, &r), AD_EINVAL);
    ad_sbx_input missing = {"x.csv", "/nonexistent/x.csv"};
    assert_int_equal(ad_sandbox_exec(sb, "sess-a", "1", &missing, 1, &r), AD_ENOTFOUND);
    /* The session survived the refused call. */
    expect("sess-a", "print(secret_value)", "ok", "4242");
    ad_sandbox_end(sb, "sess-a");
    expect("sess-a", "print('secret_value' in globals())", "ok", "False");
}

static void test_metrics(void **state)
{
    (void)state;
    ad_buf b;
    ad_buf_init(&b, 1 << 16);
    ad_sandbox_metrics(sb, &b);
    const char *m = ad_buf_str(&b);
    assert_non_null(strstr(m, "assistd_sandbox_executions_total{reason=\"ok\"} "));
    assert_null(strstr(m, "assistd_sandbox_executions_total{reason=\"ok\"} 0\n"));
    assert_non_null(strstr(m, "assistd_sandbox_execution_seconds_count "));
    assert_non_null(strstr(m, "assistd_sandbox_sessions "));
    ad_buf_free(&b);
}

/* ---- executions on other threads ---- */

typedef struct bg_exec {
    ad_sandbox *sb;
    const char *key, *code;
    ad_err rc;
    ad_sbx_result res;
} bg_exec;

static void *bg_exec_main(void *arg)
{
    bg_exec *b = arg;
    b->rc = ad_sandbox_exec(b->sb, b->key, b->code, NULL, 0, &b->res);
    return NULL;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the small sandbox: quota, eviction, idle ---- */

static void test_limits_small(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_max_sessions = 2;
    cfg.sandbox_idle = 6; /* long enough for cold starts on a loaded machine */
    cfg.sandbox_disk = 8ull << 20;
    cfg.sandbox_file_size = 4ull << 20;
    ad_sandbox *small;
    ad_sandbox_free(sb); /* one sandbox per data dir */
    sb = NULL;
    assert_int_equal(ad_sandbox_new(&cfg, &logger, &small), AD_OK);
    ad_sandbox *saved = sb;
    sb = small;
    /* One file over the size limit. */
    expect("q1",
           "try:\n    open('/mnt/data/big', 'wb').write(b'x' * (5 << 20))\n"
           "except OSError as e:\n    print('refused', e.errno)\n",
           "ok", "refused 27");
    /* /tmp is a tmpfs capped at the quota too. */
    expect("q1",
           "try:\n    open('/tmp/big', 'wb').write(b'x' * (3 << 20)); "
           "open('/tmp/big2', 'wb').write(b'x' * (3 << 20)); "
           "open('/tmp/big3', 'wb').write(b'x' * (3 << 20))\n"
           "except OSError as e:\n    print('tmp full', e.errno)\n",
           "ok", "tmp full 28");
    /* The directory over its total. */
    ad_sbx_result r = run("q1", "for i in range(3):\n"
                                "    open('/mnt/data/f%d' % i, 'wb').write(b'x' * (3 << 20))\n");
    assert_string_equal(r.exit_reason, "killed-disk");
    ad_sbx_result_free(&r);
    expect("q1",
           "import os\nprint(sum(os.path.getsize('/mnt/data/' + f) "
           "for f in os.listdir('/mnt/data')) <= 8 << 20)",
           "ok", "True");
    /* A writer that never stops is stopped while it runs. */
    expect("q1",
           "i = 0\nwhile True:\n"
           "    open('/mnt/data/g%d' % i, 'wb').write(b'x' * (1 << 20)); i += 1\n",
           "killed-disk", NULL);
    /* Eviction: a third session pushes out the least recently used. */
    expect("q1", "z = 1", "ok", NULL);
    expect("q2", "z = 2", "ok", NULL);
    expect("q1", "print(z)", "ok", "1");
    expect("q3", "z = 3", "ok", NULL);
    assert_int_equal(ad_sandbox_live(sb), 2);
    /* The evicted session's next execution is told its state was reset
     * (rather than meeting a bare NameError). */
    r = run("q2", "print('z' in globals())");
    assert_non_null(strstr(r.logs, "False"));
    assert_true(r.state_lost);
    if (!strstr(r.logs, "code execution state was reset") || !strstr(r.logs, "least recently used"))
        fail_msg("no reset notice: %s", r.logs);
    ad_sbx_result_free(&r);
    /* Only once: the new session goes on normally. */
    expect("q2", "z = 22", "ok", NULL);
    r = run("q2", "print(z)");
    assert_false(r.state_lost);
    assert_string_equal(r.logs, "22\n");
    ad_sbx_result_free(&r);
    /* Idle sessions end, and say so when their thread comes back. */
    sleep(7);
    assert_int_equal(ad_sandbox_live(sb), 0);
    r = run("q2", "z");
    assert_true(r.state_lost);
    if (!strstr(r.logs, "code execution state was reset") || !strstr(r.logs, "idle timeout") ||
        !strstr(r.logs, "NameError"))
        fail_msg("no idle reset notice: %s", r.logs);
    ad_sbx_result_free(&r);
    /* A session ended because its thread was deleted starts afresh silently. */
    ad_sandbox_end(sb, "q2");
    r = run("q2", "print('fresh')");
    assert_false(r.state_lost);
    assert_string_equal(r.logs, "fresh\n");
    ad_sbx_result_free(&r);
    ad_sandbox_free(small);
    sb = saved;
}

/* A sandbox of its own in DATADIR/NAME (each sandbox owns its directory). */
static ad_sandbox *own_sandbox(const char *name, ad_config *cfg, ad_logger *lg)
{
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/%s", datadir, name);
    assert_int_equal(mkdir(cfg->data_dir, 0755), 0);
    ad_sandbox *x;
    assert_int_equal(ad_sandbox_new(cfg, lg, &x), AD_OK);
    return x;
}

/* The value of a metric line "NAME VALUE" in the sandbox's metrics, or -1. */
static long metric(ad_sandbox *x, const char *name)
{
    ad_buf b;
    ad_buf_init(&b, 1 << 16);
    ad_sandbox_metrics(x, &b);
    char pat[160];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(ad_buf_str(&b), pat);
    long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
    ad_buf_free(&b);
    return v;
}

static bool wait_metric(ad_sandbox *x, const char *name, long want, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        if (metric(x, name) == want)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

static ad_sbx_result run_in(ad_sandbox *x, const char *key, const char *code)
{
    ad_sbx_result r;
    assert_int_equal(ad_sandbox_exec(x, key, code, NULL, 0, &r), AD_OK);
    return r;
}

/* Removal reaches any depth (the walk itself stops at 64 levels and moves
 * deeper subtrees up for another pass). */
static void test_rm_deep(void **state)
{
    (void)state;
    char top[1200];
    snprintf(top, sizeof top, "%s/rm-deep", datadir);
    assert_int_equal(mkdir(top, 0755), 0);
    int base = open(datadir, O_RDONLY | O_DIRECTORY);
    int fd = open(top, O_RDONLY | O_DIRECTORY);
    assert_true(base >= 0 && fd >= 0);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int f = openat(fd, "f", O_WRONLY | O_CREAT, 0644);
        assert_true(f >= 0);
        close(f);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    close(fd);
    assert_true(ad_sbx_dir_usage(base) == UINT64_MAX); /* too deep to measure */
    ad_sbx_rm_rf_at(base, "rm-deep");
    struct stat st;
    assert_int_equal(fstatat(base, "rm-deep", &st, AT_SYMLINK_NOFOLLOW), -1);
    close(base);
}

/* The quota counts every file, however deep or however many names come
 * before it: a scan bounded in depth or entries must not let bytes past it. */
static void test_disk_quota_unscanned(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_disk = 8ull << 20;
    cfg.sandbox_file_size = 4ull << 20;
    /* 25,000 files take a few seconds on a loaded machine; the run must end
     * killed-disk, not by the clock. */
    cfg.sandbox_timeout = 30;
    ad_sandbox *x = own_sandbox("quota-deep", &cfg, &logger);
    /* Deeper than any scan looks. */
    ad_sbx_result r = run_in(x, "deep",
                             "import os\nd = '/mnt/data/' + '/'.join('d' * 80)\nos.makedirs(d)\n"
                             "for i in range(4):\n"
                             "    open(d + '/f%d' % i, 'wb').write(b'x' * (3 << 20))\n");
    if (strcmp(r.exit_reason, "killed-disk"))
        fail_msg("deep files: %s\n%s", r.exit_reason, r.logs);
    ad_sbx_result_free(&r);
    /* More names than any scan looks at, then the bytes. */
    r = run_in(x, "wide",
               "import os\nos.mkdir('/mnt/data/w')\n"
               "for i in range(25000):\n    open('/mnt/data/w/%05d' % i, 'wb').close()\n"
               "for i in range(4):\n"
               "    open('/mnt/data/w/zz%d' % i, 'wb').write(b'x' * (3 << 20))\n");
    if (strcmp(r.exit_reason, "killed-disk"))
        fail_msg("many names: %s\n%s", r.exit_reason, r.logs);
    ad_sbx_result_free(&r);
    /* Both sessions' directories are gone with them. */
    ad_sandbox_end(x, "deep");
    ad_sandbox_end(x, "wide");
    char path[1200];
    snprintf(path, sizeof path, "%s/sandbox", cfg.data_dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    int left = 0;
    while ((de = readdir(d)) != NULL)
        left += strncmp(de->d_name, "s-", 2) == 0;
    closedir(d);
    assert_int_equal(left, 0);
    ad_sandbox_free(x);
}

/* ---- spare interpreters ---- */

static void test_spares(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_spares = 1;
    cfg.sandbox_max_sessions = 2;
    ad_sandbox *x = own_sandbox("spares", &cfg, &logger);
    /* Nothing is pre-started before the first execution. */
    usleep(300 * 1000);
    assert_int_equal(metric(x, "assistd_sandbox_spares"), 0);
    assert_int_equal(metric(x, "assistd_sandbox_interpreter_starts_total"), 0);
    ad_sbx_result a =
        run_in(x, "sp-a", "secret = 'only a'\nopen('/mnt/data/a.txt','w').write('a')");
    assert_string_equal(a.exit_reason, "ok");
    double cold_ms = a.duration_ms;
    ad_sbx_result_free(&a);
    /* After it, one spare is started in the background. */
    assert_true(wait_metric(x, "assistd_sandbox_spares", 1, 20));
    assert_true(wait_metric(x, "assistd_sandbox_spares_ready", 1, 20)); /* imports done */
    /* A new session gets it: a clean interpreter (nothing but the driver ran
     * in it), an empty /mnt/data of its own that is the directory assistd
     * scans (the new file comes back), the preloaded libraries. */
    ad_sbx_result b = run_in(x, "sp-b",
                             "print(sorted(k for k in globals() if not k.startswith('__')))\n"
                             "import os, sys\n"
                             "print(os.listdir('/mnt/data'), os.getuid())\n"
                             "print('numpy' in sys.modules, 'pandas' in sys.modules)\n"
                             "open('/mnt/data/b.txt','w').write('b')\n");
    if (strcmp(b.exit_reason, "ok") || !strstr(b.logs, "[]\n[] 1000\nTrue True\n") ||
        b.state_lost || b.nfiles != 1 || strcmp(b.files[0].name, "b.txt"))
        fail_msg("spare session: %s %s files=%zu", b.exit_reason, b.logs, b.nfiles);
    double spare_ms = b.duration_ms;
    ad_sbx_result_free(&b);
    assert_int_equal(metric(x, "assistd_sandbox_spare_handouts_total"), 1);
    if (!(spare_ms * 2 < cold_ms))
        fail_msg("handing out a spare (%.1f ms) is not faster than a cold start (%.1f ms)",
                 spare_ms, cold_ms);
    /* Sessions stay apart. */
    ad_sbx_result r =
        run_in(x, "sp-a", "import os\nprint(secret, sorted(os.listdir('/mnt/data')))");
    assert_string_equal(r.logs, "only a ['a.txt']\n");
    ad_sbx_result_free(&r);
    r = run_in(x, "sp-b", "print('secret' in globals())");
    assert_string_equal(r.logs, "False\n");
    ad_sbx_result_free(&r);
    /* Spares are not sessions: the limit of 2 live sessions holds, a third
     * new session evicts the least recently used (sp-a) and takes the
     * refilled spare. */
    assert_true(wait_metric(x, "assistd_sandbox_spares", 1, 20));
    assert_int_equal(ad_sandbox_live(x), 2);
    r = run_in(x, "sp-c", "print('c')");
    assert_string_equal(r.logs, "c\n");
    ad_sbx_result_free(&r);
    assert_int_equal(ad_sandbox_live(x), 2);
    assert_int_equal(metric(x, "assistd_sandbox_spare_handouts_total"), 2);
    r = run_in(x, "sp-a", "print('secret' in globals())");
    assert_true(r.state_lost);
    assert_non_null(strstr(r.logs, "code execution state was reset"));
    ad_sbx_result_free(&r);
    ad_sandbox_free(x);
}

/* Spares stop when no new session is wanted for the idle time. */
static void test_spares_stop_when_idle(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_spares = 2;
    cfg.sandbox_idle = 3;
    ad_sandbox *x = own_sandbox("spares-idle", &cfg, &logger);
    ad_sbx_result r = run_in(x, "si", "print(1)");
    ad_sbx_result_free(&r);
    assert_true(wait_metric(x, "assistd_sandbox_spares", 2, 20));
    assert_true(wait_metric(x, "assistd_sandbox_spares", 0, 10));
    assert_true(wait_metric(x, "assistd_sandbox_sessions", 0, 5)); /* it idled out too */
    /* No refill until the next new session. */
    usleep(600 * 1000);
    assert_int_equal(metric(x, "assistd_sandbox_spares"), 0);
    ad_sandbox_free(x);
}

/* ---- observability: every execution logged and counted with its reason ---- */

static void test_exec_log_and_metrics(void **state)
{
    (void)state;
    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s/exec.log", datadir);
    int fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    ad_logger lg = {AD_LOG_INFO, fd};
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_timeout = 1;
    ad_sandbox *x = own_sandbox("obs", &cfg, &lg);
    const char *cells[][2] = {
        {"print(1)", "ok"},
        {"1/0", "error"},
        {"while True:\n    pass\n", "timeout"},
        {"b = bytearray(3 * 1024**3)", "killed-memory"},
    };
    for (size_t i = 0; i < 4; i++) {
        ad_sbx_result r = run_in(x, "obs", cells[i][0]);
        assert_string_equal(r.exit_reason, cells[i][1]);
        assert_true(r.duration_ms > 0);
        ad_sbx_result_free(&r);
    }
    assert_int_equal(metric(x, "assistd_sandbox_executions_total{reason=\"ok\"}"), 1);
    assert_int_equal(metric(x, "assistd_sandbox_executions_total{reason=\"error\"}"), 1);
    assert_int_equal(metric(x, "assistd_sandbox_executions_total{reason=\"timeout\"}"), 1);
    assert_int_equal(metric(x, "assistd_sandbox_executions_total{reason=\"killed-memory\"}"), 1);
    assert_int_equal(metric(x, "assistd_sandbox_execution_seconds_count"), 4);
    /* The timeout took at least its second: the histogram saw it. */
    assert_true(metric(x, "assistd_sandbox_execution_seconds_bucket{le=\"0.5\"}") <= 3);
    ad_sandbox_free(x);
    char buf[8192] = {0};
    assert_true(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    const char *want[] = {"exit=ok", "exit=error", "exit=timeout", "exit=killed-memory"};
    const char *p = buf;
    for (size_t i = 0; i < 4; i++) {
        /* In order, each on an "exec N ms exit=R" line. */
        const char *q = strstr(p, want[i]);
        if (!q)
            fail_msg("no %s after offset %td in the log:\n%s", want[i], p - buf, buf);
        const char *line = q;
        while (line > buf && line[-1] != '\n')
            line--;
        const char *ex = strstr(line, "sandbox: session obs exec ");
        if (!ex || ex > q)
            fail_msg("bad log line for %s:\n%s", want[i], buf);
        double ms = strtod(ex + strlen("sandbox: session obs exec "), NULL);
        assert_true(ms > 0 && (i != 2 || ms >= 1000));
        p = q + strlen(want[i]);
    }
}

/* ---- ending a session while its code runs (thread deleted) ---- */

static void test_end_while_running(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_timeout = 60;
    ad_sandbox *x = own_sandbox("end", &cfg, &logger);
    ad_sbx_result r = run_in(x, "e1", "kept = 1");
    ad_sbx_result_free(&r);
    r = run_in(x, "e2", "other = 2");
    ad_sbx_result_free(&r);
    for (int round = 0; round < 3; round++) {
        bg_exec b = {x, "e1", "import time\nwhile True:\n    time.sleep(0.01)\n", AD_OK, {0}};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, bg_exec_main, &b), 0);
        usleep(round == 0 ? 300 * 1000 : (useconds_t)(round * 20 * 1000));
        double t0 = mono_s();
        ad_sandbox_end(x, "e1"); /* from another thread, while the cell runs */
        pthread_join(t, NULL);
        if (mono_s() - t0 > 3.0)
            fail_msg("the running cell took %.2f s to end", mono_s() - t0);
        if (b.rc == AD_OK) {
            if (round == 0)
                assert_string_equal(b.res.exit_reason, "crashed");
            ad_sbx_result_free(&b.res);
        }
        /* The key starts afresh, silently; the other session is untouched. */
        r = run_in(x, "e1", "print('kept' in globals())");
        assert_string_equal(r.logs, "False\n");
        assert_false(r.state_lost);
        ad_sbx_result_free(&r);
        r = run_in(x, "e2", "print(other)");
        assert_string_equal(r.logs, "2\n");
        ad_sbx_result_free(&r);
        r = run_in(x, "e1", "kept = 1");
        ad_sbx_result_free(&r);
    }
    assert_int_equal(ad_sandbox_live(x), 2);
    ad_sandbox_free(x);
}

/* ---- shutdown ---- */

static void test_shutdown(void **state)
{
    (void)state;
    ad_config cfg;
    cfg_init(&cfg);
    cfg.sandbox_timeout = 60;
    ad_sandbox *s2;
    assert_int_equal(ad_sandbox_new(&cfg, &logger, &s2), AD_OK);
    /* Warm a session, then run a long cell and a second one queued behind it
     * on the same session. */
    ad_sbx_result r;
    assert_int_equal(
        ad_sandbox_exec(s2, "sd", "open('/mnt/data/mark', 'w').write('m')", NULL, 0, &r), AD_OK);
    ad_sbx_result_free(&r);
    bg_exec a = {s2, "sd", "import time\nwhile True:\n    time.sleep(0.01)\n", AD_OK, {0}};
    bg_exec b = {s2, "sd", "print('never')", AD_OK, {0}};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, bg_exec_main, &a), 0);
    usleep(500 * 1000);
    assert_int_equal(pthread_create(&tb, NULL, bg_exec_main, &b), 0);
    usleep(500 * 1000);
    double t0 = mono_s();
    ad_sandbox_shutdown(s2);
    ad_sandbox_shutdown(s2); /* idempotent */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    double took = mono_s() - t0;
    if (took > 2.0)
        fail_msg("shutdown took %.2f s", took);
    assert_int_equal(a.rc, AD_ESTATE);
    assert_int_equal(b.rc, AD_ESTATE);
    assert_null(a.res.logs);
    assert_null(b.res.logs);
    /* Nothing runs any more. */
    assert_int_equal(ad_sandbox_exec(s2, "sd", "print(1)", NULL, 0, &r), AD_ESTATE);
    assert_int_equal(ad_sandbox_exec(s2, "other", "print(1)", NULL, 0, &r), AD_ESTATE);
    ad_sandbox_free(s2);
}

/* ---- parser and collector ---- */

typedef struct seen {
    char types[16];
    size_t n;
    size_t bytes;
} seen;

static ad_err on_f(void *ctx, char type, const char *p, size_t n)
{
    (void)p;
    seen *s = ctx;
    if (s->n < sizeof s->types - 1)
        s->types[s->n++] = type;
    s->bytes += n;
    return AD_OK;
}

static void test_proto(void **state)
{
    (void)state;
    ad_sbx_proto p;
    ad_sbx_proto_init(&p, 100);
    seen s = {0};
    const char *in = "R 3\nabcD 0\nI 5\nhello";
    for (size_t i = 0; in[i]; i++) /* byte by byte */
        assert_int_equal(ad_sbx_proto_feed(&p, in + i, 1, on_f, &s), AD_OK);
    assert_string_equal(s.types, "RDI");
    assert_int_equal(s.bytes, 8);
    assert_int_equal(ad_sbx_proto_feed(&p, "D 101\n", 6, on_f, &s), AD_ETOOBIG);
    assert_int_equal(ad_sbx_proto_feed(&p, "D 1\nx", 5, on_f, &s), AD_ETOOBIG); /* sticky */
    const char *bad[] = {"d 1\nx",          "D01\n", "D 01\nx", "D -1\n",
                         "D 12345678901\n", "Dx\n",  "D \n",    "D 1 \n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ad_sbx_proto_reset(&p);
        assert_int_not_equal(ad_sbx_proto_feed(&p, bad[i], strlen(bad[i]), on_f, &s), AD_OK);
    }
    ad_sbx_proto_free(&p);
    ad_buf b;
    ad_buf_init(&b, 64);
    assert_int_equal(ad_sbx_frame_append(&b, 'C', "print(1)", 8), AD_OK);
    assert_string_equal(ad_buf_str(&b), "C 8\nprint(1)");
    ad_buf_free(&b);
}

static void test_out_collector(void **state)
{
    (void)state;
    ad_sbx_out o;
    ad_sbx_out_init(&o, 4, 3);
    ad_sbx_out_add(&o, "abcdefghij", 10);
    ad_sbx_out_add(&o, "kl", 2);
    char *t;
    size_t n;
    ad_sbx_out_finish(&o, &t, &n);
    assert_string_equal(t, "abcd\n[... 5 bytes truncated ...]\njkl");
    ad_free(t);
    ad_sbx_out_free(&o);
    ad_sbx_out_init(&o, 100, 10);
    ad_sbx_out_add(&o, "ok \xc3\xa9 \xe2\x82", 8); /* a cut sequence at the end */
    ad_sbx_out_finish(&o, &t, &n);
    assert_string_equal(t, "ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
    ad_free(t);
    ad_sbx_out_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto),
        cmocka_unit_test(test_out_collector),
        cmocka_unit_test(test_math_seeds),
        cmocka_unit_test(test_state_per_session),
        cmocka_unit_test(test_figure_png),
        cmocka_unit_test(test_csv_in_out),
        cmocka_unit_test(test_timeout_keeps_state),
        cmocka_unit_test(test_crash_restarts),
        cmocka_unit_test(test_memory_hog),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_output_bounded),
        cmocka_unit_test(test_signals_and_pipes),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_limits_small),
        cmocka_unit_test(test_rm_deep),
        cmocka_unit_test(test_disk_quota_unscanned),
        cmocka_unit_test(test_spares),
        cmocka_unit_test(test_spares_stop_when_idle),
        cmocka_unit_test(test_exec_log_and_metrics),
        cmocka_unit_test(test_end_while_running),
        cmocka_unit_test(test_shutdown),
    };
    /* SBX_TEST=PATTERN runs only the matching tests (e.g. "test_spares*"). */
    if (getenv("SBX_TEST"))
        cmocka_set_test_filter(getenv("SBX_TEST"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
