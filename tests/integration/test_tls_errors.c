/*
 * OpenSSL failures close with reason tls_error and OpenSSL's reason
 * string as the close detail; the thread's OpenSSL error queue is left
 * empty after each, so nothing leaks into the next connection or the
 * host.
 *
 * Two tables, one runner each: what a server conn says when its client
 * fails (bad certificates, an old protocol, plaintext, a forged record),
 * and a vigil client conn checking the server's name.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "rowtest.h"
#include "tlsfix.h"

/* A hub, a server conn on it and the client end, freed by the teardown. */
typedef struct errfx {
  const void *row;
  tf_hub h;
  cf_conn cc;
  uint64_t id;
  int fd;          /* the client's socket */
  tf_peer peer;    /* the client's TLS, when it speaks TLS */
  int has_peer;
  SSL_CTX *client; /* the client's own context, when it has one */
  cf_conn cli;     /* the client, when it is a vigil conn */
} errfx;

static int fx_setup(void **state) {
  errfx *x = calloc(1, sizeof *x);
  assert_non_null(x);
  x->row = *state;
  x->fd = -1;
  tf_hub_init(&x->h, NULL);
  *state = x;
  return 0;
}

static int fx_teardown(void **state) {
  errfx *x = *state;
  if (x->has_peer) tf_peer_free(&x->peer);
  else if (x->fd >= 0) close(x->fd);
  tf_hub_done(&x->h);
  cf_conn_free(&x->cc);
  cf_conn_free(&x->cli);
  SSL_CTX_free(x->client);
  free(x);
  return 0;
}

/* Adopts a server conn on ctx; the client's socket is x->fd. */
static void fx_server(errfx *x, SSL_CTX *ctx) {
  int s;
  assert_int_equal(vt_tcp_pair(&s, &x->fd), 0);
  assert_int_equal(tf_adopt(&x->h, s, &x->cc, ctx, 0, NULL, NULL), VIGIL_OK);
  x->id = vigil_conn_id(x->cc.conn);
}

/* ---- a server conn's failing clients ----------------------------------- */

typedef struct failure {
  const char *name;
  int client_cert_required;      /* the server's context */
  SSL_CTX *(*client_ctx)(void);  /* the client's own context (the shared
                                    one when NULL) ... */
  int plaintext;                 /* ... or no TLS at all */
  const char *bytes;             /* sent raw: before the handshake by a
                                    plaintext client, else after it */
  size_t len;
  /* The close event: */
  const char *detail;            /* the whole detail, or NULL */
  const char *detail_starts;     /* or how it starts, and ... */
  const char *detail_has;        /* ... what else it says */
  const char *line_has[2];       /* in its logfmt line */
  int client_alerted;            /* the client was told why: an alert */
} failure;

static SSL_CTX *rogue_client_ctx(void) {
  char cert[TF_PATH], key[TF_PATH];
  tf_pki_client(&tf_test_pki, "rogue", "device-1", NULL, 1, cert, key);
  return tf_client_ctx(&tf_test_pki, cert, key);
}

static SSL_CTX *tls11_client_ctx(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(ctx);
  SSL_CTX_set_security_level(ctx, 0); /* let the client offer TLS 1.1 */
  SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
  return ctx;
}

#define HTTP_GET "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
#define BAD_RECORD "\x16\x09\x09\x01\x05" "hello"

/* An application-data record with a made-up body. */
static const char forged[] = "\x17\x03\x03\x00\x20"
                             "\x01\x02\x03\x04\x05\x06\x07\x08"
                             "\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
                             "\x11\x12\x13\x14\x15\x16\x17\x18"
                             "\x19\x1a\x1b\x1c\x1d\x1e\x1f\x20";

static const failure failures[] = {
    {.name = "untrusted client certificate",
     .client_cert_required = 1,
     .client_ctx = rogue_client_ctx,
     .detail_starts = "certificate verify failed",
     .detail_has = "unable to get local issuer",
     .line_has = {"reason=tls_error", "detail=\"certificate verify failed"},
     .client_alerted = 1},
    {.name = "missing client certificate",
     .client_cert_required = 1,
     .detail = "peer did not return a certificate"},
    {.name = "old protocol refused",
     .client_ctx = tls11_client_ctx,
     .detail = "unsupported protocol"},
    /* Plain bytes where a TLS record belongs. */
    {.name = "plaintext http request",
     .plaintext = 1,
     .bytes = HTTP_GET,
     .len = sizeof HTTP_GET - 1,
     .detail = "http request"},
    {.name = "plaintext with a bad record header",
     .plaintext = 1,
     .bytes = BAD_RECORD,
     .len = sizeof BAD_RECORD - 1,
     .detail = "wrong version number"},
    {.name = "forged record after the handshake",
     .bytes = forged,
     .len = sizeof forged - 1,
     .detail = "decryption failed or bad record mac"},
};

