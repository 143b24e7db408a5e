/*
 * Connections: adoption, accessors, activity, sending and the read path.
 * The close state machine lives in conn_close.c.
 *
 * Invariant: a live conn has exactly one wheel node, armed at the earliest
 * deadline computed when it was last evaluated. Activity only stores a
 * timestamp and clears "already reported" bits, which can only move
 * deadlines later, so a node armed too early simply re-evaluates and
 * re-arms. State changes that create an earlier deadline (peer FIN, close,
 * policy change) call vigil__conn_schedule.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "close.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "outqueue.h"
#include "policy_share.h"
#include "sockopt.h"
#include "suspect.h"
#include "transport.h"

void vigil_adopt_options_init(vigil_adopt_options *o) {
  memset(o, 0, sizeof *o);
}

/* Stores the peer address compactly; IPv4-mapped IPv6 becomes IPv4. */
static void store_peer_addr(vigil_conn *c, const struct sockaddr *sa) {
  memset(&c->peer, 0, sizeof c->peer);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    c->peer.family = AF_INET;
    c->peer.port = ntohs(a->sin_port);
    memcpy(c->peer.addr, &a->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    c->peer.port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      c->peer.family = AF_INET;
      memcpy(c->peer.addr, a->sin6_addr.s6_addr + 12, 4);
    } else {
      c->peer.family = AF_INET6;
      memcpy(c->peer.addr, &a->sin6_addr, 16);
    }
  }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Undoes prepare(): the conn never started. */
static void discard(vigil_conn *c, vigil_hub *hub) {
  if (c->slot != UINT32_MAX) vigil__hub_remove_conn(hub, c);
  vigil__policy_unref(c->policy);
  if (c->tp->free) c->tp->free(c);
  free(c->ext);
  free(c);
}

void vigil__conn_emit_open(vigil_conn *c, const char *detail,
                           int tls_resumed) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_sockopts so;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_OPEN, hub, c);
  if (vigil__sock_get_opts(c->io.fd, &so) == VIGIL_OK) ev.sockopts = &so;
  ev.detail = detail; /* "tls": tells the formatter tls_resumed applies */
  ev.tls_resumed = tls_resumed;
  vigil__event_send(hub, &ev);
}

/* Adoption, step 1: everything that can fail without touching the fd.
 * Takes a reference to the shared `policy`. */
static int prepare(vigil_hub *hub, const vigil_policy *policy,
                   const vigil_adopt_options *opts, vigil_conn **out) {
  vigil_conn *c = calloc(1, sizeof *c);
  if (!c) return VIGIL_ENOMEM;
  c->slot = UINT32_MAX;
  c->io.fd = -1;
  c->tp = &vigil__transport_tcp;
  c->policy = vigil__policy_ref(policy);
  int rc = VIGIL_OK;
  if (opts->tls_ctx) rc = vigil__tls_adopt(c, opts);
  if (rc == VIGIL_OK) {
    c->hooks = vigil__hub_intern_hooks(hub, opts->callbacks,
                                       vigil__protocol_of(c->policy));
    if (!c->hooks || vigil__hub_add_conn(hub, c) != VIGIL_OK)
      rc = VIGIL_ENOMEM;
  }
  if (rc != VIGIL_OK) {
    discard(c, hub);
    return rc;
  }
  *out = c;
  return VIGIL_OK;
}

/* Adoption, step 3 (after the fd took the options): the conn goes live.
 * Runs host code (the open event) last. */
static void start(vigil_hub *hub, vigil_conn *c, int fd,
                  const struct sockaddr *peer,
                  const vigil_adopt_options *opts) {
  uint64_t now = vigil__hub_clock(hub);
  c->hub = hub;
  c->id = hub->next_conn_id++;
  c->user_data = opts->user_data;
  c->t.adopted = c->t.last_rx = c->t.last_tx = c->t.state_since = now;
  c->state = c->policy->handshake_timeout_ms ? VIGIL_CONN_HANDSHAKE
                                             : VIGIL_CONN_OPEN;
  if (opts->watch_only) c->flags |= VIGIL__F_WATCH_ONLY;
  store_peer_addr(c, peer);
  vigil__wheel_node_init(&c->wnode);
  ev_io_init(&c->io, io_cb, fd, 0);
  hub->stats.opened++;
  vigil__conn_update_io(c);
  vigil__conn_schedule(c);
  /* A transport with a handshake of its own (TLS) emits "open" once
   * that is done. */
  if (!(c->flags & VIGIL__F_TP_HANDSHAKE)) vigil__conn_emit_open(c, NULL, -1);
}

