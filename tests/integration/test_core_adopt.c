/*
 * Adoption: bad fds get a clear error and stay the caller's, IPv6 works,
 * the listener accepts and adopts, EMFILE pauses accepting without a spin,
 * and hub shutdown closes everything gracefully then forces the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"

static int fd_is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static void test_bad_fds(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  int before = vt_open_fd_count();
  vigil_conn *c = (vigil_conn *)0x1;
  /* closed fd */
  int s, cl;
  assert_int_equal(vt_tcp_pair(&s, &cl), 0);
  close(s);
  close(cl);
  assert_int_equal(vigil_adopt(h.hub, s, NULL, &c), VIGIL_EBADF);
  assert_null(c);
  assert_int_equal(vigil_adopt(h.hub, -1, NULL, &c), VIGIL_EBADF);
  /* not a socket */
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(vigil_adopt(h.hub, p[0], NULL, &c), VIGIL_ENOTSOCK);
  assert_true(fd_is_open(p[0])); /* still the caller's */
  close(p[0]);
  close(p[1]);
  /* UDP */
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  assert_int_equal(vigil_adopt(h.hub, u, NULL, &c), VIGIL_ENOTTCP);
  assert_true(fd_is_open(u));
  close(u);
  /* TCP, not connected */
  int t = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(vigil_adopt(h.hub, t, NULL, &c), VIGIL_ENOTCONN);
  close(t);
  /* a bad policy */
  assert_int_equal(vt_tcp_pair(&s, &cl), 0);
  vigil_policy bad;
  vigil_policy_init(&bad);
  bad.keepalive_cnt = 0;
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.policy = &bad;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &c), VIGIL_EINVAL);
  assert_true(fd_is_open(s));
  close(s);
  close(cl);
  assert_string_equal(vigil_strerror(VIGIL_ENOTTCP),
                      vigil_strerror(VIGIL_ENOTTCP)); /* stable, non-NULL */
  assert_int_equal(vt_open_fd_count(), before);
  vigil_stats st;
  vigil_hub_stats(h.hub, &st);
  assert_int_equal(st.opened, 0);
  cf_hub_done(&h);
}

static void test_ipv6_adopt(void **state) {
  (void)state;
  int s, c;
  if (vt_tcp_pair6(&s, &c) != 0) {
    skip();
    return;
  }
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  cf_conn cc = {0};
  cc.close_on_peer_closed = 1;
  cf_adopt(&h, s, &cc, NULL);
  assert_non_null(strstr(vigil_conn_peer(cc.conn), "[::1]:"));
  assert_non_null(strstr(h.last_line, "peer=[::1]:"));
  send(c, "v6", 2, 0);
  vt_run_until(h.loop, NULL, NULL, 50);
  assert_int_equal(cc.rx_len, 2);
  close(c);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_PEER_CLOSED);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

typedef struct accepted {
  int n;
  cf_conn cc[8];
} accepted;

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  accepted *a = ud;
  (void)l;
  if (a->n < 8) {
    a->cc[a->n].conn = c;
    vigil_conn_set_user_data(c, &a->cc[a->n]);
  }
  a->n++;
}

static int accepted_n(void *arg) { return ((accepted *)arg)->n >= 3; }
static int accepted_one(void *arg) { return ((accepted *)arg)->n >= 1; }

static void test_listener_and_emfile(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, 10);
  accepted a;
  memset(&a, 0, sizeof a);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = &cf_callbacks;
  lo.on_accept = on_accept;
  lo.accept_data = &a;
  lo.emfile_backoff_min_ms = 20;
  lo.emfile_backoff_max_ms = 80;
  vigil_listener *l;
  assert_int_equal(vigil_listen(h.hub, &lo, &l), VIGIL_OK);
  uint16_t port = vigil_listener_port(l);
  assert_true(port > 0);
  int c1 = vt_connect_loopback(port);
  assert_true(vt_run_until(h.loop, accepted_one, &a, 2000));
  assert_int_equal(a.n, 1);
  /* Exhaust descriptors: the next accept fails with EMFILE. */
  struct rlimit old, tight;
  getrlimit(RLIMIT_NOFILE, &old);
  int c2 = vt_connect_loopback(port);
  int c3 = vt_connect_loopback(port);
  tight = old;
  tight.rlim_cur = (rlim_t)vt_open_fd_count() + 8;
  setrlimit(RLIMIT_NOFILE, &tight);
  /* Fill every remaining descriptor slot, holes included. */
  int fillers[64], nfill = 0;
  while (nfill < 64 && (fillers[nfill] = open("/dev/null", O_RDONLY)) >= 0)
    nfill++;
  assert_int_equal(errno, EMFILE);
  vt_run_until(h.loop, NULL, NULL, 300);
  for (int i = 0; i < nfill; i++) close(fillers[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  int paused = cf_count(&h, VIGIL_EV_ACCEPT_PAUSED);
  /* Backoff 20, 40, 80, 80... ms over 300 ms: a handful, not a spin. */
  assert_true(paused >= 2 && paused <= 8);
  assert_int_equal(a.n, 1);
  if (vt_under_valgrind()) {
    /* valgrind emulates RLIMIT_NOFILE: the kernel accepted c2 and c3,
     * then valgrind closed them (fds over its limit) and returned EMFILE.
     * The listener paused all the same; new clients stand in for them. */
    char b;
    int eof = 0;
    vt_read_avail(c2, &b, 1, &eof);
    assert_true(eof);
    close(c2);
    close(c3);
    c2 = vt_connect_loopback(port);
    c3 = vt_connect_loopback(port);
  }
  assert_true(vt_run_until(h.loop, accepted_n, &a, 1000));
  assert_int_equal(cf_count(&h, VIGIL_EV_ACCEPT_RESUMED), 1);
  vigil_stats st;
  vigil_hub_stats(h.hub, &st);
  assert_int_equal(st.accept_paused, (uint64_t)paused);
  assert_int_equal(st.open, 3);
  close(c1);
  close(c2);
  close(c3);
  vigil_listener_close(l);
  cf_hub_done(&h);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(a.cc[i].closed, 1);
    cf_conn_free(&a.cc[i]);
  }
}


