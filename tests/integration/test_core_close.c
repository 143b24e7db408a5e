/*
 * Close semantics on real loopback sockets: shutdown-send-first graceful
 * close delivers everything queued, peer FIN and CLOSE_WAIT handling
 * (half-close reply, no CLOSE_WAIT left in the kernel), peer RST, output
 * overflow, close_ex and conn_fail.
 *
 * The close deadlines (drain, flush stall, linger cap, CLOSE_WAIT grace,
 * handshake timeout) run on the fake clock, one table row each: the
 * sockets are real (the peer sees our data, FIN or RST), time is not, so
 * every bound is exact: still open 1 ms before it, closed at it.
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
#include "rowtest.h"

#define TICK 10

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

/* A hub (fake clock when fake) with one adopted conn and its peer. */
typedef struct pair {
  cf_hub h;
  cf_conn cc;
  int peer;
  uint16_t port; /* vigil's local port */
} pair;

static void pair_open(pair *x, const vigil_policy *p, int fake) {
  memset(x, 0, sizeof *x);
  if (fake)
    cf_hub_init_clock(&x->h, p);
  else
    cf_hub_init(&x->h, p, TICK);
  int s;
  assert_int_equal(vt_tcp_pair(&s, &x->peer), 0);
  x->port = local_port(s);
  cf_adopt(&x->h, s, &x->cc, NULL);
}

static void pair_close(pair *x) {
  if (x->peer >= 0) close(x->peer);
  cf_hub_done(&x->h);
  cf_conn_free(&x->cc);
}

/* ---- graceful close and the peer's end ---- */

