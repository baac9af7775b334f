/* test_static.c -- the playground's file serving: which URL tails are
 * looked up at all, that the lookup never follows a symlink or leaves the
 * root, Content-Types, and Accept-Encoding parsing. (That /playground
 * routes at the root is in test_router.c.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/static.h"

static void path_checks(void **state)
{
    (void)state;
    assert_true(ad_static_path_ok("index.html"));
    assert_true(ad_static_path_ok("assets/index-Bx12_9.js"));
    assert_true(ad_static_path_ok("a/b/c.css"));
    assert_true(ad_static_path_ok("a..b.js")); /* dots inside a name are fine */

    assert_false(ad_static_path_ok(""));
    assert_false(ad_static_path_ok(".."));
    assert_false(ad_static_path_ok("../etc/passwd"));
    assert_false(ad_static_path_ok("assets/../../x"));
    assert_false(ad_static_path_ok("assets/.."));
    assert_false(ad_static_path_ok("./index.html"));
    assert_false(ad_static_path_ok("assets/./x.js"));
    assert_false(ad_static_path_ok(".env"));
    assert_false(ad_static_path_ok("assets/.git/config"));
    assert_false(ad_static_path_ok("/etc/passwd"));
    assert_false(ad_static_path_ok("assets//x.js"));
    assert_false(ad_static_path_ok("assets/"));
    assert_false(ad_static_path_ok("a\\..\\b"));
    assert_false(ad_static_path_ok("a b"));
    assert_false(ad_static_path_ok("a\nb"));
    assert_false(ad_static_path_ok("caf\xc3\xa9.js"));
    char long_name[600];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(ad_static_path_ok(long_name));
}

static void content_types(void **state)
{
    (void)state;
    assert_string_equal(ad_static_ctype("index.html"), "text/html; charset=utf-8");
    assert_string_equal(ad_static_ctype("assets/app-1a2b.js"), "text/javascript; charset=utf-8");
    assert_string_equal(ad_static_ctype("assets/app.CSS"), "text/css; charset=utf-8");
    assert_string_equal(ad_static_ctype("logo.svg"), "image/svg+xml");
    assert_string_equal(ad_static_ctype("shot.png"), "image/png");
    assert_string_equal(ad_static_ctype("x.woff2"), "font/woff2");
    assert_string_equal(ad_static_ctype("README"), "application/octet-stream");
    assert_string_equal(ad_static_ctype("a.js/README"), "application/octet-stream");
    assert_string_equal(ad_static_ctype("archive.tar.zz"), "application/octet-stream");
}

static void accept_encoding(void **state)
{
    (void)state;
    assert_true(ad_static_accepts_gzip("gzip"));
    assert_true(ad_static_accepts_gzip("gzip, deflate, br, zstd"));
    assert_true(ad_static_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
    assert_true(ad_static_accepts_gzip("*"));
    assert_true(ad_static_accepts_gzip("deflate, gzip ; q=0.1"));
    assert_false(ad_static_accepts_gzip(NULL));
    assert_false(ad_static_accepts_gzip(""));
    assert_false(ad_static_accepts_gzip("identity"));
    assert_false(ad_static_accepts_gzip("br, deflate"));
    assert_false(ad_static_accepts_gzip("gzip;q=0"));
    assert_false(ad_static_accepts_gzip("gzip;q=0.000, br"));
    assert_false(ad_static_accepts_gzip("x-gzip2"));
    assert_false(ad_static_accepts_gzip("gzipx"));
}

static void if_none_match(void **state)
{
    (void)state;
    const char *tag = "\"1a-2b-gz\"";
    assert_true(ad_static_etag_matches("\"1a-2b-gz\"", tag));
    assert_true(ad_static_etag_matches("W/\"1a-2b-gz\"", tag)); /* weak comparison */
    assert_true(ad_static_etag_matches("\"x\", \"1a-2b-gz\"", tag));
    assert_true(ad_static_etag_matches(" \"x\" ,W/\"1a-2b-gz\",", tag));
    assert_true(ad_static_etag_matches("*", tag));
    assert_false(ad_static_etag_matches(NULL, tag));
    assert_false(ad_static_etag_matches("", tag));
    assert_false(ad_static_etag_matches("\"1a-2b\"", tag));  /* the other representation */
    assert_false(ad_static_etag_matches("\"1a-2b-gz", tag)); /* unterminated */
    assert_false(ad_static_etag_matches("1a-2b-gz", tag));   /* unquoted */
    assert_false(ad_static_etag_matches("\"x\" junk \"1a-2b-gz\"", tag));
    assert_false(ad_static_etag_matches("w/\"1a-2b-gz\"", tag)); /* W/ is case-sensitive */
    assert_false(ad_static_etag_matches("\"\"", tag));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void open_below_root(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/ad-static-XXXXXX";
    char *base = mkdtemp(tmpl);
    assert_non_null(base);
    char root[256], p[512];
    snprintf(root, sizeof root, "%s/root", base);
    assert_int_equal(mkdir(root, 0755), 0);
    snprintf(p, sizeof p, "%s/assets", root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/index.html", root);
    write_file(p, "<!doctype html>");
    snprintf(p, sizeof p, "%s/assets/app.js", root);
    write_file(p, "console.log(1)");
    snprintf(p, sizeof p, "%s/secret.txt", base); /* outside the root */
    write_file(p, "secret");
    /* Links inside the root, to a file outside, to a directory outside,
     * and to a file inside: none is followed. */
    char target[512];
    snprintf(target, sizeof target, "%s/secret.txt", base);
    snprintf(p, sizeof p, "%s/leak.txt", root);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/up", root);
    assert_int_equal(symlink(base, p), 0);
    snprintf(p, sizeof p, "%s/again.html", root);
    assert_int_equal(symlink("index.html", p), 0);
    snprintf(p, sizeof p, "%s/fifo", root);
    assert_int_equal(mkfifo(p, 0644), 0);

    struct stat st;
    int fd = ad_static_open(root, "index.html", &st);
    assert_true(fd >= 0);
    assert_int_equal(st.st_size, 15);
    char buf[32] = {0};
    assert_int_equal(read(fd, buf, sizeof buf - 1), 15);
    assert_string_equal(buf, "<!doctype html>");
    close(fd);
    fd = ad_static_open(root, "assets/app.js", &st);
    assert_true(fd >= 0);
    assert_int_equal(st.st_size, 14);
    close(fd);

    errno = 0;
    assert_int_equal(ad_static_open(root, "leak.txt", &st), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(ad_static_open(root, "up/secret.txt", &st), -1);
    assert_int_equal(ad_static_open(root, "again.html", &st), -1);
    assert_int_equal(ad_static_open(root, "../secret.txt", &st), -1);
    assert_int_equal(errno, EACCES);
    assert_int_equal(ad_static_open(root, "missing.js", &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(ad_static_open(root, "assets", &st), -1);
    assert_int_equal(errno, EISDIR);
    assert_int_equal(ad_static_open(root, "fifo", &st), -1); /* does not block either */
    assert_int_equal(ad_static_open(root, "index.html/x", &st), -1);
    snprintf(p, sizeof p, "%s/nope", base);
    assert_int_equal(ad_static_open(p, "index.html", &st), -1);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_checks),     cmocka_unit_test(content_types),
        cmocka_unit_test(accept_encoding), cmocka_unit_test(if_none_match),
        cmocka_unit_test(open_below_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
