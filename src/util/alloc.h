/*
 * alloc.h -- the out-of-memory policy of assistd.
 *
 * assistd never tries to limp on after malloc fails: every allocation goes
 * through these wrappers, which abort the process with a message when the
 * allocator returns NULL (the redis policy). Memory is bounded elsewhere --
 * by request-size limits, bounded buffers (buf.h) and connection limits -- so
 * reaching this path means the machine is out of memory, and a clean crash
 * that the supervisor restarts beats a half-handled request. Because every
 * write is committed to the store before it is acknowledged, an abort loses
 * no acknowledged data.
 *
 * Ownership: whatever ad_malloc & co. return is owned by the caller and is
 * released with ad_free (which accepts NULL).
 */
#ifndef AD_ALLOC_H
#define AD_ALLOC_H

#include <stddef.h>

void *ad_malloc(size_t n);
void *ad_calloc(size_t nmemb, size_t size);
void *ad_realloc(void *p, size_t n);
char *ad_strdup(const char *s);
char *ad_strndup(const char *s, size_t n);
void ad_free(void *p);

#endif
