/*
 * backends.h -- which upstream serves which model.
 *
 * Assistants and runs name a model ("gpt-4o", or an Azure deployment name).
 * A backend is an OpenAI-compatible chat-completions endpoint; the model
 * table maps each model id that assistd accepts to a backend and the name to
 * send upstream. Two kinds of backend exist:
 *   openai -- POST {base_url}/chat/completions, Authorization: Bearer KEY
 *             (OpenAI, vLLM, llama.cpp server, Ollama, LiteLLM, ...)
 *   azure  -- POST {base_url}/openai/deployments/{deployment}/chat/completions
 *             ?api-version=V, api-key: KEY
 * Keys are never written in the configuration: a backend names the
 * environment variable that holds its key (api_key_env), read at start-up.
 *
 * Configuration file (ASSISTD_CONFIG), JSON:
 *   {"backends": [{"name": "local", "kind": "openai",
 *                  "base_url": "http://127.0.0.1:11434/v1",
 *                  "api_key_env": "OLLAMA_KEY"},            (optional)
 *                 {"name": "az", "kind": "azure",
 *                  "base_url": "https://res.openai.azure.com",
 *                  "api_key_env": "AZURE_OPENAI_API_KEY",
 *                  "api_version": "2024-10-21"}],
 *    "models": [{"id": "gpt-4o", "backend": "local", "upstream_model": "llama3.1"},
 *               {"id": "prod-gpt4o", "backend": "az", "deployment": "gpt4o"}]}
 * Optional per backend: "timeout_connect_ms" (default 10000),
 * "timeout_idle_ms" (default 120000: no byte for this long fails the call),
 * "max_retries" (default 3: 429 and 5xx, before any token, with back-off).
 * Optional per model: "context_window" (tokens; default from the name for
 * OpenAI models, e.g. gpt-4o 128000, gpt-4 8192; otherwise 128000),
 * "tokenizer" ("o200k_base" | "cl100k_base"; default from the name).
 *
 * Without a file (zero configuration) there is one openai backend from
 * OPENAI_BASE_URL (default https://api.openai.com/v1) and OPENAI_API_KEY,
 * and every model name passes through unchanged (ad_backends_passthrough).
 *
 * Ownership: ad_backends_load returns a table owned by the caller
 * (ad_backends_free); the structs it hands out live as long as the table.
 */
#ifndef AD_BACKENDS_H
#define AD_BACKENDS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

typedef enum { AD_BACKEND_OPENAI, AD_BACKEND_AZURE } ad_backend_kind;

typedef struct ad_backend {
    char name[64];
    ad_backend_kind kind;
    char base_url[512]; /* without a trailing slash */
    char api_key[1024]; /* from the environment; "" when none */
    char api_version[64];
    long timeout_connect_ms;
    long timeout_idle_ms;
    int max_retries;
} ad_backend;

typedef struct ad_model {
    char id[128]; /* what assistants name */
    const ad_backend *backend;
    char upstream_model[128]; /* openai kind: "model" sent upstream */
    char deployment[128];     /* azure kind: the deployment in the URL */
    int64_t context_window;
    char tokenizer[32];
} ad_model;

/* Embeddings for file_search (optional): top-level "embeddings":
 * {"backend": NAME, "model": "text-embedding-3-small", "dimensions": N
 * (optional, 1..8192), "batch_size": N (optional, 1..2048, default 64)} in
 * the file, or in zero configuration the environment variable
 * ASSISTD_EMBEDDINGS_MODEL (the OPENAI_BASE_URL backend). For an azure
 * backend, model is the deployment name. */
typedef struct ad_embeddings_cfg {
    const ad_backend *backend;
    char model[128];
    int dimensions; /* 0: the model's default */
    int batch_size;
} ad_embeddings_cfg;

typedef struct ad_backends ad_backends;

/* path may be NULL or "" for zero configuration. Problems are printed to err. */
ad_err ad_backends_load(const char *path, FILE *err, ad_backends **out);
void ad_backends_free(ad_backends *b);
/* True in zero configuration: any model name is accepted. */
bool ad_backends_passthrough(const ad_backends *b);
/* Looks a model up. In pass-through mode a model struct for that name is
 * filled into *scratch and returned; otherwise NULL when unknown. */
const ad_model *ad_backends_model(const ad_backends *b, const char *id, ad_model *scratch);
/* The configured models in file order (none in pass-through mode). */
size_t ad_backends_count(const ad_backends *b);
const ad_model *ad_backends_at(const ad_backends *b, size_t i);
/* The embeddings configuration, or NULL when none is configured. */
const ad_embeddings_cfg *ad_backends_embeddings(const ad_backends *b);

#endif
