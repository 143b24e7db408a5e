/*
 * bench_tls: what a TLS handshake costs the server, full vs resumed.
 *
 * A fleet of devices that reconnects after a network blip makes the
 * server redo its public-key work once per device unless sessions are
 * resumed. This bench measures the server's CPU time per connection for
 * three kinds of connection over loopback:
 *
 *   plain    TCP accept + adopt + one byte + close (the baseline)
 *   full     the same over TLS with a full handshake
 *   resumed  the same over TLS resuming the previous connection's session
 *            (TLS 1.3 ticket / TLS 1.2 ticket, as vigil_tls_server_ctx_new
 *            sets up by default)
 *
 * The server is a vigil hub with two listeners in this process's main
 * thread; a forked client process connects one connection at a time with
 * plain OpenSSL and keeps the newest session like vigil_tls_session does.
 * The server's CPU is CLOCK_THREAD_CPUTIME_ID of the loop thread over a
 * phase of N connections (the loop sleeps while the client works, so only
 * the server's own work is charged), divided by N. The TLS cost of a
 * handshake is the phase's cost minus the plain baseline; the ratio
 * full/resumed of those is the number to watch (target >= 3).
 *
 * Cases: server key RSA-2048 and EC P-256, TLS 1.3 and TLS 1.2. TLS 1.3
 * resumption still runs an (EC)DHE exchange (psk_dhe_ke, for forward
 * secrecy), so it saves the certificate signature, not the key exchange;
 * TLS 1.2 resumption skips both.
 *
 * Usage: bench_tls [--quick] [--n N] [--reps R] [--json FILE]
 *   --quick: N = 200, R = 3 (a few seconds); default N = 1000, R = 5.
 * JSON: {"tls": {"n": N, "reps": R, "cases": [{...}, ...]}}; per case the
 * medians over the reps, in microseconds of server CPU per connection.
 */
#include <ev.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "bench_common.h"
#include "vigil.h"

#define TARGET_RATIO 3.0
#define PHASE_TIMEOUT_S 120.0

enum { PLAIN = 0, FULL = 1, RESUMED = 2, NPHASES = 3 };
static const char *const phase_names[NPHASES] = {"plain", "full", "resumed"};

typedef struct tls_case {
  const char *key;  /* "rsa2048" or "p256" */
  int version;      /* client's max version */
  const char *vname;
} tls_case;

typedef struct server {
  struct ev_loop *loop;
  vigil_hub *hub;
  vigil_listener *plain, *tls;
  long closed, target;
  ev_timer guard;
  int timed_out;
} server;

/* ---- certificate for the case (self-signed; the client does not
 * verify: only the server's cost is measured) ---- */

static int write_cert(const char *dir, const char *key_type, char *cert,
                      char *key, size_t cap) {
  EVP_PKEY *k = strcmp(key_type, "rsa2048") == 0 ? EVP_RSA_gen(2048)
                                                 : EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (!k || !x) return -1;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, n);
  if (!X509_sign(x, k, EVP_sha256())) return -1;
  snprintf(cert, cap, "%s/%s.pem", dir, key_type);
  snprintf(key, cap, "%s/%s.key", dir, key_type);
  FILE *fc = fopen(cert, "w"), *fk = fopen(key, "w");
  int ok = fc && fk && PEM_write_X509(fc, x) &&
           PEM_write_PrivateKey(fk, k, NULL, NULL, 0, NULL, NULL);
  if (fc) fclose(fc);
  if (fk) fclose(fk);
  X509_free(x);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

/* ---- client process ---- */

