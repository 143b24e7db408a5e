/*
 * The frame codec on real loopback connections (policy.frame_codec): a vigil
 * conn on one end, a raw socket speaking frames by hand on the other, or
 * vigil on both ends. Covers DATA both ways, PING/PONG, vigil's own pings,
 * HELLO, GOODBYE in both directions, malformed input, byte-at-a-time
 * delivery, parser memory, and where TIME_WAIT lands on close.
 *
 * The hub runs on a fake clock: sockets are real, but pings, idle closes
 * and the GOODBYE hold's bound happen when a test moves time (fx_advance),
 * at exact moments, and never while a test waits for real I/O. Most tests
 * share one fixture (one vigil conn and a raw peer, set up and checked
 * closed by fx_conn_setup/fx_conn_teardown: tests/support/codecfix.h),
 * with the conn's variant as cmocka's prestate.
 */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codecfix.h"
#include "conn.h"
#include "hub.h"
#include "testutil.h"
#include "vigil.h"

static int data_n(void *arg) { return ((fx_rec *)arg)->ndata >= 3; }

static const fx_variant k_codec_off = {.codec_off = 1};
static const fx_variant k_pinging = {.ping_interval_ms = 100};
static const fx_variant k_handshake = {.handshake_timeout_ms = 5000};
static const fx_variant k_handshake_auto = {.handshake_timeout_ms = 5000,
                                            .cb = &fx_cb_auto};

/* ---- tests ------------------------------------------------------------- */

static void test_data_both_ways(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  /* Two frames in one segment, then one split in the middle. */
  uint8_t buf[256];
  int a = vigil_frame_encode(VIGIL_FRAME_DATA, "one", 3, buf, sizeof buf);
  int b = vigil_frame_encode(VIGIL_FRAME_DATA, "", 0, buf + a, sizeof buf - a);
  fx_raw_send_bytes(w, buf, (size_t)(a + b));
  int c = vigil_frame_encode(VIGIL_FRAME_DATA, "three", 5, buf, sizeof buf);
  fx_raw_send_bytes(w, buf, 6);
  vt_run_until(f->loop, NULL, NULL, 20);
  fx_raw_send_bytes(w, buf + 6, (size_t)c - 6);
  assert_true(vt_run_until(f->loop, data_n, r, 1000));
  assert_int_equal(r->ndata, 3);
  assert_int_equal(r->data_len[0], 3);
  assert_memory_equal(r->data[0], "one", 3);
  assert_int_equal(r->data_len[1], 0); /* an empty DATA is still a message */
  assert_int_equal(r->data_len[2], 5);
  assert_memory_equal(r->data[2], "three", 5);

  /* vigil -> raw: small (stack path) and large (header + payload path). */
  assert_int_equal(vigil_send_data(r->conn, "hello", 5), VIGIL_OK);
  static uint8_t big[20000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = fx_pattern(i);
  assert_int_equal(vigil_send_data(r->conn, big, sizeof big), VIGIL_OK);
  assert_true(fx_raw_wait(f, w, 2, 1000));
  assert_int_equal(w->f[0].type, VIGIL_FRAME_DATA);
  assert_int_equal(w->f[0].len, 5);
  assert_memory_equal(w->f[0].data, "hello", 5);
  assert_int_equal(w->f[1].type, VIGIL_FRAME_DATA);
  assert_int_equal(w->f[1].len, sizeof big);
  assert_memory_equal(w->f[1].data, big, 300);

  /* Over max_frame is refused before anything is sent. */
  static uint8_t huge[65537];
  assert_int_equal(vigil_send_data(r->conn, huge, sizeof huge), VIGIL_EINVAL);
  assert_int_equal(vigil_send_data(NULL, "x", 1), VIGIL_EINVAL);
}

/* A conn closed from inside on_data gets no further frame, even from the
 * same read. */
static void test_close_inside_callback_stops_parsing(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  r->close_on_data = 1;
  uint8_t buf[64];
  int a = vigil_frame_encode(VIGIL_FRAME_DATA, "a", 1, buf, sizeof buf);
  int b = vigil_frame_encode(VIGIL_FRAME_DATA, "b", 1, buf + a, sizeof buf - a);
  int p = vigil_frame_encode(VIGIL_FRAME_PING, NULL, 0, buf + a + b,
                             sizeof buf - a - b);
  fx_raw_send_bytes(w, buf, (size_t)(a + b + p));
  assert_true(fx_raw_wait_eof(f, w, 1000));
  assert_int_equal(r->ndata, 1);
  assert_int_equal(w->n, 0); /* the PING after it was not answered either */
  fx_raw_done(w);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_CLOSED_BY_HOST);
}

