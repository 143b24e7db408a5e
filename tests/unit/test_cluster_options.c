/*
 * vigil_cluster_options (vigil/cluster.h): defaults, validation messages
 * naming the field, and the refusals of a hub or group whose options are
 * bad; in a build without hiredis, VIGIL_ENOTSUP everywhere a cluster is
 * asked for. No store is contacted.
 */
#include <ev.h>
#include <string.h>

#include "testutil.h"
#include "vigil.h"

static int validate(const vigil_cluster_options *o, char *msg, size_t len) {
  msg[0] = '\0';
  return vigil_cluster_options_validate(o, msg, len);
}

static void test_defaults(void **state) {
  (void)state;
  vigil_cluster_options o;
  memset(&o, 0x5a, sizeof o);
  vigil_cluster_options_init(&o);
  assert_null(o.url);
  assert_null(o.prefix);
  assert_null(o.node);
  assert_int_equal(o.command_timeout_ms, 500);
  assert_int_equal(o.liveness_ttl_ms, 10000);
}

/* Creating a hub and a group with o: the same result as validation. */
static void expect_refused(const vigil_cluster_options *o, int rc) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.cluster = o;
  vigil_hub *hub = NULL;
  assert_int_equal(vigil_hub_new(loop, &ho, &hub), rc);
  assert_null(hub);
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.hub = &ho;
  go.setup = (vigil_worker_setup_cb)1; /* never called */
  char msg[256];
  assert_int_equal(vigil_group_options_validate(&go, msg, sizeof msg), rc);
  assert_non_null(strstr(msg, "hub.cluster: "));
  vigil_group *g = NULL;
  assert_int_equal(vigil_group_new(&go, &g), rc);
  assert_null(g);
  ev_loop_destroy(loop);
}

#ifdef VIGIL_HAVE_REDIS

static void test_messages_name_the_field(void **state) {
  (void)state;
  char msg[256];
  vigil_cluster_options o;
  vigil_cluster_options_init(&o);
  assert_int_equal(vigil_cluster_options_validate(NULL, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "url"));
  o.url = "redis://127.0.0.1:6379";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "node must be 1..64 of [A-Za-z0-9._-]"));
  o.node = "bad node";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "node"));
  o.node = "gw-1";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_OK);
  o.prefix = "has space";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "prefix"));
  o.prefix = "";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_OK);
  o.command_timeout_ms = 0;
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "command_timeout_ms"));
  o.command_timeout_ms = 5000;
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  assert_non_null(strstr(msg, "liveness_ttl_ms"));
  o.liveness_ttl_ms = 15000;
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_OK);
  o.url = "http://127.0.0.1/";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_EINVAL);
  o.url = "unix:///run/redis.sock?db=2";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_OK);
}

static void test_hub_and_group_refuse_bad_options(void **state) {
  (void)state;
  vigil_cluster_options o;
  vigil_cluster_options_init(&o);
  o.url = "redis://127.0.0.1:6379";
  o.node = "bad/node";
  expect_refused(&o, VIGIL_EINVAL);
}

#else

static void test_not_supported(void **state) {
  (void)state;
  char msg[256];
  vigil_cluster_options o;
  vigil_cluster_options_init(&o);
  o.url = "redis://127.0.0.1:6379";
  o.node = "gw-1";
  assert_int_equal(validate(&o, msg, sizeof msg), VIGIL_ENOTSUP);
  assert_non_null(strstr(msg, "hiredis"));
  expect_refused(&o, VIGIL_ENOTSUP);
}

#endif

static void test_no_cluster_no_gauge(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, NULL, &hub), VIGIL_OK);
  assert_int_equal(vigil_hub_directory_up(hub), -1);
  assert_int_equal(vigil_hub_directory_up(NULL), -1);
  char text[8192];
  assert_true(vigil_metrics_write(hub, text, sizeof text) > 0);
  assert_null(strstr(text, "vigil_directory_up"));
  vigil_hub_free(hub);
  ev_loop_destroy(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
#ifdef VIGIL_HAVE_REDIS
      cmocka_unit_test(test_messages_name_the_field),
      cmocka_unit_test(test_hub_and_group_refuse_bad_options),
#else
      cmocka_unit_test(test_not_supported),
#endif
      cmocka_unit_test(test_no_cluster_no_gauge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
