/*
 * Fixed-bucket histograms; see histogram.h.
 */
#include "histogram.h"

void vigil__hist_observe(vigil__histogram *h, const vigil__hist_spec *spec,
                         uint64_t value_us) {
  size_t i = 0;
  while (i < spec->nbounds && value_us > spec->bounds_us[i]) i++;
  h->buckets[i]++;
  h->count++;
  h->sum_us += value_us;
}

uint64_t vigil__hist_cumulative(const vigil__histogram *h, size_t i) {
  uint64_t total = 0;
  for (size_t k = 0; k <= i && k <= VIGIL__HIST_MAX_BOUNDS; k++)
    total += h->buckets[k];
  return total;
}
