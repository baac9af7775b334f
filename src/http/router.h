/*
 * router.h -- from a URL to a route.
 *
 * Both URL shapes reach the same handlers: OpenAI's /v1/PATH and Azure
 * OpenAI's /openai/PATH?api-version=V (also /openai/deployments/NAME/PATH,
 * which old Azure clients send for assistants, and /openai/v1/PATH, Azure's
 * version-less surface). ad_url_split removes the prefix; ad_route_match then
 * finds the route by method and path segments, filling path parameters.
 */
#ifndef AD_ROUTER_H
#define AD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

typedef enum {
    AD_SHAPE_ROOT,     /* /healthz, /metrics */
    AD_SHAPE_OPENAI,   /* /v1/... */
    AD_SHAPE_AZURE,    /* /openai/...: api-version required */
    AD_SHAPE_AZURE_V1, /* /openai/v1/...: no api-version */
} ad_shape;

/* Splits url into its shape and the API path ("/assistants/asst_1").
 * *path points into url. Returns false for URLs of no known shape. */
bool ad_url_split(const char *url, ad_shape *shape, const char **path);

typedef enum { AD_MATCH_OK, AD_MATCH_NONE, AD_MATCH_METHOD } ad_match;

/* Matches method + path against routes[0..n) whose AD_R_ROOT flag equals
 * root. On AD_MATCH_OK, *index is the route and params[0..*nparams) are
 * copies of the {} segments in the arena. AD_MATCH_METHOD: the path exists
 * with other methods. */
ad_match ad_route_match(const ad_route *routes, size_t n, bool root, const char *method,
                        const char *path, ad_arena *arena, size_t *index, const char **params,
                        int *nparams);

#endif
