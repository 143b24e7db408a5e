/*
 * The Redis identity directory against a real redis-server: claims,
 * releases and epochs; two nodes taking an identity from each other with
 * the eviction delivered and fenced by epoch; late and replayed evictions
 * that must not close a newer holder; the proven-holder rule; dead nodes
 * taken over without waiting; re-assertion verdicts; NOSCRIPT; AUTH, ACL
 * users, SELECT and unix sockets; key prefixes; and free() from inside
 * every callback.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dirtest.h"

typedef struct fx {
  vt_redis redis;
  struct ev_loop *loop;
  redisContext *sync;
  tnode a, b;
} fx;

static vt_redis g_redis;

static int group_setup(void **state) {
  (void)state;
  if (vt_redis_start(&g_redis, NULL) != 0) {
    fprintf(stderr, "cannot start redis-server\n");
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  vt_redis_stop(&g_redis);
  return 0;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->redis = g_redis;
  f->loop = ev_loop_new(EVFLAG_AUTO);
  f->sync = tn_sync(&f->redis);
  freeReplyObject(tn_cmd(f->sync, "FLUSHALL"));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  tn_stop(&f->a);
  tn_stop(&f->b);
  redisFree(f->sync);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

static void start_node(fx *f, tnode *n, const char *node, uint32_t worker) {
  vigil__redis_dir_config c;
  tn_config(&c, f->redis.url, node, worker);
  tn_start(n, f->loop, &c);
  tn_wait_up(n);
}

/* HGET on the identity's record (default prefix); "" when absent. */
static void hget(fx *f, const char *identity, const char *field, char *out,
                 size_t len) {
  redisReply *r = tn_cmd(f->sync, "HGET vigil:id:%s %s", identity, field);
  snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
  freeReplyObject(r);
}

static long long integer(fx *f, const char *fmt, const char *arg) {
  redisReply *r = tn_cmd(f->sync, fmt, arg);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* A sync point on the command connection: once a claim is answered,
 * everything queued before it on that connection was answered too. */
static void barrier(tnode *n) {
  const tn_result *r = tn_claim(n, "barrier", 999999, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
}

/* ---- claims, releases, epochs ------------------------------------------ */

static void claim_release_and_epochs(void **state) {
  fx *f = *state;
  char v[64];
  start_node(f, &f->a, "node-a", 0);
  assert_int_equal(f->a.ups, 1);
  assert_int_equal(f->a.downs, 0);

  const tn_result *r = tn_claim(&f->a, "dev-1", 101, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 1);
  assert_string_equal(r->identity, "dev-1");
  assert_int_equal(r->conn_id, 101);
  assert_false(r->other.present);
  hget(f, "dev-1", "node", v, sizeof v);
  assert_string_equal(v, "node-a");
  hget(f, "dev-1", "inc", v, sizeof v);
  assert_string_equal(v, vigil__redis_dir_incarnation(f->a.d));
  hget(f, "dev-1", "conn", v, sizeof v);
  assert_string_equal(v, "101");
  hget(f, "dev-1", "proven", v, sizeof v);
  assert_string_equal(v, "0");
  assert_int_equal(integer(f, "PTTL vigil:id:%s", "dev-1"), -1);

  /* A stale release (wrong epoch) changes nothing. */
  assert_int_equal(vigil__redis_dir_release(f->a.d, "dev-1", 5, 7), 0);
  barrier(&f->a);
  hget(f, "dev-1", "node", v, sizeof v);
  assert_string_equal(v, "node-a");
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.releases_stale, 1);

  /* Release at the right epoch: the holder goes, the epoch stays and the
   * record expires after released_ttl_ms. */
  assert_int_equal(vigil__redis_dir_release(f->a.d, "dev-1", 5, 1), 0);
  barrier(&f->a);
  hget(f, "dev-1", "node", v, sizeof v);
  assert_string_equal(v, "");
  hget(f, "dev-1", "epoch", v, sizeof v);
  assert_string_equal(v, "1");
  long long pttl = integer(f, "PTTL vigil:id:%s", "dev-1");
  assert_true(pttl > 0 && pttl <= 86400000);

  /* The next claim continues the epochs and makes the record permanent. */
  r = tn_claim(&f->a, "dev-1", 102, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 2);
  assert_false(r->other.present);
  assert_int_equal(integer(f, "PTTL vigil:id:%s", "dev-1"), -1);

  /* The same worker claiming again (a local takeover): the previous holder
   * is reported, alive, and no eviction is published to ourselves. */
  r = tn_claim(&f->a, "dev-1", 103, 1);
  assert_int_equal(r->epoch, 3);
  assert_true(r->other.present);
  assert_string_equal(r->other.node, "node-a");
  assert_int_equal(r->other.worker, 0);
  assert_int_equal(r->other.conn_id, 102);
  assert_int_equal(r->other.epoch, 2);
  assert_int_equal(r->other.node_alive, 1);
  barrier(&f->a);
  assert_int_equal(f->a.nevictions, 0);
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.releases, 2);
  assert_int_equal(st.evictions, 0);
}

