/*
 * models.c -- GET /models and /models/{id}: the model ids assistants may
 * name. With a backends file they are the file's models; otherwise
 * ASSISTD_MODELS lists them; and in zero configuration (neither) every name
 * is passed through to the one upstream and the list shown is the upstream's
 * own. That list comes from a cache that a background thread refreshes
 * (every five minutes, abortable at shutdown), so a request never waits on
 * the upstream -- nothing blocks a worker's event loop.
 */
#include "api/api.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "http/metrics.h"
#include "run/backends.h"
#include "run/engine.h"
#include "run/upstream.h"
#include "sandbox/sandbox.h"
#include "util/alloc.h"

/* With a backends file the models are the file's; otherwise ASSISTD_MODELS
 * lists them, and an empty list accepts any name (passed through). */
bool ad_model_known(const ad_server *srv, const char *model)
{
    if (srv->backends && !ad_backends_passthrough(srv->backends)) {
        ad_model scratch;
        return ad_backends_model(srv->backends, model, &scratch) != NULL;
    }
    if (srv->nmodels == 0)
        return true;
    for (size_t i = 0; i < srv->nmodels; i++)
        if (!strcmp(srv->models[i], model))
            return true;
    return false;
}

static json_t *model_obj(const char *id)
{
    /* created is fixed: the build of the configuration, not a real date. */
    return json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model", "created", 1700000000,
                     "owned_by", "assistd");
}

static size_t model_count(const ad_server *srv)
{
    if (srv->backends && !ad_backends_passthrough(srv->backends))
        return ad_backends_count(srv->backends);
    return srv->nmodels;
}

static const char *model_at(const ad_server *srv, size_t i)
{
    if (srv->backends && !ad_backends_passthrough(srv->backends))
        return ad_backends_at(srv->backends, i)->id;
    return srv->models[i];
}

#define REFRESH_SECONDS 300

struct ad_models_cache {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    json_t *list; /* the upstream's {"object":"list","data":[...]}, or NULL */
    ad_model model;
    const ad_model *m;
};

static bool passthrough_listing(const ad_server *srv)
{
    return srv->models_cache != NULL;
}

static void *refresher(void *ud)
{
    pthread_setname_np(pthread_self(), "ad-models");
    ad_models_cache *c = ud;
    while (!atomic_load(&c->stop)) {
        ad_buf b;
        ad_buf_init(&b, 1024 * 1024);
        if (ad_upstream_list_models(c->m->backend, &b, &c->stop) == AD_OK) {
            json_t *v = json_loadb(b.ptr, b.len, 0, NULL);
            if (json_is_array(json_object_get(v, "data"))) {
                pthread_mutex_lock(&c->mu);
                json_decref(c->list);
                c->list = v;
                v = NULL;
                pthread_mutex_unlock(&c->mu);
            }
            json_decref(v);
        }
        ad_buf_free(&b);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += REFRESH_SECONDS;
        pthread_mutex_lock(&c->mu);
        while (!atomic_load(&c->stop) && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
            ;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

ad_err ad_models_cache_start(ad_server *srv)
{
    if (!srv->backends || !ad_backends_passthrough(srv->backends) || srv->nmodels)
        return AD_OK;
    ad_models_cache *c = ad_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->stop, false);
    c->m = ad_backends_model(srv->backends, "models", &c->model);
    if (!c->m || pthread_create(&c->thread, NULL, refresher, c) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        ad_free(c);
        return AD_EINTERNAL;
    }
    srv->models_cache = c;
    return AD_OK;
}

void ad_models_cache_stop(ad_server *srv)
{
    ad_models_cache *c = srv->models_cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, true);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    json_decref(c->list);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    ad_free(c);
    srv->models_cache = NULL;
}

/* The cached upstream list (new reference; an empty list before the first
 * successful fetch). */
static json_t *cached_list(ad_server *srv)
{
    ad_models_cache *c = srv->models_cache;
    pthread_mutex_lock(&c->mu);
    json_t *v = c->list ? json_incref(c->list) : NULL;
    pthread_mutex_unlock(&c->mu);
    return v ? v : json_pack("{s:s,s:[]}", "object", "list", "data");
}

void ad_h_models_list(ad_req *req)
{
    if (passthrough_listing(req->srv)) {
        ad_reply_json(req, 200, cached_list(req->srv));
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < model_count(req->srv); i++)
        json_array_append_new(data, model_obj(model_at(req->srv, i)));
    ad_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void ad_h_models_get(ad_req *req)
{
    const char *id = req->params[0];
    if (passthrough_listing(req->srv)) {
        json_t *list = cached_list(req->srv);
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(list, "data"), i, m)
        {
            if (json_is_string(json_object_get(m, "id")) &&
                !strcmp(json_string_value(json_object_get(m, "id")), id)) {
                ad_reply_json(req, 200, json_incref(m));
                json_decref(list);
                return;
            }
        }
        json_decref(list);
    } else {
        for (size_t i = 0; i < model_count(req->srv); i++)
            if (!strcmp(model_at(req->srv, i), id)) {
                ad_reply_json(req, 200, model_obj(id));
                return;
            }
    }
    ad_reply_error(req, 404, "invalid_request_error", "model", "model_not_found",
                   "The model '%.128s' does not exist or you do not have access to it.", id);
}

void ad_h_health(ad_req *req)
{
    /* Healthy means the store answers. */
    int64_t n;
    ad_err rc = ad_db_count(ad_req_db(req), "", "", "", &n);
    if (rc && rc != AD_ENOTFOUND) {
        ad_reply_error(req, 503, "server_error", NULL, NULL, "The store is not available.");
        return;
    }
    ad_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void ad_h_metrics(ad_req *req)
{
    ad_buf_reset(&req->out);
    if (ad_metrics_render(req->srv->metrics, &req->out)) {
        ad_reply_internal(req, AD_ETOOBIG);
        return;
    }
    if (req->srv->store)
        ad_store_metrics(req->srv->store, &req->out);
    if (req->srv->engine)
        ad_engine_metrics(req->srv->engine, &req->out);
    if (req->srv->sandbox)
        ad_sandbox_metrics(req->srv->sandbox, &req->out);
    req->status = 200;
    req->ctype = "text/plain; version=0.0.4";
    req->responded = true;
}