int vigil_adopt(vigil_hub *hub, int fd, const vigil_adopt_options *opts,
                vigil_conn **out) {
  if (out) *out = NULL;
  if (!hub || hub->free_requested) return VIGIL_EINVAL;
  vigil_adopt_options defaults;
  if (!opts) {
    vigil_adopt_options_init(&defaults);
    opts = &defaults;
  }
  /* Every check that can fail runs before the fd is touched: on error
   * the fd is exactly as the host left it. */
  struct sockaddr_storage peer;
  int rc = vigil__sock_classify_peer(fd, &peer);
  if (rc != VIGIL_OK) return rc;
  if (opts->policy && vigil_policy_validate(opts->policy, NULL, 0))
    return VIGIL_EINVAL;
  const vigil_policy *policy = opts->policy ? vigil__policy_new(opts->policy)
                                            : vigil__policy_ref(hub->policy);
  if (!policy) return VIGIL_ENOMEM;
  vigil_conn *c = NULL;
  vigil__sock_state before;
  rc = prepare(hub, policy, opts, &c);
  vigil__policy_unref(policy); /* c holds its own reference */
  if (rc != VIGIL_OK) return rc;
  rc = vigil__sock_snapshot(fd, &before);
  if (rc == VIGIL_OK) rc = vigil__sock_set_nonblock(fd);
  if (rc == VIGIL_OK && (rc = vigil__sock_apply(fd, c->policy)) != VIGIL_OK)
    vigil__sock_restore(fd, &before);
  if (rc != VIGIL_OK) {
    discard(c, hub);
    return rc;
  }
  vigil__hub_enter(hub);
  start(hub, c, fd, (const struct sockaddr *)&peer, opts);
  if (out) *out = c;
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

int vigil__adopt(vigil_hub *hub, int fd, const struct sockaddr *peer,
                 const vigil_policy *policy, const vigil_adopt_options *opts,
                 vigil_conn **out) {
  if (out) *out = NULL;
  if (!hub || hub->free_requested) return VIGIL_EINVAL;
  vigil_conn *c;
  int rc = prepare(hub, policy, opts, &c);
  if (rc != VIGIL_OK) return rc;
  rc = vigil__sock_apply(fd, c->policy);
  if (rc != VIGIL_OK) {
    discard(c, hub);
    return rc;
  }
  vigil__hub_enter(hub);
  start(hub, c, fd, peer, opts);
  if (out) *out = c;
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

void vigil__conn_free(vigil_conn *c) {
  if (c->io.fd >= 0) { /* watch-only conns close after on_close */
    close(c->io.fd);
    c->io.fd = -1;
  }
  vigil__policy_unref(c->policy);
  if (c->tp->free) c->tp->free(c);
  if (c->ext) {
    if (c->ext->proto_state_of) c->ext->proto_state_of->free(c);
    free(c->ext->identity);
    free(c->ext->host_detail);
    free(c->ext);
  }
  free(c);
}

void vigil__conn_use_policy(vigil_conn *c, const vigil_policy *p) {
  const vigil_policy *old = c->policy;
  c->policy = vigil__policy_ref(p);
  vigil__policy_unref(old);
}

vigil__conn_ext *vigil__conn_ext_get(vigil_conn *c) {
  if (!c->ext) c->ext = calloc(1, sizeof *c->ext);
  return c->ext;
}

/* Starts, stops or changes the io watcher to match what the state needs. */
void vigil__conn_update_io(vigil_conn *c) {
  int want = 0;
  vigil_conn_state s = vigil__state(c);
  if (!(c->flags & VIGIL__F_WATCH_ONLY) && s != VIGIL_CONN_CLOSED) {
    if (!(c->flags & VIGIL__F_PEER_FIN) && s != VIGIL_CONN_CLOSE_WAIT)
      want |= EV_READ;
    if (c->outq.queued > 0) want |= EV_WRITE;
    const vigil__transport *tp = vigil__conn_transport(c);
    if (tp->io_want) want = tp->io_want(c, want);
  }
  int have = ev_is_active(&c->io) ? (c->io.events & (EV_READ | EV_WRITE)) : 0;
  if (want == have) return;
  ev_io_stop(c->hub->loop, &c->io);
  if (!want) return;
  ev_io_set(&c->io, c->io.fd, want);
  ev_io_start(c->hub->loop, &c->io);
}

void vigil__conn_schedule(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  if (c->state == VIGIL_CONN_CLOSED) return;
  uint64_t next;
  unsigned due = vigil__deadline_eval(c->policy, vigil__state(c), c->quiet,
                                      &c->t, hub->now_ms, &next);
  if (due) next = hub->now_ms; /* handle on the next tick */
  if (next == VIGIL__NEVER) {
    vigil__wheel_remove(&hub->wheel, &c->wnode);
    return;
  }
  vigil__wheel_insert(&hub->wheel, &c->wnode, next);
  /* Only wake the timer when this deadline is earlier than its plan:
   * a libev heap operation per schedule would defeat the wheel. */
  if (!ev_is_active(&hub->tick) || next < hub->armed_at)
    vigil__hub_rearm(hub);
}

/* Reports a non-terminal deadline; returns 0 if the conn closed. */
static int report_idle(vigil_conn *c, vigil_idle_kind kind) {
  vigil_hub *hub = c->hub;
  if (c->policy->idle_action == VIGIL_IDLE_CLOSE) {
    vigil__conn_close(c, VIGIL_REASON_IDLE_TIMEOUT, VIGIL__CLOSE_GRACEFUL);
    return 0;
  }
  if (vigil__hub_wants_events(hub)) {
    vigil_event ev;
    vigil__event_init(&ev, VIGIL_EV_IDLE, hub, c);
    ev.idle_kind = kind;
    vigil__event_send(hub, &ev);
  }
  if (c->hooks->cb.on_idle && c->state != VIGIL_CONN_CLOSED)
    c->hooks->cb.on_idle(c, kind, c->user_data);
  return c->state == VIGIL_CONN_OPEN;
}

void vigil__conn_ask_ping(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  c->quiet |= VIGIL__QUIET_PING;
  if (vigil__hub_wants_events(hub)) {
    vigil_event ev;
    vigil__event_init(&ev, VIGIL_EV_PING_DUE, hub, c);
    vigil__event_send(hub, &ev);
  }
  c->hooks->proto->ping(c); /* the codec pings by itself, raw asks the host */
}

static void check_deadlines(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  uint64_t next;
  unsigned due = vigil__deadline_eval(c->policy, vigil__state(c), c->quiet,
                                      &c->t, hub->now_ms, &next);
  if (due & VIGIL__DUE_TERMINAL) {
    vigil__conn_deadline_close(c, due);
    vigil__conn_schedule(c);
    return;
  }
  if (due & VIGIL__DUE_PING) {
    vigil__conn_ask_ping(c);
    if (c->state != VIGIL_CONN_OPEN) goto out;
  }
  if (due & VIGIL__DUE_SUSPECT) {
    vigil__conn_suspect_check(c);
    if (c->state != VIGIL_CONN_OPEN) goto out;
  }
  static const struct {
    unsigned due, quiet;
    vigil_idle_kind kind;
  } idle[] = {
      {VIGIL__DUE_IDLE_R, VIGIL__QUIET_IDLE_R, VIGIL_IDLE_READ},
      {VIGIL__DUE_IDLE_W, VIGIL__QUIET_IDLE_W, VIGIL_IDLE_WRITE},
      {VIGIL__DUE_IDLE_A, VIGIL__QUIET_IDLE_A, VIGIL_IDLE_ALL},
  };
  for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++) {
    if (!(due & idle[i].due)) continue;
    c->quiet |= idle[i].quiet;
    if (!report_idle(c, idle[i].kind)) goto out;
  }
out:
  vigil__conn_schedule(c);
}

void vigil__conn_on_deadline(vigil__wheel_node *n, void *ctx) {
  vigil_hub *hub = ctx;
  if (hub->free_requested) return;
  check_deadlines(vigil__container_of(n, vigil_conn, wnode));
}

void vigil__conn_io_failed(vigil_conn *c, int err) {
  c->sys_errno = err;
  switch (err) {
  case ECONNRESET:
  case EPIPE:
    vigil__conn_close(c, VIGIL_REASON_PEER_RESET, VIGIL__CLOSE_NOW);
    return;
  case ETIMEDOUT: {
    /* The kernel gave up: keepalive probes or TCP_USER_TIMEOUT. */
    vigil_reason r = vigil__timedout_reason(c);
    vigil__conn_report_dead(c, r);
    vigil__conn_close(c, r, VIGIL__CLOSE_NOW);
    return;
  }
  default:
    vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_NOW);
  }
}

