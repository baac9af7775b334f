/*
 * sandbox.c -- stateful, sandboxed Python sessions for code_interpreter.
 *
 * The idea. A session is a warm interpreter: share/sandbox/driver.py running
 * under /usr/bin/python3 inside bubblewrap, keeping one globals dict across
 * the cells it is sent. assistd talks to it over two channels: a Unix socket
 * (fd 3 in the sandbox) carrying length-prefixed frames (proto.c), and a pipe
 * on the sandbox's fds 1 and 2 carrying whatever the cell prints, collected
 * with a bound. Everything the sandbox sends is untrusted: reads are
 * non-blocking under poll with deadlines, frames are validated, sizes capped.
 *
 * Isolation (bwrap arguments built in spawn_args): every namespace unshared
 * (so no network: the new network namespace has only a down loopback), no
 * nested user namespaces, --die-with-parent, --new-session; /usr read-only
 * plus the few /etc files Python and matplotlib read; --proc, --dev, a tmpfs
 * /tmp capped at the disk quota; the session directory DATA/sandbox/s-<random> bound at /mnt/data;
 * the driver copied in read-only; a clean environment; the seccomp program
 * of seccomp.c. Resource limits are set with setrlimit in the forked child
 * before bwrap is executed and are inherited by everything in the sandbox.
 *
 * Processes limit: RLIMIT_NPROC is not enforced for root, and bwrap run by
 * root maps the sandbox user to host root. So when assistd is root the child
 * switches to an unprivileged host uid, its range's base + the session's
 * slot, before executing bwrap (which then builds an unprivileged user
 * namespace): every process of a session, and only of that session, counts
 * against that uid's RLIMIT_NPROC, and a sandbox escape would land as an
 * unprivileged user. This needs the data directory's parents to be
 * traversable by others (checked at start).
 *
 * CPU: the hard RLIMIT_CPU bounds an interpreter's whole life (10x the
 * per-execution budget; past it the kernel kills it and the next execution
 * restarts it), and the driver arms the soft limit to "used so far + the
 * budget" before each cell, turning SIGXCPU into an exception. The wall-clock
 * timeout sends SIGINT to the interpreter (found as the grandchild of bwrap),
 * and kills the whole sandbox if the cell has not ended after a grace period.
 *
 * Disk: RLIMIT_FSIZE caps one file; the total of /mnt/data is measured every
 * DISK_POLL_MS while a cell runs and after it, and a session over its quota is
 * killed and the files the cell created are removed. The overshoot is bounded
 * by what the code can write in DISK_POLL_MS.
 *
 * Threads: one background thread forks every bwrap (bwrap's --die-with-parent
 * is tied to the thread that forked it, so it must be a thread that lives as
 * long as the sandbox), ends idle sessions and keeps the spares filled. The
 * table of slots is under one mutex, but nothing slow happens under it:
 * whoever takes a slot out of the table (an execution marks its session
 * busy; the background thread marks a slot PREP while it starts a spare;
 * whoever ends a session marks it DYING) owns the slot's processes, pipes
 * and directory and works on them unlocked -- the kill, the wait for the
 * PID namespace to empty and the rm -rf included. Other threads only set
 * the session's atomic flags (intr, doomed) and the owner acts on them
 * within DISK_POLL_MS, so no pid is ever signalled by a thread that may be
 * reaping it.
 *
 * Spares: starting an interpreter costs about a second, nearly all of it
 * importing numpy, pandas and matplotlib. So the table has `spares` slots
 * more than the session limit, and the background thread keeps up to
 * `spares` interpreters pre-started in free slots. A spare is started
 * exactly as a session's interpreter would be -- its slot's uid, a fresh
 * empty directory of its own as /mnt/data, the same limits -- and has run
 * nothing but the driver's imports, so handing it to a new session (it just
 * gets the session's key) gives that session what a cold start would have.
 * Spares are not sessions: the session limit, LRU eviction and the idle
 * timeout count live sessions only. They are started after the first
 * execution (a server that never runs code starts no interpreter) and
 * stopped when no new session was wanted for the idle timeout.
 *
 * Reset notice: when a session ends by eviction or idleness, its key is
 * remembered (a bounded ring); the next execution under that key starts a
 * new session and its output begins with a notice that the earlier state
 * (variables and files) was reset, so the model does not just see NameError.
 *
 * Shutdown: ad_sandbox_shutdown sets an atomic flag that every wait of an
 * execution checks at least every DISK_POLL_MS; the execution then stops its
 * own interpreter (no other thread signals pids it may be reaping) and
 * returns AD_ESTATE, so joining the tool pool takes milliseconds, not up to
 * the execution timeout.
 */
#include "sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sbx_internal.h"
#include "util/alloc.h"
#include "util/id.h"
#include "util/str.h"

#define AD_SBX_UID_BASE  2000000000u
#define SANDBOX_UID      1000 /* the user inside the sandbox */
#define KEY_MAX          128
#define START_TIMEOUT_MS 60000
#define GRACE_MS         3000 /* after SIGINT, before the kill */
#define DISK_POLL_MS     250
#define MAX_FRAME        (16u * 1024 * 1024)
#define MAX_IMAGES       16
#define MAX_FILES        64
#define LOG_HEAD         (48 * 1024)
#define LOG_TAIL         (16 * 1024)
#define DRAIN_MAX        (4u * 1024 * 1024)
#define BWRAP            "/usr/bin/bwrap"
#define PYTHON           "/usr/bin/python3"

enum { R_OK_, R_ERROR, R_TIMEOUT, R_MEMORY, R_DISK, R_CRASHED, NREASONS };
static const char *const reason_names[NREASONS] = {
    "ok", "error", "timeout", "killed-memory", "killed-disk", "crashed"};
static const double buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

/* Slot states (under sb->mu). FREE: nothing. PREP: the background thread is
 * starting a spare in it. SPARE: a pre-started interpreter, no key. LIVE: a
 * session. DYING: a thread is tearing it down, unlocked. */
enum { SL_FREE, SL_PREP, SL_SPARE, SL_LIVE, SL_DYING };
/* How a key's previous session ended (the reset notice). */
enum { GONE_NONE, GONE_EVICTED, GONE_IDLE };

typedef struct session {
    int st;
    char key[KEY_MAX];
    unsigned slot;
    char dir[AD_ID_MAX]; /* name under the sandbox base */
    int dirfd;
    /* pid..ready belong to the slot's owner (see the design comment). */
    pid_t pid;  /* bwrap, 0 when no interpreter runs */
    pid_t init; /* host pid of the sandbox's PID 1 (bwrap's child), 0 if unknown */
    pid_t py;   /* host pid of the interpreter, 0 if unknown */
    int ctl, out;
    bool ready;        /* the driver's ready frame was read */
    bool started_once; /* an interpreter ran in this session before */
    bool busy;
    int gone;           /* GONE_*: the key's previous session, for the notice */
    atomic_bool doomed; /* ad_sandbox_end on a busy session: the owner ends it */
    atomic_bool intr;   /* ad_sandbox_interrupt: end the running cell (the owner signals) */
    uint64_t lru;
    double last_used; /* monotonic seconds */
} session;

typedef struct spawn_req {
    session *s;
    ad_err rc;
    bool done;
    struct spawn_req *next;
} spawn_req;

