/*
 * device_sim: thousands of reconnecting devices on one libev loop, talking
 * MQTT 3.1.1 or the vigil frame protocol over non-blocking sockets, to load
 * and check a server's keepalive, takeover and ghost handling.
 *
 *   device_sim --connect 127.0.0.1:1883 --devices 5000 --duration 60 \
 *              --protocol mqtt --mode silent-reboot --census
 *
 * Modes:
 *   steady         connect once, then heartbeat (MQTT PINGREQ, vigil PING)
 *                  every --ping-ms; reconnect only if the server drops us.
 *   flap           like steady, but each device leaves cleanly after a
 *                  random uptime in --churn-ms (MQTT DISCONNECT + close;
 *                  vigil GOODBYE going_away, then close after the server's
 *                  FIN) and comes back.
 *   silent-reboot  like flap, but the device abandons its socket without a
 *                  byte, FIN or RST (the fd stays open and unwritten), as a
 *                  device that lost power behind a NAT would, and reconnects
 *                  with the same identity. The server sees a silent ghost
 *                  that only takeover (or its heartbeat deadline) can end.
 *                  The sim closes an abandoned socket only once the server
 *                  has ended it (RST, or FIN: the socket is then read and
 *                  discarded, which is what a live kernel does anyway), and
 *                  a device holds at most one abandoned socket: it delays
 *                  its next reboot until the server ended the previous one
 *                  (counted as reboots_deferred).
 *
 * Identity: MQTT client id / vigil HELLO = <prefix><offset + n><suffix>,
 * "dev-0" ... by default.
 *
 * "Ready" (what connect latency measures, from connect() to):
 *   mqtt   CONNACK with return code 0;
 *   vigil  the first PONG. The device sends HELLO then PING at once; v1 has
 *          no HELLO reply, but frames are handled in order, so the PONG
 *          proves the server read the identity claim first.
 *
 * Device states:
 *
 *   QUEUED --rate token--> CONNECTING --TCP up: CONNECT / HELLO+PING--> HANDSHAKE
 *     ^                        | error, timeout                            |  CONNACK 0 / PONG
 *     |                        v                                           v
 *     +---- backoff ------- BACKOFF <---- refused, error, timeout ---- READY --ping every --ping-ms
 *     |                        ^                                           |
 *     |                        +----- server closed or reset (drop) -------+
 *     +----- pause --- flap: DISCONNECT/GOODBYE + close; reboot: abandon ---+
 *
 * Limits: one process may open RLIMIT_NOFILE files (20,000 here). A device
 * needs one fd, two in silent-reboot mode (live socket + abandoned one);
 * N beyond what fits is refused. For more devices run several processes
 * with disjoint --id-offset ranges and --source-ips (bind before connect,
 * IP_BIND_ADDRESS_NO_PORT) so each (source, server) pair stays under the
 * ~28k ephemeral ports.
 *
 * Exit codes: 0 done, 1 runtime failure, 2 bad flags or too many devices.
 */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_codec.h"
#include "sim_options.h"
#include "vigil.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h, since 4.2 */
#endif

#define RESERVED_FDS 32      /* stdio, libev, census */
#define MAX_INFLIGHT 1024    /* connects not yet ready, at once */
#define MAX_PACKET 65536
#define FLAP_CLOSE_WAIT_MS 2000 /* vigil GOODBYE: wait this long for FIN */

/* ------------------------------------------------------------------------ */
/* Simulator state                                                           */
/* ------------------------------------------------------------------------ */

enum {
  D_QUEUED, D_CONNECTING, D_HANDSHAKE, D_READY, D_BACKOFF, D_CLOSING, D_DONE
};

typedef struct device {
  ev_io io;
  ev_timer timer;
  ev_io ghost_io;          /* abandoned socket (silent-reboot) */
  struct sim *sim;
  struct device *next;     /* connect queue */
  uint32_t index;
  uint8_t state;
  uint8_t fails;           /* consecutive failures, for backoff */
  int fd;
  int ghost_fd;
  uint32_t connects;       /* times this device became ready */
  uint64_t connect_us;     /* when connect() was called */
  uint64_t ghost_at_us;    /* when the standing ghost was abandoned */
  ev_tstamp next_ping, churn_at;
  uint32_t ping_seq;
  union {
    mqtt_parser mqtt;
    vigil_frame_parser vigil;
  } parser;
} device;

