/*
 * Identity takeover across the workers of a group: a claim on one worker
 * evicts the holder on another through that worker's mailbox, and the
 * directory the workers share applies every rule group-wide: newest wins
 * (the displaced conn is reset, its close says takeover, the takeover
 * event says scope=worker and where it lived), oldest wins, ASK (the
 * callback gets old_conn NULL for a holder elsewhere), flapping and bans
 * counted over every worker, and the fencing that keeps a late eviction
 * from closing a successor. Then devices that reconnect through
 * SO_REUSEPORT, so the kernel picks the worker: every ghost ends, none
 * remains.
 *
 * Conns are placed on a chosen worker by posting the adoption of a
 * loopback pair's server end to it; checks on worker threads are recorded
 * (GX_CHECK) and asserted on the test's thread.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "groupfix.h"
#include "testutil.h"

static int load(const int *v) { return gx_atomic(v); }
static void store(int *v, int x) { __atomic_store_n(v, x, __ATOMIC_SEQ_CST); }

static void place(gx *f, gx_placed *p, uint32_t worker, const char *id) {
  gx_place(f, p, worker, id, NULL);
}

static int is_closed(void *arg) { return load(&((gx_placed *)arg)->closed); }

/* ---- groups ---- */

/* A started group of `workers` without listeners, policy p (NULL: the
 * default), ASK callback ask (NULL: none). */
static void up(gx *f, uint32_t workers, const vigil_policy *p,
               vigil_takeover_cb ask) {
  gx_init(f, workers);
  f->listen = 0;
  if (p) f->policy = *p;
  f->on_takeover = ask;
  gx_start(f);
}

typedef struct stats_want {
  gx *f;
  uint32_t worker;
  uint64_t takeovers;
} stats_want;

static int worker_takeovers(void *arg) {
  stats_want *s = arg;
  vigil_stats total, per[GX_MAXW];
  vigil_group_stats(s->f->g, &total, per, GX_MAXW);
  return per[s->worker].takeovers == s->takeovers;
}

static void stats_of(gx *f, uint32_t worker, vigil_stats *out) {
  vigil_stats total, per[GX_MAXW];
  gx_stats(f, &total, per);
  *out = per[worker];
}

/* ---- the tests ---- */

/* Newest wins across workers: the holder on worker 0 is closed by its own
 * worker; the claimant's worker says so with scope=worker. */
static void test_takeover_crosses_workers(void **state) {
  (void)state;
  gx f;
  up(&f, 2, NULL, NULL);
  gx_placed x, y, z;
  place(&f, &x, 0, "dev-1");
  assert_int_equal(load(&x.claim_rc), VIGIL_OK);
  place(&f, &y, 1, "dev-1");
  assert_int_equal(load(&y.claim_rc), VIGIL_OK);
  assert_true(vt_wait_until(is_closed, &x, 2000));
  assert_int_equal(load(&x.reason), VIGIL_REASON_TAKEOVER);
  /* A live peer (no loss evidence): a clean FIN, then RST at the bound. */
  assert_int_equal(gx_client_end(x.client_fd, 1000), 1);
  assert_false(load(&y.closed));

  gx_takeover t;
  assert_true(gx_find_takeover(&f, 0, x.conn_id, &t));
  assert_int_equal(t.worker, 1);
  assert_int_equal(t.conn_id, y.conn_id);
  assert_int_equal(t.scope, VIGIL_SCOPE_WORKER);
  assert_int_equal(t.other_worker, 0);
  stats_want sw = {&f, 0, 1};
  assert_true(vt_wait_until(worker_takeovers, &sw, 2000));
  vigil_stats s0, s1;
  stats_of(&f, 0, &s0);
  stats_of(&f, 1, &s1);
  assert_int_equal(s0.takeovers_by_scope[VIGIL_SCOPE_WORKER], 1);
  assert_int_equal(s0.takeovers_by_scope[VIGIL_SCOPE_HUB], 0);
  assert_int_equal(s0.closed[VIGIL_REASON_TAKEOVER], 1);
  assert_int_equal(s1.takeovers, 0);

  /* On one worker it is still a takeover within the hub. */
  place(&f, &z, 1, "dev-1");
  assert_true(vt_wait_until(is_closed, &y, 2000));
  assert_int_equal(load(&y.reason), VIGIL_REASON_TAKEOVER);
  assert_true(gx_find_takeover(&f, 1, y.conn_id, &t));
  assert_int_equal(t.scope, VIGIL_SCOPE_HUB);
  sw.worker = 1;
  assert_true(vt_wait_until(worker_takeovers, &sw, 2000));
  stats_of(&f, 1, &s1);
  assert_int_equal(s1.takeovers_by_scope[VIGIL_SCOPE_HUB], 1);
  assert_false(load(&z.closed));
  gx_placed_done(&x);
  gx_placed_done(&y);
  gx_placed_done(&z);
  gx_finish(&f);
}

