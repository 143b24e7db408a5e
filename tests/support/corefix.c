#include "corefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_data(vigil_conn *c, const void *d, size_t n, void *ud) {
  cf_conn *cc = ud;
  (void)c;
  if (cc->rx_len + n > cc->rx_cap) {
    cc->rx_cap = (cc->rx_len + n) * 2;
    cc->rx = realloc(cc->rx, cc->rx_cap);
  }
  memcpy(cc->rx + cc->rx_len, d, n);
  cc->rx_len += n;
  if (cc->hook) cc->hook(cc, "data");
}

static void on_ping_due(vigil_conn *c, void *ud) {
  cf_conn *cc = ud;
  if (!cc->pings) cc->first_ping_at = vigil_hub_now(vigil_conn_hub(c));
  cc->pings++;
  if (cc->send_ping_on_due) vigil_send(c, "PING\n", 5);
  if (cc->hook) cc->hook(cc, "ping_due");
}

static void on_idle(vigil_conn *c, vigil_idle_kind k, void *ud) {
  cf_conn *cc = ud;
  (void)c;
  cc->idles[k]++;
  if (cc->hook) cc->hook(cc, "idle");
}

static void on_peer_closed(vigil_conn *c, void *ud) {
  cf_conn *cc = ud;
  cc->peer_closed++;
  if (cc->reply_on_peer_closed) vigil_send(c, "bye\n", 4);
  if (cc->close_on_peer_closed) vigil_close(c);
  if (cc->hook) cc->hook(cc, "peer_closed");
}

static void on_close(vigil_conn *c, vigil_reason r, void *ud) {
  cf_conn *cc = ud;
  cc->closed++;
  cc->reason = r;
  cc->closed_at = vigil_hub_now(vigil_conn_hub(c));
  if (cc->hook) cc->hook(cc, "close");
  cc->conn = NULL;
}

const vigil_conn_callbacks cf_callbacks = {
    .on_data = on_data,
    .on_ping_due = on_ping_due,
    .on_idle = on_idle,
    .on_peer_closed = on_peer_closed,
    .on_close = on_close,
};

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  cf_hub *h = ud;
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, h->last_line, sizeof h->last_line);
  if (getenv("VIGIL_TEST_VERBOSE")) fprintf(stderr, "%s\n", h->last_line);
  if (h->nevents >= CF_MAX_EVENTS) return;
  cf_event *e = &h->events[h->nevents++];
  memset(e, 0, sizeof *e);
  e->type = ev->type;
  e->conn_id = ev->conn_id;
  e->reason = ev->reason;
  e->cause = ev->cause;
  e->at = vigil_hub_now(hub);
  if (ev->sockopts) {
    e->has_sockopts = 1;
    e->sockopts = *ev->sockopts;
  }
  e->has_tcp_info = ev->tcp_info != NULL;
}

static void hub_init(cf_hub *h, const vigil_policy *p, uint32_t tick_ms,
                     int fake) {
  memset(h, 0, sizeof *h);
  h->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(h->loop);
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = p;
  if (tick_ms) o.tick_ms = tick_ms;
  o.on_event = on_event;
  o.event_data = h;
  if (fake) {
    h->now = CF_EPOCH;
    o.clock = vt_fake_clock;
    o.clock_data = &h->now;
  }
  assert_int_equal(vigil_hub_new(h->loop, &o, &h->hub), VIGIL_OK);
}

void cf_hub_init(cf_hub *h, const vigil_policy *p, uint32_t tick_ms) {
  hub_init(h, p, tick_ms, 0);
}

void cf_hub_init_clock(cf_hub *h, const vigil_policy *p) {
  hub_init(h, p, 1, 1);
}

void cf_advance(cf_hub *h, uint64_t ms) {
  vt_advance(h->loop, h->hub, &h->now, ms);
}

void cf_hub_done(cf_hub *h) {
  if (h->hub) vigil_hub_free(h->hub);
  h->hub = NULL;
  ev_loop_destroy(h->loop);
}

vigil_conn *cf_adopt(cf_hub *h, int fd, cf_conn *cc, const vigil_policy *p) {
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = cc;
  ao.policy = p;
  assert_int_equal(vigil_adopt(h->hub, fd, &ao, &cc->conn), VIGIL_OK);
  return cc->conn;
}

static int is_closed(void *arg) { return ((cf_conn *)arg)->closed > 0; }

int cf_wait_closed(cf_hub *h, cf_conn *cc, uint32_t timeout_ms) {
  return vt_run_until(h->loop, is_closed, cc, timeout_ms);
}

int cf_count(const cf_hub *h, vigil_event_type t) {
  int n = 0;
  for (int i = 0; i < h->nevents; i++) n += h->events[i].type == t;
  return n;
}

const cf_event *cf_last(const cf_hub *h, vigil_event_type t) {
  for (int i = h->nevents - 1; i >= 0; i--)
    if (h->events[i].type == t) return &h->events[i];
  return NULL;
}

void cf_conn_free(cf_conn *cc) {
  free(cc->rx);
  cc->rx = NULL;
}
