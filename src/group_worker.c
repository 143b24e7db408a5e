/*
 * One worker of a group: a thread with its own ev_loop and hub.
 *
 *   thread start: loop, mailbox, hub (worker index stamped on its events)
 *        |
 *        v
 *      SETUP ---- setup(w, hub) on this thread; the starter waits for it
 *        |
 *        v
 *    wait for go ------------- abort (a setup failed, or the group was
 *        | run                 freed during start) ------------------+
 *        v                                                           |
 *     RUNNING ---- mailbox STOP ----> STOPPING                       |
 *        |  \                     vigil_hub_shutdown(deadline); done:|
 *        |   \                    the hub is freed, and its          |
 *        |    \                   destruction ends the loop          |
 *        |     \                          |                          |
 *        |      +-- hub freed by the host: RUNNING without a hub;    |
 *        |          a later STOP ends the loop at once               |
 *        | mailbox END (group free), or the host broke the loop      |
 *        v                                v                          |
 *      EXIT <-----------------------------+--------------------------+
 *        1. the hub is freed if it still exists (on_close per conn)
 *        2. the mailbox closes; the messages still in it run
 *        3. teardown, if setup succeeded
 *        4. the loop is destroyed; the thread drops its group reference
 *
 * Invariants: a message accepted by the mailbox runs exactly once (in a
 * wake-up callback or in step 2); teardown runs after the last conn
 * callback and the last message; once the hub is gone nothing of the
 * group refers to it (w->hub is cleared from the hub's own destruction).
 *
 * If the host shut the hub down itself (vigil_hub_shutdown returned
 * VIGIL_EEXIST to the group), the group cannot hook that shutdown's end:
 * a backstop timer frees the hub at the group's deadline unless the
 * host's done callback freed it first.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "group_internal.h"
#include "hub.h"
#include "takeover.h"

/* ---- the hub's end ---- */

/* Publishes the hub's histograms when they moved, then its counters. The
 * order matters to readers on other threads: the two cells are separate, and
 * a reader that sees a takeover counted must also see its latency observed
 * (a scrape between the two stores would otherwise show a counter ahead of
 * its histogram's _count). */
static void publish(vigil_worker *w, vigil_hub *hub) {
  if (hub->metrics.generation != w->metrics_gen) {
    w->metrics_gen = hub->metrics.generation;
    vigil__metrics_pub m;
    memcpy(m.takeover_latency, hub->metrics.takeover_latency,
           sizeof m.takeover_latency);
    m.dead_overshoot = hub->metrics.dead_overshoot;
    m.directory_up = (uint64_t)(vigil__cluster_up(hub) + 1);
    vigil__metrics_publish(&w->metrics, &m);
  }
  vigil_stats s;
  vigil__hub_stats_get(hub, &s);
  vigil__stats_publish(&w->stats, &s, &w->published);
}

/* From the end of the hub's destruction: its counters are final. */
static void hub_destroyed(vigil_hub *hub) {
  vigil_worker *w = hub->worker;
  publish(w, hub);
  w->hub = NULL;
  ev_timer_stop(w->loop, &w->backstop);
  if (w->stopping) ev_break(w->loop, EVBREAK_ALL);
}

static void hub_shutdown_done(vigil_hub *hub, void *user_data) {
  (void)user_data;
  vigil_hub_free(hub); /* deferred until the hub's callback returns */
}

static void backstop_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  vigil_worker *w = vigil__container_of(t, vigil_worker, backstop);
  (void)revents;
  if (w->hub)
    vigil_hub_free(w->hub); /* ends the loop from hub_destroyed */
  else
    ev_break(loop, EVBREAK_ALL);
}

static void begin_stop(vigil_worker *w, uint32_t deadline_ms) {
  if (w->stopping) return;
  w->stopping = 1;
  if (!w->hub) {
    ev_break(w->loop, EVBREAK_ALL);
    return;
  }
  int rc = vigil_hub_shutdown(w->hub, deadline_ms, hub_shutdown_done, w);
  if (rc == VIGIL_EEXIST) {
    ev_timer_set(&w->backstop, deadline_ms / 1000.0, 0.0);
    ev_timer_start(w->loop, &w->backstop);
  } else if (rc != VIGIL_OK) {
    ev_break(w->loop, EVBREAK_ALL); /* being freed: the exit frees it */
  }
}

/* ---- loop watchers ---- */

static void mailbox_cb(struct ev_loop *loop, ev_async *a, int revents) {
  vigil_worker *w = vigil__container_of(a, vigil_worker, mailbox.wake);
  unsigned ctl;
  uint32_t deadline_ms;
  (void)revents;
  vigil__msg *list = vigil__mailbox_take(&w->mailbox, &ctl, &deadline_ms);
  /* Messages posted before a stop run before it begins. */
  vigil__mailbox_run(list, w);
  if (ctl & VIGIL__CTL_END)
    ev_break(loop, EVBREAK_ALL);
  else if (ctl & VIGIL__CTL_STOP)
    begin_stop(w, deadline_ms);
}

