/*
 * Unit tests for the hierarchical timing wheel (src/wheel.h), driven by a
 * fake clock: the time is whatever the test passes to advance().
 *
 * The contract under test: a node armed for when_ms fires in the first
 * advance() whose now_ms >= B, B = when_ms rounded up to a tick; nodes armed
 * in the past fire on the next advance(); next_ms() never exceeds the next
 * real expiry; a budget leaves the rest due; callbacks may touch any node.
 *
 * The randomized differential test prints its seed on failure; rerun it
 * with VIGIL_WHEEL_SEED=<seed> to reproduce, or soak it with
 * VIGIL_WHEEL_SOAK=<number of extra seeds>.
 */
#include "rowtest.h"
#include "wheel.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPAN_TICKS ((uint64_t)1 << (VIGIL__WHEEL_BITS * VIGIL__WHEEL_LEVELS))

/* ---------------------------------------------------------------------- */
/* Small harness: nodes that record when they fired.                       */

typedef struct tnode {
  vigil__wheel_node node;
  int id;
  int fires;         /* how many times it fired */
  uint64_t fired_at; /* now_ms of the last fire */
} tnode;

#define TNODE(p) ((tnode *)(void *)(p)) /* node is the first member */

typedef struct harness {
  vigil__wheel w;
  uint64_t now;
  size_t fired_total;
} harness;

static harness *h_new(uint32_t tick_ms, uint64_t now) {
  harness *h = calloc(1, sizeof *h);
  assert_non_null(h);
  vigil__wheel_init(&h->w, tick_ms, now);
  h->now = now;
  return h;
}

static void tnode_init(tnode *t, int id) {
  memset(t, 0, sizeof *t);
  vigil__wheel_node_init(&t->node);
  t->id = id;
}

/* n[0..count), ids 0.., none armed. */
static void nodes_init(tnode *n, int count) {
  for (int i = 0; i < count; i++) tnode_init(&n[i], i);
}

/* Arms unarmed node t for when: one more in the count. */
static void arm_one(harness *h, tnode *t, uint64_t when) {
  size_t before = vigil__wheel_count(&h->w);
  vigil__wheel_insert(&h->w, &t->node, when);
  assert_int_equal(vigil__wheel_count(&h->w), before + 1);
}

/* Arms n[i] for when[i], i < count. */
static void arm(harness *h, tnode *n, const uint64_t *when, int count) {
  for (int i = 0; i < count; i++) arm_one(h, &n[i], when[i]);
}

/* A wheel (tick, now) with n[0..count) armed for when(i). */
static harness *h_many(uint32_t tick, uint64_t now, tnode *n, int count,
                       uint64_t (*when)(int i)) {
  harness *h = h_new(tick, now);
  nodes_init(n, count);
  for (int i = 0; i < count; i++) arm_one(h, &n[i], when(i));
  return h;
}

/* A wheel (tick, now) with node t (id 1) armed for when. */
static harness *h_one(uint32_t tick, uint64_t now, tnode *t, uint64_t when) {
  harness *h = h_new(tick, now);
  tnode_init(t, 1);
  arm_one(h, t, when);
  return h;
}

static void on_fire_record(vigil__wheel_node *n, void *ctx) {
  harness *h = ctx;
  tnode *t = TNODE(n);
  assert_false(vigil__wheel_linked(n)); /* unlinked before the callback */
  t->fires++;
  t->fired_at = h->now;
  h->fired_total++;
}

static size_t h_advance(harness *h, uint64_t now, size_t max) {
  h->now = now;
  return vigil__wheel_advance(&h->w, now, max, on_fire_record, h);
}

static uint64_t round_up(uint64_t when, uint32_t tick) {
  return (when + tick - 1) / tick * tick;
}

/* ---------------------------------------------------------------------- */
/* Bounds: fires at B exactly, never at B - 1, whatever the level.        */

typedef struct bound_case {
  const char *name;
  uint32_t tick_ms;
  uint64_t init_ms;
  uint64_t delta_ms; /* when_ms = init_ms + delta_ms */
} bound_case;

