/*
 * bench_timers: what vigil's timer design costs per connection, next to
 * libev's per-connection ev_timer, in one process on the same data.
 *
 * vigil keeps ONE wheel node per connection. Activity only stores a
 * timestamp ("refresh"); when the node fires, the owner recomputes the
 * deadline from the timestamps and re-arms (lazy re-arm). The classic
 * alternative is one ev_timer per connection, moved on every packet.
 *
 * Setup. N connections, each a 256-byte struct (vigil_conn is ~232 B): the
 * wheel node and the timestamps in the first cache line, an ev_timer in the
 * second. Operations visit connections in a random permutation, so caches
 * behave as in a server with N connections. Deadlines move forward as a
 * server's do (now + timeout with now creeping up), for libev too, so a
 * re-armed heap entry sinks as it would in production. Wheel tick: 10 ms
 * (the hub default). Every figure is ns per operation, the median of the
 * repetitions, with min and max, measured in thread CPU time (so a busy
 * machine's scheduling does not count, its cache pressure does). The
 * 1-minute load average is recorded next to the numbers.
 *
 * Keys (text and JSON):
 *   refresh_ns            store a uint64 activity timestamp in the
 *                         connection struct (vigil's per-packet cost; a
 *                         cold line here, in a server the I/O path has
 *                         usually just touched it)
 *   refresh_dense_ns      the same store into a dense uint64 array indexed
 *                         by connection slot (8 B per connection), the
 *                         layout of the field-notes measurement
 *   wheel_arm_ns          vigil__wheel_insert() on an unlinked node
 *   wheel_rearm_ns        vigil__wheel_insert() on a linked node (move)
 *   wheel_cancel_ns       vigil__wheel_remove()
 *   wheel_expire_ns       all N nodes expire, deadlines spread over 30 s,
 *                         driven like the hub (advance at next_ms until
 *                         done); the callback only counts. Per expired node.
 *   wheel_expire_rearm_ns same, the callback reads the timestamp, computes
 *                         the next deadline and re-arms (lazy re-arm)
 *   ev_stop_set_start_ns  libev per-connection refresh, manual strategy 1:
 *                         ev_timer_stop + ev_timer_set + ev_timer_start
 *   ev_again_ns           libev strategy 2: set repeat + ev_timer_again
 *   ev_again_nomove_ns    ev_timer_again to an unchanged deadline, so the
 *                         heap entry never moves: libev's best case, for
 *                         calibration against the field notes (a server's
 *                         refreshed deadline is later than the others')
 *   ev_expire_ns          N due ev_timers fired by one ev_run(NOWAIT); the
 *                         callback only counts. Per expired timer.
 *   ev_expire_rearm_ns    same, the callback re-arms from the timestamp
 *                         (ev_timer_set + ev_timer_start)
 *   ratios                baseline / vigil: how many times cheaper vigil is
 *                         (refresh vs each libev refresh strategy; expiry vs
 *                         libev expiry, plain and with re-arm)
 *   targets               the project's goals and whether they were met:
 *                         refresh <= 10 ns at 1e5 and <= 25 ns at 1e6,
 *                         lazy-re-arm expiry <= 100 ns at 1e6
 *
 * JSON (--json FILE):
 *   {"timers": {"config": {...},
 *               "n_100000": {"refresh_ns": {"median":..,"min":..,"max":..},
 *                            ..., "ratios": {...}, "targets": {...}},
 *               "n_1000000": {...}}}
 *
 * Usage: bench_timers [--quick] [--reps R] [--n N]... [--json FILE]
 *   default: N = 1e4, 1e5, 1e6 with 7 repetitions, short passes repeated to
 *   1e6 operations; --quick: 1e5 and 1e6, 3 repetitions, passes of >= 3e5
 *   operations (about 15 s of CPU: under a minute on two busy cores).
 */
#include "wheel.h"

#include <ev.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 10
#define CONN_BYTES 256
#define IDLE_MS 30000u     /* deadlines: now + 30 s .. now + 60 s */
#define MAX_REPS 31
#define MAX_SIZES 8
/* Short passes are repeated to cover at least this many operations. */
static size_t min_ops_per_pass = 1000000;

