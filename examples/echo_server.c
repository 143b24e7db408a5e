/*
 * echo_server: the smallest useful vigil embedding.
 *
 * Echoes what each client sends, writes "PING\n" when the policy says a
 * ping is due, counts any received byte as life, and logs every vigil
 * event to stderr as one logfmt or JSON line. SIGINT/SIGTERM close all
 * connections gracefully (3 s deadline) and exit.
 *
 *   echo_server --listen 127.0.0.1:7000 --ping-interval 2000 \
 *       --dead-after 6000 --keepalive 10,5,3 --log logfmt
 *
 * With --tls-cert/--tls-key it speaks TLS (try `openssl s_client -connect
 * 127.0.0.1:7000`); --tls-ca verifies client certificates,
 * --require-client-cert makes them mandatory and --identity-from-cert
 * names each conn after its certificate's CN (takeover by certificate).
 * --metrics HOST:PORT serves Prometheus metrics at /metrics
 * (examples/metrics/metrics_http.h).
 *
 * With --workers N (N > 1) it runs a vigil group (vigil/group.h): N
 * threads, each with its own loop, hub and SO_REUSEPORT listener on the
 * same port, so the kernel spreads the clients over them. Each log line
 * then says worker=N. Echoing needs nothing from other workers, so
 * nothing crosses them (identities from certificates are the group's: a
 * takeover reaches a conn on any worker). --metrics serves the group's
 * metrics from the main thread.
 */
#include <ev.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linelog.h"
#include "cluster_flags.h"
#include "metrics_http.h"
#include "vigil.h"

static vigil_log_format log_format = VIGIL_LOG_LOGFMT;

/* Set before the hub or the workers start; read-only afterwards. */
static struct {
  char host[256];
  unsigned port;
  unsigned workers;
  SSL_CTX *tls;               /* NULL = plain TCP */
  vigil_tls_options tls_opts;
  uint16_t bound_port;        /* worker 0's port, joined by the others */
} cfg = {"127.0.0.1", 7000, 1, NULL, {0}, 0};

/* The log: stderr through linelog, one write per loop iteration; one
 * watcher per loop (worker i's in log_watch[i]; the single loop's in
 * log_watch[0]). */
static linelog_watcher log_watch[VIGIL_GROUP_MAX_WORKERS];

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  char line[1024];
  (void)hub;
  (void)ud;
  int n = vigil_event_format(ev, log_format, line, sizeof line);
  if (n >= 0)
    linelog_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  (void)ud;
  vigil_send(c, data, len); /* echo; any byte received already counts as life */
}

static void on_ping_due(vigil_conn *c, void *ud) {
  (void)ud;
  vigil_send(c, "PING\n", 5);
}

static void on_peer_closed(vigil_conn *c, void *ud) {
  (void)ud;
  vigil_close(c); /* nothing left to say: answer the peer's FIN now */
}

static void on_shutdown_done(vigil_hub *hub, void *ud) {
  (void)hub;
  ev_break((struct ev_loop *)ud, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  ev_signal_stop(loop, w);
  vigil_hub_shutdown(w->data, 3000, on_shutdown_done, loop);
}

/* --workers: the signal arrives on the main thread, whose loop only
 * waits for it; the workers stop on their own threads. */
static void on_group_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  ev_signal_stop(loop, w);
  vigil_group_stop(w->data, 3000);
  ev_break(loop, EVBREAK_ALL);
}

static const vigil_conn_callbacks callbacks = {.on_data = on_data,
                                               .on_ping_due = on_ping_due,
                                               .on_peer_closed =
                                                   on_peer_closed};

static int open_listener(vigil_hub *hub, unsigned port, int reuseport,
                         vigil_listener **out) {
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = cfg.host;
  lo.port = (uint16_t)port;
  lo.reuseport = reuseport;
  lo.adopt.callbacks = &callbacks;
  if (cfg.tls) {
    lo.adopt.tls_ctx = cfg.tls; /* must outlive the listeners */
    lo.adopt.tls = &cfg.tls_opts;
  }
  int rc = vigil_listen(hub, &lo, out);
  if (rc != VIGIL_OK)
    fprintf(stderr, "echo_server: cannot listen on %s:%u: %s\n", cfg.host,
            port, vigil_strerror(rc));
  return rc;
}

static void print_listening(vigil_listener *l) {
  printf("listening on %s:%u\n", cfg.host, (unsigned)vigil_listener_port(l));
  fflush(stdout);
}

/* Runs on each worker's thread, worker 0 first: it binds the port asked
 * for (0 = ephemeral), the others join the port it got. */
