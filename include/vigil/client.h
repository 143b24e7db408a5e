/*
 * vigil client: one TCP connection to a server that vigil keeps up, for
 * devices and game clients.
 *
 * The client connects without blocking the loop, adopts the connected
 * socket into a vigil_hub with the frame codec on (so keepalive,
 * TCP_USER_TIMEOUT, pings and dead_after work exactly as on the server
 * side), sends HELLO with its identity, and when the connection is lost or
 * an attempt fails, tries again after a backoff with jitter:
 *
 *   attempt n starts at t_n; attempt n+1 starts no earlier than
 *   t_n + jitter(min(initial * multiplier^n, max))
 *
 * with gRPC's defaults (initial 1 s, x1.6, max 120 s, jitter +-20 %, an
 * attempt may take at least 20 s to connect). The first connect is
 * immediate; after a connection that was up is lost, the first attempt
 * waits one jittered initial delay (0.8..1.2 s by default), so a fleet cut
 * off at the same moment comes back spread out rather than all at once.
 *
 * Client events go to the hub's diagnostics sink as VIGIL_EV_CLIENT with a
 * detail: "connecting", "connected", "connect_failed ECONNREFUSED",
 * "resolve_failed <why>", "backoff 1234ms", "disconnected <reason>",
 * "closed". Their `peer` is the target "host:port"; `conn_id` is set while
 * a connection exists.
 *
 * Typical use:
 *
 *   vigil_client_options o;
 *   vigil_client_options_init(&o);
 *   o.host = "203.0.113.7"; o.port = 7000; o.identity = "sensor-42";
 *   o.policy = &p;          // p.ping_interval_ms, p.dead_after_ms ...
 *   o.on_data = on_data;
 *   vigil_client_new(hub, &o, &client);
 *   ... vigil_client_send_data(client, buf, len) ...
 *   vigil_client_close(client); ... vigil_client_free(client);
 *
 * Name resolution: host is resolved with getaddrinfo() at every attempt,
 * which blocks the loop while a resolver is slow; numeric addresses never
 * block. The first address returned is used.
 *
 * Threading and re-entrancy are the hub's: call everything from the loop's
 * thread. vigil_client_close() and vigil_client_free() may be called from
 * inside the client's callbacks.
 */
#ifndef VIGIL_CLIENT_H
#define VIGIL_CLIENT_H

#ifndef VIGIL_H
#include "vigil.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vigil_client vigil_client;

/* Reconnect backoff (gRPC connection-backoff). */
typedef struct vigil_client_backoff {
  uint32_t initial_ms;   /* first delay, 1..86400000; 1000 */
  double multiplier;     /* growth per attempt, 1.0..10.0; 1.6 */
  uint32_t max_ms;       /* cap on the delay before jitter,
                            initial_ms..86400000; 120000 */
  double jitter;         /* +- fraction of the delay, 0.0..1.0; 0.2 */
  uint32_t min_connect_timeout_ms; /* an attempt may always take this long
                                      to connect, 0..86400000; 20000 */
} vigil_client_backoff;

VIGIL_EXPORT void vigil_client_backoff_init(vigil_client_backoff *b);

/* The connection is up and HELLO was queued. c is valid until the
 * matching on_disconnected returns. */
typedef void (*vigil_client_connected_cb)(vigil_client *cl, vigil_conn *c,
                                          void *user_data);
/* One DATA payload from the server (NULL, 0 for an empty one). */
typedef void (*vigil_client_data_cb)(vigil_client *cl, const void *data,
                                     size_t len, void *user_data);
/* A connection that was up is gone (close reason); the client reconnects
 * unless vigil_client_close() was called. Failed attempts do not call
 * this; they are reported as events. */
typedef void (*vigil_client_disconnected_cb)(vigil_client *cl,
                                             vigil_reason reason,
                                             void *user_data);
/* Returns 32 uniformly random bits (tests: a fixed sequence). */
typedef uint32_t (*vigil_random_fn)(void *random_data);

/* A plain struct: start from vigil_client_options_init(). Copied by
 * vigil_client_new (strings and policy included). */
typedef struct vigil_client_options {
  const char *host;        /* [in] required: numeric address or name */
  uint16_t port;           /* [in] required, 1..65535 */
  const char *identity;    /* HELLO payload, 1..255 bytes; NULL = none */
  uint32_t connect_timeout_ms; /* per attempt; 0 (default) = the gRPC rule:
                                  max(min_connect_timeout, time until the
                                  next attempt is due) */
  const vigil_policy *policy;  /* NULL = the hub's; frame_codec is forced
                                  on either way */
  vigil_client_backoff backoff;
  vigil_client_connected_cb on_connected;
  vigil_client_data_cb on_data;
  vigil_client_disconnected_cb on_disconnected;
  void *user_data;
  uint64_t seed;           /* jitter PRNG seed; 0 (default) = random */
  vigil_random_fn random;  /* overrides the PRNG when set */
  void *random_data;
} vigil_client_options;

VIGIL_EXPORT void vigil_client_options_init(vigil_client_options *o);

/* Checks the options as vigil_client_new will (o->policy with frame_codec
 * forced on; a NULL policy means the hub's, valid already). Returns
 * VIGIL_OK, or VIGIL_EINVAL and writes a message naming the first bad
 * field and its allowed range, e.g. "backoff.jitter: 2 is not in
 * 0.0..1.0" or "port: 0 is not in 1..65535". msg may be NULL. */
VIGIL_EXPORT int vigil_client_options_validate(const vigil_client_options *o,
                                               char *msg, size_t msglen);

/*
 * Creates a client on hub and starts connecting (the first attempt runs
 * from the loop, not inside this call). Returns VIGIL_OK and *out, or
 * VIGIL_EINVAL (no host, port 0, identity empty or too long, bad backoff
 * or policy: see vigil_client_options_validate), VIGIL_ENOMEM.
 */
VIGIL_EXPORT int vigil_client_new(vigil_hub *hub,
                                  const vigil_client_options *o,
                                  vigil_client **out);

/* Sends one DATA frame. VIGIL_ENOTCONN while not connected; otherwise as
 * vigil_send_data. */
VIGIL_EXPORT int vigil_client_send_data(vigil_client *cl, const void *data,
                                        size_t len);

/* Stops reconnecting and closes the connection gracefully, if any
 * (on_disconnected follows with closed_by_host). Idempotent. */
VIGIL_EXPORT int vigil_client_close(vigil_client *cl);

/* Closes (as vigil_client_close) and frees. No callback runs afterwards;
 * a connection still closing finishes on the hub on its own. Safe from
 * any callback (the free then waits until client code has returned), and
 * after the hub was freed: a freed hub detaches its clients, which stop
 * and wait, closed, for this call. */
VIGIL_EXPORT void vigil_client_free(vigil_client *cl);

/* The current connection, or NULL while not connected. */
VIGIL_EXPORT vigil_conn *vigil_client_conn(vigil_client *cl);

/* Connect attempts made since creation (successful or not). */
VIGIL_EXPORT uint64_t vigil_client_attempts(vigil_client *cl);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_CLIENT_H */
