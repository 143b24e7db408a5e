/*
 * Fixed-bucket histograms of durations (internal).
 *
 * A histogram is a plain struct of counters embedded in its owner (the
 * hub): an observation is a scan of at most VIGIL__HIST_MAX_BOUNDS upper
 * bounds and two additions, with no allocation, so it may run on every
 * dead close and every takeover. The bucket layout is a static table
 * shared by every hub. Counts are kept per bucket and only made
 * cumulative when read, because Prometheus "le" buckets are cumulative
 * while an observation belongs to exactly one bucket.
 *
 * Values are microseconds: the finest unit any vigil duration needs
 * (same-hub takeovers take microseconds; heartbeat overshoot is measured
 * on the hub's millisecond clock and scaled).
 */
#ifndef VIGIL_HISTOGRAM_H
#define VIGIL_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define VIGIL__HIST_MAX_BOUNDS 20

typedef struct vigil__hist_spec {
  const uint64_t *bounds_us; /* ascending, each an inclusive upper bound */
  size_t nbounds;            /* 1..VIGIL__HIST_MAX_BOUNDS */
} vigil__hist_spec;

typedef struct vigil__histogram {
  /* buckets[i]: observations in (bounds[i-1], bounds[i]]; buckets[nbounds]:
   * above the last bound (counted only by the +Inf bucket). */
  uint64_t buckets[VIGIL__HIST_MAX_BOUNDS + 1];
  uint64_t count;
  uint64_t sum_us;
} vigil__histogram;

/* Counts one observation of value_us. */
void vigil__hist_observe(vigil__histogram *h, const vigil__hist_spec *spec,
                         uint64_t value_us);

/* Observations <= bounds[i]; i == nbounds gives every observation (the
 * +Inf bucket, equal to h->count). */
uint64_t vigil__hist_cumulative(const vigil__histogram *h, size_t i);

#endif
