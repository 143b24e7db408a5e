/*
 * The directory protocol's pure parts: the eviction message parser, the
 * fencing rule, the decoding of the script's answers (every wrong shape a
 * store could send), and the bounded RESP reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/redis_dir_proto.h"
#include "cluster/redis_reply.h"
#include "cluster/sha1.h"
#include "testutil.h"

#define INC "0123456789abcdef"

/* ---- eviction messages --------------------------------------------------- */

static int parse(const char *msg, vigil__dir_eviction *ev, char *err) {
  return vigil__dir_parse_eviction(msg, strlen(msg), ev, err, 200);
}

static void parses_an_eviction(void **state) {
  (void)state;
  vigil__dir_eviction ev;
  char err[200];
  const char *msg = "E1 7 " INC " 3 18446744073709551615 6 node-b.1 dev 42";
  assert_int_equal(parse(msg, &ev, err), 0);
  assert_int_equal(ev.fence_epoch, 7);
  assert_string_equal(ev.holder_inc, INC);
  assert_int_equal(ev.worker, 3);
  assert_true(ev.conn_id == UINT64_MAX);
  assert_int_equal(ev.holder_epoch, 6);
  assert_string_equal(ev.claimer, "node-b.1");
  /* The identity is the raw rest, spaces included. */
  assert_int_equal(ev.identity_len, 6);
  assert_memory_equal(ev.identity, "dev 42", 6);

  /* Binary identity bytes, NUL included. */
  char bin[64];
  int n = snprintf(bin, sizeof bin, "E1 2 " INC " 0 1 1 a ");
  memcpy(bin + n, "\0\xff\r\n", 4);
  assert_int_equal(
      vigil__dir_parse_eviction(bin, (size_t)n + 4, &ev, err, sizeof err), 0);
  assert_int_equal(ev.identity_len, 4);
  assert_memory_equal(ev.identity, "\0\xff\r\n", 4);
}

typedef struct bad_msg {
  const char *msg;
  const char *says;
} bad_msg;

static const bad_msg bad_msgs[] = {
    {"", "ends before its fence epoch"},
    {"E1", "ends before its fence epoch"},
    {"E1 7 " INC " 3 9 6 b", "ends before its identity"},
    {"E1 7 " INC " 3 9 6 b ", "identity must be 1..65535 bytes"},
    {"E2 7 " INC " 3 9 6 b x", "tag must be E1"},
    {"e1 7 " INC " 3 9 6 b x", "tag must be E1"},
    {"E1 0 " INC " 3 9 0 b x", "fence epoch must be a decimal 1.."},
    {"E1 -7 " INC " 3 9 6 b x", "fence epoch must be a decimal"},
    {"E1 +7 " INC " 3 9 6 b x", "fence epoch must be a decimal"},
    {"E1 18446744073709551616 " INC " 3 9 6 b x", "fence epoch"},
    {"E1 7  " INC " 3 9 6 b x", "incarnation must be 16 lowercase hex"},
    {"E1 7 0123456789ABCDEF 3 9 6 b x", "incarnation must be 16 lowercase"},
    {"E1 7 0123456789abcde 3 9 6 b x", "incarnation must be 16"},
    {"E1 7 " INC " 4294967296 9 6 b x", "worker must be a decimal 0..4294967295"},
    {"E1 7 " INC " 3 x9 6 b x", "conn id must be a decimal"},
    {"E1 7 " INC " 3 9 6x b x", "holder epoch must be a decimal"},
    {"E1 7 " INC " 3 9 7 b x", "fence epoch must be above the holder epoch"},
    {"E1 7 " INC " 3 9 8 b x", "fence epoch must be above the holder epoch"},
    {"E1 7 " INC " 3 9 6 b/c x", "claimer node must be 1..64"},
    {"E1 7 " INC " 3 9 6  x", "claimer node must be 1..64"},
};

static void refuses_malformed_evictions(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_msgs / sizeof bad_msgs[0]; i++) {
    vigil__dir_eviction ev;
    char err[200] = "";
    int rc = parse(bad_msgs[i].msg, &ev, err);
    if (rc == 0 || !strstr(err, bad_msgs[i].says))
      fprintf(stderr, "\"%s\": rc %d \"%s\", want \"%s\"\n", bad_msgs[i].msg,
              rc, err, bad_msgs[i].says);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, bad_msgs[i].says));
  }
}

