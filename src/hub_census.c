/*
 * Hub census: the socket census (census.c) applied to the hub's own ports,
 * to find the sockets no vigil deadline will ever end. See
 * vigil_hub_census_report in vigil.h for what counts as a ghost.
 *
 * How sockets are attributed:
 *  - "held by this process" comes from the census's /proc/self/fd scan;
 *  - "a vigil conn" means its inode equals fstat() of a live conn's fd;
 *  - orphans have no fd at all (inode 0), so they are attributed by port.
 *
 * Two passes keep the common case cheap. Every socket of a live conn is
 * held by this process and sits on one of the examined ports, so when the
 * process holds no more non-listening sockets on those ports than the hub
 * has conns, there is nothing foreign to find and a count-only dump is
 * enough. Only otherwise is the census repeated with ESTABLISHED and
 * CLOSE_WAIT sockets listed, and each of them matched by inode.
 *
 * CLOSE_WAIT age: the kernel keeps none (CLOSE_WAIT has no timer), so the
 * hub keeps the socket cookie and first-seen time of every unowned
 * CLOSE_WAIT socket from one census to the next. The table holds exactly
 * the unowned CLOSE_WAIT sockets of the last census, so it is bounded by
 * the pile-up it reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "census_internal.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "hub_census.h"

typedef struct seen_socket {
  uint64_t cookie;
  uint64_t first_seen_ms; /* hub clock */
} seen_socket;

typedef struct census_state {
  seen_socket *v; /* sorted by cookie */
  size_t n;
} census_state;

static int cmp_u16(const void *a, const void *b) {
  uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
  return (x > y) - (x < y);
}

static int cmp_seen(const void *a, const void *b) {
  uint64_t x = ((const seen_socket *)a)->cookie;
  uint64_t y = ((const seen_socket *)b)->cookie;
  return (x > y) - (x < y);
}

/* Local port of a socket fd, or 0. */
static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
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
    uint16_t p = local_port(hub->conns[i]->io.fd);
    if (p) v[n++] = p;
  }
  qsort(v, n, sizeof *v, cmp_u16);
  size_t u = 0;
  for (size_t i = 0; i < n; i++)
    if (v[i] != 0 && (u == 0 || v[u - 1] != v[i])) v[u++] = v[i];
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

static census_state *state_get(vigil_hub *hub) {
  if (!hub->census_state) hub->census_state = calloc(1, sizeof(census_state));
  return hub->census_state;
}

/* First-seen time of cookie in the previous table, or `now` if new. */
static uint64_t first_seen(const census_state *st, uint64_t cookie,
                           uint64_t now) {
  seen_socket key = {cookie, 0};
  const seen_socket *hit =
      st->n ? bsearch(&key, st->v, st->n, sizeof key, cmp_seen) : NULL;
  return hit ? hit->first_seen_ms : now;
}

/* Matches listed ESTABLISHED and CLOSE_WAIT sockets against the conns and
 * replaces the CLOSE_WAIT first-seen table. */
static int judge_sockets(vigil_hub *hub, const vigil_census *cs,
                         const vigil__inode_set *mine,
                         vigil_hub_census_report *r) {
  census_state *st = state_get(hub);
  if (!st) return VIGIL_ENOMEM;
  uint64_t now = vigil__hub_clock(hub);
  uint32_t grace = hub->policy->close_wait_grace_ms;
  seen_socket *next = NULL;
  size_t nnext = 0;
  for (size_t i = 0; i < cs->nsockets; i++) {
    const vigil_census_socket *s = &cs->sockets[i];
    if (!s->in_this_process || vigil__inode_set_has(mine, s->inode)) continue;
    if (s->state == VIGIL_TCP_ESTABLISHED) {
      r->leaked++;
    } else if (s->state == VIGIL_TCP_CLOSE_WAIT) {
      if (!next) next = malloc(cs->nsockets * sizeof *next);
      if (!next) return VIGIL_ENOMEM;
      uint64_t since = first_seen(st, s->id.cookie, now);
      next[nnext].cookie = s->id.cookie;
      next[nnext++].first_seen_ms = since;
      r->close_wait_unowned++;
      if (now - since >= grace) r->close_wait_stale++;
    }
  }
  if (nnext) qsort(next, nnext, sizeof *next, cmp_seen);
  free(st->v);
  st->v = next;
  st->n = nnext;
  return VIGIL_OK;
}

/* One census of ports; list = also list ESTABLISHED and CLOSE_WAIT. */
static int run(const uint16_t *ports, size_t nports, int list,
               vigil_census **out) {
  vigil_census_query q;
  vigil_census_query_init(&q);
  q.ports = ports;
  q.nports = nports;
  q.want_self = 1;
  q.want_sockets = list;
  q.list_states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_ESTABLISHED) |
                  VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT);
  q.max_sockets = 0; /* a leak beyond any cap would go unseen */
  return vigil__census_run(&q, VIGIL__CENSUS_LOOP_WAIT_MS, out);
}

static int take_census(vigil_hub *hub, vigil_hub_census_report *out) {
  memset(out, 0, sizeof *out);
  out->conns = hub->nconns;
  uint16_t *ports = NULL;
  size_t nports = 0;
  vigil__inode_set mine = {0};
  vigil_census *cs = NULL;
  int rc = hub_ports(hub, &ports, &nports);
  if (rc != VIGIL_OK || nports == 0) goto done;
  out->nports = (uint32_t)nports;
  rc = conn_inodes(hub, &mine);
  if (rc == VIGIL_OK) rc = run(ports, nports, 0, &cs);
  if (rc != VIGIL_OK) goto done;
  uint32_t held = 0;
  for (int s = 0; s < VIGIL_TCP_STATE__COUNT; s++)
    if (s != VIGIL_TCP_LISTEN) held += cs->self_counts[s];
  if (held > mine.n) { /* something of ours is not a conn: look closer */
    vigil_census_free(cs);
    cs = NULL;
    rc = run(ports, nports, 1, &cs);
    if (rc == VIGIL_OK) rc = judge_sockets(hub, cs, &mine, out);
    if (rc != VIGIL_OK) goto done;
  } else if (hub->census_state) {
    census_state *st = hub->census_state;
    free(st->v);
    st->v = NULL;
    st->n = 0;
  }
  memcpy(out->counts, cs->counts, sizeof out->counts);
  out->total = cs->total;
  out->orphans = cs->orphans;
  out->ghosts = out->leaked + out->close_wait_stale + out->orphans;
done:
  if (rc != VIGIL_OK) {
    memset(out, 0, sizeof *out);
    out->conns = hub->nconns;
  }
  vigil__metrics_census_done(hub, rc, out, vigil__hub_clock(hub));
  vigil_census_free(cs);
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
  census_state *st = hub->census_state;
  if (st) {
    free(st->v);
    free(st);
    hub->census_state = NULL;
  }
}
