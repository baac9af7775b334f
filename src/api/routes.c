/*
 * routes.c -- the route table: every endpoint, its handler, whether it needs
 * the OpenAI-Beta header, how its body arrives, and its metrics name. Paths
 * are relative to /v1 (OpenAI) or /openai (Azure); AD_R_ROOT routes are
 * served at the root.
 */
#include "api/api.h"
#include "http/static.h"

#define BETA AD_R_BETA

const ad_route ad_routes[] = {
    {"GET", "/healthz", ad_h_health, AD_R_ROOT | AD_R_PUBLIC, "healthz"},
    {"GET", "/metrics", ad_h_metrics, AD_R_ROOT | AD_R_PUBLIC, "metrics"},
    {"GET", "/playground", ad_h_playground, AD_R_ROOT | AD_R_PUBLIC, "playground"},
    {"HEAD", "/playground", ad_h_playground, AD_R_ROOT | AD_R_PUBLIC, "playground.head"},

    {"GET", "/models", ad_h_models_list, 0, "models.list"},
    {"GET", "/models/{}", ad_h_models_get, 0, "models.retrieve"},

    {"POST", "/assistants", ad_h_assistants_create, BETA, "assistants.create"},
    {"GET", "/assistants", ad_h_assistants_list, BETA, "assistants.list"},
    {"GET", "/assistants/{}", ad_h_assistants_get, BETA, "assistants.retrieve"},
    {"POST", "/assistants/{}", ad_h_assistants_modify, BETA, "assistants.modify"},
    {"DELETE", "/assistants/{}", ad_h_assistants_delete, BETA, "assistants.delete"},

    {"POST", "/threads", ad_h_threads_create, BETA, "threads.create"},
    /* Before /threads/{}: "runs" is not a thread id. */
    {"POST", "/threads/runs", ad_h_runs_create_thread_and_run, BETA, "runs.create_thread_and_run"},
    {"GET", "/threads/{}", ad_h_threads_get, BETA, "threads.retrieve"},
    {"POST", "/threads/{}", ad_h_threads_modify, BETA, "threads.modify"},
    {"DELETE", "/threads/{}", ad_h_threads_delete, BETA, "threads.delete"},

    {"POST", "/threads/{}/messages", ad_h_messages_create, BETA, "messages.create"},
    {"GET", "/threads/{}/messages", ad_h_messages_list, BETA, "messages.list"},
    {"GET", "/threads/{}/messages/{}", ad_h_messages_get, BETA, "messages.retrieve"},
    {"POST", "/threads/{}/messages/{}", ad_h_messages_modify, BETA, "messages.modify"},
    {"DELETE", "/threads/{}/messages/{}", ad_h_messages_delete, BETA, "messages.delete"},

    {"POST", "/threads/{}/runs", ad_h_runs_create, BETA, "runs.create"},
    {"GET", "/threads/{}/runs", ad_h_runs_list, BETA, "runs.list"},
    {"GET", "/threads/{}/runs/{}", ad_h_runs_get, BETA, "runs.retrieve"},
    {"POST", "/threads/{}/runs/{}", ad_h_runs_modify, BETA, "runs.modify"},
    {"POST", "/threads/{}/runs/{}/cancel", ad_h_runs_cancel, BETA, "runs.cancel"},
    {"POST", "/threads/{}/runs/{}/submit_tool_outputs", ad_h_runs_submit_tool_outputs, BETA,
     "runs.submit_tool_outputs"},
    {"GET", "/threads/{}/runs/{}/steps", ad_h_steps_list, BETA, "steps.list"},
    {"GET", "/threads/{}/runs/{}/steps/{}", ad_h_steps_get, BETA, "steps.retrieve"},

    {"POST", "/vector_stores", ad_h_vector_stores_create, BETA, "vector_stores.create"},
    {"GET", "/vector_stores", ad_h_vector_stores_list, BETA, "vector_stores.list"},
    {"GET", "/vector_stores/{}", ad_h_vector_stores_get, BETA, "vector_stores.retrieve"},
    {"POST", "/vector_stores/{}", ad_h_vector_stores_modify, BETA, "vector_stores.modify"},
    {"DELETE", "/vector_stores/{}", ad_h_vector_stores_delete, BETA, "vector_stores.delete"},
    {"POST", "/vector_stores/{}/search", ad_h_vector_stores_search, BETA, "vector_stores.search"},
    {"POST", "/vector_stores/{}/files", ad_h_vs_files_create, BETA, "vector_stores.files.create"},
    {"GET", "/vector_stores/{}/files", ad_h_vs_files_list, BETA, "vector_stores.files.list"},
    {"GET", "/vector_stores/{}/files/{}", ad_h_vs_files_get, BETA, "vector_stores.files.retrieve"},
    {"POST", "/vector_stores/{}/files/{}", ad_h_vs_files_update, BETA,
     "vector_stores.files.update"},
    {"DELETE", "/vector_stores/{}/files/{}", ad_h_vs_files_delete, BETA,
     "vector_stores.files.delete"},
    {"GET", "/vector_stores/{}/files/{}/content", ad_h_vs_files_content, BETA,
     "vector_stores.files.content"},
    {"POST", "/vector_stores/{}/file_batches", ad_h_vs_batches_create, BETA,
     "vector_stores.file_batches.create"},
    {"GET", "/vector_stores/{}/file_batches/{}", ad_h_vs_batches_get, BETA,
     "vector_stores.file_batches.retrieve"},
    {"POST", "/vector_stores/{}/file_batches/{}/cancel", ad_h_vs_batches_cancel, BETA,
     "vector_stores.file_batches.cancel"},
    {"GET", "/vector_stores/{}/file_batches/{}/files", ad_h_vs_batches_files, BETA,
     "vector_stores.file_batches.files"},

    {"POST", "/files", ad_h_files_create, AD_R_MULTIPART, "files.create"},
    {"GET", "/files", ad_h_files_list, 0, "files.list"},
    {"GET", "/files/{}", ad_h_files_get, 0, "files.retrieve"},
    {"DELETE", "/files/{}", ad_h_files_delete, 0, "files.delete"},
    {"GET", "/files/{}/content", ad_h_files_content, 0, "files.content"},

    {"POST", "/uploads", ad_h_uploads_create, 0, "uploads.create"},
    {"POST", "/uploads/{}/parts", ad_h_uploads_add_part, AD_R_MULTIPART | AD_R_PART,
     "uploads.parts"},
    {"POST", "/uploads/{}/complete", ad_h_uploads_complete, 0, "uploads.complete"},
    {"POST", "/uploads/{}/cancel", ad_h_uploads_cancel, 0, "uploads.cancel"},
};

const size_t ad_nroutes = sizeof ad_routes / sizeof ad_routes[0];
