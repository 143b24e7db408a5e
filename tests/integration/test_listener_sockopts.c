/*
 * Socket options on accepted and adopted sockets, counted in system calls
 * (tests/support/sysfault.h counts setsockopt): a vigil_listen listener
 * carries its policy's options, which Linux passes on to every socket it
 * accepts, so accepted conns write none (the open event and a read-back
 * still show the policy's values); a policy that differs writes only the
 * difference; a listener whose options the kernel refused falls back to
 * writing them per conn; vigil_adopt and vigil_conn_set_policy write only
 * options not already in place.
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

#define MAX_ACCEPTED 8

typedef struct lt {
  cf_hub h;
  vigil_listener *l;
  vigil_conn *accepted[MAX_ACCEPTED];
  int naccepted;
  int clients[MAX_ACCEPTED];
  int nclients;
} lt;

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  lt *t = ud;
  (void)l;
  if (t->naccepted < MAX_ACCEPTED) t->accepted[t->naccepted++] = c;
}

/* A policy where every option differs from a fresh socket's (keepalive
 * off, no user timeout, Nagle on, LINGER2 = tcp_fin_timeout). */
static vigil_policy odd_policy(void) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_idle_s = 11;
  p.keepalive_intvl_s = 3;
  p.keepalive_cnt = 4;
  p.user_timeout_ms = 4321;
  p.fin_wait2_s = 17;
  return p;
}

static void lt_init(lt *t, const vigil_policy *p) {
  memset(t, 0, sizeof *t);
  cf_hub_init(&t->h, p, 10);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.on_accept = on_accept;
  lo.accept_data = t;
  assert_int_equal(vigil_listen(t->h.hub, &lo, &t->l), VIGIL_OK);
}

static int all_accepted(void *arg) {
  lt *t = arg;
  return t->naccepted == t->nclients;
}

/* Connects one client and runs the loop until the listener adopted it. */
static vigil_conn *lt_accept_one(lt *t) {
  assert_true(t->nclients < MAX_ACCEPTED);
  t->clients[t->nclients] =
      vt_connect_loopback(vigil_listener_port(t->l));
  assert_true(t->clients[t->nclients] >= 0);
  t->nclients++;
  assert_true(vt_run_until(t->h.loop, all_accepted, t, 2000));
  return t->accepted[t->naccepted - 1];
}

static void assert_opts(const vigil_sockopts *o, const vigil_policy *p);

/* Accepts one conn, checks it wrote `calls` socket options and reads
 * back p's values. */
static void lt_accept_checked(lt *t, unsigned calls, const vigil_policy *p) {
  sf_reset();
  vigil_conn *c = lt_accept_one(t);
  assert_int_equal(sf_calls(SF_SETSOCKOPT), calls);
  vigil_sockopts o;
  assert_int_equal(vigil_conn_sockopts(c, &o), VIGIL_OK);
  assert_opts(&o, p);
}

static void lt_done(lt *t) {
  for (int i = 0; i < t->nclients; i++) close(t->clients[i]);
  cf_hub_done(&t->h);
  sf_reset();
}

static void assert_opts(const vigil_sockopts *o, const vigil_policy *p) {
  assert_int_equal(o->keepalive, p->keepalive);
  assert_int_equal(o->keepalive_idle_s, p->keepalive_idle_s);
  assert_int_equal(o->keepalive_intvl_s, p->keepalive_intvl_s);
  assert_int_equal(o->keepalive_cnt, p->keepalive_cnt);
  assert_int_equal(o->user_timeout_ms, vigil_policy_user_timeout(p));
  assert_int_equal(o->nodelay, p->nodelay);
  assert_int_equal(o->fin_wait2_s, p->fin_wait2_s);
}

/* Each of the seven options, set on a bare listening socket, is on the
 * socket accept() returns: the kernel behaviour the listener relies on. */
