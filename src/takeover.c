/*
 * Identity claims and takeover; see vigil_conn_identify in vigil.h.
 *
 * A device that reboots (or loses its path and reconnects) opens a new
 * connection while the server still holds the old one as ESTABLISHED: the
 * old peer is gone but nothing told the server. Claiming an identity on the
 * new connection ends that ghost at once instead of after dead_after or the
 * kernel timeouts (MQTT-3.1.4-2 does the same for client ids).
 *
 * A claim on an identity whose holder is live (HANDSHAKE or OPEN) is
 * contested and the policy decides:
 *
 *   NEWEST_WINS  holder closes now with reason takeover (RST under
 *                abort_dead: the displaced peer is presumed dead), event
 *                "takeover" names both conns;
 *   OLDEST_WINS  the claimant closes gracefully with takeover_rejected;
 *   ASK          the hub's on_takeover callback decides (newest wins when
 *                there is no callback).
 *
 * A holder that is already leaving (peer FIN seen, or closing) is not a
 * contest: the identity simply moves to the claimant.
 *
 * Flapping: contested claims are counted per identity in a sliding window
 * of 16 slices (a claim counts for between 15/16 of flap_window and the
 * whole window, never longer). More than flap_max of them raise
 * "flapping"; with flap_ban_ms the claim that crossed the line and every
 * claim until the ban ends are refused with identity_banned. A ban refuses
 * claims; it does not close the current holder.
 *
 * The index itself (hashing, epochs, memory) is identity.c.
 */
#include <stdlib.h>
#include <string.h>

#include "close.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "identity.h"
#include "takeover.h"
#include "transport.h"

/* ---- flapping ---- */

/* Records one contested claim at `now` and returns how many fall inside
 * the window. Slices older than the window are cleared as time moves. */
static uint32_t flap_record(vigil__id_entry *e, const vigil_policy *p, uint64_t now) {
  uint32_t n = p->flap_window_ms < VIGIL__FLAP_SLICES ? p->flap_window_ms
                                               : VIGIL__FLAP_SLICES;
  uint32_t width = p->flap_window_ms / n;
  if (width != e->slice_ms) { /* policy changed: start over */
    memset(e->slices, 0, sizeof e->slices);
    e->slice_ms = width;
    e->slice_head = now / width;
  }
  uint64_t k = now / width;
  if (k - e->slice_head >= n) {
    memset(e->slices, 0, sizeof e->slices);
  } else {
    for (uint64_t s = e->slice_head + 1; s <= k; s++) e->slices[s % n] = 0;
  }
  e->slice_head = k;
  e->slices[k % n]++;
  uint32_t sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += e->slices[i];
  return sum;
}

/* ---- claims ---- */

/* Live and staying: a contest is only against such a holder. */
static int staying(const vigil_conn *c) {
  return c->state == VIGIL_CONN_HANDSHAKE || c->state == VIGIL_CONN_OPEN;
}

static void emit(vigil_hub *hub, vigil_event_type type, vigil_conn *c,
                 uint64_t other, uint32_t count) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, c);
  ev.other_conn_id = other;
  ev.count = count;
  vigil__event_send(hub, &ev);
}

/* Moves e from its live holder to c and closes the holder. */
static void take_over(vigil_hub *hub, vigil__id_entry *e, vigil_conn *c) {
  vigil_conn *old = e->conn;
  vigil__identity_install(hub, e, c);
  hub->stats.takeovers++;
  hub->stats.takeovers_by_scope[VIGIL_SCOPE_HUB]++;
  emit(hub, VIGIL_EV_TAKEOVER, c, old->id, 0);
  /* The old peer is presumed gone (rebooted device): RST under abort_dead
   * so no FIN_WAIT1 orphan retransmits to it. */
  vigil__conn_close(old, VIGIL_REASON_TAKEOVER, VIGIL__CLOSE_DEAD);
  vigil__metrics_observe_takeover(hub);
}

/* Refuses c's claim: it closes gracefully, so output it queued before
 * the claim still reaches the peer. */
static int refuse(vigil_conn *c, vigil_reason reason, int rc) {
  vigil__conn_close(c, reason, VIGIL__CLOSE_GRACEFUL);
  return rc;
}

/* Is c's claim on e contested by another live, staying holder? */
static int contested(const vigil__id_entry *e, const vigil_conn *c) {
  return e->conn && e->conn != c && staying(e->conn);
}

/* Did the host close c from a callback we just made? */
static int claimant_gone(const vigil_hub *hub, const vigil_conn *c) {
  return hub->free_requested || c->state == VIGIL_CONN_CLOSED ||
         vigil__closing(c) || c->state == VIGIL_CONN_CLOSE_WAIT;
}

/* Counts a contested claim; reports and, with a ban, refuses the claim
 * that crosses flap_max. Returns VIGIL_OK to go on with the contest.
 * e is pinned while the event runs: the host may close either conn. */
static int check_flapping(vigil_hub *hub, vigil__id_entry *e, vigil_conn *c,
                          uint64_t now) {
  const vigil_policy *p = c->policy;
  uint32_t n = flap_record(e, p, now);
  if (n <= p->flap_max) {
    e->flapping = 0;
    return VIGIL_OK;
  }
  if (!e->flapping) {
    e->flapping = 1;
    e->pinned = 1;
    emit(hub, VIGIL_EV_FLAPPING, c, e->conn->id, n);
    e->pinned = 0;
  }
  if (p->flap_ban_ms > 0) {
    e->ban_until = now + p->flap_ban_ms;
    if (claimant_gone(hub, c)) return VIGIL_ECLOSED;
    return refuse(c, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED);
  }
  if (claimant_gone(hub, c)) {
    vigil__identity_drop_idle(hub, e, now);
    return VIGIL_ECLOSED;
  }
  return VIGIL_OK;
}

