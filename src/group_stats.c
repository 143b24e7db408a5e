/*
 * Group statistics: each worker publishes its hub's counters (and the
 * histograms of its metrics) for other threads to read, so no reader ever waits for a worker's loop and no
 * counter on the connection path needs an atomic operation.
 *
 * A worker publishes from an ev_prepare watcher, once per loop iteration
 * just before the loop blocks (and once more when its hub is destroyed),
 * so the published values are those at the end of its last iteration:
 * exact whenever the worker is idle. A reader on the worker's own thread
 * reads the hub directly instead (vigil_group_stats).
 *
 * The cell is a sequence lock in which every access is atomic (Boehm,
 * "Can seqlocks get along with programming language memory models?",
 * 2012): the writer makes seq odd, stores each value with release
 * order, then makes seq even with release order; a reader loads seq with
 * acquire order, each value with acquire order, then seq again, and
 * retries when the two differ or are odd. A value from a newer write
 * forces the reader's second load to see a newer seq, so a reader that
 * passes has one whole version. On x86 these are plain moves. Nothing is
 * a data race, so ThreadSanitizer needs no annotation.
 */
#include <sched.h>
#include <string.h>

#include "group_internal.h"
#include "hub.h"

/* The cell is copied as an array of 64-bit counters. */
#define STATS_WORDS (sizeof(vigil_stats) / sizeof(uint64_t))
#define STATS_CLOSED sizeof(((vigil_stats *)0)->closed)
#define STATS_SCOPES sizeof(((vigil_stats *)0)->takeovers_by_scope)
#define STATS_CLASSES sizeof(((vigil_stats *)0)->takeovers_by_class)
_Static_assert(sizeof(((vigil_stats *)0)->closed[0]) == sizeof(uint64_t) &&
                   sizeof(((vigil_stats *)0)->takeovers_by_scope[0]) ==
                       sizeof(uint64_t) &&
                   sizeof(((vigil_stats *)0)->takeovers_by_class[0]) ==
                       sizeof(uint64_t) &&
                   sizeof(vigil_stats) == 6 * sizeof(uint64_t) +
                                              STATS_CLOSED + STATS_SCOPES +
                                              STATS_CLASSES,
               "vigil_stats must hold only uint64_t counters");

/* The writer's half of the sequence lock: n words from src into dst. */
static void seq_write(uint32_t *seq, uint64_t *dst, const uint64_t *src,
                      size_t n) {
  uint32_t v = __atomic_load_n(seq, __ATOMIC_RELAXED);
  __atomic_store_n(seq, v + 1, __ATOMIC_RELAXED);
  for (size_t i = 0; i < n; i++)
    __atomic_store_n(&dst[i], src[i], __ATOMIC_RELEASE);
  __atomic_store_n(seq, v + 2, __ATOMIC_RELEASE);
}

/* The reader's half: one whole version of the n words into dst. */
static void seq_read(const uint32_t *seq, const uint64_t *src, uint64_t *dst,
                     size_t n) {
  for (unsigned tries = 1;; tries++) {
    uint32_t before = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    if ((before & 1u) == 0) {
      for (size_t i = 0; i < n; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
      if (__atomic_load_n(seq, __ATOMIC_RELAXED) == before) return;
    }
    /* The writer holds the cell for a few dozen stores; only a writer
     * preempted in between keeps us here, so let it run. */
    if (tries % 64 == 0) sched_yield();
  }
}

void vigil__stats_publish(vigil__stats_cell *cell, const vigil_stats *s,
                          vigil_stats *last) {
  if (memcmp(s, last, sizeof *s) == 0) return; /* nothing moved */
  *last = *s;
  seq_write(&cell->seq, (uint64_t *)(void *)&cell->v,
            (const uint64_t *)(const void *)s, STATS_WORDS);
}

void vigil__stats_read(const vigil__stats_cell *cell, vigil_stats *out) {
  seq_read(&cell->seq, (const uint64_t *)(const void *)&cell->v,
           (uint64_t *)(void *)out, STATS_WORDS);
}

/* The histograms are only uint64_t counters too. */
#define METRICS_WORDS (sizeof(vigil__metrics_pub) / sizeof(uint64_t))
_Static_assert(sizeof(vigil__metrics_pub) % sizeof(uint64_t) == 0,
               "vigil__metrics_pub must hold only uint64_t counters");

void vigil__metrics_publish(vigil__metrics_cell *cell,
                            const vigil__metrics_pub *m) {
  seq_write(&cell->seq, (uint64_t *)(void *)&cell->v,
            (const uint64_t *)(const void *)m, METRICS_WORDS);
}

void vigil__metrics_read(const vigil__metrics_cell *cell,
                         vigil__metrics_pub *out) {
  seq_read(&cell->seq, (const uint64_t *)(const void *)&cell->v,
           (uint64_t *)(void *)out, METRICS_WORDS);
}

static void add_stats(vigil_stats *sum, const vigil_stats *s) {
  const uint64_t *src = (const uint64_t *)(const void *)s;
  uint64_t *dst = (uint64_t *)(void *)sum;
  for (size_t i = 0; i < STATS_WORDS; i++) dst[i] += src[i];
}

int vigil_group_stats(vigil_group *g, vigil_stats *total,
                      vigil_stats *per_worker, uint32_t cap) {
  if (!g || !total) return VIGIL_EINVAL;
  vigil_worker *self = vigil__group_current_worker();
  memset(total, 0, sizeof *total);
  for (uint32_t i = 0; i < g->nworkers; i++) {
    vigil_worker *w = g->workers[i];
    vigil_stats s;
    if (w == self && w->hub)
      vigil__hub_stats_get(w->hub, &s); /* our own thread: exact */
    else
      vigil__stats_read(&w->stats, &s);
    add_stats(total, &s);
    if (per_worker && i < cap) per_worker[i] = s;
  }
  return (int)g->nworkers;
}
