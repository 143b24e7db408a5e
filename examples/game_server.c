/*
 * game_server: rooms of players on the vigil frame codec (vigil/frame.h).
 *
 *   HELLO "name@room"  join `room` as `name` (each 1..31 of [A-Za-z0-9_-])
 *   DATA  <text>       said to the room: the others get DATA "name: <text>";
 *                      the server also sends "* name joined|is away|is back"
 *   GOODBYE            leave for good
 * Heartbeats need no code here: with policy.frame_codec vigil pings every
 * --ping-interval and answers the players' PINGs. A player pinging faster
 * than --min-ping-interval (default 10 ms) more than --ping-strikes times
 * in a row (default 2) gets GOODBYE too_many_pings and is closed with
 * ping_flood (vigil's ping-flood guard); 0 turns the guard off.
 *
 * How the host reacts to vigil's verdicts:
 *   suspect  tcp_info evidence that the path to a player is gone, before
 *            dead_after: mark the player lagging (stop waiting for its
 *            moves) and log it. Its next DATA clears the mark.
 *   dead     heartbeat/keepalive/user timeout or a broken connection: the
 *            seat is vacated but reserved and the session kept for
 *            --rejoin-window; the same name@room connecting again within
 *            the window gets its seat back. Leaving cleanly (GOODBYE, FIN)
 *            frees the seat at once.
 * A player reconnecting while vigil still holds its old (half-open) conn
 * takes over: the identity claim closes the old one.
 *
 *   game_server --listen 127.0.0.1:7000 --ping-interval 2000 \
 *               --dead-after 6000 --rejoin-window 30000 --log json
 * SIGINT/SIGTERM: graceful shutdown (players get GOODBYE "shutdown").
 * --metrics HOST:PORT serves Prometheus metrics at /metrics
 * (examples/metrics/metrics_http.h).
 *
 * --workers N (N > 1) runs a vigil group (vigil/group.h): N threads, each
 * with its own loop, hub and SO_REUSEPORT listener on the port, and its
 * own world of rooms and sessions. Identities are the group's: a player
 * reconnecting on any worker takes over its ghost, wherever the kernel
 * put it. Worlds do not span workers yet: players meet only the players
 * the kernel put on the same worker, and a rejoin finds its seat only
 * when it lands on the worker that kept the session. --metrics serves
 * the group's metrics from the main thread.
 */
#include <ev.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linelog.h"
#include "cluster_flags.h"
#include "metrics_http.h"
#include "vigil.h"

#define SEATS_PER_ROOM 8
#define NAME_MAX_LEN 31

typedef struct room room;

typedef struct session {
  char name[NAME_MAX_LEN + 1];
  room *room;
  int seat;             /* 0..SEATS_PER_ROOM-1, kept across a rejoin */
  vigil_conn *conn;     /* NULL while away */
  int lagging;
  uint64_t away_since;  /* hub clock, valid while away */
  struct session *next, *prev; /* the world's sessions (the sweep) */
} session;

/* A room and its seats, found by name in the world's table: joining,
 * notices and chat cost a hash lookup and at most 8 seats, however many
 * players are connected (a linear scan of every session per HELLO was a
 * fifth of this server's CPU in a reconnect storm). */
struct room {
  char name[NAME_MAX_LEN + 1];
  session *seats[SEATS_PER_ROOM]; /* present or away; NULL = free */
  struct room *next;              /* hash chain */
};

/* Settings: set before the hub or the workers start, read-only after. */
static struct {
  uint32_t rejoin_window_ms;
  vigil_log_format log;
  unsigned workers;
  char host[64];
  long port;
  uint16_t bound_port;  /* worker 0's port, joined by the others */
} g;

/* One world per hub: its players' sessions, and the sweep of the away
 * ones. With --workers, each worker thread has its own, and W is the
 * world of the thread running. */
typedef struct world {
  vigil_hub *hub;
  session *sessions;
  room **rooms;         /* hash table: nbuckets chains (a power of 2) */
  size_t nbuckets, nrooms;
  ev_timer sweep;
  linelog_watcher log;  /* writes the log lines once per loop iteration */
  int stopping;         /* the hub's shutdown began */
} world;

