/*
 * Identity claims and takeover on loopback: the three takeover modes, the
 * epoch guard against a displaced conn's late close, flapping and bans
 * (driven by a fake clock), the index's bookkeeping, and argument errors.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ghostfix.h"
#include "testutil.h"
#include "vigil.h"

#define NCONN 8
/* The live close's bound on loopback: the 100 ms floor. */
#define VIGIL_TEST_LIVE_BOUND_MS 100

typedef struct fixture {
  struct ev_loop *loop;
  vigil_hub *hub;
  gf_log log;
  vigil_policy policy;
  uint64_t fake_now;
  int use_fake_clock;
  gf_conn rec[NCONN];
  int client[NCONN];
  /* ASK mode */
  int ask_answer;
  int ask_calls;
  vigil_conn *ask_old, *ask_new;
  int ask_close_old;
} fixture;

static fixture *F;

static void hub_up(fixture *f) {
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &f->policy;
  o.on_event = gf_on_event;
  o.event_data = &f->log;
  if (f->use_fake_clock) {
    o.clock = vt_fake_clock;
    o.clock_data = &f->fake_now;
  }
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(f->loop);
  vigil_policy_init(&f->policy);
  f->fake_now = 1000000;
  for (int i = 0; i < NCONN; i++) f->client[i] = -1;
  F = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->hub) vigil_hub_free(f->hub);
  for (int i = 0; i < NCONN; i++)
    if (f->client[i] >= 0) close(f->client[i]);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

/* Adopts the server end of a fresh loopback pair as rec[i]. */
static void open_conn(fixture *f, int i) {
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  f->client[i] = c;
  memset(&f->rec[i], 0, sizeof f->rec[i]);
  f->rec[i].echo = 1;
  assert_int_equal(gf_adopt(f->hub, s, &f->rec[i], NULL), VIGIL_OK);
}

static int identify(fixture *f, int i, const char *id) {
  return vigil_conn_identify(f->rec[i].c, id, strlen(id));
}

static void run_until_closed(fixture *f, int i) {
  assert_true(vt_run_until(f->loop, gf_is_closed, &f->rec[i], 2000));
}

/* What the client of conn i sees within 1 s: 1 = EOF, -errno = error,
 * 0 = nothing yet. */
static int client_end(fixture *f, int i) {
  char buf[256];
  uint64_t end = vt_now_ms() + 1000;
  while (vt_now_ms() < end) {
    int eof = 0;
    long n = vt_read_avail(f->client[i], buf, sizeof buf, &eof);
    if (eof) return 1;
    if (n < 0 && errno != EAGAIN) return -errno;
    vt_run_until(f->loop, NULL, NULL, 5);
  }
  return 0;
}

struct echo_wait {
  gf_conn *rec;
  size_t want;
};

static int got_bytes(void *arg) {
  struct echo_wait *w = arg;
  return w->rec->bytes >= w->want;
}

/* Round trip through conn i: client sends, vigil echoes, client reads. */
static void assert_echo(fixture *f, int i, const char *msg) {
  struct echo_wait w = {&f->rec[i], f->rec[i].bytes + strlen(msg)};
  assert_int_equal(gf_send_all(f->client[i], msg), 0);
  assert_true(vt_run_until(f->loop, got_bytes, &w, 2000));
  char buf[64] = {0};
  size_t got = 0;
  uint64_t end = vt_now_ms() + 2000;
  while (got < strlen(msg) && vt_now_ms() < end) {
    long n = vt_read_avail(f->client[i], buf + got, sizeof buf - 1 - got, NULL);
    if (n > 0) got += (size_t)n;
    vt_run_until(f->loop, NULL, NULL, 2);
  }
  assert_string_equal(buf, msg);
}

/* A displaced conn whose peer is alive (no loss evidence: here a
 * loopback client that reads) is closed gracefully: the bytes queued
 * before the takeover and our FIN reach it, and since it never closes its
 * socket, the takeover bound ends the close with RST a little later. */
