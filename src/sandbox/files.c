/*
 * files.c -- the host's view of a session directory (/mnt/data inside the
 * sandbox).
 *
 * The sandboxed code owns that directory and may plant anything in it:
 * symlinks to host files (/etc/shadow, the database), FIFOs that block a
 * reader, deep trees, millions of names. Every operation here therefore works
 * relative to a directory descriptor, opens each component with O_NOFOLLOW
 * (a symlink is never followed, only removed or ignored), accepts only
 * regular files, opens with O_NONBLOCK so a FIFO cannot hang us, and bounds
 * the scan (entries and depth). Copies out go to a fresh O_EXCL file outside
 * the session directory and stop at a byte limit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sbx_internal.h"
#include "util/alloc.h"
#include "util/str.h"

#define MAX_ENTRIES 4096
#define MAX_DEPTH   8
#define MAX_SCAN    20000 /* directory entries looked at, files or not */
/* The quota's measure and the removal look this deep and at this many names;
 * a tree beyond either counts as over the quota (ad_sbx_dir_usage). */
#define TREE_DEPTH  64
#define USAGE_NAMES 200000
#define RM_PASSES   100000

bool ad_sbx_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n < 256 && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

static void snap_add(ad_sbx_snap *s, const char *rel, const struct stat *st)
{
    if (s->n == MAX_ENTRIES) {
        s->truncated = true;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->e = ad_realloc(s->e, s->cap * sizeof *s->e);
    }
    ad_sbx_entry *e = &s->e[s->n++];
    ad_strlcpy(e->name, rel, sizeof e->name);
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    e->ino = (uint64_t)st->st_ino;
}

/* The next entry of d other than "." and "..", with its lstat (never
 * following a symlink); NULL at the end. */
static const char *next_entry(DIR *d, struct stat *st)
{
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), de->d_name, st, AT_SYMLINK_NOFOLLOW) == 0)
            return de->d_name;
    }
    return NULL;
}

/* Walks dirfd (which it closes); rel is the path of dirfd ("" at the top). */
static void scan(int dirfd, const char *rel, int depth, ad_sbx_snap *s, size_t *budget)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    const char *name;
    struct stat st;
    while ((name = next_entry(d, &st)) != NULL) {
        if (*budget == 0) {
            s->truncated = true;
            break;
        }
        (*budget)--;
        char path[256];
        int n = snprintf(path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "", name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue; /* too long to report */
        if (S_ISREG(st.st_mode)) {
            s->total += (uint64_t)st.st_size;
            snap_add(s, path, &st);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth >= MAX_DEPTH) {
                s->truncated = true;
                continue;
            }
            int sub =
                openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (sub >= 0)
                scan(sub, path, depth + 1, s, budget);
        }
    }
    closedir(d);
}

ad_err ad_sbx_snap_take(int dirfd, ad_sbx_snap *s)
{
    memset(s, 0, sizeof *s);
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return AD_EIO;
    size_t budget = MAX_SCAN;
    scan(fd, "", 0, s, &budget);
    return AD_OK;
}

void ad_sbx_snap_free(ad_sbx_snap *s)
{
    ad_free(s->e);
    memset(s, 0, sizeof *s);
}

const ad_sbx_entry *ad_sbx_snap_find(const ad_sbx_snap *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].name, name))
            return &s->e[i];
    return NULL;
}

/* Adds the bytes of the regular files under dirfd (which it closes) to
 * *total. False when the tree is deeper than TREE_DEPTH or has more than
 * *budget names: then it is not measured, and the caller counts it as over
 * any quota (files the snapshot never sees must not escape the quota). */
static bool usage_walk(int dirfd, int depth, uint64_t *total, size_t *budget)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return true;
    }
    bool ok = true;
    const char *name;
    struct stat st;
    while (ok && (name = next_entry(d, &st)) != NULL) {
        if (*budget == 0) {
            ok = false;
            break;
        }
        (*budget)--;
        if (S_ISREG(st.st_mode)) {
            *total += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= TREE_DEPTH) {
                ok = false;
                break;
            }
            int sub =
                openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (sub >= 0)
                ok = usage_walk(sub, depth + 1, total, budget);
        }
    }
    closedir(d);
    return ok;
}

uint64_t ad_sbx_dir_usage(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint64_t total = 0;
    size_t budget = USAGE_NAMES;
    return usage_walk(fd, 0, &total, &budget) ? total : UINT64_MAX;
}

static bool same_content(int a, int b)
{
    char x[65536], y[65536];
    for (;;) {
        ssize_t n = read(a, x, sizeof x);
        if (n < 0)
            return false;
        size_t got = 0;
        while (got < (size_t)n) {
            ssize_t m = read(b, y + got, (size_t)n - got);
            if (m <= 0)
                return false;
            got += (size_t)m;
        }
        if (n == 0)
            return read(b, y, 1) == 0;
        if (memcmp(x, y, (size_t)n))
            return false;
    }
}

