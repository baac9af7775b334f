/*
 * backends.c -- the model table: loading and validating ASSISTD_CONFIG, or
 * the zero-configuration pass-through backend (see backends.h).
 *
 * Design. The file is parsed once at start-up with jansson (duplicate keys
 * rejected) and validated strictly: every problem is printed to `err` as
 * "PATH: backends[1] (\"az\"): ..." so an operator can find the offending
 * entry, and the first problem fails the load (AD_EINVAL; AD_EIO when the
 * file cannot be read). Unknown keys, missing or mistyped fields, unknown
 * kinds, non-http(s) URLs, unknown backend names, duplicate names or model
 * ids, an azure backend without api_version, and an api_key_env naming a
 * variable that is unset (or empty) are all errors; nothing is silently
 * ignored. Trailing slashes of base_url are stripped.
 *
 * The table is two arrays allocated once at their final size (the counts
 * of the JSON arrays), so the `backend` pointers inside ad_model stay valid
 * for the life of the table. It is read-only after loading and therefore
 * shared between threads without locks. API keys are scrubbed on free.
 */
#include "run/backends.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/alloc.h"
#include "util/str.h"

#define DEF_CONNECT_MS   10000
#define DEF_IDLE_MS      120000
#define DEF_RETRIES      3
#define DEF_CONTEXT      128000
#define MAX_RETRIES      10
#define MAX_TIMEOUT_MS   86400000 /* one day */
#define MAX_CONFIG_BYTES (4 * 1024 * 1024)
#define DEF_OPENAI_URL   "https://api.openai.com/v1"
#define DEF_EMBED_BATCH  64

struct ad_backends {
    bool passthrough;
    ad_backend *backends;
    size_t nbackends;
    ad_model *models;
    size_t nmodels;
    bool has_embeddings;
    ad_embeddings_cfg embeddings;
};

/* Where a problem was found, for messages: "PATH: backends[1] ("az"): ". */
typedef struct where {
    FILE *err;
    const char *path;
    const char *section; /* "backends", "models" or NULL for the top level */
    size_t index;
    const char *name; /* the entry's name/id when known */
} where;

static void problem(const where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(const where *w, const char *fmt, ...)
{
    if (!w->err)
        return;
    fprintf(w->err, "assistd: %s: ", w->path);
    if (w->section) {
        fprintf(w->err, "%s[%zu]", w->section, w->index);
        if (w->name && w->name[0])
            fprintf(w->err, " (\"%s\")", w->name);
        fputs(": ", w->err);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(w->err, fmt, ap);
    va_end(ap);
    fputc('\n', w->err);
}

static const char *default_tokenizer(const char *model)
{
    static const char *const o200k[] = {"gpt-4o", "gpt-4.1", "gpt-5",     "o1",
                                        "o3",     "o4",      "chatgpt-4o"};
    for (size_t i = 0; i < sizeof o200k / sizeof o200k[0]; i++)
        if (ad_str_has_prefix(model, o200k[i]))
            return "o200k_base";
    return "cl100k_base";
}

/* The context window of OpenAI's models by name (longest prefix first);
 * anything else -- Ollama, vLLM and other local models included -- 128000
 * unless the configuration says otherwise. */
static int64_t default_context(const char *model)
{
    static const struct {
        const char *prefix;
        int64_t tokens;
    } known[] = {
        {"gpt-4.1", 1047576},     {"gpt-5", 400000},       {"o1-mini", 128000},
        {"o1", 200000},           {"o3", 200000},          {"o4", 200000},
        {"gpt-4o", 128000},       {"gpt-4-turbo", 128000}, {"gpt-4-1106", 128000},
        {"gpt-4-0125", 128000},   {"gpt-4-32k", 32768},    {"gpt-4", 8192},
        {"gpt-3.5-turbo", 16385},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (ad_str_has_prefix(model, known[i].prefix))
            return known[i].tokens;
    return DEF_CONTEXT;
}

/* Checks that obj has only keys from allowed (NULL-terminated). */
static bool only_keys(const where *w, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        (void)v;
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(key, allowed[i]))
                ok = true;
        if (!ok) {
            problem(w, "unknown key \"%s\"", key);
            return false;
        }
    }
    return true;
}

/* Copies a string member into dst. Missing: error when required, else dst
 * is left as it is. */
static bool get_str(const where *w, json_t *obj, const char *key, bool required, char *dst,
                    size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            problem(w, "missing \"%s\"", key);
        return !required;
    }
    if (!json_is_string(v)) {
        problem(w, "\"%s\" must be a string", key);
        return false;
    }
    const char *s = json_string_value(v);
    if (!s[0]) {
        problem(w, "\"%s\" must not be empty", key);
        return false;
    }
    if (json_string_length(v) != strlen(s)) {
        problem(w, "\"%s\" must not contain NUL characters", key);
        return false;
    }
    if (ad_strlcpy(dst, s, size) >= size) {
        problem(w, "\"%s\" is too long (at most %zu bytes)", key, size - 1);
        return false;
    }
    return true;
}

