/*
 * A peer that vanishes without FIN or RST (nftables drops everything in
 * and out of namespace B), detected by each of vigil's three mechanisms,
 * with the detection latency checked against its configured bound:
 *
 *   1. application heartbeat: heartbeat_timeout at dead_after after the
 *      last byte received, + at most one wheel tick;
 *   2. data in flight, no heartbeat: user_timeout via TCP_USER_TIMEOUT;
 *   3. keepalive only (idle 1, intvl 1, cnt 2), idle peer:
 *      keepalive_timeout at idle + intvl * cnt;
 *   +  suspicion: with suspect_ping the host is asked for a ping at
 *      suspect_after, and the unacknowledged ping is reported as evidence
 *      ("suspect") before dead_after.
 *
 * Allowances above the bound, and why:
 *  - vigil's own deadlines (heartbeat): one wheel tick (10 ms) plus 30 ms
 *    of scheduling on a shared 2-core machine (the loop may be a few ms
 *    late to run, and the test's clock reads add a ms each).
 *  - kernel keepalive: each of the three keepalive steps is a kernel timer
 *    of about 1 s; with HZ = 250 the timer wheel rounds such timers up to
 *    its level-1 granularity of 8 jiffies = 32 ms, plus one jiffy (4 ms):
 *    3 x 36 = 108 ms, plus the same 30 ms for the loop = 140 ms.
 *  - kernel user timeout: Linux starts the TCP_USER_TIMEOUT clock at the
 *    first RTO retransmission (retrans_stamp), not at the send. On a fresh
 *    send that is preceded by a tail loss probe one RTO later, so the kill
 *    lands at send + ~2 RTO + user_timeout; the bound is user_timeout and
 *    the allowance 2 x the path's RTO before the loss (read from tcp_info,
 *    204 ms on this veth: the 200 ms minimum) plus 140 ms of timer
 *    rounding and scheduling.
 */
#include <netinet/in.h>
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

static void test_heartbeat_timeout(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 300;
  p.dead_after_ms = 1000;
  ff_env_up(&E, &p);
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  gf_conn srv = {.ping_sends = 1};
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  ff_peer dev;
  ff_peer_start(&E, &dev, dfd, 1);
  /* A healthy second: the device answers every ping. */
  vt_run_until(E.loop, NULL, NULL, 1000);
  assert_false(srv.closed);
  assert_true(srv.bytes >= 2);

  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 3000));
  assert_int_equal(srv.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(cl);
  /* vigil's own view, exact: at least dead_after of silence. */
  assert_true(cl->last_rx_ms >= 1000);
  /* The test's clock: from the last byte the server got to the close.
   * vigil stamps receipt with the loop iteration's clock, which can be
   * up to a ms before on_data reads the test clock: hence lo - 1. */
  ff_check_latency("heartbeat_timeout", (int64_t)(cl->t_ms - srv.last_rx_ms),
                   1000 - 1, 1000 + TICK_MS + SCHED_MS);
  assert_non_null(gf_find(&E.log, VIGIL_EV_DEAD, srv.id));
  close(dfd);
}

static void test_user_timeout_with_data_in_flight(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.user_timeout_ms = 2000; /* keepalive stays at its 60 s default */
  ff_env_up(&E, &p);
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  gf_conn srv = {0};
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  /* One round trip so the kernel has an RTT sample. */
  assert_int_equal(gf_send_all(dfd, "hello"), 0);
  vt_run_until(E.loop, NULL, NULL, 50);
  assert_int_equal(srv.bytes, 5);
  vigil_tcp_info ti;
  assert_int_equal(vigil_conn_tcp_info(srv.c, &ti), VIGIL_OK);
  int64_t rto_ms = ti.rto_us / 1000;

  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  uint64_t t_send = vt_now_ms();
  assert_int_equal(vigil_send(srv.c, "state update", 12), VIGIL_OK);
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 5000));
  assert_int_equal(srv.reason, VIGIL_REASON_USER_TIMEOUT);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_USER_TIMEOUT);
  const gf_event *dead = gf_find(&E.log, VIGIL_EV_DEAD, srv.id);
  assert_non_null(dead);
  assert_true(dead->has_tcp_info);
  /* What survives the kill: the RTO retransmissions, no probes. */
  assert_true(dead->tcp_info.retransmits > 0);
  assert_int_equal(dead->tcp_info.probes, 0);
  ff_check_latency("user_timeout", (int64_t)(cl->t_ms - t_send), 2000,
                   2000 + 2 * rto_ms + 140);
  close(dfd);
}

