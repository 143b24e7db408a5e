/*
 * The Redis identity directory when the store fails: redis-server killed
 * and restarted mid-run (DOWN then UP, requests in flight resolved
 * DISCONNECTED, releases kept and sent later, the script loaded again,
 * conflicts found by re-assertion); an eviction missed while the
 * connections were cut, caught by re-assertion; a store that never
 * answers or stalls (commands time out and the state says so); a connect
 * that never completes; and a store that is not there.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dirtest.h"

typedef struct fx {
  vt_redis redis;
  struct ev_loop *loop;
  tnode a, b;
  fakestore fs;
  int fs_on;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  tn_stop(&f->a);
  tn_stop(&f->b);
  if (f->fs_on) fs_stop(&f->fs);
  vt_redis_stop(&f->redis);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

static void start_node(fx *f, tnode *n, const char *url, const char *node) {
  vigil__redis_dir_config c;
  tn_config(&c, url, node, 0);
  tn_start(n, f->loop, &c);
  tn_wait_up(n);
}

static void reassert_on_up(tnode *n, int up) {
  vigil__dir_held *h = n->hook_data;
  if (up && h && n->ups > 1)
    assert_int_equal(
        vigil__redis_dir_reassert(n->d, h, 1, tn_on_result, n), 0);
}

static void killed_and_restarted_store(void **state) {
  fx *f = *state;
  assert_int_equal(vt_redis_start(&f->redis, NULL), 0);
  start_node(f, &f->a, f->redis.url, "node-a");
  start_node(f, &f->b, f->redis.url, "node-b");
  assert_int_equal(tn_claim(&f->a, "X", 1, 0)->epoch, 1);

  /* Requests in flight when the store dies. */
  assert_int_equal(vt_redis_signal(&f->redis, SIGSTOP), 0);
  assert_int_equal(
      vigil__redis_dir_claim(f->a.d, "Y", 1, 2, 0, tn_on_result, &f->a), 0);
  assert_int_equal(
      vigil__redis_dir_claim(f->a.d, "Z", 1, 3, 0, tn_on_result, &f->a), 0);
  assert_int_equal(vigil__redis_dir_release(f->a.d, "X", 1, 1), 0);
  vt_run_until(f->loop, NULL, NULL, 50); /* written, not answered */
  assert_int_equal(f->a.nresults, 1);
  vt_redis_kill(&f->redis);

  assert_true(tn_wait_downs(&f->a, 1, 5000));
  assert_true(tn_wait_downs(&f->b, 1, 5000));
  tn_wait_results(&f->a, 3, 5000);
  for (int i = 1; i < 3; i++) {
    assert_int_equal(f->a.results[i].status, VIGIL__DIR_DISCONNECTED);
    assert_true(strlen(f->a.results[i].detail) > 0);
  }
  assert_string_equal(f->a.results[1].identity, "Y");
  assert_string_equal(f->a.results[2].identity, "Z");
  assert_non_null(strstr(f->a.reason, f->redis.url + 8)); /* host:port */
  assert_false(vigil__redis_dir_is_up(f->a.d));
  assert_int_equal(
      vigil__redis_dir_claim(f->a.d, "W", 1, 4, 0, tn_on_result, &f->a),
      VIGIL_EAGAIN);
  assert_int_equal(
      vigil__redis_dir_reassert(f->a.d, NULL, 0, tn_on_result, &f->a),
      VIGIL_EAGAIN);
  /* A release while down waits for the store. */
  assert_int_equal(vigil__redis_dir_release(f->a.d, "Y", 1, 9), 0);
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.releases_parked, 2);
  vt_run_until(f->loop, NULL, NULL, 100); /* a few refused attempts */
  assert_int_equal(f->a.downs, 1);        /* reported once */

  /* Back, empty: both nodes reconnect (SCRIPT LOAD again). */
  assert_int_equal(vt_redis_restart(&f->redis), 0);
  assert_true(tn_wait_ups(&f->a, 2, 10000));
  assert_true(tn_wait_ups(&f->b, 2, 10000));
  assert_non_null(strstr(f->a.reason, ": up"));
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.releases_parked, 0);
  assert_true(st.attempts >= 2);

  /* b claims X first in the empty store; a's re-assertion finds it. */
  const tn_result *r = tn_claim(&f->b, "X", 5, 0);
  assert_int_equal(r->epoch, 1);
  assert_false(r->other.present);
  vigil__dir_held held = {"X", 1, 1, 1, 0};
  int before = f->a.nresults;
  assert_int_equal(
      vigil__redis_dir_reassert(f->a.d, &held, 1, tn_on_result, &f->a), 0);
  tn_wait_results(&f->a, before + 1, 5000);
  assert_int_equal(f->a.results[before].status, VIGIL__DIR_FENCED);
  assert_string_equal(f->a.results[before].other.node, "node-b");
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.noscript, 0);
  assert_int_equal(st.ups, 2);
  assert_int_equal(st.downs, 1);
}

