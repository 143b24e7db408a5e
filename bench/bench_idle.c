/*
 * bench_idle: what idle connections with heartbeats cost a server. Opens N
 * connections to a server that is already running (any process on this
 * machine), from K client processes and several source addresses, lets
 * every connection heartbeat every H ms, and measures the server process's
 * CPU time and RSS.
 *
 * Protocols (the client always pings, the server answers, so every server
 * sees the same traffic: one request and one answer per connection per H):
 *   vigil  HELLO "i<n>@r<n/8>" (game_server's name@room), then PING frames
 *          with an 8-byte token; the server answers PONG. Server PINGs are
 *          answered with PONG too.
 *   mqtt   CONNECT (client id "idle-<n>", keep-alive H/1000 s, clean
 *          session), then PINGREQ; the server answers PINGRESP.
 *   line   for examples/echo_server: "HELLO\n", ready when it comes back;
 *          then "PING\n" lines, which the server echoes (its echo is a
 *          send, so its own ping_interval, set above H, never fires).
 * Each connection's heartbeat phase is uniform in [0, H) from the moment it
 * is ready, so the load is flat from the start and a window shorter than H
 * still sees the average rate (N/H heartbeats per second).
 *
 * Keys: conns (ready), cpu_pct (per window: server CPU time / wall time,
 * percent of one core), cpu_pct_per_10k (cpu_pct scaled to 10,000 conns),
 * rss_per_conn_bytes ((RSS with N conns - RSS before) / N), heartbeats and
 * drops (connections the server closed) during the windows.
 *
 * Usage: bench_idle --connect HOST:PORT --protocol vigil|mqtt|line --conns N
 *          --procs K --heartbeat-ms H --window-s W --windows R
 *          --server-pid PID [--source-ips A-B] [--label L] [--json FILE]
 * Every loop is bounded: connecting stops after 60 s, and each client
 * process exits when told or after (windows * W + 120) s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_PROCS 16
#define MAX_WINDOWS 32
#define INFLIGHT 512
#define SLOT_MS 10

enum proto { P_VIGIL, P_MQTT, P_LINE };
enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_READY, C_DEAD };

typedef struct cconn {
  int fd;
  uint8_t state;
  uint8_t have;
  uint8_t carry[16];   /* a frame header and up to 8 payload bytes */
  uint32_t skip;       /* payload bytes still to drop */
  int32_t next_in_slot; /* heartbeat slot list */
} cconn;

static struct {
  struct sockaddr_in server;
  enum proto proto;
  int conns, procs, windows;
  uint32_t heartbeat_ms;
  double window_s;
  pid_t server_pid;
  uint32_t src_first, src_last; /* host order; 0 = no bind */
  const char *label, *json;
} o;

/* ---- client process ----------------------------------------------------- */

static volatile sig_atomic_t stop_flag;
static void on_term(int sig) {
  (void)sig;
  stop_flag = 1;
}

typedef struct cstats {
  long ready, failed, heartbeats, answers, drops;
} cstats;

static size_t encode_hello(int n, uint8_t *b) {
  char id[48];
  int len = snprintf(id, sizeof id, "i%d@r%d", n, n / 8);
  b[0] = 0xF7, b[1] = 1, b[2] = 0x01, b[3] = 0;
  b[4] = b[5] = b[6] = 0;
  b[7] = (uint8_t)len;
  memcpy(b + 8, id, (size_t)len);
  return 8 + (size_t)len;
}

static size_t encode_ping(int n, uint32_t seq, uint8_t *b) {
  b[0] = 0xF7, b[1] = 1, b[2] = 0x02, b[3] = 0;
  b[4] = b[5] = b[6] = 0;
  b[7] = 8;
  memcpy(b + 8, &n, 4);
  memcpy(b + 12, &seq, 4);
  return 16;
}

static size_t encode_connect(int n, uint16_t keepalive, uint8_t *b) {
  char id[32];
  int idl = snprintf(id, sizeof id, "idle-%d", n);
  size_t rem = 10 + 2 + (size_t)idl;
  size_t i = 0;
  b[i++] = 0x10;
  b[i++] = (uint8_t)rem;
  static const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02};
  memcpy(b + i, vh, sizeof vh);
  i += sizeof vh;
  b[i++] = (uint8_t)(keepalive >> 8);
  b[i++] = (uint8_t)keepalive;
  b[i++] = 0;
  b[i++] = (uint8_t)idl;
  memcpy(b + i, id, (size_t)idl);
  return i + (size_t)idl;
}

