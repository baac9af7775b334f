/*
 * validate.c -- walks a parsed JSON body against a static ad_vfield table and
 * reports the first problem with the exact wording OpenAI's API uses.
 *
 * Design: one recursive function, check_value(), handles a value against one
 * schema node. Objects are checked in a fixed order -- unknown keys (in body
 * order), then every schema field in table order (missing required field, or
 * the field's value recursively) -- so the reported error is deterministic and
 * does not depend on hash order. Recursion depth is bounded by the schema
 * (free-form AD_V_ANY / open objects are never descended into), not by the
 * input. The parameter path (`tools[0].function.name`) lives in one fixed
 * buffer that every level appends to and truncates back; appends that do not
 * fit are cut at a UTF-8 boundary so that messages stay valid UTF-8 (the
 * error body is built with jansson, which rejects invalid UTF-8).
 *
 * One schema serves both URL shapes: fields Azure's spec adds to a request
 * (AD_V_AZURE) exist only when ad_validate_azure walks it, and are unknown
 * parameters to ad_validate, as on OpenAI.
 *
 * Nothing here allocates: messages are formatted into the caller's ad_verr and
 * small stack buffers, so validation can never leak, whatever the input.
 */
#include "api/validate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"

#define MAX_NESTING    64 /* deepest [ / { nesting accepted in a body */
#define META_MAX_PAIRS 16 /* OpenAI metadata limits */
#define META_MAX_KEY   64
#define META_MAX_VALUE 512

static const char parse_error_message[] =
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)";

const char *const ad_json_parse_error_message = parse_error_message;

/* ---------------------------------------------------------------- text helpers */

/* Drops an incomplete UTF-8 sequence left at the end of s[0..len) by a
 * truncation; returns the new length. s must otherwise be valid UTF-8. */
static size_t utf8_fix_tail(char *s, size_t len)
{
    size_t i = len, cont = 0;
    while (i > 0 && cont < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return len;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = 1;
    if ((lead & 0xE0) == 0xC0)
        need = 2;
    else if ((lead & 0xF0) == 0xE0)
        need = 3;
    else if ((lead & 0xF8) == 0xF0)
        need = 4;
    if (need > 1 && cont + 1 < need) {
        s[i - 1] = '\0';
        return i - 1;
    }
    return len;
}

/* A fixed-capacity string builder: appends that do not fit are truncated (at a
 * UTF-8 boundary) and everything after is dropped. */
typedef struct {
    char *s;
    size_t cap, len;
    bool full;
} sbuf;

static void sb_init(sbuf *b, char *s, size_t cap)
{
    b->s = s;
    b->cap = cap;
    b->len = 0;
    b->full = false;
    s[0] = '\0';
}

static void sb_addn(sbuf *b, const char *p, size_t n)
{
    if (b->full)
        return;
    size_t room = b->cap - 1 - b->len;
    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
    if (b->full)
        b->len = utf8_fix_tail(b->s, b->len);
}

static void sb_add(sbuf *b, const char *p)
{
    sb_addn(b, p, strlen(p));
}

/* Formats a double the way Python's repr would for the values that matter:
 * integral values without a fraction ("2", not "2.0"), others in the shortest
 * form that reads back to the same double ("0.1", "2.5", "1e-05"). */
static void fmt_num(double x, char *out, size_t cap)
{
    if (x != x) {
        snprintf(out, cap, "nan");
        return;
    }
    /* integral and exactly representable: no fraction (no libm needed) */
    if (x > -1e16 && x < 1e16 && x == (double)(long long)x) {
        snprintf(out, cap, "%lld", (long long)x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, x);
        if (strtod(out, NULL) == x)
            return;
    }
}

/* "'a'", "'a' and 'b'", "'a', 'b', and 'c'" */
static void fmt_enum_list(sbuf *b, const char *const *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_add(b, n == 2 ? " and " : (i + 1 == n ? ", and " : ", "));
        sb_add(b, "'");
        sb_add(b, vals[i]);
        sb_add(b, "'");
    }
}

/* ---------------------------------------------------------------- errors */

void ad_verr_set(ad_verr *err, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (n < 0)
        err->message[0] = '\0';
    else if ((size_t)n >= sizeof err->message)
        utf8_fix_tail(err->message, strlen(err->message));
    if (ad_strlcpy(err->param, param ? param : "", sizeof err->param) >= sizeof err->param)
        utf8_fix_tail(err->param, strlen(err->param));
    err->code = code;
}

