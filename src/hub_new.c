/*
 * vigil_hub_new: a hub (hub.c), and its link to the cluster directory when
 * the options ask for one (cluster.h). Kept apart from hub.c so the hub
 * stays below the cluster layer, which calls into it (a hub alone is
 * worker 0 of its node; a group attaches its workers itself).
 */
#include "cluster.h"
#include "hub.h"

int vigil_hub_new(struct ev_loop *loop, const vigil_hub_options *opts,
                  vigil_hub **out) {
  if (!loop || !out) return VIGIL_EINVAL;
  *out = NULL;
  vigil_hub_options defaults;
  if (!opts) {
    vigil_hub_options_init(&defaults);
    opts = &defaults;
  }
  if (opts->cluster) {
    int rc = vigil__cluster_check(opts->cluster, NULL, 0);
    if (rc != VIGIL_OK) return rc;
  }
  vigil_hub *hub;
  int rc = vigil__hub_create(loop, opts, &hub);
  if (rc != VIGIL_OK) return rc;
  if (opts->cluster) {
    rc = vigil__cluster_attach(hub, opts->cluster, 0, 0);
    if (rc != VIGIL_OK) {
      vigil__hub_discard(hub);
      return rc;
    }
  }
  *out = hub;
  return VIGIL_OK;
}
