/*
 * bench_stall: how long one loop iteration can take when 10,000
 * connections' deadlines all expire in the same tick, with the hub's
 * expire_batch at its default (256), the former default (2048) and
 * unlimited (0).
 *
 * Setup (one run): a fresh ev_loop and hub in a fresh process, N plain TCP
 * connections from a forked client child (each side under the 20,000-fd
 * limit). Once all are adopted, one callback stamps every connection's
 * rx/tx time with the same cached hub time and re-applies the policy, so
 * every wheel node is re-armed for the same instant T + period.
 *
 * Scenarios:
 *   ping  ping_interval = period, on_ping_due sends "PING\n" (one send()
 *         per connection): the heartbeat wave after a mass (re)connect;
 *   dead  dead_after = period, nobody answers: every connection closes
 *         with heartbeat_timeout (RST, then on_close): a network partition.
 *
 * Measurement: an ev_check watcher at EV_MAXPRI stamps the start of each
 * iteration's callback phase, an ev_prepare at EV_MINPRI its end (after the
 * hub's own prepare, which delivers on_close). The iteration time is the
 * difference; it is what every other connection's I/O waits for.
 *
 * Wall time is what the loop's other connections wait for; on a shared
 * machine it includes time the thread was preempted, so the longest turn is
 * also given in thread CPU time (max_iter_cpu_ms).
 *
 * Keys (ms unless named): max_iter_ms, p999_iter_ms, p99_iter_ms over all
 * iterations from T to the last expiry; expiry_iters (iterations that
 * handled expiries); span_ms (first to last expiry); per_expiry_us
 * (callback time of the expiry iterations / N); suggested_batch =
 * 5 ms / per_expiry_us (what keeps an iteration under the 5 ms target).
 *
 * Usage: bench_stall [--quick] [--n N] [--reps R] [--batch B]...
 *                    [--period-ms MS] [--json F]
 *   default: N = 10000, 3 repetitions, batches 256 (default), 2048 and 0, the
 *   wave 1000 ms after the stamp; --quick: the wave after 300 ms.
 */
#include "conn.h"
#include "hub.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_REPS 15
#define MAX_BATCHES 6
#define MAX_ITERS (1u << 20)
#define TARGET_MS 5.0

enum scenario { SC_PING = 0, SC_DEAD = 1 };
static const char *const scenario_names[] = {"ping", "dead"};

typedef struct run_result {
  double max_ms, p999_ms, p99_ms, span_ms, per_expiry_us, setup_s;
  double max_cpu_ms; /* the longest turn in thread CPU time */
  double expiry_iters;
  int expired;
  int ok;
} run_result;

static struct {
  struct ev_loop *loop;
  vigil_hub *hub;
  int target, adopted, child_ready, expired, timed_out;
  bc_clients clients;
  ev_io ctl;
  ev_timer timeout, tail;
  ev_check chk;
  ev_prepare prep;
  uint64_t t_check;      /* start of this iteration's callback phase */
  uint64_t cpu_check;    /* same, thread CPU time */
  double max_cpu_ms;
  int expired_at_check;  /* expiry count when it started */
  double *iters;         /* callback-phase ms per iteration */
  unsigned char *had_expiry;
  size_t niters;
  uint64_t first_expiry, last_expiry; /* ns */
  int measuring;
} g;

static void on_ping_due(vigil_conn *c, void *ud) {
  (void)ud;
  vigil_send(c, "PING\n", 5);
  g.expired++;
}

static void on_close(vigil_conn *c, vigil_reason r, void *ud) {
  (void)c, (void)ud;
  if (r == VIGIL_REASON_HEARTBEAT_TIMEOUT) g.expired++;
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l, (void)c, (void)ud;
  g.adopted++;
  if (g.child_ready && g.adopted >= g.target) ev_break(g.loop, EVBREAK_ALL);
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents) {
  char buf[64];
  ssize_t n = read(w->fd, buf, sizeof buf - 1);
  (void)revents;
  ev_io_stop(loop, w);
  if (n > 0) {
    int done = 0;
    buf[n] = '\0';
    sscanf(buf, "ready %d", &done);
    if (done < g.target) g.target = done;
  }
  g.child_ready = 1;
  if (g.adopted >= g.target) ev_break(loop, EVBREAK_ALL);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w, (void)revents;
  g.timed_out = 1;
  ev_break(loop, EVBREAK_ALL);
}

static void tail_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w, (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void check_cb(struct ev_loop *loop, ev_check *w, int revents) {
  (void)loop, (void)w, (void)revents;
  g.t_check = bc_now_ns();
  g.cpu_check = thread_cpu_ns();
  g.expired_at_check = g.expired;
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)w, (void)revents;
  if (!g.measuring || !g.t_check) return;
  uint64_t now = bc_now_ns();
  double cpu_ms = (double)(thread_cpu_ns() - g.cpu_check) / 1e6;
  if (cpu_ms > g.max_cpu_ms) g.max_cpu_ms = cpu_ms;
  if (g.niters < MAX_ITERS) {
    g.iters[g.niters] = (double)(now - g.t_check) / 1e6;
    g.had_expiry[g.niters] = g.expired > g.expired_at_check;
    g.niters++;
  }
  if (g.expired > g.expired_at_check) {
    if (!g.first_expiry) g.first_expiry = g.t_check;
    g.last_expiry = now;
  }
  g.t_check = 0;
  /* Everything expired: keep measuring briefly, then stop. */
  if (g.expired >= g.target && !ev_is_active(&g.tail)) {
    ev_timer_init(&g.tail, tail_cb, 0.1, 0.0);
    ev_timer_start(loop, &g.tail);
  }
}

