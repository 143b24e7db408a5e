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

#include "rowtest.h"
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

/* A socket bound to 127.0.0.1 on an ephemeral port (*port). */
static int bound_loopback(int flags, uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
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
  uint16_t port;
  close(bound_loopback(0, &port));
  return port;
}

/* ---- the fixture: a hub, maybe a vigil server, and the clients ---------- */

#define STORM 50

/* The test's hub (with a vigil server on it when the prestate says so)
 * and its clients; the teardown frees the clients still there. */
typedef struct tc {
  fx f;
  cli r[STORM];
} tc;

static const int k_server = 1;

static int tc_setup(void **state) {
  const int *server = *state;
  tc *t = calloc(1, sizeof *t);
  assert_non_null(t);
  fx_init(&t->f);
  if (server && *server) srv_start(&t->f, 0);
  *state = t;
  return 0;
}

static int tc_teardown(void **state) {
  tc *t = *state;
  for (int i = 0; i < STORM; i++)
    if (t->r[i].cl) vigil_client_free(t->r[i].cl);
  fx_done(&t->f);
  free(t);
  return 0;
}

/* Starts client r with options o. */
static void client_new(tc *t, cli *r, const vigil_client_options *o) {
  assert_int_equal(vigil_client_new(t->f.hub, o, &r->cl), VIGIL_OK);
}

/* ---- tests -------------------------------------------------------------- */

static void no_host(vigil_client_options *o, vigil_policy *p) {
  (void)p;
  o->host = NULL;
}

static void wild_jitter(vigil_client_options *o, vigil_policy *p) {
  (void)p;
  o->backoff.jitter = 2.0;
}

static void ping_not_below_dead_after(vigil_client_options *o,
                                      vigil_policy *p) {
  p->ping_interval_ms = 500;
  p->dead_after_ms = 100;
  o->policy = p;
}

static void test_bad_options(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  static char longid[300];
  memset(longid, 'a', sizeof longid - 1);
  static const struct {
    const char *name;
    uint16_t port;
    const char *identity;
    void (*change)(vigil_client_options *o, vigil_policy *p);
    const char *says; /* in vigil_last_error()->message: the field */
  } rows[] = {
      {"no host", 1234, "ok", no_host, "host: required"},
      {"port 0", 0, "ok", NULL, "port: 0 is not in 1..65535"},
      {"empty identity", 1234, "", NULL, "identity: 0 bytes"},
      {"identity of 299 bytes", 1234, longid, NULL, "identity: 299 bytes"},
      {"jitter above 1", 1234, "ok", wild_jitter, "backoff.jitter"},
      {"ping not below dead_after", 1234, "ok", ping_not_below_dead_after,
       "policy: ping_interval_ms"},
  };
  vigil_client_options o;
  vigil_policy p;
  vigil_client *cl;
  cli r = {0};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    cl = (vigil_client *)&r; /* not NULL */
    vigil_policy_init(&p);
    client_opts(&o, rows[i].port, &r, rows[i].identity);
    if (rows[i].change) rows[i].change(&o, &p);
    vt_row_int_equal(rows[i].name, vigil_client_new(f->hub, &o, &cl),
                     VIGIL_EINVAL);
    vt_row_int_equal(rows[i].name, cl == NULL, 1);
    char why[256] = "";
    vt_row_int_equal(rows[i].name,
                     vigil_client_options_validate(&o, why, sizeof why),
                     VIGIL_EINVAL);
    if (!strstr(why, rows[i].says))
      fail_msg("%s: \"%s\" does not say \"%s\"", rows[i].name, why,
               rows[i].says);
  }
  client_opts(&o, 1234, &r, "ok");
  assert_int_equal(vigil_client_options_validate(&o, NULL, 0), VIGIL_OK);
  assert_int_equal(vigil_client_options_validate(NULL, NULL, 0),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_client_new(NULL, &o, &cl), VIGIL_EINVAL);
  assert_int_equal(vigil_client_send_data(NULL, "x", 1), VIGIL_EINVAL);
  assert_int_equal(vigil_client_close(NULL), VIGIL_EINVAL);
  vigil_client_free(NULL);
  assert_null(vigil_client_conn(NULL));
}

