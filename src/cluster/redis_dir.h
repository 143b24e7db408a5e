/*
 * The Redis identity directory (internal): which node, worker and conn
 * holds each identity across a fleet of nodes, so a device that comes back
 * through another node ends its ghost on the first one in milliseconds,
 * with stale owners fenced by epochs, never by clocks. One instance per
 * worker loop (each worker has its own ev_loop and hub); nothing here
 * blocks the loop, and every command has a timeout.
 *
 * PROTOCOL (P is the configured key prefix, "vigil:" by default, so that
 * several clusters can share one Redis; Redis >= 6.2, standalone or a
 * primary: the script reads a key it cannot declare, so Redis Cluster is
 * not supported).
 *
 * Keys
 *   P id:<identity>   hash, one per identity (the identity's raw bytes).
 *       epoch   the last epoch issued for the identity (decimal, only
 *               grows; stays when the identity is released)
 *       node, inc, worker, conn, proven
 *               the holder while held: node id, that node's incarnation,
 *               worker index, conn id (decimal), '1' if it proved its
 *               identity with a certificate, else '0'
 *       A release deletes the holder fields and keeps epoch; the record
 *       then expires after released_ttl_ms (0 = never). Expiry restarts
 *       the identity's epochs, which is safe once nobody anywhere holds
 *       it: every holder keeps its record (PERSIST on each install).
 *   P node:<node>     string: the node's incarnation (16 lowercase hex
 *       digits drawn at new(); a restarted node is a new incarnation),
 *       set with PX liveness_ttl_ms on connect and every ttl/3 after with
 *       SET .. PX .. GET. A holder is alive while its node's key holds the
 *       holder's incarnation; records of a dead or restarted node are
 *       overwritten by the next claim without waiting for anything.
 *
 * Channel
 *   P evict:<node>:<worker>   each worker subscribes to its own, on a
 *       second connection (a subscribed connection takes no commands).
 *   Message: "E1 <fence_epoch> <holder_inc> <worker> <conn> <holder_epoch>
 *       <claimer_node> <identity>", single spaces, decimals, identity the
 *       raw rest (1..65535 bytes). Parsed with exact field counts and
 *       bounds; messages naming another incarnation or worker are dropped.
 *
 * Script: one Lua script for three operations (redis_dir_proto.c), loaded
 *   with SCRIPT LOAD on every connection (a restarted Redis forgets
 *   scripts), run with EVALSHA, and with EVAL when the store answers
 *   NOSCRIPT. Atomic on the server, so the store orders all claims.
 *   claim(identity, conn, proven)
 *     - a live proven holder and an unproven claim: refused, nothing
 *       changes (a claim without a certificate never evicts a proven
 *       holder, on any node);
 *     - else epoch = epoch + 1, the claimer is recorded, and a live
 *       previous holder on another worker (or node) gets its eviction
 *       PUBLISHed from inside the script (no second round trip); one on
 *       the claiming worker itself gets none (that hub takes over locally).
 *       Answer: installed at epoch, with the previous holder (alive or
 *       not).
 *   assert(identity, conn, epoch, proven), the re-assertion after a
 *     reconnect or a liveness lapse, for each identity the host holds,
 *     and the proof update: a conn that proves its identity after its
 *     claim was recorded unproven (a claim made before its TLS handshake
 *     finished) is asserted at once at its epoch with proven = 1:
 *     - epoch 0 (claimed while the store was down): as claim;
 *     - the store's epoch is higher: fenced (a newer claim happened; the
 *       local conn is the older one and must be taken over), nothing
 *       changes: a late proof never marks a newer holder proven;
 *     - the record is this very conn at this epoch: kept, its proven
 *       field rewritten (compare-and-set on node, incarnation, worker,
 *       conn and epoch: how a proof update reaches the record);
 *     - another live holder (possible only after the store lost its
 *       data): fenced, unless this conn is proven and the holder is not:
 *       then recorded at max(epoch, store epoch + 1), the holder evicted;
 *     - nobody alive holds it: recorded at epoch, kept.
 *   release(identity, epoch): deletes the holder fields if node,
 *     incarnation and epoch are still this holder's (compare-and-delete).
 *
 * Fencing rule (owner side, vigil__dir_must_fence): on an eviction naming
 *   (worker, conn, fence_epoch), the conn closes only if it is that conn
 *   and its epoch is below fence_epoch (or its own claim is still in
 *   flight). A late or replayed eviction therefore never closes a newer
 *   holder, with no clock anywhere.
 *
 * STATES (this file's state machine)
 *
 *   new() --> WAITING --- timer ---> CONNECTING --- both connections ---> UP
 *               ^                         |          answered the         |
 *               |  wait until the         |          handshake            |
 *               |  attempt's next_at      | failure                       |
 *               +-------------------------+                               |
 *               +---- one jittered initial delay ---- failure ------------+
 *   free(): any state -> gone (pending requests CANCELLED first)
 *
 *   A failure is: connect refused or timed out, a command timed out, the
 *   store closed or broke the protocol, a handshake answer was wrong
 *   (AUTH, SELECT, SCRIPT LOAD, liveness SET, SUBSCRIBE), a liveness
 *   refresh or PING failed. Both connections are dropped together (an
 *   eviction missed while one was down is caught by re-assertion).
 *   Handshake, per connection, pipelined: [AUTH], [SELECT] (command
 *   connection only), CLIENT SETNAME "vigil-dir:<node>:<worker>:cmd|sub",
 *   then SCRIPT LOAD (its SHA-1 must match ours) and the liveness SET on
 *   the command connection, SUBSCRIBE on the subscriber. The answers are
 *   checked by vigil__dir_check_answer (redis_dir_proto.h).
 *
 *   on_state(up = 0) is reported on the first failure after new() or
 *   after UP (not again for each failed attempt); on_state(up = 1) on
 *   each UP, and again while UP when the liveness key is found to have
 *   lapsed (the store may have given this node's identities away). The
 *   host re-asserts everything it holds on every on_state(up = 1).
 *
 * Requests: claim() and reassert() are answered through their callback
 * exactly once per identity (also on timeout, disconnection and free,
 * with a status saying so), never from inside the call and never after
 * free() returns; they are refused with VIGIL_EAGAIN, and no callback,
 * while the directory is not UP. release() is fire-and-forget: a release
 * that cannot go out now, or whose connection dropped, is kept (up to
 * max_pending) and sent once UP again, so a stale proven record cannot
 * block claims for long.
 *
 * Re-entrancy: free() may be called from inside any callback. Call
 * everything from the loop's thread. Name resolution: a host name in the
 * URL is resolved with getaddrinfo() at every attempt, which blocks the
 * loop while a resolver is slow; numeric addresses and unix sockets
 * never block.
 */
