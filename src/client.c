/*
 * vigil_client: a connection that reconnects; see include/vigil/client.h.
 *
 *            new()                    connect() ok / writable, SO_ERROR 0
 *              |                  +-----------------------------------+
 *              v     timer        |                                   v
 *   +------> WAITING -------> CONNECTING                          CONNECTED
 *   |          ^                  |                                   |
 *   |          |  wait until      | refused / unreachable /           | conn's
 *   |          |  next_at         | connect timeout / resolve error   | closed
 *   |          +------------------+                                   |
 *   +------------------ wait backoff_next() --------------------------+
 *
 *   vigil_client_close(), from any state -> CLOSED (no timer, no socket;
 *   a live conn closes gracefully and still reports on_disconnected).
 *
 * Invariants: at most one of {connecting fd, conn} exists; the timer runs
 * only in WAITING (until the attempt) and CONNECTING (connect timeout).
 * Once connected, the conn belongs to the hub; this file only sees it
 * through its callbacks, whose user_data is the client (NULL once the
 * client is freed, so a late on_close touches nothing).
 *
 * Re-entrancy: every entry (watcher callbacks, conn callbacks, public
 * calls) runs inside the hub's bracket and the client's own (depth). Host
 * code (client callbacks, the hub's event sink) may free the client or
 * the hub; a client free is then recorded and performed by the outermost
 * client leave, a hub free by the hub's. A freed hub detaches its
 * clients: their watchers stop and they wait, CLOSED, for
 * vigil_client_free().
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "adopt.h"
#include "backoff.h"
#include "close.h"
#include "conn.h"
#include "conn_io.h"
#include "error.h"
#include "event.h"
#include "hub.h"
#include "proto_frame.h"

enum { CL_WAITING, CL_CONNECTING, CL_CONNECTED, CL_CLOSED };

struct vigil_client {
  vigil__owned owned;      /* in hub->owned while attached */
  vigil_hub *hub;          /* NULL once the hub is gone */
  struct ev_loop *loop;
  vigil_client_options o;  /* host, identity, policy point at our copies */
  char *host;
  char *identity;
  vigil_policy policy;
  char target[280];        /* "host:port" for events */
  vigil__backoff backoff;
  uint64_t rng;
  int state;
  int fd;                  /* socket while CONNECTING, else -1 */
  ev_io io;
  ev_timer timer;
  vigil_conn *conn;
  uint64_t next_at;        /* earliest start of the next attempt */
  uint64_t connected_at;
  uint64_t attempts;
  int depth;               /* nesting of host callbacks */
  int free_requested;
};

void vigil_client_options_init(vigil_client_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  vigil_client_backoff_init(&o->backoff);
}

static uint32_t rand32(vigil_client *cl) {
  return cl->o.random ? cl->o.random(cl->o.random_data)
                      : vigil__rand32(&cl->rng);
}

static uint64_t now_of(vigil_client *cl) { return vigil__hub_clock(cl->hub); }

static const char *errno_name(int err, char *buf, size_t len) {
#if defined(__GLIBC__) &&                                                    \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name) return name;
#endif
  snprintf(buf, len, "errno %d", err);
  return buf;
}

/* Emits a client event with a formatted detail. */
__attribute__((format(printf, 4, 5))) static void
emit(vigil_client *cl, int sys_errno, uint32_t retry_ms, const char *fmt,
     ...) {
  vigil_hub *hub = cl->hub;
  if (!hub || !vigil__hub_wants_events(hub)) return;
  char detail[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_CLIENT, hub, cl->conn);
  if (!cl->conn) ev.peer = cl->target;
  if (cl->identity) ev.identity = cl->identity;
  ev.sys_errno = sys_errno;
  ev.retry_ms = retry_ms;
  ev.detail = detail;
  vigil__event_send(hub, &ev);
}

static void really_free(vigil_client *cl) {
  free(cl->host);
  free(cl->identity);
  free(cl);
}

static void client_release(vigil__owned *o) {
  really_free(vigil__container_of(o, vigil_client, owned));
}

/* Frees cl, through the hub's graveyard while it is attached: vigil code
 * of the hub may still be on the stack. */
static void dispose(vigil_client *cl) {
  if (!cl->hub) {
    really_free(cl);
    return;
  }
  vigil__hub_disown(cl->hub, &cl->owned);
  vigil__hub_release(cl->hub, &cl->owned);
}

/* Brackets client code that may run host code. leave() returns 0 if the
 * client was freed meanwhile: the caller must not touch cl again. */
static void enter(vigil_client *cl) { cl->depth++; }
static int leave(vigil_client *cl) {
  if (--cl->depth > 0 || !cl->free_requested) return 1;
  dispose(cl);
  return 0;
}

