/*
 * vigil groups: the public API and the group's state machine.
 *
 *            start: setups, one worker at a time
 *     NEW ------------------------------------> STARTING
 *                                                |     |
 *                        every setup succeeded   |     | a setup or a
 *                        (a stop asked meanwhile |     | thread failed,
 *                        goes out now)           v     v or a setup freed
 *                                          RUNNING    FAILED   the group
 *                                             |    (workers ended and
 *                     stop(deadline) or free  |     joined; only free)
 *                                             v
 *                                          STOPPING --- join: every
 *                                                       worker exited
 *
 * Any state --free--> the host's reference is gone; memory goes with the
 * last reference (group_ref.c).
 *
 * Invariants: setups run one at a time, in index order, each on its own
 * worker's thread, and no loop runs before every setup succeeded; the
 * group lock is never held while host code runs (setups, teardowns,
 * messages and hub callbacks all run on worker threads, which take the
 * lock only around bookkeeping).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "error.h"
#include "group_internal.h"
#include "hub.h"

void vigil_group_options_init(vigil_group_options *o) {
  memset(o, 0, sizeof *o);
  o->workers = 1;
}

int vigil_group_options_validate(const vigil_group_options *o, char *msg,
                                 size_t msglen) {
  if (msg && msglen > 0) msg[0] = '\0';
  if (!o) return vigil__textf(msg, msglen, VIGIL_EINVAL, "options are NULL");
  if (o->workers < 1 || o->workers > VIGIL_GROUP_MAX_WORKERS)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "workers = %u is out of range: allowed 1..%u",
        (unsigned)o->workers, VIGIL_GROUP_MAX_WORKERS);
  if (!o->setup)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "setup is NULL: a setup callback is required");
  if (o->hub) {
    if (o->hub->tick_ms < 1 || o->hub->tick_ms > 1000)
      return vigil__textf(msg, msglen, VIGIL_EINVAL,
                          "hub.tick_ms = %u is out of range: allowed 1..1000",
                          (unsigned)o->hub->tick_ms);
    char why[200];
    if (o->hub->policy &&
        vigil_policy_validate(o->hub->policy, why, sizeof why) != VIGIL_OK)
      return vigil__textf(msg, msglen, VIGIL_EINVAL, "hub.policy: %s", why);
    int rc = o->hub->cluster
                 ? vigil__cluster_check(o->hub->cluster, why, sizeof why)
                 : VIGIL_OK;
    if (rc != VIGIL_OK) {
      vigil__textf(msg, msglen, VIGIL_EINVAL, "hub.cluster: %s", why);
      return rc; /* VIGIL_ENOTSUP in a build without hiredis */
    }
  }
  return VIGIL_OK;
}

int vigil_group_new(const vigil_group_options *o, vigil_group **out) {
  if (!out) return VIGIL_EINVAL;
  *out = NULL;
  int rc = vigil_group_options_validate(o, NULL, 0);
  if (rc != VIGIL_OK) return rc;
  return vigil__group_alloc(o, out);
}

/* 1 when the calling thread is one of g's workers. */
static int on_own_worker(const vigil_group *g) {
  vigil_worker *self = vigil__group_current_worker();
  return self && self->group == g;
}

/* Sends ctl to every worker whose mailbox is open. Under g->lock. */
static void control_all_locked(vigil_group *g, unsigned ctl,
                               uint32_t deadline_ms) {
  for (uint32_t i = 0; i < g->nworkers; i++)
    vigil__mailbox_control(&g->workers[i]->mailbox, ctl, deadline_ms);
}

/* Ends a start that cannot go on: every started worker exits (teardown
 * for those set up) and is joined. Under g->lock. */
static void abort_start_locked(vigil_group *g) {
  g->go = -1;
  g->state = VIGIL__G_FAILED;
  pthread_cond_broadcast(&g->cond);
  vigil__group_reap_locked(g);
}