static __thread world *W;

/* Appends the strings of a NULL-terminated list to buf (cap bytes, NUL
 * kept) at *n. The lines and notices of a connection's life are built
 * this way rather than with printf, which cost more than vigil's own
 * handling of the connection. */
static void cat(char *buf, size_t cap, size_t *n, ...) {
  va_list ap;
  va_start(ap, n);
  for (const char *p; (p = va_arg(ap, const char *));) {
    size_t len = strlen(p);
    if (len > cap - 1 - *n) len = cap - 1 - *n;
    memcpy(buf + *n, p, len);
    *n += len;
  }
  buf[*n] = '\0';
  va_end(ap);
}

/* One log line for an application event, in the same format as vigil's
 * (stdout, through linelog: one write per loop iteration). Names and
 * details are [A-Za-z0-9_=-]: nothing to escape. */
static void applog(const char *event, const session *s, const char *extra) {
  char line[256];
  size_t n = 0;
  if (g.log == VIGIL_LOG_JSON) {
    cat(line, sizeof line, &n, "{\"event\":\"", event, "\",\"player\":\"",
        s->name, "\",\"room\":\"", s->room->name, "\"", (char *)NULL);
    if (extra)
      cat(line, sizeof line, &n, ",\"detail\":\"", extra, "\"", (char *)NULL);
    cat(line, sizeof line, &n, "}", (char *)NULL);
  } else {
    cat(line, sizeof line, &n, "event=", event, " player=", s->name,
        " room=", s->room->name, (char *)NULL);
    if (extra) cat(line, sizeof line, &n, " detail=", extra, (char *)NULL);
  }
  linelog_write(line, n);
}

/* vigil events are logged (but routine ping_due); suspect also marks the
 * player lagging. */
static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  (void)hub;
  (void)ud;
  if (ev->type == VIGIL_EV_SHUTDOWN) W->stopping = 1;
  if (ev->type == VIGIL_EV_PING_DUE) return;
  char line[1024];
  int n = vigil_event_format(ev, g.log, line, sizeof line);
  if (n >= 0) linelog_write(line, (size_t)n < sizeof line ? (size_t)n
                                                          : sizeof line - 1);
  session *s = ev->conn ? vigil_conn_user_data(ev->conn) : NULL;
  if (ev->type == VIGIL_EV_SUSPECT && s && !s->lagging) {
    s->lagging = 1;
    applog("lagging", s, NULL);
  }
}

/* Sends text to every present player of r except `except`. */
static void to_room(const room *r, const session *except, const char *text) {
  for (int i = 0; i < SEATS_PER_ROOM; i++) {
    const session *s = r->seats[i];
    if (s && s->conn && s != except)
      vigil_send_data(s->conn, text, strlen(text));
  }
}

static void notice(const session *s, const char *what) {
  char msg[96];
  size_t n = 0;
  cat(msg, sizeof msg, &n, "* ", s->name, " ", what, (char *)NULL);
  to_room(s->room, s, msg);
}