static void test_kernel_copies_listener_options(void **state) {
  (void)state;
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  vigil_policy p = odd_policy();
  assert_int_equal(vigil_socket_apply_policy(l, &p), VIGIL_OK);
  assert_int_equal(listen(l, 4), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
  int c = vt_connect_loopback(ntohs(a.sin_port));
  assert_true(c >= 0);
  int s = accept(l, NULL, NULL);
  assert_true(s >= 0);
  vigil_sockopts o;
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_opts(&o, &p);
  /* ...and the client's socket, which took no option, has none of them. */
  assert_int_equal(vigil_socket_get_opts(c, &o), VIGIL_OK);
  assert_int_equal(o.keepalive, 0);
  assert_int_equal(o.nodelay, 0);
  assert_int_equal(o.user_timeout_ms, 0);
  assert_true(o.fin_wait2_s != 17);
  close(s);
  close(c);
  close(l);
}

/* Conns of a vigil_listen listener write no option; they have them all,
 * and their open event says so. */
static void test_accepted_conns_write_none(void **state) {
  (void)state;
  vigil_policy p = odd_policy();
  lt t;
  lt_init(&t, &p);
  for (int i = 0; i < 3; i++) lt_accept_checked(&t, 0, &p);
  const cf_event *open = cf_last(&t.h, VIGIL_EV_OPEN);
  assert_non_null(open);
  assert_true(open->has_sockopts);
  assert_opts(&open->sockopts, &p);
  lt_done(&t);
}

/* A hub policy changed after listen: accepted conns write only the
 * options that differ from what the listener passed on. */
static void test_changed_policy_writes_the_difference(void **state) {
  (void)state;
  vigil_policy p = odd_policy();
  lt t;
  lt_init(&t, &p);
  lt_accept_one(&t);
  vigil_policy q = p;
  q.nodelay = 0;
  q.dead_after_ms = 9000; /* no socket option */
  assert_int_equal(vigil_hub_set_policy(t.h.hub, &q), VIGIL_OK);
  lt_accept_checked(&t, 1, &q);
  lt_done(&t);
}

/* The kernel refused an option on the listening socket: listening works,
 * and every accepted conn writes all seven itself. */
static void test_refused_on_listener_falls_back(void **state) {
  (void)state;
  vigil_policy p = odd_policy();
  /* Call 1 is SO_REUSEADDR, call 2 the listener's SO_KEEPALIVE. */
  sf_fail(SF_SETSOCKOPT, EPERM, 1, 1);
  lt t;
  lt_init(&t, &p);
  lt_accept_checked(&t, 7, &p);
  lt_done(&t);
}

/* vigil_adopt reads the fd's options anyway (to put them back on error):
 * those already at the policy's value are not written again. */
static void test_adopt_writes_only_missing_options(void **state) {
  (void)state;
  vigil_policy p = odd_policy();
  cf_hub h;
  cf_hub_init(&h, &p, 10);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  sf_reset();
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL); /* a fresh socket: all seven */
  assert_int_equal(sf_calls(SF_SETSOCKOPT), 7);
  int s2, c2;
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  assert_int_equal(vigil_socket_apply_policy(s2, &p), VIGIL_OK);
  int one = 0;
  assert_int_equal(setsockopt(s2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
                   0);
  sf_reset();
  cf_conn cc2 = {0};
  cf_adopt(&h, s2, &cc2, NULL); /* only TCP_NODELAY is missing */
  assert_int_equal(sf_calls(SF_SETSOCKOPT), 1);
  vigil_sockopts o;
  assert_int_equal(vigil_conn_sockopts(cc2.conn, &o), VIGIL_OK);
  assert_opts(&o, &p);

  /* vigil_conn_set_policy: a deadline change writes nothing, a keepalive
   * change only what changed. */
  vigil_policy q = p;
  q.dead_after_ms = 5000;
  sf_reset();
  assert_int_equal(vigil_conn_set_policy(cc2.conn, &q), VIGIL_OK);
  assert_int_equal(sf_calls(SF_SETSOCKOPT), 0);
  q.keepalive_idle_s = 12; /* the user timeout is explicit: unchanged */
  assert_int_equal(vigil_conn_set_policy(cc2.conn, &q), VIGIL_OK);
  assert_int_equal(sf_calls(SF_SETSOCKOPT), 1);
  assert_int_equal(vigil_conn_sockopts(cc2.conn, &o), VIGIL_OK);
  assert_opts(&o, &q);
  close(c);
  close(c2);
  cf_hub_done(&h);
  cf_conn_free(&cc);
  cf_conn_free(&cc2);
  sf_reset();
}

/* fin_wait2_s 0 leaves TCP_LINGER2 to the kernel's tcp_fin_timeout: the
 * open event reports that value (read back, then kept for a second), as
 * a read-back of the conn does. */
static void test_open_event_reports_kernel_fin_timeout(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  lt t;
  lt_init(&t, &p);
  FILE *f = fopen("/proc/sys/net/ipv4/tcp_fin_timeout", "r");
  int sysctl = -1;
  if (f) {
    if (fscanf(f, "%d", &sysctl) != 1) sysctl = -1;
    fclose(f);
  }
  for (int i = 0; i < 3; i++) {
    vigil_conn *c = lt_accept_one(&t);
    vigil_sockopts o;
    assert_int_equal(vigil_conn_sockopts(c, &o), VIGIL_OK);
    const cf_event *open = cf_last(&t.h, VIGIL_EV_OPEN);
    assert_true(open->has_sockopts);
    assert_int_equal(open->sockopts.fin_wait2_s, o.fin_wait2_s);
    if (sysctl > 0) assert_int_equal(o.fin_wait2_s, sysctl);
  }
  lt_done(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_copies_listener_options),
      cmocka_unit_test(test_accepted_conns_write_none),
      cmocka_unit_test(test_changed_policy_writes_the_difference),
      cmocka_unit_test(test_refused_on_listener_falls_back),
      cmocka_unit_test(test_adopt_writes_only_missing_options),
      cmocka_unit_test(test_open_event_reports_kernel_fin_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
