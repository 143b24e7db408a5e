/*
 * TLS on real loopback sockets: the handshake and its events, data both
 * ways (including 1 MiB through the plaintext output queue), session
 * resumption for TLS 1.3 tickets, TLS 1.2 tickets and a server session
 * cache, heartbeats over TLS, and raw bytes of an unfinished record
 * counting as life.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "rowtest.h"
#include "tlsfix.h"

/* The fixture of the one-conn tests: a hub, a TLS server conn (cc) and
 * its raw client (peer), or a vigil client conn (cli); the teardown frees
 * them all. How a test's hub differs is cmocka's prestate. */
typedef struct variant {
  uint32_t dead_after_ms; /* > 0: the fake clock, heartbeats, no suspect */
  int frame_codec;
} variant;

typedef tf_fx conn_fx;

static int conn_setup(void **state) {
  const variant *v = *state;
  vigil_policy p;
  vigil_policy_init(&p);
  if (v && v->dead_after_ms) {
    p.dead_after_ms = v->dead_after_ms;
    p.suspect_after_ms = 0;
  }
  if (v && v->frame_codec) p.frame_codec = 1;
  *state = tf_fx_new(v ? &p : NULL, v && v->dead_after_ms);
  return 0;
}

static int conn_teardown(void **state) {
  tf_fx_free(*state);
  return 0;
}

static const variant k_dead_after_400 = {.dead_after_ms = 400};
static const variant k_dead_after_300 = {.dead_after_ms = 300};
static const variant k_frame_codec = {.frame_codec = 1};

static int wait_closed(tf_hub *h, cf_conn *cc, uint32_t ms) {
  return vt_run_until(h->loop, tf_conn_closed, cc, ms);
}

typedef struct pair_wait {
  tf_peer *peer;
  cf_conn *cc;
  size_t want_peer_rx, want_conn_rx;
} pair_wait;

/* Steps the raw peer; true once both sides got what they wait for. */
static int got_rx(void *arg) {
  pair_wait *w = arg;
  tf_peer_step(w->peer);
  return w->peer->rx_len >= w->want_peer_rx &&
         w->cc->rx_len >= w->want_conn_rx;
}

static void test_handshake_events_and_echo(void **state) {
  conn_fx *x = *state;
  tf_hub *h = &x->h;
  cf_conn *cc = &x->cc;
  tf_peer *peer = &x->peer;
  tf_fx_adopt(x, tf_test_sctx);
  uint64_t id = x->id;
  /* No "open" before the TLS handshake, and the conn waits in HANDSHAKE
   * under the TLS default bound although the policy has 0. */
  assert_int_equal(tf_count(h, VIGIL_EV_OPEN), 0);
  assert_int_equal(vigil_conn_get_state(cc->conn), VIGIL_CONN_HANDSHAKE);
  assert_int_equal(vigil_conn_policy(cc->conn)->handshake_timeout_ms, 10000);
  assert_int_equal(vigil_conn_tls_resumed(cc->conn), -1);
  assert_int_equal(vigil_conn_ready(cc->conn), VIGIL_ESTATE);
  /* Sent during the handshake: goes out once it completes. */
  assert_int_equal(vigil_send(cc->conn, "early ", 6), VIGIL_OK);
  tf_peer_init(peer, tf_test_cctx, peer->fd, 1, "localhost");
  assert_true(vt_run_until(h->loop, tf_peer_handshaken, peer, 3000));
  assert_true(peer->hs_done);
  assert_true(vt_run_until(h->loop, tf_conn_open, cc, 3000));

  const tf_event *op = tf_last(h, VIGIL_EV_OPEN, id);
  assert_non_null(op);
  assert_string_equal(op->detail, "tls");
  assert_int_equal(op->tls_resumed, 0);
  assert_non_null(strstr(op->line, "tls_resumed=0"));
  assert_non_null(strstr(op->line, "keepalive=")); /* sockopts still there */
  assert_int_equal(tf_count(h, VIGIL_EV_READY), 1);
  assert_int_equal(vigil_conn_tls_resumed(cc->conn), 0);
  assert_non_null(vigil_conn_ssl(cc->conn));

  assert_int_equal(tf_peer_send(peer, "hello", 5), 0);
  assert_int_equal(vigil_send(cc->conn, "world", 5), VIGIL_OK);
  pair_wait w = {peer, cc, 11, 5};
  assert_true(vt_run_until(h->loop, got_rx, &w, 3000));
  assert_memory_equal(cc->rx, "hello", 5);
  assert_memory_equal(peer->rx, "early world", 11);
  /* Counters are wire bytes: records and handshake, more than plaintext. */
  vigil_stats st;
  vigil_hub_stats(h->hub, &st);
  assert_true(st.bytes_in > 5 + 200);
  assert_true(st.bytes_out > 11 + 200);
  assert_int_equal(ERR_peek_error(), 0);
}

