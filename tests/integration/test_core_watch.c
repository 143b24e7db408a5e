/*
 * Watch-only mode (the host keeps its own I/O and reports activity), the
 * injectable hub clock, and the per-hub counters.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"

/* The host's own reader: it reads, reports rx and EOF to vigil. */
typedef struct host_io {
  ev_io w;
  vigil_conn *conn;
  size_t got;
  int eof;
} host_io;

static void host_read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  host_io *h = (host_io *)w;
  char buf[256];
  (void)revents;
  ssize_t n = recv(w->fd, buf, sizeof buf, 0);
  if (n > 0) {
    h->got += (size_t)n;
    vigil_conn_touch_rx(h->conn, (size_t)n);
  } else if (n == 0) {
    h->eof = 1;
    ev_io_stop(loop, w);
    vigil_conn_peer_eof(h->conn);
  }
}

static void test_watch_only(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 300;
  cf_hub_init(&h, &p, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &cc;
  ao.watch_only = 1;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &cc.conn), VIGIL_OK);
  assert_int_equal(vigil_send(cc.conn, "x", 1), VIGIL_ESTATE);
  host_io hio = {.conn = cc.conn};
  ev_io_init(&hio.w, host_read_cb, s, EV_READ);
  ev_io_start(h.loop, &hio.w);
  /* Activity reported by the host keeps the peer alive past dead_after. */
  for (int i = 0; i < 6; i++) {
    send(c, "ping", 4, 0);
    vt_run_until(h.loop, NULL, NULL, 100);
  }
  assert_int_equal(cc.closed, 0);
  assert_int_equal(hio.got, 24);
  /* vigil did not read: on_data never fired. */
  assert_int_equal(cc.rx_len, 0);
  /* Silence: vigil closes it; the host sees on_close and stops its io. */
  uint64_t t0 = vt_now_ms();
  assert_true(cf_wait_closed(&h, &cc, 2000));
  ev_io_stop(h.loop, &hio.w);
  assert_int_equal(cc.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_true(vt_now_ms() - t0 <= 300 + 10 + vt_slack_ms(25));
  /* The fd was vigil's to close, after on_close. */
  vt_run_until(h.loop, NULL, NULL, 20);
  errno = 0;
  char b[8];
  assert_true(recv(c, b, sizeof b, 0) < 0 && errno == ECONNRESET);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_watch_only_peer_eof(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cc.close_on_peer_closed = 1;
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &cc;
  ao.watch_only = 1;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &cc.conn), VIGIL_OK);
  host_io hio = {.conn = cc.conn};
  ev_io_init(&hio.w, host_read_cb, s, EV_READ);
  ev_io_start(h.loop, &hio.w);
  shutdown(c, SHUT_WR);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_true(hio.eof);
  assert_int_equal(cc.peer_closed, 1);
  assert_int_equal(cc.reason, VIGIL_REASON_PEER_CLOSED);
  ev_io_stop(h.loop, &hio.w);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_fake_clock_and_stats(void **state) {
  (void)state;
  uint64_t fake = 1000000;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 60000; /* a minute of fake time, no real waiting */
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &p;
  o.tick_ms = 10;
  o.clock = vt_fake_clock;
  o.clock_data = &fake;
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, &o, &hub), VIGIL_OK);
  assert_int_equal(vigil_hub_now(hub), 1000000);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &cc;
  assert_int_equal(vigil_adopt(hub, s, &ao, &cc.conn), VIGIL_OK);
  send(c, "12345", 5, 0);
  vt_run_until(loop, NULL, NULL, 30);
  assert_int_equal(cc.rx_len, 5);
  /* One ms before the bound (counted from the last byte): alive. */
  vt_advance(loop, hub, &fake, 59999);
  assert_int_equal(cc.closed, 0);
  /* At bound + one tick: dead. */
  vt_advance(loop, hub, &fake, 11);
  assert_int_equal(cc.closed, 1);
  assert_int_equal(cc.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  vigil_stats st;
  vigil_hub_stats(hub, &st);
  assert_int_equal(st.opened, 1);
  assert_int_equal(st.open, 0);
  assert_int_equal(st.bytes_in, 5);
  assert_int_equal(st.closed[VIGIL_REASON_HEARTBEAT_TIMEOUT], 1);
  close(c);
  vigil_hub_free(hub);
  ev_loop_destroy(loop);
  cf_conn_free(&cc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_watch_only),
      cmocka_unit_test(test_watch_only_peer_eof),
      cmocka_unit_test(test_fake_clock_and_stats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
