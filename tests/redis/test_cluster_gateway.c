/*
 * Two mqtt_gateway nodes (examples/mqtt_gateway --cluster) share one
 * redis-server, as two servers behind a load balancer would:
 *   1. 100 devices connect to node 1;
 *   2. they reboot silently and come back through node 2 with the same
 *      client ids while their first sockets stay open and silent;
 *   3. within 1 s node 1 has closed all 100 and holds no socket for them
 *      (census of its port), and node 2 keeps all 100. The first sockets'
 *      kernel still acknowledges everything, so node 1 finds no loss
 *      evidence: each gets a FIN, and since none answers, the takeover
 *      bound resets it (docs/ghosts.md);
 *   4. with Redis killed, both nodes still accept clients and take over
 *      ghosts locally;
 *   5. after Redis restarts, cross-node takeover works again within a
 *      few seconds.
 * The times are printed. SKIPs without redis-server or the gateway.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirtest.h"
#include "exproc.h"
#include "mqtt_codec.h"

#define DEVICES 100

static vt_redis R;

typedef struct node {
  vt_proc p;
} node;

static void node_start(node *n, const char *name) {
  char path[512];
  if (!vt_example_path("mqtt_gateway", "MQTT_GATEWAY", path, sizeof path))
    vt_skip("examples/mqtt_gateway not built");
  const char *argv[] = {path,     "--listen", "127.0.0.1:0", "--cluster",
                        R.url,    "--node",   name,          NULL};
  vt_proc_start(&n->p, argv, 1);
  assert_true(vt_proc_wait_line(&n->p, NULL, 0, 10000, "event=directory_up",
                                NULL));
}

static void node_stop(node *n) {
  int status = vt_proc_stop(&n->p);
  n->p.pid = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  vt_proc_remove_log(&n->p);
}

static node N1, N2;

/* Whatever a failed test left running goes (the nodes would die with
 * this process; redis-server would not). */
static int teardown(void **s) {
  (void)s;
  node *nodes[2] = {&N1, &N2};
  for (int i = 0; i < 2; i++)
    if (nodes[i]->p.pid > 0) {
      vt_proc_stop(&nodes[i]->p);
      vt_proc_remove_log(&nodes[i]->p);
      nodes[i]->p.pid = 0;
    }
  vt_redis_stop(&R);
  return 0;
}

/* ---- a raw MQTT client ---- */

/* CONNECT with id, CONNACK 0 expected. */
static int client_at(uint16_t port, const char *id) {
  int fd = vt_connect_loopback(port);
  assert_true(fd >= 0);
  uint8_t b[256];
  mqtt_connect_opts o = {id, 60, 1, NULL};
  int n = mqtt_encode_connect(&o, b, sizeof b);
  assert_true(n > 0);
  assert_int_equal(send(fd, b, (size_t)n, MSG_NOSIGNAL), n);
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\x20\x02\x00\x00", 4);
  return fd;
}

/* Sockets on port in any state but LISTEN (and TIME_WAIT, which the
 * client side holds after a reset... never the server's). */
static int sockets_on(uint16_t port, int state) {
  vigil_census_query q;
  vigil_census_query_init(&q);
  q.ports = &port;
  q.nports = 1;
  q.want_sockets = 0;
  vigil_census *c = NULL;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  int n = 0;
  for (int s = 1; s < VIGIL_TCP_STATE__COUNT; s++)
    if (state ? s == state : s != VIGIL_TCP_LISTEN) n += (int)c->counts[s];
  vigil_census_free(c);
  return n;
}

/* The store records every dev-NNN as held by node `name`. */
static int all_recorded(redisContext *sync, const char *name) {
  for (int i = 0; i < DEVICES; i++) {
    redisReply *r = tn_cmd(sync, "HGET vigil:id:dev-%03d node", i);
    int ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, name) == 0;
    freeReplyObject(r);
    if (!ok) return 0;
  }
  return 1;
}

/* A ghost on `from` taken over by a claim on `to`: 1 if the first socket
 * was closed (FIN or RST) within timeout_ms. */
static int takeover_across(uint16_t from, uint16_t to, const char *id,
                           uint32_t timeout_ms) {
  int a = client_at(from, id);
  /* Let the first claim reach the store before the second. */
  usleep(20 * 1000);
  int b = client_at(to, id);
  int end = vt_wait_closed(a, timeout_ms);
  close(a);
  close(b);
  return end != VT_STILL_OPEN;
}

