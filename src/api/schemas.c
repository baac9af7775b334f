/*
 * schemas.c -- request-body schemas of the assistants, threads, messages and
 * uploads endpoints, transcribed from openai-openapi.yaml (see
 * ../shared/spec/schemas-appendix.md for the flattened tables).
 *
 * Every table is a static constant built bottom-up: leaf field lists first,
 * then the objects and unions that use them, then the exported request
 * schemas. Unions follow the spec's oneOf: tagged objects are matched on
 * "type" (see ad_validate). All objects reject unknown keys, as the real API
 * does, except the two free-form JSON Schema slots (function.parameters and
 * json_schema.schema). Nullable fields in the spec carry AD_V_NULLABLE.
 * Fields only Azure's spec has carry AD_V_AZURE: known on /openai/... paths
 * (ad_validate_azure), unknown parameters on /v1 (today createRun's
 * thread_id and createThreadAndRun's stream_options, both ignored).
 *
 * What a table cannot say is done by check hooks below: name patterns, the
 * static chunking overlap limit, vector_store_ids xor vector_stores, a
 * sanity check of image URLs, and tool_choice {type:"function"} needing a
 * function. Anything needing the store (do referenced IDs
 * exist? does tool_choice name one of the run's tools, which may be the
 * assistant's?) is the handlers' job.
 */
#include "api/schemas.h"

#include <stdio.h>
#include <string.h>

#include "util/str.h"

/* ---------------------------------------------------------------- check hooks */

bool ad_check_name_pattern(const json_t *v, const char *path, ad_verr *err)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    bool ok = s && n > 0;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    if (!ok)
        ad_verr_set(err, path, "invalid_value",
                    "Invalid '%s': string does not match pattern. Expected a string that matches "
                    "the pattern '^[a-zA-Z0-9_-]+$'.",
                    path);
    return ok;
}

/* path + "." + key, or just path when that would not fit (never cut mid-character). */
static void sub_path(char *out, size_t cap, const char *path, const char *key)
{
    int n = -1;
    if (strlen(path) + 1 + strlen(key) < cap)
        n = snprintf(out, cap, "%s%s%s", path, *path ? "." : "", key);
    if (n < 0 || (size_t)n >= cap) /* checked above; keeps the path whole */
        snprintf(out, cap, "%s", strlen(path) < cap ? path : "");
}

/* StaticChunkingStrategy: "the overlap must not exceed half of max_chunk_size_tokens". */
static bool check_static_chunking(const json_t *v, const char *path, ad_verr *err)
{
    json_int_t max = json_integer_value(json_object_get(v, "max_chunk_size_tokens"));
    json_int_t overlap = json_integer_value(json_object_get(v, "chunk_overlap_tokens"));
    if (overlap <= max / 2) /* overlap is an integer, so this is overlap <= max / 2.0 */
        return true;
    char p[sizeof err->param];
    sub_path(p, sizeof p, path, "chunk_overlap_tokens");
    ad_verr_set(
        err, p, "integer_above_max_value",
        "Invalid '%s': integer above maximum value. Expected a value <= %" JSON_INTEGER_FORMAT
        " (half of max_chunk_size_tokens), but got %" JSON_INTEGER_FORMAT " instead.",
        p, max / 2, overlap);
    return false;
}

/* tool_resources.file_search on create: oneOf {vector_store_ids} | {vector_stores}. */
static bool check_file_search_resources(const json_t *v, const char *path, ad_verr *err)
{
    if (!json_object_get(v, "vector_store_ids") || !json_object_get(v, "vector_stores"))
        return true;
    ad_verr_set(err, path, "invalid_value",
                "Invalid '%s': only one of 'vector_store_ids' or 'vector_stores' may be provided, "
                "but got both.",
                path);
    return false;
}

/* AssistantsNamedToolChoice: "If type is `function`, the function name must
 * be set" (function.name itself is required by the table). */
static bool check_named_tool_choice(const json_t *v, const char *path, ad_verr *err)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!type || strcmp(type, "function") != 0 || json_object_get(v, "function"))
        return true;
    char p[sizeof err->param];
    sub_path(p, sizeof p, path, "function");
    ad_verr_set(err, p, "missing_required_parameter", "Missing required parameter: '%s'.", p);
    return false;
}

/* image_url.url is `format: uri`: require "scheme:rest" without spaces. */
static bool check_uri(const json_t *v, const char *path, ad_verr *err)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), i = 0;
    bool ok = n > 0 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));
    while (ok && i < n && s[i] != ':') {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '+' || c == '-' || c == '.';
        i++;
    }
    ok = ok && i < n && i + 1 < n; /* a ':' and something after it */
    for (size_t j = 0; ok && j < n; j++)
        ok = (unsigned char)s[j] > 0x20 && s[j] != 0x7f;
    if (!ok)
        ad_verr_set(err, path, "invalid_value",
                    "Invalid '%s': Expected a valid URL, but got a value with an invalid format.",
                    path);
    return ok;
}

