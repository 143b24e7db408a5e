/*
 * A group's metrics (vigil_group_metrics_write): one exposition with a
 * worker="N" label on every series of every worker, rendered from what the
 * workers published (group_stats.c), from any thread, without waiting for
 * any loop. The calling worker's own series are read from its hub and are
 * exact, as in vigil_group_stats.
 *
 * The census families (vigil_sockets, vigil_ghosts, vigil_census_age_
 * seconds) describe the group's ports, which the workers share, so they
 * come from the group's last census (vigil_group_census) as one series
 * without a worker label: per worker they would repeat the same sockets.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "group_internal.h"
#include "metrics.h"

/* Worker w's snapshot as published (or, on its own thread, as it is). */
static void worker_snapshot(vigil_worker *w, vigil_worker *self,
                            vigil__metrics_snapshot *out) {
  if (w == self && w->hub) {
    vigil__metrics_snapshot_take(w->hub, out);
  } else {
    memset(out, 0, sizeof *out);
    vigil__stats_read(&w->stats, &out->stats);
    vigil__metrics_pub m;
    vigil__metrics_read(&w->metrics, &m);
    for (int k = 0; k < VIGIL_SCOPE__COUNT; k++) {
      out->takeovers[k] = out->stats.takeovers_by_scope[k];
      out->takeover_latency[k] = m.takeover_latency[k];
    }
    out->dead_overshoot = m.dead_overshoot;
    out->directory_up = (int)m.directory_up - 1;
  }
  out->has_census = 0; /* the group's census stands for every worker */
}

/* The group's last census as a census-only snapshot; 0 if none ran. */
static int group_census_snapshot(vigil_group *g,
                                 vigil__metrics_snapshot *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&g->ports_lock);
  int has = g->has_census;
  if (has) {
    out->census = g->census_last;
    uint64_t now = vigil__monotonic_ms();
    out->census_age_ms = now > g->census_at_ms ? now - g->census_at_ms : 0;
  }
  pthread_mutex_unlock(&g->ports_lock);
  out->has_census = has;
  out->census_only = 1;
  out->directory_up = -1;
  return has;
}

int vigil_group_metrics_write(vigil_group *g, char *buf, size_t len) {
  if (!g || (!buf && len > 0)) return VIGIL_EINVAL;
  size_t n = g->nworkers;
  vigil__metrics_snapshot *snaps = malloc((n + 1) * sizeof *snaps);
  vigil__metrics_series *series = malloc((n + 1) * sizeof *series);
  if (!snaps || !series) {
    free(snaps);
    free(series);
    return VIGIL_ENOMEM;
  }
  vigil_worker *self = vigil__group_current_worker();
  for (size_t i = 0; i < n; i++) {
    worker_snapshot(g->workers[i], self, &snaps[i]);
    series[i].worker = (int)i;
    series[i].snap = &snaps[i];
  }
  size_t k = n;
  if (group_census_snapshot(g, &snaps[n])) {
    series[n].worker = -1;
    series[n].snap = &snaps[n];
    k++;
  }
  int rc = vigil__metrics_render(series, k, buf, len);
  free(snaps);
  free(series);
  return rc;
}