/* 1 once the client must stop working: closed, freed, or its hub gone or
 * going. */
static int stopped(const vigil_client *cl) {
  return cl->state == CL_CLOSED || cl->free_requested || !cl->hub ||
         cl->hub->free_requested;
}

static void stop_io(vigil_client *cl) {
  ev_io_stop(cl->loop, &cl->io);
  ev_timer_stop(cl->loop, &cl->timer);
  if (cl->fd >= 0) {
    close(cl->fd);
    cl->fd = -1;
  }
}

/* The hub is being destroyed: no watcher of ours may outlive it. */
static void client_hub_gone(vigil__owned *o) {
  vigil_client *cl = vigil__container_of(o, vigil_client, owned);
  stop_io(cl);
  cl->state = CL_CLOSED;
  if (cl->conn) cl->conn->user_data = NULL;
  cl->conn = NULL;
  cl->hub = NULL;
}

/* Waits delay_ms, then attempts (unless host code stopped the client). */
static void wait_then_attempt(vigil_client *cl, uint32_t delay_ms) {
  if (stopped(cl)) return;
  cl->state = CL_WAITING;
  ev_timer_stop(cl->loop, &cl->timer);
  ev_timer_set(&cl->timer, delay_ms / 1000.0, 0.0);
  ev_timer_start(cl->loop, &cl->timer);
}

/* The attempt failed: wait until the next one is due. `why` names it. */
static void attempt_failed(vigil_client *cl, int err, const char *why) {
  stop_io(cl);
  uint64_t now = now_of(cl);
  uint32_t wait = cl->next_at > now ? (uint32_t)(cl->next_at - now) : 0;
  char b[24];
  if (why)
    emit(cl, err, 0, "resolve_failed %s", why);
  else
    emit(cl, err, 0, "connect_failed %s", errno_name(err, b, sizeof b));
  if (stopped(cl)) return;
  emit(cl, 0, wait, "backoff %ums", (unsigned)wait);
  wait_then_attempt(cl, wait);
}

static void conn_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  vigil_client *cl = ud;
  (void)c;
  if (!cl || !cl->o.on_data || stopped(cl)) return;
  enter(cl);
  cl->o.on_data(cl, data, len, cl->o.user_data);
  leave(cl);
}

/* A HELLO from the server is not an identity claim on our hub. */
static void conn_hello(vigil_conn *c, const void *id, size_t len, void *ud) {
  (void)c;
  (void)id;
  (void)len;
  (void)ud;
}

static void conn_closed(vigil_conn *c, vigil_reason reason, void *ud) {
  vigil_client *cl = ud;
  (void)c;
  if (!cl) return;
  cl->conn = NULL;
  enter(cl);
  emit(cl, 0, 0, "disconnected %s", vigil_reason_name(reason));
  if (cl->o.on_disconnected && !cl->free_requested)
    cl->o.on_disconnected(cl, reason, cl->o.user_data);
  if (!stopped(cl)) {
    /* A connection that stayed up for a while starts the backoff over;
     * one dropped at once (a server accepting and closing) keeps backing
     * off. */
    if (now_of(cl) - cl->connected_at >= cl->backoff.cfg.initial_ms)
      vigil__backoff_reset(&cl->backoff);
    uint32_t delay = vigil__backoff_next(&cl->backoff, rand32(cl));
    emit(cl, 0, delay, "backoff %ums", (unsigned)delay);
    wait_then_attempt(cl, delay);
  }
  leave(cl);
}

static const vigil_conn_callbacks k_conn_cb = {
    .on_data = conn_data,
    .on_close = conn_closed,
    .on_hello = conn_hello,
};

