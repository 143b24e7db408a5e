/*
 * A group's metrics (vigil_group_metrics_write) from any thread: one
 * exposition with every family once and a worker label on each worker's
 * series, fed by what the workers publish: takeovers by scope (a takeover
 * across workers counts on the worker whose conn was displaced, scope
 * worker) with their latency histograms, and the group's census as one
 * unlabelled series once it ran. promtool checks the text when present.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "groupfix.h"
#include "promcheck.h"
#include "testutil.h"

/* The whole text; the size asked first is only a hint, since the census
 * age may gain a digit before the second call. */
static char *render(vigil_group *g) {
  int n = vigil_group_metrics_write(g, NULL, 0);
  assert_true(n > 0);
  size_t cap = (size_t)n + 64;
  char *buf = malloc(cap);
  assert_non_null(buf);
  int m = vigil_group_metrics_write(g, buf, cap);
  assert_true(m > 0 && (size_t)m < cap);
  assert_int_equal(strlen(buf), (size_t)m);
  return buf;
}

/* The value of the sample line that starts with `series` + ' ', or -1. */
static long long sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, series, n) == 0 && p[n] == ' ') return atoll(p + n + 1);
  return -1;
}

static int count_lines(const char *text, const char *prefix) {
  int c = 0;
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    c += strncmp(p, prefix, n) == 0;
  return c;
}

typedef struct want {
  gx *f;
  const char *series;
  long long value;
} want;

static int shows(void *arg) {
  want *w = arg;
  char *t = render(w->f->g);
  int ok = sample(t, w->series) == w->value;
  free(t);
  return ok;
}

/* A worker renders too (its own series read from its hub). */
typedef struct from_worker {
  vigil_group *g;
  int len;
  int done; /* [atomic] */
} from_worker;

static void render_fn(vigil_worker *w, void *arg) {
  from_worker *r = arg;
  (void)w;
  r->len = vigil_group_metrics_write(r->g, NULL, 0);
  __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
}

static int rendered(void *arg) {
  return __atomic_load_n(&((from_worker *)arg)->done, __ATOMIC_SEQ_CST);
}

static void test_group_metrics(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 2);
  gx_start(&f);
  char *t = render(f.g);
  /* Every family once, each worker's series labelled. */
  assert_int_equal(count_lines(t, "# TYPE vigil_takeovers_total "), 1);
  assert_int_equal(count_lines(t, "# TYPE vigil_build_info "), 1);
  assert_int_equal(sample(t, "vigil_connections_open{worker=\"0\"}"), 0);
  assert_int_equal(sample(t, "vigil_connections_open{worker=\"1\"}"), 0);
  assert_int_equal(count_lines(t, "vigil_connections_open "), 0);
  assert_int_equal(
      sample(t, "vigil_takeovers_total{worker=\"1\",scope=\"worker\"}"), 0);
  /* No census yet: its families are left out. */
  assert_null(strstr(t, "vigil_sockets"));
  free(t);

  /* A takeover across workers and one within worker 1. */
  gx_placed x, y, z;
  gx_place(&f, &x, 0, "dev-1", NULL);
  gx_place(&f, &y, 1, "dev-1", NULL);
  assert_int_equal(gx_wait_closed(&x, 2000), VIGIL_REASON_TAKEOVER);
  gx_place(&f, &z, 1, "dev-1", NULL);
  assert_int_equal(gx_wait_closed(&y, 2000), VIGIL_REASON_TAKEOVER);
  want w = {&f, "vigil_takeovers_total{worker=\"1\",scope=\"hub\"}", 1};
  assert_true(vt_wait_until(shows, &w, 2000));
  w.series = "vigil_takeovers_total{worker=\"0\",scope=\"worker\"}";
  assert_true(vt_wait_until(shows, &w, 2000));
  t = render(f.g);
  assert_int_equal(
      sample(t, "vigil_takeover_latency_seconds_count{worker=\"0\","
                "scope=\"worker\"}"),
      1);
  assert_int_equal(
      sample(t, "vigil_takeover_latency_seconds_count{worker=\"1\","
                "scope=\"hub\"}"),
      1);
  /* Within 1 s (the largest finite bucket a local takeover needs). */
  assert_int_equal(
      sample(t, "vigil_takeover_latency_seconds_bucket{worker=\"0\","
                "scope=\"worker\",le=\"1\"}"),
      1);
  assert_int_equal(sample(t, "vigil_takeovers_total{worker=\"0\",scope=\"hub\"}"),
                   0);
  assert_int_equal(
      sample(t, "vigil_connections_closed_total{worker=\"0\","
                "reason=\"takeover\"}"),
      1);
  free(t);

  /* The group's census: one series without a worker label. */
  vigil_hub_census_report r;
  assert_int_equal(vigil_group_census(f.g, &r), VIGIL_OK);
  t = render(f.g);
  assert_int_equal(count_lines(t, "# TYPE vigil_sockets "), 1);
  assert_int_equal(sample(t, "vigil_ghosts{kind=\"leaked\"}"), 0);
  assert_true(sample(t, "vigil_sockets{state=\"established\"}") >= 1);
  assert_null(strstr(t, "vigil_sockets{worker"));
  assert_int_equal(count_lines(t, "vigil_census_age_seconds "), 1);
  char why[512];
  int pc = vt_promtool_check(t, why, sizeof why);
  if (pc == 1) fail_msg("promtool: %s", why);

  /* snprintf semantics: a short buffer gets a prefix and a NUL (the
   * census age moves, so the whole length may differ by a digit). */
  int full = (int)strlen(t);
  char small[64];
  int again = vigil_group_metrics_write(f.g, small, sizeof small);
  assert_true(again >= full - 8 && again <= full + 8);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, t, sizeof small - 1);
  free(t);
  assert_int_equal(vigil_group_metrics_write(NULL, NULL, 0), VIGIL_EINVAL);
  assert_int_equal(vigil_group_metrics_write(f.g, NULL, 5), VIGIL_EINVAL);

  from_worker fw = {f.g, 0, 0};
  assert_int_equal(vigil_group_post(f.g, 1, render_fn, &fw), VIGIL_OK);
  assert_true(vt_wait_until(rendered, &fw, 2000));
  assert_true(fw.len > 0);

  gx_placed_done(&x);
  gx_placed_done(&y);
  gx_placed_done(&z);
  assert_int_equal(vigil_group_stop(f.g, 1000), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  gx_assert_clean(&f);
  /* After the workers: their final values stay. */
  t = render(f.g);
  assert_int_equal(
      sample(t, "vigil_takeovers_total{worker=\"0\",scope=\"worker\"}"), 1);
  free(t);
  vigil_group_free(f.g);
  gx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_metrics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