static void results_come_exactly_once_pipelined(void **state) {
  fx *f = *state;
  start_node(f, &f->a, "node-a", 0);
  enum { N = 500 };
  char id[32];
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "dev-%d", i % 50);
    assert_int_equal(vigil__redis_dir_claim(f->a.d, id, strlen(id),
                                            (uint64_t)i + 1, 0, tn_on_result,
                                            &f->a),
                     0);
  }
  assert_int_equal(f->a.nresults, 0); /* never from inside claim() */
  tn_wait_results(&f->a, N, 10000 + vt_slack_ms(10000));
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_int_equal(f->a.nresults, N);
  /* Answers in order; each identity's epochs count 1..10. */
  for (int i = 0; i < N; i++) {
    assert_int_equal(f->a.results[i].status, VIGIL__DIR_INSTALLED);
    assert_int_equal(f->a.results[i].conn_id, (uint64_t)i + 1);
    assert_int_equal(f->a.results[i].epoch, (uint64_t)(i / 50 + 1));
  }
}

/* ---- two nodes ------------------------------------------------------------ */

static void second_node_evicts_the_first(void **state) {
  fx *f = *state;
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 3);
  const tn_result *r = tn_claim(&f->a, "dev-9", 11, 0);
  assert_int_equal(r->epoch, 1);

  uint64_t t0 = vt_now_ms();
  r = tn_claim(&f->b, "dev-9", 22, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 2);
  assert_true(r->other.present);
  assert_string_equal(r->other.node, "node-a");
  assert_int_equal(r->other.worker, 0);
  assert_int_equal(r->other.conn_id, 11);
  assert_int_equal(r->other.epoch, 1);
  assert_int_equal(r->other.proven, 0);
  assert_int_equal(r->other.node_alive, 1);

  assert_true(tn_wait_evictions(&f->a, 1, 5000));
  const tn_eviction *e = &f->a.evictions[0];
  printf("eviction reached node-a %llu ms after node-b's claim call\n",
         (unsigned long long)(e->at_ms - t0));
  assert_string_equal(e->identity, "dev-9");
  assert_int_equal(e->ev.worker, 0);
  assert_int_equal(e->ev.conn_id, 11);
  assert_int_equal(e->ev.holder_epoch, 1);
  assert_int_equal(e->ev.fence_epoch, 2);
  assert_string_equal(e->ev.claimer, "node-b");
  assert_string_equal(e->ev.holder_inc, vigil__redis_dir_incarnation(f->a.d));
  assert_true(vigil__dir_must_fence(&e->ev, 11, 1));
  assert_int_equal(f->b.nevictions, 0);

  /* Back to node-a: node-b (worker 3) is evicted on its own channel. */
  r = tn_claim(&f->a, "dev-9", 33, 0);
  assert_int_equal(r->epoch, 3);
  assert_string_equal(r->other.node, "node-b");
  assert_int_equal(r->other.worker, 3);
  assert_true(tn_wait_evictions(&f->b, 1, 5000));
  assert_int_equal(f->b.evictions[0].ev.worker, 3);
  assert_int_equal(f->b.evictions[0].ev.conn_id, 22);
  assert_int_equal(f->b.evictions[0].ev.fence_epoch, 3);
}

/* The host side of a node in miniature: one identity, its conn and epoch;
 * evictions are applied with the fencing rule. */
typedef struct holder {
  uint64_t conn_id, epoch; /* epoch 0: claim in flight */
  int fenced;              /* conns closed by evictions */
  uint64_t fenced_conn;
} holder;

