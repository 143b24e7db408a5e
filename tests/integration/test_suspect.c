/*
 * Suspicion on loopback, where no packet is ever lost, so these tests
 * cover the paths that must NOT raise "suspect": an idle peer (no
 * evidence; with suspect_ping the host is asked to ping once, at
 * suspect_after), a peer that answers the ping, and a live peer that
 * stopped reading (zero window: the kernel backs off its window probes,
 * which must not look like a dead path). The positive path (a blackholed
 * peer) is in tests/fault/test_fault_silent_peer.c.
 */
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ghostfix.h"
#include "testutil.h"
#include "vigil.h"

/* Upper slack for a deadline seen from the test: one wheel tick (10 ms)
 * plus scheduling on a shared 2-core machine (more under valgrind). */
#define TICK_MS 10
#define SLACK_MS vt_slack_ms(30)

typedef struct fixture {
  struct ev_loop *loop;
  vigil_hub *hub;
  gf_log log;
  vigil_policy policy;
  gf_conn rec;
  int client;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_policy_init(&f->policy);
  f->client = -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->hub) vigil_hub_free(f->hub);
  if (f->client >= 0) close(f->client);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

/* Hub + one adopted loopback conn; returns the adoption time. */
static uint64_t open_conn(fixture *f) {
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &f->policy;
  o.on_event = gf_on_event;
  o.event_data = &f->log;
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
  int s;
  assert_int_equal(vt_tcp_pair(&s, &f->client), 0);
  uint64_t t0 = vt_now_ms();
  assert_int_equal(gf_adopt(f->hub, s, &f->rec, NULL), VIGIL_OK);
  return t0;
}

static int got_ping(void *arg) { return ((gf_conn *)arg)->pings > 0; }

static void test_idle_peer_no_evidence_asks_one_ping(void **state) {
  fixture *f = *state;
  f->policy.dead_after_ms = 1000; /* suspect_after AUTO = 500 */
  f->policy.suspect_ping = 1;
  f->rec.ping_sends = 1;
  uint64_t t0 = open_conn(f);
  assert_true(vt_run_until(f->loop, got_ping, &f->rec, 2000));
  uint64_t dt = vt_now_ms() - t0;
  assert_true(dt >= 500);
  assert_true(dt <= 500 + TICK_MS + SLACK_MS);
  const gf_event *p = gf_find(&f->log, VIGIL_EV_PING_DUE, f->rec.id);
  assert_non_null(p);

  /* The ping is acknowledged at once by the kernel, so the re-checks
   * until dead_after find nothing; the peer never answers, so it dies by
   * the application heartbeat, not by suspicion. */
  assert_true(vt_run_until(f->loop, gf_is_closed, &f->rec, 2000));
  assert_int_equal(f->rec.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_int_equal(f->rec.pings, 1);
  assert_int_equal(f->log.per_type[VIGIL_EV_SUSPECT], 0);
  uint64_t life = f->rec.closed_ms - t0;
  assert_true(life >= 1000);
  assert_true(life <= 1000 + TICK_MS + SLACK_MS);
  const gf_event *d = gf_find(&f->log, VIGIL_EV_DEAD, f->rec.id);
  assert_non_null(d);
  assert_true(d->has_tcp_info);
  assert_int_equal(d->tcp_info.unacked, 0);
  assert_int_equal(d->tcp_info.retransmits, 0);
}

static int ping_seen_twice(void *arg) { return ((gf_conn *)arg)->pings >= 2; }

/* A peer that answers keeps the conn alive; one ping per quiet period. */
static void test_answering_peer_stays(void **state) {
  fixture *f = *state;
  f->policy.dead_after_ms = 600;
  f->policy.suspect_ping = 1;
  f->rec.ping_sends = 1;
  open_conn(f);
  uint64_t end = vt_now_ms() + 1800; /* three dead_after periods */
  int answered = 0;
  while (vt_now_ms() < end && !f->rec.closed) {
    char buf[64];
    long n = vt_read_avail(f->client, buf, sizeof buf, NULL);
    if (n > 0) {
      assert_int_equal(send(f->client, "pong", 4, 0), 4);
      answered++;
    }
    vt_run_until(f->loop, NULL, NULL, 5);
  }
  assert_false(f->rec.closed);
  assert_true(answered >= 3);
  assert_true(ping_seen_twice(&f->rec));
  assert_int_equal(f->log.per_type[VIGIL_EV_SUSPECT], 0);
}

static int queue_nonempty(void *arg) {
  return vigil_conn_queued(((gf_conn *)arg)->c) > 0;
}

/* A peer that stops reading closes its window; the kernel probes it with
 * exponential backoff. It is slow, not gone: no suspect event. */
static void test_zero_window_reader_is_not_suspect(void **state) {
  fixture *f = *state;
  f->policy.dead_after_ms = 3000;
  f->policy.suspect_after_ms = 200;
  f->policy.output_limit = 64u * 1024 * 1024;
  int small = 4096;
  open_conn(f);
  setsockopt(f->client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  static char chunk[65536];
  memset(chunk, 'z', sizeof chunk);
  for (int i = 0; i < 512 && !queue_nonempty(&f->rec); i++)
    assert_int_equal(vigil_send(f->rec.c, chunk, sizeof chunk), VIGIL_OK);
  assert_true(queue_nonempty(&f->rec));
  /* 2.5 s: window probes back off to 800 ms and more; suspect checks run
   * every (3000 - 200) / 4 = 700 ms meanwhile. */
  vt_run_until(f->loop, NULL, NULL, 2500);
  assert_false(f->rec.closed);
  vigil_tcp_info ti;
  assert_int_equal(vigil_conn_tcp_info(f->rec.c, &ti), VIGIL_OK);
  assert_true(ti.backoff > 0); /* the kernel is probing a zero window */
  assert_int_equal(ti.retransmits, 0);
  assert_int_equal(f->log.per_type[VIGIL_EV_SUSPECT], 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_idle_peer_no_evidence_asks_one_ping,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_answering_peer_stays, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_zero_window_reader_is_not_suspect,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
