/*
 * Log names are part of vigil's output contract: alert rules match them.
 * These tests pin every name to its enum value, check that invalid values
 * read as "unknown" (never NULL), and that no two values share a name.
 */
#include <limits.h>
#include <string.h>

#include "testutil.h"
#include "vigil.h"

struct name_case {
  int value;
  const char *name;
};

static const struct name_case reason_cases[] = {
    {VIGIL_REASON_NONE, "none"},
    {VIGIL_REASON_CLOSED_BY_HOST, "closed_by_host"},
    {VIGIL_REASON_PEER_CLOSED, "peer_closed"},
    {VIGIL_REASON_PEER_RESET, "peer_reset"},
    {VIGIL_REASON_HEARTBEAT_TIMEOUT, "heartbeat_timeout"},
    {VIGIL_REASON_KEEPALIVE_TIMEOUT, "keepalive_timeout"},
    {VIGIL_REASON_USER_TIMEOUT, "user_timeout"},
    {VIGIL_REASON_IDLE_TIMEOUT, "idle_timeout"},
    {VIGIL_REASON_HANDSHAKE_TIMEOUT, "handshake_timeout"},
    {VIGIL_REASON_DRAIN_TIMEOUT, "drain_timeout"},
    {VIGIL_REASON_CLOSE_WAIT_TIMEOUT, "close_wait_timeout"},
    {VIGIL_REASON_IO_ERROR, "io_error"},
    {VIGIL_REASON_OUTPUT_OVERFLOW, "output_overflow"},
    {VIGIL_REASON_SHUTDOWN, "shutdown"},
    {VIGIL_REASON_TAKEOVER, "takeover"},
    {VIGIL_REASON_TAKEOVER_REJECTED, "takeover_rejected"},
    {VIGIL_REASON_IDENTITY_BANNED, "identity_banned"},
    {VIGIL_REASON_PROTOCOL_ERROR, "protocol_error"},
    {VIGIL_REASON_TLS_ERROR, "tls_error"},
    {VIGIL_REASON_PING_FLOOD, "ping_flood"},
};

static const struct name_case event_cases[] = {
    {VIGIL_EV_OPEN, "open"},
    {VIGIL_EV_PING_DUE, "ping_due"},
    {VIGIL_EV_IDLE, "idle"},
    {VIGIL_EV_DEAD, "dead"},
    {VIGIL_EV_PEER_FIN, "peer_fin"},
    {VIGIL_EV_DRAINING, "draining"},
    {VIGIL_EV_CLOSE, "close"},
    {VIGIL_EV_ACCEPT_PAUSED, "accept_paused"},
    {VIGIL_EV_ACCEPT_RESUMED, "accept_resumed"},
    {VIGIL_EV_READY, "ready"},
    {VIGIL_EV_SUSPECT, "suspect"},
    {VIGIL_EV_TAKEOVER, "takeover"},
    {VIGIL_EV_FLAPPING, "flapping"},
    {VIGIL_EV_CENSUS, "census"},
    {VIGIL_EV_GHOSTS, "ghosts"},
    {VIGIL_EV_SHUTDOWN, "shutdown"},
    {VIGIL_EV_CLIENT, "client"},
    {VIGIL_EV_DIRECTORY_DOWN, "directory_down"},
    {VIGIL_EV_DIRECTORY_UP, "directory_up"},
    {VIGIL_EV_DIRECTORY_ERROR, "directory_error"},
};

static const struct name_case state_cases[] = {
    {VIGIL_CONN_HANDSHAKE, "handshake"},
    {VIGIL_CONN_OPEN, "open"},
    {VIGIL_CONN_CLOSE_WAIT, "close_wait"},
    {VIGIL_CONN_FLUSHING, "flushing"},
    {VIGIL_CONN_DRAINING, "draining"},
    {VIGIL_CONN_CLOSED, "closed"},
};

static const struct name_case idle_cases[] = {
    {VIGIL_IDLE_READ, "read"},
    {VIGIL_IDLE_WRITE, "write"},
    {VIGIL_IDLE_ALL, "all"},
};

static const struct name_case scope_cases[] = {
    {VIGIL_SCOPE_HUB, "hub"},
    {VIGIL_SCOPE_WORKER, "worker"},
    {VIGIL_SCOPE_CLUSTER, "cluster"},
};

