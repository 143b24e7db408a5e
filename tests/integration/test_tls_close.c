/*
 * TLS close semantics on real loopback sockets: a graceful close sends
 * close_notify before FIN (the peer's SSL_read ends in ZERO_RETURN, not
 * EOF), a peer's close_notify is peer_closed, a TCP close without it is
 * truncation, aborts send no close_notify, and the handshake deadline
 * cuts silent and trickling clients at handshake_timeout from adoption
 * (on the fake clock: the bound is exact).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tlsfix.h"

/* The fixture of the connected tests: a hub, a server conn and a raw
 * client, handshaken, the conn OPEN; the conn's host behaviour (reply
 * and close on the peer's end) is cmocka's prestate. */
typedef tf_fx conn_fx;

static const cf_conn k_replies = {.reply_on_peer_closed = 1,
                                  .close_on_peer_closed = 1};
static const cf_conn k_closes = {.close_on_peer_closed = 1};

static int conn_setup(void **state) {
  const cf_conn *host = *state;
  conn_fx *x = tf_fx_new(NULL, 0);
  if (host) x->cc = *host;
  tf_connect(&x->h, tf_test_sctx, tf_test_cctx, &x->cc, &x->peer, NULL);
  x->id = vigil_conn_id(x->cc.conn);
  *state = x;
  return 0;
}

/* The same, nothing connected. */
static int hub_setup(void **state) {
  *state = tf_fx_new(NULL, 0);
  return 0;
}

static int conn_teardown(void **state) {
  tf_fx_free(*state);
  return 0;
}

static void test_graceful_close_sends_close_notify_first(void **state) {
  conn_fx *x = *state;
  assert_int_equal(vigil_send(x->cc.conn, "bye", 3), VIGIL_OK);
  assert_int_equal(vigil_close(x->cc.conn), VIGIL_OK);
  assert_int_equal(vigil_send(x->cc.conn, "late", 4), VIGIL_ECLOSED);
  assert_true(vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 3000));
  /* The peer read everything, then close_notify: ZERO_RETURN, no EOF. */
  assert_int_equal(x->peer.rx_len, 3);
  assert_memory_equal(x->peer.rx, "bye", 3);
  assert_int_equal(x->peer.zero_return, 1);
  assert_int_equal(x->peer.eof, 0);
  assert_int_equal(x->peer.failed, 0);
  assert_int_equal(tf_count(&x->h, VIGIL_EV_DRAINING), 1);
  /* ...and after it our FIN: the raw socket reads EOF next. */
  char b;
  ssize_t n;
  uint64_t t0 = vt_now_ms();
  while ((n = recv(x->peer.fd, &b, 1, 0)) < 0 && vt_now_ms() - t0 < 2000)
    vt_run_until(x->h.loop, NULL, NULL, 10);
  assert_int_equal(n, 0);
  assert_int_equal(x->cc.closed, 0); /* draining: waiting for our peer */
  tf_peer_close_notify(&x->peer);
  tf_fx_hang_up(x, VIGIL_REASON_CLOSED_BY_HOST);
  const tf_event *cl = tf_last(&x->h, VIGIL_EV_CLOSE, x->id);
  assert_int_equal(cl->truncated, 0);
  assert_null(strstr(cl->line, "truncated"));
}

static void test_peer_close_notify_is_peer_closed(void **state) {
  conn_fx *x = *state;
  tf_peer_close_notify(&x->peer);
  assert_true(vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 2000));
  assert_int_equal(x->cc.peer_closed, 1);
  /* TLS half-close: our reply still reached the peer, then ours. */
  assert_int_equal(x->peer.rx_len, 4);
  assert_memory_equal(x->peer.rx, "bye\n", 4);
  assert_int_equal(x->peer.zero_return, 1);
  tf_fx_hang_up(x, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(tf_last(&x->h, VIGIL_EV_CLOSE, x->id)->truncated, 0);
  assert_int_equal(tf_count(&x->h, VIGIL_EV_PEER_FIN), 1);
}

static void test_tcp_close_without_close_notify_is_truncation(void **state) {
  conn_fx *x = *state;
  assert_int_equal(tf_peer_send(&x->peer, "partial", 7), 0);
  shutdown(x->peer.fd, SHUT_WR); /* FIN, no close_notify */
  assert_true(vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 2000));
  assert_int_equal(x->cc.rx_len, 7); /* data before the cut still arrived */
  assert_int_equal(x->cc.peer_closed, 1);
  assert_int_equal(x->cc.reason, VIGIL_REASON_PEER_CLOSED);
  const tf_event *cl = tf_last(&x->h, VIGIL_EV_CLOSE, x->id);
  assert_int_equal(cl->truncated, 1);
  assert_non_null(strstr(cl->line, "truncated=1"));
  assert_int_equal(ERR_peek_error(), 0);
}