static void test_codec_off_refuses_codec_calls(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  assert_int_equal(vigil_send_data(r->conn, "x", 1), VIGIL_ESTATE);
  assert_int_equal(vigil_conn_goodbye(r->conn, 0, NULL), VIGIL_ESTATE);
  /* Raw bytes go straight to on_data without the codec. */
  fx_raw_send_bytes(w, "GET /", 5);
  fx_raw_send_bytes(w, "x", 1);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_true(r->ndata >= 1);
  assert_int_equal(r->closed, 0);
}

static void test_ping_answered_with_pong(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  fx_raw_send(w, VIGIL_FRAME_PING, "ABCDEFGH", 8);
  fx_raw_send(w, VIGIL_FRAME_PING, NULL, 0);
  assert_true(fx_raw_wait(f, w, 2, 1000));
  assert_int_equal(w->f[0].type, VIGIL_FRAME_PONG);
  assert_int_equal(w->f[0].len, 8);
  assert_memory_equal(w->f[0].data, "ABCDEFGH", 8);
  assert_int_equal(w->f[1].type, VIGIL_FRAME_PONG);
  assert_int_equal(w->f[1].len, 0);
  assert_int_equal(r->ndata, 0); /* heartbeats never reach on_data */
}

static void test_vigil_pings_at_interval(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  /* One per interval of silence (each PING is the silence's end): not a
   * ms earlier, and exactly at it. */
  uint64_t t0 = f->now;
  for (int i = 0; i < 3; i++) {
    fx_advance(f, 99);
    assert_int_equal(f->events[VIGIL_EV_PING_DUE], i);
    fx_advance(f, 1);
    assert_int_equal(f->events[VIGIL_EV_PING_DUE], i + 1);
    assert_true(fx_raw_wait(f, w, i + 1, 1000));
    assert_int_equal(w->f[i].type, VIGIL_FRAME_PING);
    assert_int_equal(w->f[i].len, 8); /* token: the sender's clock */
    uint64_t token = 0;
    for (int k = 0; k < 8; k++) token = token << 8 | w->f[i].data[k];
    assert_int_equal(token, t0 + 100u * (unsigned)(i + 1));
  }
  assert_int_equal(r->pings_due, 0); /* vigil pinged; the host was not asked */
}

static void test_hello_callback(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  fx_raw_send(w, VIGIL_FRAME_HELLO, "dev-1", 5);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_int_equal(r->hellos, 1);
  assert_string_equal(r->hello, "dev-1");
  /* With on_hello the host decides: still in the handshake. */
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_HANDSHAKE);
  assert_null(vigil_conn_identity(r->conn));
}

static void test_hello_auto_identify(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_HANDSHAKE);
  fx_raw_send(w, VIGIL_FRAME_HELLO, "sensor-42", 9);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_int_equal(r->hellos, 0);
  assert_non_null(vigil_conn_identity(r->conn));
  assert_string_equal(vigil_conn_identity(r->conn), "sensor-42");
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "sensor-42", 9), r->conn);
  /* HELLO completes the handshake when vigil handles it. */
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_OPEN);
  assert_int_equal(f->events[VIGIL_EV_READY], 1);
  /* A second HELLO breaks the protocol. */
  fx_raw_send(w, VIGIL_FRAME_HELLO, "other", 5);
  assert_true(fx_raw_wait_eof(f, w, 1000));
  assert_int_equal(w->n, 1);
  assert_int_equal(w->f[0].type, VIGIL_FRAME_GOODBYE);
  fx_raw_done(w);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_PROTOCOL_ERROR);
  assert_string_equal(r->detail,
                      "second HELLO: an identity is claimed only once");
}