int vigil__conn_flush(vigil_conn *c) {
  int had = c->outq.queued > 0;
  int r = vigil__conn_transport(c)->write_queue(c);
  if (r < 0) return -1;
  if (c->outq.queued == 0 && c->state == VIGIL_CONN_FLUSHING && (had || r)) {
    vigil__conn_flushed(c);
    return c->state == VIGIL_CONN_CLOSED ? -1 : 0;
  }
  vigil__conn_update_io(c);
  return 0;
}

/* Reads until the transport has nothing more, a budget of reads, the
 * peer's end or an error; bytes go to the host, or are discarded while
 * closing: then they are read only so the kernel never answers our close
 * with RST, and count as life. */
static void read_input(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  const vigil__transport *tp = vigil__conn_transport(c);
  for (unsigned i = 0; i < tp->reads_per_event; i++) {
    ssize_t n = tp->read(c, hub->rbuf, VIGIL__READ_BUF);
    if (n > 0) {
      if (!vigil__closing(c))
        c->hooks->proto->on_bytes(c, hub->rbuf, (size_t)n);
      /* DRAINING: from here on the socket is read as raw TCP. */
      if (c->state == VIGIL_CONN_CLOSED || c->state == VIGIL_CONN_DRAINING ||
          hub->free_requested)
        return;
      if (tp->short_read_drains && (size_t)n < VIGIL__READ_BUF) return;
      continue;
    }
    if (n == 0) vigil__conn_peer_fin(c);
    return; /* VIGIL__IO_AGAIN, or VIGIL__IO_CLOSED: c closed */
  }
  /* Bytes left inside the transport never make the fd readable again:
   * come back on the next loop iteration. */
  if (tp->pending && tp->pending(c)) ev_feed_event(hub->loop, &c->io, EV_READ);
}

