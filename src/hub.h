/*
 * The hub (internal; hub.c): one per ev_loop. It owns the default policy,
 * the timing wheel and its single ev_timer, the set of live connections,
 * the pending on_close queue, statistics and the diagnostics sink.
 *
 * Time. A hub reads two clocks, both injectable (vigil_hub_options): a
 * monotonic one (opts.clock, else CLOCK_MONOTONIC) for every deadline,
 * and a wall clock (opts.wall_clock, else CLOCK_REALTIME) for events'
 * ts_ms. Deadlines live in the timing wheel on the monotonic clock; the
 * one ev_timer (the tick) sleeps for that clock's distance to the wheel's
 * next expiry, and when it fires, vigil__hub_run_due() reads the clock
 * and runs what is due. Nothing here knows whether a clock is real. A
 * test that injects a fake clock drives time itself: it moves the clock
 * and calls vigil__hub_run_due() (tests/support/testutil.h vt_advance),
 * so deadlines fire at exact fake times; the tick, armed for the fake
 * distance in real time, only re-checks when it fires. Timers that are
 * not conn deadlines (the census interval, a client's backoff, a
 * listener's EMFILE retry, the shutdown poll) run on the loop's own
 * time; the shutdown deadline itself is judged on the hub clock.
 */
#ifndef VIGIL_HUB_H
#define VIGIL_HUB_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "metrics.h"
#include "protocol.h"
#include "util.h"
#include "vigil.h"
#include "wheel.h"

/* Size of the hub's shared read buffer. */
#define VIGIL__READ_BUF 65536

/* Objects a hub owns besides its conns (listeners, clients). They are
 * linked in hub->owned while alive; released ones wait in hub->graveyard
 * until no vigil code is on the stack. */
typedef enum vigil__owned_kind {
  VIGIL__OWNED_LISTENER = 1,
  VIGIL__OWNED_CLIENT = 2,
} vigil__owned_kind;

typedef struct vigil__owned vigil__owned;
struct vigil__owned {
  vigil__owned *next;
  vigil__owned *prev;
  vigil__owned_kind kind;
  uint16_t port; /* a listener's local port (the hub census examines the
                    hub's ports); 0 = none */
  /* The hub is being destroyed: stop every watcher; free the object or
   * detach it (a client stays the host's to free). */
  void (*hub_gone)(vigil__owned *o);
  /* Frees the object (after vigil__hub_release). */
  void (*release)(vigil__owned *o);
};

struct vigil__dir;
struct vigil__evict_msg;
struct vigil__fdset;

/* What a hub of a group shares with the other hubs (group_worker.c makes
 * it; NULL outside a group). Everything here is safe from any thread. */
typedef struct vigil__hub_link {
  struct vigil__dir *dir;        /* the group's identity directory */
  struct vigil__fdset *conn_fds; /* the fds of every worker's conns */
  void *group;
  /* Queues m for worker `worker`'s hub (its mailbox): VIGIL_OK, or an
   * error and m is still the caller's. */
  int (*post_evict)(void *group, int32_t worker,
                    struct vigil__evict_msg *m);
  /* A listener of this hub bound port (delta +1) or closed (-1). */
  void (*port)(void *group, uint16_t port, int delta);
} vigil__hub_link;

typedef struct vigil__hookset {
  struct vigil__hookset *next;
  vigil__hooks hooks;
} vigil__hookset;