#ifndef VIGIL_REDIS_DIR_H
#define VIGIL_REDIS_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "redis_dir_proto.h"
#include "vigil.h"
#include "vigil/client.h"

struct ev_loop;

typedef struct vigil__redis_dir vigil__redis_dir;

typedef struct vigil__redis_dir_config {
  const char *url;             /* redis_url.h; required */
  const char *prefix;          /* key prefix, 0..64 printable bytes without
                                  spaces; NULL = "vigil:" */
  const char *node;            /* node id, [A-Za-z0-9._-]{1,64}; required */
  uint32_t worker;             /* this loop's worker index */
  uint32_t command_timeout_ms; /* 1..86400000; 500 */
  uint32_t liveness_ttl_ms;    /* 3 x command_timeout_ms..86400000; 10000 */
  uint32_t released_ttl_ms;    /* keep a released record's epoch,
                                  0 (forever)..86400000; 86400000 */
  vigil_client_backoff backoff; /* reconnects: initial 200 ms, x1.6, max
                                   5 s, jitter 0.2, connect timeout 2 s */
  uint32_t max_pending;        /* requests in flight, 1..1048576; 65536 */
  uint64_t seed;               /* jitter and incarnation; 0 = random. The
                                  workers of one node pass one seed: they
                                  share the node's incarnation (its
                                  liveness key), each with its own jitter */
} vigil__redis_dir_config;

void vigil__redis_dir_config_init(vigil__redis_dir_config *c);

typedef enum vigil__dir_status {
  VIGIL__DIR_INSTALLED = 0,     /* the conn holds the identity at epoch */
  VIGIL__DIR_REFUSED_PROVEN = 1,/* claim: a live proven holder stays */
  VIGIL__DIR_FENCED = 2,        /* reassert: a newer claim holds it; the
                                   local conn must be taken over */
  VIGIL__DIR_ERROR = 3,         /* error reply or malformed answer */
  VIGIL__DIR_TIMEOUT = 4,       /* no answer in command_timeout_ms */
  VIGIL__DIR_DISCONNECTED = 5,  /* the connection dropped first */
  VIGIL__DIR_CANCELLED = 6,     /* the directory was freed */
} vigil__dir_status;

/* "installed", "refused_proven", "fenced", "error", "timeout",
 * "disconnected", "cancelled"; "unknown" otherwise. */
const char *vigil__dir_status_name(int status);