/* The socket is connected: hand it to the hub and say HELLO. */
static void connected(vigil_client *cl) {
  ev_io_stop(cl->loop, &cl->io);
  ev_timer_stop(cl->loop, &cl->timer);
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.policy = &cl->policy;
  ao.callbacks = &k_conn_cb;
  ao.user_data = cl;
  vigil_conn *c;
  int rc = vigil__adopt_fd(cl->hub, cl->fd, &ao, &c);
  if (rc != VIGIL_OK) {
    /* The fd is still ours; e.g. reset before we got here (ENOTCONN). */
    attempt_failed(cl, rc == VIGIL_ENOTCONN ? ENOTCONN : EIO, NULL);
    return;
  }
  cl->fd = -1;
  /* The open event of the adoption ran host code: the conn handle is
   * valid until the loop runs, but the client may be done with. */
  if (stopped(cl)) {
    if (!cl->free_requested && cl->state != CL_CLOSED) cl->state = CL_CLOSED;
    c->user_data = NULL;
    vigil__conn_close_host(c);
    return;
  }
  cl->conn = c;
  cl->state = CL_CONNECTED;
  cl->connected_at = now_of(cl);
  if (cl->identity) {
    uint8_t hello[VIGIL_FRAME_SIZE(VIGIL_FRAME_IDENTITY_MAX)];
    int n = vigil_frame_encode(VIGIL_FRAME_HELLO, cl->identity,
                               strlen(cl->identity), hello, sizeof hello);
    if (n > 0) vigil__conn_send(c, hello, (size_t)n); /* a failure closes c */
  }
  emit(cl, 0, 0, "connected");
  if (cl->o.on_connected && !stopped(cl) && cl->conn)
    cl->o.on_connected(cl, cl->conn, cl->o.user_data);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  vigil_client *cl = vigil__container_of(w, vigil_client, io);
  vigil_hub *hub = cl->hub;
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  enter(cl);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0)
    connected(cl);
  else
    attempt_failed(cl, err, NULL);
  leave(cl);
  vigil__hub_leave(hub);
}

/* Starts one non-blocking connect. */
static void attempt(vigil_client *cl) {
  uint64_t now = now_of(cl);
  cl->attempts++;
  cl->state = CL_CONNECTING;
  uint32_t delay = vigil__backoff_next(&cl->backoff, rand32(cl));
  cl->next_at = now + delay;
  uint64_t deadline =
      cl->o.connect_timeout_ms
          ? now + cl->o.connect_timeout_ms
          : vigil__backoff_connect_deadline(&cl->o.backoff, now, cl->next_at);
  emit(cl, 0, 0, "connecting");
  if (stopped(cl)) return;

  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)cl->o.port);
  int gai = getaddrinfo(cl->host, port, &hints, &res);
  if (gai != 0 || !res) {
    attempt_failed(cl, 0, gai ? gai_strerror(gai) : "no address");
    return;
  }
  cl->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_TCP);
  int rc = cl->fd < 0 ? -1 : connect(cl->fd, res->ai_addr, res->ai_addrlen);
  int err = errno;
  freeaddrinfo(res);
  if (rc == 0) {
    connected(cl); /* loopback may connect at once */
    return;
  }
  if (cl->fd < 0 || err != EINPROGRESS) {
    attempt_failed(cl, err, NULL);
    return;
  }
  ev_io_set(&cl->io, cl->fd, EV_WRITE);
  ev_io_start(cl->loop, &cl->io);
  ev_timer_set(&cl->timer, (double)(deadline - now) / 1000.0, 0.0);
  ev_timer_start(cl->loop, &cl->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_client *cl = vigil__container_of(w, vigil_client, timer);
  vigil_hub *hub = cl->hub;
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  enter(cl);
  if (cl->state == CL_WAITING)
    attempt(cl);
  else if (cl->state == CL_CONNECTING)
    attempt_failed(cl, ETIMEDOUT, NULL);
  leave(cl);
  vigil__hub_leave(hub);
}

/* Random seed for the jitter PRNG when the host gave none. Distinct
 * clients must differ, or a fleet would jitter in lockstep. */
static uint64_t random_seed(const void *salt) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s && s)
    return s;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
         (uint64_t)(uintptr_t)salt ^ ((uint64_t)getpid() << 16);
}

/* Checks o; the policy checked is o->policy, or fallback when it is NULL
 * (the hub's, already valid), with frame_codec forced on. */
static int check_options(const vigil_client_options *o,
                         const vigil_policy *fallback, char *msg,
                         size_t msglen) {
  char why[200];
  if (!o) return vigil__textf(msg, msglen, VIGIL_EINVAL, "options: NULL");
  if (!o->host || !o->host[0]) return vigil__textf(msg, msglen, VIGIL_EINVAL,
      "host: required");
  if (o->port == 0) return vigil__textf(msg, msglen, VIGIL_EINVAL,
      "port: 0 is not in 1..65535");
  if (!vigil__backoff_check(&o->backoff, why, sizeof why))
    return vigil__textf(msg, msglen, VIGIL_EINVAL, "%s", why);
  if (o->connect_timeout_ms > VIGIL_MAX_DURATION_MS)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "connect_timeout_ms: %u is not in 0..%u",
        o->connect_timeout_ms, VIGIL_MAX_DURATION_MS);
  if (o->identity) {
    size_t n = strlen(o->identity);
    if (n < 1 || n > VIGIL_FRAME_IDENTITY_MAX)
      return vigil__textf(msg, msglen, VIGIL_EINVAL,
          "identity: %zu bytes is not in 1..%u", n,
          VIGIL_FRAME_IDENTITY_MAX);
  }
  const vigil_policy *p = o->policy ? o->policy : fallback;
  if (p) {
    vigil_policy forced = *p;
    forced.frame_codec = 1;
    if (vigil_policy_validate(&forced, why, sizeof why) != VIGIL_OK)
      return vigil__textf(msg, msglen, VIGIL_EINVAL, "policy: %s", why);
  }
  return VIGIL_OK;
}

