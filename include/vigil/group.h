/*
 * vigil groups: N workers, each a thread with its own ev_loop and hub, for
 * servers that run one loop per core (nginx, HAProxy and Envoy do: a
 * connection lives on one worker for its whole life, and work for another
 * worker goes to that worker's mailbox).
 *
 * Each worker's setup callback runs on the worker's thread and creates
 * that worker's listeners and state. With one SO_REUSEPORT listener per
 * worker on the same port, the kernel spreads new connections over the
 * workers (it hashes each connection's addresses and ports). The hub API
 * does not change: every hub is still single-threaded, and host callbacks
 * run on the worker that owns the conn.
 *
 * Typical use:
 *
 *   static int setup(vigil_worker *w, vigil_hub *hub, void *ud) {
 *     vigil_listen_options lo;
 *     vigil_listen_options_init(&lo);
 *     lo.port = 7000;
 *     lo.reuseport = 1;             // every worker its own listener
 *     lo.adopt.callbacks = &callbacks;
 *     return vigil_listen(hub, &lo, NULL);
 *   }
 *
 *   vigil_group_options go;
 *   vigil_group_options_init(&go);
 *   go.workers = 4;
 *   go.hub = &hub_options;          // template, copied (policy too)
 *   go.setup = setup;
 *   vigil_group *g;
 *   vigil_group_new(&go, &g);
 *   vigil_group_start(g);           // setups ran; the workers run
 *   ... on SIGTERM (from any thread): vigil_group_stop(g, 5000) ...
 *   vigil_group_join(g);            // waits for every worker to end
 *   vigil_group_free(g);
 *
 * Thread rules. These calls are safe from any thread, concurrently:
 * vigil_group_start, _stop, _join (not from a worker of the group),
 * _free, _stats, _census, _metrics_write, _post, _workers, _worker,
 * vigil_worker_index and vigil_worker_group. Nothing else is: vigil_worker_hub,
 * vigil_worker_loop, and every hub, conn, listener and client function
 * must be called on the thread of the worker that owns the object (from
 * its setup, teardown, callbacks and posted functions). The hub options'
 * callbacks (on_event, clock, on_takeover) run on every worker's thread,
 * concurrently: a shared event sink must be thread-safe. Worker threads
 * start with every signal blocked, so signals reach the host's own
 * threads; handle them there and call vigil_group_stop().
 *
 * A worker's life (its diagram is at the top of src/group_worker.c):
 *  1. its thread creates a loop and a hub from the template, then runs
 *     setup. Setups run one worker at a time in index order, so worker 0
 *     can bind an ephemeral port and later workers reuse it. If a setup
 *     fails, vigil_group_start() stops and joins every worker it started
 *     and returns the error; no loop ran, so no conn callback ran.
 *  2. once every setup succeeded, every worker runs its loop.
 *  3. vigil_group_stop(): each hub gets vigil_hub_shutdown() with the
 *     deadline; a worker's loop ends when its hub is done. vigil_group_free()
 *     on a running group ends each loop at once instead (conns close as
 *     in vigil_hub_free). A host that breaks a worker's loop itself
 *     (ev_break) ends that worker the same way.
 *  4. the worker's exit: its hub is freed (on_close for each conn still
 *     open), its mailbox is closed and the messages still in it run, then
 *     teardown runs (if setup succeeded) and the loop is destroyed.
 *
 * Mailboxes. vigil_group_post() runs a function on a worker's thread. A
 * message the call accepted (VIGIL_OK) runs exactly once, even when the
 * worker stops meanwhile: messages still queued at the worker's exit run
 * then, after its hub is gone (vigil_worker_hub() returns NULL). Posts
 * from one thread to one worker run in the order they were posted. Once a
 * worker has exited, posts are refused with VIGIL_ECLOSED and the caller
 * keeps its argument. Each message costs one small allocation until it
 * runs; the connection path takes no lock.
 *
 * Freeing from a callback. vigil_group_free() may be called from any
 * callback on any worker (a thread cannot wait for itself): it ends every
 * worker, and the last worker thread to exit releases the memory. As with
 * every free, the handle is gone for every thread from that call on, so
 * this suits hosts that never join; a host whose thread joins the group
 * ends it from callbacks with vigil_group_stop() and frees it after the
 * join.
 *
 * Events. A worker's hub stamps its index into every event
 * (vigil_event.worker; -1 outside a group) and vigil_event_format()
 * prints it as worker=N.
 *
 * Identities. The workers' hubs share one identity directory, so
 * vigil_conn_identify() on any worker sees the holders of every worker:
 * the takeover policy, flapping detection and bans apply group-wide, and
 * a proven identity (vigil/tls.h) stays proven on every worker. A holder
 * displaced on another worker is closed by its own worker, through that
 * worker's mailbox, only while it still holds the identity at the epoch
 * the claim displaced (a late eviction never closes a successor); the
 * "takeover" event, on the claimant's worker, says scope=worker and
 * other_worker, and the displaced conn's worker counts the takeover. Under
 * VIGIL_TAKEOVER_ASK, on_takeover gets old_conn NULL for a holder on
 * another worker (see vigil_takeover_cb). vigil_hub_find_identity() names
 * only conns of the hub it is asked on.
 */
