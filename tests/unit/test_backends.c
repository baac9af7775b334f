/* test_backends.c -- the model table: ASSISTD_CONFIG validation (one test
 * per rule, each checking the message names the file and the entry), zero
 * configuration from OPENAI_BASE_URL / OPENAI_API_KEY, default tokenizers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run/backends.h"

/* Writes text to a temporary file and loads it; the error output is kept
 * in msg (NUL-terminated). */
static ad_err load_text(const char *text, char *path, size_t psize, char *msg, size_t msize,
                        ad_backends **out)
{
    char tmpl[] = "/tmp/test_backends_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    snprintf(path, psize, "%s", tmpl);
    char *buf = NULL;
    size_t blen = 0;
    FILE *err = open_memstream(&buf, &blen);
    ad_err rc = ad_backends_load(path, err, out);
    fclose(err);
    snprintf(msg, msize, "%s", buf ? buf : "");
    free(buf);
    unlink(path);
    return rc;
}

/* Expects the load to fail with a message containing every fragment. */
static void expect_error(const char *text, const char *frag1, const char *frag2)
{
    char path[64], msg[1024];
    ad_backends *b = (ad_backends *)1;
    ad_err rc = load_text(text, path, sizeof path, msg, sizeof msg, &b);
    if (rc == AD_OK || !strstr(msg, path) || !strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
        print_error("config: %s\nmessage: %s\n", text, msg);
    assert_int_not_equal(rc, AD_OK);
    assert_null(b);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, frag1));
    if (frag2)
        assert_non_null(strstr(msg, frag2));
}

#define LOCAL_BE                                                                                   \
    "{\"name\":\"local\",\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:11434/v1\"}"
#define AZ_BE                                                                                      \
    "{\"name\":\"az\",\"kind\":\"azure\",\"base_url\":\"https://res.openai.azure.com/\","          \
    "\"api_key_env\":\"TEST_AZ_KEY\",\"api_version\":\"2024-10-21\"}"

static void loads_full_example(void **state)
{
    (void)state;
    setenv("TEST_AZ_KEY", "az-secret-123", 1);
    const char *text = "{\"backends\":[" LOCAL_BE "," AZ_BE "],"
                       "\"models\":[{\"id\":\"gpt-4o\",\"backend\":\"local\","
                       "\"upstream_model\":\"llama3.1\"},"
                       "{\"id\":\"prod-gpt4o\",\"backend\":\"az\",\"deployment\":\"gpt4o\","
                       "\"context_window\":64000,\"tokenizer\":\"cl100k_base\"},"
                       "{\"id\":\"mini\",\"backend\":\"az\"}]}";
    char path[64], msg[1024];
    ad_backends *b = NULL;
    assert_int_equal(load_text(text, path, sizeof path, msg, sizeof msg, &b), AD_OK);
    assert_string_equal(msg, "");
    assert_false(ad_backends_passthrough(b));
    assert_int_equal(ad_backends_count(b), 3);
    const ad_model *m = ad_backends_at(b, 0);
    assert_string_equal(m->id, "gpt-4o");
    assert_string_equal(m->upstream_model, "llama3.1");
    assert_int_equal(m->context_window, 128000);
    assert_string_equal(m->tokenizer, "o200k_base");
    assert_string_equal(m->backend->name, "local");
    assert_int_equal(m->backend->kind, AD_BACKEND_OPENAI);
    assert_string_equal(m->backend->api_key, "");
    assert_int_equal(m->backend->timeout_connect_ms, 10000);
    assert_int_equal(m->backend->timeout_idle_ms, 120000);
    assert_int_equal(m->backend->max_retries, 3);
    m = ad_backends_at(b, 1);
    assert_string_equal(m->deployment, "gpt4o");
    assert_int_equal(m->context_window, 64000);
    assert_string_equal(m->tokenizer, "cl100k_base");
    assert_int_equal(m->backend->kind, AD_BACKEND_AZURE);
    assert_string_equal(m->backend->base_url, "https://res.openai.azure.com"); /* slash gone */
    assert_string_equal(m->backend->api_key, "az-secret-123");
    assert_string_equal(m->backend->api_version, "2024-10-21");
    m = ad_backends_at(b, 2);
    assert_string_equal(m->deployment, "mini"); /* defaults to the id */
    assert_null(ad_backends_at(b, 3));
    ad_model scratch;
    assert_ptr_equal(ad_backends_model(b, "prod-gpt4o", &scratch), ad_backends_at(b, 1));
    assert_null(ad_backends_model(b, "gpt-4o-mini", &scratch));
    assert_null(ad_backends_model(b, "", &scratch));
    ad_backends_free(b);
    unsetenv("TEST_AZ_KEY");
}

