/*
 * The Prometheus text renderer (src/metrics_text.c) on hand-made
 * snapshots: the exact text for a known snapshot, every close reason at
 * zero, cumulative histogram buckets whose +Inf equals _count, label
 * escaping, snprintf semantics, and the worker-labelled shape a group of
 * hubs will use. promtool (Debian's prometheus package) checks the
 * rendered texts when it is installed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "metrics.h"
#include "promcheck.h"
#include "testutil.h"

#define BIG 65536

/* The snapshot whose exact text is spelled out below. */
static void known_snapshot(vigil__metrics_snapshot *s) {
  memset(s, 0, sizeof *s);
  s->stats.open = 3;
  s->stats.opened = 10;
  s->stats.closed[VIGIL_REASON_PEER_CLOSED] = 4;
  s->stats.closed[VIGIL_REASON_HEARTBEAT_TIMEOUT] = 2;
  s->stats.closed[VIGIL_REASON_TAKEOVER] = 1;
  s->stats.bytes_in = 1234;
  s->stats.bytes_out = 5678;
  s->stats.accept_paused = 1;
  s->stats.takeovers = 1;
  s->takeovers[VIGIL_SCOPE_HUB] = 1;
  s->stats.takeovers_by_class[VIGIL_PEER_LIVE] = 1;
  vigil__hist_observe(&s->takeover_latency[VIGIL_SCOPE_HUB],
                      &vigil__takeover_spec, 42);
  static const uint64_t overshoot_us[] = {3000, 3000, 120000, 1000,
                                          15000000};
  for (size_t i = 0; i < 5; i++)
    vigil__hist_observe(&s->dead_overshoot, &vigil__overshoot_spec,
                        overshoot_us[i]);
  s->has_census = 1;
  s->census_age_ms = 2500;
  s->census.counts[VIGIL_TCP_ESTABLISHED] = 3;
  s->census.counts[VIGIL_TCP_LISTEN] = 1;
  s->census.counts[VIGIL_TCP_TIME_WAIT] = 2;
  s->census.counts[VIGIL_TCP_CLOSE_WAIT] = 1;
  s->census.close_wait_stale = 1;
  s->census.orphans = 2;
  s->directory_up = -1;
}

