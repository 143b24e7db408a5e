/*
 * vigil clusters: one identity directory across several nodes (hosts or
 * processes), kept in Redis, so a device that comes back through another
 * node ends its ghost on the first node in milliseconds instead of after
 * dead_after. The guide is docs/cluster.md.
 *
 * Turn it on by pointing vigil_hub_options.cluster at these options (for a
 * group, in its hub template): every hub (every worker of a group) then
 * keeps its own two connections to the store on its own loop. A claim
 * (vigil_conn_identify) takes effect locally at once, as without a
 * cluster; the store's verdict follows asynchronously:
 *   - a live holder on another node is closed there, with reason takeover,
 *     a "takeover" event with scope cluster naming the claiming node
 *     (other_node), and an RST under abort_dead;
 *   - a claim without a certificate never displaces a holder that proved
 *     the identity with one (vigil/tls.h identity_proof), on any node: the
 *     claimant closes with reason takeover_rejected. A proof that comes
 *     after the claim (a claim made before the TLS handshake finished)
 *     reaches the store too, so it shields the identity the same way;
 *   - owners are fenced by epochs the store issues, never by clocks: a late
 *     or replayed eviction never closes a newer holder.
 *
 * While the store cannot be reached ("directory_down" event,
 * vigil_directory_up 0), claims go on locally; a ghost on another node
 * then lasts at most its dead_after. When the store answers again
 * ("directory_up"), every hub re-asserts the identities it holds, and
 * conflicts born meanwhile are resolved (the older holder is taken over).
 *
 * Node names must be unique in the cluster (one per process or host that
 * runs a hub or a group with these options).
 *
 * Built when hiredis is found (CMake VIGIL_REDIS); without it,
 * vigil_cluster_options_validate, vigil_hub_new and vigil_group_new
 * return VIGIL_ENOTSUP for options that ask for a cluster.
 */
#ifndef VIGIL_CLUSTER_H
#define VIGIL_CLUSTER_H

#ifndef VIGIL_H
#include "vigil.h"
#endif

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vigil_cluster_options {
  /* The store: "redis://[[user]:password@]host[:port][/db]" (port 6379,
   * db 0 by default; user and password percent-encoded) or
   * "unix://[[user]:password@]/path/to/socket[?db=N]". Redis >= 6.2,
   * standalone or a primary (not Redis Cluster). A host name is resolved
   * at each connection attempt (blocking the loop while the resolver is
   * slow): prefer a numeric address. Required; copied. */
  const char *url;
  /* Key and channel prefix, so that several clusters share one Redis:
   * 0..64 printable bytes without spaces; NULL = "vigil:". Copied. */
  const char *prefix;
  /* This node's name in the cluster: 1..64 of [A-Za-z0-9._-], unique in
   * the cluster; it names the claiming node in the other nodes' takeover
   * events. Required; copied. */
  const char *node;
  /* A store command not answered in this long counts as an outage (the
   * connections are dropped and retried): 1..86400000; 500. */
  uint32_t command_timeout_ms;
  /* This node counts as alive in the store while it refreshes its
   * liveness key within this long; records of a node that stopped (or
   * restarted) are taken over without waiting once it lapses:
   * 3 x command_timeout_ms..86400000; 10000. */
  uint32_t liveness_ttl_ms;
} vigil_cluster_options;

VIGIL_EXPORT void vigil_cluster_options_init(vigil_cluster_options *o);

/* Checks the options. VIGIL_OK; VIGIL_EINVAL with a message naming the
 * field and what it allows, e.g. "node must be 1..64 of [A-Za-z0-9._-]";
 * VIGIL_ENOTSUP in a build without hiredis. msg may be NULL. */
VIGIL_EXPORT int vigil_cluster_options_validate(
    const vigil_cluster_options *o, char *msg, size_t msglen);

/* 1 while the hub's cluster directory is reachable, 0 while not, -1 for
 * a hub without a cluster. On the hub's thread. */
VIGIL_EXPORT int vigil_hub_directory_up(vigil_hub *hub);

#ifdef __cplusplus
}
#endif

#endif