typedef struct stats {
  uint64_t attempts, ready, first_connects, reconnects;
  uint64_t pings, pongs, flaps, reboots, reboots_deferred;
  uint64_t ghosts_ended_rst, ghosts_ended_fin, ghosts_open, ghosts_max;
  uint64_t drops, goodbyes;
  uint64_t err_refused, err_addr, err_connect, err_timeout, err_closed,
      err_rejected, err_protocol, err_other;
} stats;

typedef struct sim {
  sim_options o;
  struct ev_loop *loop;
  device *dev;
  device *q_head, *q_tail;
  double tokens;
  ev_tstamp refilled;
  ev_timer pacer, end;
  ev_signal sigint, sigterm;
  unsigned inflight;
  int ending; /* churn stopped */
  uint64_t rng;
  stats st;
  uint32_t *lat_us;
  size_t nlat, caplat;
  uint32_t *ghost_us;      /* reconnect's connect() to its ghost's end */
  size_t nghost, capghost;
  ev_tstamp started;
} sim;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* xorshift64*: reproducible per --seed. */
static uint64_t rnd(sim *s) {
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi] seconds, from ms bounds. */
static double rnd_s(sim *s, uint32_t lo_ms, uint32_t hi_ms) {
  uint64_t span = (uint64_t)(hi_ms - lo_ms) + 1;
  return (double)(lo_ms + rnd(s) % span) / 1000.0;
}

static void device_id(const sim *s, const device *d, char *out, size_t cap) {
  snprintf(out, cap, "%s%u%s", s->o.id_prefix, s->o.id_offset + d->index,
           s->o.id_suffix);
}

/* ------------------------------------------------------------------------ */
/* Queue and rate limit                                                      */
/* ------------------------------------------------------------------------ */

static void dev_connect(device *d);

static void enqueue(device *d) {
  sim *s = d->sim;
  ev_timer_stop(s->loop, &d->timer);
  d->state = D_QUEUED;
  d->next = NULL;
  if (s->q_tail)
    s->q_tail->next = d;
  else
    s->q_head = d;
  s->q_tail = d;
  if (!ev_is_active(&s->pacer)) {
    s->refilled = ev_now(s->loop);
    ev_timer_again(s->loop, &s->pacer);
  }
}

/* Token bucket: rate per second, bursts of at most 20 ms worth. */
static void pacer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  sim *s = w->data;
  (void)revents;
  ev_tstamp now = ev_now(loop);
  double burst = s->o.rate * 0.02 < 1.0 ? 1.0 : s->o.rate * 0.02;
  s->tokens += (now - s->refilled) * s->o.rate;
  if (s->tokens > burst) s->tokens = burst;
  s->refilled = now;
  while (s->q_head && s->tokens >= 1.0 && s->inflight < MAX_INFLIGHT) {
    device *d = s->q_head;
    s->q_head = d->next;
    if (!s->q_head) s->q_tail = NULL;
    s->tokens -= 1.0;
    dev_connect(d);
  }
  if (!s->q_head) ev_timer_stop(loop, w);
}

/* ------------------------------------------------------------------------ */
/* Device life cycle                                                         */
/* ------------------------------------------------------------------------ */

static void parser_release(device *d) {
  if (d->sim->o.proto == PROTO_MQTT)
    mqtt_parser_free(&d->parser.mqtt);
  else
    vigil_frame_parser_free(&d->parser.vigil);
}

/* Closes the live socket, if any. */
static void close_live(device *d) {
  sim *s = d->sim;
  if (d->state == D_CONNECTING || d->state == D_HANDSHAKE) s->inflight--;
  if (d->fd >= 0) {
    ev_io_stop(s->loop, &d->io);
    close(d->fd);
    d->fd = -1;
    parser_release(d);
  }
}

