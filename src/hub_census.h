/* The census of a hub's own ports (internal; hub_census.c). */
#ifndef VIGIL_HUB_CENSUS_H
#define VIGIL_HUB_CENSUS_H

#include "vigil.h"

/* Starts the periodic census when opts.census_interval_ms > 0. */
void vigil__hub_census_start(vigil_hub *hub);
/* Stops the census timer and frees the census state (hub_destroy). */
void vigil__hub_census_free(vigil_hub *hub);

#endif
