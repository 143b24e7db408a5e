/*
 * Identity claims and takeover; see vigil_conn_identify in vigil.h.
 *
 * A device that reboots (or loses its path and reconnects) opens a new
 * connection while the server still holds the old one as ESTABLISHED: the
 * old peer is gone but nothing told the server. Claiming an identity on the
 * new connection ends that ghost at once instead of after dead_after or the
 * kernel timeouts (MQTT-3.1.4-2 does the same for client ids). In a group,
 * the kernel puts the reconnecting device on any worker, so the ghost is as
 * likely to live on another worker: the directory is the group's, and the
 * eviction travels to the ghost's worker.
 *
 * A claim (this file's state machine):
 *
 *   identify(c, id)
 *     | c's certificate names another identity -> REFUSED
 *     | c holds an identity already: only the proof rule is checked, then
 *     |   EEXIST
 *     v
 *   JUDGE: the directory runs the rules (takeover_rules.c) under its
 *     |    lock and applies the verdict <--------------------------------+
 *     |-- INSTALL: c holds id (a leaving holder just lost it) -> OK      |
 *     |-- EVICT: c holds id; event "takeover"; the displaced holder is   |
 *     |          closed by its own hub: this one at once, another        |
 *     |          worker's through that worker's mailbox -> OK            |
 *     |-- REFUSE: c closes gracefully (takeover_rejected, banned),       |
 *     |           so output it queued before the claim still goes out    |
 *     |-- PAUSE: host code must run unlocked: the "flapping" event, or   |
 *     |          the ASK callback; if c closed meanwhile -> ECLOSED,     |
 *     |          else judge again with what the host said ---------------+
 *
 * Fencing. An eviction names the holder it displaced and that holder's
 * epoch. The holder's hub closes the conn only if the conn still holds the
 * identity through that very holder at that epoch, and still stays (a conn
 * already leaving finishes its own close): a late message, or a repeated
 * one, never closes a successor. Every displaced conn is closed by
 * vigil__takeover_evict, whatever the scope, by class: a ghost (evidence
 * of a gone path) is reset, a live peer closed gracefully within a bound
 * of a few RTTs (takeover_class.h; docs/ghosts.md).
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "close.h"
#include "conn.h"
#include "deadline.h"
#include "event.h"
#include "hub.h"
#include "identity.h"
#include "policy_share.h"
#include "sockopt.h"
#include "takeover.h"
#include "takeover_class.h"
#include "takeover_rules.h"
#include "transport.h"

/* Live and staying: only such a conn may claim or be evicted. */
static int staying(const vigil_conn *c) {
  return c->state == VIGIL_CONN_HANDSHAKE || c->state == VIGIL_CONN_OPEN;
}

/* Did the host close c (or free its hub) from a callback we just made? */
static int claimant_gone(const vigil_hub *hub, const vigil_conn *c) {
  return hub->free_requested || !staying(c);
}

/* Refuses c's claim: it closes gracefully, so output it queued before
 * the claim still reaches the peer. */
static int refuse(vigil_conn *c, vigil_reason reason, int rc,
                  const char *detail) {
  if (detail) {
    vigil__conn_ext *x = vigil__conn_ext_get(c);
    if (x && !x->detail) x->detail = detail;
  }
  vigil__conn_close(c, reason, VIGIL__CLOSE_GRACEFUL);
  return rc;
}

/* ---- events ---- */

static void emit_flapping(vigil_hub *hub, vigil_conn *c,
                          const vigil__holder *holder,
                          const vigil__claim_ctx *x) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_FLAPPING, hub, c);
  ev.other_conn_id = holder ? holder->conn_id : 0;
  ev.count = x->flap_count;
  ev.detail = x->flap_detail;
  vigil__event_send(hub, &ev);
}

/* The claimant's event; v is the displaced conn's class when it lives on
 * this hub (classified just now), NULL when it lives elsewhere. */
static void emit_takeover(vigil_hub *hub, vigil_conn *c,
                          const vigil__holder *old,
                          const vigil__class_verdict *v) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_TAKEOVER, hub, c);
  ev.other_conn_id = old->conn_id;
  ev.scope = old->hub == hub ? VIGIL_SCOPE_HUB : VIGIL_SCOPE_WORKER;
  ev.other_worker = old->worker;
  if (v) {
    ev.peer_class = v->cls;
    ev.evidence = v->evidence;
  }
  vigil__event_send(hub, &ev);
}

/* ---- eviction ---- */

