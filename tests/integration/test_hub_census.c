/*
 * Hub census on loopback: state counts on the hub's ports, a leaked fd
 * (an accepted socket on the hub's port that vigil does not own), the
 * CLOSE_WAIT first-seen table driven by a fake clock, orphans, vigil's own
 * CLOSE_WAIT conns not counted as ghosts, and the periodic census events.
 */
#include <errno.h>
#include <ev.h>
#include <stddef.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ghostfix.h"
#include "sysfault.h"
#include "testutil.h"
#include "vigil.h"

typedef struct fixture {
  struct ev_loop *loop;
  vigil_hub *hub;
  gf_log log;
  vigil_policy policy;
  uint64_t fake_now;
  int lfd;      /* the test's own listener on the hub's port */
  uint16_t port;
  gf_conn rec[4];
  int fds[16];  /* every fd the test holds, closed at teardown */
  int nfds;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(f->loop);
  vigil_policy_init(&f->policy);
  f->fake_now = 5000000;
  f->lfd = -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->hub) vigil_hub_free(f->hub);
  for (int i = 0; i < f->nfds; i++)
    if (f->fds[i] >= 0) close(f->fds[i]);
  if (f->lfd >= 0) close(f->lfd);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

static void hub_up(fixture *f, int fake_clock, uint32_t interval,
                   uint32_t threshold) {
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &f->policy;
  o.on_event = gf_on_event;
  o.event_data = &f->log;
  o.census_interval_ms = interval;
  o.ghost_threshold = threshold;
  if (fake_clock) {
    o.clock = vt_fake_clock;
    o.clock_data = &f->fake_now;
  }
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

static int keep(fixture *f, int fd) {
  assert_true(fd >= 0);
  assert_true(f->nfds < 16);
  f->fds[f->nfds++] = fd;
  return fd;
}

/* The test's own listener on 127.0.0.1, ephemeral port. */
static void listen_here(fixture *f) {
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 16), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
  f->port = ntohs(a.sin_port);
}

/* Connects a client to the test listener and accepts it: *srv is the
 * accepted end (local port = f->port); returns the client fd. */
static int connect_accept(fixture *f, int *srv) {
  int c = keep(f, vt_connect_loopback(f->port));
  *srv = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(*srv >= 0);
  return c;
}

/* One accepted socket on the hub's port adopted by vigil (rec[0]);
 * returns the client's fd. */
static int adopted(fixture *f) {
  int s;
  int c = connect_accept(f, &s);
  assert_int_equal(gf_adopt(f->hub, s, &f->rec[0], NULL), VIGIL_OK);
  return c;
}

/* One accepted socket the host keeps but never gives vigil (*s, the last
 * of f->fds); returns the client's fd. */
static int forgotten(fixture *f, int *s) {
  int c = connect_accept(f, s);
  keep(f, *s);
  return c;
}

/* The scene most tests start from: the hub (as hub_up) and the test's
 * listener on the port, with a conn vigil adopted (rec[0]) and a socket
 * the host forgot (*s); returns the forgotten socket's client fd. */
static int scene(fixture *f, int fake_clock, uint32_t interval,
                 uint32_t threshold, int *s) {
  hub_up(f, fake_clock, interval, threshold);
  listen_here(f);
  adopted(f);
  return forgotten(f, s);
}

static vigil_hub_census_report census(fixture *f) {
  vigil_hub_census_report r;
  assert_int_equal(vigil_hub_census(f->hub, &r), VIGIL_OK);
  return r;
}

/* Checks a report against "key=value ...": a key is a report field or a
 * TCP state name (its count). Fields not named are not checked. */