static void optional_backend_fields(void **state)
{
    (void)state;
    setenv("TEST_LOCAL_KEY", "k1", 1);
    const char *text = "{\"backends\":[{\"name\":\"l\",\"kind\":\"openai\","
                       "\"base_url\":\"http://h:1/v1///\",\"api_key_env\":\"TEST_LOCAL_KEY\","
                       "\"timeout_connect_ms\":500,\"timeout_idle_ms\":1500,\"max_retries\":0}],"
                       "\"models\":[{\"id\":\"m\",\"backend\":\"l\"}]}";
    char path[64], msg[1024];
    ad_backends *b = NULL;
    assert_int_equal(load_text(text, path, sizeof path, msg, sizeof msg, &b), AD_OK);
    const ad_backend *be = ad_backends_at(b, 0)->backend;
    assert_string_equal(be->base_url, "http://h:1/v1");
    assert_string_equal(be->api_key, "k1");
    assert_int_equal(be->timeout_connect_ms, 500);
    assert_int_equal(be->timeout_idle_ms, 1500);
    assert_int_equal(be->max_retries, 0);
    assert_string_equal(ad_backends_at(b, 0)->upstream_model, "m");
    assert_string_equal(ad_backends_at(b, 0)->tokenizer, "cl100k_base");
    ad_backends_free(b);
    unsetenv("TEST_LOCAL_KEY");
}

static void rejects_unknown_keys(void **state)
{
    (void)state;
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\"}],"
                 "\"extra\":1}",
                 "unknown key \"extra\"", NULL);
    expect_error("{\"backends\":[{\"name\":\"local\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                 "\"timeout\":5}],\"models\":[{\"id\":\"m\",\"backend\":\"local\"}]}",
                 "backends[0] (\"local\")", "unknown key \"timeout\"");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\","
                 "\"ctx\":5}]}",
                 "models[0] (\"m\")", "unknown key \"ctx\"");
}

static void rejects_missing_fields(void **state)
{
    (void)state;
    expect_error("{\"backends\":[{\"kind\":\"openai\",\"base_url\":\"http://h\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"x\"}]}",
                 "backends[0]", "missing \"name\"");
    expect_error("{\"backends\":[{\"name\":\"b\",\"base_url\":\"http://h\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "missing \"kind\"");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "missing \"base_url\"");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"backend\":\"local\"}]}", "models[0]",
                 "missing \"id\"");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\"}]}", "models[0] (\"m\")",
                 "missing \"backend\"");
    expect_error("{\"backends\":[" LOCAL_BE "]}", "\"models\" must be a non-empty array", NULL);
    expect_error("{\"backends\":[],\"models\":[]}", "\"backends\" must be a non-empty array", NULL);
}