static void test_keepalive_timeout_idle_peer(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_idle_s = 1;
  p.keepalive_intvl_s = 1;
  p.keepalive_cnt = 2;
  /* user_timeout stays AUTO = (1 + 1 * 2) * 1000 = 3000 ms. */
  ff_env_up(&E, &p);
  /* The kernel counts keepalive idleness from the last segment received,
   * the handshake's ACK: start the clock before the connect. */
  uint64_t t0 = vt_now_ms();
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  gf_conn srv = {0};
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  vigil_sockopts so;
  assert_int_equal(vigil_conn_sockopts(srv.c, &so), VIGIL_OK);
  assert_int_equal(so.user_timeout_ms, 3000);
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 6000));
  assert_int_equal(srv.reason, VIGIL_REASON_KEEPALIVE_TIMEOUT);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(cl);
  const gf_event *dead = gf_find(&E.log, VIGIL_EV_DEAD, srv.id);
  assert_non_null(dead);
  assert_true(dead->has_tcp_info);
  assert_int_equal(dead->tcp_info.probes, 2);
  assert_int_equal(dead->tcp_info.retransmits, 0);
  ff_check_latency("keepalive_timeout", (int64_t)(cl->t_ms - t0), 3000,
                   3000 + 140);
  close(dfd);
}

static void test_suspect_before_dead(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 2000;
  p.suspect_after_ms = 600;
  p.suspect_ping = 1;
  ff_env_up(&E, &p);
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  gf_conn srv = {.ping_sends = 1};
  uint64_t t0 = vt_now_ms();
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 4000));
  assert_int_equal(srv.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_int_equal(srv.pings, 1);
  const gf_event *ping = gf_find(&E.log, VIGIL_EV_PING_DUE, srv.id);
  const gf_event *sus = gf_find(&E.log, VIGIL_EV_SUSPECT, srv.id);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(ping);
  assert_non_null(sus);
  assert_non_null(cl);
  assert_int_equal(E.log.per_type[VIGIL_EV_SUSPECT], 1);
  assert_true(sus->evidence & VIGIL_SUSPECT_UNACKED_RETRANS);
  assert_true(sus->has_tcp_info);
  assert_true(sus->tcp_info.unacked > 0);
  assert_true(sus->tcp_info.retransmits > 0);
  ff_check_latency("suspect_ping_asked", (int64_t)(ping->t_ms - t0), 600,
                   600 + TICK_MS + SCHED_MS);
  /* The ping's first RTO retransmission comes ~2 RTO after it (tail loss
   * probe first); a re-check every (2000 - 600) / 4 = 350 ms sees it. */
  ff_check_latency("suspect_raised", (int64_t)(sus->t_ms - t0), 600,
                   2000 - 1);
  printf("MEASURED suspect_lead_before_dead_ms=%lld\n",
         (long long)(cl->t_ms - sus->t_ms));
  close(dfd);
}

int main(void) {
  ff_require_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_heartbeat_timeout, teardown),
      cmocka_unit_test_teardown(test_user_timeout_with_data_in_flight,
                                teardown),
      cmocka_unit_test_teardown(test_keepalive_timeout_idle_peer, teardown),
      cmocka_unit_test_teardown(test_suspect_before_dead, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