/* 1 once nothing more may happen on c in this callback. */
static int io_done(const vigil_conn *c) {
  return c->state == VIGIL_CONN_CLOSED || c->hub->free_requested;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  vigil_conn *c = vigil__container_of(w, vigil_conn, io);
  vigil_hub *hub = c->hub;
  (void)loop;
  vigil__hub_enter_loop(hub);
  const vigil__transport *tp = vigil__conn_transport(c);
  int work = tp->events ? tp->events(c, revents) : revents;
  if ((work & EV_WRITE) && !io_done(c)) vigil__conn_flush(c);
  /* After the peer's FIN (or close_notify) there is nothing to read. */
  if ((work & EV_READ) && !io_done(c) && !(c->flags & VIGIL__F_PEER_FIN))
    read_input(c);
  vigil__hub_leave(hub);
}

int vigil__conn_send(vigil_conn *c, const void *data, size_t len) {
  ssize_t w = c->tp->send(c, data, len);
  if (w < 0) return (int)w;
  size_t off = (size_t)w;
  if (off == len) return VIGIL_OK;
  /* After a TLS WANT_WRITE the retry must present these same bytes: they
   * become the queue's head. */
  if (vigil__outq_append(&c->outq, (const char *)data + off, len - off) !=
      VIGIL_OK) {
    /* Part of the message may be on the wire: the stream is broken. */
    c->sys_errno = ENOMEM;
    vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_ABORT);
    return VIGIL_ENOMEM;
  }
  vigil__conn_update_io(c);
  return VIGIL_OK;
}

/* ---- public API ---- */

int vigil__conn_check_send(vigil_conn *c, size_t len) {
  if (c->flags & VIGIL__F_WATCH_ONLY) return VIGIL_ESTATE;
  if (vigil__closing(c) || c->hub->free_requested) return VIGIL_ECLOSED;
  /* Checked before anything is written so a refused send is
   * all-or-nothing: the stream never carries half a message. Written
   * so that no sum can wrap: queued never exceeds the limit. */
  size_t limit = c->policy->output_limit;
  if (len <= limit && c->outq.queued <= limit - len) return VIGIL_OK;
  if (c->policy->overflow_action == VIGIL_OVERFLOW_CLOSE) {
    vigil__hub_enter(c->hub);
    vigil__conn_close(c, VIGIL_REASON_OUTPUT_OVERFLOW, VIGIL__CLOSE_ABORT);
    vigil__hub_leave(c->hub);
  }
  return VIGIL_EOVERFLOW;
}

