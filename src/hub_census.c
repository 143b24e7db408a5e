/*
 * Hub census: the ghost census (ghost_census.c) of the hub's own ports,
 * to find the sockets no vigil deadline will ever end. See
 * vigil_hub_census_report in vigil.h for what counts as a ghost.
 *
 * The ports are the local ports of the hub's listeners and live conns.
 * Vigil's conns are the hub's own (their inodes, one fstat each) for a
 * hub alone; in a group they are every worker's (the group's fd set), so
 * a worker's census never counts another worker's clients on a shared
 * port as leaked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "ghost_census.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "hub_census.h"

static int cmp_u16(const void *a, const void *b) {
  uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
  return (x > y) - (x < y);
}

uint16_t vigil__local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

size_t vigil__ports_unique(uint16_t *v, size_t n) {
  if (n == 0) return 0; /* v may be NULL */
  qsort(v, n, sizeof *v, cmp_u16);
  size_t u = 0;
  for (size_t i = 0; i < n; i++)
    if (v[i] != 0 && (u == 0 || v[u - 1] != v[i])) v[u++] = v[i];
  return u;
}

/* The distinct local ports of the hub's listeners and live conns, sorted,
 * in a fresh array (*out NULL when there are none). */
static int hub_ports(vigil_hub *hub, uint16_t **out, size_t *nout) {
  size_t nl = 0;
  for (const vigil__owned *o = hub->owned; o; o = o->next) nl += o->port != 0;
  size_t cap = nl + hub->nconns;
  *out = NULL;
  *nout = 0;
  if (cap == 0) return VIGIL_OK;
  uint16_t *v = malloc(cap * sizeof *v);
  if (!v) return VIGIL_ENOMEM;
  size_t n = 0;
  for (const vigil__owned *o = hub->owned; o; o = o->next)
    if (o->port) v[n++] = o->port;
  for (uint32_t i = 0; i < hub->nconns; i++) {
    uint16_t p = vigil__local_port(hub->conns[i]->io.fd);
    if (p) v[n++] = p;
  }
  size_t u = vigil__ports_unique(v, n);
  if (u == 0) {
    free(v);
    return VIGIL_OK;
  }
  *out = v;
  *nout = u;
  return VIGIL_OK;
}

/* Inodes of the live conns' sockets. */
static int conn_inodes(vigil_hub *hub, vigil__inode_set *set) {
  for (uint32_t i = 0; i < hub->nconns; i++) {
    uint64_t ino;
    if (vigil_census_fd_inode(hub->conns[i]->io.fd, &ino) != VIGIL_OK)
      continue;
    if (vigil__inode_set_add(set, ino) != VIGIL_OK) return VIGIL_ENOMEM;
  }
  vigil__inode_set_sort(set);
  return VIGIL_OK;
}

static vigil__census_memory *memory_of(vigil_hub *hub) {
  if (!hub->census_state)
    hub->census_state = calloc(1, sizeof(vigil__census_memory));
  return hub->census_state;
}

static int take_census(vigil_hub *hub, vigil_hub_census_report *out) {
  memset(out, 0, sizeof *out);
  out->conns = hub->nconns;
  vigil__ghost_query q;
  memset(&q, 0, sizeof q);
  uint16_t *ports = NULL;
  vigil__inode_set mine = {0};
  int rc = hub_ports(hub, &ports, &q.nports);
  if (rc != VIGIL_OK || q.nports == 0) goto done;
  q.ports = ports;
  q.memory = memory_of(hub);
  q.now_ms = vigil__hub_clock(hub);
  q.grace_ms = hub->policy->close_wait_grace_ms;
  if (hub->link) {
    q.conn_fds = hub->link->conn_fds;
  } else {
    rc = conn_inodes(hub, &mine);
    q.mine = &mine;
  }
  if (rc == VIGIL_OK && !q.memory) rc = VIGIL_ENOMEM;
  if (rc == VIGIL_OK) rc = vigil__ghost_census(&q, out);
done:
  if (rc != VIGIL_OK) {
    memset(out, 0, sizeof *out);
    out->conns = hub->nconns;
  }
  vigil__metrics_census_done(hub, rc, out, vigil__hub_clock(hub));
  vigil__inode_set_free(&mine);
  free(ports);
  return rc;
}

int vigil_hub_census(vigil_hub *hub, vigil_hub_census_report *out) {
  if (!hub || !out) return VIGIL_EINVAL;
  return take_census(hub, out);
}

/* ---- periodic census ---- */

static void emit_census(vigil_hub *hub, int rc,
                        const vigil_hub_census_report *r) {
  char detail[192];
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_CENSUS, hub, NULL);
  if (rc == VIGIL_OK) {
    snprintf(detail, sizeof detail,
             "ports=%u conns=%u leaked=%u close_wait_stale=%u orphans=%u",
             r->nports, r->conns, r->leaked, r->close_wait_stale,
             r->orphans);
    ev.state_counts = r->counts;
    ev.count = r->total;
  } else {
    snprintf(detail, sizeof detail, "census failed: %s", vigil_err_name(rc));
  }
  ev.detail = detail;
  vigil__event_send(hub, &ev);
  if (rc != VIGIL_OK || r->ghosts <= hub->opts.ghost_threshold ||
      hub->free_requested)
    return;
  vigil__event_init(&ev, VIGIL_EV_GHOSTS, hub, NULL);
  ev.count = r->ghosts;
  snprintf(detail, sizeof detail, "leaked=%u close_wait_stale=%u orphans=%u",
           r->leaked, r->close_wait_stale, r->orphans);
  ev.detail = detail;
  vigil__event_send(hub, &ev);
}

void vigil__hub_census_tick(vigil_hub *hub) {
  vigil_hub_census_report r;
  int rc = take_census(hub, &r); /* also kept for the metrics */
  if (vigil__hub_wants_events(hub)) emit_census(hub, rc, &r);
}

void vigil__hub_census_free(vigil_hub *hub) {
  vigil__census_memory *m = hub->census_state;
  if (m) {
    vigil__census_memory_free(m);
    free(m);
    hub->census_state = NULL;
  }
}
