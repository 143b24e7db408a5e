/*
 * Hub groups (vigil/group.h) on loopback: start, stop, join and free with
 * 1-4 workers; setups in index order and a failing setup; SO_REUSEPORT
 * spreading accepts over every worker; group statistics; a stop that is
 * graceful first and forced at its deadline; events stamped with the
 * worker index; a worker's hub freed or shut down by the host; options
 * and calls made in the wrong state.
 *
 * Mailboxes and frees from callbacks: test_group_mailbox.c.
 */
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "groupfix.h"
#include "testutil.h"
#include "vigil.h"

/* Worker threads are named vigil-w<index>. */
static int no_worker_thread(void *arg) {
  (void)arg;
  return vt_thread_count("vigil-w") == 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void test_lifecycle_1_to_4_workers(void **state) {
  (void)state;
  for (uint32_t n = 1; n <= 4; n++) {
    gx f;
    gx_init(&f, n);
    gx_new(&f);
    assert_int_equal(vigil_group_workers(f.g), n);
    assert_null(vigil_group_worker(f.g, n));
    assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
    gx_assert_clean(&f);
    assert_int_equal(gx_load(&f.setups), n);
    for (uint32_t i = 0; i < n; i++) {
      assert_int_equal(f.setup_order[i], i); /* index order */
      assert_false(pthread_equal(f.setup_thread[i], pthread_self()));
      for (uint32_t j = 0; j < i; j++)
        assert_false(pthread_equal(f.setup_thread[i], f.setup_thread[j]));
    }
    assert_int_equal(vt_thread_count("vigil-w"), (int)n);
    assert_int_equal(vigil_group_start(f.g), VIGIL_ESTATE);
    assert_int_equal(vigil_group_stop(f.g, 1000), VIGIL_OK);
    assert_int_equal(vigil_group_stop(f.g, 1000), VIGIL_EEXIST);
    assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
    assert_int_equal(gx_load(&f.teardowns), n);
    assert_int_equal(gx_load(&f.shutdown_done_events), n);
    assert_true(vt_wait_until(no_worker_thread, NULL, 2000));
    assert_int_equal(vigil_group_post(f.g, 0, NULL, NULL), VIGIL_EINVAL);
    vigil_group_free(f.g);
    gx_assert_clean(&f);
    gx_done(&f);
  }
}

/* No loop may run before every setup succeeded: a message worker 0 posts
 * to itself in its setup runs only after the last setup. */
static uint32_t setups_when_message_ran;

static void note_setups(vigil_worker *w, void *arg) {
  (void)w;
  gx *f = arg;
  __atomic_store_n(&setups_when_message_ran, gx_load(&f->setups) + 1000,
                   __ATOMIC_SEQ_CST);
}

static void post_to_self(gx *f, vigil_worker *w) {
  if (vigil_worker_index(w) == 0)
    GX_CHECK(f, vigil_group_post(f->g, 0, note_setups, f) == VIGIL_OK);
}

static int message_ran(void *arg) {
  (void)arg;
  return __atomic_load_n(&setups_when_message_ran, __ATOMIC_SEQ_CST) != 0;
}

static void test_loops_wait_for_every_setup(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 3);
  f.setup_hook = post_to_self;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  assert_true(vt_wait_until(message_ran, NULL, 2000));
  assert_int_equal(setups_when_message_ran, 1000 + 3);
  assert_int_equal(vigil_group_stop(f.g, 0), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  vigil_group_free(f.g);
  gx_assert_clean(&f);
  gx_done(&f);
}

/* Worker 2 of 4 fails its setup: workers 0 and 1 are torn down and
 * joined, worker 3 never starts, and every fd and thread is gone. */
static void test_setup_failure_undoes_the_start(void **state) {
  (void)state;
  int base_fds = vt_open_fd_count();
  gx f;
  gx_init(&f, 4);
  f.fail_setup_at = 2;
  f.fail_setup_rc = VIGIL_EADDR;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_EADDR);
  gx_assert_clean(&f);
  assert_int_equal(gx_load(&f.setups), 3);
  for (uint32_t i = 0; i < 3; i++) assert_int_equal(f.setup_order[i], i);
  assert_int_equal(gx_load(&f.teardowns), 2); /* not the failed one */
  assert_true(vt_wait_until(no_worker_thread, NULL, 2000));
  assert_int_equal(vt_open_fd_count(), base_fds); /* listeners, loops */
  /* Only free remains. */
  assert_int_equal(vigil_group_start(f.g), VIGIL_ESTATE);
  assert_int_equal(vigil_group_stop(f.g, 0), VIGIL_ESTATE);
  assert_int_equal(vigil_group_post(f.g, 0, note_setups, &f), VIGIL_ECLOSED);
  assert_int_equal(vigil_group_post(f.g, 3, note_setups, &f), VIGIL_ESTATE);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  vigil_group_free(f.g);
  gx_done(&f);

  /* A setup returning something other than a vigil_err. */
  gx_init(&f, 1);
  f.listen = 0;
  f.fail_setup_at = 0;
  f.fail_setup_rc = 5;
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_EINVAL);
  assert_int_equal(gx_load(&f.teardowns), 0);
  vigil_group_free(f.g);
  gx_done(&f);
}