/* ---------------------------------------------------------------- paths */

/* The parameter path, and the one setting every level needs with it: the
 * dialect (whether AD_V_AZURE fields exist). */
typedef struct {
    char s[sizeof(((ad_verr *)0)->param)];
    size_t len;
    size_t full_at; /* len at which an append was cut short, or SIZE_MAX */
    bool azure;     /* ad_validate_azure: AD_V_AZURE fields are known */
} vpath;

static void path_append(vpath *p, const char *a, size_t alen, const char *b, size_t blen)
{
    sbuf sb = {p->s, sizeof p->s, p->len, p->full_at != SIZE_MAX};
    sb_addn(&sb, a, alen);
    sb_addn(&sb, b, blen);
    p->len = sb.len;
    if (sb.full && p->full_at == SIZE_MAX)
        p->full_at = sb.len;
}

/* Appends ".key" (or "key" at the top level); returns the length to restore. */
static size_t path_push_key(vpath *p, const char *key, size_t keylen)
{
    size_t old = p->len;
    path_append(p, ".", p->len > 0 ? 1 : 0, key, keylen);
    return old;
}

static size_t path_push_index(vpath *p, size_t i)
{
    size_t old = p->len;
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "[%zu]", i);
    path_append(p, "", 0, tmp, (size_t)n);
    return old;
}

static void path_pop(vpath *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
    if (old < p->full_at)
        p->full_at = SIZE_MAX;
}

/* ---------------------------------------------------------------- type words */

static const char *json_words(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a decimal";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

static const char *schema_words(const ad_vfield *f)
{
    switch (f->type) {
    case AD_V_STRING:
        return "a string";
    case AD_V_INTEGER:
        return "an integer";
    case AD_V_NUMBER:
        return "a decimal";
    case AD_V_BOOLEAN:
        return "a boolean";
    case AD_V_OBJECT:
    case AD_V_METADATA:
        return "an object";
    case AD_V_ARRAY:
        return "an array";
    default:
        return "a value";
    }
}

static const char *schema_plural(const ad_vfield *f)
{
    switch (f->type) {
    case AD_V_STRING:
        return "strings";
    case AD_V_INTEGER:
        return "integers";
    case AD_V_NUMBER:
        return "decimals";
    case AD_V_BOOLEAN:
        return "booleans";
    case AD_V_OBJECT:
    case AD_V_METADATA:
        return "objects";
    case AD_V_ARRAY:
        return "arrays";
    case AD_V_ONEOF:
        if (f->nalts == 1)
            return schema_plural(&f->alts[0]);
        for (size_t i = 1; i < f->nalts; i++)
            if (strcmp(schema_plural(&f->alts[i]), schema_plural(&f->alts[0])) != 0)
                return "values";
        return f->nalts ? schema_plural(&f->alts[0]) : "values";
    default:
        return "values";
    }
}

#define MAX_PHRASES 8

/* Collects the distinct phrases describing what f accepts: "a string",
 * "array of objects", ... */
static void collect_phrases(const ad_vfield *f, const char **ph, char bufs[][48], size_t *n)
{
    if (f->type == AD_V_ONEOF) {
        for (size_t i = 0; i < f->nalts; i++)
            collect_phrases(&f->alts[i], ph, bufs, n);
        return;
    }
    if (*n >= MAX_PHRASES)
        return;
    const char *p = schema_words(f);
    if (f->type == AD_V_ARRAY && f->items && f->items->type != AD_V_ANY) {
        snprintf(bufs[*n], sizeof bufs[0], "array of %s", schema_plural(f->items));
        p = bufs[*n];
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ph[i], p) == 0)
            return;
    ph[(*n)++] = p;
}

/* "a string", "an array", or "one of a string or array of objects" */
static void describe_expected(const ad_vfield *f, char *out, size_t cap)
{
    const char *ph[MAX_PHRASES];
    char bufs[MAX_PHRASES][48];
    size_t n = 0;
    collect_phrases(f, ph, bufs, &n);
    sbuf b;
    sb_init(&b, out, cap);
    if (n == 0) {
        sb_add(&b, "a value");
        return;
    }
    if (n == 1) { /* "array of ..." only appears in lists of alternatives */
        sb_add(&b, strncmp(ph[0], "array of ", 9) == 0 ? "an array" : ph[0]);
        return;
    }
    sb_add(&b, "one of ");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_add(&b, n == 2 ? " or " : (i + 1 == n ? ", or " : ", "));
        sb_add(&b, ph[i]);
    }
}