struct vigil_hub {
  struct ev_loop *loop;
  const vigil_policy *policy;  /* shared; conns adopted now take a ref */
  vigil_hub_options opts;      /* opts.policy is NULL: see `policy` */
  vigil__wheel wheel;
  ev_timer tick;               /* sleeps until the wheel's next expiry */
  ev_check clock_refresh;      /* refreshes now_ms after each poll */
  ev_prepare deliver;          /* delivers pending on_close before polling */
  uint64_t now_ms;             /* cached monotonic now */
  uint64_t armed_at;           /* when the tick timer is due (ms) */
  uint64_t next_conn_id;
  vigil_conn **conns;          /* live conns, dense; conn->slot indexes */
  uint32_t nconns;
  uint32_t cap_conns;
  vigil_conn *closed_head;     /* pending on_close (FIFO) */
  vigil_conn *closed_tail;
  vigil__hookset *hooksets;   /* interned conn hooks */
  vigil__owned *owned;         /* live listeners and clients */
  vigil__owned *graveyard;     /* released while depth > 0 */
  char *rbuf;                  /* shared read buffer, VIGIL__READ_BUF */
  vigil_stats stats;
  int depth;                   /* nesting of vigil entry points */
  int entered_from_loop;       /* the outermost bracket is a watcher's */
  int free_requested;
  int freeing;
  /* graceful shutdown */
  int shutting_down;
  ev_timer shutdown_timer;
  uint64_t shutdown_deadline;  /* hub clock ms */
  vigil_shutdown_cb shutdown_done;
  void *shutdown_data;
  /* identity directory of a hub alone (identity.c; made by the cluster
   * link, behind it, for a hub with one); a group's hubs use link->dir */
  struct vigil__dir *own_dir;
  /* census (hub_census.c) */
  ev_timer census_timer;
  void *census_state;          /* CLOSE_WAIT first-seen table */
  /* metrics beyond stats (metrics_hooks.c) */
  vigil__metrics metrics;
  /* the kernel's tcp_fin_timeout as TCP_LINGER2 0 reads back (conn.c,
   * the open event): read at most once a second */
  int fin_default_s;           /* 0 = not read yet */
  uint64_t fin_default_at;     /* hub clock ms of that read */
  /* group membership (group_worker.c) */
  int32_t worker_index;        /* stamped on events; -1 outside a group */
  vigil_worker *worker;        /* NULL outside a group */
  const vigil__hub_link *link; /* NULL outside a group */
  void (*on_destroyed)(vigil_hub *hub); /* last act of hub_destroy: the
                                 counters are final; runs no host code */
  struct vigil__cluster *cluster; /* link to the cluster directory
                                 (cluster.h); NULL = none */
  void (*cluster_detach)(vigil_hub *hub); /* frees that link: set with it
                                 (hub_destroy runs it after the conns
                                 closed) */
};

/* vigil_hub_new (hub_new.c) without the cluster link: checks tick_ms and
 * the policy, makes the hub. VIGIL_OK, VIGIL_EINVAL, VIGIL_ENOMEM. */
int vigil__hub_create(struct ev_loop *loop, const vigil_hub_options *opts,
                      vigil_hub **out);
/* Destroys a hub that vigil__hub_create just made (no conn, no callback
 * ran on it yet). */
void vigil__hub_discard(vigil_hub *hub);

/* The hub's clock (monotonic ms): the injected one, or CLOCK_MONOTONIC.
 * Never runs backwards: deadlines assume it. */
static inline uint64_t vigil__hub_clock(vigil_hub *hub) {
  uint64_t now = hub->opts.clock ? hub->opts.clock(hub->opts.clock_data)
                                 : vigil__monotonic_ms();
  if (now > hub->now_ms) hub->now_ms = now;
  return hub->now_ms;
}

/* Brackets around vigil code that may run host code (see hub.c): public
 * calls use enter, watcher callbacks enter_loop. Internal functions never
 * bracket: they run inside an entry point's. */
static inline void vigil__hub_enter(vigil_hub *hub) { hub->depth++; }
static inline void vigil__hub_enter_loop(vigil_hub *hub) {
  if (hub->depth++ == 0) hub->entered_from_loop = 1;
}
/* Leaves a bracket; the outermost leave reaps released objects and
 * performs a hub free requested inside (see hub.c). */
void vigil__hub_leave(vigil_hub *hub);
/* Links o into the hub's owned list / unlinks it. */
void vigil__hub_own(vigil_hub *hub, vigil__owned *o);
void vigil__hub_disown(vigil_hub *hub, vigil__owned *o);
/* Frees an unlinked o now, or once no vigil code is on the stack. */
void vigil__hub_release(vigil_hub *hub, vigil__owned *o);
/* Runs every deadline due by the hub's clock now, then re-arms the tick
 * timer (the tick's own work, and what tests call after moving a fake
 * clock). An entry point: it brackets the hub. */
void vigil__hub_run_due(vigil_hub *hub);
/* Delivers on_close for every queued conn, then frees it. */
void vigil__hub_deliver_closed(vigil_hub *hub);
/* Makes hub worker `index` of a group: events carry the index, the hub
 * shares what link names with the group's other hubs, and on_destroyed
 * runs at the end of the hub's destruction. Before any conn or listener
 * exists. */
void vigil__hub_set_worker(vigil_hub *hub, vigil_worker *w, int32_t index,
                           const vigil__hub_link *link,
                           void (*on_destroyed)(vigil_hub *hub));
/* The hub's counters now (vigil_hub_stats). */
static inline void vigil__hub_stats_get(const vigil_hub *hub,
                                        vigil_stats *out) {
  *out = hub->stats;
  out->open = hub->nconns;
}

/* 1 when someone listens to events: callers skip building them if not. */
static inline int vigil__hub_wants_events(const vigil_hub *hub) {
  return hub->opts.on_event != NULL;
}
#endif