static void test_goodbye_from_peer(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  fx_raw_send(w, VIGIL_FRAME_DATA, "last", 4);
  uint8_t buf[64];
  int n = vigil_frame_encode_goodbye(VIGIL_GOODBYE_GOING_AWAY, "rebooting",
                                     buf, sizeof buf);
  fx_raw_send_bytes(w, buf, (size_t)n);
  /* vigil closes first, as asked: our raw peer sees its FIN... */
  assert_true(fx_raw_wait_eof(f, w, 1000));
  assert_int_equal(w->n, 0); /* ...and no GOODBYE back: it closed on request */
  assert_int_equal(r->ndata, 1);
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_DRAINING);
  fx_raw_done(w);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_PEER_CLOSED);
  assert_string_equal(r->detail, "goodbye going_away: rebooting");
}

/* Malformed input: the close detail is the parser's description, and the
 * peer is told the same in a GOODBYE protocol_error before our FIN. */
static void test_malformed_input(void **state) {
  (void)state;
  static const struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    const char *detail;
  } rows[] = {
      {"http", "GET / HTTP/1.1\r\n", 16,
       "bad magic byte 0x47, expected 0xF7 (HTTP or other text?)"},
      {"tls", {0x16, 0x03, 0x01}, 3,
       "bad magic byte 0x16, expected 0xF7 (TLS handshake?)"},
      {"version 2", {0xF7, 0x02, 0x04, 0, 0, 0, 0, 1, 'x'}, 9,
       "version 2 is not supported (we speak 1)"},
      {"unknown type", {0xF7, 0x01, 0x09, 0, 0, 0, 0, 0}, 8,
       "frame type 0x09 is unknown"},
      {"flags", {0xF7, 0x01, 0x04, 0x01}, 4,
       "flags 0x01 are set; version 1 allows none"},
      {"oversized", {0xF7, 0x01, 0x04, 0, 0, 0, 0x07, 0xD0}, 8,
       "payload length 2000 exceeds max_frame 1024"},
      {"bad token", {0xF7, 0x01, 0x02, 0, 0, 0, 0, 3}, 8,
       "PING length 3 is invalid: token must be 0 or 8 bytes"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    fx_hub f;
    fx_rec r;
    fx_raw w;
    fx_init(&f);
    vigil_policy p = f.policy;
    p.max_frame = 1024;
    fx_pair(&f, &r, &w, &p, NULL);
    fx_raw_send(&w, VIGIL_FRAME_DATA, "ok", 2); /* delivered before the fault */
    fx_raw_send_bytes(&w, rows[i].bytes, rows[i].len);
    if (!fx_raw_wait_eof(&f, &w, 1000)) fail_msg("%s: no FIN", rows[i].name);
    assert_int_equal(r.ndata, 1);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.f[0].type, VIGIL_FRAME_GOODBYE);
    unsigned code;
    const char *text;
    size_t tlen;
    assert_int_equal(vigil_frame_goodbye_decode(w.f[0].data, w.f[0].len,
                                                &code, &text, &tlen),
                     VIGIL_OK);
    assert_int_equal(code, VIGIL_GOODBYE_PROTOCOL_ERROR);
    if (tlen != strlen(rows[i].detail) ||
        memcmp(text, rows[i].detail, tlen) != 0)
      fail_msg("%s: GOODBYE text '%.*s'", rows[i].name, (int)tlen, text);
    fx_raw_done(&w);
    assert_true(vt_run_until(f.loop, fx_rec_closed, &r, 1000));
    assert_int_equal(r.reason, VIGIL_REASON_PROTOCOL_ERROR);
    if (strcmp(r.detail, rows[i].detail) != 0)
      fail_msg("%s: detail '%s'", rows[i].name, r.detail);
    fx_done(&f);
  }
}

