/*
 * proto.c -- the host side of the driver protocol: a streaming parser of the
 * frames the driver writes on its control socket, and a bounded collector of
 * what the cell printed.
 *
 * Both consume bytes the sandboxed code fully controls (it can write to any
 * of its descriptors), so nothing here trusts them: a frame header is at most
 * 13 bytes of a strict grammar (one upper-case letter, one space, 1-10
 * decimal digits without leading zeros, a newline), the payload has a hard
 * limit, and any deviation fails the parser for good -- the session is then
 * killed and restarted by sandbox.c. The output collector keeps a head and a
 * tail of bounded size, so gigabytes of output cost time but not memory, and
 * its result is always valid UTF-8 so it can go into JSON unchanged.
 */
#include "sandbox/sbx_internal.h"

#include <string.h>

#include "util/alloc.h"
#include "util/str.h"

void ad_sbx_proto_init(ad_sbx_proto *p, size_t max_payload)
{
    memset(p, 0, sizeof *p);
    ad_buf_init(&p->payload, max_payload);
}

void ad_sbx_proto_reset(ad_sbx_proto *p)
{
    p->state = 0;
    p->err = AD_OK;
    p->hlen = 0;
    p->need = 0;
    p->type = 0;
    ad_buf_reset(&p->payload);
}

void ad_sbx_proto_free(ad_sbx_proto *p)
{
    ad_buf_free(&p->payload);
}

static ad_err fail(ad_sbx_proto *p, ad_err e)
{
    p->state = 2;
    p->err = e;
    return e;
}

/* Validates the header in p->head[0..hlen) (without the newline). */
static ad_err parse_head(ad_sbx_proto *p)
{
    const char *h = p->head;
    size_t n = p->hlen;
    if (n < 3 || h[0] < 'A' || h[0] > 'Z' || h[1] != ' ')
        return AD_EINVAL;
    size_t digits = n - 2;
    if (digits > 10 || (digits > 1 && h[2] == '0'))
        return AD_EINVAL;
    uint64_t v = 0;
    for (size_t i = 2; i < n; i++) {
        if (h[i] < '0' || h[i] > '9')
            return AD_EINVAL;
        v = v * 10 + (uint64_t)(h[i] - '0');
    }
    if (v > p->payload.max)
        return AD_ETOOBIG;
    p->type = h[0];
    p->need = (size_t)v;
    ad_buf_reset(&p->payload);
    return AD_OK;
}

static ad_err emit(ad_sbx_proto *p, ad_sbx_frame_fn fn, void *ctx)
{
    ad_err rc = fn ? fn(ctx, p->type, p->payload.len ? p->payload.ptr : "", p->payload.len) : AD_OK;
    p->state = 0;
    p->hlen = 0;
    ad_buf_reset(&p->payload);
    return rc;
}

ad_err ad_sbx_proto_feed(ad_sbx_proto *p, const char *data, size_t n, ad_sbx_frame_fn fn, void *ctx)
{
    size_t i = 0;
    if (p->state == 2)
        return p->err;
    while (i < n) {
        if (p->state == 0) {
            char c = data[i++];
            if (c != '\n') {
                if (p->hlen >= 12)
                    return fail(p, AD_EINVAL);
                p->head[p->hlen++] = c;
                continue;
            }
            ad_err rc = parse_head(p);
            if (rc)
                return fail(p, rc);
            if (p->need == 0) {
                rc = emit(p, fn, ctx);
                if (rc)
                    return fail(p, rc);
            } else {
                p->state = 1;
            }
        } else {
            size_t take = n - i < p->need ? n - i : p->need;
            ad_err rc = ad_buf_add(&p->payload, data + i, take);
            if (rc)
                return fail(p, rc);
            i += take;
            p->need -= take;
            if (p->need == 0) {
                rc = emit(p, fn, ctx);
                if (rc)
                    return fail(p, rc);
            }
        }
    }
    return AD_OK;
}

ad_err ad_sbx_frame_append(ad_buf *out, char type, const char *payload, size_t n)
{
    ad_err rc = ad_buf_printf(out, "%c %zu\n", type, n);
    if (!rc && n)
        rc = ad_buf_add(out, payload, n);
    return rc;
}

/* ---- output collector ---- */

void ad_sbx_out_init(ad_sbx_out *o, size_t head_max, size_t tail_max)
{
    memset(o, 0, sizeof *o);
    o->head_max = head_max;
    o->tail_max = tail_max;
    o->head = ad_malloc(head_max ? head_max : 1);
    o->tail = ad_malloc(tail_max ? tail_max : 1);
}

void ad_sbx_out_add(ad_sbx_out *o, const char *p, size_t n)
{
    size_t h = o->head_max - o->head_len;
    if (h > n)
        h = n;
    memcpy(o->head + o->head_len, p, h);
    o->head_len += h;
    p += h;
    n -= h;
    if (!n)
        return;
    if (o->tail_max == 0) {
        o->dropped += n;
        return;
    }
    if (n >= o->tail_max) { /* everything in the ring is pushed out */
        o->dropped += o->tail_len + (n - o->tail_max);
        memcpy(o->tail, p + (n - o->tail_max), o->tail_max);
        o->tail_len = o->tail_max;
        o->tail_pos = 0;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (o->tail_len == o->tail_max)
            o->dropped++;
        else
            o->tail_len++;
        o->tail[o->tail_pos] = p[i];
        o->tail_pos = (o->tail_pos + 1) % o->tail_max;
    }
}

/* Appends s[0..n) to b with invalid UTF-8 and NUL replaced by U+FFFD. */
static void add_utf8(ad_buf *b, const char *s, size_t n)
{
    static const char repl[] = "\xEF\xBF\xBD";
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = 0;
        if (c >= 0x01 && c < 0x80)
            len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4;
        if (len && i + len <= n && ad_utf8_valid(s + i, len)) {
            (void)ad_buf_add(b, s + i, len);
            i += len;
        } else {
            (void)ad_buf_add(b, repl, 3);
            i++;
        }
    }
}

void ad_sbx_out_finish(ad_sbx_out *o, char **text, size_t *len)
{
    ad_buf b;
    /* Worst case every byte becomes 3, plus the marker. */
    size_t max = 3 * (o->head_len + o->tail_len) + 128;
    ad_buf_init(&b, max);
    add_utf8(&b, o->head, o->head_len);
    if (o->dropped)
        (void)ad_buf_printf(&b, "\n[... %llu bytes truncated ...]\n",
                            (unsigned long long)o->dropped);
    if (o->tail_len) {
        char *lin = ad_malloc(o->tail_len);
        size_t start = o->tail_len == o->tail_max ? o->tail_pos : 0;
        for (size_t i = 0; i < o->tail_len; i++)
            lin[i] = o->tail[(start + i) % o->tail_max];
        add_utf8(&b, lin, o->tail_len);
        ad_free(lin);
    }
    *len = b.len;
    *text = b.ptr ? ad_buf_steal(&b) : ad_strdup("");
    ad_buf_free(&b);
}

void ad_sbx_out_free(ad_sbx_out *o)
{
    ad_free(o->head);
    ad_free(o->tail);
    o->head = o->tail = NULL;
}
