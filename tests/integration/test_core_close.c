/*
 * Close semantics on real loopback sockets: shutdown-send-first graceful
 * close delivers everything queued, a peer that never closes is cut at
 * drain_timeout, peer FIN and CLOSE_WAIT handling (half-close reply,
 * close_wait_grace, no CLOSE_WAIT left in the kernel), peer RST, handshake
 * timeout and output overflow.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"

#define TICK 10
/* Upper slack of the close-latency checks (wider under valgrind). */
#define SLACK vt_slack_ms(25)

static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Sockets in a state on a local port (census over sock_diag). */
static uint32_t count_state(uint16_t port, int state) {
  vigil_census_query q;
  vigil_census *cs = NULL;
  vigil_census_query_init(&q);
  q.ports = &port;
  q.nports = 1;
  q.want_sockets = 0;
  assert_int_equal(vigil_census_run(&q, &cs), VIGIL_OK);
  uint32_t n = cs->counts[state];
  vigil_census_free(cs);
  return n;
}

typedef struct reader {
  int fd;
  char *buf;
  size_t len, cap;
  int eof;
} reader;

static int read_to_eof(void *arg) {
  reader *r = arg;
  for (;;) {
    if (r->len == r->cap) {
      r->cap = r->cap ? r->cap * 2 : 65536;
      r->buf = realloc(r->buf, r->cap);
    }
    long n = vt_read_avail(r->fd, r->buf + r->len, r->cap - r->len, &r->eof);
    if (n <= 0) break;
    r->len += (size_t)n;
  }
  return r->eof;
}

