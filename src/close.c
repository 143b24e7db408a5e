/*
 * The connection state machine. Its heart is closing: of the transitions
 * below, all but HANDSHAKE -> OPEN end a connection, and every one of them
 * is made in this file, in the order of the diagram.
 *
 *                  vigil_conn_ready()
 *     HANDSHAKE ---------------------> OPEN
 *        |  \                         /  |  \
 *        |   \ peer FIN     peer FIN /   |   \ close / policy close
 *        |    +--------> CLOSE_WAIT <    |    \ (host, idle, handshake,
 *        |                  |            |     \  shutdown, grace expiry)
 *        |      host close  |  grace     |      v
 *        |      or grace    +----------------> FLUSHING ----------------+
 *        |                                     | queue empty           |
 *        |                                     | protocol holds FIN?   |
 *        |                                     |   (GOODBYE: wait for  |
 *        |                                     |    the peer's FIN)    |
 *        |                                     | transport close step  |
 *        |                                     |   (TLS close_notify)  |
 *        |                                     | peer FIN seen? ---yes-+
 *        |                                     v no                    |
 *        |                        shutdown(SHUT_WR): our FIN           |
 *        |                                     |                       |
 *        |                                     v                       |
 *        |                                 DRAINING                    |
 *        |                    read+discard until peer FIN,             |
 *        |                    drain_timeout or linger_max              |
 *        |                                     |                       v
 *        +-- dead peer / error / abort ------> CLOSED <----------------+
 *                                      (close(), or RST via SO_LINGER{1,0})
 *
 * Transitions, each with its reason and the invariant it keeps:
 *  - The first close decision fixes the reason (vigil__conn_close). The
 *    one exception is a graceful close the peer never completes: it
 *    becomes drain_timeout with the original reason kept as `cause`
 *    (cut_drain).
 *  - HANDSHAKE -> OPEN (vigil__conn_ready) only once a transport
 *    handshake (TLS) finished: the handshake deadline keeps bounding it.
 *    A handshake_timeout on an unfinished transport handshake closes at
 *    once: it has nothing to flush, and draining would let a staller that
 *    trickles bytes hold the socket until linger_max.
 *  - OPEN/HANDSHAKE -> CLOSE_WAIT on the peer's FIN (vigil__conn_peer_fin).
 *    CLOSE_WAIT never lasts longer than close_wait_grace: the kernel never
 *    times CLOSE_WAIT out by itself, so a host that forgets to close would
 *    pile them up. With no on_peer_closed (nobody to reply) or a grace of
 *    0, the peer's FIN ends the conn at once, still flushing what was
 *    queued.
 *  - -> FLUSHING (begin_graceful): FLUSHING exists so bytes the host
 *    queued before closing reach the peer: our FIN is only sent once the
 *    queue is empty. A flush that makes no progress for drain_timeout is
 *    cut (the peer does not read: it is gone or hostile).
 *  - FLUSHING, queue empty (vigil__conn_flushed): the protocol may hold
 *    our FIN (GOODBYE: the peer closes first so TIME_WAIT lands on it,
 *    bounded by drain_timeout since our last byte); the transport's close
 *    step runs (TLS close_notify before our FIN, or the peer cannot tell
 *    our end from a truncation attack); if the peer already sent FIN, our
 *    close() answers it and TIME_WAIT stays on the peer; else
 *    shutdown(SHUT_WR).
 *  - DRAINING keeps reading after our FIN. Closing a socket with unread
 *    bytes makes the kernel send RST, which can destroy our own last bytes
 *    still in the peer's receive queue (RFC 1122 4.2.2.13); waiting for
 *    the peer's FIN also puts TIME_WAIT on the side that closed first.
 *  - Drain cut (cut_drain): no FIN within drain_timeout of the last sign
 *    of life, or linger_max over the whole close. Output the peer never
 *    took, or our FIN still unacknowledged (FIN_WAIT1, CLOSING), means the
 *    peer is not there: RST under abort_dead rather than an orphan
 *    retransmitting for minutes.
 *  - A takeover (takeover.c) closes a ghost like a dead peer, below, and
 *    a live peer gracefully with drain_timeout lowered to a few RTTs; its
 *    drain cut keeps reason takeover and always resets (under abort_dead):
 *    a peer that acknowledged our FIN but never closes leaves no FIN_WAIT2
 *    orphan behind.
 *  - A dead peer (heartbeat, kernel ETIMEDOUT, ghost takeover) is closed with
 *    RST when abort_dead is set: a FIN to a dead peer is never
 *    acknowledged and leaves an orphan FIN_WAIT1. Aborts (vigil_abort,
 *    output overflow, a host's failure) always RST and drop the queue.
 *  - Leaving (-> CLOSE_WAIT, -> FLUSHING): a conn that holds an identity
 *    tells the identity directory that it no longer stays (one locked
 *    update, identified conns only), so a claim on any worker of the
 *    group then takes the identity without a contest.
 *  - CLOSED (finish): the fd is closed (owned mode), the identity given
 *    back, the conn left the hub's live set and waits in the pending list
 *    for on_close, delivered from the hub's ev_prepare (never inside the
 *    call that closed it), after which it is freed. Its timers and
 *    watchers are stopped here, so they never fire again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "close.h"
#include "conn.h"
#include "event.h"
#include "fdset.h"
#include "hub.h"
#include "hub_conns.h"
#include "identity.h"
#include "outqueue.h"
#include "sockopt.h"
#include "suspect.h"

/* ---- events ---- */