int vigil_group_start(vigil_group *g) {
  if (!g) return VIGIL_EINVAL;
  if (on_own_worker(g)) return VIGIL_ESTATE;
  pthread_mutex_lock(&g->lock);
  if (g->state != VIGIL__G_NEW || g->free_requested) {
    pthread_mutex_unlock(&g->lock);
    return VIGIL_ESTATE;
  }
  g->state = VIGIL__G_STARTING;
  vigil__group_ref_locked(g); /* a setup may free the group */
  pthread_mutex_unlock(&g->lock);

  int rc = VIGIL_OK;
  for (uint32_t i = 0; i < g->nworkers && rc == VIGIL_OK; i++) {
    rc = vigil__worker_launch(g->workers[i]);
    pthread_mutex_lock(&g->lock);
    if (g->free_requested) rc = VIGIL_ECLOSED;
    pthread_mutex_unlock(&g->lock);
  }

  pthread_mutex_lock(&g->lock);
  if (rc == VIGIL_OK) {
    g->go = 1;
    g->state = VIGIL__G_RUNNING;
    pthread_cond_broadcast(&g->cond);
    if (g->stop_pending) {
      g->state = VIGIL__G_STOPPING;
      control_all_locked(g, VIGIL__CTL_STOP, g->stop_deadline_ms);
    }
  } else {
    abort_start_locked(g);
  }
  pthread_mutex_unlock(&g->lock);
  vigil__group_unref(g);
  return rc;
}

int vigil_group_stop(vigil_group *g, uint32_t deadline_ms) {
  if (!g || deadline_ms > VIGIL_MAX_DURATION_MS) return VIGIL_EINVAL;
  int rc = VIGIL_OK;
  pthread_mutex_lock(&g->lock);
  switch (g->state) {
  case VIGIL__G_NEW:
  case VIGIL__G_FAILED:
    rc = VIGIL_ESTATE;
    break;
  case VIGIL__G_STARTING:
    if (g->stop_pending) {
      rc = VIGIL_EEXIST;
    } else {
      g->stop_pending = 1;
      g->stop_deadline_ms = deadline_ms;
    }
    break;
  case VIGIL__G_RUNNING:
    g->state = VIGIL__G_STOPPING;
    control_all_locked(g, VIGIL__CTL_STOP, deadline_ms);
    break;
  case VIGIL__G_STOPPING:
    rc = VIGIL_EEXIST;
    break;
  }
  pthread_mutex_unlock(&g->lock);
  return rc;
}

int vigil_group_join(vigil_group *g) {
  if (!g) return VIGIL_EINVAL;
  if (on_own_worker(g)) return VIGIL_ESTATE;
  pthread_mutex_lock(&g->lock);
  vigil__group_ref_locked(g); /* a callback may free the group meanwhile */
  vigil__group_reap_locked(g);
  if (g->state == VIGIL__G_RUNNING) g->state = VIGIL__G_STOPPING;
  int freed = g->free_requested;
  pthread_mutex_unlock(&g->lock);
  vigil__group_unref(g);
  return freed ? VIGIL_ECLOSED : VIGIL_OK;
}

void vigil_group_free(vigil_group *g) {
  if (!g) return;
  int own = on_own_worker(g);
  pthread_mutex_lock(&g->lock);
  if (g->free_requested) { /* already freed from a callback */
    pthread_mutex_unlock(&g->lock);
    return;
  }
  g->free_requested = 1;
  control_all_locked(g, VIGIL__CTL_END, 0);
  if (g->state == VIGIL__G_RUNNING) g->state = VIGIL__G_STOPPING;
  if (own)
    vigil__group_detach_exited_locked(g); /* nobody may join them now */
  else
    vigil__group_reap_locked(g);
  pthread_mutex_unlock(&g->lock);
  vigil__group_unref(g); /* the host's */
}

int vigil_group_post(vigil_group *g, uint32_t worker, vigil_worker_fn fn,
                     void *arg) {
  if (!g || !fn || worker >= g->nworkers) return VIGIL_EINVAL;
  return vigil__mailbox_post(&g->workers[worker]->mailbox, fn, arg);
}

uint32_t vigil_group_workers(vigil_group *g) { return g ? g->nworkers : 0; }

vigil_worker *vigil_group_worker(vigil_group *g, uint32_t index) {
  return g && index < g->nworkers ? g->workers[index] : NULL;
}

vigil_group *vigil_worker_group(vigil_worker *w) {
  return w ? w->group : NULL;
}

uint32_t vigil_worker_index(vigil_worker *w) { return w ? w->index : 0; }

vigil_hub *vigil_worker_hub(vigil_worker *w) { return w ? w->hub : NULL; }

struct ev_loop *vigil_worker_loop(vigil_worker *w) {
  return w ? w->loop : NULL;
}

vigil_worker *vigil_hub_worker(vigil_hub *hub) {
  return hub ? hub->worker : NULL;
}