struct ad_sandbox {
    ad_logger *log;
    unsigned cpu, timeout, idle, procs, nofile, nmax;
    unsigned nspare, nslots; /* spares wanted; table size = nmax + nspare */
    uint64_t mem, fsize, disk;
    char base[1024];
    char outdir[1100];
    int basefd;
    bool as_root;
    uid_t uid_base; /* first slot's uid when root (claim_uids) */
    int uid_lock;   /* holds the flock on the claimed uid range; -1 */
    ad_buf bpf;
    char *driver;
    size_t driver_len;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t bg;
    bool bg_started, stop;
    atomic_bool closing; /* ad_sandbox_shutdown was called */
    spawn_req *reqs;
    session *s;
    uint64_t lru_clock;
    /* spares: filled while armed; armed by an execution, disarmed after
     * `idle` seconds without a new session */
    bool armed;
    double last_demand, spare_retry;
    /* keys of sessions ended by eviction or idleness (a ring) */
    char (*gone_key)[KEY_MAX];
    int *gone_why;
    size_t gone_cap, gone_pos;
    /* metrics */
    uint64_t by_reason[NREASONS];
    uint64_t hist[NBUCKETS];
    double sum_s;
    uint64_t count, starts, handouts;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uid_t slot_uid(const ad_sandbox *sb, const session *s)
{
    return sb->as_root ? (uid_t)(sb->uid_base + s->slot) : (uid_t)-1;
}

/* Every server on a host needs uids of its own: RLIMIT_NPROC counts all
 * processes of a uid host-wide, so two servers sharing slot uids would let
 * one's fork bomb starve the other's sessions (and the black-box tests run
 * several servers at once). A server claims range K -- uids AD_SBX_UID_BASE +
 * K * UID_STRIDE onwards -- by holding an flock on UID_LOCK_DIR/uids.K for
 * its lifetime; the kernel drops the lock when the process dies, even by
 * kill -9, so a crashed server's range is free again. */
#define UID_STRIDE   65536u
#define UID_RANGES   2048u
#define UID_LOCK_DIR "/run/assistd-sandbox"

static ad_err claim_uids(ad_sandbox *sb)
{
    if (sb->nslots > UID_STRIDE) {
        ad_log(sb->log, AD_LOG_ERROR, "sandbox: at most %u sessions and spares", UID_STRIDE);
        return AD_EINVAL;
    }
    if (mkdir(UID_LOCK_DIR, 0700) != 0 && errno != EEXIST) {
        ad_log(sb->log, AD_LOG_ERROR, "sandbox: cannot create %s: %s", UID_LOCK_DIR,
               strerror(errno));
        return AD_EIO;
    }
    for (unsigned k = 0; k < UID_RANGES; k++) {
        char path[64];
        snprintf(path, sizeof path, UID_LOCK_DIR "/uids.%u", k);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            ad_log(sb->log, AD_LOG_ERROR, "sandbox: cannot open %s: %s", path, strerror(errno));
            return AD_EIO;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            sb->uid_lock = fd;
            sb->uid_base = AD_SBX_UID_BASE + k * UID_STRIDE;
            return AD_OK;
        }
        close(fd);
    }
    ad_log(sb->log, AD_LOG_ERROR, "sandbox: all %u uid ranges are taken", UID_RANGES);
    return AD_EIO;
}

/* ---- starting and stopping interpreters ---- */

static int memfd_with(const char *name, const void *p, size_t n)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* argv for bwrap; strings in `store` (freed by the caller). */
/* /dev/shm (POSIX shared memory: multiprocessing, joblib) is a tmpfs of
 * its own, bounded. */
#define SHM_SIZE "67108864"

static char **spawn_args(const ad_sandbox *sb, const session *s, char *store, size_t storelen)
{
    static const char *const etc[] = {
        "/etc/alternatives", "/etc/ld.so.cache",  "/etc/ld.so.conf", "/etc/ld.so.conf.d",
        "/etc/fonts",        "/etc/matplotlibrc", "/etc/localtime",  "/etc/mime.types",
        "/etc/python3",      "/etc/python3.11",
    };
    char cpu[24], tmpsize[24], mnt[1200];
    snprintf(cpu, sizeof cpu, "%u", sb->cpu);
    snprintf(tmpsize, sizeof tmpsize, "%llu", (unsigned long long)sb->disk);
    snprintf(mnt, sizeof mnt, "%s/%s", sb->base, s->dir);
    const char *fixed[] = {BWRAP,
                           "--unshare-all",
                           "--unshare-user",
                           "--disable-userns",
                           "--die-with-parent",
                           "--new-session",
                           "--uid",
                           "1000",
                           "--gid",
                           "1000",
                           "--hostname",
                           "sandbox",
                           "--ro-bind",
                           "/usr",
                           "/usr",
                           "--symlink",
                           "usr/lib",
                           "/lib",
                           "--symlink",
                           "usr/lib64",
                           "/lib64",
                           "--symlink",
                           "usr/bin",
                           "/bin",
                           "--symlink",
                           "usr/sbin",
                           "/sbin",
                           "--proc",
                           "/proc",
                           "--dev",
                           "/dev",
                           "--size",
                           SHM_SIZE,
                           "--tmpfs",
                           "/dev/shm",
                           "--size",
                           tmpsize,
                           "--tmpfs",
                           "/tmp",
                           "--dir",
                           "/mnt",
                           "--bind",
                           mnt,
                           "/mnt/data",
                           "--chdir",
                           "/mnt/data",
                           "--ro-bind-data",
                           "5",
                           "/driver.py",
                           "--seccomp",
                           "4",
                           "--clearenv",
                           "--setenv",
                           "PATH",
                           "/usr/bin:/bin",
                           "--setenv",
                           "HOME",
                           "/tmp",
                           "--setenv",
                           "LANG",
                           "C.UTF-8",
                           "--setenv",
                           "MPLBACKEND",
                           "Agg",
                           "--setenv",
                           "MPLCONFIGDIR",
                           "/tmp",
                           "--setenv",
                           "XDG_CACHE_HOME",
                           "/tmp",
                           "--setenv",
                           "PYTHONDONTWRITEBYTECODE",
                           "1",
                           "--setenv",
                           "OPENBLAS_NUM_THREADS",
                           "1",
                           "--setenv",
                           "OMP_NUM_THREADS",
                           "1"};
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t netc = sizeof etc / sizeof etc[0];
    char **argv = ad_calloc(nfixed + 3 * netc + 12, sizeof *argv);
    size_t a = 0, used = 0;
#define PUSH(str)                                                                                  \
    do {                                                                                           \
        size_t l_ = strlen(str) + 1;                                                               \
        if (used + l_ > storelen) {                                                                \
            ad_free(argv);                                                                         \
            return NULL;                                                                           \
        }                                                                                          \
        memcpy(store + used, str, l_);                                                             \
        argv[a++] = store + used;                                                                  \
        used += l_;                                                                                \
    } while (0)
    for (size_t i = 0; i < nfixed; i++)
        PUSH(fixed[i]);
    for (size_t i = 0; i < netc; i++) {
        PUSH("--ro-bind-try");
        PUSH(etc[i]);
        PUSH(etc[i]);
    }
    /* The root and /dev are tmpfs mounts bwrap builds the tree in; left
     * writable they would be unbounded space outside every quota (and host
     * memory). Read-only once built; /tmp, /dev/shm and /mnt/data are mounts
     * of their own and stay writable, each with its own bound. */
    PUSH("--remount-ro");
    PUSH("/dev");
    PUSH("--remount-ro");
    PUSH("/");
    PUSH(PYTHON);
    PUSH("-I");
    PUSH("-u");
    PUSH("/driver.py");
    PUSH(cpu);
#undef PUSH
    argv[a] = NULL;
    return argv;
}

