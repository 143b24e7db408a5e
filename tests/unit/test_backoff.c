/*
 * Reconnect backoff (src/backoff.c): the gRPC sequence, jitter bounds,
 * determinism under a seed, config validation, and the property that
 * matters in production: a fleet cut off at one moment does not come back
 * in lockstep.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "testutil.h"

static vigil_client_backoff defaults(void) {
  vigil_client_backoff c;
  vigil_client_backoff_init(&c);
  return c;
}

static void test_defaults_are_grpc(void **state) {
  (void)state;
  vigil_client_backoff c = defaults();
  assert_int_equal(c.initial_ms, 1000);
  assert_true(c.multiplier == 1.6);
  assert_int_equal(c.max_ms, 120000);
  assert_true(c.jitter == 0.2);
  assert_int_equal(c.min_connect_timeout_ms, 20000);
  assert_true(vigil__backoff_valid(&c));
}

static void test_sequence_without_jitter(void **state) {
  (void)state;
  vigil_client_backoff c = defaults();
  c.jitter = 0.0;
  vigil__backoff b;
  vigil__backoff_init(&b, &c);
  /* 1000 * 1.6^n, rounded, until the 120 s cap. */
  static const uint32_t want[] = {1000,  1600,  2560,   4096,   6554,
                                  10486, 16777, 26844,  42950,  68719,
                                  109951, 120000, 120000, 120000};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    uint32_t got = vigil__backoff_next(&b, 0x12345678u);
    if (got != want[i]) fail_msg("step %zu: got %u want %u", i, got, want[i]);
  }
  vigil__backoff_reset(&b);
  assert_int_equal(vigil__backoff_next(&b, 0), 1000);
  assert_int_equal(vigil__backoff_next(&b, 0), 1600);
}

static void test_jitter_bounds_and_edges(void **state) {
  (void)state;
  /* rnd spans [0, 2^32): the factor spans [0.8, 1.2). */
  assert_int_equal(vigil__backoff_jitter(1000.0, 0.2, 0), 800);
  assert_int_equal(vigil__backoff_jitter(1000.0, 0.2, 0x80000000u), 1000);
  assert_int_equal(vigil__backoff_jitter(1000.0, 0.2, UINT32_MAX), 1200);
  assert_int_equal(vigil__backoff_jitter(1000.0, 0.0, UINT32_MAX), 1000);
  assert_int_equal(vigil__backoff_jitter(1000.0, 1.0, 0), 0);

  vigil_client_backoff c = defaults();
  vigil__backoff b;
  uint64_t seed = 42;
  double lo_seen = 2.0, hi_seen = 0.0;
  for (int run = 0; run < 200; run++) {
    vigil__backoff_init(&b, &c);
    double base = c.initial_ms;
    for (int i = 0; i < 20; i++) {
      uint32_t d = vigil__backoff_next(&b, vigil__rand32(&seed));
      double ratio = d / base;
      if (ratio < 0.8 - 1e-3 || ratio > 1.2 + 1e-3)
        fail_msg("run %d step %d: %u is outside +-20%% of %.1f", run, i, d,
                 base);
      if (ratio < lo_seen) lo_seen = ratio;
      if (ratio > hi_seen) hi_seen = ratio;
      base = base * c.multiplier < c.max_ms ? base * c.multiplier : c.max_ms;
    }
  }
  /* The whole window is used, not a sliver of it. */
  assert_true(lo_seen < 0.81);
  assert_true(hi_seen > 1.19);
}

/* Draws n delays from a fresh backoff seeded with seed. */
static void draw(uint64_t seed, uint32_t *out, int n) {
  vigil_client_backoff c = defaults();
  vigil__backoff b;
  vigil__backoff_init(&b, &c);
  for (int i = 0; i < n; i++)
    out[i] = vigil__backoff_next(&b, vigil__rand32(&seed));
}

static void test_deterministic_with_seed(void **state) {
  (void)state;
  uint32_t a[15], b[15], c[15];
  draw(7, a, 15);
  draw(7, b, 15);
  draw(8, c, 15);
  assert_memory_equal(a, b, sizeof a);
  assert_memory_not_equal(a, c, sizeof a);
}

static void test_connect_deadline(void **state) {
  (void)state;
  vigil_client_backoff c = defaults();
  /* gRPC: an attempt may take max(time to the next attempt, 20 s). */
  assert_int_equal(vigil__backoff_connect_deadline(&c, 1000, 2000), 21000);
  assert_int_equal(vigil__backoff_connect_deadline(&c, 1000, 100000),
                   100000);
  c.min_connect_timeout_ms = 0;
  assert_int_equal(vigil__backoff_connect_deadline(&c, 1000, 2000), 2000);
}

static void set_initial0(vigil_client_backoff *c) { c->initial_ms = 0; }
static void set_max_below(vigil_client_backoff *c) { c->max_ms = 999; }
static void set_max_huge(vigil_client_backoff *c) {
  c->max_ms = VIGIL_MAX_DURATION_MS + 1;
}
static void set_mult_low(vigil_client_backoff *c) { c->multiplier = 0.5; }
static void set_mult_high(vigil_client_backoff *c) { c->multiplier = 11; }
static void set_mult_nan(vigil_client_backoff *c) { c->multiplier = NAN; }
static void set_jitter_neg(vigil_client_backoff *c) { c->jitter = -0.1; }
static void set_jitter_big(vigil_client_backoff *c) { c->jitter = 1.5; }
static void set_jitter_nan(vigil_client_backoff *c) { c->jitter = NAN; }
static void set_mct_huge(vigil_client_backoff *c) {
  c->min_connect_timeout_ms = VIGIL_MAX_DURATION_MS + 1;
}
static void set_constant(vigil_client_backoff *c) {
  c->multiplier = 1.0;
  c->jitter = 1.0;
  c->min_connect_timeout_ms = 0;
}