static const char known_text[] =
    "# HELP vigil_build_info The vigil library serving these metrics (value 1).\n"
    "# TYPE vigil_build_info gauge\n"
    "vigil_build_info{version=\"" VIGIL_VERSION_STRING "\"} 1\n"
    "# HELP vigil_connections_open Connections adopted and not yet closed, closing ones included.\n"
    "# TYPE vigil_connections_open gauge\n"
    "vigil_connections_open 3\n"
    "# HELP vigil_connections_opened_total Connections adopted since the hub was created.\n"
    "# TYPE vigil_connections_opened_total counter\n"
    "vigil_connections_opened_total 10\n"
    "# HELP vigil_connections_closed_total Connections closed, by close reason (exactly one per connection).\n"
    "# TYPE vigil_connections_closed_total counter\n"
    "vigil_connections_closed_total{reason=\"closed_by_host\"} 0\n"
    "vigil_connections_closed_total{reason=\"peer_closed\"} 4\n"
    "vigil_connections_closed_total{reason=\"peer_reset\"} 0\n"
    "vigil_connections_closed_total{reason=\"heartbeat_timeout\"} 2\n"
    "vigil_connections_closed_total{reason=\"keepalive_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"user_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"idle_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"handshake_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"drain_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"close_wait_timeout\"} 0\n"
    "vigil_connections_closed_total{reason=\"io_error\"} 0\n"
    "vigil_connections_closed_total{reason=\"output_overflow\"} 0\n"
    "vigil_connections_closed_total{reason=\"shutdown\"} 0\n"
    "vigil_connections_closed_total{reason=\"takeover\"} 1\n"
    "vigil_connections_closed_total{reason=\"takeover_rejected\"} 0\n"
    "vigil_connections_closed_total{reason=\"identity_banned\"} 0\n"
    "vigil_connections_closed_total{reason=\"protocol_error\"} 0\n"
    "vigil_connections_closed_total{reason=\"tls_error\"} 0\n"
    "vigil_connections_closed_total{reason=\"ping_flood\"} 0\n"
    "# HELP vigil_takeovers_total Connections displaced by a newer claim of their identity, by where the two connections lived.\n"
    "# TYPE vigil_takeovers_total counter\n"
    "vigil_takeovers_total{scope=\"hub\"} 1\n"
    "vigil_takeovers_total{scope=\"worker\"} 0\n"
    "vigil_takeovers_total{scope=\"cluster\"} 0\n"
    "# HELP vigil_takeovers_by_class_total Connections displaced by a newer claim of their identity, by what their peer was found to be: ghost (reset) or live (closed gracefully).\n"
    "# TYPE vigil_takeovers_by_class_total counter\n"
    "vigil_takeovers_by_class_total{class=\"ghost\"} 0\n"
    "vigil_takeovers_by_class_total{class=\"live\"} 1\n"
    "# HELP vigil_takeover_latency_seconds Time from an identity claim on the new connection to the close decision on the connection it displaced.\n"
    "# TYPE vigil_takeover_latency_seconds histogram\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.00001\"} 0\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.000025\"} 0\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.00005\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.0001\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.00025\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.0005\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.001\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.0025\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.005\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.01\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.025\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.05\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.1\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.25\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"0.5\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"1\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"2.5\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"5\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"10\"} 1\n"
    "vigil_takeover_latency_seconds_bucket{scope=\"hub\",le=\"+Inf\"} 1\n"
    "vigil_takeover_latency_seconds_sum{scope=\"hub\"} 0.000042\n"
    "vigil_takeover_latency_seconds_count{scope=\"hub\"} 1\n"
    "# HELP vigil_detection_overshoot_seconds Time from a silent peer's heartbeat bound (last receive + dead_after) to its close.\n"
    "# TYPE vigil_detection_overshoot_seconds histogram\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.001\"} 1\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.002\"} 1\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.005\"} 3\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.01\"} 3\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.02\"} 3\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.05\"} 3\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.1\"} 3\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.25\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"0.5\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"1\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"2.5\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"5\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"10\"} 4\n"
    "vigil_detection_overshoot_seconds_bucket{le=\"+Inf\"} 5\n"
    "vigil_detection_overshoot_seconds_sum 15.127\n"
    "vigil_detection_overshoot_seconds_count 5\n"
    "# HELP vigil_bytes_received_total Bytes received on all connections (TLS: decrypted application bytes).\n"
    "# TYPE vigil_bytes_received_total counter\n"
    "vigil_bytes_received_total 1234\n"
    "# HELP vigil_bytes_sent_total Bytes sent on all connections (TLS: application bytes before encryption).\n"
    "# TYPE vigil_bytes_sent_total counter\n"
    "vigil_bytes_sent_total 5678\n"
    "# HELP vigil_accept_paused_total Times accepting was paused because the process or system ran out of file descriptors.\n"
    "# TYPE vigil_accept_paused_total counter\n"
    "vigil_accept_paused_total 1\n"
    "# HELP vigil_sockets TCP sockets on the hub's ports at the last census, by kernel state, any owner.\n"
    "# TYPE vigil_sockets gauge\n"
    "vigil_sockets{state=\"established\"} 3\n"
    "vigil_sockets{state=\"syn_sent\"} 0\n"
    "vigil_sockets{state=\"syn_recv\"} 0\n"
    "vigil_sockets{state=\"fin_wait1\"} 0\n"
    "vigil_sockets{state=\"fin_wait2\"} 0\n"
    "vigil_sockets{state=\"time_wait\"} 2\n"
    "vigil_sockets{state=\"close\"} 0\n"
    "vigil_sockets{state=\"close_wait\"} 1\n"
    "vigil_sockets{state=\"last_ack\"} 0\n"
    "vigil_sockets{state=\"listen\"} 1\n"
    "vigil_sockets{state=\"closing\"} 0\n"
    "# HELP vigil_ghosts Sockets on the hub's ports that no vigil deadline will end, at the last census, by kind.\n"
    "# TYPE vigil_ghosts gauge\n"
    "vigil_ghosts{kind=\"leaked\"} 0\n"
    "vigil_ghosts{kind=\"close_wait_stale\"} 1\n"
    "vigil_ghosts{kind=\"orphans\"} 2\n"
    "# HELP vigil_census_age_seconds Time since the last successful census of the hub's ports.\n"
    "# TYPE vigil_census_age_seconds gauge\n"
    "vigil_census_age_seconds 2.5\n"
    ;

