#include "tlsfix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* ---- PKI ---------------------------------------------------------------- */

static EVP_PKEY *gen_key(int rsa_bits) {
  EVP_PKEY *k =
      rsa_bits ? EVP_RSA_gen((unsigned)rsa_bits) : EVP_EC_gen("P-256");
  assert_non_null(k);
  return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  assert_non_null(ext);
  assert_int_equal(X509_add_ext(x, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by issuer (self-signed when NULL). */
static X509 *make_cert(tf_pki *p, EVP_PKEY *key, const char *cn,
                       X509 *issuer, EVP_PKEY *issuer_key, int ca,
                       const char *san) {
  X509 *x = X509_new();
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), (long)++p->serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  add_ext(x, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE"
                                               : "critical,CA:FALSE");
  add_ext(x, issuer, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign"
             : "critical,digitalSignature,keyEncipherment");
  add_ext(x, issuer, NID_subject_key_identifier, "hash");
  if (!ca) add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  if (san) add_ext(x, issuer, NID_subject_alt_name, san);
  assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
  return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  if (x) assert_int_equal(PEM_write_X509(f, x), 1);
  if (k)
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
}

void tf_pki_init(tf_pki *p, int rsa_bits) {
  memset(p, 0, sizeof *p);
  p->rsa_bits = rsa_bits;
  snprintf(p->dir, sizeof p->dir, "/tmp/vigil-tls-XXXXXX");
  assert_non_null(mkdtemp(p->dir));
  EVP_PKEY *ca_key = gen_key(rsa_bits);
  X509 *ca = make_cert(p, ca_key, "vigil test CA", NULL, NULL, 1, NULL);
  EVP_PKEY *rogue_key = gen_key(0);
  X509 *rogue = make_cert(p, rogue_key, "rogue CA", NULL, NULL, 1, NULL);
  p->ca_key = ca_key;
  p->ca_x509 = ca;
  p->rogue_key = rogue_key;
  p->rogue_x509 = rogue;
  snprintf(p->ca, sizeof p->ca, "%s/ca.pem", p->dir);
  write_pem(p->ca, ca, NULL);
  EVP_PKEY *sk = gen_key(rsa_bits);
  X509 *sc = make_cert(p, sk, "localhost", ca, ca_key, 0,
                       "DNS:localhost,IP:127.0.0.1");
  snprintf(p->server_cert, sizeof p->server_cert, "%s/server.pem", p->dir);
  snprintf(p->server_key, sizeof p->server_key, "%s/server.key", p->dir);
  write_pem(p->server_cert, sc, NULL);
  write_pem(p->server_key, NULL, sk);
  X509_free(sc);
  EVP_PKEY_free(sk);
}

void tf_pki_client(tf_pki *p, const char *name, const char *cn,
                   const char *san, int rogue, char *cert, char *key) {
  EVP_PKEY *k = gen_key(0);
  X509 *x = make_cert(p, k, cn, rogue ? p->rogue_x509 : p->ca_x509,
                      rogue ? p->rogue_key : p->ca_key, 0, san);
  snprintf(cert, TF_PATH, "%s/%s.pem", p->dir, name);
  snprintf(key, TF_PATH, "%s/%s.key", p->dir, name);
  write_pem(cert, x, NULL);
  write_pem(key, NULL, k);
  X509_free(x);
  EVP_PKEY_free(k);
}

void tf_pki_done(tf_pki *p) {
  char cmd[TF_PATH + 16];
  X509_free(p->ca_x509);
  X509_free(p->rogue_x509);
  EVP_PKEY_free(p->ca_key);
  EVP_PKEY_free(p->rogue_key);
  /* Only ever our own mkdtemp directory. */
  if (strncmp(p->dir, "/tmp/vigil-tls-", 15) == 0) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", p->dir);
  }
}

SSL_CTX *tf_server_ctx(const tf_pki *p, int require_client_cert) {
  SSL_CTX *ctx = NULL;
  char err[256] = "";
  int rc = vigil_tls_server_ctx_new(p->server_cert, p->server_key,
                                    require_client_cert ? p->ca : NULL,
                                    require_client_cert, NULL, &ctx, err,
                                    sizeof err);
  if (rc != VIGIL_OK) fprintf(stderr, "server ctx: %s\n", err);
  assert_int_equal(rc, VIGIL_OK);
  return ctx;
}

SSL_CTX *tf_client_ctx(const tf_pki *p, const char *cert, const char *key) {
  SSL_CTX *ctx = NULL;
  char err[256] = "";
  int rc = vigil_tls_client_ctx_new(p->ca, cert, key, NULL, &ctx, err,
                                    sizeof err);
  if (rc != VIGIL_OK) fprintf(stderr, "client ctx: %s\n", err);
  assert_int_equal(rc, VIGIL_OK);
  return ctx;
}

/* ---- hub ---------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  tf_hub *h = ud;
  (void)hub;
  char line[768];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  if (getenv("VIGIL_TEST_VERBOSE")) fprintf(stderr, "%s\n", line);
  if (h->nevents >= TF_MAX_EVENTS) return;
  tf_event *e = &h->events[h->nevents++];
  memset(e, 0, sizeof *e);
  e->type = ev->type;
  e->conn_id = ev->conn_id;
  e->reason = ev->reason;
  e->truncated = ev->truncated;
  e->tls_resumed = ev->tls_resumed;
  e->sys_errno = ev->sys_errno;
  copy_str(e->detail, sizeof e->detail, ev->detail);
  copy_str(e->identity, sizeof e->identity, ev->identity);
  copy_str(e->line, sizeof e->line, line);
}

void tf_hub_init_clock(tf_hub *h, const vigil_policy *p, uint64_t *fake_now) {
  memset(h, 0, sizeof *h);
  h->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(h->loop);
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = p;
  o.tick_ms = 10;
  o.on_event = on_event;
  o.event_data = h;
  if (fake_now) {
    /* A 1 ms tick: deadlines fire at the exact fake ms they fall on. */
    o.tick_ms = 1;
    o.clock = vt_fake_clock;
    o.clock_data = fake_now;
  }
  assert_int_equal(vigil_hub_new(h->loop, &o, &h->hub), VIGIL_OK);
}

