/* Ghost or live at takeover; the rule is in takeover_class.h. */
#include "takeover_class.h"

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* 4 x the smoothed RTT in ms, rounded up. */
static uint64_t four_rtts_ms(const vigil_tcp_info *ti) {
  return ti ? ((uint64_t)ti->rtt_us * 4u + 999u) / 1000u : 0;
}

/* Evidence in the kernel's view of the path. Measured on Linux 6.18 (see
 * suspect.c): a dead path with data in flight retransmits, an idle one past
 * keepalive_idle probes; a peer that stopped reading (zero window) shows
 * backoff without retransmits, which is a slow reader, not a gone path. */
static uint32_t kernel_evidence(const vigil_tcp_info *ti, uint64_t few_rtts) {
  uint32_t e = 0;
  if (ti->unacked > 0 && ti->retransmits > 0)
    e |= VIGIL_SUSPECT_UNACKED_RETRANS;
  if (ti->probes > 0) e |= VIGIL_SUSPECT_PROBES;
  /* Before the first RTO (200 ms at least) nothing retransmits yet; data
   * sent more than a few RTTs ago with no ACK since is already overdue.
   * Backoff without retransmits is the zero-window persist timer. */
  if (ti->unacked > 0 && ti->retransmits == 0 && ti->backoff == 0 &&
      ti->last_ack_recv_ms > ti->last_data_sent_ms &&
      ti->last_data_sent_ms > few_rtts)
    e |= VIGIL_SUSPECT_ACK_SILENCE;
  return e;
}

/* Evidence in vigil's own state: the peer did not answer what it should
 * have answered. */
static uint32_t own_evidence(const vigil__class_input *in, uint64_t few_rtts) {
  uint32_t e = 0;
  if (in->ping_asked_ms != 0 && in->ping_asked_ms > in->last_rx_ms &&
      in->now_ms > in->ping_asked_ms &&
      in->now_ms - in->ping_asked_ms > few_rtts)
    e |= VIGIL_EVIDENCE_PING_OUTSTANDING;
  if (in->suspected) e |= VIGIL_EVIDENCE_SUSPECTED;
  return e;
}

void vigil__takeover_classify(const vigil__class_input *in,
                              vigil__class_verdict *out) {
  uint64_t rtts = four_rtts_ms(in->ti);
  uint64_t few_rtts = max_u64(rtts, VIGIL__CLASS_FEW_RTTS_MIN_MS);
  uint32_t e = own_evidence(in, few_rtts);
  if (in->ti) e |= kernel_evidence(in->ti, few_rtts);
  out->evidence = e;
  out->cls = e ? VIGIL_PEER_GHOST : VIGIL_PEER_LIVE;
  uint64_t bound = max_u64(rtts, VIGIL__CLASS_DRAIN_MIN_MS);
  if (bound > in->drain_timeout_ms) bound = in->drain_timeout_ms;
  out->drain_ms = e ? 0 : (uint32_t)bound;
}