/* Backoff after a failure: 250 ms doubling to 8 s, times 0.5..1.5. */
static void backoff(device *d, int failed) {
  sim *s = d->sim;
  double base = 0.1 + (double)(rnd(s) % 500) / 1000.0; /* after a drop */
  if (failed) {
    unsigned k = d->fails < 5 ? d->fails : 5;
    base = 0.25 * (double)(1u << k) * (0.5 + (double)(rnd(s) % 1000) / 1000.0);
    if (d->fails < 255) d->fails++;
  }
  d->state = D_BACKOFF;
  ev_timer_stop(s->loop, &d->timer);
  ev_timer_set(&d->timer, base, 0.0);
  ev_timer_start(s->loop, &d->timer);
}

static void dev_fail(device *d, uint64_t *counter) {
  (*counter)++;
  close_live(d);
  backoff(d, 1);
}

/* The server ended a ready connection. */
static void dev_drop(device *d) {
  d->sim->st.drops++;
  close_live(d);
  backoff(d, 0);
}

static int send_bytes(device *d, const void *b, int n) {
  if (n <= 0) return -1;
  ssize_t w = send(d->fd, b, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
  return w == n ? 0 : -1; /* a few hundred bytes: never partial here */
}

static void arm(device *d, double after) {
  sim *s = d->sim;
  ev_timer_stop(s->loop, &d->timer);
  ev_timer_set(&d->timer, after > 0 ? after : 0.0, 0.0);
  ev_timer_start(s->loop, &d->timer);
}

/* Sets the timer for the earlier of the next ping and the next churn. */
static void arm_ready(device *d) {
  ev_tstamp now = ev_now(d->sim->loop);
  ev_tstamp at = d->next_ping;
  if (d->churn_at > 0 && d->churn_at < at) at = d->churn_at;
  arm(d, at - now);
}

/* Appends a latency sample (dropped when memory runs out). */
static void sample(uint32_t **v, size_t *n, size_t *cap, uint64_t us) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 4096;
    uint32_t *grown = realloc(*v, c * sizeof *grown);
    if (grown) {
      *v = grown;
      *cap = c;
    }
  }
  if (*n < *cap) (*v)[(*n)++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void dev_ready(device *d) {
  sim *s = d->sim;
  s->inflight--;
  sample(&s->lat_us, &s->nlat, &s->caplat, now_us() - d->connect_us);
  s->st.ready++;
  if (d->connects++ == 0)
    s->st.first_connects++;
  else
    s->st.reconnects++;
  d->fails = 0;
  d->state = D_READY;
  ev_tstamp now = ev_now(s->loop);
  /* First ping at a random phase, so devices do not ping in lockstep. */
  d->next_ping = now + rnd_s(s, s->o.ping_ms / 2, s->o.ping_ms);
  d->churn_at = 0;
  if (s->o.mode != MODE_STEADY && !s->ending)
    d->churn_at = now + rnd_s(s, s->o.churn_min_ms, s->o.churn_max_ms);
  arm_ready(d);
}

static void send_ping(device *d) {
  sim *s = d->sim;
  uint8_t b[32];
  int n;
  if (s->o.proto == PROTO_MQTT) {
    n = mqtt_encode_empty(MQTT_PINGREQ, b, sizeof b);
  } else {
    uint8_t tok[8];
    uint32_t seq = ++d->ping_seq;
    memcpy(tok, &d->index, 4);
    memcpy(tok + 4, &seq, 4);
    n = vigil_frame_encode(VIGIL_FRAME_PING, tok, sizeof tok, b, sizeof b);
  }
  if (send_bytes(d, b, n) == 0)
    s->st.pings++;
  else
    dev_fail(d, &s->st.err_other);
}

/* Leaves cleanly and comes back after a short pause. */
static void dev_flap(device *d) {
  sim *s = d->sim;
  uint8_t b[64];
  s->st.flaps++;
  if (s->o.proto == PROTO_MQTT) {
    /* MQTT-3.14.4-1: after DISCONNECT the client closes the connection. */
    send_bytes(d, b, mqtt_encode_empty(MQTT_DISCONNECT, b, sizeof b));
    close_live(d);
    d->state = D_BACKOFF;
    arm(d, rnd_s(s, 0, 500));
    return;
  }
  /* GOODBYE asks the server to close first; wait for its FIN, bounded. */
  send_bytes(d, b, vigil_frame_encode_goodbye(VIGIL_GOODBYE_GOING_AWAY,
                                              "flap", b, sizeof b));
  d->state = D_CLOSING;
  arm(d, FLAP_CLOSE_WAIT_MS / 1000.0);
}

static void ghost_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Abandons the live socket without a byte, FIN or RST, and reconnects. */
static void dev_reboot(device *d) {
  sim *s = d->sim;
  if (d->ghost_fd >= 0) { /* the previous ghost still stands */
    s->st.reboots_deferred++;
    d->churn_at = ev_now(s->loop) + s->o.churn_min_ms / 1000.0;
    arm_ready(d);
    return;
  }
  s->st.reboots++;
  ev_io_stop(s->loop, &d->io);
  d->ghost_fd = d->fd;
  d->ghost_at_us = now_us();
  d->fd = -1;
  parser_release(d);
  ev_io_init(&d->ghost_io, ghost_cb, d->ghost_fd, EV_READ);
  d->ghost_io.data = d;
  ev_io_start(s->loop, &d->ghost_io);
  if (++s->st.ghosts_open > s->st.ghosts_max) s->st.ghosts_max = s->st.ghosts_open;
  d->state = D_BACKOFF;
  arm(d, rnd_s(s, 0, 200)); /* boot time */
}

/* The server ended an abandoned socket: count how, then let it go. */
static void ghost_cb(struct ev_loop *loop, ev_io *w, int revents) {
  device *d = w->data;
  sim *s = d->sim;
  char buf[512];
  (void)revents;
  for (int i = 0; i < 8; i++) {
    ssize_t r = recv(d->ghost_fd, buf, sizeof buf, 0);
    if (r > 0) continue; /* e.g. a GOODBYE: a live kernel takes it anyway */
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r < 0 && errno == EINTR) continue;
    if (r == 0)
      s->st.ghosts_ended_fin++;
    else
      s->st.ghosts_ended_rst++;
    /* How long the server took to end the ghost once the device came
     * back (its takeover latency as the device sees it, wherever the
     * ghost lived). */
    if (d->connect_us > d->ghost_at_us)
      sample(&s->ghost_us, &s->nghost, &s->capghost,
             now_us() - d->connect_us);
    ev_io_stop(loop, w);
    close(d->ghost_fd);
    d->ghost_fd = -1;
    s->st.ghosts_open--;
    return;
  }
}

