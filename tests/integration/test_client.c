/*
 * vigil_client on loopback: connect + HELLO + data, heartbeats against a
 * hand-written server, a dead server found by dead_after, refused connects
 * with backoff, connect timeouts, GOODBYE from the server, close and free
 * (also from callbacks), and a 50-client reconnect storm that must spread
 * over the jitter window.
 */
#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "vigil.h"

#define MAX_EVENTS 512
#define MAX_CONNS 128

typedef struct cev {
  uint64_t at;
  char detail[96];
  uint32_t retry_ms;
} cev;

/* Server side (a vigil listener on the same hub). */
typedef struct srv {
  vigil_listener *l;
  uint16_t port;
  int hellos;
  char hello[MAX_CONNS][64];
  uint64_t hello_at[MAX_CONNS];
  vigil_conn *conns[MAX_CONNS];
  int nconns;
  int closed;
  char data[64];
} srv;

typedef struct fx {
  struct ev_loop *loop;
  vigil_hub *hub;
  cev ev[MAX_EVENTS];
  int nev;
  srv s;
  int want_hellos;
} fx;

/* Per-client recorder. */
typedef struct cli {
  vigil_client *cl;
  int connected;
  int disconnected;
  vigil_reason reason;
  uint64_t disconnected_at;
  char data[64];
  int ndata;
  int free_on_disconnect;
  int close_on_connect;
} cli;

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  fx *f = ud;
  (void)hub;
  if (ev->type != VIGIL_EV_CLIENT || f->nev >= MAX_EVENTS) return;
  cev *e = &f->ev[f->nev++];
  e->at = vt_now_ms();
  snprintf(e->detail, sizeof e->detail, "%s", ev->detail);
  e->retry_ms = ev->retry_ms;
}

static void fx_init(fx *f) {
  memset(f, 0, sizeof *f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.on_event = on_event;
  o.event_data = f;
  o.tick_ms = 5;
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

static void fx_done(fx *f) {
  vigil_hub_free(f->hub);
  ev_loop_destroy(f->loop);
}

/* Client events whose detail starts with prefix. */
static int count_ev(const fx *f, const char *prefix) {
  int n = 0;
  for (int i = 0; i < f->nev; i++)
    if (strncmp(f->ev[i].detail, prefix, strlen(prefix)) == 0) n++;
  return n;
}

/* ---- vigil server ------------------------------------------------------- */

static void s_hello(vigil_conn *c, const void *id, size_t len, void *ud) {
  srv *s = ud;
  (void)c;
  if (s->hellos < MAX_CONNS) {
    snprintf(s->hello[s->hellos], 64, "%.*s", (int)len, (const char *)id);
    s->hello_at[s->hellos] = vt_now_ms();
  }
  s->hellos++;
}

static void s_data(vigil_conn *c, const void *d, size_t len, void *ud) {
  srv *s = ud;
  (void)c;
  snprintf(s->data, sizeof s->data, "%.*s", (int)len, (const char *)d);
}

static void s_close(vigil_conn *c, vigil_reason r, void *ud) {
  srv *s = ud;
  (void)r;
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i] == c) s->conns[i] = NULL;
  s->closed++;
}

static const vigil_conn_callbacks k_srv_cb = {
    .on_data = s_data, .on_close = s_close, .on_hello = s_hello};

static void s_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  srv *s = ud;
  (void)l;
  if (s->nconns < MAX_CONNS) s->conns[s->nconns++] = c;
}

static void srv_start(fx *f, uint16_t port) {
  vigil_policy p;
  vigil_policy_init(&p);
  p.frame_codec = 1;
  p.drain_timeout_ms = 300;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.port = port;
  lo.adopt.policy = &p;
  lo.adopt.callbacks = &k_srv_cb;
  lo.adopt.user_data = &f->s;
  lo.on_accept = s_accept;
  lo.accept_data = &f->s;
  assert_int_equal(vigil_listen(f->hub, &lo, &f->s.l), VIGIL_OK);
  f->s.port = vigil_listener_port(f->s.l);
}