static void test_graceful_close_delivers_1mib(void **state) {
  (void)state;
  pair x;
  pair_open(&x, NULL, 0);
  /* Small kernel buffers so most of the 1 MiB must wait in vigil's own
   * queue when vigil_close is called. */
  int small = 32 * 1024;
  setsockopt(vigil_conn_fd(x.cc.conn), SOL_SOCKET, SO_SNDBUF, &small,
             sizeof small);
  setsockopt(x.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  size_t total = 1u << 20;
  unsigned char *msg = malloc(total);
  for (size_t i = 0; i < total; i++) msg[i] = (unsigned char)(i * 131u + 7u);
  assert_int_equal(vigil_send(x.cc.conn, msg, total), VIGIL_OK);
  /* Loopback buffers do not take 1 MiB at once: most of it is queued. */
  assert_true(vigil_conn_queued(x.cc.conn) > 0);
  assert_int_equal(vigil_close(x.cc.conn), VIGIL_OK);
  assert_int_equal(vigil_send(x.cc.conn, "late", 4), VIGIL_ECLOSED);
  reader r = {.fd = x.peer};
  assert_true(vt_run_until(x.h.loop, read_to_eof, &r, 5000));
  assert_int_equal(r.len, total);
  assert_memory_equal(r.buf, msg, total);
  assert_int_equal(cf_count(&x.h, VIGIL_EV_DRAINING), 1);
  assert_int_equal(x.cc.closed, 0); /* waiting for our peer's FIN */
  close(x.peer);
  x.peer = -1;
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_int_equal(cf_last(&x.h, VIGIL_EV_CLOSE)->cause, VIGIL_REASON_NONE);
  free(r.buf);
  free(msg);
  pair_close(&x);
}

static void test_peer_fin_half_close_reply(void **state) {
  (void)state;
  pair x;
  memset(&x, 0, sizeof x);
  cf_hub_init(&x.h, NULL, TICK);
  int s;
  assert_int_equal(vt_tcp_pair(&s, &x.peer), 0);
  x.cc.reply_on_peer_closed = 1;
  x.cc.close_on_peer_closed = 1;
  cf_adopt(&x.h, s, &x.cc, NULL);
  assert_int_equal(send(x.peer, "last words\n", 11, 0), 11);
  shutdown(x.peer, SHUT_WR);
  reader r = {.fd = x.peer};
  assert_true(vt_run_until(x.h.loop, read_to_eof, &r, 2000));
  /* The host's reply after the peer's FIN reached the peer, then EOF. */
  assert_int_equal(r.len, 4);
  assert_memory_equal(r.buf, "bye\n", 4);
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.peer_closed, 1);
  assert_int_equal(x.cc.rx_len, 11);
  assert_int_equal(x.cc.reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(cf_count(&x.h, VIGIL_EV_PEER_FIN), 1);
  free(r.buf);
  pair_close(&x);
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
  pair x;
  pair_open(&x, NULL, 0);
  struct linger lg = {1, 0};
  setsockopt(x.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(x.peer);
  x.peer = -1;
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, VIGIL_REASON_PEER_RESET);
  assert_int_equal(x.cc.closed, 1);
  pair_close(&x);
}

/* ---- the close deadlines, on the fake clock ---- */

typedef struct deadline_case deadline_case;
struct deadline_case {
  const char *name;
  uint32_t handshake_timeout_ms, drain_timeout_ms, linger_max_ms,
      close_wait_grace_ms;
  /* Starts the clock (at fake time t0) once x is adopted. */
  void (*start)(pair *x);
  /* Runs every DURING_STEP ms of fake time before the bound. */
  void (*during)(pair *x);
  uint32_t bound;        /* ms after t0 when the deadline acts */
  vigil_event_type acts; /* its event: none before the bound, one at it */
  vigil_reason reason, cause;
  /* What the peer or the kernel saw; ends the conn if it is not closed. */
  void (*check)(pair *x);
};

/* Lets real I/O happen; the fake clock does not move meanwhile. */
static void settle(pair *x) { vt_run_until(x->h.loop, NULL, NULL, 20); }

static int fin_seen(void *arg) {
  pair *x = arg;
  return x->cc.peer_closed > 0;
}

static void start_close(pair *x) {
  assert_int_equal(vigil_send(x->cc.conn, "hello\n", 6), VIGIL_OK);
  assert_int_equal(vigil_close(x->cc.conn), VIGIL_OK);
  settle(x);
  assert_int_equal(vigil_conn_get_state(x->cc.conn), VIGIL_CONN_DRAINING);
}

/* The peer got our data and FIN; it simply never answered. */
static void check_data_and_fin(pair *x) {
  char buf[16];
  int eof = 0;
  assert_int_equal(vt_read_avail(x->peer, buf, sizeof buf, &eof), 6);
  assert_memory_equal(buf, "hello\n", 6);
  assert_int_equal(eof, 1);
}

/* The peer reads nothing: kernel buffers fill, then our queue, which
 * FLUSHING never empties. */
static void start_stuck_flush(pair *x) {
  int small = 16 * 1024;
  setsockopt(vigil_conn_fd(x->cc.conn), SOL_SOCKET, SO_SNDBUF, &small,
             sizeof small);
  setsockopt(x->peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  static char chunk[256 * 1024];
  assert_int_equal(vigil_send(x->cc.conn, chunk, sizeof chunk), VIGIL_OK);
  assert_int_equal(vigil_close(x->cc.conn), VIGIL_OK);
  settle(x);
  assert_int_equal(vigil_conn_get_state(x->cc.conn), VIGIL_CONN_FLUSHING);
  assert_true(vigil_conn_queued(x->cc.conn) > 0);
}

/* Output the peer never took: it is not there, RST (abort_dead). */
static void check_reset(pair *x) {
  char buf[4096];
  long n;
  errno = 0;
  do
    n = recv(x->peer, buf, sizeof buf, MSG_DONTWAIT);
  while (n > 0);
  assert_true(n < 0 && errno == ECONNRESET);
}

/* A peer that keeps sending while we drain: each byte is life, so only
 * linger_max ends the close. */
static void keep_talking(pair *x) {
  vigil_stats st0, st;
  vigil_hub_stats(x->h.hub, &st0);
  assert_int_equal(send(x->peer, "x", 1, MSG_NOSIGNAL), 1);
  uint64_t end = vt_now_ms() + 2000;
  do {
    vt_run_until(x->h.loop, NULL, NULL, 2);
    vigil_hub_stats(x->h.hub, &st);
  } while (st.bytes_in == st0.bytes_in && vt_now_ms() < end);
  assert_true(st.bytes_in > st0.bytes_in);
}

static void start_peer_fin(pair *x) {
  shutdown(x->peer, SHUT_WR);
  assert_true(vt_run_until(x->h.loop, fin_seen, x, 2000));
  /* The host was told and did nothing: the kernel holds CLOSE_WAIT. */
  assert_int_equal(vigil_conn_get_state(x->cc.conn), VIGIL_CONN_CLOSE_WAIT);
  assert_int_equal(count_state(x->port, VIGIL_TCP_CLOSE_WAIT), 1);
}

/* ...and none is left afterwards. */
static void check_no_close_wait(pair *x) {
  assert_int_equal(count_state(x->port, VIGIL_TCP_CLOSE_WAIT), 0);
}

/* Nothing: a mute client never completes its handshake. */
static void start_mute(pair *x) {
  assert_int_equal(vigil_conn_get_state(x->cc.conn), VIGIL_CONN_HANDSHAKE);
}

/* The mute client got our FIN at the deadline (a graceful close), and
 * when it closes in turn the close completes. */
static void check_fin(pair *x) {
  assert_int_equal(x->cc.closed, 0);
  reader r = {.fd = x->peer};
  assert_true(vt_run_until(x->h.loop, read_to_eof, &r, 2000));
  free(r.buf);
  close(x->peer);
  x->peer = -1;
  assert_true(cf_wait_closed(&x->h, &x->cc, 2000));
}

/* Every bound is "more than period ms since" (deadline.h): period + 1. */
static const deadline_case deadline_cases[] = {
    {"drain cut: our FIN never answered", 0, 200, 30000, 5000, start_close,
     NULL, 200 + 1, VIGIL_EV_CLOSE, VIGIL_REASON_DRAIN_TIMEOUT,
     VIGIL_REASON_CLOSED_BY_HOST, check_data_and_fin},
    {"flush stall: the peer takes nothing", 0, 300, 30000, 5000,
     start_stuck_flush, NULL, 300 + 1, VIGIL_EV_CLOSE,
     VIGIL_REASON_DRAIN_TIMEOUT, VIGIL_REASON_CLOSED_BY_HOST, check_reset},
    {"linger cap: a peer that keeps talking", 0, 200, 500, 5000, start_close,
     keep_talking, 500 + 1, VIGIL_EV_CLOSE, VIGIL_REASON_DRAIN_TIMEOUT,
     VIGIL_REASON_CLOSED_BY_HOST, NULL},
    {"close_wait_grace: the host never closes", 0, 5000, 30000, 300,
     start_peer_fin, NULL, 300 + 1, VIGIL_EV_CLOSE,
     VIGIL_REASON_CLOSE_WAIT_TIMEOUT, VIGIL_REASON_NONE, check_no_close_wait},
    {"handshake_timeout: never ready, our FIN", 200, 5000, 30000, 5000,
     start_mute, NULL, 200 + 1, VIGIL_EV_DRAINING,
     VIGIL_REASON_HANDSHAKE_TIMEOUT, VIGIL_REASON_NONE, check_fin},
};

/* Steps of fake time between calls of a case's `during`. */
#define DURING_STEP 100

static void run_deadline_case(const deadline_case *dc) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.handshake_timeout_ms = dc->handshake_timeout_ms;
  p.drain_timeout_ms = dc->drain_timeout_ms;
  p.linger_max_ms = dc->linger_max_ms;
  p.close_wait_grace_ms = dc->close_wait_grace_ms;
  pair x;
  pair_open(&x, &p, 1);
  uint64_t t0 = x.h.now;
  dc->start(&x);
  assert_int_equal(x.h.now, t0); /* the real I/O took no fake time */
  uint64_t at = 0;
  if (dc->during) {
    while (at + DURING_STEP < dc->bound) {
      cf_advance(&x.h, DURING_STEP);
      at += DURING_STEP;
      dc->during(&x);
    }
  }
  cf_advance(&x.h, dc->bound - 1 - at);
  if (cf_count(&x.h, dc->acts))
    fprintf(stderr, "case \"%s\": acted early\n", dc->name);
  assert_int_equal(cf_count(&x.h, dc->acts), 0);
  cf_advance(&x.h, 1);
  if (!cf_count(&x.h, dc->acts))
    fprintf(stderr, "case \"%s\": did not act\n", dc->name);
  assert_int_equal(cf_count(&x.h, dc->acts), 1);
  assert_int_equal(cf_last(&x.h, dc->acts)->at, t0 + dc->bound);
  if (dc->check) dc->check(&x);
  assert_int_equal(x.cc.closed, 1);
  assert_int_equal(x.cc.reason, dc->reason);
  assert_int_equal(cf_last(&x.h, VIGIL_EV_CLOSE)->cause, dc->cause);
  pair_close(&x);
}

static void test_close_deadlines(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof deadline_cases / sizeof deadline_cases[0];
       i++)
    run_deadline_case(&deadline_cases[i]);
}

