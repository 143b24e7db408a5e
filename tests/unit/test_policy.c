/*
 * Policy defaults, validation messages, the effective user timeout, and
 * the error-code tables. Pure logic: no sockets, no loop.
 */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "vigil.h"

/* ---- defaults ---------------------------------------------------------- */

static void test_defaults_exact(void **state) {
  (void)state;
  vigil_policy p;
  memset(&p, 0xAB, sizeof p); /* garbage, including padding */
  vigil_policy_init(&p);

  assert_int_equal(p.keepalive, 1);
  assert_int_equal(p.keepalive_idle_s, 60);
  assert_int_equal(p.keepalive_intvl_s, 10);
  assert_int_equal(p.keepalive_cnt, 6);
  assert_true(p.user_timeout_ms == VIGIL_USER_TIMEOUT_AUTO);
  assert_int_equal(p.ping_interval_ms, 0);
  assert_int_equal(p.dead_after_ms, 0);
  assert_int_equal(p.suspect_after_ms, VIGIL_SUSPECT_AUTO);
  assert_int_equal(p.suspect_ping, 0);
  assert_int_equal(p.read_idle_ms, 0);
  assert_int_equal(p.write_idle_ms, 0);
  assert_int_equal(p.all_idle_ms, 0);
  assert_int_equal(p.idle_action, VIGIL_IDLE_NOTIFY);
  assert_int_equal(p.handshake_timeout_ms, 0);
  assert_int_equal(p.drain_timeout_ms, 5000);
  assert_int_equal(p.linger_max_ms, 30000);
  assert_int_equal(p.close_wait_grace_ms, 5000);
  assert_int_equal(p.fin_wait2_s, 0);
  assert_int_equal(p.abort_dead, 1);
  assert_int_equal(p.output_limit, 4u * 1024u * 1024u);
  assert_int_equal(p.overflow_action, VIGIL_OVERFLOW_CLOSE);
  assert_int_equal(p.takeover, VIGIL_TAKEOVER_NEWEST_WINS);
  assert_int_equal(p.flap_max, 0);
  assert_int_equal(p.flap_window_ms, 60000);
  assert_int_equal(p.flap_ban_ms, 300000);
  assert_int_equal(p.frame_codec, 0);
  assert_int_equal(p.max_frame, 65536);
  assert_int_equal(p.nodelay, 1);
  assert_int_equal(p.ping_min_interval_ms, 10);
  assert_int_equal(p.ping_strikes, 2);
  assert_int_equal(p.path_idle_max_s, 0);

  /* Byte-for-byte against a zeroed struct with the same fields: proves the
   * padding was cleared too, so policies can be compared with memcmp. */
  vigil_policy expect;
  memset(&expect, 0, sizeof expect);
  expect.keepalive = 1;
  expect.keepalive_idle_s = 60;
  expect.keepalive_intvl_s = 10;
  expect.keepalive_cnt = 6;
  expect.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
  expect.suspect_after_ms = VIGIL_SUSPECT_AUTO;
  expect.idle_action = VIGIL_IDLE_NOTIFY;
  expect.drain_timeout_ms = 5000;
  expect.linger_max_ms = 30000;
  expect.close_wait_grace_ms = 5000;
  expect.abort_dead = 1;
  expect.output_limit = 4u * 1024u * 1024u;
  expect.overflow_action = VIGIL_OVERFLOW_CLOSE;
  expect.takeover = VIGIL_TAKEOVER_NEWEST_WINS;
  expect.flap_window_ms = 60000;
  expect.flap_ban_ms = 300000;
  expect.max_frame = 65536;
  expect.nodelay = 1;
  expect.ping_min_interval_ms = 10;
  expect.ping_strikes = 2;
  assert_memory_equal(&p, &expect, sizeof p);
}

static void test_init_null_is_harmless(void **state) {
  (void)state;
  vigil_policy_init(NULL);
}

