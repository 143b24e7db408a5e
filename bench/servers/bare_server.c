/*
 * bare_server: the upper bound for the storm and idle benchmarks. A plain
 * libev accept/read/close loop with no policy at all: no keepalive, no
 * deadlines, no census, no logging, one malloc'd struct per connection.
 *
 * It speaks just enough of both benchmark protocols for a load generator's
 * "ready" and heartbeats to work (the first byte picks the protocol):
 *   vigil frames  PING -> PONG with the same token, GOODBYE -> close,
 *                 anything else is read and dropped;
 *   MQTT 3.1.1    CONNECT -> CONNACK 0, PINGREQ -> PINGRESP,
 *                 SUBSCRIBE -> SUBACK (QoS 0), DISCONNECT -> close,
 *                 anything else is read and dropped.
 * EOF or an error closes the connection (plain close, FIN).
 *
 *   bare_server --listen 127.0.0.1:0     (prints "listening on HOST:PORT")
 *
 * Built by bench/run.sh: cc -O2 bare_server.c -lev. SIGINT/SIGTERM exit.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CARRY 256 /* bytes of a partial packet kept between reads */

typedef struct conn {
  ev_io io;
  uint32_t skip;     /* payload bytes of a big packet still to drop */
  uint16_t have;     /* bytes in buf */
  uint8_t buf[CARRY];
} conn;

static void conn_close(struct ev_loop *loop, conn *c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  free(c);
}

static int reply(conn *c, const void *p, size_t n) {
  return send(c->io.fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* One vigil frame at p (8-byte header, avail bytes present). Returns the
 * frame length, 0 if more bytes are needed, -1 to close. */
static long vigil_frame(conn *c, const uint8_t *p, size_t avail) {
  if (avail < 8) return 0;
  uint32_t len = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
                 (uint32_t)p[6] << 8 | p[7];
  if (p[2] == 0x05) return -1; /* GOODBYE: the peer asks us to close */
  if (p[2] == 0x02) {          /* PING: answer with its token */
    if (len > 8) return -1;
    if (avail < 8 + len) return 0;
    uint8_t pong[16];
    memcpy(pong, p, 8 + len);
    pong[2] = 0x03;
    if (reply(c, pong, 8 + len) < 0) return -1;
  }
  return 8 + (long)len;
}

/* One MQTT packet at p. Same contract as vigil_frame. */
static long mqtt_packet(conn *c, const uint8_t *p, size_t avail) {
  uint32_t len = 0, mult = 1;
  size_t i = 1;
  for (;; i++) {
    if (i >= avail) return 0;
    if (i > 4) return -1;
    len += (uint32_t)(p[i] & 0x7f) * mult;
    mult <<= 7;
    if (!(p[i] & 0x80)) break;
  }
  long total = (long)(i + 1 + len);
  switch (p[0] >> 4) {
  case 1: { /* CONNECT */
    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    if (reply(c, connack, sizeof connack) < 0) return -1;
    break;
  }
  case 8: { /* SUBSCRIBE: packet id, then grant QoS 0 to one filter */
    if (avail < i + 3) return 0;
    uint8_t suback[] = {0x90, 0x03, p[i + 1], p[i + 2], 0x00};
    if (reply(c, suback, sizeof suback) < 0) return -1;
    break;
  }
  case 12: { /* PINGREQ */
    static const uint8_t pingresp[] = {0xd0, 0x00};
    if (reply(c, pingresp, sizeof pingresp) < 0) return -1;
    break;
  }
  case 14: /* DISCONNECT */
    return -1;
  default:
    break;
  }
  return total;
}

/* Consumes whole packets from c->buf; keeps a partial one. -1 = close. */
static int consume(conn *c) {
  size_t off = 0;
  while (off < c->have) {
    const uint8_t *p = c->buf + off;
    size_t avail = c->have - off;
    long n = p[0] == 0xF7 ? vigil_frame(c, p, avail) : mqtt_packet(c, p, avail);
    if (n < 0) return -1;
    if (n == 0) break;
    if ((size_t)n > avail) { /* big packet: drop the rest as it comes */
      c->skip = (uint32_t)((size_t)n - avail);
      off = c->have;
      break;
    }
    off += (size_t)n;
  }
  memmove(c->buf, c->buf + off, c->have - off);
  c->have = (uint16_t)(c->have - off);
  return c->have == CARRY ? -1 : 0; /* a header that never ends */
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  conn *c = (conn *)w;
  uint8_t tmp[4096];
  (void)revents;
  ssize_t n = recv(w->fd, tmp, sizeof tmp, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    conn_close(loop, c);
    return;
  }
  size_t off = 0;
  if (c->skip) {
    off = (size_t)n < c->skip ? (size_t)n : c->skip;
    c->skip -= (uint32_t)off;
  }
  while (off < (size_t)n) {
    size_t room = CARRY - c->have, take = (size_t)n - off;
    if (take > room) take = room;
    memcpy(c->buf + c->have, tmp + off, take);
    c->have = (uint16_t)(c->have + take);
    off += take;
    if (consume(c) < 0) {
      conn_close(loop, c);
      return;
    }
    if (c->skip) {
      size_t drop = (size_t)n - off < c->skip ? (size_t)n - off : c->skip;
      c->skip -= (uint32_t)drop;
      off += drop;
    }
  }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE: retried on the next event */
    conn *c = malloc(sizeof *c);
    if (!c) {
      close(fd);
      return;
    }
    c->skip = 0;
    c->have = 0;
    ev_io_init(&c->io, read_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w, (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
  char host[64] = "127.0.0.1";
  unsigned port = 0;
  if (argc == 3 && strcmp(argv[1], "--listen") == 0) {
    const char *colon = strrchr(argv[2], ':');
    if (!colon || (size_t)(colon - argv[2]) >= sizeof host) {
      fprintf(stderr, "bare_server: --listen HOST:PORT\n");
      return 2;
    }
    memcpy(host, argv[2], (size_t)(colon - argv[2]));
    host[colon - argv[2]] = '\0';
    port = (unsigned)strtoul(colon + 1, NULL, 10);
  } else if (argc != 1) {
    fprintf(stderr, "usage: bare_server [--listen HOST:PORT]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  socklen_t sl = sizeof sa;
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || lfd < 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(lfd, 511) < 0 || /* the usual default (nginx, Node, vigil) */
      getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
    perror("bare_server: listen");
    return 1;
  }
  printf("listening on %s:%u\n", host, ntohs(sa.sin_port));
  fflush(stdout);
  struct ev_loop *loop = EV_DEFAULT;
  ev_io lw;
  ev_io_init(&lw, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &lw);
  ev_signal s1, s2;
  ev_signal_init(&s1, stop_cb, SIGINT);
  ev_signal_init(&s2, stop_cb, SIGTERM);
  ev_signal_start(loop, &s1);
  ev_signal_start(loop, &s2);
  ev_run(loop, 0);
  return 0;
}
