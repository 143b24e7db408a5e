/*
 * Ping-flood guard (internal): pure logic, driven by the caller's clock.
 *
 * gRPC servers enforce a minimum interval between client pings and count
 * "ping strikes"; past the allowed strikes they send GOAWAY
 * too_many_pings. vigil does the same per connection, for the frame
 * codec's PING and for host protocols that report their own pings:
 *
 *   a ping less than ping_min_interval_ms after the previous one -> strike
 *   a ping at or past the interval                              -> strikes
 *                                                                  cleared
 *   strikes > ping_strikes                                      -> flood
 *
 * Clearing on a well-spaced ping forgives a client that retried once; a
 * flood never spaces its pings and is cut on its (ping_strikes + 1)-th
 * early one.
 */
#ifndef VIGIL_PING_GUARD_H
#define VIGIL_PING_GUARD_H

#include <stdint.h>

#include "vigil.h"

typedef struct vigil__ping_guard {
  uint64_t last_ms;       /* previous ping; 0 with seen == 0 */
  uint64_t strike_since;  /* first ping of the current run of strikes */
  uint32_t strikes;       /* early pings in the current run */
  uint32_t seen;          /* pings in the current run, the first included */
} vigil__ping_guard;

/* Verdict on one ping arriving at `now` (monotonic ms). Returns 1 when it
 * is one strike too many (the caller closes with ping_flood) and stores
 * the rate of the offending run in pings per second (rate may be NULL);
 * 0 otherwise. Off (always 0) when either policy field is 0. */
int vigil__ping_guard_check(vigil__ping_guard *g, const vigil_policy *p,
                            uint64_t now, uint32_t *rate_per_s);

#endif