static void apply_eviction(tnode *n, const vigil__dir_eviction *ev) {
  holder *h = n->hook_data;
  if (vigil__dir_must_fence(ev, h->conn_id, h->epoch)) {
    h->fenced++;
    h->fenced_conn = h->conn_id;
    h->conn_id = 0;
  }
}

static void publish(fx *f, const char *channel, const char *msg) {
  redisReply *r = tn_cmd(f->sync, "PUBLISH %s %s", channel, msg);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_int_equal(r->integer, 1); /* node-a's subscriber heard it */
  freeReplyObject(r);
}

static void late_eviction_never_fences_a_newer_holder(void **state) {
  fx *f = *state;
  holder ha = {0};
  char msg[256];
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 1);
  f->a.hook_data = &ha;
  f->a.on_evict_hook = apply_eviction;
  const char *inc_a = vigil__redis_dir_incarnation(f->a.d);

  /* a holds X with conn 11 at epoch 1; b takes it at 2: conn 11 fenced. */
  ha.conn_id = 11;
  ha.epoch = tn_claim(&f->a, "X", 11, 0)->epoch;
  assert_int_equal(ha.epoch, 1);
  assert_int_equal(tn_claim(&f->b, "X", 22, 0)->epoch, 2);
  assert_true(tn_wait_evictions(&f->a, 1, 5000));
  assert_int_equal(ha.fenced, 1);
  assert_int_equal(ha.fenced_conn, 11);
  snprintf(msg, sizeof msg, "E1 2 %s 0 11 1 node-b X", inc_a);

  /* The device comes back to a: conn 33 claims (epoch 3, b evicted). */
  ha.conn_id = 33;
  ha.epoch = 0;
  ha.epoch = tn_claim(&f->a, "X", 33, 0)->epoch;
  assert_int_equal(ha.epoch, 3);

  /* b's eviction of conn 11 arrives again, late (delayed, replayed). */
  publish(f, "vigil:evict:node-a:0", msg);
  assert_true(tn_wait_evictions(&f->a, 2, 5000));
  assert_int_equal(f->a.evictions[1].ev.conn_id, 11);
  assert_int_equal(ha.fenced, 1); /* conn 33 stays */
  assert_int_equal(ha.conn_id, 33);

  /* Even a late message naming conn 33 itself, from a claim older than
   * its epoch, leaves it alone. */
  snprintf(msg, sizeof msg, "E1 3 %s 0 33 2 node-b X", inc_a);
  publish(f, "vigil:evict:node-a:0", msg);
  assert_true(tn_wait_evictions(&f->a, 3, 5000));
  assert_int_equal(ha.fenced, 1);
  assert_int_equal(ha.conn_id, 33);

  /* But a message naming conn 33 from a newer claim fences it. */
  snprintf(msg, sizeof msg, "E1 4 %s 0 33 3 node-b X", inc_a);
  publish(f, "vigil:evict:node-a:0", msg);
  assert_true(tn_wait_evictions(&f->a, 4, 5000));
  assert_int_equal(ha.fenced, 2);
  assert_int_equal(ha.fenced_conn, 33);

  /* Messages for another incarnation, another worker, or not parseable
   * are dropped before the host sees them. */
  vigil__redis_dir_stats st;
  snprintf(msg, sizeof msg, "E1 9 0000000000000000 0 33 3 node-b X");
  publish(f, "vigil:evict:node-a:0", msg);
  snprintf(msg, sizeof msg, "E1 9 %s 5 33 3 node-b X", inc_a);
  publish(f, "vigil:evict:node-a:0", msg);
  publish(f, "vigil:evict:node-a:0", "E1 9 garbage");
  for (int i = 0; i < 100; i++) {
    vigil__redis_dir_get_stats(f->a.d, &st);
    if (st.evictions_dropped == 3) break;
    vt_run_until(f->loop, NULL, NULL, 10);
  }
  assert_int_equal(st.evictions_dropped, 3);
  assert_int_equal(f->a.nevictions, 4);
  assert_non_null(strstr(vigil__redis_dir_last_error(f->a.d),
                         "eviction dropped"));
}

/* ---- proof and liveness -------------------------------------------------- */

