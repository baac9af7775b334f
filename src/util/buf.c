/*
 * buf.c -- bounded growable buffers (see buf.h). Growth doubles the capacity
 * but never allocates beyond max + 1 (room for the terminator).
 */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void ad_buf_init(ad_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static ad_err ensure(ad_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return AD_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return AD_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    b->ptr = ad_realloc(b->ptr, cap);
    b->cap = cap;
    return AD_OK;
}

ad_err ad_buf_add(ad_buf *b, const void *p, size_t n)
{
    ad_err rc = ensure(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return AD_OK;
}

ad_err ad_buf_addstr(ad_buf *b, const char *s)
{
    return ad_buf_add(b, s, strlen(s));
}

ad_err ad_buf_addc(ad_buf *b, char c)
{
    return ad_buf_add(b, &c, 1);
}

ad_err ad_buf_vprintf(ad_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return AD_EINVAL;
    ad_err rc = ensure(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return AD_OK;
}

ad_err ad_buf_printf(ad_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ad_err rc = ad_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *ad_buf_str(const ad_buf *b)
{
    return b->ptr ? b->ptr : "";
}

void ad_buf_reset(ad_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

void ad_buf_free(ad_buf *b)
{
    ad_free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

char *ad_buf_steal(ad_buf *b)
{
    char *p = b->ptr ? b->ptr : ad_strdup("");
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