static bool type_error(const ad_vfield *f, const json_t *v, const vpath *p, ad_verr *err)
{
    char exp[256];
    describe_expected(f, exp, sizeof exp);
    ad_verr_set(err, p->s, "invalid_type",
                "Invalid type for '%s': expected %s, but got %s instead.", p->s, exp,
                json_words(v));
    return false;
}

static bool accepts_type(const ad_vfield *f, const json_t *v)
{
    switch (f->type) {
    case AD_V_STRING:
        return json_is_string(v);
    case AD_V_INTEGER:
        return json_is_integer(v);
    case AD_V_NUMBER:
        return json_is_number(v);
    case AD_V_BOOLEAN:
        return json_is_boolean(v);
    case AD_V_OBJECT:
    case AD_V_METADATA:
        return json_is_object(v);
    case AD_V_ARRAY:
        return json_is_array(v);
    case AD_V_ANY:
        return true;
    case AD_V_ONEOF:
        for (size_t i = 0; i < f->nalts; i++)
            if (accepts_type(&f->alts[i], v))
                return true;
        return false;
    }
    return false;
}

/* ---------------------------------------------------------------- checks */

static bool check_value(const json_t *v, const ad_vfield *f, vpath *p, ad_verr *err);

static bool missing_error(vpath *p, const char *name, ad_verr *err)
{
    size_t old = path_push_key(p, name, strlen(name));
    ad_verr_set(err, p->s, "missing_required_parameter", "Missing required parameter: '%s'.", p->s);
    path_pop(p, old);
    return false;
}

static bool enum_has(const char *const *enums, const char *s, size_t len)
{
    for (; *enums; enums++)
        if (strlen(*enums) == len && memcmp(*enums, s, len) == 0)
            return true;
    return false;
}

static bool enum_error(const char *value, const char *const *vals, size_t n, const vpath *p,
                       ad_verr *err)
{
    char list[768];
    sbuf b;
    sb_init(&b, list, sizeof list);
    fmt_enum_list(&b, vals, n);
    /* keep the quoted value short enough that the list always fits */
    char shown[200];
    sbuf sv;
    sb_init(&sv, shown, sizeof shown);
    sb_add(&sv, value);
    ad_verr_set(err, p->s, "invalid_value", "Invalid value: '%s'. Supported values are: %s.", shown,
                list);
    return false;
}

static bool check_string(const json_t *v, const ad_vfield *f, const vpath *p, ad_verr *err)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t n = ad_utf8_count(s, len);
    char lim[64];
    if ((f->flags & AD_V_HAS_MIN) && (double)n < f->min) {
        fmt_num(f->min, lim, sizeof lim);
        if (n == 0)
            ad_verr_set(err, p->s, "string_below_min_length",
                        "Invalid '%s': string too short. Expected a string with minimum length %s, "
                        "but got an empty string instead.",
                        p->s, lim);
        else
            ad_verr_set(err, p->s, "string_below_min_length",
                        "Invalid '%s': string too short. Expected a string with minimum length %s, "
                        "but got a string with length %zu instead.",
                        p->s, lim, n);
        return false;
    }
    if ((f->flags & AD_V_HAS_MAX) && (double)n > f->max) {
        fmt_num(f->max, lim, sizeof lim);
        ad_verr_set(err, p->s, "string_above_max_length",
                    "Invalid '%s': string too long. Expected a string with maximum length %s, but "
                    "got a string with length %zu instead.",
                    p->s, lim, n);
        return false;
    }
    if (f->enums && !enum_has(f->enums, s, len)) {
        size_t ne = 0;
        while (f->enums[ne])
            ne++;
        return enum_error(s, f->enums, ne, p, err);
    }
    return true;
}