typedef struct bconn {
  /* first cache line: what vigil touches */
  uint64_t last_rx_ms;
  uint64_t last_tx_ms;
  vigil__wheel_node wnode;
  uint64_t deadline_ms;
  char pad0[64 - 2 * 8 - sizeof(vigil__wheel_node) - 8];
  /* second cache line: the libev baseline's timer */
  ev_timer timer;
  char pad1[CONN_BYTES - 64 - sizeof(ev_timer)];
} bconn;

_Static_assert(sizeof(bconn) == CONN_BYTES, "bench conn is 256 bytes");

#define CONN_OF(ptr, member)                                                   \
  ((bconn *)(void *)((char *)(ptr)-offsetof(bconn, member)))

/* ---------------------------------------------------------------------- */

/* Thread CPU time: on a shared machine, time spent descheduled is not
 * charged to the operation (cache interference still is). */
static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

typedef struct stat3 {
  double median, min, max;
} stat3;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static stat3 summarize(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  stat3 s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0],
             v[n - 1]};
  return s;
}

/* ---------------------------------------------------------------------- */
/* Shared state for one N.                                                 */

typedef struct bench {
  size_t n;
  bconn *conns;
  uint32_t *perm; /* random visiting order */
  uint64_t *stamps; /* dense per-slot timestamps (refresh_dense) */
  size_t passes;  /* inner passes so a timing covers >= 1e6 ops */
  uint64_t seq;   /* creeping "now": deadlines only move forward */
  volatile uint64_t sink;
  /* expiry bookkeeping */
  vigil__wheel wheel;
  uint64_t now_ms;
  size_t fired;
  struct ev_loop *loop;
} bench;

static void bench_setup(bench *b, size_t n) {
  memset(b, 0, sizeof *b);
  b->n = n;
  b->conns = aligned_alloc(64, n * sizeof(bconn));
  b->perm = malloc(n * sizeof *b->perm);
  b->stamps = calloc(n, sizeof *b->stamps);
  if (!b->conns || !b->perm || !b->stamps) {
    fprintf(stderr, "bench_timers: out of memory for N=%zu\n", n);
    exit(1);
  }
  memset(b->conns, 0, n * sizeof(bconn)); /* fault the pages in now */
  memset(b->stamps, 0, n * sizeof *b->stamps);
  for (size_t i = 0; i < n; i++)
    b->perm[i] = (uint32_t)i;
  for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    size_t j = rnd() % (i + 1);
    uint32_t t = b->perm[i];
    b->perm[i] = b->perm[j];
    b->perm[j] = t;
  }
  b->passes = n >= min_ops_per_pass ? 1 : (min_ops_per_pass + n - 1) / n;
}

static void bench_teardown(bench *b) {
  free(b->conns);
  free(b->perm);
  free(b->stamps);
}

#define BASE_MS 1000000000ull /* the fake clock starts here */

/* A server-like deadline: now (creeping 1 ms per 1000 ops) + 30..60 s. */
static inline uint64_t next_deadline_ms(bench *b, uint64_t jitter) {
  return BASE_MS + (b->seq++ >> 10) + IDLE_MS + jitter % IDLE_MS;
}

/* ---------------------------------------------------------------------- */
/* (a) refresh: one timestamp store.                                       */

static double run_refresh(bench *b) {
  size_t n = b->n;
  double t0 = now_ns();
  for (size_t p = 0; p < b->passes; p++) {
    uint64_t stamp = BASE_MS + b->seq;
    for (size_t i = 0; i < n; i++)
      b->conns[b->perm[i]].last_rx_ms = stamp + (i >> 10);
    b->seq += n;
  }
  double t1 = now_ns();
  b->sink += b->conns[b->perm[n / 2]].last_rx_ms;
  return (t1 - t0) / (double)(n * b->passes);
}

static double run_refresh_dense(bench *b) {
  size_t n = b->n;
  double t0 = now_ns();
  for (size_t p = 0; p < b->passes; p++) {
    uint64_t stamp = BASE_MS + b->seq;
    for (size_t i = 0; i < n; i++)
      b->stamps[b->perm[i]] = stamp + (i >> 10);
    b->seq += n;
  }
  double t1 = now_ns();
  b->sink += b->stamps[b->perm[n / 2]];
  return (t1 - t0) / (double)(n * b->passes);
}

/* ---------------------------------------------------------------------- */
/* (b) wheel arm / re-arm / cancel.                                        */