#define B(tick, init, delta) \
  {"bound: tick " #tick ", from " #init ", +" #delta, tick, init, delta}

static const bound_case bound_cases[] = {
    /* rounding within one tick */
    B(10, 1000, 1),
    B(10, 1000, 9),
    B(10, 1000, 10),
    B(10, 1000, 11),
    B(10, 1005, 1), /* unaligned start */
    B(7, 1000, 1),
    B(7, 1000, 13),
    B(1000, 999, 1),
    /* tick 1: every level boundary (ticks) */
    B(1, 0, 1),
    B(1, 0, 63),
    B(1, 0, 64),
    B(1, 0, 65),
    B(1, 0, 4095),
    B(1, 0, 4096),
    B(1, 0, 4097),
    B(1, 0, 262143),
    B(1, 0, 262144),
    B(1, 0, 1000000),
    B(1, 0, 16777215),
    B(1, 0, 16777216),
    B(1, 0, (1u << 30) - 1), /* last tick inside the span */
    /* same from unaligned starts, so slots wrap around */
    B(1, 12345, 63),
    B(1, 12345, 64),
    B(1, 4095, 1),
    B(1, 4095, 4096),
    B(1, 262143, 1),
    B(1, 262100, 100),
    B(1, 999999, 1000000),
    B(10, 123456789, 41),
    B(10, 123456789, 640),
    B(10, 123456789, 40961),
    B(10, 123456789, 10000000),
    B(10, 123456789, 3600000),
};

/* One node armed per case, the clock moved two ways: a jump checks
 * nothing fires at B - 1 and it fires at B; then, as the hub does, the
 * "loop" sleeps until next_ms() each time: the node must fire at exactly
 * B, and next_ms() must never pass B. */
static void run_bound(void **state) {
  const bound_case *c = *state;
  uint64_t when = c->init_ms + c->delta_ms;
  uint64_t b = round_up(when, c->tick_ms);
  tnode t;
  harness *h = h_one(c->tick_ms, c->init_ms, &t, when);
  assert_true(vigil__wheel_next_ms(&h->w) <= b);
  assert_true(vigil__wheel_next_ms(&h->w) > c->init_ms);
  if (b - 1 >= c->init_ms)
    assert_int_equal(h_advance(h, b - 1, 0), 0);
  assert_int_equal(t.fires, 0);
  assert_int_equal(h_advance(h, b, 0), 1);
  assert_int_equal(t.fires, 1);
  assert_int_equal(vigil__wheel_count(&h->w), 0);
  assert_int_equal(vigil__wheel_next_ms(&h->w), UINT64_MAX);
  free(h);

  h = h_one(c->tick_ms, c->init_ms, &t, when);
  int wakeups = 0;
  while (t.fires == 0) {
    uint64_t next = vigil__wheel_next_ms(&h->w);
    assert_true(next <= b);
    assert_true(next > h->now); /* no busy loop */
    h_advance(h, next, 0);
    assert_true(++wakeups <= VIGIL__WHEEL_LEVELS);
  }
  assert_int_equal(t.fired_at, b);
  free(h);
}

/* Tick-by-tick ms stepping for short deadlines: first fire at exactly B. */
static void test_bounds_step_by_ms(void **state) {
  (void)state;
  static const uint32_t ticks[] = {1, 7, 10, 1000};
  for (size_t i = 0; i < sizeof ticks / sizeof ticks[0]; i++) {
    uint32_t tick = ticks[i];
    for (uint64_t delta = 0; delta < 3u * tick + 5; delta++) {
      uint64_t start = 100003;
      uint64_t when = start + delta;
      tnode t;
      harness *h = h_one(tick, start, &t, when);
      uint64_t b = round_up(when, tick);
      /* a deadline at or before the current tick is due now */
      uint64_t expect = b <= start ? start : b;
      for (uint64_t now = start; t.fires == 0; now++) {
        h_advance(h, now, 0);
        assert_true(now <= expect);
      }
      assert_int_equal(t.fired_at, expect);
      assert_true(t.fired_at >= when || b <= start);
      free(h);
    }
  }
}

/* ---------------------------------------------------------------------- */
/* Past deadlines, re-arm, remove.                                         */

static void test_when_in_past(void **state) {
  (void)state;
  tnode n[3];
  harness *h = h_new(10, 50000);
  nodes_init(n, 3);
  arm(h, n, (uint64_t[]){0, 49999, 50000}, 3);
  /* all due: next_ms() <= now, and the next advance at the same now fires */
  assert_true(vigil__wheel_next_ms(&h->w) <= 50000);
  assert_int_equal(h_advance(h, 50000, 0), 3);
  assert_int_equal(n[0].fires + n[1].fires + n[2].fires, 3);
  /* past after time moved on */
  h_advance(h, 60000, 0);
  vigil__wheel_insert(&h->w, &n[0].node, 59000);
  assert_true(vigil__wheel_next_ms(&h->w) <= 60000);
  assert_int_equal(h_advance(h, 60000, 0), 1);
  assert_int_equal(n[0].fires, 2);
  assert_int_equal(n[0].fired_at, 60000);
  free(h);
}

static void test_rearm(void **state) {
  (void)state;
  tnode t;
  harness *h = h_one(10, 0, &t, 100);
  vigil__wheel_insert(&h->w, &t.node, 5000); /* later */
  assert_int_equal(vigil__wheel_count(&h->w), 1);
  assert_true(vigil__wheel_linked(&t.node));
  assert_int_equal(h_advance(h, 100, 0), 0);
  assert_int_equal(h_advance(h, 4990, 0), 0);
  vigil__wheel_insert(&h->w, &t.node, 4995); /* earlier, rounds to 5000 */
  assert_int_equal(h_advance(h, 4999, 0), 0);
  vigil__wheel_insert(&h->w, &t.node, 4991); /* earlier, rounds to 5000 */
  assert_int_equal(h_advance(h, 5000, 0), 1);
  assert_int_equal(t.fired_at, 5000);
  /* far, then near: must move from a high level down to level 0 */
  vigil__wheel_insert(&h->w, &t.node, 5000 + 10 * 300000);
  vigil__wheel_insert(&h->w, &t.node, 5020);
  assert_int_equal(vigil__wheel_count(&h->w), 1);
  assert_int_equal(vigil__wheel_next_ms(&h->w), 5020);
  assert_int_equal(h_advance(h, 5020, 0), 1);
  assert_int_equal(h_advance(h, 5000 + 10 * 300000, 0), 0);
  assert_int_equal(t.fires, 2);
  free(h);
}

static void test_remove(void **state) {
  (void)state;
  harness *h = h_new(10, 0);
  tnode n[4];
  nodes_init(n, 4);
  /* remove of a never-linked node is a no-op */
  vigil__wheel_remove(&h->w, &n[0].node);
  assert_int_equal(vigil__wheel_count(&h->w), 0);
  assert_false(vigil__wheel_linked(&n[0].node));
  /* three nodes in one slot: remove head, middle, tail positions */
  arm(h, n, (uint64_t[]){100, 100, 100, 200000}, 4);
  assert_int_equal(vigil__wheel_count(&h->w), 4);
  vigil__wheel_remove(&h->w, &n[1].node);
  assert_false(vigil__wheel_linked(&n[1].node));
  assert_int_equal(vigil__wheel_count(&h->w), 3);
  vigil__wheel_remove(&h->w, &n[1].node); /* twice: no-op */
  assert_int_equal(vigil__wheel_count(&h->w), 3);
  vigil__wheel_remove(&h->w, &n[2].node);
  vigil__wheel_remove(&h->w, &n[3].node); /* higher level */
  assert_int_equal(vigil__wheel_count(&h->w), 1);
  assert_int_equal(h_advance(h, 1000000, 0), 1);
  assert_int_equal(n[0].fires, 1);
  assert_int_equal(n[1].fires + n[2].fires + n[3].fires, 0);
  /* remove the last node: next_ms reports empty */
  vigil__wheel_insert(&h->w, &n[0].node, 2000000);
  vigil__wheel_remove(&h->w, &n[0].node);
  assert_int_equal(vigil__wheel_next_ms(&h->w), UINT64_MAX);
  free(h);
}

/* Beyond the span: clamped to the last tick of the span, fires early there. */
static void test_clamp_beyond_span(void **state) {
  (void)state;
  tnode t;
  harness *h = h_one(1, 1000, &t, UINT64_MAX - 5);
  uint64_t end = 1000 + SPAN_TICKS - 1;
  assert_int_equal(h_advance(h, end - 1, 0), 0);
  assert_int_equal(h_advance(h, end, 0), 1);
  assert_int_equal(t.fired_at, end);
  /* tick 10: span counts in ticks */
  harness *h2 = h_new(10, 0);
  vigil__wheel_insert(&h2->w, &t.node, 10 * SPAN_TICKS * 3);
  assert_true(vigil__wheel_next_ms(&h2->w) <= 10 * (SPAN_TICKS - 1));
  assert_int_equal(h_advance(h2, 10 * (SPAN_TICKS - 1), 0), 1);
  free(h);
  free(h2);
}

/* next_ms(): exact for level 0, the cascade time for higher levels. */
static void test_next_ms_values(void **state) {
  (void)state;
  harness *h = h_new(1, 0);
  tnode t;
  tnode_init(&t, 1);
  assert_int_equal(vigil__wheel_next_ms(&h->w), UINT64_MAX);
  vigil__wheel_insert(&h->w, &t.node, 40);
  assert_int_equal(vigil__wheel_next_ms(&h->w), 40);
  vigil__wheel_insert(&h->w, &t.node, 100); /* level 1, cascades at 64 */
  assert_int_equal(vigil__wheel_next_ms(&h->w), 64);
  assert_int_equal(h_advance(h, 64, 0), 0);
  assert_int_equal(vigil__wheel_next_ms(&h->w), 100);
  vigil__wheel_insert(&h->w, &t.node, 10000); /* level 2, cascades at 8192 */
  assert_int_equal(vigil__wheel_next_ms(&h->w), 8192);
  assert_int_equal(h_advance(h, 8192, 0), 0);
  assert_int_equal(vigil__wheel_next_ms(&h->w), 9984); /* level 1 block */
  assert_int_equal(h_advance(h, 9984, 0), 0);
  assert_int_equal(vigil__wheel_next_ms(&h->w), 10000);
  free(h);
}

/* ---------------------------------------------------------------------- */
/* Callbacks that modify the wheel.                                        */

typedef struct cb_ctx {
  harness *h;
  tnode *nodes;
  int mode;
  uint64_t period;
  int order[16];
  int n_order;
} cb_ctx;

enum {
  CB_SELF_REARM_PERIOD, /* re-arm self at now + period */
  CB_SELF_REARM_NOW,    /* re-arm self at now: must wait for next advance */
  CB_REMOVE_OTHER,      /* first fired node removes all other nodes */
  CB_INSERT_DUE_NOW,    /* node 0 arms node 1 for now */
  CB_INSERT_LATER_DUE,  /* node 0 arms node 1 for a later tick <= now */
  CB_REARM_OTHER_LATER, /* first fired node pushes the others past now */
};

static void on_fire_cb(vigil__wheel_node *n, void *arg) {
  cb_ctx *c = arg;
  tnode *t = TNODE(n);
  harness *h = c->h;
  t->fires++;
  t->fired_at = h->now;
  if (c->n_order < 16)
    c->order[c->n_order++] = t->id;
  switch (c->mode) {
  case CB_SELF_REARM_PERIOD:
    vigil__wheel_insert(&h->w, n, h->now + c->period);
    break;
  case CB_SELF_REARM_NOW:
    vigil__wheel_insert(&h->w, n, h->now);
    break;
  case CB_REMOVE_OTHER:
    for (int i = 0; i < 4; i++)
      if (&c->nodes[i] != t)
        vigil__wheel_remove(&h->w, &c->nodes[i].node);
    vigil__wheel_remove(&h->w, n); /* removing self (unlinked): no-op */
    break;
  case CB_INSERT_DUE_NOW:
    if (t->id == 0)
      vigil__wheel_insert(&h->w, &c->nodes[1].node, h->now);
    break;
  case CB_INSERT_LATER_DUE:
    if (t->id == 0)
      vigil__wheel_insert(&h->w, &c->nodes[1].node, h->now - 20);
    break;
  case CB_REARM_OTHER_LATER:
    for (int i = 0; i < 4; i++)
      if (&c->nodes[i] != t && vigil__wheel_linked(&c->nodes[i].node))
        vigil__wheel_insert(&h->w, &c->nodes[i].node, h->now + 1000);
    break;
  }
}

/* A 10 ms wheel with four fresh nodes (ids 0..3) for a callback mode,
 * the first count of them armed for when[i]. */
static harness *cb_setup(cb_ctx *c, tnode n[4], int mode, uint64_t period,
                         const uint64_t *when, int count) {
  harness *h = h_new(10, 0);
  memset(c, 0, sizeof *c);
  c->h = h;
  c->nodes = n;
  c->mode = mode;
  c->period = period;
  nodes_init(n, 4);
  arm(h, n, when, count);
  return h;
}

static size_t cb_advance(cb_ctx *c, uint64_t now, size_t max) {
  c->h->now = now;
  return vigil__wheel_advance(&c->h->w, now, max, on_fire_cb, c);
}

/* A callback scenario: the mode, the nodes armed at the start, and what
 * then happens (check). */
typedef struct cb_case {
  const char *name;
  int mode;
  uint64_t period;
  uint64_t when[4]; /* n[i] armed for when[i], i < armed */
  int armed;
  int first;        /* the id of the node that fires first; -1: any */
  void (*check)(cb_ctx *c, tnode *n);
} cb_case;

static void self_rearm(cb_ctx *c, tnode *n) {
  vigil__wheel *w = &c->h->w;
  /* following next_ms, it fires exactly every 250 ms */
  for (int i = 1; i <= 20; i++) {
    uint64_t next = vigil__wheel_next_ms(w);
    assert_int_equal(next, 250u * (unsigned)i);
    assert_int_equal(cb_advance(c, next, 0), 1);
    assert_int_equal(n[0].fired_at, 250u * (unsigned)i);
    assert_int_equal(vigil__wheel_count(w), 1);
  }
  /* a jump of 10 periods: fires once per advance, not 10 times */
  assert_int_equal(cb_advance(c, 250 * 30, 0), 1);
  assert_int_equal(n[0].fires, 21);

  /* re-arm at now: once per advance, never a loop inside one advance */
  c->mode = CB_SELF_REARM_NOW;
  vigil__wheel_insert(w, &n[0].node, 8000);
  assert_int_equal(cb_advance(c, 8000, 0), 1);
  assert_true(vigil__wheel_next_ms(w) <= 8000);
  assert_int_equal(cb_advance(c, 8000, 0), 1);
  assert_int_equal(cb_advance(c, 8001, 0), 1);
  assert_int_equal(n[0].fires, 24);
  assert_int_equal(vigil__wheel_count(w), 1);
}

static void remove_other_due(cb_ctx *c, tnode *n) {
  assert_int_equal(cb_advance(c, 5000, 0), 1);
  assert_int_equal(n[0].fires + n[1].fires + n[2].fires + n[3].fires, 1);
  assert_int_equal(vigil__wheel_count(&c->h->w), 0);
  assert_int_equal(cb_advance(c, 10000, 0), 0);
}

static void rearm_other_due(cb_ctx *c, tnode *n) {
  (void)n;
  assert_int_equal(cb_advance(c, 100, 0), 1);
  assert_int_equal(vigil__wheel_count(&c->h->w), 3);
  assert_int_equal(cb_advance(c, 1099, 0), 0);
  /* the three pushed nodes fire at 1100; each pushes the remaining ones */
  assert_int_equal(cb_advance(c, 1100, 0), 1);
  assert_int_equal(vigil__wheel_count(&c->h->w), 2);
}

static void insert_due_now(cb_ctx *c, tnode *n) {
  assert_int_equal(cb_advance(c, 200, 0), 1);
  /* armed for the tick being fired: due, fires on the next advance */
  assert_true(vigil__wheel_linked(&n[1].node));
  assert_true(vigil__wheel_next_ms(&c->h->w) <= 200);
  assert_int_equal(cb_advance(c, 200, 0), 1);
  assert_int_equal(n[1].fires, 1);
  assert_int_equal(vigil__wheel_count(&c->h->w), 0);
}

static void insert_later_tick_same_advance(cb_ctx *c, tnode *n) {
  (void)n;
  /* processing tick 10 (100 ms), node 1 is armed for 480 ms <= now (500):
   * a later tick of this same advance, so it fires now, in tick order */
  assert_int_equal(cb_advance(c, 500, 0), 2);
  assert_int_equal(c->n_order, 2);
  assert_int_equal(c->order[0], 0);
  assert_int_equal(c->order[1], 1);
}

static const cb_case cb_cases[] = {
    {"callback re-arms itself", CB_SELF_REARM_PERIOD, 250, {250}, 1, 0,
     self_rearm},
    {"callback removes the others, all due in one tick", CB_REMOVE_OTHER, 0,
     {100, 100, 100, 100}, 4, -1, remove_other_due},
    {"callback removes the others, due in later ticks", CB_REMOVE_OTHER, 0,
     {100, 110, 120, 130}, 4, 0 /* earliest tick first */, remove_other_due},
    {"callback pushes the others past now", CB_REARM_OTHER_LATER, 0,
     {100, 100, 100, 100}, 4, -1, rearm_other_due},
    {"callback arms another for now", CB_INSERT_DUE_NOW, 0, {200}, 1, 0,
     insert_due_now},
    {"callback arms another for a later tick of the advance",
     CB_INSERT_LATER_DUE, 0, {100}, 1, 0, insert_later_tick_same_advance},
};

static void run_cb_case(void **state) {
  const cb_case *cc = *state;
  tnode n[4];
  cb_ctx c;
  harness *h = cb_setup(&c, n, cc->mode, cc->period, cc->when, cc->armed);
  cc->check(&c, n);
  if (cc->first >= 0) {
    assert_true(c.n_order > 0);
    assert_int_equal(c.order[0], cc->first);
  }
  free(h);
}

/* ---------------------------------------------------------------------- */
/* Budget.                                                                 */

static uint64_t ten_per_tick(int i) { return 10 * (uint64_t)(1 + i / 10); }

static void test_budget(void **state) {
  (void)state;
  enum { N = 100 };
  tnode n[N];
  harness *h = h_many(10, 0, n, N, ten_per_tick); /* ticks 1..10 */
  assert_int_equal(h_advance(h, 1000, 30), 30);
  assert_int_equal(vigil__wheel_count(&h->w), 70);
  assert_true(vigil__wheel_next_ms(&h->w) <= 1000);
  /* earliest ticks went first */
  for (int i = 0; i < N; i++)
    assert_int_equal(n[i].fires, i < 30 ? 1 : 0);
  assert_int_equal(h_advance(h, 1000, 25), 25);
  assert_int_equal(h_advance(h, 1001, 30), 30);
  assert_int_equal(vigil__wheel_count(&h->w), 15);
  assert_int_equal(h_advance(h, 1001, 0), 15);
  assert_int_equal(h_advance(h, 1001, 1), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(n[i].fires, 1);
  assert_int_equal(vigil__wheel_next_ms(&h->w), UINT64_MAX);

  /* budget exactly used up in the middle of a jump: the rest still fires */
  vigil__wheel_insert(&h->w, &n[0].node, 2000);
  vigil__wheel_insert(&h->w, &n[1].node, 200000);
  assert_int_equal(h_advance(h, 300000, 1), 1);
  assert_true(vigil__wheel_next_ms(&h->w) <= 300000);
  assert_int_equal(h_advance(h, 300000, 1), 1);
  assert_int_equal(n[1].fired_at, 300000);
  free(h);
}

/* ---------------------------------------------------------------------- */
/* Big jumps: work depends on nodes, not on elapsed ticks.                 */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t every_level(int i) { return (uint64_t)1 << (i % 30); }

static void test_big_jumps(void **state) {
  (void)state;
  enum { N = 64 };
  tnode n[N];
  harness *h = h_many(1, 0, n, N, every_level);
  /* one jump covers every level */
  assert_int_equal(h_advance(h, (uint64_t)1 << 30, 0), N);
  for (int i = 0; i < N; i++)
    assert_int_equal(n[i].fires, 1);

  /* A node ~2^29 ticks ahead, jumped over 2000 times: a wheel that walks
   * ticks would need ~10^12 steps. Generous bound: 2 s. */
  double t0 = mono_s();
  uint64_t now = h->now;
  for (int i = 0; i < 2000; i++) {
    vigil__wheel_insert(&h->w, &n[0].node, now + ((uint64_t)1 << 29) + 7);
    vigil__wheel_insert(&h->w, &n[1].node, now + 3);
    now += ((uint64_t)1 << 29) - 12345; /* just before n[0] */
    assert_int_equal(h_advance(h, now, 0), 1);
    assert_int_equal(n[1].fired_at, now);
    assert_true(vigil__wheel_linked(&n[0].node));
  }
  assert_true(mono_s() - t0 < 2.0);

  /* empty wheel: a huge jump, then a node right after it */
  vigil__wheel_remove(&h->w, &n[0].node);
  now += (uint64_t)1 << 40;
  assert_int_equal(h_advance(h, now, 0), 0);
  vigil__wheel_insert(&h->w, &n[2].node, now + 1);
  assert_int_equal(vigil__wheel_next_ms(&h->w), now + 1);
  assert_int_equal(h_advance(h, now + 1, 0), 1);
  free(h);
}

/* ---------------------------------------------------------------------- */
/* Count bookkeeping through every path.                                   */

static uint64_t one_per_second(int i) { return 100 + 1000 * (uint64_t)i; }

static void test_count(void **state) {
  (void)state;
  enum { N = 50 };
  tnode n[N];
  harness *h = h_many(10, 0, n, N, one_per_second); /* each counts one */
  for (int i = 0; i < N; i += 2) /* re-arm: no change */
    vigil__wheel_insert(&h->w, &n[i].node, 7);
  assert_int_equal(vigil__wheel_count(&h->w), N);
  for (int i = 1; i < 11; i += 2)
    vigil__wheel_remove(&h->w, &n[i].node);
  assert_int_equal(vigil__wheel_count(&h->w), N - 5);
  assert_int_equal(h_advance(h, 10, 0), N / 2); /* the re-armed ones */
  assert_int_equal(vigil__wheel_count(&h->w), N - 5 - N / 2);
  assert_int_equal(h_advance(h, 1000000, 0), N - 5 - N / 2);
  assert_int_equal(vigil__wheel_count(&h->w), 0);
  free(h);
}

/* ---------------------------------------------------------------------- */
/* Randomized differential test against a brute-force model.               */

enum { R_NODES = 48 };

typedef struct rnode {
  vigil__wheel_node node; /* first member */
  int id;
  int linked;         /* model: armed and not fired/removed */
  uint64_t when_ms;   /* model: when it was armed for */
  uint64_t due_tick;  /* model: ceil(when / tick) */
  long armed_in_adv;  /* advance index it was armed during, or -1 */
  int fired_this_adv; /* fired during the current advance */
} rnode;

typedef struct rstate {
  vigil__wheel w;
  rnode nodes[R_NODES];
  uint32_t tick;
  uint64_t now;
  uint64_t seed;
  uint64_t rng;
  long op;
  long adv;        /* index of the current/last advance */
  int in_advance;
  size_t cb_fired; /* fires counted by callbacks in this advance */
} rstate;

static uint64_t rnd(rstate *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 2685821657736338717ull;
}

static uint64_t rnd_below(rstate *s, uint64_t n) { return n ? rnd(s) % n : 0; }

#define R_CHECK(s, cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      print_error("wheel differential: seed=%" PRIu64 " op=%ld tick=%u: ",     \
                  (s)->seed, (s)->op, (s)->tick);                              \
      print_error(__VA_ARGS__);                                                \
      print_error("\n(rerun: VIGIL_WHEEL_SEED=%" PRIu64 ")\n", (s)->seed);     \
      fail();                                                                  \
    }                                                                          \
  } while (0)

