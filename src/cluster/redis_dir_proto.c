/* The identity directory's script, message and reply decoding; see
 * redis_dir_proto.h (the protocol is described in redis_dir.h). */
#include "redis_dir_proto.h"

#include <stdio.h>
#include <string.h>

#include "redis_reply.h"
#include "error.h"
#include "redis_text.h"
#include "sha1.h"

/* KEYS[1] = <prefix>id:<identity>
 * ARGV = op ('claim' | 'assert' | 'release'), prefix, node, incarnation,
 *        worker, conn, proven ('1' | '0'), epoch (assert, release),
 *        released-record TTL in ms ('0' = keep)
 * Holder fields on the record: epoch node inc worker conn proven; a
 * released record keeps only epoch, so epochs never go back.
 * Answer to claim/assert: {verdict, epoch, node, worker, conn,
 * other_epoch, other_proven, other_alive} (node '' = no other owner);
 * to release: 1 or 0. */
const char vigil__dir_script[] =
    "local k = KEYS[1]\n"
    "local op, prefix, node, inc, worker, conn, proven, epoch_arg, keep_ms =\n"
    "  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7],\n"
    "  ARGV[8], ARGV[9]\n"
    "local r = redis.call('HMGET', k, 'epoch', 'node', 'inc', 'worker',\n"
    "                     'conn', 'proven')\n"
    "local stored = 0\n"
    "if r[1] then\n"
    "  stored = tonumber(r[1])\n"
    "  if not stored or stored < 0 or stored ~= math.floor(stored) then\n"
    "    return redis.error_reply('ERR vigil directory: corrupt epoch')\n"
    "  end\n"
    "end\n"
    "local holder = false\n"
    "if r[2] and r[3] and r[4] and r[5] then holder = r[2] end\n"
    "if op == 'release' then\n"
    "  if holder == node and r[3] == inc and r[1] == epoch_arg then\n"
    "    redis.call('HDEL', k, 'node', 'inc', 'worker', 'conn', 'proven')\n"
    "    if keep_ms ~= '0' then redis.call('PEXPIRE', k, keep_ms) end\n"
    "    return 1\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local alive = 0\n"
    "if holder and redis.call('GET', prefix .. 'node:' .. holder) == r[3]\n"
    "then alive = 1 end\n"
    "local held_proven = 0\n"
    "if holder and r[6] == '1' then held_proven = 1 end\n"
    "local function answer(verdict, e)\n"
    "  if not holder then return {verdict, e, '', '', '', 0, 0, 0} end\n"
    "  return {verdict, e, holder, r[4], r[5], stored, held_proven, alive}\n"
    "end\n"
    "local function install(e)\n"
    "  redis.call('HSET', k, 'epoch', string.format('%d', e), 'node', node,\n"
    "             'inc', inc, 'worker', worker, 'conn', conn,\n"
    "             'proven', proven)\n"
    "  redis.call('PERSIST', k)\n"
    "end\n"
    "local function evict(fence)\n"
    "  if alive == 1 and not (holder == node and r[4] == worker) then\n"
    "    redis.call('PUBLISH', prefix .. 'evict:' .. holder .. ':' .. r[4],\n"
    "      'E1 ' .. string.format('%d', fence) .. ' ' .. r[3] .. ' ' ..\n"
    "      r[4] .. ' ' .. r[5] .. ' ' .. string.format('%d', stored) ..\n"
    "      ' ' .. node .. ' ' .. string.sub(k, #prefix + 4))\n"
    "  end\n"
    "end\n"
    "local blocked = alive == 1 and held_proven == 1 and proven ~= '1'\n"
    "local function claim(ok, no)\n"
    "  if blocked then return answer(no, stored) end\n"
    "  local e = stored + 1\n"
    "  install(e)\n"
    "  evict(e)\n"
    "  return answer(ok, e)\n"
    "end\n"
    "if op == 'claim' then return claim('installed', 'refused') end\n"
    "if op ~= 'assert' then\n"
    "  return redis.error_reply('ERR vigil directory: unknown op')\n"
    "end\n"
    "local e = tonumber(epoch_arg) or 0\n"
    "if e == 0 then return claim('kept', 'fenced') end\n"
    "if stored > e then return answer('fenced', stored) end\n"
    "if holder == node and r[3] == inc and r[4] == worker and r[5] == conn\n"
    "then\n"
    "  install(e)\n"
    "  return {'kept', e, '', '', '', 0, 0, 0}\n"
    "end\n"
    "if alive == 1 then\n"
    "  if held_proven == 1 or proven ~= '1' then\n"
    "    return answer('fenced', stored)\n"
    "  end\n"
    "  if stored >= e then e = stored + 1 end\n"
    "  install(e)\n"
    "  evict(e)\n"
    "  return answer('kept', e)\n"
    "end\n"
    "install(e)\n"
    "return answer('kept', e)\n";

