/*
 * Re-entrancy as a rule: for every event type a hub emits, and for every
 * destructive call a host may make from its event sink (free the hub,
 * close or abort the event's conn, close the listener, free the client),
 * one run of a scripted lifetime of a hub performs that call on the first
 * event of that type. Events fire from the loop and from inside public
 * calls (vigil_adopt, vigil_conn_ready, vigil_conn_identify, vigil_close,
 * vigil_hub_shutdown...), so this covers both.
 *
 * Every run must end with on_close exactly once per conn, every socket
 * released, and (under ASan and valgrind) no invalid access or leak.
 * A handle a public call returned stays usable until control is back in
 * the loop, even when the sink freed the hub during that call.
 *
 * The hub runs on a fake clock: conn deadlines (ping, idle, dead, drain,
 * the shutdown deadline) come when the script moves time, in 5 ms steps
 * so they come in their natural order; only timers that run on the
 * loop's own time (census interval, client backoff, EMFILE retry,
 * shutdown poll) cost real milliseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "vigil.h"

enum action {
  ACT_HUB_FREE,
  ACT_CONN_CLOSE,
  ACT_CONN_ABORT,
  ACT_LISTENER_CLOSE,
  ACT_CLIENT_FREE,
  ACT__COUNT
};
static const char *const action_names[] = {"hub_free", "conn_close",
                                           "conn_abort", "listener_close",
                                           "client_free"};

#define MAX_CONNS 16
#define MAX_PEERS 16

typedef struct world {
  struct ev_loop *loop;
  vigil_hub *hub;          /* NULL once the sink freed it */
  vigil_listener *l;       /* NULL once closed (or the hub freed) */
  uint16_t port;
  vigil_client *client;    /* NULL once freed */
  vigil_conn *conns[MAX_CONNS]; /* by accept order; NULL after on_close */
  int closes[MAX_CONNS];
  int nconns;
  int client_closes;       /* the client's own conn */
  int peers[MAX_PEERS];
  int npeers;
  vigil_event_type target;
  enum action act;
  int fired;
  int shutdown_done;
  int seen[VIGIL_EV__COUNT];
  uint64_t now;            /* the hub's fake clock */
} world;

static world *W;

static void on_close(vigil_conn *c, vigil_reason r, void *ud) {
  (void)c;
  (void)r;
  int i = (int)(intptr_t)ud;
  W->closes[i]++;
  W->conns[i] = NULL;
}

static const vigil_conn_callbacks k_cb = {.on_close = on_close};

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l;
  (void)ud;
  if (W->nconns >= MAX_CONNS) {
    vigil_abort(c);
    return;
  }
  int i = W->nconns++;
  W->conns[i] = c;
  vigil_conn_set_user_data(c, (void *)(intptr_t)i);
}

static void sink(vigil_hub *hub, const vigil_event *ev, void *ud) {
  world *w = ud;
  if (ev->type > 0 && ev->type < VIGIL_EV__COUNT) w->seen[ev->type]++;
  if (w->fired || ev->type != w->target) return;
  w->fired = 1;
  switch (w->act) {
  case ACT_HUB_FREE:
    vigil_hub_free(hub);
    vigil_hub_free(hub); /* a second call is harmless */
    w->hub = NULL;
    w->l = NULL; /* the hub owns its listeners */
    break;
  case ACT_CONN_CLOSE:
    if (ev->conn) vigil_close(ev->conn);
    break;
  case ACT_CONN_ABORT:
    if (ev->conn) vigil_abort(ev->conn);
    break;
  case ACT_LISTENER_CLOSE:
    if (w->l) vigil_listener_close(w->l);
    w->l = NULL;
    break;
  case ACT_CLIENT_FREE:
    if (w->client) vigil_client_free(w->client);
    w->client = NULL;
    break;
  default:
    break;
  }
}

static void shutdown_done(vigil_hub *hub, void *ud) {
  (void)hub;
  ((world *)ud)->shutdown_done++;
}

static int shutdown_finished(void *arg) {
  world *w = arg;
  return !w->hub || w->shutdown_done > 0;
}

static void client_disconnected(vigil_client *cl, vigil_reason r, void *ud) {
  (void)cl;
  (void)r;
  ((world *)ud)->client_closes++;
}

static void run_ms(world *w, uint32_t ms) { vt_run_until(w->loop, NULL, NULL, ms); }

typedef struct seen_wait {
  world *w;
  vigil_event_type type;
  int count;
} seen_wait;

