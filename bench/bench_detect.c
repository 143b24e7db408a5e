/*
 * bench_detect: how long after its configured bound vigil notices a peer
 * that vanished without FIN or RST, for three policies, with real TCP
 * between two network namespaces and an nftables blackhole.
 *
 * The namespaces exist already (bench/lib/detect.py creates them): the
 * server side lives in A, the clients in B, joined by a veth pair. This
 * process stays in its own namespace and runs one libev loop; sockets are
 * created inside A or B by briefly switching the thread with setns(), so
 * one process holds both ends. One `nft -i` process inside B keeps a set of
 * blackholed client ports; a trial silences its own connection by adding
 * its port, so trials run concurrently, staggered, each from a different
 * phase.
 *
 * Policies and their bounds (the instant the peer must be declared dead,
 * counted from the last thing the peer sent):
 *   heartbeat   frame codec, ping_interval 500 ms, dead_after 1500 ms. The
 *               client PINGs once, answers the server's PINGs, then stops
 *               answering and is blackholed. Bound: its last send + 1500.
 *               Expected reason: heartbeat_timeout.
 *   keepalive   kernel keepalive only: idle 1 s, intvl 1 s, cnt 2, no user
 *               timeout. The client sends one byte and is blackholed before
 *               the first probe. Bound: that byte + idle + intvl * cnt =
 *               + 3000. Expected reason: keepalive_timeout.
 *   user_timeout TCP_USER_TIMEOUT 1500 ms, no keepalive. The client is
 *               blackholed, then the server sends 64 bytes that are never
 *               acknowledged. Bound: that send + 1500. Expected reason:
 *               user_timeout.
 *   kernel_keepalive, kernel_user_timeout: the same kernel options on a
 *               socket vigil does not manage, detected by recv() failing
 *               with ETIMEDOUT: the kernel's own latency, so the report
 *               can tell vigil's share from the kernel's.
 * Overshoot = on_close (or ETIMEDOUT) time - bound (ms, negative = early;
 * "early_beyond_1ms" counts what the hub's 1 ms clock step cannot explain:
 * vigil stamps a receive with the loop iteration's cached, truncated ms).
 * Also recorded:
 * the sockets left on the server port afterwards (census in A): vigil
 * closes confirmed-dead peers with RST, so none should remain.
 *
 * Usage: bench_detect --ns-a NAME --ns-b NAME --addr-a IP --trials N
 *                     [--stagger-ms MS] [--json FILE]
 * Needs root (setns, nft). Bounded: every trial ends at bound + 6 s.
 */
#include "conn.h"
#include "hub.h"

#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_TRIALS 64
#define NPOL 5
#define GIVE_UP_MS 6000.0

/* POL_KERNEL_*: the same kernel settings on a socket vigil does not
 * manage (setsockopt + ev_io, ETIMEDOUT from recv): the kernel's own
 * latency, the baseline for vigil's keepalive and user-timeout figures. */
enum pol { POL_HB = 0, POL_KA = 1, POL_UT = 2, POL_KERNEL_KA = 3,
           POL_KERNEL_UT = 4 };
static const char *const pol_names[NPOL] = {
    "heartbeat", "keepalive", "user_timeout", "kernel_keepalive",
    "kernel_user_timeout"};
static const vigil_reason pol_reason[NPOL] = {
    VIGIL_REASON_HEARTBEAT_TIMEOUT, VIGIL_REASON_KEEPALIVE_TIMEOUT,
    VIGIL_REASON_USER_TIMEOUT, VIGIL_REASON_KEEPALIVE_TIMEOUT,
    VIGIL_REASON_USER_TIMEOUT};
static const double pol_bound_ms[NPOL] = {1500, 3000, 1500, 3000, 1500};

static int is_ka(enum pol p) { return p == POL_KA || p == POL_KERNEL_KA; }
static int is_ut(enum pol p) { return p == POL_UT || p == POL_KERNEL_UT; }
static int is_kernel(enum pol p) { return p >= POL_KERNEL_KA; }

enum tstate { T_WAIT, T_CONNECTING, T_LIVE, T_SILENT, T_DONE };

typedef struct trial {
  enum pol pol;
  enum tstate state;
  int cfd;              /* client socket, in B */
  uint16_t cport;       /* its local port */
  vigil_conn *conn;     /* server side (vigil policies) */
  int sfd;              /* server side (kernel baselines) */
  ev_io sio;
  double start_at;      /* ms, monotonic */
  double stop_at;       /* client goes silent */
  double last_send;     /* client's last send before silence */
  double bound_at;      /* when the peer must be declared dead */
  double closed_at;
  vigil_reason reason;
  ev_io cio;
  ev_timer timer;
  uint8_t carry[16];
  size_t have;
} trial;