static void test_newest_wins_closes_live_old_gracefully(void **state) {
  fixture *f = *state;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  assert_int_equal(identify(f, 0, "dev-1"), VIGIL_OK);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-1", 5), f->rec[0].c);
  assert_string_equal(vigil_conn_identity(f->rec[0].c), "dev-1");

  vigil_conn *old = f->rec[0].c;
  static const char last[] = "last words before the takeover";
  assert_int_equal(vigil_send(old, last, sizeof last - 1), VIGIL_OK);
  uint64_t t_claim = vt_now_ms();
  assert_int_equal(identify(f, 1, "dev-1"), VIGIL_OK);
  /* The identity moved at once; the old conn is on its way out. */
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-1", 5), f->rec[1].c);
  assert_true(vigil_conn_get_state(old) == VIGIL_CONN_DRAINING);

  const gf_event *t = gf_find(&f->log, VIGIL_EV_TAKEOVER, 0);
  assert_non_null(t);
  assert_int_equal(t->conn_id, f->rec[1].id);
  assert_int_equal(t->other_conn_id, f->rec[0].id);
  assert_string_equal(t->identity, "dev-1");
  assert_int_equal(t->peer_class, VIGIL_PEER_LIVE);
  assert_int_equal(t->evidence, 0);

  /* Every byte, then EOF: a clean FIN, not a reset. */
  char buf[128] = {0};
  size_t got = 0;
  int eof = 0;
  uint64_t end = vt_now_ms() + 1000;
  while (!eof && vt_now_ms() < end) {
    long n = vt_read_avail(f->client[0], buf + got, sizeof buf - 1 - got,
                           &eof);
    assert_true(n >= 0 || errno == EAGAIN);
    if (n > 0) got += (size_t)n;
    vt_run_until(f->loop, NULL, NULL, 2);
  }
  assert_true(eof);
  assert_string_equal(buf, last);

  /* The client keeps its socket open and silent: reset at the bound. */
  run_until_closed(f, 0);
  uint64_t took = f->rec[0].closed_ms - t_claim;
  assert_true(took >= VIGIL_TEST_LIVE_BOUND_MS);
  assert_true(took < 1000);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_TAKEOVER);
  const gf_event *cl = gf_find(&f->log, VIGIL_EV_CLOSE, f->rec[0].id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(cl->peer_class, VIGIL_PEER_LIVE);
  assert_string_equal(cl->identity, "dev-1");
  assert_echo(f, 1, "still here");

  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers, 1);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_LIVE], 1);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_GHOST], 0);
  assert_int_equal(st.closed[VIGIL_REASON_TAKEOVER], 1);
}

/* A displaced conn that left a ping unanswered for more than a few RTTs
 * is a ghost: reset inside the claim, as a dead peer is. */
static void test_newest_wins_resets_a_ghost(void **state) {
  fixture *f = *state;
  f->policy.ping_interval_ms = 50;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  f->rec[0].ping_sends = 1; /* the client never answers */
  assert_int_equal(identify(f, 0, "dev-1"), VIGIL_OK);
  /* The first ping after 50 ms of silence, unanswered 200 ms later. */
  vt_run_until(f->loop, NULL, NULL, 300);
  assert_true(f->rec[0].pings >= 1);

  vigil_conn *old = f->rec[0].c;
  assert_int_equal(identify(f, 1, "dev-1"), VIGIL_OK);
  /* Synchronous: the old conn is closed by the time identify returns. */
  assert_int_equal(vigil_conn_get_state(old), VIGIL_CONN_CLOSED);
  const gf_event *t = gf_find(&f->log, VIGIL_EV_TAKEOVER, 0);
  assert_non_null(t);
  assert_int_equal(t->peer_class, VIGIL_PEER_GHOST);
  assert_true(t->evidence & VIGIL_EVIDENCE_PING_OUTSTANDING);
  const gf_event *cl = gf_find(&f->log, VIGIL_EV_CLOSE, f->rec[0].id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(cl->peer_class, VIGIL_PEER_GHOST);
  assert_int_equal(cl->evidence, t->evidence);

  run_until_closed(f, 0);
  /* abort_dead: RST. The client holds unread pings, and a reset socket
   * hands out its unread bytes and then EOF, so ask the kernel. */
  assert_int_equal(vt_tcp_state(f->client[0]), VIGIL_TCP_CLOSE);
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_GHOST], 1);
}

static void test_newest_wins_without_abort_dead_sends_fin(void **state) {
  fixture *f = *state;
  f->policy.abort_dead = 0;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  assert_int_equal(identify(f, 0, "dev-2"), VIGIL_OK);
  assert_int_equal(identify(f, 1, "dev-2"), VIGIL_OK);
  run_until_closed(f, 0);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(client_end(f, 0), 1); /* plain close: FIN */
}