static void rejects_bad_types_and_values(void **state)
{
    (void)state;
    expect_error("[]", "must be a JSON object", NULL);
    expect_error("{\"backends\":", "line 1", NULL); /* syntax error with position */
    expect_error("{\"backends\":[{\"name\":5,\"kind\":\"openai\",\"base_url\":\"http://h\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0]", "\"name\" must be a string");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                 "\"max_retries\":-1}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "\"max_retries\" must be between");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                 "\"timeout_idle_ms\":\"5\"}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "\"timeout_idle_ms\" must be an integer");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\","
                 "\"tokenizer\":\"p50k_base\"}]}",
                 "models[0] (\"m\")", "\"tokenizer\" must be");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\","
                 "\"context_window\":0}]}",
                 "models[0] (\"m\")", "\"context_window\" must be between");
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\","
                 "\"deployment\":\"d\"}]}",
                 "models[0] (\"m\")", "\"deployment\" applies only to azure");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                 "\"api_version\":\"1\"}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "\"api_version\" applies only to azure");
}

static void rejects_unknown_backend(void **state)
{
    (void)state;
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"nope\"}]}",
                 "models[0] (\"m\")", "unknown backend \"nope\"");
}

static void rejects_duplicates(void **state)
{
    (void)state;
    expect_error("{\"backends\":[" LOCAL_BE "],\"models\":[{\"id\":\"m\",\"backend\":\"local\"},"
                 "{\"id\":\"m\",\"backend\":\"local\"}]}",
                 "models[1] (\"m\")", "duplicate model id (also models[0])");
    expect_error("{\"backends\":[" LOCAL_BE "," LOCAL_BE "],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"local\"}]}",
                 "backends[1] (\"local\")", "duplicate backend name");
    expect_error("{\"backends\":[" LOCAL_BE "],\"backends\":[]}", "duplicate", NULL);
}

static void rejects_bad_kind(void **state)
{
    (void)state;
    expect_error(
        "{\"backends\":[{\"name\":\"b\",\"kind\":\"anthropic\",\"base_url\":\"http://h\"}],"
        "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
        "backends[0] (\"b\")", "\"kind\" must be \"openai\" or \"azure\"");
}

static void requires_http_url(void **state)
{
    (void)state;
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"ftp://h\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "http:// or https://");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"h:80\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "http:// or https://");
    expect_error("{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"https:///\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
                 "backends[0] (\"b\")", "no host");
    expect_error(
        "{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\","
        "\"base_url\":\"http://h/v1?x=1\"}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
        "backends[0] (\"b\")", "must not contain");
}

static void azure_needs_api_version(void **state)
{
    (void)state;
    expect_error("{\"backends\":[{\"name\":\"az\",\"kind\":\"azure\",\"base_url\":\"https://r\"}],"
                 "\"models\":[{\"id\":\"m\",\"backend\":\"az\"}]}",
                 "backends[0] (\"az\")", "missing \"api_version\"");
    expect_error("{\"backends\":[{\"name\":\"az\",\"kind\":\"azure\",\"base_url\":\"https://r\","
                 "\"api_version\":\"v\"}],\"models\":[{\"id\":\"m\",\"backend\":\"az\","
                 "\"upstream_model\":\"x\"}]}",
                 "models[0] (\"m\")", "\"upstream_model\" applies only to openai");
}

static void key_variable_must_exist(void **state)
{
    (void)state;
    unsetenv("TEST_MISSING_KEY");
    expect_error(
        "{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"http://h\","
        "\"api_key_env\":\"TEST_MISSING_KEY\"}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
        "backends[0] (\"b\")", "TEST_MISSING_KEY");
    setenv("TEST_MISSING_KEY", "", 1);
    expect_error(
        "{\"backends\":[{\"name\":\"b\",\"kind\":\"openai\",\"base_url\":\"http://h\","
        "\"api_key_env\":\"TEST_MISSING_KEY\"}],\"models\":[{\"id\":\"m\",\"backend\":\"b\"}]}",
        "backends[0] (\"b\")", "is not set");
    unsetenv("TEST_MISSING_KEY");
}