/* Adapters so one table walker covers all five name functions. */
static const char *reason_name(int v) {
  return vigil_reason_name((vigil_reason)v);
}
static const char *event_name(int v) {
  return vigil_event_name((vigil_event_type)v);
}
static const char *state_name(int v) {
  return vigil_conn_state_name((vigil_conn_state)v);
}
static const char *idle_name(int v) {
  return vigil_idle_kind_name((vigil_idle_kind)v);
}
static const char *scope_name(int v) {
  return vigil_scope_name((vigil_takeover_scope)v);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Every documented value has exactly its documented name. */
static void check_table(const char *(*fn)(int), const struct name_case *cases,
                        size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *got = fn(cases[i].value);
    assert_non_null(got);
    assert_string_equal(got, cases[i].name);
  }
}

/* No two valid values share a name (a log line must be unambiguous). */
static void check_unique(const char *(*fn)(int), int lo, int hi) {
  for (int a = lo; a < hi; a++) {
    for (int b = a + 1; b < hi; b++) {
      const char *na = fn(a), *nb = fn(b);
      if (strcmp(na, nb) == 0)
        fail_msg("values %d and %d share the name \"%s\"", a, b, na);
    }
  }
}

/* Values outside [lo, hi) read as "unknown", never NULL. */
static void check_out_of_range(const char *(*fn)(int), int lo, int hi) {
  const int bad[] = {lo - 1, hi, hi + 1, hi + 1000, -1, INT_MIN, INT_MAX};
  for (size_t i = 0; i < N(bad); i++) {
    if (bad[i] >= lo && bad[i] < hi)
      continue;
    const char *got = fn(bad[i]);
    assert_non_null(got);
    assert_string_equal(got, "unknown");
  }
}

static void test_reason_names(void **state) {
  (void)state;
  /* The table must cover the whole enum: a reason appended to vigil.h
   * without a test entry (and a name) fails here. */
  assert_int_equal(N(reason_cases), VIGIL_REASON__COUNT);
  check_table(reason_name, reason_cases, N(reason_cases));
  check_unique(reason_name, 0, VIGIL_REASON__COUNT);
  check_out_of_range(reason_name, 0, VIGIL_REASON__COUNT);
}

static void test_event_names(void **state) {
  (void)state;
  assert_int_equal(N(event_cases), VIGIL_EV__COUNT - 1);
  check_table(event_name, event_cases, N(event_cases));
  check_unique(event_name, 1, VIGIL_EV__COUNT);
  check_out_of_range(event_name, 1, VIGIL_EV__COUNT);
  assert_string_equal(event_name(0), "unknown");
}

static void test_conn_state_names(void **state) {
  (void)state;
  assert_int_equal(N(state_cases), VIGIL_CONN_CLOSED + 1);
  check_table(state_name, state_cases, N(state_cases));
  check_unique(state_name, 0, VIGIL_CONN_CLOSED + 1);
  check_out_of_range(state_name, 0, VIGIL_CONN_CLOSED + 1);
}

static void test_idle_kind_names(void **state) {
  (void)state;
  check_table(idle_name, idle_cases, N(idle_cases));
  check_unique(idle_name, VIGIL_IDLE_READ, VIGIL_IDLE_ALL + 1);
  check_out_of_range(idle_name, VIGIL_IDLE_READ, VIGIL_IDLE_ALL + 1);
  assert_string_equal(idle_name(0), "unknown");
}

static void test_scope_names(void **state) {
  (void)state;
  assert_int_equal(N(scope_cases), VIGIL_SCOPE__COUNT);
  assert_true(VIGIL_SCOPE__COUNT <= VIGIL_SCOPE_CAPACITY);
  check_table(scope_name, scope_cases, N(scope_cases));
  check_unique(scope_name, 0, VIGIL_SCOPE__COUNT);
  check_out_of_range(scope_name, 0, VIGIL_SCOPE__COUNT);
}

/* Names are snake_case ASCII so they print unquoted in logfmt and need no
 * escaping in JSON. */
static void test_names_are_snake_case(void **state) {
  (void)state;
  const struct {
    const char *(*fn)(int);
    int lo, hi;
  } sets[] = {
      {reason_name, 0, VIGIL_REASON__COUNT},
      {event_name, 1, VIGIL_EV__COUNT},
      {state_name, 0, VIGIL_CONN_CLOSED + 1},
      {idle_name, VIGIL_IDLE_READ, VIGIL_IDLE_ALL + 1},
      {scope_name, 0, VIGIL_SCOPE__COUNT},
  };
  for (size_t s = 0; s < N(sets); s++) {
    for (int v = sets[s].lo; v < sets[s].hi; v++) {
      const char *name = sets[s].fn(v);
      assert_true(name[0] >= 'a' && name[0] <= 'z');
      for (const char *p = name; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reason_names),
      cmocka_unit_test(test_event_names),
      cmocka_unit_test(test_conn_state_names),
      cmocka_unit_test(test_idle_kind_names),
      cmocka_unit_test(test_scope_names),
      cmocka_unit_test(test_names_are_snake_case),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
