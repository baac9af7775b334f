/*
 * fuzz_tokenizer.c -- libFuzzer target for the BPE tokenizer: arbitrary
 * bytes (invalid UTF-8, NULs, huge single pieces) are counted and encoded
 * with both encodings; count and encode must agree and every id must be
 * inside the vocabulary. The rank tables are loaded once from
 * share/tokenizer (run from the repository root, as scripts/run-tests.sh
 * does; AD_TOKENIZER_DIR overrides).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "run/tokenizer.h"

static ad_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("AD_TOKENIZER_DIR");
    const char *names[2] = {"cl100k_base", "o200k_base"};
    for (int i = 0; i < 2; i++)
        if (ad_tokenizer_load(dir ? dir : AD_TOKENIZER_DEFAULT_DIR, names[i], &toks[i]) != AD_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s\n", names[i]);
            abort();
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint32_t ids[1 << 16];
    for (int i = 0; i < 2; i++) {
        size_t n = ad_tokenizer_count(toks[i], (const char *)data, size);
        size_t m =
            ad_tokenizer_encode(toks[i], (const char *)data, size, ids, sizeof ids / sizeof ids[0]);
        if (n != m)
            abort(); /* count and encode disagree */
        if (size && n == 0)
            abort(); /* non-empty text is at least one token */
        size_t have = m < sizeof ids / sizeof ids[0] ? m : sizeof ids / sizeof ids[0];
        for (size_t k = 0; k < have; k++)
            if (ids[k] >= ad_tokenizer_vocab_size(toks[i]))
                abort();
    }
    return 0;
}