/* A deadline offset in ms, spread over all levels and into the past. */
static uint64_t r_when(rstate *s) {
  uint64_t tick = s->tick;
  uint64_t jitter = rnd_below(s, tick);
  uint64_t r = rnd_below(s, 100), ticks;
  if (r < 10) { /* in the past */
    uint64_t back = rnd_below(s, 1000 * tick);
    return s->now > back ? s->now - back : 0;
  }
  if (r < 15)
    return s->now;
  if (r < 50)
    ticks = rnd_below(s, 64);
  else if (r < 75)
    ticks = rnd_below(s, 4096);
  else if (r < 92)
    ticks = rnd_below(s, 1u << 18);
  else
    ticks = rnd_below(s, 1u << 29);
  return s->now + ticks * tick + jitter;
}

static uint64_t r_step(rstate *s) {
  uint64_t tick = s->tick, r = rnd_below(s, 100);
  if (r < 50)
    return rnd_below(s, 3 * tick);
  if (r < 80)
    return rnd_below(s, 100 * tick);
  if (r < 96)
    return rnd_below(s, 5000 * tick);
  return rnd_below(s, (uint64_t)tick << 26);
}

static void r_arm(rstate *s, rnode *n, uint64_t when) {
  vigil__wheel_insert(&s->w, &n->node, when);
  n->linked = 1;
  n->when_ms = when;
  n->due_tick = when / s->tick + (when % s->tick != 0);
  n->armed_in_adv = s->in_advance ? s->adv : -1;
}

