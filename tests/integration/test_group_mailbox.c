/*
 * Group mailboxes, frees from callbacks and statistics read from many
 * threads at once:
 *  - many posts from several threads: every message runs exactly once, on
 *    its worker, in each poster's order (ev_async coalesces wake-ups, the
 *    queue must not);
 *  - posts racing a stop: every accepted post runs, every other one is
 *    refused with VIGIL_ECLOSED;
 *  - vigil_group_free() from a posted function, a conn callback, a
 *    teardown and a setup;
 *  - vigil_group_stats() from worker threads and another thread while
 *    connections come and go: consistent values, no deadlock.
 * Run under ThreadSanitizer by tests/run.sh (the tsan pass).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "groupfix.h"
#include "testutil.h"
#include "vigil.h"

static int no_worker_thread(void *arg) {
  (void)arg;
  return vt_thread_count("vigil-w") == 0;
}

/* ---- many posts from several threads ------------------------------------ */

#define LOAD_WORKERS 3
#define PRODUCERS 4
#define PER_PRODUCER 5000
#define SEQ_BITS 20

typedef struct load {
  gx f;
  uint32_t ran;                            /* atomic */
  uint8_t runs[PRODUCERS][PER_PRODUCER];   /* [p][seq]: its worker only */
  uint32_t next_seq[PRODUCERS][LOAD_WORKERS]; /* [p][w]: worker w only */
  int refused;                             /* atomic: first refusal */
} load;

static load *L;

static void count_message(vigil_worker *w, void *arg) {
  uintptr_t v = (uintptr_t)arg;
  uint32_t p = (uint32_t)(v >> SEQ_BITS), seq = (uint32_t)(v & 0xfffff);
  uint32_t wi = vigil_worker_index(w);
  GX_CHECK(&L->f, p < PRODUCERS && seq < PER_PRODUCER);
  if (p >= PRODUCERS || seq >= PER_PRODUCER) return;
  GX_CHECK(&L->f, seq % LOAD_WORKERS == wi);   /* on its worker */
  GX_CHECK(&L->f, seq >= L->next_seq[p][wi]);  /* in posting order */
  L->next_seq[p][wi] = seq + 1;
  L->runs[p][seq]++;
  __atomic_fetch_add(&L->ran, 1, __ATOMIC_SEQ_CST);
}

static void *produce(void *arg) {
  uintptr_t p = (uintptr_t)arg;
  for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
    void *msg = (void *)((p << SEQ_BITS) | seq);
    int rc = vigil_group_post(L->f.g, seq % LOAD_WORKERS, count_message, msg);
    if (rc != VIGIL_OK) {
      __atomic_store_n(&L->refused, rc, __ATOMIC_SEQ_CST);
      break;
    }
  }
  return NULL;
}

static int all_ran(void *arg) {
  (void)arg;
  return __atomic_load_n(&L->ran, __ATOMIC_SEQ_CST) ==
         PRODUCERS * PER_PRODUCER;
}

static void test_posts_from_many_threads_run_exactly_once(void **state) {
  (void)state;
  L = calloc(1, sizeof *L);
  gx_init(&L->f, LOAD_WORKERS);
  L->f.listen = 0;
  gx_new(&L->f);
  assert_int_equal(vigil_group_start(L->f.g), VIGIL_OK);
  uint64_t t0 = vt_now_ms();
  pthread_t th[PRODUCERS];
  for (uintptr_t p = 0; p < PRODUCERS; p++)
    assert_int_equal(pthread_create(&th[p], NULL, produce, (void *)p), 0);
  for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
  assert_int_equal(L->refused, 0);
  assert_true(vt_wait_until(all_ran, NULL, vt_slack_ms(10000)));
  print_message("%d messages from %d threads to %d workers: %llu ms\n",
                PRODUCERS * PER_PRODUCER, PRODUCERS, LOAD_WORKERS,
                (unsigned long long)(vt_now_ms() - t0));
  assert_int_equal(vigil_group_stop(L->f.g, 0), VIGIL_OK);
  assert_int_equal(vigil_group_join(L->f.g), VIGIL_OK);
  gx_assert_clean(&L->f);
  for (int p = 0; p < PRODUCERS; p++)
    for (int s = 0; s < PER_PRODUCER; s++) assert_int_equal(L->runs[p][s], 1);
  vigil_group_free(L->f.g);
  gx_done(&L->f);
  free(L);
}

