/*
 * Acting on a conn's due deadlines. deadline.c says what is due (pure, a
 * table of deadlines per state); this file does it when the conn's wheel
 * node fires: terminal deadlines go to the close machine, the others are
 * reported once per quiet period (ping due, suspicion, idle) and the node
 * is re-armed at the next deadline.
 */
#include "close.h"
#include "conn.h"
#include "conn_deadline.h"
#include "deadline.h"
#include "event.h"
#include "hub.h"
#include "hub_conns.h"
#include "suspect.h"

/* Emits a conn event of a type with no fields of its own beyond kind. */
static void emit(vigil_conn *c, vigil_event_type type, vigil_idle_kind kind) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, c);
  ev.idle_kind = kind;
  vigil__event_send(hub, &ev);
}

/* Reports a non-terminal deadline; returns 0 if the conn closed. */
static int report_idle(vigil_conn *c, vigil_idle_kind kind) {
  if (c->policy->idle_action == VIGIL_IDLE_CLOSE) {
    vigil__conn_close(c, VIGIL_REASON_IDLE_TIMEOUT, VIGIL__CLOSE_GRACEFUL);
    return 0;
  }
  emit(c, VIGIL_EV_IDLE, kind);
  if (c->hooks->cb.on_idle && c->state != VIGIL_CONN_CLOSED)
    c->hooks->cb.on_idle(c, kind, c->user_data);
  return c->state == VIGIL_CONN_OPEN;
}

/* Nothing sent for ping_interval: the protocol pings (the codec by
 * itself, raw by asking the host). */
static void ask_ping(vigil_conn *c) {
  c->quiet |= VIGIL__QUIET_PING;
  /* Only a conn that may be displaced (it holds an identity, so it has
   * the extension) needs the time: an unanswered ping is a ghost's sign,
   * dated from the oldest ping still unanswered. */
  if (c->ext && c->ext->ping_asked <= c->t.last_rx)
    c->ext->ping_asked = c->hub->now_ms;
  emit(c, VIGIL_EV_PING_DUE, 0);
  c->hooks->proto->ping(c);
}

static void check_deadlines(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  uint64_t next;
  unsigned due = vigil__deadline_eval(c->policy, vigil__state(c), c->quiet,
                                      &c->t, hub->now_ms, &next);
  if (due & VIGIL__DUE_TERMINAL) {
    vigil__conn_deadline_close(c, due);
    vigil__conn_schedule(c);
    return;
  }
  if (due & VIGIL__DUE_PING) {
    ask_ping(c);
    if (c->state != VIGIL_CONN_OPEN) goto out;
  }
  if (due & VIGIL__DUE_SUSPECT) {
    if (vigil__conn_suspect_check(c)) ask_ping(c);
    if (c->state != VIGIL_CONN_OPEN) goto out;
  }
  static const struct {
    unsigned due, quiet;
    vigil_idle_kind kind;
  } idle[] = {
      {VIGIL__DUE_IDLE_R, VIGIL__QUIET_IDLE_R, VIGIL_IDLE_READ},
      {VIGIL__DUE_IDLE_W, VIGIL__QUIET_IDLE_W, VIGIL_IDLE_WRITE},
      {VIGIL__DUE_IDLE_A, VIGIL__QUIET_IDLE_A, VIGIL_IDLE_ALL},
  };
  for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++) {
    if (!(due & idle[i].due)) continue;
    c->quiet |= idle[i].quiet;
    if (!report_idle(c, idle[i].kind)) goto out;
  }
out:
  vigil__conn_schedule(c);
}

void vigil__conn_on_deadline(vigil__wheel_node *n, void *ctx) {
  vigil_hub *hub = ctx;
  if (hub->free_requested) return;
  check_deadlines(vigil__container_of(n, vigil_conn, wnode));
}