static bool check_bounds(const json_t *v, const ad_vfield *f, const vpath *p, ad_verr *err)
{
    bool is_int = f->type == AD_V_INTEGER;
    double x = json_number_value(v);
    char got[64], lim[64];
    if (json_is_integer(v))
        snprintf(got, sizeof got, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        fmt_num(x, got, sizeof got);
    if ((f->flags & AD_V_HAS_MIN) && x < f->min) {
        fmt_num(f->min, lim, sizeof lim);
        ad_verr_set(err, p->s, is_int ? "integer_below_min_value" : "decimal_below_min_value",
                    "Invalid '%s': %s below minimum value. Expected a value >= %s, but got %s "
                    "instead.",
                    p->s, is_int ? "integer" : "decimal", lim, got);
        return false;
    }
    if ((f->flags & AD_V_HAS_MAX) && x > f->max) {
        fmt_num(f->max, lim, sizeof lim);
        ad_verr_set(err, p->s, is_int ? "integer_above_max_value" : "decimal_above_max_value",
                    "Invalid '%s': %s above maximum value. Expected a value <= %s, but got %s "
                    "instead.",
                    p->s, is_int ? "integer" : "decimal", lim, got);
        return false;
    }
    return true;
}

/* Whether field fd exists in the dialect validated (azure: AD_V_AZURE fields do). */
static bool in_dialect(const ad_vfield *fd, bool azure)
{
    return !(fd->flags & AD_V_AZURE) || azure;
}

static const ad_vfield *find_field(const ad_vfield *fields, const char *key, size_t keylen,
                                   bool azure)
{
    for (const ad_vfield *fd = fields; fd->name; fd++)
        if (strlen(fd->name) == keylen && memcmp(fd->name, key, keylen) == 0 &&
            in_dialect(fd, azure))
            return fd;
    return NULL;
}

static bool check_object(const json_t *v, const ad_vfield *f, vpath *p, ad_verr *err)
{
    char lim[64];
    size_t n = json_object_size(v);

    if (f->fields && !(f->flags & AD_V_OPEN)) {
        /* iteration is in insertion (= body) order */
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            size_t keylen = strlen(key);
            if (!find_field(f->fields, key, keylen, p->azure)) {
                size_t old = path_push_key(p, key, keylen);
                ad_verr_set(err, p->s, "unknown_parameter", "Unknown parameter: '%s'.", p->s);
                path_pop(p, old);
                return false;
            }
        }
    }
    if ((f->flags & AD_V_HAS_MAX) && (double)n > f->max) {
        fmt_num(f->max, lim, sizeof lim);
        ad_verr_set(err, p->s, "object_above_max_properties",
                    "Invalid '%s': too many properties. Expected an object with at most %s "
                    "properties, but got an object with %zu properties instead.",
                    p->s, lim, n);
        return false;
    }
    if ((f->flags & AD_V_HAS_MIN) && (double)n < f->min) {
        fmt_num(f->min, lim, sizeof lim);
        ad_verr_set(err, p->s, "object_below_min_properties",
                    "Invalid '%s': too few properties. Expected an object with at least %s "
                    "properties, but got an object with %zu properties instead.",
                    p->s, lim, n);
        return false;
    }
    if (!f->fields)
        return true;
    for (const ad_vfield *fd = f->fields; fd->name; fd++) {
        if (!in_dialect(fd, p->azure))
            continue;
        const json_t *fv = json_object_get(v, fd->name);
        if (!fv) {
            if (fd->flags & AD_V_REQUIRED)
                return missing_error(p, fd->name, err);
            continue;
        }
        size_t old = path_push_key(p, fd->name, strlen(fd->name));
        bool ok = check_value(fv, fd, p, err);
        path_pop(p, old);
        if (!ok)
            return false;
    }
    return true;
}

static bool check_array(const json_t *v, const ad_vfield *f, vpath *p, ad_verr *err)
{
    size_t n = json_array_size(v);
    char lim[64];
    if ((f->flags & AD_V_HAS_MIN) && (double)n < f->min) {
        fmt_num(f->min, lim, sizeof lim);
        if (n == 0)
            ad_verr_set(err, p->s, "array_below_min_length",
                        "Invalid '%s': array too short. Expected an array with minimum length %s, "
                        "but got an empty array instead.",
                        p->s, lim);
        else
            ad_verr_set(err, p->s, "array_below_min_length",
                        "Invalid '%s': array too short. Expected an array with minimum length %s, "
                        "but got an array with length %zu instead.",
                        p->s, lim, n);
        return false;
    }
    if ((f->flags & AD_V_HAS_MAX) && (double)n > f->max) {
        fmt_num(f->max, lim, sizeof lim);
        ad_verr_set(err, p->s, "array_above_max_length",
                    "Invalid '%s': array too long. Expected an array with maximum length %s, but "
                    "got an array with length %zu instead.",
                    p->s, lim, n);
        return false;
    }
    if (!f->items)
        return true;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(p, i);
        bool ok = check_value(json_array_get(v, i), f->items, p, err);
        path_pop(p, old);
        if (!ok)
            return false;
    }
    return true;
}