static int connect_port(uint16_t port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* One connection of a phase; returns 1 resumed, 0 not, -1 failed. */
static int client_once(int phase, uint16_t plain_port, uint16_t tls_port,
                       SSL_CTX *ctx, SSL_SESSION **sess) {
  int fd = connect_port(phase == PLAIN ? plain_port : tls_port);
  if (fd < 0) return -1;
  char b;
  int resumed = 0, ok = 0;
  if (phase == PLAIN) {
    ok = read(fd, &b, 1) == 1;
  } else {
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (phase == RESUMED && *sess) SSL_set_session(ssl, *sess);
    /* The server's byte comes after its TLS 1.3 ticket: once it is read,
     * the session is resumable. */
    if (SSL_connect(ssl) == 1 && SSL_read(ssl, &b, 1) == 1) {
      ok = 1;
      resumed = SSL_session_reused(ssl);
      SSL_SESSION *s = SSL_get1_session(ssl);
      if (s) {
        if (*sess) SSL_SESSION_free(*sess);
        *sess = s;
      }
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
  }
  close(fd);
  return ok ? resumed : -1;
}

/* Runs phases on command ("<phase> <n>\n" on cmd), answers
 * "<resumed> <failed>\n" on rep. Never returns. */
static void client_child(const tls_case *tc, uint16_t plain_port,
                         uint16_t tls_port, int cmd, int rep) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) _exit(3);
  SSL_CTX_set_max_proto_version(ctx, tc->version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_SESSION *sess = NULL;
  FILE *in = fdopen(cmd, "r");
  int phase, n;
  while (in && fscanf(in, "%d %d", &phase, &n) == 2) {
    int resumed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
      int r = client_once(phase, plain_port, tls_port, ctx, &sess);
      if (r < 0) failed++;
      else resumed += r;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%d %d\n", resumed, failed);
    if (write(rep, line, (size_t)len) != len) _exit(4);
  }
  _exit(0);
}

/* ---- server ---- */

static void on_data(vigil_conn *c, const void *d, size_t n, void *ud) {
  (void)c, (void)d, (void)n, (void)ud;
}

static void on_peer_closed(vigil_conn *c, void *ud) {
  (void)ud;
  vigil_close(c);
}

static void on_close(vigil_conn *c, vigil_reason r, void *ud) {
  server *s = ud;
  (void)c, (void)r;
  if (++s->closed >= s->target) ev_break(s->loop, EVBREAK_ONE);
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l, (void)ud;
  vigil_send(c, "k", 1); /* TLS: goes out once the handshake is done */
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  server *s = w->data;
  (void)revents;
  s->timed_out = 1;
  ev_break(loop, EVBREAK_ONE);
}

static double thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int start_server(server *s, SSL_CTX *ctx) {
  static const vigil_conn_callbacks cb = {.on_data = on_data,
                                          .on_peer_closed = on_peer_closed,
                                          .on_close = on_close};
  memset(s, 0, sizeof *s);
  s->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  if (!s->loop || vigil_hub_new(s->loop, &ho, &s->hub) != VIGIL_OK) return -1;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = &cb;
  lo.adopt.user_data = s;
  lo.on_accept = on_accept;
  if (vigil_listen(s->hub, &lo, &s->plain) != VIGIL_OK) return -1;
  lo.adopt.tls_ctx = ctx;
  if (vigil_listen(s->hub, &lo, &s->tls) != VIGIL_OK) return -1;
  ev_timer_init(&s->guard, guard_cb, PHASE_TIMEOUT_S, 0.0);
  s->guard.data = s;
  return 0;
}

typedef struct case_result {
  double us[NPHASES];       /* median server CPU per connection */
  double wall_ms[NPHASES];  /* median wall time of a phase */
  long resumed, failed;     /* over all resumed phases */
  double ratio, ratio_raw;
} case_result;

static int run_case(const tls_case *tc, const char *dir, int n, int reps,
                    case_result *out) {
  char cert[256], key[256], err[256];
  memset(out, 0, sizeof *out);
  if (write_cert(dir, tc->key, cert, key, sizeof cert) != 0) return -1;
  SSL_CTX *ctx = NULL;
  if (vigil_tls_server_ctx_new(cert, key, NULL, 0, NULL, &ctx, err,
                               sizeof err) != VIGIL_OK) {
    fprintf(stderr, "bench_tls: %s\n", err);
    return -1;
  }
  server s;
  if (start_server(&s, ctx) != 0) return -1;
  int cmd[2], rep[2];
  if (pipe(cmd) || pipe(rep)) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(cmd[1]);
    close(rep[0]);
    client_child(tc, vigil_listener_port(s.plain), vigil_listener_port(s.tls),
                 cmd[0], rep[1]);
  }
  close(cmd[0]);
  close(rep[1]);
  FILE *replies = fdopen(rep[0], "r");
  double *cpu = calloc((size_t)reps * NPHASES, sizeof *cpu);
  double *wall = calloc((size_t)reps * NPHASES, sizeof *wall);
  int rc = 0;
  for (int r = 0; r < reps && rc == 0; r++) {
    for (int ph = 0; ph < NPHASES && rc == 0; ph++) {
      s.closed = 0;
      s.target = n;
      char line[32];
      int len = snprintf(line, sizeof line, "%d %d\n", ph, n);
      double c0 = thread_cpu_ns(), w0 = bc_now_ms();
      if (write(cmd[1], line, (size_t)len) != len) rc = -1;
      ev_timer_again(s.loop, &s.guard);
      ev_run(s.loop, 0);
      ev_timer_stop(s.loop, &s.guard);
      cpu[r * NPHASES + ph] = (thread_cpu_ns() - c0) / 1e3 / n;
      wall[r * NPHASES + ph] = bc_now_ms() - w0;
      int resumed, failed;
      if (s.timed_out || !replies ||
          fscanf(replies, "%d %d", &resumed, &failed) != 2) {
        fprintf(stderr, "bench_tls: phase %s stalled\n", phase_names[ph]);
        rc = -1;
        break;
      }
      out->failed += failed;
      if (ph == RESUMED) out->resumed += resumed;
    }
  }
  close(cmd[1]); /* the child's fscanf ends: it exits */
  waitpid(pid, NULL, 0);
  if (replies) fclose(replies);
  for (int ph = 0; ph < NPHASES; ph++) {
    double v[64], w[64];
    int m = reps < 64 ? reps : 64;
    for (int r = 0; r < m; r++) {
      v[r] = cpu[r * NPHASES + ph];
      w[r] = wall[r * NPHASES + ph];
    }
    bc_sort(v, (size_t)m);
    bc_sort(w, (size_t)m);
    out->us[ph] = bc_median_sorted(v, (size_t)m);
    out->wall_ms[ph] = bc_median_sorted(w, (size_t)m);
  }
  double full = out->us[FULL] - out->us[PLAIN];
  double res = out->us[RESUMED] - out->us[PLAIN];
  out->ratio = res > 0 ? full / res : 0;
  out->ratio_raw = out->us[RESUMED] > 0 ? out->us[FULL] / out->us[RESUMED] : 0;
  free(cpu);
  free(wall);
  vigil_hub_free(s.hub);
  ev_run(s.loop, EVRUN_NOWAIT);
  ev_loop_destroy(s.loop);
  SSL_CTX_free(ctx);
  return rc;
}