/* The handshake deadline spares a conn that became ready in time. */
static void test_ready_conn_outlives_handshake_timeout(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.handshake_timeout_ms = 200;
  pair x;
  pair_open(&x, &p, 1);
  assert_int_equal(vigil_conn_get_state(x.cc.conn), VIGIL_CONN_HANDSHAKE);
  assert_int_equal(vigil_conn_ready(x.cc.conn), VIGIL_OK);
  assert_int_equal(vigil_conn_get_state(x.cc.conn), VIGIL_CONN_OPEN);
  cf_advance(&x.h, 10 * 200);
  assert_int_equal(x.cc.closed, 0);
  assert_int_equal(cf_count(&x.h, VIGIL_EV_READY), 1);
  pair_close(&x);
}

/* ---- output limit, close_ex, conn_fail ---- */

static void test_output_overflow(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.output_limit = 64 * 1024;
  p.overflow_action = VIGIL_OVERFLOW_FAIL;
  pair x;
  pair_open(&x, &p, 0);
  char chunk[16384];
  memset(chunk, 'z', sizeof chunk);
  int rc = VIGIL_OK, sends = 0;
  /* The peer never reads: kernel buffers fill, then our queue. */
  while (rc == VIGIL_OK && sends < 10000) {
    rc = vigil_send(x.cc.conn, chunk, sizeof chunk);
    sends++;
  }
  assert_int_equal(rc, VIGIL_EOVERFLOW);
  assert_true(vigil_conn_queued(x.cc.conn) <= 64 * 1024);
  assert_true(vigil_conn_queued(x.cc.conn) + sizeof chunk > 64 * 1024);
  /* FAIL leaves the connection up. */
  vt_run_until(x.h.loop, NULL, NULL, 20);
  assert_int_equal(x.cc.closed, 0);
  /* CLOSE drops it with output_overflow. */
  vigil_policy q = p;
  q.overflow_action = VIGIL_OVERFLOW_CLOSE;
  assert_int_equal(vigil_conn_set_policy(x.cc.conn, &q), VIGIL_OK);
  assert_int_equal(vigil_send(x.cc.conn, chunk, sizeof chunk),
                   VIGIL_EOVERFLOW);
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, VIGIL_REASON_OUTPUT_OVERFLOW);
  pair_close(&x);
}