static void expect_census(const vigil_hub_census_report *r, const char *want) {
  static const struct {
    const char *key;
    size_t off;
  } fields[] = {
      {"total", offsetof(vigil_hub_census_report, total)},
      {"nports", offsetof(vigil_hub_census_report, nports)},
      {"conns", offsetof(vigil_hub_census_report, conns)},
      {"close_wait_unowned",
       offsetof(vigil_hub_census_report, close_wait_unowned)},
      {"close_wait_stale", offsetof(vigil_hub_census_report, close_wait_stale)},
      {"leaked", offsetof(vigil_hub_census_report, leaked)},
      {"orphans", offsetof(vigil_hub_census_report, orphans)},
      {"ghosts", offsetof(vigil_hub_census_report, ghosts)},
  };
  char key[32];
  unsigned value;
  int used;
  for (const char *p = want;
       sscanf(p, " %31[^=]=%u%n", key, &value, &used) == 2; p += used) {
    const uint32_t *got = NULL;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
      if (strcmp(key, fields[i].key) == 0)
        got = (const uint32_t *)((const char *)r + fields[i].off);
    if (!got) {
      int st = vigil_census_state_parse(key);
      assert_true(st >= 0); /* a key the report has */
      got = &r->counts[st];
    }
    if (*got != value)
      print_error("census %s: %u, want %u\n", key, *got, value);
    assert_int_equal(*got, value);
  }
}


/* A NETLINK_SOCK_DIAG socket that never answers: one end of a datagram
 * socketpair stands in for the kernel (the other end stays open, silent). */
static int silent_kernel[2] = {-1, -1};

static int fake_netlink_socket(int domain, int type, int protocol) {
  (void)protocol;
  if (domain != AF_NETLINK) return -2;
  /* The caller's SOCK_NONBLOCK / SOCK_CLOEXEC flags carry over. */
  int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (socketpair(AF_UNIX, SOCK_DGRAM | flags, 0, silent_kernel) < 0)
    return -1;
  return silent_kernel[0];
}

static ssize_t fake_netlink_sendto(int fd, const void *buf, size_t len,
                                   int flags, const struct sockaddr *to,
                                   socklen_t tolen) {
  (void)buf;
  (void)flags;
  (void)to;
  (void)tolen;
  return fd == silent_kernel[0] ? (ssize_t)len : -2;
}

static void test_silent_kernel_does_not_block_loop(void **state) {
  fixture *f = *state;
  hub_up(f, 0, 0, 0);
  listen_here(f);
  adopted(f);
  sf_set_socket_hook(fake_netlink_socket);
  sf_set_sendto_hook(fake_netlink_sendto);
  uint64_t t0 = vt_now_ms();
  vigil_hub_census_report r;
  int rc = vigil_hub_census(f->hub, &r);
  uint64_t took = vt_now_ms() - t0;
  sf_reset();
  if (silent_kernel[1] >= 0) close(silent_kernel[1]);
  /* The hub's census runs on the loop: it gives up on a kernel that does
   * not answer within its wait bound instead of blocking for seconds. */
  assert_int_equal(rc, VIGIL_EAGAIN);
  assert_true(took < 1000);
  assert_int_equal(r.total, 0);
  assert_int_equal(r.conns, 1);
}

static void test_errors_and_empty_hub(void **state) {
  fixture *f = *state;
  hub_up(f, 0, 0, 0);
  vigil_hub_census_report r;
  assert_int_equal(vigil_hub_census(NULL, &r), VIGIL_EINVAL);
  assert_int_equal(vigil_hub_census(f->hub, NULL), VIGIL_EINVAL);
  memset(&r, 0xab, sizeof r);
  assert_int_equal(vigil_hub_census(f->hub, &r), VIGIL_OK);
  expect_census(&r, "nports=0 total=0 ghosts=0 conns=0");
}

struct accepted {
  gf_conn *rec;
  int n;
  int max;
};

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  struct accepted *a = ud;
  (void)l;
  if (a->n < a->max) {
    a->rec[a->n].c = c;
    a->rec[a->n].id = vigil_conn_id(c);
    vigil_conn_set_user_data(c, &a->rec[a->n]);
  }
  a->n++;
}

static int all_accepted(void *arg) {
  struct accepted *a = arg;
  return a->n >= a->max;
}