static struct {
  struct ev_loop *loop;
  vigil_hub *hub;
  int self_ns, ns_a, ns_b;
  struct sockaddr_in addr_a;
  uint16_t port;
  int lfd;
  ev_io lio;
  FILE *nft;
  pid_t nft_pid;
  trial trials[NPOL * MAX_TRIALS];
  int ntrials, done;
  vigil_policy pol[NPOL];
} g;

/* ---- namespaces ---------------------------------------------------------- */

static int open_ns(const char *name) {
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", name);
  return open(path, O_RDONLY | O_CLOEXEC);
}

/* socket() inside namespace nsfd; the thread returns to its own. */
static int socket_in(int nsfd) {
  if (setns(nsfd, CLONE_NEWNET) < 0) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (setns(g.self_ns, CLONE_NEWNET) < 0) abort(); /* wrong ns: stop */
  return fd;
}

/* Starts `ip netns exec B nft -i` and installs the blackhole set. */
static int nft_start(const char *ns_b) {
  int p[2];
  if (pipe(p) < 0) return -1;
  fflush(NULL);
  g.nft_pid = fork();
  if (g.nft_pid < 0) return -1;
  if (g.nft_pid == 0) {
    dup2(p[0], 0);
    int dn = open("/dev/null", O_WRONLY);
    if (dn >= 0) dup2(dn, 1);
    close(p[0]);
    close(p[1]);
    execlp("ip", "ip", "netns", "exec", ns_b, "nft", "-i", (char *)NULL);
    _exit(127);
  }
  close(p[0]);
  g.nft = fdopen(p[1], "w");
  if (!g.nft) return -1;
  fprintf(g.nft,
          "add table inet vigilbench\n"
          "add set inet vigilbench ports { type inet_service; }\n"
          "add chain inet vigilbench in { type filter hook input priority "
          "0; policy accept; }\n"
          "add chain inet vigilbench out { type filter hook output priority "
          "0; policy accept; }\n"
          "add rule inet vigilbench in tcp dport @ports drop\n"
          "add rule inet vigilbench out tcp sport @ports drop\n");
  fflush(g.nft);
  return 0;
}

static void blackhole(uint16_t port) {
  fprintf(g.nft, "add element inet vigilbench ports { %u }\n", port);
  fflush(g.nft);
}

/* ---- trials -------------------------------------------------------------- */

static void trial_arm(trial *t, double at_ms) {
  double after = (at_ms - bc_now_ms()) / 1000.0;
  ev_timer_stop(g.loop, &t->timer);
  ev_timer_set(&t->timer, after > 0 ? after : 0, 0);
  ev_timer_start(g.loop, &t->timer);
}