/* ---------------------------------------------------------------- enums */

static const char *const e_code_interpreter[] = {"code_interpreter", NULL};
static const char *const e_file_search[] = {"file_search", NULL};
static const char *const e_function[] = {"function", NULL};
static const char *const e_ranker[] = {"auto", "default_2024_08_21", NULL};
static const char *const e_auto[] = {"auto", NULL};
static const char *const e_static[] = {"static", NULL};
static const char *const e_text[] = {"text", NULL};
static const char *const e_json_object[] = {"json_object", NULL};
static const char *const e_json_schema[] = {"json_schema", NULL};
static const char *const e_image_file[] = {"image_file", NULL};
static const char *const e_image_url[] = {"image_url", NULL};
static const char *const e_detail[] = {"auto", "low", "high", NULL};
static const char *const e_role[] = {"user", "assistant", NULL};
static const char *const e_reasoning[] = {"none", "minimal", "low", "medium",
                                          "high", "xhigh",   "max", NULL};
/* The spec lists assistants|batch|fine-tune|vision for uploads; the SDKs'
 * FilePurpose (and POST /files) also allow user_data and evals. */
static const char *const e_purpose[] = {"assistants", "batch", "fine-tune", "vision",
                                        "user_data",  "evals", NULL};
static const char *const e_created_at[] = {"created_at", NULL};
static const char *const e_tool_choice_mode[] = {"none", "auto", "required", NULL};
static const char *const e_tool_choice_type[] = {"function", "code_interpreter", "file_search",
                                                 NULL};
static const char *const e_truncation[] = {"auto", "last_messages", NULL};

#define END                                                                                        \
    {                                                                                              \
        .name = NULL                                                                               \
    }

static const ad_vfield string_item = {.type = AD_V_STRING};

/* ---------------------------------------------------------------- shared blocks */

const ad_vfield ad_schema_metadata = {
    .name = "metadata", .type = AD_V_METADATA, .flags = AD_V_NULLABLE};

const ad_vfield ad_schema_reasoning_effort = {
    .name = "reasoning_effort", .type = AD_V_STRING, .flags = AD_V_NULLABLE, .enums = e_reasoning};

/* Tools (AssistantToolsCode | AssistantToolsFileSearch | AssistantToolsFunction) */

static const ad_vfield ranking_options_fields[] = {
    {.name = "ranker", .type = AD_V_STRING, .enums = e_ranker},
    {.name = "score_threshold",
     .type = AD_V_NUMBER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 0,
     .max = 1},
    END};

static const ad_vfield file_search_opts_fields[] = {
    {.name = "max_num_results",
     .type = AD_V_INTEGER,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 50},
    {.name = "ranking_options", .type = AD_V_OBJECT, .fields = ranking_options_fields},
    END};

static const ad_vfield function_fields[] = {
    {.name = "name",
     .type = AD_V_STRING,
     .flags = AD_V_REQUIRED | AD_V_HAS_MAX,
     .max = 64,
     .check = ad_check_name_pattern},
    {.name = "description", .type = AD_V_STRING},
    {.name = "parameters", .type = AD_V_OBJECT}, /* free-form JSON Schema */
    {.name = "strict", .type = AD_V_BOOLEAN, .flags = AD_V_NULLABLE},
    END};

static const ad_vfield tool_code_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_code_interpreter},
    END};

static const ad_vfield tool_file_search_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_file_search},
    {.name = "file_search", .type = AD_V_OBJECT, .fields = file_search_opts_fields},
    END};

static const ad_vfield tool_function_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_function},
    {.name = "function", .type = AD_V_OBJECT, .flags = AD_V_REQUIRED, .fields = function_fields},
    END};

static const ad_vfield tool_alts[] = {
    {.type = AD_V_OBJECT, .fields = tool_code_fields},
    {.type = AD_V_OBJECT, .fields = tool_file_search_fields},
    {.type = AD_V_OBJECT, .fields = tool_function_fields},
};

const ad_vfield ad_schema_tool = {
    .name = "tool", .type = AD_V_ONEOF, .alts = tool_alts, .nalts = 3};

/* Response format ("auto" | text | json_object | json_schema) */

static const ad_vfield rf_text_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_text}, END};

static const ad_vfield rf_json_object_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_json_object}, END};

static const ad_vfield json_schema_fields[] = {
    {.name = "name",
     .type = AD_V_STRING,
     .flags = AD_V_REQUIRED | AD_V_HAS_MAX,
     .max = 64,
     .check = ad_check_name_pattern},
    {.name = "description", .type = AD_V_STRING},
    {.name = "schema", .type = AD_V_OBJECT}, /* free-form JSON Schema */
    {.name = "strict", .type = AD_V_BOOLEAN, .flags = AD_V_NULLABLE},
    END};