static void test_graceful_close_delivers_1mib(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  /* Small kernel buffers so most of the 1 MiB must wait in vigil's own
   * queue when vigil_close is called. */
  int small = 32 * 1024;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  size_t total = 1u << 20;
  unsigned char *msg = malloc(total);
  for (size_t i = 0; i < total; i++) msg[i] = (unsigned char)(i * 131u + 7u);
  assert_int_equal(vigil_send(cc.conn, msg, total), VIGIL_OK);
  /* Loopback buffers do not take 1 MiB at once: most of it is queued. */
  assert_true(vigil_conn_queued(cc.conn) > 0);
  assert_int_equal(vigil_close(cc.conn), VIGIL_OK);
  assert_int_equal(vigil_send(cc.conn, "late", 4), VIGIL_ECLOSED);
  reader r = {.fd = c};
  assert_true(vt_run_until(h.loop, read_to_eof, &r, 5000));
  assert_int_equal(r.len, total);
  assert_memory_equal(r.buf, msg, total);
  assert_int_equal(cf_count(&h, VIGIL_EV_DRAINING), 1);
  assert_int_equal(cc.closed, 0); /* waiting for our peer's FIN */
  close(c);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_CLOSED_BY_HOST);
  const cf_event *cl = cf_last(&h, VIGIL_EV_CLOSE);
  assert_int_equal(cl->cause, VIGIL_REASON_NONE);
  free(r.buf);
  free(msg);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_drain_cut_when_peer_never_closes(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.drain_timeout_ms = 200;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vigil_send(cc.conn, "hello\n", 6);
  uint64_t t0 = vt_now_ms();
  vigil_close(cc.conn);
  assert_true(cf_wait_closed(&h, &cc, 2000));
  uint64_t took = cc.closed_at - t0;
  assert_int_equal(cc.reason, VIGIL_REASON_DRAIN_TIMEOUT);
  const cf_event *cl = cf_last(&h, VIGIL_EV_CLOSE);
  assert_int_equal(cl->cause, VIGIL_REASON_CLOSED_BY_HOST);
  assert_true(took >= 200 && took <= 200 + TICK + SLACK);
  /* The peer got our data and FIN; it simply never answered. */
  char buf[16];
  int eof = 0;
  assert_int_equal(vt_read_avail(c, buf, sizeof buf, &eof), 6);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_peer_fin_half_close_reply(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cc.reply_on_peer_closed = 1;
  cc.close_on_peer_closed = 1;
  cf_adopt(&h, s, &cc, NULL);
  assert_int_equal(send(c, "last words\n", 11, 0), 11);
  shutdown(c, SHUT_WR);
  reader r = {.fd = c};
  assert_true(vt_run_until(h.loop, read_to_eof, &r, 2000));
  /* The host's reply after the peer's FIN reached the peer, then EOF. */
  assert_int_equal(r.len, 4);
  assert_memory_equal(r.buf, "bye\n", 4);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.peer_closed, 1);
  assert_int_equal(cc.rx_len, 11);
  assert_int_equal(cc.reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(cf_count(&h, VIGIL_EV_PEER_FIN), 1);
  free(r.buf);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_close_wait_grace(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.close_wait_grace_ms = 300;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  uint16_t port = local_port(s);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  shutdown(c, SHUT_WR);
  uint64_t t0 = vt_now_ms();
  vt_run_until(h.loop, NULL, NULL, 100);
  /* The host was told and did nothing: the kernel holds CLOSE_WAIT. */
  assert_int_equal(cc.peer_closed, 1);
  assert_int_equal(vigil_conn_get_state(cc.conn), VIGIL_CONN_CLOSE_WAIT);
  assert_int_equal(count_state(port, VIGIL_TCP_CLOSE_WAIT), 1);
  assert_true(cf_wait_closed(&h, &cc, 2000));
  uint64_t took = cc.closed_at - t0;
  assert_int_equal(cc.reason, VIGIL_REASON_CLOSE_WAIT_TIMEOUT);
  assert_true(took >= 300 && took <= 300 + TICK + SLACK);
  /* ...and none is left afterwards. */
  assert_int_equal(count_state(port, VIGIL_TCP_CLOSE_WAIT), 0);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_peer_fin_without_callback_closes(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  vigil_conn *conn;
  assert_int_equal(vigil_adopt(h.hub, s, &ao, &conn), VIGIL_OK);
  shutdown(c, SHUT_WR);
  reader r = {.fd = c};
  assert_true(vt_run_until(h.loop, read_to_eof, &r, 1000));
  vt_run_until(h.loop, NULL, NULL, 20);
  const cf_event *cl = cf_last(&h, VIGIL_EV_CLOSE);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_PEER_CLOSED);
  free(r.buf);
  close(c);
  cf_hub_done(&h);
}

static void test_peer_reset(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  struct linger lg = {1, 0};
  setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_PEER_RESET);
  assert_int_equal(cc.closed, 1);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_handshake_timeout(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.handshake_timeout_ms = 200;
  cf_hub_init(&h, &p, TICK);
  int s1, c1, s2, c2;
  assert_int_equal(vt_tcp_pair(&s1, &c1), 0);
  assert_int_equal(vt_tcp_pair(&s2, &c2), 0);
  cf_conn mute = {0}, ready = {0};
  uint64_t t0 = vt_now_ms();
  cf_adopt(&h, s1, &mute, NULL);
  cf_adopt(&h, s2, &ready, NULL);
  assert_int_equal(vigil_conn_get_state(ready.conn), VIGIL_CONN_HANDSHAKE);
  assert_int_equal(vigil_conn_ready(ready.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_get_state(ready.conn), VIGIL_CONN_OPEN);
  /* The mute client gets our FIN at the deadline; it closes in turn. */
  reader r = {.fd = c1};
  assert_true(vt_run_until(h.loop, read_to_eof, &r, 2000));
  uint64_t took = vt_now_ms() - t0;
  assert_true(took >= 200 && took <= 200 + TICK + SLACK);
  close(c1);
  assert_true(cf_wait_closed(&h, &mute, 1000));
  assert_int_equal(mute.reason, VIGIL_REASON_HANDSHAKE_TIMEOUT);
  assert_int_equal(ready.closed, 0);
  assert_int_equal(cf_count(&h, VIGIL_EV_READY), 1);
  free(r.buf);
  close(c2);
  cf_hub_done(&h);
  cf_conn_free(&mute);
  cf_conn_free(&ready);
}

static void test_output_overflow(void **state) {
  (void)state;
  cf_hub h;
  vigil_policy p;
  vigil_policy_init(&p);
  p.output_limit = 64 * 1024;
  p.overflow_action = VIGIL_OVERFLOW_FAIL;
  cf_hub_init(&h, &p, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  char chunk[16384];
  memset(chunk, 'z', sizeof chunk);
  int rc = VIGIL_OK, sends = 0;
  /* The peer never reads: kernel buffers fill, then our queue. */
  while (rc == VIGIL_OK && sends < 10000) {
    rc = vigil_send(cc.conn, chunk, sizeof chunk);
    sends++;
  }
  assert_int_equal(rc, VIGIL_EOVERFLOW);
  assert_true(vigil_conn_queued(cc.conn) <= 64 * 1024);
  assert_true(vigil_conn_queued(cc.conn) + sizeof chunk > 64 * 1024);
  /* FAIL leaves the connection up. */
  vt_run_until(h.loop, NULL, NULL, 20);
  assert_int_equal(cc.closed, 0);
  /* CLOSE drops it with output_overflow. */
  vigil_policy q = p;
  q.overflow_action = VIGIL_OVERFLOW_CLOSE;
  assert_int_equal(vigil_conn_set_policy(cc.conn, &q), VIGIL_OK);
  assert_int_equal(vigil_send(cc.conn, chunk, sizeof chunk), VIGIL_EOVERFLOW);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_OUTPUT_OVERFLOW);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_close_ex_reason_and_detail(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  assert_int_equal(vigil_close_ex(cc.conn, VIGIL_REASON_NONE, NULL),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_close_ex(cc.conn, VIGIL_REASON__COUNT, NULL),
                   VIGIL_EINVAL);
  char detail[] = "bad packet type 0x0f";
  assert_int_equal(
      vigil_close_ex(cc.conn, VIGIL_REASON_PROTOCOL_ERROR, detail), VIGIL_OK);
  detail[0] = 'X'; /* the detail was copied */
  /* The first decision wins. */
  assert_int_equal(vigil_close_ex(cc.conn, VIGIL_REASON_IDLE_TIMEOUT, "no"),
                   VIGIL_OK);
  close(c); /* the peer answers our FIN: the graceful close completes */
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_PROTOCOL_ERROR);
  assert_non_null(strstr(h.last_line, "reason=protocol_error"));
  assert_non_null(strstr(h.last_line, "detail=\"bad packet type 0x0f\""));
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

static void test_conn_fail_io_error(void **state) {
  (void)state;
  cf_hub h;
  cf_hub_init(&h, NULL, TICK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  cf_adopt(&h, s, &cc, NULL);
  vigil_send(cc.conn, "queued", 6);
  assert_int_equal(vigil_conn_fail(cc.conn, EPROTO), VIGIL_OK);
  assert_true(cf_wait_closed(&h, &cc, 1000));
  assert_int_equal(cc.reason, VIGIL_REASON_IO_ERROR);
  assert_non_null(strstr(h.last_line, "reason=io_error"));
  assert_non_null(strstr(h.last_line, "errno=71"));
  /* Abortive: the peer gets RST after whatever had reached it. */
  char buf[16];
  errno = 0;
  long n;
  do
    n = recv(c, buf, sizeof buf, 0);
  while (n > 0);
  assert_true(n < 0 && errno == ECONNRESET);
  close(c);
  cf_hub_done(&h);
  cf_conn_free(&cc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_graceful_close_delivers_1mib),
      cmocka_unit_test(test_drain_cut_when_peer_never_closes),
      cmocka_unit_test(test_peer_fin_half_close_reply),
      cmocka_unit_test(test_close_wait_grace),
      cmocka_unit_test(test_peer_fin_without_callback_closes),
      cmocka_unit_test(test_peer_reset),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_output_overflow),
      cmocka_unit_test(test_close_ex_reason_and_detail),
      cmocka_unit_test(test_conn_fail_io_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