static void bounds_eviction_lengths(void **state) {
  (void)state;
  vigil__dir_eviction ev;
  char err[200];
  size_t head_len = strlen("E1 2 " INC " 0 1 1 ");
  char node[80];
  memset(node, 'n', 65);
  node[65] = '\0';
  /* A 65-byte claimer node. */
  char msg[200];
  snprintf(msg, sizeof msg, "E1 2 " INC " 0 1 1 %s x", node);
  assert_int_equal(parse(msg, &ev, err), -1);
  assert_non_null(strstr(err, "claimer node must be 1..64"));
  node[64] = '\0';
  snprintf(msg, sizeof msg, "E1 2 " INC " 0 1 1 %s x", node);
  assert_int_equal(parse(msg, &ev, err), 0);

  /* Identity of 65535 bytes is fine, 65536 is not. */
  size_t big = head_len + 2 + 65536;
  char *buf = malloc(big);
  assert_non_null(buf);
  memcpy(buf, "E1 2 " INC " 0 1 1 a ", head_len + 2);
  memset(buf + head_len + 2, 'i', 65536);
  assert_int_equal(vigil__dir_parse_eviction(buf, big - 1, &ev, err, 200), 0);
  assert_int_equal(ev.identity_len, 65535);
  assert_int_equal(vigil__dir_parse_eviction(buf, big, &ev, err, 200), -1);
  assert_non_null(strstr(err, "identity must be 1..65535"));
  /* Anything past the largest possible message is refused unread. */
  assert_int_equal(
      vigil__dir_parse_eviction(buf, VIGIL__DIR_MSG_MAX + 1, &ev, err, 200),
      -1);
  assert_non_null(strstr(err, "eviction message of"));
  free(buf);
  assert_int_equal(vigil__dir_parse_eviction(NULL, 0, &ev, err, 200), -1);
}

/* ---- fencing rule -------------------------------------------------------- */

static void fences_only_the_named_older_conn(void **state) {
  (void)state;
  vigil__dir_eviction ev;
  char err[200];
  assert_int_equal(parse("E1 5 " INC " 0 11 4 b dev", &ev, err), 0);
  assert_true(vigil__dir_must_fence(&ev, 11, 4));  /* the recorded holder */
  assert_true(vigil__dir_must_fence(&ev, 11, 0));  /* its claim in flight */
  assert_false(vigil__dir_must_fence(&ev, 11, 5)); /* re-epoched: newer */
  assert_false(vigil__dir_must_fence(&ev, 11, 9));
  assert_false(vigil__dir_must_fence(&ev, 12, 1)); /* another conn */
  assert_false(vigil__dir_must_fence(&ev, 12, 0));
  assert_false(vigil__dir_must_fence(NULL, 11, 4));
}

/* ---- script answers ------------------------------------------------------ */

static redisReply *mk(int type) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = type;
  return r;
}

static redisReply *mk_str(const char *s) {
  redisReply *r = mk(REDIS_REPLY_STRING);
  r->len = strlen(s);
  r->str = strdup(s);
  return r;
}

static redisReply *mk_int(long long v) {
  redisReply *r = mk(REDIS_REPLY_INTEGER);
  r->integer = v;
  return r;
}

static redisReply *mk_err(const char *s) {
  redisReply *r = mk_str(s);
  r->type = REDIS_REPLY_ERROR;
  return r;
}

/* {verdict, epoch, node, worker, conn, other_epoch, proven, alive} */
static redisReply *mk_answer(const char *verdict, long long epoch,
                             const char *node, const char *worker,
                             const char *conn, long long oe, long long proven,
                             long long alive) {
  redisReply *r = mk(REDIS_REPLY_ARRAY);
  r->elements = 8;
  r->element = calloc(8, sizeof *r->element);
  r->element[0] = mk_str(verdict);
  r->element[1] = mk_int(epoch);
  r->element[2] = mk_str(node);
  r->element[3] = mk_str(worker);
  r->element[4] = mk_str(conn);
  r->element[5] = mk_int(oe);
  r->element[6] = mk_int(proven);
  r->element[7] = mk_int(alive);
  return r;
}

