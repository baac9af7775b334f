/*
 * test_validate.c -- unit tests of the request validator and the object-API
 * schemas: every rule is pinned to OpenAI's exact message, code and param,
 * and real SDK bodies must pass.
 *
 * Most cases are rows of one table (schema, body, expected message/param/
 * code; a NULL message means "must validate"), each run as its own cmocka
 * test so a failure names the row. Cases that need generated bodies (long
 * strings, many items) or exercise the parser are separate functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/schemas.h"
#include "api/validate.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/str.h"

#define PARSE_MSG                                                                                  \
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using " \
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "   \
    "not valid JSON. If you have trouble figuring out how to fix this, please contact us through " \
    "our help center at help.openai.com.)"

typedef struct {
    const char *name;
    const ad_vfield *schema;
    const char *body;
    const char *msg; /* NULL: the body must validate */
    const char *param;
    const char *code;
} vcase;

/* Schemas */
#define CA (&ad_schema_create_assistant)
#define MA (&ad_schema_modify_assistant)
#define CT (&ad_schema_create_thread)
#define MT (&ad_schema_modify_thread)
#define CM (&ad_schema_create_message)
#define MM (&ad_schema_modify_message)
#define CU (&ad_schema_create_upload)
#define XU (&ad_schema_complete_upload)
#define CR (&ad_schema_create_run)
#define TR (&ad_schema_create_thread_and_run)
#define SO (&ad_schema_submit_tool_outputs)
#define MR (&ad_schema_modify_run)
#define OK NULL, NULL, NULL

