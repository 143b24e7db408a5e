/*
 * Deadline logic with a fake clock: the pure evaluation table (deadline.c)
 * per state, "once per quiet period" reports, and a simulation of many
 * connections with different policies on the real timing wheel, checking
 * that every death fires after its bound and at most one tick past it.
 */
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "testutil.h"
#include "wheel.h"

static vigil_policy base_policy(void) {
  vigil_policy p;
  vigil_policy_init(&p);
  return p;
}

typedef struct eval_case {
  const char *name;
  vigil_conn_state state;
  unsigned quiet;
  uint32_t ping, dead, rd_idle, hs, grace, drain, linger;
  vigil__times t;
  uint64_t now;
  unsigned want_due;
  uint64_t want_next;
} eval_case;

#define T(a, rx, tx, since) {a, rx, tx, since, 0}

static const eval_case cases[] = {
    {"open: nothing due yet", VIGIL_CONN_OPEN, 0, 100, 300, 0, 0, 0, 0, 0,
     T(0, 0, 0, 0), 50, 0, 100},
    {"open: ping due at last_tx+interval", VIGIL_CONN_OPEN, 0, 100, 300, 0,
     0, 0, 0, 0, T(0, 0, 0, 0), 100, VIGIL__DUE_PING, 150 /* suspect */},
    {"open: ping already asked -> next period", VIGIL_CONN_OPEN,
     VIGIL__QUIET_PING, 100, 0, 0, 0, 0, 0, 0, T(0, 0, 0, 0), 120, 0, 220},
    {"open: rx refresh pushes death", VIGIL_CONN_OPEN, 0, 0, 300, 0, 0, 0, 0,
     0, T(0, 250, 0, 0), 300, 0, 400 /* suspect at 250+150 */},
    {"open: not dead at exactly the bound", VIGIL_CONN_OPEN,
     VIGIL__QUIET_SUSPECT, 0, 300, 0, 0, 0, 0, 0, T(0, 0, 0, 0), 300, 0,
     301},
    {"open: dead once the bound has passed", VIGIL_CONN_OPEN,
     VIGIL__QUIET_SUSPECT, 0, 300, 0, 0, 0, 0, 0, T(0, 0, 0, 0), 301,
     VIGIL__DUE_DEAD, 451},
    {"open: read idle", VIGIL_CONN_OPEN, 0, 0, 0, 80, 0, 0, 0, 0,
     T(0, 10, 50, 0), 90, VIGIL__DUE_IDLE_R, VIGIL__NEVER},
    {"handshake: timeout", VIGIL_CONN_HANDSHAKE, 0, 100, 0, 0, 200, 0, 0, 0,
     T(0, 0, 0, 0), 201, VIGIL__DUE_HANDSHAKE, VIGIL__NEVER},
    {"handshake: no ping before ready", VIGIL_CONN_HANDSHAKE, 0, 100, 0, 0,
     200, 0, 0, 0, T(0, 0, 0, 0), 150, 0, 201},
    {"close_wait: grace", VIGIL_CONN_CLOSE_WAIT, 0, 100, 300, 0, 0, 250, 0,
     0, T(0, 0, 0, 1000), 1100, 0, 1251},
    {"close_wait: no heartbeat after FIN", VIGIL_CONN_CLOSE_WAIT, 0, 0, 300,
     0, 0, 250, 0, 0, T(0, 0, 0, 1000), 1251, VIGIL__DUE_CLOSE_WAIT,
     VIGIL__NEVER},
    {"flushing: stall since last write", VIGIL_CONN_FLUSHING, 0, 0, 0, 0, 0,
     0, 100, 1000, T(0, 0, 500, 400), 550, 0, 601},
    {"draining: drain after FIN", VIGIL_CONN_DRAINING, 0, 0, 0, 0, 0, 0, 100,
     1000, T(0, 0, 500, 400), 601, VIGIL__DUE_DRAIN, 1401},
    {"draining: rx keeps it", VIGIL_CONN_DRAINING, 0, 0, 0, 0, 0, 0, 100,
     1000, T(0, 650, 500, 400), 700, 0, 751},
    {"draining: linger cap", VIGIL_CONN_DRAINING, 0, 0, 0, 0, 0, 0, 100, 1000,
     T(0, 1390, 500, 400), 1401, VIGIL__DUE_LINGER, 1491},
    {"closed: nothing", VIGIL_CONN_CLOSED, 0, 100, 100, 100, 0, 0, 0, 0,
     T(0, 0, 0, 0), 10000, 0, VIGIL__NEVER},
};

static void test_eval_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const eval_case *k = &cases[i];
    vigil_policy p = base_policy();
    p.ping_interval_ms = k->ping;
    p.dead_after_ms = k->dead;
    p.read_idle_ms = k->rd_idle;
    p.handshake_timeout_ms = k->hs;
    p.close_wait_grace_ms = k->grace;
    p.drain_timeout_ms = k->drain;
    p.linger_max_ms = k->linger;
    uint64_t next = 0;
    unsigned due = vigil__deadline_eval(&p, k->state, k->quiet, &k->t, k->now,
                                        &next);
    if (due != k->want_due || next != k->want_next)
      fail_msg("%s: due %#x next %llu, want %#x next %llu", k->name, due,
               (unsigned long long)next, k->want_due,
               (unsigned long long)k->want_next);
  }
}

