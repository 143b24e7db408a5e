/*
 * Identity from client certificates: the conn claims the verified
 * certificate's CN or SAN after the handshake, a second device with the
 * same certified identity takes over, and a peer that merely names
 * another device (from protocol data, on a TLS conn with another
 * certificate or on plain TCP) is refused and closed with
 * takeover_rejected while the real device stays up.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tlsfix.h"

static SSL_CTX *sctx; /* requires client certificates */

static int setup(void **state) {
  tf_setup(state);
  sctx = tf_server_ctx(&tf_test_pki, 1);
  return 0;
}

static int teardown(void **state) {
  SSL_CTX_free(sctx);
  return tf_teardown(state);
}

typedef struct device {
  char cert[TF_PATH], key[TF_PATH];
  SSL_CTX *ctx;
  tf_peer peer;
  cf_conn cc;
} device;

static void device_make(device *d, const char *name, const char *cn,
                        const char *san) {
  memset(d, 0, sizeof *d);
  tf_pki_client(&tf_test_pki, name, cn, san, 0, d->cert, d->key);
  d->ctx = tf_client_ctx(&tf_test_pki, d->cert, d->key);
}

/* Adopts a server conn (context ctx, options to) for d; the device's
 * handshake starts with device_go. */
static void device_adopt(tf_hub *h, device *d, SSL_CTX *ctx,
                         const vigil_tls_options *to, int *device_fd) {
  int s;
  assert_int_equal(vt_tcp_pair(&s, device_fd), 0);
  assert_int_equal(tf_adopt(h, s, &d->cc, ctx, 0, to, NULL), VIGIL_OK);
}

static void device_go(tf_hub *h, device *d, int device_fd) {
  tf_peer_init(&d->peer, d->ctx, device_fd, 1, "localhost");
  assert_true(vt_run_until(h->loop, tf_peer_handshaken, &d->peer, 3000));
  assert_true(d->peer.hs_done);
}

/* Connects d to a server conn adopted with to; waits until it is open. */
static void device_connect(tf_hub *h, device *d, const vigil_tls_options *to) {
  int c;
  device_adopt(h, d, sctx, to, &c);
  device_go(h, d, c);
  assert_true(vt_run_until(h->loop, tf_conn_open, &d->cc, 3000));
}

/* d's conn (id) is refused: it closes gracefully, close_notify first,
 * and once the device hangs up it ends with reason (and detail, unless
 * NULL), never having been ready. */
static void expect_refused(tf_hub *h, device *d, uint64_t id,
                           vigil_reason reason, const char *detail) {
  assert_true(vt_run_until(h->loop, tf_peer_closed, &d->peer, 3000));
  assert_int_equal(d->peer.zero_return, 1);
  close(d->peer.fd);
  d->peer.fd = -1;
  assert_true(vt_run_until(h->loop, tf_conn_closed, &d->cc, 2000));
  assert_int_equal(d->cc.reason, reason);
  if (detail)
    assert_string_equal(tf_last(h, VIGIL_EV_CLOSE, id)->detail, detail);
  assert_null(tf_last(h, VIGIL_EV_READY, id));
}

static void device_done(device *d) {
  tf_peer_free(&d->peer);
  SSL_CTX_free(d->ctx);
  cf_conn_free(&d->cc);
}