int main(int argc, char **argv) {
  int n = 1000, reps = 5;
  const char *json = NULL, *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      n = 200;
      reps = 3;
    } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
      n = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
      json = argv[++i];
    } else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
      only = argv[++i]; /* profiling one key type */
    } else {
      fprintf(stderr, "usage: bench_tls [--quick] [--n N] [--reps R] "
                      "[--key rsa2048|p256] [--json FILE]\n");
      return 2;
    }
  }
  if (n < 1 || n > 100000 || reps < 1 || reps > 64) {
    fprintf(stderr, "bench_tls: --n 1..100000, --reps 1..64\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char dir[] = "/tmp/vigil-bench-tls-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  static const tls_case cases[] = {
      {"rsa2048", TLS1_3_VERSION, "TLSv1.3"},
      {"p256", TLS1_3_VERSION, "TLSv1.3"},
      {"rsa2048", TLS1_2_VERSION, "TLSv1.2"},
      {"p256", TLS1_2_VERSION, "TLSv1.2"},
  };
  enum { NCASES = sizeof cases / sizeof cases[0] };
  case_result res[NCASES];
  int rc = 0;
  printf("%-8s %-8s %9s %9s %11s %9s %9s %8s\n", "key", "version",
         "plain_us", "full_us", "resumed_us", "full_tls", "res_tls", "ratio");
  int ran[NCASES] = {0};
  for (int i = 0; i < NCASES && rc == 0; i++) {
    if (only && strcmp(only, cases[i].key) != 0) continue;
    ran[i] = 1;
    rc = run_case(&cases[i], dir, n, reps, &res[i]);
    const case_result *r = &res[i];
    printf("%-8s %-8s %9.1f %9.1f %11.1f %9.1f %9.1f %7.1fx%s\n",
           cases[i].key, cases[i].vname, r->us[PLAIN], r->us[FULL],
           r->us[RESUMED], r->us[FULL] - r->us[PLAIN],
           r->us[RESUMED] - r->us[PLAIN], r->ratio,
           r->resumed == (long)n * reps ? "" : "  (not all resumed!)");
    fflush(stdout);
  }
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_tls: could not remove %s\n", dir);
  if (rc != 0) return 1;
  printf("load average (1 min): %.2f\n", bc_loadavg1());
  if (!json) return 0;
  FILE *f = fopen(json, "w");
  if (!f) {
    perror(json);
    return 1;
  }
  fprintf(f, "{\"tls\": {\"n\": %d, \"reps\": %d, \"unit\": \"us server "
             "CPU per connection (median of reps)\", \"target_ratio\": %.1f, "
             "\"loadavg1\": %.2f, \"cases\": [",
          n, reps, TARGET_RATIO, bc_loadavg1());
  for (int i = 0, first = 1; i < NCASES; i++) {
    if (!ran[i]) continue;
    const case_result *r = &res[i];
    fprintf(f,
            "%s\n  {\"key\": \"%s\", \"version\": \"%s\", \"plain_us\": %.2f, "
            "\"full_us\": %.2f, \"resumed_us\": %.2f, \"full_tls_us\": %.2f, "
            "\"resumed_tls_us\": %.2f, \"ratio\": %.2f, \"ratio_raw\": %.2f, "
            "\"resumed\": %ld, \"failed\": %ld, \"meets_target\": %s}",
            first ? "" : ",", cases[i].key, cases[i].vname, r->us[PLAIN],
            r->us[FULL], r->us[RESUMED], r->us[FULL] - r->us[PLAIN],
            r->us[RESUMED] - r->us[PLAIN], r->ratio, r->ratio_raw, r->resumed,
            r->failed, r->ratio >= TARGET_RATIO ? "true" : "false");
    first = 0;
  }
  fprintf(f, "\n]}}\n");
  fclose(f);
  return 0;
}
