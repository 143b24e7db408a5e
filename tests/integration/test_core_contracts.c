/*
 * Promises of the core API that are easy to break by reordering code:
 *  - vigil_hub_set_policy applies to conns adopted from then on; live
 *    conns keep the policy they were adopted with (fake clock);
 *  - vigil_adopt leaves the fd untouched when it fails, however late the
 *    failure (flags and socket options as the host left them);
 *  - vigil_send's output_limit check cannot wrap around for a huge len;
 *  - vigil_listen reports a failed getsockname instead of a garbage port.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#if VIGIL_TEST_TLS
#include <openssl/ssl.h>
#endif
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"
#include "sysfault.h"

static int sockopt_int(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  getsockopt(fd, level, name, &v, &len);
  return v;
}

/* ---- vigil_hub_set_policy ---- */

static void test_hub_policy_change_spares_live_conns(void **state) {
  (void)state;
  uint64_t now = 1000000;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 1000;
  p.output_limit = 1 << 20;
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &p;
  o.tick_ms = 1;
  o.clock = vt_fake_clock;
  o.clock_data = &now;
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, &o, &hub), VIGIL_OK);
  int s1, c1, s2, c2;
  assert_int_equal(vt_tcp_pair(&s1, &c1), 0);
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  cf_conn old = {0}, young = {0};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &old;
  assert_int_equal(vigil_adopt(hub, s1, &ao, &old.conn), VIGIL_OK);

  vigil_policy q = p;
  q.dead_after_ms = 100;
  q.output_limit = 4096;
  assert_int_equal(vigil_hub_set_policy(hub, &q), VIGIL_OK);
  assert_int_equal(vigil_hub_policy(hub)->dead_after_ms, 100);
  /* The live conn keeps what it was adopted with... */
  assert_int_equal(vigil_conn_policy(old.conn)->dead_after_ms, 1000);
  assert_int_equal(vigil_conn_policy(old.conn)->output_limit, 1 << 20);
  ao.user_data = &young;
  assert_int_equal(vigil_adopt(hub, s2, &ao, &young.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_policy(young.conn)->dead_after_ms, 100);

  /* ...and is judged by it: at +500 ms only the new conn is dead. */
  vt_advance(loop, hub, &now, 500);
  assert_int_equal(young.closed, 1);
  assert_int_equal(young.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_int_equal(old.closed, 0);
  vt_advance(loop, hub, &now, 600);
  assert_int_equal(old.closed, 1);
  assert_int_equal(old.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  vigil_hub_free(hub);
  ev_loop_destroy(loop);
  close(c1);
  close(c2);
  cf_conn_free(&old);
  cf_conn_free(&young);
}

/* ---- vigil_adopt on error ---- */

/* A blocking socket with every option vigil sets at its kernel default. */
static void assert_untouched(int fd) {
  assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  assert_int_equal(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
}

static void test_adopt_failure_leaves_fd_untouched(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_untouched(s);

  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
#if VIGIL_TEST_TLS
  /* A late refusal: TLS cannot be watch-only (found while setting up
   * TLS, after the fd checks). */
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  assert_non_null(ctx);
  ao.watch_only = 1;
  ao.tls_ctx = ctx;
  const int refused = VIGIL_EINVAL;
#else
  /* A late refusal: a build without TLS takes no tls_ctx (found while
   * setting up the transport, after the fd checks). */
  ao.tls_ctx = (struct ssl_ctx_st *)&h;
  const int refused = VIGIL_ENOTSUP;
#endif
  vigil_conn *conn;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &conn), refused);
  assert_null(conn);
  assert_untouched(s);

  /* The kernel refuses the last socket option: the ones set before it
   * are put back. */
  vigil_adopt_options_init(&ao);
  sf_fail_setsockopt(IPPROTO_TCP, TCP_LINGER2, ENOPROTOOPT);
  int rc = vigil_adopt(h.hub, s, &ao, &conn);
  sf_reset();
  assert_int_equal(rc, VIGIL_ENOTSUP);
  assert_null(conn);
  assert_untouched(s);
  vigil_stats st;
  vigil_hub_stats(h.hub, &st);
  assert_int_equal(st.open, 0);
  assert_int_equal(st.opened, 0);

  /* And the fd still works for the caller, and for a later adoption. */
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vigil_abort(cc.conn);
  assert_true(cf_wait_closed(&h, &cc, 1000));
#if VIGIL_TEST_TLS
  SSL_CTX_free(ctx);
#endif
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

/* ---- vigil_send ---- */

static void test_send_limit_cannot_wrap(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.output_limit = 1 << 20;
  p.overflow_action = VIGIL_OVERFLOW_FAIL;
  cf_hub h;
  cf_hub_init(&h, &p, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  int small = 4096;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  /* Fill the kernel buffer so the next bytes queue in vigil. */
  static char chunk[64 * 1024];
  while (vigil_conn_queued(cc.conn) == 0)
    assert_int_equal(vigil_send(cc.conn, chunk, sizeof chunk), VIGIL_OK);
  size_t queued = vigil_conn_queued(cc.conn);
  /* queued + len wraps to less than the limit for this len; the data
   * pointer is never read because the send is refused. */
  size_t huge = SIZE_MAX - queued + 2;
  assert_int_equal(vigil_send(cc.conn, chunk, huge), VIGIL_EOVERFLOW);
  assert_int_equal(vigil_send(cc.conn, chunk, SIZE_MAX), VIGIL_EOVERFLOW);
  assert_int_equal(vigil_conn_queued(cc.conn), queued);
  assert_int_equal(vigil_conn_get_state(cc.conn), VIGIL_CONN_OPEN);
  vigil_abort(cc.conn);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

/* ---- vigil_listen ---- */

static void test_listen_reports_getsockname_failure(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  int fds = vt_open_fd_count();
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  vigil_listener *l = (vigil_listener *)&lo; /* must be reset to NULL */
  sf_fail(SF_GETSOCKNAME, ENOBUFS, 0, 1);
  int rc = vigil_listen(h.hub, &lo, &l);
  sf_reset();
  assert_int_equal(rc, VIGIL_ENOMEM);
  assert_null(l);
  assert_int_equal(vt_open_fd_count(), fds); /* the socket was closed */
  assert_int_equal(vigil_listen(h.hub, &lo, &l), VIGIL_OK);
  assert_true(vigil_listener_port(l) > 0);
  cf_hub_done(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hub_policy_change_spares_live_conns),
      cmocka_unit_test(test_adopt_failure_leaves_fd_untouched),
      cmocka_unit_test(test_send_limit_cannot_wrap),
      cmocka_unit_test(test_listen_reports_getsockname_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
