/*
 * auth.h -- API keys and the projects they belong to.
 *
 * Keys come from ASSISTD_API_KEYS (project "default") and from a keys file
 * whose lines are "KEY [PROJECT]" ('#' starts a comment). A request presents
 * its key as "Authorization: Bearer KEY" (OpenAI) or "api-key: KEY" (Azure);
 * the key is compared against every configured key in constant time, with no
 * early exit, and the result is the key's project: every object a request
 * creates belongs to that project and other projects cannot see it. Keys are
 * held only in this table in memory -- never logged, never stored.
 *
 * With no key configured, authentication is off and every request belongs to
 * project "default"; main() then refuses to listen on anything but loopback.
 *
 * Ownership: ad_auth_load returns a table owned by the caller (ad_auth_free).
 * Returned project names are owned by the table.
 */
#ifndef AD_AUTH_H
#define AD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/err.h"

typedef struct ad_auth ad_auth;

/* keys_csv may be "" and keys_file may be "" (none). Problems are printed to
 * err with the line number, never the key. */
ad_err ad_auth_load(const char *keys_csv, const char *keys_file, FILE *err, ad_auth **out);
void ad_auth_free(ad_auth *a);
bool ad_auth_enabled(const ad_auth *a);
size_t ad_auth_count(const ad_auth *a);
/* The project of key[0..len), or NULL when it matches no configured key. */
const char *ad_auth_check(const ad_auth *a, const char *key, size_t len);

#endif
