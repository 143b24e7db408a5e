/*
 * Classifying a displaced conn at takeover (internal; takeover_class.c):
 * ghost or live, from evidence vigil already holds. Pure: plain numbers
 * in, a class, the evidence bits and the graceful close's bound out.
 *
 * The rule (docs/ghosts.md explains the choice of each threshold):
 *
 *   few_rtts = max(4 x srtt, 200 ms)
 *   ghost if any of:
 *     unacked_retrans   unacked > 0 and retransmits > 0
 *     probes            keepalive probes > 0
 *     ack_silence       unacked > 0, no retransmit or backoff yet, no ACK
 *                       since our last data, sent more than few_rtts ago
 *     ping_outstanding  a ping asked, nothing received since, for more
 *                       than few_rtts
 *     suspected         "suspect" raised since the last byte received
 *   live otherwise (no evidence counts as live). Silence alone is no
 *   evidence: an MQTT client pings every keep-alive k while the gateway's
 *   suspect_after is 0.75 k, so a live idle client is routinely silent
 *   past it.
 *
 *   live close bound = min(max(4 x srtt, 100 ms), drain_timeout)
 */
#ifndef VIGIL_TAKEOVER_CLASS_H
#define VIGIL_TAKEOVER_CLASS_H

#include <stdint.h>

#include "vigil.h"

/* Floor of "a few RTTs" for the ACK and the ping: Linux's minimum RTO and
 * the longest common delayed-ACK timer (Windows) are both 200 ms, so a
 * live peer on a short path can take that long to answer. */
#define VIGIL__CLASS_FEW_RTTS_MIN_MS 200u
/* Floor of the live close's bound: a live peer answers our FIN (EOF) from
 * its event loop, within a round trip and a scheduling delay. */
#define VIGIL__CLASS_DRAIN_MIN_MS 100u

/* The evidence on one conn, taken at the takeover. Times are the hub's
 * clock (ms). */
typedef struct vigil__class_input {
  const vigil_tcp_info *ti;   /* NULL: unreadable (only vigil's own
                                 state counts) */
  uint64_t now_ms;
  uint64_t last_rx_ms;        /* last byte received (adoption if none) */
  uint64_t ping_asked_ms;     /* oldest ping asked and unanswered (at or
                                 before last_rx: answered); 0 = never */
  int suspected;              /* "suspect" raised since last_rx */
  uint32_t drain_timeout_ms;  /* the policy's; 0 = none */
} vigil__class_input;

typedef struct vigil__class_verdict {
  vigil_peer_class cls;       /* VIGIL_PEER_GHOST or VIGIL_PEER_LIVE */
  uint32_t evidence;          /* VIGIL_SUSPECT_* | VIGIL_EVIDENCE_* */
  uint32_t drain_ms;          /* live: the graceful close's bound; 0 with
                                 drain_timeout 0 (close without waiting) */
} vigil__class_verdict;

void vigil__takeover_classify(const vigil__class_input *in,
                              vigil__class_verdict *out);

#endif
