/*
 * A conn's I/O (internal; conn_io.c): the io watcher, the read loop, the
 * flush of queued output and the send path, all through the conn's
 * transport (transport.h) and protocol (protocol.h).
 */
#ifndef VIGIL_CONN_IO_H
#define VIGIL_CONN_IO_H

#include <ev.h>
#include <stddef.h>

#include "vigil.h"

/* The io watcher's callback (an entry point: it brackets the hub). */
void vigil__conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Writes queued output through the transport and lets the close machine
 * go on when a graceful close waited for it; returns 0, or -1 when the
 * conn closed. */
int vigil__conn_flush(vigil_conn *c);
/* May c take len more bytes of output? VIGIL_OK, VIGIL_ESTATE
 * (watch-only), VIGIL_ECLOSED, or VIGIL_EOVERFLOW (after closing c when
 * overflow_action is CLOSE). Checked before anything is written, so a
 * refused message never leaves half of itself on the wire. */
int vigil__conn_check_send(vigil_conn *c, size_t len);
/* vigil_send without the argument checks and the bracket: check, then
 * queue through the transport. VIGIL_OK, the errors of check_send,
 * VIGIL_ECLOSED or VIGIL_ENOMEM (c then closed). */
int vigil__conn_send(vigil_conn *c, const void *data, size_t len);

#endif
