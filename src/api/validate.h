/*
 * validate.h -- declarative validation of JSON request bodies, with the
 * error messages OpenAI's service returned.
 *
 * Each endpoint describes its body as a static table of ad_vfield (see
 * schemas.h); ad_validate walks a parsed body against it and reports the
 * first problem exactly as OpenAI did: unknown parameters, missing required
 * ones, wrong types, string/array/number bounds, enum values, metadata
 * rules and discriminated unions ("type"-tagged tools, content parts, ...).
 * The parameter path is OpenAI's: `tools[0].function.name`.
 *
 * Ownership: schemas are static tables; ad_verr is a caller-owned value with
 * fixed-size text buffers (messages are truncated, never overflow).
 */
#ifndef AD_VALIDATE_H
#define AD_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    AD_V_STRING = 1,
    AD_V_INTEGER,
    AD_V_NUMBER, /* integer or real */
    AD_V_BOOLEAN,
    AD_V_OBJECT,   /* fields lists the allowed keys, unless AD_V_OPEN */
    AD_V_ARRAY,    /* items describes every element */
    AD_V_ANY,      /* any JSON value */
    AD_V_METADATA, /* OpenAI metadata: <=16 keys, keys <=64 chars, string values <=512 */
    AD_V_ONEOF     /* one of alts[0..nalts) (see ad_validate for matching rules) */
} ad_vtype;

enum {
    AD_V_REQUIRED = 1u << 0,
    AD_V_NULLABLE = 1u << 1, /* null is accepted */
    AD_V_HAS_MIN = 1u << 2,  /* min applies (length for strings, count for arrays/objects,
                                value for numbers) */
    AD_V_HAS_MAX = 1u << 3,
    AD_V_OPEN = 1u << 4,  /* objects: keys outside fields are allowed */
    AD_V_AZURE = 1u << 5, /* a field Azure's spec adds: known only to ad_validate_azure */
};

typedef struct ad_verr ad_verr;
typedef struct ad_vfield ad_vfield;

struct ad_vfield {
    const char *name; /* key in the parent object; NULL ends a field list */
    ad_vtype type;
    unsigned flags;
    double min, max;
    const char *const *enums; /* strings: NULL-terminated allowed values */
    const ad_vfield *fields;  /* objects: NULL-name-terminated list */
    const ad_vfield *items;   /* arrays: element schema (name unused) */
    const ad_vfield *alts;    /* ONEOF: alternatives (names unused) */
    size_t nalts;
    /* Optional extra check run after the structural checks pass; on failure
     * it fills err (see ad_verr_set) and returns false. path is the
     * parameter path of v. */
    bool (*check)(const json_t *v, const char *path, ad_verr *err);
};

struct ad_verr {
    char message[1024];
    char param[256];  /* "" when the error has no parameter (rendered as null) */
    const char *code; /* static string, or NULL (rendered as null) */
};

/* Validates v against schema (normally an AD_V_OBJECT). Returns true when v
 * conforms; otherwise fills err with the first problem and returns false.
 * ONEOF matching: a JSON string picks the first STRING alternative; an object
 * whose alternatives are objects with a "type" field whose enum lists the
 * value's "type" picks that alternative (an unknown "type" is an invalid_value
 * error on `path.type`); otherwise the first alternative of the same JSON type
 * is used; no alternative of that type is an invalid_type error. */
bool ad_validate(const json_t *v, const ad_vfield *schema, ad_verr *err);
/* Like ad_validate for a request on an Azure-shaped path (/openai/...):
 * fields flagged AD_V_AZURE are known there (and checked as their entry
 * says), while ad_validate treats them as unknown parameters. */
bool ad_validate_azure(const json_t *v, const ad_vfield *schema, ad_verr *err);
/*
 * Further rules (additions, all backwards compatible):
 *  - A ONEOF with exactly one alternative is a reference: v is checked
 *    against alts[0] under the same path. Use it to reuse an exported schema
 *    under another key, e.g. {.name = "tools", ...} items pointing at a
 *    one-alternative ONEOF whose alts is &ad_schema_tool. The referencing
 *    entry's own flags decide whether null is accepted.
 *  - Null is accepted only with AD_V_NULLABLE (or for AD_V_ANY); check hooks
 *    are not run for null.
 *  - An AD_V_OBJECT with fields == NULL is free-form (any keys, not descended).
 *  - Objects report, in this order: the first unknown key (body order), then
 *    for each field in table order a missing required field or the first
 *    problem inside its value. Arrays check their length before the items.
 *  - AD_V_METADATA always applies OpenAI's limits (16 pairs, keys <= 64,
 *    string values <= 512 code points); min/max are ignored for it.
 *  - Lengths are counted in Unicode code points.
 *  - A non-object v against an object schema is an invalid_type error for
 *    'body' with an empty param.
 *  - AD_V_AZURE fields exist only for ad_validate_azure: for ad_validate
 *    they are not in the table at all (an unknown parameter when sent).
 */

/* The exact message of a body that is not valid JSON (code and param null),
 * for callers that reject a body before parsing it. */
extern const char *const ad_json_parse_error_message;

/* Fills err (printf-style message). param may be NULL or "". */
void ad_verr_set(ad_verr *err, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses a request body as JSON. Rejects empty bodies, invalid JSON and
 * invalid UTF-8 with OpenAI's "We could not parse the JSON body of your
 * request..." message, and a top-level value that is not an object with an
 * invalid_type error. On success *out is a new reference owned by the caller
 * (json_decref). */
bool ad_json_parse_body(const char *body, size_t len, json_t **out, ad_verr *err);

#endif