static int send_all(int fd, const void *p, size_t n) {
  return send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n ? 0 : -1;
}

/* Parses what a connection received; returns 1 if it became ready, 0 if
 * nothing changed, -1 if the connection must be dropped. */
static int on_bytes(cconn *c, int n, const uint8_t *p, size_t len,
                    cstats *st) {
  int became_ready = 0;
  if (o.proto == P_LINE) {
    /* Every '\n' ends a line: the first is the HELLO echo, the others echo
     * our PINGs. */
    for (size_t i = 0; i < len; i++) {
      if (c->have < sizeof c->carry) c->carry[c->have++] = p[i];
      if (p[i] != '\n') continue;
      if (c->state == C_HANDSHAKE) {
        c->state = C_READY;
        became_ready = 1;
      } else if (c->have == 5 && !memcmp(c->carry, "PING\n", 5)) {
        st->answers++;
      }
      c->have = 0;
    }
    return became_ready;
  }
  if (o.proto == P_MQTT) {
    /* CONNACK (0x20 0x02 0x00 rc) first, then PINGRESPs: count and drop. */
    for (size_t i = 0; i < len; i++) {
      if (c->have < sizeof c->carry) c->carry[c->have++] = p[i];
      if (c->state == C_HANDSHAKE && c->have >= 4) {
        if (c->carry[0] != 0x20 || c->carry[3] != 0) return -1;
        c->state = C_READY;
        became_ready = 1;
        c->have = 0;
      } else if (c->state == C_READY && c->have >= 2) {
        if (c->carry[0] == 0xd0) st->answers++;
        c->have = 0;
      }
    }
    return became_ready;
  }
  for (size_t i = 0; i < len;) {
    if (c->skip) { /* payload of a DATA frame (a game notice): dropped */
      size_t d = len - i < c->skip ? len - i : c->skip;
      c->skip -= (uint32_t)d;
      i += d;
      continue;
    }
    size_t want = 8;
    if (c->have >= 8) {
      uint32_t flen = (uint32_t)c->carry[4] << 24 |
                      (uint32_t)c->carry[5] << 16 |
                      (uint32_t)c->carry[6] << 8 | c->carry[7];
      if (c->carry[0] != 0xF7) return -1;
      if (flen > 8) {
        if (c->carry[2] == 0x05) return -1; /* GOODBYE */
        c->skip = flen;
        c->have = 0;
        continue;
      }
      want = 8 + flen;
    }
    if (c->have < want) {
      size_t take = want - c->have < len - i ? want - c->have : len - i;
      memcpy(c->carry + c->have, p + i, take);
      c->have = (uint8_t)(c->have + take);
      i += take;
      if (c->have < want || want == 8) continue;
    }
    uint8_t type = c->carry[2];
    if (type == 0x03) { /* PONG */
      if (c->state == C_HANDSHAKE) {
        c->state = C_READY;
        became_ready = 1;
      } else {
        st->answers++;
      }
    } else if (type == 0x02) { /* server PING: answer */
      uint8_t pong[16];
      memcpy(pong, c->carry, want);
      pong[2] = 0x03;
      if (send_all(c->fd, pong, want) < 0) return -1;
    }
    c->have = 0;
  }
  (void)n;
  return became_ready;
}

static int open_conn(int n, uint32_t src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (src) {
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(src);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&o.server, sizeof o.server) < 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  (void)n;
  return fd;
}

