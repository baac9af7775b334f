/*
 * id.h -- object identifiers in OpenAI's shapes: a type prefix ("asst_",
 * "thread_", "msg_", "file-", ...) followed by 24 random base62 characters
 * drawn from the kernel CSPRNG (getrandom), so IDs are unguessable across
 * projects and never collide in practice.
 */
#ifndef AD_ID_H
#define AD_ID_H

#include <stddef.h>

#define AD_ID_RANDOM_LEN 24
#define AD_ID_MAX        64 /* enough for any prefix + random part + NUL */

/* Writes prefix + random part into out (size >= AD_ID_MAX). */
void ad_id_new(char out[AD_ID_MAX], const char *prefix);

#endif
