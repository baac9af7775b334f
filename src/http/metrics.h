/*
 * metrics.h -- Prometheus counters kept with lock-free atomics.
 *
 * Requests are counted by route (the route table's metric name, so the label
 * set is small and fixed) and status, with a latency histogram per route and
 * a gauge of open connections. Recording is a few relaxed atomic adds on the
 * request's completion path; GET /metrics renders the text format.
 *
 * Ownership: ad_metrics_new returns an object owned by the caller
 * (ad_metrics_free).
 */
#ifndef AD_METRICS_H
#define AD_METRICS_H

#include <stddef.h>

#include "util/buf.h"

typedef struct ad_metrics ad_metrics;

/* nroutes routes named names[0..nroutes); index nroutes is "unmatched". */
ad_metrics *ad_metrics_new(size_t nroutes, const char *const *names);
void ad_metrics_free(ad_metrics *m);
void ad_metrics_request(ad_metrics *m, size_t route, int status, double seconds);
void ad_metrics_conn(ad_metrics *m, int delta);
ad_err ad_metrics_render(ad_metrics *m, ad_buf *out);

#endif