static void policy_for(enum scenario sc, vigil_policy *p, uint32_t period) {
  vigil_policy_init(p);
  p->suspect_after_ms = 0; /* only the deadline under test */
  if (sc == SC_PING) p->ping_interval_ms = period;
  else p->dead_after_ms = period;
}

static uint32_t period_ms = 1000; /* --period-ms; 300 with --quick */

static run_result run_once(enum scenario sc, uint32_t batch, int n) {
  run_result r = {0};
  memset(&g, 0, sizeof g);
  g.target = n;
  g.loop = ev_loop_new(EVFLAG_AUTO);
  g.iters = malloc(MAX_ITERS * sizeof *g.iters);
  g.had_expiry = malloc(MAX_ITERS);
  if (!g.loop || !g.iters || !g.had_expiry) return r;
  /* Adopt with a far deadline; the period under test is set at sync. */
  vigil_policy far, p;
  policy_for(sc, &far, 600000);
  policy_for(sc, &p, period_ms);
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &far;
  ho.expire_batch = batch;
  if (vigil_hub_new(g.loop, &ho, &g.hub) != VIGIL_OK) return r;
  static const vigil_conn_callbacks cb = {.on_ping_due = on_ping_due,
                                          .on_close = on_close};
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.backlog = 4096;
  lo.adopt.callbacks = &cb;
  lo.on_accept = on_accept;
  vigil_listener *l;
  if (vigil_listen(g.hub, &lo, &l) != VIGIL_OK) return r;
  uint64_t t0 = bc_now_ns();
  if (bc_clients_spawn(&g.clients, vigil_listener_port(l), n, NULL) < 0)
    return r;
  ev_io_init(&g.ctl, ctl_cb, g.clients.ctl, EV_READ);
  ev_io_start(g.loop, &g.ctl);
  ev_timer_init(&g.timeout, timeout_cb, 60.0, 0.0);
  ev_timer_start(g.loop, &g.timeout);
  ev_run(g.loop, 0);
  r.setup_s = (double)(bc_now_ns() - t0) / 1e9;
  if (g.timed_out || g.adopted < g.target) goto out;

  /* Same rx/tx stamp everywhere (the cached hub time), then re-arm every
   * node for stamp + period in one pass. The measured policy goes on each
   * conn: vigil_hub_set_policy only concerns conns adopted later. */
  vigil_hub *hub = g.hub;
  for (uint32_t i = 0; i < hub->nconns; i++) {
    vigil_conn_touch_rx(hub->conns[i], 0);
    vigil_conn_touch_tx(hub->conns[i], 0);
  }
  for (uint32_t i = 0; i < hub->nconns; i++)
    if (vigil_conn_set_policy(hub->conns[i], &p) != VIGIL_OK) goto out;
  ev_check_init(&g.chk, check_cb);
  ev_set_priority(&g.chk, EV_MAXPRI);
  ev_check_start(g.loop, &g.chk);
  ev_prepare_init(&g.prep, prepare_cb);
  ev_set_priority(&g.prep, EV_MINPRI);
  ev_prepare_start(g.loop, &g.prep);
  g.measuring = 1;
  ev_timer_stop(g.loop, &g.timeout);
  ev_timer_set(&g.timeout, 30.0, 0.0);
  ev_timer_start(g.loop, &g.timeout);
  ev_run(g.loop, 0);
  g.measuring = 0;
  if (g.timed_out || g.expired < g.target) goto out;

  double expiry_ms = 0, n_exp_iters = 0;
  for (size_t i = 0; i < g.niters; i++)
    if (g.had_expiry[i]) {
      expiry_ms += g.iters[i];
      n_exp_iters++;
    }
  bc_sort(g.iters, g.niters);
  r.max_ms = g.niters ? g.iters[g.niters - 1] : 0;
  r.p999_ms = bc_pct_sorted(g.iters, g.niters, 99.9);
  r.p99_ms = bc_pct_sorted(g.iters, g.niters, 99.0);
  r.expiry_iters = n_exp_iters;
  r.span_ms = (double)(g.last_expiry - g.first_expiry) / 1e6;
  r.per_expiry_us = expiry_ms * 1000.0 / g.expired;
  r.expired = g.expired;
  r.max_cpu_ms = g.max_cpu_ms;
  r.ok = 1;
out:
  ev_check_stop(g.loop, &g.chk);
  ev_prepare_stop(g.loop, &g.prep);
  ev_timer_stop(g.loop, &g.timeout);
  ev_timer_stop(g.loop, &g.tail);
  vigil_hub_free(g.hub);
  bc_clients_stop(&g.clients);
  ev_loop_destroy(g.loop);
  return r;
}