static const ad_vfield rf_json_schema_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_json_schema},
    {.name = "json_schema",
     .type = AD_V_OBJECT,
     .flags = AD_V_REQUIRED,
     .fields = json_schema_fields},
    END};

static const ad_vfield rf_alts[] = {
    {.type = AD_V_STRING, .enums = e_auto},
    {.type = AD_V_OBJECT, .fields = rf_text_fields},
    {.type = AD_V_OBJECT, .fields = rf_json_object_fields},
    {.type = AD_V_OBJECT, .fields = rf_json_schema_fields},
};

const ad_vfield ad_schema_response_format = {.name = "response_format",
                                             .type = AD_V_ONEOF,
                                             .flags = AD_V_NULLABLE,
                                             .alts = rf_alts,
                                             .nalts = 4};

/* Chunking strategy (auto | static) */

static const ad_vfield static_chunking_fields[] = {
    {.name = "max_chunk_size_tokens",
     .type = AD_V_INTEGER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 100,
     .max = 4096},
    /* no minimum in the spec; a negative overlap is meaningless */
    {.name = "chunk_overlap_tokens",
     .type = AD_V_INTEGER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN,
     .min = 0},
    END};

static const ad_vfield chunking_auto_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_auto}, END};

static const ad_vfield chunking_static_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_static},
    {.name = "static",
     .type = AD_V_OBJECT,
     .flags = AD_V_REQUIRED,
     .fields = static_chunking_fields,
     .check = check_static_chunking},
    END};

static const ad_vfield chunking_alts[] = {
    {.type = AD_V_OBJECT, .fields = chunking_auto_fields},
    {.type = AD_V_OBJECT, .fields = chunking_static_fields},
};

const ad_vfield ad_schema_chunking_strategy = {
    .name = "chunking_strategy", .type = AD_V_ONEOF, .alts = chunking_alts, .nalts = 2};

/* Tool resources */

static const ad_vfield ci_resources_fields[] = {{.name = "file_ids",
                                                 .type = AD_V_ARRAY,
                                                 .flags = AD_V_HAS_MAX,
                                                 .max = 20,
                                                 .items = &string_item},
                                                END};

static const ad_vfield vector_store_helper_fields[] = {
    {.name = "file_ids",
     .type = AD_V_ARRAY,
     .flags = AD_V_HAS_MAX,
     .max = 100000000,
     .items = &string_item},
    {.name = "chunking_strategy", .type = AD_V_ONEOF, .alts = chunking_alts, .nalts = 2},
    {.name = "metadata", .type = AD_V_METADATA, .flags = AD_V_NULLABLE},
    END};

static const ad_vfield vector_store_helper = {.type = AD_V_OBJECT,
                                              .fields = vector_store_helper_fields};

static const ad_vfield fs_resources_create_fields[] = {{.name = "vector_store_ids",
                                                        .type = AD_V_ARRAY,
                                                        .flags = AD_V_HAS_MAX,
                                                        .max = 1,
                                                        .items = &string_item},
                                                       {.name = "vector_stores",
                                                        .type = AD_V_ARRAY,
                                                        .flags = AD_V_HAS_MAX,
                                                        .max = 1,
                                                        .items = &vector_store_helper},
                                                       END};

static const ad_vfield fs_resources_fields[] = {{.name = "vector_store_ids",
                                                 .type = AD_V_ARRAY,
                                                 .flags = AD_V_HAS_MAX,
                                                 .max = 1,
                                                 .items = &string_item},
                                                END};

static const ad_vfield tool_resources_create_fields[] = {
    {.name = "code_interpreter", .type = AD_V_OBJECT, .fields = ci_resources_fields},
    {.name = "file_search",
     .type = AD_V_OBJECT,
     .fields = fs_resources_create_fields,
     .check = check_file_search_resources},
    END};

static const ad_vfield tool_resources_fields[] = {
    {.name = "code_interpreter", .type = AD_V_OBJECT, .fields = ci_resources_fields},
    {.name = "file_search", .type = AD_V_OBJECT, .fields = fs_resources_fields},
    END};

const ad_vfield ad_schema_tool_resources_create = {.name = "tool_resources",
                                                   .type = AD_V_OBJECT,
                                                   .flags = AD_V_NULLABLE,
                                                   .fields = tool_resources_create_fields};

const ad_vfield ad_schema_tool_resources = {.name = "tool_resources",
                                            .type = AD_V_OBJECT,
                                            .flags = AD_V_NULLABLE,
                                            .fields = tool_resources_fields};

/* ---------------------------------------------------------------- assistants */

#define F_NAME                                                                                     \
    {                                                                                              \
        .name = "name", .type = AD_V_STRING, .flags = AD_V_NULLABLE | AD_V_HAS_MAX, .max = 256     \
    }
#define F_DESCRIPTION                                                                              \
    {                                                                                              \
        .name = "description", .type = AD_V_STRING, .flags = AD_V_NULLABLE | AD_V_HAS_MAX,         \
        .max = 512                                                                                 \
    }