static void set_limit(int res, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    (void)setrlimit(res, &rl);
}

/* Runs on the background thread. Fills s->pid, s->ctl, s->out. */
static ad_err do_spawn(ad_sandbox *sb, session *s)
{
    ad_err rc = AD_EINTERNAL;
    int sv[2] = {-1, -1}, op[2] = {-1, -1}, bpf = -1, drv = -1, devnull = -1;
    char *store = ad_malloc(8192);
    char **argv = spawn_args(sb, s, store, 8192);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    if (!argv)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(op, O_CLOEXEC) != 0)
        goto out;
    bpf = memfd_with("assistd-bpf", sb->bpf.ptr, sb->bpf.len);
    drv = memfd_with("assistd-driver", sb->driver, sb->driver_len);
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (bpf < 0 || drv < 0 || devnull < 0)
        goto out;
    uid_t uid = slot_uid(sb, s);
    rlim_t cpu_hard = (rlim_t)sb->cpu * 10 + 30;
    pid_t pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here to execve. Its own
         * process group, which bwrap's children share until the sandboxed
         * command starts its session: stop_interp kills the group. */
        setpgid(0, 0);
        int src[6] = {devnull, op[1], op[1], sv[1], bpf, drv};
        int hi[6];
        for (int i = 0; i < 6; i++)
            if ((hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 64)) < 0)
                _exit(126);
        for (int i = 0; i < 6; i++)
            if (dup2(hi[i], i) != i)
                _exit(126);
        syscall(SYS_close_range, 6u, ~0u, 0u);
        set_limit(RLIMIT_CPU, cpu_hard, cpu_hard);
        set_limit(RLIMIT_AS, (rlim_t)sb->mem, (rlim_t)sb->mem);
        set_limit(RLIMIT_NPROC, sb->procs, sb->procs);
        set_limit(RLIMIT_NOFILE, sb->nofile, sb->nofile);
        set_limit(RLIMIT_FSIZE, (rlim_t)sb->fsize, (rlim_t)sb->fsize);
        set_limit(RLIMIT_CORE, 0, 0);
        set_limit(RLIMIT_MEMLOCK, 0, 0);
        set_limit(RLIMIT_MSGQUEUE, 0, 0);
        if (uid != (uid_t)-1) {
            if (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 || setuid(uid) != 0)
                _exit(126);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(BWRAP, argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    s->pid = pid;
    s->py = 0;
    s->ctl = sv[0];
    s->out = op[0];
    sv[0] = op[0] = -1;
    fcntl(s->ctl, F_SETFL, O_NONBLOCK);
    fcntl(s->out, F_SETFL, O_NONBLOCK);
    rc = AD_OK;
out:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            close(sv[i]);
        if (op[i] >= 0)
            close(op[i]);
    }
    if (bpf >= 0)
        close(bpf);
    if (drv >= 0)
        close(drv);
    if (devnull >= 0)
        close(devnull);
    ad_free(argv);
    ad_free(store);
    return rc;
}

/* Kills the interpreter (if any), reaps bwrap and waits until the sandbox's
 * PID 1 is gone -- the kernel ends it only after every other process of the
 * PID namespace, so nothing writes to /mnt/data any more. */
static void stop_interp(session *s)
{
    if (s->pid > 0) {
        int pfd = s->init > 0 ? (int)syscall(SYS_pidfd_open, s->init, 0) : -1;
        if (s->py > 0)
            kill(s->py, SIGKILL);
        if (s->init > 0)
            kill(s->init, SIGKILL);
        /* The group too: bwrap's child, the sandbox's PID 1 to be, waits for
         * its parent to write its uid map before it can die with it
         * (--die-with-parent); killed alone, bwrap would leave it waiting
         * for ever, re-parented to init. */
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        if (pfd >= 0) {
            struct pollfd pf = {.fd = pfd, .events = POLLIN};
            (void)poll(&pf, 1, 5000);
            close(pfd);
        }
    }
    s->pid = s->py = s->init = 0;
    s->ready = false;
    if (s->ctl >= 0)
        close(s->ctl);
    if (s->out >= 0)
        close(s->out);
    s->ctl = s->out = -1;
}

/* The slow part of ending a slot: kill, wait, remove the directory. Called
 * unlocked by the slot's owner (state DYING or PREP, or at free). */
static void teardown(ad_sandbox *sb, session *s)
{
    stop_interp(s);
    if (s->dirfd >= 0)
        close(s->dirfd);
    s->dirfd = -1;
    if (s->dir[0])
        ad_sbx_rm_rf_at(sb->basefd, s->dir);
    s->dir[0] = '\0';
}

/* Under sb->mu, after teardown: the slot is FREE again. */
static void release_slot(ad_sandbox *sb, session *s)
{
    s->st = SL_FREE;
    s->key[0] = '\0';
    s->busy = s->started_once = s->ready = false;
    s->gone = GONE_NONE;
    s->pid = s->init = s->py = 0;
    s->ctl = s->out = s->dirfd = -1;
    atomic_store(&s->doomed, false);
    atomic_store(&s->intr, false);
    pthread_cond_broadcast(&sb->cv);
}

/* Under sb->mu: marks a slot DYING, tears it down unlocked, frees it. */
static void end_slot(ad_sandbox *sb, session *s)
{
    s->st = SL_DYING;
    pthread_mutex_unlock(&sb->mu);
    teardown(sb, s);
    pthread_mutex_lock(&sb->mu);
    release_slot(sb, s);
}

/* A fresh, empty directory for slot s (its /mnt/data), owned by the slot's
 * uid. Called by the slot's owner. */
static ad_err make_dir(ad_sandbox *sb, session *s)
{
    uid_t uid = slot_uid(sb, s);
    ad_id_new(s->dir, "s-");
    if (mkdirat(sb->basefd, s->dir, 0700) != 0 ||
        (uid != (uid_t)-1 && fchownat(sb->basefd, s->dir, uid, (gid_t)uid, 0) != 0) ||
        (s->dirfd = openat(sb->basefd, s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
            0) {
        ad_log(sb->log, AD_LOG_ERROR, "sandbox: cannot create %s/%s: %s", sb->base, s->dir,
               strerror(errno));
        return AD_EIO;
    }
    return AD_OK;
}

/* ---- the ring of keys whose session was evicted or idled out (under mu) ---- */

static void gone_add(ad_sandbox *sb, const char *key, int why)
{
    ad_strlcpy(sb->gone_key[sb->gone_pos], key, KEY_MAX);
    sb->gone_why[sb->gone_pos] = why;
    sb->gone_pos = (sb->gone_pos + 1) % sb->gone_cap;
}

/* GONE_* for key (and forgets it). */
static int gone_take(ad_sandbox *sb, const char *key)
{
    for (size_t i = 0; i < sb->gone_cap; i++) {
        if (sb->gone_why[i] != GONE_NONE && !strcmp(sb->gone_key[i], key)) {
            int why = sb->gone_why[i];
            sb->gone_why[i] = GONE_NONE;
            return why;
        }
    }
    return GONE_NONE;
}

/* First pid listed in /proc/P/task/P/children, or 0. */
static pid_t first_child(pid_t p)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)p, (int)p);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *sp = strchr(buf, ' ');
    if (sp)
        *sp = '\0';
    int64_t v;
    return ad_parse_i64(buf, &v) && v > 0 ? (pid_t)v : 0;
}

