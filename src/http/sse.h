/*
 * sse.h -- a Server-Sent Events response fed from another thread.
 *
 * The run engine produces events on its own thread; the HTTP front sends
 * them on a libmicrohttpd worker. An ad_sse sits between the two: the
 * producer appends complete frames ("event: NAME\ndata: JSON\n\n") to a
 * buffer under a mutex; libmicrohttpd pulls bytes through a content-reader
 * callback. When the buffer is empty the callback suspends the connection
 * (so no thread waits and the event loop stays free) and the next append
 * resumes it. Nothing is polled and nothing is read from the database.
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

#define AD_SSE_HIGH_WATER (256 * 1024)
#define AD_SSE_LOW_WATER  (64 * 1024)
#define AD_SSE_HARD_CAP   (8 * 1024 * 1024)

/* drain(ud) is called from a libmicrohttpd thread when the buffer falls
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
/* True while a client is still attached. */
bool ad_sse_attached(ad_sse *s);
/* Ends the stream with "event: done / data: [DONE]" after what is buffered. */
void ad_sse_close(ad_sse *s);
void ad_sse_ref(ad_sse *s);
void ad_sse_unref(ad_sse *s);

#endif
