/*
 * OpenSSL failures close with reason tls_error and OpenSSL's reason
 * string as the close detail; the thread's OpenSSL error queue is left
 * empty after each, so nothing leaks into the next connection or the
 * host.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tlsfix.h"


/* A server conn against a raw client; returns the server's close event
 * (copied to *out) once it closed. The client stays in *peer. */
static void server_vs(SSL_CTX *sctx, SSL_CTX *cctx, tf_peer *peer,
                      tf_event *out, cf_conn *cc) {
  tf_hub h;
  tf_hub_init(&h, NULL);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(tf_adopt(&h, s, cc, sctx, 0, NULL, NULL), VIGIL_OK);
  uint64_t id = vigil_conn_id(cc->conn);
  tf_peer_init(peer, cctx, c, 1, "localhost");
  uint64_t t0 = vt_now_ms();
  while (!cc->closed && vt_now_ms() - t0 < 3000) {
    tf_peer_step(peer);
    vt_run_until(h.loop, tf_conn_closed, cc, 10);
  }
  assert_true(cc->closed);
  vt_run_until(h.loop, tf_peer_closed, peer, 500);
  const tf_event *cl = tf_last(&h, VIGIL_EV_CLOSE, id);
  assert_non_null(cl);
  *out = *cl;
  /* The failure did not leave errors behind for the host. */
  assert_int_equal(ERR_peek_error(), 0);
  tf_hub_done(&h);
}

static void test_untrusted_client_certificate(void **state) {
  (void)state;
  char cert[TF_PATH], key[TF_PATH];
  tf_pki_client(&tf_test_pki, "rogue", "device-1", NULL, 1, cert, key);
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 1);
  SSL_CTX *cctx = tf_client_ctx(&tf_test_pki, cert, key);
  tf_peer peer;
  tf_event cl;
  cf_conn cc = {0};
  server_vs(sctx, cctx, &peer, &cl, &cc);
  assert_int_equal(cc.reason, VIGIL_REASON_TLS_ERROR);
  assert_int_equal(strncmp(cl.detail, "certificate verify failed", 25), 0);
  assert_non_null(strstr(cl.detail, "unable to get local issuer"));
  assert_non_null(strstr(cl.line, "reason=tls_error"));
  assert_non_null(strstr(cl.line, "detail=\"certificate verify failed"));
  /* The client was told why (an alert), not just cut off. */
  assert_true(peer.failed);
  assert_non_null(strstr(peer.error, "alert"));
  tf_peer_free(&peer);
  cf_conn_free(&cc);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

static void test_missing_client_certificate(void **state) {
  (void)state;
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 1);
  SSL_CTX *cctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  tf_peer peer;
  tf_event cl;
  cf_conn cc = {0};
  server_vs(sctx, cctx, &peer, &cl, &cc);
  assert_int_equal(cc.reason, VIGIL_REASON_TLS_ERROR);
  assert_string_equal(cl.detail, "peer did not return a certificate");
  tf_peer_free(&peer);
  cf_conn_free(&cc);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

static void test_old_protocol_refused(void **state) {
  (void)state;
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 0);
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(cctx, 0); /* let the client offer TLS 1.1 */
  SSL_CTX_set_min_proto_version(cctx, TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
  tf_peer peer;
  tf_event cl;
  cf_conn cc = {0};
  server_vs(sctx, cctx, &peer, &cl, &cc);
  assert_int_equal(cc.reason, VIGIL_REASON_TLS_ERROR);
  assert_string_equal(cl.detail, "unsupported protocol");
  tf_peer_free(&peer);
  cf_conn_free(&cc);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

/* Plain bytes where a TLS record belongs. */
static void raw_vs(const char *bytes, const char *want_detail) {
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 0);
  tf_hub h;
  tf_hub_init(&h, NULL);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  assert_int_equal(tf_adopt(&h, s, &cc, sctx, 0, NULL, NULL), VIGIL_OK);
  uint64_t id = vigil_conn_id(cc.conn);
  assert_int_equal(send(c, bytes, strlen(bytes), MSG_NOSIGNAL),
                   (ssize_t)strlen(bytes));
  assert_true(vt_run_until(h.loop, tf_conn_closed, &cc, 2000));
  assert_int_equal(cc.reason, VIGIL_REASON_TLS_ERROR);
  assert_string_equal(tf_last(&h, VIGIL_EV_CLOSE, id)->detail, want_detail);
  assert_int_equal(ERR_peek_error(), 0);
  close(c);
  tf_hub_done(&h);
  cf_conn_free(&cc);
  SSL_CTX_free(sctx);
}