/* ---- client callbacks --------------------------------------------------- */

static void c_connected(vigil_client *cl, vigil_conn *c, void *ud) {
  cli *r = ud;
  (void)c;
  r->connected++;
  if (r->close_on_connect) vigil_client_close(cl);
}

static void c_data(vigil_client *cl, const void *d, size_t len, void *ud) {
  cli *r = ud;
  (void)cl;
  snprintf(r->data, sizeof r->data, "%.*s", (int)len, (const char *)d);
  r->ndata++;
}

static void c_disconnected(vigil_client *cl, vigil_reason reason, void *ud) {
  cli *r = ud;
  r->disconnected++;
  r->reason = reason;
  r->disconnected_at = vt_now_ms();
  if (r->free_on_disconnect) {
    vigil_client_free(cl);
    r->cl = NULL;
  }
}

static void client_opts(vigil_client_options *o, uint16_t port, cli *r,
                        const char *identity) {
  vigil_client_options_init(o);
  o->host = "127.0.0.1";
  o->port = port;
  o->identity = identity;
  o->on_connected = c_connected;
  o->on_data = c_data;
  o->on_disconnected = c_disconnected;
  o->user_data = r;
}

static int cli_connected(void *arg) { return ((cli *)arg)->connected > 0; }
static int cli_connected2(void *arg) { return ((cli *)arg)->connected > 1; }
static int cli_gone(void *arg) { return ((cli *)arg)->disconnected > 0; }
static int srv_hello1(void *arg) { return ((fx *)arg)->s.hellos >= 1; }
static int srv_hello2(void *arg) { return ((fx *)arg)->s.hellos >= 2; }
static int srv_data(void *arg) { return ((fx *)arg)->s.data[0] != '\0'; }
static int cli_data(void *arg) { return ((cli *)arg)->ndata > 0; }

/* A port nobody listens on right now. */
static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- tests -------------------------------------------------------------- */

static void test_bad_options(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  vigil_client_options o;
  vigil_client *cl;
  cli r = {0};
  client_opts(&o, 1234, &r, "ok");
  o.host = NULL;
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  assert_null(cl);
  client_opts(&o, 0, &r, "ok");
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  client_opts(&o, 1234, &r, "");
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  char longid[300];
  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  client_opts(&o, 1234, &r, longid);
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  client_opts(&o, 1234, &r, "ok");
  o.backoff.jitter = 2.0;
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  client_opts(&o, 1234, &r, "ok");
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 500;
  p.dead_after_ms = 100; /* ping must be below dead_after */
  o.policy = &p;
  assert_int_equal(vigil_client_new(f.hub, &o, &cl), VIGIL_EINVAL);
  assert_int_equal(vigil_client_new(NULL, &o, &cl), VIGIL_EINVAL);
  assert_int_equal(vigil_client_send_data(NULL, "x", 1), VIGIL_EINVAL);
  assert_int_equal(vigil_client_close(NULL), VIGIL_EINVAL);
  vigil_client_free(NULL);
  assert_null(vigil_client_conn(NULL));
  fx_done(&f);
}