static void decodes_good_answers(void **state) {
  (void)state;
  vigil__dir_verdict v;
  char err[200];
  redisReply *r = mk_answer("installed", 8, "node-a", "2", "77", 7, 1, 1);
  assert_int_equal(vigil__dir_decode_verdict(r, 0, &v, err, sizeof err), 0);
  assert_int_equal(v.kind, VIGIL__DIR_V_INSTALLED);
  assert_int_equal(v.epoch, 8);
  assert_true(v.other.present);
  assert_string_equal(v.other.node, "node-a");
  assert_int_equal(v.other.worker, 2);
  assert_int_equal(v.other.conn_id, 77);
  assert_int_equal(v.other.epoch, 7);
  assert_int_equal(v.other.proven, 1);
  assert_int_equal(v.other.node_alive, 1);
  vigil__redis_reply_free(r);

  r = mk_answer("installed", 1, "", "", "", 0, 0, 0);
  assert_int_equal(vigil__dir_decode_verdict(r, 0, &v, err, sizeof err), 0);
  assert_false(v.other.present);
  vigil__redis_reply_free(r);

  r = mk_answer("refused", 3, "a", "0", "1", 3, 1, 1);
  assert_int_equal(vigil__dir_decode_verdict(r, 0, &v, err, sizeof err), 0);
  assert_int_equal(v.kind, VIGIL__DIR_V_REFUSED);
  vigil__redis_reply_free(r);

  r = mk_answer("fenced", 9, "", "", "", 0, 0, 0); /* released meanwhile */
  assert_int_equal(vigil__dir_decode_verdict(r, 1, &v, err, sizeof err), 0);
  assert_int_equal(v.kind, VIGIL__DIR_V_FENCED);
  assert_int_equal(v.epoch, 9);
  vigil__redis_reply_free(r);

  r = mk_answer("kept", 4, "", "", "", 0, 0, 0);
  assert_int_equal(vigil__dir_decode_verdict(r, 1, &v, err, sizeof err), 0);
  assert_int_equal(v.kind, VIGIL__DIR_V_KEPT);
  vigil__redis_reply_free(r);

  r = mk_int(1);
  assert_int_equal(vigil__dir_decode_release(r, err, sizeof err), 1);
  r->integer = 0;
  assert_int_equal(vigil__dir_decode_release(r, err, sizeof err), 0);
  vigil__redis_reply_free(r);
}

typedef struct bad_answer {
  redisReply *r;
  int is_assert;
  const char *says;
} bad_answer;