static void run_wheel_ops(bench *b, double *arm, double *rearm,
                          double *cancel) {
  size_t n = b->n;
  double t_arm = 0, t_rearm = 0, t_cancel = 0;
  vigil__wheel_init(&b->wheel, TICK_MS, BASE_MS);
  for (size_t i = 0; i < n; i++)
    vigil__wheel_node_init(&b->conns[i].wnode);
  for (size_t p = 0; p < b->passes; p++) {
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
      uint32_t k = b->perm[i];
      vigil__wheel_insert(&b->wheel, &b->conns[k].wnode,
                          next_deadline_ms(b, k * 7919u));
    }
    double t1 = now_ns();
    for (size_t i = 0; i < n; i++) {
      uint32_t k = b->perm[i];
      vigil__wheel_insert(&b->wheel, &b->conns[k].wnode,
                          next_deadline_ms(b, k * 104729u));
    }
    double t2 = now_ns();
    for (size_t i = 0; i < n; i++)
      vigil__wheel_remove(&b->wheel, &b->conns[b->perm[i]].wnode);
    double t3 = now_ns();
    t_arm += t1 - t0;
    t_rearm += t2 - t1;
    t_cancel += t3 - t2;
  }
  if (vigil__wheel_count(&b->wheel) != 0) {
    fprintf(stderr, "bench_timers: wheel count not 0 after cancel\n");
    exit(1);
  }
  double ops = (double)(n * b->passes);
  *arm = t_arm / ops;
  *rearm = t_rearm / ops;
  *cancel = t_cancel / ops;
}

/* ---------------------------------------------------------------------- */
/* (c) wheel expiry, driven like the hub: advance at next_ms until done.   */

static void on_expire_count(vigil__wheel_node *n, void *ctx) {
  (void)n;
  ((bench *)ctx)->fired++;
}

/* Lazy re-arm: the deadline is recomputed from the activity timestamp. */
static void on_expire_rearm(vigil__wheel_node *n, void *ctx) {
  bench *b = ctx;
  bconn *c = CONN_OF(n, wnode);
  uint64_t deadline = c->last_rx_ms + 2 * IDLE_MS;
  b->fired++;
  if (deadline > b->now_ms)
    vigil__wheel_insert(&b->wheel, n, deadline);
}

static double run_wheel_expire(bench *b, int rearm) {
  size_t n = b->n;
  vigil__wheel_init(&b->wheel, TICK_MS, BASE_MS);
  for (size_t i = 0; i < n; i++) {
    bconn *c = &b->conns[i];
    vigil__wheel_node_init(&c->wnode);
    c->last_rx_ms = BASE_MS;
    vigil__wheel_insert(&b->wheel, &c->wnode,
                        BASE_MS + IDLE_MS + rnd() % IDLE_MS);
    /* activity after arming: the re-armed deadline is beyond the run */
    c->last_rx_ms = BASE_MS + 1000 + rnd() % 1000;
  }
  b->fired = 0;
  b->now_ms = BASE_MS;
  vigil__wheel_fire_fn fn = rearm ? on_expire_rearm : on_expire_count;
  double t0 = now_ns();
  while (b->fired < n) {
    uint64_t next = vigil__wheel_next_ms(&b->wheel);
    b->now_ms = next > b->now_ms ? next : b->now_ms;
    vigil__wheel_advance(&b->wheel, b->now_ms, 0, fn, b);
  }
  double t1 = now_ns();
  if (b->fired != n || vigil__wheel_count(&b->wheel) != (rearm ? n : 0)) {
    fprintf(stderr, "bench_timers: wheel expiry fired %zu of %zu\n", b->fired,
            n);
    exit(1);
  }
  return (t1 - t0) / (double)n;
}

/* ---------------------------------------------------------------------- */
/* libev baselines.                                                        */

static void ev_noop_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
}

static struct ev_loop *new_loop(void) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
  if (!loop) {
    fprintf(stderr, "bench_timers: ev_loop_new failed\n");
    exit(1);
  }
  return loop;
}