typedef struct vigil__dir_result {
  vigil__dir_status status;
  const void *identity;     /* the request's (valid during the callback) */
  size_t identity_len;
  uint64_t conn_id;
  uint64_t epoch;           /* INSTALLED: the epoch now held (a reassert
                               may raise it); REFUSED/FENCED: the store's */
  vigil__dir_owner other;   /* INSTALLED: the previous (claim) or evicted
                               (reassert) holder; REFUSED: the proven
                               holder; FENCED: the holder, if any */
  const char *detail;       /* ERROR, TIMEOUT, DISCONNECTED: why */
} vigil__dir_result;

typedef void (*vigil__dir_result_cb)(vigil__redis_dir *d,
                                     const vigil__dir_result *r, void *user);

typedef struct vigil__redis_dir_callbacks {
  /* up: 1 = UP (re-assert now), 0 = DOWN; reason for logs. */
  void (*on_state)(vigil__redis_dir *d, int up, const char *reason,
                   void *user);
  /* An eviction for this worker from this incarnation's channel; apply
   * vigil__dir_must_fence() to the conn it names. */
  void (*on_evict)(vigil__redis_dir *d, const vigil__dir_eviction *ev,
                   void *user);
  void *user;
} vigil__redis_dir_callbacks;

/* A held identity, for reassert(). */
typedef struct vigil__dir_held {
  const void *identity;
  size_t identity_len;
  uint64_t conn_id;
  uint64_t epoch; /* 0: claimed while the store was down */
  int proven;
} vigil__dir_held;

typedef struct vigil__redis_dir_stats {
  uint64_t attempts;          /* connection attempts */
  uint64_t ups, downs, lapses;
  uint64_t claims, installed, refused, fenced;
  uint64_t errors, timeouts, disconnected;
  uint64_t releases, releases_stale; /* stale: no longer the holder */
  uint64_t releases_parked;          /* waiting for the store now */
  uint64_t releases_dropped;         /* parked list full */
  uint64_t evictions, evictions_dropped;
  uint64_t noscript;          /* EVALSHA answered NOSCRIPT */
} vigil__redis_dir_stats;

/* new()'s checks alone: VIGIL_OK, or VIGIL_EINVAL with a message naming
 * the field into err. */
int vigil__redis_dir_config_check(const vigil__redis_dir_config *c,
                                  char *err, size_t errlen);

/* Validates c (message naming the field into err), copies what it needs
 * and starts the first attempt from the loop (no callback before new()
 * returns). VIGIL_EINVAL, VIGIL_ENOMEM. */
int vigil__redis_dir_new(struct ev_loop *loop,
                         const vigil__redis_dir_config *c,
                         const vigil__redis_dir_callbacks *cb,
                         vigil__redis_dir **out, char *err, size_t errlen);

/* Claims identity for conn_id (proven: certificate-backed). VIGIL_OK:
 * cb runs exactly once later. VIGIL_EAGAIN: not UP or max_pending in
 * flight; VIGIL_EINVAL: empty or over 65535 bytes, or no cb; VIGIL_ECLOSED
 * during free; VIGIL_ENOMEM. No callback on an error return. */
int vigil__redis_dir_claim(vigil__redis_dir *d, const void *identity,
                           size_t len, uint64_t conn_id, int proven,
                           vigil__dir_result_cb cb, void *user);

/* Re-asserts n held identities, pipelined; cb runs exactly once per item
 * (FENCED for each conflict). All or nothing: on an error return no item
 * was sent. Errors as claim(), plus VIGIL_EOVERFLOW when the batch does
 * not fit the output limit (split it). */
int vigil__redis_dir_reassert(vigil__redis_dir *d, const vigil__dir_held *h,
                              size_t n, vigil__dir_result_cb cb, void *user);

/* Releases identity if the store still records this node's claim at
 * epoch. Fire-and-forget (see above). VIGIL_OK, VIGIL_EINVAL (bad
 * identity or epoch 0), VIGIL_ECLOSED, VIGIL_ENOMEM. */
int vigil__redis_dir_release(vigil__redis_dir *d, const void *identity,
                             size_t len, uint64_t epoch);

/* Closes both connections and frees d; pending claim/reassert callbacks
 * run first with CANCELLED. Safe from inside any callback; NULL is fine. */
void vigil__redis_dir_free(vigil__redis_dir *d);

int vigil__redis_dir_is_up(const vigil__redis_dir *d);
/* This instance's incarnation (16 lowercase hex digits). */
const char *vigil__redis_dir_incarnation(const vigil__redis_dir *d);
/* The last failure or dropped message, for logs ("" = none). */
const char *vigil__redis_dir_last_error(const vigil__redis_dir *d);
void vigil__redis_dir_get_stats(const vigil__redis_dir *d,
                                vigil__redis_dir_stats *out);

#endif