/* ---- fencing: an eviction held back while the identity moves on ---- */

typedef struct gate {
  gx *f;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int entered, open;
  gx_placed *then_claim; /* claimed from inside the gate, on its worker */
} gate;

static void gate_fn(vigil_worker *w, void *arg) {
  gate *g = arg;
  (void)w;
  pthread_mutex_lock(&g->lock);
  g->entered = 1;
  pthread_cond_broadcast(&g->cond);
  while (!g->open) pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
  gx_placed *z = g->then_claim;
  store(&z->claim_rc,
        vigil_conn_identify(z->conn, z->claim, strlen(z->claim)));
}

static int gate_entered(void *arg) {
  gate *g = arg;
  pthread_mutex_lock(&g->lock);
  int e = g->entered;
  pthread_mutex_unlock(&g->lock);
  return e;
}

/* x on worker 0 holds dev-2; worker 0 is held in a gate while y on worker
 * 1 claims, so the eviction of x waits in worker 0's mailbox. Still in the
 * gate, z on worker 0 claims dev-2 (displacing y). Then the late eviction
 * runs on worker 0, where the identity is now z's: it closes x, the conn
 * it displaced, and never z. */
static void test_late_eviction_never_closes_successor(void **state) {
  (void)state;
  gx f;
  up(&f, 2, NULL, NULL);
  gx_placed x, y, z;
  place(&f, &x, 0, "dev-2");
  place(&f, &z, 0, NULL);
  place(&f, &y, 1, NULL);
  gate g = {.f = &f, .then_claim = &z};
  pthread_mutex_init(&g.lock, NULL);
  pthread_cond_init(&g.cond, NULL);
  z.claim = "dev-2";
  assert_int_equal(vigil_group_post(f.g, 0, gate_fn, &g), VIGIL_OK);
  assert_true(vt_wait_until(gate_entered, &g, 2000));
  assert_int_equal(gx_claim_on(&f, &y, "dev-2"), VIGIL_OK); /* x's eviction
                                                            waits */
  assert_false(load(&x.closed));
  pthread_mutex_lock(&g.lock);
  g.open = 1;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  assert_true(vt_wait_until(is_closed, &x, 2000));
  assert_int_equal(load(&x.reason), VIGIL_REASON_TAKEOVER);
  assert_true(vt_wait_until(is_closed, &y, 2000));
  assert_int_equal(load(&y.reason), VIGIL_REASON_TAKEOVER);
  assert_int_equal(load(&z.claim_rc), VIGIL_OK);
  /* Whatever else arrives: z stays. */
  assert_int_equal(gx_client_end(z.client_fd, 200), 0);
  assert_false(load(&z.closed));
  stats_want sw = {&f, 0, 1};
  assert_true(vt_wait_until(worker_takeovers, &sw, 2000));
  gx_placed_done(&x);
  gx_placed_done(&y);
  gx_placed_done(&z);
  gx_finish(&f);
  pthread_cond_destroy(&g.cond);
  pthread_mutex_destroy(&g.lock);
}

/* ---- the other modes ---- */

static void test_oldest_wins_across_workers(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.takeover = VIGIL_TAKEOVER_OLDEST_WINS;
  gx f;
  up(&f, 2, &p, NULL);
  gx_placed x, y;
  place(&f, &x, 0, "dev-3");
  place(&f, &y, 1, "dev-3");
  assert_int_equal(load(&y.claim_rc), VIGIL_EREJECTED);
  close(y.client_fd); /* completes the refused conn's graceful close */
  y.client_fd = -1;
  assert_true(vt_wait_until(is_closed, &y, 2000));
  assert_int_equal(load(&y.reason), VIGIL_REASON_TAKEOVER_REJECTED);
  assert_int_equal(gx_client_end(x.client_fd, 100), 0);
  assert_false(load(&x.closed));
  gx_placed_done(&x);
  gx_finish(&f);
}

static int ask_answer, ask_calls, ask_old_null;

static int ask_cb(vigil_hub *hub, vigil_conn *old_conn, vigil_conn *new_conn,
                  void *ud) {
  gx *f = ud;
  GX_CHECK(f, vigil_hub_worker(hub) != NULL);
  GX_CHECK(f, vigil_conn_hub(new_conn) == hub);
  GX_CHECK(f, old_conn == NULL || vigil_conn_hub(old_conn) == hub);
  __atomic_add_fetch(&ask_calls, 1, __ATOMIC_SEQ_CST);
  if (!old_conn) __atomic_add_fetch(&ask_old_null, 1, __ATOMIC_SEQ_CST);
  return load(&ask_answer);
}