/* Parses "name@room" with both parts 1..31 of [A-Za-z0-9_-]. */
static int parse_hello(const char *id, size_t len, char *name,
                       char *room_name) {
  const char *at = memchr(id, '@', len);
  if (!at) return 0;
  size_t nl = (size_t)(at - id), rl = len - nl - 1;
  if (nl < 1 || nl > NAME_MAX_LEN || rl < 1 || rl > NAME_MAX_LEN) return 0;
  for (size_t i = 0; i < len; i++)
    if (id + i != at && (!id[i] || !strchr("abcdefghijklmnopqrstuvwxyz"
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789_-", id[i])))
      return 0;
  memcpy(name, id, nl);
  name[nl] = '\0';
  memcpy(room_name, at + 1, rl);
  room_name[rl] = '\0';
  return 1;
}

/* FNV-1a: room names are short and chosen by clients, and a chain only
 * ever holds the few rooms that share a bucket. */
static room **bucket_of(const char *name) {
  uint32_t h = 2166136261u;
  for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  return &W->rooms[h & (W->nbuckets - 1)];
}

static room *find_room(const char *name) {
  if (!W->rooms) return NULL;
  for (room *r = *bucket_of(name); r; r = r->next)
    if (strcmp(r->name, name) == 0) return r;
  return NULL;
}

/* The room called name, made if needed; NULL on ENOMEM. The table doubles
 * when it holds as many rooms as buckets. */
static room *get_room(const char *name) {
  room *r = find_room(name);
  if (r) return r;
  if (W->nrooms >= W->nbuckets) {
    size_t n = W->nbuckets ? W->nbuckets * 2 : 64;
    room **old = W->rooms, **t = calloc(n, sizeof *t);
    if (!t) return NULL;
    size_t oldn = W->nbuckets;
    W->rooms = t;
    W->nbuckets = n;
    for (size_t i = 0; i < oldn; i++)
      for (room *x = old[i], *next; x; x = next) {
        next = x->next;
        room **b = bucket_of(x->name);
        x->next = *b;
        *b = x;
      }
    free(old);
  }
  if (!(r = calloc(1, sizeof *r))) return NULL;
  memcpy(r->name, name, strlen(name) + 1); /* 1..NAME_MAX_LEN */
  room **b = bucket_of(name);
  r->next = *b;
  *b = r;
  W->nrooms++;
  return r;
}

static session *find(const char *name, const char *room_name) {
  room *r = find_room(room_name);
  for (int i = 0; r && i < SEATS_PER_ROOM; i++)
    if (r->seats[i] && strcmp(r->seats[i]->name, name) == 0)
      return r->seats[i];
  return NULL;
}

/* Lowest seat of r not held by a session (present or away), or -1. */
static int free_seat(const room *r) {
  for (int i = 0; i < SEATS_PER_ROOM; i++)
    if (!r->seats[i]) return i;
  return -1;
}

/* Frees r once its last seat is free. */
static void drop_room_if_empty(room *r) {
  for (int i = 0; i < SEATS_PER_ROOM; i++)
    if (r->seats[i]) return;
  for (room **p = bucket_of(r->name); *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  W->nrooms--;
  free(r);
}

static void drop(session *gone) {
  if (gone->prev)
    gone->prev->next = gone->next;
  else
    W->sessions = gone->next;
  if (gone->next) gone->next->prev = gone->prev;
  room *r = gone->room;
  r->seats[gone->seat] = NULL;
  drop_room_if_empty(r);
  free(gone);
}

/* HELLO: join, rejoin (same name@room within the window) or take over. */
static void on_hello(vigil_conn *c, const void *id, size_t len, void *ud) {
  (void)ud;
  char name[NAME_MAX_LEN + 1], room_name[NAME_MAX_LEN + 1];
  if (!parse_hello(id, len, name, room_name)) {
    vigil_conn_goodbye(c, VIGIL_GOODBYE_APPLICATION, "expected name@room");
    return;
  }
  /* The identity makes vigil close a ghost conn of the same player
   * (takeover, newest wins); its on_close sees it no longer owns s. */
  if (vigil_conn_identify(c, id, len) != VIGIL_OK) return;
  session *s = find(name, room_name);
  const char *what = "joined";
  if (s) {
    what = s->conn ? "reconnected" : "is back";
    if (s->conn) vigil_conn_set_user_data(s->conn, NULL);
  } else {
    room *r = get_room(room_name);
    int seat = r ? free_seat(r) : -1;
    if (seat < 0 || !(s = calloc(1, sizeof *s))) {
      if (r) drop_room_if_empty(r);
      vigil_conn_goodbye(c, VIGIL_GOODBYE_OVERLOADED, "room full");
      return;
    }
    memcpy(s->name, name, sizeof s->name);
    s->room = r;
    s->seat = seat;
    r->seats[seat] = s;
    s->next = W->sessions;
    if (W->sessions) W->sessions->prev = s;
    W->sessions = s;
  }
  s->conn = c;
  s->lagging = 0;
  vigil_conn_set_user_data(c, s);
  vigil_conn_ready(c); /* ends handshake_timeout */
  _Static_assert(SEATS_PER_ROOM <= 10, "a seat is one digit");
  char seat[] = "seat=0";
  seat[5] = (char)('0' + s->seat);
  applog(strcmp(what, "joined") == 0 ? "joined" : "rejoined", s, seat);
  notice(s, what);
}

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  session *s = ud;
  (void)c;
  if (!s) return; /* DATA before HELLO: ignored */
  if (s->lagging) {
    s->lagging = 0;
    applog("recovered", s, NULL);
  }
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %.*s", s->name,
           (int)(len < 400 ? len : 400), (const char *)data);
  to_room(s->room, s, msg);
}

/* A player's connection ended: keep the session when it was lost, free it
 * when the player left on purpose. */
static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  session *s = ud;
  if (!s || s->conn != c) return; /* never joined, or taken over */
  s->conn = NULL;
  int lost = reason == VIGIL_REASON_HEARTBEAT_TIMEOUT ||
             reason == VIGIL_REASON_KEEPALIVE_TIMEOUT ||
             reason == VIGIL_REASON_USER_TIMEOUT ||
             reason == VIGIL_REASON_PEER_RESET ||
             reason == VIGIL_REASON_IO_ERROR;
  if (lost && !W->stopping && g.rejoin_window_ms > 0) {
    s->away_since = vigil_hub_now(W->hub);
    applog("away", s, vigil_reason_name(reason));
    notice(s, "is away");
    return;
  }
  applog("left", s, vigil_reason_name(reason));
  notice(s, "left");
  drop(s);
}

/* Once a second: sessions away longer than the window end. */
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  uint64_t now = vigil_hub_now(W->hub);
  for (session *s = W->sessions, *next; s; s = next) {
    next = s->next;
    if (!s->conn && now - s->away_since >= g.rejoin_window_ms) {
      applog("expired", s, NULL);
      drop(s);
    }
  }
}