#define F_INSTRUCTIONS                                                                             \
    {                                                                                              \
        .name = "instructions", .type = AD_V_STRING, .flags = AD_V_NULLABLE | AD_V_HAS_MAX,        \
        .max = 256000                                                                              \
    }
#define F_REASONING                                                                                \
    {                                                                                              \
        .name = "reasoning_effort", .type = AD_V_STRING, .flags = AD_V_NULLABLE,                   \
        .enums = e_reasoning                                                                       \
    }
#define F_TOOLS                                                                                    \
    {                                                                                              \
        .name = "tools", .type = AD_V_ARRAY, .flags = AD_V_HAS_MAX, .max = 128,                    \
        .items = &ad_schema_tool                                                                   \
    }
#define F_METADATA                                                                                 \
    {                                                                                              \
        .name = "metadata", .type = AD_V_METADATA, .flags = AD_V_NULLABLE                          \
    }
#define F_TEMPERATURE                                                                              \
    {                                                                                              \
        .name = "temperature", .type = AD_V_NUMBER,                                                \
        .flags = AD_V_NULLABLE | AD_V_HAS_MIN | AD_V_HAS_MAX, .min = 0, .max = 2                   \
    }
#define F_TOP_P                                                                                    \
    {                                                                                              \
        .name = "top_p", .type = AD_V_NUMBER,                                                      \
        .flags = AD_V_NULLABLE | AD_V_HAS_MIN | AD_V_HAS_MAX, .min = 0, .max = 1                   \
    }
#define F_RESPONSE_FORMAT                                                                          \
    {                                                                                              \
        .name = "response_format", .type = AD_V_ONEOF, .flags = AD_V_NULLABLE, .alts = rf_alts,    \
        .nalts = 4                                                                                 \
    }

static const ad_vfield create_assistant_fields[] = {
    {.name = "model", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    F_NAME,
    F_DESCRIPTION,
    F_INSTRUCTIONS,
    F_REASONING,
    F_TOOLS,
    {.name = "tool_resources",
     .type = AD_V_OBJECT,
     .flags = AD_V_NULLABLE,
     .fields = tool_resources_create_fields},
    F_METADATA,
    F_TEMPERATURE,
    F_TOP_P,
    F_RESPONSE_FORMAT,
    END};

static const ad_vfield modify_assistant_fields[] = {{.name = "model", .type = AD_V_STRING},
                                                    F_REASONING,
                                                    F_NAME,
                                                    F_DESCRIPTION,
                                                    F_INSTRUCTIONS,
                                                    F_TOOLS,
                                                    {.name = "tool_resources",
                                                     .type = AD_V_OBJECT,
                                                     .flags = AD_V_NULLABLE,
                                                     .fields = tool_resources_fields},
                                                    F_METADATA,
                                                    F_TEMPERATURE,
                                                    F_TOP_P,
                                                    F_RESPONSE_FORMAT,
                                                    END};

const ad_vfield ad_schema_create_assistant = {.type = AD_V_OBJECT,
                                              .fields = create_assistant_fields};
const ad_vfield ad_schema_modify_assistant = {.type = AD_V_OBJECT,
                                              .fields = modify_assistant_fields};

/* ---------------------------------------------------------------- messages */

static const ad_vfield text_part_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_text},
    {.name = "text", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    END};

static const ad_vfield image_file_fields[] = {
    {.name = "file_id", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "detail", .type = AD_V_STRING, .enums = e_detail},
    END};

static const ad_vfield image_file_part_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_image_file},
    {.name = "image_file",
     .type = AD_V_OBJECT,
     .flags = AD_V_REQUIRED,
     .fields = image_file_fields},
    END};

static const ad_vfield image_url_fields[] = {
    {.name = "url", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .check = check_uri},
    {.name = "detail", .type = AD_V_STRING, .enums = e_detail},
    END};

static const ad_vfield image_url_part_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_image_url},
    {.name = "image_url", .type = AD_V_OBJECT, .flags = AD_V_REQUIRED, .fields = image_url_fields},
    END};

/* spec order: MessageContentImageFileObject, ...ImageUrlObject, MessageRequestContentTextObject */
static const ad_vfield content_part_alts[] = {
    {.type = AD_V_OBJECT, .fields = image_file_part_fields},
    {.type = AD_V_OBJECT, .fields = image_url_part_fields},
    {.type = AD_V_OBJECT, .fields = text_part_fields},
};

static const ad_vfield content_part = {.type = AD_V_ONEOF, .alts = content_part_alts, .nalts = 3};

/* Not in the spec: the real API rejects empty message content. */
static const ad_vfield content_alts[] = {
    {.type = AD_V_STRING, .flags = AD_V_HAS_MIN, .min = 1},
    {.type = AD_V_ARRAY, .flags = AD_V_HAS_MIN, .min = 1, .items = &content_part},
};