static void r_remove(rstate *s, rnode *n) {
  vigil__wheel_remove(&s->w, &n->node);
  n->linked = 0;
}

static size_t r_model_count(const rstate *s) {
  size_t c = 0;
  for (int i = 0; i < R_NODES; i++)
    c += (size_t)s->nodes[i].linked;
  return c;
}

static void r_fire(vigil__wheel_node *node, void *arg) {
  rstate *s = arg;
  rnode *n = (rnode *)(void *)node;
  R_CHECK(s, n->linked, "node %d fired while not armed", n->id);
  R_CHECK(s, !vigil__wheel_linked(node), "node %d linked in callback", n->id);
  R_CHECK(s, s->now >= n->when_ms,
          "node %d fired early: now=%" PRIu64 " when=%" PRIu64, n->id, s->now,
          n->when_ms);
  R_CHECK(s, s->now / s->tick >= n->due_tick, "node %d fired before its tick",
          n->id);
  n->linked = 0;
  n->fired_this_adv = 1;
  s->cb_fired++;
  /* mutate the wheel from inside the callback */
  uint64_t r = rnd_below(s, 100);
  if (r < 30) {
    r_arm(s, n, r_when(s));
  } else if (r < 40) {
    r_remove(s, &s->nodes[rnd_below(s, R_NODES)]);
  } else if (r < 50) {
    r_arm(s, &s->nodes[rnd_below(s, R_NODES)], r_when(s));
  }
  R_CHECK(s, vigil__wheel_count(&s->w) == r_model_count(s),
          "count %zu != model %zu inside callback", vigil__wheel_count(&s->w),
          r_model_count(s));
}

