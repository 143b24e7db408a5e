/* The close state machine (internal; conn_close.c). */
#ifndef VIGIL_CLOSE_H
#define VIGIL_CLOSE_H

#include "vigil.h"

typedef enum vigil__close_mode {
  VIGIL__CLOSE_GRACEFUL = 0, /* flush, SHUT_WR, drain, close */
  VIGIL__CLOSE_ABORT = 1,    /* RST now */
  VIGIL__CLOSE_DEAD = 2,     /* RST if abort_dead, else plain close now */
  VIGIL__CLOSE_NOW = 3,      /* plain close now (hub free, errors) */
} vigil__close_mode;

void vigil__conn_close(vigil_conn *c, vigil_reason reason,
                       vigil__close_mode mode);
/* Read path saw EOF. */
void vigil__conn_peer_fin(vigil_conn *c);
/* Output queue drained while FLUSHING. */
void vigil__conn_flushed(vigil_conn *c);
/* A terminal deadline fired (VIGIL__DUE_* terminal bits). */
void vigil__conn_deadline_close(vigil_conn *c, unsigned due);

#endif