static void shutdown_done(vigil_hub *hub, void *ud) {
  (void)hub;
  ev_break((struct ev_loop *)ud, EVBREAK_ALL);
}

/* On the main thread; w->data is the hub, or the group with --workers. */
static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  static int signalled;
  (void)revents;
  if (signalled++) exit(1); /* a second signal: stop now */
  if (g.workers > 1) {
    vigil_group_stop(w->data, 5000);
    ev_break(loop, EVBREAK_ALL); /* main joins the workers */
  } else {
    vigil_hub_shutdown(w->data, 5000, shutdown_done, loop);
  }
}

/* A world on hub: its listener (SO_REUSEPORT with --workers: the first
 * binds the port asked for, the others join the port it got) and its
 * sweep timer. Returns the vigil_listen error. */
static int world_open(world *wd, vigil_hub *hub, int first) {
  static const vigil_conn_callbacks cb = {
      .on_data = on_data, .on_close = on_close, .on_hello = on_hello};
  wd->hub = hub;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = g.host;
  lo.port = first ? (uint16_t)g.port : g.bound_port;
  lo.reuseport = g.workers > 1;
  lo.adopt.callbacks = &cb;
  vigil_listener *l;
  int rc = vigil_listen(hub, &lo, &l);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "game_server: listen on %s:%ld: %s\n", g.host, g.port,
            vigil_strerror(rc));
    return rc;
  }
  if (first) {
    g.bound_port = vigil_listener_port(l);
    fprintf(stderr, "game_server: listening on %s:%u\n", g.host,
            g.bound_port);
  }
  ev_timer_init(&wd->sweep, sweep_cb, 1.0, 1.0);
  ev_timer_start(vigil_hub_loop(hub), &wd->sweep);
  linelog_watch(&wd->log, vigil_hub_loop(hub));
  return VIGIL_OK;
}

