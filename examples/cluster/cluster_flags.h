/*
 * The examples' cluster flags (vigil/cluster.h): --cluster URL, --node
 * NAME and --cluster-prefix P, shared by echo_server, game_server and
 * mqtt_gateway, with or without --workers.
 */
#ifndef CLUSTER_FLAGS_H
#define CLUSTER_FLAGS_H

#include <stddef.h>

#include "vigil.h"

#define CLUSTER_FLAGS_USAGE                                                  \
  "  --cluster URL            share identities with other nodes through\n" \
  "                           Redis: redis://[:PASSWORD@]HOST:PORT[/DB] or\n" \
  "                           unix:///PATH[?db=N]; a device that comes back\n" \
  "                           through another node ends its ghost here\n"  \
  "  --node NAME              this node's name in the cluster, unique\n"   \
  "                           ([A-Za-z0-9._-], default HOSTNAME-PID)\n"     \
  "  --cluster-prefix P       key prefix in Redis (default vigil:)\n"

typedef struct cluster_flags {
  char url[512];    /* "" = no cluster */
  char node[65];
  char prefix[65];
  int has_prefix;
  vigil_cluster_options options; /* points into the strings above */
} cluster_flags;

void cluster_flags_init(cluster_flags *cf);

/* Parses one flag: 1 when it is a cluster flag (value used), 0 when it is
 * not, -1 when its value is bad (why in err). */
int cluster_flags_parse(cluster_flags *cf, const char *flag,
                        const char *value, char *err, size_t errlen);

/* After the last flag: the options for vigil_hub_options.cluster, or NULL
 * without --cluster. Sets err and returns NULL with *bad = 1 when the
 * flags do not make valid options (--node without --cluster, say). */
const vigil_cluster_options *cluster_flags_options(cluster_flags *cf,
                                                   int *bad, char *err,
                                                   size_t errlen);

#endif
