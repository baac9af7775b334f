/*
 * seccomp.c -- the system-call filter of the code_interpreter sandbox.
 *
 * The idea: allow by default (Python, numpy, pandas and matplotlib use a wide
 * and changing set of calls) and refuse, with EPERM, the calls a data-analysis
 * session never needs and that widen the kernel attack surface or the way
 * out of the namespaces: sockets other than AF_UNIX (no network, not even
 * through a namespace bug), ptrace and cross-process memory access, mount and
 * the new mount API, namespace creation and entry (unshare, setns, clone with
 * CLONE_NEW* flags), kernel modules, kexec, reboot, swap, bpf, perf events,
 * the keyring, userfaultfd, io_uring, personality changes, clock changes and
 * the other administrative calls below. EPERM rather than kill so that the
 * Python code gets a clean exception it can show the model. clone3 answers
 * ENOSYS: its flags live in memory a filter cannot inspect, and glibc falls
 * back to clone, whose flags the filter checks. Calls of another
 * architecture (the i386 or x32 ABI) kill the process (libseccomp's default
 * for a foreign architecture).
 *
 * bwrap installs the program just before it executes python (--seccomp FD),
 * so the sandbox's own set-up is not affected.
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/sbx_internal.h"

static const char *const denied[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "personality",
    "acct",
    "quotactl",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "fanotify_init",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "sethostname",
    "setdomainname",
    "mbind",
    "migrate_pages",
    "move_pages",
    "set_mempolicy",
    "ustat",
    "sysfs",
    "nfsservctl",
    "_sysctl",
    "vm86",
    "vm86old",
    "quotactl_fd",
};

static const unsigned long ns_flags[] = {
    CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,    CLONE_NEWNET,
    CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP,
};

ad_err ad_sbx_seccomp_bpf(ad_buf *out)
{
    ad_err rc = AD_EINTERNAL;
    int fd = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        goto out;
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not on this architecture */
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) < 0)
            goto out;
    }
    /* Only AF_UNIX sockets and socket pairs. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_NE, AF_UNIX)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1,
                         SCMP_A0(SCMP_CMP_NE, AF_UNIX)) < 0)
        goto out;
    for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++)
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i])) < 0)
            goto out;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0)
        goto out;
    /* Faking terminal input is never needed (there is no terminal anyway). */
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, 0x5412u /* TIOCSTI */)) < 0)
        goto out;
    fd = memfd_create("assistd-seccomp", MFD_CLOEXEC);
    if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0)
        goto out;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size > 1 << 20 || lseek(fd, 0, SEEK_SET) != 0)
        goto out;
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        if (ad_buf_add(out, chunk, (size_t)r))
            goto out;
    if (r < 0 || out->len != (size_t)size)
        goto out;
    rc = AD_OK;
out:
    if (fd >= 0)
        close(fd);
    if (ctx)
        seccomp_release(ctx);
    return rc;
}