/* ---- posts racing a stop ------------------------------------------------- */

#define RACE_PRODUCERS 3
#define RACE_MAX_POSTS 200000u
#define RACE_MAX_MS 20000u

typedef struct race {
  gx f;
  uint32_t ran;                       /* atomic */
  uint32_t accepted[RACE_PRODUCERS];  /* each producer's own */
  int bad_refusal;                    /* atomic: a refusal not ECLOSED */
} race;

static race *R;

static void count_run(vigil_worker *w, void *arg) {
  (void)w;
  (void)arg;
  __atomic_fetch_add(&R->ran, 1, __ATOMIC_SEQ_CST);
}

/* Posts round-robin until both workers refused (or the bounds end). */
static void *post_until_refused(void *arg) {
  uintptr_t p = (uintptr_t)arg;
  uint64_t end = vt_now_ms() + RACE_MAX_MS;
  int refused[2] = {0, 0};
  for (uint32_t i = 0; i < RACE_MAX_POSTS && !(refused[0] && refused[1]) &&
                       vt_now_ms() < end;
       i++) {
    uint32_t w = i % 2;
    int rc = vigil_group_post(R->f.g, w, count_run, NULL);
    if (rc == VIGIL_OK) {
      R->accepted[p]++;
    } else {
      if (rc != VIGIL_ECLOSED)
        __atomic_store_n(&R->bad_refusal, rc, __ATOMIC_SEQ_CST);
      refused[w] = 1;
    }
  }
  return NULL;
}

static int some_ran(void *arg) {
  (void)arg;
  return __atomic_load_n(&R->ran, __ATOMIC_SEQ_CST) >= 2000;
}

static void test_posts_racing_a_stop_are_run_or_refused(void **state) {
  (void)state;
  R = calloc(1, sizeof *R);
  gx_init(&R->f, 2);
  R->f.listen = 0;
  gx_new(&R->f);
  assert_int_equal(vigil_group_start(R->f.g), VIGIL_OK);
  pthread_t th[RACE_PRODUCERS];
  for (uintptr_t p = 0; p < RACE_PRODUCERS; p++)
    assert_int_equal(
        pthread_create(&th[p], NULL, post_until_refused, (void *)p), 0);
  assert_true(vt_wait_until(some_ran, NULL, vt_slack_ms(10000)));
  assert_int_equal(vigil_group_stop(R->f.g, 0), VIGIL_OK);
  assert_int_equal(vigil_group_join(R->f.g), VIGIL_OK);
  for (int p = 0; p < RACE_PRODUCERS; p++) pthread_join(th[p], NULL);
  uint32_t accepted = 0;
  for (int p = 0; p < RACE_PRODUCERS; p++) accepted += R->accepted[p];
  print_message("accepted and ran %u posts around the stop\n", accepted);
  assert_int_equal(R->bad_refusal, 0);
  assert_int_equal(R->ran, accepted); /* none lost, none run twice */
  gx_assert_clean(&R->f);
  vigil_group_free(R->f.g);
  gx_done(&R->f);
  free(R);
}

/* ---- free from callbacks -------------------------------------------------- */

#define FREE_POSTS 100

static uint32_t free_ran; /* atomic */

static void count_free_run(vigil_worker *w, void *arg) {
  (void)w;
  (void)arg;
  __atomic_fetch_add(&free_ran, 1, __ATOMIC_SEQ_CST);
}

static void free_group(vigil_worker *w, void *arg) {
  (void)arg;
  vigil_group_free(vigil_worker_group(w));
  __atomic_fetch_add(&free_ran, 1, __ATOMIC_SEQ_CST);
}

typedef struct gone_ctx {
  gx *f;
  uint32_t teardowns;
  uint32_t ran;
} gone_ctx;

/* Every worker thread ended after its teardown, and every message ran. */
static int group_gone(void *arg) {
  gone_ctx *g = arg;
  return gx_load(&g->f->teardowns) == g->teardowns &&
         __atomic_load_n(&free_ran, __ATOMIC_SEQ_CST) == g->ran &&
         vt_thread_count("vigil-w") == 0;
}

