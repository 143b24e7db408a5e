/*
 * Text helpers shared by the identity directory's parsers (internal,
 * pure); their error messages use vigil__textf (error.h).
 */
#ifndef VIGIL_REDIS_TEXT_H
#define VIGIL_REDIS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Strict decimal: 1..20 digits, no sign or space, value <= max. Returns 0
 * with *out set, or -1. */
int vigil__redis_parse_u64(const char *s, size_t len, uint64_t max,
                           uint64_t *out);

#endif
