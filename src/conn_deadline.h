/* Acting on a conn's due deadlines (internal; conn_deadline.c). */
#ifndef VIGIL_CONN_DEADLINE_H
#define VIGIL_CONN_DEADLINE_H

#include "wheel.h"

/* The wheel callback of a conn's node (ctx: the hub): handles what is due
 * (terminal deadlines through the close machine; pings, suspicion checks
 * and idle reports here) and re-arms the node. */
void vigil__conn_on_deadline(vigil__wheel_node *n, void *ctx);

#endif
