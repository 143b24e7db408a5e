/*
 * bench_cluster_claim: what one claim costs in the Redis identity
 * directory (src/cluster), against a private loopback redis-server.
 *
 *   latency      N claims one after the other (the next starts when the
 *                previous one's result arrived): round trip from
 *                vigil__redis_dir_claim() to the result callback, ms
 *   takeover     N claims alternating between two nodes on one loop for
 *                the same identity: from node B's claim call to node A's
 *                on_evict (the other node learns it lost the identity), ms
 *   pipelined    M claims issued at once on one connection: claims/s from
 *                the first call to the last result
 *   redis_cpu    redis-server CPU per claim in each phase, µs, from
 *                /proc/<pid> before and after (scheduler runtime, or
 *                utime + stime)
 *   client_cpu   this process's CPU per claim in the pipelined phase, µs
 *
 * Usage: bench_cluster_claim [--claims N] [--pipelined M] [--json FILE]
 *        (defaults 1000 and 20000). Needs redis-server in PATH (or
 *        VIGIL_REDIS_SERVER). Numbers mean something in a Release build.
 */
#include "bench_common.h"

#ifndef VIGIL_HAVE_REDIS
int main(void) {
  printf("bench_cluster_claim: built without hiredis (no src/cluster)\n");
  return 0;
}
#else

#include <ev.h>
#include <stdlib.h>
#include <time.h>

#include "cluster/redis_dir.h"

typedef struct node {
  vigil__redis_dir *d;
  int up;
  uint64_t results, installed;
  uint64_t evictions;
  double last_result_ns, last_evict_ns;
} node;

static struct ev_loop *loop;

static void on_state(vigil__redis_dir *d, int up, const char *reason,
                     void *user) {
  node *n = user;
  if (!up && n->up) fprintf(stderr, "directory down: %s\n", reason);
  n->up = up; /* refused attempts before redis-server listens are fine */
}

static void on_evict(vigil__redis_dir *d, const vigil__dir_eviction *ev,
                     void *user) {
  node *n = user;
  n->evictions++;
  n->last_evict_ns = (double)bc_now_ns();
}

static void on_result(vigil__redis_dir *d, const vigil__dir_result *r,
                      void *user) {
  node *n = user;
  n->results++;
  if (r->status == VIGIL__DIR_INSTALLED) n->installed++;
  n->last_result_ns = (double)bc_now_ns();
}

/* Runs the loop until *value reaches want or 10 s pass; 1 if reached. */
static int run_until(const uint64_t *value, uint64_t want) {
  double deadline = bc_now_ms() + 10000;
  while (*value < want && bc_now_ms() < deadline) ev_run(loop, EVRUN_ONCE);
  return *value >= want;
}

static int run_until_up(node *n) {
  double deadline = bc_now_ms() + 10000;
  while (!n->up && bc_now_ms() < deadline) ev_run(loop, EVRUN_ONCE);
  return n->up;
}

static int start_node(node *n, const char *url, const char *name) {
  vigil__redis_dir_config c;
  vigil__redis_dir_callbacks cb = {on_state, on_evict, n};
  char err[256];
  vigil__redis_dir_config_init(&c);
  c.url = url;
  c.node = name;
  c.command_timeout_ms = 5000;
  c.liveness_ttl_ms = 15000;
  c.backoff.initial_ms = 20;
  c.backoff.max_ms = 100;
  memset(n, 0, sizeof *n);
  if (vigil__redis_dir_new(loop, &c, &cb, &n->d, err, sizeof err)) {
    fprintf(stderr, "bench_cluster_claim: %s\n", err);
    return -1;
  }
  return run_until_up(n) ? 0 : -1;
}

static void print_stats(FILE *f, const char *name, double *v, size_t n) {
  bc_sort(v, n);
  printf("  %-10s p50 %.3f ms  p99 %.3f ms  min %.3f  max %.3f  (n=%zu)\n",
         name, bc_pct_sorted(v, n, 50), bc_pct_sorted(v, n, 99), v[0],
         v[n - 1], n);
  if (f)
    fprintf(f, "\"%s_ms\": {\"p50\": %.4f, \"p99\": %.4f, \"min\": %.4f, "
               "\"max\": %.4f, \"n\": %zu},\n",
            name, bc_pct_sorted(v, n, 50), bc_pct_sorted(v, n, 99), v[0],
            v[n - 1], n);
}

