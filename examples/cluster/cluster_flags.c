/* See cluster_flags.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster_flags.h"

void cluster_flags_init(cluster_flags *cf) { memset(cf, 0, sizeof *cf); }

static int copy(char *dst, size_t cap, const char *flag, const char *value,
                char *err, size_t errlen) {
  if (!value) {
    snprintf(err, errlen, "%s needs a value", flag);
    return -1;
  }
  if (strlen(value) >= cap) {
    snprintf(err, errlen, "%s '%s' is too long", flag, value);
    return -1;
  }
  snprintf(dst, cap, "%s", value);
  return 1;
}

int cluster_flags_parse(cluster_flags *cf, const char *flag,
                        const char *value, char *err, size_t errlen) {
  if (strcmp(flag, "--cluster") == 0)
    return copy(cf->url, sizeof cf->url, flag, value, err, errlen);
  if (strcmp(flag, "--node") == 0)
    return copy(cf->node, sizeof cf->node, flag, value, err, errlen);
  if (strcmp(flag, "--cluster-prefix") == 0) {
    cf->has_prefix = 1;
    return copy(cf->prefix, sizeof cf->prefix, flag, value, err, errlen);
  }
  return 0;
}

/* HOSTNAME-PID with every byte outside the node alphabet made '-'. */
static void default_node(char *out, size_t cap) {
  char host[64] = "node";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  snprintf(out, cap, "%.40s-%ld", host, (long)getpid());
  for (char *p = out; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
      *p = '-';
}

const vigil_cluster_options *cluster_flags_options(cluster_flags *cf,
                                                   int *bad, char *err,
                                                   size_t errlen) {
  *bad = 0;
  if (!cf->url[0]) {
    if (cf->node[0] || cf->has_prefix) {
      *bad = 1;
      snprintf(err, errlen, "--node and --cluster-prefix need --cluster");
    }
    return NULL;
  }
  if (!cf->node[0]) default_node(cf->node, sizeof cf->node);
  vigil_cluster_options_init(&cf->options);
  cf->options.url = cf->url;
  cf->options.node = cf->node;
  cf->options.prefix = cf->has_prefix ? cf->prefix : NULL;
  char why[256];
  if (vigil_cluster_options_validate(&cf->options, why, sizeof why) !=
      VIGIL_OK) {
    *bad = 1;
    snprintf(err, errlen, "--cluster: %s", why);
    return NULL;
  }
  return &cf->options;
}
