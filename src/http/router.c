/*
 * router.c -- URL shapes and route matching (see router.h). The route table
 * is small (dozens of entries), so matching is a linear scan comparing
 * segments; no allocation happens unless a route matches.
 */
#include "http/router.h"

#include <string.h>

#include "util/str.h"

bool ad_url_split(const char *url, ad_shape *shape, const char **path)
{
    if (!strcmp(url, "/healthz") || !strcmp(url, "/metrics")) {
        *shape = AD_SHAPE_ROOT;
        *path = url;
        return true;
    }
    /* The playground's files: one root route, the handler reads req->url. */
    if (!strcmp(url, "/playground") || ad_str_has_prefix(url, "/playground/")) {
        *shape = AD_SHAPE_ROOT;
        *path = "/playground";
        return true;
    }
    if (ad_str_has_prefix(url, "/v1/")) {
        *shape = AD_SHAPE_OPENAI;
        *path = url + 3;
        return true;
    }
    if (ad_str_has_prefix(url, "/openai/v1/")) {
        *shape = AD_SHAPE_AZURE_V1;
        *path = url + 10;
        return true;
    }
    if (ad_str_has_prefix(url, "/openai/deployments/")) {
        const char *p = url + strlen("/openai/deployments/");
        const char *slash = strchr(p, '/');
        if (!slash || slash == p)
            return false;
        *shape = AD_SHAPE_AZURE;
        *path = slash;
        return true;
    }
    if (ad_str_has_prefix(url, "/openai/")) {
        *shape = AD_SHAPE_AZURE;
        *path = url + 7;
        return true;
    }
    return false;
}

/* Compares the segment at *p with a pattern segment; advances *p. */
static bool seg_next(const char **p, const char **s, size_t *n)
{
    if (**p != '/')
        return false;
    (*p)++;
    *s = *p;
    while (**p && **p != '/')
        (*p)++;
    *n = (size_t)(*p - *s);
    return true;
}

static bool match_one(const char *pattern, const char *path, const char **segs, size_t *lens,
                      int *nparams)
{
    const char *pp = pattern, *up = path;
    int np = 0;
    for (;;) {
        if (!*pp && !*up)
            break;
        const char *ps, *us;
        size_t pn, un;
        if (!seg_next(&pp, &ps, &pn) || !seg_next(&up, &us, &un))
            return false;
        if (pn == 2 && ps[0] == '{' && ps[1] == '}') {
            if (un == 0 || np == AD_MAX_PARAMS)
                return false;
            segs[np] = us;
            lens[np] = un;
            np++;
        } else if (pn != un || memcmp(ps, us, pn) != 0) {
            return false;
        }
    }
    *nparams = np;
    return true;
}

ad_match ad_route_match(const ad_route *routes, size_t n, bool root, const char *method,
                        const char *path, ad_arena *arena, size_t *index, const char **params,
                        int *nparams)
{
    ad_match res = AD_MATCH_NONE;
    const char *segs[AD_MAX_PARAMS];
    size_t lens[AD_MAX_PARAMS];
    for (size_t i = 0; i < n; i++) {
        if (((routes[i].flags & AD_R_ROOT) != 0) != root)
            continue;
        int np;
        if (!match_one(routes[i].pattern, path, segs, lens, &np))
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            res = AD_MATCH_METHOD;
            continue;
        }
        for (int k = 0; k < np; k++)
            params[k] = ad_arena_strndup(arena, segs[k], lens[k]);
        *nparams = np;
        *index = i;
        return AD_MATCH_OK;
    }
    return res;
}