static void emit_simple(vigil_conn *c, vigil_event_type type) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, c);
  vigil__event_send(hub, &ev);
}

void vigil__conn_report_dead(vigil_conn *c, vigil_reason reason) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil_tcp_info ti;
  vigil__event_init(&ev, VIGIL_EV_DEAD, hub, c);
  ev.reason = reason;
  if (c->io.fd >= 0 && vigil__sock_tcp_info(c->io.fd, &ti) == VIGIL_OK)
    ev.tcp_info = &ti;
  vigil__event_send(hub, &ev);
}

static void emit_close(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_CLOSE, hub, c);
  ev.reason = (vigil_reason)c->reason;
  ev.cause = (vigil_reason)c->cause;
  ev.sys_errno = c->sys_errno;
  if (c->ext) {
    ev.detail = c->ext->detail;
    ev.truncated = c->ext->truncated;
    ev.peer_class = (vigil_peer_class)c->ext->peer_class;
    ev.evidence = c->ext->class_evidence;
  }
  vigil__event_send(hub, &ev);
}

/* ---- HANDSHAKE -> OPEN ---- */

int vigil__conn_ready(vigil_conn *c) {
  if (c->state == VIGIL_CONN_OPEN) return VIGIL_OK;
  if (c->state != VIGIL_CONN_HANDSHAKE) return VIGIL_ECLOSED;
  if (c->flags & VIGIL__F_TP_HANDSHAKE) return VIGIL_ESTATE;
  c->state = VIGIL_CONN_OPEN;
  emit_simple(c, VIGIL_EV_READY);
  vigil__conn_schedule(c);
  return VIGIL_OK;
}

/* ---- -> CLOSED ---- */

/* Enters CLOSED: releases the socket and queues on_close. */
static void finish(vigil_conn *c, vigil__close_mode mode) {
  vigil_hub *hub = c->hub;
  if (c->state == VIGIL_CONN_CLOSED) return;
  if (c->reason == VIGIL_REASON_NONE) c->reason = VIGIL_REASON_IO_ERROR;
  ev_io_stop(hub->loop, &c->io);
  vigil__wheel_remove(&hub->wheel, &c->wnode);
  int abortive = mode == VIGIL__CLOSE_ABORT ||
                 (mode == VIGIL__CLOSE_DEAD && c->policy->abort_dead);
  if (abortive) {
    c->flags |= VIGIL__F_ABORTIVE;
    vigil__sock_set_abort_linger(c->io.fd);
  }
  vigil__outq_clear(&c->outq);
  /* Out of the group's census before the number can be handed out
   * again. */
  if (hub->link) vigil__fdset_del(hub->link->conn_fds, c->io.fd);
  /* A watch-only host may still have its own watcher on this fd until it
   * sees on_close; closing now could let the number be reused under it.
   * Owned fds close at once so the peer sees FIN/RST without delay. */
  if (!(c->flags & VIGIL__F_WATCH_ONLY)) {
    close(c->io.fd);
    c->io.fd = -1;
  }
  c->state = VIGIL_CONN_CLOSED;
  vigil__identity_release(c);
  vigil__hub_remove_conn(hub, c);
  hub->stats.closed[c->reason]++;
  emit_close(c);
  vigil__hub_queue_closed(hub, c);
}

