/*
 * The store is untrusted input: a fake store on the test's loop answers
 * the directory's commands with garbage RESP, replies nobody asked for,
 * huge arrays and strings, wrong types at every step of the handshake,
 * malformed script answers, and pub/sub frames that abort hiredis 0.14's
 * own async layer. Each must end in a clear error (a DOWN reason or an
 * ERROR result), never a crash, and leak nothing (ASan and the memcheck
 * pass run this file too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dirtest.h"

typedef struct script {
  const char *auth, *select, *client, *script_load, *liveness, *refresh;
  const char *subscribe, *ping, *evalsha, *eval;
  const char *evalsha_next[4]; /* answers to the next EVALSHAs, in turn */
  int evalsha_used;
  size_t big_tail; /* bytes of filler sent after script_load */
  int sets;        /* SET commands seen */
} script;

typedef struct fx {
  struct ev_loop *loop;
  fakestore fs;
  script s;
  tnode a;
} fx;

static int is(char *arg, size_t len, const char *s) {
  return len == strlen(s) && strncasecmp(arg, s, len) == 0;
}

static int scripted(fakestore *fs, int conn, int argc, char **argv,
                    size_t *lens, void *data) {
  script *s = data;
  const char *reply = NULL;
  size_t tail = 0;
  if (is(argv[0], lens[0], "AUTH"))
    reply = s->auth;
  else if (is(argv[0], lens[0], "SELECT"))
    reply = s->select;
  else if (is(argv[0], lens[0], "CLIENT"))
    reply = s->client;
  else if (is(argv[0], lens[0], "SCRIPT")) {
    reply = s->script_load;
    tail = s->big_tail;
  } else if (is(argv[0], lens[0], "SET"))
    reply = s->sets++ == 0 ? s->liveness : s->refresh;
  else if (is(argv[0], lens[0], "SUBSCRIBE"))
    reply = s->subscribe;
  else if (is(argv[0], lens[0], "PING"))
    reply = s->ping;
  else if (is(argv[0], lens[0], "EVALSHA"))
    reply = s->evalsha_used < 4 && s->evalsha_next[s->evalsha_used]
                ? s->evalsha_next[s->evalsha_used++]
                : s->evalsha;
  else if (is(argv[0], lens[0], "EVAL"))
    reply = s->eval;
  if (reply) {
    fs_writes(fs, conn, reply);
    if (tail) {
      char *zeros = calloc(1, tail);
      fs_write(fs, conn, zeros, tail);
      free(zeros);
    }
    return 0;
  }
  if (fs_default_answer(fs, conn, argc, argv, lens, NULL) < 0)
    fs_writes(fs, conn, "$-1\r\n");
  return 0;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  fs_start(&f->fs, f->loop);
  f->fs.answer = scripted;
  f->fs.data = &f->s;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  tn_stop(&f->a);
  fs_stop(&f->fs);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

/* Starts the directory on the fake store (url NULL) with short timeouts;
 * quiet: no refresh or PING for 10 s, so that nothing is in flight when
 * a test pushes a frame of its own. */
static void start_with(fx *f, const char *url, int quiet) {
  vigil__redis_dir_config c;
  tn_config(&c, url ? url : f->fs.url, "node-a", 0);
  c.command_timeout_ms = 100 + vt_slack_ms(100);
  c.liveness_ttl_ms = quiet ? 30000 : 3 * c.command_timeout_ms;
  tn_start(&f->a, f->loop, &c);
}

static void start(fx *f, const char *url) { start_with(f, url, 0); }

/* Runs until the first DOWN; its reason must say `says`. */
static void expect_down(fx *f, const char *says) {
  assert_true(tn_wait_downs(&f->a, 1, 5000));
  if (!strstr(f->a.reason, says))
    fprintf(stderr, "reason \"%s\", want \"%s\"\n", f->a.reason, says);
  assert_non_null(strstr(f->a.reason, says));
}

/* ---- the handshake --------------------------------------------------------- */

typedef struct handshake_case {
  script s;
  const char *url_suffix; /* appended to the fake store's URL */
  const char *says;
} handshake_case;

static void wrong_handshake_answers(void **state) {
  fx *f = *state;
  static const handshake_case cases[] = {
      {{.client = "HELLO\r\n"}, "", "protocol error from the store: "},
      {{.client = "%1\r\n+a\r\n+b\r\n"}, "", "protocol error from the store"},
      {{.script_load = "*100000\r\n"}, "",
       "array of 100000 elements, allowed 0..16"},
      {{.script_load = "$100000000\r\n", .big_tail = 100000}, "",
       "a reply over"},
      {{.script_load =
            "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"},
       "", "protocol error from the store: No support for nested"},
      {{.auth = ":1\r\n"}, ":pw@", "AUTH failed: the store answered integer"},
      {{.auth = "-WRONGPASS invalid username-password pair\r\n"}, ":pw@",
       "AUTH failed: the store answered error \"WRONGPASS"},
      {{.select = "-ERR DB index is out of range\r\n"}, "/5",
       "SELECT 5 failed: the store answered error \"ERR DB index"},
      {{.select = "$2\r\nOK\r\n"}, "/5", "SELECT 5 failed: the store answered "
                                         "string"},
      {{.client = ":1\r\n"}, "", "CLIENT SETNAME: the store answered integer"},
      {{.script_load = ":1\r\n"}, "", "SCRIPT LOAD answered integer"},
      {{.script_load = "$40\r\n0000000000000000000000000000000000000000\r\n"},
       "", "SCRIPT LOAD answered string, expected the SHA-1"},
      {{.script_load = "-NOSCRIPT\r\n"}, "", "SCRIPT LOAD answered error"},
      {{.liveness = "-ERR syntax error\r\n"}, "",
       "liveness SET .. GET (Redis >= 6.2) answered error \"ERR syntax"},
      {{.liveness = ":3\r\n"}, "", "liveness SET .. GET (Redis >= 6.2) "
                                   "answered integer"},
      {{.subscribe = "+OK\r\n"}, "", "not a confirmation"},
      {{.subscribe = "*3\r\n$9\r\nsubscribe\r\n$5\r\nother\r\n:1\r\n"}, "",
       "not a confirmation"},
      /* Replies nobody asked for: aborts in hiredis's async layer. */
      {{.liveness = "$-1\r\n+OK\r\n"}, "", "with no command waiting for it"},
      {{.subscribe = "*3\r\n:1\r\n:2\r\n:3\r\n"}, "",
       "not a confirmation"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char url[128];
    f->s = cases[i].s;
    if (cases[i].url_suffix[0] == ':')
      snprintf(url, sizeof url, "redis://%s127.0.0.1:%u", cases[i].url_suffix,
               (unsigned)f->fs.port);
    else
      snprintf(url, sizeof url, "%s%s", f->fs.url, cases[i].url_suffix);
    start(f, url);
    expect_down(f, cases[i].says);
    assert_int_equal(f->a.ups, 0);
    tn_stop(&f->a);
  }
}

static void tolerated_answers(void **state) {
  fx *f = *state;
  /* A proxy that does not know CLIENT SETNAME, and a liveness key that
   * held something else (a previous incarnation): both fine. */
  f->s.client = "-ERR unknown command 'CLIENT'\r\n";
  f->s.liveness = "$16\r\nffffffffffffffff\r\n";
  start(f, NULL);
  tn_wait_up(&f->a);
  assert_int_equal(f->a.downs, 0);
}

/* ---- after UP: script answers, pushes, upkeep ---------------------------- */

typedef struct answer_case {
  const char *evalsha;
  const char *says;
} answer_case;

static void malformed_claim_answers(void **state) {
  fx *f = *state;
  static const answer_case cases[] = {
      {":1\r\n", "answer must be an array of 8, got integer"},
      {"$-1\r\n", "answer must be an array of 8, got nil"},
      {"+OK\r\n", "answer must be an array of 8, got status"},
      {"-ERR boom\r\n", "the store answered an error: ERR boom"},
      {"*2\r\n:1\r\n:2\r\n", "got array of another size"},
      {"*8\r\n$9\r\ninstalled\r\n:1\r\n$8\r\nbad node\r\n$1\r\n0\r\n$1\r\n1\r\n"
       ":1\r\n:0\r\n:1\r\n",
       "owner node must be 1..64"},
      {"*8\r\n$9\r\ninstalled\r\n$1\r\n1\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n"
       ":0\r\n:0\r\n:0\r\n",
       "element 2 must be integer, got string"},
      {"*8\r\n$4\r\nkept\r\n:1\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n:0\r\n:0\r\n"
       ":0\r\n",
       "verdict must be installed or refused"},
      {"*8\r\n$9\r\ninstalled\r\n:1\r\n$-1\r\n$0\r\n\r\n$0\r\n\r\n:0\r\n:0\r\n"
       ":0\r\n",
       "element 3 must be string, got nil"},
  };
  start(f, NULL);
  tn_wait_up(&f->a);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    f->s.evalsha = cases[i].evalsha;
    const tn_result *r = tn_claim(&f->a, "dev", i + 1, 0);
    if (r->status != VIGIL__DIR_ERROR || !strstr(r->detail, cases[i].says))
      fprintf(stderr, "case %zu: %s \"%s\"\n", i,
              vigil__dir_status_name(r->status), r->detail);
    assert_int_equal(r->status, VIGIL__DIR_ERROR);
    assert_non_null(strstr(r->detail, cases[i].says));
    assert_string_equal(r->identity, "dev");
    assert_true(vigil__redis_dir_is_up(f->a.d)); /* framing was fine */
  }
  assert_int_equal(f->a.downs, 0);

  /* NOSCRIPT, then NOSCRIPT again for EVAL: one retry, then an error. */
  f->s.evalsha = "-NOSCRIPT No matching script\r\n";
  f->s.eval = "-NOSCRIPT still\r\n";
  const tn_result *r = tn_claim(&f->a, "dev", 100, 0);
  assert_int_equal(r->status, VIGIL__DIR_ERROR);
  assert_non_null(strstr(r->detail, "NOSCRIPT still"));
  assert_string_equal(f->fs.last_cmd, "EVAL");
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.noscript, 1);

  /* A release answered with garbage is counted, nothing else. */
  f->s.evalsha_next[0] = "*1\r\n:1\r\n";
  f->s.evalsha_next[1] = ":0\r\n";
  assert_int_equal(vigil__redis_dir_release(f->a.d, "dev", 3, 1), 0);
  assert_int_equal(vigil__redis_dir_release(f->a.d, "dev", 3, 2), 0);
  f->s.evalsha = "*8\r\n$9\r\ninstalled\r\n:3\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n"
                 "\r\n:0\r\n:0\r\n:0\r\n";
  /* The claim after them comes back once both were answered. */
  r = tn_claim(&f->a, "dev", 101, 0);
  assert_int_equal(r->status, VIGIL__DIR_INSTALLED);
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.errors, 10 + 1);
  assert_int_equal(st.releases_stale, 1);
  assert_non_null(strstr(vigil__redis_dir_last_error(f->a.d), "release:"));
}

