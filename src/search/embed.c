/*
 * embed.c -- the embeddings client (see embed.h).
 *
 * Design: one blocking libcurl easy handle per batch request, on the calling
 * (worker) thread: ingestion and searches are already off the event loops,
 * and a batch is a single small request/response, so the multi machinery of
 * run/upstream.c would buy nothing here. The request body is built with
 * jansson; the answer is read into a bounded buffer and parsed strictly:
 * "data" must hold one embedding per input, each with its "index", all of
 * the same length. Retries follow upstream.c's policy in a simpler form:
 * 429, 5xx and connection failures, back-off 500 ms doubling, at most the
 * backend's max_retries. Messages never carry the key or the host.
 *
 * Cancellation (embed.h): libcurl calls the transfer-progress callback
 * below at least once a second, also while it waits for a connection or an
 * answer, and aborts the transfer when it returns non-zero; back-off sleeps
 * are cut into 50 ms slices that look at the flag.
 */
#include "search/embed.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "search/search.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json.h"

#define RESP_MAX       (256u * 1024 * 1024)
#define TOTAL_TIMEOUT  120000L /* ms, one batch */
#define BACKOFF_MS     500
#define BACKOFF_MAX_MS 8000

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    ad_buf *b = ud;
    size_t n = size * nmemb;
    return ad_buf_add(b, p, n) ? 0 : n;
}

#define SLICE_MS 50

static bool cancelled(const atomic_bool *cancel)
{
    return cancel && atomic_load(cancel);
}

/* False when cancelled before ms had passed. */
static bool sleep_ms(long ms, const atomic_bool *cancel)
{
    while (ms > 0) {
        if (cancelled(cancel))
            return false;
        long slice = ms < SLICE_MS ? ms : SLICE_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return !cancelled(cancel);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return cancelled(ud) ? 1 : 0;
}

/* The upstream's error.message when it sent one, else a generic text. */
static void upstream_message(const ad_buf *resp, long status, char *msg, size_t msgsize)
{
    json_t *v = json_loadb(resp->ptr ? resp->ptr : "", resp->len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(v, "error"), "message"));
    if (m)
        snprintf(msg, msgsize, "The embeddings backend answered %ld: %.300s", status, m);
    else
        snprintf(msg, msgsize, "The embeddings backend answered %ld.", status);
    json_decref(v);
}

/* Parses an embeddings answer for n inputs into vecs (allocated on the
 * first batch, when *dims becomes known) at rows [first, first + n). */
static ad_err parse_answer(const ad_buf *resp, size_t n, size_t first, size_t total, float **vecs,
                           size_t *dims, char *msg, size_t msgsize)
{
    json_t *v = json_loadb(resp->ptr ? resp->ptr : "", resp->len, 0, NULL);
    json_t *data = json_object_get(v, "data");
    ad_err rc = AD_EIO;
    if (!json_is_array(data) || json_array_size(data) != n) {
        snprintf(msg, msgsize, "The embeddings backend sent a malformed answer.");
        goto out;
    }
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item)
    {
        json_t *emb = json_object_get(item, "embedding");
        json_t *idx = json_object_get(item, "index");
        size_t at = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
        size_t d = json_array_size(emb);
        if (!json_is_array(emb) || d == 0 || at >= n || (*dims && d != *dims)) {
            snprintf(msg, msgsize, "The embeddings backend sent a malformed answer.");
            goto out;
        }
        if (!*vecs) {
            *dims = d;
            *vecs = ad_calloc(total * d, sizeof **vecs);
        }
        float *row = *vecs + (first + at) * d;
        for (size_t k = 0; k < d; k++) {
            json_t *x = json_array_get(emb, k);
            if (!json_is_number(x)) {
                snprintf(msg, msgsize, "The embeddings backend sent a malformed answer.");
                goto out;
            }
            row[k] = (float)json_number_value(x);
        }
        ad_vec_normalize(row, d);
    }
    rc = AD_OK;
out:
    json_decref(v);
    return rc;
}

