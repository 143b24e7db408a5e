/*
 * The ping-flood guard on live conns (policy ping_min_interval_ms,
 * ping_strikes): the frame codec's PING path, where a flood gets GOODBYE
 * too_many_pings instead of a PONG and the conn closes with ping_flood,
 * and vigil_conn_ping_received for hosts with a protocol of their own.
 * Real loopback sockets, the hub on a fake clock (tests/support/codecfix.h)
 * so every ping arrives at an exact millisecond.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "codecfix.h"
#include "testutil.h"
#include "vigil.h"

/* The peer sends a PING, the test waits until vigil has read it (answered,
 * or closing), then the fake clock moves `gap` ms. */
static void ping_then_wait(fx_tc *t, uint32_t gap) {
  int want = t->w.n + 1;
  fx_raw_send(&t->w, VIGIL_FRAME_PING, "01234567", 8);
  assert_true(fx_raw_wait(&t->f, &t->w, want, 1000));
  fx_advance(&t->f, gap);
}

static const fx_variant k_min100 = {.ping_min_interval_ms = 100};
static const fx_variant k_raw_min100 = {.codec_off = 1,
                                        .ping_min_interval_ms = 100};

/* One PING a millisecond against a 100 ms minimum and 2 strikes: the
 * first is free, two strikes are answered, the third strike gets GOODBYE
 * too_many_pings and no PONG; the conn waits for the peer to close first
 * and ends with ping_flood and the rate it saw. */
static void test_codec_flood_cut(void **state) {
  fx_tc *t = *state;
  for (int i = 0; i < 4; i++) ping_then_wait(t, 1);
  assert_int_equal(t->w.n, 4);
  for (int i = 0; i < 3; i++) assert_int_equal(t->w.f[i].type, VIGIL_FRAME_PONG);
  assert_int_equal(fx_raw_goodbye_code(&t->w, 3), VIGIL_GOODBYE_TOO_MANY_PINGS);
  assert_int_equal(vigil_conn_get_state(t->r.conn), VIGIL_CONN_FLUSHING);
  /* Pings that follow are read and dropped: no answer, no second close. */
  fx_raw_send(&t->w, VIGIL_FRAME_PING, NULL, 0);
  vt_run_until(t->f.loop, NULL, NULL, 20);
  assert_int_equal(t->w.n, 4);
  shutdown(t->w.fd, SHUT_WR);
  assert_true(vt_run_until(t->f.loop, fx_rec_closed, &t->r, 1000));
  assert_true(fx_raw_wait_eof(&t->f, &t->w, 1000));
  assert_int_equal(t->r.reason, VIGIL_REASON_PING_FLOOD);
  assert_string_equal(t->r.detail, "ping flood: 4 pings in 3 ms (1333/s), "
                                   "minimum interval 100 ms");
}

/* A flooder that ignores the GOODBYE and keeps pinging is cut by the
 * usual bound on a graceful close (linger_max, 2 s here), with ping_flood
 * kept as the cause. */
static void test_codec_flood_peer_never_closes(void **state) {
  fx_tc *t = *state;
  for (int i = 0; i < 4; i++) ping_then_wait(t, 1);
  assert_int_equal(fx_raw_goodbye_code(&t->w, 3), VIGIL_GOODBYE_TOO_MANY_PINGS);
  for (int ms = 0; ms < 2100 && !t->r.closed; ms += 50) {
    fx_raw_send(&t->w, VIGIL_FRAME_PING, NULL, 0);
    vt_run_until(t->f.loop, NULL, NULL, 2);
    fx_advance(&t->f, 50);
  }
  assert_true(vt_run_until(t->f.loop, fx_rec_closed, &t->r, 1000));
  assert_int_equal(t->r.reason, VIGIL_REASON_DRAIN_TIMEOUT);
  assert_int_equal(t->r.cause, VIGIL_REASON_PING_FLOOD);
  assert_int_equal(t->f.events[VIGIL_EV_CLOSE], 1);
}

/* Pings exactly at the minimum interval, and a burst that stays within the
 * strikes and is then forgiven by a well-spaced ping, are all answered. */
