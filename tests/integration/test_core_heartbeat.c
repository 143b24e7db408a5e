/*
 * Heartbeat, keepalive and user-timeout on real loopback sockets in a real
 * libev loop: values read back from the kernel, pings asked for at
 * ping_interval, a silent peer closed with heartbeat_timeout within
 * dead_after + one tick, and a live peer left alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"

#define TICK 10
/* Scheduling allowance on top of "bound + one tick": the loop wakes from
 * epoll with ms granularity and a busy 2-core CI machine adds jitter
 * (and valgrind a lot more). */
#define SLACK vt_slack_ms(25)

static void test_sockopts_read_back(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_idle_s = 5;
  p.keepalive_intvl_s = 2;
  p.keepalive_cnt = 3;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vigil_sockopts so;
  assert_int_equal(vigil_conn_sockopts(cc.conn, &so), VIGIL_OK);
  assert_int_equal(so.keepalive, 1);
  assert_int_equal(so.keepalive_idle_s, 5);
  assert_int_equal(so.keepalive_intvl_s, 2);
  assert_int_equal(so.keepalive_cnt, 3);
  /* AUTO = (idle + intvl * cnt) s */
  assert_int_equal(so.user_timeout_ms, 11000);
  /* The open event carries the same read-back values. */
  const cf_event *open = cf_last(&h, VIGIL_EV_OPEN);
  assert_non_null(open);
  assert_true(open->has_sockopts);
  assert_int_equal(open->sockopts.keepalive_idle_s, 5);
  assert_int_equal(open->sockopts.user_timeout_ms, 11000);
  assert_non_null(strstr(h.last_line, "user_timeout_ms=11000"));

  /* A per-conn override: explicit user timeout, then keepalive off. */
  vigil_policy q = p;
  q.user_timeout_ms = 2500;
  assert_int_equal(vigil_conn_set_policy(cc.conn, &q), VIGIL_OK);
  assert_int_equal(vigil_conn_sockopts(cc.conn, &so), VIGIL_OK);
  assert_int_equal(so.user_timeout_ms, 2500);
  q.keepalive = 0;
  q.user_timeout_ms = VIGIL_USER_TIMEOUT_OFF;
  assert_int_equal(vigil_conn_set_policy(cc.conn, &q), VIGIL_OK);
  assert_int_equal(vigil_conn_sockopts(cc.conn, &so), VIGIL_OK);
  assert_int_equal(so.keepalive, 0);
  assert_int_equal(so.user_timeout_ms, 0);
  close(c);
  cf_hub_done(&h);
  assert_int_equal(cc.closed, 1);
  assert_int_equal(cc.reason, VIGIL_REASON_SHUTDOWN);
  cf_conn_free(&cc);
}

static void test_silent_peer_heartbeat_timeout(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 100;
  p.dead_after_ms = 400;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cc.send_ping_on_due = 1;
  uint64_t t0 = vt_now_ms();
  cf_adopt(&h, s, &cc, NULL);
  assert_true(cf_wait_closed(&h, &cc, 2000));
  uint64_t took = cc.closed_at - t0;
  assert_int_equal(cc.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_true(took >= 400);
  assert_true(took <= 400 + TICK + SLACK);
  /* Pings were asked at ping_interval, each answered, so ~3 of them. */
  assert_true(cc.pings >= 3 && cc.pings <= 4);
  assert_true(cc.first_ping_at - t0 >= 100);
  assert_true(cc.first_ping_at - t0 <= 100 + TICK + SLACK);
  const cf_event *dead = cf_last(&h, VIGIL_EV_DEAD);
  assert_non_null(dead);
  assert_int_equal(dead->reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_true(dead->has_tcp_info);
  const cf_event *cl = cf_last(&h, VIGIL_EV_CLOSE);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  /* abort_dead: the peer gets RST, not FIN. Read the pings first. */
  char buf[256];
  int eof = 0;
  long n;
  errno = 0;
  do
    n = recv(c, buf, sizeof buf, 0);
  while (n > 0);
  assert_true(n < 0 && errno == ECONNRESET);
  (void)eof;
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
  fprintf(stderr, "# silent peer: heartbeat_timeout after %llu ms (bound 400, "
                  "tick %d)\n", (unsigned long long)took, TICK);
}

typedef struct talker {
  ev_timer w;
  int fd;
  int sent;
} talker;

static void talk_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  talker *t = (talker *)w;
  (void)loop;
  (void)revents;
  if (send(t->fd, "x", 1, MSG_NOSIGNAL) == 1) t->sent++;
}

static void test_live_peer_stays_open(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 300;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  talker t = {.fd = c};
  ev_timer_init(&t.w, talk_cb, 0.1, 0.1);
  ev_timer_start(h.loop, &t.w);
  /* 1 s of traffic every 100 ms: more than three times dead_after. */
  assert_false(cf_wait_closed(&h, &cc, 1000));
  assert_true(t.sent >= 8);
  ev_timer_stop(h.loop, &t.w);
  vt_run_until(h.loop, NULL, NULL, 30); /* the last byte in flight */
  assert_int_equal(cc.rx_len, (size_t)t.sent);
  assert_int_equal(cc.closed, 0);
  /* Then silence: closed within the bound of the last byte. */
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_idle_notify_and_close(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.read_idle_ms = 100;
  p.write_idle_ms = 150;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vt_run_until(h.loop, NULL, NULL, 260);
  /* Once per idle period: one read-idle, one write-idle so far. */
  assert_int_equal(cc.idles[VIGIL_IDLE_READ], 1);
  assert_int_equal(cc.idles[VIGIL_IDLE_WRITE], 1);
  assert_int_equal(cc.idles[VIGIL_IDLE_ALL], 0);
  /* Activity re-arms read-idle. */
  assert_int_equal(send(c, "y", 1, 0), 1);
  vt_run_until(h.loop, NULL, NULL, 150);
  assert_int_equal(cc.idles[VIGIL_IDLE_READ], 2);
  assert_int_equal(cc.closed, 0);
  /* idle_action CLOSE: graceful close with idle_timeout; the peer sees
   * EOF (FIN), then closes, completing the drain. */
  vigil_policy q = p;
  q.idle_action = VIGIL_IDLE_CLOSE;
  assert_int_equal(vigil_conn_set_policy(cc.conn, &q), VIGIL_OK);
  char buf[16];
  int eof = 0;
  uint64_t end = vt_now_ms() + 1000;
  while (!eof && vt_now_ms() < end) {
    vt_run_until(h.loop, NULL, NULL, 20);
    vt_read_avail(c, buf, sizeof buf, &eof);
  }
  assert_true(eof);
  close(c);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_IDLE_TIMEOUT);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sockopts_read_back),
      cmocka_unit_test(test_silent_peer_heartbeat_timeout),
      cmocka_unit_test(test_live_peer_stays_open),
      cmocka_unit_test(test_idle_notify_and_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