/* wd is W, the world of the thread running. */
static void world_close(world *wd, struct ev_loop *loop) {
  ev_timer_stop(loop, &wd->sweep);
  linelog_unwatch(&wd->log);
  while (wd->sessions) drop(wd->sessions); /* the rooms go with them */
  free(wd->rooms);
}

static int worker_setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  (void)ud;
  W = calloc(1, sizeof *W);
  if (!W) return VIGIL_ENOMEM;
  int rc = world_open(W, hub, vigil_worker_index(w) == 0);
  if (rc != VIGIL_OK) {
    free(W);
    W = NULL;
  }
  return rc;
}

/* After the worker's hub is gone: every on_close has run. */
static void worker_teardown(vigil_worker *w, void *ud) {
  (void)ud;
  world_close(W, vigil_worker_loop(w));
  free(W);
  W = NULL;
}

/* Runs the workers until a signal, with the group's /metrics on the main
 * loop unless mcfg->host is empty; returns the exit code. */
static int run_group(struct ev_loop *loop, const vigil_hub_options *ho,
                     const metrics_http_config *mcfg, ev_signal *sig,
                     int nsig) {
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.workers = g.workers;
  go.hub = ho;
  go.setup = worker_setup;
  go.teardown = worker_teardown;
  vigil_group *grp;
  int rc = vigil_group_new(&go, &grp);
  if (rc == VIGIL_OK && (rc = vigil_group_start(grp)) != VIGIL_OK)
    vigil_group_free(grp);
  if (rc != VIGIL_OK) return 1;
  metrics_http *metrics = NULL;
  char why[320];
  if (mcfg->host[0] && metrics_http_start_group(loop, grp, mcfg, &metrics,
                                                why, sizeof why) != VIGIL_OK) {
    fprintf(stderr, "game_server: %s\n", why);
    vigil_group_free(grp);
    return 1;
  }
  if (metrics)
    fprintf(stderr, "game_server: metrics on http://%s/metrics\n",
            metrics_http_address(metrics));
  for (int i = 0; i < nsig; i++) {
    sig[i].data = grp;
    ev_signal_start(loop, &sig[i]);
  }
  ev_run(loop, 0);
  metrics_http_free(metrics);
  vigil_group_join(grp);
  vigil_group_free(grp);
  return 0;
}

static void usage(const char *why) {
  fprintf(stderr, "game_server: %s\nusage: game_server [--listen HOST:PORT] "
          "[--ping-interval MS] [--dead-after MS] [--rejoin-window MS] "
          "[--min-ping-interval MS] [--ping-strikes N] "
          "[--log json|logfmt] [--workers N] "
          "[--metrics HOST:PORT [--metrics-timeout MS]] "
          "[--cluster URL [--node NAME] [--cluster-prefix P]]\n"
          "--workers N: N threads (1..256) on one port (SO_REUSEPORT), each "
          "with its own rooms: players meet only players on the same "
          "worker; an identity takes over its session on any worker\n"
          CLUSTER_FLAGS_USAGE,
          why);
  exit(2);
}

static uint32_t parse_ms(const char *v) {
  char *end;
  unsigned long n = v ? strtoul(v, &end, 10) : 0;
  if (!v || !*v || *end || *v == '-' || n > VIGIL_MAX_DURATION_MS)
    usage("durations are milliseconds, 0..86400000");
  return (uint32_t)n;
}

