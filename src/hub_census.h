/* The census of a hub's own ports (internal; hub_census.c). */
#ifndef VIGIL_HUB_CENSUS_H
#define VIGIL_HUB_CENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

/* The local port of a socket fd, or 0. */
uint16_t vigil__local_port(int fd);
/* Sorts v[0..n), drops zeros and repeats; returns how many are left. */
size_t vigil__ports_unique(uint16_t *v, size_t n);

/* One periodic census (the hub's census timer, census_interval_ms):
 * takes it (the metrics keep it) and, for an event sink, emits "census",
 * and "ghosts" past ghost_threshold. */
void vigil__hub_census_tick(vigil_hub *hub);
/* Frees the census state (CLOSE_WAIT first-seen table) with the hub. */
void vigil__hub_census_free(vigil_hub *hub);

#endif