/* ---- spreading, statistics, events -------------------------------------- */

typedef struct opened_ctx {
  gx *f;
  uint64_t want;
} opened_ctx;

static int all_published(void *arg) {
  opened_ctx *o = arg;
  vigil_stats total, per[GX_MAXW];
  gx_stats(o->f, &total, per);
  for (uint32_t i = 0; i < o->f->workers; i++)
    if (per[i].opened != gx_load(&o->f->accepts[i])) return 0;
  return total.opened == o->want;
}

static int all_closed(void *arg) {
  opened_ctx *o = arg;
  vigil_stats total;
  gx_stats(o->f, &total, NULL);
  return total.open == 0 &&
         total.closed[VIGIL_REASON_PEER_CLOSED] == o->want;
}

static int accepted(void *arg) {
  opened_ctx *o = arg;
  return gx_total_accepts(o->f) == o->want;
}

#define SPREAD_CLIENTS 64

static void test_reuseport_spreads_over_every_worker(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 4);
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  assert_true(f.port != 0);
  int fds[SPREAD_CLIENTS];
  gx_connect(&f, fds, SPREAD_CLIENTS);
  opened_ctx o = {&f, SPREAD_CLIENTS};
  assert_true(vt_wait_until(accepted, &o, 5000));
  for (uint32_t i = 0; i < f.workers; i++) {
    print_message("worker %u accepted %u\n", i, gx_load(&f.accepts[i]));
    /* 4 x (3/4)^64: about 4e-8 that the kernel's hash skips a worker */
    assert_true(gx_load(&f.accepts[i]) > 0);
  }
  /* Each worker's values, and their sums, once published. */
  assert_true(vt_wait_until(all_published, &o, 2000));
  vigil_stats total, per[GX_MAXW];
  gx_stats(&f, &total, per);
  assert_int_equal(total.open, SPREAD_CLIENTS);
  for (uint32_t i = 0; i < f.workers; i++)
    assert_int_equal(per[i].open, gx_load(&f.accepts[i]));
  for (int i = 0; i < SPREAD_CLIENTS; i++) close(fds[i]);
  assert_true(vt_wait_until(all_closed, &o, 5000));
  assert_int_equal(vigil_group_stop(f.g, 1000), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  assert_int_equal(gx_load(&f.on_close_calls), SPREAD_CLIENTS);
  /* Every worker logged, each event with its own index (checked by the
   * fixture's sink as it ran). */
  for (uint32_t i = 0; i < f.workers; i++)
    assert_true(f.events_per_worker[i] > 0);
  gx_assert_clean(&f);
  /* Final values outlive the hubs. */
  gx_stats(&f, &total, NULL);
  assert_int_equal(total.opened, SPREAD_CLIENTS);
  assert_int_equal(total.closed[VIGIL_REASON_PEER_CLOSED], SPREAD_CLIENTS);
  vigil_group_free(f.g);
  gx_done(&f);
}