static void test_close_ex_reason_and_detail(void **state) {
  (void)state;
  pair x;
  pair_open(&x, NULL, 0);
  assert_int_equal(vigil_close_ex(x.cc.conn, VIGIL_REASON_NONE, NULL),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_close_ex(x.cc.conn, VIGIL_REASON__COUNT, NULL),
                   VIGIL_EINVAL);
  char detail[] = "bad packet type 0x0f";
  assert_int_equal(
      vigil_close_ex(x.cc.conn, VIGIL_REASON_PROTOCOL_ERROR, detail),
      VIGIL_OK);
  detail[0] = 'X'; /* the detail was copied */
  /* The first decision wins. */
  assert_int_equal(vigil_close_ex(x.cc.conn, VIGIL_REASON_IDLE_TIMEOUT, "no"),
                   VIGIL_OK);
  close(x.peer); /* the peer answers our FIN: the graceful close completes */
  x.peer = -1;
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, VIGIL_REASON_PROTOCOL_ERROR);
  assert_non_null(strstr(x.h.last_line, "reason=protocol_error"));
  assert_non_null(strstr(x.h.last_line, "detail=\"bad packet type 0x0f\""));
  pair_close(&x);
}

static void test_conn_fail_io_error(void **state) {
  (void)state;
  pair x;
  pair_open(&x, NULL, 0);
  vigil_send(x.cc.conn, "queued", 6);
  assert_int_equal(vigil_conn_fail(x.cc.conn, EPROTO), VIGIL_OK);
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, VIGIL_REASON_IO_ERROR);
  assert_non_null(strstr(x.h.last_line, "reason=io_error"));
  assert_non_null(strstr(x.h.last_line, "errno=71"));
  /* Abortive: the peer gets RST after whatever had reached it. */
  char buf[16];
  errno = 0;
  long n;
  do
    n = recv(x.peer, buf, sizeof buf, 0);
  while (n > 0);
  assert_true(n < 0 && errno == ECONNRESET);
  pair_close(&x);
}

/* A watch-only host whose own read failed with the peer's reset reports
 * the errno; the reason is the one vigil gives the same errno on its own
 * reads, not a generic io_error. */
typedef struct failed_read {
  const char *name;
  int err;
  vigil_reason reason;
} failed_read;

static const failed_read failed_reads[] = {
    {"host read ECONNRESET is peer_reset", ECONNRESET, VIGIL_REASON_PEER_RESET},
    {"host write EPIPE is peer_reset", EPIPE, VIGIL_REASON_PEER_RESET},
    {"host failure EPROTO is io_error", EPROTO, VIGIL_REASON_IO_ERROR},
};

static void run_failed_read(void **state) {
  const failed_read *r = *state;
  pair x;
  pair_open(&x, NULL, 0);
  assert_int_equal(vigil_conn_fail(x.cc.conn, r->err), VIGIL_OK);
  assert_true(cf_wait_closed(&x.h, &x.cc, 1000));
  assert_int_equal(x.cc.reason, r->reason);
  pair_close(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_graceful_close_delivers_1mib),
      cmocka_unit_test(test_peer_fin_half_close_reply),
      cmocka_unit_test(test_peer_fin_without_callback_closes),
      cmocka_unit_test(test_peer_reset),
      cmocka_unit_test(test_close_deadlines),
      cmocka_unit_test(test_ready_conn_outlives_handshake_timeout),
      cmocka_unit_test(test_output_overflow),
      cmocka_unit_test(test_close_ex_reason_and_detail),
      cmocka_unit_test(test_conn_fail_io_error),
  };
  vt_suite s = {0};
  VT_TESTS(&s, tests);
  VT_ROWS(&s, run_failed_read, failed_reads);
  return vt_suite_run(&s, NULL, NULL);
}