static void test_done_when(void **s) {
  (void)s;
  signal(SIGPIPE, SIG_IGN);
  if (vt_redis_start(&R, NULL) != 0) fail_msg("cannot start redis-server");
  node *n1 = &N1, *n2 = &N2;
  node_start(n1, "gw-1");
  node_start(n2, "gw-2");
  redisContext *sync = tn_sync(&R);
  uint16_t p1 = n1->p.port, p2 = n2->p.port;

  /* 1. */
  int first[DEVICES], second[DEVICES];
  char id[16];
  for (int i = 0; i < DEVICES; i++) {
    snprintf(id, sizeof id, "dev-%03d", i);
    first[i] = client_at(p1, id);
  }
  uint64_t until = vt_now_ms() + 5000;
  while (!all_recorded(sync, "gw-1") && vt_now_ms() < until) usleep(5000);
  assert_true(all_recorded(sync, "gw-1"));

  /* 2. */
  uint64_t t0 = vt_now_ms();
  for (int i = 0; i < DEVICES; i++) {
    snprintf(id, sizeof id, "dev-%03d", i);
    second[i] = client_at(p2, id);
  }
  uint64_t reconnected = vt_now_ms();

  /* 3. */
  int fins = 0;
  for (int i = 0; i < DEVICES; i++) {
    uint64_t now = vt_now_ms();
    int left = t0 + 1000 > now ? (int)(t0 + 1000 - now) : 0;
    int end = vt_wait_closed(first[i], (uint32_t)left);
    if (end == VT_STILL_OPEN)
      fail_msg("device %d's first socket on node 1 was not closed within 1 s",
               i);
    fins += end == VT_GOT_FIN;
  }
  uint64_t all_closed = vt_now_ms();
  while (sockets_on(p1, 0) > 0 && vt_now_ms() < t0 + 1000) usleep(2000);
  uint64_t port_empty = vt_now_ms();
  assert_int_equal(sockets_on(p1, 0), 0);
  for (int i = 0; i < DEVICES; i++) close(first[i]);
  for (int i = 0; i < DEVICES; i++)
    assert_int_equal(vt_wait_closed(second[i], 1), VT_STILL_OPEN);
  assert_int_equal(sockets_on(p2, VIGIL_TCP_ESTABLISHED), DEVICES);
  assert_true(vt_proc_wait_line(&n1->p, NULL, 0, 2000, "event=takeover",
                                "scope=cluster", "other_node=gw-2", NULL));
  printf("done-when: %d devices reconnected through node 2 in %llu ms; "
         "node 1 closed every first socket %llu ms after the first reconnect "
         "(%d by FIN, then reset at the takeover bound) and held no socket "
         "on its port %llu ms after it\n",
         DEVICES, (unsigned long long)(reconnected - t0),
         (unsigned long long)(all_closed - t0), fins,
         (unsigned long long)(port_empty - t0));

  /* 4. */
  vt_redis_kill(&R);
  assert_true(vt_proc_wait_line(&n1->p, NULL, 0, 5000, "event=directory_down",
                                NULL));
  assert_true(vt_proc_wait_line(&n2->p, NULL, 0, 5000, "event=directory_down",
                                NULL));
  const uint16_t ports[2] = {p1, p2};
  for (int k = 0; k < 2; k++) {
    int ghost = client_at(ports[k], "local-1");
    int back = client_at(ports[k], "local-1");
    assert_true(vt_wait_closed(ghost, 1000) != VT_STILL_OPEN);
    assert_int_equal(vt_wait_closed(back, 1), VT_STILL_OPEN);
    close(ghost);
    close(back);
  }

  /* 5. */
  uint64_t r0 = vt_now_ms();
  assert_int_equal(vt_redis_restart(&R), 0);
  int ok = 0;
  for (int k = 0; !ok && vt_now_ms() < r0 + 15000; k++) {
    snprintf(id, sizeof id, "back-%d", k);
    ok = takeover_across(p1, p2, id, 300);
  }
  assert_true(ok);
  printf("done-when: Redis restarted; cross-node takeover worked again "
         "%llu ms later\n", (unsigned long long)(vt_now_ms() - r0));

  for (int i = 0; i < DEVICES; i++) close(second[i]);
  redisFree(sync);
  node_stop(n1);
  node_stop(n2);
}

int main(void) {
  if (!vt_redis_available()) vt_skip("redis-server not installed");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_done_when, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