int vigil__takeover_fenced_in(const vigil__evict_msg *m, const vigil_conn *c) {
  return c && c->ext && c->ext->holder == m->holder &&
         m->holder->epoch == m->holder_epoch &&
         m->holder_epoch < m->fence_epoch && staying(c);
}

/* The evidence on a live conn, judged (takeover_class.h). */
static void classify(vigil_conn *c, vigil__class_verdict *v) {
  vigil_tcp_info ti;
  vigil__class_input in;
  memset(&in, 0, sizeof in);
  if (c->io.fd >= 0 && vigil__sock_tcp_info(c->io.fd, &ti) == VIGIL_OK)
    in.ti = &ti;
  in.now_ms = c->hub->now_ms;
  in.last_rx_ms = c->t.last_rx;
  in.ping_asked_ms = c->ext ? c->ext->ping_asked : 0;
  in.suspected = (c->quiet & VIGIL__QUIET_SUSPECT) != 0;
  in.drain_timeout_ms = c->policy->drain_timeout_ms;
  vigil__takeover_classify(&in, v);
}

/* A ghost is reset at once: RST under abort_dead, so no FIN_WAIT1 orphan
 * retransmits to a gone path. A live peer is closed gracefully, so what
 * was queued and in flight reaches it (GOODBYE taken_over first with the
 * frame codec, then the peer-first hold; else shutdown-send-first), under
 * a drain bound of a few RTTs instead of drain_timeout: a peer that
 * acknowledges our FIN but never closes (a socket its application keeps
 * open and silent) is reset when the bound passes (close.c, cut_drain),
 * so it holds the server's socket a few hundred ms at most and leaves no
 * FIN_WAIT2 orphan. */
static void close_by_class(vigil_conn *c, const vigil__class_verdict *v) {
  if (v->cls == VIGIL_PEER_LIVE &&
      v->drain_ms < c->policy->drain_timeout_ms) {
    vigil_policy bounded = *c->policy;
    bounded.drain_timeout_ms = v->drain_ms;
    const vigil_policy *own = vigil__policy_new(&bounded);
    if (!own) { /* ENOMEM: an unbounded graceful close is worse than RST */
      vigil__conn_close(c, VIGIL_REASON_TAKEOVER, VIGIL__CLOSE_DEAD);
      return;
    }
    vigil__conn_use_policy(c, own);
    vigil__policy_unref(own);
  }
  vigil__conn_close(c, VIGIL_REASON_TAKEOVER,
                    v->cls == VIGIL_PEER_LIVE ? VIGIL__CLOSE_GRACEFUL
                                              : VIGIL__CLOSE_DEAD);
}

/* Two live conns that keep taking an identity from each other are a
 * duplicate identity, not a rebooting device: the identity's rules count
 * live takeovers so the flapping report can say so (takeover_rules.h). */
static void note_live(vigil_conn *old) {
  vigil__dir *d = vigil__identity_dir(old->hub);
  if (!d || !d->ops->note || old->policy->flap_max == 0) return;
  d->ops->note(d, old->ext->identity, old->ext->identity_len,
               vigil__hub_clock(old->hub), vigil__takeover_note_live,
               (void *)old->policy);
}

/* vigil__takeover_evict; `announce` (the claimant's takeover event, same
 * hub only) runs between the verdict and the close, so the event carries
 * the class. It runs host code: the conn is closed only if it still
 * stays afterwards. */
static void evict(vigil_conn *old, vigil_takeover_scope scope,
                  uint64_t claim_us, vigil_conn *claimant,
                  const vigil__holder *announce) {
  vigil_hub *hub = old->hub;
  vigil__class_verdict v;
  classify(old, &v);
  old->ext->peer_class = (uint8_t)v.cls;
  old->ext->class_evidence = v.evidence;
  if (announce) {
    emit_takeover(hub, claimant, announce, &v);
    if (!staying(old)) return;
  }
  hub->stats.takeovers++;
  hub->stats.takeovers_by_scope[scope]++;
  hub->stats.takeovers_by_class[v.cls]++;
  if (v.cls == VIGIL_PEER_LIVE) note_live(old);
  close_by_class(old, &v);
  vigil__metrics_observe_takeover(hub, scope, claim_us);
}

void vigil__takeover_evict(vigil_conn *old, vigil_takeover_scope scope,
                           uint64_t claim_us) {
  evict(old, scope, claim_us, NULL, NULL);
}