static void test_oldest_wins_rejects_newcomer(void **state) {
  fixture *f = *state;
  f->policy.takeover = VIGIL_TAKEOVER_OLDEST_WINS;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  assert_int_equal(identify(f, 0, "dev-3"), VIGIL_OK);
  /* Output queued before the claim still reaches the refused peer. */
  assert_int_equal(vigil_send(f->rec[1].c, "bye", 3), VIGIL_OK);
  assert_int_equal(identify(f, 1, "dev-3"), VIGIL_EREJECTED);
  assert_true(vigil_conn_get_state(f->rec[1].c) >= VIGIL_CONN_FLUSHING);
  /* The refused claim is still shown in the refused conn's events. */
  assert_string_equal(vigil_conn_identity(f->rec[1].c), "dev-3");
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-3", 5), f->rec[0].c);
  assert_int_equal(identify(f, 1, "other"), VIGIL_ECLOSED);

  char buf[8] = {0};
  uint64_t end = vt_now_ms() + 1000;
  while (strlen(buf) < 3 && vt_now_ms() < end) {
    vt_read_avail(f->client[1], buf + strlen(buf), 3 - strlen(buf), NULL);
    vt_run_until(f->loop, NULL, NULL, 2);
  }
  assert_string_equal(buf, "bye");
  close(f->client[1]); /* complete the graceful close */
  f->client[1] = -1;
  run_until_closed(f, 1);
  assert_int_equal(f->rec[1].reason, VIGIL_REASON_TAKEOVER_REJECTED);
  assert_null(gf_find(&f->log, VIGIL_EV_TAKEOVER, 0));
  assert_false(f->rec[0].closed);
  assert_echo(f, 0, "oldest");
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers, 0);
}

static int ask_cb(vigil_hub *hub, vigil_conn *old_conn, vigil_conn *new_conn,
                  void *ud) {
  fixture *f = ud;
  assert_ptr_equal(hub, f->hub);
  f->ask_calls++;
  f->ask_old = old_conn;
  f->ask_new = new_conn;
  if (f->ask_close_old) vigil_abort(old_conn);
  return f->ask_answer;
}

static void ask_hub_up(fixture *f, int with_cb) {
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  f->policy.takeover = VIGIL_TAKEOVER_ASK;
  o.policy = &f->policy;
  o.on_event = gf_on_event;
  o.event_data = &f->log;
  if (with_cb) {
    o.on_takeover = ask_cb;
    o.takeover_data = f;
  }
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

static void test_ask_mode_host_decides(void **state) {
  fixture *f = *state;
  ask_hub_up(f, 1);
  for (int i = 0; i < 4; i++) open_conn(f, i);
  assert_int_equal(identify(f, 0, "dev-4"), VIGIL_OK);
  assert_int_equal(f->ask_calls, 0); /* uncontested: no question */

  f->ask_answer = 0; /* keep the old */
  assert_int_equal(identify(f, 1, "dev-4"), VIGIL_EREJECTED);
  assert_int_equal(f->ask_calls, 1);
  assert_ptr_equal(f->ask_old, f->rec[0].c);
  assert_ptr_equal(f->ask_new, f->rec[1].c);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-4", 5), f->rec[0].c);

  f->ask_answer = 1; /* let the new one win */
  vigil_conn *old = f->rec[0].c;
  assert_int_equal(identify(f, 2, "dev-4"), VIGIL_OK);
  assert_int_equal(f->ask_calls, 2);
  /* A live peer: closing gracefully (test_newest_wins_closes_live_...). */
  assert_true(vigil_conn_get_state(old) >= VIGIL_CONN_FLUSHING);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-4", 5), f->rec[2].c);

  /* The host aborts the holder itself and says "keep old": there is no
   * old left to keep, so the claim succeeds. */
  f->ask_answer = 0;
  f->ask_close_old = 1;
  assert_int_equal(identify(f, 3, "dev-4"), VIGIL_OK);
  assert_int_equal(f->ask_calls, 3);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-4", 5), f->rec[3].c);
  close(f->client[1]); /* let the refused conn's graceful close finish */
  f->client[1] = -1;
  run_until_closed(f, 2);
  assert_int_equal(f->rec[2].reason, VIGIL_REASON_CLOSED_BY_HOST);
  run_until_closed(f, 1);
  assert_int_equal(f->rec[1].reason, VIGIL_REASON_TAKEOVER_REJECTED);
  run_until_closed(f, 0);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_TAKEOVER);
  assert_echo(f, 3, "asked");
}