static void test_defaults_validate(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  char msg[128];
  memset(msg, 'x', sizeof msg);
  assert_int_equal(vigil_policy_validate(&p, msg, sizeof msg), VIGIL_OK);
  assert_string_equal(msg, ""); /* cleared on success */
  assert_int_equal(vigil_policy_validate(&p, NULL, 0), VIGIL_OK);
}

/* ---- bad policies ------------------------------------------------------ */

typedef struct bad_case {
  void (*mutate)(vigil_policy *p);
  const char *expect; /* the whole message */
} bad_case;

#define MUT(name, body)                                                      \
  static void name(vigil_policy *p) { body; }

MUT(ka_2, p->keepalive = 2)
MUT(ka_neg, p->keepalive = -1)
MUT(idle_0, p->keepalive_idle_s = 0)
MUT(idle_big, p->keepalive_idle_s = 32768)
MUT(intvl_0, p->keepalive_intvl_s = 0)
MUT(intvl_big, p->keepalive_intvl_s = 40000)
MUT(cnt_0, p->keepalive_cnt = 0)
MUT(cnt_big, p->keepalive_cnt = 128)
MUT(cnt_0_ka_off, p->keepalive = 0; p->keepalive_cnt = 0)
MUT(ut_neg2, p->user_timeout_ms = -2)
MUT(ut_big, p->user_timeout_ms = (int64_t)INT32_MAX + 1)
MUT(ping_big, p->ping_interval_ms = VIGIL_MAX_DURATION_MS + 1)
MUT(dead_max, p->dead_after_ms = UINT32_MAX)
MUT(suspect_big, p->suspect_after_ms = VIGIL_MAX_DURATION_MS + 1)
MUT(sping_2, p->suspect_ping = 2)
MUT(ridle_big, p->read_idle_ms = 90000000)
MUT(widle_big, p->write_idle_ms = 90000000)
MUT(aidle_big, p->all_idle_ms = 90000000)
MUT(iact_2, p->idle_action = (vigil_idle_action)2)
MUT(hs_big, p->handshake_timeout_ms = 100000000)
MUT(drain_big, p->drain_timeout_ms = 100000000)
MUT(linger_big, p->linger_max_ms = 100000000)
MUT(cwg_big, p->close_wait_grace_ms = 100000000)
MUT(fw2_big, p->fin_wait2_s = 121)
MUT(fw2_neg, p->fin_wait2_s = -1)
MUT(abort_3, p->abort_dead = 3)
MUT(out_0, p->output_limit = 0)
MUT(out_big, p->output_limit = (size_t)1073741824 + 1)
MUT(ovf_2, p->overflow_action = (vigil_overflow_action)2)
MUT(tko_3, p->takeover = (vigil_takeover_mode)3)
MUT(tko_neg, p->takeover = (vigil_takeover_mode)-1)
MUT(flap_big, p->flap_max = 1000001)
MUT(fwin_big, p->flap_window_ms = VIGIL_MAX_DURATION_MS + 1)
MUT(fban_big, p->flap_ban_ms = VIGIL_MAX_DURATION_MS + 1)
MUT(codec_2, p->frame_codec = 2)
MUT(frame_small, p->max_frame = 15)
MUT(frame_big, p->max_frame = 16777217)
MUT(nodelay_2, p->nodelay = 2)
MUT(ping_ge_dead, p->ping_interval_ms = 30000; p->dead_after_ms = 20000)
MUT(ping_eq_dead, p->ping_interval_ms = 20000; p->dead_after_ms = 20000)
MUT(susp_eq_dead, p->suspect_after_ms = 20000; p->dead_after_ms = 20000)
MUT(linger_lt_drain, p->linger_max_ms = 1000; p->drain_timeout_ms = 5000)
MUT(close_unbounded, p->linger_max_ms = 0; p->drain_timeout_ms = 0)
MUT(ping_min_big, p->ping_min_interval_ms = 86400001)
MUT(ping_strikes_big, p->ping_strikes = 1001)
MUT(path_idle_big, p->path_idle_max_s = 86401)
MUT(path_ka_late, p->path_idle_max_s = 350; p->keepalive_idle_s = 600)
MUT(path_ping_late, p->path_idle_max_s = 350; p->keepalive_idle_s = 300;
    p->ping_interval_ms = 400000)
