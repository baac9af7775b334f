/*
 * log.h -- one-line log records on stderr.
 *
 * A logger is a small value owned by the server context (no global state):
 * records below its level are dropped. Every record is a single line
 * "TIMESTAMP LEVEL message" written with one write(2) so that lines from
 * concurrent threads never interleave. Callers must never pass secrets (API
 * keys) or request bodies into a log record.
 */
#ifndef AD_LOG_H
#define AD_LOG_H

typedef enum { AD_LOG_DEBUG, AD_LOG_INFO, AD_LOG_WARN, AD_LOG_ERROR } ad_log_level;

typedef struct ad_logger {
    ad_log_level level;
    int fd; /* usually 2 */
} ad_logger;

void ad_log(const ad_logger *lg, ad_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses "debug", "info", "warn" or "error"; returns -1 otherwise. */
int ad_log_level_parse(const char *s);

#endif