static void test_ask_mode_without_callback_is_newest_wins(void **state) {
  fixture *f = *state;
  ask_hub_up(f, 0);
  open_conn(f, 0);
  open_conn(f, 1);
  assert_int_equal(identify(f, 0, "dev-5"), VIGIL_OK);
  assert_int_equal(identify(f, 1, "dev-5"), VIGIL_OK);
  run_until_closed(f, 0);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_TAKEOVER);
}

/* The displaced conn is still draining when its successor claims; its FIN
 * completes its close later and must not remove the successor's entry. */
static void test_epoch_guard_late_fin(void **state) {
  fixture *f = *state;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  open_conn(f, 2);
  assert_int_equal(identify(f, 0, "dev-6"), VIGIL_OK);
  assert_int_equal(vigil_close(f->rec[0].c), VIGIL_OK);
  assert_int_equal(vigil_conn_get_state(f->rec[0].c), VIGIL_CONN_DRAINING);
  /* A leaving holder is no contest: no takeover, no event. */
  assert_int_equal(identify(f, 1, "dev-6"), VIGIL_OK);
  assert_null(gf_find(&f->log, VIGIL_EV_TAKEOVER, 0));
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-6", 5), f->rec[1].c);

  /* The old peer's late FIN arrives: the old conn finishes. */
  close(f->client[0]);
  f->client[0] = -1;
  run_until_closed(f, 0);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_CLOSED_BY_HOST);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-6", 5), f->rec[1].c);
  assert_int_equal(vigil_conn_get_state(f->rec[1].c), VIGIL_CONN_OPEN);
  assert_echo(f, 1, "unharmed");

  /* The successor is displaced in turn by a real takeover, and the entry
   * then follows conn 2 alone. */
  assert_int_equal(identify(f, 2, "dev-6"), VIGIL_OK);
  run_until_closed(f, 1);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-6", 5), f->rec[2].c);
  /* When the last holder closes, the identity is free again. */
  vigil_abort(f->rec[2].c);
  run_until_closed(f, 2);
  assert_null(vigil_hub_find_identity(f->hub, "dev-6", 5));
}

/* Watch-only hosts report EOF themselves and may do so after a takeover
 * already closed the conn; the late report must change nothing. */
static void test_epoch_guard_watch_only_late_eof(void **state) {
  fixture *f = *state;
  /* A ping left unanswered makes the old peer a ghost, closed inside the
   * claim, so its host's EOF report comes late. */
  f->policy.ping_interval_ms = 20;
  hub_up(f);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  f->client[0] = c;
  vigil_adopt_options o;
  vigil_adopt_options_init(&o);
  o.watch_only = 1;
  o.callbacks = gf_callbacks();
  o.user_data = &f->rec[0];
  assert_int_equal(vigil_adopt(f->hub, s, &o, &f->rec[0].c), VIGIL_OK);
  f->rec[0].id = vigil_conn_id(f->rec[0].c);
  open_conn(f, 1);
  vigil_conn *old = f->rec[0].c;
  assert_int_equal(vigil_conn_identify(old, "dev-7", 5), VIGIL_OK);
  vt_run_until(f->loop, NULL, NULL, 300);
  assert_int_equal(identify(f, 1, "dev-7"), VIGIL_OK);
  assert_int_equal(vigil_conn_get_state(old), VIGIL_CONN_CLOSED);
  vigil_conn_peer_eof(old); /* late, before on_close was delivered */
  vigil_conn_touch_rx(old, 10);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-7", 5), f->rec[1].c);
  run_until_closed(f, 0);
  assert_int_equal(f->rec[0].reason, VIGIL_REASON_TAKEOVER);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "dev-7", 5), f->rec[1].c);
  assert_echo(f, 1, "watch");
}

static void advance(fixture *f, uint64_t ms) {
  vt_advance(f->loop, f->hub, &f->fake_now, ms);
}