int vigil_send(vigil_conn *c, const void *data, size_t len) {
  if (!c || (!data && len)) return VIGIL_EINVAL;
  int rc = vigil__conn_check_send(c, len);
  if (rc != VIGIL_OK || len == 0) return rc;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  rc = vigil__conn_send(c, data, len);
  vigil__hub_leave(hub);
  return rc;
}

int vigil_conn_ready(vigil_conn *c) {
  if (!c) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_OPEN) return VIGIL_OK;
  if (c->state != VIGIL_CONN_HANDSHAKE) return VIGIL_ECLOSED;
  /* The deadline must keep bounding an unfinished TLS handshake. */
  if (c->flags & VIGIL__F_TP_HANDSHAKE) return VIGIL_ESTATE;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  c->state = VIGIL_CONN_OPEN;
  if (vigil__hub_wants_events(hub)) {
    vigil_event ev;
    vigil__event_init(&ev, VIGIL_EV_READY, hub, c);
    vigil__event_send(hub, &ev);
  }
  vigil__conn_schedule(c);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

int vigil_conn_set_policy(vigil_conn *c, const vigil_policy *p) {
  if (!c || !p) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED) return VIGIL_ECLOSED;
  if (vigil_policy_validate(p, NULL, 0) != VIGIL_OK) return VIGIL_EINVAL;
  vigil_policy q = *p;
  /* A transport handshake (TLS) stays bounded, even under a new policy
   * given while it runs. */
  if (q.handshake_timeout_ms == 0)
    q.handshake_timeout_ms = c->tp->handshake_default_ms;
  /* frame_codec may change the protocol: the old one's state stays with
   * the conn (this call may come from inside it) until the conn goes. */
  const vigil__hooks *hooks = vigil__hub_intern_hooks(
      c->hub, &c->hooks->cb, vigil__protocol_of(&q));
  const vigil_policy *own = hooks ? vigil__policy_new(&q) : NULL;
  if (!own) return VIGIL_ENOMEM;
  c->hooks = hooks;
  vigil__conn_use_policy(c, own);
  vigil__policy_unref(own);
  int rc = vigil__sock_apply(c->io.fd, c->policy);
  /* A new policy is judged afresh: reports made under the old one (idle
   * notified, ping asked) do not hold back the new deadlines. */
  c->quiet = 0;
  vigil__hub_enter(c->hub);
  vigil__conn_schedule(c);
  vigil__hub_leave(c->hub);
  return rc;
}

const vigil_policy *vigil_conn_policy(vigil_conn *c) { return c->policy; }

void vigil_conn_touch_rx(vigil_conn *c, size_t bytes) {
  if (c && c->state != VIGIL_CONN_CLOSED) vigil__conn_note_rx(c, bytes);
}

void vigil_conn_touch_tx(vigil_conn *c, size_t bytes) {
  if (c && c->state != VIGIL_CONN_CLOSED) vigil__conn_note_tx(c, bytes);
}

void vigil_conn_peer_eof(vigil_conn *c) {
  if (!c || c->state == VIGIL_CONN_CLOSED) return;
  vigil__hub_enter(c->hub);
  vigil__conn_peer_fin(c);
  vigil__hub_leave(c->hub);
}

int vigil_conn_fd(vigil_conn *c) { return c->io.fd; }
uint64_t vigil_conn_id(vigil_conn *c) { return c->id; }
vigil_hub *vigil_conn_hub(vigil_conn *c) { return c->hub; }
vigil_conn_state vigil_conn_get_state(vigil_conn *c) { return vigil__state(c); }
void *vigil_conn_user_data(vigil_conn *c) { return c->user_data; }
void vigil_conn_set_user_data(vigil_conn *c, void *ud) { c->user_data = ud; }
size_t vigil_conn_queued(vigil_conn *c) { return c->outq.queued; }

const char *vigil_conn_peer(vigil_conn *c) {
  static __thread char buf[VIGIL__PEER_STRLEN];
  return vigil__conn_peer_str(c, buf, sizeof buf);
}

int vigil_conn_sockopts(vigil_conn *c, vigil_sockopts *out) {
  if (!c || !out) return VIGIL_EINVAL;
  if (c->io.fd < 0) return VIGIL_ECLOSED;
  return vigil__sock_get_opts(c->io.fd, out);
}

int vigil_conn_tcp_info(vigil_conn *c, vigil_tcp_info *out) {
  if (!c || !out) return VIGIL_EINVAL;
  if (c->io.fd < 0) return VIGIL_ECLOSED;
  return vigil__sock_tcp_info(c->io.fd, out);
}