static void refuses_malformed_answers(void **state) {
  (void)state;
  redisReply *short_array = mk(REDIS_REPLY_ARRAY);
  redisReply *hole = mk_answer("installed", 1, "", "", "", 0, 0, 0);
  vigil__redis_reply_free(hole->element[3]);
  hole->element[3] = NULL;
  redisReply *nested = mk_answer("installed", 1, "", "", "", 0, 0, 0);
  vigil__redis_reply_free(nested->element[0]);
  nested->element[0] = mk(REDIS_REPLY_ARRAY);
  bad_answer bads[] = {
      {mk(REDIS_REPLY_NIL), 0, "must be an array of 8, got nil"},
      {mk_int(1), 0, "must be an array of 8, got integer"},
      {mk_str("installed"), 0, "must be an array of 8, got string"},
      {short_array, 0, "got array of another size"},
      {mk_err("ERR boom"), 0, "the store answered an error: ERR boom"},
      {mk_err("NOSCRIPT No matching script"), 1, "answered an error: NOSCRIPT"},
      {mk_answer("kept", 1, "", "", "", 0, 0, 0), 0,
       "verdict must be installed or refused"},
      {mk_answer("installed", 1, "", "", "", 0, 0, 0), 1,
       "verdict must be kept or fenced"},
      {mk_answer("installed", 0, "", "", "", 0, 0, 0), 0,
       "epoch must be at least 1"},
      {mk_answer("fenced", -1, "", "", "", 0, 0, 0), 1,
       "epoch must be not negative"},
      {mk_answer("installed", 2, "a b", "0", "1", 1, 0, 1), 0,
       "owner node must be 1..64"},
      {mk_answer("installed", 2, "a", "-1", "1", 1, 0, 1), 0,
       "owner worker must be a decimal"},
      {mk_answer("installed", 2, "a", "4294967296", "1", 1, 0, 1), 0,
       "owner worker must be a decimal 0..4294967295"},
      {mk_answer("installed", 2, "a", "0", "", 1, 0, 1), 0,
       "owner conn must be a decimal"},
      {mk_answer("installed", 2, "a", "0", "1", -3, 0, 1), 0,
       "owner epoch must not be negative"},
      {mk_answer("installed", 2, "a", "0", "1", 1, 2, 1), 0,
       "element 7 must be 0 or 1"},
      {mk_answer("installed", 2, "a", "0", "1", 1, 0, -1), 0,
       "element 8 must be 0 or 1"},
      {mk_answer("installed", 2, "", "0", "", 0, 0, 0), 0,
       "names no owner but has its fields"},
      {mk_answer("refused", 2, "a", "0", "1", 1, 0, 1), 0,
       "refusal must name a proven holder"},
      {mk_answer("refused", 2, "", "", "", 0, 0, 0), 0,
       "refusal must name a proven holder"},
      {hole, 0, "element 4 must be string, got unknown"},
      {nested, 0, "element 1 must be string, got array"},
  };
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    vigil__dir_verdict v;
    char err[200] = "";
    int rc = vigil__dir_decode_verdict(bads[i].r, bads[i].is_assert, &v, err,
                                       sizeof err);
    if (rc == 0 || !strstr(err, bads[i].says))
      fprintf(stderr, "case %zu: rc %d \"%s\", want \"%s\"\n", i, rc, err,
              bads[i].says);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, bads[i].says));
    vigil__redis_reply_free(bads[i].r);
  }
  char err[200];
  vigil__dir_verdict v;
  assert_int_equal(vigil__dir_decode_verdict(NULL, 0, &v, err, sizeof err),
                   -1);
  redisReply *r = mk_int(2);
  assert_int_equal(vigil__dir_decode_release(r, err, sizeof err), -1);
  assert_non_null(strstr(err, "must be 0 or 1"));
  vigil__redis_reply_free(r);
  r = mk(REDIS_REPLY_NIL);
  assert_int_equal(vigil__dir_decode_release(r, err, sizeof err), -1);
  vigil__redis_reply_free(r);
  r = mk_err("ERR vigil directory: corrupt epoch");
  assert_int_equal(vigil__dir_decode_release(r, err, sizeof err), -1);
  assert_non_null(strstr(err, "corrupt epoch"));
  vigil__redis_reply_free(r);
}

/* ---- names ----------------------------------------------------------- */

static void checks_node_and_prefix_alphabets(void **state) {
  (void)state;
  assert_true(vigil__dir_node_valid("node-1.eu_west", 14));
  assert_false(vigil__dir_node_valid("", 0));
  assert_false(vigil__dir_node_valid("a:b", 3)); /* ':' ends channel fields */
  assert_false(vigil__dir_node_valid("a b", 3));
  assert_true(vigil__dir_prefix_valid("", 0));
  assert_true(vigil__dir_prefix_valid("{fleet-7}:", 10));
  assert_false(vigil__dir_prefix_valid("a b", 3));
  assert_false(vigil__dir_prefix_valid("a\x7f", 2));
  char sha[41];
  assert_int_equal(vigil__dir_script_sha1(sha), 0);
  assert_int_equal(strlen(sha), 40);
  assert_int_equal(strspn(sha, "0123456789abcdef"), 40);
}

/* The script's name is its SHA-1 (src/cluster/sha1.c): the FIPS 180
 * examples, and lengths around the padding's block boundaries. */