static void run_failure(void **state) {
  errfx *x = *state;
  const failure *f = x->row;
  fx_server(x, f->client_cert_required ? tf_test_mtls_sctx : tf_test_sctx);
  if (!f->plaintext) {
    if (f->client_ctx) x->client = f->client_ctx();
    tf_peer_init(&x->peer, x->client ? x->client : tf_test_cctx, x->fd, 1,
                 "localhost");
    x->has_peer = 1;
  }
  if (f->bytes) {
    if (!f->plaintext) {
      assert_true(vt_run_until(x->h.loop, tf_peer_handshaken, &x->peer, 3000));
      assert_true(vt_run_until(x->h.loop, tf_conn_open, &x->cc, 3000));
    }
    assert_int_equal(send(x->fd, f->bytes, f->len, MSG_NOSIGNAL),
                     (ssize_t)f->len);
  }
  /* The client goes on with its side (when it has one) until the server
   * gives up, then hears the end. */
  uint64_t t0 = vt_now_ms();
  while (!x->cc.closed && vt_now_ms() - t0 < 3000) {
    if (x->has_peer) tf_peer_step(&x->peer);
    vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 10);
  }
  assert_true(x->cc.closed);
  if (x->has_peer) vt_run_until(x->h.loop, tf_peer_closed, &x->peer, 500);
  assert_int_equal(x->cc.reason, VIGIL_REASON_TLS_ERROR);
  const tf_event *cl = tf_last(&x->h, VIGIL_EV_CLOSE, x->id);
  assert_non_null(cl);
  if (f->detail) assert_string_equal(cl->detail, f->detail);
  if (f->detail_starts)
    assert_int_equal(strncmp(cl->detail, f->detail_starts,
                             strlen(f->detail_starts)),
                     0);
  if (f->detail_has) assert_non_null(strstr(cl->detail, f->detail_has));
  for (int i = 0; i < 2; i++)
    if (f->line_has[i]) assert_non_null(strstr(cl->line, f->line_has[i]));
  if (f->client_alerted) {
    assert_true(x->peer.failed);
    assert_non_null(strstr(x->peer.error, "alert"));
  }
  /* The failure did not leave errors behind for the host. */
  assert_int_equal(ERR_peek_error(), 0);
}

/* ---- a vigil client conn verifies the server's name (tls_sni) ---------- */

typedef struct server_name {
  const char *name;
  const char *sni;
  int ok;
} server_name;

static const server_name server_names[] = {
    {"server name localhost", "localhost", 1},
    {"server address 127.0.0.1", "127.0.0.1", 1},
    {"server name elsewhere.example", "elsewhere.example", 0},
    {"server address 127.0.0.2", "127.0.0.2", 0},
};

static void run_server_name(void **state) {
  errfx *x = *state;
  const server_name *sn = x->row;
  fx_server(x, tf_test_sctx);
  cf_conn *cli = &x->cli;
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = cli;
  ao.tls_ctx = tf_test_cctx;
  ao.tls_client = 1;
  ao.tls_sni = sn->sni;
  assert_int_equal(vigil_adopt(x->h.hub, x->fd, &ao, &cli->conn), VIGIL_OK);
  x->fd = -1; /* the hub's now */
  uint64_t cid = vigil_conn_id(cli->conn);
  if (sn->ok) {
    assert_true(vt_run_until(x->h.loop, tf_conn_open, cli, 3000));
  } else {
    assert_true(vt_run_until(x->h.loop, tf_conn_closed, cli, 3000));
    assert_int_equal(cli->reason, VIGIL_REASON_TLS_ERROR);
    const tf_event *cl = tf_last(&x->h, VIGIL_EV_CLOSE, cid);
    assert_non_null(strstr(cl->detail, "certificate verify failed"));
    assert_non_null(strstr(cl->detail, "mismatch"));
    /* The server heard the client's alert. */
    assert_true(vt_run_until(x->h.loop, tf_conn_closed, &x->cc, 3000));
    assert_int_equal(x->cc.reason, VIGIL_REASON_TLS_ERROR);
  }
  assert_int_equal(ERR_peek_error(), 0);
}

/* An error queued by the host before a vigil call is not taken for a
 * conn failure, and a failing conn does not disturb its neighbour. */
static void test_error_queue_isolation(void **state) {
  (void)state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  int s1, c1, s2, c2;
  assert_int_equal(vt_tcp_pair(&s1, &c1), 0);
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  cf_conn good = {0}, bad = {0};
  assert_int_equal(tf_adopt(&h, s1, &good, tf_test_sctx, 0, NULL, NULL),
                   VIGIL_OK);
  assert_int_equal(tf_adopt(&h, s2, &bad, tf_test_sctx, 0, NULL, NULL),
                   VIGIL_OK);
  tf_peer peer;
  tf_peer_init(&peer, tf_test_cctx, c1, 1, "localhost");
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
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_queue_isolation),
  };
  vt_suite s = {0};
  VT_ROWS_SETUP_TEARDOWN(&s, run_failure, failures, fx_setup, fx_teardown);
  VT_ROWS_SETUP_TEARDOWN(&s, run_server_name, server_names, fx_setup,
                         fx_teardown);
  VT_TESTS(&s, tests);
  return vt_suite_run(&s, tf_setup_ctx, tf_teardown_ctx);
}