/* Kills the directory's own connections to the store (by client name). */
static int kill_clients(redisContext *s, const char *node) {
  redisReply *r = tn_cmd(s, "CLIENT LIST");
  char want[64];
  int killed = 0;
  snprintf(want, sizeof want, "name=vigil-dir:%s:", node);
  for (char *line = r->str; line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = '\0';
    long long id;
    if (strstr(line, want) && sscanf(line, "id=%lld", &id) == 1) {
      freeReplyObject(tn_cmd(s, "CLIENT KILL ID %lld", id));
      killed++;
    }
    line = next;
  }
  freeReplyObject(r);
  return killed;
}

static void missed_eviction_caught_by_reassertion(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  assert_int_equal(vt_redis_start(&f->redis, NULL), 0);
  redisContext *s = tn_sync(&f->redis);
  tn_config(&c, f->redis.url, "node-a", 0);
  c.backoff.initial_ms = 400; /* the gap in which b claims */
  c.backoff.max_ms = 400;
  c.backoff.jitter = 0.0;
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);
  start_node(f, &f->b, f->redis.url, "node-b");
  assert_int_equal(tn_claim(&f->a, "X", 1, 0)->epoch, 1);
  vigil__dir_held held = {"X", 1, 1, 1, 0};
  f->a.hook_data = &held;
  f->a.on_state_hook = reassert_on_up;

  assert_int_equal(kill_clients(s, "node-a"), 2);
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  /* node-a is alive (its key stays), so the eviction is published, but
   * nobody listens on its channel now. */
  const tn_result *r = tn_claim(&f->b, "X", 2, 0);
  assert_int_equal(r->epoch, 2);
  assert_int_equal(r->other.node_alive, 1);
  assert_int_equal(f->a.nevictions, 0);

  assert_true(tn_wait_ups(&f->a, 2, 5000));
  tn_wait_results(&f->a, 2, 5000);
  assert_int_equal(f->a.results[1].status, VIGIL__DIR_FENCED);
  assert_int_equal(f->a.results[1].epoch, 2);
  assert_string_equal(f->a.results[1].other.node, "node-b");
  assert_int_equal(f->a.nevictions, 0);
  redisFree(s);
}

static void silent_store_times_out(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  fs_start(&f->fs, f->loop);
  f->fs_on = 1;
  f->fs.silent = 1;
  tn_config(&c, f->fs.url, "node-a", 0);
  c.command_timeout_ms = 150;
  c.liveness_ttl_ms = 450;
  uint64_t t0 = vt_now_ms();
  tn_start(&f->a, f->loop, &c);
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  uint64_t took = vt_now_ms() - t0;
  assert_true(took >= 150);
  assert_true(took <= 150 + 500 + vt_slack_ms(250));
  assert_non_null(strstr(f->a.reason, "did not answer within 150 ms"));
  assert_int_equal(f->a.ups, 0);
  /* It keeps trying, each attempt timing out in turn. */
  for (int i = 0; i < 300 && f->fs.accepted < 6; i++)
    vt_run_until(f->loop, NULL, NULL, 10);
  assert_true(f->fs.accepted >= 6); /* 2 connections per attempt */
  assert_int_equal(f->a.downs, 1);

  /* The store wakes up: the next attempt goes through. */
  f->fs.silent = 0;
  assert_true(tn_wait_ups(&f->a, 1, 5000));
}