static void test_flapping_bans_identity(void **state) {
  fixture *f = *state;
  f->use_fake_clock = 1;
  f->policy.flap_max = 2;
  f->policy.flap_window_ms = 10000;
  f->policy.flap_ban_ms = 5000;
  hub_up(f);
  for (int i = 0; i < 6; i++) open_conn(f, i);
  assert_int_equal(identify(f, 0, "flappy"), VIGIL_OK);
  advance(f, 100);
  assert_int_equal(identify(f, 1, "flappy"), VIGIL_OK); /* takeover 1 */
  advance(f, 100);
  assert_int_equal(identify(f, 2, "flappy"), VIGIL_OK); /* takeover 2 */
  assert_null(gf_find(&f->log, VIGIL_EV_FLAPPING, 0));
  advance(f, 100);
  /* The third contest in the window crosses flap_max = 2. */
  assert_int_equal(identify(f, 3, "flappy"), VIGIL_EBANNED);
  const gf_event *fl = gf_find(&f->log, VIGIL_EV_FLAPPING, 0);
  assert_non_null(fl);
  assert_int_equal(fl->count, 3);
  assert_int_equal(fl->conn_id, f->rec[3].id);
  assert_string_equal(fl->identity, "flappy");
  /* A ban refuses claims; the current holder stays. */
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "flappy", 6), f->rec[2].c);
  assert_false(f->rec[2].closed);
  close(f->client[3]); /* complete the refused conn's graceful close */
  f->client[3] = -1;
  run_until_closed(f, 3);
  advance(f, 4999); /* 4999 ms into the ban */
  assert_int_equal(identify(f, 4, "flappy"), VIGIL_EBANNED);
  close(f->client[4]);
  f->client[4] = -1;
  run_until_closed(f, 4);
  assert_int_equal(f->log.per_type[VIGIL_EV_FLAPPING], 1);
  advance(f, 1); /* the ban is over; history starts afresh */
  assert_int_equal(identify(f, 5, "flappy"), VIGIL_OK);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "flappy", 6), f->rec[5].c);

  advance(f, 200); /* the displaced live conns' takeover bound */
  for (int i = 0; i < 5; i++) run_until_closed(f, i);
  assert_int_equal(f->rec[3].reason, VIGIL_REASON_IDENTITY_BANNED);
  assert_int_equal(f->rec[4].reason, VIGIL_REASON_IDENTITY_BANNED);
  assert_int_equal(f->rec[2].reason, VIGIL_REASON_TAKEOVER);
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers, 3);
  assert_int_equal(st.closed[VIGIL_REASON_IDENTITY_BANNED], 2);
}

/* Old contests slide out of the window; without a ban flapping is only
 * reported, once per episode. */
static void test_flapping_window_and_report_only(void **state) {
  fixture *f = *state;
  f->use_fake_clock = 1;
  f->policy.flap_max = 1;
  f->policy.flap_window_ms = 1600;
  f->policy.flap_ban_ms = 0;
  hub_up(f);
  for (int i = 0; i < 6; i++) open_conn(f, i);
  assert_int_equal(identify(f, 0, "slow"), VIGIL_OK);
  assert_int_equal(identify(f, 1, "slow"), VIGIL_OK); /* 1 in window */
  advance(f, 1700);
  assert_int_equal(identify(f, 2, "slow"), VIGIL_OK); /* the first left */
  assert_null(gf_find(&f->log, VIGIL_EV_FLAPPING, 0));
  advance(f, 100);
  assert_int_equal(identify(f, 3, "slow"), VIGIL_OK); /* 2 > 1 */
  assert_int_equal(f->log.per_type[VIGIL_EV_FLAPPING], 1);
  assert_int_equal(gf_find(&f->log, VIGIL_EV_FLAPPING, 0)->count, 2);
  advance(f, 100);
  assert_int_equal(identify(f, 4, "slow"), VIGIL_OK); /* same episode */
  assert_int_equal(f->log.per_type[VIGIL_EV_FLAPPING], 1);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "slow", 4), f->rec[4].c);
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers, 4);
}

/* Two live devices sharing an identity take it from each other: past
 * flap_max the flapping report says so, and the ban stops the loop with
 * whoever holds the identity now. */
