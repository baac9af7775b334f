/*
 * arena.h -- per-request memory pools (the nginx/h2o idea).
 *
 * A request allocates its small pieces (decoded path parameters, query
 * values, formatted messages) from its arena and never frees them one by
 * one: the whole arena is released when the request completes. That removes
 * a class of leaks on error paths, since a handler that bails out early has
 * nothing to clean up. Allocations are 16-byte aligned. Memory is bounded by
 * the request limits that feed it (URL length, header count, body limits).
 *
 * Ownership: the arena owns everything allocated from it; ad_arena_free
 * releases all of it at once.
 */
#ifndef AD_ARENA_H
#define AD_ARENA_H

#include <stddef.h>

typedef struct ad_arena ad_arena;

ad_arena *ad_arena_new(size_t chunk_size);
void *ad_arena_alloc(ad_arena *a, size_t n);
char *ad_arena_strdup(ad_arena *a, const char *s);
char *ad_arena_strndup(ad_arena *a, const char *s, size_t n);
char *ad_arena_printf(ad_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ad_arena_free(ad_arena *a);

#endif