/* Advances the fake clock by a random step; returns 1 if the budget ran out. */
static int r_advance(rstate *s) {
  s->now += r_step(s);
  s->adv++;
  uint64_t now_tick = s->now / s->tick;
  size_t max = rnd_below(s, 10) == 0 ? 1 + rnd_below(s, 4) : 0;
  for (int i = 0; i < R_NODES; i++)
    s->nodes[i].fired_this_adv = 0;
  s->cb_fired = 0;
  s->in_advance = 1;
  size_t got = vigil__wheel_advance(&s->w, s->now, max, r_fire, s);
  s->in_advance = 0;
  R_CHECK(s, got == s->cb_fired, "advance returned %zu, callbacks saw %zu", got,
          s->cb_fired);
  R_CHECK(s, max == 0 || got <= max, "budget %zu exceeded: %zu", max, got);
  int exhausted = max != 0 && got == max;
  for (int i = 0; i < R_NODES; i++) {
    rnode *n = &s->nodes[i];
    /* armed before this advance and due: must have fired */
    if (n->linked && n->armed_in_adv != s->adv && n->due_tick <= now_tick)
      R_CHECK(s, exhausted,
              "node %d due (tick %" PRIu64 " <= %" PRIu64 ") did not fire",
              n->id, n->due_tick, now_tick);
  }
  return exhausted;
}