/* Strategy 1 (stop+set+start) and 2 (ev_timer_again) with N live timers. */
static void run_ev_refresh(bench *b, double *stop_set_start, double *again,
                           double *again_nomove) {
  size_t n = b->n;
  struct ev_loop *loop = new_loop();
  const double idle_s = IDLE_MS / 1000.0;
  for (size_t i = 0; i < n; i++) {
    ev_timer *t = &b->conns[i].timer;
    ev_timer_init(t, ev_noop_cb, idle_s + (double)(rnd() % IDLE_MS) / 1000.0,
                  0.);
    ev_timer_start(loop, t);
  }
  double t_sss = 0, t_again = 0;
  for (size_t p = 0; p < b->passes; p++) {
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
      ev_timer *t = &b->conns[b->perm[i]].timer;
      ev_timer_stop(loop, t);
      ev_timer_set(t, 2 * idle_s + (double)(b->seq++) * 1e-6, 0.);
      ev_timer_start(loop, t);
    }
    double t1 = now_ns();
    t_sss += t1 - t0;
  }
  /* strategy 2 works on repeating timers: convert them (untimed) */
  for (size_t i = 0; i < n; i++) {
    ev_timer *t = &b->conns[i].timer;
    ev_timer_stop(loop, t);
    ev_timer_set(t, 0., 2 * idle_s + (double)(b->seq++) * 1e-6);
    ev_timer_again(loop, t);
  }
  for (size_t p = 0; p < b->passes; p++) {
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
      ev_timer *t = &b->conns[b->perm[i]].timer;
      t->repeat = 2 * idle_s + (double)(b->seq++) * 1e-6;
      ev_timer_again(loop, t);
    }
    double t1 = now_ns();
    t_again += t1 - t0;
  }
  /* best case: every timer already at the deadline it is re-armed to */
  const double fixed = 3 * idle_s;
  double t_nomove = 0;
  for (size_t i = 0; i < n; i++) {
    ev_timer *t = &b->conns[i].timer;
    t->repeat = fixed;
    ev_timer_again(loop, t);
  }
  for (size_t p = 0; p < b->passes; p++) {
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
      ev_timer *t = &b->conns[b->perm[i]].timer;
      t->repeat = fixed;
      ev_timer_again(loop, t);
    }
    t_nomove += now_ns() - t0;
  }
  for (size_t i = 0; i < n; i++)
    ev_timer_stop(loop, &b->conns[i].timer);
  ev_loop_destroy(loop);
  double ops = (double)(n * b->passes);
  *stop_set_start = t_sss / ops;
  *again = t_again / ops;
  *again_nomove = t_nomove / ops;
}

static bench *ev_bench; /* ev callbacks reach the bench through this */

static void ev_expire_count_cb(struct ev_loop *loop, ev_timer *w, int rev) {
  (void)loop;
  (void)w;
  (void)rev;
  ev_bench->fired++;
}

static void ev_expire_rearm_cb(struct ev_loop *loop, ev_timer *w, int rev) {
  (void)rev;
  bconn *c = CONN_OF(w, timer);
  ev_bench->fired++;
  double after = (double)(c->last_rx_ms + 2 * IDLE_MS - BASE_MS) / 1000.0;
  ev_timer_set(w, after, 0.);
  ev_timer_start(loop, w);
}

/* N timers all due; one ev_run(NOWAIT) fires them (heap pops + callback). */
static double run_ev_expire(bench *b, int rearm) {
  size_t n = b->n;
  struct ev_loop *loop = new_loop();
  ev_bench = b;
  for (size_t i = 0; i < n; i++) {
    bconn *c = &b->conns[b->perm[i]];
    c->last_rx_ms = BASE_MS + 1000 + rnd() % 1000;
    ev_timer_init(&c->timer, rearm ? ev_expire_rearm_cb : ev_expire_count_cb,
                  1e-4 + (double)(rnd() % 1000) * 1e-6, 0.);
    ev_timer_start(loop, &c->timer);
  }
  /* let every deadline pass (ev_now was not updated while starting) */
  struct timespec ts = {0, 3 * 1000 * 1000};
  nanosleep(&ts, NULL);
  b->fired = 0;
  double t0 = now_ns();
  ev_run(loop, EVRUN_NOWAIT);
  double t1 = now_ns();
  if (b->fired != n) {
    fprintf(stderr, "bench_timers: libev fired %zu of %zu\n", b->fired, n);
    exit(1);
  }
  for (size_t i = 0; i < n; i++)
    ev_timer_stop(loop, &b->conns[i].timer);
  ev_loop_destroy(loop);
  return (t1 - t0) / (double)n;
}

/* ---------------------------------------------------------------------- */
/* Driver and reporting.                                                   */