void tf_hub_init(tf_hub *h, const vigil_policy *p) {
  tf_hub_init_clock(h, p, NULL);
}

void tf_hub_done(tf_hub *h) {
  if (h->hub) vigil_hub_free(h->hub);
  h->hub = NULL;
  /* Run once so deferred on_close calls are delivered and conns freed. */
  ev_run(h->loop, EVRUN_NOWAIT);
  ev_loop_destroy(h->loop);
}

int tf_count(const tf_hub *h, vigil_event_type t) {
  int n = 0;
  for (int i = 0; i < h->nevents; i++) n += h->events[i].type == t;
  return n;
}

const tf_event *tf_last(const tf_hub *h, vigil_event_type t,
                        uint64_t conn_id) {
  for (int i = h->nevents - 1; i >= 0; i--)
    if (h->events[i].type == t &&
        (!conn_id || h->events[i].conn_id == conn_id))
      return &h->events[i];
  return NULL;
}

int tf_adopt(tf_hub *h, int fd, cf_conn *cc, SSL_CTX *ctx, int client,
             const vigil_tls_options *to, const vigil_policy *p) {
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = cc;
  ao.policy = p;
  ao.tls_ctx = ctx;
  ao.tls_client = client;
  ao.tls_sni = client ? "localhost" : NULL;
  ao.tls = to;
  return vigil_adopt(h->hub, fd, &ao, &cc->conn);
}

/* ---- raw peer ----------------------------------------------------------- */

void tf_peer_init(tf_peer *p, SSL_CTX *ctx, int fd, int client,
                  const char *sni) {
  memset(p, 0, sizeof *p);
  p->fd = fd;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  p->ssl = SSL_new(ctx);
  assert_non_null(p->ssl);
  assert_int_equal(SSL_set_fd(p->ssl, fd), 1);
  if (client) {
    SSL_set_connect_state(p->ssl);
    if (sni) {
      SSL_set_tlsext_host_name(p->ssl, sni);
      SSL_set1_host(p->ssl, sni);
    }
  } else {
    SSL_set_accept_state(p->ssl);
  }
}

static void peer_fail(tf_peer *p, int err) {
  unsigned long e = ERR_peek_error();
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  if (!why) why = err == SSL_ERROR_SYSCALL ? strerror(errno) : "ssl error";
  snprintf(p->error, sizeof p->error, "%s", why);
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
  if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) p->eof = 1;
#endif
  if (err == SSL_ERROR_SYSCALL && e == 0 && errno == 0) p->eof = 1;
  if (!p->eof) p->failed = 1;
  ERR_clear_error();
}

