/*
 * Protocols (internal): what a conn's received bytes mean, as a table of
 * hooks. "raw" (proto_raw.c) hands the bytes to the host's on_data as
 * they come; "frame" (proto_frame.c) is vigil's frame codec (vigil/
 * frame.h): frames to on_data/on_hello, its own PING/PONG, and GOODBYE
 * for a peer-first close. policy.frame_codec picks one.
 *
 * The close machine (close.c) asks three questions of a protocol:
 *
 *   graceful close decided --> before_close: send GOODBYE?
 *   queue empty (FLUSHING) --> holds_fin:    keep our FIN until the
 *                                            peer's?
 *   drain bound passed ------> release_fin:  give up the hold and close
 *                                            first after all?
 *
 * and the deadline loop one: ping, when nothing was sent for
 * ping_interval.
 */
#ifndef VIGIL_PROTOCOL_H
#define VIGIL_PROTOCOL_H

#include <stddef.h>

#include "vigil.h"

typedef struct vigil__protocol {
  const char *name;
  /* Received bytes (never while closing): frames to the host. */
  void (*on_bytes)(vigil_conn *c, const void *data, size_t len);
  /* ping_interval passed with nothing sent: the protocol's own ping, or
   * the host's on_ping_due. */
  void (*ping)(vigil_conn *c);
  /* A graceful close starts (reason set, state not yet FLUSHING); may
   * queue a goodbye, or fail and close c. NULL = nothing. */
  void (*before_close)(vigil_conn *c);
  /* Queue empty in FLUSHING: 1 = keep our FIN until the peer's. NULL = 0. */
  int (*holds_fin)(vigil_conn *c);
  /* The hold's drain bound passed: 1 = go on with our FIN. NULL = 0. */
  int (*release_fin)(vigil_conn *c);
  /* Releases the state this protocol keeps in c->ext->proto_state. */
  void (*free)(vigil_conn *c);
} vigil__protocol;

extern const vigil__protocol vigil__protocol_raw;
extern const vigil__protocol vigil__protocol_frame;

/* The protocol a policy asks for. */
static inline const vigil__protocol *vigil__protocol_of(
    const vigil_policy *p) {
  return p->frame_codec ? &vigil__protocol_frame : &vigil__protocol_raw;
}

/* What a conn's input and events go to: its protocol and the host's
 * callbacks the protocol calls. Interned per hub (hub.c): hosts use a
 * handful of distinct sets, so conns share them and a conn pays one
 * pointer. */
typedef struct vigil__hooks {
  vigil_conn_callbacks cb;
  const vigil__protocol *proto;
} vigil__hooks;

#endif