/* ASK with the holder on another worker: the callback runs on the
 * claimant's worker with old_conn NULL, and its answer decides. */
static void test_ask_across_workers(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.takeover = VIGIL_TAKEOVER_ASK;
  gx f;
  up(&f, 2, &p, ask_cb);
  store(&ask_calls, 0);
  store(&ask_old_null, 0);
  gx_placed x, y, z, w;
  place(&f, &x, 0, "dev-4");
  assert_int_equal(load(&ask_calls), 0); /* uncontested */
  store(&ask_answer, 0);
  place(&f, &y, 1, "dev-4");
  assert_int_equal(load(&y.claim_rc), VIGIL_EREJECTED);
  assert_int_equal(load(&ask_calls), 1);
  assert_int_equal(load(&ask_old_null), 1);
  store(&ask_answer, 1);
  place(&f, &z, 1, "dev-4");
  assert_int_equal(load(&z.claim_rc), VIGIL_OK);
  assert_int_equal(load(&ask_old_null), 2);
  assert_true(vt_wait_until(is_closed, &x, 2000));
  assert_int_equal(load(&x.reason), VIGIL_REASON_TAKEOVER);
  /* On the holder's own worker the callback gets the holder. */
  place(&f, &w, 1, "dev-4");
  assert_int_equal(load(&w.claim_rc), VIGIL_OK);
  assert_int_equal(load(&ask_calls), 3);
  assert_int_equal(load(&ask_old_null), 2);
  assert_true(vt_wait_until(is_closed, &z, 2000));
  close(y.client_fd);
  y.client_fd = -1;
  assert_true(vt_wait_until(is_closed, &y, 2000));
  assert_int_equal(load(&y.reason), VIGIL_REASON_TAKEOVER_REJECTED);
  gx_placed_done(&x);
  gx_placed_done(&z);
  gx_placed_done(&w);
  gx_finish(&f);
}

/* Flapping counts the contested claims of every worker: alternating
 * workers, the third contest crosses flap_max = 2 and bans the identity. */
static void test_flapping_counts_group_wide(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.flap_max = 2;
  p.flap_window_ms = 60000;
  p.flap_ban_ms = 60000;
  gx f;
  up(&f, 2, &p, NULL);
  gx_placed c[5];
  for (int i = 0; i < 4; i++) place(&f, &c[i], (uint32_t)i % 2, "flappy");
  for (int i = 0; i < 3; i++)
    assert_int_equal(load(&c[i].claim_rc), VIGIL_OK);
  assert_int_equal(load(&c[3].claim_rc), VIGIL_EBANNED);
  /* The ban holds on every worker. */
  place(&f, &c[4], 0, "flappy");
  assert_int_equal(load(&c[4].claim_rc), VIGIL_EBANNED);
  for (int i = 0; i < 2; i++) {
    assert_true(vt_wait_until(is_closed, &c[i], 2000));
    assert_int_equal(load(&c[i].reason), VIGIL_REASON_TAKEOVER);
  }
  assert_false(load(&c[2].closed)); /* a ban does not close the holder */
  for (int i = 3; i < 5; i++) {
    close(c[i].client_fd);
    c[i].client_fd = -1;
    assert_true(vt_wait_until(is_closed, &c[i], 2000));
    assert_int_equal(load(&c[i].reason), VIGIL_REASON_IDENTITY_BANNED);
  }
  for (int i = 0; i < 3; i++) gx_placed_done(&c[i]);
  gx_finish(&f);
}

/* ---- devices reconnecting through SO_REUSEPORT ---- */

#define DEVICES 100

static uint32_t identified;

/* The first bytes a device sends are its identity. */
static void identify_hook(gx *f, vigil_conn *c, const void *d, size_t n) {
  if (vigil_conn_identity(c)) return;
  int rc = vigil_conn_identify(c, d, n);
  GX_CHECK(f, rc == VIGIL_OK);
  __atomic_add_fetch(&identified, 1, __ATOMIC_SEQ_CST);
}

static int all_identified(void *arg) {
  return gx_load(&identified) >= *(uint32_t *)arg;
}

typedef struct total_want {
  gx *f;
  uint64_t takeovers;
} total_want;

static int total_takeovers(void *arg) {
  total_want *t = arg;
  vigil_stats total;
  vigil_group_stats(t->f->g, &total, NULL, 0);
  return total.takeovers >= t->takeovers;
}