#ifndef VIGIL_GROUP_H
#define VIGIL_GROUP_H

#ifndef VIGIL_H
#include "vigil.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vigil_group vigil_group;
typedef struct vigil_worker vigil_worker;

/* Upper bound of vigil_group_options.workers. */
#define VIGIL_GROUP_MAX_WORKERS 256u

/* Runs on the worker's thread before its loop starts; creates the
 * worker's listeners, clients and state on `hub`. Returns VIGIL_OK, or a
 * negative vigil_err that vigil_group_start() then returns (any other
 * value fails the start with VIGIL_EINVAL). A failing setup cleans up
 * what it made itself, except the hub's listeners and conns, which go
 * with the hub. */
typedef int (*vigil_worker_setup_cb)(vigil_worker *w, vigil_hub *hub,
                                     void *user_data);
/* Runs on the worker's thread at its exit, for workers whose setup
 * succeeded: after the hub is gone (every on_close has run) and the
 * mailbox is empty, before the loop is destroyed. Stop your own watchers
 * on vigil_worker_loop(w) and free the worker's state here. */
typedef void (*vigil_worker_teardown_cb)(vigil_worker *w, void *user_data);
/* A posted function: runs on worker w's thread with the post's arg. */
typedef void (*vigil_worker_fn)(vigil_worker *w, void *arg);

typedef struct vigil_group_options {
  uint32_t workers;                 /* 1..VIGIL_GROUP_MAX_WORKERS; 1 */
  const vigil_hub_options *hub;     /* template of every worker's hub,
                                       copied with its policy; NULL =
                                       vigil_hub_options_init() */
  vigil_worker_setup_cb setup;      /* required */
  vigil_worker_teardown_cb teardown;/* optional */
  void *user_data;                  /* passed to setup and teardown */
} vigil_group_options;

VIGIL_EXPORT void vigil_group_options_init(vigil_group_options *o);

/* Checks the options. Returns VIGIL_OK, or VIGIL_EINVAL and writes a
 * message naming the first bad field and its allowed range, e.g.
 * "workers = 0 is out of range: allowed 1..256". msg may be NULL. */
VIGIL_EXPORT int vigil_group_options_validate(const vigil_group_options *o,
                                              char *msg, size_t msglen);

/* Creates a group (no thread runs yet). VIGIL_EINVAL for invalid options
 * (see vigil_group_options_validate), VIGIL_ENOMEM, VIGIL_ESYS. */
VIGIL_EXPORT int vigil_group_new(const vigil_group_options *o,
                                 vigil_group **out);

/*
 * Starts the workers: each one's thread, loop and hub, then its setup, one
 * worker at a time in index order; once every setup succeeded, all loops
 * run and this returns VIGIL_OK. On failure every worker started is ended
 * and joined (teardown runs for those whose setup succeeded) before this
 * returns: the setup's error, VIGIL_EAGAIN or VIGIL_ESYS (no thread),
 * VIGIL_ENOMEM, or an error of vigil_hub_new(). A group whose start failed
 * can only be freed. VIGIL_ESTATE: already started, or called from one of
 * the group's workers. VIGIL_ECLOSED: a setup freed the group; the handle
 * is gone.
 */
VIGIL_EXPORT int vigil_group_start(vigil_group *g);

/* Graceful stop, from any thread: every worker's hub gets
 * vigil_hub_shutdown(deadline_ms) (listeners stop, conns close
 * gracefully with reason shutdown, what is left at the deadline is
 * aborted), and each worker's loop ends when its hub is done. Returns at
 * once; vigil_group_join() waits. A stop during vigil_group_start() takes
 * effect as the workers begin. VIGIL_EINVAL (deadline_ms over
 * VIGIL_MAX_DURATION_MS), VIGIL_ESTATE (not started, or start failed),
 * VIGIL_EEXIST (already stopping). */
VIGIL_EXPORT int vigil_group_stop(vigil_group *g, uint32_t deadline_ms);

