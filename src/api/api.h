/*
 * api.h -- the handlers behind the route table (api/routes.c) and the
 * helpers they share (api/common.c).
 *
 * A handler runs once per request with the body already gathered. It checks
 * path parameters (ad_api_check_id), validates the body against its schema
 * (ad_api_body), talks to the store through ad_req_db(req), and answers with
 * one of the reply.h helpers. Objects are built with jansson and stored as
 * their serialised API JSON; reads return the stored text unchanged.
 */
#ifndef AD_API_H
#define AD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/reply.h"
#include "api/schemas.h"
#include "api/validate.h"
#include "http/request.h"

/* ---- shared helpers ---- */

/* Current time in unix seconds. */
int64_t ad_now(void);
/* Checks that path parameter i starts with prefix (e.g. "asst_"); otherwise
 * answers 400 "Invalid 'assistant_id': 'x'. Expected an ID that begins with
 * 'asst'." and returns false. */
bool ad_api_check_id(ad_req *req, int i, const char *param, const char *prefix);
/* Like ad_api_check_id for an id inside the body (e.g. assistant_id). */
bool ad_api_check_body_id(ad_req *req, const json_t *body, const char *key, const char *prefix);
/* Whether thread_id has an active run (queued, in progress, requires_action,
 * cancelling); its id goes to out. */
bool ad_api_active_run(ad_req *req, const char *thread_id, char out[64]);
/* Parses the JSON body (empty means {}) and validates it; on failure answers
 * 400 and returns NULL. The result is borrowed: the request owns it. */
json_t *ad_api_body(ad_req *req, const ad_vfield *schema);

/* Pagination query parameters: limit (1..max, default def), order
 * (asc|desc, default desc), after, before. Answers 400 and returns false on
 * bad values. */
bool ad_api_page_params(ad_req *req, ad_list_q *q, int64_t def, int64_t max, bool allow_before);
/* Runs q and answers with the list envelope. what names the objects in the
 * not-found message of a bad cursor. */
void ad_api_list(ad_req *req, ad_list_q *q);
/* Like ad_api_list, each stored row passing through map, which appends
 * what to show of it to out. */
typedef ad_err (*ad_api_row_map)(void *ud, const char *json, size_t len, ad_buf *out);
void ad_api_list_map(ad_req *req, ad_list_q *q, ad_api_row_map map, void *ud);

/* Stores a new object and answers with it (status 200). Steals obj. */
void ad_api_put_reply(ad_req *req, const ad_obj *o, json_t *obj);
/* Loads a live object as JSON (new reference) or answers 404/500 and
 * returns NULL. what/id are used in the 404 message. */
json_t *ad_api_load(ad_req *req, const char *kind, const char *id, const char *what);
/* Answers with the stored JSON of a live object, or 404 "No <what> found
 * with id '<id>'.". */
void ad_api_get_reply(ad_req *req, const char *kind, const char *id, const char *what);
/* Serialises obj and replaces the stored JSON (aux NULL: unchanged). */
ad_err ad_api_save(ad_req *req, const char *kind, const char *id, const char *aux,
                   const json_t *obj);
/* Answers {"id","object","deleted":true}. */
void ad_api_deleted(ad_req *req, const char *id, const char *object);
/* Replaces obj.metadata with the request's metadata ({} when null). */
void ad_api_set_metadata(json_t *obj, const json_t *body);
/* Applies the store result of a write: false (after answering) on error. */
bool ad_api_ok(ad_req *req, ad_err rc);
/* Whether the thread exists in the caller's project; answers 404 (or 500)
 * if not. Its JSON is read into a temporary buffer and not parsed. */
bool ad_api_thread_exists(ad_req *req, const char *thread_id);

/* Checks that every file id exists in the caller's project; answers 400
 * "Invalid 'param[i]': no file found with id 'x'." otherwise. */
bool ad_api_files_exist(ad_req *req, const json_t *ids, const char *param);

/* Normalises a request tool_resources into the object form; creates nothing.
 * Answers 400 and returns NULL when a referenced id does not exist. */
json_t *ad_api_tool_resources(ad_req *req, const json_t *tr, const char *param);

/* Builds a message from a validated CreateMessageRequest and stores it under
 * thread_id inside the caller's transaction (messages.c). param prefixes error
 * params ("" or "messages[2]"); *out (if not NULL) gets the object. Returns
 * false after answering an error. */
bool ad_api_message_put(ad_req *req, const char *thread_id, const json_t *body, int64_t created_at,
                        const char *param, json_t **out);
/* Creates a thread and its initial messages from a validated
 * CreateThreadRequest inside the caller's transaction (threads.c). New
 * reference, or NULL after answering an error. */
json_t *ad_api_thread_put(ad_req *req, const json_t *body);

/* ---- extras (common.c): what an object keeps that its API JSON has no field for ---- */

/* Today reasoning_effort: accepted on assistants and createRun and sent to
 * the model, while neither AssistantObject nor RunObject has a field for
 * it. A private "extras" row per object (id "extras:<object id>", parent
 * the object) holds {key: value}; reads of the object never show it. */

/* The object's extras (new reference), or NULL when it has none. */
json_t *ad_api_extras_get(ad_db *db, const char *project, const char *owner_id);
/* Sets one key of the object's extras (a copy of value), creating the row
 * when needed; in the caller's transaction, if any. */
ad_err ad_api_extras_set(ad_db *db, const char *project, const char *owner_id, const char *key,
                         const json_t *value);
/* Deletes the object's extras, if any. */
ad_err ad_api_extras_delete(ad_db *db, const char *project, const char *owner_id);
/* Takes one key out of the object's extras: *out gets its value (new
 * reference; NULL when absent or null) and the key is set to null. */
