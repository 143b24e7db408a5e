/*
 * Connection primitives every module uses on a live conn: the io watcher's
 * interest, the optional extension, policy changes, the "open" event, and
 * freeing. Adoption is adopt.c, I/O conn_io.c, deadlines conn_deadline.c,
 * the state machine close.c, the host-facing calls conn_api.c.
 */
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "event.h"
#include "hub.h"
#include "hub_conns.h"
#include "policy_share.h"
#include "sockopt.h"

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

vigil__conn_ext *vigil__conn_ext_get(vigil_conn *c) {
  if (!c->ext) c->ext = calloc(1, sizeof *c->ext);
  return c->ext;
}

void vigil__conn_use_policy(vigil_conn *c, const vigil_policy *p) {
  const vigil_policy *old = c->policy;
  c->policy = vigil__policy_ref(p);
  vigil__policy_unref(old);
}

int vigil__conn_set_policy(vigil_conn *c, const vigil_policy *p) {
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
  /* The socket carries the old policy's options: only changes are
   * written (the MQTT gateway sets a policy per CONNECT for its
   * dead_after, which touches no socket option). */
  vigil_sockopts have, want;
  vigil__sock_want(c->policy, &have);
  vigil__sock_want(own, &want);
  c->hooks = hooks;
  vigil__conn_use_policy(c, own);
  vigil__policy_unref(own);
  int rc = vigil__sock_apply_changes(c->io.fd, &want, &have);
  /* A new policy is judged afresh: reports made under the old one (idle
   * notified, ping asked) do not hold back the new deadlines. */
  c->quiet = 0;
  vigil__conn_schedule(c);
  return rc;
}

void vigil__conn_emit_open(vigil_conn *c, const char *detail,
                           int tls_resumed) {
  vigil_hub *hub = c->hub;
  if (!vigil__hub_wants_events(hub)) return;
  vigil_sockopts so;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_OPEN, hub, c);
  /* The options vigil set (or the listener passed on): only what the
   * policy leaves to the kernel is read back, not all seven per conn.
   * TCP_LINGER2 0 stands for a sysctl, not for state of this socket: the
   * hub keeps the value read from a conn for a second. */
  vigil__sock_want(c->policy, &so);
  int fin_default = hub->now_ms - hub->fin_default_at < 1000
                        ? hub->fin_default_s : 0;
  if (vigil__sock_effective(c->io.fd, &so, fin_default) == VIGIL_OK) {
    ev.sockopts = &so;
    if (c->policy->fin_wait2_s == 0 && !fin_default) {
      hub->fin_default_s = so.fin_wait2_s;
      hub->fin_default_at = hub->now_ms;
    }
  }
  ev.detail = detail; /* "tls": tells the formatter tls_resumed applies */
  ev.tls_resumed = tls_resumed;
  vigil__event_send(hub, &ev);
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
    free(c->ext->owned_detail);
    free(c->ext->ping_guard);
    free(c->ext);
  }
  free(c);
}