static void sha1_matches_known_digests(void **state) {
  (void)state;
  static char a[1000000];
  memset(a, 'a', sizeof a);
  static const struct {
    const char *data;
    size_t len;
    const char *hex;
  } v[] = {
      {"abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
      {a, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {a, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {a, 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
      {a, sizeof a, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t md[20];
    char hex[41];
    vigil__sha1(v[i].data, v[i].len, md);
    for (int k = 0; k < 20; k++) snprintf(hex + 2 * k, 3, "%02x", md[k]);
    assert_string_equal(hex, v[i].hex);
  }
}

/* ---- connection upkeep answers -------------------------------------------- */

static redisReply *mk_status(const char *s) {
  redisReply *r = mk_str(s);
  r->type = REDIS_REPLY_STATUS;
  return r;
}

static redisReply *mk_array3(redisReply *a, redisReply *b, redisReply *c) {
  redisReply *r = mk(REDIS_REPLY_ARRAY);
  r->elements = c ? 3 : 2;
  r->element = calloc(r->elements, sizeof *r->element);
  r->element[0] = a;
  r->element[1] = b;
  if (c) r->element[2] = c;
  return r;
}

static void checks_upkeep_answers(void **state) {
  (void)state;
  const char *sha = "817097d5e602eb3e9105812469838fd81e9948c4";
  vigil__dir_expect e = {sha, "vigil:evict:n:0", INC, "n", 3};
  static const struct {
    vigil__dir_step step;
    int want;
    const char *says;
  } steps[] = {
      {VIGIL__DIR_STEP_AUTH, 0, ""},
      {VIGIL__DIR_STEP_AUTH, -1, "AUTH failed: the store answered error"},
      {VIGIL__DIR_STEP_SELECT, -1, "SELECT 3 failed: the store answered nil"},
      {VIGIL__DIR_STEP_SETNAME, 0, ""},
      {VIGIL__DIR_STEP_SCRIPT_LOAD, 0, ""},
      {VIGIL__DIR_STEP_SCRIPT_LOAD, -1, "expected the SHA-1 817097d5"},
      {VIGIL__DIR_STEP_LIVENESS, 0, ""},
      {VIGIL__DIR_STEP_LIVENESS, -1, "(Redis >= 6.2) answered integer"},
      {VIGIL__DIR_STEP_SUBSCRIBE, 0, ""},
      {VIGIL__DIR_STEP_SUBSCRIBE, -1, "not a confirmation"},
      {VIGIL__DIR_STEP_REFRESH, 0, ""},
      {VIGIL__DIR_STEP_REFRESH, 1, "the liveness key had expired"},
      {VIGIL__DIR_STEP_REFRESH, 1, "held incarnation ffff, not ours: is node "
                                   "id n in use twice?"},
      {VIGIL__DIR_STEP_REFRESH, -1, "liveness refresh answered status \"OK\""},
      {VIGIL__DIR_STEP_PING, 0, ""},
      {VIGIL__DIR_STEP_PING, -1, "PING on the subscriber answered status"},
  };
  redisReply *answers[] = {
      mk_status("OK"),
      mk_err("WRONGPASS nope"),
      mk(REDIS_REPLY_NIL),
      mk_err("ERR unknown command"),
      mk_str(sha),
      mk_str("0000000000000000000000000000000000000000"),
      mk(REDIS_REPLY_NIL),
      mk_int(1),
      mk_array3(mk_str("subscribe"), mk_str("vigil:evict:n:0"), mk_int(1)),
      mk_array3(mk_str("subscribe"), mk_str("vigil:evict:n:1"), mk_int(1)),
      mk_str(INC),
      mk(REDIS_REPLY_NIL),
      mk_str("ffff"),
      mk_status("OK"),
      mk_array3(mk_str("pong"), mk_str(""), NULL),
      mk_status("PONG"),
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    char why[300] = "";
    int rc = vigil__dir_check_answer(steps[i].step, answers[i], &e, why,
                                     sizeof why);
    if (rc != steps[i].want || !strstr(why, steps[i].says))
      fprintf(stderr, "case %zu: %d \"%s\"\n", i, rc, why);
    assert_int_equal(rc, steps[i].want);
    assert_non_null(strstr(why, steps[i].says));
    vigil__redis_reply_free(answers[i]);
  }
}

/* ---- bounded reader ------------------------------------------------------ */

/* Feeds s to a fresh reader; returns the reply (or NULL with *failed). */
static redisReply *read_one(vigil__reply_guard *g, const char *s, size_t n,
                            int *failed, char *why) {
  redisReader *r = vigil__redis_reader_new(g);
  assert_non_null(r);
  void *obj = NULL;
  *failed = redisReaderFeed(r, s, n) != REDIS_OK ||
            redisReaderGetReply(r, &obj) != REDIS_OK;
  if (*failed)
    snprintf(why, 200, "%s", g->refused[0] ? g->refused : r->errstr);
  redisReaderFree(r);
  return obj;
}

static void reader_refuses_what_a_store_never_sends(void **state) {
  (void)state;
  vigil__reply_guard g = {.max_string = 100, .max_elements = 16,
                          .max_values = 64};
  int failed;
  char why[200];
  /* Well-formed replies of every type, nested. */
  const char *good = "*3\r\n$3\r\nabc\r\n:-42\r\n*3\r\n$-1\r\n+OK\r\n-ERR x\r\n";
  redisReply *r = read_one(&g, good, strlen(good), &failed, why);
  assert_false(failed);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->elements, 3);
  assert_string_equal(r->element[0]->str, "abc");
  assert_int_equal(r->element[1]->integer, -42);
  assert_int_equal(r->element[2]->element[0]->type, REDIS_REPLY_NIL);
  assert_true(vigil__redis_reply_is(r->element[2]->element[1], "OK"));
  assert_int_equal(r->element[2]->element[2]->type, REDIS_REPLY_ERROR);
  vigil__redis_reply_free(r);

  const char *huge_array = "*2000000000\r\n";
  r = read_one(&g, huge_array, strlen(huge_array), &failed, why);
  assert_true(failed);
  assert_null(r);
  assert_non_null(strstr(why, "array of 2000000000 elements, allowed 0..16"));

  const char *negative = "*-5\r\n";
  r = read_one(&g, negative, strlen(negative), &failed, why);
  assert_true(failed);
  assert_null(r); /* hiredis itself: "Multi-bulk length out of range" */

  char big[200];
  snprintf(big, sizeof big, "$101\r\n%0101d\r\n", 0);
  r = read_one(&g, big, strlen(big), &failed, why);
  assert_true(failed);
  assert_non_null(strstr(why, "string of 101 bytes, more than 100"));

  /* 16 x 16 values: a tree under the element bound, over the value one;
   * the partial tree is freed (ASan / valgrind see a leak otherwise). */
  char wide[4096];
  size_t n = (size_t)sprintf(wide, "*16\r\n");
  for (int i = 0; i < 16; i++) {
    n += (size_t)sprintf(wide + n, "*16\r\n");
    for (int k = 0; k < 16; k++) n += (size_t)sprintf(wide + n, ":1\r\n");
  }
  r = read_one(&g, wide, n, &failed, why);
  assert_true(failed);
  assert_non_null(strstr(why, "more than 64 values"));

  const char *deep = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
  g.refused[0] = '\0';
  r = read_one(&g, deep, strlen(deep), &failed, why);
  assert_true(failed);
  assert_non_null(strstr(why, "depth"));

  const char *resp3 = "%1\r\n+a\r\n+b\r\n";
  g.refused[0] = '\0';
  r = read_one(&g, resp3, strlen(resp3), &failed, why);
  assert_true(failed);
  assert_non_null(strstr(why, "Protocol error"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_an_eviction),
      cmocka_unit_test(refuses_malformed_evictions),
      cmocka_unit_test(bounds_eviction_lengths),
      cmocka_unit_test(fences_only_the_named_older_conn),
      cmocka_unit_test(decodes_good_answers),
      cmocka_unit_test(refuses_malformed_answers),
      cmocka_unit_test(checks_node_and_prefix_alphabets),
      cmocka_unit_test(sha1_matches_known_digests),
      cmocka_unit_test(checks_upkeep_answers),
      cmocka_unit_test(reader_refuses_what_a_store_never_sends),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