static int seen_enough(void *arg) {
  seen_wait *s = arg;
  return !s->w->hub || s->w->seen[s->type] >= s->count;
}

/* Runs the loop until one more event of `type` (or the hub is gone), for
 * at most ms of real time. */
static void run_until_seen(world *w, vigil_event_type type, uint32_t ms) {
  seen_wait s = {w, type, w->seen[type] + 1};
  vt_run_until(w->loop, seen_enough, &s, ms);
}

static int client_accepted(void *arg) {
  world *w = arg;
  return !w->hub || !w->l || w->nconns > 0;
}

/* Moves the fake clock by ms in tick-sized steps (conn deadlines fire one
 * by one, in order), stopping if the sink freed the hub. */
static void pass_ms(world *w, uint32_t ms) {
  for (uint32_t t = 0; t < ms && w->hub; t += 5)
    vt_advance(w->loop, w->hub, &w->now, 5);
}

static int peer_connect(world *w) {
  if (!w->l || w->npeers >= MAX_PEERS) return -1;
  int fd = vt_connect_loopback(w->port);
  if (fd >= 0) w->peers[w->npeers++] = fd;
  return fd;
}

/* The newest accepted conn, if still open and the hub is alive. */
static vigil_conn *newest(world *w) {
  if (!w->hub || w->nconns == 0) return NULL;
  return w->conns[w->nconns - 1];
}

static int g_before;
static int accepted_more(void *arg) {
  world *w = arg;
  return w->hub == NULL || w->nconns > g_before;
}

/* Connects one more raw peer and waits until it was accepted. */
static vigil_conn *accept_one(world *w) {
  g_before = w->nconns;
  if (peer_connect(w) < 0) return NULL;
  vt_run_until(w->loop, accepted_more, w, 1000);
  return w->hub && w->nconns > g_before ? newest(w) : NULL;
}

/* Drives the whole scripted lifetime; every step is skipped once the hub
 * is gone. */
