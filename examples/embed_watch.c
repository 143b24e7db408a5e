/*
 * embed_watch: the host keeps its own I/O, vigil only watches. vigil_listen
 * adopts each connection with watch_only = 1: vigil sets keepalive and
 * TCP_USER_TIMEOUT, keeps deadlines (3 s of silence is dead) and closes. The
 * host echoes with its own ev_io, reports traffic and EOF with
 * vigil_conn_touch_rx/tx and vigil_conn_peer_eof, and stops its watcher in
 * on_close: vigil closes the fd next, and the number may be reused.
 *   embed_watch HOST PORT [SECONDS]   prints "port=N" (PORT 0: a free one);
 *   after SECONDS (0 = never) it closes every connection and exits 0.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include "vigil.h"

static void on_event(vigil_hub *h, const vigil_event *ev, void *ud) {
  char line[1024];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  fprintf(stderr, "%s\n", line);
}
static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  char buf[4096];
  ssize_t n = recv(w->fd, buf, sizeof buf, 0);
  if (n > 0) {
    vigil_conn_touch_rx(w->data, (size_t)n);
    n = send(w->fd, buf, (size_t)n, MSG_NOSIGNAL); /* a real host would */
    if (n > 0) vigil_conn_touch_tx(w->data, (size_t)n); /* queue the rest */
  } else if (n == 0 || errno != EAGAIN) {
    ev_io_stop(loop, w); /* EOF and errors stay readable: stop asking */
    if (n == 0) vigil_conn_peer_eof(w->data); /* vigil finishes the close */
    else vigil_conn_fail(w->data, errno);
  }
}
static void on_close(vigil_conn *c, vigil_reason reason, void *io) {
  if (io) ev_io_stop(EV_DEFAULT, io); /* vigil closes the fd after this */
  free(io);
}
static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  ev_io *io = malloc(sizeof *io);
  if (!io) return (void)vigil_abort(c);
  ev_io_init(io, on_readable, vigil_conn_fd(c), EV_READ);
  io->data = c;
  vigil_conn_set_user_data(c, io);
  ev_io_start(EV_DEFAULT, io);
}
static void on_time_up(int revents, void *hub) { vigil_hub_free(hub); }
int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: embed_watch HOST PORT [SECONDS]\n");
    return 2;
  }
  vigil_policy p;
  vigil_policy_init(&p);
  p.dead_after_ms = 3000;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &p;
  ho.on_event = on_event;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = argv[1];
  lo.port = (uint16_t)atoi(argv[2]); /* checked below: no silent wrap */
  lo.adopt.watch_only = 1;
  lo.adopt.callbacks = &(vigil_conn_callbacks){.on_close = on_close};
  lo.on_accept = on_accept;
  vigil_hub *hub;
  vigil_listener *l;
  if (lo.port != atoi(argv[2]) || vigil_hub_new(EV_DEFAULT, &ho, &hub) ||
      vigil_listen(hub, &lo, &l)) {
    fprintf(stderr, "embed_watch: cannot listen on %s:%s\n", argv[1], argv[2]);
    return 1;
  }
  dprintf(1, "port=%u\n", vigil_listener_port(l));
  double seconds = argc > 3 ? atof(argv[3]) : 0;
  if (seconds > 0) ev_once(EV_DEFAULT, -1, 0, seconds, on_time_up, hub);
  ev_run(EV_DEFAULT, 0); /* returns when the hub is gone: nothing to watch */
  return 0;
}
