/*
 * bench_takeover: how long a takeover takes, from the identity claim on
 * the new conn to the close of the conn it displaced, within one hub and
 * across the workers of a group, for both classes of displaced conn
 * (docs/ghosts.md, "Takeover: ghost or live").
 *
 *   hub     both conns on worker 1 of a group of two: a ghost is reset
 *           before vigil_conn_identify returns;
 *   worker  the displaced conn lives on worker 0, the claims are made on
 *           worker 1: the eviction travels through worker 0's mailbox (a
 *           locked queue and an ev_async wake-up of its loop) and is
 *           fenced there;
 *   cluster the displaced conn lives on another node (two groups of one
 *           worker, each a node of a cluster sharing a private loopback
 *           redis-server): the claim goes to the store, whose script
 *           publishes the eviction to the other node, which fences it.
 *           Built with hiredis and redis-server in PATH only;
 *   live    within one hub, a displaced conn whose client reads: the
 *           graceful close, from the claim to the FIN seen by the client
 *           and to the clean close once the client answers with its own.
 *
 * Ghosts: the group pings every 10 ms of silence and the clients never
 * answer, so a holder left 300 ms without answering has a ping
 * outstanding (evidence ping_outstanding). Holders are made in batches of
 * BATCH identities, aged once, then displaced one at a time (unloaded
 * latency). The claim time is read on the claiming worker right before
 * vigil_conn_identify; the RST time in the displaced conn's close event
 * (emitted right after its close() with SO_LINGER {1,0}), on its own
 * worker; both CLOCK_MONOTONIC. The displaced client's socket is checked
 * for ECONNRESET (ghosts) or EOF (live).
 *
 * Usage: bench_takeover [--quick] [--takeovers N] [--json FILE]
 *        (N default 3000, --quick 1000). Numbers mean something in a
 *        Release build.
 */
#include "bench_common.h"

#include <netinet/tcp.h>

#include "vigil.h"

typedef struct bench {
  vigil_group *g;
  vigil_group *node[2]; /* the cluster scope's two nodes */
  uint64_t ups;         /* [atomic] directory_up events */
  int listener; /* makes the loopback pairs */
  uint64_t close_ns;  /* [atomic] the last takeover close */
  uint64_t closes;    /* [atomic] takeover closes seen */
  int failed;         /* [atomic] a worker-side call failed */
} bench;

static bench B;

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  (void)hub, (void)ud;
  if (ev->type == VIGIL_EV_DIRECTORY_UP)
    __atomic_add_fetch(&B.ups, 1, __ATOMIC_SEQ_CST);
  if (ev->type != VIGIL_EV_CLOSE || ev->reason != VIGIL_REASON_TAKEOVER)
    return;
  __atomic_store_n(&B.close_ns, bc_now_ns(), __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&B.closes, 1, __ATOMIC_SEQ_CST);
}

static int setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  (void)w, (void)hub, (void)ud;
  return VIGIL_OK;
}

typedef struct claim {
  int fd;            /* the server end to adopt */
  const char *id;
  uint64_t claim_ns; /* [atomic] */
  int done;          /* [atomic] */
} claim;

static void claim_fn(vigil_worker *w, void *arg) {
  claim *c = arg;
  vigil_hub *hub = vigil_worker_hub(w);
  vigil_conn *conn;
  int rc = hub ? vigil_adopt(hub, c->fd, NULL, &conn) : VIGIL_EINVAL;
  if (rc == VIGIL_OK) {
    uint64_t t = bc_now_ns();
    rc = vigil_conn_identify(conn, c->id, strlen(c->id));
    __atomic_store_n(&c->claim_ns, t, __ATOMIC_SEQ_CST);
  }
  if (rc != VIGIL_OK) __atomic_store_n(&B.failed, 1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
}

/* A connected loopback pair: *server and the client end it returns. */
static int loopback_pair(int *server) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(B.listener, (struct sockaddr *)&a, &len) != 0) return -1;
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, (struct sockaddr *)&a, len) != 0) {
    if (c >= 0) close(c);
    return -1;
  }
  *server = accept4(B.listener, NULL, NULL, SOCK_CLOEXEC);
  if (*server < 0) {
    close(c);
    return -1;
  }
  return c;
}