static int got_bytes(void *arg) {
  vigil_conn *c = ((void **)arg)[0];
  uint64_t want = *(uint64_t *)((void **)arg)[1];
  return c->bytes_in >= want;
}

static size_t parser_held(vigil_conn *c) {
  /* proto_frame.c keeps the parser first in its state. */
  return c->ext && c->ext->proto_state
             ? vigil_frame_parser_held((vigil_frame_parser *)c->ext->proto_state)
             : 0;
}

static void test_byte_at_a_time(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  static uint8_t big[1500];
  for (size_t i = 0; i < sizeof big; i++) big[i] = fx_pattern(i);
  uint8_t stream[2048];
  size_t len = 0;
  len += (size_t)vigil_frame_encode(VIGIL_FRAME_HELLO, "p1", 2, stream + len,
                                    sizeof stream - len);
  len += (size_t)vigil_frame_encode(VIGIL_FRAME_DATA, "abc", 3, stream + len,
                                    sizeof stream - len);
  len += (size_t)vigil_frame_encode(VIGIL_FRAME_PING, "12345678", 8,
                                    stream + len, sizeof stream - len);
  len += (size_t)vigil_frame_encode(VIGIL_FRAME_DATA, big, sizeof big,
                                    stream + len, sizeof stream - len);
  size_t max_held = 0;
  uint64_t want = 0;
  void *arg[2] = {r->conn, &want};
  for (size_t i = 0; i < len; i++) {
    fx_raw_send_bytes(w, stream + i, 1);
    want = i + 1;
    if (!vt_run_until(f->loop, got_bytes, arg, 1000))
      fail_msg("byte %zu not received", i);
    size_t h = parser_held(r->conn);
    if (h > max_held) max_held = h;
  }
  assert_int_equal(r->hellos, 1);
  assert_string_equal(r->hello, "p1");
  assert_int_equal(r->ndata, 2);
  assert_int_equal(r->data_len[0], 3);
  assert_memory_equal(r->data[0], "abc", 3);
  assert_int_equal(r->data_len[1], sizeof big);
  assert_true(r->big_ok);
  assert_true(fx_raw_wait(f, w, 1, 1000));
  assert_int_equal(w->f[0].type, VIGIL_FRAME_PONG);
  assert_memory_equal(w->f[0].data, "12345678", 8);
  /* The split 1500-byte payload needed a buffer (2048 = next power of 2);
   * a read that needs none gives it back: idle conns hold nothing. */
  assert_int_equal(max_held, 2048);
  fx_raw_send(w, VIGIL_FRAME_PONG, NULL, 0);
  want = r->conn->bytes_in + 8;
  assert_true(vt_run_until(f->loop, got_bytes, arg, 1000));
  assert_int_equal(parser_held(r->conn), 0);
}

/* ---- peer-first close and TIME_WAIT ------------------------------------- */

static uint16_t local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

/* TIME_WAIT sockets with local port `local` and a peer port for which
 * peers[port] is set (the exact connections a test made: other tests may
 * leave TIME_WAIT on the same ports). */
static uint32_t time_wait_where(uint16_t local, const uint8_t *peers) {
  vigil_census_query q;
  vigil_census *c;
  vigil_census_query_init(&q);
  q.ports = &local;
  q.nports = 1;
  q.states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_TIME_WAIT);
  q.want_self = 0;
  q.max_sockets = 0;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  uint32_t n = 0;
  for (size_t i = 0; i < c->nsockets; i++)
    if (c->sockets[i].id.local_port == local &&
        peers[c->sockets[i].id.peer_port])
      n++;
  vigil_census_free(c);
  return n;
}