static bool check_metadata(const json_t *v, vpath *p, ad_verr *err)
{
    size_t n = json_object_size(v);
    if (n > META_MAX_PAIRS) {
        ad_verr_set(err, p->s, "object_above_max_properties",
                    "Invalid '%s': too many properties. Expected an object with at most %d "
                    "properties, but got an object with %zu properties instead.",
                    p->s, META_MAX_PAIRS, n);
        return false;
    }
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
        const char *key = json_object_iter_key(it);
        const json_t *val = json_object_iter_value(it);
        size_t keylen = strlen(key);
        size_t kn = ad_utf8_count(key, keylen);
        if (kn > META_MAX_KEY) {
            ad_verr_set(err, p->s, "string_above_max_length",
                        "Invalid '%s': metadata key too long. Expected a string with maximum "
                        "length %d, but got a string with length %zu instead.",
                        p->s, META_MAX_KEY, kn);
            return false;
        }
        size_t old = path_push_key(p, key, keylen);
        bool ok = true;
        if (!json_is_string(val)) {
            ad_verr_set(err, p->s, "invalid_type",
                        "Invalid type for '%s': expected a string, but got %s instead.", p->s,
                        json_words(val));
            ok = false;
        } else {
            size_t vn = ad_utf8_count(json_string_value(val), json_string_length(val));
            if (vn > META_MAX_VALUE) {
                ad_verr_set(err, p->s, "string_above_max_length",
                            "Invalid '%s': string too long. Expected a string with maximum length "
                            "%d, but got a string with length %zu instead.",
                            p->s, META_MAX_VALUE, vn);
                ok = false;
            }
        }
        path_pop(p, old);
        if (!ok)
            return false;
    }
    return true;
}

/* The "type" field of an object alternative, when it is a string enum. */
static const ad_vfield *discriminator(const ad_vfield *alt)
{
    if (alt->type != AD_V_OBJECT || !alt->fields)
        return NULL;
    const ad_vfield *t = find_field(alt->fields, "type", 4, false);
    return t && t->type == AD_V_STRING && t->enums ? t : NULL;
}

/* True when every object alternative of f carries a "type" enum (and there is one). */
static bool is_discriminated(const ad_vfield *f)
{
    size_t objs = 0;
    for (size_t i = 0; i < f->nalts; i++) {
        if (f->alts[i].type != AD_V_OBJECT)
            continue;
        if (!discriminator(&f->alts[i]))
            return false;
        objs++;
    }
    return objs > 0;
}

#define MAX_TAGS 32

/* Picks the alternative of a ONEOF for v, or reports why there is none. */
static const ad_vfield *pick_alt(const json_t *v, const ad_vfield *f, vpath *p, ad_verr *err)
{
    if (f->nalts == 1) /* a reference to another schema */
        return &f->alts[0];
    if (json_is_object(v) && is_discriminated(f)) {
        const json_t *t = json_object_get(v, "type");
        if (!t) {
            missing_error(p, "type", err);
            return NULL;
        }
        size_t old = path_push_key(p, "type", 4);
        if (!json_is_string(t)) {
            ad_verr_set(err, p->s, "invalid_type",
                        "Invalid type for '%s': expected a string, but got %s instead.", p->s,
                        json_words(t));
            path_pop(p, old);
            return NULL;
        }
        const char *tags[MAX_TAGS];
        size_t ntags = 0;
        for (size_t i = 0; i < f->nalts; i++) {
            const ad_vfield *d = discriminator(&f->alts[i]);
            if (!d)
                continue;
            if (enum_has(d->enums, json_string_value(t), json_string_length(t))) {
                path_pop(p, old);
                return &f->alts[i];
            }
            for (const char *const *e = d->enums; *e && ntags < MAX_TAGS; e++) {
                bool dup = false;
                for (size_t j = 0; j < ntags; j++)
                    dup = dup || strcmp(tags[j], *e) == 0;
                if (!dup)
                    tags[ntags++] = *e;
            }
        }
        enum_error(json_string_value(t), tags, ntags, p, err);
        path_pop(p, old);
        return NULL;
    }
    for (size_t i = 0; i < f->nalts; i++)
        if (accepts_type(&f->alts[i], v))
            return &f->alts[i];
    type_error(f, v, p, err);
    return NULL;
}