static char *render(const vigil__metrics_series *v, size_t n) {
  char *buf = malloc(BIG);
  assert_non_null(buf);
  int len = vigil__metrics_render(v, n, buf, BIG);
  assert_true(len > 0 && len < BIG);
  assert_int_equal(strlen(buf), (size_t)len);
  return buf;
}

static char *render_one(const vigil__metrics_snapshot *s) {
  vigil__metrics_series one = {-1, s};
  return render(&one, 1);
}

/* Prints the first differing line, so a failure says where. */
static void assert_same_text(const char *got, const char *want) {
  if (strcmp(got, want) == 0) return;
  size_t i = 0;
  while (got[i] && got[i] == want[i]) i++;
  while (i > 0 && want[i - 1] != '\n') i--;
  print_error("first difference at byte %zu:\n got: %.120s\nwant: %.120s\n",
              i, got + i, want + i);
  fail();
}

static void check_with_promtool(const char *text) {
  char why[4096];
  int rc = vt_promtool_check(text, why, sizeof why);
  if (rc < 0) {
    print_message("promtool not installed: format not cross-checked\n");
    return;
  }
  if (rc != 0) print_error("promtool check metrics:\n%s\n", why);
  assert_int_equal(rc, 0);
}

static void test_exact_text_for_a_known_snapshot(void **state) {
  (void)state;
  vigil__metrics_snapshot s;
  known_snapshot(&s);
  char *text = render_one(&s);
  assert_same_text(text, known_text);
  check_with_promtool(text);
  free(text);
}

/* The lines of text starting with prefix. */
static int count_prefix(const char *text, const char *prefix) {
  int n = 0;
  size_t plen = strlen(prefix);
  for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
    if (strncmp(p, prefix, plen) == 0) n++;
    if (!strchr(p, '\n')) break;
  }
  return n;
}

static void test_every_reason_present_at_zero(void **state) {
  (void)state;
  vigil__metrics_snapshot s;
  memset(&s, 0, sizeof s);
  s.directory_up = -1;
  char *text = render_one(&s);
  for (int r = 1; r < VIGIL_REASON__COUNT; r++) {
    char want[128];
    snprintf(want, sizeof want, "\nvigil_connections_closed_total{reason=\"%s\"} 0\n",
             vigil_reason_name((vigil_reason)r));
    assert_non_null(strstr(text, want));
  }
  assert_int_equal(count_prefix(text, "vigil_connections_closed_total{"),
                   VIGIL_REASON__COUNT - 1);
  assert_null(strstr(text, "reason=\"none\""));
  assert_null(strstr(text, "reason=\"unknown\""));
  /* Every scope of takeovers, zeros included. */
  assert_non_null(strstr(text, "vigil_takeovers_total{scope=\"hub\"} 0\n"));
  assert_non_null(strstr(text, "vigil_takeovers_total{scope=\"worker\"} 0\n"));
  assert_non_null(strstr(text, "vigil_takeovers_total{scope=\"cluster\"} 0\n"));
  /* No census yet, no directory: those families are left out. */
  assert_null(strstr(text, "vigil_sockets"));
  assert_null(strstr(text, "vigil_ghosts"));
  assert_null(strstr(text, "vigil_census_age_seconds"));
  assert_null(strstr(text, "vigil_directory_up"));
  check_with_promtool(text);
  free(text);
}

/* Parses "name_bucket{...le="X"} N" lines of one histogram (with labels
 * prefix, e.g. "" or "scope=\"hub\",") into les/counts; returns how many. */
static size_t parse_buckets(const char *text, const char *name,
                            const char *labels, char les[][16],
                            unsigned long long *counts, size_t cap) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s_bucket{%sle=\"", name, labels);
  size_t n = 0, plen = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
    if (strncmp(p, prefix, plen) != 0) continue;
    assert_true(n < cap);
    const char *q = strchr(p + plen, '"');
    assert_non_null(q);
    snprintf(les[n], 16, "%.*s", (int)(q - (p + plen)), p + plen);
    assert_int_equal(sscanf(q, "\"} %llu", &counts[n]), 1);
    n++;
  }
  return n;
}