MUT(path_nothing, p->path_idle_max_s = 350; p->keepalive = 0)
MUT(flap_no_window, p->flap_max = 15; p->flap_window_ms = 0)
/* Ordering: the first field in struct order wins, and any single-field
 * range error wins over a relation between fields. */
MUT(two_bad, p->keepalive_cnt = 0; p->max_frame = 0)
MUT(range_before_rel, p->ping_interval_ms = 30000; p->dead_after_ms = 20000;
    p->output_limit = 0)

static const bad_case k_bad[] = {
    {ka_2, "keepalive = 2 is out of range: allowed 0..1"},
    {ka_neg, "keepalive = -1 is out of range: allowed 0..1"},
    {idle_0, "keepalive_idle_s = 0 is out of range: allowed 1..32767 "
             "(TCP_KEEPIDLE)"},
    {idle_big, "keepalive_idle_s = 32768 is out of range: allowed 1..32767 "
               "(TCP_KEEPIDLE)"},
    {intvl_0, "keepalive_intvl_s = 0 is out of range: allowed 1..32767 "
              "(TCP_KEEPINTVL)"},
    {intvl_big, "keepalive_intvl_s = 40000 is out of range: allowed "
                "1..32767 (TCP_KEEPINTVL)"},
    {cnt_0, "keepalive_cnt = 0 is out of range: allowed 1..127 (TCP_KEEPCNT)"},
    {cnt_big,
     "keepalive_cnt = 128 is out of range: allowed 1..127 (TCP_KEEPCNT)"},
    {cnt_0_ka_off,
     "keepalive_cnt = 0 is out of range: allowed 1..127 (TCP_KEEPCNT)"},
    {ut_neg2, "user_timeout_ms = -2 is out of range: allowed -1 (auto), "
              "0 (off) or 1..2147483647 (TCP_USER_TIMEOUT)"},
    {ut_big, "user_timeout_ms = 2147483648 is out of range: allowed -1 "
             "(auto), 0 (off) or 1..2147483647 (TCP_USER_TIMEOUT)"},
    {ping_big, "ping_interval_ms = 86400001 is out of range: allowed "
               "0..86400000"},
    {dead_max, "dead_after_ms = 4294967295 is out of range: allowed "
               "0..86400000"},
    {suspect_big, "suspect_after_ms = 86400001 is out of range: allowed "
                  "0..86400000 or 4294967295 (VIGIL_SUSPECT_AUTO)"},
    {sping_2, "suspect_ping = 2 is out of range: allowed 0..1"},
    {ridle_big, "read_idle_ms = 90000000 is out of range: allowed "
                "0..86400000"},
    {widle_big, "write_idle_ms = 90000000 is out of range: allowed "
                "0..86400000"},
    {aidle_big, "all_idle_ms = 90000000 is out of range: allowed "
                "0..86400000"},
    {iact_2, "idle_action = 2 is out of range: allowed 0..1 "
             "(VIGIL_IDLE_NOTIFY..VIGIL_IDLE_CLOSE)"},
    {hs_big, "handshake_timeout_ms = 100000000 is out of range: allowed "
             "0..86400000"},
    {drain_big, "drain_timeout_ms = 100000000 is out of range: allowed "
                "0..86400000"},
    {linger_big, "linger_max_ms = 100000000 is out of range: allowed "
                 "0..86400000"},
    {cwg_big, "close_wait_grace_ms = 100000000 is out of range: allowed "
              "0..86400000"},
    {fw2_big, "fin_wait2_s = 121 is out of range: allowed 0..120 "
              "(TCP_LINGER2)"},
    {fw2_neg, "fin_wait2_s = -1 is out of range: allowed 0..120 "
              "(TCP_LINGER2)"},
    {abort_3, "abort_dead = 3 is out of range: allowed 0..1"},
    {out_0, "output_limit = 0 is out of range: allowed 1..1073741824"},
    {out_big, "output_limit = 1073741825 is out of range: allowed "
              "1..1073741824"},
    {ovf_2, "overflow_action = 2 is out of range: allowed 0..1 "
            "(VIGIL_OVERFLOW_FAIL..VIGIL_OVERFLOW_CLOSE)"},
    {tko_3, "takeover = 3 is out of range: allowed 0..2 "
            "(VIGIL_TAKEOVER_NEWEST_WINS..VIGIL_TAKEOVER_ASK)"},
    {tko_neg, "takeover = -1 is out of range: allowed 0..2 "
              "(VIGIL_TAKEOVER_NEWEST_WINS..VIGIL_TAKEOVER_ASK)"},
    {flap_big, "flap_max = 1000001 is out of range: allowed 0..1000000"},
    {fwin_big, "flap_window_ms = 86400001 is out of range: allowed "
               "0..86400000"},
    {fban_big, "flap_ban_ms = 86400001 is out of range: allowed "
               "0..86400000"},
    {codec_2, "frame_codec = 2 is out of range: allowed 0..1"},
    {frame_small, "max_frame = 15 is out of range: allowed 16..16777216"},
    {frame_big, "max_frame = 16777217 is out of range: allowed 16..16777216"},
    {nodelay_2, "nodelay = 2 is out of range: allowed 0..1"},
    {ping_ge_dead,
     "ping_interval_ms = 30000 must be less than dead_after_ms = 20000"},
    {ping_eq_dead,
     "ping_interval_ms = 20000 must be less than dead_after_ms = 20000"},
    {susp_eq_dead,
     "suspect_after_ms = 20000 must be less than dead_after_ms = 20000"},
    {linger_lt_drain, "linger_max_ms = 1000 must be 0 (no cap) or at least "
                      "drain_timeout_ms = 5000"},
    {ping_min_big, "ping_min_interval_ms = 86400001 is out of range: "
                   "allowed 0..86400000"},
    {ping_strikes_big, "ping_strikes = 1001 is out of range: allowed 0..1000"},
    {path_idle_big, "path_idle_max_s = 86401 is out of range: allowed "
                    "0..86400"},
    {path_ka_late, "keepalive_idle_s = 600 exceeds path_idle_max_s = 350 "
                   "(first probe after the middlebox drops the flow)"},
    {path_ping_late, "ping_interval_ms = 400000 exceeds path_idle_max_s = "
                     "350 (first ping after the middlebox drops the flow)"},
    {path_nothing, "path_idle_max_s = 350 needs keepalive or "
                   "ping_interval_ms: with neither, an idle flow sends "
                   "nothing and the middlebox drops it silently"},
    {close_unbounded, "linger_max_ms = 0 (no cap) needs drain_timeout_ms > "
                      "0: with both 0 a graceful close to a peer that "
                      "stops reading would never end"},
    {flap_no_window, "flap_window_ms = 0 is out of range: allowed "
                     "1..86400000 when flap_max > 0"},
    {two_bad,
     "keepalive_cnt = 0 is out of range: allowed 1..127 (TCP_KEEPCNT)"},
    {range_before_rel,
     "output_limit = 0 is out of range: allowed 1..1073741824"},
};