static void r_check_next(rstate *s, int last_exhausted) {
  uint64_t next = vigil__wheel_next_ms(&s->w);
  uint64_t min_b = UINT64_MAX;
  int any_due = 0;
  for (int i = 0; i < R_NODES; i++) {
    rnode *n = &s->nodes[i];
    if (!n->linked)
      continue;
    /* a node already due "expires" at the next advance: now */
    uint64_t b = n->due_tick * s->tick;
    if (b <= s->now) {
      any_due = 1;
      b = s->now;
    }
    if (b < min_b)
      min_b = b;
  }
  R_CHECK(s, next <= min_b,
          "next_ms %" PRIu64 " later than earliest expiry %" PRIu64, next,
          min_b);
  if (min_b == UINT64_MAX)
    R_CHECK(s, next == UINT64_MAX, "empty wheel reports %" PRIu64, next);
  /* not due: the loop may sleep past now (no spurious busy wake-ups) */
  if (!any_due && !last_exhausted)
    R_CHECK(s, next > s->now, "next_ms %" PRIu64 " <= now %" PRIu64 " idle",
            next, s->now);
}

static void run_differential(uint64_t seed, long ops) {
  rstate *s = calloc(1, sizeof *s);
  assert_non_null(s);
  static const uint32_t ticks[] = {1, 7, 10, 1000};
  s->seed = seed;
  s->rng = seed * 0x9E3779B97F4A7C15ull + 1;
  s->tick = ticks[rnd_below(s, 4)];
  s->now = rnd_below(s, 1ull << 40);
  s->adv = 0;
  vigil__wheel_init(&s->w, s->tick, s->now);
  for (int i = 0; i < R_NODES; i++) {
    vigil__wheel_node_init(&s->nodes[i].node);
    s->nodes[i].id = i;
  }
  int last_exhausted = 0;
  for (s->op = 0; s->op < ops; s->op++) {
    uint64_t r = rnd_below(s, 100);
    rnode *n = &s->nodes[rnd_below(s, R_NODES)];
    if (r < 45) {
      r_arm(s, n, r_when(s));
    } else if (r < 55) {
      r_remove(s, n);
    } else {
      last_exhausted = r_advance(s);
    }
    R_CHECK(s, vigil__wheel_count(&s->w) == r_model_count(s),
            "count %zu != model %zu", vigil__wheel_count(&s->w),
            r_model_count(s));
    for (int i = 0; i < R_NODES; i++)
      R_CHECK(s, !!vigil__wheel_linked(&s->nodes[i].node) == s->nodes[i].linked,
              "linked() of node %d disagrees with model", i);
    r_check_next(s, last_exhausted);
  }
  free(s);
}