static double process_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  size_t claims = 1000, pipelined = 20000;
  const char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--claims") && i + 1 < argc)
      claims = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--pipelined") && i + 1 < argc)
      pipelined = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc)
      json = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--claims N] [--pipelined M] [--json F]\n",
              argv[0]);
      return 2;
    }
  }
  if (claims < 1 || claims > 1000000 || pipelined < 1 || pipelined > 1000000) {
    fprintf(stderr, "bench_cluster_claim: counts must be 1..1000000\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = ev_loop_new(EVFLAG_AUTO);
  uint16_t port;
  pid_t redis = bc_redis_start(&port);
  if (redis <= 0) {
    fprintf(stderr, "bench_cluster_claim: cannot start redis-server\n");
    return 1;
  }
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%u", (unsigned)port);
  node a, b;
  int rc = 1;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  double *lat = calloc(claims, sizeof *lat);
  double *tko = calloc(claims, sizeof *tko);
  FILE *out = json ? fopen(json, "w") : NULL;
  if (!lat || !tko || start_node(&a, url, "node-a") ||
      start_node(&b, url, "node-b"))
    goto done;
  printf("bench_cluster_claim: redis-server %d on %s, load %.2f\n",
         (int)redis, url, bc_loadavg1());
  if (out) fprintf(out, "{\"cluster_claim\": {\n\"loadavg1\": %.2f,\n",
                   bc_loadavg1());

  /* Latency: one claim at a time, fresh identities. */
  char id[32];
  double cpu0 = bc_proc_cpu_ns(redis);
  for (size_t i = 0; i < claims; i++) {
    snprintf(id, sizeof id, "lat-%zu", i);
    double t0 = (double)bc_now_ns();
    uint64_t want = a.results + 1;
    if (vigil__redis_dir_claim(a.d, id, strlen(id), i + 1, 0, on_result,
                               &a) ||
        !run_until(&a.results, want))
      goto done;
    lat[i] = (a.last_result_ns - t0) / 1e6;
  }
  double lat_cpu_us = (bc_proc_cpu_ns(redis) - cpu0) / 1e3 / (double)claims;

  /* Takeover: the same identity back and forth; the loser hears it. The
   * first claim has nobody to evict, so claims + 1 are made. */
  cpu0 = bc_proc_cpu_ns(redis);
  for (size_t i = 0; i <= claims; i++) {
    node *winner = i % 2 ? &a : &b, *loser = i % 2 ? &b : &a;
    uint64_t want_evict = loser->evictions + 1;
    uint64_t want_result = winner->results + 1;
    double t0 = (double)bc_now_ns();
    if (vigil__redis_dir_claim(winner->d, "takeover", 8, i + 1, 0, on_result,
                               winner) ||
        !run_until(&winner->results, want_result))
      goto done;
    if (i == 0) continue;
    if (!run_until(&loser->evictions, want_evict)) goto done;
    tko[i - 1] = (loser->last_evict_ns - t0) / 1e6;
  }
  double tko_cpu_us =
      (bc_proc_cpu_ns(redis) - cpu0) / 1e3 / (double)(claims + 1);

  /* Pipelined: M claims at once on one connection. */
  cpu0 = bc_proc_cpu_ns(redis);
  double self0 = process_cpu_ns();
  uint64_t base = a.results;
  double t0 = (double)bc_now_ns();
  for (size_t i = 0; i < pipelined; i++) {
    snprintf(id, sizeof id, "pipe-%zu", i % 5000);
    if (vigil__redis_dir_claim(a.d, id, strlen(id), i + 1, 0, on_result, &a))
      goto done;
  }
  if (!run_until(&a.results, base + pipelined)) goto done;
  double secs = (a.last_result_ns - t0) / 1e9;
  double pipe_cpu_us =
      (bc_proc_cpu_ns(redis) - cpu0) / 1e3 / (double)pipelined;
  double self_us = (process_cpu_ns() - self0) / 1e3 / (double)pipelined;

  printf("claims on loopback Redis (one connection each):\n");
  print_stats(out, "latency", lat, claims);
  print_stats(out, "takeover", tko, claims);
  printf("  pipelined  %.0f claims/s (%zu claims in %.3f s)\n",
         (double)pipelined / secs, pipelined, secs);
  printf("  redis-server CPU per claim: %.1f us sequential, %.1f us "
         "takeover, %.1f us pipelined\n",
         lat_cpu_us, tko_cpu_us, pipe_cpu_us);
  printf("  this process CPU per pipelined claim: %.1f us\n", self_us);
  if (out)
    fprintf(out,
            "\"pipelined_claims_per_s\": %.0f,\n\"pipelined\": %zu,\n"
            "\"redis_cpu_us_per_claim\": {\"sequential\": %.2f, "
            "\"takeover\": %.2f, \"pipelined\": %.2f},\n"
            "\"client_cpu_us_per_pipelined_claim\": %.2f\n}}\n",
            (double)pipelined / secs, pipelined, lat_cpu_us, tko_cpu_us,
            pipe_cpu_us, self_us);
  rc = a.installed == a.results && b.installed == b.results ? 0 : 1;
  if (rc) fprintf(stderr, "bench_cluster_claim: some claims failed\n");
done:
  if (rc) fprintf(stderr, "bench_cluster_claim: failed\n");
  if (out) fclose(out);
  vigil__redis_dir_free(a.d);
  vigil__redis_dir_free(b.d);
  kill(redis, SIGKILL);
  waitpid(redis, NULL, 0);
  ev_loop_destroy(loop);
  free(lat);
  free(tko);
  return rc;
}
#endif