/* TIME_WAIT sockets of the one connection local <-> peer on this end. */
static uint32_t time_wait_on(uint16_t local, uint16_t peer) {
  static uint8_t peers[65536];
  memset(peers, 0, sizeof peers);
  peers[peer] = 1;
  return time_wait_where(local, peers);
}

static void test_goodbye_hold_then_peer_fin(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  uint16_t sport = local_port(vigil_conn_fd(r->conn));
  uint16_t cport = local_port(w->fd);
  assert_int_equal(vigil_conn_goodbye(r->conn, VIGIL_GOODBYE_SHUTDOWN,
                                      "maintenance"),
                   VIGIL_OK);
  assert_int_equal(vigil_conn_goodbye(r->conn, 0, NULL), VIGIL_ECLOSED);
  assert_int_equal(vigil_send(r->conn, "x", 1), VIGIL_ECLOSED);
  assert_true(fx_raw_wait(f, w, 1, 1000));
  assert_int_equal(fx_raw_goodbye_code(w, 0), VIGIL_GOODBYE_SHUTDOWN);
  /* vigil holds its FIN: the conn waits in FLUSHING, the socket is still
   * ESTABLISHED on both ends, and input is read (and dropped). */
  vt_run_until(f->loop, NULL, NULL, 100);
  assert_false(w->eof);
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_FLUSHING);
  assert_int_equal(vt_tcp_state(vigil_conn_fd(r->conn)), VIGIL_TCP_ESTABLISHED);
  assert_int_equal(vt_tcp_state(w->fd), VIGIL_TCP_ESTABLISHED);
  fx_raw_send(w, VIGIL_FRAME_DATA, "late", 4);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_int_equal(r->ndata, 0);
  /* The peer closes first; vigil answers with its own FIN at once. */
  shutdown(w->fd, SHUT_WR);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_true(fx_raw_wait_eof(f, w, 1000));
  fx_raw_done(w);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_int_equal(time_wait_on(sport, cport), 0);
  assert_int_equal(time_wait_on(cport, sport), 1);
}

static void test_goodbye_unanswered_falls_back(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  uint16_t sport = local_port(vigil_conn_fd(r->conn));
  uint16_t cport = local_port(w->fd);
  assert_int_equal(vigil_conn_goodbye(r->conn, VIGIL_GOODBYE_NORMAL, NULL),
                   VIGIL_OK);
  /* A peer that ignores GOODBYE: vigil closes first after drain_timeout
   * (300 ms) since its last byte, not a ms earlier. */
  assert_true(fx_raw_wait(f, w, 1, 1000));
  fx_advance(f, 300);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_false(w->eof);
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_FLUSHING);
  fx_advance(f, 1);
  assert_true(fx_raw_wait_eof(f, w, 2000));
  assert_int_equal(vigil_conn_get_state(r->conn), VIGIL_CONN_DRAINING);
  fx_raw_done(w);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_string_equal(r->detail, "no FIN after GOODBYE: closed first");
  assert_int_equal(time_wait_on(sport, cport), 1);
}

/* A live codec conn displaced by a takeover: its last DATA, then GOODBYE
 * taken_over, and the peer-first hold (bounded by the takeover bound, 100
 * ms, not drain_timeout). A peer that closes on it gets a clean close
 * with TIME_WAIT on its side; one that ignores it gets our FIN after the
 * bound and an RST after another. */
