/*
 * vigil_cluster_options (vigil/cluster.h): defaults, validation and the
 * copies hubs and groups keep. The checks themselves are the cluster
 * layer's (cluster.h), which a build without hiredis does not have.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "hub.h"

void vigil_cluster_options_init(vigil_cluster_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->command_timeout_ms = 500;
  o->liveness_ttl_ms = 10000;
}

int vigil_cluster_options_validate(const vigil_cluster_options *o, char *msg,
                                   size_t msglen) {
  return vigil__cluster_check(o, msg, msglen);
}

int vigil_hub_directory_up(vigil_hub *hub) {
  return hub ? vigil__cluster_up(hub) : -1;
}

uint64_t vigil__cluster_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s || !s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
        ((uint64_t)getpid() << 32);
  }
  return s ? s : 1;
}

static size_t string_size(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put_string(char **at, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*at, s, n);
  const char *copy = *at;
  *at += n;
  return copy;
}

vigil_cluster_options *vigil__cluster_options_copy(
    const vigil_cluster_options *o) {
  size_t extra =
      string_size(o->url) + string_size(o->prefix) + string_size(o->node);
  vigil_cluster_options *c = malloc(sizeof *c + extra);
  if (!c) return NULL;
  *c = *o;
  char *at = (char *)(c + 1);
  c->url = put_string(&at, o->url);
  c->prefix = put_string(&at, o->prefix);
  c->node = put_string(&at, o->node);
  return c;
}