static unsigned long long sample_value(const char *text, const char *line) {
  const char *p = strstr(text, line);
  assert_non_null(p);
  unsigned long long v;
  assert_int_equal(sscanf(p + strlen(line), " %llu", &v), 1);
  return v;
}

static void test_histogram_buckets_cumulative(void **state) {
  (void)state;
  vigil__metrics_snapshot s;
  memset(&s, 0, sizeof s);
  s.directory_up = -1;
  /* A spread of values, bounds themselves included (le is inclusive). */
  uint64_t seed = 12345, values[500];
  for (size_t i = 0; i < 500; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t v = (seed >> 33) % 12000000u; /* 0..12 s */
    if (i % 7 == 0) v = vigil__overshoot_spec.bounds_us[i % 13];
    if (i % 11 == 0) v = (seed >> 40) % 20000u; /* below 20 ms */
    values[i] = v;
    vigil__hist_observe(&s.dead_overshoot, &vigil__overshoot_spec, v);
    vigil__hist_observe(&s.takeover_latency[VIGIL_SCOPE_HUB],
                        &vigil__takeover_spec, v / 1000u);
  }
  char *text = render_one(&s);
  static char les[32][16];
  unsigned long long counts[32];
  size_t n = parse_buckets(text, "vigil_detection_overshoot_seconds", "",
                           les, counts, 32);
  assert_int_equal(n, vigil__overshoot_spec.nbounds + 1);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) assert_true(counts[i] >= counts[i - 1]);
    if (i + 1 == n) {
      assert_string_equal(les[i], "+Inf");
      assert_int_equal(counts[i], 500);
      break;
    }
    /* Counted here independently of the histogram code. */
    double le = strtod(les[i], NULL);
    unsigned long long want = 0;
    for (size_t k = 0; k < 500; k++)
      want += values[k] <= (uint64_t)(le * 1e6 + 0.5);
    assert_int_equal(counts[i], want);
  }
  assert_int_equal(sample_value(text, "vigil_detection_overshoot_seconds_count"),
                   500);
  n = parse_buckets(text, "vigil_takeover_latency_seconds", "scope=\"hub\",",
                    les, counts, 32);
  assert_int_equal(n, vigil__takeover_spec.nbounds + 1);
  assert_string_equal(les[0], "0.00001");
  assert_string_equal(les[n - 1], "+Inf");
  for (size_t i = 1; i < n; i++) assert_true(counts[i] >= counts[i - 1]);
  assert_int_equal(
      counts[n - 1],
      sample_value(text, "vigil_takeover_latency_seconds_count{scope=\"hub\"}"));
  check_with_promtool(text);
  free(text);
}

static void test_histogram_observe(void **state) {
  (void)state;
  static const uint64_t bounds[] = {10, 20};
  const vigil__hist_spec spec = {bounds, 2};
  vigil__histogram h;
  memset(&h, 0, sizeof h);
  vigil__hist_observe(&h, &spec, 0);
  vigil__hist_observe(&h, &spec, 10); /* on the bound: that bucket */
  vigil__hist_observe(&h, &spec, 11);
  vigil__hist_observe(&h, &spec, 21); /* above every bound: +Inf only */
  assert_int_equal(vigil__hist_cumulative(&h, 0), 2);
  assert_int_equal(vigil__hist_cumulative(&h, 1), 3);
  assert_int_equal(vigil__hist_cumulative(&h, 2), 4);
  assert_int_equal(h.count, 4);
  assert_int_equal(h.sum_us, 42);
}

static void test_label_escaping(void **state) {
  (void)state;
  char buf[64];
  const char *nasty = "a\\b\"c\nd";
  size_t n = vigil__metrics_escape_label(nasty, buf, sizeof buf);
  assert_string_equal(buf, "a\\\\b\\\"c\\nd");
  assert_int_equal(n, strlen("a\\\\b\\\"c\\nd"));
  /* Plain UTF-8 passes through. */
  vigil__metrics_escape_label("caf\xc3\xa9 ok", buf, sizeof buf);
  assert_string_equal(buf, "caf\xc3\xa9 ok");
  /* snprintf semantics: cut and terminated, full length returned. */
  char small[4];
  n = vigil__metrics_escape_label(nasty, small, sizeof small);
  assert_int_equal(n, strlen("a\\\\b\\\"c\\nd"));
  assert_string_equal(small, "a\\\\");
  assert_int_equal(vigil__metrics_escape_label("\"\"", NULL, 0), 4);
}