/* Runs one configuration in a forked process (fresh heap, fds, loop). */
static run_result run_isolated(enum scenario sc, uint32_t batch, int n) {
  run_result r = {0};
  int p[2];
  if (pipe(p) < 0) return r;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    close(p[0]);
    r = run_once(sc, batch, n);
    _exit(write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
  }
  close(p[1]);
  if (read(p[0], &r, sizeof r) != (ssize_t)sizeof r) memset(&r, 0, sizeof r);
  close(p[0]);
  waitpid(pid, NULL, 0);
  return r;
}

static void emit(FILE *f, const run_result *rs, int reps) {
  double v[MAX_REPS];
#define STAT(field, key, sep)                                                \
  do {                                                                       \
    for (int i = 0; i < reps; i++) v[i] = rs[i].field;                       \
    bc_json_stats(f, key, v, (size_t)reps);                                  \
    fputs(sep, f);                                                           \
  } while (0)
  fputs("{", f);
  STAT(max_ms, "max_iter_ms", ", ");
  STAT(max_cpu_ms, "max_iter_cpu_ms", ", ");
  STAT(p999_ms, "p999_iter_ms", ", ");
  STAT(p99_ms, "p99_iter_ms", ", ");
  STAT(expiry_iters, "expiry_iters", ", ");
  STAT(span_ms, "span_ms", ", ");
  STAT(per_expiry_us, "per_expiry_us", "");
#undef STAT
  for (int i = 0; i < reps; i++) v[i] = rs[i].per_expiry_us;
  bc_sort(v, (size_t)reps);
  double per = bc_median_sorted(v, (size_t)reps);
  for (int i = 0; i < reps; i++) v[i] = rs[i].max_ms;
  bc_sort(v, (size_t)reps);
  fprintf(f, ", \"suggested_batch\": %.0f, \"meets_5ms\": %s}",
          per > 0 ? TARGET_MS * 1000.0 / per : 0,
          bc_median_sorted(v, (size_t)reps) <= TARGET_MS ? "true" : "false");
}

int main(int argc, char **argv) {
  int n = 10000, reps = 3, nb = 0;
  uint32_t batches[MAX_BATCHES];
  const char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) period_ms = 300; /* same N and reps */
    else if (!strcmp(argv[i], "--period-ms") && i + 1 < argc)
      period_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc &&
             nb < MAX_BATCHES)
      batches[nb++] = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else {
      fprintf(stderr, "usage: bench_stall [--quick] [--n N] [--reps R] "
                      "[--batch B]... [--period-ms MS] [--json FILE]\n");
      return 2;
    }
  }
  if (n < 100 || n > 19000 || reps < 1 || reps > MAX_REPS ||
      period_ms < 100 || period_ms > 60000) {
    fprintf(stderr, "bench_stall: n must be 100..19000, reps 1..%d, period "
                    "100..60000 ms\n", MAX_REPS);
    return 2;
  }
  if (nb == 0) {
    batches[nb++] = 256;
    batches[nb++] = 2048;
    batches[nb++] = 0;
  }
  signal(SIGPIPE, SIG_IGN);
  double load = bc_loadavg1();
  static run_result res[2][MAX_BATCHES][MAX_REPS];
  for (int rep = 0; rep < reps; rep++)
    for (int sc = 0; sc < 2; sc++)
      for (int b = 0; b < nb; b++) {
        run_result *r = &res[sc][b][rep];
        *r = run_isolated((enum scenario)sc, batches[b], n);
        if (!r->ok) {
          fprintf(stderr, "bench_stall: %s batch %u rep %d failed\n",
                  scenario_names[sc], batches[b], rep + 1);
          return 1;
        }
        printf("stall rep %d/%d %s expire_batch=%u: longest iteration %.2f "
               "ms, p99.9 %.2f ms, %.0f iterations, %.2f us/expiry\n",
               rep + 1, reps, scenario_names[sc], batches[b], r->max_ms,
               r->p999_ms, r->expiry_iters, r->per_expiry_us);
        fflush(stdout);
      }
  FILE *f = json ? fopen(json, "w") : stdout;
  if (!f) {
    perror(json);
    return 1;
  }
  fprintf(f, "{\"stall\": {\n  \"config\": {\"connections\": %d, \"reps\": "
             "%d, \"period_ms\": %u, \"tick_ms\": 10, \"target_ms\": %.1f, "
             "\"loadavg_1m\": %.2f}",
          n, reps, period_ms, TARGET_MS, load);
  for (int sc = 0; sc < 2; sc++) {
    fprintf(f, ",\n  \"%s\": {", scenario_names[sc]);
    for (int b = 0; b < nb; b++) {
      fprintf(f, "%s\n    \"batch_%u\": ", b ? "," : "", batches[b]);
      emit(f, res[sc][b], reps);
    }
    fputs("}", f);
  }
  fputs("\n}}\n", f);
  if (f != stdout) fclose(f);
  return 0;
}