static void test_differential(void **state) {
  (void)state;
  const char *env = getenv("VIGIL_WHEEL_SEED");
  const char *soak = getenv("VIGIL_WHEEL_SOAK"); /* extra seeds to run */
  if (env) {
    run_differential(strtoull(env, NULL, 10), 20000);
    return;
  }
  if (soak) {
    uint64_t base = (uint64_t)time(NULL) * 1000;
    for (uint64_t i = 0; i < strtoull(soak, NULL, 10); i++)
      run_differential(base + i, 20000);
  }
  for (uint64_t seed = 1; seed <= 8; seed++)
    run_differential(seed, 20000);
  run_differential((uint64_t)time(NULL), 20000);
}

/* The hub's usage pattern on many nodes: always sleep until next_ms(). Each
 * node must fire at exactly its B, and wake-ups that fire nothing are
 * bounded by the cascades (at most one per level per node). */
typedef struct hub_ctx {
  vigil__wheel w;
  uint64_t now;
  uint64_t rng;
  uint64_t *b;        /* expected fire time per node */
  vigil__wheel_node *nodes;
  size_t fired, arms, bad;
} hub_ctx;

static void hub_arm(hub_ctx *c, size_t i) {
  c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
  uint64_t when = c->now + 1 + (c->rng >> 33) % (1u << (1 + (c->rng >> 20) % 24));
  c->b[i] = round_up(when, c->w.tick_ms);
  vigil__wheel_insert(&c->w, &c->nodes[i], when);
  c->arms++;
}