void vigil__takeover_deliver(vigil_hub *hub, vigil__evict_msg *m) {
  vigil_conn *c = m->holder->conn; /* hub's thread: its own holder */
  if (c && c->hub == hub && vigil__takeover_fenced_in(m, c))
    vigil__takeover_evict(c, m->scope, m->claim_us);
  vigil__holder_unref(m->holder);
  m->holder = NULL;
}

void vigil__takeover_deliver_posted(vigil_hub *hub, vigil__evict_msg *m) {
  if (hub) {
    vigil__hub_enter_loop(hub);
    vigil__takeover_deliver(hub, m);
    vigil__hub_leave(hub);
  } else {
    vigil__holder_unref(m->holder); /* the worker's hub and conns are gone */
  }
  free(m);
}

/* Announces c's takeover of `old` (the takeover event) and sends the
 * eviction of old, displaced by the claim at fence_epoch, to old's hub:
 * this hub's at once (classified before the event, so the event carries
 * the class), another worker's through its mailbox. Takes old's
 * reference. */
static void evict_displaced(vigil_hub *hub, vigil_conn *c,
                            uint64_t fence_epoch, vigil__holder *old,
                            uint64_t claim_us) {
  vigil__evict_msg m = {old, old->epoch, fence_epoch, claim_us,
                        VIGIL_SCOPE_HUB};
  if (old->hub == hub) {
    vigil_conn *oc = old->conn;
    if (oc && oc->hub == hub && vigil__takeover_fenced_in(&m, oc))
      evict(oc, VIGIL_SCOPE_HUB, claim_us, c, old);
    else
      emit_takeover(hub, c, old, NULL);
    vigil__holder_unref(old);
    return;
  }
  emit_takeover(hub, c, old, NULL);
  m.scope = VIGIL_SCOPE_WORKER;
  vigil__evict_msg *sent = malloc(sizeof *sent);
  if (sent) {
    *sent = m;
    if (hub->link->post_evict(hub->link->group, old->worker, sent) ==
        VIGIL_OK)
      return;
    free(sent);
  }
  /* ENOMEM, or that worker has exited (its conns went with its hub). The
   * directory already moved the identity: the old conn, if any, ends by
   * its own deadlines. */
  vigil__holder_unref(old);
}

/* ---- the claim ---- */

/* Stores the claimed identity on c (shown in its events even when the
 * claim is refused, and making a nested claim from a callback EEXIST). */
static int copy_to_conn(vigil_conn *c, const void *id, size_t len) {
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (!x) return VIGIL_ENOMEM;
  char *copy = malloc(len + 1);
  if (!copy) return VIGIL_ENOMEM;
  memcpy(copy, id, len);
  copy[len] = '\0';
  x->identity = copy;
  x->identity_len = len;
  return VIGIL_OK;
}

static vigil__holder *holder_new(vigil_hub *hub, vigil_conn *c, int proven) {
  vigil__holder *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->hub = hub;
  h->worker = hub->worker_index;
  h->conn_id = c->id;
  h->conn = c;
  h->staying = 1;
  h->proven = (uint8_t)proven;
  h->refs = 1; /* the conn's, once installed */
  return h;
}

/* ASK: the host's answer about holder `other` goes into x. The holder
 * keeps its reference (x->asked) so its address cannot be reused while
 * the answer may still apply. */
static void ask_host(vigil_hub *hub, vigil_conn *c, vigil__holder *other,
                     vigil__claim_ctx *x) {
  /* A holder on another worker is that worker's: the host gets NULL. */
  vigil_conn *old = other->hub == hub ? other->conn : NULL;
  x->answer =
      hub->opts.on_takeover(hub, old, c, hub->opts.takeover_data) != 0;
  x->asked = other;
  x->asks++;
}

/* Judges c's claim until a verdict sticks; runs the host code pauses ask
 * for. mine is c's future hold; it is freed unless installed. */