static bool get_int(const where *w, json_t *obj, const char *key, int64_t lo, int64_t hi,
                    int64_t *dst)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_integer(v)) {
        problem(w, "\"%s\" must be an integer", key);
        return false;
    }
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi) {
        problem(w, "\"%s\" must be between %lld and %lld", key, (long long)lo, (long long)hi);
        return false;
    }
    *dst = n;
    return true;
}

/* Validates an http(s) URL and strips trailing slashes. */
static bool fix_url(const where *w, const char *what, char *url)
{
    size_t skip = 0;
    if (ad_str_has_prefix(url, "http://"))
        skip = 7;
    else if (ad_str_has_prefix(url, "https://"))
        skip = 8;
    else {
        problem(w, "%s must be an http:// or https:// URL", what);
        return false;
    }
    size_t n = strlen(url);
    while (n > skip && url[n - 1] == '/')
        url[--n] = '\0';
    if (n == skip || url[skip] == '/') {
        problem(w, "%s has no host", what);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch == 0x7f || ch == '?' || ch == '#') {
            problem(w, "%s must not contain spaces, control characters, '?' or '#'", what);
            return false;
        }
    }
    return true;
}

/* Reads the key named by api_key_env (if any) into be->api_key. */
static bool get_key(const where *w, json_t *obj, ad_backend *be)
{
    char var[256] = "";
    if (!get_str(w, obj, "api_key_env", false, var, sizeof var))
        return false;
    if (!var[0])
        return true;
    const char *key = getenv(var);
    if (!key || !key[0]) {
        problem(w, "environment variable %s (api_key_env) is not set", var);
        return false;
    }
    if (ad_strlcpy(be->api_key, key, sizeof be->api_key) >= sizeof be->api_key) {
        problem(w, "the key in %s is too long", var);
        return false;
    }
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f) {
            problem(w, "the key in %s contains control characters", var);
            return false;
        }
    return true;
}

static void backend_defaults(ad_backend *be)
{
    memset(be, 0, sizeof *be);
    be->kind = AD_BACKEND_OPENAI;
    be->timeout_connect_ms = DEF_CONNECT_MS;
    be->timeout_idle_ms = DEF_IDLE_MS;
    be->max_retries = DEF_RETRIES;
}

