/*
 * Optional listener helper: binds, listens, accepts and adopts.
 *
 * EMFILE/ENFILE: the pending connection stays in the backlog, so a
 * level-triggered readiness watcher would report the listener readable
 * forever and the loop would spin at 100 % CPU. Instead the watcher is
 * stopped, accepting resumes after a backoff that doubles up to a cap, and
 * accept_paused / accept_resumed events tell the operator why clients wait.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adopt.h"
#include "conn.h"
#include "error.h"
#include "event.h"
#include "hub.h"
#include "listener.h"
#include "policy_share.h"
#include "sockopt.h"
#include "transport.h"

/* Connections accepted per readiness event, so one busy listener cannot
 * starve established connections. */
#define ACCEPTS_PER_EVENT 64

/*
 * Socket options. Linux copies SO_KEEPALIVE, TCP_KEEPIDLE/KEEPINTVL/
 * KEEPCNT, TCP_USER_TIMEOUT, TCP_NODELAY and TCP_LINGER2 from a listening
 * socket to every socket it accepts (the child is a clone of the
 * listener: sk_clone_lock, tcp_create_openreq_child). So the policy's
 * options are set once on the listening socket, before listen() so that
 * no connection is ever cloned without them, and an accepted conn writes
 * only those its policy wants otherwise (none, unless the policy changed):
 * 7 setsockopt calls fewer per connection. The first accepted socket is
 * read back once; a kernel that did not copy them all (an emulated
 * network stack) turns the shortcut off for the listener's life.
 */
enum {
  CARRIES_NOTHING = 0,  /* every accepted conn writes all its options */
  CARRIES_UNCHECKED = 1,/* set on the listener, not yet seen inherited */
  CARRIES_CHECKED = 2,  /* the first accepted socket carried them */
};

struct vigil_listener {
  vigil__owned owned;  /* in hub->owned while open */
  ev_io io;
  ev_timer retry;
  vigil_hub *hub;
  int closed;          /* vigil_listener_close() was called */
  vigil_listen_options opts;
  vigil_adopt_options adopt;
  const vigil_policy *policy; /* shared by the conns it adopts; NULL = the
                                 hub's policy at each accept */
  vigil_sockopts carried;     /* options set on the listening socket,
                                 which accepted sockets inherit */
  int carries;                /* CARRIES_* */
  vigil_conn_callbacks callbacks;
  uint32_t backoff_ms;
  uint16_t port;
  int paused;
};

void vigil_listen_options_init(vigil_listen_options *o) {
  memset(o, 0, sizeof *o);
  o->backlog = 511;
  o->emfile_backoff_min_ms = 50;
  o->emfile_backoff_max_ms = 2000;
}

static void emit(vigil_listener *l, vigil_event_type type, int err) {
  vigil_hub *hub = l->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, NULL);
  ev.sys_errno = err;
  if (type == VIGIL_EV_ACCEPT_PAUSED) ev.retry_ms = l->backoff_ms;
  vigil__event_send(hub, &ev);
}

/* The state change (watcher stopped, retry armed) is complete before the
 * event runs host code, which may close the listener and with it the
 * timer. */
static void pause_accepting(vigil_listener *l, int err) {
  vigil_hub *hub = l->hub;
  ev_io_stop(hub->loop, &l->io);
  if (!l->paused)
    l->backoff_ms = l->opts.emfile_backoff_min_ms;
  else if (l->backoff_ms < l->opts.emfile_backoff_max_ms)
    l->backoff_ms = l->backoff_ms * 2 > l->opts.emfile_backoff_max_ms
                        ? l->opts.emfile_backoff_max_ms
                        : l->backoff_ms * 2;
  l->paused = 1;
  hub->stats.accept_paused++;
  ev_timer_set(&l->retry, l->backoff_ms / 1000.0, 0.0);
  ev_timer_start(hub->loop, &l->retry);
  emit(l, VIGIL_EV_ACCEPT_PAUSED, err);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_listener *l = vigil__container_of(w, vigil_listener, retry);
  (void)revents;
  /* Try again; accept_cb pauses once more if descriptors are still short. */
  ev_io_start(loop, &l->io);
}

