/*
 * Policy defaults and validation.
 *
 * Defaults follow the field comments in include/vigil.h; docs/policy.md
 * gives the reasoning for each one. Validation runs in two passes:
 *
 *   1. range pass: every field, in struct order, against its own range
 *      (a table below, one row per field);
 *   2. relation pass: rules between fields (ping < dead, suspect < dead,
 *      linger_max >= drain, not both 0, flap_window > 0 when flapping is
 *      on, keepalive and ping within path_idle_max_s).
 *
 * So "the first bad field" is the first field out of its own range in
 * struct order; only a policy whose fields are each in range gets a
 * message about how two fields relate.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "vigil.h"

/* Kernel limits for the per-socket keepalive options (net/ipv4/tcp.c:
 * MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). */
#define KEEPIDLE_MAX 32767
#define KEEPINTVL_MAX 32767
#define KEEPCNT_MAX 127

/* TCP_LINGER2 values above tcp_fin_timeout's own ceiling (120 s,
 * TCP_FIN_TIMEOUT_MAX) are silently clamped by the kernel, so we refuse
 * them rather than pretend they take effect. */
#define FIN_WAIT2_MAX 120

#define OUTPUT_LIMIT_MAX (1024u * 1024u * 1024u) /* 1 GiB */
#define FLAP_MAX_MAX 1000000
#define MAX_FRAME_MIN 16
#define MAX_FRAME_MAX (16u * 1024u * 1024u)
#define PING_STRIKES_MAX 1000
#define PATH_IDLE_MAX_S 86400 /* a day, as VIGIL_MAX_DURATION_MS */

void vigil_policy_init(vigil_policy *p) {
  if (!p) return;
  /* Zero first so padding and any field without an explicit default is
   * defined (0 = off everywhere in this struct). */
  memset(p, 0, sizeof *p);
  p->keepalive = 1;
  p->keepalive_idle_s = 60;
  p->keepalive_intvl_s = 10;
  p->keepalive_cnt = 6;
  p->user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;

  p->ping_interval_ms = 0;
  p->dead_after_ms = 0;
  p->suspect_after_ms = VIGIL_SUSPECT_AUTO;
  p->suspect_ping = 0;

  p->read_idle_ms = 0;
  p->write_idle_ms = 0;
  p->all_idle_ms = 0;
  p->idle_action = VIGIL_IDLE_NOTIFY;

  p->handshake_timeout_ms = 0;

  p->drain_timeout_ms = 5000;
  p->linger_max_ms = 30000;
  p->close_wait_grace_ms = 5000;
  p->fin_wait2_s = 0;
  p->abort_dead = 1;

  p->output_limit = (size_t)4 * 1024 * 1024;
  p->overflow_action = VIGIL_OVERFLOW_CLOSE;

  p->takeover = VIGIL_TAKEOVER_NEWEST_WINS;
  p->flap_max = 0;
  p->flap_window_ms = 60000;
  p->flap_ban_ms = 300000;

  p->frame_codec = 0;
  p->max_frame = 65536;

  p->nodelay = 1;

  p->ping_min_interval_ms = 10;
  p->ping_strikes = 2;
  p->path_idle_max_s = 0;
}

/* ---- range pass -------------------------------------------------------- */

typedef enum field_kind {
  KIND_INT,   /* int or an enum (enums are int-sized) */
  KIND_I64,   /* int64_t */
  KIND_U32,   /* uint32_t */
  KIND_SIZE,  /* size_t */
} field_kind;

typedef struct field_rule {
  const char *name;
  size_t offset;
  field_kind kind;
  long long lo, hi;   /* inclusive */
  const char *allowed; /* overrides "lo..hi" in the message when set */
  const char *anchor;  /* kernel option or enum names, shown in () */
  int auto_ok;         /* also accepts VIGIL_SUSPECT_AUTO */
} field_rule;

/* Enums are read through KIND_INT. */
_Static_assert(sizeof(vigil_idle_action) == sizeof(int) &&
                   sizeof(vigil_overflow_action) == sizeof(int) &&
                   sizeof(vigil_takeover_mode) == sizeof(int),
               "policy enums must be int-sized");

#define F(field) #field, offsetof(vigil_policy, field)
#define BOOL_RULE(field) {F(field), KIND_INT, 0, 1, NULL, NULL, 0}
#define DURATION_RULE(field)                                                 \
  {F(field), KIND_U32, 0, VIGIL_MAX_DURATION_MS, NULL, NULL, 0}