/* ASK mode: 1 if the claimant should win. Pins e across the callback,
 * which may close either conn or claim other identities. */
static int ask_host(vigil_hub *hub, vigil__id_entry *e, vigil_conn *c) {
  if (!hub->opts.on_takeover) return 1;
  e->pinned = 1;
  int win = hub->opts.on_takeover(hub, e->conn, c, hub->opts.takeover_data);
  e->pinned = 0;
  return win != 0;
}

/* Resolves a claim by c on entry e (exists, not banned). */
static int resolve(vigil_hub *hub, vigil__id_entry *e, vigil_conn *c,
                   uint64_t now) {
  const vigil_policy *p = c->policy;
  if (contested(e, c) && p->flap_max > 0) {
    int rc = check_flapping(hub, e, c, now);
    if (rc != VIGIL_OK) return rc;
  }
  if (!contested(e, c)) {
    vigil__identity_install(hub, e, c);
    return VIGIL_OK;
  }
  int new_wins = 1;
  if (p->takeover == VIGIL_TAKEOVER_OLDEST_WINS) {
    new_wins = 0;
  } else if (p->takeover == VIGIL_TAKEOVER_ASK) {
    new_wins = ask_host(hub, e, c);
    if (claimant_gone(hub, c)) {
      vigil__identity_drop_idle(hub, e, now);
      return VIGIL_ECLOSED;
    }
    /* The callback may have closed the holder: re-judge the contest. */
    if (!contested(e, c)) {
      vigil__identity_install(hub, e, c);
      return VIGIL_OK;
    }
  }
  if (!new_wins)
    return refuse(c, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED);
  take_over(hub, e, c);
  return VIGIL_OK;
}

/* Stores the claimed identity on c (shown in its events even when the
 * claim is refused); epoch 0 until it holds the identity. */
static int copy_to_conn(vigil_conn *c, const void *id, size_t len) {
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (!x) return VIGIL_ENOMEM;
  char *copy = malloc(len + 1);
  if (!copy) return VIGIL_ENOMEM;
  memcpy(copy, id, len);
  copy[len] = '\0';
  x->identity = copy;
  x->identity_len = len;
  x->epoch = 0;
  return VIGIL_OK;
}

static int claim(vigil_hub *hub, vigil_conn *c, const void *id, size_t len) {
  uint64_t now = vigil__hub_clock(hub);
  vigil__id_entry *e = vigil__identity_entry(hub, id, len, now);
  if (!e) return VIGIL_ENOMEM;
  if (copy_to_conn(c, id, len) != VIGIL_OK) {
    vigil__identity_drop_idle(hub, e, now);
    return VIGIL_ENOMEM;
  }
  if (e->ban_until)
    return refuse(c, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED);
  return resolve(hub, e, c, now);
}

/* ---- certificate proof ---- */

static const char NOT_PROVEN[] = "identity not proven by certificate";

static int proof_of(const vigil_conn *c, const void *id, size_t len) {
  return c->tp->proof ? c->tp->proof(c, id, len) : VIGIL__PROOF_NONE;
}

/* With identity_proof (vigil/tls.h), a certificate says who a peer is and
 * a claim in protocol data is only a claim:
 *  - a conn whose certificate proves an identity may claim only that one;
 *  - an identity held by a conn that proved it moves only to another conn
 *    that proves it too: a peer cannot kick a device off by naming it;
 *  - a conn that proves nothing claims like any plain TCP conn.
 * Returns VIGIL_OK, or VIGIL_EREJECTED after setting the close detail. */
static int proof_check(vigil_conn *c, const void *id, size_t len) {
  int mine = proof_of(c, id, len);
  int kind = mine & VIGIL__PROOF_KIND;
  if ((mine & VIGIL__PROOF_ENFORCED) && kind != VIGIL__PROOF_NONE) {
    if (kind == VIGIL__PROOF_MATCH) return VIGIL_OK;
  } else {
    vigil_conn *holder = vigil__identity_holder(c->hub, id, len);
    if (!holder || holder == c || !staying(holder)) return VIGIL_OK;
    int theirs = proof_of(holder, id, len);
    if (!(theirs & VIGIL__PROOF_ENFORCED) ||
        (theirs & VIGIL__PROOF_KIND) != VIGIL__PROOF_MATCH ||
        kind == VIGIL__PROOF_MATCH)
      return VIGIL_OK;
  }
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (x && !x->detail) x->detail = NOT_PROVEN;
  return VIGIL_EREJECTED;
}

/* ---- the claim ---- */

int vigil__identify(vigil_conn *c, const void *id, size_t len) {
  if (len == 0 || len > VIGIL__ID_MAX_LEN) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  /* A conn whose peer already said goodbye must not displace a live one. */
  if (claimant_gone(hub, c)) return VIGIL_ECLOSED;
  uint64_t outer_claim = vigil__metrics_claim_begin(hub);
  /* Certificate proof comes first: a claim that a TLS identity
   * contradicts closes the conn even if it already holds one. */
  int rc = proof_check(c, id, len);
  if (rc != VIGIL_OK)
    rc = refuse(c, VIGIL_REASON_TAKEOVER_REJECTED, rc);
  else if (c->ext && c->ext->identity)
    rc = VIGIL_EEXIST;
  else
    rc = claim(hub, c, id, len);
  vigil__metrics_claim_end(hub, outer_claim);
  return rc;
}