typedef struct first_ports {
  gx *f;
  const int *fds;
} first_ports;

static int all_first_closed(void *arg) {
  first_ports *p = arg;
  for (int i = 0; i < DEVICES; i++)
    if (!gx_find_close(p->f, gx_local_port(p->fds[i]))) return 0;
  return 1;
}

static void connect_devices(gx *f, int *fds, uint32_t want) {
  gx_connect(f, fds, DEVICES);
  for (int i = 0; i < DEVICES; i++) {
    char id[16];
    int n = snprintf(id, sizeof id, "dev-%03d", i);
    assert_int_equal(send(fds[i], id, (size_t)n, 0), n);
  }
  assert_true(vt_wait_until(all_identified, &want, 5000));
}

/* 100 devices on 4 workers reconnect with the same identities while their
 * first sockets stay open and silent: each new conn lands on whichever
 * worker the kernel picks. The first sockets show no loss evidence (their
 * kernel acknowledges everything), so each gets a clean FIN, and since
 * none closes, the takeover bound resets it: all within 1 s, leaving no
 * socket behind. */
static void test_reconnect_through_reuseport(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 4);
  f.data_hook = identify_hook;
  store((int *)&identified, 0);
  gx_start(&f);
  int first[DEVICES], second[DEVICES];
  connect_devices(&f, first, DEVICES);
  uint64_t t0 = vt_now_ms();
  connect_devices(&f, second, 2 * DEVICES);
  for (int i = 0; i < DEVICES; i++)
    assert_int_equal(gx_client_end(first[i], 1000), 1);
  first_ports fp = {&f, first};
  assert_true(vt_wait_until(all_first_closed, &fp, 2000));
  uint64_t took = 0;
  for (int i = 0; i < DEVICES; i++) {
    uint64_t at = gx_find_close(&f, gx_local_port(first[i]))->at - t0;
    if (at > took) took = at;
  }
  assert_true(took < 1000);
  total_want tw = {&f, DEVICES};
  assert_true(vt_wait_until(total_takeovers, &tw, 2000));
  vigil_stats total;
  gx_stats(&f, &total, NULL);
  assert_int_equal(total.takeovers, DEVICES);
  assert_int_equal(total.takeovers_by_class[VIGIL_PEER_LIVE], DEVICES);
  assert_int_equal(total.closed[VIGIL_REASON_TAKEOVER], DEVICES);
  assert_int_equal(total.takeovers_by_scope[VIGIL_SCOPE_HUB] +
                       total.takeovers_by_scope[VIGIL_SCOPE_WORKER],
                   DEVICES);
  /* 4 workers: about 3 in 4 cross; all on one worker would be 4^-99. */
  assert_true(total.takeovers_by_scope[VIGIL_SCOPE_WORKER] > 0);
  assert_int_equal(total.open, DEVICES);
  for (int i = 0; i < DEVICES; i++) {
    const gx_close *c = gx_find_close(&f, gx_local_port(first[i]));
    assert_non_null(c);
    assert_int_equal(c->reason, VIGIL_REASON_TAKEOVER);
    assert_null(gx_find_close(&f, gx_local_port(second[i])));
  }
  /* No ghost remains: the port holds the new conns and nothing else (the
   * displaced ones were reset at the bound: no FIN_WAIT orphan either). */
  vigil_hub_census_report r;
  assert_int_equal(vigil_group_census(f.g, &r), VIGIL_OK);
  assert_int_equal(r.conns, DEVICES);
  assert_int_equal(r.counts[VIGIL_TCP_ESTABLISHED], DEVICES);
  assert_int_equal(r.ghosts, 0);
  assert_int_equal(r.total, DEVICES + 4); /* and the 4 listeners */
  printf("reconnect: %d devices, %llu across workers, all old sockets "
         "closed (FIN, then RST at the bound) %llu ms after the first "
         "reconnect began\n",
         DEVICES,
         (unsigned long long)total.takeovers_by_scope[VIGIL_SCOPE_WORKER],
         (unsigned long long)took);
  for (int i = 0; i < DEVICES; i++) {
    close(first[i]);
    close(second[i]);
  }
  gx_finish(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_takeover_crosses_workers),
      cmocka_unit_test(test_late_eviction_never_closes_successor),
      cmocka_unit_test(test_oldest_wins_across_workers),
      cmocka_unit_test(test_ask_across_workers),
      cmocka_unit_test(test_flapping_counts_group_wide),
      cmocka_unit_test(test_reconnect_through_reuseport),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
