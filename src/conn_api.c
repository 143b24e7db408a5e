/*
 * The host-facing connection calls (vigil.h). Each checks its arguments,
 * brackets the hub (re-entrancy, hub.c) and calls the internal function
 * that does the work; vigil's own code calls those internal functions,
 * never these.
 */
#include <stdlib.h>
#include <string.h>

#include "adopt.h"
#include "close.h"
#include "conn.h"
#include "conn_io.h"
#include "conn_ping.h"
#include "event.h"
#include "hub.h"
#include "identity.h"
#include "sockopt.h"
#include "takeover.h"

void vigil_adopt_options_init(vigil_adopt_options *o) {
  memset(o, 0, sizeof *o);
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
  vigil__hub_enter(hub);
  vigil_conn *c = NULL;
  int rc = vigil__adopt_fd(hub, fd, opts, &c);
  if (rc == VIGIL_OK && out) *out = c;
  vigil__hub_leave(hub);
  return rc;
}

int vigil_send(vigil_conn *c, const void *data, size_t len) {
  if (!c || (!data && len)) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__conn_send(c, data, len);
  vigil__hub_leave(hub);
  return rc;
}

/* ---- closing ---- */

int vigil_close(vigil_conn *c) {
  if (!c) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c)) return VIGIL_OK;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  vigil__conn_close_host(c);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

int vigil_close_ex(vigil_conn *c, vigil_reason reason, const char *detail) {
  if (!c || reason <= VIGIL_REASON_NONE || reason >= VIGIL_REASON__COUNT)
    return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c)) return VIGIL_OK;
  if (detail) {
    vigil__conn_ext *ext = vigil__conn_ext_get(c);
    char *copy = strdup(detail);
    if (!ext || !copy) {
      free(copy);
      return VIGIL_ENOMEM;
    }
    free(ext->owned_detail);
    ext->owned_detail = copy;
    ext->detail = copy;
  }
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  vigil__conn_close(c, reason, VIGIL__CLOSE_GRACEFUL);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

int vigil_abort(vigil_conn *c) {
  if (!c) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED) return VIGIL_OK;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  vigil__conn_close(c, VIGIL_REASON_CLOSED_BY_HOST, VIGIL__CLOSE_ABORT);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

int vigil_conn_fail(vigil_conn *c, int err) {
  if (!c) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED) return VIGIL_OK;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  vigil__conn_fail(c, err);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}

/* ---- state and policy ---- */

int vigil_conn_ready(vigil_conn *c) {
  if (!c) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__conn_ready(c);
  vigil__hub_leave(hub);
  return rc;
}

int vigil_conn_set_policy(vigil_conn *c, const vigil_policy *p) {
  if (!c || !p) return VIGIL_EINVAL;
  if (c->state == VIGIL_CONN_CLOSED) return VIGIL_ECLOSED;
  if (vigil_policy_validate(p, NULL, 0) != VIGIL_OK) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__conn_set_policy(c, p);
  vigil__hub_leave(hub);
  return rc;
}

const vigil_policy *vigil_conn_policy(vigil_conn *c) { return c->policy; }

/* ---- watch-only activity ---- */

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

int vigil_conn_ping_received(vigil_conn *c) {
  if (!c) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__conn_ping_received(c);
  vigil__hub_leave(hub);
  return rc;
}

/* ---- identity ---- */

int vigil_conn_identify(vigil_conn *c, const void *id, size_t len) {
  if (!c || !id || len == 0) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__identify(c, id, len);
  vigil__hub_leave(hub);
  return rc;
}

const char *vigil_conn_identity(vigil_conn *c) {
  return c && c->ext ? c->ext->identity : NULL;
}

vigil_conn *vigil_hub_find_identity(vigil_hub *hub, const void *id,
                                    size_t len) {
  if (!hub || !id || len == 0) return NULL;
  return vigil__identity_holder(hub, id, len);
}

/* ---- accessors ---- */

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
