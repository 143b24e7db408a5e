/*
 * Transports (internal): how a conn's bytes cross the wire, as a table of
 * hooks each conn points at (after hiredis's redisContextFuncs). Plain TCP
 * (transport_tcp.c) and TLS (tls_*.c, the only files that see OpenSSL)
 * are the two. The core drives both the same way:
 *
 *   io watcher fires --> events(revents) --> work bits
 *                          EV_WRITE: write_queue (then the close machine
 *                                    goes on if FLUSHING emptied the queue)
 *                          EV_READ:  read, up to reads_per_event times,
 *                                    bytes to the protocol; pending() says
 *                                    whether bytes wait inside the
 *                                    transport that no readiness reports
 *   vigil_send ---------> send (queue empty: straight out), rest queued
 *   graceful close -----> close_step before our FIN (TLS close_notify)
 *   watcher update -----> io_want: what the transport waits for
 *   conn freed ---------> free
 *
 * Errors: a transport that fails classifies its own failure and closes
 * the conn through the close machine (close.h), then reports that it did
 * (VIGIL__IO_CLOSED, VIGIL_ECLOSED); the core never sees an errno.
 *
 * After our FIN (DRAINING) every conn is read as raw TCP and what arrives
 * is discarded, whatever its transport: the peer's last records need no
 * decrypting, only reading, so the kernel does not answer our close with
 * RST (vigil__conn_transport below).
 *
 * The hot path pays one indirect call per read and per write.
 */
#ifndef VIGIL_TRANSPORT_H
#define VIGIL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vigil.h"

/* Results of read and write_queue besides byte counts. */
#define VIGIL__IO_AGAIN (-1)  /* nothing now: wait for readiness */
#define VIGIL__IO_CLOSED (-2) /* the transport failed and closed the conn */

/* Identity proof (the takeover rules are identity.c's). */
#define VIGIL__PROOF_NONE 0     /* no identity proven */
#define VIGIL__PROOF_OTHER 1    /* proves an identity, not this one */
#define VIGIL__PROOF_MATCH 2    /* proves exactly this identity */
#define VIGIL__PROOF_KIND 0x0f
#define VIGIL__PROOF_ENFORCED 0x10 /* claims must match the proof */

typedef struct vigil__transport {
  const char *name;
  /* The watcher fired with revents: returns the work to do now (EV_READ
   * to read, EV_WRITE to write queued output), 0 for none. NULL means
   * revents as they are. TLS runs its handshake here and crosses the
   * bits when a read waits for writability or a write for readability. */
  int (*events)(vigil_conn *c, int revents);
  /* Reads into buf (the hub's shared buffer) and counts raw bytes as
   * activity: bytes for the protocol (> 0); 0 at the peer's orderly end
   * (FIN, TLS close_notify, or a truncation the transport noted);
   * VIGIL__IO_AGAIN; VIGIL__IO_CLOSED. */
  ssize_t (*read)(vigil_conn *c, void *buf, size_t cap);
  /* Writes queued output (c->outq) as far as the kernel takes it: 0;
   * 1 while a close_step waits for writability (TLS close_notify), so
   * the close machine tries it again once the queue is empty;
   * VIGIL__IO_CLOSED. */
  int (*write_queue)(vigil_conn *c);
  /* vigil_send: takes what it can of data now (only when nothing is
   * queued, so order is kept) and returns that many bytes (the rest is
   * queued); VIGIL_ECLOSED when this transport can take no more (after a
   * failure, which closed c, or once TLS sent its close_notify). */
  ssize_t (*send)(vigil_conn *c, const void *data, size_t len);
  /* Graceful close, queue empty, before shutdown(SHUT_WR): 1 = go on;
   * 0 = not yet (write_queue reports when it is done) or c closed
   * meanwhile. NULL = nothing to do. */
  int (*close_step)(vigil_conn *c);
  /* 1 when bytes wait inside the transport (SSL_has_pending). NULL = 0. */
  int (*pending)(const vigil_conn *c);
  /* The watcher events for what the conn wants (want: EV_READ, EV_WRITE).
   * NULL = want. */
  int (*io_want)(const vigil_conn *c, int want);
  /* What c's peer proved about identity id (a verified certificate):
   * VIGIL__PROOF_* below. NULL = nothing (VIGIL__PROOF_NONE). */
  int (*proof)(const vigil_conn *c, const void *id, size_t len);
  /* Releases the transport's state (conn freed or adoption undone). */
  void (*free)(vigil_conn *c);
  /* handshake_timeout_ms given to a policy that has 0 (TLS: a handshake
   * is always bounded); 0 = none. */
  uint32_t handshake_default_ms;
  /* Reads per readiness callback before yielding to other conns. */
  uint8_t reads_per_event;
  /* 1: a read shorter than the buffer means the socket is drained. */
  uint8_t short_read_drains;
} vigil__transport;

/* Plain TCP (transport_tcp.c). */
extern const vigil__transport vigil__transport_tcp;

/* 1 when this build has the TLS transport (cmake VIGIL_TLS), else 0. */
extern const int vigil__tls_available;

/* Sets up TLS on a conn being adopted (before it joins the hub): c->tp
 * becomes the TLS transport. VIGIL_OK, VIGIL_EINVAL, VIGIL_ENOMEM,
 * VIGIL_ETLS; VIGIL_ENOTSUP when vigil is built without TLS (tls_off.c).
 * On error the caller frees c through c->tp->free. */
int vigil__tls_adopt(vigil_conn *c, const vigil_adopt_options *o);

#endif