enum {
  M_REFRESH,
  M_REFRESH_DENSE,
  M_WHEEL_ARM,
  M_WHEEL_REARM,
  M_WHEEL_CANCEL,
  M_WHEEL_EXPIRE,
  M_WHEEL_EXPIRE_REARM,
  M_EV_SSS,
  M_EV_AGAIN,
  M_EV_AGAIN_NOMOVE,
  M_EV_EXPIRE,
  M_EV_EXPIRE_REARM,
  M_COUNT
};

static const char *const metric_key[M_COUNT] = {
    "refresh_ns",           "refresh_dense_ns",   "wheel_arm_ns",
    "wheel_rearm_ns",
    "wheel_cancel_ns",      "wheel_expire_ns",    "wheel_expire_rearm_ns",
    "ev_stop_set_start_ns", "ev_again_ns",        "ev_again_nomove_ns",
    "ev_expire_ns",         "ev_expire_rearm_ns",
};

typedef struct result {
  size_t n;
  int reps;
  double load_before, load_after;
  stat3 m[M_COUNT];
} result;

/* 1-minute load average, or -1: context for numbers from a shared box. */
static double loadavg1(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1)
      l = -1;
    fclose(f);
  }
  return l;
}

static void measure(size_t n, int reps, result *r) {
  static double v[M_COUNT][MAX_REPS];
  bench *b = calloc(1, sizeof *b);
  if (!b)
    exit(1);
  bench_setup(b, n);
  r->load_before = loadavg1();
  for (int rep = 0; rep < reps; rep++) {
    v[M_REFRESH][rep] = run_refresh(b);
    v[M_REFRESH_DENSE][rep] = run_refresh_dense(b);
    run_wheel_ops(b, &v[M_WHEEL_ARM][rep], &v[M_WHEEL_REARM][rep],
                  &v[M_WHEEL_CANCEL][rep]);
    v[M_WHEEL_EXPIRE][rep] = run_wheel_expire(b, 0);
    v[M_WHEEL_EXPIRE_REARM][rep] = run_wheel_expire(b, 1);
    run_ev_refresh(b, &v[M_EV_SSS][rep], &v[M_EV_AGAIN][rep],
                   &v[M_EV_AGAIN_NOMOVE][rep]);
    v[M_EV_EXPIRE][rep] = run_ev_expire(b, 0);
    v[M_EV_EXPIRE_REARM][rep] = run_ev_expire(b, 1);
  }
  r->n = n;
  r->reps = reps;
  r->load_after = loadavg1();
  for (int m = 0; m < M_COUNT; m++)
    r->m[m] = summarize(v[m], reps);
  bench_teardown(b);
  free(b);
}

typedef struct ratio {
  const char *key;
  int base, ours;
} ratio;

static const ratio ratios[] = {
    {"refresh_vs_ev_again", M_EV_AGAIN, M_REFRESH},
    {"refresh_vs_ev_stop_set_start", M_EV_SSS, M_REFRESH},
    {"refresh_vs_ev_again_nomove", M_EV_AGAIN_NOMOVE, M_REFRESH},
    {"refresh_dense_vs_ev_again", M_EV_AGAIN, M_REFRESH_DENSE},
    {"wheel_rearm_vs_ev_again", M_EV_AGAIN, M_WHEEL_REARM},
    {"wheel_expire_vs_ev_expire", M_EV_EXPIRE, M_WHEEL_EXPIRE},
    {"wheel_expire_rearm_vs_ev_expire_rearm", M_EV_EXPIRE_REARM,
     M_WHEEL_EXPIRE_REARM},
};
#define N_RATIOS (sizeof ratios / sizeof ratios[0])

/* Goals: refresh <= 10 ns at 1e5, <= 25 ns at 1e6; expiry <= 100 at 1e6. */
static double refresh_goal(size_t n) {
  return n == 100000 ? 10 : n == 1000000 ? 25 : 0;
}
static double expire_goal(size_t n) { return n == 1000000 ? 100 : 0; }

