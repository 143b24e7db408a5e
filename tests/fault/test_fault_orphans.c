/*
 * What closing a dead peer leaves behind in the server's kernel.
 *
 * A FIN sent to a peer that is gone is never acknowledged: the socket,
 * already closed by the application, lives on as an orphan in FIN_WAIT1
 * and retransmits its FIN for minutes (tcp_orphan_retries; mosquitto
 * leaves exactly this, see FIELD-NOTES). With abort_dead (the default)
 * vigil closes a confirmed-dead peer with RST instead, and the socket is
 * gone at once. Both cases are asserted: the orphan's absence, and its
 * presence when abort_dead is off, seen both by ss and by vigil's census
 * run inside namespace A.
 */
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faultfix.h"
#include "testutil.h"

#define TICK_MS 10
#define SCHED_MS 30

static ff_env E;

static int teardown(void **state) {
  (void)state;
  ff_env_down(&E);
  return 0;
}

/* Census of the test port inside A: orphans and FIN_WAIT1 count. */
static void census_in_a(uint32_t *orphans, uint32_t *fin_wait1) {
  vigil_census_query q;
  vigil_census_query_init(&q);
  q.ports = &E.port;
  q.nports = 1;
  q.want_sockets = 0;
  vigil_census *c = NULL;
  assert_int_equal(vt_netns_enter(&E.ns, VT_NETNS_A), 0);
  int rc = vigil_census_run(&q, &c);
  vt_netns_leave();
  assert_int_equal(rc, VIGIL_OK);
  *orphans = c->orphans;
  *fin_wait1 = c->counts[VIGIL_TCP_FIN_WAIT1];
  vigil_census_free(c);
}

/* Heartbeat death of a blackholed device; returns the device fd. */
static int kill_by_heartbeat(int abort_dead, const char *name) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 200;
  p.dead_after_ms = 600;
  p.abort_dead = abort_dead;
  ff_env_up(&E, &p);
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  static gf_conn srv;
  memset(&srv, 0, sizeof srv);
  srv.ping_sends = 1;
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  static ff_peer dev;
  ff_peer_start(&E, &dev, dfd, 1);
  vt_run_until(E.loop, NULL, NULL, 450);
  assert_true(srv.bytes >= 1);
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 3000));
  assert_int_equal(srv.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(cl);
  assert_true(cl->last_rx_ms >= 600);
  ff_check_latency(name, (int64_t)(cl->t_ms - srv.last_rx_ms), 600 - 1,
                   600 + TICK_MS + SCHED_MS);
  ff_peer_stop(&E, &dev);
  return dfd;
}

static void test_abort_dead_leaves_no_orphan(void **state) {
  (void)state;
  int dfd = kill_by_heartbeat(1, "heartbeat_abort_dead");
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&E.ns, VT_NETNS_A, E.port, n), 0);
  assert_int_equal(n[TCP_FIN_WAIT1], 0);
  assert_int_equal(n[TCP_LISTEN], 1);
  assert_int_equal(n[0], 1); /* the listener alone: no trace of the conn */
  uint32_t orphans, fw1;
  census_in_a(&orphans, &fw1);
  assert_int_equal(orphans, 0);
  assert_int_equal(fw1, 0);
  close(dfd);
}

static void test_plain_close_leaves_fin_wait1_orphan(void **state) {
  (void)state;
  int dfd = kill_by_heartbeat(0, "heartbeat_plain_close");
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&E.ns, VT_NETNS_A, E.port, n), 0);
  /* This is the ghost abort_dead exists to prevent. */
  assert_int_equal(n[TCP_FIN_WAIT1], 1);
  uint32_t orphans, fw1;
  census_in_a(&orphans, &fw1);
  assert_int_equal(fw1, 1);
  assert_int_equal(orphans, 1);
  printf("MEASURED plain_close_orphans fin_wait1=%d\n", n[TCP_FIN_WAIT1]);
  /* Let it end: the device answers the retransmitted FIN once heard. */
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 0), 0);
  uint64_t end = vt_now_ms() + 3000;
  do {
    usleep(20000);
    assert_int_equal(vt_netns_tcp_states(&E.ns, VT_NETNS_A, E.port, n), 0);
  } while (n[TCP_FIN_WAIT1] && vt_now_ms() < end);
  close(dfd);
}

int main(void) {
  ff_require_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_abort_dead_leaves_no_orphan, teardown),
      cmocka_unit_test_teardown(test_plain_close_leaves_fin_wait1_orphan,
                                teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