static void test_connect_exchange_close(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  srv_start(&f, 0);
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, f.s.port, &r, "dev-1");
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  /* The first attempt runs from the loop, not inside new(). */
  assert_int_equal(vigil_client_attempts(r.cl), 0);
  assert_int_equal(vigil_client_send_data(r.cl, "x", 1), VIGIL_ENOTCONN);
  assert_true(vt_run_until(f.loop, cli_connected, &r, 1000));
  assert_true(vt_run_until(f.loop, srv_hello1, &f, 1000));
  assert_string_equal(f.s.hello[0], "dev-1");
  assert_non_null(vigil_client_conn(r.cl));
  assert_int_equal(vigil_conn_policy(vigil_client_conn(r.cl))->frame_codec, 1);
  assert_int_equal(count_ev(&f, "connecting"), 1);
  assert_int_equal(count_ev(&f, "connected"), 1);

  assert_int_equal(vigil_client_send_data(r.cl, "up", 2), VIGIL_OK);
  assert_true(vt_run_until(f.loop, srv_data, &f, 1000));
  assert_string_equal(f.s.data, "up");
  assert_int_equal(vigil_send_data(f.s.conns[0], "down", 4), VIGIL_OK);
  assert_true(vt_run_until(f.loop, cli_data, &r, 1000));
  assert_string_equal(r.data, "down");

  /* Close: the conn goes, nothing reconnects. */
  assert_int_equal(vigil_client_close(r.cl), VIGIL_OK);
  assert_int_equal(vigil_client_close(r.cl), VIGIL_OK);
  assert_true(vt_run_until(f.loop, cli_gone, &r, 1000));
  assert_int_equal(r.reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_null(vigil_client_conn(r.cl));
  vt_run_until(f.loop, NULL, NULL, 300);
  assert_int_equal(vigil_client_attempts(r.cl), 1);
  assert_int_equal(f.s.closed, 1);
  assert_int_equal(count_ev(&f, "closed"), 1);
  assert_int_equal(count_ev(&f, "disconnected closed_by_host"), 1);
  vigil_client_free(r.cl);
  fx_done(&f);
}

/* The server sends GOODBYE: the client closes first and comes back. */
static void test_goodbye_from_server_reconnects(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  srv_start(&f, 0);
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, f.s.port, &r, "dev-g");
  o.backoff.initial_ms = 50;
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  assert_true(vt_run_until(f.loop, srv_hello1, &f, 1000));
  assert_int_equal(vigil_conn_goodbye(f.s.conns[0], VIGIL_GOODBYE_GOING_AWAY,
                                      NULL),
                   VIGIL_OK);
  assert_true(vt_run_until(f.loop, cli_gone, &r, 1000));
  assert_int_equal(r.reason, VIGIL_REASON_PEER_CLOSED);
  assert_true(vt_run_until(f.loop, srv_hello2, &f, 2000));
  assert_string_equal(f.s.hello[1], "dev-g");
  uint64_t gap = f.s.hello_at[1] - r.disconnected_at;
  /* one jittered 50 ms delay (40..60) or so */
  assert_true(gap >= 35 && gap < 60 + vt_slack_ms(440));
  assert_int_equal(vigil_client_attempts(r.cl), 2);
  vigil_client_free(r.cl);
  fx_done(&f);
}

/* ---- raw server: a listening socket driven by the test ------------------ */

typedef struct rawsrv {
  int lfd;
  uint16_t port;
  int fds[8];
  int nfds;
  uint64_t accepted_at[8];
  vigil_frame_parser p[8];
  int pings;
  int hello_ok;
  int answer; /* reply PONG to PING */
  uint64_t last_pong_at;
} rawsrv;

static void raw_listen(rawsrv *s) {
  memset(s, 0, sizeof *s);
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 16), 0);
  getsockname(s->lfd, (struct sockaddr *)&a, &len);
  s->port = ntohs(a.sin_port);
  s->answer = 1;
}

typedef struct rawctx {
  rawsrv *s;
  int i;
} rawctx;

static int raw_frame(void *ud, const vigil_frame *fr) {
  rawctx *x = ud;
  rawsrv *s = x->s;
  if (fr->type == VIGIL_FRAME_HELLO && fr->len == 5 &&
      memcmp(fr->payload, "dev-2", 5) == 0)
    s->hello_ok++;
  if (fr->type == VIGIL_FRAME_PING) {
    s->pings++;
    if (s->answer) {
      uint8_t out[16];
      int n = vigil_frame_encode(VIGIL_FRAME_PONG, fr->payload, fr->len, out,
                                 sizeof out);
      send(s->fds[x->i], out, (size_t)n, MSG_NOSIGNAL);
      s->last_pong_at = vt_now_ms();
    }
  }
  return 0;
}

