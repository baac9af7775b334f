/*
 * config.c -- one table of options drives the environment parser, the
 * command-line parser and --help. Each entry knows its long option, its
 * ASSISTD_* variable, its default and how to store a value into ad_config.
 */
#include "core/config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/str.h"

#define VERSION "0.1.0"

typedef enum { K_STR, K_LISTEN, K_SIZE, K_UINT, K_SECS, K_BOOL, K_LEVEL } kind;
/* K_SECS: a whole number of seconds, 1 to 1000000. */

typedef struct opt {
    const char *name; /* --name */
    const char *env;  /* ASSISTD_... */
    kind k;
    const char *def;
    size_t off;  /* offset in ad_config */
    size_t size; /* for K_STR */
    const char *help;
} opt;

#define F(field) offsetof(ad_config, field), sizeof(((ad_config *)0)->field)

static const opt opts[] = {
    {"listen", "ASSISTD_LISTEN", K_LISTEN, "127.0.0.1:8080", F(listen_host),
     "HOST:PORT to listen on"},
    {"data-dir", "ASSISTD_DATA_DIR", K_STR, "./data", F(data_dir),
     "directory for the database and file bytes"},
    {"api-keys", "ASSISTD_API_KEYS", K_STR, "", F(api_keys),
     "comma-separated API keys (project \"default\")"},
    {"keys-file", "ASSISTD_KEYS_FILE", K_STR, "", F(keys_file),
     "file of API keys, one \"KEY [PROJECT]\" per line"},
    {"models", "ASSISTD_MODELS", K_STR, "", F(models),
     "comma-separated model ids assistants may name (none: any, and /v1/models shows the "
     "upstream's list)"},
    {"share-dir", "ASSISTD_SHARE_DIR", K_STR, AD_SHARE_DIR, F(share_dir),
     "read-only data: tokenizer tables, sandbox driver"},
    {"playground-dir", "ASSISTD_PLAYGROUND_DIR", K_STR, AD_PLAYGROUND_DIR, F(playground_dir),
     "built playground files, served at /playground"},
    {"config", "ASSISTD_CONFIG", K_STR, "", F(config),
     "model backends file (JSON, see README); none: OPENAI_BASE_URL/OPENAI_API_KEY"},
    {"max-json-body", "ASSISTD_MAX_JSON_BODY", K_SIZE, "16M", F(max_json_body),
     "largest JSON request body"},
    {"max-upload", "ASSISTD_MAX_UPLOAD", K_SIZE, "512M", F(max_upload_bytes),
     "largest file accepted by POST /files"},
    {"max-part", "ASSISTD_MAX_PART", K_SIZE, "64M", F(max_part_bytes),
     "largest part accepted by POST /uploads/{id}/parts"},
    {"threads", "ASSISTD_THREADS", K_UINT, "0", F(threads),
     "HTTP worker threads (0: one per CPU, at least 2)"},
    {"max-connections", "ASSISTD_MAX_CONNECTIONS", K_UINT, "10000", F(max_connections),
     "simultaneous client connections"},
    {"conn-timeout", "ASSISTD_CONN_TIMEOUT", K_UINT, "300", F(conn_timeout),
     "seconds an idle connection is kept"},
    {"run-ttl", "ASSISTD_RUN_TTL", K_SECS, "600", F(run_ttl),
     "seconds from a run's creation to its expires_at; a run still active then expires"},
    {"sse-heartbeat", "ASSISTD_SSE_HEARTBEAT", K_SECS, "15", F(sse_heartbeat),
     "seconds of silence on a run's event stream before a \": keep-alive\" comment is sent"},
    {"sse-direct", "ASSISTD_SSE_DIRECT", K_BOOL, "true", F(sse_direct),
     "run event streams write their sockets directly instead of resuming libmicrohttpd per "
     "event"},
    {"sse-hub-writes", "ASSISTD_SSE_HUB_WRITES", K_BOOL, "true", F(sse_hub_writes),
     "with sse-direct: the event-stream thread writes every event (producers only queue it) "
     "instead of the thread producing it"},
    {"sandbox-cpu-seconds", "ASSISTD_SANDBOX_CPU_SECONDS", K_SECS, "120", F(sandbox_cpu_seconds),
     "code_interpreter: CPU seconds per execution"},
    {"sandbox-memory", "ASSISTD_SANDBOX_MEMORY", K_SIZE, "2G", F(sandbox_memory),
     "code_interpreter: address space per sandboxed process"},
    {"sandbox-processes", "ASSISTD_SANDBOX_PROCESSES", K_UINT, "64", F(sandbox_processes),
     "code_interpreter: processes and threads per session"},
    {"sandbox-open-files", "ASSISTD_SANDBOX_OPEN_FILES", K_UINT, "256", F(sandbox_open_files),
     "code_interpreter: open files per process"},
    {"sandbox-file-size", "ASSISTD_SANDBOX_FILE_SIZE", K_SIZE, "512M", F(sandbox_file_size),
     "code_interpreter: largest file the code may write"},
    {"sandbox-disk", "ASSISTD_SANDBOX_DISK", K_SIZE, "1G", F(sandbox_disk),
     "code_interpreter: total size of a session's /mnt/data"},
    {"sandbox-idle", "ASSISTD_SANDBOX_IDLE", K_SECS, "3600", F(sandbox_idle),
     "code_interpreter: seconds before an idle session ends"},
    {"sandbox-max-sessions", "ASSISTD_SANDBOX_MAX_SESSIONS", K_UINT, "32", F(sandbox_max_sessions),
     "code_interpreter: live sessions (least recently used evicted)"},
    {"sandbox-timeout", "ASSISTD_SANDBOX_TIMEOUT", K_SECS, "120", F(sandbox_timeout),
     "code_interpreter: wall-clock seconds per execution"},
    {"sandbox-spares", "ASSISTD_SANDBOX_SPARES", K_UINT, "1", F(sandbox_spares),
     "code_interpreter: interpreters kept pre-started for new sessions (0: none)"},
    {"require-beta-header", "ASSISTD_REQUIRE_BETA", K_BOOL, "true", F(require_beta),
     "answer 400 invalid_beta without OpenAI-Beta: assistants=v2 on /v1 (as OpenAI)"},
    {"access-log", "ASSISTD_ACCESS_LOG", K_BOOL, "true", F(access_log), "log one line per request"},
    {"log-level", "ASSISTD_LOG_LEVEL", K_LEVEL, "info", F(log_level), "debug, info, warn or error"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static bool parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on")) {
        *out = true;
        return true;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off")) {
        *out = false;
        return true;
    }
    return false;
}

