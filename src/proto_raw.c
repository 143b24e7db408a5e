/*
 * The "raw" protocol (no frame codec): received bytes go to the host's
 * on_data as they come, and ping time is the host's on_ping_due, so the
 * host sends whatever its own protocol uses as a ping.
 */
#include "conn.h"
#include "protocol.h"

static void raw_bytes(vigil_conn *c, const void *data, size_t len) {
  if (c->hooks->cb.on_data)
    c->hooks->cb.on_data(c, data, len, c->user_data);
}

static void raw_ping(vigil_conn *c) {
  if (c->hooks->cb.on_ping_due && c->state != VIGIL_CONN_CLOSED)
    c->hooks->cb.on_ping_due(c, c->user_data);
}

const vigil__protocol vigil__protocol_raw = {
    .name = "raw",
    .on_bytes = raw_bytes,
    .ping = raw_ping,
};