static void takeover_of_codec_conn(int peer_closes) {
  fx_hub f;
  fx_init(&f);
  f.policy.drain_timeout_ms = 1000; /* so the bound is visibly tighter */
  fx_rec r1, r2;
  fx_raw w1, w2;
  fx_pair(&f, &r1, &w1, &f.policy, NULL);
  fx_pair(&f, &r2, &w2, &f.policy, NULL);
  uint16_t sport = local_port(vigil_conn_fd(r1.conn));
  uint16_t cport = local_port(w1.fd);
  assert_int_equal(vigil_conn_identify(r1.conn, "dev", 3), VIGIL_OK);
  assert_int_equal(vigil_send_data(r1.conn, "last", 4), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(r2.conn, "dev", 3), VIGIL_OK);
  assert_true(fx_raw_wait(&f, &w1, 2, 1000));
  assert_int_equal(w1.f[0].type, VIGIL_FRAME_DATA);
  assert_memory_equal(w1.f[0].data, "last", 4);
  assert_int_equal(fx_raw_goodbye_code(&w1, 1), VIGIL_GOODBYE_TAKEOVER);
  assert_int_equal(vigil_conn_get_state(r1.conn), VIGIL_CONN_FLUSHING);
  if (peer_closes) {
    shutdown(w1.fd, SHUT_WR);
    assert_true(vt_run_until(f.loop, fx_rec_closed, &r1, 1000));
    assert_int_equal(r1.reason, VIGIL_REASON_TAKEOVER);
    assert_true(fx_raw_wait_eof(&f, &w1, 1000));
    fx_raw_done(&w1);
    vt_run_until(f.loop, NULL, NULL, 20);
    assert_int_equal(time_wait_on(sport, cport), 0);
    assert_int_equal(time_wait_on(cport, sport), 1);
  } else {
    vt_run_until(f.loop, NULL, NULL, 20); /* GOODBYE acknowledged */
    fx_advance(&f, 100);
    assert_false(w1.eof); /* the hold lasts the bound, to the ms */
    fx_advance(&f, 1);
    assert_true(fx_raw_wait_eof(&f, &w1, 1000));
    assert_int_equal(vigil_conn_get_state(r1.conn), VIGIL_CONN_DRAINING);
    fx_advance(&f, 101);
    assert_true(vt_run_until(f.loop, fx_rec_closed, &r1, 1000));
    assert_int_equal(r1.reason, VIGIL_REASON_TAKEOVER);
    assert_int_equal(vt_tcp_state(w1.fd), VIGIL_TCP_CLOSE); /* reset */
    fx_raw_done(&w1);
  }
  fx_raw_done(&w2);
  assert_true(vt_run_until(f.loop, fx_rec_closed, &r2, 1000));
  fx_done(&f);
}

static void test_takeover_goodbye_then_peer_fin(void **state) {
  (void)state;
  takeover_of_codec_conn(1);
}

static void test_takeover_goodbye_ignored_is_bounded(void **state) {
  (void)state;
  takeover_of_codec_conn(0);
}

/* Policy closes (idle here, shutdown below) send GOODBYE with the reason's
 * code and let a vigil peer close first: TIME_WAIT lands on the peer. */
static void test_policy_close_sends_goodbye(void **state) {
  (void)state;
  fx_hub f;
  fx_rec rs, rc;
  fx_init(&f);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  uint16_t sport = local_port(s), cport = local_port(c);
  vigil_policy ps = f.policy;
  ps.all_idle_ms = 100;
  ps.idle_action = VIGIL_IDLE_CLOSE;
  fx_adopt(&f, s, &rs, &ps, NULL);
  fx_adopt(&f, c, &rc, NULL, NULL);
  fx_advance(&f, 99);
  assert_int_equal(f.events[VIGIL_EV_CLOSE], 0);
  fx_advance(&f, 1); /* all_idle: the server closes, GOODBYE first */
  assert_true(vt_run_until(f.loop, fx_rec_closed, &rs, 2000));
  assert_true(vt_run_until(f.loop, fx_rec_closed, &rc, 1000));
  assert_int_equal(rs.reason, VIGIL_REASON_IDLE_TIMEOUT);
  assert_int_equal(rc.reason, VIGIL_REASON_PEER_CLOSED);
  assert_string_equal(rc.detail, "goodbye idle_timeout");
  assert_string_equal(rs.detail, "");
  vt_run_until(f.loop, NULL, NULL, 20);
  assert_int_equal(time_wait_on(sport, cport), 0);
  assert_int_equal(time_wait_on(cport, sport), 1);
  fx_done(&f);
}