/* Accepts and reads whatever is there. */
static void raw_pump(rawsrv *s) {
  int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0 && s->nfds < 8) {
    s->accepted_at[s->nfds] = vt_now_ms();
    vigil_frame_parser_init(&s->p[s->nfds], 65536);
    s->fds[s->nfds++] = fd;
  }
  if (!s->answer) return; /* a hung server reads nothing either */
  for (int i = 0; i < s->nfds; i++) {
    if (s->fds[i] < 0) continue;
    uint8_t buf[4096];
    int eof = 0;
    long n = vt_read_avail(s->fds[i], buf, sizeof buf, &eof);
    rawctx x = {s, i};
    if (n > 0) vigil_frame_parser_feed(&s->p[i], buf, (size_t)n, raw_frame, &x);
  }
}

static void raw_close(rawsrv *s) {
  for (int i = 0; i < s->nfds; i++) {
    if (s->fds[i] >= 0) close(s->fds[i]);
    vigil_frame_parser_free(&s->p[i]);
  }
  close(s->lfd);
}

typedef struct waitraw {
  rawsrv *s;
  cli *r;
  int pings;
  int accepts;
} waitraw;

static int wr_pings(void *arg) {
  waitraw *w = arg;
  raw_pump(w->s);
  return w->s->pings >= w->pings;
}

static int wr_gone(void *arg) {
  waitraw *w = arg;
  raw_pump(w->s);
  return w->r->disconnected > 0;
}

static int wr_accepts(void *arg) {
  waitraw *w = arg;
  raw_pump(w->s);
  return w->s->nfds >= w->accepts;
}

static int wr_hello2(void *arg) {
  waitraw *w = arg;
  raw_pump(w->s);
  return w->s->hello_ok >= 2;
}

static void test_heartbeat_dead_server_reconnect(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  rawsrv s;
  raw_listen(&s);
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, s.port, &r, "dev-2");
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 50;
  p.dead_after_ms = 300;
  o.policy = &p;
  o.backoff.initial_ms = 100;
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  waitraw w = {&s, &r, 6, 0};
  /* An answering server: the client pings every 50 ms and stays up. */
  assert_true(vt_run_until(f.loop, wr_pings, &w, 2000));
  assert_int_equal(s.hello_ok, 1);
  assert_int_equal(r.connected, 1);
  assert_int_equal(r.disconnected, 0);
  /* The server hangs (no reads, no PONGs): dead_after finds it. */
  s.answer = 0;
  uint64_t hung_at = vt_now_ms();
  assert_true(vt_run_until(f.loop, wr_gone, &w, 2000));
  assert_int_equal(r.reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  uint64_t took = r.disconnected_at - s.last_pong_at;
  assert_true(took >= 290 && took <= 300 + vt_slack_ms(300));
  assert_true(r.disconnected_at - hung_at <= 300 + vt_slack_ms(300));
  assert_int_equal(count_ev(&f, "disconnected heartbeat_timeout"), 1);
  /* Then it comes back after one jittered initial delay (80..120 ms). */
  s.answer = 1;
  w.accepts = 2;
  assert_true(vt_run_until(f.loop, wr_accepts, &w, 2000));
  uint64_t back = s.accepted_at[1] - r.disconnected_at;
  assert_true(back >= 75 && back <= 120 + vt_slack_ms(130));
  assert_true(vt_run_until(f.loop, cli_connected2, &r, 1000));
  assert_true(vt_run_until(f.loop, wr_hello2, &w, 1000)); /* HELLO again */
  vigil_client_free(r.cl);
  raw_close(&s);
  fx_done(&f);
}