/* Waits (sleeping, so the workers keep both cores) until *v moves past
 * old, up to 2 s; 0 on timeout. */
static int wait_past(const uint64_t *v, uint64_t old) {
  double until = bc_now_ms() + 2000;
  struct timespec nap = {0, 20000};
  while (__atomic_load_n(v, __ATOMIC_SEQ_CST) <= old)
    if (bc_now_ms() > until)
      return 0;
    else
      nanosleep(&nap, NULL);
  return 1;
}

static int wait_done(const int *v) {
  double until = bc_now_ms() + 2000;
  struct timespec nap = {0, 20000};
  while (!__atomic_load_n(v, __ATOMIC_SEQ_CST))
    if (bc_now_ms() > until)
      return 0;
    else
      nanosleep(&nap, NULL);
  return 1;
}

/* The client end of a displaced conn saw the RST. */
static int was_reset(int fd) {
  char b[16];
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 1000) != 1) return 0;
  return recv(fd, b, sizeof b, MSG_DONTWAIT) < 0 && errno == ECONNRESET;
}

/* Claims on g's `worker` with a fresh pair; returns its client end, or
 * -1. */
static int claim_in(vigil_group *g, uint32_t worker, const char *id,
                    uint64_t *claim_ns) {
  claim c = {-1, id, 0, 0};
  int client = loopback_pair(&c.fd);
  if (client < 0) return -1;
  if (vigil_group_post(g, worker, claim_fn, &c) != VIGIL_OK ||
      !wait_done(&c.done)) {
    close(client);
    return -1;
  }
  *claim_ns = __atomic_load_n(&c.claim_ns, __ATOMIC_SEQ_CST);
  return client;
}

/* The same on the group's `worker`. */
static int claim_on(uint32_t worker, const char *id, uint64_t *claim_ns) {
  return claim_in(B.g, worker, id, claim_ns);
}

typedef struct result {
  double *us;
  size_t n;
  size_t resets;    /* displaced ghosts' clients that saw ECONNRESET */
} result;

#define BATCH 250
/* Past the 200 ms floor of "a ping outstanding" (takeover_class.h). */
#define AGE_MS 300

/* n ghost takeovers: holders on hg's `holder_worker`, claims on cg's
 * `claim_worker`. */
static int run_ghosts_in(vigil_group *hg, uint32_t holder_worker,
                         vigil_group *cg, uint32_t claim_worker, size_t n,
                         result *r) {
  r->us = calloc(n, sizeof *r->us);
  if (!r->us) return -1;
  int holders[BATCH], claimants[BATCH];
  char id[BATCH][32];
  while (r->n < n) {
    size_t k = n - r->n < BATCH ? n - r->n : BATCH;
    uint64_t t;
    for (size_t i = 0; i < k; i++) {
      snprintf(id[i], sizeof id[i], "device-%s%u-%zu", cg == B.g ? "" : "c",
               claim_worker, r->n + i);
      holders[i] = claim_in(hg, holder_worker, id[i], &t);
      if (holders[i] < 0) return -1;
    }
    /* (Across nodes, the holders' claims reach the store meanwhile.) */
    struct timespec age = {0, AGE_MS * 1000000L};
    nanosleep(&age, NULL);
    for (size_t i = 0; i < k; i++) {
      uint64_t before = __atomic_load_n(&B.closes, __ATOMIC_SEQ_CST);
      claimants[i] = claim_in(cg, claim_worker, id[i], &t);
      if (claimants[i] < 0 || !wait_past(&B.closes, before)) {
        fprintf(stderr, "takeover %zu did not complete\n", r->n);
        return -1;
      }
      uint64_t closed = __atomic_load_n(&B.close_ns, __ATOMIC_SEQ_CST);
      r->us[r->n++] = closed > t ? (double)(closed - t) / 1000.0 : 0;
      r->resets += (size_t)was_reset(holders[i]);
      close(holders[i]);
    }
    for (size_t i = 0; i < k; i++) close(claimants[i]);
  }
  return 0;
}