static void test_abort_sends_no_close_notify(void **state) {
  conn_fx *x = *state;
  vigil_abort(x->cc.conn);
  assert_true(vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 2000));
  assert_int_equal(x->peer.zero_return, 0);
  assert_int_equal(x->peer.failed, 1); /* ECONNRESET */
  assert_true(vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 2000));
  assert_int_equal(x->cc.reason, VIGIL_REASON_CLOSED_BY_HOST);
}

static void test_hub_shutdown_sends_close_notify(void **state) {
  conn_fx *x = *state;
  assert_int_equal(vigil_hub_shutdown(x->h.hub, 2000, NULL, NULL), VIGIL_OK);
  assert_true(vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 2000));
  assert_int_equal(x->peer.zero_return, 1);
  tf_fx_hang_up(x, VIGIL_REASON_SHUTDOWN);
}

/* Closing while the TLS handshake still runs: what was queued goes out
 * once it completes, then close_notify. */
static void test_close_during_handshake_flushes_after_it(void **state) {
  conn_fx *x = *state;
  tf_fx_adopt(x, tf_test_sctx);
  assert_int_equal(vigil_send(x->cc.conn, "welcome", 7), VIGIL_OK);
  assert_int_equal(vigil_close(x->cc.conn), VIGIL_OK);
  tf_peer_init(&x->peer, tf_test_cctx, x->peer.fd, 1, "localhost");
  assert_true(vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 3000));
  assert_int_equal(x->peer.rx_len, 7);
  assert_memory_equal(x->peer.rx, "welcome", 7);
  assert_int_equal(x->peer.zero_return, 1);
  tf_fx_hang_up(x, VIGIL_REASON_CLOSED_BY_HOST);
  /* It completed its TLS handshake, so it did open; it never got ready. */
  assert_int_equal(tf_count(&x->h, VIGIL_EV_OPEN), 1);
  assert_int_equal(tf_count(&x->h, VIGIL_EV_READY), 0);
}

/* ---- handshake deadline (fake clock) ---- */

/* A real ClientHello, so every trickled byte is a valid prefix. */
static size_t client_hello(unsigned char *buf, size_t cap) {
  SSL *ssl = SSL_new(tf_test_cctx);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  SSL_set_connect_state(ssl);
  SSL_set_tlsext_host_name(ssl, "localhost");
  assert_int_equal(SSL_do_handshake(ssl), -1);
  int n = BIO_read(wb, buf, (int)cap);
  assert_true(n > 100);
  SSL_free(ssl);
  ERR_clear_error();
  return (size_t)n;
}

static uint64_t g_want_in;
static int bytes_in_reached(void *hub) {
  vigil_stats st;
  vigil_hub_stats(hub, &st);
  return st.bytes_in >= g_want_in;
}

/* The handshake bound counts from adoption: a silent client and one that
 * trickles a byte of its ClientHello every 200 ms (each byte is life, yet
 * no handshake completes) are both cut at handshake_timeout, at once (no
 * draining phase, no open), and the peer sees the end. */
static void run_handshake_deadline(int trickling) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.handshake_timeout_ms = 1000;
  uint64_t now = 1000000;
  tf_hub h;
  tf_hub_init_clock(&h, &p, &now);
  cf_conn cc = {0};
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  uint64_t t0 = now;
  assert_int_equal(tf_adopt(&h, s, &cc, tf_test_sctx, 0, NULL, NULL), VIGIL_OK);
  uint64_t id = vigil_conn_id(cc.conn);
  unsigned char hello[2048];
  size_t len = trickling ? client_hello(hello, sizeof hello) : 0, sent = 0;
  for (int step = 0; step < 5; step++) {
    if (sent < len) {
      assert_int_equal(send(c, hello + sent, 1, MSG_NOSIGNAL), 1);
      g_want_in = ++sent;
      assert_true(vt_run_until(h.loop, bytes_in_reached, h.hub, 2000));
    }
    vt_advance(h.loop, h.hub, &now, 200);
  }
  if (trickling) assert_int_equal(sent, 5); /* bytes kept arriving */
  assert_int_equal(cc.closed, 0); /* at the bound: open */
  vt_advance(h.loop, h.hub, &now, 1);
  assert_int_equal(cc.closed, 1); /* one ms past it: cut */
  assert_int_equal(cc.closed_at, t0 + 1000 + 1);
  assert_int_equal(cc.reason, VIGIL_REASON_HANDSHAKE_TIMEOUT);
  assert_int_equal(tf_count(&h, VIGIL_EV_DRAINING), 0);
  assert_int_equal(tf_count(&h, VIGIL_EV_OPEN), 0);
  assert_non_null(tf_last(&h, VIGIL_EV_CLOSE, id));
  char b[64];
  ssize_t n = recv(c, b, sizeof b, MSG_DONTWAIT);
  assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
  close(c);
  tf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_handshake_timeout_silent_client(void **state) {
  (void)state;
  run_handshake_deadline(0);
}