/* ---- the close decision ---- */

/* -> FLUSHING. */
static void begin_graceful(vigil_conn *c) {
  c->state = VIGIL_CONN_FLUSHING;
  c->t.state_since = c->hub->now_ms;
  vigil__identity_leaving(c);
  if (c->outq.queued == 0) {
    vigil__conn_flushed(c);
    return;
  }
  vigil__conn_update_io(c);
  vigil__conn_schedule(c);
}

void vigil__conn_close(vigil_conn *c, vigil_reason reason,
                       vigil__close_mode mode) {
  if (c->state == VIGIL_CONN_CLOSED) return;
  if (c->reason == VIGIL_REASON_NONE) c->reason = (uint8_t)reason;
  if (mode != VIGIL__CLOSE_GRACEFUL) {
    finish(c, mode);
    return;
  }
  if (vigil__closing(c)) return; /* already on its way */
  const vigil__protocol *proto = c->hooks->proto;
  if (proto->before_close) {
    proto->before_close(c); /* may send GOODBYE, or fail and close */
    if (c->state == VIGIL_CONN_CLOSED) return;
  }
  begin_graceful(c);
}

void vigil__conn_close_host(vigil_conn *c) {
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c)) return;
  vigil__conn_close(c,
                    c->state == VIGIL_CONN_CLOSE_WAIT
                        ? VIGIL_REASON_PEER_CLOSED
                        : VIGIL_REASON_CLOSED_BY_HOST,
                    VIGIL__CLOSE_GRACEFUL);
}

void vigil__conn_fail(vigil_conn *c, int err) {
  if (c->state == VIGIL_CONN_CLOSED) return;
  if (c->reason == VIGIL_REASON_NONE &&
      (err == ECONNRESET || err == EPIPE || err == ETIMEDOUT)) {
    /* A watch-only host's own read or write met the peer's reset or the
     * kernel's timeout: the same reason vigil's own I/O would give. */
    vigil__conn_io_failed(c, err);
    return;
  }
  if (c->reason == VIGIL_REASON_NONE) c->sys_errno = err;
  vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_ABORT);
}

/* ---- FLUSHING -> DRAINING (or CLOSED) ---- */

void vigil__conn_flushed(vigil_conn *c) {
  const vigil__protocol *proto = c->hooks->proto;
  if (proto->holds_fin && proto->holds_fin(c))
    return; /* GOODBYE sent: the peer closes first (proto_frame.c) */
  /* Called again once the transport's step is done (vigil__conn_flush). */
  if (c->tp->close_step && !c->tp->close_step(c)) return;
  if (c->flags & VIGIL__F_PEER_FIN) {
    /* The peer closed first: our close() answers its FIN and TIME_WAIT
     * stays on the peer. */
    finish(c, VIGIL__CLOSE_NOW);
    return;
  }
  if (shutdown(c->io.fd, SHUT_WR) < 0) {
    /* ENOTCONN: the peer reset meanwhile; nothing left to drain. */
    c->sys_errno = errno;
    finish(c, VIGIL__CLOSE_NOW);
    return;
  }
  c->flags |= VIGIL__F_SHUT_WR;
  c->t.last_tx = c->hub->now_ms; /* the FIN is our last transmission */
  c->state = VIGIL_CONN_DRAINING;
  emit_simple(c, VIGIL_EV_DRAINING);
  if (c->state != VIGIL_CONN_DRAINING) return;
  if (c->policy->drain_timeout_ms == 0) {
    finish(c, VIGIL__CLOSE_NOW);
    return;
  }
  vigil__conn_update_io(c);
  vigil__conn_schedule(c);
}

/* ---- the peer's FIN ---- */