static void proven_holder_refuses_unproven_claims(void **state) {
  fx *f = *state;
  char v[64];
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 0);
  assert_int_equal(tn_claim(&f->a, "cert-dev", 1, 1)->epoch, 1);

  const tn_result *r = tn_claim(&f->b, "cert-dev", 2, 0);
  assert_int_equal(r->status, VIGIL__DIR_REFUSED_PROVEN);
  assert_int_equal(r->epoch, 1);
  assert_string_equal(r->other.node, "node-a");
  assert_int_equal(r->other.conn_id, 1);
  assert_int_equal(r->other.proven, 1);
  assert_int_equal(r->other.node_alive, 1);
  hget(f, "cert-dev", "node", v, sizeof v);
  assert_string_equal(v, "node-a");
  hget(f, "cert-dev", "epoch", v, sizeof v);
  assert_string_equal(v, "1");

  /* Not even from the same node and worker. */
  r = tn_claim(&f->a, "cert-dev", 3, 0);
  assert_int_equal(r->status, VIGIL__DIR_REFUSED_PROVEN);

  /* A proven claim does evict the proven holder. */
  r = tn_claim(&f->b, "cert-dev", 4, 1);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 2);
  assert_true(tn_wait_evictions(&f->a, 1, 5000));
  assert_int_equal(f->a.evictions[0].ev.conn_id, 1);

  /* An unproven holder is evicted by anyone. */
  assert_int_equal(tn_claim(&f->a, "plain", 5, 0)->status,
                   VIGIL__DIR_INSTALLED);
  assert_int_equal(tn_claim(&f->b, "plain", 6, 0)->status,
                   VIGIL__DIR_INSTALLED);
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->b.d, &st);
  assert_int_equal(st.refused, 1);
}

static void lapsed(tnode *n, int up) {
  if (up) n->hook_data = (void *)1;
}

static void dead_node_is_taken_over_without_waiting(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  start_node(f, &f->b, "node-b", 0);

  /* node-a holds a proven identity, then its liveness key goes away (the
   * node died, or its key was lost). */
  tn_config(&c, f->redis.url, "node-a", 0);
  c.command_timeout_ms = 200 + vt_slack_ms(100);
  c.liveness_ttl_ms = 3 * c.command_timeout_ms;
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);
  f->a.on_state_hook = lapsed;
  assert_int_equal(tn_claim(&f->a, "D", 1, 1)->epoch, 1);
  assert_int_equal(integer(f, "DEL %s", "vigil:node:node-a"), 1);

  /* Unproven and all: the dead holder neither blocks nor is evicted. */
  uint64_t t0 = vt_now_ms();
  const tn_result *r = tn_claim(&f->b, "D", 2, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 2);
  assert_string_equal(r->other.node, "node-a");
  assert_int_equal(r->other.proven, 1);
  assert_int_equal(r->other.node_alive, 0);
  assert_true(vt_now_ms() - t0 < 1000 + vt_slack_ms(1000));

  /* node-a notices at its next refresh and reports UP again to have its
   * identities re-asserted; D comes back fenced: the store moved on. */
  assert_true(tn_wait_ups(&f->a, 2, 3 * c.liveness_ttl_ms));
  assert_non_null(strstr(f->a.reason, "liveness key had expired"));
  vigil__dir_held held = {"D", 1, 1, 1, 1};
  assert_int_equal(
      vigil__redis_dir_reassert(f->a.d, &held, 1, tn_on_result, &f->a), 0);
  int before = f->a.nresults;
  tn_wait_results(&f->a, before + 1, 5000);
  r = &f->a.results[before];
  assert_int_equal(r->status, VIGIL__DIR_FENCED);
  assert_int_equal(r->epoch, 2);
  assert_string_equal(r->other.node, "node-b");
  assert_int_equal(f->a.nevictions, 0);
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.lapses, 1);
}

static void expired_node_is_taken_over(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  start_node(f, &f->b, "node-b", 0);
  tn_config(&c, f->redis.url, "node-c", 0);
  c.command_timeout_ms = 100 + vt_slack_ms(100);
  c.liveness_ttl_ms = 3 * c.command_timeout_ms;
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);
  assert_int_equal(tn_claim(&f->a, "Z", 1, 1)->epoch, 1);
  tn_stop(&f->a); /* the node stops refreshing: its key expires */
  long long ttl = integer(f, "PTTL %s", "vigil:node:node-c");
  assert_true(ttl > 0 && ttl <= c.liveness_ttl_ms);
  uint64_t deadline = vt_now_ms() + 2 * c.liveness_ttl_ms;
  while (integer(f, "EXISTS %s", "vigil:node:node-c") != 0 &&
         vt_now_ms() < deadline)
    vt_run_until(f->loop, NULL, NULL, 10);
  assert_int_equal(integer(f, "EXISTS %s", "vigil:node:node-c"), 0);
  const tn_result *r = tn_claim(&f->b, "Z", 2, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->other.node_alive, 0);
  assert_string_equal(r->other.node, "node-c");
}