static void test_refused_backoff_then_connect(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  uint16_t port = free_port();
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, port, &r, "dev-3");
  o.backoff.initial_ms = 50;
  o.backoff.multiplier = 2.0;
  o.backoff.jitter = 0.0;
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  /* Attempts at about 0, 50, 150, 350 ms: gaps 50, 100, 200. */
  vt_run_until(f.loop, NULL, NULL, 400);
  uint64_t at[8];
  int n = 0;
  for (int i = 0; i < f.nev && n < 8; i++)
    if (strcmp(f.ev[i].detail, "connecting") == 0) at[n++] = f.ev[i].at;
  assert_true(n >= 4);
  assert_true(count_ev(&f, "connect_failed ECONNREFUSED") >= 4);
  static const uint64_t gap[] = {50, 100, 200};
  for (int i = 0; i < 3; i++) {
    uint64_t g = at[i + 1] - at[i];
    if (g + 5 < gap[i] || g > gap[i] + 40)
      fail_msg("gap %d: %llu ms, want about %llu", i, (unsigned long long)g,
               (unsigned long long)gap[i]);
  }
  /* The retry_ms of each backoff event is the remaining wait. */
  int checked = 0;
  for (int i = 0; i < f.nev; i++)
    if (strncmp(f.ev[i].detail, "backoff ", 8) == 0 && checked < 3) {
      uint32_t ms = (uint32_t)atoi(f.ev[i].detail + 8);
      assert_int_equal(ms, f.ev[i].retry_ms);
      assert_true(ms <= gap[checked] && ms + 15 >= gap[checked]);
      checked++;
    }
  assert_int_equal(checked, 3);
  /* The server appears: the next attempt (due at 750 ms) connects. */
  srv_start(&f, port);
  assert_true(vt_run_until(f.loop, cli_connected, &r, 2000));
  assert_true(vt_run_until(f.loop, srv_hello1, &f, 1000));
  assert_string_equal(f.s.hello[0], "dev-3");
  assert_int_equal(vigil_client_attempts(r.cl), 5);
  assert_int_equal(r.disconnected, 0); /* failed attempts are events only */
  vigil_client_free(r.cl);
  fx_done(&f);
}

/* A listener whose accept queue is full drops SYNs: connect hangs. */
static void test_connect_timeout(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 0), 0);
  getsockname(lfd, (struct sockaddr *)&a, &len);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  vt_run_until(f.loop, NULL, NULL, 50);
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, ntohs(a.sin_port), &r, "dev-4");
  o.connect_timeout_ms = 150;
  o.backoff.initial_ms = 1000;
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  vt_run_until(f.loop, NULL, NULL, 300);
  if (count_ev(&f, "connect_failed ETIMEDOUT") != 1) {
    vigil_client_free(r.cl);
    for (int i = 0; i < 4; i++) close(fill[i]);
    close(lfd);
    fx_done(&f);
    skip(); /* this kernel accepted anyway (backlog semantics differ) */
    return;
  }
  int i0 = -1, i1 = -1;
  for (int i = 0; i < f.nev; i++) {
    if (strcmp(f.ev[i].detail, "connecting") == 0 && i0 < 0) i0 = i;
    if (strcmp(f.ev[i].detail, "connect_failed ETIMEDOUT") == 0) i1 = i;
  }
  uint64_t took = f.ev[i1].at - f.ev[i0].at;
  assert_true(took >= 140 && took <= 150 + vt_slack_ms(100));
  /* The next attempt is due 1000 ms +-20 % after the first started, so
   * the wait left after a 150 ms timeout is 650..1050 ms, less what the
   * timeout ran late (slack). */
  assert_true(strncmp(f.ev[i1 + 1].detail, "backoff ", 8) == 0);
  assert_true(f.ev[i1 + 1].retry_ms + vt_slack_ms(50) >= 650 &&
              f.ev[i1 + 1].retry_ms <= 1050);
  assert_int_equal(vigil_client_attempts(r.cl), 1);
  vigil_client_free(r.cl);
  for (int i = 0; i < 4; i++) close(fill[i]);
  close(lfd);
  fx_done(&f);
}