static void trial_finish(trial *t) {
  if (t->state == T_DONE) return;
  t->state = T_DONE;
  ev_timer_stop(g.loop, &t->timer);
  ev_io_stop(g.loop, &t->cio);
  if (t->cfd >= 0) { /* RST, which the blackhole drops: frees it at once */
    struct linger lg = {1, 0};
    setsockopt(t->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(t->cfd);
    t->cfd = -1;
  }
  if (t->conn) vigil_abort(t->conn); /* missed: stop it */
  if (t->sfd >= 0) {
    struct linger lg = {1, 0};
    ev_io_stop(g.loop, &t->sio);
    setsockopt(t->sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(t->sfd);
    t->sfd = -1;
  }
  if (++g.done == g.ntrials) ev_break(g.loop, EVBREAK_ALL);
}

static int client_send(trial *t, const void *p, size_t n) {
  if (send(t->cfd, p, n, MSG_NOSIGNAL) != (ssize_t)n) return -1;
  t->last_send = bc_now_ms();
  return 0;
}

static void client_ping(trial *t) {
  uint8_t f[16];
  int n = vigil_frame_encode(VIGIL_FRAME_PING, "12345678", 8, f, sizeof f);
  if (n > 0) client_send(t, f, (size_t)n);
}

/* The client end: answers PINGs while live, ignores everything after. */
static void client_cb(struct ev_loop *loop, ev_io *w, int revents) {
  trial *t = w->data;
  (void)loop;
  if (t->state == T_CONNECTING && (revents & EV_WRITE)) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(t->cfd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      trial_finish(t);
      return;
    }
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(t->cfd, (struct sockaddr *)&me, &ml);
    t->cport = ntohs(me.sin_port);
    t->state = T_LIVE;
    ev_io_stop(g.loop, w);
    ev_io_set(w, t->cfd, EV_READ);
    ev_io_start(g.loop, w);
    double now = bc_now_ms();
    if (t->pol == POL_HB) {
      client_ping(t);
      t->stop_at = now + 700 + rand() % 800;
    } else if (is_ka(t->pol)) {
      client_send(t, "k", 1);
      t->stop_at = now + 200 + rand() % 400; /* before the 1 s probe */
    } else {
      t->last_send = now;
      t->stop_at = now + 100 + rand() % 400;
    }
    trial_arm(t, t->stop_at);
    return;
  }
  uint8_t buf[512];
  ssize_t n = recv(t->cfd, buf, sizeof buf, 0);
  if (n <= 0) return;
  if (t->state != T_LIVE || t->pol != POL_HB) return;
  /* Frames from the server (payload 0 or 8 bytes): answer each PING. */
  for (ssize_t i = 0; i < n; i++) {
    t->carry[t->have++] = buf[i];
    if (t->have < 8) continue;
    size_t len = t->carry[7];
    if (len > 8 || t->carry[4] | t->carry[5] | t->carry[6]) {
      t->have = 0; /* not a heartbeat frame; nothing else is sent here */
      continue;
    }
    if (t->have < 8 + len) continue;
    if (t->carry[2] == VIGIL_FRAME_PING) {
      t->carry[2] = VIGIL_FRAME_PONG;
      client_send(t, t->carry, 8 + len);
    }
    t->have = 0;
  }
}

static void trial_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  trial *t = w->data;
  (void)loop, (void)revents;
  double now = bc_now_ms();
  switch (t->state) {
  case T_WAIT: {
    t->cfd = socket_in(g.ns_b);
    if (t->cfd < 0 || (connect(t->cfd, (struct sockaddr *)&g.addr_a,
                               sizeof g.addr_a) < 0 &&
                       errno != EINPROGRESS)) {
      trial_finish(t);
      return;
    }
    t->state = T_CONNECTING;
    ev_io_init(&t->cio, client_cb, t->cfd, EV_WRITE);
    t->cio.data = t;
    ev_io_start(g.loop, &t->cio);
    trial_arm(t, now + 3000); /* connect timeout */
    return;
  }
  case T_CONNECTING:
    trial_finish(t);
    return;
  case T_LIVE:
    if (!t->conn && t->sfd < 0) { /* never accepted */
      trial_finish(t);
      return;
    }
    t->state = T_SILENT;
    blackhole(t->cport);
    if (is_ut(t->pol)) {
      /* Send once the drop rule is surely in (nft -i takes ~ms). */
      trial_arm(t, now + 100);
      return;
    }
    t->bound_at = t->last_send + pol_bound_ms[t->pol];
    trial_arm(t, t->bound_at + GIVE_UP_MS);
    return;
  case T_SILENT:
    if (is_ut(t->pol) && t->bound_at == 0) {
      static const char data[64] = "unacknowledged";
      t->bound_at = bc_now_ms() + pol_bound_ms[t->pol];
      int rc = t->conn ? vigil_send(t->conn, data, sizeof data)
                       : send(t->sfd, data, sizeof data, MSG_NOSIGNAL) ==
                                 (ssize_t)sizeof data
                             ? VIGIL_OK
                             : VIGIL_ESYS;
      if (rc != VIGIL_OK) {
        trial_finish(t);
        return;
      }
      trial_arm(t, t->bound_at + GIVE_UP_MS);
      return;
    }
    trial_finish(t); /* not detected in time */
    return;
  default:
    return;
  }
}

static void srv_on_close(vigil_conn *c, vigil_reason r, void *ud) {
  trial *t = ud;
  (void)c;
  if (!t) return;
  t->conn = NULL;
  if (t->state == T_DONE) return;
  t->closed_at = bc_now_ms();
  t->reason = r;
  trial_finish(t);
}

static void srv_on_data(vigil_conn *c, const void *d, size_t n, void *ud) {
  (void)c, (void)d, (void)n, (void)ud; /* keepalive trial's byte */
}

/* Kernel baseline: the socket's first error is the kernel's verdict. */
static void kernel_cb(struct ev_loop *loop, ev_io *w, int revents) {
  trial *t = w->data;
  char buf[256];
  (void)loop, (void)revents;
  ssize_t n = recv(t->sfd, buf, sizeof buf, 0);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
  if (t->state == T_DONE) return;
  t->closed_at = bc_now_ms();
  t->reason = n < 0 && errno == ETIMEDOUT ? pol_reason[t->pol]
                                          : VIGIL_REASON_IO_ERROR;
  trial_finish(t);
}