static ad_err copy_fd(int in, int out, uint64_t max)
{
    char chunk[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(in, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return AD_EIO;
        if (n == 0)
            return AD_OK;
        total += (uint64_t)n;
        if (total > max)
            return AD_ETOOBIG;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return AD_EIO;
            off += w;
        }
    }
}

ad_err ad_sbx_copy_in(int dirfd, const char *name, const char *src, uid_t uid, gid_t gid)
{
    ad_err rc = AD_EIO;
    int in = -1, old = -1, out = -1;
    if (!ad_sbx_name_ok(name))
        return AD_EINVAL;
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return AD_ENOTFOUND;
    struct stat sst, dst;
    if (fstat(in, &sst) != 0 || !S_ISREG(sst.st_mode))
        goto out;
    old = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (old >= 0 && fstat(old, &dst) == 0 && S_ISREG(dst.st_mode) && dst.st_size == sst.st_size &&
        same_content(in, old)) {
        rc = AD_OK; /* already there */
        goto out;
    }
    if (old >= 0 && fstat(old, &dst) == 0 && S_ISDIR(dst.st_mode)) {
        rc = AD_EEXIST; /* the code made a directory of that name: leave it */
        goto out;
    }
    if (lseek(in, 0, SEEK_SET) != 0)
        goto out;
    /* Whatever is there (file, symlink, FIFO) is replaced, never written through. */
    if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
        goto out;
    out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0)
        goto out;
    rc = copy_fd(in, out, UINT64_MAX);
    if (!rc && uid != (uid_t)-1 && fchown(out, uid, gid) != 0)
        rc = AD_EIO;
out:
    if (in >= 0)
        close(in);
    if (old >= 0)
        close(old);
    if (out >= 0)
        close(out);
    return rc;
}

ad_err ad_sbx_copy_out(int dirfd, const char *relpath, const char *dst, uint64_t max)
{
    ad_err rc = AD_EIO;
    int cur = -1, in = -1, out = -1;
    char path[256];
    if (ad_strlcpy(path, relpath, sizeof path) >= sizeof path)
        return AD_EINVAL;
    cur = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return AD_EIO;
    /* Walk the directories component by component, never through a symlink. */
    char *p = path;
    for (char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        *slash = '\0';
        if (!ad_sbx_name_ok(p))
            goto out;
        int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            goto out;
        close(cur);
        cur = next;
    }
    if (!ad_sbx_name_ok(p))
        goto out;
    in = openat(cur, p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    if ((uint64_t)st.st_size > max) {
        rc = AD_ETOOBIG;
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        goto out;
    rc = copy_fd(in, out, max);
    if (rc)
        unlink(dst);
out:
    if (cur >= 0)
        close(cur);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

/* Removes everything under dirfd (which it closes). A directory at
 * TREE_DEPTH is not descended into (that bounds the recursion and the
 * descriptors held open) but moved up into topfd as ".rm-deep-N" (N from
 * *seq, never reused) for a later pass; *more says one was. */
static void rm_tree(int dirfd, int topfd, int depth, unsigned *seq, bool *more)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    const char *name;
    struct stat st;
    while ((name = next_entry(d, &st)) != NULL) {
        if (!S_ISDIR(st.st_mode)) {
            unlinkat(dirfd, name, 0);
            continue;
        }
        if (depth + 1 >= TREE_DEPTH) {
            char up[32];
            int rc;
            do {
                snprintf(up, sizeof up, ".rm-deep-%u", ++*seq);
            } while ((rc = renameat2(dirfd, name, topfd, up, RENAME_NOREPLACE)) != 0 &&
                     errno == EEXIST);
            *more |= rc == 0;
            continue;
        }
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0)
            rm_tree(sub, topfd, depth + 1, seq, more);
        unlinkat(dirfd, name, AT_REMOVEDIR);
    }
    closedir(d);
}

void ad_sbx_rm_contents(int dirfd)
{
    /* Each pass removes TREE_DEPTH levels; a deeper tree needs more passes
     * (bounded: the sandbox cannot build an unbounded tree before it is
     * stopped, and this gives up rather than loop for ever). */
    unsigned seq = 0;
    for (unsigned pass = 0; pass < RM_PASSES; pass++) {
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return;
        bool more = false;
        rm_tree(fd, dirfd, 0, &seq, &more);
        if (!more)
            return;
    }
}

void ad_sbx_rm_rf_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            ad_sbx_rm_contents(fd);
            close(fd);
        }
        unlinkat(dirfd, name, AT_REMOVEDIR);
    } else {
        unlinkat(dirfd, name, 0);
    }
}