/* Closing while waiting for the next attempt stops everything. */
static void test_close_during_backoff(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  vigil_client_options o;
  cli r = {0};
  client_opts(&o, free_port(), &r, NULL);
  o.backoff.initial_ms = 100;
  assert_int_equal(vigil_client_new(f.hub, &o, &r.cl), VIGIL_OK);
  vt_run_until(f.loop, NULL, NULL, 30);
  assert_int_equal(vigil_client_attempts(r.cl), 1);
  assert_int_equal(vigil_client_close(r.cl), VIGIL_OK);
  vt_run_until(f.loop, NULL, NULL, 300);
  assert_int_equal(vigil_client_attempts(r.cl), 1);
  assert_int_equal(r.disconnected, 0);
  vigil_client_free(r.cl);
  fx_done(&f);
}

static void test_free_and_close_from_callbacks(void **state) {
  (void)state;
  fx f;
  fx_init(&f);
  srv_start(&f, 0);
  vigil_client_options o;
  cli r1 = {0}, r2 = {0};
  r1.close_on_connect = 1;   /* close inside on_connected */
  r1.free_on_disconnect = 1; /* then free inside on_disconnected */
  client_opts(&o, f.s.port, &r1, "cb-1");
  assert_int_equal(vigil_client_new(f.hub, &o, &r1.cl), VIGIL_OK);
  client_opts(&o, f.s.port, &r2, "cb-2");
  r2.free_on_disconnect = 1;
  assert_int_equal(vigil_client_new(f.hub, &o, &r2.cl), VIGIL_OK);
  assert_true(vt_run_until(f.loop, cli_gone, &r1, 1000));
  assert_null(r1.cl);
  assert_int_equal(r1.reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_true(vt_run_until(f.loop, cli_connected, &r2, 1000));
  /* Free while connected: the conn closes on the hub without callbacks. */
  vigil_client_free(r2.cl);
  r2.cl = NULL;
  vt_run_until(f.loop, NULL, NULL, 100);
  assert_int_equal(r2.disconnected, 0);
  assert_int_equal(f.s.closed, 2);
  fx_done(&f);
}

/* ---- reconnect storm ---------------------------------------------------- */

#define STORM 50

static int storm_hellos(void *arg) {
  fx *f = arg;
  return f->s.hellos >= f->want_hellos;
}

static double isqrt(double v) {
  if (v <= 0) return 0;
  double x = v > 1 ? v : 1;
  for (int i = 0; i < 60; i++) x = 0.5 * (x + v / x);
  return x;
}

static void test_storm_spreads(void **state) {
  (void)state;
  static fx f;
  fx_init(&f);
  srv_start(&f, 0);
  static cli r[STORM];
  vigil_client_options o;
  char ids[STORM][16];
  for (int i = 0; i < STORM; i++) {
    memset(&r[i], 0, sizeof r[i]);
    snprintf(ids[i], sizeof ids[i], "storm-%d", i);
    client_opts(&o, f.s.port, &r[i], ids[i]);
    o.backoff.initial_ms = 200; /* +-20 %: back within 160..240 ms */
    assert_int_equal(vigil_client_new(f.hub, &o, &r[i].cl), VIGIL_OK);
  }
  f.want_hellos = STORM;
  assert_true(vt_run_until(f.loop, storm_hellos, &f, 3000));
  /* Up long enough (>= initial) for the backoff to start over. */
  vt_run_until(f.loop, NULL, NULL, 250);
  /* The server drops everyone at once (RST). */
  f.s.hellos = 0;
  int n = f.s.nconns;
  f.s.nconns = 0;
  uint64_t cut = vt_now_ms();
  for (int i = 0; i < n; i++)
    if (f.s.conns[i]) vigil_abort(f.s.conns[i]);
  assert_true(vt_run_until(f.loop, storm_hellos, &f, 3000));
  uint64_t t[STORM];
  double mean = 0, var = 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  int bucket[64] = {0}, max_bucket = 0;
  for (int i = 0; i < STORM; i++) {
    t[i] = f.s.hello_at[i] - cut;
    mean += (double)t[i];
    if (t[i] < lo) lo = t[i];
    if (t[i] > hi) hi = t[i];
    int b = (int)(t[i] / 10);
    if (b < 64 && ++bucket[b] > max_bucket) max_bucket = bucket[b];
  }
  mean /= STORM;
  for (int i = 0; i < STORM; i++) var += (t[i] - mean) * (t[i] - mean);
  double sd = isqrt(var / STORM);
  printf("storm: %d clients back %llu..%llu ms after the cut, mean %.0f, "
         "sd %.1f ms, at most %d per 10 ms\n",
         STORM, (unsigned long long)lo, (unsigned long long)hi, mean, sd,
         max_bucket);
  /* Inside the jitter window (plus loop latency), and spread across it:
   * uniform over 80 ms has sd 23 ms and about 6 per 10 ms bucket; the
   * loop handles timers that fall close together in one iteration, so a
   * bucket may hold more. Lockstep would be sd ~0 and 50 in one bucket. */
  assert_true(lo >= 155 && hi <= 240 + vt_slack_ms(60));
  assert_true(hi - lo >= 50);
  assert_true(sd >= 12.0);
  assert_true(max_bucket <= STORM * 40 / 100);
  for (int i = 0; i < STORM; i++) {
    assert_int_equal(r[i].reason, VIGIL_REASON_PEER_RESET);
    vigil_client_free(r[i].cl);
  }
  fx_done(&f);
}

/* ---- the game_server example, driven by two clients -------------------- */

typedef struct game {
  cli r[2];
} game;

static int game_chat(void *arg) { return ((game *)arg)->r[1].ndata > 0; }
static int game_joined(void *arg) {
  game *g = arg;
  return g->r[0].connected && g->r[1].connected &&
         g->r[0].ndata + g->r[1].ndata > 0;
}
static int game_gone(void *arg) {
  game *g = arg;
  return g->r[0].disconnected && g->r[1].disconnected;
}

/* Starts examples/game_server with --workers (and a fast heartbeat) and
 * reads the port it listens on; returns its pid, or 0 when the examples
 * were not built (the test is then skipped). */
static pid_t game_server_start(const char *workers, uint16_t *port,
                               int *err_fd) {
  const char *dir = getenv("VIGIL_BUILD_DIR");
  char path[512];
  snprintf(path, sizeof path, "%s/examples/game_server", dir ? dir : ".");
  if (access(path, X_OK) != 0) return 0;
  int out[2];
  assert_int_equal(pipe(out), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execl(path, path, "--listen", "127.0.0.1:0", "--ping-interval", "100",
          "--dead-after", "400", "--log", "json", "--workers", workers,
          (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  char line[256] = {0};
  size_t n = 0;
  while (n < sizeof line - 1 && read(out[0], line + n, 1) == 1 &&
         line[n] != '\n')
    n++;
  const char *colon = strrchr(line, ':');
  assert_non_null(colon);
  *port = (uint16_t)atoi(colon + 1);
  assert_true(*port > 0);
  *err_fd = out[0];
  return pid;
}

static void game_server_exits_0(pid_t pid, int err_fd) {
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  close(err_fd);
}

static void test_game_server_example(void **state) {
  (void)state;
  uint16_t port;
  int err_fd;
  pid_t pid = game_server_start("1", &port, &err_fd);
  if (!pid) {
    skip(); /* examples not built */
    return;
  }
  fx f;
  fx_init(&f);
  game g;
  memset(&g, 0, sizeof g);
  vigil_client_options o;
  client_opts(&o, port, &g.r[0], "alice@lobby");
  assert_int_equal(vigil_client_new(f.hub, &o, &g.r[0].cl), VIGIL_OK);
  vt_run_until(f.loop, cli_connected, &g.r[0], 1000);
  client_opts(&o, port, &g.r[1], "bob@lobby");
  assert_int_equal(vigil_client_new(f.hub, &o, &g.r[1].cl), VIGIL_OK);
  /* alice hears that bob joined, then bob hears alice speak. */
  /* Whoever the server seated first hears that the other joined. */
  assert_true(vt_run_until(f.loop, game_joined, &g, 2000));
  int first = g.r[0].ndata ? 0 : 1;
  assert_string_equal(g.r[first].data,
                      first == 0 ? "* bob joined" : "* alice joined");
  g.r[1].ndata = 0;
  assert_int_equal(vigil_client_send_data(g.r[0].cl, "hi", 2), VIGIL_OK);
  assert_true(vt_run_until(f.loop, game_chat, &g, 2000));
  assert_string_equal(g.r[1].data, "alice: hi");
  /* Both stay up across several of the server's pings. */
  vt_run_until(f.loop, NULL, NULL, 500);
  assert_int_equal(g.r[0].disconnected + g.r[1].disconnected, 0);
  /* SIGTERM: the server says GOODBYE shutdown and the clients close. */
  kill(pid, SIGTERM);
  assert_true(vt_run_until(f.loop, game_gone, &g, 3000));
  assert_int_equal(g.r[0].reason, VIGIL_REASON_PEER_CLOSED);
  assert_int_equal(g.r[1].reason, VIGIL_REASON_PEER_CLOSED);
  vigil_client_free(g.r[0].cl);
  vigil_client_free(g.r[1].cl);
  game_server_exits_0(pid, err_fd);
  fx_done(&f);
}

/* game_server --workers 2: players get in wherever the kernel puts them,
 * stay up across pings, and every worker says GOODBYE on SIGTERM. */
#define GAME_PLAYERS 6

static int players_in(void *arg) {
  cli *r = arg;
  for (int i = 0; i < GAME_PLAYERS; i++)
    if (!r[i].connected) return 0;
  return 1;
}

static int players_gone(void *arg) {
  cli *r = arg;
  for (int i = 0; i < GAME_PLAYERS; i++)
    if (!r[i].disconnected) return 0;
  return 1;
}

static void test_game_server_workers(void **state) {
  (void)state;
  uint16_t port;
  int err_fd;
  pid_t pid = game_server_start("2", &port, &err_fd);
  if (!pid) {
    skip();
    return;
  }
  fx f;
  fx_init(&f);
  cli r[GAME_PLAYERS];
  memset(r, 0, sizeof r);
  for (int i = 0; i < GAME_PLAYERS; i++) {
    char id[32];
    snprintf(id, sizeof id, "p%d@room", i);
    vigil_client_options o;
    client_opts(&o, port, &r[i], id);
    assert_int_equal(vigil_client_new(f.hub, &o, &r[i].cl), VIGIL_OK);
  }
  assert_true(vt_run_until(f.loop, players_in, r, 3000));
  vt_run_until(f.loop, NULL, NULL, 500); /* several of the server's pings */
  for (int i = 0; i < GAME_PLAYERS; i++)
    assert_int_equal(r[i].disconnected, 0);
  kill(pid, SIGTERM);
  assert_true(vt_run_until(f.loop, players_gone, r, 3000));
  for (int i = 0; i < GAME_PLAYERS; i++) {
    assert_int_equal(r[i].reason, VIGIL_REASON_PEER_CLOSED);
    vigil_client_free(r[i].cl);
  }
  game_server_exits_0(pid, err_fd);
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_connect_exchange_close),
      cmocka_unit_test(test_goodbye_from_server_reconnects),
      cmocka_unit_test(test_heartbeat_dead_server_reconnect),
      cmocka_unit_test(test_refused_backoff_then_connect),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_close_during_backoff),
      cmocka_unit_test(test_free_and_close_from_callbacks),
      cmocka_unit_test(test_storm_spreads),
      cmocka_unit_test(test_game_server_example),
      cmocka_unit_test(test_game_server_workers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
