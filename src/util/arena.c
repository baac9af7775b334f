/*
 * arena.c -- a chain of chunks; allocation bumps a pointer in the newest
 * chunk and opens a new chunk when it is full. Requests larger than a chunk
 * get a chunk of their own.
 */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

struct ad_arena {
    struct chunk *head;
    size_t chunk_size;
};

ad_arena *ad_arena_new(size_t chunk_size)
{
    ad_arena *a = ad_calloc(1, sizeof *a);
    a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
    return a;
}

void *ad_arena_alloc(ad_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        c = ad_malloc(sizeof *c + size);
        c->used = 0;
        c->size = size;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *ad_arena_strndup(ad_arena *a, const char *s, size_t n)
{
    char *p = ad_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ad_arena_strdup(ad_arena *a, const char *s)
{
    return ad_arena_strndup(a, s, strlen(s));
}

char *ad_arena_printf(ad_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return ad_arena_strdup(a, "");
    }
    char *p = ad_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void ad_arena_free(ad_arena *a)
{
    if (!a)
        return;
    struct chunk *c = a->head;
    while (c) {
        struct chunk *next = c->next;
        ad_free(c);
        c = next;
    }
    ad_free(a);
}