static void push(fx *f, const char *fmt, const char *payload) {
  char buf[512];
  int sub = fs_sub_conn(&f->fs);
  assert_true(sub >= 0);
  const char *ch = f->fs.conns[sub].channel;
  snprintf(buf, sizeof buf, fmt, strlen(ch), ch, strlen(payload), payload);
  fs_writes(&f->fs, sub, buf);
}

static void garbage_on_the_channel(void **state) {
  fx *f = *state;
  start_with(f, NULL, 1);
  tn_wait_up(&f->a);
  const char *msg3 = "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n";
  char good[128];
  snprintf(good, sizeof good, "E1 2 %s 0 5 1 node-b dev",
           vigil__redis_dir_incarnation(f->a.d));

  push(f, msg3, "garbage");
  push(f, msg3, "E1 2 0123456789abcdef 0 5 1 node-b dev"); /* not ours */
  push(f, "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n:%zu%s\r\n", ""); /* int */
  push(f, "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", good);
  assert_true(tn_wait_evictions(&f->a, 1, 5000));
  vigil__redis_dir_stats st;
  vigil__redis_dir_get_stats(f->a.d, &st);
  assert_int_equal(st.evictions_dropped, 3);
  assert_int_equal(f->a.evictions[0].ev.conn_id, 5);
  assert_int_equal(f->a.downs, 0);

  /* A message on another channel is dropped too. */
  int sub = fs_sub_conn(&f->fs);
  fs_writes(&f->fs, sub,
            "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$3\r\nabc\r\n");
  for (int i = 0; i < 100 && st.evictions_dropped < 4; i++) {
    vt_run_until(f->loop, NULL, NULL, 10);
    vigil__redis_dir_get_stats(f->a.d, &st);
  }
  assert_int_equal(st.evictions_dropped, 4);
  assert_int_equal(f->a.downs, 0);

  /* An array of 3 whose head is not a string: hiredis 0.14's async layer
   * asserts on it. Here it is a reply nobody waits for: DOWN, no crash. */
  fs_writes(&f->fs, sub, "*3\r\n:1\r\n:2\r\n:3\r\n");
  expect_down(f, "with no command waiting for it");
  tn_wait_ups(&f->a, 2, 5000); /* and back */
}

