/*
 * Helpers shared by the libFuzzer targets in tests/fuzz/ (each target is
 * one translation unit built by run_fuzz.sh, so everything here is static).
 *
 * The reference checks are written independently of the library code on
 * purpose (decode a code point, then judge it) so the two can disagree.
 */
#ifndef VIGIL_FUZZ_COMMON_H
#define VIGIL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts with the failed condition: libFuzzer saves the input. */
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                               \
    }                                                                        \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FNV_START 0xCBF29CE484222325ull

/* FNV-1a step over n bytes. */
static inline uint64_t fuzz_fnv(uint64_t h, const void *b, size_t n) {
  const uint8_t *p = b;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}

/* Decodes one UTF-8 sequence at s[0..len) (len >= 1): returns its length
 * and sets *cp, or 0 when it is ill-formed (cut, overlong, surrogate,
 * above U+10FFFF, stray continuation byte). */
static inline size_t ref_utf8_decode(const uint8_t *s, size_t len,
                                     uint32_t *cp) {
  uint8_t c = s[0];
  size_t n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
  else return 0;
  if (len < n) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    v = v << 6 | (s[k] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

/* 1 if s[0..len) is well-formed UTF-8 (U+0000 allowed). */
static inline int ref_utf8_ok(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = ref_utf8_decode(s + i, len - i, &cp);
    if (n == 0) return 0;
    i += n;
  }
  return 1;
}

#endif
