/*
 * fuzz_static.c -- libFuzzer target for what the playground's file server
 * reads from a request: the URL tail (ad_static_path_ok), Accept-Encoding
 * (ad_static_accepts_gzip) and If-None-Match (ad_static_etag_matches).
 *
 * The input, cut at its first NUL as libmicrohttpd would hand it over, goes
 * to all three. Besides "no crash, no UB, no read past the string", each
 * answer is checked against a cruder oracle that must agree whenever the
 * function says yes: an accepted path has no leading slash, no dot-led or
 * empty segment and only printable ASCII; a value that accepts gzip
 * mentions gzip or *; an If-None-Match that names the tag contains the tag
 * (or *).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/static.h"

#define TAG "\"1f-2e-gz\""

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, n))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (ad_static_path_ok(s)) {
        size_t n = strlen(s);
        if (n == 0 || n > 512 || s[0] == '/' || s[0] == '.' || strstr(s, "/.") || strstr(s, "//") ||
            s[n - 1] == '/')
            abort();
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '\\')
                abort();
    }
    if (ad_static_accepts_gzip(s) && !has_ci(s, "gzip") && !strchr(s, '*'))
        abort();
    if (ad_static_etag_matches(s, TAG) && !strstr(s, TAG) && !strchr(s, '*'))
        abort();
    if (!ad_static_etag_matches(TAG, TAG))
        abort();
    free(s);
    return 0;
}