static void test_identity_from_cn_and_takeover(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  device a, b;
  device_make(&a, "dev1a", "device-1", NULL);
  device_make(&b, "dev1b", "device-1", NULL); /* rebooted: new key */
  device_connect(&h, &a, &to);
  assert_string_equal(vigil_conn_identity(a.cc.conn), "device-1");
  assert_string_equal(vigil_conn_tls_identity(a.cc.conn), "device-1");
  assert_ptr_equal(vigil_hub_find_identity(h.hub, "device-1", 8), a.cc.conn);
  uint64_t aid = vigil_conn_id(a.cc.conn);
  /* The identity is settled before the conn is ready. */
  const tf_event *rd = tf_last(&h, VIGIL_EV_READY, aid);
  assert_string_equal(rd->identity, "device-1");
  /* The same certified identity again: newest wins, as without TLS. */
  device_connect(&h, &b, &to);
  assert_true(vt_run_until(h.loop, tf_conn_closed, &a.cc, 2000));
  assert_int_equal(a.cc.reason, VIGIL_REASON_TAKEOVER);
  assert_ptr_equal(vigil_hub_find_identity(h.hub, "device-1", 8), b.cc.conn);
  assert_int_equal(tf_count(&h, VIGIL_EV_TAKEOVER), 1);
  /* Claiming what the certificate says again is harmless. */
  assert_int_equal(vigil_conn_identify(b.cc.conn, "device-1", 8),
                   VIGIL_EEXIST);
  assert_int_equal(vigil_conn_get_state(b.cc.conn), VIGIL_CONN_OPEN);
  device_done(&a);
  device_done(&b);
  tf_hub_done(&h);
}

static void test_spoofed_claims_are_refused(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  device real, spoof;
  device_make(&real, "dev1", "device-1", NULL);
  device_make(&spoof, "dev2", "device-2", NULL);
  device_connect(&h, &real, &to);
  device_connect(&h, &spoof, &to);
  assert_string_equal(vigil_conn_identity(spoof.cc.conn), "device-2");
  uint64_t sid = vigil_conn_id(spoof.cc.conn);
  /* device-2 names device-1 in its protocol data. */
  assert_int_equal(vigil_conn_identify(spoof.cc.conn, "device-1", 8),
                   VIGIL_EREJECTED);
  assert_true(vt_run_until(h.loop, tf_peer_closed, &spoof.peer, 2000));
  assert_int_equal(spoof.peer.zero_return, 1); /* closed gracefully */
  close(spoof.peer.fd);
  spoof.peer.fd = -1;
  assert_true(vt_run_until(h.loop, tf_conn_closed, &spoof.cc, 2000));
  assert_int_equal(spoof.cc.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  assert_string_equal(tf_last(&h, VIGIL_EV_CLOSE, sid)->detail,
                      "identity not proven by certificate");
  /* A plain TCP conn on the same hub claiming device-1: refused too. */
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn plain = {0};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &plain;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &plain.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(plain.conn, "device-1", 8),
                   VIGIL_EREJECTED);
  close(c);
  assert_true(vt_run_until(h.loop, tf_conn_closed, &plain, 2000));
  assert_int_equal(plain.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  /* ...while plain claims of identities no certificate holds still work. */
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn other = {0};
  ao.user_data = &other;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &other.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(other.conn, "sensor-9", 8), VIGIL_OK);
  /* The real device never noticed. */
  assert_int_equal(real.cc.closed, 0);
  assert_int_equal(vigil_conn_get_state(real.cc.conn), VIGIL_CONN_OPEN);
  assert_ptr_equal(vigil_hub_find_identity(h.hub, "device-1", 8),
                   real.cc.conn);
  assert_int_equal(tf_count(&h, VIGIL_EV_TAKEOVER), 0);
  close(c);
  device_done(&real);
  device_done(&spoof);
  tf_hub_done(&h);
  cf_conn_free(&plain);
  cf_conn_free(&other);
}

/* identity_proof off: certificates name conns, but a different claim is
 * only "already identified", and a plain claimant may take over. */
static void test_proof_off(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  to.identity_proof = 0;
  device d;
  device_make(&d, "dev3", "device-3", NULL);
  device_connect(&h, &d, &to);
  assert_int_equal(vigil_conn_identify(d.cc.conn, "device-4", 8),
                   VIGIL_EEXIST);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn plain = {0};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = &plain;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &plain.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(plain.conn, "device-3", 8), VIGIL_OK);
  assert_true(vt_run_until(h.loop, tf_conn_closed, &d.cc, 2000));
  assert_int_equal(d.cc.reason, VIGIL_REASON_TAKEOVER);
  close(c);
  device_done(&d);
  tf_hub_done(&h);
  cf_conn_free(&plain);
}