static int run_ghosts(uint32_t holder_worker, uint32_t claim_worker,
                      size_t n, result *r) {
  return run_ghosts_in(B.g, holder_worker, B.g, claim_worker, n, r);
}

/* Stops and frees a group (NULL is fine). */
static void group_end(vigil_group *g) {
  if (!g) return;
  vigil_group_stop(g, 1000);
  vigil_group_join(g);
  vigil_group_free(g);
}

/* The cluster scope: holders on one node, claims on the other (groups of
 * one worker with the template's policy) over a private redis-server.
 * skip gets why when it cannot run (then 0 is returned). */
static int run_cluster(const vigil_hub_options *template, size_t n,
                       result *r, char *skip, size_t len) {
#ifndef VIGIL_HAVE_REDIS
  (void)template, (void)n, (void)r;
  snprintf(skip, len, "built without hiredis");
  return 0;
#else
  uint16_t port;
  pid_t redis = bc_redis_start(&port);
  if (redis <= 0) {
    snprintf(skip, len, "cannot start redis-server");
    return 0;
  }
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%u", (unsigned)port);
  static const char *const names[2] = {"bench-a", "bench-b"};
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++) {
    vigil_cluster_options co;
    vigil_cluster_options_init(&co);
    co.url = url;
    co.node = names[k];
    vigil_hub_options ho = *template;
    ho.cluster = &co;
    vigil_group_options go;
    vigil_group_options_init(&go);
    go.hub = &ho;
    go.setup = setup;
    if (vigil_group_new(&go, &B.node[k]) != VIGIL_OK ||
        vigil_group_start(B.node[k]) != VIGIL_OK)
      rc = -1;
  }
  /* Both nodes' directories are up (redis-server starts meanwhile). */
  double until = bc_now_ms() + 10000;
  struct timespec nap = {0, 1000 * 1000};
  while (rc == 0 && __atomic_load_n(&B.ups, __ATOMIC_SEQ_CST) < 2 &&
         bc_now_ms() < until)
    nanosleep(&nap, NULL);
  if (rc == 0 && __atomic_load_n(&B.ups, __ATOMIC_SEQ_CST) < 2)
    snprintf(skip, len, "the nodes' directories did not come up");
  else if (rc == 0)
    rc = run_ghosts_in(B.node[0], 0, B.node[1], 0, n, r);
  group_end(B.node[0]);
  group_end(B.node[1]);
  kill(redis, SIGKILL);
  waitpid(redis, NULL, 0);
  return rc;
#endif
}

/* The client end of a displaced live conn saw EOF: the time, or 0. */
static uint64_t eof_at(int fd) {
  char b[256];
  double until = bc_now_ms() + 1000;
  while (bc_now_ms() < until) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    ssize_t got = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (got == 0) return bc_now_ns();
    if (got < 0 && errno != EAGAIN) return 0;
  }
  return 0;
}

typedef struct live_result {
  result fin;   /* claim -> EOF read by the displaced client */
  result close; /* claim -> clean close (the client answered our FIN) */
  size_t eofs;
} live_result;

/* n live takeovers within one hub, one at a time: each displaced client
 * reads its EOF and closes, as an MQTT client does. */