int vigil_client_options_validate(const vigil_client_options *o, char *msg,
                                  size_t msglen) {
  return check_options(o, NULL, msg, msglen);
}

/* Copies and checks the options into cl; VIGIL_OK or VIGIL_EINVAL. */
static int setup(vigil_client *cl, const vigil_client_options *o) {
  int rc = check_options(o, cl->hub->policy, NULL, 0);
  if (rc != VIGIL_OK) return rc;
  cl->policy = o->policy ? *o->policy : *cl->hub->policy;
  cl->policy.frame_codec = 1;
  cl->o = *o;
  cl->o.policy = &cl->policy;
  cl->host = strdup(o->host);
  cl->identity = o->identity ? strdup(o->identity) : NULL;
  if (!cl->host || (o->identity && !cl->identity)) return VIGIL_ENOMEM;
  cl->o.host = cl->host;
  cl->o.identity = cl->identity;
  snprintf(cl->target, sizeof cl->target,
           strchr(cl->host, ':') ? "[%.255s]:%u" : "%.255s:%u", cl->host,
           (unsigned)o->port);
  return VIGIL_OK;
}

int vigil_client_new(vigil_hub *hub, const vigil_client_options *o,
                     vigil_client **out) {
  if (out) *out = NULL;
  if (!hub || !o || !out || hub->free_requested) return VIGIL_EINVAL;
  vigil_client *cl = calloc(1, sizeof *cl);
  if (!cl) return VIGIL_ENOMEM;
  cl->hub = hub;
  cl->loop = hub->loop;
  cl->fd = -1;
  int rc = setup(cl, o);
  if (rc != VIGIL_OK) {
    really_free(cl);
    return rc;
  }
  cl->rng = o->seed ? o->seed : random_seed(cl);
  vigil__backoff_init(&cl->backoff, &cl->o.backoff);
  ev_io_init(&cl->io, io_cb, -1, EV_WRITE);
  ev_timer_init(&cl->timer, timer_cb, 0.0, 0.0);
  cl->owned.kind = VIGIL__OWNED_CLIENT;
  cl->owned.hub_gone = client_hub_gone;
  cl->owned.release = client_release;
  vigil__hub_own(hub, &cl->owned);
  wait_then_attempt(cl, 0); /* first attempt from the loop, at once */
  *out = cl;
  return VIGIL_OK;
}

int vigil_client_send_data(vigil_client *cl, const void *data, size_t len) {
  if (!cl) return VIGIL_EINVAL;
  if (!cl->conn || stopped(cl)) return VIGIL_ENOTCONN;
  vigil_hub *hub = cl->hub;
  vigil__hub_enter(hub);
  int rc = vigil__frame_send_data(cl->conn, data, len);
  vigil__hub_leave(hub);
  return rc;
}

/* Closing proper; the caller holds both brackets. */
static void close_client(vigil_client *cl) {
  cl->state = CL_CLOSED;
  stop_io(cl);
  emit(cl, 0, 0, "closed");
  /* The event may have freed the hub: its conns then close with it. */
  if (cl->conn && cl->hub && !cl->hub->free_requested)
    vigil__conn_close_host(cl->conn); /* on_disconnected follows */
}

int vigil_client_close(vigil_client *cl) {
  if (!cl) return VIGIL_EINVAL;
  if (cl->state == CL_CLOSED) return VIGIL_OK;
  vigil_hub *hub = cl->hub; /* a closed client is the only detached one */
  vigil__hub_enter(hub);
  enter(cl);
  close_client(cl);
  leave(cl);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

void vigil_client_free(vigil_client *cl) {
  if (!cl || cl->free_requested) return;
  vigil_hub *hub = cl->hub;
  if (hub) vigil__hub_enter(hub);
  enter(cl);
  if (cl->state != CL_CLOSED) close_client(cl);
  if (cl->conn) {
    /* A connection still closing finishes on the hub on its own. */
    cl->conn->user_data = NULL;
    cl->conn = NULL;
  }
  cl->free_requested = 1;
  leave(cl); /* frees cl unless client code is on the stack */
  if (hub) vigil__hub_leave(hub);
}

vigil_conn *vigil_client_conn(vigil_client *cl) {
  return cl ? cl->conn : NULL;
}

uint64_t vigil_client_attempts(vigil_client *cl) {
  return cl ? cl->attempts : 0;
}
