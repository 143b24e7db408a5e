/*
 * Adoption: a connected TCP socket becomes a vigil conn, in three steps.
 *   1. prepare: everything that can fail without touching the fd (memory,
 *      the transport's setup, joining the hub's set);
 *   2. the fd takes the policy's options, those it does not have yet (a
 *      host's fd is snapshotted first, which tells which, and put back
 *      if the kernel refuses one; an accepted socket has its listener's);
 *   3. start: the conn goes live, and the "open" event runs host code
 *      last.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "adopt.h"
#include "conn.h"
#include "conn_io.h"
#include "fdset.h"
#include "hub.h"
#include "hub_conns.h"
#include "policy_share.h"
#include "sockopt.h"
#include "transport.h"

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

/* Undoes prepare(): the conn never started. */
static void discard(vigil_conn *c, vigil_hub *hub) {
  if (c->slot != UINT32_MAX) vigil__hub_remove_conn(hub, c);
  vigil__policy_unref(c->policy);
  if (c->tp->free) c->tp->free(c);
  free(c->ext);
  free(c);
}

/* Step 1. Takes a reference to the shared `policy`. */
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

/* Step 3: the fd took the options; the conn goes live. */
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
  ev_io_init(&c->io, vigil__conn_io_cb, fd, 0);
  /* The group's census counts it as a conn from now on, on any worker. */
  if (hub->link) vigil__fdset_add(hub->link->conn_fds, fd);
  hub->stats.opened++;
  vigil__conn_update_io(c);
  vigil__conn_schedule(c);
  /* A transport with a handshake of its own (TLS) emits "open" once
   * that is done. */
  if (!(c->flags & VIGIL__F_TP_HANDSHAKE)) vigil__conn_emit_open(c, NULL, -1);
}

int vigil__adopt_fd(vigil_hub *hub, int fd, const vigil_adopt_options *opts,
                    vigil_conn **out) {
  if (hub->free_requested) return VIGIL_EINVAL;
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
  if (rc == VIGIL_OK) {
    /* The snapshot read every option: write only those that differ. */
    vigil_sockopts want;
    vigil__sock_want(c->policy, &want);
    rc = vigil__sock_apply_changes(fd, &want, &before.opts);
    if (rc != VIGIL_OK) vigil__sock_restore(fd, &before);
  }
  if (rc != VIGIL_OK) {
    discard(c, hub);
    return rc;
  }
  start(hub, c, fd, (const struct sockaddr *)&peer, opts);
  *out = c;
  return VIGIL_OK;
}

int vigil__adopt(vigil_hub *hub, int fd, const struct sockaddr *peer,
                 const vigil_policy *policy, const vigil_sockopts *have,
                 const vigil_adopt_options *opts, vigil_conn **out) {
  if (hub->free_requested) return VIGIL_EINVAL;
  vigil_conn *c;
  int rc = prepare(hub, policy, opts, &c);
  if (rc != VIGIL_OK) return rc;
  vigil_sockopts want;
  vigil__sock_want(c->policy, &want);
  rc = vigil__sock_apply_changes(fd, &want, have);
  if (rc != VIGIL_OK) {
    discard(c, hub);
    return rc;
  }
  start(hub, c, fd, peer, opts);
  *out = c;
  return VIGIL_OK;
}
