/* A peer's pings on a conn (internal; conn_ping.c): the ping-flood guard
 * (ping_guard.h) applied to a live conn. */
#ifndef VIGIL_CONN_PING_H
#define VIGIL_CONN_PING_H

#include "vigil.h"

/* One ping from the peer (the frame codec's PING, or the host's own
 * protocol through vigil_conn_ping_received). Returns VIGIL_OK (answer
 * it), VIGIL_ECLOSED (c is closing or closed: this ping was one strike too
 * many and c now closes gracefully with ping_flood, or it already was) or
 * VIGIL_ENOMEM (the guard's state could not be allocated; c untouched). */
int vigil__conn_ping_received(vigil_conn *c);

#endif