static bool parse_backend(where *w, json_t *obj, ad_backend *be, const ad_backend *prev,
                          size_t nprev)
{
    static const char *const keys[] = {"name",
                                       "kind",
                                       "base_url",
                                       "api_key_env",
                                       "api_version",
                                       "timeout_connect_ms",
                                       "timeout_idle_ms",
                                       "max_retries",
                                       NULL};
    backend_defaults(be);
    if (!json_is_object(obj)) {
        problem(w, "must be an object");
        return false;
    }
    json_t *name = json_object_get(obj, "name");
    if (json_is_string(name))
        w->name = json_string_value(name);
    if (!only_keys(w, obj, keys) || !get_str(w, obj, "name", true, be->name, sizeof be->name))
        return false;
    for (size_t i = 0; i < nprev; i++)
        if (!strcmp(prev[i].name, be->name)) {
            problem(w, "duplicate backend name (also backends[%zu])", i);
            return false;
        }
    char kind[64] = "";
    if (!get_str(w, obj, "kind", true, kind, sizeof kind))
        return false;
    if (!strcmp(kind, "openai"))
        be->kind = AD_BACKEND_OPENAI;
    else if (!strcmp(kind, "azure"))
        be->kind = AD_BACKEND_AZURE;
    else {
        problem(w, "\"kind\" must be \"openai\" or \"azure\", not \"%s\"", kind);
        return false;
    }
    if (!get_str(w, obj, "base_url", true, be->base_url, sizeof be->base_url) ||
        !fix_url(w, "\"base_url\"", be->base_url))
        return false;
    if (be->kind == AD_BACKEND_AZURE) {
        if (!get_str(w, obj, "api_version", true, be->api_version, sizeof be->api_version))
            return false;
    } else if (json_object_get(obj, "api_version")) {
        problem(w, "\"api_version\" applies only to azure backends");
        return false;
    }
    int64_t conn = be->timeout_connect_ms, idle = be->timeout_idle_ms, retries = be->max_retries;
    if (!get_int(w, obj, "timeout_connect_ms", 1, MAX_TIMEOUT_MS, &conn) ||
        !get_int(w, obj, "timeout_idle_ms", 1, MAX_TIMEOUT_MS, &idle) ||
        !get_int(w, obj, "max_retries", 0, MAX_RETRIES, &retries))
        return false;
    be->timeout_connect_ms = (long)conn;
    be->timeout_idle_ms = (long)idle;
    be->max_retries = (int)retries;
    return get_key(w, obj, be);
}

static bool parse_model(where *w, json_t *obj, ad_model *m, const ad_backends *b)
{
    static const char *const keys[] = {
        "id", "backend", "upstream_model", "deployment", "context_window", "tokenizer", NULL};
    memset(m, 0, sizeof *m);
    if (!json_is_object(obj)) {
        problem(w, "must be an object");
        return false;
    }
    json_t *id = json_object_get(obj, "id");
    if (json_is_string(id))
        w->name = json_string_value(id);
    if (!only_keys(w, obj, keys) || !get_str(w, obj, "id", true, m->id, sizeof m->id))
        return false;
    for (size_t i = 0; i < b->nmodels; i++)
        if (!strcmp(b->models[i].id, m->id)) {
            problem(w, "duplicate model id (also models[%zu])", i);
            return false;
        }
    char backend[sizeof b->backends[0].name];
    if (!get_str(w, obj, "backend", true, backend, sizeof backend))
        return false;
    for (size_t i = 0; i < b->nbackends && !m->backend; i++)
        if (!strcmp(b->backends[i].name, backend))
            m->backend = &b->backends[i];
    if (!m->backend) {
        problem(w, "unknown backend \"%s\"", backend);
        return false;
    }
    if (m->backend->kind == AD_BACKEND_AZURE) {
        if (json_object_get(obj, "upstream_model")) {
            problem(w, "\"upstream_model\" applies only to openai backends (azure uses "
                       "\"deployment\")");
            return false;
        }
        ad_strlcpy(m->deployment, m->id, sizeof m->deployment);
        if (!get_str(w, obj, "deployment", false, m->deployment, sizeof m->deployment))
            return false;
    } else {
        if (json_object_get(obj, "deployment")) {
            problem(w, "\"deployment\" applies only to azure backends (openai uses "
                       "\"upstream_model\")");
            return false;
        }
        ad_strlcpy(m->upstream_model, m->id, sizeof m->upstream_model);
        if (!get_str(w, obj, "upstream_model", false, m->upstream_model, sizeof m->upstream_model))
            return false;
    }
    m->context_window = default_context(m->id);
    if (!get_int(w, obj, "context_window", 1, INT64_C(1) << 40, &m->context_window))
        return false;
    ad_strlcpy(m->tokenizer, default_tokenizer(m->id), sizeof m->tokenizer);
    if (!get_str(w, obj, "tokenizer", false, m->tokenizer, sizeof m->tokenizer))
        return false;
    if (strcmp(m->tokenizer, "o200k_base") && strcmp(m->tokenizer, "cl100k_base")) {
        problem(w, "\"tokenizer\" must be \"o200k_base\" or \"cl100k_base\"");
        return false;
    }
    return true;
}

