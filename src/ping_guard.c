/* See ping_guard.h. */
#include "ping_guard.h"

int vigil__ping_guard_check(vigil__ping_guard *g, const vigil_policy *p,
                            uint64_t now, uint32_t *rate_per_s) {
  if (p->ping_min_interval_ms == 0 || p->ping_strikes == 0) return 0;
  int early = g->seen > 0 && now - g->last_ms < p->ping_min_interval_ms;
  g->last_ms = now;
  if (!early) {
    g->strikes = 0;
    g->seen = 1;
    g->strike_since = now;
    return 0;
  }
  g->strikes++;
  g->seen++;
  if (g->strikes <= p->ping_strikes) return 0;
  if (rate_per_s) {
    /* seen pings over the run's span, the span at least 1 ms: a flood of
     * pings within one millisecond reports seen * 1000/s. */
    uint64_t span = now - g->strike_since;
    if (span == 0) span = 1;
    uint64_t rate = (uint64_t)g->seen * 1000u / span;
    *rate_per_s = rate > UINT32_MAX ? UINT32_MAX : (uint32_t)rate;
  }
  return 1;
}
