/*
 * Text helpers shared by the identity directory's parsers and its error
 * messages (internal, pure).
 */
#ifndef VIGIL_REDIS_TEXT_H
#define VIGIL_REDIS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Strict decimal: 1..20 digits, no sign or space, value <= max. Returns 0
 * with *out set, or -1. */
int vigil__redis_parse_u64(const char *s, size_t len, uint64_t max,
                           uint64_t *out);

/* Formats into buf (NUL-terminated when len > 0; NULL buf is fine) and
 * returns rc, so that a check can say why and fail in one statement. */
int vigil__redis_textf(char *buf, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