static void test_bad_policies(void **state) {
  (void)state;
  size_t n = sizeof k_bad / sizeof k_bad[0];
  assert_true(n >= 25);
  for (size_t i = 0; i < n; i++) {
    vigil_policy p;
    vigil_policy_init(&p);
    k_bad[i].mutate(&p);
    char msg[256];
    memset(msg, 'x', sizeof msg);
    int rc = vigil_policy_validate(&p, msg, sizeof msg);
    if (rc != VIGIL_EINVAL || strcmp(msg, k_bad[i].expect) != 0)
      print_error("case %zu: rc %d\n  got:    %s\n  expect: %s\n", i, rc,
                  msg, k_bad[i].expect);
    assert_int_equal(rc, VIGIL_EINVAL);
    assert_string_equal(msg, k_bad[i].expect);
    /* Same verdict without a buffer. */
    assert_int_equal(vigil_policy_validate(&p, NULL, 0), VIGIL_EINVAL);
  }
}

/* ---- boundary values that must be accepted ----------------------------- */

MUT(ok_idle_min, p->keepalive_idle_s = 1; p->keepalive_intvl_s = 1;
    p->keepalive_cnt = 1)
MUT(ok_idle_max, p->keepalive_idle_s = 32767; p->keepalive_intvl_s = 32767;
    p->keepalive_cnt = 127)
