/*
 * Internal structures of vigil groups (vigil/group.h).
 *
 * Files, each calling only the ones below it:
 *   group.c          public API: options, new, start, stop, join, free,
 *                    post, accessors; the group's state machine
 *   group_worker.c   a worker thread's life: loop, hub, setup, stop,
 *                    exit
 *   group_stats.c    per-worker counters published for other threads
 *   group_census.c   the census of every worker's ports and conns
 *   group_ref.c      the group's memory: references, who joins or
 *                    detaches each thread, destruction
 *   group_mailbox.c  a worker's inbox: a locked FIFO plus an ev_async
 *
 * The hubs of a group share one identity directory (dir_local.c, its own
 * mutex), so claims and takeovers see every worker; an eviction for a conn
 * of another worker travels through that worker's mailbox.
 *
 * Locks: group->lock guards every field marked [lock]; a mailbox's own
 * lock guards its queue. The order is group->lock, then a mailbox lock,
 * never the reverse. Fields marked [worker] are touched only by that
 * worker's thread; [const] fields are set before any thread that reads
 * them exists.
 */
#ifndef VIGIL_GROUP_INTERNAL_H
#define VIGIL_GROUP_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>

#include "ghost_census.h"
#include "fdset.h"
#include "histogram.h"
#include "hub.h"
#include "vigil.h"

/* ---- group_mailbox.c ---- */

typedef struct vigil__msg vigil__msg;
struct vigil__msg {
  vigil__msg *next;
  vigil_worker_fn fn;
  void *arg;
};

/* Control requests riding on the mailbox's wake-up. */
#define VIGIL__CTL_STOP 0x1u /* graceful: hub shutdown with a deadline */
#define VIGIL__CTL_END 0x2u  /* end the loop now (group free, abort) */

typedef enum vigil__mailbox_state {
  VIGIL__MB_UNOPENED = 0, /* no thread yet: posts get VIGIL_ESTATE */
  VIGIL__MB_OPEN = 1,
  VIGIL__MB_CLOSED = 2,   /* the worker exited: posts get VIGIL_ECLOSED */
} vigil__mailbox_state;

typedef struct vigil__mailbox {
  pthread_mutex_t lock;
  vigil__mailbox_state state;  /* [lock] */
  vigil__msg *head, *tail;     /* [lock] FIFO */
  unsigned ctl;                /* [lock] VIGIL__CTL_* not yet taken */
  uint32_t stop_deadline_ms;   /* [lock] with VIGIL__CTL_STOP */
  struct ev_loop *loop;        /* set while OPEN */
  ev_async wake;
} vigil__mailbox;

int vigil__mailbox_init(vigil__mailbox *mb);
/* Frees messages never run (only possible when no thread ever opened the
 * mailbox, which refuses posts) and the lock. */
void vigil__mailbox_destroy(vigil__mailbox *mb);
/* Worker thread: starts the wake-up watcher on loop, accepts posts. */
void vigil__mailbox_open(vigil__mailbox *mb, struct ev_loop *loop,
                         void (*cb)(struct ev_loop *, ev_async *, int));
/* Any thread: queues fn(arg). VIGIL_OK, VIGIL_ESTATE, VIGIL_ECLOSED,
 * VIGIL_ENOMEM. */
int vigil__mailbox_post(vigil__mailbox *mb, vigil_worker_fn fn, void *arg);
/* Any thread: adds control bits (and the stop deadline with
 * VIGIL__CTL_STOP). VIGIL_OK, or VIGIL_ESTATE / VIGIL_ECLOSED when no
 * thread will read them. */
int vigil__mailbox_control(vigil__mailbox *mb, unsigned ctl,
                           uint32_t deadline_ms);
/* Worker thread: takes every queued message (FIFO list) and the pending
 * control bits. */
vigil__msg *vigil__mailbox_take(vigil__mailbox *mb, unsigned *ctl,
                                uint32_t *deadline_ms);
/* Worker thread: refuses posts from now on, stops the watcher, and
 * returns the messages still queued. */
vigil__msg *vigil__mailbox_close(vigil__mailbox *mb);
/* Runs and frees each message of a list in order. */
void vigil__mailbox_run(vigil__msg *list, vigil_worker *w);

/* ---- group_stats.c ---- */

/* One worker's counters as other threads read them: a sequence lock
 * whose every access is atomic, so readers never block the worker and a
 * reader sees one consistent version. */
typedef struct vigil__stats_cell {
  uint32_t seq;   /* odd while the worker writes */
  vigil_stats v;
} vigil__stats_cell;

/* What a worker's metrics hold beyond vigil_stats, as other threads read
 * them (vigil_group_metrics_write): only uint64_t counters. */
typedef struct vigil__metrics_pub {
  vigil__histogram takeover_latency[VIGIL_SCOPE__COUNT];
  vigil__histogram dead_overshoot;
  uint64_t directory_up;  /* vigil__cluster_up() + 1: 0 none, 1 down, 2 up */
} vigil__metrics_pub;

typedef struct vigil__metrics_cell {
  uint32_t seq;
  vigil__metrics_pub v;
} vigil__metrics_cell;

/* Worker thread: publishes s if it differs from *last (then *last = s). */
void vigil__stats_publish(vigil__stats_cell *cell, const vigil_stats *s,
                          vigil_stats *last);
/* Any thread: a consistent copy of the cell. */
void vigil__stats_read(const vigil__stats_cell *cell, vigil_stats *out);
/* The same for the metrics cell (the worker publishes when its metrics'
 * generation moved). */