static void send_hello(device *d) {
  sim *s = d->sim;
  char id[160];
  uint8_t b[512];
  device_id(s, d, id, sizeof id);
  if (s->o.proto == PROTO_MQTT) {
    mqtt_connect_opts co = {id, s->o.keepalive_s, 1, NULL};
    if (send_bytes(d, b, mqtt_encode_connect(&co, b, sizeof b)) != 0)
      dev_fail(d, &s->st.err_other);
    return;
  }
  int n = vigil_frame_encode(VIGIL_FRAME_HELLO, id, strlen(id), b, sizeof b);
  uint8_t tok[8] = {0};
  memcpy(tok, &d->index, 4);
  int k = n > 0 ? vigil_frame_encode(VIGIL_FRAME_PING, tok, 8, b + n,
                                     sizeof b - (size_t)n)
                : -1;
  if (k < 0 || send_bytes(d, b, n + k) != 0) dev_fail(d, &s->st.err_other);
}

/* ---- received packets ---- */

static int on_mqtt(void *ud, const mqtt_packet *pkt) {
  device *d = ud;
  sim *s = d->sim;
  if (pkt->type == MQTT_CONNACK && d->state == D_HANDSHAKE) {
    int sp;
    uint8_t rc;
    if (mqtt_decode_connack(pkt->body, pkt->len, &sp, &rc) != MQTT_OK) {
      dev_fail(d, &s->st.err_protocol);
      return 1;
    }
    if (rc != MQTT_CONNACK_ACCEPTED) {
      dev_fail(d, &s->st.err_rejected);
      return 1;
    }
    dev_ready(d);
  } else if (pkt->type == MQTT_PINGRESP) {
    s->st.pongs++;
  }
  return 0;
}

