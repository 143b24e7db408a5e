/* Building and sending diagnostics events (formatting is event_format.c). */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "event.h"
#include "hub.h"
#include "sockopt.h"

/* Formats the compact peer address through the one address formatter
 * (sockopt.c), rebuilding the sockaddr it takes. */
const char *vigil__conn_peer_str(const vigil_conn *c, char *buf, size_t len) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (c->peer.family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(c->peer.port);
    memcpy(&a->sin_addr, c->peer.addr, 4);
  } else if (c->peer.family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(c->peer.port);
    memcpy(&a->sin6_addr, c->peer.addr, 16);
  } else {
    snprintf(buf, len, "unknown");
    return buf;
  }
  vigil__sockaddr_format((const struct sockaddr *)&ss, buf, len);
  return buf;
}

/* Per-thread scratch for the peer string: events are only valid during the
 * callback, and a hub is single-threaded. */
static __thread char peer_scratch[VIGIL__PEER_STRLEN];

void vigil__event_init(vigil_event *ev, vigil_event_type type, vigil_hub *hub,
                       vigil_conn *c) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  ev->ts_ms = hub->opts.wall_clock
                  ? hub->opts.wall_clock(hub->opts.wall_clock_data)
                  : vigil__wall_ms();
  ev->last_rx_ms = -1;
  ev->last_tx_ms = -1;
  ev->tls_resumed = -1;
  ev->worker = hub ? hub->worker_index : VIGIL_WORKER_NONE;
  ev->other_worker = VIGIL_WORKER_NONE;
  if (!c) return;
  uint64_t now = hub->now_ms;
  ev->conn = c;
  ev->conn_id = c->id;
  ev->peer = vigil__conn_peer_str(c, peer_scratch, sizeof peer_scratch);
  ev->identity = c->ext ? c->ext->identity : NULL;
  ev->age_ms = now - c->t.adopted;
  /* "never" is reported as -1 so logs tell silence from an old packet. */
  if (c->bytes_in > 0 || c->t.last_rx != c->t.adopted)
    ev->last_rx_ms = (int64_t)(now - c->t.last_rx);
  if (c->bytes_out > 0 || c->t.last_tx != c->t.adopted)
    ev->last_tx_ms = (int64_t)(now - c->t.last_tx);
  ev->bytes_in = c->bytes_in;
  ev->bytes_out = c->bytes_out;
}

void vigil__event_send(vigil_hub *hub, const vigil_event *ev) {
  if (hub->opts.on_event) hub->opts.on_event(hub, ev, hub->opts.event_data);
}
