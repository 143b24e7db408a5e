/*
 * The identity directory's protocol in Redis (internal, pure): the one
 * server-side script, the eviction message, and the decoding of what the
 * store answers. The protocol itself (keys, script, channels, fencing
 * rule) is described in redis_dir.h.
 *
 * Everything the store sends is untrusted: decoders check exact element
 * counts and types, numbers as strict decimals within range, node names
 * against their alphabet, and every length against its bound. A failure
 * names the element and what was expected.
 */
#ifndef VIGIL_REDIS_DIR_PROTO_H
#define VIGIL_REDIS_DIR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define VIGIL__DIR_NODE_MAX 64        /* node id: [A-Za-z0-9._-]{1,64} */
#define VIGIL__DIR_PREFIX_MAX 64      /* key prefix: printable, no space */
#define VIGIL__DIR_IDENTITY_MAX 65535 /* as vigil_conn_identify */
#define VIGIL__DIR_INC_LEN 16         /* incarnation: 16 lowercase hex */
/* Largest eviction message: "E1" and 7 fields with their spaces. */
#define VIGIL__DIR_MSG_MAX                                                   \
  (2 + 1 + 20 + 1 + VIGIL__DIR_INC_LEN + 1 + 10 + 1 + 20 + 1 + 20 + 1 +    \
   VIGIL__DIR_NODE_MAX + 1 + VIGIL__DIR_IDENTITY_MAX)

/* The script's Lua source and its length. */
extern const char vigil__dir_script[];
extern const size_t vigil__dir_script_len;
/* Its SHA-1 as SCRIPT LOAD returns it: 40 lowercase hex digits and a NUL
 * into out. 0, or -1 if OpenSSL fails. */
int vigil__dir_script_sha1(char out[41]);

/* 1 if s[0..len) is a valid node id. */
int vigil__dir_node_valid(const char *s, size_t len);
/* 1 if s[0..len) is a valid key prefix (may be empty). */
int vigil__dir_prefix_valid(const char *s, size_t len);

/* An eviction as published on <prefix>evict:<node>:<worker>. */
typedef struct vigil__dir_eviction {
  uint64_t fence_epoch;  /* the new claim's epoch */
  char holder_inc[VIGIL__DIR_INC_LEN + 1]; /* incarnation the store saw */
  uint32_t worker;       /* the holder's worker */
  uint64_t conn_id;      /* the holder's conn */
  uint64_t holder_epoch; /* the epoch the store had for that conn */
  char claimer[VIGIL__DIR_NODE_MAX + 1]; /* node that claimed */
  const void *identity;  /* points into the parsed message */
  size_t identity_len;
} vigil__dir_eviction;

/* Parses "E1 <fence> <inc> <worker> <conn> <holder_epoch> <claimer>
 * <identity>": single spaces, numbers as strict decimals, fence greater
 * than holder_epoch, identity the rest (1..65535 bytes, any bytes).
 * Returns 0 or -1 with the reason in err. */
int vigil__dir_parse_eviction(const char *msg, size_t len,
                              vigil__dir_eviction *out, char *err,
                              size_t errlen);

/* The fencing rule: 1 when a local conn (conn_id, its epoch; 0 while its
 * own claim is still in flight) must close on ev. Only the very conn the
 * store recorded is named, and only an epoch older than the claim's
 * fences, so a late or replayed message never closes a newer holder. */
int vigil__dir_must_fence(const vigil__dir_eviction *ev, uint64_t conn_id,
                          uint64_t conn_epoch);

/* The other owner in a script's answer. */
typedef struct vigil__dir_owner {
  int present;          /* 0: nobody (no other fields set) */
  char node[VIGIL__DIR_NODE_MAX + 1];
  uint32_t worker;
  uint64_t conn_id;
  uint64_t epoch;
  int proven;           /* it proved its identity with a certificate */
  int node_alive;       /* its node's liveness key held its incarnation */
} vigil__dir_owner;

typedef enum vigil__dir_verdict_kind {
  VIGIL__DIR_V_INSTALLED = 0, /* claim: recorded at epoch; other = previous */
  VIGIL__DIR_V_REFUSED = 1,   /* claim: a live proven holder (other) stays */
  VIGIL__DIR_V_KEPT = 2,      /* assert: held at epoch; other = evicted */
  VIGIL__DIR_V_FENCED = 3,    /* assert: epoch is older than the store's */
} vigil__dir_verdict_kind;

typedef struct vigil__dir_verdict {
  vigil__dir_verdict_kind kind;
  uint64_t epoch;
  vigil__dir_owner other;
} vigil__dir_verdict;

/* Decodes the script's answer to a claim (is_assert 0: installed or
 * refused) or an assert (1: kept or fenced). Returns 0, or -1 with the
 * reason in err (an error reply's text is quoted). */
int vigil__dir_decode_verdict(const redisReply *r, int is_assert,
                              vigil__dir_verdict *out, char *err,
                              size_t errlen);

/* Decodes the answer to a release: 1 released, 0 not the holder's epoch
 * (any more), -1 malformed (reason in err). */
int vigil__dir_decode_release(const redisReply *r, char *err, size_t errlen);

/* The commands that keep a connection: a handshake in this order
 * (AUTH and SELECT when configured; SCRIPT LOAD and LIVENESS on the
 * command connection, SUBSCRIBE on the subscriber), then REFRESH and
 * PING every liveness_ttl/3. */
typedef enum vigil__dir_step {
  VIGIL__DIR_STEP_AUTH,
  VIGIL__DIR_STEP_SELECT,
  VIGIL__DIR_STEP_SETNAME,     /* CLIENT SETNAME: an error is tolerated */
  VIGIL__DIR_STEP_SCRIPT_LOAD, /* must answer the script's SHA-1 */
  VIGIL__DIR_STEP_LIVENESS,    /* SET .. PX .. GET: any previous value */
  VIGIL__DIR_STEP_SUBSCRIBE,   /* a confirmation for our channel */
  VIGIL__DIR_STEP_REFRESH,     /* SET .. PX .. GET: must find our inc */
  VIGIL__DIR_STEP_PING,        /* subscribed form: ["pong", ""] */
} vigil__dir_step;

/* What the answers must match. */
typedef struct vigil__dir_expect {
  const char *sha;     /* the script's SHA-1 */
  const char *channel; /* this worker's eviction channel */
  const char *inc;     /* this instance's incarnation */
  const char *node;    /* this node's id, for the messages */
  uint32_t db;
} vigil__dir_expect;

#define VIGIL__DIR_ANSWER_OK 0
#define VIGIL__DIR_ANSWER_LAPSED 1 /* REFRESH: the key had lapsed or was
                                      another incarnation's (why says) */
#define VIGIL__DIR_ANSWER_WRONG (-1)

/* Checks the answer to one step. Returns one of VIGIL__DIR_ANSWER_*, with
 * the reason in why for LAPSED and WRONG. */
int vigil__dir_check_answer(vigil__dir_step step, const redisReply *r,
                            const vigil__dir_expect *e, char *why,
                            size_t len);

#endif
