/*
 * The hub: one per ev_loop. It owns the default policy, the timing wheel
 * and its single ev_timer, the set of live connections (hub_conns.c), the
 * pending on_close queue, statistics and the diagnostics sink. This file
 * is its life (new, free) and its watchers: the tick that runs due
 * deadlines, the prepare that delivers on_close, the census timer.
 *
 * Re-entrancy (after hiredis's IN_CALLBACK/FREEING and libuv's deferred
 * uv_close): every entry point brackets its work with an enter/leave pair;
 * watcher callbacks use vigil__hub_enter_loop, public calls
 * vigil__hub_enter. While depth > 0, frees are only recorded:
 *  - vigil_hub_free sets free_requested. The outermost leave destroys the
 *    hub if that bracket was entered from the loop (control goes straight
 *    back to libev); if it was a public call the host made, destruction
 *    waits for the loop (the deliver prepare watcher), so every handle the
 *    call returns stays valid until the host is back in the loop;
 *  - listeners and clients freed meanwhile wait in the graveyard, reaped by
 *    the outermost leave (nothing of vigil's refers to them by then);
 *  - conns that close are queued and get on_close from the deliver prepare
 *    watcher, after the current callback chain has fully returned, so a
 *    host iterating its own structures never sees a conn vanish mid-loop.
 */
#include <stdlib.h>
#include <string.h>

#include "close.h"
#include "conn.h"
#include "conn_deadline.h"
#include "event.h"
#include "hub.h"
#include "hub_census.h"
#include "hub_conns.h"
#include "identity.h"
#include "policy_share.h"

void vigil_hub_options_init(vigil_hub_options *o) {
  memset(o, 0, sizeof *o);
  o->tick_ms = 10;
  o->expire_batch = 256;
}

uint64_t vigil_hub_now(vigil_hub *hub) { return vigil__hub_clock(hub); }

static void hub_destroy(vigil_hub *hub);

/* Frees every object released while vigil code was on the stack. */
static void reap_graveyard(vigil_hub *hub) {
  while (hub->graveyard) {
    vigil__owned *o = hub->graveyard;
    hub->graveyard = o->next;
    o->release(o);
  }
}

void vigil__hub_leave(vigil_hub *hub) {
  if (--hub->depth > 0) return;
  int from_loop = hub->entered_from_loop;
  hub->entered_from_loop = 0;
  reap_graveyard(hub);
  if (!hub->free_requested || hub->freeing) return;
  if (from_loop)
    hub_destroy(hub);
  else
    ev_prepare_start(hub->loop, &hub->deliver); /* destroyed from the loop */
}

void vigil__hub_own(vigil_hub *hub, vigil__owned *o) {
  if (hub->link && o->port) hub->link->port(hub->link->group, o->port, 1);
  o->prev = NULL;
  o->next = hub->owned;
  if (hub->owned) hub->owned->prev = o;
  hub->owned = o;
}

void vigil__hub_disown(vigil_hub *hub, vigil__owned *o) {
  if (hub->link && o->port) hub->link->port(hub->link->group, o->port, -1);
  if (o->prev)
    o->prev->next = o->next;
  else if (hub->owned == o)
    hub->owned = o->next;
  if (o->next) o->next->prev = o->prev;
  o->next = o->prev = NULL;
}

void vigil__hub_release(vigil_hub *hub, vigil__owned *o) {
  if (hub->depth == 0) {
    o->release(o);
    return;
  }
  o->next = hub->graveyard;
  hub->graveyard = o;
}

/* Delivers on_close for every queued conn, then frees it. */
void vigil__hub_deliver_closed(vigil_hub *hub) {
  while (hub->closed_head) {
    vigil_conn *c = hub->closed_head;
    hub->closed_head = c->next_closed;
    if (!hub->closed_head) hub->closed_tail = NULL;
    c->flags |= VIGIL__F_CB_DONE;
    if (c->hooks->cb.on_close)
      c->hooks->cb.on_close(c, (vigil_reason)c->reason, c->user_data);
    vigil__conn_free(c);
  }
}

/* Runs before the loop blocks: pending on_close calls, and a hub free
 * that a public call requested (the leave below performs it). */
static void deliver_cb(struct ev_loop *loop, ev_prepare *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, deliver);
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  vigil__hub_deliver_closed(hub);
  ev_prepare_stop(hub->loop, &hub->deliver);
  vigil__hub_leave(hub);
}

static void clock_cb(struct ev_loop *loop, ev_check *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, clock_refresh);
  (void)loop;
  (void)revents;
  vigil__hub_clock(hub);
}

void vigil__hub_run_due(vigil_hub *hub) {
  vigil__hub_enter_loop(hub);
  uint64_t now = vigil__hub_clock(hub);
  vigil__wheel_advance(&hub->wheel, now, hub->opts.expire_batch,
                       vigil__conn_on_deadline, hub);
  vigil__hub_rearm(hub);
  vigil__hub_leave(hub);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  vigil__hub_run_due(vigil__container_of(w, vigil_hub, tick));
}

static void census_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, census_timer);
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  vigil__hub_census_tick(hub);
  vigil__hub_leave(hub);
}

static void census_start(vigil_hub *hub) {
  uint32_t ms = hub->opts.census_interval_ms;
  if (ms == 0) return;
  double iv = (double)ms / 1000.0;
  ev_timer_init(&hub->census_timer, census_cb, iv, iv);
  ev_timer_start(hub->loop, &hub->census_timer);
  /* A diagnostics timer alone must not keep ev_run from returning. */
  ev_unref(hub->loop);
}

