/* Fixture for the ghost, takeover and census tests; see ghostfix.h. */
#include "ghostfix.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "testutil.h"

void gf_on_event(vigil_hub *hub, const vigil_event *ev, void *data) {
  gf_log *log = data;
  (void)hub;
  if ((unsigned)ev->type < VIGIL_EV__COUNT) log->per_type[ev->type]++;
  if (log->print) {
    char line[512];
    vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
    fprintf(stderr, "  %s\n", line);
  }
  if (log->n >= GF_MAX_EVENTS) return;
  gf_event *e = &log->ev[log->n++];
  memset(e, 0, sizeof *e);
  e->type = ev->type;
  e->t_ms = vt_now_ms();
  e->conn_id = ev->conn_id;
  e->other_conn_id = ev->other_conn_id;
  e->reason = ev->reason;
  e->count = ev->count;
  e->evidence = ev->evidence;
  e->peer_class = ev->peer_class;
  e->last_rx_ms = ev->last_rx_ms;
  if (ev->tcp_info) {
    e->has_tcp_info = 1;
    e->tcp_info = *ev->tcp_info;
  }
  if (ev->state_counts) {
    e->has_counts = 1;
    memcpy(e->state_counts, ev->state_counts, sizeof e->state_counts);
  }
  if (ev->identity) snprintf(e->identity, sizeof e->identity, "%s", ev->identity);
  if (ev->detail) snprintf(e->detail, sizeof e->detail, "%s", ev->detail);
}

const gf_event *gf_find(const gf_log *log, vigil_event_type type,
                        uint64_t conn_id) {
  for (size_t i = log->n; i > 0; i--) {
    const gf_event *e = &log->ev[i - 1];
    if (e->type == type && (conn_id == 0 || e->conn_id == conn_id)) return e;
  }
  return NULL;
}

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  gf_conn *r = ud;
  r->last_rx_ms = vt_now_ms();
  r->bytes += len;
  size_t room = sizeof r->rx - 1 - r->nrx;
  size_t n = len < room ? len : room;
  memcpy(r->rx + r->nrx, data, n);
  r->nrx += n;
  r->rx[r->nrx] = '\0';
  if (r->echo) vigil_send(c, data, len);
}

static void on_ping_due(vigil_conn *c, void *ud) {
  gf_conn *r = ud;
  r->pings++;
  if (r->ping_sends) vigil_send(c, "p", 1);
}

static void on_peer_closed(vigil_conn *c, void *ud) {
  gf_conn *r = ud;
  r->peer_closed++;
  if (!r->hold_close_wait) vigil_close(c);
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  gf_conn *r = ud;
  (void)c;
  r->closed = 1;
  r->reason = reason;
  r->closed_ms = vt_now_ms();
  r->c = NULL;
}

const vigil_conn_callbacks *gf_callbacks(void) {
  static const vigil_conn_callbacks cb = {
      .on_data = on_data, .on_ping_due = on_ping_due,
      .on_peer_closed = on_peer_closed, .on_close = on_close};
  return &cb;
}

int gf_adopt(vigil_hub *hub, int fd, gf_conn *rec, const vigil_policy *p) {
  vigil_adopt_options o;
  vigil_adopt_options_init(&o);
  o.policy = p;
  o.callbacks = gf_callbacks();
  o.user_data = rec;
  int rc = vigil_adopt(hub, fd, &o, &rec->c);
  if (rc == VIGIL_OK) rec->id = vigil_conn_id(rec->c);
  return rc;
}

int gf_is_closed(void *rec) { return ((gf_conn *)rec)->closed; }

int gf_send_all(int fd, const char *s) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}
