/*
 * config.h -- assistd's configuration: command-line options, each with an
 * ASSISTD_* environment variable, resolved once at start-up into an
 * immutable ad_config that lives in the server context.
 *
 * Precedence: command line > environment > built-in default. ad_config_usage
 * prints the table that drives both parsers, so --help can never drift from
 * what is accepted.
 */
#ifndef AD_CONFIG_H
#define AD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/log.h"

#define AD_MAX_MODELS 64

/* The build sets this to the checkout's share/ directory. */
#ifndef AD_SHARE_DIR
#define AD_SHARE_DIR "share"
#endif

/* The build sets this to where it puts the built playground. */
#ifndef AD_PLAYGROUND_DIR
#define AD_PLAYGROUND_DIR "build/playground"
#endif

typedef struct ad_config {
    char listen_host[256];
    int listen_port;
    char data_dir[1024];
    char api_keys[4096];  /* comma-separated keys, project "default" */
    char keys_file[1024]; /* lines "KEY [PROJECT]" */
    char models[4096];    /* comma-separated model ids for /v1/models */
    char config[1024];    /* model backends file (run/backends.h); "" for zero config */
    char share_dir[1024]; /* read-only data files (tokenizer/, sandbox/) */
    /* built playground served at /playground (http/static.h) */
    char playground_dir[1024];
    uint64_t max_json_body;
    uint64_t max_upload_bytes; /* POST /files */
    uint64_t max_part_bytes;   /* POST /uploads/{id}/parts */
    unsigned threads;
    unsigned max_connections;
    unsigned conn_timeout;  /* seconds of inactivity before a connection is closed */
    unsigned run_ttl;       /* seconds from a run's creation to its expires_at */
    unsigned sse_heartbeat; /* seconds of silence before a stream gets ": keep-alive" */
    bool sse_direct;        /* run streams write their socket directly (http/sse.c) */
    bool sse_hub_writes;    /* ...from the SSE hub thread, not the producing one */
    /* code_interpreter sandbox (src/sandbox/sandbox.h) */
    unsigned sandbox_cpu_seconds;  /* CPU seconds per execution (RLIMIT_CPU, soft) */
    uint64_t sandbox_memory;       /* address space per process (RLIMIT_AS) */
    unsigned sandbox_processes;    /* processes+threads per session (RLIMIT_NPROC) */
    unsigned sandbox_open_files;   /* RLIMIT_NOFILE */
    uint64_t sandbox_file_size;    /* largest file the code may write (RLIMIT_FSIZE) */
    uint64_t sandbox_disk;         /* total bytes in a session's /mnt/data */
    unsigned sandbox_idle;         /* seconds before an idle session is ended */
    unsigned sandbox_max_sessions; /* live sessions; least recently used evicted */
    unsigned sandbox_timeout;      /* wall-clock seconds per execution */
    unsigned sandbox_spares;       /* pre-started interpreters for new sessions (0: none) */
    bool require_beta;             /* OpenAI-Beta: assistants=v2 on /v1 assistants routes */
    bool access_log;
    ad_log_level log_level;
} ad_config;

typedef enum { AD_CONFIG_OK, AD_CONFIG_EXIT_OK, AD_CONFIG_ERROR } ad_config_result;

/* Fills cfg from defaults, environment and argv. AD_CONFIG_EXIT_OK after
 * --help/--version (already printed); AD_CONFIG_ERROR after printing the
 * problem to err. */
ad_config_result ad_config_load(ad_config *cfg, int argc, char **argv, FILE *out, FILE *err);
void ad_config_usage(FILE *out);

#endif