static void test_identity_from_san(void **state) {
  (void)state;
  static const struct {
    vigil_tls_id_source src;
    const char *want;
  } cases[] = {
      {VIGIL_TLS_ID_SAN_URI, "urn:dev:7"},
      {VIGIL_TLS_ID_SAN_DNS, "dev7.example"},
      {VIGIL_TLS_ID_SAN_EMAIL, "dev7@example.com"},
      {VIGIL_TLS_ID_CN, "device-7"},
  };
  device d;
  device_make(&d, "dev7", "device-7",
              "URI:urn:dev:7,DNS:dev7.example,email:dev7@example.com");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tf_hub h;
    tf_hub_init(&h, NULL);
    vigil_tls_options to;
    vigil_tls_options_init(&to);
    to.identity_from = cases[i].src;
    memset(&d.cc, 0, sizeof d.cc);
    device_connect(&h, &d, &to);
    assert_string_equal(vigil_conn_identity(d.cc.conn), cases[i].want);
    tf_peer_free(&d.peer);
    cf_conn_free(&d.cc);
    tf_hub_done(&h);
  }
  /* A certificate without that SAN type gives no identity: the conn
   * claims like a plain one (free ids yes, proven ones no). */
  device n;
  device_make(&n, "noscan", "device-8", NULL);
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_SAN_URI;
  device_connect(&h, &n, &to);
  assert_null(vigil_conn_identity(n.cc.conn));
  assert_null(vigil_conn_tls_identity(n.cc.conn));
  device p7;
  device_make(&p7, "dev7b", "device-7", NULL);
  vigil_tls_options cn;
  vigil_tls_options_init(&cn);
  cn.identity_from = VIGIL_TLS_ID_CN;
  device_connect(&h, &p7, &cn);
  assert_int_equal(vigil_conn_identify(n.cc.conn, "device-7", 8),
                   VIGIL_EREJECTED);
  assert_true(vigil_conn_get_state(n.cc.conn) >= VIGIL_CONN_FLUSHING);
  assert_int_equal(vigil_conn_get_state(p7.cc.conn), VIGIL_CONN_OPEN);
  device_done(&p7);
  device_done(&n);
  SSL_CTX_free(d.ctx);
  tf_hub_done(&h);
}

/* A claim made before the TLS handshake completed (from on_accept, say)
 * meets the certificate once it is known: under identity_proof another
 * identity closes the conn with takeover_rejected and frees the identity
 * it held; the certificate's own identity stays. */
static void test_early_claim_meets_certificate(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  device liar, honest;
  device_make(&liar, "dev6", "device-6", NULL);
  device_make(&honest, "dev7", "device-7", NULL);
  int c;
  device_adopt(&h, &liar, sctx, &to, &c);
  assert_int_equal(vigil_conn_identify(liar.cc.conn, "device-7", 8),
                   VIGIL_OK);
  uint64_t lid = vigil_conn_id(liar.cc.conn);
  tf_peer_init(&liar.peer, liar.ctx, c, 1, "localhost");
  expect_refused(&h, &liar, lid, VIGIL_REASON_TAKEOVER_REJECTED,
                 "identity not proven by certificate");
  assert_null(vigil_hub_find_identity(h.hub, "device-7", 8));
  /* The real device-7, claimed early with what its certificate says. */
  device_adopt(&h, &honest, sctx, &to, &c);
  assert_int_equal(vigil_conn_identify(honest.cc.conn, "device-7", 8),
                   VIGIL_OK);
  device_go(&h, &honest, c);
  assert_true(vt_run_until(h.loop, tf_conn_open, &honest.cc, 3000));
  assert_string_equal(vigil_conn_identity(honest.cc.conn), "device-7");
  assert_ptr_equal(vigil_hub_find_identity(h.hub, "device-7", 8),
                   honest.cc.conn);
  device_done(&liar);
  device_done(&honest);
  tf_hub_done(&h);
}

/* The certificate's identity is in a flapping ban: the claim made after
 * the handshake is refused and the conn closes with identity_banned; it
 * never becomes ready without its identity. */