/* Asks the background thread to start s's interpreter and waits. */
static ad_err spawn(ad_sandbox *sb, session *s)
{
    spawn_req r = {.s = s};
    pthread_mutex_lock(&sb->mu);
    r.next = sb->reqs;
    /* r lives until the background thread has popped it and set done. */
    // cppcheck-suppress autoVariables
    sb->reqs = &r;
    pthread_cond_broadcast(&sb->cv);
    while (!r.done)
        pthread_cond_wait(&sb->cv, &sb->mu);
    if (!r.rc)
        sb->starts++;
    pthread_mutex_unlock(&sb->mu);
    return r.rc;
}

/* ---- talking to the driver ---- */

typedef struct cell {
    ad_sandbox *sb;
    session *s;
    bool ready, done;
    char status[16];
    ad_sbx_file images[MAX_IMAGES];
    size_t nimages;
    bool bad; /* a frame that should not be there */
} cell;

static ad_err on_frame(void *ctx, char type, const char *p, size_t n)
{
    cell *c = ctx;
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (type == 'R' && !c->ready) {
        c->ready = true;
        return AD_OK;
    }
    if (!c->ready || c->done) {
        c->bad = true;
        return AD_EINVAL;
    }
    if (type == 'D') {
        if (n == 0 || n >= sizeof c->status)
            return AD_EINVAL;
        memcpy(c->status, p, n);
        c->status[n] = '\0';
        c->done = true;
        return AD_OK;
    }
    if (type == 'I') {
        if (n < sizeof png || memcmp(p, png, sizeof png) || c->nimages >= MAX_IMAGES)
            return AD_OK; /* not a PNG, or too many: dropped */
        char id[AD_ID_MAX], path[1200];
        ad_id_new(id, "img-");
        snprintf(path, sizeof path, "%s/%s.png", c->sb->outdir, id);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return AD_OK;
        bool ok = true;
        for (size_t off = 0; off < n && ok;) {
            ssize_t w = write(fd, p + off, n - off);
            if (w > 0)
                off += (size_t)w;
            else if (!(w < 0 && errno == EINTR))
                ok = false;
        }
        close(fd);
        if (!ok) {
            unlink(path);
            return AD_OK;
        }
        ad_sbx_file *f = &c->images[c->nimages++];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "figure-%zu.png", c->nimages);
        f->host_path = ad_strdup(path);
        f->size = n;
        f->is_image = true;
        return AD_OK;
    }
    c->bad = true;
    return AD_EINVAL;
}

/* Reads what is available on fd into the collector, at most `max` bytes.
 * Returns -1 on EOF or error, else bytes read. */
static ssize_t drain_out(int fd, ad_sbx_out *o, size_t max)
{
    char buf[65536];
    size_t total = 0;
    while (total < max) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (o)
                ad_sbx_out_add(o, buf, (size_t)n);
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    return (ssize_t)total;
}

/* Reads ctl frames until pred(c) or the deadline. 0: pred met; 1: deadline;
 * 2: a DISK_POLL_MS tick passed; 3: the sandbox is shutting down; -1: the
 * driver went away or broke the protocol. Output goes to o. */
static int pump(session *s, ad_sbx_proto *pr, cell *c, ad_sbx_out *o, double deadline,
                bool want_done)
{
    for (;;) {
        if (want_done ? c->done : c->ready)
            return 0;
        if (atomic_load(&c->sb->closing))
            return 3;
        if (atomic_load(&s->doomed))
            return -1; /* ad_sandbox_end: stop as if the interpreter died */
        if (want_done && atomic_exchange(&s->intr, false))
            return 1; /* as at the deadline: the owner sends SIGINT */
        double left = deadline - now_s();
        if (left <= 0)
            return 1;
        int ms = (int)(left * 1000) + 1;
        if (ms > DISK_POLL_MS)
            ms = DISK_POLL_MS;
        struct pollfd pf[2] = {{.fd = s->ctl, .events = POLLIN}, {.fd = s->out, .events = POLLIN}};
        int np = s->out >= 0 ? 2 : 1;
        int r = poll(pf, (nfds_t)np, ms);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            return 2; /* a poll tick: let the caller check the disk */
        if (np == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (drain_out(s->out, o, DRAIN_MAX) < 0) {
                close(s->out); /* the code closed its stdout: keep going without it */
                s->out = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[65536];
            ssize_t n = read(s->ctl, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            if (n > 0 && ad_sbx_proto_feed(pr, buf, (size_t)n, on_frame, c))
                return -1;
        }
    }
}

static ad_err send_all(const ad_sandbox *sb, int fd, const char *p, size_t n, double deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return AD_EIO;
        double left = deadline - now_s();
        if (left <= 0 || atomic_load(&sb->closing))
            return AD_EIO;
        int ms = (int)(left * 1000) + 1;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        (void)poll(&pf, 1, ms < DISK_POLL_MS ? ms : DISK_POLL_MS);
    }
    return AD_OK;
}

/* Waits for the ready frame of the interpreter just started in s (cold, or
 * a spare being handed out). On failure the interpreter is stopped. */
static ad_err wait_ready(ad_sandbox *sb, session *s)
{
    ad_err rc = AD_OK;
    ad_sbx_proto pr;
    ad_sbx_proto_init(&pr, MAX_FRAME);
    ad_sbx_out o;
    ad_sbx_out_init(&o, 2048, 1024);
    cell c = {.sb = sb, .s = s};
    double deadline = now_s() + START_TIMEOUT_MS / 1000.0;
    int r;
    while ((r = pump(s, &pr, &c, &o, deadline, false)) == 2)
        ;
    if (r == 3) {
        stop_interp(s);
        rc = AD_ESTATE;
    } else if (r != 0) {
        char *text;
        size_t len;
        ad_sbx_out_finish(&o, &text, &len);
        for (char *q = text; *q; q++)
            if (*q == '\n')
                *q = ' ';
        ad_log(sb->log, AD_LOG_ERROR, "sandbox: session %s did not start: %.600s", s->key, text);
        ad_free(text);
        stop_interp(s);
        rc = AD_EINTERNAL;
    } else {
        s->init = first_child(s->pid);
        s->py = s->init > 0 ? first_child(s->init) : 0;
        s->ready = true;
    }
    ad_sbx_out_free(&o);
    ad_sbx_proto_free(&pr);
    return rc;
}

/* Starts the interpreter (on the background thread) and waits until ready. */
static ad_err start_interp(ad_sandbox *sb, session *s)
{
    ad_err rc = spawn(sb, s);
    if (rc) {
        ad_log(sb->log, AD_LOG_ERROR, "sandbox: cannot start bwrap for session %s", s->key);
        return rc;
    }
    return wait_ready(sb, s);
}

/* ---- sessions ---- */

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n >= KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return false;
    return true;
}

static session *find(ad_sandbox *sb, const char *key)
{
    for (unsigned i = 0; i < sb->nslots; i++)
        if (sb->s[i].st == SL_LIVE && !atomic_load(&sb->s[i].doomed) && !strcmp(sb->s[i].key, key))
            return &sb->s[i];
    return NULL;
}

/* Under sb->mu: a session for key, created (in a spare's slot when one is
 * there; evicting the least recently used idle session when the limit is
 * reached) and marked busy. NULL when every session is busy. The lock is
 * dropped while an evicted session is torn down. */