static const field_rule k_rules[] = {
    BOOL_RULE(keepalive),
    {F(keepalive_idle_s), KIND_INT, 1, KEEPIDLE_MAX, NULL, "TCP_KEEPIDLE", 0},
    {F(keepalive_intvl_s), KIND_INT, 1, KEEPINTVL_MAX, NULL, "TCP_KEEPINTVL",
     0},
    {F(keepalive_cnt), KIND_INT, 1, KEEPCNT_MAX, NULL, "TCP_KEEPCNT", 0},
    /* -1, 0 and 1..INT32_MAX happen to be one contiguous range; the
     * message spells the meaning of the two special values out. */
    {F(user_timeout_ms), KIND_I64, -1, INT32_MAX,
     "-1 (auto), 0 (off) or 1..2147483647", "TCP_USER_TIMEOUT", 0},
    DURATION_RULE(ping_interval_ms),
    DURATION_RULE(dead_after_ms),
    {F(suspect_after_ms), KIND_U32, 0, VIGIL_MAX_DURATION_MS,
     "0..86400000 or 4294967295", "VIGIL_SUSPECT_AUTO", 1},
    BOOL_RULE(suspect_ping),
    DURATION_RULE(read_idle_ms),
    DURATION_RULE(write_idle_ms),
    DURATION_RULE(all_idle_ms),
    {F(idle_action), KIND_INT, VIGIL_IDLE_NOTIFY, VIGIL_IDLE_CLOSE, NULL,
     "VIGIL_IDLE_NOTIFY..VIGIL_IDLE_CLOSE", 0},
    DURATION_RULE(handshake_timeout_ms),
    DURATION_RULE(drain_timeout_ms),
    DURATION_RULE(linger_max_ms),
    DURATION_RULE(close_wait_grace_ms),
    {F(fin_wait2_s), KIND_INT, 0, FIN_WAIT2_MAX, NULL, "TCP_LINGER2", 0},
    BOOL_RULE(abort_dead),
    {F(output_limit), KIND_SIZE, 1, OUTPUT_LIMIT_MAX, NULL, NULL, 0},
    {F(overflow_action), KIND_INT, VIGIL_OVERFLOW_FAIL, VIGIL_OVERFLOW_CLOSE,
     NULL, "VIGIL_OVERFLOW_FAIL..VIGIL_OVERFLOW_CLOSE", 0},
    {F(takeover), KIND_INT, VIGIL_TAKEOVER_NEWEST_WINS, VIGIL_TAKEOVER_ASK,
     NULL, "VIGIL_TAKEOVER_NEWEST_WINS..VIGIL_TAKEOVER_ASK", 0},
    {F(flap_max), KIND_U32, 0, FLAP_MAX_MAX, NULL, NULL, 0},
    DURATION_RULE(flap_window_ms),
    DURATION_RULE(flap_ban_ms),
    BOOL_RULE(frame_codec),
    {F(max_frame), KIND_U32, MAX_FRAME_MIN, MAX_FRAME_MAX, NULL, NULL, 0},
    BOOL_RULE(nodelay),
    DURATION_RULE(ping_min_interval_ms),
    {F(ping_strikes), KIND_U32, 0, PING_STRIKES_MAX, NULL, NULL, 0},
    {F(path_idle_max_s), KIND_U32, 0, PATH_IDLE_MAX_S, NULL, NULL, 0},
};

/* Checks one field against its rule; VIGIL_OK or VIGIL_EINVAL + message.
 * The value is formatted only for the message: the MQTT gateway validates
 * a policy per CONNECT (vigil_conn_set_policy), so a valid policy must
 * cost comparisons, not a snprintf per field. */
static int check_rule(const vigil_policy *p, const field_rule *r, char *msg,
                      size_t msglen) {
  const char *base = (const char *)p + r->offset;
  char value[32];

  /* Signed kinds compare as long long, unsigned kinds as unsigned long long,
   * so neither a negative int nor a huge size_t is misjudged. */
  if (r->kind == KIND_INT || r->kind == KIND_I64) {
    long long v;
    if (r->kind == KIND_INT) {
      int i;
      memcpy(&i, base, sizeof i);
      v = i;
    } else {
      int64_t i;
      memcpy(&i, base, sizeof i);
      v = i;
    }
    if (v >= r->lo && v <= r->hi) return VIGIL_OK;
    snprintf(value, sizeof value, "%lld", v);
  } else {
    unsigned long long v;
    if (r->kind == KIND_U32) {
      uint32_t u;
      memcpy(&u, base, sizeof u);
      v = u;
      if (r->auto_ok && u == VIGIL_SUSPECT_AUTO) return VIGIL_OK;
    } else {
      size_t u;
      memcpy(&u, base, sizeof u);
      v = u;
    }
    if (v >= (unsigned long long)r->lo && v <= (unsigned long long)r->hi)
      return VIGIL_OK;
    snprintf(value, sizeof value, "%llu", v);
  }

  char range[48];
  if (r->allowed)
    snprintf(range, sizeof range, "%s", r->allowed);
  else
    snprintf(range, sizeof range, "%lld..%lld", r->lo, r->hi);
  if (r->anchor)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "%s = %s is out of range: allowed %s (%s)",
        r->name, value, range, r->anchor);
  return vigil__textf(msg, msglen, VIGIL_EINVAL,
      "%s = %s is out of range: allowed %s", r->name,
      value, range);
}

/* ---- relation pass ----------------------------------------------------- */

/* A middlebox that drops flows idle for path_idle_max_s: every mechanism
 * the policy uses to keep an idle flow alive must send before that, and
 * there must be one. Keepalive sends its first probe after
 * keepalive_idle_s of silence; the application ping after
 * ping_interval_ms with nothing sent. */
