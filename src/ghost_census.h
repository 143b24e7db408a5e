/*
 * The ghost census of a set of ports (internal; ghost_census.c): what a
 * hub's census (hub_census.c) and a group's (group_census.c) share. See
 * vigil_hub_census_report in vigil.h for what counts as a ghost.
 */
#ifndef VIGIL_GHOST_CENSUS_H
#define VIGIL_GHOST_CENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "census_internal.h"
#include "vigil.h"

struct vigil__fdset;

/* The unowned CLOSE_WAIT sockets of the last census with the time each
 * was first seen, kept from one census to the next (the kernel keeps no
 * age for CLOSE_WAIT). Zero-initialised = empty. */
typedef struct vigil__seen_socket {
  uint64_t cookie;
  uint64_t first_seen_ms;
} vigil__seen_socket;

typedef struct vigil__census_memory {
  vigil__seen_socket *v; /* sorted by cookie */
  size_t n;
} vigil__census_memory;

typedef struct vigil__ghost_query {
  const uint16_t *ports;       /* distinct local ports; nports > 0 */
  size_t nports;
  /* Which sockets are vigil conns: the inodes in `mine` (one hub's conns,
   * sorted), or the fds in `conn_fds` (a group's conns, any thread's). */
  const vigil__inode_set *mine;
  const struct vigil__fdset *conn_fds;
  vigil__census_memory *memory;
  uint64_t now_ms;             /* the clock of memory's times */
  uint32_t grace_ms;           /* close_wait_grace: when unowned CLOSE_WAIT
                                  turns stale */
} vigil__ghost_query;

/* Takes the census: fills every field of out but conns. */
int vigil__ghost_census(const vigil__ghost_query *q,
                        vigil_hub_census_report *out);
void vigil__census_memory_free(vigil__census_memory *m);

#endif