void vigil__metrics_publish(vigil__metrics_cell *cell,
                            const vigil__metrics_pub *m);
void vigil__metrics_read(const vigil__metrics_cell *cell,
                         vigil__metrics_pub *out);

/* ---- group_census.c ---- */

typedef struct vigil__group_port_ref {
  uint16_t port;
  uint32_t refs; /* listeners bound to it, on any worker */
} vigil__group_port_ref;

/* The hub link's port callback: a worker bound (+1) or closed (-1) a
 * listener on port. Any thread. */
void vigil__group_port(void *group, uint16_t port, int delta);

/* ---- the group ---- */

typedef enum vigil__group_state {
  VIGIL__G_NEW = 0,
  VIGIL__G_STARTING = 1,
  VIGIL__G_RUNNING = 2,
  VIGIL__G_STOPPING = 3, /* stop or free asked; workers winding down */
  VIGIL__G_FAILED = 4,   /* start failed: only free remains */
} vigil__group_state;

struct vigil_worker {
  vigil_group *group;          /* [const] */
  uint32_t index;              /* [const] */
  pthread_t thread;            /* [lock] valid once thread_created */
  int thread_created;          /* [lock] */
  int exited;                  /* [lock] the thread is done with the group
                                  but for its final unref */
  int reaped;                  /* [lock] someone joins it or it is
                                  detached: decided exactly once */
  int setup_done;              /* [lock] setup_rc is valid */
  int setup_rc;                /* [lock] */
  int set_up;                  /* [worker] setup returned VIGIL_OK */
  struct ev_loop *loop;        /* [worker] */
  vigil_hub *hub;              /* [worker] NULL before and after */
  int stopping;                /* [worker] hub shutdown asked */
  ev_timer backstop;           /* [worker] host's own shutdown ran over */
  ev_prepare publish;          /* [worker] publishes stats each turn */
  vigil_stats published;       /* [worker] last values published */
  uint64_t metrics_gen;        /* [worker] metrics generation published */
  vigil__mailbox mailbox;
  vigil__stats_cell stats;
  vigil__metrics_cell metrics;
};

struct vigil_group {
  pthread_mutex_t lock;
  pthread_cond_t cond;         /* setup_done, go, exited changes */
  vigil__group_state state;    /* [lock] */
  int refs;                    /* [lock] host + threads + callers in
                                  start/join (group_ref.c) */
  uint32_t live;               /* [lock] threads created, not exited */
  int go;                      /* [lock] 0 wait, 1 run loops, -1 abort */
  int free_requested;          /* [lock] */
  int stop_pending;            /* [lock] stop asked while STARTING */
  uint32_t stop_deadline_ms;   /* [lock] */
  uint32_t nworkers;           /* [const] */
  vigil_worker **workers;      /* [const] */
  vigil_group_options opts;    /* [const] opts.hub points at hub_opts */
  vigil_hub_options hub_opts;  /* [const] policy points at policy */
  vigil_policy policy;         /* [const] */
  struct vigil__dir *dir;      /* [const] the identity directory the
                                  workers' hubs share (its own lock) */
  vigil_cluster_options *cluster; /* [const] hub.cluster's copy; each
                                  worker's hub gets its own link to the
                                  store from it; NULL = none */
  uint64_t cluster_seed;       /* [const] one incarnation for the node */
  vigil__hub_link link;        /* [const] what every worker's hub shares */
  vigil__fdset conn_fds;       /* [atomic] every worker's conn fds */
  pthread_mutex_t ports_lock;
  vigil__group_port_ref *ports;/* [ports_lock] listener ports */
  size_t nports, cap_ports;    /* [ports_lock] */
  vigil_hub_census_report census_last; /* [ports_lock] last group census */
  uint64_t census_at_ms;       /* [ports_lock] CLOCK_MONOTONIC */
  int has_census;              /* [ports_lock] */
  pthread_mutex_t census_lock; /* one group census at a time */
  vigil__census_memory census_memory; /* [census_lock] */
};

/* ---- group_ref.c ---- */

/* A group for opts (validated by the caller) with one reference, the
 * host's; VIGIL_ENOMEM / VIGIL_ESYS. */
int vigil__group_alloc(const vigil_group_options *opts, vigil_group **out);
/* Under group->lock. */
void vigil__group_ref_locked(vigil_group *g);
/* Drops a reference; the last one frees the group. Not under the lock. */
void vigil__group_unref(vigil_group *g);
/* Joins every created thread nobody joins or detached yet, then waits
 * until no thread is live. Under group->lock (released while waiting). */
void vigil__group_reap_locked(vigil_group *g);
/* Detaches the threads that exited and that nobody will join (a free
 * from a worker). Under group->lock. */
void vigil__group_detach_exited_locked(vigil_group *g);
/* A worker thread's last acts: marks it exited, detaches itself when
 * nobody will join it, and drops its reference. */
void vigil__group_worker_exit(vigil_worker *w);
/* The worker running on the calling thread, or NULL. */
vigil_worker *vigil__group_current_worker(void);
void vigil__group_set_current_worker(vigil_worker *w);

/* ---- group_worker.c ---- */

/* Creates worker w's thread (signals blocked) and waits until its setup
 * has run. Under no lock. Returns VIGIL_OK or the setup's / the thread's
 * error. */
int vigil__worker_launch(vigil_worker *w);
/* The group's half of its hubs' link (vigil__hub_link.post_evict): queues
 * an eviction for a worker's hub. */
int vigil__worker_post_evict(void *group, int32_t worker,
                             struct vigil__evict_msg *m);

#endif