static void test_plaintext_clients(void **state) {
  (void)state;
  raw_vs("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "http request");
  raw_vs("\x16\x09\x09\x01\x05" "hello", "wrong version number");
}

/* After the handshake: a forged application-data record. */
static void test_bad_record_after_handshake(void **state) {
  (void)state;
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 0);
  SSL_CTX *cctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  tf_hub h;
  tf_hub_init(&h, NULL);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  assert_int_equal(tf_adopt(&h, s, &cc, sctx, 0, NULL, NULL), VIGIL_OK);
  uint64_t id = vigil_conn_id(cc.conn);
  tf_peer peer;
  tf_peer_init(&peer, cctx, c, 1, "localhost");
  assert_true(vt_run_until(h.loop, tf_peer_handshaken, &peer, 3000));
  assert_true(vt_run_until(h.loop, tf_conn_open, &cc, 3000));
  static const unsigned char forged[] = {0x17, 0x03, 0x03, 0x00, 0x20,
                                         1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                         12, 13, 14, 15, 16, 17, 18, 19, 20,
                                         21, 22, 23, 24, 25, 26, 27, 28, 29,
                                         30, 31, 32};
  assert_int_equal(send(c, forged, sizeof forged, MSG_NOSIGNAL),
                   (ssize_t)sizeof forged);
  assert_true(vt_run_until(h.loop, tf_conn_closed, &cc, 2000));
  assert_int_equal(cc.reason, VIGIL_REASON_TLS_ERROR);
  assert_string_equal(tf_last(&h, VIGIL_EV_CLOSE, id)->detail,
                      "decryption failed or bad record mac");
  assert_int_equal(ERR_peek_error(), 0);
  tf_peer_free(&peer);
  tf_hub_done(&h);
  cf_conn_free(&cc);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

/* A vigil client conn verifies the server's name (tls_sni). */
static void test_client_checks_server_name(void **state) {
  (void)state;
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 0);
  SSL_CTX *cctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  static const struct {
    const char *name;
    int ok;
  } cases[] = {
      {"localhost", 1},
      {"127.0.0.1", 1},
      {"elsewhere.example", 0},
      {"127.0.0.2", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tf_hub h;
    tf_hub_init(&h, NULL);
    int s, c;
    assert_int_equal(vt_tcp_pair(&s, &c), 0);
    cf_conn srv = {0}, cli = {0};
    assert_int_equal(tf_adopt(&h, s, &srv, sctx, 0, NULL, NULL), VIGIL_OK);
    vigil_adopt_options ao;
    vigil_adopt_options_init(&ao);
    ao.callbacks = &cf_callbacks;
    ao.user_data = &cli;
    ao.tls_ctx = cctx;
    ao.tls_client = 1;
    ao.tls_sni = cases[i].name;
    assert_int_equal(vigil_adopt(h.hub, c, &ao, &cli.conn), VIGIL_OK);
    uint64_t cid = vigil_conn_id(cli.conn);
    if (cases[i].ok) {
      assert_true(vt_run_until(h.loop, tf_conn_open, &cli, 3000));
    } else {
      assert_true(vt_run_until(h.loop, tf_conn_closed, &cli, 3000));
      assert_int_equal(cli.reason, VIGIL_REASON_TLS_ERROR);
      const tf_event *cl = tf_last(&h, VIGIL_EV_CLOSE, cid);
      assert_non_null(strstr(cl->detail, "certificate verify failed"));
      assert_non_null(strstr(cl->detail, "mismatch"));
      /* The server heard the client's alert. */
      assert_true(vt_run_until(h.loop, tf_conn_closed, &srv, 3000));
      assert_int_equal(srv.reason, VIGIL_REASON_TLS_ERROR);
    }
    assert_int_equal(ERR_peek_error(), 0);
    tf_hub_done(&h);
    cf_conn_free(&srv);
    cf_conn_free(&cli);
  }
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

/* An error queued by the host before a vigil call is not taken for a
 * conn failure, and a failing conn does not disturb its neighbour. */
static void test_error_queue_isolation(void **state) {
  (void)state;
  SSL_CTX *sctx = tf_server_ctx(&tf_test_pki, 0);
  SSL_CTX *cctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  tf_hub h;
  tf_hub_init(&h, NULL);
  int s1, c1, s2, c2;
  assert_int_equal(vt_tcp_pair(&s1, &c1), 0);
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  cf_conn good = {0}, bad = {0};
  assert_int_equal(tf_adopt(&h, s1, &good, sctx, 0, NULL, NULL), VIGIL_OK);
  assert_int_equal(tf_adopt(&h, s2, &bad, sctx, 0, NULL, NULL), VIGIL_OK);
  tf_peer peer;
  tf_peer_init(&peer, cctx, c1, 1, "localhost");
  assert_true(vt_run_until(h.loop, tf_peer_handshaken, &peer, 3000));
  assert_true(vt_run_until(h.loop, tf_conn_open, &good, 3000));
  assert_int_equal(send(c2, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL), 18);
  assert_true(vt_run_until(h.loop, tf_conn_closed, &bad, 2000));
  assert_int_equal(bad.reason, VIGIL_REASON_TLS_ERROR);
  /* A stale error of the host's own. */
  ERR_put_error(ERR_LIB_SSL, 0, SSL_R_BAD_LENGTH, __FILE__, __LINE__);
  assert_int_equal(vigil_send(good.conn, "still fine", 10), VIGIL_OK);
  assert_int_equal(tf_peer_send(&peer, "and you?", 8), 0);
  vt_run_until(h.loop, NULL, NULL, 100);
  tf_peer_step(&peer);
  assert_int_equal(good.closed, 0);
  assert_int_equal(good.rx_len, 8);
  assert_int_equal(peer.rx_len, 10);
  assert_int_equal(ERR_peek_error(), 0);
  close(c2);
  tf_peer_free(&peer);
  tf_hub_done(&h);
  cf_conn_free(&good);
  cf_conn_free(&bad);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_untrusted_client_certificate),
      cmocka_unit_test(test_missing_client_certificate),
      cmocka_unit_test(test_old_protocol_refused),
      cmocka_unit_test(test_plaintext_clients),
      cmocka_unit_test(test_bad_record_after_handshake),
      cmocka_unit_test(test_client_checks_server_name),
      cmocka_unit_test(test_error_queue_isolation),
  };
  return cmocka_run_group_tests(tests, tf_setup, tf_teardown);
}
