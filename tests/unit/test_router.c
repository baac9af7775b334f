/* test_router.c -- URL shapes (OpenAI and Azure) and route matching. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "http/router.h"

static void h(ad_req *req)
{
    (void)req;
}

static const ad_route table[] = {
    {"GET", "/healthz", h, AD_R_ROOT, "healthz"},
    {"POST", "/assistants", h, 0, "a.create"},
    {"GET", "/assistants", h, 0, "a.list"},
    {"GET", "/assistants/{}", h, 0, "a.get"},
    {"DELETE", "/assistants/{}", h, 0, "a.delete"},
    {"GET", "/threads/{}/messages/{}", h, 0, "m.get"},
};
#define N (sizeof table / sizeof table[0])

static void split_shapes(void **state)
{
    (void)state;
    ad_shape s;
    const char *p;
    assert_true(ad_url_split("/v1/assistants", &s, &p));
    assert_int_equal(s, AD_SHAPE_OPENAI);
    assert_string_equal(p, "/assistants");
    assert_true(ad_url_split("/openai/assistants", &s, &p));
    assert_int_equal(s, AD_SHAPE_AZURE);
    assert_string_equal(p, "/assistants");
    assert_true(ad_url_split("/openai/deployments/gpt4/threads/thread_1", &s, &p));
    assert_int_equal(s, AD_SHAPE_AZURE);
    assert_string_equal(p, "/threads/thread_1");
    assert_true(ad_url_split("/openai/v1/files", &s, &p));
    assert_int_equal(s, AD_SHAPE_AZURE_V1);
    assert_string_equal(p, "/files");
    assert_true(ad_url_split("/healthz", &s, &p));
    assert_int_equal(s, AD_SHAPE_ROOT);
    /* The playground: one root route for the prefix and everything below. */
    assert_true(ad_url_split("/playground", &s, &p));
    assert_int_equal(s, AD_SHAPE_ROOT);
    assert_string_equal(p, "/playground");
    assert_true(ad_url_split("/playground/assets/x.js", &s, &p));
    assert_int_equal(s, AD_SHAPE_ROOT);
    assert_string_equal(p, "/playground");
    assert_false(ad_url_split("/playgroundx", &s, &p));
    assert_false(ad_url_split("/v2/assistants", &s, &p));
    assert_false(ad_url_split("/", &s, &p));
    assert_false(ad_url_split("/openai/deployments/", &s, &p));
    assert_false(ad_url_split("/openai/deployments/x", &s, &p));
}

static void match_routes(void **state)
{
    (void)state;
    ad_arena *a = ad_arena_new(1024);
    size_t idx;
    const char *params[AD_MAX_PARAMS];
    int np = -1;
    assert_int_equal(ad_route_match(table, N, false, "GET", "/assistants", a, &idx, params, &np),
                     AD_MATCH_OK);
    assert_string_equal(table[idx].name, "a.list");
    assert_int_equal(np, 0);
    assert_int_equal(
        ad_route_match(table, N, false, "DELETE", "/assistants/asst_9", a, &idx, params, &np),
        AD_MATCH_OK);
    assert_string_equal(table[idx].name, "a.delete");
    assert_int_equal(np, 1);
    assert_string_equal(params[0], "asst_9");
    assert_int_equal(
        ad_route_match(table, N, false, "GET", "/threads/t1/messages/m2", a, &idx, params, &np),
        AD_MATCH_OK);
    assert_int_equal(np, 2);
    assert_string_equal(params[0], "t1");
    assert_string_equal(params[1], "m2");
    /* Known path, other method. */
    assert_int_equal(ad_route_match(table, N, false, "PUT", "/assistants", a, &idx, params, &np),
                     AD_MATCH_METHOD);
    /* Unknown paths, empty segments, trailing slashes, extra segments. */
    assert_int_equal(ad_route_match(table, N, false, "GET", "/nope", a, &idx, params, &np),
                     AD_MATCH_NONE);
    assert_int_equal(ad_route_match(table, N, false, "GET", "/assistants/", a, &idx, params, &np),
                     AD_MATCH_NONE);
    assert_int_equal(ad_route_match(table, N, false, "GET", "/assistants//", a, &idx, params, &np),
                     AD_MATCH_NONE);
    assert_int_equal(
        ad_route_match(table, N, false, "GET", "/assistants/a/b", a, &idx, params, &np),
        AD_MATCH_NONE);
    assert_int_equal(ad_route_match(table, N, false, "GET", "", a, &idx, params, &np),
                     AD_MATCH_NONE);
    /* Root routes only match when asked for root. */
    assert_int_equal(ad_route_match(table, N, false, "GET", "/healthz", a, &idx, params, &np),
                     AD_MATCH_NONE);
    assert_int_equal(ad_route_match(table, N, true, "GET", "/healthz", a, &idx, params, &np),
                     AD_MATCH_OK);
    ad_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_shapes),
        cmocka_unit_test(match_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