/* The memory goes with the last worker thread: ASan and valgrind see any
 * leak or late use. Messages accepted before the free all run. */
static void test_free_from_a_posted_function(void **state) {
  (void)state;
  free_ran = 0;
  gx f;
  gx_init(&f, 3);
  f.listen = 0;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  for (uint32_t i = 0; i < 3 * FREE_POSTS; i++)
    assert_int_equal(vigil_group_post(f.g, i % 3, count_free_run, NULL),
                     VIGIL_OK);
  assert_int_equal(vigil_group_post(f.g, 1, free_group, NULL), VIGIL_OK);
  /* From here on the handle is the callback's: not used again. */
  gone_ctx g = {&f, 3, 3 * FREE_POSTS + 1};
  assert_true(vt_wait_until(group_gone, &g, vt_slack_ms(5000)));
  gx_assert_clean(&f);
  gx_done(&f);
}

#define FREE_CLIENTS 16

static void free_on_data(gx *f, vigil_conn *c, const void *d, size_t n) {
  (void)f;
  if (n >= 4 && memcmp(d, "free", 4) == 0)
    vigil_group_free(vigil_worker_group(vigil_hub_worker(vigil_conn_hub(c))));
}

static int all_accepted(void *arg) {
  gx *f = arg;
  return gx_total_accepts(f) == FREE_CLIENTS;
}

/* A conn's on_data frees the group: every conn on every worker closes
 * with reason shutdown and gets its on_close. */
static void test_free_from_a_conn_callback(void **state) {
  (void)state;
  free_ran = 0;
  gx f;
  gx_init(&f, 2);
  f.data_hook = free_on_data;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  int fds[FREE_CLIENTS];
  gx_connect(&f, fds, FREE_CLIENTS);
  assert_true(vt_wait_until(all_accepted, &f, 5000));
  assert_int_equal(send(fds[3], "free", 4, 0), 4);
  gone_ctx g = {&f, 2, 0};
  assert_true(vt_wait_until(group_gone, &g, vt_slack_ms(5000)));
  gx_assert_clean(&f);
  assert_int_equal(gx_load(&f.on_close_calls), FREE_CLIENTS);
  assert_int_equal(f.nclose, FREE_CLIENTS);
  for (uint32_t i = 0; i < f.nclose; i++)
    assert_int_equal(f.closes[i].reason, VIGIL_REASON_SHUTDOWN);
  for (int i = 0; i < FREE_CLIENTS; i++) close(fds[i]);
  gx_done(&f);
}

static void free_in_teardown(gx *f, vigil_worker *w) {
  if (vigil_worker_index(w) == 0) vigil_group_free(f->g);
}

/* A host that never joins: the test thread stops the group, and worker
 * 0's teardown frees it while worker 1 may still be running. */
static void test_free_from_a_teardown(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 2);
  f.listen = 0;
  f.teardown_hook = free_in_teardown;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  assert_int_equal(vigil_group_stop(f.g, 0), VIGIL_OK);
  assert_true(vt_wait_until(no_worker_thread, NULL, vt_slack_ms(5000)));
  assert_int_equal(gx_load(&f.teardowns), 2);
  gx_assert_clean(&f);
  gx_done(&f);
}

/* A setup frees the group: start ends every worker and says so. */
static void free_in_setup(gx *f, vigil_worker *w) {
  if (vigil_worker_index(w) == 1) vigil_group_free(f->g);
}

static void test_free_from_a_setup(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 3);
  f.setup_hook = free_in_setup;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_ECLOSED);
  assert_true(vt_wait_until(no_worker_thread, NULL, vt_slack_ms(5000)));
  assert_int_equal(gx_load(&f.setups), 2);    /* worker 2 never started */
  assert_int_equal(gx_load(&f.teardowns), 2); /* both setups succeeded */
  gx_assert_clean(&f);
  gx_done(&f);
}

/* ---- statistics from many threads --------------------------------------- */

#define CHURN 200
#define PROBE_MAX 200000u

typedef struct probe {
  gx f;
  int stop;          /* atomic: readers end */
  uint32_t probes;   /* atomic: worker-side reads */
  uint32_t reads;    /* atomic: reader-thread reads */
} probe;

static probe *P;

