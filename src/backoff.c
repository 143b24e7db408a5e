/* Reconnect backoff; see backoff.h. */
#include "backoff.h"

#include <stdio.h>

void vigil_client_backoff_init(vigil_client_backoff *cfg) {
  if (!cfg) return;
  /* gRPC connection-backoff defaults (doc/connection-backoff.md). */
  cfg->initial_ms = 1000;
  cfg->multiplier = 1.6;
  cfg->max_ms = 120000;
  cfg->jitter = 0.2;
  cfg->min_connect_timeout_ms = 20000;
}

/* Writes "backoff.<field>: <value> is not in <range>" to why. */
static int out_of_range(char *why, size_t len, const char *field, double v,
                        const char *range) {
  if (why && len) snprintf(why, len, "backoff.%s: %g is not in %s", field, v,
                           range);
  return 0;
}

int vigil__backoff_check(const vigil_client_backoff *cfg, char *why,
                         size_t len) {
  /* The comparisons are written so that NaN fails them. */
  if (!(cfg->initial_ms >= 1 && cfg->initial_ms <= VIGIL_MAX_DURATION_MS))
    return out_of_range(why, len, "initial_ms", cfg->initial_ms,
                        "1..86400000");
  if (!(cfg->max_ms >= cfg->initial_ms &&
        cfg->max_ms <= VIGIL_MAX_DURATION_MS))
    return out_of_range(why, len, "max_ms", cfg->max_ms,
                        "initial_ms..86400000");
  if (!(cfg->multiplier >= 1.0 && cfg->multiplier <= 10.0))
    return out_of_range(why, len, "multiplier", cfg->multiplier,
                        "1.0..10.0");
  if (!(cfg->jitter >= 0.0 && cfg->jitter <= 1.0))
    return out_of_range(why, len, "jitter", cfg->jitter, "0.0..1.0");
  if (!(cfg->min_connect_timeout_ms <= VIGIL_MAX_DURATION_MS))
    return out_of_range(why, len, "min_connect_timeout_ms",
                        cfg->min_connect_timeout_ms, "0..86400000");
  return 1;
}

int vigil__backoff_valid(const vigil_client_backoff *cfg) {
  return cfg && vigil__backoff_check(cfg, NULL, 0);
}

void vigil__backoff_init(vigil__backoff *b, const vigil_client_backoff *cfg) {
  b->cfg = *cfg;
  vigil__backoff_reset(b);
}

void vigil__backoff_reset(vigil__backoff *b) {
  b->current_ms = b->cfg.initial_ms;
  b->calls = 0;
}

uint32_t vigil__backoff_jitter(double base_ms, double jitter, uint32_t rnd) {
  double u = (double)rnd / 4294967296.0; /* [0, 1) */
  double v = base_ms * (1.0 + jitter * (2.0 * u - 1.0)) + 0.5;
  if (v < 0.0) return 0;
  if (v > (double)UINT32_MAX) return UINT32_MAX;
  return (uint32_t)v;
}

uint32_t vigil__backoff_next(vigil__backoff *b, uint32_t rnd) {
  uint32_t d = vigil__backoff_jitter(b->current_ms, b->cfg.jitter, rnd);
  /* Grow in floating point: rounding each step would drift the sequence
   * (1000, 1600, 2560, 4096, 6553.6 ...) away from its definition. */
  b->current_ms *= b->cfg.multiplier;
  if (b->current_ms > b->cfg.max_ms) b->current_ms = b->cfg.max_ms;
  b->calls++;
  return d;
}

uint64_t vigil__backoff_connect_deadline(const vigil_client_backoff *cfg,
                                         uint64_t now, uint64_t next_at) {
  uint64_t min = now + cfg->min_connect_timeout_ms;
  return next_at > min ? next_at : min;
}

uint32_t vigil__rand32(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (uint32_t)(z >> 32);
}