static bool check_value(const json_t *v, const ad_vfield *f, vpath *p, ad_verr *err)
{
    if (json_is_null(v)) {
        if ((f->flags & AD_V_NULLABLE) || f->type == AD_V_ANY)
            return true;
        return type_error(f, v, p, err);
    }
    bool ok;
    switch (f->type) {
    case AD_V_STRING:
        ok = json_is_string(v) ? check_string(v, f, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_INTEGER:
        ok = json_is_integer(v) ? check_bounds(v, f, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_NUMBER:
        ok = json_is_number(v) ? check_bounds(v, f, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_BOOLEAN:
        ok = json_is_boolean(v) ? true : type_error(f, v, p, err);
        break;
    case AD_V_OBJECT:
        ok = json_is_object(v) ? check_object(v, f, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_ARRAY:
        ok = json_is_array(v) ? check_array(v, f, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_METADATA:
        ok = json_is_object(v) ? check_metadata(v, p, err) : type_error(f, v, p, err);
        break;
    case AD_V_ONEOF: {
        const ad_vfield *alt = pick_alt(v, f, p, err);
        ok = alt && check_value(v, alt, p, err);
        break;
    }
    case AD_V_ANY:
        ok = true;
        break;
    default:
        ad_verr_set(err, p->s, NULL, "Invalid schema for '%s'.", p->s);
        ok = false;
        break;
    }
    if (ok && f->check)
        ok = f->check(v, p->s, err);
    return ok;
}

static bool validate(const json_t *v, const ad_vfield *schema, bool azure, ad_verr *err)
{
    vpath p;
    p.s[0] = '\0';
    p.len = 0;
    p.full_at = SIZE_MAX;
    p.azure = azure;
    err->message[0] = '\0';
    err->param[0] = '\0';
    err->code = NULL;
    if (!v || !schema) {
        ad_verr_set(err, NULL, NULL, "%s", parse_error_message);
        return false;
    }
    if (!json_is_object(v) && (schema->type == AD_V_OBJECT || schema->type == AD_V_METADATA)) {
        ad_verr_set(err, NULL, "invalid_type",
                    "Invalid type for 'body': expected an object, but got %s instead.",
                    json_words(v));
        return false;
    }
    return check_value(v, schema, &p, err);
}

bool ad_validate(const json_t *v, const ad_vfield *schema, ad_verr *err)
{
    return validate(v, schema, false, err);
}

bool ad_validate_azure(const json_t *v, const ad_vfield *schema, ad_verr *err)
{
    return validate(v, schema, true, err);
}

/* ---------------------------------------------------------------- parsing */

/* True when [ / { nest deeper than max outside of strings. */
static bool nesting_too_deep(const char *s, size_t n, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

bool ad_json_parse_body(const char *body, size_t len, json_t **out, ad_verr *err)
{
    *out = NULL;
    err->message[0] = '\0';
    err->param[0] = '\0';
    err->code = NULL;
    if (!body || len == 0 || nesting_too_deep(body, len, MAX_NESTING)) {
        ad_verr_set(err, NULL, NULL, "%s", parse_error_message);
        return false;
    }
    json_error_t jerr;
    /* No JSON_DISABLE_EOF_CHECK: trailing garbage is an error. No
     * JSON_ALLOW_NUL: "\u0000" in a string is rejected, so every string the
     * handlers see is a proper C string. Duplicate keys: the last one wins,
     * as with Python's json module. */
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (!v) {
        ad_verr_set(err, NULL, NULL, "%s", parse_error_message);
        return false;
    }
    if (!json_is_object(v)) {
        ad_verr_set(err, NULL, "invalid_type",
                    "Invalid type for 'body': expected an object, but got %s instead.",
                    json_words(v));
        json_decref(v);
        return false;
    }
    *out = v;
    return true;
}