static int run_live(size_t n, live_result *r) {
  uint64_t t;
  int holder = claim_on(1, "device-live", &t);
  if (holder < 0) return -1;
  r->fin.us = calloc(n, sizeof *r->fin.us);
  r->close.us = calloc(n, sizeof *r->close.us);
  if (!r->fin.us || !r->close.us) return -1;
  for (size_t i = 0; i < n; i++) {
    uint64_t before = __atomic_load_n(&B.closes, __ATOMIC_SEQ_CST);
    int client = claim_on(1, "device-live", &t);
    if (client < 0) return -1;
    uint64_t eof = eof_at(holder);
    close(holder);
    if (!wait_past(&B.closes, before)) {
      fprintf(stderr, "live takeover %zu did not complete\n", i);
      return -1;
    }
    uint64_t closed = __atomic_load_n(&B.close_ns, __ATOMIC_SEQ_CST);
    if (eof) {
      r->eofs++;
      r->fin.us[r->fin.n++] = eof > t ? (double)(eof - t) / 1000.0 : 0;
    }
    r->close.us[r->close.n++] = closed > t ? (double)(closed - t) / 1000.0 : 0;
    holder = client;
  }
  close(holder);
  return 0;
}

static void print_stats(FILE *f, const char *name, result *r, int last) {
  bc_sort(r->us, r->n);
  fprintf(f,
          "  \"%s\": {\"n\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, "
          "\"max_us\": %.1f, \"reset_seen\": %zu}%s\n",
          name, r->n, bc_pct_sorted(r->us, r->n, 50),
          bc_pct_sorted(r->us, r->n, 99), r->n ? r->us[r->n - 1] : 0,
          r->resets, last ? "" : ",");
}

static double mean(const result *r) {
  double s = 0;
  for (size_t i = 0; i < r->n; i++) s += r->us[i];
  return r->n ? s / (double)r->n : 0;
}

