/* alloc.c -- allocation wrappers that abort on exhaustion (see alloc.h). */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "assistd: out of memory allocating %zu bytes, aborting\n", n);
    abort();
}

void *ad_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *ad_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *ad_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *ad_strndup(const char *s, size_t n)
{
    char *p = ad_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ad_strdup(const char *s)
{
    return ad_strndup(s, strlen(s));
}

void ad_free(void *p)
{
    free(p);
}