static void test_snprintf_semantics(void **state) {
  (void)state;
  vigil__metrics_snapshot s;
  known_snapshot(&s);
  vigil__metrics_series one = {-1, &s};
  int need = vigil__metrics_render(&one, 1, NULL, 0);
  assert_int_equal(need, (int)strlen(known_text));
  char *buf = malloc((size_t)need + 1);
  assert_non_null(buf);
  for (size_t len = 1; len <= (size_t)need + 1; len += 97) {
    memset(buf, 'x', (size_t)need + 1);
    assert_int_equal(vigil__metrics_render(&one, 1, buf, len), need);
    assert_int_equal(strlen(buf), len - 1);
    assert_memory_equal(buf, known_text, len - 1);
  }
  assert_int_equal(vigil__metrics_render(&one, 1, buf, (size_t)need + 1),
                   need);
  assert_string_equal(buf, known_text);
  /* Exactly one byte short: the last line feed is cut. */
  assert_int_equal(vigil__metrics_render(&one, 1, buf, (size_t)need), need);
  assert_int_equal(strlen(buf), (size_t)need - 1);
  free(buf);
}

/* The shape a group renders: one family block, a worker label first on
 * every sample of every worker. */
static void test_worker_labels(void **state) {
  (void)state;
  vigil__metrics_snapshot a, b;
  known_snapshot(&a);
  memset(&b, 0, sizeof b);
  b.directory_up = 1;
  b.takeovers[VIGIL_SCOPE_CLUSTER] = 2;
  vigil__hist_observe(&b.takeover_latency[VIGIL_SCOPE_CLUSTER],
                      &vigil__takeover_spec, 30000);
  vigil__hist_observe(&b.takeover_latency[VIGIL_SCOPE_CLUSTER],
                      &vigil__takeover_spec, 700000);
  vigil__metrics_series v[2] = {{0, &a}, {7, &b}};
  char *text = render(v, 2);
  assert_int_equal(count_prefix(text, "# HELP vigil_connections_open "), 1);
  assert_int_equal(count_prefix(text, "# TYPE "), 15);
  assert_non_null(strstr(text, "\nvigil_connections_open{worker=\"0\"} 3\n"
                               "vigil_connections_open{worker=\"7\"} 0\n"));
  assert_non_null(strstr(
      text, "\nvigil_takeovers_total{worker=\"7\",scope=\"cluster\"} 2\n"));
  assert_non_null(strstr(text, "\nvigil_takeover_latency_seconds_bucket{"
                               "worker=\"7\",scope=\"cluster\",le=\"0.05\"} 1\n"));
  assert_non_null(strstr(text, "\nvigil_takeover_latency_seconds_count{"
                               "worker=\"7\",scope=\"cluster\"} 2\n"));
  /* Worker 7 had no census; worker 0 did. Only 7 has a directory. */
  assert_non_null(strstr(text, "\nvigil_sockets{worker=\"0\",state=\"listen\"} 1\n"));
  assert_null(strstr(text, "vigil_sockets{worker=\"7\""));
  assert_non_null(strstr(text, "\nvigil_directory_up{worker=\"7\"} 1\n"));
  assert_null(strstr(text, "vigil_directory_up{worker=\"0\""));
  /* Every sample line carries a worker label, first. */
  for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
    if (*p != '#') {
      const char *brace = strchr(p, '{');
      assert_non_null(brace);
      assert_true(brace < strchr(p, '\n'));
      assert_int_equal(strncmp(brace, "{worker=\"", 9), 0);
    }
  }
  check_with_promtool(text);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_text_for_a_known_snapshot),
      cmocka_unit_test(test_every_reason_present_at_zero),
      cmocka_unit_test(test_histogram_buckets_cumulative),
      cmocka_unit_test(test_histogram_observe),
      cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_snprintf_semantics),
      cmocka_unit_test(test_worker_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
