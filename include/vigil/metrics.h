/*
 * Metrics in the Prometheus text exposition format (version 0.0.4), the
 * format EMQX, HAProxy and Envoy export and every Prometheus-compatible
 * scraper reads.
 *
 *   char buf[16384];
 *   int n = vigil_metrics_write(hub, buf, sizeof buf);
 *   if (n >= 0 && (size_t)n < sizeof buf)
 *     ... serve buf (n bytes) as VIGIL_METRICS_CONTENT_TYPE ...
 *
 * The names below are stable: like close reasons, they are only ever
 * added to. Naming follows Prometheus conventions: snake_case, the base
 * unit in the name (seconds, bytes), counters end in _total. Every label
 * value a family can take is printed, zeros included (all close reasons,
 * all socket states), so rate() and alerts have a series before the first
 * event. A group of hubs (one per worker thread) renders the same
 * families with a worker="N" label first on every worker's series
 * (vigil_group_metrics_write in vigil/group.h); there the census families
 * are the group's, one series without a worker label.
 *
 * | name                              | type      | labels        |
 * |-----------------------------------|-----------|---------------|
 * | vigil_build_info                  | gauge     | version       |
 * | vigil_connections_open            | gauge     |               |
 * | vigil_connections_opened_total    | counter   |               |
 * | vigil_connections_closed_total    | counter   | reason        |
 * | vigil_takeovers_total             | counter   | scope         |
 * | vigil_takeovers_by_class_total    | counter   | class         |
 * | vigil_takeover_latency_seconds    | histogram | scope         |
 * | vigil_detection_overshoot_seconds | histogram |               |
 * | vigil_bytes_received_total        | counter   |               |
 * | vigil_bytes_sent_total            | counter   |               |
 * | vigil_accept_paused_total         | counter   |               |
 * | vigil_sockets                     | gauge     | state         |
 * | vigil_ghosts                      | gauge     | kind          |
 * | vigil_census_age_seconds          | gauge     |               |
 * | vigil_directory_up                | gauge     |               |
 *
 * vigil_build_info{version="0.1.0"} 1
 *     The library version serving the metrics (vigil_version_string()).
 * vigil_connections_open
 *     Connections adopted and not yet closed, including those in a
 *     graceful close (FLUSHING, DRAINING). Unit: connections.
 * vigil_connections_opened_total
 *     Connections adopted (vigil_adopt, listeners, clients) since the hub
 *     was created.
 * vigil_connections_closed_total{reason="..."}
 *     Connections closed, by their one close reason: every
 *     vigil_reason_name() but "none" (peer_closed, heartbeat_timeout,
 *     takeover, ...).
 * vigil_takeovers_total{scope="hub|worker|cluster"}
 *     Connections of this hub displaced by a newer claim of their identity
 *     (vigil_conn_identify, NEWEST_WINS or ASK), counted where the
 *     displaced connection lived (vigil_stats.takeovers_by_scope). scope
 *     says where the claim was made: "hub" (this hub), "worker" (another
 *     worker of the group), "cluster" (another node, vigil/cluster.h).
 *     All three are printed.
 * vigil_takeovers_by_class_total{class="ghost|live"}
 *     The same takeovers by what the displaced connection's peer was found
 *     to be (vigil_stats.takeovers_by_class, docs/ghosts.md): "ghost"
 *     (loss evidence: reset at once) or "live" (no evidence: closed
 *     gracefully within the takeover bound). Both are printed. Many live
 *     takeovers of one identity are two live devices sharing it (see the
 *     "flapping" event).
 * vigil_takeover_latency_seconds{scope="..."}
 *     Histogram: time from the start of the identity claim on the new
 *     connection (vigil_conn_identify) to the close decision on the
 *     displaced one (a ghost's reset; a live peer's graceful close
 *     begins then and ends within the takeover bound),
 *     including the takeover event's sink and, under VIGIL_TAKEOVER_ASK,
 *     the host's on_takeover decision; observed where the displaced
 *     connection lived, on CLOCK_MONOTONIC. Within one hub this is
 *     microseconds; across workers it adds the trip through the owning
 *     worker's mailbox. For scope "cluster" the claim was made on another
 *     node, whose clock is not this one: the time runs from the eviction's
 *     arrival on this node to the reset (the cross-node part is measured
 *     by bench/bench_takeover). Buckets (le, seconds): 0.00001 0.000025 0.00005
 *     0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25
 *     0.5 1 2.5 5 10 +Inf. The hub scope is always printed, the others
 *     once they have an observation.
 * vigil_detection_overshoot_seconds
 *     Histogram: for each connection closed with heartbeat_timeout, how
 *     long after its bound (last receive + dead_after) it was closed.
 *     Deadlines fire on the hub's tick (hub option tick_ms, 10 ms by
 *     default), so a healthy hub stays within one tick; more means the
 *     loop is late (blocked, overloaded, expire_batch reached). Measured
 *     on the hub clock, in whole milliseconds. Buckets (le, seconds):
 *     0.001 0.002 0.005 0.01 0.02 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf.
 * vigil_bytes_received_total, vigil_bytes_sent_total
 *     Application bytes received from and handed to the kernel (for TLS
 *     connections: plaintext), all connections. Unit: bytes.
 * vigil_accept_paused_total
 *     Times a listener paused accepting on EMFILE/ENFILE.
 * vigil_sockets{state="..."}
 *     TCP sockets on the hub's ports at the last census, any owner, by
 *     kernel state in lower case: established syn_sent syn_recv fin_wait1
 *     fin_wait2 time_wait close close_wait last_ack listen closing.
 *     Only once a census ran (vigil_hub_census(), or the hub option
 *     census_interval_ms).
 * vigil_ghosts{kind="leaked|close_wait_stale|orphans"}
 *     Ghost sockets at the last census (see vigil_hub_census_report):
 *     leaked fds, CLOSE_WAIT nobody closes, orphans. Only once a census
 *     ran.
 * vigil_census_age_seconds
 *     Time since the last successful census; vigil_sockets and
 *     vigil_ghosts are this old. A failing census leaves the last good
 *     values in place and this keeps growing. Only once a census ran.
 * vigil_directory_up
 *     1 while the cluster identity directory is reachable, else 0. Only
 *     for hubs with vigil_hub_options.cluster (vigil/cluster.h); in a
 *     group's metrics, one series per worker (each has its own link).
 */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include "vigil.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The HTTP Content-Type of the text vigil_metrics_write() produces. */
#define VIGIL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Renders the hub's metrics into buf, with snprintf semantics: returns the
 * length of the whole text (without the terminating NUL) and writes at
 * most len - 1 bytes plus a NUL. If the return value is >= len, the text
 * was cut: call again with a buffer of at least return + 1 bytes (a hub
 * renders about 6 KB). buf may be NULL when len is 0, to ask for the
 * size. Nothing is allocated; the text ends with a line feed.
 * Call it from the hub's thread, from anywhere (callbacks included): it
 * only reads. VIGIL_EINVAL for a NULL hub, or NULL buf with len > 0.
 */
VIGIL_EXPORT int vigil_metrics_write(vigil_hub *hub, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_METRICS_H */
