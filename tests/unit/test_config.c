/* test_config.c -- configuration (argv and ASSISTD_* environment) and the
 * API key table (comma list, keys file with projects). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "http/auth.h"

static ad_config_result load(ad_config *cfg, int argc, const char **argv)
{
    FILE *null = fopen("/dev/null", "w");
    ad_config_result r = ad_config_load(cfg, argc, (char **)argv, null, null);
    fclose(null);
    return r;
}

static void defaults(void **state)
{
    (void)state;
    ad_config cfg;
    unsetenv("ASSISTD_LISTEN");
    const char *argv[] = {"assistd"};
    assert_int_equal(load(&cfg, 1, argv), AD_CONFIG_OK);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "./data");
    assert_true(cfg.max_upload_bytes == 512ull * 1024 * 1024);
    assert_true(cfg.require_beta);
    assert_true(cfg.threads >= 2);
}

static void env_then_argv(void **state)
{
    (void)state;
    ad_config cfg;
    setenv("ASSISTD_LISTEN", "0.0.0.0:9000", 1);
    setenv("ASSISTD_MAX_UPLOAD", "1K", 1);
    const char *argv[] = {"assistd", "--listen", "[::1]:7000", "--require-beta-header=false"};
    assert_int_equal(load(&cfg, 4, argv), AD_CONFIG_OK);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 7000);
    assert_int_equal(cfg.max_upload_bytes, 1024);
    assert_false(cfg.require_beta);
    const char *argv2[] = {"assistd"};
    assert_int_equal(load(&cfg, 1, argv2), AD_CONFIG_OK);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    unsetenv("ASSISTD_LISTEN");
    unsetenv("ASSISTD_MAX_UPLOAD");
}

static void rejects_bad_values(void **state)
{
    (void)state;
    ad_config cfg;
    const char *a1[] = {"assistd", "--listen", "nope"};
    assert_int_equal(load(&cfg, 3, a1), AD_CONFIG_ERROR);
    const char *a2[] = {"assistd", "--listen", "h:70000"};
    assert_int_equal(load(&cfg, 3, a2), AD_CONFIG_ERROR);
    const char *a3[] = {"assistd", "--bogus", "1"};
    assert_int_equal(load(&cfg, 3, a3), AD_CONFIG_ERROR);
    const char *a4[] = {"assistd", "--threads"};
    assert_int_equal(load(&cfg, 2, a4), AD_CONFIG_ERROR);
    const char *a5[] = {"assistd", "--log-level", "loud"};
    assert_int_equal(load(&cfg, 3, a5), AD_CONFIG_ERROR);
    const char *a6[] = {"assistd", "--help"};
    assert_int_equal(load(&cfg, 2, a6), AD_CONFIG_EXIT_OK);
    setenv("ASSISTD_THREADS", "lots", 1);
    const char *a7[] = {"assistd"};
    assert_int_equal(load(&cfg, 1, a7), AD_CONFIG_ERROR);
    unsetenv("ASSISTD_THREADS");
}

static void keys_and_projects(void **state)
{
    (void)state;
    char path[] = "/tmp/assistd-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\n  sk-a   projA  # trailing\n\nsk-b projB\nsk-c\n", f);
    fclose(f);
    FILE *null = fopen("/dev/null", "w");
    ad_auth *a = NULL;
    assert_int_equal(ad_auth_load(" sk-env1 , sk-env2", path, null, &a), AD_OK);
    assert_true(ad_auth_enabled(a));
    assert_int_equal(ad_auth_count(a), 5);
    assert_string_equal(ad_auth_check(a, "sk-a", 4), "projA");
    assert_string_equal(ad_auth_check(a, "sk-b", 4), "projB");
    assert_string_equal(ad_auth_check(a, "sk-c", 4), "default");
    assert_string_equal(ad_auth_check(a, "sk-env2", 7), "default");
    assert_null(ad_auth_check(a, "sk-", 3));
    assert_null(ad_auth_check(a, "sk-a ", 5));
    assert_null(ad_auth_check(a, "", 0));
    ad_auth_free(a);
    /* A malformed line is refused as a whole. */
    f = fopen(path, "w");
    fputs("sk-a projA extra\n", f);
    fclose(f);
    assert_int_equal(ad_auth_load("", path, null, &a), AD_EINVAL);
    f = fopen(path, "w");
    fputs("sk-a bad/project\n", f);
    fclose(f);
    assert_int_equal(ad_auth_load("", path, null, &a), AD_EINVAL);
    assert_int_equal(ad_auth_load("", "/nonexistent/keys", null, &a), AD_EIO);
    /* No keys at all: authentication off. */
    assert_int_equal(ad_auth_load("", "", null, &a), AD_OK);
    assert_false(ad_auth_enabled(a));
    ad_auth_free(a);
    fclose(null);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(env_then_argv),
        cmocka_unit_test(rejects_bad_values),
        cmocka_unit_test(keys_and_projects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