void tf_peer_step(tf_peer *p) {
  if (p->failed || p->eof || p->zero_return) return;
  ERR_clear_error();
  if (!p->hs_done) {
    int r = SSL_do_handshake(p->ssl);
    if (r != 1) {
      int err = SSL_get_error(p->ssl, r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        peer_fail(p, err);
      return;
    }
    p->hs_done = 1;
  }
  for (;;) {
    char buf[16384];
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(p->ssl, buf, sizeof buf);
    if (n > 0) {
      if (p->rx_len + (size_t)n > p->rx_cap) {
        p->rx_cap = (p->rx_len + (size_t)n) * 2;
        p->rx = realloc(p->rx, p->rx_cap);
      }
      memcpy(p->rx + p->rx_len, buf, (size_t)n);
      p->rx_len += (size_t)n;
      continue;
    }
    int err = SSL_get_error(p->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    if (err == SSL_ERROR_ZERO_RETURN) {
      p->zero_return = 1;
      return;
    }
    peer_fail(p, err);
    return;
  }
}

int tf_peer_send(tf_peer *p, const void *data, size_t len) {
  size_t off = 0;
  uint64_t deadline = vt_now_ms() + 5000;
  while (off < len && vt_now_ms() < deadline) {
    ERR_clear_error();
    size_t chunk = len - off > 16384 ? 16384 : len - off;
    int w = SSL_write(p->ssl, (const char *)data + off, (int)chunk);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    int err = SSL_get_error(p->ssl, w);
    if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
      peer_fail(p, err);
      return -1;
    }
    struct pollfd pfd = {.fd = p->fd,
                         .events = err == SSL_ERROR_WANT_READ ? POLLIN
                                                              : POLLOUT};
    poll(&pfd, 1, 10);
  }
  return off == len ? 0 : -1;
}

void tf_peer_close_notify(tf_peer *p) {
  ERR_clear_error();
  SSL_shutdown(p->ssl);
  ERR_clear_error();
}

void tf_peer_free(tf_peer *p) {
  if (p->ssl) SSL_free(p->ssl);
  p->ssl = NULL;
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  free(p->rx);
  p->rx = NULL;
}

int tf_peer_handshaken(void *peer) {
  tf_peer *p = peer;
  tf_peer_step(p);
  return p->hs_done || p->failed || p->eof;
}

int tf_peer_closed(void *peer) {
  tf_peer *p = peer;
  tf_peer_step(p);
  return p->zero_return || p->eof || p->failed;
}

/* ---- the shared fixture -------------------------------------------------- */

tf_pki tf_test_pki;
SSL_CTX *tf_test_sctx, *tf_test_mtls_sctx, *tf_test_cctx;

int tf_setup(void **state) {
  (void)state;
  tf_pki_init(&tf_test_pki, 0);
  return 0;
}

int tf_teardown(void **state) {
  (void)state;
  tf_pki_done(&tf_test_pki);
  return 0;
}

int tf_setup_ctx(void **state) {
  tf_setup(state);
  tf_test_sctx = tf_server_ctx(&tf_test_pki, 0);
  tf_test_mtls_sctx = tf_server_ctx(&tf_test_pki, 1);
  tf_test_cctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  return 0;
}

int tf_teardown_ctx(void **state) {
  SSL_CTX_free(tf_test_sctx);
  SSL_CTX_free(tf_test_mtls_sctx);
  SSL_CTX_free(tf_test_cctx);
  tf_test_sctx = tf_test_mtls_sctx = tf_test_cctx = NULL;
  return tf_teardown(state);
}

int tf_conn_closed(void *cc) { return ((cf_conn *)cc)->closed > 0; }

int tf_conn_open(void *arg) {
  cf_conn *cc = arg;
  return cc->conn && vigil_conn_get_state(cc->conn) == VIGIL_CONN_OPEN;
}

tf_fx *tf_fx_new(const vigil_policy *p, int fake_clock) {
  tf_fx *x = calloc(1, sizeof *x);
  assert_non_null(x);
  x->peer.fd = -1;
  x->now = 1000000;
  tf_hub_init_clock(&x->h, p, fake_clock ? &x->now : NULL);
  return x;
}

void tf_fx_adopt(tf_fx *x, SSL_CTX *sctx) {
  int s;
  assert_int_equal(vt_tcp_pair(&s, &x->peer.fd), 0);
  assert_int_equal(tf_adopt(&x->h, s, &x->cc, sctx, 0, NULL, NULL), VIGIL_OK);
  x->id = vigil_conn_id(x->cc.conn);
}

void tf_fx_hang_up(tf_fx *x, vigil_reason reason) {
  close(x->peer.fd);
  x->peer.fd = -1;
  assert_true(vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 2000));
  assert_int_equal(x->cc.reason, reason);
}

void tf_fx_free(tf_fx *x) {
  tf_peer_free(&x->peer);
  tf_hub_done(&x->h);
  cf_conn_free(&x->cc);
  cf_conn_free(&x->cli);
  free(x);
}

void tf_connect(tf_hub *h, SSL_CTX *sctx, SSL_CTX *cctx, cf_conn *cc,
                tf_peer *peer, const vigil_policy *p) {
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(tf_adopt(h, s, cc, sctx, 0, NULL, p), VIGIL_OK);
  tf_peer_init(peer, cctx, c, 1, "localhost");
  assert_true(vt_run_until(h->loop, tf_peer_handshaken, peer, 3000));
  assert_true(peer->hs_done);
  assert_true(vt_run_until(h->loop, tf_conn_open, cc, 3000));
}
