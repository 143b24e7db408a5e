/*
 * A group's census (vigil_group_census): the ghost census
 * (ghost_census.c) of every port the group's workers listen on or hold
 * conns on, from any thread, with every worker's conns counted as vigil's.
 *
 * The ports: listener ports come from the workers' hubs as they bind and
 * close listeners (the hub link's port callback, refcounted: workers share
 * a port); conn ports are read from the group's fd set (one getsockname
 * per conn, as a hub's census does for its own). An fd that closes and is
 * reused meanwhile can only add a port to examine.
 *
 * Locks: ports_lock guards the port list and the last report (short
 * holds, taken by workers binding listeners and by metrics readers);
 * census_lock serializes censuses and guards the CLOSE_WAIT memory. A
 * census takes ports_lock briefly while it holds census_lock, never the
 * reverse; neither is held while host code runs.
 */
#include <stdlib.h>
#include <string.h>

#include "ghost_census.h"
#include "clock.h"
#include "fdset.h"
#include "group_internal.h"
#include "hub_census.h"

void vigil__group_port(void *group, uint16_t port, int delta) {
  vigil_group *g = group;
  pthread_mutex_lock(&g->ports_lock);
  size_t i = 0;
  while (i < g->nports && g->ports[i].port != port) i++;
  if (i == g->nports && delta > 0) {
    if (g->nports == g->cap_ports) {
      size_t cap = g->cap_ports ? 2 * g->cap_ports : 8;
      vigil__group_port_ref *v = realloc(g->ports, cap * sizeof *v);
      if (!v) { /* the group census then misses a listener-only port */
        pthread_mutex_unlock(&g->ports_lock);
        return;
      }
      g->ports = v;
      g->cap_ports = cap;
    }
    g->ports[g->nports].port = port;
    g->ports[g->nports++].refs = 0;
  }
  if (i < g->nports) {
    if (delta > 0)
      g->ports[i].refs++;
    else if (g->ports[i].refs > 0 && --g->ports[i].refs == 0)
      g->ports[i] = g->ports[--g->nports];
  }
  pthread_mutex_unlock(&g->ports_lock);
}

typedef struct port_list {
  uint16_t *v;
  size_t n, cap;
} port_list;

static void add_conn_port(int fd, void *arg) {
  port_list *l = arg;
  uint16_t p = vigil__local_port(fd);
  if (p && l->n < l->cap) l->v[l->n++] = p;
}

/* The group's ports, distinct and sorted, and its conns' count. */
static int group_ports(vigil_group *g, port_list *l, uint32_t *conns) {
  size_t nconns = vigil__fdset_each(&g->conn_fds, NULL, NULL);
  pthread_mutex_lock(&g->ports_lock);
  /* Conns adopted between the count and the walk are left out. */
  l->cap = g->nports + nconns;
  l->v = l->cap ? malloc(l->cap * sizeof *l->v) : NULL;
  if (l->cap && !l->v) {
    pthread_mutex_unlock(&g->ports_lock);
    return VIGIL_ENOMEM;
  }
  for (size_t i = 0; i < g->nports; i++) l->v[l->n++] = g->ports[i].port;
  pthread_mutex_unlock(&g->ports_lock);
  *conns = (uint32_t)vigil__fdset_each(&g->conn_fds, add_conn_port, l);
  l->n = vigil__ports_unique(l->v, l->n);
  return VIGIL_OK;
}

int vigil_group_census(vigil_group *g, vigil_hub_census_report *out) {
  if (!g || !out) return VIGIL_EINVAL;
  memset(out, 0, sizeof *out);
  port_list ports = {0};
  pthread_mutex_lock(&g->census_lock);
  int rc = group_ports(g, &ports, &out->conns);
  if (rc == VIGIL_OK && ports.n > 0) {
    vigil__ghost_query q;
    memset(&q, 0, sizeof q);
    q.ports = ports.v;
    q.nports = ports.n;
    q.conn_fds = &g->conn_fds;
    q.memory = &g->census_memory;
    q.now_ms = vigil__monotonic_ms();
    q.grace_ms = g->policy.close_wait_grace_ms;
    uint32_t conns = out->conns;
    rc = vigil__ghost_census(&q, out);
    out->conns = conns;
  }
  pthread_mutex_unlock(&g->census_lock);
  free(ports.v);
  if (rc == VIGIL_OK) {
    pthread_mutex_lock(&g->ports_lock);
    g->census_last = *out;
    g->census_at_ms = vigil__monotonic_ms();
    g->has_census = 1;
    pthread_mutex_unlock(&g->ports_lock);
  }
  return rc;
}
