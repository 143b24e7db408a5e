/* The connection state machine (internal; close.c, which opens with the
 * diagram). None of these bracket re-entrancy: callers are inside an
 * entry point that does. */
#ifndef VIGIL_CLOSE_H
#define VIGIL_CLOSE_H

#include "vigil.h"

typedef enum vigil__close_mode {
  VIGIL__CLOSE_GRACEFUL = 0, /* flush, SHUT_WR, drain, close */
  VIGIL__CLOSE_ABORT = 1,    /* RST now */
  VIGIL__CLOSE_DEAD = 2,     /* RST if abort_dead, else plain close now */
  VIGIL__CLOSE_NOW = 3,      /* plain close now (hub free, errors) */
} vigil__close_mode;

/* HANDSHAKE -> OPEN: VIGIL_OK, VIGIL_ECLOSED (closing or closed) or
 * VIGIL_ESTATE (the transport's handshake still runs). */
int vigil__conn_ready(vigil_conn *c);
/* The close decision; the first one fixes the reason. */
void vigil__conn_close(vigil_conn *c, vigil_reason reason,
                       vigil__close_mode mode);
/* The host's graceful close (vigil_close): reason closed_by_host, or
 * peer_closed when the peer had closed first. No-op once closing. */
void vigil__conn_close_host(vigil_conn *c);
/* Abortive close with reason io_error and err as the close event's
 * sys_errno (unless c is already closing: its first reason stays). */
void vigil__conn_fail(vigil_conn *c, int err);
/* The peer's end (FIN, TLS close_notify, watch-only EOF). */
void vigil__conn_peer_fin(vigil_conn *c);
/* The output queue is empty while FLUSHING (or the transport's close step
 * made progress): go on closing. */
void vigil__conn_flushed(vigil_conn *c);
/* A terminal deadline fired (VIGIL__DUE_* terminal bits). */
void vigil__conn_deadline_close(vigil_conn *c, unsigned due);
/* A failed I/O call's errno: peer_reset, a kernel timeout (dead event),
 * or io_error; the conn closes at once. */
void vigil__conn_io_failed(vigil_conn *c, int err);
/* Emits the "dead" event with a tcp_info snapshot. */
void vigil__conn_report_dead(vigil_conn *c, vigil_reason reason);

#endif
