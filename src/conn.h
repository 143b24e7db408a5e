/*
 * Connections (internal; conn.c): the struct, its flags and the primitives
 * every module uses on a live conn.
 *
 * Memory budget: a connection is kept small (target <= 256 bytes of vigil
 * state, no I/O buffer while idle): the read buffer is one per hub, the
 * output queue exists only while the kernel refuses bytes, callbacks are
 * interned per hub, and the peer address is stored compactly.
 */
#ifndef VIGIL_CONN_H
#define VIGIL_CONN_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "deadline.h"
#include "hub.h"
#include "outqueue.h"
#include "protocol.h"
#include "transport.h"
#include "vigil.h"
#include "wheel.h"

/* Connection flags. */
#define VIGIL__F_WATCH_ONLY 0x01u
#define VIGIL__F_TP_HANDSHAKE 0x02u /* the transport's handshake runs */
#define VIGIL__F_PEER_FIN 0x04u    /* peer's FIN seen */
#define VIGIL__F_SHUT_WR 0x08u     /* our FIN sent */
#define VIGIL__F_CB_DONE 0x40u     /* on_close delivered */
#define VIGIL__F_ABORTIVE 0x80u    /* close with RST */

typedef struct vigil__conn_ext vigil__conn_ext;

/* Compact peer address: formatted on demand (events, accessors). */
typedef struct vigil__addr {
  uint8_t family; /* AF_INET, AF_INET6, 0 = unknown */
  uint8_t pad;
  uint16_t port;  /* host order */
  uint8_t addr[16];
} vigil__addr;

struct vigil_conn {
  ev_io io;                  /* io.fd is the socket; -1 once closed */
  vigil__wheel_node wnode;   /* the one deadline node */
  vigil_hub *hub;
  uint32_t slot;             /* index in hub->conns (live) */
  uint8_t state;             /* vigil_conn_state */
  uint8_t flags;             /* VIGIL__F_* */
  uint8_t quiet;             /* VIGIL__QUIET_* */
  uint8_t reason;            /* vigil_reason once closing */
  uint8_t cause;             /* drain_timeout: the original reason */
  uint8_t pad[3];
  int sys_errno;             /* io_error detail */
  uint64_t id;
  vigil__times t;
  uint64_t bytes_in;
  uint64_t bytes_out;
  const vigil_policy *policy;        /* shared (policy_share.c): a ref */
  const vigil__hooks *hooks;         /* protocol + host callbacks,
                                        interned in the hub */
  const vigil__transport *tp;        /* TCP or TLS (transport.h) */
  void *user_data;
  vigil__outq outq;                  /* output the kernel did not take */
  vigil__addr peer;
  vigil__conn_ext *ext;              /* identity, TLS, codec; NULL if none */
  vigil_conn *next_closed;           /* hub's pending on_close list */
};

/* Optional per-connection state that most connections never need. */
struct vigil__conn_ext {
  char *identity;        /* NUL-terminated copy; NULL = none */
  size_t identity_len;
  struct vigil__holder *holder; /* its hold on the identity (identity.c);
                            NULL when it holds none */
  void *tls;             /* TLS state (tls_conn.c) */
  void *proto_state;     /* protocol state (the frame codec's) */
  const struct vigil__protocol *proto_state_of; /* whose free releases it:
                            it outlives a protocol change, since the
                            change may come from inside that protocol */
  const char *detail;    /* close detail (protocol error, TLS reason) */
  char *owned_detail;    /* a detail this conn owns: vigil_close_ex's
                            copy, or the ping-flood text */
  struct vigil__ping_guard *ping_guard; /* the peer's pings (conn_ping.c);
                            NULL until the first one */
  int truncated;         /* TLS: peer closed without close_notify */
  uint64_t ping_asked;   /* hub ms of the oldest ping vigil asked for
                            that nothing received answered yet (<= t.
                            last_rx: answered); 0 = none. Takeover
                            evidence (takeover_class.h) */
  uint32_t class_evidence; /* displaced by a takeover: its evidence bits */
  uint8_t peer_class;    /* displaced by a takeover: vigil_peer_class */
};

/* Starts, stops or changes the io watcher to match what the state and
 * the transport need. */
void vigil__conn_update_io(vigil_conn *c);
/* The optional extension, created on first use; NULL on ENOMEM. */
vigil__conn_ext *vigil__conn_ext_get(vigil_conn *c);
/* Gives c the shared policy p (takes a reference, drops the old one). */
void vigil__conn_use_policy(vigil_conn *c, const vigil_policy *p);
/* vigil_conn_set_policy after its checks: a private copy of p (a
 * transport handshake stays bounded), the protocol it asks for, socket
 * options re-applied, deadlines judged afresh. VIGIL_OK, VIGIL_ENOMEM, or
 * the error of a socket option the kernel refused. */
int vigil__conn_set_policy(vigil_conn *c, const vigil_policy *p);
/* The "open" event; detail and tls_resumed for TLS conns (NULL, -1 for
 * plain ones). */
void vigil__conn_emit_open(vigil_conn *c, const char *detail, int tls_resumed);
/* Releases everything of a conn whose on_close ran (or never will). */
void vigil__conn_free(vigil_conn *c);

/* Activity accounting (raw bytes on the wire): a stored timestamp and
 * cleared "already reported" bits, nothing else (the hot path). */
static inline void vigil__conn_note_rx(vigil_conn *c, size_t n) {
  c->t.last_rx = c->hub->now_ms;
  c->quiet &= (uint8_t)~VIGIL__QUIET_RX_MASK;
  c->bytes_in += n;
  c->hub->stats.bytes_in += n;
}
static inline void vigil__conn_note_tx(vigil_conn *c, size_t n) {
  c->t.last_tx = c->hub->now_ms;
  c->quiet &= (uint8_t)~VIGIL__QUIET_TX_MASK;
  c->bytes_out += n;
  c->hub->stats.bytes_out += n;
}

/* The transport in effect: after our FIN (DRAINING) every conn reads raw
 * TCP and discards (transport.h). */
static inline const vigil__transport *vigil__conn_transport(
    const vigil_conn *c) {
  return c->state == VIGIL_CONN_DRAINING ? &vigil__transport_tcp : c->tp;
}

static inline vigil_conn_state vigil__state(const vigil_conn *c) {
  return (vigil_conn_state)c->state;
}
static inline int vigil__closing(const vigil_conn *c) {
  return c->state >= VIGIL_CONN_FLUSHING;
}

#endif
