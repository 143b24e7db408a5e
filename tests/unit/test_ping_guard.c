/*
 * Ping-flood guard (src/ping_guard.c) on plain numbers: strikes, clearing
 * on a well-spaced ping, the rate reported, and "off" for a 0 field.
 */
#include <stdint.h>
#include <string.h>

#include "ping_guard.h"
#include "testutil.h"

static vigil_policy policy(uint32_t min_ms, uint32_t strikes) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_min_interval_ms = min_ms;
  p.ping_strikes = strikes;
  return p;
}

/* Feeds pings at the given times; returns the index of the first flood
 * verdict, or -1. */
static int first_flood(const vigil_policy *p, const uint64_t *at, int n,
                       uint32_t *rate) {
  vigil__ping_guard g;
  memset(&g, 0, sizeof g);
  for (int i = 0; i < n; i++)
    if (vigil__ping_guard_check(&g, p, at[i], rate)) return i;
  return -1;
}

static void test_defaults(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  assert_int_equal(p.ping_min_interval_ms, 10);
  assert_int_equal(p.ping_strikes, 2);
  assert_int_equal(p.path_idle_max_s, 0);
}

static void test_flood_cut_on_third_early_ping(void **state) {
  (void)state;
  vigil_policy p = policy(100, 2);
  /* One ping per millisecond: the first is free, then strikes 1, 2 and
   * the third strike is the flood. */
  uint64_t at[] = {1000, 1001, 1002, 1003, 1004};
  uint32_t rate = 0;
  assert_int_equal(first_flood(&p, at, 5, &rate), 3);
  assert_int_equal(rate, 1333); /* 4 pings over 3 ms */
}

static void test_spaced_pings_never_touched(void **state) {
  (void)state;
  vigil_policy p = policy(100, 2);
  uint64_t at[64];
  for (int i = 0; i < 64; i++) at[i] = 5000 + (uint64_t)i * 500;
  assert_int_equal(first_flood(&p, at, 64, NULL), -1);
  /* Exactly at the interval is not early. */
  for (int i = 0; i < 64; i++) at[i] = 5000 + (uint64_t)i * 100;
  assert_int_equal(first_flood(&p, at, 64, NULL), -1);
}

static void test_spaced_ping_clears_strikes(void **state) {
  (void)state;
  vigil_policy p = policy(100, 2);
  /* Two early pings (2 strikes), a well-spaced one clears them, two more
   * early ones are again within the allowance. */
  uint64_t at[] = {0 + 1, 50, 90, 400, 410, 420, 900};
  assert_int_equal(first_flood(&p, at, 7, NULL), -1);
  /* Without the spaced ping, the third early one floods. */
  uint64_t bad[] = {1, 50, 90, 120};
  assert_int_equal(first_flood(&p, bad, 4, NULL), 3);
}

static void test_off_when_zero(void **state) {
  (void)state;
  uint64_t at[32];
  for (int i = 0; i < 32; i++) at[i] = 100 + (uint64_t)i;
  vigil_policy a = policy(0, 2), b = policy(100, 0);
  assert_int_equal(first_flood(&a, at, 32, NULL), -1);
  assert_int_equal(first_flood(&b, at, 32, NULL), -1);
}

static void test_same_millisecond_rate(void **state) {
  (void)state;
  vigil_policy p = policy(10, 1);
  uint64_t at[] = {7, 7, 7};
  uint32_t rate = 0;
  assert_int_equal(first_flood(&p, at, 3, &rate), 2);
  assert_int_equal(rate, 3000); /* 3 pings, span rounded up to 1 ms */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_flood_cut_on_third_early_ping),
      cmocka_unit_test(test_spaced_pings_never_touched),
      cmocka_unit_test(test_spaced_ping_clears_strikes),
      cmocka_unit_test(test_off_when_zero),
      cmocka_unit_test(test_same_millisecond_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
