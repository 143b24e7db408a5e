/*
 * The cluster layer (internal): a hub's link to the identity directory
 * across nodes (vigil/cluster.h). Implemented in src/cluster/cluster.c
 * with hiredis, and by cluster_off.c (VIGIL_ENOTSUP) without.
 *
 * It sits on the directory interface (directory.h): vigil__dir_cluster
 * wraps the in-process directory (the hub's own, or its group's) and lets
 * every claim and release through to it unchanged, so a claim takes effect
 * locally at once; the claims it installs and the releases of conns that
 * held one then go to the store on the claimant's own loop, through the
 * hub's vigil__cluster (one Redis directory per hub, that is per worker).
 */
#ifndef VIGIL_CLUSTER_INTERNAL_H
#define VIGIL_CLUSTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "directory.h"
#include "vigil.h"

typedef struct vigil__cluster vigil__cluster;

/* vigil_cluster_options_validate's checks: VIGIL_OK, VIGIL_EINVAL (message
 * naming the field), VIGIL_ENOTSUP (no hiredis in this build). */
int vigil__cluster_check(const vigil_cluster_options *o, char *msg,
                         size_t msglen);

/* Gives hub (worker `worker` of its node; 0 for a hub alone) its link to
 * the store, which it starts connecting from the loop. Before any conn
 * exists. The workers of one node pass one seed (vigil__cluster_seed):
 * the node has one incarnation in the store. VIGIL_OK, VIGIL_EINVAL,
 * VIGIL_ENOMEM, VIGIL_ENOTSUP. */
int vigil__cluster_attach(vigil_hub *hub, const vigil_cluster_options *o,
                          uint32_t worker, uint64_t seed);

/* A fresh random seed for a node's incarnation (never 0). */
uint64_t vigil__cluster_seed(void);

/* Frees the hub's link: hub->cluster_detach, run by the hub's destruction
 * after its conns closed. No-op without one. */
void vigil__cluster_detach(vigil_hub *hub);

/* 1 up, 0 down, -1 no cluster. */
int vigil__cluster_up(const vigil_hub *hub);

/* A directory that forwards to inner (which it then owns) and tells the
 * store about the claims and releases of hubs that have a cluster link.
 * NULL on ENOMEM (inner is then still the caller's). */
vigil__dir *vigil__dir_cluster_new(vigil__dir *inner);

/* A deep copy of o (strings included) into one allocation; NULL on
 * ENOMEM. Freed with free(). */
vigil_cluster_options *vigil__cluster_options_copy(
    const vigil_cluster_options *o);

#endif