/* Applies the baseline's options to a socket vigil does not manage. */
static void kernel_watch(trial *t, int fd) {
  int one = 1, v;
  t->sfd = fd;
  if (t->pol == POL_KERNEL_KA) {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    v = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof v);
    v = 2;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof v);
  } else {
    unsigned ut = (unsigned)pol_bound_ms[POL_KERNEL_UT];
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
  }
  ev_io_init(&t->sio, kernel_cb, fd, EV_READ);
  t->sio.data = t;
  ev_io_start(g.loop, &t->sio);
}

/* Accepts in A, adopts with the trial's policy. The client end may not have
 * seen its connect complete yet, so match by its port from getpeername. */
static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop, (void)revents;
  for (;;) {
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int fd = accept4(w->fd, (struct sockaddr *)&peer, &pl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    uint16_t port = ntohs(peer.sin_port);
    trial *t = NULL;
    for (int i = 0; i < g.ntrials && !t; i++) {
      trial *x = &g.trials[i];
      if (x->cfd < 0 || x->conn || x->sfd >= 0 || x->state == T_DONE)
        continue;
      struct sockaddr_in me;
      socklen_t ml = sizeof me;
      if (getsockname(x->cfd, (struct sockaddr *)&me, &ml) == 0 &&
          ntohs(me.sin_port) == port) {
        t = x;
        t->cport = port;
      }
    }
    if (!t) {
      close(fd);
      continue;
    }
    if (is_kernel(t->pol)) {
      kernel_watch(t, fd);
      continue;
    }
    static const vigil_conn_callbacks cb = {.on_data = srv_on_data,
                                            .on_close = srv_on_close};
    vigil_adopt_options ao;
    vigil_adopt_options_init(&ao);
    ao.policy = &g.pol[t->pol];
    ao.callbacks = &cb;
    ao.user_data = t;
    if (vigil_adopt(g.hub, fd, &ao, &t->conn) != VIGIL_OK) {
      close(fd);
      trial_finish(t);
    }
  }
}

static void setup_policies(void) {
  vigil_policy *p = &g.pol[POL_HB];
  vigil_policy_init(p);
  p->frame_codec = 1;
  p->ping_interval_ms = 500;
  p->dead_after_ms = 1500;

  p = &g.pol[POL_KA];
  vigil_policy_init(p);
  p->keepalive = 1;
  p->keepalive_idle_s = 1;
  p->keepalive_intvl_s = 1;
  p->keepalive_cnt = 2;
  p->user_timeout_ms = VIGIL_USER_TIMEOUT_OFF;
  p->suspect_after_ms = 0;

  p = &g.pol[POL_UT];
  vigil_policy_init(p);
  p->keepalive = 0;
  p->user_timeout_ms = 1500;
  p->suspect_after_ms = 0;
}

/* Counts sockets left on the server port in A (census from inside A). */
static void leftovers(uint32_t counts[VIGIL_TCP_STATE__COUNT],
                      uint32_t *orphans) {
  memset(counts, 0, sizeof(uint32_t) * VIGIL_TCP_STATE__COUNT);
  *orphans = 0;
  if (setns(g.ns_a, CLONE_NEWNET) < 0) return;
  vigil_census_query q;
  vigil_census_query_init(&q);
  q.ports = &g.port;
  q.nports = 1;
  q.want_sockets = 0;
  vigil_census *c;
  if (vigil_census_run(&q, &c) == VIGIL_OK) {
    memcpy(counts, c->counts, sizeof c->counts);
    *orphans = c->orphans;
    vigil_census_free(c);
  }
  if (setns(g.self_ns, CLONE_NEWNET) < 0) abort();
}