/* Outside a group, events say worker -1 and lines carry no worker=. */
static void record_line(vigil_hub *hub, const vigil_event *ev, void *ud) {
  (void)hub;
  if (ev->type != VIGIL_EV_OPEN) return;
  int32_t *worker = ud;
  *worker = ev->worker;
  char line[512];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  if (strstr(line, "worker=")) *worker = 12345;
}

static void test_events_outside_a_group_have_no_worker(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  int32_t worker = 99;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.on_event = record_line;
  ho.event_data = &worker;
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, &ho, &hub), VIGIL_OK);
  assert_null(vigil_hub_worker(hub));
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(vigil_adopt(hub, s, NULL, NULL), VIGIL_OK);
  assert_int_equal(worker, VIGIL_WORKER_NONE);
  vigil_hub_free(hub);
  close(c);
  ev_loop_destroy(loop);
}

/* ---- stop: graceful first, forced at the deadline ----------------------- */

#define STOP_CLIENTS 8
#define STOP_DEADLINE_MS 400

typedef struct state_wait {
  int fd;
  int state;
} state_wait;

static int in_state(void *arg) {
  state_wait *s = arg;
  return vt_tcp_state(s->fd) == s->state;
}

/* Half the clients answer the server's FIN by closing; the other half
 * never do. The first half close gracefully before the deadline, the
 * others are reset at it; every close says shutdown. */
static void test_stop_graceful_then_forced(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 2);
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  int fds[STOP_CLIENTS];
  uint16_t ports[STOP_CLIENTS];
  gx_connect(&f, fds, STOP_CLIENTS);
  for (int i = 0; i < STOP_CLIENTS; i++) ports[i] = gx_local_port(fds[i]);
  opened_ctx o = {&f, STOP_CLIENTS};
  assert_true(vt_wait_until(all_published, &o, 5000));

  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_group_stop(f.g, STOP_DEADLINE_MS), VIGIL_OK);
  /* Every client gets the server's FIN first (graceful). */
  for (int i = 0; i < STOP_CLIENTS; i++) {
    state_wait sw = {fds[i], VIGIL_TCP_CLOSE_WAIT};
    assert_true(vt_wait_until(in_state, &sw, 2000));
  }
  assert_true(vt_now_ms() - t0 < STOP_DEADLINE_MS);
  for (int i = 0; i < STOP_CLIENTS; i += 2) close(fds[i]); /* cooperative */
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  uint64_t took = vt_now_ms() - t0;
  print_message("stop took %llu ms (deadline %d)\n", (unsigned long long)took,
                STOP_DEADLINE_MS);
  assert_true(took >= STOP_DEADLINE_MS);
  assert_true(took <= STOP_DEADLINE_MS + vt_slack_ms(400));
  gx_assert_clean(&f);

  for (int i = 0; i < STOP_CLIENTS; i++) {
    const gx_close *c = gx_find_close(&f, ports[i]);
    assert_non_null(c);
    assert_int_equal(c->reason, VIGIL_REASON_SHUTDOWN);
    assert_int_equal(c->cause, VIGIL_REASON_NONE);
    assert_true(c->worker == 0 || c->worker == 1);
    if (i % 2 == 0) {
      assert_true(c->at - t0 < STOP_DEADLINE_MS); /* graceful */
    } else {
      assert_true(c->at - t0 >= STOP_DEADLINE_MS); /* forced */
      state_wait sw = {fds[i], VIGIL_TCP_CLOSE};  /* by RST */
      assert_true(vt_wait_until(in_state, &sw, 2000));
      close(fds[i]);
    }
  }
  vigil_stats total;
  gx_stats(&f, &total, NULL);
  assert_int_equal(total.closed[VIGIL_REASON_SHUTDOWN], STOP_CLIENTS);
  assert_int_equal(total.open, 0);
  vigil_group_free(f.g);
  gx_done(&f);
}

