/*
 * MQTT topic rules and the subscription registry (examples/mqtt/): filter
 * validity, the matching examples of MQTT 3.1.1 section 4.7, '$' topics,
 * and the registry's add/remove/match bookkeeping at scale.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_subs.h"
#include "mqtt_topic.h"

#define U(s) ((const uint8_t *)(s)), strlen(s)

static void test_filter_and_name_validity(void **state) {
  (void)state;
  static const struct {
    const char *f;
    int filter_ok, name_ok;
  } cases[] = {
      {"a", 1, 1},          {"a/b/c", 1, 1},     {"/", 1, 1},
      {"a//b", 1, 1},       {"#", 1, 0},         {"a/#", 1, 0},
      {"+", 1, 0},          {"+/+", 1, 0},       {"a/+/c", 1, 0},
      {"/+", 1, 0},         {"+/#", 1, 0},       {"a#", 0, 0},
      {"a/#/c", 0, 0},      {"a+", 0, 0},        {"a/b+/c", 0, 0},
      {"##", 0, 0},         {"#/", 0, 0},        {"", 0, 0},
      {"$SYS/x", 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (mqtt_topic_filter_valid(U(cases[i].f)) != cases[i].filter_ok)
      fail_msg("filter '%s': want %d", cases[i].f, cases[i].filter_ok);
    if (mqtt_topic_name_valid(U(cases[i].f)) != cases[i].name_ok)
      fail_msg("name '%s': want %d", cases[i].f, cases[i].name_ok);
  }
}

static void test_matching_examples_of_the_standard(void **state) {
  (void)state;
  static const struct {
    const char *f, *t;
    int match;
  } cases[] = {
      /* 4.7.1.2 multi-level wildcard */
      {"sport/tennis/player1/#", "sport/tennis/player1", 1},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1},
      {"sport/#", "sport", 1},
      {"#", "anything/at/all", 1},
      {"#", "/", 1},
      /* 4.7.1.3 single-level wildcard */
      {"sport/tennis/+", "sport/tennis/player1", 1},
      {"sport/tennis/+", "sport/tennis/player2", 1},
      {"sport/tennis/+", "sport/tennis/player1/ranking", 0},
      {"sport/+", "sport", 0},
      {"sport/+", "sport/", 1},
      {"+/+", "/finance", 1},
      {"/+", "/finance", 1},
      {"+", "/finance", 0},
      {"+/tennis/#", "sport/tennis/player1", 1},
      {"+/tennis/#", "sport/tennis", 1},
      /* exact and near misses */
      {"a/b", "a/b", 1},
      {"a/b", "a/bc", 0},
      {"a/b", "a/b/", 0},
      {"a/bc", "a/b", 0},
      {"A/b", "a/b", 0},
      {"a//b", "a//b", 1},
      {"a/+/b", "a//b", 1},
      /* 4.7.2: wildcards at the start do not match '$' topics */
      {"#", "$SYS/broker/load", 0},
      {"+/monitor/Clients", "$SYS/monitor/Clients", 0},
      {"$SYS/#", "$SYS/monitor/Clients", 1},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *f = cases[i].f, *t = cases[i].t;
    if (mqtt_topic_match((const uint8_t *)f, strlen(f), (const uint8_t *)t,
                         strlen(t)) != cases[i].match)
      fail_msg("filter '%s' topic '%s': want %d", f, t, cases[i].match);
  }
}

/* Collects the subscribers a match reports. */
typedef struct hits {
  void *who[64];
  size_t n;
} hits;

static void collect(void *who, void *ud) {
  hits *h = ud;
  assert_true(h->n < 64);
  h->who[h->n++] = who;
}

static size_t count_of(const hits *h, void *who) {
  size_t k = 0;
  for (size_t i = 0; i < h->n; i++) k += h->who[i] == who;
  return k;
}

