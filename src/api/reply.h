/*
 * reply.h -- how handlers answer: JSON bodies, stored JSON passed through,
 * files, and OpenAI-shaped errors.
 *
 * Every error leaves as {"error":{"message","type","param","code"}} with all
 * four keys present (null when empty), Content-Type application/json and the
 * status OpenAI used. Statuses 408 and 409 are never produced: the SDKs
 * retry them.
 */
#ifndef AD_REPLY_H
#define AD_REPLY_H

#include <jansson.h>

#include "api/validate.h"
#include "http/request.h"

/* Serialises v (compact) as the response; steals the reference. */
void ad_reply_json(ad_req *req, int status, json_t *v);
/* Sends JSON text that is already serialised (a stored object). */
void ad_reply_raw(ad_req *req, int status, const char *json, size_t len);
/* Sends an open file; the front closes fd. */
void ad_reply_fd(ad_req *req, int fd, uint64_t size, const char *content_type);
/* An error body. param and code may be NULL (rendered as null). */
void ad_reply_error(ad_req *req, int status, const char *type, const char *param, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* 400 invalid_request_error from a validation failure. */
void ad_reply_verr(ad_req *req, const ad_verr *err);
/* 404 "No <what> found with id '<id>'." */
void ad_reply_not_found(ad_req *req, const char *what, const char *id);
/* 500 server_error for an internal failure (logged with the request id). */
void ad_reply_internal(ad_req *req, ad_err rc);

#endif