/* ---- the host frees or shuts down a worker's hub ------------------------ */

static void free_own_hub(vigil_worker *w, void *arg) {
  gx *f = arg;
  vigil_hub *hub = vigil_worker_hub(w);
  GX_CHECK(f, hub != NULL);
  vigil_hub_free(hub);
  GX_CHECK(f, vigil_worker_hub(w) == NULL);
  /* The worker goes on without a hub: messages still run. */
  GX_CHECK(f, vigil_group_post(f->g, vigil_worker_index(w), note_setups,
                               f) == VIGIL_OK);
}

static void test_hub_freed_by_host_does_not_wedge(void **state) {
  (void)state;
  setups_when_message_ran = 0;
  gx f;
  gx_init(&f, 2);
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  assert_int_equal(vigil_group_post(f.g, 1, free_own_hub, &f), VIGIL_OK);
  assert_true(vt_wait_until(message_ran, NULL, 2000));
  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_group_stop(f.g, 5000), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  assert_true(vt_now_ms() - t0 < vt_slack_ms(1000));
  assert_int_equal(gx_load(&f.teardowns), 2);
  gx_assert_clean(&f);
  vigil_group_free(f.g);
  gx_done(&f);
}

static void host_shutdown(vigil_worker *w, void *arg) {
  gx *f = arg;
  /* A long shutdown of the host's own, with no done callback. */
  GX_CHECK(f, vigil_hub_shutdown(vigil_worker_hub(w), 60000, NULL, NULL) ==
                  VIGIL_OK);
  __atomic_store_n(&setups_when_message_ran, 1, __ATOMIC_SEQ_CST);
}

/* The host's own shutdown is still waiting for a peer that never closes:
 * the group's stop cannot hook it, and ends it at the group's deadline. */
static void test_hub_shut_down_by_host_ends_at_group_deadline(void **state) {
  (void)state;
  setups_when_message_ran = 0;
  gx f;
  gx_init(&f, 1);
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  int fd;
  gx_connect(&f, &fd, 1);
  opened_ctx o = {&f, 1};
  assert_true(vt_wait_until(all_published, &o, 5000));
  assert_int_equal(vigil_group_post(f.g, 0, host_shutdown, &f), VIGIL_OK);
  assert_true(vt_wait_until(message_ran, NULL, 2000));
  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_group_stop(f.g, 300), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  uint64_t took = vt_now_ms() - t0;
  assert_true(took >= 300);
  assert_true(took <= 300 + vt_slack_ms(500));
  assert_int_equal(gx_load(&f.on_close_calls), 1);
  gx_assert_clean(&f);
  close(fd);
  vigil_group_free(f.g);
  gx_done(&f);
}

/* ---- calls from a worker, options, wrong states ------------------------- */

static void stop_from_worker(vigil_worker *w, void *arg) {
  gx *f = arg;
  vigil_group *g = vigil_worker_group(w);
  GX_CHECK(f, vigil_group_join(g) == VIGIL_ESTATE);  /* itself */
  GX_CHECK(f, vigil_group_start(g) == VIGIL_ESTATE);
  GX_CHECK(f, vigil_group_stop(g, 0) == VIGIL_OK);
}

static void test_stop_from_a_worker(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 2);
  gx_new(&f);
  assert_int_equal(vigil_group_start(f.g), VIGIL_OK);
  assert_int_equal(vigil_group_post(f.g, 1, stop_from_worker, &f), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  assert_int_equal(gx_load(&f.teardowns), 2);
  gx_assert_clean(&f);
  vigil_group_free(f.g);
  gx_done(&f);
}

static int nop_setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  (void)w, (void)hub, (void)ud;
  return VIGIL_OK;
}

