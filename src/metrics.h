/*
 * Metrics (internal): what a hub measures for include/vigil/metrics.h, the
 * hooks the engine calls, and the Prometheus text renderer.
 *
 * Counters that already exist for vigil_hub_stats() are not duplicated:
 * a snapshot copies them. The hub owns only what stats lack: the two
 * histograms and the last census report.
 *
 * Rendering works on snapshots, not on hubs: a snapshot is a plain value
 * a hub's own thread can take and hand to another thread, so a group of
 * hubs on several loops renders one exposition from one snapshot per
 * worker (each series then gets a worker="N" label), without reading a
 * hub from a thread that does not own it.
 */
#ifndef VIGIL_METRICS_INTERNAL_H
#define VIGIL_METRICS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "vigil.h"

/* Bucket layouts (metrics_hooks.c). */
extern const vigil__hist_spec vigil__overshoot_spec;
extern const vigil__hist_spec vigil__takeover_spec;

/* What a hub measures beyond vigil_stats; zero at hub creation. */
typedef struct vigil__metrics {
  vigil__histogram dead_overshoot;   /* vigil__overshoot_spec */
  /* vigil__takeover_spec, by vigil_takeover_scope of the claim */
  vigil__histogram takeover_latency[VIGIL_SCOPE__COUNT];
  vigil_hub_census_report census;    /* last successful census */
  uint64_t census_at_ms;             /* hub clock, with has_census */
  int has_census;
  uint64_t generation;               /* moves with every histogram
                                        observation (a group publishes
                                        the histograms when it moved) */
} vigil__metrics;

/* Everything one exposition of one hub shows. */
typedef struct vigil__metrics_snapshot {
  vigil_stats stats; /* stats.open filled in */
  uint64_t takeovers[VIGIL_SCOPE__COUNT];
  vigil__histogram takeover_latency[VIGIL_SCOPE__COUNT];
  vigil__histogram dead_overshoot;
  int has_census;                 /* 0: the census series are left out */
  uint64_t census_age_ms;
  vigil_hub_census_report census;
  int directory_up;               /* 0/1; -1 = no cluster backend, left out */
  int census_only;                /* a group's census: only the census
                                     families show this snapshot */
} vigil__metrics_snapshot;

/* One hub's snapshot in an exposition; worker < 0 = no worker label. */
typedef struct vigil__metrics_series {
  int worker;
  const vigil__metrics_snapshot *snap;
} vigil__metrics_series;

/* ---- hooks (metrics_hooks.c), one call each in the engine ---- */
/* close.c, heartbeat dead close: how long after last_rx + dead_after
 * the conn is being closed. */
void vigil__metrics_observe_dead(vigil_conn *c);
/* takeover.c, vigil__takeover_evict: a conn of hub displaced by a claim
 * of `scope` that began at claim_us (CLOCK_MONOTONIC) was just reset. */
void vigil__metrics_observe_takeover(vigil_hub *hub,
                                     vigil_takeover_scope scope,
                                     uint64_t claim_us);
/* hub_census.c, vigil_hub_census: keeps a successful report, taken at
 * hub clock `now`. */
void vigil__metrics_census_done(vigil_hub *hub, int rc,
                                const vigil_hub_census_report *r,
                                uint64_t now);

/* ---- metrics.c ---- */
/* The hub's metrics now. */
void vigil__metrics_snapshot_take(vigil_hub *hub, vigil__metrics_snapshot *out);

/* ---- metrics_text.c ---- */
/* Renders the series as Prometheus text format 0.0.4 into buf with
 * snprintf semantics: returns the length of the whole text (without the
 * NUL), writes at most len - 1 bytes and a NUL when len > 0. Each metric
 * family appears once, with one sample per series. VIGIL_EOVERFLOW when
 * the text would exceed INT_MAX. */
int vigil__metrics_render(const vigil__metrics_series *v, size_t n, char *buf,
                          size_t len);
/* Escapes a label value (backslash, double quote, line feed) into buf
 * with the same snprintf semantics; returns the escaped length. */
size_t vigil__metrics_escape_label(const char *value, char *buf, size_t len);

#endif
