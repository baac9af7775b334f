/*
 * embed.h -- embeddings from an OpenAI-compatible /embeddings endpoint, for
 * dense retrieval in file_search.
 *
 * Configured in the backends file ("embeddings": {"backend", "model",
 * "dimensions"?, "batch_size"?}, see run/backends.h) or, in zero
 * configuration, by ASSISTD_EMBEDDINGS_MODEL (the OPENAI_BASE_URL backend).
 * openai backends get POST {base_url}/embeddings with Authorization: Bearer;
 * azure backends POST {base_url}/openai/deployments/{model}/embeddings
 * ?api-version=V with api-key. Inputs go in batches of batch_size; a batch
 * answered 429 or 5xx, or failing at the connection level, is retried with
 * exponential back-off (0.5 s, 1 s, 2 s ... up to the backend's max_retries).
 * Vectors are returned scaled to unit length, so cosine similarity is a dot
 * product.
 *
 * Blocking (a libcurl easy handle per batch): call it on a worker thread.
 * Cancellable: while *cancel (when not NULL) is true, a request in flight is
 * abandoned within about a second and a back-off within 50 ms, and the call
 * returns AD_ECANCELED. The server's `stopping` flag is what callers pass,
 * so that shutdown never waits for an embeddings backend that does not
 * answer.
 *
 * Ownership: *vecs is ad_malloc'd (n * *dims floats) and freed by the
 * caller with ad_free.
 */
#ifndef AD_EMBED_H
#define AD_EMBED_H

#include <stdatomic.h>
#include <stddef.h>

#include "run/backends.h"
#include "util/err.h"

/* Embeds texts[0..n) (lengths lens[i]). On failure msg gets a user-facing
 * reason (never the key or the upstream's host). */
ad_err ad_embed(const ad_embeddings_cfg *cfg, const atomic_bool *cancel, const char *const *texts,
                const size_t *lens, size_t n, float **vecs, size_t *dims, char *msg,
                size_t msgsize);

#endif
