/*
 * embed_client: a device on vigil_client (vigil/client.h). It connects to
 * HOST:PORT, says HELLO with IDENTITY, sends a DATA frame every second and
 * prints the DATA frames it gets. Pings (1 s), dead_after (3 s) and
 * reconnecting with jittered backoff take no code here; vigil's events go
 * to stderr. Try two against examples/game_server, which relays DATA in a
 * room: IDENTITY ann@lab for one, bob@lab for the other.
 *   embed_client HOST PORT IDENTITY [SECONDS]   prints "connected PEER",
 *   "recv TEXT", "disconnected REASON"; exits 0 after SECONDS (0 = never).
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include "vigil.h"

static vigil_client *client;
static unsigned sent;
static void on_event(vigil_hub *h, const vigil_event *ev, void *ud) {
  char line[1024];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  fprintf(stderr, "%s\n", line);
}
static void on_connected(vigil_client *cl, vigil_conn *c, void *ud) {
  printf("connected %s\n", vigil_conn_peer(c));
}
static void on_data(vigil_client *cl, const void *data, size_t len, void *ud) {
  printf("recv %.*s\n", (int)len, (const char *)data);
}
static void on_disconnected(vigil_client *cl, vigil_reason why, void *ud) {
  printf("disconnected %s\n", vigil_reason_name(why)); /* it reconnects */
}
static void on_send_time(struct ev_loop *loop, ev_timer *w, int revents) {
  char msg[32];
  int n = snprintf(msg, sizeof msg, "reading %u", sent);
  if (vigil_client_send_data(client, msg, (size_t)n) == VIGIL_OK)
    sent++; /* VIGIL_ENOTCONN while down: this reading is skipped */
}
static void on_time_up(int revents, void *loop) { ev_break(loop, EVBREAK_ALL); }

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: embed_client HOST PORT IDENTITY [SECONDS]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 1000;
  p.dead_after_ms = 3000;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.on_event = on_event;
  vigil_client_options o;
  vigil_client_options_init(&o);
  o.host = argv[1];
  int port = atoi(argv[2]);
  o.port = port > 0 && port < 65536 ? (uint16_t)port : 0; /* 0 is refused */
  o.identity = argv[3];
  o.policy = &p;
  o.backoff.max_ms = 10000; /* gRPC's 1 s, x1.6, +-20 %, but capped lower */
  o.on_connected = on_connected;
  o.on_data = on_data;
  o.on_disconnected = on_disconnected;
  vigil_hub *hub;
  int rc = vigil_hub_new(EV_DEFAULT, &ho, &hub);
  if (rc == VIGIL_OK) rc = vigil_client_new(hub, &o, &client);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "embed_client: %s\n", vigil_strerror(rc));
    return 2;
  }
  ev_timer sender;
  ev_timer_init(&sender, on_send_time, 1, 1);
  ev_timer_start(EV_DEFAULT, &sender);
  double seconds = argc > 4 ? atof(argv[4]) : 0;
  if (seconds > 0) ev_once(EV_DEFAULT, -1, 0, seconds, on_time_up, EV_DEFAULT);
  ev_run(EV_DEFAULT, 0);
  vigil_client_free(client); /* closes its connection; before the hub */
  vigil_hub_free(hub);
  return 0;
}