/* Waits until every worker has exited (after a stop, or loops the host
 * broke) and releases their threads. Returns VIGIL_OK at once when no
 * worker runs. VIGIL_ESTATE from a worker of the group (it would wait for
 * itself). The group must not be freed while a thread waits here or may
 * still call this; VIGIL_ECLOSED reports a free that broke the rule
 * while this call was already waiting. */
VIGIL_EXPORT int vigil_group_join(vigil_group *g);

/* The last call on a group. From outside the group's workers: ends every
 * worker at once if they run (conns close as in vigil_hub_free), waits
 * for them and frees everything. From a worker (any callback, setup,
 * teardown or posted function): ends every worker and returns; the
 * memory goes with the last worker thread. NULL is ignored. */
VIGIL_EXPORT void vigil_group_free(vigil_group *g);

/* Runs fn(worker, arg) on worker `worker`'s thread (see Mailboxes above).
 * VIGIL_OK: fn will run exactly once. VIGIL_EINVAL (no such worker, fn
 * NULL), VIGIL_ESTATE (the group was not started), VIGIL_ECLOSED (that
 * worker has exited), VIGIL_ENOMEM. On error fn never runs. */
VIGIL_EXPORT int vigil_group_post(vigil_group *g, uint32_t worker,
                                  vigil_worker_fn fn, void *arg);

/*
 * Statistics of the group, from any thread, without waiting for any
 * worker's loop: *total gets the sum over the workers and, when
 * per_worker is not NULL, per_worker[i] gets worker i's values for the
 * first min(cap, workers) workers. Each worker's values are consistent
 * with each other (open = opened - the closes), as of the end of its last
 * loop iteration; the calling worker's own values are exact. After a
 * worker's hub is gone its final values stay. Returns the number of
 * workers, or VIGIL_EINVAL.
 */
VIGIL_EXPORT int vigil_group_stats(vigil_group *g, vigil_stats *total,
                                   vigil_stats *per_worker, uint32_t cap);

/*
 * A census of the group's ports, from any thread (it waits for no worker's
 * loop): one sock_diag dump of the local ports of every worker's listeners
 * and conns, as vigil_hub_census() takes of one hub's, in which every
 * worker's conn counts as vigil's (a worker's own vigil_hub_census() does
 * the same). conns is the number of live conns of all workers; the other
 * fields as in vigil_hub_census_report, for the whole group (counts, not
 * sums over workers: the workers share their ports). Runs on the calling
 * thread, in its network namespace, with the cost of a hub census (one
 * dump, two scans of /proc/self/fd, one getsockname per conn); calls are
 * serialized. The report is kept for vigil_group_metrics_write(). Returns
 * VIGIL_OK, VIGIL_EINVAL, or an error of vigil_hub_census().
 */
VIGIL_EXPORT int vigil_group_census(vigil_group *g,
                                    vigil_hub_census_report *out);

/*
 * The group's metrics in the Prometheus text format (vigil/metrics.h),
 * from any thread, with vigil_metrics_write()'s snprintf semantics: every
 * family once, one series per worker with a worker="N" label first, from
 * the values each worker published at the end of its last loop iteration
 * (the calling worker's own are exact). The census families describe the
 * ports the workers share: they show the group's last
 * vigil_group_census() (one series, no worker label), and are left out
 * until one ran. Returns the length of the whole text, VIGIL_EINVAL (NULL
 * group, or NULL buf with len > 0) or VIGIL_ENOMEM (it allocates one
 * snapshot per worker while it renders).
 */
VIGIL_EXPORT int vigil_group_metrics_write(vigil_group *g, char *buf,
                                           size_t len);

/* Number of workers. */
VIGIL_EXPORT uint32_t vigil_group_workers(vigil_group *g);
/* Worker `index`, or NULL when out of range. The handle lives as long as
 * the group. */
VIGIL_EXPORT vigil_worker *vigil_group_worker(vigil_group *g,
                                              uint32_t index);

VIGIL_EXPORT vigil_group *vigil_worker_group(vigil_worker *w);
VIGIL_EXPORT uint32_t vigil_worker_index(vigil_worker *w);
/* The worker's hub, or NULL before it exists and once it is freed. On
 * the worker's thread only. */
VIGIL_EXPORT vigil_hub *vigil_worker_hub(vigil_worker *w);
/* The worker's loop, from its thread start until teardown has returned.
 * On the worker's thread only. */
VIGIL_EXPORT struct ev_loop *vigil_worker_loop(vigil_worker *w);
/* The worker a hub belongs to, or NULL outside a group. */
VIGIL_EXPORT vigil_worker *vigil_hub_worker(vigil_hub *hub);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_GROUP_H */
