/*
 * vigil_metrics_write() on a real hub: loopback traffic, closes of several
 * reasons, a takeover, a heartbeat death at a known overshoot (fake
 * clock) and a census all show in the exposition, which promtool
 * (Debian's prometheus package) must accept. Also: the takeover latency of
 * a claim made inside another claim's on_takeover, the periodic census
 * feeding the metrics without an event sink, and argument errors.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "promcheck.h"
#include "testutil.h"
#include "vigil.h"

#define NCONN 8
#define TEXT_CAP 65536

typedef struct rec {
  vigil_conn *conn;
  int closed;
  vigil_reason reason;
} rec;

typedef struct fixture {
  struct ev_loop *loop;
  vigil_hub *hub;
  uint64_t fake_now;
  rec r[NCONN];
  int client[NCONN];
  char text[TEXT_CAP];
  /* nested-claim test */
  int asks;
  int spin_ms;
} fixture;

static fixture *F;

static void on_data(vigil_conn *c, const void *d, size_t n, void *ud) {
  (void)ud;
  vigil_send(c, d, n);
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  rec *r = ud;
  (void)c;
  r->closed++;
  r->reason = reason;
}

static const vigil_conn_callbacks callbacks = {.on_data = on_data,
                                               .on_close = on_close};

static void hub_up(fixture *f, const vigil_policy *p, int fake_clock,
                   uint32_t census_ms, vigil_takeover_cb ask) {
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = p;
  if (fake_clock) {
    o.clock = vt_fake_clock;
    o.clock_data = &f->fake_now;
  }
  o.census_interval_ms = census_ms;
  o.on_takeover = ask;
  o.takeover_data = f;
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(f->loop);
  f->fake_now = 1000000;
  for (int i = 0; i < NCONN; i++) f->client[i] = -1;
  F = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->hub) vigil_hub_free(f->hub);
  for (int i = 0; i < NCONN; i++)
    if (f->client[i] >= 0) close(f->client[i]);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

/* Adopts the server end of a fresh loopback pair as r[i]. */
static void open_conn(fixture *f, int i, const vigil_policy *p) {
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  f->client[i] = c;
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &callbacks;
  ao.user_data = &f->r[i];
  ao.policy = p;
  assert_int_equal(vigil_adopt(f->hub, s, &ao, &f->r[i].conn), VIGIL_OK);
}

static int closed_pred(void *arg) { return ((rec *)arg)->closed > 0; }

static void wait_closed(fixture *f, int i) {
  assert_true(vt_run_until(f->loop, closed_pred, &f->r[i], 3000));
}

static const char *write_metrics(fixture *f) {
  int n = vigil_metrics_write(f->hub, f->text, sizeof f->text);
  assert_true(n > 0 && (size_t)n < sizeof f->text);
  assert_int_equal(f->text[n - 1], '\n');
  return f->text;
}

/* The value of the sample line that starts with `series ` exactly. */
static double value_of(const char *text, const char *series) {
  size_t len = strlen(series);
  for (const char *p = text; p; p = strchr(p, '\n')) {
    if (*p == '\n') p++;
    if (strncmp(p, series, len) == 0 && p[len] == ' ')
      return strtod(p + len + 1, NULL);
  }
  print_error("no sample %s\n", series);
  fail();
  return -1;
}

static void check_with_promtool(const char *text) {
  char why[4096];
  int rc = vt_promtool_check(text, why, sizeof why);
  if (rc < 0) {
    print_message("SKIP: promtool not installed (Debian package prometheus)\n");
    skip();
  }
  if (rc != 0) print_error("promtool check metrics:\n%s\n---\n%s", why, text);
  assert_int_equal(rc, 0);
}