static void test_registry_bookkeeping(void **state) {
  (void)state;
  int a, b, c;
  mqtt_subs *s = mqtt_subs_new();
  assert_non_null(s);
  assert_int_equal(mqtt_subs_add(s, U("t/1"), &a), 1);
  assert_int_equal(mqtt_subs_add(s, U("t/1"), &a), 0); /* MQTT-3.8.4-3 */
  assert_int_equal(mqtt_subs_add(s, U("t/1"), &b), 1);
  assert_int_equal(mqtt_subs_add(s, U("t/+"), &c), 1);
  assert_int_equal(mqtt_subs_add(s, U("#"), &a), 1);
  assert_int_equal(mqtt_subs_filters(s), 3);
  assert_int_equal(mqtt_subs_pairs(s), 4);

  hits h = {.n = 0};
  assert_int_equal(mqtt_subs_match(s, U("t/1"), collect, &h), 4);
  assert_int_equal(count_of(&h, &a), 2); /* "t/1" and "#" */
  assert_int_equal(count_of(&h, &b), 1);
  assert_int_equal(count_of(&h, &c), 1);
  h.n = 0;
  assert_int_equal(mqtt_subs_match(s, U("t/2"), collect, &h), 2);
  assert_int_equal(count_of(&h, &c), 1);
  assert_int_equal(count_of(&h, &a), 1);
  h.n = 0;
  assert_int_equal(mqtt_subs_match(s, U("$SYS/x"), collect, &h), 0);

  assert_int_equal(mqtt_subs_remove(s, U("t/1"), &c), 0); /* not held */
  assert_int_equal(mqtt_subs_remove(s, U("nope"), &a), 0);
  assert_int_equal(mqtt_subs_remove(s, U("t/1"), &a), 1);
  assert_int_equal(mqtt_subs_remove(s, U("t/1"), &a), 0);
  assert_int_equal(mqtt_subs_remove(s, U("#"), &a), 1);
  h.n = 0;
  assert_int_equal(mqtt_subs_match(s, U("t/1"), collect, &h), 2);
  assert_int_equal(count_of(&h, &a), 0);
  /* The last holder leaving removes the filter. */
  assert_int_equal(mqtt_subs_remove(s, U("t/1"), &b), 1);
  assert_int_equal(mqtt_subs_remove(s, U("t/+"), &c), 1);
  assert_int_equal(mqtt_subs_filters(s), 0);
  assert_int_equal(mqtt_subs_pairs(s), 0);
  mqtt_subs_free(s);
  mqtt_subs_free(NULL);
}

static void test_registry_at_scale(void **state) {
  (void)state;
  enum { N = 20000 };
  mqtt_subs *s = mqtt_subs_new();
  static int devices[N];
  char topic[64];
  /* Each device subscribes to its own command topic; one monitor sees all. */
  for (int i = 0; i < N; i++) {
    int n = snprintf(topic, sizeof topic, "dev/%d/cmd", i);
    assert_int_equal(mqtt_subs_add(s, (const uint8_t *)topic, (size_t)n,
                                   &devices[i]), 1);
  }
  int monitor;
  assert_int_equal(mqtt_subs_add(s, U("dev/+/cmd"), &monitor), 1);
  assert_int_equal(mqtt_subs_filters(s), N + 1);
  for (int i = 0; i < N; i += 997) {
    hits h = {.n = 0};
    int n = snprintf(topic, sizeof topic, "dev/%d/cmd", i);
    assert_int_equal(mqtt_subs_match(s, (const uint8_t *)topic, (size_t)n,
                                     collect, &h), 2);
    assert_int_equal(count_of(&h, &devices[i]), 1);
    assert_int_equal(count_of(&h, &monitor), 1);
  }
  for (int i = 0; i < N; i++) {
    int n = snprintf(topic, sizeof topic, "dev/%d/cmd", i);
    assert_int_equal(mqtt_subs_remove(s, (const uint8_t *)topic, (size_t)n,
                                      &devices[i]), 1);
  }
  assert_int_equal(mqtt_subs_pairs(s), 1);
  mqtt_subs_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_filter_and_name_validity),
      cmocka_unit_test(test_matching_examples_of_the_standard),
      cmocka_unit_test(test_registry_bookkeeping),
      cmocka_unit_test(test_registry_at_scale),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