static void test_options_and_wrong_states(void **state) {
  (void)state;
  char msg[256];
  vigil_group_options o;
  vigil_group_options_init(&o);
  assert_int_equal(o.workers, 1);
  assert_int_equal(vigil_group_options_validate(&o, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_string_equal(msg, "setup is NULL: a setup callback is required");
  o.setup = nop_setup;
  o.workers = 0;
  assert_int_equal(vigil_group_options_validate(&o, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_string_equal(msg, "workers = 0 is out of range: allowed 1..256");
  o.workers = 257;
  assert_int_equal(vigil_group_options_validate(&o, NULL, 0), VIGIL_EINVAL);
  o.workers = 256;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.tick_ms = 0;
  o.hub = &ho;
  assert_int_equal(vigil_group_options_validate(&o, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_string_equal(msg, "hub.tick_ms = 0 is out of range: allowed 1..1000");
  ho.tick_ms = 10;
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_cnt = 0;
  ho.policy = &p;
  assert_int_equal(vigil_group_options_validate(&o, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_string_equal(msg, "hub.policy: keepalive_cnt = 0 is out of range: "
                           "allowed 1..127 (TCP_KEEPCNT)");
  vigil_group *g = (vigil_group *)&o;
  assert_int_equal(vigil_group_new(&o, &g), VIGIL_EINVAL);
  assert_null(g);
  p.keepalive_cnt = 6;
  assert_int_equal(vigil_group_options_validate(&o, msg, sizeof msg),
                   VIGIL_OK);
  assert_string_equal(msg, "");

  /* The policy is copied: changing the host's copy after new is fine. */
  o.workers = 2;
  assert_int_equal(vigil_group_new(&o, &g), VIGIL_OK);
  p.keepalive_cnt = 0;
  assert_int_equal(vigil_group_stop(g, 0), VIGIL_ESTATE);
  assert_int_equal(vigil_group_post(g, 0, note_setups, NULL), VIGIL_ESTATE);
  assert_int_equal(vigil_group_post(g, 2, note_setups, NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_group_join(g), VIGIL_OK); /* nothing runs */
  vigil_stats total, per[2];
  assert_int_equal(vigil_group_stats(g, &total, per, 2), 2);
  assert_int_equal(total.opened, 0);
  assert_int_equal(vigil_group_stats(g, NULL, NULL, 0), VIGIL_EINVAL);
  assert_int_equal(vigil_group_stop(g, VIGIL_MAX_DURATION_MS + 1),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_group_start(g), VIGIL_OK);
  assert_int_equal(vigil_group_stop(g, 0), VIGIL_OK);
  assert_int_equal(vigil_group_join(g), VIGIL_OK);
  vigil_group_free(g);

  /* A group never started is just freed. */
  p.keepalive_cnt = 6;
  assert_int_equal(vigil_group_new(&o, &g), VIGIL_OK);
  vigil_group_free(g);
  vigil_group_free(NULL);
  assert_int_equal(vigil_group_new(NULL, &g), VIGIL_EINVAL);
  assert_int_equal(vigil_group_new(&o, NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_group_start(NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_group_stop(NULL, 0), VIGIL_EINVAL);
  assert_int_equal(vigil_group_join(NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_group_workers(NULL), 0);
  assert_null(vigil_group_worker(NULL, 0));
  assert_null(vigil_hub_worker(NULL));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle_1_to_4_workers),
      cmocka_unit_test(test_loops_wait_for_every_setup),
      cmocka_unit_test(test_setup_failure_undoes_the_start),
      cmocka_unit_test(test_reuseport_spreads_over_every_worker),
      cmocka_unit_test(test_events_outside_a_group_have_no_worker),
      cmocka_unit_test(test_stop_graceful_then_forced),
      cmocka_unit_test(test_hub_freed_by_host_does_not_wedge),
      cmocka_unit_test(test_hub_shut_down_by_host_ends_at_group_deadline),
      cmocka_unit_test(test_stop_from_a_worker),
      cmocka_unit_test(test_options_and_wrong_states),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