static bool store(ad_config *cfg, const opt *o, const char *v)
{
    char *base = (char *)cfg;
    switch (o->k) {
    case K_STR:
        return ad_strlcpy(base + o->off, v, o->size) < o->size;
    case K_LISTEN: {
        const char *colon = strrchr(v, ':');
        int64_t port;
        if (!colon || colon == v || !ad_parse_i64(colon + 1, &port) || port < 0 || port > 65535)
            return false;
        size_t hl = (size_t)(colon - v);
        if (v[0] == '[' && hl >= 2 && v[hl - 1] == ']') { /* [::1]:8080 */
            v++;
            hl -= 2;
        }
        if (hl >= sizeof cfg->listen_host)
            return false;
        memcpy(cfg->listen_host, v, hl);
        cfg->listen_host[hl] = '\0';
        cfg->listen_port = (int)port;
        return true;
    }
    case K_SIZE: {
        uint64_t n;
        if (!ad_parse_size(v, &n) || n == 0)
            return false;
        *(uint64_t *)(base + o->off) = n;
        return true;
    }
    case K_UINT:
    case K_SECS: {
        int64_t n;
        if (!ad_parse_i64(v, &n) || n < (o->k == K_SECS ? 1 : 0) || n > 1000000)
            return false;
        *(unsigned *)(base + o->off) = (unsigned)n;
        return true;
    }
    case K_BOOL:
        return parse_bool(v, (bool *)(base + o->off));
    case K_LEVEL: {
        int l = ad_log_level_parse(v);
        if (l < 0)
            return false;
        *(ad_log_level *)(base + o->off) = (ad_log_level)l;
        return true;
    }
    }
    return false;
}

void ad_config_usage(FILE *out)
{
    fprintf(out,
            "assistd %s -- a self-hosted OpenAI Assistants API v2 server\n\n"
            "usage: assistd [options]\n\n"
            "Every option can also be set with the environment variable shown.\n\n",
            VERSION);
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(out, "  --%-20s %-24s %s (default: %s)\n", opts[i].name, opts[i].env, opts[i].help,
                opts[i].def[0] ? opts[i].def : "none");
    fprintf(out, "  --%-20s %-24s %s\n  --%-20s %-24s %s\n", "help", "", "print this help",
            "version", "", "print the version");
}

ad_config_result ad_config_load(ad_config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTS; i++)
        if (!store(cfg, &opts[i], opts[i].def)) {
            fprintf(err, "assistd: bad built-in default for --%s\n", opts[i].name);
            return AD_CONFIG_ERROR;
        }
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && !store(cfg, &opts[i], v)) {
            fprintf(err, "assistd: invalid value for %s\n", opts[i].env);
            return AD_CONFIG_ERROR;
        }
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            ad_config_usage(out);
            return AD_CONFIG_EXIT_OK;
        }
        if (!strcmp(arg, "--version")) {
            fprintf(out, "assistd %s\n", VERSION);
            return AD_CONFIG_EXIT_OK;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(err, "assistd: unexpected argument '%s' (see --help)\n", arg);
            return AD_CONFIG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = NULL;
        for (size_t i = 0; i < NOPTS; i++)
            if (strlen(opts[i].name) == nl && !strncmp(opts[i].name, name, nl))
                o = &opts[i];
        if (!o) {
            fprintf(err, "assistd: unknown option '%s' (see --help)\n", arg);
            return AD_CONFIG_ERROR;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (a + 1 >= argc) {
                fprintf(err, "assistd: option --%s needs a value\n", o->name);
                return AD_CONFIG_ERROR;
            }
            v = argv[++a];
        }
        if (!store(cfg, o, v)) {
            fprintf(err, "assistd: invalid value for --%s\n", o->name);
            return AD_CONFIG_ERROR;
        }
    }
    if (cfg->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n < 2 ? 2 : (unsigned)n;
    }
    if (cfg->threads > 256)
        cfg->threads = 256;
    if (cfg->max_connections == 0)
        cfg->max_connections = 1;
    return AD_CONFIG_OK;
}