void vigil__conn_peer_fin(vigil_conn *c) {
  if (c->flags & VIGIL__F_PEER_FIN) return;
  c->flags |= VIGIL__F_PEER_FIN;
  switch (vigil__state(c)) {
  case VIGIL_CONN_DRAINING:
    finish(c, VIGIL__CLOSE_NOW); /* the graceful close completed */
    return;
  case VIGIL_CONN_FLUSHING:
    /* Nothing left to flush: a GOODBYE hold, which this FIN completes. */
    if (c->outq.queued == 0) {
      vigil__conn_flushed(c);
      return;
    }
    vigil__conn_update_io(c); /* stop reading; keep flushing */
    return;
  case VIGIL_CONN_HANDSHAKE:
  case VIGIL_CONN_OPEN:
    break;
  default:
    return;
  }
  c->state = VIGIL_CONN_CLOSE_WAIT;
  c->t.state_since = c->hub->now_ms;
  vigil__identity_leaving(c);
  vigil__conn_update_io(c);
  emit_simple(c, VIGIL_EV_PEER_FIN);
  if (c->state != VIGIL_CONN_CLOSE_WAIT) return;
  if (c->hooks->cb.on_peer_closed) {
    c->hooks->cb.on_peer_closed(c, c->user_data);
    if (c->state != VIGIL_CONN_CLOSE_WAIT) return;
  }
  /* With nobody told (no callback) or no grace, the peer's close is the
   * connection's end: close now, still flushing what was queued. */
  if (!c->hooks->cb.on_peer_closed || c->policy->close_wait_grace_ms == 0) {
    vigil__conn_close(c, VIGIL_REASON_PEER_CLOSED, VIGIL__CLOSE_GRACEFUL);
    return;
  }
  vigil__conn_schedule(c);
}

/* ---- deadlines and errors ---- */

/* The graceful close was cut. An unacknowledged FIN after drain_timeout,
 * or output the peer never took, means the peer is not there: RST (under
 * abort_dead) rather than leave an orphan retransmitting. */
static void cut_drain(vigil_conn *c) {
  if (c->reason == VIGIL_REASON_TAKEOVER) {
    /* A displaced live peer had its bound (takeover.c): its data and FIN
     * were delivered or it is gone after all. Either way RST under
     * abort_dead, so no FIN_WAIT2 (or FIN_WAIT1) orphan outlives the
     * takeover, and the close keeps its reason. */
    if (c->ext && !c->ext->detail)
      c->ext->detail = "no FIN within the takeover bound";
    finish(c, VIGIL__CLOSE_DEAD);
    return;
  }
  c->cause = c->reason;
  c->reason = VIGIL_REASON_DRAIN_TIMEOUT;
  vigil__close_mode mode = VIGIL__CLOSE_NOW;
  if (c->state == VIGIL_CONN_FLUSHING) {
    mode = VIGIL__CLOSE_DEAD;
  } else {
    vigil_tcp_info ti;
    if (vigil__sock_tcp_info(c->io.fd, &ti) == VIGIL_OK &&
        (ti.state == VIGIL_TCP_FIN_WAIT1 || ti.state == VIGIL_TCP_CLOSING))
      mode = VIGIL__CLOSE_DEAD;
  }
  finish(c, mode);
}

void vigil__conn_deadline_close(vigil_conn *c, unsigned due) {
  if (due & VIGIL__DUE_DEAD) {
    vigil__metrics_observe_dead(c);
    vigil__conn_report_dead(c, VIGIL_REASON_HEARTBEAT_TIMEOUT);
    if (c->state == VIGIL_CONN_CLOSED) return;
    vigil__conn_close(c, VIGIL_REASON_HEARTBEAT_TIMEOUT, VIGIL__CLOSE_DEAD);
  } else if (due & VIGIL__DUE_HANDSHAKE) {
    vigil__conn_close(c, VIGIL_REASON_HANDSHAKE_TIMEOUT,
                      (c->flags & VIGIL__F_TP_HANDSHAKE)
                          ? VIGIL__CLOSE_NOW
                          : VIGIL__CLOSE_GRACEFUL);
  } else if (due & VIGIL__DUE_CLOSE_WAIT) {
    vigil__conn_close(c, VIGIL_REASON_CLOSE_WAIT_TIMEOUT,
                      VIGIL__CLOSE_GRACEFUL);
  } else if (due & (VIGIL__DUE_DRAIN | VIGIL__DUE_LINGER)) {
    /* A GOODBYE hold that got no FIN falls back to closing first. */
    const vigil__protocol *proto = c->hooks->proto;
    if (!(due & VIGIL__DUE_LINGER) && proto->release_fin &&
        proto->release_fin(c)) {
      vigil__conn_flushed(c);
      return;
    }
    cut_drain(c);
  }
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