int main(int argc, char **argv) {
  size_t n = 3000;
  const char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      n = 1000;
    else if (!strcmp(argv[i], "--takeovers") && i + 1 < argc)
      n = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc)
      json = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_takeover [--quick] [--takeovers N] "
              "[--json FILE]\n");
      return 2;
    }
  }
  if (n < 1) n = 1;
  signal(SIGPIPE, SIG_IGN);
  B.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (B.listener < 0 || bind(B.listener, (struct sockaddr *)&a, sizeof a) ||
      listen(B.listener, 64)) {
    perror("bench_takeover: listener");
    return 1;
  }
  vigil_policy pol;
  vigil_policy_init(&pol);
  pol.ping_interval_ms = 10; /* unanswered: ghosts once aged */
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.on_event = on_event;
  ho.policy = &pol;
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.workers = 2;
  go.hub = &ho;
  go.setup = setup;
  if (vigil_group_new(&go, &B.g) != VIGIL_OK ||
      vigil_group_start(B.g) != VIGIL_OK) {
    fprintf(stderr, "bench_takeover: no group\n");
    return 1;
  }
  result hub = {0}, worker = {0};
  live_result live = {{0}, {0}, 0};
  size_t nlive = n / 4 ? n / 4 : 1;
  double load = bc_loadavg1();
  int rc = run_ghosts(1, 1, n, &hub);
  if (rc == 0) rc = run_ghosts(0, 1, n, &worker);
  if (rc == 0) rc = run_live(nlive, &live);
  result cluster = {0};
  char cluster_skip[128] = "";
  if (rc == 0)
    rc = run_cluster(&ho, n, &cluster, cluster_skip, sizeof cluster_skip);
  vigil_stats st;
  vigil_group_stats(B.g, &st, NULL, 0);
  group_end(B.g);
  close(B.listener);
  if (rc != 0 || __atomic_load_n(&B.failed, __ATOMIC_SEQ_CST)) {
    fprintf(stderr, "bench_takeover: a takeover failed\n");
    return 1;
  }
  double hub_mean = mean(&hub), worker_mean = mean(&worker);
  double cluster_mean = mean(&cluster);
  bc_sort(worker.us, worker.n);
  double worker_p99 = bc_pct_sorted(worker.us, worker.n, 99);
  printf("takeover: %zu ghosts per scope, claim -> RST of the displaced "
         "conn\n", n);
  bc_sort(hub.us, hub.n);
  printf("  hub      p50 %.1f us  p99 %.1f us  max %.1f us\n",
         bc_pct_sorted(hub.us, hub.n, 50), bc_pct_sorted(hub.us, hub.n, 99),
         hub.us[hub.n - 1]);
  printf("  worker   p50 %.1f us  p99 %.1f us  max %.1f us  (target p99 <= "
         "1000 us: %s)\n",
         bc_pct_sorted(worker.us, worker.n, 50), worker_p99,
         worker.us[worker.n - 1], worker_p99 <= 1000 ? "met" : "NOT met");
  double cluster_p99 = 0;
  if (!cluster_skip[0]) {
    bc_sort(cluster.us, cluster.n);
    cluster_p99 = bc_pct_sorted(cluster.us, cluster.n, 99);
    printf("  cluster  p50 %.1f us  p99 %.1f us  max %.1f us  (target p99 <= "
           "5000 us: %s)\n",
           bc_pct_sorted(cluster.us, cluster.n, 50), cluster_p99,
           cluster.us[cluster.n - 1], cluster_p99 <= 5000 ? "met" : "NOT met");
  } else {
    printf("  cluster  skipped: %s\n", cluster_skip);
  }
  printf("  displaced clients that saw ECONNRESET: %zu + %zu + %zu of %zu\n",
         hub.resets, worker.resets, cluster.resets,
         2 * n + (cluster_skip[0] ? 0 : n));
  bc_sort(live.fin.us, live.fin.n);
  bc_sort(live.close.us, live.close.n);
  printf("  live     %zu within a hub: claim -> FIN at the client p50 %.1f us "
         "p99 %.1f us; -> clean close p50 %.1f us p99 %.1f us; EOF seen "
         "%zu of %zu\n",
         nlive, bc_pct_sorted(live.fin.us, live.fin.n, 50),
         bc_pct_sorted(live.fin.us, live.fin.n, 99),
         bc_pct_sorted(live.close.us, live.close.n, 50),
         bc_pct_sorted(live.close.us, live.close.n, 99), live.eofs, nlive);
  if (json) {
    FILE *f = fopen(json, "w");
    if (!f) {
      perror(json);
      return 1;
    }
    fprintf(f, "{\"takeover\": {\n  \"config\": {\"takeovers\": %zu, "
               "\"workers\": 2, \"loadavg_1m\": %.2f, \"what\": \"claim "
               "(vigil_conn_identify) to the displaced ghost's RST\"},\n",
            n, load);
    print_stats(f, "hub", &hub, 0);
    print_stats(f, "worker", &worker, 0);
    if (cluster_skip[0])
      fprintf(f, "  \"cluster\": {\"skipped\": \"%s\"},\n", cluster_skip);
    else
      print_stats(f, "cluster", &cluster, 0);
    print_stats(f, "live_claim_to_fin", &live.fin, 0);
    print_stats(f, "live_claim_to_clean_close", &live.close, 0);
    fprintf(f,
            "  \"mean_us\": {\"hub\": %.1f, \"worker\": %.1f, "
            "\"cluster\": %.1f},\n"
            "  \"group_takeovers\": {\"hub\": %llu, \"worker\": %llu},\n"
            "  \"targets\": {\"worker_p99_le_1ms\": %s, "
            "\"cluster_p99_le_5ms\": %s}\n}}\n",
            hub_mean, worker_mean, cluster_mean,
            (unsigned long long)st.takeovers_by_scope[VIGIL_SCOPE_HUB],
            (unsigned long long)st.takeovers_by_scope[VIGIL_SCOPE_WORKER],
            worker_p99 <= 1000 ? "true" : "false",
            cluster_skip[0] ? "null"
            : cluster_p99 <= 5000 ? "true" : "false");
    fclose(f);
  }
  free(hub.us);
  free(worker.us);
  free(live.fin.us);
  free(live.close.us);
  free(cluster.us);
  return 0;
}
