/*
 * metrics.c -- see metrics.h. Status codes are bucketed into a fixed array
 * (100..599), so recording never allocates or locks.
 */
#include "http/metrics.h"

#include <stdatomic.h>
#include <stdint.h>

#include "util/alloc.h"

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define NB      (sizeof bounds / sizeof bounds[0])
#define NSTATUS 500 /* 100..599 */

typedef struct route_m {
    atomic_ullong status[NSTATUS];
    atomic_ullong bucket[NB + 1]; /* last: +Inf */
    atomic_ullong sum_us;
} route_m;

struct ad_metrics {
    size_t n;
    const char *const *names;
    route_m *r; /* n + 1 */
    atomic_llong open_conns;
    atomic_ullong conns_total;
};

ad_metrics *ad_metrics_new(size_t nroutes, const char *const *names)
{
    ad_metrics *m = ad_calloc(1, sizeof *m);
    m->n = nroutes;
    m->names = names;
    m->r = ad_calloc(nroutes + 1, sizeof *m->r);
    return m;
}

void ad_metrics_free(ad_metrics *m)
{
    if (!m)
        return;
    ad_free(m->r);
    ad_free(m);
}

void ad_metrics_request(ad_metrics *m, size_t route, int status, double seconds)
{
    if (route > m->n)
        route = m->n;
    route_m *r = &m->r[route];
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&r->status[status - 100], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NB && seconds > bounds[b])
        b++;
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (unsigned long long)(seconds * 1e6),
                              memory_order_relaxed);
}

void ad_metrics_conn(ad_metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->open_conns, delta, memory_order_relaxed);
    if (delta > 0)
        atomic_fetch_add_explicit(&m->conns_total, 1, memory_order_relaxed);
}

static const char *name_of(const ad_metrics *m, size_t i)
{
    return i < m->n ? m->names[i] : "unmatched";
}

ad_err ad_metrics_render(ad_metrics *m, ad_buf *out)
{
    ad_err rc = AD_OK;
    rc |= ad_buf_addstr(out, "# HELP assistd_http_requests_total HTTP requests by route and "
                             "status.\n# TYPE assistd_http_requests_total counter\n");
    for (size_t i = 0; i <= m->n; i++)
        for (int s = 0; s < NSTATUS; s++) {
            unsigned long long v = atomic_load_explicit(&m->r[i].status[s], memory_order_relaxed);
            if (v)
                rc |= ad_buf_printf(
                    out, "assistd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    name_of(m, i), s + 100, v);
        }
    rc |= ad_buf_addstr(out, "# HELP assistd_http_request_duration_seconds Request latency by "
                             "route.\n# TYPE assistd_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= m->n; i++) {
        unsigned long long cum = 0;
        unsigned long long counts[NB + 1];
        for (size_t b = 0; b <= NB; b++) {
            counts[b] = atomic_load_explicit(&m->r[i].bucket[b], memory_order_relaxed);
            cum += counts[b];
        }
        if (!cum)
            continue;
        cum = 0;
        for (size_t b = 0; b < NB; b++) {
            cum += counts[b];
            rc |= ad_buf_printf(out,
                                "assistd_http_request_duration_seconds_bucket{route=\"%s\","
                                "le=\"%g\"} %llu\n",
                                name_of(m, i), bounds[b], cum);
        }
        cum += counts[NB];
        rc |= ad_buf_printf(
            out,
            "assistd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
            "assistd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
            "assistd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
            name_of(m, i), cum, name_of(m, i),
            (double)atomic_load_explicit(&m->r[i].sum_us, memory_order_relaxed) / 1e6,
            name_of(m, i), cum);
    }
    rc |= ad_buf_printf(out,
                        "# HELP assistd_open_connections Client connections open now.\n"
                        "# TYPE assistd_open_connections gauge\nassistd_open_connections %lld\n"
                        "# HELP assistd_connections_total Client connections accepted.\n"
                        "# TYPE assistd_connections_total counter\nassistd_connections_total "
                        "%llu\n",
                        (long long)atomic_load(&m->open_conns),
                        (unsigned long long)atomic_load(&m->conns_total));
    return rc ? AD_ETOOBIG : AD_OK;
}