const size_t vigil__dir_script_len = sizeof vigil__dir_script - 1;

int vigil__dir_script_sha1(char out[41]) {
  uint8_t md[20];
  vigil__sha1(vigil__dir_script, sizeof vigil__dir_script - 1, md);
  for (unsigned i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  return 0;
}

#define fail(err, errlen, ...) vigil__textf(err, errlen, -1, __VA_ARGS__)

static int node_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int vigil__dir_node_valid(const char *s, size_t len) {
  if (!s || len == 0 || len > VIGIL__DIR_NODE_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if (!node_char(s[i])) return 0;
  return 1;
}

int vigil__dir_prefix_valid(const char *s, size_t len) {
  if (!s || len > VIGIL__DIR_PREFIX_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) return 0;
  return 1;
}

/* ---- eviction message --------------------------------------------------- */

/* Cuts the next space-terminated field from *p (len *n). */
static int next_field(const char **p, size_t *n, const char **f,
                      size_t *flen) {
  const char *sp = memchr(*p, ' ', *n);
  if (!sp) return -1;
  *f = *p;
  *flen = (size_t)(sp - *p);
  *n -= *flen + 1;
  *p = sp + 1;
  return 0;
}

static int hex_lower(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

int vigil__dir_parse_eviction(const char *msg, size_t len,
                              vigil__dir_eviction *out, char *err,
                              size_t errlen) {
  static const char *names[] = {"tag",  "fence epoch", "incarnation",
                                "worker", "conn id",    "holder epoch",
                                "claimer node"};
  const char *f[7];
  size_t flen[7];
  if (!msg || len > VIGIL__DIR_MSG_MAX)
    return fail(err, errlen, "eviction message of %zu bytes, at most %d",
                len, VIGIL__DIR_MSG_MAX);
  const char *p = msg;
  size_t n = len;
  for (int i = 0; i < 7; i++)
    if (next_field(&p, &n, &f[i], &flen[i]) < 0)
      return fail(err, errlen, "eviction message ends before its %s",
                  i + 1 < 7 ? names[i + 1] : "identity");
  vigil__dir_eviction ev;
  memset(&ev, 0, sizeof ev);
  uint64_t v;
  if (flen[0] != 2 || memcmp(f[0], "E1", 2) != 0)
    return fail(err, errlen, "eviction message tag must be E1");
  if (vigil__redis_parse_u64(f[1], flen[1], UINT64_MAX, &ev.fence_epoch) < 0 ||
      ev.fence_epoch == 0)
    return fail(err, errlen, "eviction %s must be a decimal 1..2^64-1",
                names[1]);
  if (flen[2] != VIGIL__DIR_INC_LEN || !hex_lower(f[2], flen[2]))
    return fail(err, errlen, "eviction %s must be %d lowercase hex digits",
                names[2], VIGIL__DIR_INC_LEN);
  memcpy(ev.holder_inc, f[2], VIGIL__DIR_INC_LEN);
  if (vigil__redis_parse_u64(f[3], flen[3], UINT32_MAX, &v) < 0)
    return fail(err, errlen, "eviction %s must be a decimal 0..%u", names[3],
                UINT32_MAX);
  ev.worker = (uint32_t)v;
  if (vigil__redis_parse_u64(f[4], flen[4], UINT64_MAX, &ev.conn_id) < 0)
    return fail(err, errlen, "eviction %s must be a decimal", names[4]);
  if (vigil__redis_parse_u64(f[5], flen[5], UINT64_MAX, &ev.holder_epoch) < 0)
    return fail(err, errlen, "eviction %s must be a decimal", names[5]);
  if (ev.holder_epoch >= ev.fence_epoch)
    return fail(err, errlen,
                "eviction fence epoch must be above the holder epoch");
  if (!vigil__dir_node_valid(f[6], flen[6]))
    return fail(err, errlen,
                "eviction %s must be 1..%d of [A-Za-z0-9._-]", names[6],
                VIGIL__DIR_NODE_MAX);
  memcpy(ev.claimer, f[6], flen[6]);
  if (n == 0 || n > VIGIL__DIR_IDENTITY_MAX)
    return fail(err, errlen, "eviction identity must be 1..%d bytes",
                VIGIL__DIR_IDENTITY_MAX);
  ev.identity = p;
  ev.identity_len = n;
  *out = ev;
  return 0;
}

int vigil__dir_must_fence(const vigil__dir_eviction *ev, uint64_t conn_id,
                          uint64_t conn_epoch) {
  return ev && conn_id == ev->conn_id && conn_epoch < ev->fence_epoch;
}

/* ---- script answers ----------------------------------------------------- */

static int reply_error(const redisReply *r, char *err, size_t errlen) {
  return fail(err, errlen, "the store answered an error: %.*s",
              (int)(r->len > 160 ? 160 : r->len), r->str);
}

static const redisReply *element(const redisReply *r, size_t i, int type,
                                 char *err, size_t errlen) {
  const redisReply *e = r->element[i];
  if (!e || e->type != type) {
    fail(err, errlen, "answer element %zu must be %s, got %s", i + 1,
         vigil__redis_reply_type_name(type),
         vigil__redis_reply_type_name(e ? e->type : -1));
    return NULL;
  }
  return e;
}

static int flag(const redisReply *e, size_t i, int *out, char *err,
                size_t errlen) {
  if (e->integer != 0 && e->integer != 1)
    return fail(err, errlen, "answer element %zu must be 0 or 1", i + 1);
  *out = (int)e->integer;
  return 0;
}

static int decode_owner(const redisReply *r, vigil__dir_owner *o, char *err,
                        size_t errlen) {
  const redisReply *e[8];
  static const int types[8] = {0, 0, REDIS_REPLY_STRING, REDIS_REPLY_STRING,
                               REDIS_REPLY_STRING, REDIS_REPLY_INTEGER,
                               REDIS_REPLY_INTEGER, REDIS_REPLY_INTEGER};
  memset(o, 0, sizeof *o);
  for (size_t i = 2; i < 8; i++)
    if (!(e[i] = element(r, i, types[i], err, errlen))) return -1;
  if (e[2]->len == 0) {
    if (e[3]->len || e[4]->len || e[5]->integer || e[6]->integer ||
        e[7]->integer)
      return fail(err, errlen, "answer names no owner but has its fields");
    return 0;
  }
  if (!vigil__dir_node_valid(e[2]->str, e[2]->len))
    return fail(err, errlen, "answer owner node must be 1..%d of "
                             "[A-Za-z0-9._-]", VIGIL__DIR_NODE_MAX);
  memcpy(o->node, e[2]->str, e[2]->len);
  uint64_t v;
  if (vigil__redis_parse_u64(e[3]->str, e[3]->len, UINT32_MAX, &v) < 0)
    return fail(err, errlen, "answer owner worker must be a decimal 0..%u",
                UINT32_MAX);
  o->worker = (uint32_t)v;
  if (vigil__redis_parse_u64(e[4]->str, e[4]->len, UINT64_MAX, &o->conn_id) < 0)
    return fail(err, errlen, "answer owner conn must be a decimal");
  if (e[5]->integer < 0)
    return fail(err, errlen, "answer owner epoch must not be negative");
  o->epoch = (uint64_t)e[5]->integer;
  if (flag(e[6], 6, &o->proven, err, errlen) < 0 ||
      flag(e[7], 7, &o->node_alive, err, errlen) < 0)
    return -1;
  o->present = 1;
  return 0;
}

int vigil__dir_decode_verdict(const redisReply *r, int is_assert,
                              vigil__dir_verdict *out, char *err,
                              size_t errlen) {
  static const char *words[4] = {"installed", "refused", "kept", "fenced"};
  if (!r) return fail(err, errlen, "no answer");
  if (r->type == REDIS_REPLY_ERROR) return reply_error(r, err, errlen);
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 8)
    return fail(err, errlen, "answer must be an array of 8, got %s%s",
                vigil__redis_reply_type_name(r->type),
                r->type == REDIS_REPLY_ARRAY ? " of another size" : "");
  vigil__dir_verdict v;
  memset(&v, 0, sizeof v);
  const redisReply *w = element(r, 0, REDIS_REPLY_STRING, err, errlen);
  if (!w) return -1;
  int kind = -1;
  for (int i = is_assert ? 2 : 0; i < (is_assert ? 4 : 2); i++)
    if (vigil__redis_reply_is(w, words[i])) kind = i;
  if (kind < 0)
    return fail(err, errlen, "answer verdict must be %s or %s",
                words[is_assert ? 2 : 0], words[is_assert ? 3 : 1]);
  v.kind = (vigil__dir_verdict_kind)kind;
  const redisReply *e = element(r, 1, REDIS_REPLY_INTEGER, err, errlen);
  if (!e) return -1;
  int held = kind == VIGIL__DIR_V_INSTALLED || kind == VIGIL__DIR_V_KEPT;
  if (e->integer < (held ? 1 : 0))
    return fail(err, errlen, "answer epoch must be %s",
                held ? "at least 1" : "not negative");
  v.epoch = (uint64_t)e->integer;
  if (decode_owner(r, &v.other, err, errlen) < 0) return -1;
  if (kind == VIGIL__DIR_V_REFUSED && !(v.other.present && v.other.proven))
    return fail(err, errlen, "a refusal must name a proven holder");
  *out = v;
  return 0;
}

int vigil__dir_decode_release(const redisReply *r, char *err,
                              size_t errlen) {
  if (!r) return fail(err, errlen, "no answer");
  if (r->type == REDIS_REPLY_ERROR) return reply_error(r, err, errlen);
  if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
    return fail(err, errlen, "answer to a release must be 0 or 1, got %s",
                vigil__redis_reply_type_name(r->type));
  return (int)r->integer;
}

/* ---- connection upkeep -------------------------------------------------- */

static int status_ok(const redisReply *r) {
  return r->type == REDIS_REPLY_STATUS && vigil__redis_reply_is(r, "OK");
}

/* "integer", or "error \"ERR ...\"" for the text-bearing types. */
static void describe(const redisReply *r, char *buf, size_t len) {
  if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS)
    snprintf(buf, len, "%s \"%.120s\"", vigil__redis_reply_type_name(r->type),
             r->str);
  else
    snprintf(buf, len, "%s", vigil__redis_reply_type_name(r->type));
}

static int is_confirmation(const redisReply *r, const char *channel) {
  size_t n = strlen(channel);
  return r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0] &&
         vigil__redis_reply_is(r->element[0], "subscribe") &&
         r->element[1] && r->element[1]->type == REDIS_REPLY_STRING &&
         r->element[1]->len == n && memcmp(r->element[1]->str, channel, n) == 0 &&
         r->element[2] && r->element[2]->type == REDIS_REPLY_INTEGER &&
         r->element[2]->integer >= 1;
}

