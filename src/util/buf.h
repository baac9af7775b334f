/*
 * buf.h -- growable byte buffers with a hard maximum (curl's dynbuf idea).
 *
 * Every ad_buf is created with the largest size it may ever reach. An append
 * that would cross it fails with AD_ETOOBIG and leaves the buffer as it was,
 * so a hostile peer can never make a buffer grow without bound. The content is
 * always NUL-terminated (the terminator is not counted in len), so text can be
 * handed to C string functions directly.
 *
 * Ownership: the ad_buf struct is the caller's (usually on the stack or inside
 * a larger object); ad_buf_free releases the heap memory it points to.
 * ad_buf_steal hands that memory to the caller (free it with ad_free) and
 * leaves the buffer empty and reusable.
 */
#ifndef AD_BUF_H
#define AD_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

typedef struct ad_buf {
    char *ptr;  /* NULL until the first append */
    size_t len; /* bytes in use, excluding the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len */
} ad_buf;

void ad_buf_init(ad_buf *b, size_t max);
ad_err ad_buf_add(ad_buf *b, const void *p, size_t n);
ad_err ad_buf_addstr(ad_buf *b, const char *s);
ad_err ad_buf_addc(ad_buf *b, char c);
ad_err ad_buf_printf(ad_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ad_err ad_buf_vprintf(ad_buf *b, const char *fmt, va_list ap);
/* Content as a C string; "" for an empty buffer. Valid until the next append. */
const char *ad_buf_str(const ad_buf *b);
void ad_buf_reset(ad_buf *b); /* len = 0, keeps memory */
void ad_buf_free(ad_buf *b);  /* releases memory, keeps max */
char *ad_buf_steal(ad_buf *b);

#endif