static const vcase cases[] = {
    /* ---- real SDK bodies that must pass */
    {"ok_math_tutor", CA,
     "{\"name\":\"Math Tutor\",\"instructions\":\"You are a personal math tutor. Write and run "
     "code "
     "to answer math "
     "questions.\",\"tools\":[{\"type\":\"code_interpreter\"}],\"model\":\"gpt-4o\"}",
     OK},
    {"ok_function_tool", CA,
     "{\"model\":\"gpt-4o\",\"instructions\":\"You are a weather bot.\",\"tools\":[{\"type\":"
     "\"function\",\"function\":{\"name\":\"get_current_weather\",\"description\":\"Get the "
     "weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":"
     "\"string\",\"description\":\"City\"},\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]}},"
     "\"required\":[\"location\"],\"additionalProperties\":false},\"strict\":true}},{\"type\":"
     "\"function\",\"function\":{\"name\":\"get-nickname_2\",\"strict\":null}}]}",
     OK},
    {"ok_file_search_helper", CA,
     "{\"name\":\"Financial Analyst Assistant\",\"instructions\":\"You are an expert financial "
     "analyst.\",\"model\":\"gpt-4o\",\"tools\":[{\"type\":\"file_search\"}],\"tool_resources\":{"
     "\"file_search\":{\"vector_stores\":[{\"file_ids\":[\"file-abc123\",\"file-def456\"],"
     "\"chunking_strategy\":{\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":800,"
     "\"chunk_overlap_tokens\":400}},\"metadata\":{\"k\":\"v\"}}]}}}",
     OK},
    {"ok_file_search_ids_ranking", CA,
     "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{"
     "\"max_num_results\":50,\"ranking_options\":{\"ranker\":\"default_2024_08_21\","
     "\"score_threshold\":0.5}}},{\"type\":\"code_interpreter\"}],\"tool_resources\":{"
     "\"code_interpreter\":{\"file_ids\":[\"file-1\"]},\"file_search\":{\"vector_store_ids\":["
     "\"vs_1\"]}}}",
     OK},
    {"ok_helper_auto_chunking", CA,
     "{\"model\":\"gpt-4o\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{\"file_ids\":["
     "],\"chunking_strategy\":{\"type\":\"auto\"}}]}}}",
     OK},
    {"ok_empty_file_search_resources", CA,
     "{\"model\":\"gpt-4o\",\"tool_resources\":{\"file_search\":{}}}", OK},
    {"ok_nullables", CA,
     "{\"model\":\"gpt-4o\",\"name\":null,\"description\":null,\"instructions\":null,"
     "\"tool_resources\":null,\"metadata\":null,\"temperature\":null,\"top_p\":null,"
     "\"response_format\":null,\"reasoning_effort\":null}",
     OK},
    {"ok_all_fields", CA,
     "{\"model\":\"o3-mini\",\"name\":\"n\",\"description\":\"d\",\"instructions\":\"i\","
     "\"reasoning_effort\":\"high\",\"tools\":[],\"metadata\":{\"a\":\"b\"},\"temperature\":0,"
     "\"top_p\":1,\"response_format\":\"auto\"}",
     OK},
    {"ok_temperature_bounds", CA, "{\"model\":\"m\",\"temperature\":2,\"top_p\":0.0}", OK},
    {"ok_response_format_json_object", CA,
     "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"}}", OK},
    {"ok_response_format_text", CA, "{\"model\":\"m\",\"response_format\":{\"type\":\"text\"}}",
     OK},
    {"ok_response_format_json_schema", CA,
     "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
     "\"math_response\",\"description\":\"d\",\"schema\":{\"type\":\"object\",\"properties\":{"
     "\"steps\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}},\"strict\":true}}}",
     OK},
    {"ok_modify_empty", MA, "{}", OK},
    {"ok_modify_assistant", MA,
     "{\"instructions\":\"new\",\"tools\":[{\"type\":\"file_search\"}],\"tool_resources\":{"
     "\"file_search\":{\"vector_store_ids\":[\"vs_2\"]}},\"model\":\"gpt-4o\"}",
     OK},
    {"ok_thread_empty", CT, "{}", OK},
    {"ok_thread_messages", CT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"Create 3 data visualizations based on the "
     "trends in this file.\",\"attachments\":[{\"file_id\":\"file-abc\",\"tools\":[{\"type\":"
     "\"code_interpreter\"}]}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
     "\"ok\"}],\"attachments\":null,\"metadata\":{}}],\"tool_resources\":{\"code_interpreter\":{"
     "\"file_ids\":[]}},\"metadata\":{\"user\":\"u1\"}}",
     OK},
    {"ok_thread_fs_attachment", CT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"How many shares of AAPL were outstanding at "
     "the end of October 2023?\",\"attachments\":[{\"file_id\":\"file-x\",\"tools\":[{\"type\":"
     "\"file_search\"},{\"type\":\"code_interpreter\"}]}]}]}",
     OK},
    {"ok_thread_modify", MT,
     "{\"metadata\":{\"modified\":\"true\",\"user\":\"abc123\"},\"tool_resources\":{\"file_"
     "search\":"
     "{\"vector_store_ids\":[]}}}",
     OK},
    {"ok_message_string", CM, "{\"role\":\"user\",\"content\":\"I need to solve 3x + 11 = 14.\"}",
     OK},
    {"ok_message_parts", CM,
     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is in these "
     "images?\"},{\"type\":\"image_file\",\"image_file\":{\"file_id\":\"file-img\",\"detail\":"
     "\"high\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\","
     "\"detail\":\"low\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
     "iVBORw0KGgo=\"}}]}",
     OK},
    {"ok_message_modify", MM, "{\"metadata\":{\"modified\":\"true\"}}", OK},
    {"ok_upload", CU,
     "{\"purpose\":\"assistants\",\"filename\":\"training_examples.jsonl\",\"bytes\":2147483648,"
     "\"mime_type\":\"text/jsonl\",\"expires_after\":{\"anchor\":\"created_at\",\"seconds\":3600}}",
     OK},
    {"ok_upload_user_data", CU,
     "{\"purpose\":\"user_data\",\"filename\":\"a.pdf\",\"bytes\":1,\"mime_type\":"
     "\"application/pdf\"}",
     OK},
    {"ok_complete_upload", XU, "{\"part_ids\":[\"part_def456\",\"part_ghi789\"],\"md5\":\"abc\"}",
     OK},
    {"ok_duplicate_key_last_wins", CA, "{\"name\":1,\"name\":\"ok\",\"model\":\"m\"}", OK},

    /* ---- unknown / missing */
    {"unknown_top", CA, "{\"model\":\"gpt-4o\",\"file_ids\":[]}", "Unknown parameter: 'file_ids'.",
     "file_ids", "unknown_parameter"},
    {"unknown_order_is_body_order", CA, "{\"zzz\":1,\"aaa\":2}", "Unknown parameter: 'zzz'.", "zzz",
     "unknown_parameter"},
    {"unknown_before_missing", CA, "{\"foo\":1}", "Unknown parameter: 'foo'.", "foo",
     "unknown_parameter"},
    {"unknown_in_tool", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"code_interpreter\",\"foo\":1}]}",
     "Unknown parameter: 'tools[0].foo'.", "tools[0].foo", "unknown_parameter"},
    {"unknown_in_function", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"code_interpreter\"},{\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"bar\":true}}]}",
     "Unknown parameter: 'tools[1].function.bar'.", "tools[1].function.bar", "unknown_parameter"},
    {"missing_model", CA, "{\"name\":\"x\"}", "Missing required parameter: 'model'.", "model",
     "missing_required_parameter"},
    {"missing_tool_type", CA, "{\"model\":\"m\",\"tools\":[{}]}",
     "Missing required parameter: 'tools[0].type'.", "tools[0].type", "missing_required_parameter"},
    {"missing_function", CA, "{\"model\":\"m\",\"tools\":[{\"type\":\"function\"}]}",
     "Missing required parameter: 'tools[0].function'.", "tools[0].function",
     "missing_required_parameter"},
    {"missing_function_name", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]}",
     "Missing required parameter: 'tools[0].function.name'.", "tools[0].function.name",
     "missing_required_parameter"},

    /* ---- types */
    {"type_name_int", CA, "{\"model\":\"m\",\"name\":5}",
     "Invalid type for 'name': expected a string, but got an integer instead.", "name",
     "invalid_type"},
    {"type_model_null", CA, "{\"model\":null}",
     "Invalid type for 'model': expected a string, but got null instead.", "model", "invalid_type"},
    {"type_tools_object", CA, "{\"model\":\"m\",\"tools\":{}}",
     "Invalid type for 'tools': expected an array, but got an object instead.", "tools",
     "invalid_type"},
    {"type_tools_null", CA, "{\"model\":\"m\",\"tools\":null}",
     "Invalid type for 'tools': expected an array, but got null instead.", "tools", "invalid_type"},
    {"type_tool_string", CA, "{\"model\":\"m\",\"tools\":[\"code_interpreter\"]}",
     "Invalid type for 'tools[0]': expected an object, but got a string instead.", "tools[0]",
     "invalid_type"},
    {"type_tool_type_int", CA, "{\"model\":\"m\",\"tools\":[{\"type\":5}]}",
     "Invalid type for 'tools[0].type': expected a string, but got an integer instead.",
     "tools[0].type", "invalid_type"},
    {"type_temperature_string", CA, "{\"model\":\"m\",\"temperature\":\"hot\"}",
     "Invalid type for 'temperature': expected a decimal, but got a string instead.", "temperature",
     "invalid_type"},
    {"type_temperature_bool", CA, "{\"model\":\"m\",\"temperature\":true}",
     "Invalid type for 'temperature': expected a decimal, but got a boolean instead.",
     "temperature", "invalid_type"},
    {"type_integer_got_decimal", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"max_num_results\":"
     "1.5}}]}",
     "Invalid type for 'tools[0].file_search.max_num_results': expected an integer, but got a "
     "decimal instead.",
     "tools[0].file_search.max_num_results", "invalid_type"},
    {"type_strict_string", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":"
     "\"yes\"}}]}",
     "Invalid type for 'tools[0].function.strict': expected a boolean, but got a string instead.",
     "tools[0].function.strict", "invalid_type"},
    {"type_parameters_string", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"parameters\":\"{}\"}}]}",
     "Invalid type for 'tools[0].function.parameters': expected an object, but got a string "
     "instead.",
     "tools[0].function.parameters", "invalid_type"},
    {"type_response_format_int", CA, "{\"model\":\"m\",\"response_format\":5}",
     "Invalid type for 'response_format': expected one of a string or an object, but got an "
     "integer instead.",
     "response_format", "invalid_type"},
    {"type_file_ids_items", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"code_interpreter\":{\"file_ids\":[\"a\",7]}}}",
     "Invalid type for 'tool_resources.code_interpreter.file_ids[1]': expected a string, but got "
     "an integer instead.",
     "tool_resources.code_interpreter.file_ids[1]", "invalid_type"},
    {"type_code_interpreter_null", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"code_interpreter\":null}}",
     "Invalid type for 'tool_resources.code_interpreter': expected an object, but got null "
     "instead.",
     "tool_resources.code_interpreter", "invalid_type"},

    /* ---- enums / tags */
    {"enum_tool_type", CA, "{\"model\":\"m\",\"tools\":[{\"type\":\"retrieval\"}]}",
     "Invalid value: 'retrieval'. Supported values are: 'code_interpreter', 'file_search', and "
     "'function'.",
     "tools[0].type", "invalid_value"},
    {"enum_ranker", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"ranking_options\":{"
     "\"ranker\":\"best\",\"score_threshold\":0}}}]}",
     "Invalid value: 'best'. Supported values are: 'auto' and 'default_2024_08_21'.",
     "tools[0].file_search.ranking_options.ranker", "invalid_value"},
    {"enum_reasoning_effort", CA, "{\"model\":\"m\",\"reasoning_effort\":\"extreme\"}",
     "Invalid value: 'extreme'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', "
     "'xhigh', and 'max'.",
     "reasoning_effort", "invalid_value"},
    {"enum_response_format_string", CA, "{\"model\":\"m\",\"response_format\":\"json\"}",
     "Invalid value: 'json'. Supported values are: 'auto'.", "response_format", "invalid_value"},
    {"enum_response_format_type", CA, "{\"model\":\"m\",\"response_format\":{\"type\":\"xml\"}}",
     "Invalid value: 'xml'. Supported values are: 'text', 'json_object', and 'json_schema'.",
     "response_format.type", "invalid_value"},
    {"enum_role", CM, "{\"role\":\"system\",\"content\":\"hi\"}",
     "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.", "role",
     "invalid_value"},
    {"enum_content_part", CM, "{\"role\":\"user\",\"content\":[{\"type\":\"refusal\"}]}",
     "Invalid value: 'refusal'. Supported values are: 'image_file', 'image_url', and 'text'.",
     "content[0].type", "invalid_value"},
    {"enum_detail", CM,
     "{\"role\":\"user\",\"content\":[{\"type\":\"image_file\",\"image_file\":{\"file_id\":\"f\","
     "\"detail\":\"ultra\"}}]}",
     "Invalid value: 'ultra'. Supported values are: 'auto', 'low', and 'high'.",
     "content[0].image_file.detail", "invalid_value"},
    {"enum_attachment_tool", CT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\","
     "\"attachments\":[{\"file_id\":\"f\",\"tools\":[{\"type\":\"function\"}]}]}]}",
     "Invalid value: 'function'. Supported values are: 'code_interpreter' and 'file_search'.",
     "messages[1].attachments[0].tools[0].type", "invalid_value"},
    {"enum_chunking", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{"
     "\"chunking_strategy\":{\"type\":\"semantic\"}}]}}}",
     "Invalid value: 'semantic'. Supported values are: 'auto' and 'static'.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.type", "invalid_value"},
    {"enum_purpose", CU,
     "{\"purpose\":\"fun\",\"filename\":\"a\",\"bytes\":1,\"mime_type\":\"text/plain\"}",
     "Invalid value: 'fun'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', "
     "'user_data', and 'evals'.",
     "purpose", "invalid_value"},
    {"enum_anchor", CU,
     "{\"purpose\":\"batch\",\"filename\":\"a\",\"bytes\":1,\"mime_type\":\"text/plain\","
     "\"expires_after\":{\"anchor\":\"last_active_at\",\"seconds\":3600}}",
     "Invalid value: 'last_active_at'. Supported values are: 'created_at'.", "expires_after.anchor",
     "invalid_value"},

    /* ---- numbers */
    {"num_temperature_above", CA, "{\"model\":\"m\",\"temperature\":3}",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 "
     "instead.",
     "temperature", "decimal_above_max_value"},
    {"num_temperature_above_real", CA, "{\"model\":\"m\",\"temperature\":2.5}",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 "
     "instead.",
     "temperature", "decimal_above_max_value"},
    {"num_temperature_below", CA, "{\"model\":\"m\",\"temperature\":-0.5}",
     "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -0.5 "
     "instead.",
     "temperature", "decimal_below_min_value"},
    {"num_top_p_above", CA, "{\"model\":\"m\",\"top_p\":1.1}",
     "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.1 instead.",
     "top_p", "decimal_above_max_value"},
    {"num_top_p_shortest_repr", CA, "{\"model\":\"m\",\"top_p\":1.0000000000000002}",
     "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got "
     "1.0000000000000002 instead.",
     "top_p", "decimal_above_max_value"},
    {"num_top_p_exponent", CA, "{\"model\":\"m\",\"top_p\":1e300}",
     "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1e+300 "
     "instead.",
     "top_p", "decimal_above_max_value"},
    {"num_max_results_above", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"max_num_results\":"
     "51}}]}",
     "Invalid 'tools[0].file_search.max_num_results': integer above maximum value. Expected a "
     "value <= 50, but got 51 instead.",
     "tools[0].file_search.max_num_results", "integer_above_max_value"},
    {"num_max_results_below", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"max_num_results\":"
     "0}}]}",
     "Invalid 'tools[0].file_search.max_num_results': integer below minimum value. Expected a "
     "value >= 1, but got 0 instead.",
     "tools[0].file_search.max_num_results", "integer_below_min_value"},
    {"num_max_results_huge", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"max_num_results\":"
     "10000000000}}]}",
     "Invalid 'tools[0].file_search.max_num_results': integer above maximum value. Expected a "
     "value <= 50, but got 10000000000 instead.",
     "tools[0].file_search.max_num_results", "integer_above_max_value"},
    {"num_score_threshold", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"ranking_options\":{"
     "\"score_threshold\":1.5}}}]}",
     "Invalid 'tools[0].file_search.ranking_options.score_threshold': decimal above maximum "
     "value. Expected a value <= 1, but got 1.5 instead.",
     "tools[0].file_search.ranking_options.score_threshold", "decimal_above_max_value"},
    {"missing_score_threshold", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"file_search\",\"file_search\":{\"ranking_options\":{"
     "\"ranker\":\"auto\"}}}]}",
     "Missing required parameter: 'tools[0].file_search.ranking_options.score_threshold'.",
     "tools[0].file_search.ranking_options.score_threshold", "missing_required_parameter"},
    {"num_expires_seconds_below", CU,
     "{\"purpose\":\"batch\",\"filename\":\"a\",\"bytes\":1,\"mime_type\":\"text/plain\","
     "\"expires_after\":{\"anchor\":\"created_at\",\"seconds\":100}}",
     "Invalid 'expires_after.seconds': integer below minimum value. Expected a value >= 3600, but "
     "got 100 instead.",
     "expires_after.seconds", "integer_below_min_value"},
    {"num_expires_seconds_above", CU,
     "{\"purpose\":\"batch\",\"filename\":\"a\",\"bytes\":1,\"mime_type\":\"text/plain\","
     "\"expires_after\":{\"anchor\":\"created_at\",\"seconds\":2592001}}",
     "Invalid 'expires_after.seconds': integer above maximum value. Expected a value <= 2592000, "
     "but got 2592001 instead.",
     "expires_after.seconds", "integer_above_max_value"},
    {"chunk_size_below", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{"
     "\"chunking_strategy\":{\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":50,"
     "\"chunk_overlap_tokens\":0}}}]}}}",
     "Invalid 'tool_resources.file_search.vector_stores[0].chunking_strategy.static.max_chunk_"
     "size_tokens': integer below minimum value. Expected a value >= 100, but got 50 instead.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.static.max_chunk_size_tokens",
     "integer_below_min_value"},

    /* ---- strings */
    {"str_function_name_pattern", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get "
     "weather\"}}]}",
     "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that "
     "matches the pattern '^[a-zA-Z0-9_-]+$'.",
     "tools[0].function.name", "invalid_value"},
    {"str_function_name_empty", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"\"}}]}",
     "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that "
     "matches the pattern '^[a-zA-Z0-9_-]+$'.",
     "tools[0].function.name", "invalid_value"},
    {"str_function_name_too_long", CA,
     "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\""
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}]}",
     "Invalid 'tools[0].function.name': string too long. Expected a string with maximum length "
     "64, but got a string with length 65 instead.",
     "tools[0].function.name", "string_above_max_length"},
    {"str_json_schema_name", CA,
     "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
     "\"a.b\"}}}",
     "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a "
     "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
     "response_format.json_schema.name", "invalid_value"},
    {"missing_json_schema", CA, "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\"}}",
     "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema",
     "missing_required_parameter"},
    {"missing_json_schema_name", CA,
     "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}",
     "Missing required parameter: 'response_format.json_schema.name'.",
     "response_format.json_schema.name", "missing_required_parameter"},

    /* ---- arrays and tool resources */
    {"arr_vector_store_ids_too_long", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_store_ids\":[\"a\",\"b\"]}}}",
     "Invalid 'tool_resources.file_search.vector_store_ids': array too long. Expected an array "
     "with maximum length 1, but got an array with length 2 instead.",
     "tool_resources.file_search.vector_store_ids", "array_above_max_length"},
    {"arr_vector_stores_too_long", CT,
     "{\"tool_resources\":{\"file_search\":{\"vector_stores\":[{},{}]}}}",
     "Invalid 'tool_resources.file_search.vector_stores': array too long. Expected an array with "
     "maximum length 1, but got an array with length 2 instead.",
     "tool_resources.file_search.vector_stores", "array_above_max_length"},
    {"xor_ids_and_helper", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_store_ids\":[\"vs_1\"],"
     "\"vector_stores\":[{\"file_ids\":[\"f\"]}]}}}",
     "Invalid 'tool_resources.file_search': only one of 'vector_store_ids' or 'vector_stores' may "
     "be provided, but got both.",
     "tool_resources.file_search", "invalid_value"},
    {"helper_rejected_on_modify_assistant", MA,
     "{\"tool_resources\":{\"file_search\":{\"vector_stores\":[{\"file_ids\":[\"f\"]}]}}}",
     "Unknown parameter: 'tool_resources.file_search.vector_stores'.",
     "tool_resources.file_search.vector_stores", "unknown_parameter"},
    {"helper_rejected_on_modify_thread", MT,
     "{\"tool_resources\":{\"file_search\":{\"vector_stores\":[]}}}",
     "Unknown parameter: 'tool_resources.file_search.vector_stores'.",
     "tool_resources.file_search.vector_stores", "unknown_parameter"},
    {"chunk_overlap_above_half", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{"
     "\"chunking_strategy\":{\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":800,"
     "\"chunk_overlap_tokens\":401}}}]}}}",
     "Invalid 'tool_resources.file_search.vector_stores[0].chunking_strategy.static.chunk_overlap_"
     "tokens': integer above maximum value. Expected a value <= 400 (half of "
     "max_chunk_size_tokens), but got 401 instead.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.static.chunk_overlap_tokens",
     "integer_above_max_value"},
    {"chunk_overlap_negative", CT,
     "{\"tool_resources\":{\"file_search\":{\"vector_stores\":[{\"chunking_strategy\":{\"type\":"
     "\"static\",\"static\":{\"max_chunk_size_tokens\":800,\"chunk_overlap_tokens\":-1}}}]}}}",
     "Invalid 'tool_resources.file_search.vector_stores[0].chunking_strategy.static.chunk_overlap_"
     "tokens': integer below minimum value. Expected a value >= 0, but got -1 instead.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.static.chunk_overlap_tokens",
     "integer_below_min_value"},
    {"chunk_static_missing", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{"
     "\"chunking_strategy\":{\"type\":\"static\"}}]}}}",
     "Missing required parameter: "
     "'tool_resources.file_search.vector_stores[0].chunking_strategy.static'.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.static",
     "missing_required_parameter"},
    {"chunk_auto_extra_key", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{"
     "\"chunking_strategy\":{\"type\":\"auto\",\"static\":{}}}]}}}",
     "Unknown parameter: 'tool_resources.file_search.vector_stores[0].chunking_strategy.static'.",
     "tool_resources.file_search.vector_stores[0].chunking_strategy.static", "unknown_parameter"},
    {"helper_metadata_type", CA,
     "{\"model\":\"m\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[{\"metadata\":{"
     "\"k\":1}}]}}}",
     "Invalid type for 'tool_resources.file_search.vector_stores[0].metadata.k': expected a "
     "string, but got an integer instead.",
     "tool_resources.file_search.vector_stores[0].metadata.k", "invalid_type"},

    /* ---- messages */
    {"msg_missing_role", CM, "{\"content\":\"hi\"}", "Missing required parameter: 'role'.", "role",
     "missing_required_parameter"},
    {"msg_missing_content", CM, "{\"role\":\"user\"}", "Missing required parameter: 'content'.",
     "content", "missing_required_parameter"},
    {"msg_content_int", CM, "{\"role\":\"user\",\"content\":5}",
     "Invalid type for 'content': expected one of a string or array of objects, but got an "
     "integer instead.",
     "content", "invalid_type"},
    {"msg_content_object", CM, "{\"role\":\"user\",\"content\":{\"type\":\"text\"}}",
     "Invalid type for 'content': expected one of a string or array of objects, but got an "
     "object instead.",
     "content", "invalid_type"},
    {"msg_content_null", CM, "{\"role\":\"user\",\"content\":null}",
     "Invalid type for 'content': expected one of a string or array of objects, but got null "
     "instead.",
     "content", "invalid_type"},
    {"msg_content_empty_string", CM, "{\"role\":\"user\",\"content\":\"\"}",
     "Invalid 'content': string too short. Expected a string with minimum length 1, but got an "
     "empty string instead.",
     "content", "string_below_min_length"},
    {"msg_content_empty_array", CM, "{\"role\":\"user\",\"content\":[]}",
     "Invalid 'content': array too short. Expected an array with minimum length 1, but got an "
     "empty array instead.",
     "content", "array_below_min_length"},
    {"msg_part_string", CM, "{\"role\":\"user\",\"content\":[\"hi\"]}",
     "Invalid type for 'content[0]': expected an object, but got a string instead.", "content[0]",
     "invalid_type"},
    {"msg_part_missing_text", CM, "{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}",
     "Missing required parameter: 'content[0].text'.", "content[0].text",
     "missing_required_parameter"},
    {"msg_part_response_shape", CM,
     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":{\"value\":\"hi\","
     "\"annotations\":[]}}]}",
     "Invalid type for 'content[0].text': expected a string, but got an object instead.",
     "content[0].text", "invalid_type"},
    {"msg_image_missing_file_id", CM,
     "{\"role\":\"user\",\"content\":[{\"type\":\"image_file\",\"image_file\":{}}]}",
     "Missing required parameter: 'content[0].image_file.file_id'.",
     "content[0].image_file.file_id", "missing_required_parameter"},
    {"msg_image_url_invalid", CM,
     "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"not a "
     "url\"}}]}",
     "Invalid 'content[0].image_url.url': Expected a valid URL, but got a value with an invalid "
     "format.",
     "content[0].image_url.url", "invalid_value"},
    {"msg_attachment_file_ids_v1", CM,
     "{\"role\":\"user\",\"content\":\"hi\",\"file_ids\":[\"file-1\"]}",
     "Unknown parameter: 'file_ids'.", "file_ids", "unknown_parameter"},
    {"msg_attachment_tools_type", CM,
     "{\"role\":\"user\",\"content\":\"hi\",\"attachments\":[{\"file_id\":\"f\",\"tools\":"
     "\"code_interpreter\"}]}",
     "Invalid type for 'attachments[0].tools': expected an array, but got a string instead.",
     "attachments[0].tools", "invalid_type"},
    {"msg_modify_role", MM, "{\"role\":\"user\"}", "Unknown parameter: 'role'.", "role",
     "unknown_parameter"},
    {"thread_message_missing_role", CT, "{\"messages\":[{\"content\":\"x\"}]}",
     "Missing required parameter: 'messages[0].role'.", "messages[0].role",
     "missing_required_parameter"},
    {"thread_messages_not_array", CT, "{\"messages\":\"hello\"}",
     "Invalid type for 'messages': expected an array, but got a string instead.", "messages",
     "invalid_type"},

    /* ---- metadata */
    {"meta_not_object", MT, "{\"metadata\":\"x\"}",
     "Invalid type for 'metadata': expected an object, but got a string instead.", "metadata",
     "invalid_type"},
    {"meta_array", MM, "{\"metadata\":[]}",
     "Invalid type for 'metadata': expected an object, but got an array instead.", "metadata",
     "invalid_type"},
    {"meta_value_type", MM, "{\"metadata\":{\"ok\":\"1\",\"count\":2}}",
     "Invalid type for 'metadata.count': expected a string, but got an integer instead.",
     "metadata.count", "invalid_type"},
    {"meta_value_null", MM, "{\"metadata\":{\"k\":null}}",
     "Invalid type for 'metadata.k': expected a string, but got null instead.", "metadata.k",
     "invalid_type"},
    {"meta_null_ok", MM, "{\"metadata\":null}", OK},

    /* ---- uploads */
    {"upload_missing_bytes", CU, "{\"purpose\":\"batch\",\"filename\":\"a\",\"mime_type\":\"x\"}",
     "Missing required parameter: 'bytes'.", "bytes", "missing_required_parameter"},
    {"upload_bytes_string", CU,
     "{\"purpose\":\"batch\",\"filename\":\"a\",\"bytes\":\"12\",\"mime_type\":\"x\"}",
     "Invalid type for 'bytes': expected an integer, but got a string instead.", "bytes",
     "invalid_type"},
    {"upload_expires_missing_seconds", CU,
     "{\"purpose\":\"batch\",\"filename\":\"a\",\"bytes\":1,\"mime_type\":\"x\",\"expires_after\":"
     "{\"anchor\":\"created_at\"}}",
     "Missing required parameter: 'expires_after.seconds'.", "expires_after.seconds",
     "missing_required_parameter"},
    {"complete_missing_part_ids", XU, "{\"md5\":\"x\"}", "Missing required parameter: 'part_ids'.",
     "part_ids", "missing_required_parameter"},
    {"complete_part_id_type", XU, "{\"part_ids\":[1]}",
     "Invalid type for 'part_ids[0]': expected a string, but got an integer instead.",
     "part_ids[0]", "invalid_type"},
    {"complete_part_ids_null", XU, "{\"part_ids\":null}",
     "Invalid type for 'part_ids': expected an array, but got null instead.", "part_ids",
     "invalid_type"},

    /* ---- runs: real SDK bodies */
    {"run_ok_stream", CR, "{\"assistant_id\":\"asst_1\",\"stream\":true}", OK},
    {"run_ok_minimal", CR, "{\"assistant_id\":\"asst_abc123\"}", OK},
    {"run_ok_overrides", CR,
     "{\"assistant_id\":\"asst_1\",\"model\":\"gpt-4o\",\"reasoning_effort\":\"low\","
     "\"instructions\":\"Please address the user as Jane Doe.\",\"additional_instructions\":"
     "\"The user has a premium account.\",\"tools\":[{\"type\":\"code_interpreter\"},{\"type\":"
     "\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}}],"
     "\"metadata\":{\"k\":\"v\"},\"temperature\":0.2,\"top_p\":1,\"stream\":false,"
     "\"max_prompt_tokens\":256,\"max_completion_tokens\":1000,\"truncation_strategy\":{\"type\":"
     "\"last_messages\",\"last_messages\":10},\"tool_choice\":{\"type\":\"function\","
     "\"function\":{\"name\":\"get_weather\"}},\"parallel_tool_calls\":false,"
     "\"response_format\":{\"type\":\"json_object\"}}",
     OK},
    {"run_ok_nulls", CR,
     "{\"assistant_id\":\"asst_1\",\"model\":null,\"reasoning_effort\":null,\"instructions\":null,"
     "\"additional_instructions\":null,\"additional_messages\":null,\"tools\":null,\"metadata\":"
     "null,\"temperature\":null,\"top_p\":null,\"stream\":null,\"max_prompt_tokens\":null,"
     "\"max_completion_tokens\":null,\"truncation_strategy\":null,\"tool_choice\":null,"
     "\"response_format\":null}",
     OK},
    {"run_ok_additional_messages", CR,
     "{\"assistant_id\":\"asst_1\",\"additional_messages\":[{\"role\":\"user\",\"content\":[{"
     "\"type\":\"text\",\"text\":\"What is in this image?\"},{\"type\":\"image_url\","
     "\"image_url\":{\"url\":\"https://example.com/cat.png\",\"detail\":\"low\"}}],"
     "\"attachments\":[{\"file_id\":\"file-1\",\"tools\":[{\"type\":\"file_search\"}]}]},{"
     "\"role\":\"assistant\",\"content\":\"ok\"}]}",
     OK},
    {"run_ok_tool_choice_modes", CR,
     "{\"assistant_id\":\"asst_1\",\"tool_choice\":\"required\",\"truncation_strategy\":{\"type\":"
     "\"auto\",\"last_messages\":null}}",
     OK},
    {"run_ok_tool_choice_file_search", CR,
     "{\"assistant_id\":\"asst_1\",\"tool_choice\":{\"type\":\"file_search\"}}", OK},
    {"tar_ok_thread_messages", TR,
     "{\"assistant_id\":\"asst_1\",\"thread\":{\"messages\":[{\"role\":\"user\",\"content\":"
     "\"Explain deep learning to a 5 year old.\"},{\"role\":\"user\",\"content\":[{\"type\":"
     "\"text\",\"text\":\"And briefly.\"}]}],\"metadata\":{\"a\":\"b\"}},\"tool_resources\":{"
     "\"code_interpreter\":{\"file_ids\":[\"file-1\"]},\"file_search\":{\"vector_store_ids\":["
     "\"vs_1\"]}},\"stream\":true,\"tool_choice\":\"auto\",\"parallel_tool_calls\":true}",
     OK},
    {"tar_ok_thread_helper", TR,
     "{\"assistant_id\":\"asst_1\",\"thread\":{\"tool_resources\":{\"file_search\":{"
     "\"vector_stores\":[{\"file_ids\":[\"file-1\"]}]}}},\"tool_resources\":null,\"model\":null}",
     OK},
    {"sto_ok", SO,
     "{\"tool_outputs\":[{\"tool_call_id\":\"call_001\",\"output\":\"70 degrees and sunny.\"},{"
     "\"tool_call_id\":\"call_002\",\"output\":\"\"}],\"stream\":true}",
     OK},
    {"sto_ok_stream_null", SO, "{\"tool_outputs\":[],\"stream\":null}", OK},
    {"mr_ok", MR, "{\"metadata\":{\"user_id\":\"user_abc123\"}}", OK},
    {"mr_ok_empty", MR, "{}", OK},

    /* ---- runs: errors */
    {"run_missing_assistant_id", CR, "{\"stream\":true}",
     "Missing required parameter: 'assistant_id'.", "assistant_id", "missing_required_parameter"},
    {"run_unknown_param", CR, "{\"assistant_id\":\"asst_1\",\"foo\":1}",
     "Unknown parameter: 'foo'.", "foo", "unknown_parameter"},
    {"run_thread_id_in_body", CR, "{\"assistant_id\":\"asst_1\",\"thread_id\":\"thread_1\"}",
     "Unknown parameter: 'thread_id'.", "thread_id", "unknown_parameter"},
    {"run_assistant_id_null", CR, "{\"assistant_id\":null}",
     "Invalid type for 'assistant_id': expected a string, but got null instead.", "assistant_id",
     "invalid_type"},
    {"run_max_prompt_tokens_below", CR, "{\"assistant_id\":\"asst_1\",\"max_prompt_tokens\":100}",
     "Invalid 'max_prompt_tokens': integer below minimum value. Expected a value >= 256, but got "
     "100 instead.",
     "max_prompt_tokens", "integer_below_min_value"},
    {"run_max_completion_tokens_decimal", CR,
     "{\"assistant_id\":\"asst_1\",\"max_completion_tokens\":300.5}",
     "Invalid type for 'max_completion_tokens': expected an integer, but got a decimal instead.",
     "max_completion_tokens", "invalid_type"},
    {"run_stream_string", CR, "{\"assistant_id\":\"asst_1\",\"stream\":\"true\"}",
     "Invalid type for 'stream': expected a boolean, but got a string instead.", "stream",
     "invalid_type"},
    {"run_parallel_null", CR, "{\"assistant_id\":\"asst_1\",\"parallel_tool_calls\":null}",
     "Invalid type for 'parallel_tool_calls': expected a boolean, but got null instead.",
     "parallel_tool_calls", "invalid_type"},
    {"run_tool_choice_invalid", CR, "{\"assistant_id\":\"asst_1\",\"tool_choice\":\"sometimes\"}",
     "Invalid value: 'sometimes'. Supported values are: 'none', 'auto', and 'required'.",
     "tool_choice", "invalid_value"},
    {"run_tool_choice_type", CR, "{\"assistant_id\":\"asst_1\",\"tool_choice\":{\"type\":\"web\"}}",
     "Invalid value: 'web'. Supported values are: 'function', 'code_interpreter', and "
     "'file_search'.",
     "tool_choice.type", "invalid_value"},
    {"run_tool_choice_int", CR, "{\"assistant_id\":\"asst_1\",\"tool_choice\":1}",
     "Invalid type for 'tool_choice': expected one of a string or an object, but got an integer "
     "instead.",
     "tool_choice", "invalid_type"},
    {"run_tool_choice_function_missing", CR,
     "{\"assistant_id\":\"asst_1\",\"tool_choice\":{\"type\":\"function\"}}",
     "Missing required parameter: 'tool_choice.function'.", "tool_choice.function",
     "missing_required_parameter"},
    {"run_tool_choice_function_name_missing", CR,
     "{\"assistant_id\":\"asst_1\",\"tool_choice\":{\"type\":\"function\",\"function\":{}}}",
     "Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name",
     "missing_required_parameter"},
    {"run_truncation_type", CR,
     "{\"assistant_id\":\"asst_1\",\"truncation_strategy\":{\"type\":\"oldest\"}}",
     "Invalid value: 'oldest'. Supported values are: 'auto' and 'last_messages'.",
     "truncation_strategy.type", "invalid_value"},
    {"run_truncation_missing_type", CR,
     "{\"assistant_id\":\"asst_1\",\"truncation_strategy\":{\"last_messages\":5}}",
     "Missing required parameter: 'truncation_strategy.type'.", "truncation_strategy.type",
     "missing_required_parameter"},
    {"run_truncation_last_messages_zero", CR,
     "{\"assistant_id\":\"asst_1\",\"truncation_strategy\":{\"type\":\"last_messages\","
     "\"last_messages\":0}}",
     "Invalid 'truncation_strategy.last_messages': integer below minimum value. Expected a value "
     ">= 1, but got 0 instead.",
     "truncation_strategy.last_messages", "integer_below_min_value"},
    {"run_additional_message_role", CR,
     "{\"assistant_id\":\"asst_1\",\"additional_messages\":[{\"role\":\"system\",\"content\":"
     "\"x\"}]}",
     "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
     "additional_messages[0].role", "invalid_value"},
    {"run_temperature_above", CR, "{\"assistant_id\":\"asst_1\",\"temperature\":2.1}",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.1 "
     "instead.",
     "temperature", "decimal_above_max_value"},
    {"tar_no_additional_messages", TR, "{\"assistant_id\":\"asst_1\",\"additional_messages\":[]}",
     "Unknown parameter: 'additional_messages'.", "additional_messages", "unknown_parameter"},
    {"tar_no_reasoning_effort", TR, "{\"assistant_id\":\"asst_1\",\"reasoning_effort\":\"low\"}",
     "Unknown parameter: 'reasoning_effort'.", "reasoning_effort", "unknown_parameter"},
    {"tar_missing_assistant_id", TR, "{\"thread\":{}}",
     "Missing required parameter: 'assistant_id'.", "assistant_id", "missing_required_parameter"},
    {"tar_thread_null", TR, "{\"assistant_id\":\"asst_1\",\"thread\":null}",
     "Invalid type for 'thread': expected an object, but got null instead.", "thread",
     "invalid_type"},
    {"tar_thread_message_missing_content", TR,
     "{\"assistant_id\":\"asst_1\",\"thread\":{\"messages\":[{\"role\":\"user\"}]}}",
     "Missing required parameter: 'thread.messages[0].content'.", "thread.messages[0].content",
     "missing_required_parameter"},
    {"tar_tool_resources_ids_only", TR,
     "{\"assistant_id\":\"asst_1\",\"tool_resources\":{\"file_search\":{\"vector_stores\":[]}}}",
     "Unknown parameter: 'tool_resources.file_search.vector_stores'.",
     "tool_resources.file_search.vector_stores", "unknown_parameter"},
    {"sto_missing_tool_outputs", SO, "{\"stream\":true}",
     "Missing required parameter: 'tool_outputs'.", "tool_outputs", "missing_required_parameter"},
    {"sto_output_not_string", SO,
     "{\"tool_outputs\":[{\"tool_call_id\":\"call_1\",\"output\":42}]}",
     "Invalid type for 'tool_outputs[0].output': expected a string, but got an integer instead.",
     "tool_outputs[0].output", "invalid_type"},
    {"sto_output_object", SO,
     "{\"tool_outputs\":[{\"tool_call_id\":\"call_1\",\"output\":\"a\"},{\"tool_call_id\":"
     "\"call_2\",\"output\":{\"temp\":70}}]}",
     "Invalid type for 'tool_outputs[1].output': expected a string, but got an object instead.",
     "tool_outputs[1].output", "invalid_type"},
    {"sto_unknown_in_output", SO,
     "{\"tool_outputs\":[{\"tool_call_id\":\"call_1\",\"result\":\"x\"}]}",
     "Unknown parameter: 'tool_outputs[0].result'.", "tool_outputs[0].result", "unknown_parameter"},
    {"sto_tool_outputs_object", SO, "{\"tool_outputs\":{\"tool_call_id\":\"call_1\"}}",
     "Invalid type for 'tool_outputs': expected an array, but got an object instead.",
     "tool_outputs", "invalid_type"},
    {"mr_unknown", MR, "{\"metadata\":{},\"status\":\"cancelled\"}", "Unknown parameter: 'status'.",
     "status", "unknown_parameter"},
    {"mr_metadata_value", MR, "{\"metadata\":{\"n\":1}}",
     "Invalid type for 'metadata.n': expected a string, but got an integer instead.", "metadata.n",
     "invalid_type"},
};

/* ---------------------------------------------------------------- helpers */

static void assert_err(const ad_verr *err, const char *msg, const char *param, const char *code)
{
    assert_string_equal(err->message, msg);
    assert_string_equal(err->param, param ? param : "");
    if (code) {
        assert_non_null(err->code);
        assert_string_equal(err->code, code);
    } else {
        assert_null(err->code);
    }
    assert_true(ad_utf8_valid(err->message, strlen(err->message)));
    assert_true(ad_utf8_valid(err->param, strlen(err->param)));
}

static void run_case(void **state)
{
    const vcase *c = *state;
    ad_verr err;
    json_t *body = NULL;
    if (!ad_json_parse_body(c->body, strlen(c->body), &body, &err))
        fail_msg("%s: body does not parse: %s", c->name, err.message);
    bool ok = ad_validate(body, c->schema, &err);
    json_decref(body);
    if (!c->msg) {
        if (!ok)
            fail_msg("%s: unexpected error: %s (param %s)", c->name, err.message, err.param);
        return;
    }
    if (ok)
        fail_msg("%s: validated, expected: %s", c->name, c->msg);
    assert_err(&err, c->msg, c->param, c->code);
}

/* Validates a jansson value built by the test (takes the reference). */
static bool validate_new(json_t *v, const ad_vfield *schema, ad_verr *err)
{
    bool ok = ad_validate(v, schema, err);
    json_decref(v);
    return ok;
}

static json_t *repeat_str(const char *unit, size_t n)
{
    ad_buf b;
    ad_buf_init(&b, 4u << 20);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ad_buf_addstr(&b, unit), AD_OK);
    json_t *s = json_string(ad_buf_str(&b));
    ad_buf_free(&b);
    assert_non_null(s);
    return s;
}

static json_t *assistant_with(const char *key, json_t *value)
{
    json_t *o = json_pack("{s:s}", "model", "gpt-4o");
    json_object_set_new(o, key, value);
    return o;
}

/* ---------------------------------------------------------------- parser tests */

static void expect_parse_fail(const char *body, size_t len, const char *msg, const char *code)
{
    json_t *v = (json_t *)1;
    ad_verr err;
    assert_false(ad_json_parse_body(body, len, &v, &err));
    assert_null(v);
    assert_err(&err, msg, "", code);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse_fail("", 0, PARSE_MSG, NULL);
    expect_parse_fail(NULL, 0, PARSE_MSG, NULL);
    expect_parse_fail("   \n", 4, PARSE_MSG, NULL);
    expect_parse_fail("{\"model\":", 9, PARSE_MSG, NULL);
    expect_parse_fail("{} x", 4, PARSE_MSG, NULL);
    expect_parse_fail("{}{}", 4, PARSE_MSG, NULL);
    expect_parse_fail("{'a':1}", 7, PARSE_MSG, NULL);
    expect_parse_fail("{\"a\":\"\xff\"}", 9, PARSE_MSG, NULL);      /* invalid UTF-8 */
    expect_parse_fail("{\"a\":\"\xc0\xaf\"}", 10, PARSE_MSG, NULL); /* overlong */
    expect_parse_fail("{\"a\":\"\\u0000\"}", 14, PARSE_MSG, NULL);  /* NUL in a string */
    expect_parse_fail("{\"a\":1}\0", 8, PARSE_MSG, NULL);           /* NUL after the body */
    expect_parse_fail("{\"a\":NaN}", 9, PARSE_MSG, NULL);
    expect_parse_fail("{\"a\":1e999}", 11, PARSE_MSG, NULL);
    expect_parse_fail("[]", 2,
                      "Invalid type for 'body': expected an object, but got an array instead.",
                      "invalid_type");
    expect_parse_fail("\"hi\"", 4,
                      "Invalid type for 'body': expected an object, but got a string instead.",
                      "invalid_type");
    expect_parse_fail("null", 4,
                      "Invalid type for 'body': expected an object, but got null instead.",
                      "invalid_type");
    expect_parse_fail("1.5", 3,
                      "Invalid type for 'body': expected an object, but got a decimal instead.",
                      "invalid_type");
    /* the length is honoured: the tail after len is not part of the body */
    json_t *v = NULL;
    ad_verr err;
    assert_true(ad_json_parse_body("{\"a\":1}garbage", 7, &v, &err));
    assert_true(json_is_object(v));
    json_decref(v);
}

/* A body nesting depth - 1 levels: the top object plus depth - 2 opens. */
static char *nested_body(int depth, const char *open, const char *close)
{
    ad_buf b;
    ad_buf_init(&b, 1u << 20);
    ad_buf_addstr(&b, "{\"a\":");
    for (int i = 1; i < depth - 1; i++)
        ad_buf_addstr(&b, open);
    ad_buf_addstr(&b, "1");
    for (int i = 1; i < depth - 1; i++)
        ad_buf_addstr(&b, close);
    ad_buf_addstr(&b, "}");
    return ad_buf_steal(&b);
}

static void test_parse_nesting(void **state)
{
    (void)state;
    ad_verr err;
    json_t *v = NULL;
    /* 64 levels: the top object plus 63 nested arrays (the innermost holds 1) */
    char *ok = nested_body(65, "[", "]");
    assert_true(ad_json_parse_body(ok, strlen(ok), &v, &err));
    json_decref(v);
    ad_free(ok);
    char *deep = nested_body(66, "[", "]");
    expect_parse_fail(deep, strlen(deep), PARSE_MSG, NULL);
    ad_free(deep);
    char *objs = nested_body(200, "{\"b\":", "}");
    expect_parse_fail(objs, strlen(objs), PARSE_MSG, NULL);
    ad_free(objs);
    /* brackets inside strings do not count */
    ad_buf b;
    ad_buf_init(&b, 1u << 20);
    ad_buf_addstr(&b, "{\"a\":\"");
    for (int i = 0; i < 500; i++)
        ad_buf_addstr(&b, "[{\\\"");
    ad_buf_addstr(&b, "\"}");
    assert_true(ad_json_parse_body(b.ptr, b.len, &v, &err));
    json_decref(v);
    ad_buf_free(&b);
}

/* ---------------------------------------------------------------- generated bodies */

static void test_string_lengths(void **state)
{
    (void)state;
    ad_verr err;
    /* lengths are code points: 256 x "é" (512 bytes) is fine, 300 is not */
    assert_true(validate_new(assistant_with("name", repeat_str("\xc3\xa9", 256)), CA, &err));
    assert_false(validate_new(assistant_with("name", repeat_str("\xc3\xa9", 300)), CA, &err));
    assert_err(&err,
               "Invalid 'name': string too long. Expected a string with maximum length 256, but "
               "got a string with length 300 instead.",
               "name", "string_above_max_length");
    assert_true(validate_new(assistant_with("description", repeat_str("d", 512)), CA, &err));
    assert_false(validate_new(assistant_with("description", repeat_str("d", 513)), CA, &err));
    assert_err(&err,
               "Invalid 'description': string too long. Expected a string with maximum length 512, "
               "but got a string with length 513 instead.",
               "description", "string_above_max_length");
    assert_true(validate_new(assistant_with("instructions", repeat_str("i", 256000)), CA, &err));
    assert_false(validate_new(assistant_with("instructions", repeat_str("i", 256001)), MA, &err));
    assert_err(&err,
               "Invalid 'instructions': string too long. Expected a string with maximum length "
               "256000, but got a string with length 256001 instead.",
               "instructions", "string_above_max_length");
    /* a 4-byte character counts once */
    assert_true(
        validate_new(assistant_with("name", repeat_str("\xf0\x9f\x98\x80", 256)), CA, &err));
}

static void test_array_lengths(void **state)
{
    (void)state;
    ad_verr err;
    json_t *tools = json_array();
    for (int i = 0; i < 128; i++)
        json_array_append_new(tools, json_pack("{s:s}", "type", "code_interpreter"));
    assert_true(validate_new(assistant_with("tools", json_incref(tools)), CA, &err));
    json_array_append_new(tools, json_pack("{s:s}", "type", "file_search"));
    assert_false(validate_new(assistant_with("tools", tools), CA, &err));
    assert_err(&err,
               "Invalid 'tools': array too long. Expected an array with maximum length 128, but "
               "got an array with length 129 instead.",
               "tools", "array_above_max_length");

    json_t *ids = json_array();
    for (int i = 0; i < 21; i++)
        json_array_append_new(ids, json_sprintf("file-%d", i));
    json_t *tr = json_pack("{s:{s:o}}", "code_interpreter", "file_ids", ids);
    assert_false(validate_new(assistant_with("tool_resources", tr), CA, &err));
    assert_err(&err,
               "Invalid 'tool_resources.code_interpreter.file_ids': array too long. Expected an "
               "array with maximum length 20, but got an array with length 21 instead.",
               "tool_resources.code_interpreter.file_ids", "array_above_max_length");
}

/* Runs override tools with at most 20 (assistants: 128). */
static void test_run_tools_limit(void **state)
{
    (void)state;
    ad_verr err;
    json_t *tools = json_array();
    for (int i = 0; i < 20; i++)
        json_array_append_new(tools, json_pack("{s:s}", "type", "code_interpreter"));
    assert_true(
        validate_new(json_pack("{s:s,s:O}", "assistant_id", "asst_1", "tools", tools), CR, &err));
    json_array_append_new(tools, json_pack("{s:s}", "type", "file_search"));
    assert_false(
        validate_new(json_pack("{s:s,s:O}", "assistant_id", "asst_1", "tools", tools), CR, &err));
    assert_err(&err,
               "Invalid 'tools': array too long. Expected an array with maximum length 20, but got "
               "an array with length 21 instead.",
               "tools", "array_above_max_length");
    assert_false(
        validate_new(json_pack("{s:s,s:o}", "assistant_id", "asst_1", "tools", tools), TR, &err));
    assert_err(&err,
               "Invalid 'tools': array too long. Expected an array with maximum length 20, but got "
               "an array with length 21 instead.",
               "tools", "array_above_max_length");
}

static void test_metadata(void **state)
{
    (void)state;
    ad_verr err;
    json_t *m = json_object();
    for (int i = 0; i < 16; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(m, k, json_string("v"));
    }
    assert_int_equal(json_object_size(m), 16);
    assert_true(validate_new(assistant_with("metadata", json_incref(m)), CA, &err));
    json_object_set_new(m, "k16", json_string("v"));
    assert_false(validate_new(assistant_with("metadata", m), CA, &err));
    assert_err(&err,
               "Invalid 'metadata': too many properties. Expected an object with at most 16 "
               "properties, but got an object with 17 properties instead.",
               "metadata", "object_above_max_properties");

    json_t *k64 = repeat_str("\xc3\xa9", 64), *k65 = repeat_str("k", 65);
    m = json_object();
    json_object_set_new(m, json_string_value(k64), repeat_str("v", 512));
    assert_true(validate_new(assistant_with("metadata", m), CA, &err));
    m = json_object();
    json_object_set_new(m, json_string_value(k65), json_string("v"));
    assert_false(validate_new(assistant_with("metadata", m), CA, &err));
    assert_err(&err,
               "Invalid 'metadata': metadata key too long. Expected a string with maximum length "
               "64, but got a string with length 65 instead.",
               "metadata", "string_above_max_length");
    json_decref(k64);
    json_decref(k65);

    m = json_object();
    json_object_set_new(m, "note", repeat_str("\xc3\xa9", 513));
    assert_false(validate_new(json_pack("{s:o}", "metadata", m), MM, &err));
    assert_err(&err,
               "Invalid 'metadata.note': string too long. Expected a string with maximum length "
               "512, but got a string with length 513 instead.",
               "metadata.note", "string_above_max_length");
}

/* A key longer than the param buffer is cut at a character boundary. */
static void test_long_paths_stay_utf8(void **state)
{
    (void)state;
    ad_verr err;
    json_t *key = repeat_str("\xe2\x82\xac", 400); /* 1200 bytes of "€" */
    json_t *o = json_pack("{s:s}", "model", "m");
    json_object_set_new(o, json_string_value(key), json_true());
    assert_false(validate_new(o, CA, &err));
    assert_string_equal(err.code, "unknown_parameter");
    assert_true(strlen(err.param) < sizeof err.param);
    assert_true(strlen(err.param) > 200);
    assert_true(ad_utf8_valid(err.param, strlen(err.param)));
    assert_true(ad_utf8_valid(err.message, strlen(err.message)));
    assert_true(ad_str_has_prefix(err.message, "Unknown parameter: '\xe2\x82\xac"));
    json_decref(key);

    /* an enum error quoting a huge value stays bounded and valid */
    json_t *v = repeat_str("\xe2\x82\xac", 5000);
    assert_false(validate_new(json_pack("{s:o,s:s}", "role", v, "content", "x"), CM, &err));
    assert_string_equal(err.code, "invalid_value");
    assert_string_equal(err.param, "role");
    assert_true(ad_utf8_valid(err.message, strlen(err.message)));
    assert_non_null(strstr(err.message, "Supported values are: 'user' and 'assistant'."));
}

static void test_verr_set_truncates_on_char_boundary(void **state)
{
    (void)state;
    ad_verr err = {.code = NULL};
    json_t *s = repeat_str("\xf0\x9f\x98\x80", 600);
    ad_verr_set(&err, json_string_value(s), "c", "x%s", json_string_value(s));
    assert_true(strlen(err.message) < sizeof err.message);
    assert_true(ad_utf8_valid(err.message, strlen(err.message)));
    assert_true(ad_utf8_valid(err.param, strlen(err.param)));
    assert_int_equal(strlen(err.message) % 4, 1); /* "x" + whole characters */
    assert_int_equal(strlen(err.param) % 4, 0);
    ad_verr_set(&err, NULL, NULL, "plain %d", 7);
    assert_string_equal(err.message, "plain 7");
    assert_string_equal(err.param, "");
    assert_null(err.code);
    json_decref(s);
}

/* A one-alternative ONEOF is a reference to an exported block. */
static const ad_vfield ref_fields[] = {{.name = "tools",
                                        .type = AD_V_ARRAY,
                                        .flags = AD_V_HAS_MAX,
                                        .max = 20,
                                        .items = &ad_schema_tool},
                                       {.name = "response_format",
                                        .type = AD_V_ONEOF,
                                        .flags = AD_V_NULLABLE,
                                        .alts = &ad_schema_response_format,
                                        .nalts = 1},
                                       {.name = "chunking_strategy",
                                        .type = AD_V_ONEOF,
                                        .alts = &ad_schema_chunking_strategy,
                                        .nalts = 1},
                                       {.name = "tool_resources",
                                        .type = AD_V_ONEOF,
                                        .flags = AD_V_NULLABLE,
                                        .alts = &ad_schema_tool_resources,
                                        .nalts = 1},
                                       {.name = NULL}};
static const ad_vfield ref_schema = {.type = AD_V_OBJECT, .fields = ref_fields};

static void expect_ref(const char *body, const char *msg, const char *param, const char *code)
{
    ad_verr err;
    json_t *v = NULL;
    assert_true(ad_json_parse_body(body, strlen(body), &v, &err));
    bool ok = validate_new(v, &ref_schema, &err);
    if (!msg) {
        if (!ok)
            fail_msg("unexpected: %s", err.message);
        return;
    }
    assert_false(ok);
    assert_err(&err, msg, param, code);
}

static void test_references(void **state)
{
    (void)state;
    expect_ref("{\"tools\":[{\"type\":\"code_interpreter\"}],\"response_format\":null,"
               "\"chunking_strategy\":{\"type\":\"auto\"},\"tool_resources\":null}",
               NULL, NULL, NULL);
    expect_ref("{\"response_format\":{\"type\":\"json\"}}",
               "Invalid value: 'json'. Supported values are: 'text', 'json_object', and "
               "'json_schema'.",
               "response_format.type", "invalid_value");
    expect_ref("{\"response_format\":[]}",
               "Invalid type for 'response_format': expected one of a string or an object, but got "
               "an array instead.",
               "response_format", "invalid_type");
    expect_ref("{\"chunking_strategy\":null}",
               "Invalid type for 'chunking_strategy': expected an object, but got null instead.",
               "chunking_strategy", "invalid_type");
    expect_ref("{\"chunking_strategy\":{\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":"
               "100,\"chunk_overlap_tokens\":51}}}",
               "Invalid 'chunking_strategy.static.chunk_overlap_tokens': integer above maximum "
               "value. Expected a value <= 50 (half of max_chunk_size_tokens), but got 51 instead.",
               "chunking_strategy.static.chunk_overlap_tokens", "integer_above_max_value");
    expect_ref("{\"chunking_strategy\":{\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":"
               "101,\"chunk_overlap_tokens\":50}}}",
               NULL, NULL, NULL);
    expect_ref("{\"tool_resources\":{\"file_search\":{\"vector_stores\":[]}}}",
               "Unknown parameter: 'tool_resources.file_search.vector_stores'.",
               "tool_resources.file_search.vector_stores", "unknown_parameter");
}

/* Fields only Azure's spec has (AD_V_AZURE): unknown parameters to
 * ad_validate (OpenAI's paths), known, type-checked and optional to
 * ad_validate_azure (the /openai/... paths). */
static void test_azure_fields(void **state)
{
    (void)state;
    ad_verr err;
    json_t *run = json_pack("{s:s,s:s}", "assistant_id", "asst_1", "thread_id", "thread_1");
    assert_false(ad_validate(run, CR, &err));
    assert_err(&err, "Unknown parameter: 'thread_id'.", "thread_id", "unknown_parameter");
    assert_true(ad_validate_azure(run, CR, &err));
    json_object_set_new(run, "thread_id", json_integer(1));
    assert_false(ad_validate_azure(run, CR, &err));
    assert_string_equal(err.param, "thread_id");
    assert_string_equal(err.code, "invalid_type");
    json_object_del(run, "thread_id");
    assert_true(ad_validate_azure(run, CR, &err)); /* never required */
    json_decref(run);

    json_t *tr =
        json_pack("{s:s,s:{s:b}}", "assistant_id", "asst_1", "stream_options", "include_usage", 1);
    assert_false(ad_validate(tr, TR, &err));
    assert_err(&err, "Unknown parameter: 'stream_options'.", "stream_options", "unknown_parameter");
    assert_true(ad_validate_azure(tr, TR, &err));
    json_object_set_new(json_object_get(tr, "stream_options"), "x", json_true());
    assert_false(ad_validate_azure(tr, TR, &err));
    assert_err(&err, "Unknown parameter: 'stream_options.x'.", "stream_options.x",
               "unknown_parameter");
    json_decref(tr);
    /* Elsewhere the two modes agree. */
    json_t *bad = json_pack("{s:s,s:s}", "assistant_id", "asst_1", "nope", "x");
    assert_false(ad_validate_azure(bad, CR, &err));
    assert_err(&err, "Unknown parameter: 'nope'.", "nope", "unknown_parameter");
    json_decref(bad);
}

static void test_top_level_not_object(void **state)
{
    (void)state;
    ad_verr err;
    assert_false(validate_new(json_array(), CA, &err));
    assert_err(&err, "Invalid type for 'body': expected an object, but got an array instead.", "",
               "invalid_type");
}

static void test_all_schemas_accept_empty_or_report(void **state)
{
    (void)state;
    size_t n = 0;
    for (const ad_vfield *const *s = ad_schemas_all; *s; s++, n++) {
        ad_verr err;
        json_t *o = json_object();
        bool ok = ad_validate(o, *s, &err);
        if (!ok) {
            assert_true(err.message[0] != '\0');
            assert_true(ad_utf8_valid(err.message, strlen(err.message)));
        }
        json_decref(o);
    }
    assert_int_equal(n, 26);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_nesting),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_array_lengths),
        cmocka_unit_test(test_run_tools_limit),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_long_paths_stay_utf8),
        cmocka_unit_test(test_verr_set_truncates_on_char_boundary),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_azure_fields),
        cmocka_unit_test(test_top_level_not_object),
        cmocka_unit_test(test_all_schemas_accept_empty_or_report),
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t ncases = sizeof cases / sizeof cases[0];
    struct CMUnitTest *tests = ad_calloc(nfixed + ncases, sizeof *tests);
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < ncases; i++) {
        tests[nfixed + i].name = cases[i].name;
        tests[nfixed + i].test_func = run_case;
        tests[nfixed + i].initial_state = (void *)&cases[i];
    }
    int rc = _cmocka_run_group_tests("validate", tests, nfixed + ncases, NULL, NULL);
    ad_free(tests);
    return rc;
}
