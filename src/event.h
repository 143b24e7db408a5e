/* Building and sending diagnostics events (internal; event.c).
 * Formatting is event_format.c. */
#ifndef VIGIL_EVENT_H
#define VIGIL_EVENT_H

#include <stddef.h>

#include "vigil.h"

/* Fills the fields every event shares (ts, conn, peer, ages, bytes). */
void vigil__event_init(vigil_event *ev, vigil_event_type type, vigil_hub *hub,
                       vigil_conn *c);
void vigil__event_send(vigil_hub *hub, const vigil_event *ev);
/* Formats c->peer into buf (VIGIL__PEER_STRLEN). */
const char *vigil__conn_peer_str(const vigil_conn *c, char *buf, size_t len);

#endif