static session *acquire(ad_sandbox *sb, const char *key, ad_err *err)
{
    for (;;) {
        if (atomic_load(&sb->closing)) {
            *err = AD_ESTATE;
            return NULL;
        }
        session *s = find(sb, key);
        if (s && s->busy) {
            pthread_cond_wait(&sb->cv, &sb->mu);
            continue;
        }
        if (s) {
            s->busy = true;
            atomic_store(&s->intr, false);
            return s;
        }
        unsigned live = 0;
        session *lru = NULL, *spare = NULL, *slot = NULL;
        for (unsigned i = 0; i < sb->nslots; i++) {
            session *x = &sb->s[i];
            if (x->st == SL_LIVE) {
                live++;
                if (!x->busy && (!lru || x->lru < lru->lru))
                    lru = x;
            } else if (x->st == SL_SPARE && !spare) {
                spare = x;
            } else if (x->st == SL_FREE && !slot) {
                slot = x;
            }
        }
        if (live >= sb->nmax) {
            if (!lru) {
                *err = AD_ESTATE;
                return NULL;
            }
            ad_log(sb->log, AD_LOG_INFO, "sandbox: session %s evicted (least recently used)",
                   lru->key);
            gone_add(sb, lru->key, GONE_EVICTED);
            end_slot(sb, lru);
            continue;
        }
        if (spare)
            slot = spare;
        if (!slot) {
            /* Only possible while slots are being prepared or torn down. */
            pthread_cond_wait(&sb->cv, &sb->mu);
            continue;
        }
        bool fresh = slot->st == SL_FREE;
        slot->st = SL_LIVE;
        slot->busy = true;
        slot->started_once = false;
        atomic_store(&slot->doomed, false);
        atomic_store(&slot->intr, false);
        ad_strlcpy(slot->key, key, sizeof slot->key);
        slot->gone = gone_take(sb, key);
        if (!fresh) {
            sb->handouts++;
            pthread_cond_broadcast(&sb->cv); /* the background thread refills */
            return slot;
        }
        slot->ctl = slot->out = slot->dirfd = -1;
        if (make_dir(sb, slot)) {
            end_slot(sb, slot);
            *err = AD_EIO;
            return NULL;
        }
        return slot;
    }
}

size_t ad_sandbox_live(ad_sandbox *sb)
{
    size_t n = 0;
    pthread_mutex_lock(&sb->mu);
    for (unsigned i = 0; i < sb->nslots; i++)
        n += sb->s[i].st == SL_LIVE && !atomic_load(&sb->s[i].doomed);
    pthread_mutex_unlock(&sb->mu);
    return n;
}

/* Background thread, unlocked, slot in PREP: a fresh directory and an
 * interpreter started in it (its ready frame is read when it is handed out). */
static ad_err prep_spare(ad_sandbox *sb, session *s)
{
    ad_err rc = make_dir(sb, s);
    if (!rc)
        rc = do_spawn(sb, s);
    return rc;
}

/* Background thread, under sb->mu (dropped while working): ends idle
 * sessions, stops the spares when unused, starts the missing ones. */
static void housekeep(ad_sandbox *sb)
{
    double now = now_s();
    for (unsigned i = 0; i < sb->nslots; i++) {
        session *s = &sb->s[i];
        if (s->st == SL_LIVE && !s->busy && now - s->last_used >= sb->idle) {
            ad_log(sb->log, AD_LOG_INFO, "sandbox: session %s ended after %u s idle", s->key,
                   sb->idle);
            gone_add(sb, s->key, GONE_IDLE);
            end_slot(sb, s);
        }
    }
    if (!sb->nspare || !sb->armed)
        return;
    bool stopping = atomic_load(&sb->closing) || sb->stop;
    if (stopping || now - sb->last_demand >= sb->idle) {
        sb->armed = false; /* re-armed by the next execution */
        for (unsigned i = 0; i < sb->nslots; i++)
            if (sb->s[i].st == SL_SPARE)
                end_slot(sb, &sb->s[i]);
        return;
    }
    if (now < sb->spare_retry)
        return;
    unsigned have = 0;
    for (unsigned i = 0; i < sb->nslots; i++)
        have += sb->s[i].st == SL_SPARE || sb->s[i].st == SL_PREP;
    for (unsigned i = 0; i < sb->nslots && have < sb->nspare && !sb->reqs; i++) {
        session *s = &sb->s[i];
        if (s->st != SL_FREE)
            continue;
        s->st = SL_PREP;
        s->ctl = s->out = s->dirfd = -1;
        pthread_mutex_unlock(&sb->mu);
        ad_err rc = prep_spare(sb, s);
        if (rc)
            teardown(sb, s);
        pthread_mutex_lock(&sb->mu);
        if (rc) {
            release_slot(sb, s);
            sb->spare_retry = now_s() + 10;
            ad_log(sb->log, AD_LOG_WARN, "sandbox: cannot start a spare interpreter");
            return;
        }
        s->st = SL_SPARE;
        sb->starts++;
        have++;
        pthread_cond_broadcast(&sb->cv);
    }
}

static void *bg_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ad-sandbox");
    ad_sandbox *sb = arg;
    pthread_mutex_lock(&sb->mu);
    while (!sb->stop) {
        while (sb->reqs) {
            spawn_req *r = sb->reqs;
            sb->reqs = r->next;
            pthread_mutex_unlock(&sb->mu);
            r->rc = do_spawn(sb, r->s);
            pthread_mutex_lock(&sb->mu);
            r->done = true;
            pthread_cond_broadcast(&sb->cv);
        }
        housekeep(sb);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!sb->reqs && !sb->stop)
            pthread_cond_timedwait(&sb->cv, &sb->mu, &ts);
    }
    pthread_mutex_unlock(&sb->mu);
    return NULL;
}

/* ---- executing a cell ---- */