/* AssistantToolsFileSearchTypeOnly */
static const ad_vfield tool_file_search_type_only_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_file_search}, END};

static const ad_vfield attachment_tool_alts[] = {
    {.type = AD_V_OBJECT, .fields = tool_code_fields},
    {.type = AD_V_OBJECT, .fields = tool_file_search_type_only_fields},
};

static const ad_vfield attachment_tool = {
    .type = AD_V_ONEOF, .alts = attachment_tool_alts, .nalts = 2};

static const ad_vfield attachment_fields[] = {
    {.name = "file_id", .type = AD_V_STRING},
    {.name = "tools", .type = AD_V_ARRAY, .items = &attachment_tool},
    END};

static const ad_vfield attachment = {.type = AD_V_OBJECT, .fields = attachment_fields};

static const ad_vfield create_message_fields[] = {
    {.name = "role", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_role},
    {.name = "content",
     .type = AD_V_ONEOF,
     .flags = AD_V_REQUIRED,
     .alts = content_alts,
     .nalts = 2},
    {.name = "attachments", .type = AD_V_ARRAY, .flags = AD_V_NULLABLE, .items = &attachment},
    F_METADATA,
    END};

static const ad_vfield modify_message_fields[] = {F_METADATA, END};

const ad_vfield ad_schema_create_message = {.type = AD_V_OBJECT, .fields = create_message_fields};
const ad_vfield ad_schema_modify_message = {.type = AD_V_OBJECT, .fields = modify_message_fields};

/* ---------------------------------------------------------------- threads */

static const ad_vfield create_thread_fields[] = {
    {.name = "messages", .type = AD_V_ARRAY, .items = &ad_schema_create_message},
    {.name = "tool_resources",
     .type = AD_V_OBJECT,
     .flags = AD_V_NULLABLE,
     .fields = tool_resources_create_fields},
    F_METADATA,
    END};

static const ad_vfield modify_thread_fields[] = {{.name = "tool_resources",
                                                  .type = AD_V_OBJECT,
                                                  .flags = AD_V_NULLABLE,
                                                  .fields = tool_resources_fields},
                                                 F_METADATA,
                                                 END};

const ad_vfield ad_schema_create_thread = {.type = AD_V_OBJECT, .fields = create_thread_fields};
const ad_vfield ad_schema_modify_thread = {.type = AD_V_OBJECT, .fields = modify_thread_fields};

/* ---------------------------------------------------------------- runs */

/* TruncationObject */
static const ad_vfield truncation_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_truncation},
    {.name = "last_messages",
     .type = AD_V_INTEGER,
     .flags = AD_V_NULLABLE | AD_V_HAS_MIN,
     .min = 1},
    END};

/* AssistantsApiToolChoiceOption: "none" | "auto" | "required" | AssistantsNamedToolChoice */
static const ad_vfield named_tool_function_fields[] = {
    {.name = "name", .type = AD_V_STRING, .flags = AD_V_REQUIRED}, END};

static const ad_vfield named_tool_choice_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_tool_choice_type},
    {.name = "function", .type = AD_V_OBJECT, .fields = named_tool_function_fields},
    END};

static const ad_vfield tool_choice_alts[] = {
    {.type = AD_V_STRING, .enums = e_tool_choice_mode},
    {.type = AD_V_OBJECT, .fields = named_tool_choice_fields, .check = check_named_tool_choice},
};

#define F_RUN_TOOLS                                                                                \
    {                                                                                              \
        .name = "tools", .type = AD_V_ARRAY, .flags = AD_V_NULLABLE | AD_V_HAS_MAX, .max = 20,     \
        .items = &ad_schema_tool                                                                   \
    }
#define F_STREAM                                                                                   \
    {                                                                                              \
        .name = "stream", .type = AD_V_BOOLEAN, .flags = AD_V_NULLABLE                             \
    }
#define F_MAX_PROMPT_TOKENS                                                                        \
    {                                                                                              \
        .name = "max_prompt_tokens", .type = AD_V_INTEGER, .flags = AD_V_NULLABLE | AD_V_HAS_MIN,  \
        .min = 256                                                                                 \
    }
#define F_MAX_COMPLETION_TOKENS                                                                    \
    {                                                                                              \
        .name = "max_completion_tokens", .type = AD_V_INTEGER,                                     \
        .flags = AD_V_NULLABLE | AD_V_HAS_MIN, .min = 256                                          \
    }
#define F_TRUNCATION                                                                               \
    {                                                                                              \
        .name = "truncation_strategy", .type = AD_V_OBJECT, .flags = AD_V_NULLABLE,                \
        .fields = truncation_fields                                                                \
    }
#define F_TOOL_CHOICE                                                                              \
    {                                                                                              \
        .name = "tool_choice", .type = AD_V_ONEOF, .flags = AD_V_NULLABLE,                         \
        .alts = tool_choice_alts, .nalts = 2                                                       \
    }