/* open = opened - closes, in every worker's values. */
static int consistent(const vigil_stats *s) {
  uint64_t closed = 0;
  for (int r = 0; r < VIGIL_REASON__COUNT; r++) closed += s->closed[r];
  return s->opened >= closed && s->open == s->opened - closed;
}

static void check_stats(gx *f, vigil_stats *prev, vigil_stats *per) {
  vigil_stats total;
  GX_CHECK(f, vigil_group_stats(f->g, &total, per, GX_MAXW) == 2);
  GX_CHECK(f, total.opened == per[0].opened + per[1].opened);
  for (int i = 0; i < 2; i++) {
    GX_CHECK(f, consistent(&per[i]));
    GX_CHECK(f, per[i].opened >= prev[i].opened); /* never backwards */
    prev[i] = per[i];
  }
}

/* Reads from a worker thread, then posts itself again: its own values are
 * the hub's exactly. */
static void probe_stats(vigil_worker *w, void *arg) {
  vigil_stats *prev = arg, per[GX_MAXW], own;
  check_stats(&P->f, prev, per);
  vigil_hub *hub = vigil_worker_hub(w);
  if (hub) {
    vigil_hub_stats(hub, &own);
    GX_CHECK(&P->f, memcmp(&own, &per[vigil_worker_index(w)],
                           sizeof own) == 0);
  }
  uint32_t n = __atomic_add_fetch(&P->probes, 1, __ATOMIC_SEQ_CST);
  if (!__atomic_load_n(&P->stop, __ATOMIC_SEQ_CST) && n < PROBE_MAX)
    vigil_group_post(P->f.g, vigil_worker_index(w), probe_stats, prev);
}

static void *read_stats(void *arg) {
  (void)arg;
  vigil_stats prev[2] = {{0}}, per[GX_MAXW];
  uint64_t end = vt_now_ms() + 30000;
  while (!__atomic_load_n(&P->stop, __ATOMIC_SEQ_CST) && vt_now_ms() < end) {
    check_stats(&P->f, prev, per);
    __atomic_fetch_add(&P->reads, 1, __ATOMIC_SEQ_CST);
  }
  return NULL;
}

static int churn_done(void *arg) {
  (void)arg;
  vigil_stats total;
  gx_stats(&P->f, &total, NULL);
  return total.opened == CHURN && total.open == 0;
}

static void test_stats_from_many_threads(void **state) {
  (void)state;
  P = calloc(1, sizeof *P);
  gx_init(&P->f, 2);
  gx_new(&P->f);
  assert_int_equal(vigil_group_start(P->f.g), VIGIL_OK);
  static vigil_stats prev0[2], prev1[2];
  memset(prev0, 0, sizeof prev0);
  memset(prev1, 0, sizeof prev1);
  assert_int_equal(vigil_group_post(P->f.g, 0, probe_stats, prev0), VIGIL_OK);
  assert_int_equal(vigil_group_post(P->f.g, 1, probe_stats, prev1), VIGIL_OK);
  pthread_t reader;
  assert_int_equal(pthread_create(&reader, NULL, read_stats, NULL), 0);
  for (int i = 0; i < CHURN; i++) {
    int fd;
    gx_connect(&P->f, &fd, 1);
    close(fd);
  }
  assert_true(vt_wait_until(churn_done, NULL, vt_slack_ms(10000)));
  __atomic_store_n(&P->stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(reader, NULL);
  assert_int_equal(vigil_group_stop(P->f.g, 1000), VIGIL_OK);
  assert_int_equal(vigil_group_join(P->f.g), VIGIL_OK);
  print_message("%u reads on workers, %u on another thread\n", P->probes,
                P->reads);
  assert_true(P->probes > 0 && P->reads > 0);
  gx_assert_clean(&P->f);
  vigil_group_free(P->f.g);
  gx_done(&P->f);
  free(P);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_posts_from_many_threads_run_exactly_once),
      cmocka_unit_test(test_posts_racing_a_stop_are_run_or_refused),
      cmocka_unit_test(test_free_from_a_posted_function),
      cmocka_unit_test(test_free_from_a_conn_callback),
      cmocka_unit_test(test_free_from_a_teardown),
      cmocka_unit_test(test_free_from_a_setup),
      cmocka_unit_test(test_stats_from_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