/* 1 when accepting must stop: host code closed the listener or freed the
 * hub (l itself stays valid until the hub unwinds). */
static int accept_stopped(const vigil_listener *l) {
  return l->closed || l->hub->free_requested;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  vigil_listener *l = vigil__container_of(w, vigil_listener, io);
  vigil_hub *hub = l->hub;
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  for (int i = 0; i < ACCEPTS_PER_EVENT && !accept_stopped(l); i++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd = accept4(l->io.fd, (struct sockaddr *)&peer, &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        pause_accepting(l, err);
      break;
    }
    if (l->paused) {
      l->paused = 0;
      emit(l, VIGIL_EV_ACCEPT_RESUMED, 0);
      if (accept_stopped(l)) {
        close(fd); /* accepted for a listener that no longer exists */
        break;
      }
    }
    vigil_conn *c;
    /* accept4 already made it non-blocking and gave its peer: skip the
     * checks vigil_adopt makes on a host's fd. */
    const vigil_policy *policy = l->policy ? l->policy : hub->policy;
    if (l->carries == CARRIES_UNCHECKED)
      l->carries = vigil__sock_carries(fd, &l->carried) ? CARRIES_CHECKED
                                                        : CARRIES_NOTHING;
    const vigil_sockopts *have =
        l->carries == CARRIES_CHECKED ? &l->carried : NULL;
    if (vigil__adopt(hub, fd, (struct sockaddr *)&peer, policy, have,
                     &l->adopt, &c) != VIGIL_OK) {
      close(fd); /* e.g. reset before we got to it (ENOTCONN) */
      continue;
    }
    /* The open event may have closed the listener: the conn is adopted
     * all the same and on_accept still tells the host about it. */
    if (l->opts.on_accept && c->state != VIGIL_CONN_CLOSED &&
        !hub->free_requested)
      l->opts.on_accept(l, c, l->opts.accept_data);
  }
  vigil__hub_leave(hub);
}

static void listener_hub_gone(vigil__owned *o);
static void listener_release(vigil__owned *o);

/* Closes fd after a failure and records it; returns code. errno is the
 * failed call's. */
static int socket_failed(int fd, int code, const char *call, int err) {
  close(fd);
  errno = err;
  return vigil__error_set(code, call, err);
}

/* Opens, binds and listens; the policy's socket options are set before
 * listen() (see CARRIES_*): l->carries says whether they took. */
static int open_socket(vigil_listener *l, const vigil_listen_options *o,
                       const vigil_policy *policy, uint16_t *port_out) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)o->port);
  const char *host = o->host ? o->host : "0.0.0.0";
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0 || !res)
    return vigil__error_detail(VIGIL_EADDR, "getaddrinfo",
                               gai ? gai_strerror(gai) : "no address");
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_TCP);
  if (fd < 0) {
    int err = errno;
    freeaddrinfo(res);
    errno = err;
    return vigil__error_set(VIGIL_ESYS, "socket", err);
  }
  int one = 1;
  /* SO_REUSEADDR lets a restarted server bind while old connections sit
   * in TIME_WAIT. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* A refusal only costs the shortcut: each conn then writes its own
   * options (and reports the refusal as adoption did before). */
  vigil__sock_want(policy, &l->carried);
  l->carries = vigil__sock_apply_changes(fd, &l->carried, NULL) == VIGIL_OK
                   ? CARRIES_UNCHECKED
                   : CARRIES_NOTHING;
  if (o->reuseport &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    freeaddrinfo(res);
    return socket_failed(fd, VIGIL_ENOTSUP, "setsockopt SO_REUSEPORT", err);
  }
  const char *call = "bind";
  int failed = bind(fd, res->ai_addr, res->ai_addrlen) < 0;
  if (!failed) {
    call = "listen";
    failed = listen(fd, o->backlog > 0 ? o->backlog : 511) < 0;
  }
  if (failed) {
    int err = errno;
    freeaddrinfo(res);
    return socket_failed(fd,
                         err == EADDRINUSE || err == EADDRNOTAVAIL
                             ? VIGIL_EADDR
                             : VIGIL_ESYS,
                         call, err);
  }
  freeaddrinfo(res);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    int err = errno;
    return socket_failed(fd, vigil__err_from_errno(err), "getsockname", err);
  }
  *port_out = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&ss)->sin6_port
                        : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

