/*
 * A hub's metrics as a snapshot (metrics.h), and vigil_metrics_write():
 * the snapshot of one hub rendered without a worker label.
 */
#include <string.h>

#include "cluster.h"
#include "hub.h"

void vigil__metrics_snapshot_take(vigil_hub *hub,
                                  vigil__metrics_snapshot *out) {
  const vigil__metrics *m = &hub->metrics;
  memset(out, 0, sizeof *out);
  vigil__hub_stats_get(hub, &out->stats);
  for (int k = 0; k < VIGIL_SCOPE__COUNT; k++) {
    out->takeovers[k] = out->stats.takeovers_by_scope[k];
    out->takeover_latency[k] = m->takeover_latency[k];
  }
  out->dead_overshoot = m->dead_overshoot;
  out->has_census = m->has_census;
  if (m->has_census) {
    out->census = m->census;
    out->census_age_ms = vigil__hub_clock(hub) - m->census_at_ms;
  }
  out->directory_up = vigil__cluster_up(hub);
}

int vigil_metrics_write(vigil_hub *hub, char *buf, size_t len) {
  if (!hub || (!buf && len > 0)) return VIGIL_EINVAL;
  vigil__metrics_snapshot snap;
  vigil__metrics_snapshot_take(hub, &snap);
  vigil__metrics_series one = {-1, &snap};
  return vigil__metrics_render(&one, 1, buf, len);
}
