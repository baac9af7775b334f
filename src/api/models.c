/*
 * models.c -- GET /models and /models/{id}: the model ids assistants may
 * name, from configuration (ASSISTD_MODELS). An empty list means any model
 * name is accepted and passed through to the model backend.
 */
#include "api/api.h"

#include <string.h>

#include "http/metrics.h"
#include "run/backends.h"

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

void ad_h_models_list(ad_req *req)
{
    json_t *data = json_array();
    for (size_t i = 0; i < model_count(req->srv); i++)
        json_array_append_new(data, model_obj(model_at(req->srv, i)));
    ad_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void ad_h_models_get(ad_req *req)
{
    const char *id = req->params[0];
    for (size_t i = 0; i < model_count(req->srv); i++)
        if (!strcmp(model_at(req->srv, i), id)) {
            ad_reply_json(req, 200, model_obj(id));
            return;
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
    req->status = 200;
    req->ctype = "text/plain; version=0.0.4";
    req->responded = true;
}