static void test_one_mib_both_ways(void **state) {
  conn_fx *x = *state;
  tf_connect(&x->h, tf_test_sctx, tf_test_cctx, &x->cc, &x->peer, NULL);
  int small = 32 * 1024;
  setsockopt(vigil_conn_fd(x->cc.conn), SOL_SOCKET, SO_SNDBUF, &small,
             sizeof small);
  size_t total = 1u << 20;
  unsigned char *msg = malloc(total);
  for (size_t i = 0; i < total; i++) msg[i] = (unsigned char)(i * 131u + 7u);
  assert_int_equal(vigil_send(x->cc.conn, msg, total), VIGIL_OK);
  /* The kernel cannot take 1 MiB of records at once: plaintext waits. */
  assert_true(vigil_conn_queued(x->cc.conn) > 0);
  pair_wait w = {&x->peer, &x->cc, total, 0};
  assert_true(vt_run_until(x->h.loop, got_rx, &w, 10000));
  assert_int_equal(x->peer.rx_len, total);
  assert_memory_equal(x->peer.rx, msg, total);
  assert_int_equal(vigil_conn_queued(x->cc.conn), 0);
  /* And the other way, in pieces the loop interleaves with. */
  for (size_t off = 0; off < total; off += 65536) {
    assert_int_equal(tf_peer_send(&x->peer, msg + off, 65536), 0);
    ev_run(x->h.loop, EVRUN_NOWAIT);
  }
  pair_wait w2 = {&x->peer, &x->cc, total, total};
  assert_true(vt_run_until(x->h.loop, got_rx, &w2, 10000));
  assert_int_equal(x->cc.rx_len, total);
  assert_memory_equal(x->cc.rx, msg, total);
  free(msg);
}

/* ---- resumption: a vigil client conn against a vigil server conn ---- */

typedef struct both_open {
  cf_conn *a, *b;
} both_open;

static int both_are_open(void *arg) {
  both_open *o = arg;
  return tf_conn_open(o->a) && tf_conn_open(o->b);
}

typedef struct pair_wait_conns {
  cf_conn *a, *b;
} pair_wait_conns;

static int frames_in(void *arg) {
  pair_wait_conns *w = arg;
  return w->a->rx_len >= 2 && w->b->rx_len >= 4;
}

static int store_ready(void *arg) {
  return vigil_tls_session_resumable(arg);
}

typedef struct resume_case {
  const char *name;
  int max_version; /* 0 = TLS 1.3 */
  int tickets;
  uint32_t cache;
} resume_case;

static const resume_case resume_cases[] = {
    {"resumption: tls1.3 tickets", 0, 1, 0},
    {"resumption: tls1.2 tickets", TLS1_2_VERSION, 1, 0},
    {"resumption: tls1.3 server cache", 0, 0, 64},
    {"resumption: tls1.2 server cache", TLS1_2_VERSION, 0, 64},
};

/* Connects once with a full handshake, then resumed: the open events of
 * both conns say so, and every close is clean. */