/* The body of one client process: connections [first, first + count). */
static void client_main(int first, int count, int ctl, int proc_index) {
  signal(SIGTERM, on_term);
  signal(SIGPIPE, SIG_IGN);
  cconn *cs = calloc((size_t)count, sizeof *cs);
  uint32_t nslots = o.heartbeat_ms / SLOT_MS;
  if (nslots == 0) nslots = 1;
  int32_t *slots = malloc(nslots * sizeof *slots);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!cs || !slots || ep < 0) _exit(3);
  for (uint32_t i = 0; i < nslots; i++) slots[i] = -1;
  srand((unsigned)(getpid() ^ (unsigned)bc_now_ns()));
  cstats st = {0};
  uint32_t nsrc = o.src_first ? o.src_last - o.src_first + 1 : 0;
  uint64_t t_start = bc_now_ns();
  uint64_t connect_deadline = t_start + 60ull * 1000000000u;
  uint64_t hard_end = t_start + (uint64_t)((o.windows * o.window_s + 120) *
                                           1e9);
  int next = 0, inflight = 0, reported = 0;
  uint32_t seq = 0;
  uint64_t slot_clock = 0; /* slots processed, since t_start */
  struct epoll_event evs[256];
  uint8_t buf[4096];
  while (!stop_flag && bc_now_ns() < hard_end) {
    uint64_t now = bc_now_ns();
    /* Start new connections while under the in-flight cap. */
    while (next < count && inflight < INFLIGHT && now < connect_deadline) {
      int gidx = first + next;
      uint32_t src = nsrc ? o.src_first + (uint32_t)(gidx % (int)nsrc) : 0;
      int fd = open_conn(gidx, src);
      cconn *c = &cs[next++];
      c->next_in_slot = -1;
      if (fd < 0) {
        st.failed++;
        c->state = C_DEAD;
        continue;
      }
      c->fd = fd;
      c->state = C_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)(c - cs)};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      inflight++;
    }
    if (!reported && ((next >= count && inflight == 0) ||
                      now >= connect_deadline)) {
      char msg[64];
      int len = snprintf(msg, sizeof msg, "ready %ld %ld\n", st.ready,
                         st.failed + (count - next) + inflight);
      if (write(ctl, msg, (size_t)len) < 0) _exit(4);
      reported = 1;
    }
    int nev = epoll_wait(ep, evs, 256, SLOT_MS);
    for (int e = 0; e < nev; e++) {
      cconn *c = &cs[evs[e].data.u32];
      int idx = first + (int)(c - cs);
      if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        uint8_t hs[96];
        size_t n = 0;
        if (!err) {
          if (o.proto == P_VIGIL) {
            n = encode_hello(idx, hs);
            n += encode_ping(idx, 0, hs + n);
          } else if (o.proto == P_LINE) {
            memcpy(hs, "HELLO\n", 6);
            n = 6;
          } else {
            uint32_t ka = o.heartbeat_ms / 1000;
            n = encode_connect(idx, (uint16_t)(ka ? ka : 1), hs);
          }
        }
        if (err || send_all(c->fd, hs, n) < 0) {
          close(c->fd);
          c->state = C_DEAD;
          st.failed++;
          inflight--;
          continue;
        }
        c->state = C_HANDSHAKE;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      if (c->state != C_HANDSHAKE && c->state != C_READY) continue;
      ssize_t r = recv(c->fd, buf, sizeof buf, 0);
      int verdict = r > 0 ? on_bytes(c, idx, buf, (size_t)r, &st) : -1;
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (verdict < 0) {
        if (c->state == C_HANDSHAKE) {
          st.failed++;
          inflight--;
        } else {
          st.drops++;
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = C_DEAD;
        continue;
      }
      if (verdict == 1) {
        st.ready++;
        inflight--;
        /* Uniform phase: the slot of its first heartbeat, then every H. */
        uint64_t at_ms = (bc_now_ns() - t_start) / 1000000u +
                         (uint64_t)rand() % o.heartbeat_ms;
        uint32_t s = (uint32_t)((at_ms / SLOT_MS) % nslots);
        c->next_in_slot = slots[s];
        slots[s] = (int32_t)(c - cs);
      }
    }
    /* Heartbeats for every slot that passed since the last turn. */
    uint64_t due = (bc_now_ns() - t_start) / 1000000u / SLOT_MS;
    if (slot_clock == 0) slot_clock = due;
    for (; slot_clock < due; slot_clock++) {
      for (int32_t i = slots[slot_clock % nslots]; i >= 0;
           i = cs[i].next_in_slot) {
        cconn *c = &cs[i];
        if (c->state != C_READY) continue;
        uint8_t hb[16];
        size_t n;
        if (o.proto == P_VIGIL) n = encode_ping(first + i, ++seq, hb);
        else if (o.proto == P_LINE) {
          memcpy(hb, "PING\n", 5);
          n = 5;
        } else {
          hb[0] = 0xc0;
          hb[1] = 0;
          n = 2;
        }
        if (send_all(c->fd, hb, n) == 0) st.heartbeats++;
      }
    }
  }
  char msg[160];
  int len = snprintf(msg, sizeof msg,
                     "stats %d ready=%ld failed=%ld heartbeats=%ld "
                     "answers=%ld drops=%ld\n",
                     proc_index, st.ready, st.failed, st.heartbeats,
                     st.answers, st.drops);
  if (write(ctl, msg, (size_t)len) < 0) _exit(5);
  _exit(0);
}