static void restarted_node_is_a_new_incarnation(void **state) {
  fx *f = *state;
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 0);
  char inc1[17];
  snprintf(inc1, sizeof inc1, "%s", vigil__redis_dir_incarnation(f->a.d));
  assert_int_equal(tn_claim(&f->a, "R", 1, 1)->epoch, 1);
  tn_stop(&f->a);
  start_node(f, &f->a, "node-a", 0); /* same node id, new process */
  assert_string_not_equal(inc1, vigil__redis_dir_incarnation(f->a.d));
  /* The old incarnation's proven record no longer counts. */
  const tn_result *r = tn_claim(&f->b, "R", 2, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->other.node_alive, 0);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_int_equal(f->a.nevictions, 0);
}

/* ---- re-assertion ---------------------------------------------------------- */

static const tn_result *reassert_one(tnode *n, const char *id, uint64_t conn,
                                     uint64_t epoch, int proven) {
  vigil__dir_held h = {id, strlen(id), conn, epoch, proven};
  int before = n->nresults;
  assert_int_equal(vigil__redis_dir_reassert(n->d, &h, 1, tn_on_result, n),
                   0);
  tn_wait_results(n, before + 1, 5000);
  return &n->results[before];
}

static void reassert_verdicts(void **state) {
  fx *f = *state;
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 0);
  assert_int_equal(tn_claim(&f->a, "K", 7, 0)->epoch, 1);

  /* This very conn at this epoch: kept. */
  const tn_result *r = reassert_one(&f->a, "K", 7, 1, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 1);
  assert_false(r->other.present);

  /* Held without an epoch (claimed while the store was down): claimed. */
  r = reassert_one(&f->a, "L", 8, 0, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 1);

  /* A newer claim elsewhere: fenced, with the newer holder. */
  assert_int_equal(tn_claim(&f->b, "K", 9, 0)->epoch, 2);
  r = reassert_one(&f->a, "K", 7, 1, 0);
  assert_int_equal(r->status, VIGIL__DIR_FENCED);
  assert_int_equal(r->epoch, 2);
  assert_string_equal(r->other.node, "node-b");
  assert_int_equal(r->other.conn_id, 9);
  /* Proof does not beat a newer epoch: the older conn still goes. */
  r = reassert_one(&f->a, "K", 7, 1, 1);
  assert_int_equal(r->status, VIGIL__DIR_FENCED);
  assert_int_equal(r->epoch, 2);
  assert_int_equal(f->b.nevictions, 0);

  /* The store lost everything; b claims first (epoch 1), then a re-asserts
   * its epoch 5: the live holder wins between equals... */
  freeReplyObject(tn_cmd(f->sync, "FLUSHALL"));
  freeReplyObject(tn_cmd(f->sync, "SET vigil:node:node-a %s",
                         vigil__redis_dir_incarnation(f->a.d)));
  freeReplyObject(tn_cmd(f->sync, "SET vigil:node:node-b %s",
                         vigil__redis_dir_incarnation(f->b.d)));
  assert_int_equal(tn_claim(&f->b, "M", 10, 0)->epoch, 1);
  r = reassert_one(&f->a, "M", 11, 5, 0);
  assert_int_equal(r->status, VIGIL__DIR_FENCED);
  assert_string_equal(r->other.node, "node-b");
  /* ...but a proven conn takes it from an unproven one, keeping its epoch
   * (above the store's), and the holder is evicted. */
  r = reassert_one(&f->a, "M", 11, 5, 1);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 5);
  assert_string_equal(r->other.node, "node-b");
  assert_true(tn_wait_evictions(&f->b, 1, 5000));
  assert_int_equal(f->b.evictions[0].ev.fence_epoch, 5);
  assert_int_equal(f->b.evictions[0].ev.conn_id, 10);
  /* Nobody holds it and the store is behind: recorded at our epoch. */
  r = reassert_one(&f->b, "N", 12, 40, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(r->epoch, 40);
  assert_int_equal(tn_claim(&f->a, "N", 13, 0)->epoch, 41);

  /* Batches: one result per item, in order; all or nothing on errors. */
  vigil__dir_held batch[3] = {{"P1", 2, 1, 0, 0},
                              {"P2", 2, 2, 0, 0},
                              {"P3", 2, 3, 0, 0}};
  int before = f->a.nresults;
  assert_int_equal(
      vigil__redis_dir_reassert(f->a.d, batch, 3, tn_on_result, &f->a), 0);
  tn_wait_results(&f->a, before + 3, 5000);
  for (int i = 0; i < 3; i++)
    assert_int_equal(f->a.results[before + i].conn_id, (uint64_t)i + 1);
  batch[1].identity_len = 0;
  assert_int_equal(
      vigil__redis_dir_reassert(f->a.d, batch, 3, tn_on_result, &f->a),
      VIGIL_EINVAL);
  assert_int_equal(vigil__redis_dir_reassert(f->a.d, batch, 0, tn_on_result,
                                             &f->a),
                   VIGIL_OK);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_int_equal(f->a.nresults, before + 3);
}

