/*
 * schemas.h -- the request-body schemas of every JSON endpoint, written from
 * ../shared/spec/openai-openapi.yaml (field names, types, nullability, enums,
 * limits). Handlers validate a parsed body with
 * ad_validate(body, &ad_schema_create_assistant, &err) before touching it.
 * All tables are static constants.
 */
#ifndef AD_SCHEMAS_H
#define AD_SCHEMAS_H

#include "api/validate.h"

extern const ad_vfield ad_schema_create_assistant;         /* CreateAssistantRequest */
extern const ad_vfield ad_schema_modify_assistant;         /* ModifyAssistantRequest */
extern const ad_vfield ad_schema_create_thread;            /* CreateThreadRequest */
extern const ad_vfield ad_schema_modify_thread;            /* ModifyThreadRequest */
extern const ad_vfield ad_schema_create_message;           /* CreateMessageRequest */
extern const ad_vfield ad_schema_modify_message;           /* ModifyMessageRequest */
extern const ad_vfield ad_schema_create_upload;            /* CreateUploadRequest */
extern const ad_vfield ad_schema_complete_upload;          /* CompleteUploadRequest */
extern const ad_vfield ad_schema_create_run;               /* CreateRunRequest */
extern const ad_vfield ad_schema_create_thread_and_run;    /* CreateThreadAndRunRequest */
extern const ad_vfield ad_schema_submit_tool_outputs;      /* SubmitToolOutputsRunRequest */
extern const ad_vfield ad_schema_modify_run;               /* ModifyRunRequest */
extern const ad_vfield ad_schema_create_vector_store;      /* CreateVectorStoreRequest */
extern const ad_vfield ad_schema_modify_vector_store;      /* UpdateVectorStoreRequest */
extern const ad_vfield ad_schema_create_vector_store_file; /* CreateVectorStoreFileRequest */
extern const ad_vfield ad_schema_update_vector_store_file; /* UpdateVectorStoreFileAttributes... */
extern const ad_vfield ad_schema_create_vector_store_file_batch; /* CreateVectorStoreFileBatch... */
extern const ad_vfield ad_schema_search_vector_store;            /* VectorStoreSearchRequest */
/* ComparisonFilter | CompoundFilter (nested), e.g. for a file_search tool. */
extern const ad_vfield ad_schema_file_search_filter;

/*
 * Building blocks for the schemas of other endpoints (vector stores, ...).
 * Use them as array items (.items = &ad_schema_tool) or through a
 * one-alternative ONEOF, which validate.h defines as a reference:
 *   {.name = "response_format", .type = AD_V_ONEOF, .flags = AD_V_NULLABLE,
 *    .alts = &ad_schema_response_format, .nalts = 1}
 * The referencing entry's flags (REQUIRED, NULLABLE) are the ones that count.
 */
extern const ad_vfield ad_schema_tool;            /* a code_interpreter/file_search/function tool */
extern const ad_vfield ad_schema_response_format; /* AssistantsApiResponseFormatOption */
extern const ad_vfield ad_schema_tool_resources_create; /* with the vector_stores helper */
extern const ad_vfield ad_schema_tool_resources;        /* modify / createThreadAndRun: ids only */
extern const ad_vfield ad_schema_chunking_strategy;     /* ChunkingStrategyRequestParam */
extern const ad_vfield ad_schema_metadata;              /* Metadata */
extern const ad_vfield ad_schema_reasoning_effort;      /* ReasoningEffort enum */

/* Every schema above, NULL-terminated (fuzzing, tests). */
extern const ad_vfield *const ad_schemas_all[];

/* Check hook for names that must match ^[a-zA-Z0-9_-]+$ (function names,
 * json_schema names): OpenAI's "string does not match pattern" error. */
bool ad_check_name_pattern(const json_t *v, const char *path, ad_verr *err);

#endif