static void publish_cb(struct ev_loop *loop, ev_prepare *p, int revents) {
  vigil_worker *w = vigil__container_of(p, vigil_worker, publish);
  (void)loop;
  (void)revents;
  if (w->hub) publish(w, w->hub);
}

/* ---- evictions from other workers ---- */

/* A message accepted by the mailbox runs exactly once, also after the
 * hub is gone (then it only drops its holder reference). */
static void evict_run(vigil_worker *w, void *arg) {
  vigil__takeover_deliver_posted(w->hub, arg);
}

int vigil__worker_post_evict(void *group, int32_t worker,
                             struct vigil__evict_msg *m) {
  vigil_group *g = group;
  if (worker < 0 || (uint32_t)worker >= g->nworkers) return VIGIL_EINVAL;
  return vigil__mailbox_post(&g->workers[worker]->mailbox, evict_run, m);
}

/* ---- the thread ---- */

static int worker_open(vigil_worker *w) {
  vigil_group *g = w->group;
  w->loop = ev_loop_new(EVFLAG_AUTO);
  if (!w->loop) return VIGIL_ESYS;
  vigil__mailbox_open(&w->mailbox, w->loop, mailbox_cb);
  ev_init(&w->backstop, backstop_cb);
  ev_prepare_init(&w->publish, publish_cb);
  /* Last among the turn's prepare watchers (after the hub delivers its
   * on_close calls), and it must not keep the loop alive. */
  ev_set_priority(&w->publish, EV_MINPRI);
  ev_prepare_start(w->loop, &w->publish);
  ev_unref(w->loop);
  int rc = vigil_hub_new(w->loop, &g->hub_opts, &w->hub);
  if (rc != VIGIL_OK) return rc;
  vigil__hub_set_worker(w->hub, w, (int32_t)w->index, &g->link,
                        hub_destroyed);
  return g->cluster ? vigil__cluster_attach(w->hub, g->cluster, w->index,
                                           g->cluster_seed)
                    : VIGIL_OK;
}

static void worker_close(vigil_worker *w) {
  vigil_group *g = w->group;
  if (w->hub) vigil_hub_free(w->hub); /* no vigil code on the stack */
  vigil__mailbox_run(vigil__mailbox_close(&w->mailbox), w);
  if (w->set_up && g->opts.teardown) g->opts.teardown(w, g->opts.user_data);
  if (!w->loop) return;
  ev_timer_stop(w->loop, &w->backstop);
  ev_ref(w->loop);
  ev_prepare_stop(w->loop, &w->publish);
  ev_loop_destroy(w->loop);
  w->loop = NULL;
}

/* Reports the setup's result and waits for the starter's verdict:
 * 1 = run the loop, -1 = abort. */
static int report_and_wait(vigil_worker *w, int rc) {
  vigil_group *g = w->group;
  pthread_mutex_lock(&g->lock);
  w->setup_rc = rc;
  w->setup_done = 1;
  pthread_cond_broadcast(&g->cond);
  while (g->go == 0) pthread_cond_wait(&g->cond, &g->lock);
  int go = g->go;
  pthread_mutex_unlock(&g->lock);
  return go;
}

static void *worker_main(void *arg) {
  vigil_worker *w = arg;
  vigil_group *g = w->group;
  vigil__group_set_current_worker(w);
  int rc = worker_open(w);
  if (rc == VIGIL_OK) {
    rc = g->opts.setup(w, w->hub, g->opts.user_data);
    if (rc > 0) rc = VIGIL_EINVAL;
    w->set_up = rc == VIGIL_OK;
  }
  if (report_and_wait(w, rc) > 0 && rc == VIGIL_OK) ev_run(w->loop, 0);
  worker_close(w);
  vigil__group_worker_exit(w);
  return NULL;
}

static int thread_error(int err) {
  if (err == EAGAIN) return VIGIL_EAGAIN;
  if (err == ENOMEM) return VIGIL_ENOMEM;
  errno = err;
  return VIGIL_ESYS;
}

int vigil__worker_launch(vigil_worker *w) {
  vigil_group *g = w->group;
  pthread_mutex_lock(&g->lock);
  vigil__group_ref_locked(g); /* the thread's, dropped at its exit */
  g->live++;
  pthread_mutex_unlock(&g->lock);
  /* The thread inherits this mask: signals go to the host's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int err = pthread_create(&t, NULL, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_lock(&g->lock);
  if (err != 0) {
    g->live--;
    g->refs--; /* the caller holds one too: never the last */
    pthread_mutex_unlock(&g->lock);
    return thread_error(err);
  }
  w->thread = t;
  w->thread_created = 1;
  char name[16];
  snprintf(name, sizeof name, "vigil-w%u", (unsigned)w->index);
  pthread_setname_np(t, name);
  while (!w->setup_done) pthread_cond_wait(&g->cond, &g->lock);
  int rc = w->setup_rc;
  pthread_mutex_unlock(&g->lock);
  return rc;
}