/* ---- the script lost, store options -------------------------------------- */

static void noscript_falls_back_to_eval(void **state) {
  fx *f = *state;
  start_node(f, &f->a, "node-a", 0);
  freeReplyObject(tn_cmd(f->sync, "SCRIPT FLUSH"));
  const tn_result *r = tn_claim(&f->a, "S", 1, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  assert_int_equal(tn_claim(&f->a, "S", 2, 0)->epoch, 2); /* EVALSHA again */
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.noscript, 1);
}

static void prefixes_keep_clusters_apart(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  tn_config(&c, f->redis.url, "node-a", 0);
  c.prefix = "{fleet-1}:";
  tn_start(&f->a, f->loop, &c);
  tn_config(&c, f->redis.url, "node-a", 0);
  c.prefix = "";
  tn_start(&f->b, f->loop, &c);
  tn_wait_up(&f->a);
  tn_wait_up(&f->b);
  assert_int_equal(tn_claim(&f->a, "same", 1, 0)->epoch, 1);
  const tn_result *r = tn_claim(&f->b, "same", 2, 0);
  assert_int_equal(r->epoch, 1);
  assert_false(r->other.present);
  assert_int_equal(integer(f, "EXISTS %s", "{fleet-1}:id:same"), 1);
  assert_int_equal(integer(f, "EXISTS %s", "id:same"), 1);
  assert_int_equal(integer(f, "EXISTS %s", "node:node-a"), 1);
}