static void test_codec_spaced_pings_answered(void **state) {
  fx_tc *t = *state;
  for (int i = 0; i < 10; i++) ping_then_wait(t, 100);
  for (int round = 0; round < 3; round++) {
    ping_then_wait(t, 1);
    ping_then_wait(t, 1);
    ping_then_wait(t, 100); /* two strikes, then the interval: cleared */
  }
  assert_int_equal(t->w.n, 19);
  for (int i = 0; i < t->w.n; i++)
    assert_int_equal(t->w.f[i].type, VIGIL_FRAME_PONG);
  assert_int_equal(t->r.closed, 0);
  assert_int_equal(vigil_conn_get_state(t->r.conn), VIGIL_CONN_OPEN);
}

/* The defaults (10 ms, 2 strikes) leave a client pinging at 100 Hz alone,
 * and a back-to-back pair too. */
static void test_codec_defaults_leave_100hz_alone(void **state) {
  fx_tc *t = *state;
  for (int i = 0; i < 50; i++) ping_then_wait(t, 10);
  ping_then_wait(t, 0);
  ping_then_wait(t, 10);
  assert_int_equal(t->w.n, 52);
  assert_int_equal(t->r.closed, 0);
}

/* A host protocol's pings: vigil_conn_ping_received judges them the same
 * way; the flood closes the conn gracefully (plain FIN, no GOODBYE: the
 * codec is off) with ping_flood. */
static void test_ping_received_api(void **state) {
  fx_tc *t = *state;
  vigil_conn *c = t->r.conn;
  assert_int_equal(vigil_conn_ping_received(NULL), VIGIL_EINVAL);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
    fx_advance(&t->f, 2);
  }
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_ECLOSED);
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_ECLOSED);
  assert_true(fx_raw_wait_eof(&t->f, &t->w, 1000));
  assert_int_equal(t->w.n, 0);
  fx_raw_done(&t->w);
  assert_true(vt_run_until(t->f.loop, fx_rec_closed, &t->r, 1000));
  assert_int_equal(t->r.reason, VIGIL_REASON_PING_FLOOD);
  assert_string_equal(t->r.detail, "ping flood: 4 pings in 6 ms (666/s), "
                                   "minimum interval 100 ms");
}

/* Either field 0 turns the guard off; a policy change takes effect on the
 * next ping. */
static void test_ping_received_off(void **state) {
  fx_tc *t = *state;
  vigil_conn *c = t->r.conn;
  vigil_policy p = *vigil_conn_policy(c);
  p.ping_strikes = 0;
  assert_int_equal(vigil_conn_set_policy(c, &p), VIGIL_OK);
  for (int i = 0; i < 100; i++)
    assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
  p.ping_strikes = 2;
  p.ping_min_interval_ms = 0;
  assert_int_equal(vigil_conn_set_policy(c, &p), VIGIL_OK);
  for (int i = 0; i < 100; i++)
    assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
  p.ping_min_interval_ms = 100;
  assert_int_equal(vigil_conn_set_policy(c, &p), VIGIL_OK);
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_OK);
  assert_int_equal(vigil_conn_ping_received(c), VIGIL_ECLOSED);
  vt_run_until(t->f.loop, NULL, NULL, 20);
  assert_int_equal(vigil_conn_get_state(c), VIGIL_CONN_DRAINING);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate_setup_teardown(
          test_codec_flood_cut, fx_conn_setup, fx_conn_teardown,
          (void *)&k_min100),
      cmocka_unit_test_prestate_setup_teardown(
          test_codec_flood_peer_never_closes, fx_conn_setup, fx_conn_teardown,
          (void *)&k_min100),
      cmocka_unit_test_prestate_setup_teardown(
          test_codec_spaced_pings_answered, fx_conn_setup, fx_conn_teardown,
          (void *)&k_min100),
      cmocka_unit_test_setup_teardown(test_codec_defaults_leave_100hz_alone,
                                      fx_conn_setup, fx_conn_teardown),
      cmocka_unit_test_prestate_setup_teardown(
          test_ping_received_api, fx_conn_setup, fx_conn_teardown,
          (void *)&k_raw_min100),
      cmocka_unit_test_prestate_setup_teardown(
          test_ping_received_off, fx_conn_setup, fx_conn_teardown,
          (void *)&k_raw_min100),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
