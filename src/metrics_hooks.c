/*
 * What the engine reports to the metrics (metrics.h): the one-line hooks in
 * close.c, takeover.c and hub_census.c land here, and the bucket
 * layouts of the two histograms are defined here. Nothing in this file
 * calls back into the engine, so the hooks add no call circle between
 * files.
 *
 * Bucket layouts. The detection overshoot is measured on the hub clock,
 * whose deadlines fire on a tick (10 ms by default): the buckets resolve
 * one tick (1, 2, 5, 10 ms) and go up to 10 s for a loop that stalls.
 * Takeover latency within one hub is microseconds (a hash lookup, an
 * event and a close); across workers or nodes it will be milliseconds to
 * seconds (EMQX budgets 15 s for a cluster takeover): the buckets span
 * 10 us to 10 s.
 */
#include "clock.h"
#include "conn.h"
#include "hub.h"

static const uint64_t overshoot_bounds_us[] = {
    1000,   2000,   5000,    10000,   20000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const uint64_t takeover_bounds_us[] = {
    10,     25,     50,      100,     250,     500,     1000,
    2500,   5000,   10000,   25000,   50000,   100000,  250000,
    500000, 1000000, 2500000, 5000000, 10000000,
};

const vigil__hist_spec vigil__overshoot_spec = {
    overshoot_bounds_us,
    sizeof overshoot_bounds_us / sizeof overshoot_bounds_us[0]};
const vigil__hist_spec vigil__takeover_spec = {
    takeover_bounds_us,
    sizeof takeover_bounds_us / sizeof takeover_bounds_us[0]};

void vigil__metrics_observe_dead(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  uint64_t bound = c->t.last_rx + c->policy->dead_after_ms;
  uint64_t over_ms = hub->now_ms > bound ? hub->now_ms - bound : 0;
  vigil__hist_observe(&hub->metrics.dead_overshoot, &vigil__overshoot_spec,
                      over_ms * 1000u);
  hub->metrics.generation++;
}

/* Takeover latency needs a finer clock than the hub's (milliseconds, and
 * fake in tests), and one that two threads share: CLOCK_MONOTONIC. */
void vigil__metrics_observe_takeover(vigil_hub *hub,
                                     vigil_takeover_scope scope,
                                     uint64_t claim_us) {
  if ((unsigned)scope >= VIGIL_SCOPE__COUNT) return;
  uint64_t now = vigil__monotonic_us();
  vigil__hist_observe(&hub->metrics.takeover_latency[scope],
                      &vigil__takeover_spec,
                      now > claim_us ? now - claim_us : 0);
  hub->metrics.generation++;
}

void vigil__metrics_census_done(vigil_hub *hub, int rc,
                                const vigil_hub_census_report *r,
                                uint64_t now) {
  if (rc != VIGIL_OK) return; /* keep the last good one; its age shows */
  hub->metrics.census = *r;
  hub->metrics.census_at_ms = now;
  hub->metrics.has_census = 1;
}
