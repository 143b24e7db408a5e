/*
 * embed_adopt: the host accepts, vigil runs the connections. Each fd the
 * host's own ev_io accepts goes to vigil_adopt(); vigil then echoes what it
 * reads (on_data), pings after 1 s of not sending, closes a peer silent for
 * 3 s (heartbeat_timeout) and logs every event to stderr in logfmt.
 *   embed_adopt HOST PORT [SECONDS]   prints "port=N" (PORT 0: a free one);
 *   try `socat - TCP:127.0.0.1:N`. After SECONDS (0 = never) it closes all
 *   connections gracefully and exits 0.
 */
#include <ev.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "vigil.h"

static vigil_hub *hub;
static ev_io acceptor;
static void on_event(vigil_hub *h, const vigil_event *ev, void *ud) {
  char line[1024];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  fprintf(stderr, "%s\n", line);
}
static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  vigil_send(c, data, len); /* any byte received already counts as life */
}
static void on_ping_due(vigil_conn *c, void *ud) { vigil_send(c, "PING\n", 5); }
static const vigil_conn_callbacks callbacks = {.on_data = on_data,
                                               .on_ping_due = on_ping_due};

static void on_acceptable(struct ev_loop *loop, ev_io *w, int revents) {
  int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return; /* EAGAIN, ECONNABORTED, EMFILE: next readiness */
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &callbacks;
  if (vigil_adopt(hub, fd, &ao, NULL) != VIGIL_OK) close(fd); /* still ours */
}

static void on_stopped(vigil_hub *h, void *lp) { ev_break(lp, EVBREAK_ALL); }
static void on_time_up(int revents, void *loop) {
  ev_io_stop(loop, &acceptor);
  close(acceptor.fd);
  vigil_hub_shutdown(hub, 2000, on_stopped, loop);
}

int main(int argc, char **argv) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (argc < 3 || argc > 4 || (unsigned)atoi(argv[2]) > 65535 ||
      getaddrinfo(argv[1], argv[2], &hints, &ai)) { /* it takes 70000 as 4464 */
    fprintf(stderr, "usage: embed_adopt HOST PORT [SECONDS]\n");
    return 2;
  }
  int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
  if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 128)) {
    perror("embed_adopt: bind/listen");
    return 1;
  }
  freeaddrinfo(ai);
  struct sockaddr_in6 sa; /* sin_port and sin6_port share their offset */
  getsockname(lfd, (struct sockaddr *)&sa, &(socklen_t){sizeof sa});
  dprintf(STDOUT_FILENO, "port=%u\n", ntohs(sa.sin6_port));
  vigil_policy p;
  vigil_policy_init(&p);
  p.ping_interval_ms = 1000;
  p.dead_after_ms = 3000;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &p;
  ho.on_event = on_event;
  if (vigil_hub_new(EV_DEFAULT, &ho, &hub) != VIGIL_OK) return 1;
  ev_io_init(&acceptor, on_acceptable, lfd, EV_READ);
  ev_io_start(EV_DEFAULT, &acceptor);
  double seconds = argc > 3 ? atof(argv[3]) : 0;
  if (seconds > 0) ev_once(EV_DEFAULT, -1, 0, seconds, on_time_up, EV_DEFAULT);
  ev_run(EV_DEFAULT, 0);
  vigil_hub_free(hub);
  return 0;
}