static void census_stop(vigil_hub *hub) {
  if (!ev_is_active(&hub->census_timer)) return;
  ev_ref(hub->loop); /* balances the ev_unref in census_start */
  ev_timer_stop(hub->loop, &hub->census_timer);
}

int vigil__hub_create(struct ev_loop *loop, const vigil_hub_options *opts,
                      vigil_hub **out) {
  if (opts->tick_ms < 1 || opts->tick_ms > 1000) return VIGIL_EINVAL;
  if (opts->policy && vigil_policy_validate(opts->policy, NULL, 0))
    return VIGIL_EINVAL;
  vigil_hub *hub = calloc(1, sizeof *hub);
  if (!hub) return VIGIL_ENOMEM;
  hub->policy = vigil__policy_new(opts->policy);
  hub->rbuf = malloc(VIGIL__READ_BUF);
  if (!hub->policy || !hub->rbuf) {
    vigil__policy_unref(hub->policy);
    free(hub->rbuf);
    free(hub);
    return VIGIL_ENOMEM;
  }
  hub->loop = loop;
  hub->opts = *opts;
  hub->opts.policy = NULL;
  hub->next_conn_id = 1;
  hub->worker_index = VIGIL_WORKER_NONE;
  vigil__hub_clock(hub);
  vigil__wheel_init(&hub->wheel, opts->tick_ms, hub->now_ms);
  ev_timer_init(&hub->tick, tick_cb, 0.0, 0.0);
  ev_check_init(&hub->clock_refresh, clock_cb);
  /* Refresh the clock before any other callback of the iteration runs. */
  ev_set_priority(&hub->clock_refresh, EV_MAXPRI);
  ev_check_start(loop, &hub->clock_refresh);
  ev_unref(loop); /* the clock watcher alone must not keep ev_run alive */
  ev_prepare_init(&hub->deliver, deliver_cb);
  hub->opts.cluster = NULL; /* the cluster link copies what it needs */
  census_start(hub);
  *out = hub;
  return VIGIL_OK;
}

struct ev_loop *vigil_hub_loop(vigil_hub *hub) { return hub->loop; }

const vigil_policy *vigil_hub_policy(vigil_hub *hub) { return hub->policy; }

void vigil__hub_set_worker(vigil_hub *hub, vigil_worker *w, int32_t index,
                           const vigil__hub_link *link,
                           void (*on_destroyed)(vigil_hub *hub)) {
  hub->worker = w;
  hub->worker_index = index;
  hub->link = link;
  hub->on_destroyed = on_destroyed;
}

int vigil_hub_set_policy(vigil_hub *hub, const vigil_policy *p) {
  if (!hub || !p) return VIGIL_EINVAL;
  if (vigil_policy_validate(p, NULL, 0) != VIGIL_OK) return VIGIL_EINVAL;
  /* A new shared copy: live conns keep the one they were adopted with
   * (their socket options, codec and output limit were set up for it). */
  const vigil_policy *np = vigil__policy_new(p);
  if (!np) return VIGIL_ENOMEM;
  vigil__policy_unref(hub->policy);
  hub->policy = np;
  return VIGIL_OK;
}

void vigil_hub_stats(vigil_hub *hub, vigil_stats *out) {
  vigil__hub_stats_get(hub, out);
}

/* Closes everything now and releases the hub. Runs at depth 0 only. */
static void hub_destroy(vigil_hub *hub) {
  hub->freeing = 1;
  hub->depth++; /* callbacks below may call vigil_hub_free again */
  /* Listeners go, clients are detached (they stay the host's to free):
   * none of their watchers may outlive the hub. */
  while (hub->owned) {
    vigil__owned *o = hub->owned;
    vigil__hub_disown(hub, o);
    o->hub_gone(o);
  }
  while (hub->nconns > 0)
    vigil__conn_close(hub->conns[hub->nconns - 1], VIGIL_REASON_SHUTDOWN,
                      VIGIL__CLOSE_NOW);
  vigil__hub_deliver_closed(hub);
  /* After the conns' releases went out (a call through the hub's field:
   * the cluster layer sits above the hub). */
  if (hub->cluster_detach) hub->cluster_detach(hub);
  ev_timer_stop(hub->loop, &hub->tick);
  ev_timer_stop(hub->loop, &hub->shutdown_timer);
  census_stop(hub);
  vigil__hub_census_free(hub);
  ev_prepare_stop(hub->loop, &hub->deliver);
  ev_ref(hub->loop);
  ev_check_stop(hub->loop, &hub->clock_refresh);
  vigil__identity_hub_free(hub);
  while (hub->hooksets) {
    vigil__hookset *n = hub->hooksets->next;
    free(hub->hooksets);
    hub->hooksets = n;
  }
  reap_graveyard(hub);
  if (hub->on_destroyed) hub->on_destroyed(hub);
  vigil__policy_unref(hub->policy);
  free(hub->conns);
  free(hub->rbuf);
  free(hub);
}

void vigil__hub_discard(vigil_hub *hub) { hub_destroy(hub); }

void vigil_hub_free(vigil_hub *hub) {
  if (!hub || hub->freeing) return;
  hub->free_requested = 1;
  /* Outside any vigil callback the host tears down at once; inside one,
   * the outermost leave (or the loop) does. */
  if (hub->depth == 0) hub_destroy(hub);
}