static void test_counts_on_listener_port(void **state) {
  fixture *f = *state;
  hub_up(f, 0, 0, 0);
  struct accepted acc = {f->rec, 0, 3};
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = gf_callbacks();
  lo.on_accept = on_accept;
  lo.accept_data = &acc;
  vigil_listener *l;
  assert_int_equal(vigil_listen(f->hub, &lo, &l), VIGIL_OK);

  /* A listener alone already gives the hub a port. */
  vigil_hub_census_report r = census(f);
  expect_census(&r, "nports=1 LISTEN=1 total=1");

  for (int i = 0; i < 3; i++) keep(f, vt_connect_loopback(vigil_listener_port(l)));
  assert_true(vt_run_until(f->loop, all_accepted, &acc, 2000));
  r = census(f);
  /* Only the accepted ends: the clients' local ports are ephemeral. */
  expect_census(&r, "nports=1 conns=3 LISTEN=1 ESTABLISHED=3 total=4 "
                    "leaked=0 orphans=0 close_wait_unowned=0 ghosts=0");
}

static void test_leaked_fd_is_found(void **state) {
  fixture *f = *state;
  int s2;
  scene(f, 0, 0, 0, &s2);

  vigil_hub_census_report r = census(f);
  /* One port: the conn's local port. */
  expect_census(&r, "nports=1 conns=1 ESTABLISHED=2 LISTEN=1 leaked=1 "
                    "ghosts=1");

  /* Once vigil owns it too, nothing is leaked. */
  gf_conn extra = {0};
  f->fds[f->nfds - 1] = -1;
  assert_int_equal(gf_adopt(f->hub, s2, &extra, NULL), VIGIL_OK);
  r = census(f);
  expect_census(&r, "conns=2 leaked=0 ghosts=0");
  vigil_hub_free(f->hub);
  f->hub = NULL;
  assert_int_equal(extra.reason, VIGIL_REASON_SHUTDOWN);
}

static void test_close_wait_ages_across_censuses(void **state) {
  fixture *f = *state;
  f->policy.close_wait_grace_ms = 5000;
  int s2;
  int c2 = scene(f, 1, 0, 0, &s2);
  /* The peer closes; the host never closes s2: CLOSE_WAIT forever. */
  shutdown(c2, SHUT_WR);
  uint64_t end = vt_now_ms() + 2000;
  while (vt_tcp_state(s2) != VIGIL_TCP_CLOSE_WAIT && vt_now_ms() < end)
    usleep(1000);
  assert_int_equal(vt_tcp_state(s2), VIGIL_TCP_CLOSE_WAIT);

  vigil_hub_census_report r = census(f);
  /* First sighting: not stale yet. */
  expect_census(&r, "CLOSE_WAIT=1 close_wait_unowned=1 close_wait_stale=0 "
                    "leaked=0 ghosts=0");

  f->fake_now += 4999;
  r = census(f);
  expect_census(&r, "close_wait_stale=0");
  f->fake_now += 1;
  r = census(f);
  expect_census(&r, "close_wait_unowned=1 close_wait_stale=1 ghosts=1");

  /* Closing it empties the table: the same age is not carried over to a
   * later socket. */
  close(s2);
  f->fds[f->nfds - 1] = -1;
  r = census(f);
  expect_census(&r, "close_wait_unowned=0 close_wait_stale=0");
}

static int in_close_wait(void *c) {
  return vigil_conn_get_state(c) == VIGIL_CONN_CLOSE_WAIT;
}

static void test_vigil_close_wait_is_not_a_ghost(void **state) {
  fixture *f = *state;
  f->policy.close_wait_grace_ms = 60000;
  hub_up(f, 1, 0, 0);
  listen_here(f);
  f->rec[0].hold_close_wait = 1;
  int c1 = adopted(f);
  shutdown(c1, SHUT_WR);
  assert_true(vt_run_until(f->loop, in_close_wait, f->rec[0].c, 2000));
  vigil_hub_census_report r = census(f);
  expect_census(&r, "close_wait_unowned=0");
  f->fake_now += 120000; /* far past the grace, as far as the census knows */
  r = census(f);
  expect_census(&r, "CLOSE_WAIT=1 close_wait_unowned=0 ghosts=0");
}

