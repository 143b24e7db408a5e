/*
 * Errors keep their cause: when vigil returns an error that came from a
 * system call (or OpenSSL), vigil_last_error() names the call, its errno
 * and a message, on the calling thread. Faults are injected with
 * tests/support/sysfault.h (a refused socket option, a failing socket())
 * or made for real (a port in use, a pipe, an unconnected socket).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"
#include "sysfault.h"

/* The record must describe exactly this failure. */
static void expect_error(int rc, int code, const char *call, int err) {
  assert_int_equal(rc, code);
  const vigil_error_info *e = vigil_last_error();
  assert_non_null(e);
  assert_int_equal(e->code, code);
  assert_string_equal(e->call, call);
  assert_int_equal(e->sys_errno, err);
  char want[256];
  snprintf(want, sizeof want, "%s: %s", call, strerror(err));
  assert_string_equal(e->message, want);
}

/* ---- refused socket options: the call and option are named ---- */

typedef struct refused_option {
  const char *name; /* "setsockopt " + name: what the record must say */
  int level, opt;
  int err;          /* errno the kernel gives */
  int code;         /* what vigil returns for it */
} refused_option;

static const refused_option refused[] = {
    {"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, ENOBUFS, VIGIL_ENOMEM},
    {"TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, EINVAL, VIGIL_ESYS},
    {"TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, EINVAL, VIGIL_ESYS},
    {"TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, EINVAL, VIGIL_ESYS},
    {"TCP_USER_TIMEOUT", IPPROTO_TCP, TCP_USER_TIMEOUT, EPERM, VIGIL_EPERM},
    {"TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, EINVAL, VIGIL_ESYS},
    {"TCP_LINGER2", IPPROTO_TCP, TCP_LINGER2, ENOPROTOOPT, VIGIL_ENOTSUP},
};

static void test_refused_option_names_the_call(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    const refused_option *r = &refused[i];
    char call[64];
    snprintf(call, sizeof call, "setsockopt %s", r->name);
    int s, c;
    assert_int_equal(vt_tcp_pair(&s, &c), 0);
    /* The socket helper for a host's own socket... */
    sf_fail_setsockopt(r->level, r->opt, r->err);
    int rc = vigil_socket_apply_policy(s, &p);
    sf_reset();
    expect_error(rc, r->code, call, r->err);
    /* ...and adoption, which puts the options back and says why. */
    cf_hub h;
    cf_hub_init(&h, NULL, 10);
    vigil_conn *conn;
    sf_fail_setsockopt(r->level, r->opt, r->err);
    rc = vigil_adopt(h.hub, s, NULL, &conn);
    sf_reset();
    expect_error(rc, r->code, call, r->err);
    cf_hub_done(&h);
    close(s);
    close(c);
  }
}

static void test_set_policy_names_the_call(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vigil_policy p = *vigil_conn_policy(cc.conn);
  p.keepalive_idle_s = 30;
  sf_fail_setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, EINVAL);
  int rc = vigil_conn_set_policy(cc.conn, &p);
  sf_reset();
  expect_error(rc, VIGIL_ESYS, "setsockopt TCP_KEEPIDLE", EINVAL);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

/* ---- adoption's checks of the fd ---- */

static void test_adopt_checks_name_the_call(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  vigil_conn *conn;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  expect_error(vigil_adopt(h.hub, pfd[0], NULL, &conn), VIGIL_ENOTSOCK,
               "getsockopt SO_TYPE", ENOTSOCK);
  close(pfd[0]);
  close(pfd[1]);
  expect_error(vigil_adopt(h.hub, pfd[0], NULL, &conn), VIGIL_EBADF,
               "fcntl F_GETFD", EBADF);
  int u = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(u >= 0);
  expect_error(vigil_adopt(h.hub, u, NULL, &conn), VIGIL_ENOTCONN,
               "getpeername", ENOTCONN);
  close(u);
  cf_hub_done(&h);
}

/* ---- listeners ---- */

static void test_listen_names_the_call(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  vigil_listener *l1, *l2;
  assert_int_equal(vigil_listen(h.hub, &lo, &l1), VIGIL_OK);
  lo.port = vigil_listener_port(l1);
  expect_error(vigil_listen(h.hub, &lo, &l2), VIGIL_EADDR, "bind",
               EADDRINUSE);
  lo.port = 0;
  sf_fail(SF_SOCKET, EMFILE, 0, 1);
  int rc = vigil_listen(h.hub, &lo, &l2);
  sf_reset();
  expect_error(rc, VIGIL_ESYS, "socket", EMFILE);
  lo.reuseport = 1;
  sf_fail_setsockopt(SOL_SOCKET, SO_REUSEPORT, ENOPROTOOPT);
  rc = vigil_listen(h.hub, &lo, &l2);
  sf_reset();
  expect_error(rc, VIGIL_ENOTSUP, "setsockopt SO_REUSEPORT", ENOPROTOOPT);
  vigil_listener_close(l1);
  cf_hub_done(&h);
}

/* ---- the census ---- */

static void test_census_names_the_call(void **state) {
  (void)state;
  vigil_census_query q;
  vigil_census_query_init(&q);
  vigil_census *cs = NULL;
  sf_fail(SF_SOCKET, EACCES, 0, 1);
  int rc = vigil_census_run(&q, &cs);
  sf_reset();
  expect_error(rc, VIGIL_EPERM, "socket AF_NETLINK", EACCES);
  assert_null(cs);
}

/* ---- what does not come from a system call leaves the record ---- */

static void test_argument_errors_keep_the_record(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_policy p;
  vigil_policy_init(&p);
  sf_fail_setsockopt(IPPROTO_TCP, TCP_KEEPCNT, EINVAL);
  int rc = vigil_socket_apply_policy(s, &p);
  sf_reset();
  expect_error(rc, VIGIL_ESYS, "setsockopt TCP_KEEPCNT", EINVAL);
  p.keepalive_cnt = 0; /* invalid: refused before any system call */
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_EINVAL);
  assert_int_equal(vigil_send(NULL, "x", 1), VIGIL_EINVAL);
  const vigil_error_info *e = vigil_last_error();
  assert_int_equal(e->code, VIGIL_ESYS);
  assert_string_equal(e->call, "setsockopt TCP_KEEPCNT");
  close(s);
  close(c);
}

#if VIGIL_TEST_TLS
/* ---- OpenSSL failures name the OpenSSL call ---- */

static void test_tls_context_names_the_call(void **state) {
  (void)state;
  char why[256];
  struct ssl_ctx_st *ctx = NULL;
  int rc = vigil_tls_server_ctx_new("/nonexistent/cert.pem",
                                    "/nonexistent/key.pem", NULL, 0, NULL,
                                    &ctx, why, sizeof why);
  assert_int_equal(rc, VIGIL_ETLS);
  assert_null(ctx);
  const vigil_error_info *e = vigil_last_error();
  assert_int_equal(e->code, VIGIL_ETLS);
  assert_string_equal(e->call, "SSL_CTX_use_certificate_chain_file");
  assert_int_equal(e->sys_errno, 0);
  /* The same words as the err buffer, after the call's name. */
  char want[320];
  snprintf(want, sizeof want, "SSL_CTX_use_certificate_chain_file: %s", why);
  assert_string_equal(e->message, want);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused_option_names_the_call),
      cmocka_unit_test(test_set_policy_names_the_call),
      cmocka_unit_test(test_adopt_checks_name_the_call),
      cmocka_unit_test(test_listen_names_the_call),
      cmocka_unit_test(test_census_names_the_call),
      cmocka_unit_test(test_argument_errors_keep_the_record),
#if VIGIL_TEST_TLS
      cmocka_unit_test(test_tls_context_names_the_call),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
