/* Text helpers; see redis_text.h. */
#include "redis_text.h"


int vigil__redis_parse_u64(const char *s, size_t len, uint64_t max,
                           uint64_t *out) {
  if (!s || len == 0 || len > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (max - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}