static void script(world *w) {
  vigil_conn *c;
  /* A client on the same hub (client events, its conn's open/close). */
  vigil_client_options co;
  vigil_client_options_init(&co);
  co.host = "127.0.0.1";
  co.port = w->port;
  co.identity = "client";
  co.on_disconnected = client_disconnected;
  co.user_data = w;
  co.backoff.initial_ms = 20;
  co.backoff.max_ms = 40;
  assert_int_equal(vigil_client_new(w->hub, &co, &w->client), VIGIL_OK);
  vt_run_until(w->loop, client_accepted, w, 1000);

  /* open (from accept), ready and identify from public calls. */
  if ((c = accept_one(w))) {
    vigil_conn_ready(c);
    if (w->hub && (c = w->conns[w->nconns - 1]))
      vigil_conn_identify(c, "dev", 3);
  }
  /* takeover, then flapping (flap_max 1), both inside vigil_conn_identify. */
  for (int k = 0; k < 2; k++) {
    if (!(c = accept_one(w))) break;
    vigil_conn_ready(c);
    if (w->hub && (c = w->conns[w->nconns - 1]))
      vigil_conn_identify(c, "dev", 3);
  }
  /* The peer half-closes: peer_fin. */
  if (accept_one(w) && w->npeers > 0) {
    shutdown(w->peers[w->npeers - 1], SHUT_WR);
    run_until_seen(w, VIGIL_EV_PEER_FIN, 500);
  }
  /* Our own close: draining, inside vigil_close. */
  if ((c = accept_one(w))) vigil_close(c);
  run_ms(w, 20);

  /* EMFILE: accept_paused, then accept_resumed. */
  if (w->l) {
    struct rlimit old, tight;
    getrlimit(RLIMIT_NOFILE, &old);
    int fd = peer_connect(w);
    tight = old;
    tight.rlim_cur = (rlim_t)vt_open_fd_count() + 4;
    setrlimit(RLIMIT_NOFILE, &tight);
    int fill[32], nfill = 0;
    while (nfill < 32 && (fill[nfill] = open("/dev/null", O_RDONLY)) >= 0)
      nfill++;
    run_until_seen(w, VIGIL_EV_ACCEPT_PAUSED, 500);
    for (int i = 0; i < nfill; i++) close(fill[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    /* retry after the backoff: resumed */
    if (fd >= 0 && w->l) run_until_seen(w, VIGIL_EV_ACCEPT_RESUMED, 500);
  }

  /* Silence: ping_due, idle, then dead for the quiet conns (fake time);
   * the census on its real-time interval. */
  pass_ms(w, 150);
  run_until_seen(w, VIGIL_EV_CENSUS, 500);

  /* Graceful shutdown: "shutdown" from inside the call and when done (the
   * deadline on the hub clock, noticed by a 10 ms real-time poll). */
  if (w->hub) {
    accept_one(w);
    if (w->hub) vigil_hub_shutdown(w->hub, 50, shutdown_done, w);
    pass_ms(w, 60);
    vt_run_until(w->loop, shutdown_finished, w, 500);
  }
}

static void run_case(vigil_event_type target, enum action act) {
  world w;
  memset(&w, 0, sizeof w);
  W = &w;
  w.target = target;
  w.act = act;
  int fds_before = vt_open_fd_count();
  w.loop = ev_loop_new(EVFLAG_AUTO);
  vigil_policy p;
  vigil_policy_init(&p);
  p.handshake_timeout_ms = 5000;
  p.ping_interval_ms = 30;
  p.read_idle_ms = 40;
  p.dead_after_ms = 120;
  p.drain_timeout_ms = 60;
  p.linger_max_ms = 200;
  p.flap_max = 1;
  p.flap_ban_ms = 0;
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &p;
  o.tick_ms = 5;
  o.clock = vt_fake_clock;
  o.clock_data = &w.now;
  w.now = 1000000;
  o.on_event = sink;
  o.event_data = &w;
  o.census_interval_ms = 40;
  assert_int_equal(vigil_hub_new(w.loop, &o, &w.hub), VIGIL_OK);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = &k_cb;
  lo.on_accept = on_accept;
  lo.emfile_backoff_min_ms = 20;
  lo.emfile_backoff_max_ms = 20;
  assert_int_equal(vigil_listen(w.hub, &lo, &w.l), VIGIL_OK);
  w.port = vigil_listener_port(w.l);

  script(&w);

  /* Whatever is left: the host tears down as a host would. */
  for (int i = 0; i < w.npeers; i++) close(w.peers[i]);
  if (w.hub) run_ms(&w, 20);
  if (w.hub) vigil_hub_free(w.hub);
  run_ms(&w, 5); /* a deferred free completes in the loop */
  if (w.client) vigil_client_free(w.client);
  ev_loop_destroy(w.loop);

  int bad = 0;
  for (int i = 0; i < w.nconns; i++) bad += w.closes[i] != 1;
  if (bad || !w.fired || vt_open_fd_count() != fds_before)
    fprintf(stderr, "case %s/%s: fired=%d conns=%d bad_closes=%d fds %d->%d\n",
            vigil_event_name(target), action_names[act], w.fired, w.nconns,
            bad, fds_before, vt_open_fd_count());
  assert_true(w.fired);
  assert_int_equal(bad, 0);
  assert_int_equal(vt_open_fd_count(), fds_before);
}

static const vigil_event_type k_targets[] = {
    VIGIL_EV_OPEN,         VIGIL_EV_READY,         VIGIL_EV_TAKEOVER,
    VIGIL_EV_FLAPPING,     VIGIL_EV_CLOSE,         VIGIL_EV_PEER_FIN,
    VIGIL_EV_DRAINING,     VIGIL_EV_ACCEPT_PAUSED, VIGIL_EV_ACCEPT_RESUMED,
    VIGIL_EV_PING_DUE,     VIGIL_EV_IDLE,          VIGIL_EV_DEAD,
    VIGIL_EV_CENSUS,       VIGIL_EV_SHUTDOWN,      VIGIL_EV_CLIENT,
};

/* One cmocka test per action keeps a failure's name telling. */
static void every_event(enum action act) {
  for (size_t i = 0; i < sizeof k_targets / sizeof k_targets[0]; i++)
    run_case(k_targets[i], act);
}

static void test_hub_free_from_sink(void **s) { (void)s; every_event(ACT_HUB_FREE); }
static void test_conn_close_from_sink(void **s) { (void)s; every_event(ACT_CONN_CLOSE); }
static void test_conn_abort_from_sink(void **s) { (void)s; every_event(ACT_CONN_ABORT); }
static void test_listener_close_from_sink(void **s) { (void)s; every_event(ACT_LISTENER_CLOSE); }
static void test_client_free_from_sink(void **s) { (void)s; every_event(ACT_CLIENT_FREE); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hub_free_from_sink),
      cmocka_unit_test(test_conn_close_from_sink),
      cmocka_unit_test(test_conn_abort_from_sink),
      cmocka_unit_test(test_listener_close_from_sink),
      cmocka_unit_test(test_client_free_from_sink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