static void auth_acl_select_and_unix_sockets(void **state) {
  fx *f = *state;
  vt_redis secured;
  const char *extra[] = {"--requirepass", "s3cret", NULL};
  assert_int_equal(vt_redis_start(&secured, extra), 0);
  char url[256];
  vigil__redis_dir_config c;

  /* Password and db 3 over TCP. */
  snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%u/3",
           (unsigned)secured.port);
  tn_config(&c, url, "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);
  assert_int_equal(tn_claim(&f->a, "db3", 1, 0)->epoch, 1);
  redisContext *s = tn_sync(&secured);
  freeReplyObject(tn_cmd(s, "AUTH s3cret"));
  freeReplyObject(tn_cmd(s, "SELECT 3"));
  redisReply *r = tn_cmd(s, "EXISTS vigil:id:db3");
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  tn_stop(&f->a);

  /* An ACL user, over the unix socket, db 2. */
  r = tn_cmd(s, "ACL SETUSER dir on >pw ~* &* +@all");
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  snprintf(url, sizeof url, "unix://dir:pw@%s?db=2", secured.sock);
  tn_config(&c, url, "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  tn_wait_up(&f->a);
  assert_int_equal(tn_claim(&f->a, "db2", 1, 0)->epoch, 1);
  freeReplyObject(tn_cmd(s, "SELECT 2"));
  r = tn_cmd(s, "EXISTS vigil:id:db2");
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  tn_stop(&f->a);

  /* Wrong password, no password, a db the server does not have: DOWN
   * with the store's own words, and never UP. */
  static const struct {
    const char *fmt;
    const char *says;
  } bad[] = {
      {"redis://:wrong@127.0.0.1:%u", "AUTH failed: the store answered error"},
      {"redis://127.0.0.1:%u", "NOAUTH"},
      {"redis://:s3cret@127.0.0.1:%u/99", "SELECT 99 failed"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(url, sizeof url, bad[i].fmt, (unsigned)secured.port);
    tn_config(&c, url, "node-a", 0);
    tn_start(&f->a, f->loop, &c);
    assert_true(tn_wait_downs(&f->a, 1, 5000));
    if (!strstr(f->a.reason, bad[i].says))
      fprintf(stderr, "%s: %s\n", url, f->a.reason);
    assert_non_null(strstr(f->a.reason, bad[i].says));
    assert_null(strstr(f->a.reason, "s3cret"));
    assert_int_equal(f->a.ups, 0);
    assert_int_equal(vigil__redis_dir_claim(f->a.d, "x", 1, 1, 0,
                                            tn_on_result, &f->a),
                     VIGIL_EAGAIN);
    /* Attempts go on with backoff, DOWN is not repeated. */
    vigil__redis_dir_stats st;
    for (int k = 0; k < 100; k++) {
      vigil__redis_dir_get_stats(f->a.d, &st);
      if (st.attempts >= 3) break;
      vt_run_until(f->loop, NULL, NULL, 20);
    }
    assert_true(st.attempts >= 3);
    assert_int_equal(f->a.downs, 1);
    tn_stop(&f->a);
  }
  redisFree(s);
  vt_redis_stop(&secured);
}

static void refuses_bad_configs(void **state) {
  fx *f = *state;
  vigil__redis_dir_config c;
  vigil__redis_dir *d = NULL;
  char err[256];
  static const struct {
    int field;
    const char *says;
  } cases[] = {
      {0, "redis URL: scheme must be"},
      {1, "node must be 1..64 of [A-Za-z0-9._-]"},
      {2, "prefix must be 0..64 printable bytes"},
      {3, "command_timeout_ms must be 1..86400000"},
      {4, "liveness_ttl_ms must be 3 x command_timeout_ms (1500)..86400000"},
      {5, "released_ttl_ms must be 0..86400000"},
      {6, "backoff must be within vigil_client_backoff's ranges"},
      {7, "max_pending must be 1..1048576"},
      {8, "node must be 1..64"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    vigil__redis_dir_config_init(&c);
    c.url = f->redis.url;
    c.node = "n";
    switch (cases[i].field) {
    case 0: c.url = "tcp://x"; break;
    case 1: c.node = "a:b"; break;
    case 2: c.prefix = "has space"; break;
    case 3: c.command_timeout_ms = 0; break;
    case 4: c.liveness_ttl_ms = 1499; break;
    case 5: c.released_ttl_ms = 86400001; break;
    case 6: c.backoff.multiplier = 0.5; break;
    case 7: c.max_pending = 0; break;
    case 8: c.node = NULL; break;
    }
    assert_int_equal(vigil__redis_dir_new(f->loop, &c, NULL, &d, err,
                                          sizeof err),
                     VIGIL_EINVAL);
    if (!strstr(err, cases[i].says)) fprintf(stderr, "%zu: %s\n", i, err);
    assert_non_null(strstr(err, cases[i].says));
  }
  assert_int_equal(vigil__redis_dir_new(f->loop, NULL, NULL, &d, err,
                                        sizeof err),
                   VIGIL_EINVAL);
  /* Bad arguments to the requests. */
  start_node(f, &f->a, "node-a", 0);
  char big[65536];
  memset(big, 'x', sizeof big);
  assert_int_equal(vigil__redis_dir_claim(f->a.d, big, sizeof big, 1, 0,
                                          tn_on_result, &f->a),
                   VIGIL_EINVAL);
  assert_int_equal(vigil__redis_dir_claim(f->a.d, "x", 0, 1, 0, tn_on_result,
                                          &f->a),
                   VIGIL_EINVAL);
  assert_int_equal(vigil__redis_dir_claim(f->a.d, "x", 1, 1, 0, NULL, NULL),
                   VIGIL_EINVAL);
  assert_int_equal(vigil__redis_dir_release(f->a.d, "x", 1, 0), VIGIL_EINVAL);
  /* The longest identity works. */
  int before = f->a.nresults;
  assert_int_equal(vigil__redis_dir_claim(f->a.d, big, sizeof big - 1, 1, 0,
                                          tn_on_result, &f->a),
                   0);
  tn_wait_results(&f->a, before + 1, 5000);
  assert_int_equal(f->a.results[before].status, VIGIL__DIR_INSTALLED);
}

/* ---- free() from inside every callback ----------------------------------- */

static void free_in_result(tnode *n, const vigil__dir_result *r) {
  if (n->nresults == 1) {
    vigil__redis_dir_free(n->d);
    n->d = NULL;
  }
}

static void free_in_state(tnode *n, int up) {
  vigil__redis_dir_free(n->d);
  n->d = NULL;
}

static void free_in_evict(tnode *n, const vigil__dir_eviction *ev) {
  vigil__redis_dir_free(n->d);
  n->d = NULL;
}

static void free_from_every_callback(void **state) {
  fx *f = *state;
  /* From a result, with more requests in flight: they are CANCELLED
   * during the free, and nothing comes after it. */
  start_node(f, &f->a, "node-a", 0);
  f->a.on_result_hook = free_in_result;
  for (uint64_t i = 1; i <= 20; i++)
    assert_int_equal(vigil__redis_dir_claim(f->a.d, "F", 1, i, 0,
                                            tn_on_result, &f->a),
                     0);
  assert_int_equal(vigil__redis_dir_release(f->a.d, "F", 1, 1), 0);
  tn_wait_results(&f->a, 20, 5000);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_int_equal(f->a.nresults, 20);
  assert_null(f->a.d);
  assert_int_equal(f->a.results[0].status, VIGIL__DIR_INSTALLED);
  for (int i = 1; i < 20; i++) {
    assert_int_equal(f->a.results[i].status, VIGIL__DIR_CANCELLED);
    assert_string_equal(f->a.results[i].detail, "the directory was freed");
  }

  /* From on_state(UP). */
  vigil__redis_dir_config c;
  tn_config(&c, f->redis.url, "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  f->a.on_state_hook = free_in_state;
  assert_true(tn_wait_ups(&f->a, 1, 5000));
  assert_null(f->a.d);
  vt_run_until(f->loop, NULL, NULL, 50);

  /* From on_state(DOWN): a store that refuses connections. */
  vt_redis dead = f->redis;
  tn_config(&c, "redis://127.0.0.1:1", "node-a", 0);
  tn_start(&f->a, f->loop, &c);
  f->a.on_state_hook = free_in_state;
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  assert_null(f->a.d);
  assert_non_null(strstr(f->a.reason, "Connection refused"));
  vt_run_until(f->loop, NULL, NULL, 50);
  (void)dead;

  /* From on_evict. */
  start_node(f, &f->a, "node-a", 0);
  start_node(f, &f->b, "node-b", 0);
  f->a.on_evict_hook = free_in_evict;
  assert_int_equal(tn_claim(&f->a, "E", 1, 0)->epoch, 1);
  assert_int_equal(tn_claim(&f->b, "E", 2, 0)->epoch, 2);
  assert_true(tn_wait_evictions(&f->a, 1, 5000));
  assert_null(f->a.d);
  vt_run_until(f->loop, NULL, NULL, 50);

  /* And a plain free with requests in flight, outside any callback. */
  for (uint64_t i = 1; i <= 5; i++)
    assert_int_equal(vigil__redis_dir_claim(f->b.d, "G", 1, i, 0,
                                            tn_on_result, &f->b),
                     0);
  int before = f->b.nresults;
  tn_stop(&f->b);
  assert_int_equal(f->b.nresults, before + 5);
  for (int i = before; i < before + 5; i++)
    assert_int_equal(f->b.results[i].status, VIGIL__DIR_CANCELLED);
  vt_run_until(f->loop, NULL, NULL, 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(claim_release_and_epochs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(results_come_exactly_once_pipelined,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(second_node_evicts_the_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          late_eviction_never_fences_a_newer_holder, setup, teardown),
      cmocka_unit_test_setup_teardown(proven_holder_refuses_unproven_claims,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(dead_node_is_taken_over_without_waiting,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(expired_node_is_taken_over, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(restarted_node_is_a_new_incarnation,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(reassert_verdicts, setup, teardown),
      cmocka_unit_test_setup_teardown(noscript_falls_back_to_eval, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(prefixes_keep_clusters_apart, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(auth_acl_select_and_unix_sockets, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(refuses_bad_configs, setup, teardown),
      cmocka_unit_test_setup_teardown(free_from_every_callback, setup,
                                      teardown),
  };
  if (!vt_redis_available())
    vt_skip("redis-server not found (Debian: redis-server)");
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