static void test_banned_certificate_identity(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.flap_max = 1;
  p.flap_window_ms = 60000;
  p.flap_ban_ms = 60000;
  tf_hub h;
  tf_hub_init(&h, &p);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  device d[3];
  for (int i = 0; i < 3; i++) device_make(&d[i], "dev8", "device-8", NULL);
  /* Two takeovers in the window: the second crosses flap_max and bans. */
  device_connect(&h, &d[0], &to);
  device_connect(&h, &d[1], &to);
  int c;
  device_adopt(&h, &d[2], sctx, &to, &c);
  uint64_t id = vigil_conn_id(d[2].cc.conn);
  tf_peer_init(&d[2].peer, d[2].ctx, c, 1, "localhost");
  expect_refused(&h, &d[2], id, VIGIL_REASON_IDENTITY_BANNED, NULL);
  for (int i = 0; i < 3; i++) device_done(&d[i]);
  tf_hub_done(&h);
}

/* A certificate identity longer than any identity may be (65535 bytes):
 * it cannot be claimed, so the conn closes instead of going on without
 * the identity its certificate proves. (Tickets off: OpenSSL cannot fit
 * a session holding such a certificate into one.) */
static void test_certificate_identity_too_long(void **state) {
  (void)state;
  static char san[70016];
  int n = snprintf(san, sizeof san, "URI:urn:");
  memset(san + n, 'x', 70000);
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.tickets = 0;
  SSL_CTX *no_tickets = NULL;
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert, tf_test_pki.server_key,
                                            tf_test_pki.ca, 1, &co, &no_tickets,
                                            NULL, 0),
                   VIGIL_OK);
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_SAN_URI;
  device d;
  device_make(&d, "dev9", "device-9", san);
  int c;
  device_adopt(&h, &d, no_tickets, &to, &c);
  uint64_t id = vigil_conn_id(d.cc.conn);
  tf_peer_init(&d.peer, d.ctx, c, 1, "localhost");
  expect_refused(&h, &d, id, VIGIL_REASON_TAKEOVER_REJECTED,
                 "certificate identity too long");
  device_done(&d);
  tf_hub_done(&h);
  SSL_CTX_free(no_tickets);
}

static int got5(void *arg) { return ((cf_conn *)arg)->rx_len >= 5; }

/* With app_handshake the conn stays in HANDSHAKE after TLS, under the
 * same deadline, until the host says it is ready. */
static void test_app_handshake(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.app_handshake = 1;
  device d;
  device_make(&d, "dev5", "device-5", NULL);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(tf_adopt(&h, s, &d.cc, sctx, 0, &to, NULL), VIGIL_OK);
  tf_peer_init(&d.peer, d.ctx, c, 1, "localhost");
  assert_true(vt_run_until(h.loop, tf_peer_handshaken, &d.peer, 3000));
  assert_int_equal(tf_peer_send(&d.peer, "LOGIN", 5), 0);
  assert_true(vt_run_until(h.loop, got5, &d.cc, 2000));
  assert_int_equal(d.cc.rx_len, 5);
  assert_int_equal(tf_count(&h, VIGIL_EV_OPEN), 1);
  assert_int_equal(tf_count(&h, VIGIL_EV_READY), 0);
  assert_int_equal(vigil_conn_get_state(d.cc.conn), VIGIL_CONN_HANDSHAKE);
  assert_int_equal(vigil_conn_ready(d.cc.conn), VIGIL_OK);
  assert_int_equal(tf_count(&h, VIGIL_EV_READY), 1);
  device_done(&d);
  tf_hub_done(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity_from_cn_and_takeover),
      cmocka_unit_test(test_spoofed_claims_are_refused),
      cmocka_unit_test(test_proof_off),
      cmocka_unit_test(test_identity_from_san),
      cmocka_unit_test(test_app_handshake),
      cmocka_unit_test(test_early_claim_meets_certificate),
      cmocka_unit_test(test_banned_certificate_identity),
      cmocka_unit_test(test_certificate_identity_too_long),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