/* Takes censuses until one counts a socket in state (2 s at most). */
static vigil_hub_census_report census_until(fixture *f, vigil_tcp_state state) {
  vigil_hub_census_report r;
  uint64_t end = vt_now_ms() + 2000;
  do {
    r = census(f);
  } while (r.counts[state] == 0 && vt_now_ms() < end);
  return r;
}

static void test_orphans_are_counted(void **state) {
  fixture *f = *state;
  hub_up(f, 0, 0, 0);
  listen_here(f);
  adopted(f);
  int s3;
  int c3 = connect_accept(f, &s3);
  /* The host closes s3 while its peer stays: FIN_WAIT2 with no fd. */
  close(s3);
  vigil_hub_census_report r = census_until(f, VIGIL_TCP_FIN_WAIT2);
  expect_census(&r, "FIN_WAIT2=1 orphans=1 ghosts=1 leaked=0");

  /* The peer closes too: TIME_WAIT is normal, not a ghost. */
  close(c3);
  f->fds[f->nfds - 1] = -1;
  r = census_until(f, VIGIL_TCP_TIME_WAIT);
  expect_census(&r, "TIME_WAIT=1 orphans=0 ghosts=0");
}

static int got_ghosts_event(void *arg) {
  return ((gf_log *)arg)->per_type[VIGIL_EV_GHOSTS] > 0;
}

static int got_two_census_events(void *arg) {
  return ((gf_log *)arg)->per_type[VIGIL_EV_CENSUS] >= 2;
}

static void test_periodic_census_events(void **state) {
  fixture *f = *state;
  int s2;
  scene(f, 0, 50, 0, &s2);
  uint64_t t0 = vt_now_ms();
  assert_true(vt_run_until(f->loop, got_ghosts_event, &f->log, 2000));
  assert_true(vt_now_ms() - t0 >= 45);
  const gf_event *c = gf_find(&f->log, VIGIL_EV_CENSUS, 0);
  assert_non_null(c);
  assert_true(c->has_counts);
  assert_int_equal(c->state_counts[VIGIL_TCP_ESTABLISHED], 2);
  assert_int_equal(c->state_counts[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(c->count, 3);
  assert_non_null(strstr(c->detail, "leaked=1"));
  const gf_event *g = gf_find(&f->log, VIGIL_EV_GHOSTS, 0);
  assert_int_equal(g->count, 1);
  assert_string_equal(g->detail, "leaked=1 close_wait_stale=0 orphans=0");
}

static void test_periodic_census_threshold(void **state) {
  fixture *f = *state;
  int s2;
  scene(f, 0, 30, 1, &s2); /* one ghost is tolerated */
  assert_true(vt_run_until(f->loop, got_two_census_events, &f->log, 2000));
  assert_int_equal(f->log.per_type[VIGIL_EV_GHOSTS], 0);
}

static void timer_fired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  *(int *)w->data = 1;
}

/* The census timer must not keep ev_run alive on its own, and freeing the
 * hub must leave the loop's reference count balanced (else ev_run would
 * return before a plain timer fires). */
static void test_census_timer_does_not_hold_loop(void **state) {
  fixture *f = *state;
  hub_up(f, 0, 1000, 0);
  uint64_t t0 = vt_now_ms();
  ev_run(f->loop, 0);
  assert_true(vt_now_ms() - t0 < 500);
  vigil_hub_free(f->hub);
  f->hub = NULL;
  int fired = 0;
  ev_timer t;
  ev_timer_init(&t, timer_fired, 0.03, 0.0);
  t.data = &fired;
  ev_timer_start(f->loop, &t);
  t0 = vt_now_ms();
  ev_run(f->loop, 0);
  assert_true(fired);
  assert_true(vt_now_ms() - t0 >= 25);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_silent_kernel_does_not_block_loop),
      TEST(test_errors_and_empty_hub),
      TEST(test_counts_on_listener_port),
      TEST(test_leaked_fd_is_found),
      TEST(test_close_wait_ages_across_censuses),
      TEST(test_vigil_close_wait_is_not_a_ghost),
      TEST(test_orphans_are_counted),
      TEST(test_periodic_census_events),
      TEST(test_periodic_census_threshold),
      TEST(test_census_timer_does_not_hold_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