static void test_duplicate_identity_loop_reported(void **state) {
  fixture *f = *state;
  f->use_fake_clock = 1;
  f->policy.flap_max = 2;
  f->policy.flap_window_ms = 10000;
  f->policy.flap_ban_ms = 5000;
  hub_up(f);
  for (int i = 0; i < 4; i++) open_conn(f, i);
  assert_int_equal(identify(f, 0, "twin"), VIGIL_OK);
  advance(f, 100);
  assert_int_equal(identify(f, 1, "twin"), VIGIL_OK); /* live 1 */
  advance(f, 100);
  assert_int_equal(identify(f, 2, "twin"), VIGIL_OK); /* live 2 */
  advance(f, 100);
  assert_int_equal(identify(f, 3, "twin"), VIGIL_EBANNED);
  const gf_event *fl = gf_find(&f->log, VIGIL_EV_FLAPPING, 0);
  assert_non_null(fl);
  assert_int_equal(fl->count, 3);
  assert_string_equal(fl->detail,
                      "duplicate identity: live conns taking turns");
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "twin", 4), f->rec[2].c);
  close(f->client[3]);
  f->client[3] = -1;
  run_until_closed(f, 3);
  assert_int_equal(f->rec[3].reason, VIGIL_REASON_IDENTITY_BANNED);
  const gf_event *cl = gf_find(&f->log, VIGIL_EV_CLOSE, f->rec[3].id);
  assert_non_null(cl);
  assert_string_equal(cl->detail,
                      "duplicate identity: live conns taking turns");
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_LIVE], 2);
}

/* A device rebooting in a loop leaves ghosts (here: a ping unanswered for
 * 250 ms): the same flapping, reported without that detail. */
static void test_flapping_of_ghosts_is_no_duplicate(void **state) {
  fixture *f = *state;
  f->use_fake_clock = 1;
  f->policy.flap_max = 2;
  f->policy.flap_window_ms = 10000;
  f->policy.flap_ban_ms = 5000;
  f->policy.ping_interval_ms = 50;
  hub_up(f);
  for (int i = 0; i < 4; i++) {
    open_conn(f, i);
    f->rec[i].ping_sends = 1; /* the host pings; the clients never answer */
  }
  assert_int_equal(identify(f, 0, "rebooter"), VIGIL_OK);
  for (int i = 1; i < 3; i++) {
    advance(f, 60);  /* the holder's ping is asked... */
    advance(f, 240); /* ...and left unanswered past 200 ms */
    assert_int_equal(identify(f, i, "rebooter"), VIGIL_OK);
    /* a ghost: reset inside the claim */
    assert_int_equal(vigil_conn_get_state(f->rec[i - 1].c), VIGIL_CONN_CLOSED);
  }
  advance(f, 100);
  assert_int_equal(identify(f, 3, "rebooter"), VIGIL_EBANNED);
  const gf_event *fl = gf_find(&f->log, VIGIL_EV_FLAPPING, 0);
  assert_non_null(fl);
  assert_int_equal(fl->count, 3);
  assert_string_equal(fl->detail, "");
  vigil_stats st;
  vigil_hub_stats(f->hub, &st);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_GHOST], 2);
}

static int conn_in_close_wait(void *c) {
  return vigil_conn_get_state(c) == VIGIL_CONN_CLOSE_WAIT;
}

static void test_identify_errors(void **state) {
  fixture *f = *state;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  open_conn(f, 2);
  assert_int_equal(vigil_conn_identify(NULL, "x", 1), VIGIL_EINVAL);
  assert_int_equal(vigil_conn_identify(f->rec[0].c, NULL, 1), VIGIL_EINVAL);
  assert_int_equal(vigil_conn_identify(f->rec[0].c, "x", 0), VIGIL_EINVAL);
  static char huge[65536];
  memset(huge, 'h', sizeof huge);
  assert_int_equal(vigil_conn_identify(f->rec[0].c, huge, sizeof huge),
                   VIGIL_EINVAL);
  assert_null(vigil_conn_identity(f->rec[0].c));
  assert_null(vigil_conn_identity(NULL));
  assert_null(vigil_hub_find_identity(f->hub, "x", 1));
  assert_null(vigil_hub_find_identity(NULL, "x", 1));
  assert_null(vigil_hub_find_identity(f->hub, NULL, 1));

  assert_int_equal(identify(f, 0, "mine"), VIGIL_OK);
  assert_int_equal(identify(f, 0, "mine"), VIGIL_EEXIST);
  assert_int_equal(identify(f, 0, "another"), VIGIL_EEXIST);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, "mine", 4), f->rec[0].c);
  assert_null(vigil_hub_find_identity(f->hub, "another", 7));

  /* Closing conns and conns whose peer left cannot claim. */
  vigil_close(f->rec[1].c);
  assert_int_equal(identify(f, 1, "late"), VIGIL_ECLOSED);
  f->rec[2].hold_close_wait = 1;
  shutdown(f->client[2], SHUT_WR);
  assert_true(vt_run_until(f->loop, conn_in_close_wait, f->rec[2].c, 2000));
  assert_int_equal(identify(f, 2, "late"), VIGIL_ECLOSED);
  assert_null(vigil_hub_find_identity(f->hub, "late", 4));
  assert_null(vigil_conn_identity(f->rec[2].c));
}

