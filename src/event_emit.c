/* Building and sending diagnostics events (formatting is event_format.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "internal.h"

const char *vigil__conn_peer_str(const vigil_conn *c, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN];
  if (c->peer.family == AF_INET) {
    inet_ntop(AF_INET, c->peer.addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, (unsigned)c->peer.port);
  } else if (c->peer.family == AF_INET6) {
    inet_ntop(AF_INET6, c->peer.addr, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%u", ip, (unsigned)c->peer.port);
  } else {
    snprintf(buf, len, "unknown");
  }
  return buf;
}

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Per-thread scratch for the peer string: events are only valid during the
 * callback, and a hub is single-threaded. */
static __thread char peer_scratch[72];

void vigil__event_init(vigil_event *ev, vigil_event_type type, vigil_hub *hub,
                       vigil_conn *c) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  ev->ts_ms = wall_ms();
  ev->last_rx_ms = -1;
  ev->last_tx_ms = -1;
  ev->tls_resumed = -1;
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