static int check_path_idle(const vigil_policy *p, char *msg, size_t msglen) {
  uint32_t limit = p->path_idle_max_s;
  if (limit == 0) return VIGIL_OK;
  if (p->keepalive && (uint32_t)p->keepalive_idle_s > limit)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "keepalive_idle_s = %d exceeds path_idle_max_s = %" PRIu32
        " (first probe after the middlebox drops the flow)",
        p->keepalive_idle_s, limit);
  if (p->ping_interval_ms > 0 && p->ping_interval_ms > limit * 1000u)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
                        "ping_interval_ms = %" PRIu32
                        " exceeds path_idle_max_s = %" PRIu32
                        " (first ping after the middlebox drops the flow)",
                        p->ping_interval_ms, limit);
  if (!p->keepalive && p->ping_interval_ms == 0)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "path_idle_max_s = %" PRIu32
        " needs keepalive or ping_interval_ms: with neither, an idle "
        "flow sends nothing and the middlebox drops it silently",
        limit);
  return VIGIL_OK;
}

/* Rules between fields; assumes every field passed its own range. */
static int check_relations(const vigil_policy *p, char *msg, size_t msglen) {
  /* A ping interval at or above dead_after would declare a healthy but
   * quiet peer dead before we ever asked it to speak. */
  if (p->dead_after_ms > 0 && p->ping_interval_ms > 0 &&
      p->ping_interval_ms >= p->dead_after_ms)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
                        "ping_interval_ms = %" PRIu32
                        " must be less than dead_after_ms = %" PRIu32,
                        p->ping_interval_ms, p->dead_after_ms);

  /* Suspicion is the early warning before death; at or after dead_after it
   * would never get to run. */
  if (p->dead_after_ms > 0 && p->suspect_after_ms != VIGIL_SUSPECT_AUTO &&
      p->suspect_after_ms > 0 && p->suspect_after_ms >= p->dead_after_ms)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
                        "suspect_after_ms = %" PRIu32
                        " must be less than dead_after_ms = %" PRIu32,
                        p->suspect_after_ms, p->dead_after_ms);

  /* linger_max caps the whole graceful close, drain included; a cap below
   * the drain timeout would make drain_timeout meaningless. */
  if (p->linger_max_ms > 0 && p->linger_max_ms < p->drain_timeout_ms)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "linger_max_ms = %" PRIu32
        " must be 0 (no cap) or at least drain_timeout_ms = %" PRIu32,
        p->linger_max_ms, p->drain_timeout_ms);
  /* FLUSHING is bounded by drain_timeout (no byte taken for that long)
   * or linger_max; with neither, a peer that stops reading would hold a
   * closing conn and its queued output forever. */
  if (p->linger_max_ms == 0 && p->drain_timeout_ms == 0)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "linger_max_ms = 0 (no cap) needs drain_timeout_ms > 0: "
        "with both 0 a graceful close to a peer that stops reading "
        "would never end");

  if (p->flap_max > 0 && p->flap_window_ms == 0)
    return vigil__textf(msg, msglen, VIGIL_EINVAL,
        "flap_window_ms = 0 is out of range: allowed 1..%u when "
        "flap_max > 0",
        (unsigned)VIGIL_MAX_DURATION_MS);
  return check_path_idle(p, msg, msglen);
}

int vigil_policy_validate(const vigil_policy *p, char *msg, size_t msglen) {
  if (msg && msglen > 0) msg[0] = '\0';
  if (!p) return vigil__textf(msg, msglen, VIGIL_EINVAL, "policy is NULL");
  for (size_t i = 0; i < sizeof k_rules / sizeof k_rules[0]; i++) {
    int rc = check_rule(p, &k_rules[i], msg, msglen);
    if (rc != VIGIL_OK) return rc;
  }
  return check_relations(p, msg, msglen);
}

/*
 * Effective TCP_USER_TIMEOUT in ms (0 = leave it off).
 *
 * AUTO follows the advice to make the user timeout match the keepalive
 * budget, (idle + intvl * cnt) s, so a peer that dies with data in flight
 * is dropped no later than an idle one. AUTO with keepalive off means off:
 * there is no keepalive budget to match, and a host that disabled
 * keepalive has opted out of kernel-side liveness. The result is clamped to
 * 0..INT32_MAX because setsockopt takes an int; out-of-range input (an
 * unvalidated policy) is clamped the same way rather than wrapped.
 */
uint32_t vigil_policy_user_timeout(const vigil_policy *p) {
  if (!p) return 0;
  int64_t ms;
  if (p->user_timeout_ms == VIGIL_USER_TIMEOUT_AUTO) {
    if (!p->keepalive) return 0;
    int64_t s = (int64_t)p->keepalive_idle_s +
                (int64_t)p->keepalive_intvl_s * (int64_t)p->keepalive_cnt;
    if (s <= 0) return 0;
    if (s > INT32_MAX / 1000) return INT32_MAX;
    ms = s * 1000;
  } else {
    ms = p->user_timeout_ms;
  }
  if (ms <= 0) return 0;
  if (ms > INT32_MAX) return INT32_MAX;
  return (uint32_t)ms;
}
