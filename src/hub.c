/*
 * The hub: one per ev_loop. It owns the default policy, the timing wheel and
 * its single ev_timer, the set of live connections, the pending on_close
 * queue, statistics and the diagnostics sink.
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
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void vigil_hub_options_init(vigil_hub_options *o) {
  memset(o, 0, sizeof *o);
  o->tick_ms = 10;
  o->expire_batch = 256;
}

/* Monotonic ms: CLOCK_MONOTONIC, because ev_now() follows the wall clock
 * and a clock step would fire or postpone every deadline at once. */
static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t vigil__hub_clock(vigil_hub *hub) {
  uint64_t now = hub->opts.clock ? hub->opts.clock(hub->opts.clock_data)
                                 : monotonic_ms();
  /* Never let the cached clock run backwards: deadlines assume it. */
  if (now > hub->now_ms) hub->now_ms = now;
  return hub->now_ms;
}

uint64_t vigil_hub_now(vigil_hub *hub) { return vigil__hub_clock(hub); }

static void hub_destroy(vigil_hub *hub);

void vigil__hub_enter(vigil_hub *hub) { hub->depth++; }

void vigil__hub_enter_loop(vigil_hub *hub) {
  if (hub->depth++ == 0) hub->entered_from_loop = 1;
}

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
  o->prev = NULL;
  o->next = hub->owned;
  if (hub->owned) hub->owned->prev = o;
  hub->owned = o;
}