static void print_text(const result *r) {
  printf("\nN = %zu connections (%d reps; ns/op: median [min .. max]; "
         "load %.1f -> %.1f)\n",
         r->n, r->reps, r->load_before, r->load_after);
  for (int m = 0; m < M_COUNT; m++)
    printf("  %-24s %8.1f  [%7.1f .. %7.1f]\n", metric_key[m],
           r->m[m].median, r->m[m].min, r->m[m].max);
  printf("  ratios (baseline / vigil, >1 = vigil cheaper):\n");
  for (size_t i = 0; i < N_RATIOS; i++)
    printf("    %-40s %6.1fx\n", ratios[i].key,
           r->m[ratios[i].base].median / r->m[ratios[i].ours].median);
  double rg = refresh_goal(r->n), eg = expire_goal(r->n);
  if (rg > 0)
    printf("  target refresh <= %.0f ns: %s (%.1f)\n", rg,
           r->m[M_REFRESH].median <= rg ? "met" : "MISSED",
           r->m[M_REFRESH].median);
  if (eg > 0)
    printf("  target expiry with re-arm <= %.0f ns: %s (%.1f)\n", eg,
           r->m[M_WHEEL_EXPIRE_REARM].median <= eg ? "met" : "MISSED",
           r->m[M_WHEEL_EXPIRE_REARM].median);
}

static int write_json(const char *path, const result *res, int nres) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return -1;
  }
  fprintf(f, "{\"timers\": {\n  \"config\": {\"tick_ms\": %d, "
             "\"conn_bytes\": %d, \"deadline_spread_ms\": %u, "
             "\"order\": \"random permutation\", "
             "\"clock\": \"thread cpu time\", \"cpus\": %ld}",
          TICK_MS, CONN_BYTES, IDLE_MS, sysconf(_SC_NPROCESSORS_ONLN));
  for (int i = 0; i < nres; i++) {
    const result *r = &res[i];
    fprintf(f,
            ",\n  \"n_%zu\": {\n    \"reps\": %d, \"loadavg_before\": %.2f, "
            "\"loadavg_after\": %.2f",
            r->n, r->reps, r->load_before, r->load_after);
    for (int m = 0; m < M_COUNT; m++)
      fprintf(f,
              ",\n    \"%s\": {\"median\": %.2f, \"min\": %.2f, "
              "\"max\": %.2f}",
              metric_key[m], r->m[m].median, r->m[m].min, r->m[m].max);
    fprintf(f, ",\n    \"ratios\": {");
    for (size_t k = 0; k < N_RATIOS; k++)
      fprintf(f, "%s\"%s\": %.2f", k ? ", " : "", ratios[k].key,
              r->m[ratios[k].base].median / r->m[ratios[k].ours].median);
    fprintf(f, "}");
    double rg = refresh_goal(r->n), eg = expire_goal(r->n);
    fprintf(f, ",\n    \"targets\": {");
    const char *sep = "";
    if (rg > 0) {
      fprintf(f, "\"refresh_ns_max\": %.0f, \"refresh_met\": %s", rg,
              r->m[M_REFRESH].median <= rg ? "true" : "false");
      sep = ", ";
    }
    if (eg > 0)
      fprintf(f, "%s\"expire_rearm_ns_max\": %.0f, \"expire_rearm_met\": %s",
              sep, eg,
              r->m[M_WHEEL_EXPIRE_REARM].median <= eg ? "true" : "false");
    fprintf(f, "}\n  }");
  }
  fprintf(f, "\n}}\n");
  return fclose(f) == 0 ? 0 : -1;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_timers [--quick] [--reps R] [--n N]... "
                  "[--json FILE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  size_t sizes[MAX_SIZES];
  int nsizes = 0, reps = 7, quick = 0;
  const char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = atoi(argv[++i]);
      if (reps < 1 || reps > MAX_REPS)
        usage();
    } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
      long long v = atoll(argv[++i]);
      if (v < 1 || v > 4000000 || nsizes == MAX_SIZES)
        usage();
      sizes[nsizes++] = (size_t)v;
    } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
      json = argv[++i];
    } else {
      usage();
    }
  }
  if (quick) {
    reps = 3;
    min_ops_per_pass = 300000;
  }
  if (nsizes == 0) {
    if (!quick)
      sizes[nsizes++] = 10000;
    sizes[nsizes++] = 100000;
    sizes[nsizes++] = 1000000;
  }
  printf("bench_timers: tick %d ms, %d-byte connections, random order, "
         "libev %d.%d\n",
         TICK_MS, CONN_BYTES, ev_version_major(), ev_version_minor());
  result res[MAX_SIZES];
  for (int i = 0; i < nsizes; i++) {
    measure(sizes[i], reps, &res[i]);
    print_text(&res[i]);
    fflush(stdout);
  }
  if (json && write_json(json, res, nsizes) != 0)
    return 1;
  return 0;
}