static void more_garbage_on_the_channel(void **state) {
  fx *f = *state;
  static const char *frames[] = {
      "*1\r\n$7\r\nmessage\r\n",
      "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nm\r\n",
      "+OK\r\n",
      "$5\r\nhello\r\n",
      "*2\r\n$-1\r\n$-1\r\n",
      "*3\r\n*1\r\n:1\r\n$1\r\nc\r\n$1\r\nm\r\n",
  };
  for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
    start_with(f, NULL, 1);
    tn_wait_up(&f->a);
    fs_writes(&f->fs, fs_sub_conn(&f->fs), frames[i]);
    expect_down(f, "with no command waiting for it");
    tn_stop(&f->a);
  }
}

static void upkeep_answers_checked(void **state) {
  fx *f = *state;
  /* The refresh must find our incarnation; garbage takes us DOWN. */
  f->s.refresh = ":7\r\n";
  start(f, NULL);
  tn_wait_up(&f->a);
  expect_down(f, "liveness refresh answered integer");
  tn_stop(&f->a);

  /* Another incarnation in the liveness key: reported as a lapse (UP
   * again, re-assert), naming the suspect. */
  f->s.sets = 0;
  f->s.refresh = "$16\r\n0123456789abcdef\r\n";
  start(f, NULL);
  tn_wait_up(&f->a);
  assert_true(tn_wait_ups(&f->a, 2, 5000));
  assert_non_null(strstr(f->a.reason, "held incarnation 0123456789abcdef"));
  assert_non_null(strstr(f->a.reason, "node id node-a in use twice"));
  tn_stop(&f->a);

  /* The subscriber's PING must come back in subscribed form. */
  f->s.sets = 0;
  f->s.refresh = NULL;
  f->s.ping = "+PONG\r\n";
  start(f, NULL);
  tn_wait_up(&f->a);
  expect_down(f, "PING on the subscriber answered status \"PONG\"");
  tn_stop(&f->a);

  /* The store hangs up. */
  f->s.ping = NULL;
  start(f, NULL);
  tn_wait_up(&f->a);
  for (int i = 0; i < f->fs.nconns; i++) fs_close(&f->fs, i);
  expect_down(f, "the store closed the connection");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(wrong_handshake_answers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(tolerated_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(malformed_claim_answers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(garbage_on_the_channel, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(more_garbage_on_the_channel, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(upkeep_answers_checked, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