static void test_shutdown_sends_goodbye(void **state) {
  fx_tc *t = *state;
  fx_hub *f = &t->f;
  fx_rec *r = &t->r;
  fx_raw *w = &t->w;
  assert_int_equal(vigil_hub_shutdown(f->hub, 5000, NULL, NULL), VIGIL_OK);
  assert_true(fx_raw_wait(f, w, 1, 1000));
  assert_int_equal(fx_raw_goodbye_code(w, 0), VIGIL_GOODBYE_SHUTDOWN);
  vt_run_until(f->loop, NULL, NULL, 50);
  assert_false(w->eof); /* held for the peer's FIN */
  shutdown(w->fd, SHUT_WR);
  assert_true(vt_run_until(f->loop, fx_rec_closed, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_SHUTDOWN);
  assert_true(fx_raw_wait_eof(f, w, 1000));
  fx_raw_done(w);
}

/* ---- TIME_WAIT census over many short connections ----------------------- */

typedef struct tw {
  fx_hub *f;
  int peer_first;
  int accepted, server_closed, client_closed;
  fx_rec srv[64], cli[64];
} tw;

static void tw_srv_data(vigil_conn *c, const void *d, size_t len, void *ud) {
  (void)d;
  (void)len;
  tw *t = ud;
  /* The request arrived: the server ends the exchange. */
  if (t->peer_first)
    vigil_conn_goodbye(c, VIGIL_GOODBYE_NORMAL, NULL);
  else
    vigil_close(c);
}

static void tw_srv_close(vigil_conn *c, vigil_reason r, void *ud) {
  (void)c;
  (void)r;
  ((tw *)ud)->server_closed++;
}

static void tw_cli_close(vigil_conn *c, vigil_reason r, void *ud) {
  (void)c;
  (void)r;
  ((tw *)ud)->client_closed++;
}

static const vigil_conn_callbacks k_tw_srv = {
    .on_data = tw_srv_data, .on_close = tw_srv_close};
static const vigil_conn_callbacks k_tw_cli = {.on_close = tw_cli_close};

static void tw_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l;
  vigil_conn_set_user_data(c, ud);
  ((tw *)ud)->accepted++;
}

static int tw_batch_done(void *arg) {
  tw *t = arg;
  return t->server_closed == t->accepted && t->client_closed == t->accepted &&
         t->accepted > 0;
}

/* Runs n request/close exchanges; returns TIME_WAIT counts on the server
 * port (*srv) and on the clients' side (*cli). */
static void tw_run(int n, int peer_first, uint32_t *srv, uint32_t *cli,
                   uint64_t *ms) {
  fx_hub f;
  fx_init(&f);
  f.foreign_user_data = 1;
  tw t;
  memset(&t, 0, sizeof t);
  t.f = &f;
  t.peer_first = peer_first;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = &k_tw_srv;
  lo.adopt.user_data = &t;
  lo.on_accept = tw_accept;
  lo.accept_data = &t;
  vigil_listener *l;
  assert_int_equal(vigil_listen(f.hub, &lo, &l), VIGIL_OK);
  uint16_t port = vigil_listener_port(l);
  uint64_t t0 = vt_now_ms();
  static uint16_t cports[4096];
  int ncports = 0;
  for (int done = 0; done < n;) {
    int batch = n - done < 50 ? n - done : 50;
    t.accepted = t.server_closed = t.client_closed = 0;
    for (int i = 0; i < batch; i++) {
      int fd = vt_connect_loopback(port);
      assert_true(fd >= 0);
      if (ncports < 4096) cports[ncports++] = local_port(fd);
      vigil_adopt_options ao;
      vigil_adopt_options_init(&ao);
      ao.callbacks = &k_tw_cli;
      ao.user_data = &t;
      vigil_conn *c;
      assert_int_equal(vigil_adopt(f.hub, fd, &ao, &c), VIGIL_OK);
      assert_int_equal(vigil_send_data(c, "req", 3), VIGIL_OK);
    }
    int ok = vt_run_until(f.loop, tw_batch_done, &t, 5000);
    if (!ok || t.accepted != batch)
      fail_msg("batch: accepted %d server_closed %d client_closed %d",
               t.accepted, t.server_closed, t.client_closed);
    done += batch;
  }
  *ms = vt_now_ms() - t0;
  vt_run_until(f.loop, NULL, NULL, 20);
  /* One census of the listener's port, both ends: server ends have it
   * as local port, client ends as peer port. Only our clients count. */
  static uint8_t clients[65536];
  memset(clients, 0, sizeof clients);
  for (int i = 0; i < ncports; i++) clients[cports[i]] = 1;
  vigil_census_query q;
  vigil_census *c;
  vigil_census_query_init(&q);
  q.ports = &port;
  q.nports = 1;
  q.port_match = VIGIL_CENSUS_MATCH_EITHER;
  q.states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_TIME_WAIT);
  q.want_self = 0;
  q.max_sockets = 0;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  *srv = *cli = 0;
  for (size_t i = 0; i < c->nsockets; i++) {
    const vigil_census_sockid *id = &c->sockets[i].id;
    if (id->local_port == port && clients[id->peer_port]) ++*srv;
    if (id->peer_port == port && clients[id->local_port]) ++*cli;
  }
  vigil_census_free(c);
  fx_done(&f);
}