/* The optional top-level "embeddings" object (see backends.h). */
static bool parse_embeddings(const where *top, json_t *obj, ad_backends *b)
{
    static const char *const keys[] = {"backend", "model", "dimensions", "batch_size", NULL};
    where w = {top->err, top->path, NULL, 0, NULL};
    ad_embeddings_cfg *e = &b->embeddings;
    memset(e, 0, sizeof *e);
    if (!json_is_object(obj)) {
        problem(&w, "\"embeddings\" must be an object");
        return false;
    }
    char backend[sizeof b->backends[0].name];
    if (!only_keys(&w, obj, keys) || !get_str(&w, obj, "backend", true, backend, sizeof backend) ||
        !get_str(&w, obj, "model", true, e->model, sizeof e->model))
        return false;
    for (size_t i = 0; i < b->nbackends && !e->backend; i++)
        if (!strcmp(b->backends[i].name, backend))
            e->backend = &b->backends[i];
    if (!e->backend) {
        problem(&w, "embeddings: unknown backend \"%s\"", backend);
        return false;
    }
    int64_t dims = 0, batch = DEF_EMBED_BATCH;
    if (!get_int(&w, obj, "dimensions", 1, 8192, &dims) ||
        !get_int(&w, obj, "batch_size", 1, 2048, &batch))
        return false;
    e->dimensions = (int)dims;
    e->batch_size = (int)batch;
    b->has_embeddings = true;
    return true;
}

static ad_err load_file(const char *path, FILE *err, ad_backends *b)
{
    where w = {err, path, NULL, 0, NULL};
    ad_err rc = AD_EINVAL;
    json_t *root = NULL;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        problem(&w, "cannot read the backends configuration file");
        return AD_EIO;
    }
    if (st.st_size > MAX_CONFIG_BYTES) {
        problem(&w, "file too large (at most %d bytes)", MAX_CONFIG_BYTES);
        return AD_ETOOBIG;
    }
    json_error_t je;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0) {
            problem(&w, "cannot read: %s", je.text);
            return AD_EIO;
        }
        problem(&w, "line %d, column %d: %s", je.line, je.column, je.text);
        return AD_EINVAL;
    }
    static const char *const top[] = {"backends", "models", "embeddings", NULL};
    if (!json_is_object(root)) {
        problem(&w, "the top level must be a JSON object");
        goto out;
    }
    if (!only_keys(&w, root, top))
        goto out;
    json_t *bes = json_object_get(root, "backends");
    json_t *mods = json_object_get(root, "models");
    if (!json_is_array(bes) || !json_array_size(bes)) {
        problem(&w, "\"backends\" must be a non-empty array");
        goto out;
    }
    if (!json_is_array(mods) || !json_array_size(mods)) {
        problem(&w, "\"models\" must be a non-empty array");
        goto out;
    }
    b->backends = ad_calloc(json_array_size(bes), sizeof *b->backends);
    b->models = ad_calloc(json_array_size(mods), sizeof *b->models);
    size_t i;
    json_t *v;
    json_array_foreach(bes, i, v)
    {
        where we = {err, path, "backends", i, NULL};
        if (!parse_backend(&we, v, &b->backends[i], b->backends, i))
            goto out;
        b->nbackends = i + 1;
    }
    json_array_foreach(mods, i, v)
    {
        where wm = {err, path, "models", i, NULL};
        if (!parse_model(&wm, v, &b->models[i], b))
            goto out;
        b->nmodels = i + 1;
    }
    json_t *emb = json_object_get(root, "embeddings");
    if (emb && !parse_embeddings(&w, emb, b))
        goto out;
    rc = AD_OK;
