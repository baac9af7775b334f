/*
 * err.h -- the one error-code type of assistd.
 *
 * Every fallible internal function returns an ad_err. AD_OK is zero so that
 * `if (rc)` reads as "if it failed". HTTP handlers translate these codes into
 * OpenAI-shaped error bodies at the edge (src/api/reply.c); nothing below the
 * API layer knows about HTTP statuses.
 *
 * Out-of-memory is not an error code: see alloc.h for the policy.
 */
#ifndef AD_ERR_H
#define AD_ERR_H

typedef enum {
    AD_OK = 0,
    AD_EINVAL,    /* malformed input */
    AD_ETOOBIG,   /* a bounded buffer or input limit was exceeded */
    AD_ENOTFOUND, /* the object does not exist (or belongs to another project) */
    AD_EEXIST,    /* the object already exists */
    AD_EIO,       /* a filesystem operation failed */
    AD_EDB,       /* the store failed */
    AD_ESTATE,    /* the object is in a state that forbids the operation */
    AD_EINTERNAL, /* a bug or an unexpected condition */
    AD_ECANCELED  /* abandoned because the server is stopping */
} ad_err;

/* Static, human-readable name of an error code. Never NULL. */
const char *ad_strerror(ad_err e);

#endif
