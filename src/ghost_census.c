/*
 * The ghost census of a set of ports; see ghost_census.h.
 *
 * How sockets are attributed:
 *  - "held by this process" comes from the census's /proc/self/fd scan;
 *  - "a vigil conn" means its inode is one of vigil's conns': given by a
 *    hub (fstat of each conn's fd), or, for a group, the sockets of the
 *    fds in the group's fd set, read from /proc/self/fd once before and
 *    once after the dump (a conn of another worker adopted or closed
 *    while the dump runs is in one of the two scans);
 *  - orphans have no fd at all (inode 0), so they are attributed by port.
 *
 * Two passes keep a hub's common case cheap. Every socket of a hub's live
 * conn is held by this process and sits on one of the examined ports, so
 * when the process holds no more non-listening sockets on those ports than
 * the hub has conns, there is nothing foreign to find and a count-only
 * dump is enough. Only otherwise is the census repeated with ESTABLISHED
 * and CLOSE_WAIT sockets listed, and each of them matched by inode. A
 * group's conns may sit on ports this census does not examine, so their
 * number proves nothing: a group census always lists.
 *
 * CLOSE_WAIT age: the kernel keeps none (CLOSE_WAIT has no timer), so the
 * memory keeps the socket cookie and first-seen time of every unowned
 * CLOSE_WAIT socket from one census to the next. It holds exactly the
 * unowned CLOSE_WAIT sockets of the last census, so it is bounded by the
 * pile-up it reports.
 */
#include <stdlib.h>
#include <string.h>

#include "ghost_census.h"
#include "fdset.h"

static int cmp_seen(const void *a, const void *b) {
  uint64_t x = ((const vigil__seen_socket *)a)->cookie;
  uint64_t y = ((const vigil__seen_socket *)b)->cookie;
  return (x > y) - (x < y);
}

void vigil__census_memory_free(vigil__census_memory *m) {
  free(m->v);
  m->v = NULL;
  m->n = 0;
}

/* First-seen time of cookie in the previous memory, or `now` if new. */
static uint64_t first_seen(const vigil__census_memory *m, uint64_t cookie,
                           uint64_t now) {
  vigil__seen_socket key = {cookie, 0};
  const vigil__seen_socket *hit =
      m->n ? bsearch(&key, m->v, m->n, sizeof key, cmp_seen) : NULL;
  return hit ? hit->first_seen_ms : now;
}

static int is_conn(const vigil__ghost_query *q, const vigil__inode_set *a,
                   const vigil__inode_set *b, uint64_t inode) {
  if (q->mine) return vigil__inode_set_has(q->mine, inode);
  return vigil__inode_set_has(a, inode) || vigil__inode_set_has(b, inode);
}

/* Matches listed ESTABLISHED and CLOSE_WAIT sockets against the conns and
 * replaces the CLOSE_WAIT memory. */
static int judge_sockets(const vigil__ghost_query *q, const vigil_census *cs,
                         const vigil__inode_set *a, const vigil__inode_set *b,
                         vigil_hub_census_report *r) {
  vigil__seen_socket *next = NULL;
  size_t nnext = 0;
  for (size_t i = 0; i < cs->nsockets; i++) {
    const vigil_census_socket *s = &cs->sockets[i];
    if (!s->in_this_process || is_conn(q, a, b, s->inode)) continue;
    if (s->state == VIGIL_TCP_ESTABLISHED) {
      r->leaked++;
    } else if (s->state == VIGIL_TCP_CLOSE_WAIT) {
      if (!next) next = malloc(cs->nsockets * sizeof *next);
      if (!next) return VIGIL_ENOMEM;
      uint64_t since = first_seen(q->memory, s->id.cookie, q->now_ms);
      next[nnext].cookie = s->id.cookie;
      next[nnext++].first_seen_ms = since;
      r->close_wait_unowned++;
      if (q->now_ms - since >= q->grace_ms) r->close_wait_stale++;
    }
  }
  if (nnext) qsort(next, nnext, sizeof *next, cmp_seen);
  free(q->memory->v);
  q->memory->v = next;
  q->memory->n = nnext;
  return VIGIL_OK;
}

/* One census of the ports; list = also list ESTABLISHED and CLOSE_WAIT. */
static int run(const vigil__ghost_query *q, int list, vigil_census **out) {
  vigil_census_query cq;
  vigil_census_query_init(&cq);
  cq.ports = q->ports;
  cq.nports = q->nports;
  cq.want_self = 1;
  cq.want_sockets = list;
  cq.list_states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_ESTABLISHED) |
                   VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT);
  cq.max_sockets = 0; /* a leak beyond any cap would go unseen */
  return vigil__census_run(&cq, VIGIL__CENSUS_LOOP_WAIT_MS, out);
}

static int in_fdset(int fd, void *set) { return vigil__fdset_has(set, fd); }

/* The group's conns' inodes now. */
static int group_conns(const vigil__ghost_query *q, vigil__inode_set *set) {
  return vigil__census_fd_inodes(in_fdset, (void *)q->conn_fds, set);
}

/* A hub's shortcut: no more of our sockets on the ports than conns. */
static int nothing_foreign(const vigil__ghost_query *q,
                           const vigil_census *cs) {
  if (!q->mine) return 0;
  uint32_t held = 0;
  for (int s = 0; s < VIGIL_TCP_STATE__COUNT; s++)
    if (s != VIGIL_TCP_LISTEN) held += cs->self_counts[s];
  return held <= q->mine->n;
}

int vigil__ghost_census(const vigil__ghost_query *q,
                        vigil_hub_census_report *out) {
  vigil__inode_set before = {0}, after = {0};
  vigil_census *cs = NULL;
  out->nports = (uint32_t)q->nports;
  int rc = q->mine ? VIGIL_OK : group_conns(q, &before);
  if (rc == VIGIL_OK) rc = run(q, q->mine == NULL, &cs);
  if (rc != VIGIL_OK) goto done;
  if (nothing_foreign(q, cs)) {
    vigil__census_memory_free(q->memory);
  } else {
    if (q->mine) { /* look closer */
      vigil_census_free(cs);
      cs = NULL;
      rc = run(q, 1, &cs);
    } else {
      rc = group_conns(q, &after);
    }
    if (rc == VIGIL_OK) rc = judge_sockets(q, cs, &before, &after, out);
    if (rc != VIGIL_OK) goto done;
  }
  memcpy(out->counts, cs->counts, sizeof out->counts);
  out->total = cs->total;
  out->orphans = cs->orphans;
  out->ghosts = out->leaked + out->close_wait_stale + out->orphans;
done:
  vigil_census_free(cs);
  vigil__inode_set_free(&before);
  vigil__inode_set_free(&after);
  return rc;
}