#define WRONG(...) vigil__textf(why, len, VIGIL__DIR_ANSWER_WRONG, __VA_ARGS__)

int vigil__dir_check_answer(vigil__dir_step step, const redisReply *r,
                            const vigil__dir_expect *e, char *why,
                            size_t len) {
  char got[160];
  describe(r, got, sizeof got);
  switch (step) {
  case VIGIL__DIR_STEP_AUTH:
    if (status_ok(r)) return VIGIL__DIR_ANSWER_OK;
    return WRONG("AUTH failed: the store answered %s", got);
  case VIGIL__DIR_STEP_SELECT:
    if (status_ok(r)) return VIGIL__DIR_ANSWER_OK;
    return WRONG("SELECT %u failed: the store answered %s", (unsigned)e->db,
                 got);
  case VIGIL__DIR_STEP_SETNAME: /* a proxy may not know CLIENT */
    if (status_ok(r) || r->type == REDIS_REPLY_ERROR)
      return VIGIL__DIR_ANSWER_OK;
    return WRONG("CLIENT SETNAME: the store answered %s", got);
  case VIGIL__DIR_STEP_SCRIPT_LOAD:
    if (r->type == REDIS_REPLY_STRING && r->len == 40 &&
        memcmp(r->str, e->sha, 40) == 0)
      return VIGIL__DIR_ANSWER_OK;
    return WRONG("SCRIPT LOAD answered %s, expected the SHA-1 %s", got,
                 e->sha);
  case VIGIL__DIR_STEP_LIVENESS:
    if (r->type == REDIS_REPLY_NIL ||
        (r->type == REDIS_REPLY_STRING && r->len <= 64))
      return VIGIL__DIR_ANSWER_OK;
    return WRONG("liveness SET .. GET (Redis >= 6.2) answered %s", got);
  case VIGIL__DIR_STEP_SUBSCRIBE:
    if (is_confirmation(r, e->channel)) return VIGIL__DIR_ANSWER_OK;
    return WRONG("SUBSCRIBE %s answered %s, not a confirmation", e->channel,
                 got);
  case VIGIL__DIR_STEP_REFRESH:
    if (r->type == REDIS_REPLY_STRING && r->len == VIGIL__DIR_INC_LEN &&
        memcmp(r->str, e->inc, VIGIL__DIR_INC_LEN) == 0)
      return VIGIL__DIR_ANSWER_OK;
    if (r->type == REDIS_REPLY_NIL)
      return vigil__textf(why, len, VIGIL__DIR_ANSWER_LAPSED,
                                "the liveness key had expired");
    if (r->type == REDIS_REPLY_STRING && r->len <= 64)
      return vigil__textf(
          why, len, VIGIL__DIR_ANSWER_LAPSED,
          "the liveness key held incarnation %.*s, not ours: is node id %s "
          "in use twice?",
          (int)r->len, r->str, e->node);
    return WRONG("liveness refresh answered %s", got);
  default: /* VIGIL__DIR_STEP_PING */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0] &&
        vigil__redis_reply_is(r->element[0], "pong"))
      return VIGIL__DIR_ANSWER_OK;
    return WRONG("PING on the subscriber answered %s", got);
  }
}
