/*
 * auth.c -- the key table (see auth.h). Lookup is a linear constant-time
 * scan: key tables are small, and a hash lookup would leak timing.
 */
#include "http/auth.h"

#include <ctype.h>
#include <string.h>

#include "util/alloc.h"
#include "util/str.h"

#define KEY_MAX     512
#define PROJECT_MAX 128

typedef struct entry {
    char *key;
    size_t len;
    char *project;
} entry;

struct ad_auth {
    entry *e;
    size_t n, cap;
};

static void add(ad_auth *a, const char *key, size_t klen, const char *project, size_t plen)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->e = ad_realloc(a->e, a->cap * sizeof *a->e);
    }
    a->e[a->n].key = ad_strndup(key, klen);
    a->e[a->n].len = klen;
    a->e[a->n].project = ad_strndup(project, plen);
    a->n++;
}

static bool valid_key(const char *k, size_t n)
{
    if (n == 0 || n > KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)k[i]))
            return false;
    return true;
}

static bool valid_project(const char *p, size_t n)
{
    if (n == 0 || n > PROJECT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && !strchr("_-.", p[i]))
            return false;
    return true;
}

static ad_err load_file(ad_auth *a, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "assistd: cannot read keys file %s\n", path);
        return AD_EIO;
    }
    char line[1024];
    int lineno = 0;
    ad_err rc = AD_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            fprintf(err, "assistd: %s:%d: line too long\n", path, lineno);
            rc = AD_EINVAL;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            continue;
        const char *k = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - k);
        while (isspace((unsigned char)*p))
            p++;
        const char *proj = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t plen = (size_t)(p - proj);
        while (isspace((unsigned char)*p))
            p++;
        if (!valid_key(k, klen) || *p) {
            fprintf(err, "assistd: %s:%d: expected \"KEY [PROJECT]\"\n", path, lineno);
            rc = AD_EINVAL;
            break;
        }
        if (plen == 0) {
            proj = "default";
            plen = 7;
        } else if (!valid_project(proj, plen)) {
            fprintf(err, "assistd: %s:%d: project names use letters, digits, '_', '-', '.'\n", path,
                    lineno);
            rc = AD_EINVAL;
            break;
        }
        add(a, k, klen, proj, plen);
    }
    fclose(f);
    return rc;
}

ad_err ad_auth_load(const char *keys_csv, const char *keys_file, FILE *err, ad_auth **out)
{
    ad_auth *a = ad_calloc(1, sizeof *a);
    ad_err rc = AD_OK;
    const char *p = keys_csv;
    while (p && *p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n) {
            if (!valid_key(p, n)) {
                fprintf(err, "assistd: ASSISTD_API_KEYS holds an invalid key\n");
                rc = AD_EINVAL;
                goto out;
            }
            add(a, p, n, "default", 7);
        }
        p = c ? c + 1 : NULL;
    }
    if (keys_file && *keys_file)
        rc = load_file(a, keys_file, err);
out:
    if (rc) {
        ad_auth_free(a);
        return rc;
    }
    *out = a;
    return AD_OK;
}

void ad_auth_free(ad_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        /* Scrub the secret before returning the memory. */
        explicit_bzero(a->e[i].key, a->e[i].len);
        ad_free(a->e[i].key);
        ad_free(a->e[i].project);
    }
    ad_free(a->e);
    ad_free(a);
}

bool ad_auth_enabled(const ad_auth *a)
{
    return a->n > 0;
}

size_t ad_auth_count(const ad_auth *a)
{
    return a->n;
}

const char *ad_auth_check(const ad_auth *a, const char *key, size_t len)
{
    const char *found = NULL;
    for (size_t i = 0; i < a->n; i++) {
        bool eq = ad_ct_equal(a->e[i].key, a->e[i].len, key, len);
        if (eq && !found)
            found = a->e[i].project;
    }
    return found;
}