static void test_validation(void **state) {
  (void)state;
  static const struct {
    const char *what;
    void (*edit)(vigil_client_backoff *);
    int valid;
  } rows[] = {
      {"initial 0", set_initial0, 0},
      {"max below initial", set_max_below, 0},
      {"max over 24 h", set_max_huge, 0},
      {"multiplier 0.5", set_mult_low, 0},
      {"multiplier 11", set_mult_high, 0},
      {"multiplier NaN", set_mult_nan, 0},
      {"jitter -0.1", set_jitter_neg, 0},
      {"jitter 1.5", set_jitter_big, 0},
      {"jitter NaN", set_jitter_nan, 0},
      {"min connect timeout over 24 h", set_mct_huge, 0},
      {"constant delay, full jitter, no min", set_constant, 1},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    vigil_client_backoff c = defaults();
    rows[i].edit(&c);
    if (vigil__backoff_valid(&c) != rows[i].valid)
      fail_msg("%s: expected %s", rows[i].what,
               rows[i].valid ? "valid" : "invalid");
  }
  assert_false(vigil__backoff_valid(NULL));
}

/* ---- reconnect storm ---------------------------------------------------- */

#define FLEET 1000
#define BUCKET_MS 10

typedef struct spread {
  uint32_t min, max;
  double mean, sd;
  int max_bucket; /* most clients in one 10 ms bucket */
} spread;

/* Square root by Newton's method (the tests link no libm). */
static double isqrt(double v) {
  if (v <= 0) return 0;
  double x = v > 1 ? v : 1;
  for (int i = 0; i < 60; i++) x = 0.5 * (x + v / x);
  return x;
}

static spread spread_of(const uint64_t *t, int n) {
  spread s = {UINT32_MAX, 0, 0, 0, 0};
  for (int i = 0; i < n; i++) {
    s.mean += (double)t[i];
    if (t[i] < s.min) s.min = (uint32_t)t[i];
    if (t[i] > s.max) s.max = (uint32_t)t[i];
  }
  s.mean /= n;
  for (int i = 0; i < n; i++) s.sd += (t[i] - s.mean) * (t[i] - s.mean);
  s.sd = isqrt(s.sd / n);
  static int buckets[100000];
  memset(buckets, 0, sizeof buckets);
  for (int i = 0; i < n; i++) {
    int k = (int)(t[i] / BUCKET_MS);
    if (k < 100000 && ++buckets[k] > s.max_bucket) s.max_bucket = buckets[k];
  }
  return s;
}

/*
 * 1000 clients lose their connection at t = 0 (server restart). Each waits
 * backoff_next() after the loss, then tries; the server is still down for
 * the first try, so each waits for its next slot and tries again. Every
 * client has its own seed, as vigil_client draws one from getrandom().
 */
static void test_storm_spreads(void **state) {
  (void)state;
  vigil_client_backoff c = defaults();
  static vigil__backoff fleet[FLEET];
  static uint64_t seeds[FLEET], first[FLEET], second[FLEET];
  for (int i = 0; i < FLEET; i++) {
    vigil__backoff_init(&fleet[i], &c);
    seeds[i] = 0x9E37u * (uint64_t)(i + 1) + 12345u;
    first[i] = vigil__backoff_next(&fleet[i], vigil__rand32(&seeds[i]));
    /* attempt at first[i] fails at once; the next is due one delay later */
    second[i] =
        first[i] + vigil__backoff_next(&fleet[i], vigil__rand32(&seeds[i]));
  }
  spread s1 = spread_of(first, FLEET);
  spread s2 = spread_of(second, FLEET);
  printf("storm: first retry %u..%u ms, sd %.1f ms, max %d/%d per %d ms; "
         "second %u..%u ms, sd %.1f ms, max %d per bucket\n",
         s1.min, s1.max, s1.sd, s1.max_bucket, FLEET, BUCKET_MS, s2.min,
         s2.max, s2.sd, s2.max_bucket);
  /* The jitter window 800..1200 ms is used end to end. */
  assert_true(s1.min >= 800 && s1.min < 810);
  assert_true(s1.max <= 1200 && s1.max > 1190);
  /* Uniform over 400 ms: sd = 400 / sqrt(12) = 115 ms, 25 per bucket. */
  assert_true(s1.sd > 100.0);
  assert_true(s1.max_bucket <= FLEET * 5 / 100); /* at most 5 % */
  /* The second wave spreads further: 0.8 + 1.28 .. 1.2 + 1.92 s. */
  assert_true(s2.sd > s1.sd);
  assert_true(s2.max_bucket <= s1.max_bucket);

  /* The same fleet without jitter: everyone in one bucket, twice. */
  c.jitter = 0.0;
  for (int i = 0; i < FLEET; i++) {
    vigil__backoff_init(&fleet[i], &c);
    first[i] = vigil__backoff_next(&fleet[i], vigil__rand32(&seeds[i]));
  }
  spread s0 = spread_of(first, FLEET);
  assert_int_equal(s0.max_bucket, FLEET);
  assert_true(s0.sd == 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_are_grpc),
      cmocka_unit_test(test_sequence_without_jitter),
      cmocka_unit_test(test_jitter_bounds_and_edges),
      cmocka_unit_test(test_deterministic_with_seed),
      cmocka_unit_test(test_connect_deadline),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_storm_spreads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