/* One POST; *status gets the HTTP status (0: no answer). AD_ECANCELED when
 * *cancel stopped it. */
static ad_err post(const ad_embeddings_cfg *cfg, const atomic_bool *cancel, const char *body,
                   ad_buf *resp, long *status)
{
    const ad_backend *be = cfg->backend;
    char url[1024], auth[1200];
    if (be->kind == AD_BACKEND_AZURE) {
        snprintf(url, sizeof url, "%s/openai/deployments/%s/embeddings?api-version=%s",
                 be->base_url, cfg->model, be->api_version);
        snprintf(auth, sizeof auth, "api-key: %s", be->api_key);
    } else {
        snprintf(url, sizeof url, "%s/embeddings", be->base_url);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", be->api_key);
    }
    CURL *h = curl_easy_init();
    if (!h)
        return AD_EINTERNAL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (be->api_key[0])
        hdrs = curl_slist_append(hdrs, auth);
    explicit_bzero(auth, sizeof auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, be->timeout_connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cancel) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    *status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs); /* the key's copy inside is libcurl's */
    curl_easy_cleanup(h);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return AD_ECANCELED;
    return cc == CURLE_OK ? AD_OK : AD_EIO;
}

static ad_err embed_batch(const ad_embeddings_cfg *cfg, const atomic_bool *cancel,
                          const char *const *texts, const size_t *lens, size_t n, size_t first,
                          size_t total, float **vecs, size_t *dims, char *msg, size_t msgsize)
{
    json_t *input = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_stringn_nocheck(texts[i], lens[i]);
        json_array_append_new(input, s ? s : json_string(""));
    }
    json_t *req = json_pack("{s:s, s:o, s:s}", "model", cfg->model, "input", input,
                            "encoding_format", "float");
    if (cfg->dimensions > 0)
        json_object_set_new(req, "dimensions", json_integer(cfg->dimensions));
    char *body = json_dumps(req, AD_JSON_COMPACT);
    json_decref(req);
    if (!body) {
        snprintf(msg, msgsize, "The text could not be sent for embedding.");
        return AD_EINTERNAL;
    }
    ad_buf resp;
    ad_buf_init(&resp, RESP_MAX);
    ad_err rc = AD_EIO;
    long delay = BACKOFF_MS;
    for (int attempt = 0;; attempt++) {
        long status = 0;
        ad_buf_reset(&resp);
        ad_err prc = post(cfg, cancel, body, &resp, &status);
        if (prc == AD_ECANCELED) {
            rc = AD_ECANCELED;
            break;
        }
        if (!prc && status == 200) {
            rc = parse_answer(&resp, n, first, total, vecs, dims, msg, msgsize);
            break;
        }
        bool retry = prc || status == 429 || status >= 500;
        if (prc)
            snprintf(msg, msgsize, "The embeddings backend could not be reached.");
        else
            upstream_message(&resp, status, msg, msgsize);
        if (!retry || attempt >= cfg->backend->max_retries)
            break;
        if (!sleep_ms(delay, cancel)) {
            rc = AD_ECANCELED;
            break;
        }
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
    if (rc == AD_ECANCELED)
        snprintf(msg, msgsize, "The server is shutting down.");
    ad_buf_free(&resp);
    free(body);
    return rc;
}

ad_err ad_embed(const ad_embeddings_cfg *cfg, const atomic_bool *cancel, const char *const *texts,
                const size_t *lens, size_t n, float **vecs, size_t *dims, char *msg, size_t msgsize)
{
    *vecs = NULL;
    *dims = 0;
    size_t batch = cfg->batch_size > 0 ? (size_t)cfg->batch_size : 64;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        ad_err rc =
            embed_batch(cfg, cancel, texts + i, lens + i, k, i, n, vecs, dims, msg, msgsize);
        if (rc) {
            ad_free(*vecs);
            *vecs = NULL;
            *dims = 0;
            return rc;
        }
    }
    return AD_OK;
}