static int worker_setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  (void)ud;
  int first = vigil_worker_index(w) == 0;
  vigil_listener *l;
  int rc = open_listener(hub, first ? cfg.port : cfg.bound_port, 1, &l);
  if (rc == VIGIL_OK && first) {
    cfg.bound_port = vigil_listener_port(l);
    print_listening(l);
  }
  if (rc == VIGIL_OK)
    linelog_watch(&log_watch[vigil_worker_index(w)], vigil_hub_loop(hub));
  return rc;
}

/* After the worker's hub is gone: its last lines are written. */
static void worker_teardown(vigil_worker *w, void *ud) {
  (void)ud;
  linelog_unwatch(&log_watch[vigil_worker_index(w)]);
}

/* The workers, and on the main loop the group's /metrics (unless
 * mcfg->host is empty); returns the exit code. */
static int run_group(struct ev_loop *loop, const vigil_hub_options *ho,
                     const metrics_http_config *mcfg) {
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.workers = cfg.workers;
  go.hub = ho;
  go.setup = worker_setup;
  go.teardown = worker_teardown;
  vigil_group *g;
  int rc = vigil_group_new(&go, &g);
  if (rc == VIGIL_OK && (rc = vigil_group_start(g)) != VIGIL_OK)
    vigil_group_free(g);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "echo_server: workers: %s\n", vigil_strerror(rc));
    return 1;
  }
  metrics_http *metrics = NULL;
  char why[320];
  if (mcfg->host[0] &&
      metrics_http_start_group(loop, g, mcfg, &metrics, why, sizeof why) !=
          VIGIL_OK) {
    fprintf(stderr, "echo_server: %s\n", why);
    vigil_group_free(g);
    return 1;
  }
  if (metrics) {
    printf("metrics on http://%s/metrics\n", metrics_http_address(metrics));
    fflush(stdout);
  }
  ev_signal sigint, sigterm;
  ev_signal_init(&sigint, on_group_signal, SIGINT);
  ev_signal_init(&sigterm, on_group_signal, SIGTERM);
  sigint.data = sigterm.data = g;
  ev_signal_start(loop, &sigint);
  ev_signal_start(loop, &sigterm);
  ev_run(loop, 0);
  metrics_http_free(metrics);
  vigil_group_join(g);
  vigil_group_free(g);
  return 0;
}

static void usage_exit(const char *why, const char *arg) {
  fprintf(stderr,
          "echo_server: %s%s%s\n"
          "usage: echo_server [--listen HOST:PORT] [--ping-interval MS]\n"
          "  [--dead-after MS] [--keepalive IDLE,INTVL,CNT|off]\n"
          "  [--user-timeout MS|auto|off] [--drain-timeout MS]\n"
          "  [--close-wait-grace MS] [--log json|logfmt] [--workers N]\n"
          "  [--tls-cert FILE --tls-key FILE [--tls-ca FILE]\n"
          "   [--require-client-cert] [--identity-from-cert]]\n"
          "  [--metrics HOST:PORT [--metrics-timeout MS]]\n"
          "  [--cluster URL [--node NAME] [--cluster-prefix P]]\n"
          "--workers N: N threads (1..256), each its own loop and listener\n"
          "on the same port (SO_REUSEPORT); default 1\n"
          CLUSTER_FLAGS_USAGE,
          why, arg ? ": " : "", arg ? arg : "");
  exit(2);
}

static uint32_t parse_ms(const char *flag, const char *s) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || s[0] == '-' || v > VIGIL_MAX_DURATION_MS)
    usage_exit("bad number of milliseconds for", flag);
  return (uint32_t)v;
}

