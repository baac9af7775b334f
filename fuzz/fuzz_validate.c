/*
 * fuzz_validate.c -- libFuzzer target for request-body validation.
 *
 * The input is treated as a raw HTTP request body: it goes through
 * ad_json_parse_body exactly as the handlers do, and a body that parses is
 * validated against every exported schema (ad_schemas_all). Besides
 * "no crash, no leak, no UB", it checks the invariants the HTTP layer relies
 * on: a failure always carries a non-empty message, and message and param are
 * NUL-terminated, within their buffers and valid UTF-8 (the error body is built
 * with jansson, which refuses invalid UTF-8).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/schemas.h"
#include "api/validate.h"
#include "util/str.h"

static void check_err(const ad_verr *err)
{
    size_t mlen = strnlen(err->message, sizeof err->message);
    size_t plen = strnlen(err->param, sizeof err->param);
    if (mlen == 0 || mlen == sizeof err->message || plen == sizeof err->param)
        abort();
    if (!ad_utf8_valid(err->message, mlen) || !ad_utf8_valid(err->param, plen))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_verr err;
    json_t *body = NULL;
    if (!ad_json_parse_body((const char *)data, size, &body, &err)) {
        if (body)
            abort();
        check_err(&err);
        return 0;
    }
    for (const ad_vfield *const *s = ad_schemas_all; *s; s++) {
        bool ok = ad_validate(body, *s, &err);
        if (!ok)
            check_err(&err);
        /* The Azure mode knows more fields, never fewer: what the OpenAI
         * mode accepts, it accepts too. */
        bool az = ad_validate_azure(body, *s, &err);
        if (!az)
            check_err(&err);
        if (ok && !az)
            abort();
    }
    json_decref(body);
    return 0;
}
