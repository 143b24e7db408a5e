/* The census of a hub's own ports (internal; hub_census.c). */
#ifndef VIGIL_HUB_CENSUS_H
#define VIGIL_HUB_CENSUS_H

#include "vigil.h"

/* One periodic census (the hub's census timer, census_interval_ms):
 * takes it (the metrics keep it) and, for an event sink, emits "census",
 * and "ghosts" past ghost_threshold. */
void vigil__hub_census_tick(vigil_hub *hub);
/* Frees the census state (CLOSE_WAIT first-seen table) with the hub. */
void vigil__hub_census_free(vigil_hub *hub);

#endif