static void unreadable_file(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t blen = 0;
    FILE *err = open_memstream(&buf, &blen);
    ad_backends *b = NULL;
    assert_int_equal(ad_backends_load("/nonexistent/backends.json", err, &b), AD_EIO);
    fclose(err);
    assert_null(b);
    assert_non_null(strstr(buf, "/nonexistent/backends.json"));
    free(buf);
}

static void zero_configuration(void **state)
{
    (void)state;
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_KEY");
    ad_backends *b = NULL;
    assert_int_equal(ad_backends_load(NULL, stderr, &b), AD_OK);
    assert_true(ad_backends_passthrough(b));
    assert_int_equal(ad_backends_count(b), 0);
    assert_null(ad_backends_at(b, 0));
    ad_model scratch;
    const ad_model *m = ad_backends_model(b, "gpt-4o-mini", &scratch);
    assert_ptr_equal(m, &scratch);
    assert_string_equal(m->id, "gpt-4o-mini");
    assert_string_equal(m->upstream_model, "gpt-4o-mini");
    assert_string_equal(m->backend->base_url, "https://api.openai.com/v1");
    assert_string_equal(m->backend->api_key, "");
    assert_int_equal(m->backend->kind, AD_BACKEND_OPENAI);
    assert_int_equal(m->context_window, 128000);
    assert_string_equal(m->tokenizer, "o200k_base");
    m = ad_backends_model(b, "llama3", &scratch);
    assert_string_equal(m->tokenizer, "cl100k_base");
    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_null(ad_backends_model(b, longid, &scratch));
    ad_backends_free(b);

    setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1/", 1);
    setenv("OPENAI_API_KEY", "sk-test", 1);
    assert_int_equal(ad_backends_load("", stderr, &b), AD_OK);
    m = ad_backends_model(b, "x", &scratch);
    assert_string_equal(m->backend->base_url, "http://127.0.0.1:8000/v1");
    assert_string_equal(m->backend->api_key, "sk-test");
    ad_backends_free(b);

    setenv("OPENAI_BASE_URL", "localhost:8000", 1);
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(ad_backends_load(NULL, null, &b), AD_EINVAL);
    fclose(null);
    assert_null(b);
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_KEY");
}

static void default_tokenizers(void **state)
{
    (void)state;
    static const struct {
        const char *id, *tok;
    } cases[] = {
        {"gpt-4o", "o200k_base"},         {"gpt-4o-mini", "o200k_base"},
        {"gpt-4.1-nano", "o200k_base"},   {"gpt-5", "o200k_base"},
        {"o1-preview", "o200k_base"},     {"o3-mini", "o200k_base"},
        {"o4-mini", "o200k_base"},        {"chatgpt-4o-latest", "o200k_base"},
        {"gpt-4", "cl100k_base"},         {"gpt-4-turbo", "cl100k_base"},
        {"gpt-3.5-turbo", "cl100k_base"}, {"llama3.1", "cl100k_base"},
    };
    unsetenv("OPENAI_BASE_URL");
    ad_backends *b = NULL;
    assert_int_equal(ad_backends_load(NULL, stderr, &b), AD_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_model scratch;
        const ad_model *m = ad_backends_model(b, cases[i].id, &scratch);
        assert_non_null(m);
        assert_string_equal(m->tokenizer, cases[i].tok);
    }
    ad_backends_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_full_example),
        cmocka_unit_test(optional_backend_fields),
        cmocka_unit_test(rejects_unknown_keys),
        cmocka_unit_test(rejects_missing_fields),
        cmocka_unit_test(rejects_bad_types_and_values),
        cmocka_unit_test(rejects_unknown_backend),
        cmocka_unit_test(rejects_duplicates),
        cmocka_unit_test(rejects_bad_kind),
        cmocka_unit_test(requires_http_url),
        cmocka_unit_test(azure_needs_api_version),
        cmocka_unit_test(key_variable_must_exist),
        cmocka_unit_test(unreadable_file),
        cmocka_unit_test(zero_configuration),
        cmocka_unit_test(default_tokenizers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
