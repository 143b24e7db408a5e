/*
 * The hub's live conns (internal; hub_conns.c): the dense array, each
 * conn's one node in the timing wheel with the tick timer that follows
 * the wheel, the pending on_close queue, and the interned conn hooks.
 * These are services the engine asks of its hub; none runs host code.
 */
#ifndef VIGIL_HUB_CONNS_H
#define VIGIL_HUB_CONNS_H

#include "protocol.h"
#include "vigil.h"

int vigil__hub_add_conn(vigil_hub *hub, vigil_conn *c);
void vigil__hub_remove_conn(vigil_hub *hub, vigil_conn *c);
/* Queues a CLOSED conn for on_close, delivered from the loop. */
void vigil__hub_queue_closed(vigil_hub *hub, vigil_conn *c);
/* The hub's shared copy of {cb (NULL = none), proto}; NULL on ENOMEM. */
const vigil__hooks *vigil__hub_intern_hooks(vigil_hub *hub,
                                            const vigil_conn_callbacks *cb,
                                            const vigil__protocol *proto);
/* Re-arms c's wheel node at its earliest deadline (none when CLOSED). */
void vigil__conn_schedule(vigil_conn *c);
/* Arms the hub's tick timer for the wheel's next expiry. */
void vigil__hub_rearm(vigil_hub *hub);

#endif
