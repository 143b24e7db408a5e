/*
 * Identity claims and takeover (internal; takeover.c): vigil_conn_identify
 * and the eviction of the conns a claim displaces, on the same hub or on
 * another worker of the group.
 */
#ifndef VIGIL_TAKEOVER_H
#define VIGIL_TAKEOVER_H

#include <stddef.h>
#include <stdint.h>

#include "directory.h"
#include "vigil.h"

/* An eviction: a claim at epoch fence_epoch displaced `holder`, which held
 * the identity at holder_epoch. Delivered on the holder's hub's thread. */
typedef struct vigil__evict_msg {
  vigil__holder *holder;      /* with a reference the message owns */
  uint64_t holder_epoch;
  uint64_t fence_epoch;
  uint64_t claim_us;          /* CLOCK_MONOTONIC us when the claim began */
  vigil_takeover_scope scope; /* where the claim was made, seen from the
                                 holder */
} vigil__evict_msg;

/* The claim (vigil_conn_identify after its argument checks). */
int vigil__identify(vigil_conn *c, const void *id, size_t len);

/* The fencing rule: 1 when conn c must close for m. Only the very conn
 * the claim displaced, and only while it still holds the identity at the
 * epoch that claim displaced, so a late or repeated eviction never closes
 * a successor, on any hub. */
int vigil__takeover_fenced_in(const vigil__evict_msg *m, const vigil_conn *c);

/* Delivers m on the hub its holder lives on (hub's thread): closes the
 * holder's conn if the fencing rule says so, and drops m's reference. An
 * internal call (inside the caller's hub bracket). */
void vigil__takeover_deliver(vigil_hub *hub, vigil__evict_msg *m);

/* Delivers a message that came through a worker's mailbox and frees it:
 * an entry point (brackets the hub); hub is NULL when the worker's hub is
 * already gone (then only the reference is dropped). */
void vigil__takeover_deliver_posted(vigil_hub *hub, vigil__evict_msg *m);

/* Closes a conn that a newer claim displaced, for every scope: the one
 * place that decides how a displaced conn is closed. It classifies the
 * conn (takeover_class.h) and closes it with reason takeover: a ghost by
 * RST under abort_dead, a live peer gracefully within the takeover bound;
 * the verdict goes on the conn's close event and into the hub's
 * per-scope and per-class takeovers, the takeover latency since claim_us
 * is observed, and a live verdict is noted on the identity's rules (the
 * duplicate-identity report). */
void vigil__takeover_evict(vigil_conn *old, vigil_takeover_scope scope,
                           uint64_t claim_us);

#endif
