/*
 * http.h -- the HTTP front: libmicrohttpd with an internal epoll thread
 * pool (no thread per connection), suspend/resume enabled for long-lived
 * streaming responses.
 */
#ifndef AD_HTTP_H
#define AD_HTTP_H

#include "core/server.h"
#include "util/err.h"

/* Binds cfg.listen and starts serving; srv->port gets the bound port. */
ad_err ad_http_start(ad_server *srv);
/* Stops accepting, closes connections and joins the threads. */
void ad_http_stop(ad_server *srv);

#endif