ad_err ad_api_extras_take(ad_db *db, const char *project, const char *owner_id, const char *key,
                          json_t **out);

/* Usage a run does not show yet, in its extras (OpenAI shows usage only
 * once it is final: a run's is null until the run ends, a step's while it
 * is in progress). "usage": the sum of the run's finished model calls that
 * its object does not show; "step_usage": {"step_id", counts} of the call
 * that made the tool_calls step waiting for outputs. The counts are
 * {prompt_tokens, completion_tokens, total_tokens}. */
#define AD_EXTRAS_USAGE      "usage"
#define AD_EXTRAS_STEP_USAGE "step_usage"
/* Adds the three counts of counts to those of into (absent ones, or all
 * when counts is NULL, are 0: into then has the three keys). */
void ad_api_usage_add(json_t *into, const json_t *counts);

/* ---- files (api/files.c), shared with uploads and anything that creates files ---- */

/* A new OpenAIFile object; expires_at 0 renders as null. */
json_t *ad_file_object(const char *id, uint64_t bytes, int64_t created_at, const char *filename,
                       const char *purpose, int64_t expires_at);
/* expires_at for a file of that purpose: seconds after created_at when
 * seconds > 0, the purpose's default otherwise (0: never). */
int64_t ad_file_expires_at(const char *purpose, int64_t created_at, int64_t seconds);
/* Content type guessed from a filename's extension. */
const char *ad_file_guess_ctype(const char *filename);
/* Whether a client-sent content type says more than application/octet-stream. */
bool ad_file_ctype_usable(const char *ctype);
/* Inserts the "file" row (aux = purpose) and its private meta row; the bytes
 * must already be published under "files"/id; runs in the caller's
 * transaction, if any. */
ad_err ad_file_insert(ad_db *db, const char *project, const json_t *file, const char *ctype);

/* ---- handlers ---- */
void ad_h_health(ad_req *req);
void ad_h_metrics(ad_req *req);

void ad_h_models_list(ad_req *req);
void ad_h_models_get(ad_req *req);

void ad_h_assistants_create(ad_req *req);
void ad_h_assistants_list(ad_req *req);
void ad_h_assistants_get(ad_req *req);
void ad_h_assistants_modify(ad_req *req);
void ad_h_assistants_delete(ad_req *req);

void ad_h_threads_create(ad_req *req);
void ad_h_threads_get(ad_req *req);
void ad_h_threads_modify(ad_req *req);
void ad_h_threads_delete(ad_req *req);

void ad_h_messages_create(ad_req *req);
void ad_h_messages_list(ad_req *req);
void ad_h_messages_get(ad_req *req);
void ad_h_messages_modify(ad_req *req);
void ad_h_messages_delete(ad_req *req);

void ad_h_runs_create(ad_req *req);
void ad_h_runs_create_thread_and_run(ad_req *req);
void ad_h_runs_list(ad_req *req);
void ad_h_runs_get(ad_req *req);
void ad_h_runs_modify(ad_req *req);
void ad_h_runs_cancel(ad_req *req);
void ad_h_runs_submit_tool_outputs(ad_req *req);
void ad_h_steps_list(ad_req *req);
void ad_h_steps_get(ad_req *req);

void ad_h_files_create(ad_req *req);
void ad_h_files_list(ad_req *req);
void ad_h_files_get(ad_req *req);
void ad_h_files_delete(ad_req *req);
void ad_h_files_content(ad_req *req);

void ad_h_uploads_create(ad_req *req);
void ad_h_uploads_add_part(ad_req *req);
void ad_h_uploads_complete(ad_req *req);
void ad_h_uploads_cancel(ad_req *req);

void ad_h_vector_stores_create(ad_req *req);
void ad_h_vector_stores_list(ad_req *req);
void ad_h_vector_stores_get(ad_req *req);
void ad_h_vector_stores_modify(ad_req *req);
void ad_h_vector_stores_delete(ad_req *req);
void ad_h_vector_stores_search(ad_req *req);
void ad_h_vs_files_create(ad_req *req);
void ad_h_vs_files_list(ad_req *req);
void ad_h_vs_files_get(ad_req *req);
void ad_h_vs_files_update(ad_req *req);
void ad_h_vs_files_delete(ad_req *req);
void ad_h_vs_files_content(ad_req *req);
void ad_h_vs_batches_create(ad_req *req);
void ad_h_vs_batches_get(ad_req *req);
void ad_h_vs_batches_cancel(ad_req *req);
void ad_h_vs_batches_files(ad_req *req);

/* Creates a vector store holding file_ids (checked: 400 naming param[i]
 * when one is missing) in the caller's transaction, if any; the files are
 * queued for ingestion. expire_days > 0 sets expires_after. The id goes to
 * out. false after answering an error (vector_stores.c). */
bool ad_api_vector_store_new(ad_req *req, const json_t *file_ids, const json_t *chunking,
                             const json_t *metadata, const char *name, int expire_days,
                             const char *param, char out[64]);
/* Message attachments with a file_search tool: adds their files to the
 * thread's vector store, creating it (7-day expiry) and recording it in the
 * thread's tool_resources when the thread has none. Inside the caller's
 * transaction; false after answering an error. */
bool ad_api_thread_file_search(ad_req *req, const char *thread_id, const json_t *attachments,
                               const char *param);

/* Zero configuration only: starts (stops) the thread that keeps the
 * upstream's model list for GET /models. */
ad_err ad_models_cache_start(ad_server *srv);
void ad_models_cache_stop(ad_server *srv);

/* Whether model names a configured model (always true with none configured). */
bool ad_model_known(const ad_server *srv, const char *model);

#endif