/* ---- parent --------------------------------------------------------------- */

static int parse_ipv4(const char *s, uint32_t *out) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) return -1;
  *out = ntohl(a.s_addr);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_idle --connect HOST:PORT --protocol vigil|mqtt|line "
          "--conns N --procs K\n  --heartbeat-ms H --window-s W --windows R "
          "--server-pid PID [--source-ips A-B]\n  [--label L] [--json FILE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  o.conns = 1000;
  o.procs = 4;
  o.windows = 3;
  o.heartbeat_ms = 30000;
  o.window_s = 10;
  o.label = "server";
  int have_connect = 0;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(f, "--connect")) {
      char host[64];
      const char *colon = strrchr(v, ':');
      if (!colon || (size_t)(colon - v) >= sizeof host) usage();
      memcpy(host, v, (size_t)(colon - v));
      host[colon - v] = '\0';
      o.server.sin_family = AF_INET;
      o.server.sin_port = htons((uint16_t)atoi(colon + 1));
      if (inet_pton(AF_INET, host, &o.server.sin_addr) != 1) usage();
      have_connect = 1;
    } else if (!strcmp(f, "--protocol")) {
      if (!strcmp(v, "vigil")) o.proto = P_VIGIL;
      else if (!strcmp(v, "mqtt")) o.proto = P_MQTT;
      else if (!strcmp(v, "line")) o.proto = P_LINE;
      else usage();
    } else if (!strcmp(f, "--conns")) o.conns = atoi(v);
    else if (!strcmp(f, "--procs")) o.procs = atoi(v);
    else if (!strcmp(f, "--heartbeat-ms")) o.heartbeat_ms = (uint32_t)atoi(v);
    else if (!strcmp(f, "--window-s")) o.window_s = atof(v);
    else if (!strcmp(f, "--windows")) o.windows = atoi(v);
    else if (!strcmp(f, "--server-pid")) o.server_pid = atoi(v);
    else if (!strcmp(f, "--label")) o.label = v;
    else if (!strcmp(f, "--json")) o.json = v;
    else if (!strcmp(f, "--source-ips")) {
      char a[32];
      const char *dash = strchr(v, '-');
      if (!dash || (size_t)(dash - v) >= sizeof a) usage();
      memcpy(a, v, (size_t)(dash - v));
      a[dash - v] = '\0';
      if (parse_ipv4(a, &o.src_first) || parse_ipv4(dash + 1, &o.src_last) ||
          o.src_last < o.src_first)
        usage();
    } else usage();
  }
  if (!have_connect || o.server_pid <= 0 || o.conns < 1 || o.procs < 1 ||
      o.procs > MAX_PROCS || o.windows < 1 || o.windows > MAX_WINDOWS ||
      o.heartbeat_ms < SLOT_MS || o.window_s <= 0 || o.window_s > 600)
    usage();
  if (o.conns / o.procs > 19900) {
    fprintf(stderr, "bench_idle: %d conns per process is over the fd "
                    "limit; use more --procs\n", o.conns / o.procs);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  double load = bc_loadavg1();
  long rss0 = bc_proc_rss_kb(o.server_pid);
  int ctl[MAX_PROCS];
  pid_t kids[MAX_PROCS];
  int per = o.conns / o.procs, first = 0;
  uint64_t t0 = bc_now_ns();
  for (int k = 0; k < o.procs; k++) {
    int count = k == o.procs - 1 ? o.conns - first : per;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 1;
    fflush(NULL);
    kids[k] = fork();
    if (kids[k] < 0) return 1;
    if (kids[k] == 0) {
      close(sv[0]);
      client_main(first, count, sv[1], k);
    }
    close(sv[1]);
    ctl[k] = sv[0];
    first += count;
  }
  long ready = 0, failed = 0;
  for (int k = 0; k < o.procs; k++) {
    char buf[128];
    ssize_t n = read(ctl[k], buf, sizeof buf - 1);
    long r = 0, f = 0;
    if (n > 0) {
      buf[n] = '\0';
      sscanf(buf, "ready %ld %ld", &r, &f);
    }
    ready += r;
    failed += f;
  }
  double setup_s = (double)(bc_now_ns() - t0) / 1e9;
  fprintf(stderr, "idle %s: %ld connections ready (%ld failed) in %.1f s\n",
          o.label, ready, failed, setup_s);
  usleep(1000000); /* let the last handshakes' work settle */
  long rss1 = bc_proc_rss_kb(o.server_pid);
  double pct[MAX_WINDOWS];
  for (int w = 0; w < o.windows; w++) {
    double c0 = bc_proc_cpu_ns(o.server_pid);
    uint64_t w0 = bc_now_ns();
    usleep((useconds_t)(o.window_s * 1e6));
    double c1 = bc_proc_cpu_ns(o.server_pid);
    uint64_t w1 = bc_now_ns();
    pct[w] = c0 < 0 || c1 < 0 ? -1 : (c1 - c0) / (double)(w1 - w0) * 100.0;
    fprintf(stderr, "idle %s: window %d/%d: server CPU %.2f %% of a core\n",
            o.label, w + 1, o.windows, pct[w]);
  }
  long rss2 = bc_proc_rss_kb(o.server_pid);
  long hb = 0, answers = 0, drops = 0;
  for (int k = 0; k < o.procs; k++) kill(kids[k], SIGTERM);
  for (int k = 0; k < o.procs; k++) {
    char buf[256];
    ssize_t n = read(ctl[k], buf, sizeof buf - 1);
    if (n > 0) {
      buf[n] = '\0';
      const char *s = strstr(buf, "stats");
      long r, f, h, a, d;
      int idx;
      if (s && sscanf(s, "stats %d ready=%ld failed=%ld heartbeats=%ld "
                         "answers=%ld drops=%ld",
                      &idx, &r, &f, &h, &a, &d) == 6) {
        hb += h;
        answers += a;
        drops += d;
      }
    }
    close(ctl[k]);
    waitpid(kids[k], NULL, 0);
  }
  FILE *f = o.json ? fopen(o.json, "w") : stdout;
  if (!f) {
    perror(o.json);
    return 1;
  }
  double per10k[MAX_WINDOWS];
  for (int w = 0; w < o.windows; w++)
    per10k[w] = ready ? pct[w] * 10000.0 / (double)ready : 0;
  fprintf(f, "{\"label\": \"%s\", \"protocol\": \"%s\", \"conns\": %ld, "
             "\"failed\": %ld, \"procs\": %d, \"heartbeat_ms\": %u, "
             "\"window_s\": %.1f, \"setup_s\": %.2f, \"loadavg_1m\": %.2f, ",
          o.label,
          o.proto == P_VIGIL ? "vigil" : o.proto == P_MQTT ? "mqtt" : "line",
          ready, failed,
          o.procs, o.heartbeat_ms, o.window_s, setup_s, load);
  bc_json_stats(f, "cpu_pct", pct, (size_t)o.windows);
  fputs(", ", f);
  bc_json_stats(f, "cpu_pct_per_10k", per10k, (size_t)o.windows);
  fprintf(f, ", \"rss_before_kb\": %ld, \"rss_kb\": %ld, \"rss_end_kb\": %ld, "
             "\"rss_per_conn_bytes\": %.1f, \"heartbeats\": %ld, "
             "\"answers\": %ld, \"drops\": %ld}\n",
          rss0, rss1, rss2,
          ready ? (double)(rss1 - rss0) * 1024.0 / (double)ready : 0, hb,
          answers, drops);
  if (f != stdout) fclose(f);
  return 0;
}