static void test_time_wait_census(void **state) {
  (void)state;
  const char *env = getenv("VIGIL_TW_CONNS");
  int n = env ? atoi(env) : 200;
  if (n < 10 || n > 4000) n = 200;
  uint32_t srv_plain, cli_plain, srv_pf, cli_pf;
  uint64_t ms_plain, ms_pf;
  tw_run(n, 0, &srv_plain, &cli_plain, &ms_plain);
  tw_run(n, 1, &srv_pf, &cli_pf, &ms_pf);
  printf("TIME_WAIT after %d connections: server closes first (vigil_close): "
         "server %u, clients %u (%llu ms); peer-first (GOODBYE): server %u, "
         "clients %u (%llu ms)\n",
         n, srv_plain, cli_plain, (unsigned long long)ms_plain, srv_pf,
         cli_pf, (unsigned long long)ms_pf);
  assert_true(srv_plain >= (uint32_t)n * 95 / 100);
  assert_true(cli_plain <= (uint32_t)n * 5 / 100);
  assert_true(srv_pf <= (uint32_t)n * 1 / 100);
  assert_true(cli_pf >= (uint32_t)n * 95 / 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_data_both_ways, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test_setup_teardown(test_close_inside_callback_stops_parsing, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test_prestate_setup_teardown(test_codec_off_refuses_codec_calls, fx_conn_setup,
                                               fx_conn_teardown, (void *)&k_codec_off),
      cmocka_unit_test_setup_teardown(test_ping_answered_with_pong, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test_prestate_setup_teardown(test_vigil_pings_at_interval, fx_conn_setup,
                                               fx_conn_teardown, (void *)&k_pinging),
      cmocka_unit_test_prestate_setup_teardown(test_hello_callback, fx_conn_setup,
                                               fx_conn_teardown, (void *)&k_handshake),
      cmocka_unit_test_prestate_setup_teardown(test_hello_auto_identify, fx_conn_setup,
                                               fx_conn_teardown, (void *)&k_handshake_auto),
      cmocka_unit_test(test_takeover_goodbye_then_peer_fin),
      cmocka_unit_test(test_takeover_goodbye_ignored_is_bounded),
      cmocka_unit_test_setup_teardown(test_goodbye_from_peer, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test(test_malformed_input),
      cmocka_unit_test_setup_teardown(test_byte_at_a_time, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test_setup_teardown(test_goodbye_hold_then_peer_fin, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test_setup_teardown(test_goodbye_unanswered_falls_back, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test(test_policy_close_sends_goodbye),
      cmocka_unit_test_setup_teardown(test_shutdown_sends_goodbye, fx_conn_setup,
                                      fx_conn_teardown),
      cmocka_unit_test(test_time_wait_census),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