int main(int argc, char **argv) {
  const char *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
  int require_cert = 0, id_from_cert = 0;
  vigil_policy p;
  vigil_policy_init(&p);
  metrics_http_config mcfg;
  metrics_http_config_init(&mcfg);
  static cluster_flags cluster;
  cluster_flags_init(&cluster);
  char why[400];
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage_exit("usage", NULL);
    int mf = metrics_http_flag(&mcfg, f, v, why, sizeof why);
    if (mf == 0) mf = cluster_flags_parse(&cluster, f, v, why, sizeof why);
    if (mf < 0) usage_exit(why, NULL);
    if (mf > 0) {
      i++;
      continue;
    }
    if (!strcmp(f, "--require-client-cert")) { /* flags without value */
      require_cert = 1;
      continue;
    }
    if (!strcmp(f, "--identity-from-cert")) {
      id_from_cert = 1;
      continue;
    }
    if (!v) usage_exit("missing value for", f);
    i++;
    if (!strcmp(f, "--listen")) {
      const char *colon = strrchr(v, ':');
      char *end;
      if (!colon || colon == v || (size_t)(colon - v) >= sizeof cfg.host)
        usage_exit("expected HOST:PORT for --listen, got", v);
      cfg.port = (unsigned)strtoul(colon + 1, &end, 10);
      if (!colon[1] || *end || cfg.port > 65535) usage_exit("bad port in", v);
      memcpy(cfg.host, v, (size_t)(colon - v));
      cfg.host[colon - v] = '\0';
    } else if (!strcmp(f, "--workers")) {
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      if (!*v || *end || v[0] == '-' || n < 1 || n > VIGIL_GROUP_MAX_WORKERS)
        usage_exit("--workers takes 1..256, got", v);
      cfg.workers = (unsigned)n;
    } else if (!strcmp(f, "--ping-interval")) {
      p.ping_interval_ms = parse_ms(f, v);
    } else if (!strcmp(f, "--dead-after")) {
      p.dead_after_ms = parse_ms(f, v);
    } else if (!strcmp(f, "--drain-timeout")) {
      p.drain_timeout_ms = parse_ms(f, v);
    } else if (!strcmp(f, "--close-wait-grace")) {
      p.close_wait_grace_ms = parse_ms(f, v);
    } else if (!strcmp(f, "--keepalive")) {
      if (!strcmp(v, "off")) p.keepalive = 0;
      else if (sscanf(v, "%d,%d,%d", &p.keepalive_idle_s, &p.keepalive_intvl_s,
                      &p.keepalive_cnt) != 3)
        usage_exit("expected IDLE,INTVL,CNT for --keepalive, got", v);
    } else if (!strcmp(f, "--user-timeout")) {
      if (!strcmp(v, "auto")) p.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
      else if (!strcmp(v, "off")) p.user_timeout_ms = VIGIL_USER_TIMEOUT_OFF;
      else p.user_timeout_ms = parse_ms(f, v);
    } else if (!strcmp(f, "--tls-cert")) {
      tls_cert = v;
    } else if (!strcmp(f, "--tls-key")) {
      tls_key = v;
    } else if (!strcmp(f, "--tls-ca")) {
      tls_ca = v;
    } else if (!strcmp(f, "--log")) {
      if (!strcmp(v, "json")) log_format = VIGIL_LOG_JSON;
      else if (strcmp(v, "logfmt")) usage_exit("--log takes json or logfmt, got", v);
    } else {
      usage_exit("unknown flag", f);
    }
  }
  if (vigil_policy_validate(&p, why, sizeof why) != VIGIL_OK)
    usage_exit(why, NULL);
  int bad;
  const vigil_cluster_options *co =
      cluster_flags_options(&cluster, &bad, why, sizeof why);
  if (bad) usage_exit(why, NULL);

  vigil_tls_options_init(&cfg.tls_opts);
  if (id_from_cert) cfg.tls_opts.identity_from = VIGIL_TLS_ID_CN;
  if ((tls_cert || tls_key) &&
      vigil_tls_server_ctx_new(tls_cert, tls_key, tls_ca, require_cert, NULL,
                               &cfg.tls, why, sizeof why) != VIGIL_OK)
    usage_exit(why, NULL);
  signal(SIGPIPE, SIG_IGN);
  linelog_open(2);

  struct ev_loop *loop = ev_default_loop(0);
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &p;
  ho.on_event = on_event; /* with --workers, on every worker's thread */
  ho.cluster = co;        /* --cluster: every worker gets its own link */
  if (cfg.workers > 1) {
    int rc = run_group(loop, &ho, &mcfg);
    SSL_CTX_free(cfg.tls);
    return rc;
  }
  vigil_hub *hub;
  int rc = vigil_hub_new(loop, &ho, &hub);
  if (rc != VIGIL_OK) usage_exit(vigil_strerror(rc), NULL);
  vigil_listener *l;
  if (open_listener(hub, cfg.port, 0, &l) != VIGIL_OK) return 1;
  print_listening(l);
  linelog_watch(&log_watch[0], loop);
  metrics_http *metrics = NULL;
  if (mcfg.host[0]) {
    if (metrics_http_start(hub, &mcfg, &metrics, why, sizeof why) != VIGIL_OK) {
      fprintf(stderr, "echo_server: %s\n", why);
      return 1;
    }
    printf("metrics on http://%s/metrics\n", metrics_http_address(metrics));
    fflush(stdout);
  }

  ev_signal sigint, sigterm;
  ev_signal_init(&sigint, on_signal, SIGINT);
  ev_signal_init(&sigterm, on_signal, SIGTERM);
  sigint.data = sigterm.data = hub;
  ev_signal_start(loop, &sigint);
  ev_signal_start(loop, &sigterm);
  ev_run(loop, 0);
  vigil_hub_free(hub);
  metrics_http_free(metrics); /* after the hub: its conns were closed */
  linelog_unwatch(&log_watch[0]);
  SSL_CTX_free(cfg.tls);
  return 0;
}