static int on_frame(void *ud, const vigil_frame *f) {
  device *d = ud;
  sim *s = d->sim;
  uint8_t b[32];
  switch (f->type) {
  case VIGIL_FRAME_PONG:
    if (d->state == D_HANDSHAKE)
      dev_ready(d);
    else
      s->st.pongs++;
    return 0;
  case VIGIL_FRAME_PING:
    if (send_bytes(d, b, vigil_frame_encode(VIGIL_FRAME_PONG, f->payload,
                                            f->len, b, sizeof b)) != 0) {
      dev_fail(d, &s->st.err_other);
      return 1;
    }
    return 0;
  case VIGIL_FRAME_GOODBYE:
    /* The server asks us to close first (TIME_WAIT stays with us). */
    s->st.goodbyes++;
    if (d->state == D_HANDSHAKE)
      dev_fail(d, &s->st.err_rejected);
    else if (d->state == D_CLOSING) {
      close_live(d);
      d->state = D_BACKOFF;
      arm(d, rnd_s(s, 0, 500));
    } else
      dev_drop(d);
    return 1;
  default:
    return 0;
  }
}

static void dev_read(device *d) {
  sim *s = d->sim;
  uint8_t buf[4096];
  for (int i = 0; i < 4 && d->fd >= 0; i++) {
    ssize_t n = recv(d->fd, buf, sizeof buf, 0);
    if (n > 0) {
      ssize_t r = s->o.proto == PROTO_MQTT
                      ? mqtt_parser_feed(&d->parser.mqtt, buf, (size_t)n,
                                         on_mqtt, d)
                      : vigil_frame_parser_feed(&d->parser.vigil, buf,
                                                (size_t)n, on_frame, d);
      if (d->fd < 0) return; /* a callback closed it */
      if (r < 0) {
        dev_fail(d, &s->st.err_protocol);
        return;
      }
      if ((size_t)n < sizeof buf) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    /* EOF or reset */
    if (d->state == D_READY) {
      dev_drop(d);
    } else if (d->state == D_CLOSING) {
      close_live(d);
      d->state = D_BACKOFF;
      arm(d, rnd_s(s, 0, 500));
    } else {
      dev_fail(d, &s->st.err_closed);
    }
    return;
  }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  device *d = w->data;
  sim *s = d->sim;
  if (d->state == D_CONNECTING && (revents & EV_WRITE)) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      dev_fail(d, err == ECONNREFUSED ? &s->st.err_refused
                                      : &s->st.err_connect);
      return;
    }
    d->state = D_HANDSHAKE;
    ev_io_stop(loop, w);
    ev_io_set(w, d->fd, EV_READ);
    ev_io_start(loop, w);
    send_hello(d);
    return;
  }
  if (revents & EV_READ) dev_read(d);
}