static void run_resume_case(void **state) {
  const resume_case *rc = *state;
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.tickets = rc->tickets;
  co.session_cache = rc->cache;
  SSL_CTX *rsctx = NULL;
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert,
                                            tf_test_pki.server_key, NULL, 0,
                                            &co, &rsctx, NULL, 0),
                   VIGIL_OK);
  SSL_CTX *rcctx = tf_client_ctx(&tf_test_pki, NULL, NULL);
  if (rc->max_version) SSL_CTX_set_max_proto_version(rcctx, rc->max_version);
  vigil_tls_session *store;
  assert_int_equal(vigil_tls_session_new(&store), VIGIL_OK);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.session = store;
  for (int round = 0; round < 2; round++) {
    int s, c;
    assert_int_equal(vt_tcp_pair(&s, &c), 0);
    cf_conn srv = {0}, cli = {0};
    assert_int_equal(tf_adopt(&h, s, &srv, rsctx, 0, NULL, NULL), VIGIL_OK);
    assert_int_equal(tf_adopt(&h, c, &cli, rcctx, 1, &to, NULL), VIGIL_OK);
    uint64_t sid = vigil_conn_id(srv.conn), cid = vigil_conn_id(cli.conn);
    both_open bo = {&srv, &cli};
    assert_true(vt_run_until(h.loop, both_are_open, &bo, 3000));
    /* TLS 1.3 tickets come after the handshake: wait for the store. */
    assert_true(vt_run_until(h.loop, store_ready, store, 3000));
    const tf_event *so = tf_last(&h, VIGIL_EV_OPEN, sid);
    const tf_event *co2 = tf_last(&h, VIGIL_EV_OPEN, cid);
    assert_non_null(so);
    assert_non_null(co2);
    if (round == 0) {
      assert_int_equal(so->tls_resumed, 0);
      assert_int_equal(co2->tls_resumed, 0);
    } else {
      assert_int_equal(so->tls_resumed, 1);
      assert_int_equal(co2->tls_resumed, 1);
      assert_non_null(strstr(so->line, "tls_resumed=1"));
    }
    /* A clean close on both sides (the server answers close_notify). */
    srv.close_on_peer_closed = 1;
    vigil_close(cli.conn);
    assert_true(wait_closed(&h, &srv, 3000));
    assert_true(wait_closed(&h, &cli, 3000));
    assert_int_equal(srv.reason, VIGIL_REASON_PEER_CLOSED);
    assert_int_equal(tf_last(&h, VIGIL_EV_CLOSE, sid)->truncated, 0);
    assert_int_equal(srv.closed, 1);
    assert_int_equal(cli.closed, 1);
    cf_conn_free(&srv);
    cf_conn_free(&cli);
  }
  /* The host may drop its store while nothing uses it any more. */
  vigil_tls_session_free(store);
  tf_hub_done(&h);
  SSL_CTX_free(rsctx);
  SSL_CTX_free(rcctx);
}

/* ---- heartbeats over TLS ---- */

static uint64_t g_want_in;
static int bytes_in_reached(void *hub) {
  vigil_stats st;
  vigil_hub_stats(hub, &st);
  return st.bytes_in >= g_want_in;
}

/* Sends len raw bytes from the peer and runs the loop until vigil read
 * them (real I/O; the fake clock stands still meanwhile). */
static void peer_bytes(tf_hub *h, int fd, const void *p, size_t len) {
  vigil_stats st;
  vigil_hub_stats(h->hub, &st);
  g_want_in = st.bytes_in + len;
  assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
  assert_true(vt_run_until(h->loop, bytes_in_reached, h->hub, 2000));
}

/* On the fake clock: a peer that keeps sending stays alive past
 * dead_after; once silent it is dead dead_after (+1 ms: "more than") after
 * its last record, exactly. */