static void test_connect_exchange_close(void **state) {
  tc *t = *state; /* k_server */
  fx *f = &t->f;
  cli *r = &t->r[0];
  vigil_client_options o;
  client_opts(&o, f->s.port, r, "dev-1");
  client_new(t, r, &o);
  /* The first attempt runs from the loop, not inside new(). */
  assert_int_equal(vigil_client_attempts(r->cl), 0);
  assert_int_equal(vigil_client_send_data(r->cl, "x", 1), VIGIL_ENOTCONN);
  assert_true(vt_run_until(f->loop, cli_connected, r, 1000));
  assert_true(vt_run_until(f->loop, srv_hello1, f, 1000));
  assert_string_equal(f->s.hello[0], "dev-1");
  assert_non_null(vigil_client_conn(r->cl));
  assert_int_equal(vigil_conn_policy(vigil_client_conn(r->cl))->frame_codec, 1);
  assert_int_equal(count_ev(f, "connecting"), 1);
  assert_int_equal(count_ev(f, "connected"), 1);

  assert_int_equal(vigil_client_send_data(r->cl, "up", 2), VIGIL_OK);
  assert_true(vt_run_until(f->loop, srv_data, f, 1000));
  assert_string_equal(f->s.data, "up");
  assert_int_equal(vigil_send_data(f->s.conns[0], "down", 4), VIGIL_OK);
  assert_true(vt_run_until(f->loop, cli_data, r, 1000));
  assert_string_equal(r->data, "down");

  /* Close: the conn goes, nothing reconnects. */
  assert_int_equal(vigil_client_close(r->cl), VIGIL_OK);
  assert_int_equal(vigil_client_close(r->cl), VIGIL_OK);
  assert_true(vt_run_until(f->loop, cli_gone, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_null(vigil_client_conn(r->cl));
  vt_run_until(f->loop, NULL, NULL, 300);
  assert_int_equal(vigil_client_attempts(r->cl), 1);
  assert_int_equal(f->s.closed, 1);
  assert_int_equal(count_ev(f, "closed"), 1);
  assert_int_equal(count_ev(f, "disconnected closed_by_host"), 1);
}

/* The server sends GOODBYE: the client closes first and comes back. */
static void test_goodbye_from_server_reconnects(void **state) {
  tc *t = *state; /* k_server */
  fx *f = &t->f;
  vigil_client_options o;
  cli *r = &t->r[0];
  client_opts(&o, f->s.port, r, "dev-g");
  o.backoff.initial_ms = 50;
  client_new(t, r, &o);
  assert_true(vt_run_until(f->loop, srv_hello1, f, 1000));
  assert_int_equal(vigil_conn_goodbye(f->s.conns[0], VIGIL_GOODBYE_GOING_AWAY,
                                      NULL),
                   VIGIL_OK);
  assert_true(vt_run_until(f->loop, cli_gone, r, 1000));
  assert_int_equal(r->reason, VIGIL_REASON_PEER_CLOSED);
  assert_true(vt_run_until(f->loop, srv_hello2, f, 2000));
  assert_string_equal(f->s.hello[1], "dev-g");
  uint64_t gap = f->s.hello_at[1] - r->disconnected_at;
  /* one jittered 50 ms delay (40..60) or so */
  assert_true(gap >= 35 && gap < 60 + vt_slack_ms(440));
  assert_int_equal(vigil_client_attempts(r->cl), 2);
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
  s->lfd = bound_loopback(SOCK_NONBLOCK, &s->port);
  assert_int_equal(listen(s->lfd, 16), 0);
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

/* What to wait for from a raw server and its client: at least so many
 * (each only grows). */
typedef struct waitraw {
  rawsrv *s;
  cli *r;
  int pings, accepts, hellos, gone;
} waitraw;

/* Pumps the raw server; true once everything w asks for is there. */
static int wr_reached(void *arg) {
  waitraw *w = arg;
  raw_pump(w->s);
  return w->s->pings >= w->pings && w->s->nfds >= w->accepts &&
         w->s->hello_ok >= w->hellos && w->r->disconnected >= w->gone;
}

static void test_heartbeat_dead_server_reconnect(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  rawsrv s;
  raw_listen(&s);
  vigil_client_options o;
  cli *r = &t->r[0];
  client_opts(&o, s.port, r, "dev-2");
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 50;
  p.dead_after_ms = 300;
  o.policy = &p;
  o.backoff.initial_ms = 100;
  client_new(t, r, &o);
  waitraw w = {&s, r, .pings = 6};
  /* An answering server: the client pings every 50 ms and stays up. */
  assert_true(vt_run_until(f->loop, wr_reached, &w, 2000));
  assert_int_equal(s.hello_ok, 1);
  assert_int_equal(r->connected, 1);
  assert_int_equal(r->disconnected, 0);
  /* The server hangs (no reads, no PONGs): dead_after finds it. */
  s.answer = 0;
  uint64_t hung_at = vt_now_ms();
  w.gone = 1;
  assert_true(vt_run_until(f->loop, wr_reached, &w, 2000));
  assert_int_equal(r->reason, VIGIL_REASON_HEARTBEAT_TIMEOUT);
  uint64_t took = r->disconnected_at - s.last_pong_at;
  assert_true(took >= 290 && took <= 300 + vt_slack_ms(300));
  assert_true(r->disconnected_at - hung_at <= 300 + vt_slack_ms(300));
  assert_int_equal(count_ev(f, "disconnected heartbeat_timeout"), 1);
  /* Then it comes back after one jittered initial delay (80..120 ms). */
  s.answer = 1;
  w.accepts = 2;
  assert_true(vt_run_until(f->loop, wr_reached, &w, 2000));
  uint64_t back = s.accepted_at[1] - r->disconnected_at;
  assert_true(back >= 75 && back <= 120 + vt_slack_ms(130));
  assert_true(vt_run_until(f->loop, cli_connected2, r, 1000));
  w.hellos = 2;
  assert_true(vt_run_until(f->loop, wr_reached, &w, 1000)); /* HELLO again */
  vigil_client_free(r->cl);
  r->cl = NULL;
  raw_close(&s);
}

static void test_refused_backoff_then_connect(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  uint16_t port = free_port();
  vigil_client_options o;
  cli *r = &t->r[0];
  client_opts(&o, port, r, "dev-3");
  o.backoff.initial_ms = 50;
  o.backoff.multiplier = 2.0;
  o.backoff.jitter = 0.0;
  client_new(t, r, &o);
  /* Attempts at about 0, 50, 150, 350 ms: gaps 50, 100, 200. */
  vt_run_until(f->loop, NULL, NULL, 400);
  uint64_t at[8];
  int n = 0;
  for (int i = 0; i < f->nev && n < 8; i++)
    if (strcmp(f->ev[i].detail, "connecting") == 0) at[n++] = f->ev[i].at;
  assert_true(n >= 4);
  assert_true(count_ev(f, "connect_failed ECONNREFUSED") >= 4);
  static const uint64_t gap[] = {50, 100, 200};
  for (int i = 0; i < 3; i++) {
    uint64_t g = at[i + 1] - at[i];
    if (g + 5 < gap[i] || g > gap[i] + 40)
      fail_msg("gap %d: %llu ms, want about %llu", i, (unsigned long long)g,
               (unsigned long long)gap[i]);
  }
  /* The retry_ms of each backoff event is the remaining wait. */
  int checked = 0;
  for (int i = 0; i < f->nev; i++)
    if (strncmp(f->ev[i].detail, "backoff ", 8) == 0 && checked < 3) {
      uint32_t ms = (uint32_t)atoi(f->ev[i].detail + 8);
      assert_int_equal(ms, f->ev[i].retry_ms);
      assert_true(ms <= gap[checked] && ms + 15 >= gap[checked]);
      checked++;
    }
  assert_int_equal(checked, 3);
  /* The server appears: the next attempt (due at 750 ms) connects. */
  srv_start(f, port);
  assert_true(vt_run_until(f->loop, cli_connected, r, 2000));
  assert_true(vt_run_until(f->loop, srv_hello1, f, 1000));
  assert_string_equal(f->s.hello[0], "dev-3");
  assert_int_equal(vigil_client_attempts(r->cl), 5);
  assert_int_equal(r->disconnected, 0); /* failed attempts are events only */
}

/* A listener whose accept queue is full drops SYNs: connect hangs. */
static void test_connect_timeout(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  uint16_t port;
  int lfd = bound_loopback(0, &port);
  assert_int_equal(listen(lfd, 0), 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  vt_run_until(f->loop, NULL, NULL, 50);
  vigil_client_options o;
  cli *r = &t->r[0];
  client_opts(&o, port, r, "dev-4");
  o.connect_timeout_ms = 150;
  o.backoff.initial_ms = 1000;
  client_new(t, r, &o);
  vt_run_until(f->loop, NULL, NULL, 300);
  if (count_ev(f, "connect_failed ETIMEDOUT") != 1) {
    for (int i = 0; i < 4; i++) close(fill[i]);
    close(lfd);
    skip(); /* this kernel accepted anyway (backlog semantics differ) */
    return;
  }
  int i0 = -1, i1 = -1;
  for (int i = 0; i < f->nev; i++) {
    if (strcmp(f->ev[i].detail, "connecting") == 0 && i0 < 0) i0 = i;
    if (strcmp(f->ev[i].detail, "connect_failed ETIMEDOUT") == 0) i1 = i;
  }
  uint64_t took = f->ev[i1].at - f->ev[i0].at;
  assert_true(took >= 140 && took <= 150 + vt_slack_ms(100));
  /* The next attempt is due 1000 ms +-20 % after the first started, so
   * the wait left after a 150 ms timeout is 650..1050 ms, less what the
   * timeout ran late (slack). */
  assert_true(strncmp(f->ev[i1 + 1].detail, "backoff ", 8) == 0);
  assert_true(f->ev[i1 + 1].retry_ms + vt_slack_ms(50) >= 650 &&
              f->ev[i1 + 1].retry_ms <= 1050);
  assert_int_equal(vigil_client_attempts(r->cl), 1);
  for (int i = 0; i < 4; i++) close(fill[i]);
  close(lfd);
}

/* Closing while waiting for the next attempt stops everything. */
static void test_close_during_backoff(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  vigil_client_options o;
  cli *r = &t->r[0];
  client_opts(&o, free_port(), r, NULL);
  o.backoff.initial_ms = 100;
  client_new(t, r, &o);
  vt_run_until(f->loop, NULL, NULL, 30);
  assert_int_equal(vigil_client_attempts(r->cl), 1);
  assert_int_equal(vigil_client_close(r->cl), VIGIL_OK);
  vt_run_until(f->loop, NULL, NULL, 300);
  assert_int_equal(vigil_client_attempts(r->cl), 1);
  assert_int_equal(r->disconnected, 0);
}

static void test_free_and_close_from_callbacks(void **state) {
  tc *t = *state; /* k_server */
  fx *f = &t->f;
  vigil_client_options o;
  cli *r1 = &t->r[0], *r2 = &t->r[1];
  r1->close_on_connect = 1;   /* close inside on_connected */
  r1->free_on_disconnect = 1; /* then free inside on_disconnected */
  client_opts(&o, f->s.port, r1, "cb-1");
  client_new(t, r1, &o);
  client_opts(&o, f->s.port, r2, "cb-2");
  r2->free_on_disconnect = 1;
  client_new(t, r2, &o);
  assert_true(vt_run_until(f->loop, cli_gone, r1, 1000));
  assert_null(r1->cl);
  assert_int_equal(r1->reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_true(vt_run_until(f->loop, cli_connected, r2, 1000));
  /* Free while connected: the conn closes on the hub without callbacks. */
  vigil_client_free(r2->cl);
  r2->cl = NULL;
  vt_run_until(f->loop, NULL, NULL, 100);
  assert_int_equal(r2->disconnected, 0);
  assert_int_equal(f->s.closed, 2);
}

/* ---- reconnect storm ---------------------------------------------------- */

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
  tc *t = *state; /* k_server */
  fx *f = &t->f;
  cli *r = t->r;
  vigil_client_options o;
  char ids[STORM][16];
  for (int i = 0; i < STORM; i++) {
    snprintf(ids[i], sizeof ids[i], "storm-%d", i);
    client_opts(&o, f->s.port, &r[i], ids[i]);
    o.backoff.initial_ms = 200; /* +-20 %: back within 160..240 ms */
    client_new(t, &r[i], &o);
  }
  f->want_hellos = STORM;
  assert_true(vt_run_until(f->loop, storm_hellos, f, 3000));
  /* Up long enough (>= initial) for the backoff to start over. */
  vt_run_until(f->loop, NULL, NULL, 250);
  /* The server drops everyone at once (RST). */
  f->s.hellos = 0;
  int n = f->s.nconns;
  f->s.nconns = 0;
  uint64_t cut = vt_now_ms();
  for (int i = 0; i < n; i++)
    if (f->s.conns[i]) vigil_abort(f->s.conns[i]);
  assert_true(vt_run_until(f->loop, storm_hellos, f, 3000));
  uint64_t back[STORM];
  double mean = 0, var = 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  int bucket[64] = {0}, max_bucket = 0;
  for (int i = 0; i < STORM; i++) {
    back[i] = f->s.hello_at[i] - cut;
    mean += (double)back[i];
    if (back[i] < lo) lo = back[i];
    if (back[i] > hi) hi = back[i];
    int b = (int)(back[i] / 10);
    if (b < 64 && ++bucket[b] > max_bucket) max_bucket = bucket[b];
  }
  mean /= STORM;
  for (int i = 0; i < STORM; i++) var += (back[i] - mean) * (back[i] - mean);
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
  for (int i = 0; i < STORM; i++)
    assert_int_equal(r[i].reason, VIGIL_REASON_PEER_RESET);
}

/* ---- the game_server example, driven by two clients -------------------- */

static int game_chat(void *arg) { return ((cli *)arg)[1].ndata > 0; }
static int game_joined(void *arg) {
  cli *r = arg;
  return r[0].connected && r[1].connected && r[0].ndata + r[1].ndata > 0;
}

typedef struct game_server {
  pid_t pid;
  uint16_t port;
  int err_fd; /* its stderr */
} game_server;

/* Starts examples/game_server with --workers (and a fast heartbeat) and
 * reads the port it listens on. Skips the test when the examples were not
 * built. */
static game_server game_server_start(const char *workers) {
  const char *dir = getenv("VIGIL_BUILD_DIR");
  char path[512];
  snprintf(path, sizeof path, "%s/examples/game_server", dir ? dir : ".");
  if (access(path, X_OK) != 0) skip(); /* examples not built */
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
  game_server gs = {pid, (uint16_t)atoi(colon + 1), out[0]};
  assert_true(gs.port > 0);
  return gs;
}

static void game_server_exits_0(const game_server *gs) {
  int status = 0;
  assert_int_equal(waitpid(gs->pid, &status, 0), gs->pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  close(gs->err_fd);
}

/* Clients r[0..n) are all connected / all disconnected. */
typedef struct players {
  cli *r;
  int n;
} players;

static int players_in(void *arg) {
  players *p = arg;
  for (int i = 0; i < p->n; i++)
    if (!p->r[i].connected) return 0;
  return 1;
}

static int players_gone(void *arg) {
  players *p = arg;
  for (int i = 0; i < p->n; i++)
    if (!p->r[i].disconnected) return 0;
  return 1;
}

/* SIGTERM: the server says GOODBYE shutdown, the clients close, and the
 * server exits 0. */
static void game_server_stop(fx *f, const game_server *gs, players *all) {
  kill(gs->pid, SIGTERM);
  assert_true(vt_run_until(f->loop, players_gone, all, 3000));
  for (int i = 0; i < all->n; i++)
    assert_int_equal(all->r[i].reason, VIGIL_REASON_PEER_CLOSED);
  game_server_exits_0(gs);
}

static void test_game_server_example(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  cli *r = t->r;
  game_server gs = game_server_start("1");
  vigil_client_options o;
  client_opts(&o, gs.port, &r[0], "alice@lobby");
  client_new(t, &r[0], &o);
  vt_run_until(f->loop, cli_connected, &r[0], 1000);
  client_opts(&o, gs.port, &r[1], "bob@lobby");
  client_new(t, &r[1], &o);
  /* alice hears that bob joined, then bob hears alice speak. */
  /* Whoever the server seated first hears that the other joined. */
  assert_true(vt_run_until(f->loop, game_joined, r, 2000));
  int first = r[0].ndata ? 0 : 1;
  assert_string_equal(r[first].data,
                      first == 0 ? "* bob joined" : "* alice joined");
  r[1].ndata = 0;
  assert_int_equal(vigil_client_send_data(r[0].cl, "hi", 2), VIGIL_OK);
  assert_true(vt_run_until(f->loop, game_chat, r, 2000));
  assert_string_equal(r[1].data, "alice: hi");
  /* Both stay up across several of the server's pings. */
  vt_run_until(f->loop, NULL, NULL, 500);
  assert_int_equal(r[0].disconnected + r[1].disconnected, 0);
  players both = {r, 2};
  game_server_stop(f, &gs, &both);
}

/* game_server --workers 2: players get in wherever the kernel puts them,
 * stay up across pings, and every worker says GOODBYE on SIGTERM. */
#define GAME_PLAYERS 6

static void test_game_server_workers(void **state) {
  tc *t = *state;
  fx *f = &t->f;
  cli *r = t->r;
  game_server gs = game_server_start("2");
  for (int i = 0; i < GAME_PLAYERS; i++) {
    char id[32];
    snprintf(id, sizeof id, "p%d@room", i);
    vigil_client_options o;
    client_opts(&o, gs.port, &r[i], id);
    client_new(t, &r[i], &o);
  }
  players all = {r, GAME_PLAYERS};
  assert_true(vt_run_until(f->loop, players_in, &all, 3000));
  vt_run_until(f->loop, NULL, NULL, 500); /* several of the server's pings */
  for (int i = 0; i < GAME_PLAYERS; i++)
    assert_int_equal(r[i].disconnected, 0);
  game_server_stop(f, &gs, &all);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, tc_setup, tc_teardown)
#define TEST_WITH_SERVER(fn)                                     \
  cmocka_unit_test_prestate_setup_teardown(fn, tc_setup, tc_teardown, \
                                           (void *)&k_server)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_bad_options),
      TEST_WITH_SERVER(test_connect_exchange_close),
      TEST_WITH_SERVER(test_goodbye_from_server_reconnects),
      TEST(test_heartbeat_dead_server_reconnect),
      TEST(test_refused_backoff_then_connect),
      TEST(test_connect_timeout),
      TEST(test_close_during_backoff),
      TEST_WITH_SERVER(test_free_and_close_from_callbacks),
      TEST_WITH_SERVER(test_storm_spreads),
      TEST(test_game_server_example),
      TEST(test_game_server_workers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
