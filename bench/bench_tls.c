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
 *   nodhe    TLS 1.3 only: resumed, with resume_without_dhe on the server
 *            context and SSL_OP_ALLOW_NO_DHE_KEX on the client (what
 *            vigil_tls_client_ctx_new sets for that option), so the
 *            resumption is psk_ke: no (EC)DHE, no forward secrecy for
 *            resumed sessions (see include/vigil/tls.h)
 *
 * The server is a vigil hub with three listeners (plain, TLS, TLS with
 * resume_without_dhe) in this process's main thread; a forked client
 * process connects one connection at a time with plain OpenSSL and keeps
 * the newest session per listener like vigil_tls_session does. Before the
 * timed phases one untimed nodhe connection primes its session, so every
 * timed nodhe connection resumes; the client checks that none of their
 * ServerHellos carried a key share.
 * The server's CPU is CLOCK_THREAD_CPUTIME_ID of the loop thread over a
 * phase of N connections (the loop sleeps while the client works, so only
 * the server's own work is charged), divided by N. The TLS cost of a
 * handshake is the phase's cost minus the plain baseline; the ratios
 * full/resumed and full/nodhe of those are the numbers to watch (target
 * >= 3).
 *
 * Cases: server key RSA-2048 and EC P-256, TLS 1.3 and TLS 1.2. TLS 1.3
 * resumption by default still runs an (EC)DHE exchange (psk_dhe_ke, for
 * forward secrecy), so it saves the certificate signature, not the key
 * exchange; nodhe skips both, as TLS 1.2 resumption does.
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

enum { PLAIN = 0, FULL = 1, RESUMED = 2, NODHE = 3, NPHASES = 4 };
static const char *const phase_names[NPHASES] = {"plain", "full", "resumed",
                                                 "nodhe"};

typedef struct tls_case {
  const char *key;  /* "rsa2048" or "p256" */
  int version;      /* client's max version */
  const char *vname;
} tls_case;

typedef struct server {
  struct ev_loop *loop;
  vigil_hub *hub;
  vigil_listener *plain, *tls, *nodhe; /* nodhe: NULL for TLS 1.2 */
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

/* Client message callback: counts ServerHellos that carry a key_share
 * (extension 51), i.e. resumptions that still ran (EC)DHE. */
static long key_share_hellos;

static void client_msg(int write_p, int version, int content_type,
                       const void *buf, size_t len, SSL *ssl, void *arg) {
  const unsigned char *p = buf, *end = p + len;
  (void)version, (void)ssl, (void)arg;
  if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 4 + 2 + 32 + 1 ||
      p[0] != SSL3_MT_SERVER_HELLO)
    return;
  p += 4 + 2 + 32;
  if ((size_t)(end - p) < 1u + p[0] + 2 + 1 + 2) return;
  p += 1 + p[0] + 2 + 1; /* session id, cipher suite, compression */
  const unsigned char *ext_end = p + 2 + ((size_t)p[0] << 8 | p[1]);
  if (ext_end > end) return;
  for (p += 2; ext_end - p >= 4; p += 4 + ((size_t)p[2] << 8 | p[3]))
    if (p[0] == 0 && p[1] == 51) key_share_hellos++;
}

/* One connection of a phase; returns 1 resumed, 0 not, -1 failed. */
static int client_once(int phase, uint16_t port, SSL_CTX *ctx,
                       SSL_SESSION **sess) {
  int fd = connect_port(port);
  if (fd < 0) return -1;
  char b;
  int resumed = 0, ok = 0;
  if (phase == PLAIN) {
    ok = read(fd, &b, 1) == 1;
  } else {
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (phase != FULL && *sess) SSL_set_session(ssl, *sess);
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
 * "<resumed> <failed> <key_share_hellos>\n" on rep. ports[] is indexed
 * by phase. Never returns. */
static void client_child(const tls_case *tc, const uint16_t *ports, int cmd,
                         int rep) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX *nodhe = SSL_CTX_new(TLS_client_method());
  if (!ctx || !nodhe) _exit(3);
  SSL_CTX_set_max_proto_version(ctx, tc->version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_max_proto_version(nodhe, tc->version);
  SSL_CTX_set_verify(nodhe, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_options(nodhe, SSL_OP_ALLOW_NO_DHE_KEX);
  SSL_CTX_set_msg_callback(nodhe, client_msg);
  SSL_SESSION *sess = NULL, *sess_nodhe = NULL;
  FILE *in = fdopen(cmd, "r");
  int phase, n;
  while (in && fscanf(in, "%d %d", &phase, &n) == 2 && phase >= 0 &&
         phase < NPHASES) {
    int resumed = 0, failed = 0;
    key_share_hellos = 0;
    for (int i = 0; i < n; i++) {
      int r = phase == NODHE
                  ? client_once(phase, ports[phase], nodhe, &sess_nodhe)
                  : client_once(phase, ports[phase], ctx, &sess);
      if (r < 0) failed++;
      else resumed += r;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%d %d %ld\n", resumed, failed,
                       key_share_hellos);
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

static int start_server(server *s, SSL_CTX *ctx, SSL_CTX *nodhe) {
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
  lo.adopt.tls_ctx = nodhe;
  if (nodhe && vigil_listen(s->hub, &lo, &s->nodhe) != VIGIL_OK) return -1;
  ev_timer_init(&s->guard, guard_cb, PHASE_TIMEOUT_S, 0.0);
  s->guard.data = s;
  return 0;
}

typedef struct case_result {
  int nodhe;                /* the nodhe phase ran (TLS 1.3) */
  double us[NPHASES];       /* median server CPU per connection */
  double wall_ms[NPHASES];  /* median wall time of a phase */
  long resumed, failed;     /* resumed: over all resumed phases */
  long resumed_nodhe;       /* over all nodhe phases */
  long nodhe_key_shares;    /* nodhe ServerHellos with a key share */
  double ratio, ratio_raw, ratio_nodhe;
} case_result;

/* Runs one phase of n connections on the server loop; returns the
 * server's thread CPU in ns, or < 0 if it stalled. Reads the client's
 * answer into resumed/failed/key_shares. */
static double run_phase(server *s, int cmd, FILE *replies, int ph, int n,
                        int *resumed, int *failed, long *key_shares) {
  s->closed = 0;
  s->target = n;
  char line[32];
  int len = snprintf(line, sizeof line, "%d %d\n", ph, n);
  double c0 = thread_cpu_ns();
  if (write(cmd, line, (size_t)len) != len) return -1;
  ev_timer_again(s->loop, &s->guard);
  ev_run(s->loop, 0);
  ev_timer_stop(s->loop, &s->guard);
  double cpu = thread_cpu_ns() - c0;
  if (s->timed_out || !replies ||
      fscanf(replies, "%d %d %ld", resumed, failed, key_shares) != 3) {
    fprintf(stderr, "bench_tls: phase %s stalled\n", phase_names[ph]);
    return -1;
  }
  return cpu;
}

/* Server contexts for the case: default, and resume_without_dhe for
 * TLS 1.3 (*nodhe stays NULL for TLS 1.2). */
static int make_ctxs(const tls_case *tc, const char *cert, const char *key,
                     SSL_CTX **ctx, SSL_CTX **nodhe) {
  char err[256];
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  *ctx = *nodhe = NULL;
  if (vigil_tls_server_ctx_new(cert, key, NULL, 0, &co, ctx, err,
                               sizeof err) != VIGIL_OK) {
    fprintf(stderr, "bench_tls: %s\n", err);
    return -1;
  }
  if (tc->version != TLS1_3_VERSION) return 0;
  co.resume_without_dhe = 1;
  if (vigil_tls_server_ctx_new(cert, key, NULL, 0, &co, nodhe, err,
                               sizeof err) != VIGIL_OK) {
    fprintf(stderr, "bench_tls: %s\n", err);
    return -1;
  }
  return 0;
}

static int run_case(const tls_case *tc, const char *dir, int n, int reps,
                    case_result *out) {
  char cert[256], key[256];
  memset(out, 0, sizeof *out);
  if (write_cert(dir, tc->key, cert, key, sizeof cert) != 0) return -1;
  SSL_CTX *ctx, *nodhe_ctx;
  if (make_ctxs(tc, cert, key, &ctx, &nodhe_ctx) != 0) return -1;
  out->nodhe = nodhe_ctx != NULL;
  int nph = out->nodhe ? NPHASES : NODHE;
  server s;
  if (start_server(&s, ctx, nodhe_ctx) != 0) return -1;
  uint16_t ports[NPHASES] = {
      vigil_listener_port(s.plain), vigil_listener_port(s.tls),
      vigil_listener_port(s.tls), s.nodhe ? vigil_listener_port(s.nodhe) : 0};
  int cmd[2], rep[2];
  if (pipe(cmd) || pipe(rep)) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(cmd[1]);
    close(rep[0]);
    client_child(tc, ports, cmd[0], rep[1]);
  }
  close(cmd[0]);
  close(rep[1]);
  FILE *replies = fdopen(rep[0], "r");
  double *cpu = calloc((size_t)reps * NPHASES, sizeof *cpu);
  double *wall = calloc((size_t)reps * NPHASES, sizeof *wall);
  int rc = 0, resumed, failed;
  long key_shares;
  /* Untimed: gives the nodhe client a session to resume from. */
  if (out->nodhe && run_phase(&s, cmd[1], replies, NODHE, 1, &resumed,
                              &failed, &key_shares) < 0)
    rc = -1;
  for (int r = 0; r < reps && rc == 0; r++) {
    for (int ph = 0; ph < nph && rc == 0; ph++) {
      double w0 = bc_now_ms();
      double ns = run_phase(&s, cmd[1], replies, ph, n, &resumed, &failed,
                            &key_shares);
      if (ns < 0) {
        rc = -1;
        break;
      }
      cpu[r * NPHASES + ph] = ns / 1e3 / n;
      wall[r * NPHASES + ph] = bc_now_ms() - w0;
      out->failed += failed;
      if (ph == RESUMED) out->resumed += resumed;
      if (ph == NODHE) {
        out->resumed_nodhe += resumed;
        out->nodhe_key_shares += key_shares;
      }
    }
  }
  close(cmd[1]); /* the child's fscanf ends: it exits */
  waitpid(pid, NULL, 0);
  if (replies) fclose(replies);
  for (int ph = 0; ph < nph; ph++) {
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
  double nd = out->us[NODHE] - out->us[PLAIN];
  out->ratio = res > 0 ? full / res : 0;
  out->ratio_raw = out->us[RESUMED] > 0 ? out->us[FULL] / out->us[RESUMED] : 0;
  out->ratio_nodhe = out->nodhe && nd > 0 ? full / nd : 0;
  free(cpu);
  free(wall);
  vigil_hub_free(s.hub);
  ev_run(s.loop, EVRUN_NOWAIT);
  ev_loop_destroy(s.loop);
  SSL_CTX_free(ctx);
  SSL_CTX_free(nodhe_ctx);
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
  printf("%-8s %-8s %9s %9s %11s %9s %9s %9s %9s %8s %8s\n", "key",
         "version", "plain_us", "full_us", "resumed_us", "nodhe_us",
         "full_tls", "res_tls", "nodhe_tls", "ratio", "r_nodhe");
  int ran[NCASES] = {0};
  for (int i = 0; i < NCASES && rc == 0; i++) {
    if (only && strcmp(only, cases[i].key) != 0) continue;
    ran[i] = 1;
    rc = run_case(&cases[i], dir, n, reps, &res[i]);
    const case_result *r = &res[i];
    char nd_us[16] = "-", nd_tls[16] = "-", nd_ratio[16] = "-";
    if (r->nodhe) {
      snprintf(nd_us, sizeof nd_us, "%.1f", r->us[NODHE]);
      snprintf(nd_tls, sizeof nd_tls, "%.1f", r->us[NODHE] - r->us[PLAIN]);
      snprintf(nd_ratio, sizeof nd_ratio, "%.1fx", r->ratio_nodhe);
    }
    int nodhe_ok = !r->nodhe || (r->resumed_nodhe == (long)n * reps &&
                                 r->nodhe_key_shares == 0);
    printf("%-8s %-8s %9.1f %9.1f %11.1f %9s %9.1f %9.1f %9s %7.1fx %8s%s%s\n",
           cases[i].key, cases[i].vname, r->us[PLAIN], r->us[FULL],
           r->us[RESUMED], nd_us, r->us[FULL] - r->us[PLAIN],
           r->us[RESUMED] - r->us[PLAIN], nd_tls, r->ratio, nd_ratio,
           r->resumed == (long)n * reps ? "" : "  (not all resumed!)",
           nodhe_ok ? "" : "  (nodhe: not all resumed without a key share!)");
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
            "\"resumed\": %ld, \"failed\": %ld, \"meets_target\": %s",
            first ? "" : ",", cases[i].key, cases[i].vname, r->us[PLAIN],
            r->us[FULL], r->us[RESUMED], r->us[FULL] - r->us[PLAIN],
            r->us[RESUMED] - r->us[PLAIN], r->ratio, r->ratio_raw, r->resumed,
            r->failed, r->ratio >= TARGET_RATIO ? "true" : "false");
    if (r->nodhe)
      fprintf(f,
              ", \"nodhe_us\": %.2f, \"nodhe_tls_us\": %.2f, "
              "\"ratio_nodhe\": %.2f, \"resumed_nodhe\": %ld, "
              "\"nodhe_key_shares\": %ld, \"meets_target_nodhe\": %s",
              r->us[NODHE], r->us[NODHE] - r->us[PLAIN], r->ratio_nodhe,
              r->resumed_nodhe, r->nodhe_key_shares,
              r->ratio_nodhe >= TARGET_RATIO ? "true" : "false");
    fputc('}', f);
    first = 0;
  }
  fprintf(f, "\n]}}\n");
  fclose(f);
  return 0;
}