static void test_binary_identity(void **state) {
  fixture *f = *state;
  hub_up(f);
  open_conn(f, 0);
  open_conn(f, 1);
  static const char id[] = {'d', 0, '\xff', '\n', 'x'};
  assert_int_equal(vigil_conn_identify(f->rec[0].c, id, sizeof id), VIGIL_OK);
  assert_ptr_equal(vigil_hub_find_identity(f->hub, id, sizeof id),
                   f->rec[0].c);
  /* Length is part of the key: the prefix before the NUL is another id. */
  assert_null(vigil_hub_find_identity(f->hub, "d", 1));
  assert_int_equal(vigil_conn_identify(f->rec[1].c, "d", 1), VIGIL_OK);
  assert_false(f->rec[0].closed);
  assert_memory_equal(vigil_conn_identity(f->rec[0].c), "d", 2);
  assert_int_equal(vigil_conn_identify(f->rec[1].c, id, sizeof id),
                   VIGIL_EEXIST);
}

/* Many identities: every one is found, each release frees its entry (new
 * claims on released ids are uncontested) and the hub frees cleanly with
 * identities still held (ASan checks the rest). */
static void test_many_identities(void **state) {
  fixture *f = *state;
  hub_up(f);
  enum { N = 300 };
  gf_conn *rec = calloc(N, sizeof *rec);
  int *cl = calloc(N, sizeof *cl);
  assert_non_null(rec);
  assert_non_null(cl);
  char id[32];
  for (int i = 0; i < N; i++) {
    int s;
    assert_int_equal(vt_tcp_pair(&s, &cl[i]), 0);
    assert_int_equal(gf_adopt(f->hub, s, &rec[i], NULL), VIGIL_OK);
    snprintf(id, sizeof id, "device-%05d", i);
    assert_int_equal(vigil_conn_identify(rec[i].c, id, strlen(id)), VIGIL_OK);
  }
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "device-%05d", i);
    assert_ptr_equal(vigil_hub_find_identity(f->hub, id, strlen(id)),
                     rec[i].c);
  }
  for (int i = 0; i < N; i += 2) vigil_abort(rec[i].c);
  vt_run_until(f->loop, NULL, NULL, 20);
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "device-%05d", i);
    vigil_conn *h = vigil_hub_find_identity(f->hub, id, strlen(id));
    if (i % 2)
      assert_ptr_equal(h, rec[i].c);
    else
      assert_null(h);
  }
  assert_null(gf_find(&f->log, VIGIL_EV_TAKEOVER, 0));
  vigil_hub_free(f->hub);
  f->hub = NULL;
  for (int i = 1; i < N; i += 2) assert_int_equal(rec[i].reason,
                                                  VIGIL_REASON_SHUTDOWN);
  for (int i = 0; i < N; i++) close(cl[i]);
  free(rec);
  free(cl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_newest_wins_closes_live_old_gracefully,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_newest_wins_resets_a_ghost,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_newest_wins_without_abort_dead_sends_fin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oldest_wins_rejects_newcomer,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_ask_mode_host_decides, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_ask_mode_without_callback_is_newest_wins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_epoch_guard_late_fin, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_guard_watch_only_late_eof,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_flapping_bans_identity, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_flapping_window_and_report_only,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_identity_loop_reported,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_flapping_of_ghosts_is_no_duplicate,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_identify_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_binary_identity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_identities, setup, teardown),
  };
  (void)F;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