out:
    json_decref(root);
    return rc;
}

static ad_err load_env(FILE *err, ad_backends *b)
{
    where w = {err, "OPENAI_BASE_URL", NULL, 0, NULL};
    b->passthrough = true;
    b->backends = ad_calloc(1, sizeof *b->backends);
    b->nbackends = 1;
    ad_backend *be = &b->backends[0];
    backend_defaults(be);
    ad_strlcpy(be->name, "default", sizeof be->name);
    const char *url = getenv("OPENAI_BASE_URL");
    if (!url || !url[0])
        url = DEF_OPENAI_URL;
    if (ad_strlcpy(be->base_url, url, sizeof be->base_url) >= sizeof be->base_url) {
        problem(&w, "URL too long");
        return AD_EINVAL;
    }
    if (!fix_url(&w, "the URL", be->base_url))
        return AD_EINVAL;
    const char *key = getenv("OPENAI_API_KEY");
    if (key && ad_strlcpy(be->api_key, key, sizeof be->api_key) >= sizeof be->api_key) {
        w.path = "OPENAI_API_KEY";
        problem(&w, "key too long");
        return AD_EINVAL;
    }
    const char *emodel = getenv("ASSISTD_EMBEDDINGS_MODEL");
    if (emodel && emodel[0]) {
        ad_embeddings_cfg *e = &b->embeddings;
        e->backend = be;
        e->batch_size = DEF_EMBED_BATCH;
        if (ad_strlcpy(e->model, emodel, sizeof e->model) >= sizeof e->model) {
            w.path = "ASSISTD_EMBEDDINGS_MODEL";
            problem(&w, "model name too long");
            return AD_EINVAL;
        }
        b->has_embeddings = true;
    }
    return AD_OK;
}

ad_err ad_backends_load(const char *path, FILE *err, ad_backends **out)
{
    *out = NULL;
    ad_backends *b = ad_calloc(1, sizeof *b);
    ad_err rc = path && path[0] ? load_file(path, err, b) : load_env(err, b);
    if (rc) {
        ad_backends_free(b);
        return rc;
    }
    *out = b;
    return AD_OK;
}

void ad_backends_free(ad_backends *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->backends && i < b->nbackends; i++)
        explicit_bzero(b->backends[i].api_key, sizeof b->backends[i].api_key);
    ad_free(b->backends);
    ad_free(b->models);
    ad_free(b);
}

bool ad_backends_passthrough(const ad_backends *b)
{
    return b->passthrough;
}

const ad_model *ad_backends_model(const ad_backends *b, const char *id, ad_model *scratch)
{
    if (!id || !id[0])
        return NULL;
    if (b->passthrough) {
        memset(scratch, 0, sizeof *scratch);
        if (ad_strlcpy(scratch->id, id, sizeof scratch->id) >= sizeof scratch->id)
            return NULL;
        ad_strlcpy(scratch->upstream_model, id, sizeof scratch->upstream_model);
        scratch->backend = &b->backends[0];
        scratch->context_window = default_context(id);
        ad_strlcpy(scratch->tokenizer, default_tokenizer(id), sizeof scratch->tokenizer);
        return scratch;
    }
    for (size_t i = 0; i < b->nmodels; i++)
        if (!strcmp(b->models[i].id, id))
            return &b->models[i];
    return NULL;
}

size_t ad_backends_count(const ad_backends *b)
{
    return b->passthrough ? 0 : b->nmodels;
}

const ad_model *ad_backends_at(const ad_backends *b, size_t i)
{
    return i < ad_backends_count(b) ? &b->models[i] : NULL;
}

const ad_embeddings_cfg *ad_backends_embeddings(const ad_backends *b)
{
    return b && b->has_embeddings ? &b->embeddings : NULL;
}