static void test_heartbeat_timeout_over_tls(void **state) {
  conn_fx *x = *state; /* k_dead_after_400 */
  tf_hub *h = &x->h;
  cf_conn *cc = &x->cc;
  tf_connect(h, tf_test_sctx, tf_test_cctx, cc, &x->peer, NULL);
  /* A peer that keeps sending stays alive past dead_after... */
  for (int i = 0; i < 9; i++) {
    pair_wait got = {&x->peer, cc, 0, cc->rx_len + 1};
    assert_int_equal(tf_peer_send(&x->peer, "k", 1), 0);
    assert_true(vt_run_until(h->loop, got_rx, &got, 2000));
    vt_advance(h->loop, h->hub, &x->now, 100);
  }
  assert_int_equal(cc->closed, 0);
  uint64_t last_rx = x->now - 100; /* the last record came before the step */
  /* ...a silent one is dead after it, not a ms earlier. */
  vt_advance(h->loop, h->hub, &x->now, 400 - 100);
  assert_int_equal(cc->closed, 0);
  vt_advance(h->loop, h->hub, &x->now, 1);
  assert_int_equal(cc->closed, 1);
  assert_int_equal(cc->closed_at, last_rx + 400 + 1);
  assert_int_equal(cc->reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  assert_int_equal(tf_count(h, VIGIL_EV_DEAD), 1);
  /* Dead peers get RST, never a close_notify. */
  vt_run_until(h->loop, tf_peer_closed, &x->peer, 1000);
  assert_int_equal(x->peer.zero_return, 0);
}

/* One TLS record written to the socket a byte at a time, slower than
 * dead_after (fake clock): every raw byte is life although no record
 * completes. */
static void test_raw_bytes_count_as_life(void **state) {
  conn_fx *x = *state; /* k_dead_after_300 */
  tf_connect(&x->h, tf_test_sctx, tf_test_cctx, &x->cc, &x->peer, NULL);
  BIO *mem = BIO_new(BIO_s_mem());
  SSL_set0_wbio(x->peer.ssl, mem); /* the record lands in memory */
  assert_int_equal(SSL_write(x->peer.ssl, "x", 1), 1);
  char rec[256];
  int n = BIO_read(mem, rec, sizeof rec);
  assert_true(n > 5);
  for (int i = 0; i < n; i++) {
    peer_bytes(&x->h, x->peer.fd, rec + i, 1);
    vt_advance(x->h.loop, x->h.hub, &x->now, 100);
    assert_int_equal(x->cc.closed, 0);
  }
  /* n * 100 ms >> dead_after, and the record arrived whole. */
  assert_true(n * 100 > 3 * 300);
  assert_int_equal(x->cc.rx_len, 1);
  assert_int_equal(x->cc.rx[0], 'x');
}

/* The frame codec over TLS, both ends vigil: frames both ways, then a
 * peer-first close (GOODBYE) where the client closes first and each side
 * sends close_notify. */
static void test_frame_codec_over_tls(void **state) {
  conn_fx *x = *state; /* k_frame_codec */
  tf_hub *h = &x->h;
  cf_conn *srv = &x->cc, *cli = &x->cli;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(tf_adopt(h, s, srv, tf_test_sctx, 0, NULL, NULL), VIGIL_OK);
  assert_int_equal(tf_adopt(h, c, cli, tf_test_cctx, 1, NULL, NULL), VIGIL_OK);
  uint64_t sid = vigil_conn_id(srv->conn), cid = vigil_conn_id(cli->conn);
  assert_int_equal(vigil_send_data(cli->conn, "up", 2), VIGIL_OK);
  assert_int_equal(vigil_send_data(srv->conn, "down", 4), VIGIL_OK);
  both_open bo = {srv, cli};
  assert_true(vt_run_until(h->loop, both_are_open, &bo, 3000));
  pair_wait_conns w = {srv, cli};
  assert_true(vt_run_until(h->loop, frames_in, &w, 3000));
  assert_memory_equal(srv->rx, "up", 2);
  assert_memory_equal(cli->rx, "down", 4);
  assert_int_equal(vigil_conn_goodbye(srv->conn, VIGIL_GOODBYE_NORMAL, "bye"),
                   VIGIL_OK);
  assert_true(wait_closed(h, srv, 3000));
  assert_true(wait_closed(h, cli, 3000));
  /* The client sent its FIN first (TIME_WAIT on it); the server only
   * answered, so it never drained. */
  assert_non_null(tf_last(h, VIGIL_EV_DRAINING, cid));
  assert_null(tf_last(h, VIGIL_EV_DRAINING, sid));
  assert_int_equal(cli->reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(srv->reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_int_equal(tf_last(h, VIGIL_EV_CLOSE, sid)->truncated, 0);
  assert_int_equal(tf_last(h, VIGIL_EV_CLOSE, cid)->truncated, 0);
  assert_non_null(strstr(tf_last(h, VIGIL_EV_CLOSE, cid)->detail, "goodbye"));
}

static void test_bad_options(void **state) {
  conn_fx *x = *state;
  tf_hub *h = &x->h;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.tls_ctx = tf_test_sctx;
  ao.watch_only = 1;
  vigil_conn *conn = NULL;
  assert_int_equal(vigil_adopt(h->hub, s, &ao, &conn), VIGIL_EINVAL);
  assert_null(conn);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  vigil_tls_session *store;
  assert_int_equal(vigil_tls_session_new(&store), VIGIL_OK);
  to.session = store; /* a session store on a server conn */
  ao.watch_only = 0;
  ao.tls = &to;
  assert_int_equal(vigil_adopt(h->hub, s, &ao, &conn), VIGIL_EINVAL);
  to.session = NULL;
  to.identity_from = (vigil_tls_id_source)9;
  assert_int_equal(vigil_adopt(h->hub, s, &ao, &conn), VIGIL_EINVAL);
  assert_int_equal(vigil_tls_session_resumable(store), 0);
  vigil_tls_session_free(store);
  /* The fd is still ours after every refusal. */
  assert_int_equal(send(s, "x", 1, MSG_NOSIGNAL), 1);
  close(s);
  close(c);
  /* Context helpers: clear errors for bad input. */
  SSL_CTX *ctx = NULL;
  char err[256];
  assert_int_equal(vigil_tls_server_ctx_new(NULL, tf_test_pki.server_key, NULL, 0,
                                            NULL, &ctx, err, sizeof err),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert, tf_test_pki.server_key,
                                            NULL, 1, NULL, &ctx, err,
                                            sizeof err),
                   VIGIL_EINVAL);
  assert_non_null(strstr(err, "ca_file"));
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert, tf_test_pki.ca, NULL, 0,
                                            NULL, &ctx, err, sizeof err),
                   VIGIL_ETLS);
  assert_non_null(strstr(err, tf_test_pki.ca));
  assert_null(ctx);
  assert_int_equal(vigil_tls_server_ctx_new("/nonexistent.pem",
                                            tf_test_pki.server_key, NULL, 0, NULL,
                                            &ctx, err, sizeof err),
                   VIGIL_ETLS);
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.min_version = 0x0301; /* TLS 1.0 */
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert, tf_test_pki.server_key,
                                            NULL, 0, &co, &ctx, err,
                                            sizeof err),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_tls_client_ctx_new(tf_test_pki.ca, tf_test_pki.server_cert, NULL,
                                            NULL, &ctx, err, sizeof err),
                   VIGIL_EINVAL);
  assert_int_equal(ERR_peek_error(), 0);
  assert_null(vigil_conn_ssl(NULL));
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handshake_events_and_echo,
                                      conn_setup, conn_teardown),
      cmocka_unit_test_setup_teardown(test_one_mib_both_ways, conn_setup,
                                      conn_teardown),
      cmocka_unit_test_prestate_setup_teardown(
          test_heartbeat_timeout_over_tls, conn_setup, conn_teardown,
          (void *)&k_dead_after_400),
      cmocka_unit_test_prestate_setup_teardown(
          test_raw_bytes_count_as_life, conn_setup, conn_teardown,
          (void *)&k_dead_after_300),
      cmocka_unit_test_prestate_setup_teardown(
          test_frame_codec_over_tls, conn_setup, conn_teardown,
          (void *)&k_frame_codec),
      cmocka_unit_test_setup_teardown(test_bad_options, conn_setup,
                                      conn_teardown),
  };
  vt_suite s = {0};
  VT_TESTS(&s, tests);
  VT_ROWS(&s, run_resume_case, resume_cases);
  return vt_suite_run(&s, tf_setup_ctx, tf_teardown_ctx);
}
