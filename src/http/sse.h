/*
 * sse.h -- a Server-Sent Events response fed from another thread.
 *
 * The run engine produces events on its own thread. An ad_sse sits between
 * it and the client's connection: the response starts as a libmicrohttpd
 * content reader over a queue; the first time the queue is empty the
 * connection is suspended and, with the hub on (srv->sse_hub), the producer
 * from then on writes each complete frame ("event: NAME\ndata: JSON\n\n")
 * straight to the socket as an HTTP chunk, under the stream's mutex. What a
 * socket does not take is queued and flushed by the hub's thread (epoll,
 * EPOLLOUT only while bytes are queued). At the end the connection is
 * resumed once and libmicrohttpd finishes the response (sse.c explains why:
 * a libmicrohttpd resume costs O(suspended connections)). Without the hub
 * every append resumes the suspended connection instead. Nothing is polled
 * and nothing is read from the database.
 *
 * Back-pressure: ad_sse_send reports how many bytes are waiting; the
 * producer pauses its source (the upstream model call) above a high-water
 * mark and asks to be told, through the drain callback, when the client
 * has taken the buffer below the low-water mark. The buffer also has a hard
 * cap: a client that stops reading altogether is cut off rather than
 * allowed to grow memory without bound.
 *
 * Ownership: reference counted. ad_sse_new returns one reference, for the
 * producer; ad_sse_respond gives libmicrohttpd a second one, released when
 * the response is destroyed (the client has gone or the stream ended). A
 * producer that is done calls ad_sse_close (ends the stream after what is
 * buffered) and ad_sse_unref. Appends after the client has gone are
 * dropped silently: a disconnecting client never stops the run.
 */
#ifndef AD_SSE_H
#define AD_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

struct MHD_Response;
#include "util/err.h"

typedef struct ad_sse ad_sse;
/* The flusher thread of direct-mode streams. Started and stopped by the
 * HTTP front (ad_http_start / ad_http_stop, after libmicrohttpd stopped);
 * it owns nothing but references to the streams it is flushing. */
typedef struct ad_sse_hub ad_sse_hub;

#define AD_SSE_HIGH_WATER (256 * 1024)
#define AD_SSE_LOW_WATER  (64 * 1024)
#define AD_SSE_HARD_CAP   (8 * 1024 * 1024)

/* drain(ud) is called from a libmicrohttpd or hub thread when the buffer falls
 * below the low-water mark after ad_sse_send reported high water; it must
 * only post work to the producer's thread. May be NULL. */
ad_sse *ad_sse_new(void (*drain)(void *ud), void *ud);
/* Makes req's response this stream (status 200, text/event-stream). */
void ad_sse_respond(ad_req *req, ad_sse *s);
/* The libmicrohttpd response that streams s (for the HTTP front). */
struct MHD_Response *ad_sse_response(ad_sse *s);
/* Appends one event. json is the bare data object (compact, one line).
 * Returns the bytes now waiting, or 0 once the client is gone. */
size_t ad_sse_send(ad_sse *s, const char *event, const char *json, size_t len);
/* Appends a heartbeat comment line if nothing was sent for idle_ms. */
void ad_sse_heartbeat(ad_sse *s, long idle_ms);
/* Bytes waiting to be sent. */
size_t ad_sse_waiting(ad_sse *s);
/* True once the producer writes the socket itself (direct mode). */
bool ad_sse_direct(ad_sse *s);
/* True while a client is still attached. */
bool ad_sse_attached(ad_sse *s);
/* Ends the stream with "event: done / data: [DONE]" after what is buffered. */
void ad_sse_close(ad_sse *s);
void ad_sse_ref(ad_sse *s);
/* Starts the hub thread; *out is freed by ad_sse_hub_stop. offload: the
 * hub writes every event (producers only queue it) instead of producers
 * writing and the hub taking only what a socket did not. */
ad_err ad_sse_hub_start(ad_sse_hub **out, bool offload);
/* Hands every direct-mode stream back to libmicrohttpd (one with unsent
 * bytes or not yet closed is cut off) and keeps new ones from switching.
 * Call before MHD_stop_daemon, which refuses suspended connections. */
void ad_sse_hub_quiesce(ad_sse_hub *h);
/* Joins the hub thread and drops its references. Call after every response
 * is destroyed (MHD_stop_daemon); NULL is a no-op. */
void ad_sse_hub_stop(ad_sse_hub *h);
void ad_sse_unref(ad_sse *s);

#endif