static void test_suspect_auto_and_recheck(void **state) {
  (void)state;
  vigil_policy p = base_policy();
  p.dead_after_ms = 1000;
  assert_int_equal(vigil__suspect_after(&p), 500);
  assert_int_equal(vigil__suspect_recheck(&p), 125);
  p.suspect_after_ms = 0;
  assert_int_equal(vigil__suspect_after(&p), 0);
  p.suspect_after_ms = 900;
  assert_int_equal(vigil__suspect_recheck(&p), 100); /* floor */
  vigil__times t = {0, 0, 0, 0, 0};
  uint64_t next;
  p.suspect_after_ms = VIGIL_SUSPECT_AUTO;
  assert_int_equal(
      vigil__deadline_eval(&p, VIGIL_CONN_OPEN, 0, &t, 500, &next),
      VIGIL__DUE_SUSPECT);
  /* Checked without evidence: recheck, then death. */
  t.checked = 500;
  assert_int_equal(vigil__deadline_eval(&p, VIGIL_CONN_OPEN,
                                        VIGIL__QUIET_CHECKED, &t, 500, &next),
                   0);
  assert_int_equal(next, 625);
  assert_int_equal(vigil__deadline_eval(&p, VIGIL_CONN_OPEN,
                                        VIGIL__QUIET_CHECKED, &t, 625, &next),
                   VIGIL__DUE_SUSPECT);
}

/* ---- many connections on the wheel with a fake clock ---- */

typedef struct sim_conn {
  vigil__wheel_node node;
  vigil_policy p;
  vigil__times t;
  unsigned quiet;
  int state;
  uint64_t died_at;
  uint64_t bound;
  uint64_t silent_from;
} sim_conn;

typedef struct sim {
  vigil__wheel w;
  uint64_t now;
  uint32_t tick;
} sim;

static void sim_schedule(sim *s, sim_conn *c) {
  uint64_t next;
  unsigned due = vigil__deadline_eval(&c->p, (vigil_conn_state)c->state,
                                      c->quiet, &c->t, s->now, &next);
  if (due) next = s->now;
  if (next != VIGIL__NEVER) vigil__wheel_insert(&s->w, &c->node, next);
}

static void sim_fire(vigil__wheel_node *n, void *ctx) {
  sim *s = ctx;
  sim_conn *c = (sim_conn *)n;
  uint64_t next;
  unsigned due = vigil__deadline_eval(&c->p, (vigil_conn_state)c->state,
                                      c->quiet, &c->t, s->now, &next);
  if (due & VIGIL__DUE_DEAD) {
    c->died_at = s->now;
    c->state = VIGIL_CONN_CLOSED;
    return;
  }
  if (due & VIGIL__DUE_PING) c->quiet |= VIGIL__QUIET_PING;
  if (due & VIGIL__DUE_SUSPECT) {
    c->quiet |= VIGIL__QUIET_CHECKED;
    c->t.checked = s->now;
  }
  sim_schedule(s, c);
}

static void test_many_conns_bound_plus_one_tick(void **state) {
  (void)state;
  enum { N = 5000 };
  sim s;
  s.tick = 10;
  s.now = 1000;
  vigil__wheel_init(&s.w, s.tick, s.now);
  sim_conn *conns = calloc(N, sizeof *conns);
  srand(12345);
  for (int i = 0; i < N; i++) {
    sim_conn *c = &conns[i];
    vigil__wheel_node_init(&c->node);
    c->p = base_policy();
    c->p.dead_after_ms = 200 + (uint32_t)(rand() % 5000);
    c->p.ping_interval_ms = c->p.dead_after_ms / 3;
    c->state = VIGIL_CONN_OPEN;
    c->t.adopted = c->t.last_rx = c->t.last_tx = s.now;
    /* Each conn chats (refreshes) until a random moment, then goes quiet. */
    c->silent_from = s.now + (uint64_t)(rand() % 8000);
    sim_schedule(&s, c);
  }
  uint64_t end = 1000 + 20000;
  while (s.now < end) {
    s.now++;
    /* Activity: a timestamp store, no wheel work (the point of the
     * design). Conns that still talk refresh every 50 ms. */
    if (s.now % 50 == 0)
      for (int i = 0; i < N; i++)
        if (conns[i].state == VIGIL_CONN_OPEN &&
            s.now < conns[i].silent_from) {
          conns[i].t.last_rx = s.now;
          conns[i].quiet &= ~VIGIL__QUIET_RX_MASK;
        }
    /* The hub wakes at the wheel's next expiry, as vigil__hub_rearm does. */
    if (vigil__wheel_next_ms(&s.w) <= s.now)
      vigil__wheel_advance(&s.w, s.now, 0, sim_fire, &s);
  }
  for (int i = 0; i < N; i++) {
    sim_conn *c = &conns[i];
    uint64_t last = ((c->silent_from - 1) / 50) * 50;
    if (last < 1000) last = 1000;
    uint64_t bound = last + c->p.dead_after_ms;
    assert_true(c->state == VIGIL_CONN_CLOSED);
    if (c->died_at <= bound || c->died_at > bound + s.tick)
      fail_msg("conn %d died at %llu, bound %llu", i,
               (unsigned long long)c->died_at, (unsigned long long)bound);
  }
  free(conns);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_eval_table),
      cmocka_unit_test(test_suspect_auto_and_recheck),
      cmocka_unit_test(test_many_conns_bound_plus_one_tick),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
