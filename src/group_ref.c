/*
 * The group's memory and its threads' fates.
 *
 * References: the host holds one from vigil_group_new() until
 * vigil_group_free(); each worker thread holds one until its very last
 * act; a caller blocked in vigil_group_start() or vigil_group_join()
 * holds one while it waits. Whoever drops the last frees the group. So a
 * group freed from a worker's callback stays in memory until the last
 * worker thread is done with it, and a host thread still waiting in
 * vigil_group_join() never wakes up on freed memory.
 *
 * Threads: every thread created must be joined or detached, exactly
 * once. Under the group lock, `reaped` records that the decision is
 * taken:
 *  - a joiner (vigil_group_join, a failed start, a free from outside the
 *    group) claims each thread nobody claimed and joins it;
 *  - after a free from a worker nobody may ever join: a thread that exits
 *    unclaimed detaches itself, and the free detaches those that already
 *    exited unclaimed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "directory.h"
#include "group_internal.h"

static __thread vigil_worker *current_worker;

vigil_worker *vigil__group_current_worker(void) { return current_worker; }

void vigil__group_set_current_worker(vigil_worker *w) { current_worker = w; }

static void destroy(vigil_group *g) {
  for (uint32_t i = 0; i < g->nworkers; i++) {
    if (!g->workers[i]) continue;
    vigil__mailbox_destroy(&g->workers[i]->mailbox);
    free(g->workers[i]);
  }
  free(g->workers);
  if (g->dir) g->dir->ops->destroy(g->dir);
  free(g->cluster);
  vigil__fdset_destroy(&g->conn_fds);
  free(g->ports);
  vigil__census_memory_free(&g->census_memory);
  pthread_mutex_destroy(&g->census_lock);
  pthread_mutex_destroy(&g->ports_lock);
  pthread_cond_destroy(&g->cond);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

static int alloc_workers(vigil_group *g) {
  g->workers = calloc(g->nworkers, sizeof *g->workers);
  if (!g->workers) return VIGIL_ENOMEM;
  for (uint32_t i = 0; i < g->nworkers; i++) {
    /* One allocation each: a worker's hot fields (its mailbox lock, its
     * stats cell) do not share cache lines with its neighbour's. */
    vigil_worker *w = calloc(1, sizeof *w);
    if (!w) return VIGIL_ENOMEM;
    w->group = g;
    w->index = i;
    if (vigil__mailbox_init(&w->mailbox) != VIGIL_OK) {
      free(w);
      return VIGIL_ESYS;
    }
    g->workers[i] = w;
  }
  return VIGIL_OK;
}

int vigil__group_alloc(const vigil_group_options *opts, vigil_group **out) {
  vigil_group *g = calloc(1, sizeof *g);
  if (!g) return VIGIL_ENOMEM;
  if (pthread_mutex_init(&g->lock, NULL) != 0) {
    free(g);
    return VIGIL_ESYS;
  }
  if (pthread_cond_init(&g->cond, NULL) != 0) {
    pthread_mutex_destroy(&g->lock);
    free(g);
    return VIGIL_ESYS;
  }
  /* Default mutexes: their init cannot fail on Linux. */
  pthread_mutex_init(&g->ports_lock, NULL);
  pthread_mutex_init(&g->census_lock, NULL);
  g->refs = 1;
  g->state = VIGIL__G_NEW;
  g->opts = *opts;
  if (opts->hub)
    g->hub_opts = *opts->hub;
  else
    vigil_hub_options_init(&g->hub_opts);
  if (g->hub_opts.policy) {
    g->policy = *g->hub_opts.policy;
    g->hub_opts.policy = &g->policy;
  }
  g->opts.hub = &g->hub_opts;
  g->nworkers = opts->workers;
  g->dir = vigil__dir_local_new(1);
  if (g->hub_opts.cluster) {
    g->cluster = vigil__cluster_options_copy(g->hub_opts.cluster);
    g->cluster_seed = vigil__cluster_seed();
    g->hub_opts.cluster = NULL; /* each worker attaches its own link */
    vigil__dir *wrapped =
        g->dir && g->cluster ? vigil__dir_cluster_new(g->dir) : NULL;
    if (!wrapped && g->dir) g->dir->ops->destroy(g->dir);
    g->dir = wrapped;
  }
  g->link.dir = g->dir;
  g->link.conn_fds = &g->conn_fds;
  g->link.group = g;
  g->link.post_evict = vigil__worker_post_evict;
  g->link.port = vigil__group_port;
  int rc = g->dir && vigil__fdset_init(&g->conn_fds) == VIGIL_OK
               ? alloc_workers(g)
               : VIGIL_ENOMEM;
  if (rc != VIGIL_OK) {
    destroy(g);
    return rc;
  }
  *out = g;
  return VIGIL_OK;
}

void vigil__group_ref_locked(vigil_group *g) { g->refs++; }

void vigil__group_unref(vigil_group *g) {
  pthread_mutex_lock(&g->lock);
  int last = --g->refs == 0;
  pthread_mutex_unlock(&g->lock);
  /* POSIX lets the last user destroy a mutex right after unlocking it. */
  if (last) destroy(g);
}

static vigil_worker *unclaimed(vigil_group *g) {
  for (uint32_t i = 0; i < g->nworkers; i++) {
    vigil_worker *w = g->workers[i];
    if (w->thread_created && !w->reaped) return w;
  }
  return NULL;
}

void vigil__group_reap_locked(vigil_group *g) {
  vigil_worker *w;
  while ((w = unclaimed(g)) != NULL) {
    w->reaped = 1;
    pthread_t t = w->thread;
    pthread_mutex_unlock(&g->lock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&g->lock);
  }
  /* Threads another joiner claimed, or that detached themselves. */
  while (g->live > 0) pthread_cond_wait(&g->cond, &g->lock);
}

void vigil__group_detach_exited_locked(vigil_group *g) {
  for (uint32_t i = 0; i < g->nworkers; i++) {
    vigil_worker *w = g->workers[i];
    if (w->thread_created && w->exited && !w->reaped) {
      w->reaped = 1;
      pthread_detach(w->thread);
    }
  }
}

void vigil__group_worker_exit(vigil_worker *w) {
  vigil_group *g = w->group;
  int detach = 0;
  pthread_mutex_lock(&g->lock);
  w->exited = 1;
  g->live--;
  if (g->free_requested && !w->reaped) {
    w->reaped = 1;
    detach = 1;
  }
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
  current_worker = NULL;
  if (detach) pthread_detach(pthread_self());
  vigil__group_unref(g);
}