void vigil__hub_disown(vigil_hub *hub, vigil__owned *o) {
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
static void deliver_closed(vigil_hub *hub) {
  while (hub->closed_head) {
    vigil_conn *c = hub->closed_head;
    hub->closed_head = c->next_closed;
    if (!hub->closed_head) hub->closed_tail = NULL;
    c->flags |= VIGIL__F_CB_DONE;
    if (c->cb->on_close)
      c->cb->on_close(c, (vigil_reason)c->reason, c->user_data);
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
  deliver_closed(hub);
  ev_prepare_stop(hub->loop, &hub->deliver);
  vigil__hub_leave(hub);
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

static void clock_cb(struct ev_loop *loop, ev_check *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, clock_refresh);
  (void)loop;
  (void)revents;
  vigil__hub_clock(hub);
}

void vigil__hub_rearm(vigil_hub *hub) {
  if (hub->freeing) return;
  uint64_t next = vigil__wheel_next_ms(&hub->wheel);
  if (next == UINT64_MAX) {
    ev_timer_stop(hub->loop, &hub->tick);
    return;
  }
  uint64_t now = hub->now_ms;
  double after = next > now ? (double)(next - now) / 1000.0 : 0.0;
  /* With a fake clock the loop's own time does not move with ours: poll
   * at the tick so tests that advance the clock see expiries promptly. */
  if (hub->opts.clock) after = (double)hub->opts.tick_ms / 1000.0;
  hub->armed_at = next > now ? next : now;
  ev_timer_stop(hub->loop, &hub->tick);
  ev_timer_set(&hub->tick, after, 0.0);
  ev_timer_start(hub->loop, &hub->tick);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, tick);
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  uint64_t now = vigil__hub_clock(hub);
  vigil__wheel_advance(&hub->wheel, now, hub->opts.expire_batch,
                       vigil__conn_on_deadline, hub);
  vigil__hub_rearm(hub);
  vigil__hub_leave(hub);
}

int vigil_hub_new(struct ev_loop *loop, const vigil_hub_options *opts,
                  vigil_hub **out) {
  if (!loop || !out) return VIGIL_EINVAL;
  *out = NULL;
  vigil_hub_options defaults;
  if (!opts) {
    vigil_hub_options_init(&defaults);
    opts = &defaults;
  }
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
  vigil__hub_census_start(hub);
  *out = hub;
  return VIGIL_OK;
}

struct ev_loop *vigil_hub_loop(vigil_hub *hub) { return hub->loop; }

const vigil_policy *vigil_hub_policy(vigil_hub *hub) { return hub->policy; }

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

void vigil__hub_set_worker(vigil_hub *hub, vigil_worker *w, int32_t index,
                           void (*on_destroyed)(vigil_hub *hub)) {
  hub->worker = w;
  hub->worker_index = index;
  hub->on_destroyed = on_destroyed;
}

void vigil_hub_stats(vigil_hub *hub, vigil_stats *out) {
  *out = hub->stats;
  out->open = hub->nconns;
}

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

const vigil_conn_callbacks *vigil__hub_intern_cb(vigil_hub *hub,
                                                 const vigil_conn_callbacks *cb) {
  static const vigil_conn_callbacks none;
  if (!cb) cb = &none;
  /* Hosts use a handful of distinct callback sets; a short list suffices. */
  for (vigil__cbset *s = hub->cbsets; s; s = s->next)
    if (memcmp(&s->cb, cb, sizeof *cb) == 0) return &s->cb;
  vigil__cbset *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cb = *cb;
  s->next = hub->cbsets;
  hub->cbsets = s;
  return &s->cb;
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
  deliver_closed(hub);
  ev_timer_stop(hub->loop, &hub->tick);
  ev_timer_stop(hub->loop, &hub->shutdown_timer);
  vigil__hub_census_free(hub);
  ev_timer_stop(hub->loop, &hub->census_timer);
  ev_prepare_stop(hub->loop, &hub->deliver);
  ev_ref(hub->loop);
  ev_check_stop(hub->loop, &hub->clock_refresh);
  vigil__identity_hub_free(hub);
  while (hub->cbsets) {
    vigil__cbset *n = hub->cbsets->next;
    free(hub->cbsets);
    hub->cbsets = n;
  }
  reap_graveyard(hub);
  if (hub->on_destroyed) hub->on_destroyed(hub);
  vigil__policy_unref(hub->policy);
  free(hub->conns);
  free(hub->rbuf);
  free(hub);
}

void vigil_hub_free(vigil_hub *hub) {
  if (!hub || hub->freeing) return;
  hub->free_requested = 1;
  /* Outside any vigil callback the host tears down at once; inside one,
   * the outermost leave (or the loop) does. */
  if (hub->depth == 0) hub_destroy(hub);
}

/* ---- graceful shutdown ---- */

static void shutdown_finish(vigil_hub *hub) {
  ev_timer_stop(hub->loop, &hub->shutdown_timer);
  hub->shutting_down = 0;
  vigil_event ev;
  if (vigil__hub_wants_events(hub)) {
    vigil__event_init(&ev, VIGIL_EV_SHUTDOWN, hub, NULL);
    ev.detail = "done";
    vigil__event_send(hub, &ev);
  }
  if (hub->shutdown_done) hub->shutdown_done(hub, hub->shutdown_data);
}

/* Polls for completion: conns finish their graceful close on their own. */
static void shutdown_poll_cb(struct ev_loop *loop, ev_timer *w, int revents);

int vigil_hub_shutdown(vigil_hub *hub, uint32_t deadline_ms,
                       vigil_shutdown_cb done, void *user_data) {
  if (!hub || hub->free_requested) return VIGIL_EINVAL;
  if (hub->shutting_down) return VIGIL_EEXIST;
  vigil__hub_enter(hub);
  hub->shutting_down = 1;
  hub->shutdown_done = done;
  hub->shutdown_data = user_data;
  vigil__listeners_stop(hub);
  if (vigil__hub_wants_events(hub)) {
    vigil_event ev;
    vigil__event_init(&ev, VIGIL_EV_SHUTDOWN, hub, NULL);
    ev.detail = "start";
    ev.count = hub->nconns;
    vigil__event_send(hub, &ev);
  }
  /* Iterate backwards: a conn that finishes at once leaves the array. */
  for (uint32_t i = hub->nconns; i > 0; i--) {
    if (i > hub->nconns) continue;
    vigil__conn_close(hub->conns[i - 1], VIGIL_REASON_SHUTDOWN,
                      VIGIL__CLOSE_GRACEFUL);
  }
  ev_timer_init(&hub->shutdown_timer, shutdown_poll_cb, 0.0, 0.01);
  hub->shutdown_deadline = vigil__hub_clock(hub) + deadline_ms;
  ev_timer_start(hub->loop, &hub->shutdown_timer);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

static void shutdown_poll_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, shutdown_timer);
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  if (hub->nconns > 0 && vigil__hub_clock(hub) >= hub->shutdown_deadline) {
    while (hub->nconns > 0)
      vigil__conn_close(hub->conns[hub->nconns - 1], VIGIL_REASON_SHUTDOWN,
                        VIGIL__CLOSE_ABORT);
  }
  if (hub->nconns == 0 && hub->shutting_down) {
    deliver_closed(hub);
    shutdown_finish(hub);
  }
  vigil__hub_leave(hub);
}