static int judge_loop(vigil_hub *hub, vigil_conn *c, const void *id,
                      size_t len, vigil__claim_ctx *x, vigil__holder *mine,
                      uint64_t claim_us) {
  vigil__dir *d = vigil__identity_dir(hub);
  vigil__holder *asked = NULL; /* the holder x->asked names, referenced */
  int rc;
  for (;;) {
    vigil__holder *other = NULL;
    vigil__verdict v = d->ops->claim(d, id, len, vigil__hub_clock(hub),
                                     vigil__takeover_judge, x, mine, &other);
    if (v == VIGIL__V_INSTALL || v == VIGIL__V_EVICT) {
      c->ext->holder = mine;
      if (other) {
        /* The event's sink may close c, and its hold with it. */
        uint64_t fence = mine->epoch;
        evict_displaced(hub, c, fence, other, claim_us);
      }
      rc = VIGIL_OK;
      break;
    }
    if (v != VIGIL__V_PAUSE) {
      free(mine);
      rc = v == VIGIL__V_NOMEM ? VIGIL_ENOMEM
                               : refuse(c, x->reason, x->rc, x->detail);
      break;
    }
    if (x->flap_count) {
      emit_flapping(hub, c, other, x);
      vigil__holder_unref(other);
    } else {
      vigil__holder_unref(asked);
      asked = other;
      ask_host(hub, c, other, x);
    }
    if (claimant_gone(hub, c)) {
      free(mine);
      rc = VIGIL_ECLOSED;
      break;
    }
    if (x->flap_refuse) {
      free(mine);
      rc = refuse(c, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED,
                  x->flap_detail);
      break;
    }
  }
  vigil__holder_unref(asked);
  return rc;
}

static int proof_of(const vigil_conn *c, const void *id, size_t len) {
  return c->tp->proof ? c->tp->proof(c, id, len) : VIGIL__PROOF_NONE;
}

/* c already holds an identity: a second claim is EEXIST, unless it names
 * an identity a certificate proves for another live holder (a spoof, which
 * closes c). Claiming again what c's own certificate proves records the
 * proof (a claim made before the TLS handshake finished). */
static int claim_again(vigil_conn *c, const void *id, size_t len,
                       int proof) {
  vigil__conn_ext *x = c->ext;
  int enforced_match = (proof & VIGIL__PROOF_ENFORCED) &&
                       (proof & VIGIL__PROOF_KIND) == VIGIL__PROOF_MATCH;
  if (enforced_match && x->identity_len == len &&
      memcmp(x->identity, id, len) == 0)
    vigil__identity_proven(c);
  vigil__dir *d = vigil__identity_dir(c->hub);
  if (!d) return VIGIL_ENOMEM;
  vigil__claim_ctx probe;
  vigil__claim_ctx_init(&probe, c->policy);
  probe.probe = 1;
  probe.self = x->holder;
  probe.claimant_proven = (proof & VIGIL__PROOF_KIND) == VIGIL__PROOF_MATCH;
  vigil__holder *other = NULL;
  d->ops->claim(d, id, len, vigil__hub_clock(c->hub), vigil__takeover_judge,
                &probe, NULL, &other);
  if (probe.reason != VIGIL_REASON_NONE)
    return refuse(c, probe.reason, probe.rc, probe.detail);
  return VIGIL_EEXIST;
}

/* With identity_proof (vigil/tls.h), a certificate says who a peer is and
 * a claim in protocol data is only a claim: a conn whose certificate proves
 * an identity may claim only that one, and an identity held by a conn that
 * proved it moves only to another conn that proves it too (the judge's
 * rule 1, on every worker); a conn that proves nothing claims like any
 * plain TCP conn. */
int vigil__identify(vigil_conn *c, const void *id, size_t len) {
  if (len == 0 || len > VIGIL__ID_MAX_LEN) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  /* A conn whose peer already said goodbye must not displace a live one. */
  if (claimant_gone(hub, c)) return VIGIL_ECLOSED;
  uint64_t claim_us = vigil__monotonic_us();
  int proof = proof_of(c, id, len);
  int kind = proof & VIGIL__PROOF_KIND;
  /* Certificate proof comes first: a claim that a TLS identity
   * contradicts closes the conn even if it already holds one. */
  if ((proof & VIGIL__PROOF_ENFORCED) && kind == VIGIL__PROOF_OTHER)
    return refuse(c, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED,
                  vigil__not_proven);
  if (c->ext && c->ext->identity) return claim_again(c, id, len, proof);
  vigil__holder *mine =
      holder_new(hub, c, (proof & VIGIL__PROOF_ENFORCED) &&
                             kind == VIGIL__PROOF_MATCH);
  if (!mine || !vigil__identity_dir(hub) ||
      copy_to_conn(c, id, len) != VIGIL_OK) {
    free(mine);
    return VIGIL_ENOMEM;
  }
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, c->policy);
  x.claimant_proven = kind == VIGIL__PROOF_MATCH;
  x.can_ask = hub->opts.on_takeover != NULL;
  return judge_loop(hub, c, id, len, &x, mine, claim_us);
}
