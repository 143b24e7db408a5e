/*
 * The hub's live conns: their dense array, their wheel nodes, the pending
 * on_close queue and the interned hooks.
 *
 * Invariant: a live conn has exactly one wheel node, armed at the earliest
 * deadline computed when it was last evaluated. Activity only stores a
 * timestamp and clears "already reported" bits, which can only move
 * deadlines later, so a node armed too early simply re-evaluates and
 * re-arms. State changes that create an earlier deadline (peer FIN, close,
 * policy change) call vigil__conn_schedule.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "deadline.h"
#include "hub.h"
#include "hub_conns.h"

int vigil__hub_add_conn(vigil_hub *hub, vigil_conn *c) {
  if (hub->nconns == hub->cap_conns) {
    uint32_t cap = hub->cap_conns ? hub->cap_conns * 2 : 64;
    vigil_conn **n = realloc(hub->conns, cap * sizeof *n);
    if (!n) return VIGIL_ENOMEM;
    hub->conns = n;
    hub->cap_conns = cap;
  }
  c->slot = hub->nconns;
  hub->conns[hub->nconns++] = c;
  return VIGIL_OK;
}

/* O(1): the last conn takes the removed one's slot. */
void vigil__hub_remove_conn(vigil_hub *hub, vigil_conn *c) {
  uint32_t i = c->slot;
  if (i >= hub->nconns || hub->conns[i] != c) return;
  vigil_conn *last = hub->conns[--hub->nconns];
  hub->conns[i] = last;
  last->slot = i;
  c->slot = UINT32_MAX;
}

void vigil__hub_queue_closed(vigil_hub *hub, vigil_conn *c) {
  c->next_closed = NULL;
  if (hub->closed_tail)
    hub->closed_tail->next_closed = c;
  else
    hub->closed_head = c;
  hub->closed_tail = c;
  if (!hub->freeing) ev_prepare_start(hub->loop, &hub->deliver);
}

const vigil__hooks *vigil__hub_intern_hooks(vigil_hub *hub,
                                            const vigil_conn_callbacks *cb,
                                            const vigil__protocol *proto) {
  vigil__hooks want;
  memset(&want, 0, sizeof want); /* padding too: compared with memcmp */
  if (cb) want.cb = *cb;
  want.proto = proto;
  /* Hosts use a handful of distinct callback sets; a short list suffices. */
  for (vigil__hookset *s = hub->hooksets; s; s = s->next)
    if (memcmp(&s->hooks, &want, sizeof want) == 0) return &s->hooks;
  vigil__hookset *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->hooks = want;
  s->next = hub->hooksets;
  hub->hooksets = s;
  return &s->hooks;
}

void vigil__conn_schedule(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  if (c->state == VIGIL_CONN_CLOSED) return;
  uint64_t next;
  unsigned due = vigil__deadline_eval(c->policy, vigil__state(c), c->quiet,
                                      &c->t, hub->now_ms, &next);
  if (due) next = hub->now_ms; /* handle on the next tick */
  if (next == VIGIL__NEVER) {
    vigil__wheel_remove(&hub->wheel, &c->wnode);
    return;
  }
  vigil__wheel_insert(&hub->wheel, &c->wnode, next);
  /* Only wake the timer when this deadline is earlier than its plan:
   * a libev heap operation per schedule would defeat the wheel. */
  if (!ev_is_active(&hub->tick) || next < hub->armed_at)
    vigil__hub_rearm(hub);
}

void vigil__hub_rearm(vigil_hub *hub) {
  if (hub->freeing) return;
  uint64_t next = vigil__wheel_next_ms(&hub->wheel);
  if (next == UINT64_MAX) {
    ev_timer_stop(hub->loop, &hub->tick);
    return;
  }
  /* Armed for the hub clock's distance to the next expiry, whatever the
   * clock (hub.h, "Time"). */
  uint64_t now = hub->now_ms;
  double after = next > now ? (double)(next - now) / 1000.0 : 0.0;
  hub->armed_at = next > now ? next : now;
  ev_timer_stop(hub->loop, &hub->tick);
  ev_timer_set(&hub->tick, after, 0.0);
  ev_timer_start(hub->loop, &hub->tick);
}
