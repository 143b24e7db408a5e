/*
 * Suspicion: reading TCP_INFO before a peer is declared dead.
 *
 * A peer that vanished without FIN or RST looks exactly like a quiet one
 * until dead_after. The kernel often knows sooner: data it sent is not being
 * acknowledged (retransmits, exponential backoff), keepalive probes go
 * unanswered, or the last ACK is far older than the round-trip time would
 * explain. After suspect_after of receive silence vigil reads that evidence
 * and reports "suspect", so a host can mark a player lagging or stop
 * routing to a device before the verdict.
 *
 * An idle connection has nothing in flight, so there is no evidence to
 * find; with suspect_ping the host is asked for a ping at the first check,
 * which puts data in flight that the next check can judge.
 */
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "sockopt.h"
#include "suspect.h"

/* Returns VIGIL_SUSPECT_* bits found in a snapshot.
 *
 * Measured on Linux 6.18 with nftables blackholing the peer: a dead path
 * with data in flight shows retransmits = backoff = 1, 2, 3... and
 * last_ack_recv growing; an idle dead path past keepalive_idle shows
 * probes > 0. A live peer that stopped reading (zero window) shows
 * unacked 1 and backoff > 0 but retransmits = 0 and probes = 0, and its
 * last ACK is as old as the last (backed-off) window probe: that is a slow
 * reader, not a gone path, so neither backoff nor ACK age alone counts. */
static uint32_t evidence_of(const vigil_tcp_info *ti) {
  uint32_t e = 0;
  /* A lone unacked segment is normal (delayed ACK); an RTO retransmission
   * with no ACK progress since is not (the kernel resets retransmits on
   * every ACK that advances). */
  int retrans = ti->unacked > 0 && ti->retransmits > 0;
  if (retrans) e |= VIGIL_SUSPECT_UNACKED_RETRANS;
  if (ti->probes > 0) e |= VIGIL_SUSPECT_PROBES;
  /* On top of that, no ACK for over two RTOs: more than one lost segment.
   * rto_us is already doubled per backoff step; judge against the
   * un-backed-off RTO, or the bar would rise as fast as the silence. A
   * fresh send on a long-idle conn also has an old last ACK, which is why
   * a retransmission is required first. */
  uint32_t backoff = ti->backoff < 16 ? ti->backoff : 16;
  uint32_t base_rto_ms = (ti->rto_us >> backoff) / 1000u;
  if (retrans && ti->last_ack_recv_ms > 2u * base_rto_ms + 200u)
    e |= VIGIL_SUSPECT_ACK_SILENCE;
  return e;
}

int vigil__conn_suspect_check(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  vigil_tcp_info ti;
  int first = !(c->quiet & VIGIL__QUIET_CHECKED);
  c->quiet |= VIGIL__QUIET_CHECKED;
  c->t.checked = hub->now_ms;
  if (c->io.fd < 0 || vigil__sock_tcp_info(c->io.fd, &ti) != VIGIL_OK)
    return 0;
  uint32_t e = evidence_of(&ti);
  if (e) {
    c->quiet |= VIGIL__QUIET_SUSPECT;
    if (vigil__hub_wants_events(hub)) {
      vigil_event ev;
      vigil__event_init(&ev, VIGIL_EV_SUSPECT, hub, c);
      ev.tcp_info = &ti;
      ev.evidence = e;
      vigil__event_send(hub, &ev);
    }
    return 0;
  }
  return first && c->policy->suspect_ping && !(c->quiet & VIGIL__QUIET_PING);
}

vigil_reason vigil__timedout_reason(vigil_conn *c) {
  vigil_tcp_info ti;
  /* What tcp_info keeps after ETIMEDOUT (measured on Linux 6.18; the
   * kernel purges the write queue, so unacked and backoff read 0):
   *   keepalive kill (with or without user timeout): probes = cnt,
   *     retransmits 0;
   *   user timeout, data in flight: retransmits = RTOs fired, probes 0;
   *   user timeout, peer's window closed (persist timer): retransmits and
   *     probes 0, but notsent_bytes keeps the bytes the peer never took.
   * Keepalive probes are only sent with nothing in flight, so any trace of
   * data outranks probes. */
  if (c->io.fd >= 0 && vigil__sock_tcp_info(c->io.fd, &ti) == VIGIL_OK) {
    if (ti.unacked > 0 || ti.retransmits > 0 || ti.notsent_bytes > 0)
      return VIGIL_REASON_USER_TIMEOUT;
    if (ti.probes > 0) return VIGIL_REASON_KEEPALIVE_TIMEOUT;
  }
  if (c->outq.queued > 0) return VIGIL_REASON_USER_TIMEOUT;
  return c->policy->keepalive ? VIGIL_REASON_KEEPALIVE_TIMEOUT
                              : VIGIL_REASON_USER_TIMEOUT;
}
