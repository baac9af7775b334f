/* err.c -- names for ad_err codes (see err.h). */
#include "err.h"

const char *ad_strerror(ad_err e)
{
    switch (e) {
    case AD_OK:
        return "ok";
    case AD_EINVAL:
        return "invalid input";
    case AD_ETOOBIG:
        return "too big";
    case AD_ENOTFOUND:
        return "not found";
    case AD_EEXIST:
        return "already exists";
    case AD_EIO:
        return "i/o error";
    case AD_EDB:
        return "store error";
    case AD_ESTATE:
        return "invalid state";
    case AD_EINTERNAL:
        return "internal error";
    case AD_ECANCELED:
        return "cancelled: the server is stopping";
    }
    return "unknown error";
}