static void hub_fire(vigil__wheel_node *n, void *arg) {
  hub_ctx *c = arg;
  size_t i = (size_t)(n - c->nodes);
  if (c->now != c->b[i])
    c->bad++;
  c->fired++;
  if (c->fired < 20000)
    hub_arm(c, i); /* the owner's lazy re-arm */
}

static void test_follow_next_ms_many(void **state) {
  (void)state;
  enum { N = 2000 };
  hub_ctx *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->b = calloc(N, sizeof *c->b);
  c->nodes = calloc(N, sizeof *c->nodes);
  assert_non_null(c->b);
  assert_non_null(c->nodes);
  c->now = 987654;
  c->rng = 42;
  vigil__wheel_init(&c->w, 10, c->now);
  for (size_t i = 0; i < N; i++) {
    vigil__wheel_node_init(&c->nodes[i]);
    hub_arm(c, i);
  }
  size_t wakeups = 0, idle = 0;
  while (vigil__wheel_count(&c->w) > 0) {
    uint64_t next = vigil__wheel_next_ms(&c->w);
    assert_true(next > c->now);
    c->now = next;
    wakeups++;
    if (vigil__wheel_advance(&c->w, c->now, 0, hub_fire, c) == 0)
      idle++;
  }
  assert_int_equal(c->bad, 0);
  assert_int_equal(c->fired, c->arms);
  assert_true(idle <= (VIGIL__WHEEL_LEVELS - 1) * c->arms);
  assert_true(idle < wakeups); /* most wake-ups do work */
  free(c->b);
  free(c->nodes);
  free(c);
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bounds_step_by_ms),
      cmocka_unit_test(test_when_in_past),
      cmocka_unit_test(test_rearm),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_clamp_beyond_span),
      cmocka_unit_test(test_next_ms_values),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_big_jumps),
      cmocka_unit_test(test_count),
      cmocka_unit_test(test_differential),
      cmocka_unit_test(test_follow_next_ms_many),
  };
  vt_suite s = {0};
  VT_ROWS(&s, run_bound, bound_cases);
  VT_ROWS(&s, run_cb_case, cb_cases);
  VT_TESTS(&s, tests);
  return vt_suite_run(&s, NULL, NULL);
}