static void add_note(ad_sbx_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(ad_sbx_out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        ad_sbx_out_add(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static int by_size_desc(const void *a, const void *b)
{
    const ad_sbx_entry *x = *(const ad_sbx_entry *const *)a, *y = *(const ad_sbx_entry *const *)b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

/* Removes files that are new or grew since `before`, largest first, until
 * the directory is within the quota. */
static void enforce_quota(ad_sandbox *sb, session *s, const ad_sbx_snap *before)
{
    ad_sbx_snap now;
    if (ad_sbx_snap_take(s->dirfd, &now))
        return;
    const ad_sbx_entry **cand = ad_calloc(now.n + 1, sizeof *cand);
    size_t nc = 0;
    for (size_t i = 0; i < now.n; i++) {
        const ad_sbx_entry *b = ad_sbx_snap_find(before, now.e[i].name);
        if (!b || b->size < now.e[i].size)
            cand[nc++] = &now.e[i];
    }
    qsort(cand, nc, sizeof *cand, by_size_desc);
    uint64_t total = now.total;
    for (size_t i = 0; i < nc && total > sb->disk; i++) {
        /* Remove by walking the path without following symlinks. */
        char path[256];
        ad_strlcpy(path, cand[i]->name, sizeof path);
        char *slash = strrchr(path, '/');
        int d = slash ? -1 : s->dirfd;
        if (slash) {
            *slash = '\0';
            d = openat(s->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (d >= 0 && unlinkat(d, slash ? slash + 1 : path, 0) == 0)
            total -= cand[i]->size;
        if (slash && d >= 0)
            close(d);
    }
    ad_free(cand);
    ad_sbx_snap_free(&now);
}

static void collect_files(ad_sandbox *sb, session *s, const ad_sbx_snap *before, cell *c,
                          ad_sbx_result *res, ad_sbx_out *o)
{
    ad_sbx_snap after;
    size_t cap = c->nimages + MAX_FILES;
    res->files = ad_calloc(cap, sizeof *res->files);
    for (size_t i = 0; i < c->nimages; i++)
        res->files[res->nfiles++] = c->images[i];
    c->nimages = 0;
    if (ad_sbx_snap_take(s->dirfd, &after))
        return;
    size_t skipped = 0;
    for (size_t i = 0; i < after.n; i++) {
        const ad_sbx_entry *e = &after.e[i];
        const ad_sbx_entry *b = ad_sbx_snap_find(before, e->name);
        if (b && b->size == e->size && b->mtime_ns == e->mtime_ns && b->ino == e->ino)
            continue;
        if (res->nfiles >= cap) {
            skipped++;
            continue;
        }
        char id[AD_ID_MAX], dst[1200];
        ad_id_new(id, "out-");
        snprintf(dst, sizeof dst, "%s/%s", sb->outdir, id);
        if (ad_sbx_copy_out(s->dirfd, e->name, dst, sb->fsize) != AD_OK) {
            skipped++;
            continue;
        }
        ad_sbx_file *f = &res->files[res->nfiles++];
        ad_strlcpy(f->name, e->name, sizeof f->name);
        f->host_path = ad_strdup(dst);
        struct stat st;
        f->size = stat(dst, &st) == 0 ? (uint64_t)st.st_size : e->size;
        f->is_image = false;
    }
    if (skipped)
        add_note(o, "\n[sandbox: %zu changed files were not returned]\n", skipped);
    ad_sbx_snap_free(&after);
}

static int reason_of(const char *status)
{
    if (!strcmp(status, "ok"))
        return R_OK_;
    if (!strcmp(status, "memory"))
        return R_MEMORY;
    if (!strcmp(status, "timeout") || !strcmp(status, "cpu"))
        return R_TIMEOUT;
    return R_ERROR;
}

ad_err ad_sandbox_exec(ad_sandbox *sb, const char *session_key, const char *code,
                       const ad_sbx_input *in, size_t nin, ad_sbx_result *res)
{
    memset(res, 0, sizeof *res);
    if (!key_ok(session_key))
        return AD_EINVAL;
    size_t code_len = strlen(code);
    if (code_len > AD_SBX_MAX_CODE)
        return AD_ETOOBIG;
    for (size_t i = 0; i < nin; i++)
        if (!ad_sbx_name_ok(in[i].name))
            return AD_EINVAL;
    double t0 = now_s();
    ad_err err = AD_OK;
    pthread_mutex_lock(&sb->mu);
    sb->armed = sb->nspare > 0;
    sb->last_demand = t0;
    session *s = acquire(sb, session_key, &err);
    if (s && !s->started_once && !s->ready)
        pthread_cond_broadcast(&sb->cv); /* a new session: the spares may need a refill */
    pthread_mutex_unlock(&sb->mu);
    if (!s)
        return err;

    int reason = R_OK_;
    ad_sbx_out o;
    ad_sbx_out_init(&o, LOG_HEAD, LOG_TAIL);
    ad_sbx_proto pr;
    ad_sbx_proto_init(&pr, MAX_FRAME);
    ad_buf frame;
    ad_buf_init(&frame, AD_SBX_MAX_CODE + 32);
    ad_sbx_snap before = {0};
    cell c = {.sb = sb, .s = s, .ready = true};
    bool start_failed = false;

    if (s->pid > 0 && !s->ready) {
        /* A spare handed to this new session: its ready frame is there, or
         * comes when its imports end. If it died, start cold instead. */
        err = wait_ready(sb, s);
        if (err == AD_ESTATE)
            goto out;
        err = AD_OK;
    }
    if (s->pid == 0) {
        res->state_lost = s->started_once;
        err = start_interp(sb, s);
        if (err) {
            start_failed = err != AD_ESTATE;
            goto out;
        }
        if (res->state_lost)
            add_note(&o, "[sandbox: the Python session was restarted; variables, imports "
                         "and definitions from earlier executions are lost, files in "
                         "/mnt/data are kept]\n");
    }
    s->started_once = true;
    if (s->gone != GONE_NONE) {
        res->state_lost = true;
        add_note(&o,
                 "[sandbox: code execution state was reset: this thread's earlier Python "
                 "session ended (%s), so its variables, imports and the files it wrote to "
                 "/mnt/data are gone; this is a new session]\n",
                 s->gone == GONE_IDLE ? "idle timeout" : "too many sessions; least recently used");
        s->gone = GONE_NONE;
    }
    for (size_t i = 0; i < nin; i++) {
        ad_err e = ad_sbx_copy_in(s->dirfd, in[i].name, in[i].host_path, slot_uid(sb, s),
                                  (gid_t)slot_uid(sb, s));
        if (e == AD_ENOTFOUND || e == AD_EINVAL) {
            err = e;
            goto out;
        }
        if (e)
            add_note(&o, "[sandbox: could not place /mnt/data/%s]\n", in[i].name);
    }
    (void)ad_sbx_snap_take(s->dirfd, &before);
    if (s->out >= 0)
        (void)drain_out(s->out, NULL, DRAIN_MAX); /* stale output of background processes */

    double deadline = now_s() + sb->timeout;
    bool interrupted = false, killed = false, closing = false;
    if (ad_sbx_frame_append(&frame, 'C', code, code_len) ||
        send_all(sb, s->ctl, frame.ptr, frame.len, deadline)) {
        reason = R_CRASHED;
        killed = true;
    }
    double next_disk = now_s() + DISK_POLL_MS / 1000.0;
    while (!killed) {
        int r = pump(s, &pr, &c, &o, deadline, true);
        if (r == 0)
            break;
        if (r < 0 || r == 3) {
            reason = R_CRASHED;
            killed = true;
            closing = r == 3;
            break;
        }
        if (now_s() >= next_disk) {
            next_disk = now_s() + DISK_POLL_MS / 1000.0;
            if (ad_sbx_dir_usage(s->dirfd) > sb->disk) {
                reason = R_DISK;
                killed = true;
                break;
            }
        }
        if (r == 1) {
            if (!interrupted && s->py > 0) {
                interrupted = true;
                kill(s->py, SIGINT);
                deadline = now_s() + GRACE_MS / 1000.0;
            } else {
                reason = R_TIMEOUT;
                killed = true;
            }
        }
    }
    if (!killed) {
        if (s->out >= 0)
            (void)drain_out(s->out, &o, DRAIN_MAX);
        reason = interrupted ? R_TIMEOUT : reason_of(c.status);
        if (interrupted)
            add_note(&o,
                     "\n[sandbox: execution interrupted after %u s; the session's "
                     "state is kept]\n",
                     sb->timeout);
        if (s->out < 0) {
            /* Every copy of the output pipe was closed: later cells could
             * print nothing, so start afresh next time. */
            stop_interp(s);
            add_note(&o, "\n[sandbox: the code closed the session's output; the Python "
                         "process was stopped and the next execution starts a new session]\n");
        }
    } else {
        if (s->out >= 0)
            (void)drain_out(s->out, &o, DRAIN_MAX);
        stop_interp(s);
        if (closing || atomic_load(&sb->closing)) {
            err = AD_ESTATE; /* shutting down: no result, nothing more to run */
            goto out;
        }
        if (reason == R_TIMEOUT)
            add_note(&o,
                     "\n[sandbox: execution timed out after %u s and the Python process "
                     "was stopped; the next execution starts a new session]\n",
                     sb->timeout);
        else if (reason == R_DISK)
            add_note(&o,
                     "\n[sandbox: /mnt/data exceeded its %llu-byte quota; the Python "
                     "process was stopped and the files this execution created removed]\n",
                     (unsigned long long)sb->disk);
        else
            add_note(&o, "\n[sandbox: the Python process ended unexpectedly (crash, memory "
                         "exhaustion or exit); the next execution starts a new session]\n");
    }
    if (ad_sbx_dir_usage(s->dirfd) > sb->disk) {
        enforce_quota(sb, s, &before);
        if (ad_sbx_dir_usage(s->dirfd) > sb->disk) {
            /* Still over: files the snapshot does not see (a tree too deep
             * or too wide to measure). Nothing of it can stay. */
            ad_sbx_rm_contents(s->dirfd);
            add_note(&o,
                     "\n[sandbox: /mnt/data exceeded its %llu-byte quota or its limit of 64 "
                     "directory levels and 200000 names; every file in it was removed]\n",
                     (unsigned long long)sb->disk);
        } else if (reason != R_DISK) {
            add_note(&o,
                     "\n[sandbox: /mnt/data exceeded its %llu-byte quota; files this "
                     "execution created were removed]\n",
                     (unsigned long long)sb->disk);
        }
        reason = R_DISK;
    }
    collect_files(sb, s, &before, &c, res, &o);
    ad_sbx_out_finish(&o, &res->logs, &res->logs_len);
    res->exit_reason = reason_names[reason];
    res->duration_ms = (now_s() - t0) * 1000.0;

out:
    for (size_t i = 0; i < c.nimages; i++) {
        unlink(c.images[i].host_path);
        ad_free(c.images[i].host_path);
    }
    ad_sbx_snap_free(&before);
    ad_buf_free(&frame);
    ad_sbx_proto_free(&pr);
    ad_sbx_out_free(&o);
    pthread_mutex_lock(&sb->mu);
    s->busy = false;
    s->last_used = now_s();
    s->lru = ++sb->lru_clock;
    if (atomic_load(&s->doomed) || (start_failed && !s->started_once))
        end_slot(sb, s); /* unlocks while tearing down */
    if (!err) {
        double secs = res->duration_ms / 1000.0;
        sb->by_reason[reason]++;
        sb->count++;
        sb->sum_s += secs;
        for (size_t i = 0; i < NBUCKETS; i++)
            if (secs <= buckets[i])
                sb->hist[i]++;
    }
    pthread_cond_broadcast(&sb->cv);
    pthread_mutex_unlock(&sb->mu);
    if (err) {
        ad_sbx_result_free(res);
        memset(res, 0, sizeof *res);
        ad_log(sb->log, AD_LOG_WARN, "sandbox: session %s: execution failed: %s", session_key,
               ad_strerror(err));
    } else {
        ad_log(sb->log, AD_LOG_INFO,
               "sandbox: session %s exec %.1f ms exit=%s state_lost=%d files=%zu logs=%zu",
               session_key, res->duration_ms, res->exit_reason, res->state_lost, res->nfiles,
               res->logs_len);
    }
    return err;
}

void ad_sbx_result_free(ad_sbx_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfiles; i++) {
        if (r->files[i].host_path) {
            unlink(r->files[i].host_path);
            ad_free(r->files[i].host_path);
        }
    }
    ad_free(r->files);
    ad_free(r->logs);
    r->files = NULL;
    r->logs = NULL;
    r->nfiles = r->logs_len = 0;
}

void ad_sandbox_end(ad_sandbox *sb, const char *session_key)
{
    pthread_mutex_lock(&sb->mu);
    (void)gone_take(sb, session_key);
    session *s = find(sb, session_key);
    if (s) {
        if (s->busy)
            atomic_store(&s->doomed, true); /* its owner stops it within DISK_POLL_MS
                                               and ends the session */
        else
            end_slot(sb, s); /* unlocks while tearing down */
    }
    pthread_mutex_unlock(&sb->mu);
}

void ad_sandbox_interrupt(ad_sandbox *sb, const char *session_key)
{
    if (!sb || !session_key)
        return;
    pthread_mutex_lock(&sb->mu);
    session *s = find(sb, session_key);
    if (s && s->busy)
        atomic_store(&s->intr, true); /* the cell's pump sees it within DISK_POLL_MS */
    pthread_mutex_unlock(&sb->mu);
}

void ad_sandbox_metrics(ad_sandbox *sb, ad_buf *out)
{
    pthread_mutex_lock(&sb->mu);
    size_t live = 0, spares = 0, ready = 0;
    for (unsigned i = 0; i < sb->nslots; i++) {
        session *s = &sb->s[i];
        live += s->st == SL_LIVE && !atomic_load(&s->doomed);
        if (s->st == SL_SPARE) {
            /* Ready when its ready frame is waiting to be read (nobody
             * reads a spare's socket before it is handed out). */
            struct pollfd pf = {.fd = s->ctl, .events = POLLIN};
            spares++;
            ready += poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
        }
    }
    (void)ad_buf_addstr(out, "# HELP assistd_sandbox_executions_total code_interpreter "
                             "executions by exit reason.\n"
                             "# TYPE assistd_sandbox_executions_total counter\n");
    for (int i = 0; i < NREASONS; i++)
        (void)ad_buf_printf(out, "assistd_sandbox_executions_total{reason=\"%s\"} %llu\n",
                            reason_names[i], (unsigned long long)sb->by_reason[i]);
    (void)ad_buf_addstr(out, "# HELP assistd_sandbox_execution_seconds code_interpreter "
                             "execution duration.\n"
                             "# TYPE assistd_sandbox_execution_seconds histogram\n");
    for (size_t i = 0; i < NBUCKETS; i++)
        (void)ad_buf_printf(out, "assistd_sandbox_execution_seconds_bucket{le=\"%g\"} %llu\n",
                            buckets[i], (unsigned long long)sb->hist[i]);
    (void)ad_buf_printf(out,
                        "assistd_sandbox_execution_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "assistd_sandbox_execution_seconds_sum %.6f\n"
                        "assistd_sandbox_execution_seconds_count %llu\n",
                        (unsigned long long)sb->count, sb->sum_s, (unsigned long long)sb->count);
    (void)ad_buf_printf(out,
                        "# HELP assistd_sandbox_sessions Live code_interpreter sessions.\n"
                        "# TYPE assistd_sandbox_sessions gauge\n"
                        "assistd_sandbox_sessions %zu\n"
                        "# HELP assistd_sandbox_interpreter_starts_total Python interpreters "
                        "started.\n"
                        "# TYPE assistd_sandbox_interpreter_starts_total counter\n"
                        "assistd_sandbox_interpreter_starts_total %llu\n"
                        "# HELP assistd_sandbox_spares Pre-started interpreters waiting "
                        "for a new session.\n"
                        "# TYPE assistd_sandbox_spares gauge\n"
                        "assistd_sandbox_spares %zu\n"
                        "# HELP assistd_sandbox_spares_ready Spares whose imports are done.\n"
                        "# TYPE assistd_sandbox_spares_ready gauge\n"
                        "assistd_sandbox_spares_ready %zu\n"
                        "# HELP assistd_sandbox_spare_handouts_total New sessions given a "
                        "pre-started interpreter.\n"
                        "# TYPE assistd_sandbox_spare_handouts_total counter\n"
                        "assistd_sandbox_spare_handouts_total %llu\n",
                        live, (unsigned long long)sb->starts, spares, ready,
                        (unsigned long long)sb->handouts);
    pthread_mutex_unlock(&sb->mu);
}

/* ---- creation ---- */

/* True when every ancestor of path is searchable by others. */
static bool traversable(const char *path)
{
    char p[1024];
    ad_strlcpy(p, path, sizeof p);
    for (;;) {
        struct stat st;
        if (stat(p, &st) != 0 || !(st.st_mode & S_IXOTH))
            return false;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            return true;
        *slash = '\0';
    }
}

static ad_err read_file(const char *path, char **data, size_t *len)
{
    ad_buf b;
    ad_buf_init(&b, 1 << 20);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AD_ENOTFOUND;
    char chunk[8192];
    ssize_t n;
    ad_err rc = AD_OK;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        if ((rc = ad_buf_add(&b, chunk, (size_t)n)) != AD_OK)
            break;
    close(fd);
    if (n < 0)
        rc = AD_EIO;
    if (rc) {
        ad_buf_free(&b);
        return rc;
    }
    *len = b.len;
    *data = ad_buf_steal(&b);
    return AD_OK;
}

ad_err ad_sandbox_new(const ad_config *cfg, ad_logger *log, ad_sandbox **out)
{
    ad_err rc = AD_EIO;
    ad_sandbox *sb = ad_calloc(1, sizeof *sb);
    atomic_init(&sb->closing, false);
    sb->log = log;
    sb->basefd = -1;
    sb->uid_lock = -1;
    sb->cpu = cfg->sandbox_cpu_seconds ? cfg->sandbox_cpu_seconds : 120;
    sb->timeout = cfg->sandbox_timeout ? cfg->sandbox_timeout : 120;
    sb->idle = cfg->sandbox_idle ? cfg->sandbox_idle : 3600;
    sb->procs = cfg->sandbox_processes ? cfg->sandbox_processes : 64;
    sb->nofile = cfg->sandbox_open_files >= 16 ? cfg->sandbox_open_files : 16;
    sb->nmax = cfg->sandbox_max_sessions ? cfg->sandbox_max_sessions : 32;
    sb->mem = cfg->sandbox_memory ? cfg->sandbox_memory : 2ull << 30;
    sb->fsize = cfg->sandbox_file_size ? cfg->sandbox_file_size : 512ull << 20;
    sb->disk = cfg->sandbox_disk ? cfg->sandbox_disk : 1ull << 30;
    sb->nspare = cfg->sandbox_spares < 8 ? cfg->sandbox_spares : 8;
    sb->nslots = sb->nmax + sb->nspare;
    sb->as_root = geteuid() == 0;
    pthread_mutex_init(&sb->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sb->cv, &ca);
    pthread_condattr_destroy(&ca);
    sb->s = ad_calloc(sb->nslots, sizeof *sb->s);
    for (unsigned i = 0; i < sb->nslots; i++) {
        sb->s[i].slot = i;
        sb->s[i].ctl = sb->s[i].out = sb->s[i].dirfd = -1;
        atomic_init(&sb->s[i].doomed, false);
        atomic_init(&sb->s[i].intr, false);
    }
    sb->gone_cap = sb->nslots * 4 < 64 ? 64 : (size_t)sb->nslots * 4;
    sb->gone_key = ad_calloc(sb->gone_cap, sizeof *sb->gone_key);
    sb->gone_why = ad_calloc(sb->gone_cap, sizeof *sb->gone_why);
    ad_buf_init(&sb->bpf, 1 << 20);

    char path[1200];
    snprintf(path, sizeof path, "%s/sandbox/driver.py", cfg->share_dir);
    if (read_file(path, &sb->driver, &sb->driver_len)) {
        ad_log(log, AD_LOG_ERROR, "sandbox: cannot read the driver %s", path);
        goto out;
    }
    if (ad_sbx_seccomp_bpf(&sb->bpf)) {
        ad_log(log, AD_LOG_ERROR, "sandbox: cannot build the seccomp filter");
        rc = AD_EINTERNAL;
        goto out;
    }
    char *data = realpath(cfg->data_dir, NULL);
    if (!data) {
        ad_log(log, AD_LOG_ERROR, "sandbox: data dir %s: %s", cfg->data_dir, strerror(errno));
        goto out;
    }
    int n = snprintf(sb->base, sizeof sb->base, "%s/sandbox", data);
    free(data);
    if (n < 0 || (size_t)n >= sizeof sb->base)
        goto out;
    snprintf(sb->outdir, sizeof sb->outdir, "%s/.out", sb->base);
    if (mkdir(sb->base, 0711) != 0 && errno != EEXIST)
        goto out;
    if (chmod(sb->base, 0711) != 0)
        goto out;
    sb->basefd = open(sb->base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sb->basefd < 0)
        goto out;
    /* Sessions of a previous process are gone: remove their directories. */
    {
        int fd = dup(sb->basefd);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                ad_sbx_rm_rf_at(sb->basefd, de->d_name);
        if (d)
            closedir(d);
        else if (fd >= 0)
            close(fd);
    }
    if (mkdir(sb->outdir, 0700) != 0 && errno != EEXIST)
        goto out;
    if (sb->as_root && claim_uids(sb) != AD_OK)
        goto out;
    if (sb->as_root && !traversable(sb->base)) {
        ad_log(log, AD_LOG_ERROR,
               "sandbox: %s must be reachable by unprivileged users (chmod o+x on it and its "
               "parents): sessions run under unprivileged uids",
               sb->base);
        goto out;
    }
    if (pthread_create(&sb->bg, NULL, bg_main, sb) != 0)
        goto out;
    sb->bg_started = true;
    *out = sb;
    return AD_OK;
out:
    ad_sandbox_free(sb);
    return rc;
}

void ad_sandbox_shutdown(ad_sandbox *sb)
{
    if (!sb)
        return;
    atomic_store(&sb->closing, true);
    pthread_mutex_lock(&sb->mu);
    pthread_cond_broadcast(&sb->cv); /* wakes executions waiting for a busy session */
    pthread_mutex_unlock(&sb->mu);
}

void ad_sandbox_free(ad_sandbox *sb)
{
    if (!sb)
        return;
    ad_sandbox_shutdown(sb);
    pthread_mutex_lock(&sb->mu);
    sb->stop = true;
    pthread_cond_broadcast(&sb->cv);
    pthread_mutex_unlock(&sb->mu);
    if (sb->bg_started)
        pthread_join(sb->bg, NULL);
    for (unsigned i = 0; i < sb->nslots; i++)
        if (sb->s[i].st != SL_FREE)
            teardown(sb, &sb->s[i]);
    if (sb->basefd >= 0)
        close(sb->basefd);
    if (sb->uid_lock >= 0)
        close(sb->uid_lock); /* after every interpreter of the range is gone */
    pthread_mutex_destroy(&sb->mu);
    pthread_cond_destroy(&sb->cv);
    ad_buf_free(&sb->bpf);
    ad_free(sb->driver);
    ad_free(sb->s);
    ad_free(sb->gone_key);
    ad_free(sb->gone_why);
    ad_free(sb);
}