static void emit(FILE *f, double load) {
  uint32_t counts[VIGIL_TCP_STATE__COUNT], orphans;
  leftovers(counts, &orphans);
  fprintf(f, "{\"detect_vigil\": {\"config\": {\"trials\": %d, \"tick_ms\": "
             "10, \"loadavg_1m\": %.2f}",
          g.ntrials / NPOL, load);
  for (int p = 0; p < NPOL; p++) {
    double ov[MAX_TRIALS];
    int n = 0, early = 0, early1 = 0, wrong = 0, missed = 0;
    for (int i = 0; i < g.ntrials; i++) {
      trial *t = &g.trials[i];
      if (t->pol != (enum pol)p) continue;
      if (t->closed_at == 0 || t->bound_at == 0) {
        missed++;
        continue;
      }
      if (t->reason != pol_reason[p]) wrong++;
      ov[n] = t->closed_at - t->bound_at;
      if (ov[n] < 0) early++;
      if (ov[n] < -1.0) early1++; /* beyond the hub clock's 1 ms step */
      n++;
    }
    bc_sort(ov, (size_t)n);
    fprintf(f, ",\n  \"%s\": {\"bound_ms\": %.0f, \"trials\": %d, "
               "\"detected\": %d, \"missed\": %d, \"wrong_reason\": %d, "
               "\"early\": %d, \"early_beyond_1ms\": %d, "
               "\"overshoot_ms\": {\"p50\": %.2f, \"min\": "
               "%.2f, \"max\": %.2f}, \"samples_ms\": [",
            pol_names[p], pol_bound_ms[p], g.ntrials / NPOL, n, missed, wrong,
            early, early1, bc_median_sorted(ov, (size_t)n), n ? ov[0] : 0,
            n ? ov[n - 1] : 0);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.2f", i ? ", " : "", ov[i]);
    fputs("]}", f);
  }
  fputs(",\n  \"left_on_server_port\": {", f);
  int first = 1;
  for (int s = 1; s < VIGIL_TCP_STATE__COUNT; s++) {
    if (s == VIGIL_TCP_LISTEN) continue;
    fprintf(f, "%s\"%s\": %u", first ? "" : ", ", vigil_tcp_state_name(s),
            counts[s]);
    first = 0;
  }
  fprintf(f, ", \"orphans\": %u}\n}}\n", orphans);
}

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *addr_a = NULL, *json = NULL;
  int per = 20;
  double stagger = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--ns-a")) ns_a = argv[i + 1];
    else if (!strcmp(argv[i], "--ns-b")) ns_b = argv[i + 1];
    else if (!strcmp(argv[i], "--addr-a")) addr_a = argv[i + 1];
    else if (!strcmp(argv[i], "--trials")) per = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--stagger-ms")) stagger = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
  }
  if (!ns_a || !ns_b || !addr_a || per < 1 || per > MAX_TRIALS) {
    fprintf(stderr, "usage: bench_detect --ns-a NAME --ns-b NAME --addr-a IP "
                    "--trials N (1..%d) [--stagger-ms MS] [--json FILE]\n",
            MAX_TRIALS);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  double load = bc_loadavg1();
  g.self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  g.ns_a = open_ns(ns_a);
  g.ns_b = open_ns(ns_b);
  if (g.self_ns < 0 || g.ns_a < 0 || g.ns_b < 0) {
    perror("bench_detect: open namespace");
    return 1;
  }
  g.addr_a.sin_family = AF_INET;
  if (inet_pton(AF_INET, addr_a, &g.addr_a.sin_addr) != 1) return 2;
  g.lfd = socket_in(g.ns_a);
  socklen_t al = sizeof g.addr_a;
  if (g.lfd < 0 || bind(g.lfd, (struct sockaddr *)&g.addr_a, al) < 0 ||
      listen(g.lfd, 128) < 0 ||
      getsockname(g.lfd, (struct sockaddr *)&g.addr_a, &al) < 0) {
    perror("bench_detect: listen in A");
    return 1;
  }
  g.port = ntohs(g.addr_a.sin_port);
  if (nft_start(ns_b) < 0) {
    perror("bench_detect: nft");
    return 1;
  }
  g.loop = EV_DEFAULT;
  if (vigil_hub_new(g.loop, NULL, &g.hub) != VIGIL_OK) return 1;
  setup_policies();
  ev_io_init(&g.lio, accept_cb, g.lfd, EV_READ);
  ev_io_start(g.loop, &g.lio);
  srand((unsigned)getpid());
  double t0 = bc_now_ms() + 300; /* nft set up first */
  for (int k = 0; k < per; k++)
    for (int p = 0; p < NPOL; p++) {
      trial *t = &g.trials[g.ntrials++];
      memset(t, 0, sizeof *t);
      t->pol = (enum pol)p;
      t->cfd = -1;
      t->sfd = -1;
      t->state = T_WAIT;
      ev_timer_init(&t->timer, trial_timer_cb, 0, 0);
      t->timer.data = t;
      trial_arm(t, t0 + (k * NPOL + p) * stagger);
    }
  fprintf(stderr, "detect: %d trials per policy, staggered by %.0f ms\n", per,
          stagger);
  ev_run(g.loop, 0);
  usleep(200000); /* let the last RSTs leave */
  FILE *f = json ? fopen(json, "w") : stdout;
  if (!f) return 1;
  emit(f, load);
  if (f != stdout) fclose(f);
  vigil_hub_free(g.hub);
  fclose(g.nft);
  kill(g.nft_pid, SIGTERM);
  waitpid(g.nft_pid, NULL, 0);
  return 0;
}
