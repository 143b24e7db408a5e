/* Listener helper (internal; listener.c). */
#ifndef VIGIL_LISTENER_H
#define VIGIL_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

/* Stores up to cap local ports of the hub's open listeners; returns how
 * many listeners there are. */
size_t vigil__listener_ports(vigil_hub *hub, uint16_t *out, size_t cap);
/* Stops accepting on every listener (graceful shutdown). */
void vigil__listeners_stop(vigil_hub *hub);

#endif