MUT(ok_ut_off, p->user_timeout_ms = VIGIL_USER_TIMEOUT_OFF)
MUT(ok_ut_1, p->user_timeout_ms = 1)
MUT(ok_ut_max, p->user_timeout_ms = INT32_MAX)
MUT(ok_ka_off_bools, p->keepalive = 0; p->suspect_ping = 1;
    p->abort_dead = 0; p->frame_codec = 1)
MUT(ok_ping_below_dead, p->ping_interval_ms = 19999;
    p->dead_after_ms = 20000)
MUT(ok_ping_no_dead, p->ping_interval_ms = 30000; p->dead_after_ms = 0)
MUT(ok_suspect_auto_dead, p->dead_after_ms = 20000)
MUT(ok_suspect_explicit_no_dead, p->suspect_after_ms = 50000)
MUT(ok_suspect_off, p->suspect_after_ms = 0; p->dead_after_ms = 1000)
MUT(ok_suspect_below, p->suspect_after_ms = 19999; p->dead_after_ms = 20000)
MUT(ok_durations_max,
    p->dead_after_ms = VIGIL_MAX_DURATION_MS;
    p->read_idle_ms = p->write_idle_ms = p->all_idle_ms =
        VIGIL_MAX_DURATION_MS;
    p->handshake_timeout_ms = p->close_wait_grace_ms = VIGIL_MAX_DURATION_MS;
    p->drain_timeout_ms = p->linger_max_ms = VIGIL_MAX_DURATION_MS;
    p->flap_window_ms = p->flap_ban_ms = VIGIL_MAX_DURATION_MS)
MUT(ok_linger_nocap, p->linger_max_ms = 0; p->drain_timeout_ms = 600000)
MUT(ok_linger_eq_drain, p->linger_max_ms = 5000; p->drain_timeout_ms = 5000)
MUT(ok_fw2_max, p->fin_wait2_s = 120)
MUT(ok_out_min, p->output_limit = 1)
MUT(ok_out_max, p->output_limit = 1073741824)
MUT(ok_enums_max, p->idle_action = VIGIL_IDLE_CLOSE;
    p->overflow_action = VIGIL_OVERFLOW_FAIL;
    p->takeover = VIGIL_TAKEOVER_ASK)
MUT(ok_flap_off_no_window, p->flap_max = 0; p->flap_window_ms = 0)
MUT(ok_flap_emqx, p->flap_max = 15; p->flap_window_ms = 60000)
MUT(ok_flap_max, p->flap_max = 1000000; p->flap_window_ms = 1)
MUT(ok_frame_min, p->max_frame = 16)
MUT(ok_frame_max, p->max_frame = 16777216)
MUT(ok_path_idle, p->path_idle_max_s = 350; p->keepalive_idle_s = 300;
    p->ping_interval_ms = 350000)
MUT(ok_path_ping_only, p->path_idle_max_s = 60; p->keepalive = 0;
    p->keepalive_idle_s = 7200; p->ping_interval_ms = 30000)
MUT(ok_ping_guard_off, p->ping_min_interval_ms = 0; p->ping_strikes = 0)

static void (*const k_good[])(vigil_policy *) = {
    ok_idle_min,       ok_idle_max,         ok_ut_off,
    ok_ut_1,           ok_ut_max,           ok_ka_off_bools,
    ok_ping_below_dead, ok_ping_no_dead,    ok_suspect_auto_dead,
    ok_suspect_explicit_no_dead, ok_suspect_off, ok_suspect_below,
    ok_durations_max,  ok_linger_nocap,     ok_linger_eq_drain,
    ok_fw2_max,        ok_out_min,          ok_out_max,
    ok_enums_max,      ok_flap_off_no_window, ok_flap_emqx,
    ok_flap_max,       ok_frame_min,        ok_frame_max,
    ok_path_idle,      ok_path_ping_only,   ok_ping_guard_off,
};

