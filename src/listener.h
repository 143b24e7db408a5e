/* Listener helper (internal; listener.c). */
#ifndef VIGIL_LISTENER_H
#define VIGIL_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

/* Stops accepting on every listener (graceful shutdown). */
void vigil__listeners_stop(vigil_hub *hub);

#endif