static void stalled_store_times_out_requests(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  assert_int_equal(vt_redis_start(&f->redis, NULL), 0);
  tn_config(&c, f->redis.url, "node-a", 0);
  c.command_timeout_ms = 200 + vt_slack_ms(200);
  c.liveness_ttl_ms = 30000; /* no refresh in flight ahead of the claim */
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);

  assert_int_equal(vt_redis_signal(&f->redis, SIGSTOP), 0);
  uint64_t t0 = vt_now_ms();
  assert_int_equal(
      vigil__redis_dir_claim(f->a.d, "T", 1, 1, 0, tn_on_result, &f->a), 0);
  tn_wait_results(&f->a, 1, 5000);
  uint64_t took = vt_now_ms() - t0;
  assert_int_equal(f->a.results[0].status, VIGIL__DIR_TIMEOUT);
  assert_true(took >= c.command_timeout_ms);
  assert_true(took <= c.command_timeout_ms + 100 + vt_slack_ms(100));
  assert_non_null(strstr(f->a.results[0].detail, "did not answer within"));
  assert_int_equal(f->a.downs, 1);
  assert_non_null(strstr(f->a.reason, "did not answer within"));
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.timeouts, 1);

  assert_int_equal(vt_redis_signal(&f->redis, SIGCONT), 0);
  assert_true(tn_wait_ups(&f->a, 2, 10000));
  assert_int_equal(tn_claim(&f->a, "T", 2, 0)->status, VIGIL__DIR_INSTALLED);
}

static void connect_that_never_completes(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  /* A listener that never accepts, its backlog full: SYNs go unanswered. */
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 0), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  vt_run_until(f->loop, NULL, NULL, 50);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%u", ntohs(a.sin_port));
  tn_config(&c, url, "node-a", 0);
  c.backoff.min_connect_timeout_ms = 200;
  uint64_t t0 = vt_now_ms();
  tn_start(&f->a, f->loop, &c);
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  uint64_t took = vt_now_ms() - t0;
  if (!strstr(f->a.reason, "connect to the store timed out after"))
    fprintf(stderr, "reason: %s\n", f->a.reason);
  assert_non_null(strstr(f->a.reason, "connect to the store timed out after"));
  assert_true(took >= 200);
  assert_true(took <= 200 + 300 + vt_slack_ms(200));
  tn_stop(&f->a);
  for (int i = 0; i < 4; i++) close(fill[i]);
  close(l);
}

static void store_not_there(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  tn_config(&c, "unix:///nonexistent/vigil-redis.sock", "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  assert_non_null(strstr(f->a.reason, "No such file or directory"));
  assert_non_null(strstr(f->a.reason, "unix:///nonexistent/vigil-redis.sock"));
  tn_stop(&f->a);
  tn_config(&c, "redis://no-such-host.invalid:6379", "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  assert_true(tn_wait_downs(&f->a, 1, 10000));
  assert_non_null(strstr(f->a.reason, "cannot resolve no-such-host.invalid"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(killed_and_restarted_store, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(missed_eviction_caught_by_reassertion,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(silent_store_times_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(stalled_store_times_out_requests, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(connect_that_never_completes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(store_not_there, setup, teardown),
  };
  if (!vt_redis_available())
    vt_skip("redis-server not found (Debian: redis-server)");
  return cmocka_run_group_tests(tests, NULL, NULL);
}