static void test_boundaries_accepted(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_good / sizeof k_good[0]; i++) {
    vigil_policy p;
    vigil_policy_init(&p);
    k_good[i](&p);
    char msg[256] = "";
    int rc = vigil_policy_validate(&p, msg, sizeof msg);
    if (rc != VIGIL_OK) print_error("good case %zu rejected: %s\n", i, msg);
    assert_int_equal(rc, VIGIL_OK);
  }
}

/* ---- message buffer safety --------------------------------------------- */

static void test_null_policy(void **state) {
  (void)state;
  char msg[64];
  assert_int_equal(vigil_policy_validate(NULL, msg, sizeof msg),
                   VIGIL_EINVAL);
  assert_string_equal(msg, "policy is NULL");
  assert_int_equal(vigil_policy_validate(NULL, NULL, 0), VIGIL_EINVAL);
}

static void test_msg_truncation(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_cnt = 0;
  const char *full =
      "keepalive_cnt = 0 is out of range: allowed 1..127 (TCP_KEEPCNT)";

  /* msglen 1: only the terminator fits. */
  char buf[16];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(vigil_policy_validate(&p, buf, 1), VIGIL_EINVAL);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(buf[1], 'x'); /* nothing written past msglen */

  /* msglen 8: a NUL-terminated prefix of the full message. */
  memset(buf, 'x', sizeof buf);
  assert_int_equal(vigil_policy_validate(&p, buf, 8), VIGIL_EINVAL);
  assert_int_equal(strlen(buf), 7);
  assert_memory_equal(buf, full, 7);
  assert_int_equal(buf[8], 'x');

  /* msglen 0 with a real buffer: untouched. */
  memset(buf, 'x', sizeof buf);
  assert_int_equal(vigil_policy_validate(&p, buf, 0), VIGIL_EINVAL);
  assert_int_equal(buf[0], 'x');

  /* NULL msg with a non-zero length must not be written through. */
  assert_int_equal(vigil_policy_validate(&p, NULL, 100), VIGIL_EINVAL);

  /* Relation messages truncate the same way. */
  vigil_policy_init(&p);
  p.ping_interval_ms = 30000;
  p.dead_after_ms = 20000;
  memset(buf, 'x', sizeof buf);
  assert_int_equal(vigil_policy_validate(&p, buf, 5), VIGIL_EINVAL);
  assert_string_equal(buf, "ping");
  assert_int_equal(buf[5], 'x');
}

/* ---- effective user timeout -------------------------------------------- */

static void test_user_timeout(void **state) {
  (void)state;
  vigil_policy p;
  vigil_policy_init(&p);
  /* AUTO = (60 + 10 * 6) s. */
  assert_int_equal(vigil_policy_user_timeout(&p), 120000);

  p.keepalive_idle_s = 5;
  p.keepalive_intvl_s = 2;
  p.keepalive_cnt = 3;
  assert_int_equal(vigil_policy_user_timeout(&p), 11000);

  /* AUTO with keepalive off means off. */
  p.keepalive = 0;
  assert_int_equal(vigil_policy_user_timeout(&p), 0);

  /* Explicit values do not depend on keepalive. */
  p.user_timeout_ms = 7500;
  assert_int_equal(vigil_policy_user_timeout(&p), 7500);
  p.keepalive = 1;
  assert_int_equal(vigil_policy_user_timeout(&p), 7500);

  p.user_timeout_ms = VIGIL_USER_TIMEOUT_OFF;
  assert_int_equal(vigil_policy_user_timeout(&p), 0);

  p.user_timeout_ms = INT32_MAX;
  assert_int_equal(vigil_policy_user_timeout(&p), INT32_MAX);

  /* The largest valid keepalive budget, 32767 + 32767 * 127 s, exceeds
   * what setsockopt's int can carry in ms: clamped, not wrapped. */
  p.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
  p.keepalive_idle_s = 32767;
  p.keepalive_intvl_s = 32767;
  p.keepalive_cnt = 127;
  assert_int_equal(vigil_policy_user_timeout(&p), INT32_MAX);

  /* Garbage from an unvalidated policy is clamped to "off". */
  p.user_timeout_ms = -5;
  assert_int_equal(vigil_policy_user_timeout(&p), 0);
  p.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
  p.keepalive_idle_s = -100;
  p.keepalive_cnt = 0;
  assert_int_equal(vigil_policy_user_timeout(&p), 0);

  assert_int_equal(vigil_policy_user_timeout(NULL), 0);
}

