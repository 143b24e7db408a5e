/*
 * Stable log names for vigil's enums.
 *
 * These strings are part of the log format: dashboards and alert rules
 * match on them, so they never change once released. Each table uses
 * designated initializers indexed by the enum constant, so reordering or
 * inserting a constant cannot silently shift a name onto the wrong value;
 * a value with no entry (a gap, or a constant appended without a name)
 * reads as NULL and is reported as "unknown".
 */
#include "vigil.h"

#define VIGIL__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const reason_names[VIGIL_REASON__COUNT] = {
    [VIGIL_REASON_NONE] = "none",
    [VIGIL_REASON_CLOSED_BY_HOST] = "closed_by_host",
    [VIGIL_REASON_PEER_CLOSED] = "peer_closed",
    [VIGIL_REASON_PEER_RESET] = "peer_reset",
    [VIGIL_REASON_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
    [VIGIL_REASON_KEEPALIVE_TIMEOUT] = "keepalive_timeout",
    [VIGIL_REASON_USER_TIMEOUT] = "user_timeout",
    [VIGIL_REASON_IDLE_TIMEOUT] = "idle_timeout",
    [VIGIL_REASON_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [VIGIL_REASON_DRAIN_TIMEOUT] = "drain_timeout",
    [VIGIL_REASON_CLOSE_WAIT_TIMEOUT] = "close_wait_timeout",
    [VIGIL_REASON_IO_ERROR] = "io_error",
    [VIGIL_REASON_OUTPUT_OVERFLOW] = "output_overflow",
    [VIGIL_REASON_SHUTDOWN] = "shutdown",
    [VIGIL_REASON_TAKEOVER] = "takeover",
    [VIGIL_REASON_TAKEOVER_REJECTED] = "takeover_rejected",
    [VIGIL_REASON_IDENTITY_BANNED] = "identity_banned",
    [VIGIL_REASON_PROTOCOL_ERROR] = "protocol_error",
    [VIGIL_REASON_TLS_ERROR] = "tls_error",
    [VIGIL_REASON_PING_FLOOD] = "ping_flood",
};

/* Event types start at 1; slot 0 stays NULL and reads as "unknown". */
static const char *const event_names[VIGIL_EV__COUNT] = {
    [VIGIL_EV_OPEN] = "open",
    [VIGIL_EV_PING_DUE] = "ping_due",
    [VIGIL_EV_IDLE] = "idle",
    [VIGIL_EV_DEAD] = "dead",
    [VIGIL_EV_PEER_FIN] = "peer_fin",
    [VIGIL_EV_DRAINING] = "draining",
    [VIGIL_EV_CLOSE] = "close",
    [VIGIL_EV_ACCEPT_PAUSED] = "accept_paused",
    [VIGIL_EV_ACCEPT_RESUMED] = "accept_resumed",
    [VIGIL_EV_READY] = "ready",
    [VIGIL_EV_SUSPECT] = "suspect",
    [VIGIL_EV_TAKEOVER] = "takeover",
    [VIGIL_EV_FLAPPING] = "flapping",
    [VIGIL_EV_CENSUS] = "census",
    [VIGIL_EV_GHOSTS] = "ghosts",
    [VIGIL_EV_SHUTDOWN] = "shutdown",
    [VIGIL_EV_CLIENT] = "client",
    [VIGIL_EV_DIRECTORY_DOWN] = "directory_down",
    [VIGIL_EV_DIRECTORY_UP] = "directory_up",
    [VIGIL_EV_DIRECTORY_ERROR] = "directory_error",
};

static const char *const conn_state_names[] = {
    [VIGIL_CONN_HANDSHAKE] = "handshake",
    [VIGIL_CONN_OPEN] = "open",
    [VIGIL_CONN_CLOSE_WAIT] = "close_wait",
    [VIGIL_CONN_FLUSHING] = "flushing",
    [VIGIL_CONN_DRAINING] = "draining",
    [VIGIL_CONN_CLOSED] = "closed",
};

/* Idle kinds start at 1; slot 0 stays NULL. */
static const char *const idle_kind_names[] = {
    [VIGIL_IDLE_READ] = "read",
    [VIGIL_IDLE_WRITE] = "write",
    [VIGIL_IDLE_ALL] = "all",
};

static const char *const scope_names[VIGIL_SCOPE__COUNT] = {
    [VIGIL_SCOPE_HUB] = "hub",
    [VIGIL_SCOPE_WORKER] = "worker",
    [VIGIL_SCOPE_CLUSTER] = "cluster",
};

static const char *const peer_class_names[VIGIL_PEER__COUNT] = {
    [VIGIL_PEER_UNKNOWN] = "unknown",
    [VIGIL_PEER_GHOST] = "ghost",
    [VIGIL_PEER_LIVE] = "live",
};

/* Entry v of a name table, or "unknown" when v is outside it or unnamed.
 * The value is taken as long long so a negative enum value (an enum may be
 * signed) is rejected instead of wrapping into range. */
static const char *lookup(const char *const *table, size_t len, long long v) {
  if (v < 0 || (unsigned long long)v >= len || table[v] == NULL)
    return "unknown";
  return table[v];
}

const char *vigil_reason_name(vigil_reason r) {
  return lookup(reason_names, VIGIL__ARRAY_LEN(reason_names), (long long)r);
}

const char *vigil_event_name(vigil_event_type t) {
  return lookup(event_names, VIGIL__ARRAY_LEN(event_names), (long long)t);
}

const char *vigil_conn_state_name(vigil_conn_state s) {
  return lookup(conn_state_names, VIGIL__ARRAY_LEN(conn_state_names),
                (long long)s);
}

const char *vigil_idle_kind_name(vigil_idle_kind k) {
  return lookup(idle_kind_names, VIGIL__ARRAY_LEN(idle_kind_names),
                (long long)k);
}

const char *vigil_scope_name(vigil_takeover_scope s) {
  return lookup(scope_names, VIGIL__ARRAY_LEN(scope_names), (long long)s);
}

const char *vigil_peer_class_name(vigil_peer_class c) {
  return lookup(peer_class_names, VIGIL__ARRAY_LEN(peer_class_names),
                (long long)c);
}