#define F_PARALLEL_TOOL_CALLS                                                                      \
    {                                                                                              \
        .name = "parallel_tool_calls", .type = AD_V_BOOLEAN                                        \
    }

/* Azure's chatCompletionStreamOptions (createThreadAndRun on Azure). */
static const ad_vfield stream_options_fields[] = {{.name = "include_usage", .type = AD_V_BOOLEAN},
                                                  END};

/* Spec order. Azure's spec also lists "thread_id" in the body (and requires
 * it, a spec bug: it is the path parameter, azure.md section 5): on Azure
 * paths it is accepted, never required, and ignored; on OpenAI's it is an
 * unknown parameter. */
static const ad_vfield create_run_fields[] = {
    {.name = "thread_id", .type = AD_V_STRING, .flags = AD_V_AZURE},
    {.name = "assistant_id", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "model", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    F_REASONING,
    {.name = "instructions", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    {.name = "additional_instructions", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    {.name = "additional_messages",
     .type = AD_V_ARRAY,
     .flags = AD_V_NULLABLE,
     .items = &ad_schema_create_message},
    F_RUN_TOOLS,
    F_METADATA,
    F_TEMPERATURE,
    F_TOP_P,
    F_STREAM,
    F_MAX_PROMPT_TOKENS,
    F_MAX_COMPLETION_TOKENS,
    F_TRUNCATION,
    F_TOOL_CHOICE,
    F_PARALLEL_TOOL_CALLS,
    F_RESPONSE_FORMAT,
    END};

static const ad_vfield create_thread_and_run_fields[] = {
    {.name = "assistant_id", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "thread", .type = AD_V_OBJECT, .fields = create_thread_fields},
    {.name = "model", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    {.name = "instructions", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    F_RUN_TOOLS,
    {.name = "tool_resources",
     .type = AD_V_OBJECT,
     .flags = AD_V_NULLABLE,
     .fields = tool_resources_fields},
    F_METADATA,
    F_TEMPERATURE,
    F_TOP_P,
    F_STREAM,
    /* Azure's spec only; accepted there and ignored (runs stream their
     * events whatever a chat-completions option would say). */
    {.name = "stream_options",
     .type = AD_V_OBJECT,
     .flags = AD_V_NULLABLE | AD_V_AZURE,
     .fields = stream_options_fields},
    F_MAX_PROMPT_TOKENS,
    F_MAX_COMPLETION_TOKENS,
    F_TRUNCATION,
    F_TOOL_CHOICE,
    F_PARALLEL_TOOL_CALLS,
    F_RESPONSE_FORMAT,
    END};

/* tool_call_id and output are not in the spec's required list. */
static const ad_vfield tool_output_fields[] = {
    {.name = "tool_call_id", .type = AD_V_STRING}, {.name = "output", .type = AD_V_STRING}, END};

static const ad_vfield tool_output = {.type = AD_V_OBJECT, .fields = tool_output_fields};

static const ad_vfield submit_tool_outputs_fields[] = {
    {.name = "tool_outputs", .type = AD_V_ARRAY, .flags = AD_V_REQUIRED, .items = &tool_output},
    F_STREAM,
    END};

static const ad_vfield modify_run_fields[] = {F_METADATA, END};

const ad_vfield ad_schema_create_run = {.type = AD_V_OBJECT, .fields = create_run_fields};
const ad_vfield ad_schema_create_thread_and_run = {.type = AD_V_OBJECT,
                                                   .fields = create_thread_and_run_fields};
const ad_vfield ad_schema_submit_tool_outputs = {.type = AD_V_OBJECT,
                                                 .fields = submit_tool_outputs_fields};
const ad_vfield ad_schema_modify_run = {.type = AD_V_OBJECT, .fields = modify_run_fields};

/* ---------------------------------------------------------------- uploads */

static const ad_vfield file_expiration_fields[] = {
    {.name = "anchor", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_created_at},
    {.name = "seconds",
     .type = AD_V_INTEGER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 3600,
     .max = 2592000},
    END};

static const ad_vfield create_upload_fields[] = {
    {.name = "filename", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "purpose", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_purpose},
    {.name = "bytes", .type = AD_V_INTEGER, .flags = AD_V_REQUIRED},
    {.name = "mime_type", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "expires_after", .type = AD_V_OBJECT, .fields = file_expiration_fields},
    END};

static const ad_vfield complete_upload_fields[] = {
    {.name = "part_ids", .type = AD_V_ARRAY, .flags = AD_V_REQUIRED, .items = &string_item},
    {.name = "md5", .type = AD_V_STRING},
    END};

const ad_vfield ad_schema_create_upload = {.type = AD_V_OBJECT, .fields = create_upload_fields};
const ad_vfield ad_schema_complete_upload = {.type = AD_V_OBJECT, .fields = complete_upload_fields};

/* ---------------------------------------------------------------- vector stores */

/* VectorStoreFileAttributes: <= 16 pairs, keys <= 64 characters, values
 * strings <= 512 characters, booleans or numbers. */
static bool check_attributes(const json_t *v, const char *path, ad_verr *err)
{
    size_t n = json_object_size(v);
    if (n > 16) {
        ad_verr_set(err, path, "object_above_max_properties",
                    "Invalid '%s': too many properties. Expected an object with at most 16 "
                    "properties, but got an object with %zu properties instead.",
                    path, n);
        return false;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t kn = ad_utf8_count(key, strlen(key));
        char p[sizeof err->param];
        sub_path(p, sizeof p, path, key);
        if (kn > 64) {
            ad_verr_set(err, path, "string_above_max_length",
                        "Invalid '%s': attribute key too long. Expected a string with maximum "
                        "length 64, but got a string with length %zu instead.",
                        path, kn);
            return false;
        }
        if (json_is_string(val)) {
            size_t vn = ad_utf8_count(json_string_value(val), json_string_length(val));
            if (vn > 512) {
                ad_verr_set(err, p, "string_above_max_length",
                            "Invalid '%s': string too long. Expected a string with maximum "
                            "length 512, but got a string with length %zu instead.",
                            p, vn);
                return false;
            }
        } else if (!json_is_boolean(val) && !json_is_number(val)) {
            ad_verr_set(err, p, "invalid_type",
                        "Invalid type for '%s': expected one of a string, a boolean or a number, "
                        "but got %s instead.",
                        p,
                        json_is_null(val)    ? "null"
                        : json_is_array(val) ? "an array"
                                             : "an object");
            return false;
        }
    }
    return true;
}

/* CreateVectorStoreFileBatchRequest: file_ids xor files. */
static bool check_batch(const json_t *v, const char *path, ad_verr *err)
{
    (void)path;
    bool ids = json_object_get(v, "file_ids") != NULL, files = json_object_get(v, "files") != NULL;
    if (ids && files) {
        ad_verr_set(err, "files", "invalid_value",
                    "Invalid 'files': only one of 'file_ids' or 'files' may be provided, but got "
                    "both.");
        return false;
    }
    if (!ids && !files) {
        ad_verr_set(err, "file_ids", "missing_required_parameter",
                    "Missing required parameter: 'file_ids'.");
        return false;
    }
    return true;
}

static const char *const e_last_active_at[] = {"last_active_at", NULL};
static const char *const e_search_ranker[] = {"none", "auto", "default-2024-11-15", NULL};
static const char *const e_comparison[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", NULL};
static const char *const e_compound[] = {"and", "or", NULL};

#define F_ATTRIBUTES                                                                               \
    {                                                                                              \
        .name = "attributes", .type = AD_V_OBJECT, .flags = AD_V_NULLABLE,                         \
        .check = check_attributes                                                                  \
    }

static const ad_vfield vs_expires_after_fields[] = {
    {.name = "anchor", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_last_active_at},
    {.name = "days",
     .type = AD_V_INTEGER,
     .flags = AD_V_REQUIRED | AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 365},
    END};

static const ad_vfield create_vector_store_fields[] = {
    {.name = "file_ids",
     .type = AD_V_ARRAY,
     .flags = AD_V_HAS_MAX,
     .max = 500,
     .items = &string_item},
    {.name = "name", .type = AD_V_STRING},
    {.name = "description", .type = AD_V_STRING},
    {.name = "expires_after", .type = AD_V_OBJECT, .fields = vs_expires_after_fields},
    {.name = "chunking_strategy", .type = AD_V_ONEOF, .alts = chunking_alts, .nalts = 2},
    F_METADATA,
    END};

static const ad_vfield modify_vector_store_fields[] = {
    {.name = "name", .type = AD_V_STRING, .flags = AD_V_NULLABLE},
    {.name = "expires_after",
     .type = AD_V_OBJECT,
     .flags = AD_V_NULLABLE,
     .fields = vs_expires_after_fields},
    F_METADATA,
    END};

static const ad_vfield create_vector_store_file_fields[] = {
    {.name = "file_id", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "chunking_strategy", .type = AD_V_ONEOF, .alts = chunking_alts, .nalts = 2},
    F_ATTRIBUTES,
    END};

static const ad_vfield update_vector_store_file_fields[] = {{.name = "attributes",
                                                             .type = AD_V_OBJECT,
                                                             .flags = AD_V_REQUIRED | AD_V_NULLABLE,
                                                             .check = check_attributes},
                                                            END};

static const ad_vfield batch_file = {.type = AD_V_OBJECT,
                                     .fields = create_vector_store_file_fields};

static const ad_vfield create_batch_fields[] = {
    {.name = "file_ids",
     .type = AD_V_ARRAY,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 2000,
     .items = &string_item},
    {.name = "files",
     .type = AD_V_ARRAY,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 2000,
     .items = &batch_file},
    {.name = "chunking_strategy", .type = AD_V_ONEOF, .alts = chunking_alts, .nalts = 2},
    F_ATTRIBUTES,
    END};

/* Filters: ComparisonFilter | CompoundFilter, nested (the table refers to
 * itself through `filter`). */
static const ad_vfield filter;

static const ad_vfield filter_scalar_alts[] = {
    {.type = AD_V_STRING},
    {.type = AD_V_NUMBER},
};
static const ad_vfield filter_scalar = {.type = AD_V_ONEOF, .alts = filter_scalar_alts, .nalts = 2};

static const ad_vfield filter_value_alts[] = {
    {.type = AD_V_STRING},
    {.type = AD_V_NUMBER},
    {.type = AD_V_BOOLEAN},
    {.type = AD_V_ARRAY, .items = &filter_scalar},
};

static const ad_vfield comparison_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_comparison},
    {.name = "key", .type = AD_V_STRING, .flags = AD_V_REQUIRED},
    {.name = "value",
     .type = AD_V_ONEOF,
     .flags = AD_V_REQUIRED,
     .alts = filter_value_alts,
     .nalts = 4},
    END};

static const ad_vfield compound_fields[] = {
    {.name = "type", .type = AD_V_STRING, .flags = AD_V_REQUIRED, .enums = e_compound},
    {.name = "filters", .type = AD_V_ARRAY, .flags = AD_V_REQUIRED, .items = &filter},
    END};

static const ad_vfield filter_alts[] = {
    {.type = AD_V_OBJECT, .fields = comparison_fields},
    {.type = AD_V_OBJECT, .fields = compound_fields},
};

static const ad_vfield filter = {.type = AD_V_ONEOF, .alts = filter_alts, .nalts = 2};

static const ad_vfield search_query_alts[] = {
    {.type = AD_V_STRING},
    /* at most 20 queries: each is ranked twice (RM3) over the store */
    {.type = AD_V_ARRAY,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 20,
     .items = &string_item},
};

static const ad_vfield search_ranking_fields[] = {
    {.name = "ranker", .type = AD_V_STRING, .enums = e_search_ranker},
    {.name = "score_threshold",
     .type = AD_V_NUMBER,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 0,
     .max = 1},
    END};

static const ad_vfield search_fields[] = {
    {.name = "query",
     .type = AD_V_ONEOF,
     .flags = AD_V_REQUIRED,
     .alts = search_query_alts,
     .nalts = 2},
    {.name = "rewrite_query", .type = AD_V_BOOLEAN},
    {.name = "max_num_results",
     .type = AD_V_INTEGER,
     .flags = AD_V_HAS_MIN | AD_V_HAS_MAX,
     .min = 1,
     .max = 50},
    {.name = "filters", .type = AD_V_ONEOF, .alts = filter_alts, .nalts = 2},
    {.name = "ranking_options", .type = AD_V_OBJECT, .fields = search_ranking_fields},
    END};

const ad_vfield ad_schema_create_vector_store = {.type = AD_V_OBJECT,
                                                 .fields = create_vector_store_fields};
const ad_vfield ad_schema_modify_vector_store = {.type = AD_V_OBJECT,
                                                 .fields = modify_vector_store_fields};
const ad_vfield ad_schema_create_vector_store_file = {.type = AD_V_OBJECT,
                                                      .fields = create_vector_store_file_fields};
const ad_vfield ad_schema_update_vector_store_file = {.type = AD_V_OBJECT,
                                                      .fields = update_vector_store_file_fields};
const ad_vfield ad_schema_create_vector_store_file_batch = {
    .type = AD_V_OBJECT, .fields = create_batch_fields, .check = check_batch};
const ad_vfield ad_schema_search_vector_store = {.type = AD_V_OBJECT, .fields = search_fields};
const ad_vfield ad_schema_file_search_filter = {
    .name = "filters", .type = AD_V_ONEOF, .alts = filter_alts, .nalts = 2};

const ad_vfield *const ad_schemas_all[] = {
    &ad_schema_create_assistant,
    &ad_schema_modify_assistant,
    &ad_schema_create_thread,
    &ad_schema_modify_thread,
    &ad_schema_create_message,
    &ad_schema_modify_message,
    &ad_schema_create_upload,
    &ad_schema_complete_upload,
    &ad_schema_create_run,
    &ad_schema_create_thread_and_run,
    &ad_schema_submit_tool_outputs,
    &ad_schema_modify_run,
    &ad_schema_tool,
    &ad_schema_response_format,
    &ad_schema_tool_resources_create,
    &ad_schema_tool_resources,
    &ad_schema_chunking_strategy,
    &ad_schema_metadata,
    &ad_schema_reasoning_effort,
    &ad_schema_create_vector_store,
    &ad_schema_modify_vector_store,
    &ad_schema_create_vector_store_file,
    &ad_schema_update_vector_store_file,
    &ad_schema_create_vector_store_file_batch,
    &ad_schema_search_vector_store,
    &ad_schema_file_search_filter,
    NULL,
};
