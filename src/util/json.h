/*
 * json.h -- how assistd writes JSON.
 *
 * Every object is dumped compact, as OpenAI's API answers. Reals are written
 * with 15 significant digits, not jansson's default 17: a value a client
 * sent as a decimal (temperature 0.7, top_p 0.1) then comes back as it was
 * sent ("0.7", as OpenAI shows it), not as the nearest double spelled out
 * ("0.69999999999999996"). Any decimal of up to 15 significant digits
 * survives the round trip exactly; computed reals (search scores) lose only
 * digits beyond that.
 */
#ifndef AD_JSON_H
#define AD_JSON_H

#include <jansson.h>

#define AD_JSON_COMPACT (JSON_COMPACT | JSON_REAL_PRECISION(15))

#endif
