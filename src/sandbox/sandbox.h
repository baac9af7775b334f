/*
 * sandbox.h -- the code_interpreter sandbox: stateful, sandboxed Python
 * sessions, one per session key (the thread id).
 *
 * Each session is one /usr/bin/python3 running share/sandbox/driver.py under
 * bubblewrap (own user, PID, IPC, UTS, cgroup, mount and network namespaces,
 * read-only system directories, a private /tmp, the session's own directory
 * as /mnt/data), a seccomp filter, resource limits and, when assistd runs as
 * root, an unprivileged host uid per session slot. New sessions are handed
 * a pre-started spare interpreter when one is ready (cfg->sandbox_spares).
 * See sandbox.c for the design and README "code_interpreter sandbox" for
 * the limits.
 *
 * Ownership:
 *  - ad_sandbox is created by ad_sandbox_new and owned by the server;
 *    ad_sandbox_free kills every session and removes their directories. All
 *    functions are thread-safe. It keeps pointers to the logger, which must
 *    outlive it; the configuration is copied.
 *  - ad_sbx_result is the caller's struct, filled by ad_sandbox_exec and
 *    released by ad_sbx_result_free: logs, the files array and each file's
 *    host_path string and host file (unlinked by ad_sbx_result_free unless
 *    the caller took it and set host_path to NULL after freeing it).
 *  - ad_sbx_input entries are borrowed for the duration of the call.
 */
#ifndef AD_SANDBOX_H
#define AD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

typedef struct ad_sandbox ad_sandbox; /* one per server; thread-safe */

/* Directory layout: cfg->data_dir/sandbox/ holds one directory per live
 * session (its /mnt/data) and .out/ (result files not yet taken); stale ones
 * are removed here. The driver is cfg->share_dir/sandbox/driver.py.
 * AD_EIO when the directories or the driver cannot be set up (logged). */
ad_err ad_sandbox_new(const ad_config *cfg, ad_logger *log, ad_sandbox **out);
/* Frees everything. No ad_sandbox_exec may be running or start any more
 * (join the callers' threads first); kills every session; NULL is fine. */
void ad_sandbox_free(ad_sandbox *sb);

/* Starts shutting down; returns at once and may be called from any thread,
 * any number of times. Every execution in progress is stopped within about
 * 250 ms (its interpreter killed) and returns AD_ESTATE, and every later
 * ad_sandbox_exec returns AD_ESTATE without running anything. Call it before
 * joining the threads that call ad_sandbox_exec, so that joining does not
 * wait for running cells (up to the execution timeout); then ad_sandbox_free. */
void ad_sandbox_shutdown(ad_sandbox *sb);

/* A host file copied into /mnt/data/NAME before the code runs (skipped when
 * an identical file is already there). name: one path component. */
typedef struct ad_sbx_input {
    const char *name;
    const char *host_path;
} ad_sbx_input;

typedef struct ad_sbx_file {
    char name[256];  /* image: "figure-N.png"; else the path relative to /mnt/data */
    char *host_path; /* a copy outside the sandbox dir, owned by the result; the
                        caller may rename() it away and then ad_free it and set NULL */
    uint64_t size;
    bool is_image; /* a matplotlib figure PNG */
} ad_sbx_file;

typedef struct ad_sbx_result {
    char *logs; /* what the model should see: stdout, stderr, traceback, the
                   trailing expression's value, sandbox notes; valid UTF-8, bounded */
    size_t logs_len;
    ad_sbx_file *files; /* images first, then new/changed files in /mnt/data */
    size_t nfiles;
    const char *exit_reason; /* static: "ok", "error", "timeout", "killed-memory",
                                "killed-disk", "crashed" */
    bool state_lost;         /* earlier state is gone and logs begin with a notice saying
                                so: the interpreter was restarted (files kept), or the
                                key's session had been evicted or idled out (files gone).
                                False for a brand-new session and after ad_sandbox_end */
    double duration_ms;
} ad_sbx_result;

/* Largest code cell accepted (AD_ETOOBIG above). */
#define AD_SBX_MAX_CODE (1024 * 1024)

/* Runs one cell in the session `session_key` (1-127 printable ASCII bytes),
 * starting the session when needed. Blocking (up to the configured timeout
 * plus a few seconds): call from a worker thread, never an event loop.
 * An execution that fails inside Python is AD_OK with exit_reason "error";
 * a non-OK return means the sandbox itself could not run it (AD_EINVAL bad
 * key or input name, AD_ETOOBIG code too long, AD_ENOTFOUND input file
 * missing, AD_ESTATE all sessions busy or the sandbox is shutting down,
 * AD_EINTERNAL the sandbox could not start -- logged). On error *res holds
 * nothing to free. */
ad_err ad_sandbox_exec(ad_sandbox *sb, const char *session_key, const char *code,
                       const ad_sbx_input *in, size_t nin, ad_sbx_result *res);
void ad_sbx_result_free(ad_sbx_result *r);

/* Ends the session (thread deleted): kills the interpreter, removes its files.
 * A running execution is stopped by its own thread within about 250 ms and
 * ends as "crashed"; an idle one is torn down by the caller (blocking for
 * the kill and the rm -rf, but never while holding the sandbox's lock).
 * Unknown keys are ignored. */
void ad_sandbox_end(ad_sandbox *sb, const char *session_key);

/* Interrupts the cell running in the session, if any (SIGINT, as the
 * timeout does): the execution ends soon with what it printed, the
 * session's state is kept. Non-blocking (an event loop may call it); for a
 * run cancelled or expired while its code runs. Unknown keys are ignored. */
void ad_sandbox_interrupt(ad_sandbox *sb, const char *session_key);

/* Appends Prometheus text: executions by exit reason, the duration
 * histogram, live sessions, interpreter starts, spares (started, ready) and
 * spare handouts. */
void ad_sandbox_metrics(ad_sandbox *sb, ad_buf *out);

/* Live sessions (for tests and metrics). */
size_t ad_sandbox_live(ad_sandbox *sb);

#endif