static void test_handshake_timeout_trickling_client(void **state) {
  (void)state;
  run_handshake_deadline(1);
}

/* vigil_conn_set_policy() during the TLS handshake: a policy without a
 * handshake bound (0) gets the TLS default, as at adoption, so the
 * handshake stays bounded; a policy with one replaces it. */
static void test_set_policy_keeps_handshake_bounded(void **state) {
  (void)state;
  uint64_t now = 1000000;
  tf_hub h;
  tf_hub_init_clock(&h, NULL, &now);
  vigil_policy unbounded, three_s;
  vigil_policy_init(&unbounded);
  unbounded.handshake_timeout_ms = 0;
  vigil_policy_init(&three_s);
  three_s.handshake_timeout_ms = 3000;
  cf_conn a = {0}, b = {0};
  int as, ac, bs, bc;
  assert_int_equal(vt_tcp_pair(&as, &ac), 0);
  assert_int_equal(vt_tcp_pair(&bs, &bc), 0);
  assert_int_equal(tf_adopt(&h, as, &a, tf_test_sctx, 0, NULL, NULL), VIGIL_OK);
  assert_int_equal(tf_adopt(&h, bs, &b, tf_test_sctx, 0, NULL, NULL), VIGIL_OK);
  assert_int_equal(vigil_conn_policy(a.conn)->handshake_timeout_ms, 10000);
  assert_int_equal(vigil_conn_set_policy(a.conn, &unbounded), VIGIL_OK);
  assert_int_equal(vigil_conn_policy(a.conn)->handshake_timeout_ms, 10000);
  assert_int_equal(vigil_conn_set_policy(b.conn, &three_s), VIGIL_OK);
  assert_int_equal(vigil_conn_policy(b.conn)->handshake_timeout_ms, 3000);
  /* Silent clients: only the handshake bound can end these conns. */
  vt_advance(h.loop, h.hub, &now, 3000);
  assert_int_equal(b.closed, 0);
  vt_advance(h.loop, h.hub, &now, 1);
  assert_int_equal(b.closed, 1);
  assert_int_equal(b.reason, VIGIL_REASON_HANDSHAKE_TIMEOUT);
  assert_int_equal(a.closed, 0);
  vt_advance(h.loop, h.hub, &now, 10000 - 3001); /* at the default bound */
  assert_int_equal(a.closed, 0);
  vt_advance(h.loop, h.hub, &now, 1);
  assert_int_equal(a.closed, 1);
  assert_int_equal(a.reason, VIGIL_REASON_HANDSHAKE_TIMEOUT);
  close(ac);
  close(bc);
  tf_hub_done(&h);
  cf_conn_free(&a);
  cf_conn_free(&b);
}

/* A client that gives up during the handshake: closed at once, no
 * on_peer_closed (the host never had an open conn to reply on). */
static void test_eof_during_handshake(void **state) {
  conn_fx *x = *state;
  tf_fx_adopt(x, tf_test_sctx);
  int c = x->peer.fd;
  unsigned char hello[2048];
  size_t n = client_hello(hello, sizeof hello);
  assert_int_equal(send(c, hello, n / 2, MSG_NOSIGNAL), (ssize_t)(n / 2));
  shutdown(c, SHUT_WR);
  assert_true(vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 2000));
  assert_int_equal(x->cc.reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(x->cc.peer_closed, 0);
  const tf_event *cl = tf_last(&x->h, VIGIL_EV_CLOSE, x->id);
  assert_string_equal(cl->detail, "eof during handshake");
  assert_int_equal(cl->truncated, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_graceful_close_sends_close_notify_first, conn_setup,
                                      conn_teardown),
      cmocka_unit_test_prestate_setup_teardown(
          test_peer_close_notify_is_peer_closed, conn_setup, conn_teardown,
          (void *)&k_replies),
      cmocka_unit_test_prestate_setup_teardown(
          test_tcp_close_without_close_notify_is_truncation, conn_setup, conn_teardown,
          (void *)&k_closes),
      cmocka_unit_test_setup_teardown(test_abort_sends_no_close_notify, conn_setup,
                                      conn_teardown),
      cmocka_unit_test_setup_teardown(test_hub_shutdown_sends_close_notify, conn_setup,
                                      conn_teardown),
      cmocka_unit_test_setup_teardown(
          test_close_during_handshake_flushes_after_it, hub_setup,
          conn_teardown),
      cmocka_unit_test(test_handshake_timeout_silent_client),
      cmocka_unit_test(test_handshake_timeout_trickling_client),
      cmocka_unit_test(test_set_policy_keeps_handshake_bounded),
      cmocka_unit_test_setup_teardown(test_eof_during_handshake, hub_setup,
                                      conn_teardown),
  };
  return cmocka_run_group_tests(tests, tf_setup_ctx, tf_teardown_ctx);
}