/* ---- error tables ------------------------------------------------------ */

static void test_error_tables(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
  } k_codes[] = {
      {VIGIL_OK, "VIGIL_OK"},
      {VIGIL_EINVAL, "VIGIL_EINVAL"},
      {VIGIL_ENOMEM, "VIGIL_ENOMEM"},
      {VIGIL_EBADF, "VIGIL_EBADF"},
      {VIGIL_ENOTSOCK, "VIGIL_ENOTSOCK"},
      {VIGIL_ENOTTCP, "VIGIL_ENOTTCP"},
      {VIGIL_ENOTCONN, "VIGIL_ENOTCONN"},
      {VIGIL_ECLOSED, "VIGIL_ECLOSED"},
      {VIGIL_EOVERFLOW, "VIGIL_EOVERFLOW"},
      {VIGIL_ESYS, "VIGIL_ESYS"},
      {VIGIL_EEXIST, "VIGIL_EEXIST"},
      {VIGIL_ENOENT, "VIGIL_ENOENT"},
      {VIGIL_EPERM, "VIGIL_EPERM"},
      {VIGIL_ENOTSUP, "VIGIL_ENOTSUP"},
      {VIGIL_ETLS, "VIGIL_ETLS"},
      {VIGIL_EREJECTED, "VIGIL_EREJECTED"},
      {VIGIL_EBANNED, "VIGIL_EBANNED"},
      {VIGIL_EPROTO, "VIGIL_EPROTO"},
      {VIGIL_EAGAIN, "VIGIL_EAGAIN"},
      {VIGIL_ESTATE, "VIGIL_ESTATE"},
      {VIGIL_EADDR, "VIGIL_EADDR"},
  };
  size_t n = sizeof k_codes / sizeof k_codes[0];
  for (size_t i = 0; i < n; i++) {
    /* Codes are dense 0, -1, -2, ... so this list is every code. */
    assert_int_equal(k_codes[i].code, -(int)i);
    assert_string_equal(vigil_err_name(k_codes[i].code), k_codes[i].name);
    const char *text = vigil_strerror(k_codes[i].code);
    assert_non_null(text);
    assert_true(strlen(text) > 3);
    assert_string_not_equal(text, "unknown error");
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(text, vigil_strerror(k_codes[j].code));
  }
  assert_string_equal(vigil_strerror(VIGIL_EINVAL),
                      "invalid argument or policy");
  assert_string_equal(vigil_strerror(VIGIL_ENOTTCP),
                      "socket is not a TCP stream socket");

  const int unknown[] = {1, 42, VIGIL_EADDR - 1, -1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(vigil_strerror(unknown[i]), "unknown error");
    assert_string_equal(vigil_err_name(unknown[i]), "VIGIL_E?");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_exact),
      cmocka_unit_test(test_init_null_is_harmless),
      cmocka_unit_test(test_defaults_validate),
      cmocka_unit_test(test_bad_policies),
      cmocka_unit_test(test_boundaries_accepted),
      cmocka_unit_test(test_null_policy),
      cmocka_unit_test(test_msg_truncation),
      cmocka_unit_test(test_user_timeout),
      cmocka_unit_test(test_error_tables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