int main(int argc, char **argv) {
  linelog_open(1);
  snprintf(g.host, sizeof g.host, "127.0.0.1");
  g.port = 7000;
  g.workers = 1;
  vigil_policy p;
  vigil_policy_init(&p);
  p.frame_codec = 1;
  p.ping_interval_ms = 2000;
  p.dead_after_ms = 6000;
  p.handshake_timeout_ms = 10000; /* HELLO within 10 s */
  g.rejoin_window_ms = 30000;
  metrics_http_config mcfg;
  metrics_http_config_init(&mcfg);
  static cluster_flags cluster;
  cluster_flags_init(&cluster);
  char msg[400];
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int mf = metrics_http_flag(&mcfg, argv[i], v, msg, sizeof msg);
    if (mf == 0) mf = cluster_flags_parse(&cluster, argv[i], v, msg, sizeof msg);
    if (mf < 0) usage(msg);
    if (mf > 0) {
      i++;
      continue;
    }
    if (strcmp(argv[i], "--listen") == 0 && v) {
      const char *colon = strrchr(v, ':');
      char *end;
      g.port = colon ? strtol(colon + 1, &end, 10) : -1;
      if (!colon || colon == v || *end || g.port < 0 || g.port > 65535 ||
          (size_t)(colon - v) >= sizeof g.host)
        usage("--listen wants HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000");
      int br = v[0] == '[' && colon[-1] == ']';
      snprintf(g.host, sizeof g.host, "%.*s", (int)(colon - v) - 2 * br,
               v + br);
    } else if (strcmp(argv[i], "--ping-interval") == 0) {
      p.ping_interval_ms = parse_ms(v);
    } else if (strcmp(argv[i], "--dead-after") == 0) {
      p.dead_after_ms = parse_ms(v);
    } else if (strcmp(argv[i], "--rejoin-window") == 0) {
      g.rejoin_window_ms = parse_ms(v);
    } else if (strcmp(argv[i], "--min-ping-interval") == 0) {
      p.ping_min_interval_ms = parse_ms(v);
    } else if (strcmp(argv[i], "--ping-strikes") == 0) {
      char *end;
      unsigned long n = v ? strtoul(v, &end, 10) : 0;
      if (!v || !*v || *end || *v == '-' || n > 1000)
        usage("--ping-strikes takes 0..1000");
      p.ping_strikes = (uint32_t)n;
    } else if (strcmp(argv[i], "--workers") == 0) {
      char *end;
      long n = v ? strtol(v, &end, 10) : 0;
      if (!v || !*v || *end || n < 1 || n > (long)VIGIL_GROUP_MAX_WORKERS)
        usage("--workers takes 1..256");
      g.workers = (unsigned)n;
    } else if (strcmp(argv[i], "--log") == 0 && v &&
               (!strcmp(v, "json") || !strcmp(v, "logfmt"))) {
      g.log = strcmp(v, "json") == 0 ? VIGIL_LOG_JSON : VIGIL_LOG_LOGFMT;
    } else {
      usage("unknown flag or missing value");
    }
    i++;
  }
  if (vigil_policy_validate(&p, msg, sizeof msg) != VIGIL_OK) usage(msg);
  int bad;
  const vigil_cluster_options *co =
      cluster_flags_options(&cluster, &bad, msg, sizeof msg);
  if (bad) usage(msg);

  struct ev_loop *loop = EV_DEFAULT;
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &p;
  ho.on_event = on_event; /* with --workers, on every worker's thread */
  ho.cluster = co;        /* --cluster: every worker gets its own link */
  ev_signal sig[2];
  ev_signal_init(&sig[0], signal_cb, SIGINT);
  ev_signal_init(&sig[1], signal_cb, SIGTERM);
  if (g.workers > 1) return run_group(loop, &ho, &mcfg, sig, 2);

  static world main_world;
  W = &main_world;
  vigil_hub *hub;
  if (vigil_hub_new(loop, &ho, &hub) != VIGIL_OK) usage("cannot create hub");
  if (world_open(W, hub, 1) != VIGIL_OK) return 1;
  metrics_http *metrics = NULL;
  if (mcfg.host[0]) {
    char why[320];
    if (metrics_http_start(hub, &mcfg, &metrics, why, sizeof why) !=
        VIGIL_OK) {
      fprintf(stderr, "game_server: %s\n", why);
      return 1;
    }
    fprintf(stderr, "game_server: metrics on http://%s/metrics\n",
            metrics_http_address(metrics));
  }
  for (int i = 0; i < 2; i++) {
    sig[i].data = hub;
    ev_signal_start(loop, &sig[i]);
  }
  ev_run(loop, 0);
  vigil_hub_free(hub);
  metrics_http_free(metrics); /* after the hub: its conns were closed */
  world_close(W, loop);
  return 0;
}
