/*
 * A peer's pings on a conn: the ping-flood guard (ping_guard.c, pure) fed
 * with the hub's clock, and the close it decides.
 *
 * Memory: the guard's state lives behind a pointer in the conn's
 * extension, allocated on the conn's first ping, so a conn whose peer
 * never pings (and every idle conn) pays nothing for it. The close detail
 * is formatted only when a flood is cut.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "close.h"
#include "conn.h"
#include "conn_ping.h"
#include "ping_guard.h"

/* "ping flood: 4 pings in 3 ms (1333/s), minimum interval 100 ms": what an
 * operator needs to tell a looping client from a fast but honest one. */
static void flood_detail(vigil_conn *c, const vigil__ping_guard *g,
                         uint32_t rate) {
  enum { DETAIL_MAX = 128 };
  char *text = malloc(DETAIL_MAX);
  if (!text) return; /* the close goes ahead without its detail */
  snprintf(text, DETAIL_MAX,
           "ping flood: %" PRIu32 " pings in %" PRIu64 " ms (%" PRIu32
           "/s), minimum interval %" PRIu32 " ms",
           g->seen, g->last_ms - g->strike_since, rate,
           c->policy->ping_min_interval_ms);
  free(c->ext->owned_detail);
  c->ext->owned_detail = text;
  c->ext->detail = text;
}

int vigil__conn_ping_received(vigil_conn *c) {
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c)) return VIGIL_ECLOSED;
  const vigil_policy *p = c->policy;
  if (p->ping_min_interval_ms == 0 || p->ping_strikes == 0) return VIGIL_OK;
  vigil__conn_ext *ext = vigil__conn_ext_get(c);
  if (!ext) return VIGIL_ENOMEM;
  if (!ext->ping_guard) {
    ext->ping_guard = calloc(1, sizeof *ext->ping_guard);
    if (!ext->ping_guard) return VIGIL_ENOMEM;
  }
  uint32_t rate = 0;
  if (!vigil__ping_guard_check(ext->ping_guard, p, c->hub->now_ms, &rate))
    return VIGIL_OK;
  flood_detail(c, ext->ping_guard, rate);
  vigil__conn_close(c, VIGIL_REASON_PING_FLOOD, VIGIL__CLOSE_GRACEFUL);
  return VIGIL_ECLOSED;
}