/* Closing the listener from the accept_paused event: its retry timer must
 * not stay armed in libev's heap once the listener is gone. */
typedef struct pause_close {
  vigil_listener *l;
  int paused;
} pause_close;

static void close_on_pause(vigil_hub *hub, const vigil_event *ev, void *ud) {
  pause_close *pc = ud;
  (void)hub;
  if (ev->type != VIGIL_EV_ACCEPT_PAUSED) return;
  pc->paused++;
  if (pc->l) vigil_listener_close(pc->l);
  pc->l = NULL;
}

static int paused_once(void *arg) { return ((pause_close *)arg)->paused > 0; }

static void test_listener_close_from_accept_paused(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  pause_close pc = {0};
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.on_event = close_on_pause;
  o.event_data = &pc;
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, &o, &hub), VIGIL_OK);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.emfile_backoff_min_ms = 20;
  assert_int_equal(vigil_listen(hub, &lo, &pc.l), VIGIL_OK);
  int c = vt_connect_loopback(vigil_listener_port(pc.l));
  struct rlimit old, tight;
  getrlimit(RLIMIT_NOFILE, &old);
  tight = old;
  tight.rlim_cur = (rlim_t)vt_open_fd_count() + 4;
  setrlimit(RLIMIT_NOFILE, &tight);
  int fillers[32], nfill = 0;
  while (nfill < 32 && (fillers[nfill] = open("/dev/null", O_RDONLY)) >= 0)
    nfill++;
  vt_run_until(loop, paused_once, &pc, 1000);
  for (int i = 0; i < nfill; i++) close(fillers[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  assert_int_equal(pc.paused, 1);
  close(c);
  /* Nothing of the closed listener is left in the loop: with no active
   * watcher, ev_run returns after one iteration. A retry timer armed
   * after the close would keep it running, then fire into freed memory. */
  unsigned iter = ev_iteration(loop);
  uint64_t t0 = vt_now_ms();
  ev_run(loop, 0);
  assert_int_equal(ev_iteration(loop) - iter, 1);
  assert_true(vt_now_ms() - t0 < 15);
  vigil_hub_free(hub);
  ev_loop_destroy(loop);
}

static int g_done;
static void shutdown_done(vigil_hub *hub, void *ud) {
  (void)hub;
  (void)ud;
  g_done++;
}
static int is_done(void *arg) { return *(int *)arg > 0; }

static void test_hub_shutdown(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.drain_timeout_ms = 5000; /* longer than the shutdown deadline */
  cf_hub_init(&h, &p, 10);
  int s1, c1, s2, c2;
  assert_int_equal(vt_tcp_pair(&s1, &c1), 0);
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  cf_conn coop = {0}, stub = {0};
  cf_adopt(&h, s1, &coop, NULL);
  cf_adopt(&h, s2, &stub, NULL);
  g_done = 0;
  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_hub_shutdown(h.hub, 300, shutdown_done, NULL),
                   VIGIL_OK);
  /* The cooperative client answers our FIN with its own. */
  char buf[8];
  int eof = 0;
  while (!eof && vt_now_ms() - t0 < 1000) {
    vt_run_until(h.loop, NULL, NULL, 10);
    vt_read_avail(c1, buf, sizeof buf, &eof);
  }
  close(c1);
  assert_true(vt_run_until(h.loop, is_done, &g_done, 2000));
  uint64_t took = vt_now_ms() - t0;
  assert_int_equal(g_done, 1);
  assert_int_equal(coop.reason, VIGIL_REASON_SHUTDOWN);
  assert_int_equal(stub.reason, VIGIL_REASON_SHUTDOWN);
  assert_int_equal(coop.closed, 1);
  assert_int_equal(stub.closed, 1);
  /* The stubborn one was forced at the deadline. */
  assert_true(took >= 300 && took < 300 + vt_slack_ms(300));
  assert_true(coop.closed_at < stub.closed_at);
  close(c2);
  cf_hub_done(&h);
  cf_conn_free(&coop);
  cf_conn_free(&stub);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_fds),
      cmocka_unit_test(test_ipv6_adopt),
      cmocka_unit_test(test_listener_and_emfile),
      cmocka_unit_test(test_listener_close_from_accept_paused),
      cmocka_unit_test(test_hub_shutdown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
