/*
 * Reconnect backoff, after gRPC's connection-backoff algorithm (internal).
 *
 * Pure: no clock and no random source of its own. Callers pass `now` and 32
 * random bits, so unit tests replay exact sequences with a fake clock.
 *
 *   attempt at t:  next_at = t + jittered(current); current grows by
 *                  multiplier up to max_ms for the attempt after
 *   connect timeout of that attempt: max(next_at, t + min_connect_timeout)
 *   failure at f:  wait until next_at (at once if it passed)
 *   success:       reset; after a later loss, wait one jittered initial
 *                  delay before the first attempt
 *
 * The jitter is what keeps a fleet of clients cut at the same moment from
 * coming back in lockstep and knocking the server over again.
 */
#ifndef VIGIL_BACKOFF_H
#define VIGIL_BACKOFF_H

#include <stdint.h>

#include "vigil.h"

typedef struct vigil__backoff {
  vigil_client_backoff cfg;
  double current_ms; /* un-jittered delay the next call returns */
  uint32_t calls;    /* delays handed out since the last reset */
} vigil__backoff;

/* 1 if cfg is usable (see vigil_client_backoff for the ranges). */
int vigil__backoff_valid(const vigil_client_backoff *cfg);
/* The same, and when it is not, "backoff.<field>: <value> is not in
 * <range>" in why (len bytes; why may be NULL). */
int vigil__backoff_check(const vigil_client_backoff *cfg, char *why,
                         size_t len);

/* Starts the sequence at cfg->initial_ms. cfg must be valid. */
void vigil__backoff_init(vigil__backoff *b, const vigil_client_backoff *cfg);

/* Back to initial_ms (after a connection succeeded). */
void vigil__backoff_reset(vigil__backoff *b);

/* Returns the next delay in ms, jittered by `rnd` (32 random bits) within
 * +-jitter, and advances: current = min(current * multiplier, max_ms). */
uint32_t vigil__backoff_next(vigil__backoff *b, uint32_t rnd);

/* base_ms scaled by a factor uniform in [1 - jitter, 1 + jitter), drawn
 * from rnd; rounded to the nearest ms. */
uint32_t vigil__backoff_jitter(double base_ms, double jitter, uint32_t rnd);

/* When the connect attempt started at `now`, whose successor may start at
 * next_at, gives up. */
uint64_t vigil__backoff_connect_deadline(const vigil_client_backoff *cfg,
                                         uint64_t now, uint64_t next_at);

/* splitmix64: a small, well-mixed PRNG for jitter (not for secrets).
 * Returns 32 random bits and advances *state. */
uint32_t vigil__rand32(uint64_t *state);

#endif