/* Everything at once, then promtool on the result. */
static void test_hub_exposition(void **state) {
  fixture *f = *state;
  vigil_policy p, mortal;
  vigil_policy_init(&p);
  mortal = p;
  mortal.dead_after_ms = 1000;
  hub_up(f, &p, 1, 0, NULL);
  for (int i = 0; i < 5; i++) open_conn(f, i, &p);
  open_conn(f, 5, &mortal);

  /* Traffic: 5 bytes each way on conn 0. */
  char buf[16];
  assert_int_equal(write(f->client[0], "hello", 5), 5);
  size_t got = 0;
  uint64_t until = vt_now_ms() + 3000;
  while (got < 5 && vt_now_ms() < until) {
    int eof = 0;
    vt_run_until(f->loop, NULL, NULL, 10);
    long n = vt_read_avail(f->client[0], buf + got, sizeof buf - got, &eof);
    if (n > 0) got += (size_t)n;
  }
  assert_int_equal(got, 5);

  /* closed_by_host, peer_closed, takeover. */
  vigil_close(f->r[1].conn);
  close(f->client[2]);
  f->client[2] = -1;
  assert_int_equal(vigil_conn_identify(f->r[3].conn, "dev", 3), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(f->r[4].conn, "dev", 3), VIGIL_OK);
  /* Conn 3's peer shows no loss evidence: closed gracefully, done once its
   * client answers our FIN (the fake clock holds the takeover bound). */
  shutdown(f->client[3], SHUT_WR);
  wait_closed(f, 2);
  wait_closed(f, 3);
  assert_int_equal(f->r[2].reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(f->r[3].reason, VIGIL_REASON_TAKEOVER);
  /* Conn 1 closes once its client answers our FIN. */
  shutdown(f->client[1], SHUT_WR);
  wait_closed(f, 1);
  assert_int_equal(f->r[1].reason, VIGIL_REASON_CLOSED_BY_HOST);

  /* Conn 5 is silent: its bound is adoption + 1000 ms. Jump 37 ms past. */
  vt_advance(f->loop, f->hub, &f->fake_now, 1000 + 37);
  wait_closed(f, 5);
  assert_int_equal(f->r[5].reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);

  /* Before any census the census families are absent. */
  const char *text = write_metrics(f);
  assert_null(strstr(text, "vigil_sockets"));
  vigil_hub_census_report cr;
  assert_int_equal(vigil_hub_census(f->hub, &cr), VIGIL_OK);
  f->fake_now += 2500;
  text = write_metrics(f);

  assert_true(value_of(text, "vigil_connections_open") == 2);
  assert_true(value_of(text, "vigil_connections_opened_total") == 6);
  static const struct {
    const char *reason;
    double n;
  } closes[] = {{"closed_by_host", 1}, {"peer_closed", 1},
                {"takeover", 1},       {"heartbeat_timeout", 1},
                {"shutdown", 0},       {"tls_error", 0}};
  for (size_t i = 0; i < sizeof closes / sizeof closes[0]; i++) {
    char series[96];
    snprintf(series, sizeof series,
             "vigil_connections_closed_total{reason=\"%s\"}", closes[i].reason);
    assert_true(value_of(text, series) == closes[i].n);
  }
  assert_true(value_of(text, "vigil_takeovers_total{scope=\"hub\"}") == 1);
  assert_true(value_of(text, "vigil_takeovers_total{scope=\"cluster\"}") == 0);
  assert_true(value_of(text, "vigil_takeovers_by_class_total{class=\"live\"}") == 1);
  assert_true(value_of(text, "vigil_takeovers_by_class_total{class=\"ghost\"}") == 0);
  assert_true(value_of(text, "vigil_takeover_latency_seconds_count{scope=\"hub\"}") == 1);
  assert_true(value_of(text, "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"+Inf\"}") == 1);
  /* 37 ms late: not within 20 ms, within 50 ms. */
  assert_true(value_of(text, "vigil_detection_overshoot_seconds_bucket{le=\"0.02\"}") == 0);
  assert_true(value_of(text, "vigil_detection_overshoot_seconds_bucket{le=\"0.05\"}") == 1);
  assert_true(value_of(text, "vigil_detection_overshoot_seconds_sum") == 0.037);
  assert_true(value_of(text, "vigil_detection_overshoot_seconds_count") == 1);
  assert_true(value_of(text, "vigil_bytes_received_total") >= 5);
  assert_true(value_of(text, "vigil_bytes_sent_total") >= 5);
  assert_true(value_of(text, "vigil_accept_paused_total") == 0);
  /* The census as vigil_hub_census reported it, 2.5 s ago. */
  assert_true(value_of(text, "vigil_sockets{state=\"established\"}") ==
              cr.counts[VIGIL_TCP_ESTABLISHED]);
  assert_true(cr.counts[VIGIL_TCP_ESTABLISHED] >= 2);
  assert_true(value_of(text, "vigil_sockets{state=\"time_wait\"}") ==
              cr.counts[VIGIL_TCP_TIME_WAIT]);
  assert_true(value_of(text, "vigil_ghosts{kind=\"leaked\"}") == cr.leaked);
  assert_true(value_of(text, "vigil_ghosts{kind=\"orphans\"}") == cr.orphans);
  assert_true(value_of(text, "vigil_census_age_seconds") == 2.5);
  check_with_promtool(text);
}

static void spin_ms(int ms) {
  uint64_t end = vt_now_ms() + (uint64_t)ms;
  while (vt_now_ms() < end) {
  }
}

/* ASK: the first decision is slow and claims another identity (whose own
 * contest the nested call lets through at once). */
static int ask(vigil_hub *hub, vigil_conn *old_conn, vigil_conn *new_conn,
               void *ud) {
  fixture *f = ud;
  (void)hub, (void)old_conn, (void)new_conn;
  if (f->asks++ == 0) {
    spin_ms(f->spin_ms);
    assert_int_equal(vigil_conn_identify(f->r[3].conn, "inner", 5), VIGIL_OK);
  }
  return 1;
}

/* Each takeover is timed from its own claim: the outer one includes the
 * slow decision, the inner one does not. */
static void test_nested_claims_are_timed_apart(void **state) {
  fixture *f = *state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.takeover = VIGIL_TAKEOVER_ASK;
  hub_up(f, &p, 0, 0, ask);
  for (int i = 0; i < 4; i++) open_conn(f, i, &p);
  f->spin_ms = 30;
  assert_int_equal(vigil_conn_identify(f->r[0].conn, "outer", 5), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(f->r[2].conn, "inner", 5), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(f->r[1].conn, "outer", 5), VIGIL_OK);
  assert_int_equal(f->asks, 2);
  wait_closed(f, 0);
  wait_closed(f, 2);
  const char *text = write_metrics(f);
  assert_true(value_of(text, "vigil_takeover_latency_seconds_count{scope=\"hub\"}") == 2);
  /* The inner one in well under 10 ms, the outer one after 30 ms. */
  assert_true(value_of(text, "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.01\"}") == 1);
  assert_true(value_of(text, "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.025\"}") == 1);
  /* vt_now_ms() counts whole ms: the spin lasts more than 29 ms. */
  assert_true(value_of(text, "vigil_takeover_latency_seconds_sum{scope=\"hub\"}") > 0.029);
}

static int has_sockets(void *arg) {
  fixture *f = arg;
  vigil_metrics_write(f->hub, f->text, sizeof f->text);
  return strstr(f->text, "\nvigil_sockets{state=\"established\"} 1\n") != NULL;
}

/* census_interval_ms feeds the metrics even when nobody takes events. */
static void test_periodic_census_without_event_sink(void **state) {
  fixture *f = *state;
  vigil_policy p;
  vigil_policy_init(&p);
  hub_up(f, &p, 0, 50, NULL);
  open_conn(f, 0, &p);
  assert_true(vt_run_until(f->loop, has_sockets, f, 3000));
  assert_true(value_of(f->text, "vigil_census_age_seconds") < 1.0);
}

static void test_arguments(void **state) {
  fixture *f = *state;
  hub_up(f, NULL, 0, 0, NULL);
  char buf[8];
  assert_int_equal(vigil_metrics_write(NULL, buf, sizeof buf), VIGIL_EINVAL);
  assert_int_equal(vigil_metrics_write(f->hub, NULL, 8), VIGIL_EINVAL);
  int need = vigil_metrics_write(f->hub, NULL, 0);
  assert_true(need > 1000);
  assert_int_equal(vigil_metrics_write(f->hub, buf, sizeof buf), need);
  assert_string_equal(buf, "# HELP ");
  char *full = malloc((size_t)need + 1);
  assert_non_null(full);
  assert_int_equal(vigil_metrics_write(f->hub, full, (size_t)need + 1), need);
  assert_int_equal(strlen(full), (size_t)need);
  free(full);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hub_exposition, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nested_claims_are_timed_apart,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_periodic_census_without_event_sink,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