static void dev_connect(device *d) {
  sim *s = d->sim;
  s->st.attempts++;
  int fd = socket(s->o.dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_TCP);
  if (fd < 0) {
    d->state = D_BACKOFF;
    s->st.err_other++;
    backoff(d, 1);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (s->o.nsrc) {
    /* Port chosen at connect() from the full 4-tuple, not at bind(): each
     * source address then has its own ~28k ports per server. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const struct sockaddr_in *src = &s->o.src[d->index % s->o.nsrc];
    if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) {
      close(fd);
      s->st.err_addr++;
      backoff(d, 1);
      return;
    }
  }
  d->connect_us = now_us();
  /* Several servers: each connection picks one, as a balancer would. */
  const sim_target *t =
      &s->o.targets[s->o.ntargets > 1 ? rnd(s) % s->o.ntargets : 0];
  if (connect(fd, (const struct sockaddr *)&t->dst, t->dstlen) < 0 &&
      errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    if (err == EADDRNOTAVAIL || err == EADDRINUSE) s->st.err_addr++;
    else if (err == ECONNREFUSED) s->st.err_refused++;
    else s->st.err_connect++;
    backoff(d, 1);
    return;
  }
  d->fd = fd;
  if (s->o.proto == PROTO_MQTT)
    mqtt_parser_init(&d->parser.mqtt, MAX_PACKET);
  else
    vigil_frame_parser_init(&d->parser.vigil, MAX_PACKET);
  d->state = D_CONNECTING;
  s->inflight++;
  ev_io_init(&d->io, io_cb, fd, EV_WRITE);
  d->io.data = d;
  ev_io_start(s->loop, &d->io);
  arm(d, s->o.connect_timeout_ms / 1000.0);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  device *d = w->data;
  sim *s = d->sim;
  (void)revents;
  switch (d->state) {
  case D_CONNECTING:
  case D_HANDSHAKE:
    dev_fail(d, &s->st.err_timeout);
    return;
  case D_BACKOFF:
    enqueue(d);
    return;
  case D_CLOSING: /* no FIN after our GOODBYE: close anyway */
    close_live(d);
    d->state = D_BACKOFF;
    arm(d, rnd_s(s, 0, 500));
    return;
  case D_READY: {
    ev_tstamp now = ev_now(loop);
    if (d->churn_at > 0 && now >= d->churn_at && !s->ending) {
      if (s->o.mode == MODE_FLAP)
        dev_flap(d);
      else
        dev_reboot(d);
      return;
    }
    if (now >= d->next_ping) {
      send_ping(d);
      if (d->state != D_READY) return;
      d->next_ping = now + s->o.ping_ms / 1000.0;
    }
    if (s->ending) d->churn_at = 0;
    arm_ready(d);
    return;
  }
  default:
    return;
  }
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in ms. */
static double pct_ms(const uint32_t *v, size_t n, double p) {
  if (n == 0) return 0.0;
  size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return v[k - 1] / 1000.0;
}

typedef struct census_counts {
  int ok;
  uint32_t c[VIGIL_TCP_STATE__COUNT];
  uint32_t orphans;
} census_counts;

static void take_census(sim *s, census_counts *out) {
  vigil_census_query q;
  vigil_census *c;
  memset(out, 0, sizeof *out);
  vigil_census_query_init(&q);
  uint16_t ports[SIM_MAX_TARGETS];
  for (unsigned i = 0; i < s->o.ntargets; i++) ports[i] = s->o.targets[i].port;
  q.ports = ports;
  q.nports = s->o.ntargets;
  q.want_sockets = 0;
  q.want_self = 0;
  if (vigil_census_run(&q, &c) != VIGIL_OK) return;
  memcpy(out->c, c->counts, sizeof out->c);
  out->orphans = c->orphans;
  out->ok = 1;
  vigil_census_free(c);
}

static void report(sim *s, const census_counts *cc) {
  const stats *t = &s->st;
  uint64_t live = 0, pending = 0;
  for (uint32_t i = 0; i < s->o.devices; i++) {
    if (s->dev[i].state == D_READY) live++;
    else pending++;
  }
  qsort(s->lat_us, s->nlat, sizeof *s->lat_us, cmp_u32);
  double p50 = pct_ms(s->lat_us, s->nlat, 50), p99 = pct_ms(s->lat_us, s->nlat, 99);
  double pmax = s->nlat ? s->lat_us[s->nlat - 1] / 1000.0 : 0.0;
  qsort(s->ghost_us, s->nghost, sizeof *s->ghost_us, cmp_u32);
  uint64_t errors = t->err_refused + t->err_addr + t->err_connect +
                    t->err_timeout + t->err_closed + t->err_rejected +
                    t->err_protocol + t->err_other;
  static const char *const modes[] = {"steady", "flap", "silent-reboot"};
  const char *proto = s->o.proto == PROTO_MQTT ? "mqtt" : "vigil";
  double elapsed = ev_now(s->loop) - s->started;
#define NUM(k, v) printf(s->o.json ? ",\"%s\":%llu" : "%s=%llu ", k, (unsigned long long)(v))
#define DBL(k, v) printf(s->o.json ? ",\"%s\":%.3f" : "%s=%.3f ", k, (double)(v))
  if (s->o.json)
    printf("{\"protocol\":\"%s\",\"mode\":\"%s\"", proto, modes[s->o.mode]);
  else
    printf("device_sim protocol=%s mode=%s ", proto, modes[s->o.mode]);
  NUM("devices", s->o.devices);
  NUM("seed", s->o.seed);
  DBL("elapsed_s", elapsed);
  if (!s->o.json) printf("\nconnections: ");
  NUM("attempts", t->attempts);
  NUM("connects", t->ready);
  NUM("first_connects", t->first_connects);
  NUM("reconnects", t->reconnects);
  NUM("live", live);
  NUM("not_ready", pending);
  if (!s->o.json) printf("\nready latency ms: ");
  DBL("p50_ms", p50);
  DBL("p99_ms", p99);
  DBL("max_ms", pmax);
  if (!s->o.json) printf("\nheartbeats: ");
  NUM("pings", t->pings);
  NUM("pongs", t->pongs);
  if (!s->o.json) printf("\nchurn: ");
  NUM("flaps", t->flaps);
  NUM("reboots", t->reboots);
  NUM("reboots_deferred", t->reboots_deferred);
  NUM("ghosts_ended_rst", t->ghosts_ended_rst);
  NUM("ghosts_ended_fin", t->ghosts_ended_fin);
  NUM("ghosts_open", t->ghosts_open);
  NUM("ghosts_max", t->ghosts_max);
  DBL("ghost_end_p50_ms", pct_ms(s->ghost_us, s->nghost, 50));
  DBL("ghost_end_p99_ms", pct_ms(s->ghost_us, s->nghost, 99));
  NUM("drops", t->drops);
  NUM("goodbyes", t->goodbyes);
  if (!s->o.json) printf("\nerrors: ");
  NUM("errors", errors);
  NUM("err_refused", t->err_refused);
  NUM("err_addr", t->err_addr);
  NUM("err_connect", t->err_connect);
  NUM("err_timeout", t->err_timeout);
  NUM("err_closed", t->err_closed);
  NUM("err_rejected", t->err_rejected);
  NUM("err_protocol", t->err_protocol);
  NUM("err_other", t->err_other);
  if (cc->ok) {
    if (!s->o.json) printf("\nserver port %u census: ", (unsigned)s->o.port);
    NUM("census_established", cc->c[VIGIL_TCP_ESTABLISHED]);
    NUM("census_syn_recv", cc->c[VIGIL_TCP_SYN_RECV]);
    NUM("census_close_wait", cc->c[VIGIL_TCP_CLOSE_WAIT]);
    NUM("census_fin_wait1", cc->c[VIGIL_TCP_FIN_WAIT1]);
    NUM("census_fin_wait2", cc->c[VIGIL_TCP_FIN_WAIT2]);
    NUM("census_closing", cc->c[VIGIL_TCP_CLOSING]);
    NUM("census_last_ack", cc->c[VIGIL_TCP_LAST_ACK]);
    NUM("census_time_wait", cc->c[VIGIL_TCP_TIME_WAIT]);
    NUM("census_orphans", cc->orphans);
  }
  printf(s->o.json ? "}\n" : "\n");
#undef NUM
#undef DBL
  fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Start, end, main                                                          */
/* ------------------------------------------------------------------------ */

static void finish(sim *s) {
  census_counts cc = {0};
  ev_timer_stop(s->loop, &s->pacer);
  ev_timer_stop(s->loop, &s->end);
  if (s->o.census) take_census(s, &cc);
  report(s, &cc);
  for (uint32_t i = 0; i < s->o.devices; i++) {
    device *d = &s->dev[i];
    if (d->state == D_READY && s->o.proto == PROTO_MQTT) {
      uint8_t b[2];
      send_bytes(d, b, mqtt_encode_empty(MQTT_DISCONNECT, b, sizeof b));
    }
    close_live(d);
    ev_timer_stop(s->loop, &d->timer);
    if (d->ghost_fd >= 0) {
      ev_io_stop(s->loop, &d->ghost_io);
      close(d->ghost_fd);
      d->ghost_fd = -1;
    }
    d->state = D_DONE;
  }
  ev_signal_stop(s->loop, &s->sigint);
  ev_signal_stop(s->loop, &s->sigterm);
  ev_break(s->loop, EVBREAK_ALL);
}

static void end_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  sim *s = w->data;
  (void)revents;
  if (!s->ending && s->o.hold_s > 0) {
    s->ending = 1; /* churn stops; connections stay for --hold */
    ev_timer_set(w, s->o.hold_s, 0.0);
    ev_timer_start(loop, w);
    return;
  }
  s->ending = 1;
  finish(s);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)loop;
  (void)revents;
  finish(w->data);
}

/* Raises the fd limit to the hard limit and refuses what cannot fit. */
static void check_fd_budget(const sim *s) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  uint64_t per = s->o.mode == MODE_REBOOT ? 2 : 1;
  uint64_t need = (uint64_t)s->o.devices * per + RESERVED_FDS;
  if (need <= rl.rlim_cur) return;
  uint64_t fit = rl.rlim_cur > RESERVED_FDS ? (rl.rlim_cur - RESERVED_FDS) / per
                                            : 0;
  fprintf(stderr,
          "device_sim: %u devices need %llu file descriptors (%s%u + %d "
          "reserved), but this process may open %llu (ulimit -n).\n"
          "At most %llu devices fit in one process in this mode. Run several "
          "processes, each with its own --id-offset (and --source-ips), e.g.\n"
          "  device_sim ... --devices %llu --id-offset 0 &\n"
          "  device_sim ... --devices %llu --id-offset %llu &\n",
          s->o.devices, (unsigned long long)need,
          per == 2 ? "2 per device in silent-reboot: live + abandoned, "
                   : "1 per device, ",
          s->o.devices * (unsigned)per, RESERVED_FDS,
          (unsigned long long)rl.rlim_cur, (unsigned long long)fit,
          (unsigned long long)fit, (unsigned long long)fit,
          (unsigned long long)fit);
  exit(SIM_EXIT_USAGE);
}

int main(int argc, char **argv) {
  static sim s;
  sim_options_parse(argc, argv, &s.o);
  check_fd_budget(&s);
  signal(SIGPIPE, SIG_IGN);
  s.rng = s.o.seed * 0x9E3779B97F4A7C15ull + 1;
  s.loop = ev_default_loop(0);
  s.dev = calloc(s.o.devices, sizeof *s.dev);
  if (!s.loop || !s.dev) {
    fprintf(stderr, "device_sim: out of memory\n");
    return 1;
  }
  for (uint32_t i = 0; i < s.o.devices; i++) {
    device *d = &s.dev[i];
    d->sim = &s;
    d->index = i;
    d->fd = d->ghost_fd = -1;
    ev_init(&d->timer, timer_cb);
    d->timer.data = d;
  }
  ev_init(&s.pacer, pacer_cb);
  s.pacer.repeat = 0.01;
  s.pacer.data = &s;
  ev_timer_init(&s.end, end_cb, s.o.duration_s, 0.0);
  s.end.data = &s;
  ev_timer_start(s.loop, &s.end);
  ev_signal_init(&s.sigint, signal_cb, SIGINT);
  ev_signal_init(&s.sigterm, signal_cb, SIGTERM);
  s.sigint.data = s.sigterm.data = &s;
  ev_signal_start(s.loop, &s.sigint);
  ev_signal_start(s.loop, &s.sigterm);
  s.started = ev_now(s.loop);
  for (uint32_t i = 0; i < s.o.devices; i++) enqueue(&s.dev[i]);
  ev_run(s.loop, 0);
  free(s.dev);
  free(s.lat_us);
  free(s.ghost_us);
  return 0;
}
