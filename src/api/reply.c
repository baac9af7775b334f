/*
 * reply.c -- response helpers (see reply.h). Handlers never touch
 * libmicrohttpd: they fill req->status/out/ctype and the front sends it.
 */
#include "api/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/json.h"
#include "util/log.h"
#include "util/str.h"

static void set_body(ad_req *req, int status, const char *data, size_t len, const char *ctype)
{
    ad_buf_reset(&req->out);
    if (ad_buf_add(&req->out, data, len)) {
        /* The body cannot exceed the response bound: answer 500 instead. */
        ad_buf_reset(&req->out);
        ad_buf_addstr(&req->out, "{\"error\":{\"message\":\"The response was too large.\","
                                 "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        status = 500;
        ctype = "application/json";
    }
    if (req->out_fd >= 0) {
        close(req->out_fd);
        req->out_fd = -1;
    }
    req->status = status;
    req->ctype = ctype;
    req->responded = true;
}

void ad_reply_raw(ad_req *req, int status, const char *json, size_t len)
{
    set_body(req, status, json, len, "application/json");
}

void ad_reply_json(ad_req *req, int status, json_t *v)
{
    char *s = json_dumps(v, AD_JSON_COMPACT);
    json_decref(v);
    if (!s) {
        ad_reply_internal(req, AD_EINTERNAL);
        return;
    }
    set_body(req, status, s, strlen(s), "application/json");
    free(s);
}

void ad_reply_fd(ad_req *req, int fd, uint64_t size, const char *content_type)
{
    ad_buf_reset(&req->out);
    if (req->out_fd >= 0)
        close(req->out_fd);
    req->out_fd = fd;
    req->out_size = size;
    req->status = 200;
    req->ctype = content_type;
    req->responded = true;
}

static void verror(ad_req *req, int status, const char *type, const char *param, const char *code,
                   const char *fmt, va_list ap)
{
    char msg[2048];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    msg[len] = '\0';
    /* A URL or a value echoed back may hold bytes that are not UTF-8, or the
     * cut above may split a character; JSON cannot carry either, and
     * json_string would fail and drop the message. */
    if (!ad_utf8_valid(msg, len))
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)msg[i] >= 0x80)
                msg[i] = '?';
    json_t *e = json_object();
    json_object_set_new(e, "message", json_string(msg));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *body = json_object();
    json_object_set_new(body, "error", e);
    ad_reply_json(req, status, body);
}

void ad_reply_error(ad_req *req, int status, const char *type, const char *param, const char *code,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(req, status, type, param, code, fmt, ap);
    va_end(ap);
}

void ad_reply_verr(ad_req *req, const ad_verr *err)
{
    ad_reply_error(req, 400, "invalid_request_error", err->param, err->code, "%s", err->message);
}

void ad_reply_not_found(ad_req *req, const char *what, const char *id)
{
    ad_reply_error(req, 404, "invalid_request_error", NULL, NULL, "No %s found with id '%s'.", what,
                   id);
}

void ad_reply_internal(ad_req *req, ad_err rc)
{
    ad_log(&req->srv->log, AD_LOG_ERROR, "request %s failed: %s", req->id, ad_strerror(rc));
    ad_reply_error(req, 500, "server_error", NULL, NULL,
                   "The server had an error while processing your request. Sorry about that! "
                   "You can retry your request, or contact us if the error persists. (Please "
                   "include the request ID %s in your message.)",
                   req->id);
}
