/* id.c -- random prefixed identifiers (see id.h). */
#include "id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "str.h"

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void ad_id_new(char out[AD_ID_MAX], const char *prefix)
{
    unsigned char rnd[AD_ID_RANDOM_LEN * 2];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "assistd: getrandom failed, aborting\n");
            abort();
        }
        got += (size_t)r;
    }
    size_t p = ad_strlcpy(out, prefix, AD_ID_MAX);
    if (p + AD_ID_RANDOM_LEN >= AD_ID_MAX)
        abort();
    /* Rejection sampling keeps the distribution uniform over 62 symbols. */
    size_t k = 0;
    for (size_t i = 0; i < sizeof rnd && k < AD_ID_RANDOM_LEN; i++) {
        if (rnd[i] >= 248)
            continue;
        out[p + k++] = alphabet[rnd[i] % 62];
    }
    while (k < AD_ID_RANDOM_LEN) { /* vanishingly rare: top up */
        unsigned char c;
        if (getrandom(&c, 1, 0) == 1 && c < 248)
            out[p + k++] = alphabet[c % 62];
    }
    out[p + k] = '\0';
}