int vigil_listen(vigil_hub *hub, const vigil_listen_options *o,
                 vigil_listener **out) {
  if (out) *out = NULL;
  if (!hub || !o || hub->free_requested) return VIGIL_EINVAL;
  if (o->adopt.policy && vigil_policy_validate(o->adopt.policy, NULL, 0))
    return VIGIL_EINVAL;
  if (o->adopt.tls_ctx && !vigil__tls_available) return VIGIL_ENOTSUP;
  vigil_listener *l = calloc(1, sizeof *l);
  if (!l) return VIGIL_ENOMEM;
  l->hub = hub;
  l->opts = *o;
  if (!l->opts.emfile_backoff_min_ms) l->opts.emfile_backoff_min_ms = 50;
  if (l->opts.emfile_backoff_max_ms < l->opts.emfile_backoff_min_ms)
    l->opts.emfile_backoff_max_ms = l->opts.emfile_backoff_min_ms;
  l->adopt = o->adopt;
  l->adopt.policy = NULL; /* l->policy holds it */
  if (o->adopt.policy && !(l->policy = vigil__policy_new(o->adopt.policy))) {
    free(l);
    return VIGIL_ENOMEM;
  }
  if (o->adopt.callbacks) {
    l->callbacks = *o->adopt.callbacks;
    l->adopt.callbacks = &l->callbacks;
  }
  int fd = open_socket(l, o, l->policy ? l->policy : hub->policy, &l->port);
  if (fd < 0) {
    vigil__policy_unref(l->policy);
    free(l);
    return fd;
  }
  ev_io_init(&l->io, accept_cb, fd, EV_READ);
  ev_timer_init(&l->retry, retry_cb, 0.0, 0.0);
  ev_io_start(hub->loop, &l->io);
  l->owned.kind = VIGIL__OWNED_LISTENER;
  l->owned.port = l->port;
  l->owned.hub_gone = listener_hub_gone;
  l->owned.release = listener_release;
  vigil__hub_own(hub, &l->owned);
  if (out) *out = l;
  return VIGIL_OK;
}

uint16_t vigil_listener_port(vigil_listener *l) { return l->port; }

static vigil_listener *listener_of(vigil__owned *o) {
  return vigil__container_of(o, vigil_listener, owned);
}

int vigil_listener_fd(vigil_listener *l) { return l->io.fd; }

/* Stops both watchers and closes the socket; the struct stays. */
static void stop_one(vigil_listener *l) {
  ev_io_stop(l->hub->loop, &l->io);
  ev_timer_stop(l->hub->loop, &l->retry);
  if (l->io.fd >= 0) close(l->io.fd);
  l->io.fd = -1;
}

static void listener_release(vigil__owned *o) {
  vigil_listener *l = listener_of(o);
  vigil__policy_unref(l->policy);
  free(l);
}

static void listener_hub_gone(vigil__owned *o) {
  stop_one(listener_of(o));
  listener_release(o);
}

void vigil_listener_close(vigil_listener *l) {
  if (!l || l->closed) return;
  l->closed = 1;
  vigil__hub_disown(l->hub, &l->owned);
  stop_one(l);
  /* Inside a callback (on_accept, an event) the accept loop may still
   * hold l: it is freed when the hub unwinds. */
  vigil__hub_release(l->hub, &l->owned);
}

void vigil__listeners_stop(vigil_hub *hub) {
  for (vigil__owned *o = hub->owned; o; o = o->next)
    if (o->kind == VIGIL__OWNED_LISTENER) stop_one(listener_of(o));
}
