/*
 * The cluster layer in a build without hiredis (CMake leaves this file
 * out when src/cluster/ is built): asking for a cluster is VIGIL_ENOTSUP.
 */
#include <stdio.h>

#include "cluster.h"

int vigil__cluster_check(const vigil_cluster_options *o, char *msg,
                         size_t msglen) {
  (void)o;
  if (msg && msglen)
    snprintf(msg, msglen,
             "this build of vigil has no cluster directory "
             "(hiredis was not found)");
  return VIGIL_ENOTSUP;
}

int vigil__cluster_attach(vigil_hub *hub, const vigil_cluster_options *o,
                          uint32_t worker, uint64_t seed) {
  (void)hub;
  (void)o;
  (void)worker;
  (void)seed;
  return VIGIL_ENOTSUP;
}

void vigil__cluster_detach(vigil_hub *hub) { (void)hub; }

int vigil__cluster_up(const vigil_hub *hub) {
  (void)hub;
  return -1;
}

vigil__dir *vigil__dir_cluster_new(vigil__dir *inner) {
  (void)inner;
  return NULL;
}
