/*
 * Re-entrancy: close, abort, send and hub free from inside every callback
 * kind. Each case must end with on_close called exactly once, no crash,
 * and (under ASan) no leak or use-after-free.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corefix.h"

enum action { ACT_CLOSE, ACT_ABORT, ACT_SEND, ACT_HUB_FREE, ACT__COUNT };
static const char *action_names[] = {"close", "abort", "send", "hub_free"};
static const char *wheres[] = {"data", "ping_due", "idle", "peer_closed",
                               "close"};

typedef struct reent_case {
  cf_hub h;
  cf_conn cc;
  const char *where;
  enum action act;
  int done;
  int send_rc;
} reent_case;

static reent_case *current;

static void hook(cf_conn *cc, const char *where) {
  reent_case *rc = current;
  if (rc->done || strcmp(where, rc->where) != 0) return;
  rc->done = 1;
  switch (rc->act) {
  case ACT_CLOSE:
    vigil_close(cc->conn);
    vigil_close(cc->conn); /* idempotent */
    break;
  case ACT_ABORT:
    vigil_abort(cc->conn);
    break;
  case ACT_SEND:
    rc->send_rc = vigil_send(cc->conn, "reply\n", 6);
    break;
  case ACT_HUB_FREE:
    vigil_hub_free(rc->h.hub);
    vigil_hub_free(rc->h.hub); /* a second call inside is harmless */
    rc->h.hub = NULL;
    break;
  default:
    break;
  }
}

static int finished(void *arg) {
  reent_case *rc = arg;
  return rc->cc.closed > 0;
}

static void run_case(const char *where, enum action act) {
  reent_case rc;
  memset(&rc, 0, sizeof rc);
  current = &rc;
  rc.where = where;
  rc.act = act;
  vigil_policy p;
  vigil_policy_init(&p);
  p.drain_timeout_ms = 100;
  if (!strcmp(where, "ping_due")) p.ping_interval_ms = 30;
  if (!strcmp(where, "idle")) p.read_idle_ms = 30;
  cf_hub_init(&rc.h, &p, 5);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  rc.cc.hook = hook;
  cf_adopt(&rc.h, s, &rc.cc, NULL);
  if (!strcmp(where, "data") || !strcmp(where, "close"))
    send(c, "hi\n", 3, 0);
  if (!strcmp(where, "peer_closed")) shutdown(c, SHUT_WR);
  if (!strcmp(where, "close")) {
    /* Make a close happen, then act inside on_close. */
    vt_run_until(rc.h.loop, NULL, NULL, 20);
    vigil_abort(rc.cc.conn);
  }
  vt_run_until(rc.h.loop, finished, &rc, 300);
  if (!rc.cc.closed && rc.h.hub) {
    /* Actions that do not close by themselves (send): end it now. */
    close(c);
    c = -1;
    vt_run_until(rc.h.loop, finished, &rc, 500);
  }
  if (rc.h.hub) {
    vigil_hub_free(rc.h.hub);
    rc.h.hub = NULL;
  }
  ev_loop_destroy(rc.h.loop);
  if (c >= 0) close(c);
  if (!rc.done || rc.cc.closed != 1)
    fprintf(stderr, "case %s/%s: done=%d closed=%d\n", where,
            action_names[act], rc.done, rc.cc.closed);
  assert_true(rc.done);
  assert_int_equal(rc.cc.closed, 1);
  if (act == ACT_SEND && strcmp(where, "close") != 0)
    assert_int_equal(rc.send_rc, VIGIL_OK);
  if (act == ACT_SEND && strcmp(where, "close") == 0)
    assert_int_equal(rc.send_rc, VIGIL_ECLOSED);
  cf_conn_free(&rc.cc);
}

static void test_every_callback_every_action(void **state) {
  (void)state;
  int fds_before = vt_open_fd_count();
  for (size_t w = 0; w < sizeof wheres / sizeof wheres[0]; w++)
    for (int a = 0; a < ACT__COUNT; a++) run_case(wheres[w], (enum action)a);
  /* Every socket of every case was released. */
  assert_int_equal(vt_open_fd_count(), fds_before);
}

/* The diagnostics sink may free the hub too. */
static void free_on_open(vigil_hub *hub, const vigil_event *ev, void *ud) {
  int *freed = ud;
  if (ev->type == VIGIL_EV_OPEN && !*freed) {
    *freed = 1;
    vigil_hub_free(hub);
  }
}

static void close_cb(vigil_conn *c, vigil_reason r, void *ud) {
  int *n = ud;
  (void)c;
  (void)r;
  (*n)++;
}

static void test_hub_free_from_event_sink(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  int freed = 0, closes = 0;
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.on_event = free_on_open;
  o.event_data = &freed;
  vigil_hub *hub;
  assert_int_equal(vigil_hub_new(loop, &o, &hub), VIGIL_OK);
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_conn_callbacks cb = {.on_close = close_cb};
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cb;
  ao.user_data = &closes;
  vigil_conn *conn;
  /* The sink frees the hub inside vigil_adopt: the hub is destroyed only
   * once control is back in the loop, so the returned handle stays
   * usable until then (sends are refused), and on_close comes from the
   * loop with reason shutdown. */
  assert_int_equal(vigil_adopt(hub, s, &ao, &conn), VIGIL_OK);
  assert_int_equal(freed, 1);
  assert_int_equal(closes, 0);
  assert_true(vigil_conn_id(conn) > 0);
  assert_int_equal(vigil_send(conn, "x", 1), VIGIL_ECLOSED);
  ev_run(loop, EVRUN_NOWAIT);
  assert_int_equal(closes, 1);
  close(c);
  ev_loop_destroy(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_callback_every_action),
      cmocka_unit_test(test_hub_free_from_event_sink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
