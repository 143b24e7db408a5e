/*
 * The identity directory (src/dir_local.c) with the takeover rules
 * (src/takeover_rules.c) on a fake clock, as a group's hubs share them:
 * holders are made by hand for two hubs, and every claim goes through the
 * directory's ops and the judge, as takeover.c makes them. Covers claims
 * and epochs, leaving holders, the contest modes, the ASK re-check against
 * a holder that changed meanwhile, flapping and bans counted over every
 * hub, the proven rule, the fencing of late evictions, and the directory's
 * memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "directory.h"
#include "takeover.h"
#include "takeover_rules.h"
#include "testutil.h"

/* Two hubs of one group: only their addresses matter to the directory. */
static char hub_a_mem, hub_b_mem;
#define HUB_A ((vigil_hub *)(void *)&hub_a_mem)
#define HUB_B ((vigil_hub *)(void *)&hub_b_mem)

typedef struct fixture {
  vigil__dir *d;
  vigil_policy policy;
  uint64_t now;
  uint64_t next_conn;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->d = vigil__dir_local_new(1);
  assert_non_null(f->d);
  vigil_policy_init(&f->policy);
  f->now = 1000000;
  f->next_conn = 1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  f->d->ops->destroy(f->d);
  free(f);
  return 0;
}

static vigil__holder *holder(fixture *f, vigil_hub *hub, int proven) {
  vigil__holder *h = calloc(1, sizeof *h);
  assert_non_null(h);
  h->hub = hub;
  h->worker = hub == HUB_A ? 0 : 1;
  h->conn_id = f->next_conn++;
  h->staying = 1;
  h->proven = (uint8_t)proven;
  h->refs = 1;
  return h;
}

/* One judgement of a claim by h on id with context x (fresh if NULL). */
static vigil__verdict claim_x(fixture *f, const char *id, vigil__holder *h,
                              vigil__claim_ctx *x, vigil__holder **other) {
  vigil__claim_ctx fresh;
  if (!x) {
    vigil__claim_ctx_init(&fresh, &f->policy);
    x = &fresh;
  }
  vigil__holder *o = NULL;
  vigil__verdict v = f->d->ops->claim(f->d, id, strlen(id), f->now,
                                      vigil__takeover_judge, x, h, &o);
  if (other)
    *other = o;
  else
    vigil__holder_unref(o);
  return v;
}

static vigil__verdict claim(fixture *f, const char *id, vigil__holder *h) {
  return claim_x(f, id, h, NULL, NULL);
}

/* The conn side of a close: the hold is given back and dropped. */
static void release(fixture *f, vigil__holder *h) {
  f->d->ops->release(f->d, h, f->now);
  vigil__holder_unref(h);
}

static void test_claims_and_epochs(void **state) {
  fixture *f = *state;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  vigil__holder *other = NULL;
  assert_int_equal(claim_x(f, "dev-1", a, NULL, &other), VIGIL__V_INSTALL);
  assert_null(other);
  assert_true(a->epoch > 0);
  /* Newest wins across hubs: b displaces a, which is handed back (with a
   * reference of its own) for its hub to close. */
  assert_int_equal(claim_x(f, "dev-1", b, NULL, &other), VIGIL__V_EVICT);
  assert_ptr_equal(other, a);
  assert_int_equal(a->refs, 2);
  assert_true(b->epoch > a->epoch);
  assert_null(a->entry);
  vigil__holder_unref(other);
  /* The displaced holder's late release leaves b's record alone. */
  release(f, a);
  assert_int_equal(vigil__dir_local_count(f->d), 1);
  /* Epochs only grow, also once the record is gone and made again. */
  uint64_t last = b->epoch;
  release(f, b);
  assert_int_equal(vigil__dir_local_count(f->d), 0);
  vigil__holder *c = holder(f, HUB_A, 0);
  assert_int_equal(claim(f, "dev-1", c), VIGIL__V_INSTALL);
  assert_true(c->epoch > last);
  release(f, c);
}

static void test_leaving_holder_is_no_contest(void **state) {
  fixture *f = *state;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  assert_int_equal(claim(f, "dev-2", a), VIGIL__V_INSTALL);
  f->d->ops->update(f->d, a, 0, 0); /* a's peer sent FIN */
  f->policy.takeover = VIGIL_TAKEOVER_OLDEST_WINS; /* would refuse b */
  vigil__holder *other = NULL;
  assert_int_equal(claim_x(f, "dev-2", b, NULL, &other), VIGIL__V_INSTALL);
  assert_null(other);
  release(f, a);
  release(f, b);
}

static void test_oldest_wins_refuses(void **state) {
  fixture *f = *state;
  f->policy.takeover = VIGIL_TAKEOVER_OLDEST_WINS;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  assert_int_equal(claim(f, "dev-3", a), VIGIL__V_INSTALL);
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  assert_int_equal(claim_x(f, "dev-3", b, &x, NULL), VIGIL__V_REFUSE);
  assert_int_equal(x.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  assert_int_equal(x.rc, VIGIL_EREJECTED);
  free(b);
  release(f, a);
}

/* The host's answer about holder h, as takeover.c records it. */
static void answer(vigil__claim_ctx *x, const vigil__holder *h, int win) {
  x->asked = h;
  x->answer = win;
  x->asks++;
}

/* ASK: the answer applies only to the holder it was about. Here the holder
 * changes while the host thinks (another worker's claim displaces it): the
 * claim is judged again and the host asked about the new holder. */
static void test_ask_recheck(void **state) {
  fixture *f = *state;
  f->policy.takeover = VIGIL_TAKEOVER_ASK;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  vigil__holder *c = holder(f, HUB_B, 0);
  assert_int_equal(claim(f, "dev-4", a), VIGIL__V_INSTALL);
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  x.can_ask = 1;
  vigil__holder *asked = NULL;
  assert_int_equal(claim_x(f, "dev-4", b, &x, &asked), VIGIL__V_PAUSE);
  assert_ptr_equal(asked, a);
  assert_int_equal(x.flap_count, 0); /* a question, not a report */
  /* Meanwhile, c (newest wins on its own policy) takes dev-4 from a. */
  vigil_policy newest;
  vigil_policy_init(&newest);
  vigil__claim_ctx cx;
  vigil__claim_ctx_init(&cx, &newest);
  vigil__holder *evicted = NULL;
  assert_int_equal(claim_x(f, "dev-4", c, &cx, &evicted), VIGIL__V_EVICT);
  assert_ptr_equal(evicted, a);
  vigil__holder_unref(evicted);
  /* The host said "new wins" about a; c holds it now: ask again. */
  answer(&x, asked, 1);
  vigil__holder *again = NULL;
  assert_int_equal(claim_x(f, "dev-4", b, &x, &again), VIGIL__V_PAUSE);
  assert_ptr_equal(again, c);
  vigil__holder_unref(asked);
  /* "Keep the old" about c: b is refused, c stays. */
  answer(&x, again, 0);
  assert_int_equal(claim_x(f, "dev-4", b, &x, NULL), VIGIL__V_REFUSE);
  assert_int_equal(x.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  /* "New wins" about c: c is evicted. */
  x.answer = 1;
  vigil__holder *out = NULL;
  assert_int_equal(claim_x(f, "dev-4", b, &x, &out), VIGIL__V_EVICT);
  assert_ptr_equal(out, c);
  vigil__holder_unref(out);
  vigil__holder_unref(again);
  /* The asked holder left meanwhile: no contest, whatever the answer. */
  vigil__holder *d = holder(f, HUB_A, 0);
  vigil__claim_ctx y;
  vigil__claim_ctx_init(&y, &f->policy);
  y.can_ask = 1;
  assert_int_equal(claim_x(f, "dev-4", d, &y, &asked), VIGIL__V_PAUSE);
  assert_ptr_equal(asked, b);
  f->d->ops->update(f->d, b, 0, 0);
  answer(&y, asked, 0);
  assert_int_equal(claim_x(f, "dev-4", d, &y, NULL), VIGIL__V_INSTALL);
  vigil__holder_unref(asked);
  /* A holder that keeps changing: the ninth question is a refusal. */
  vigil__holder *e = holder(f, HUB_B, 0);
  vigil__claim_ctx z;
  vigil__claim_ctx_init(&z, &f->policy);
  z.can_ask = 1;
  z.asks = VIGIL__ASK_MAX;
  assert_int_equal(claim_x(f, "dev-4", e, &z, NULL), VIGIL__V_REFUSE);
  /* Without a callback ASK is newest wins. */
  z.can_ask = 0;
  assert_int_equal(claim_x(f, "dev-4", e, &z, &out), VIGIL__V_EVICT);
  assert_ptr_equal(out, d);
  vigil__holder_unref(out);
  release(f, a);
  release(f, b);
  release(f, c);
  release(f, d);
  release(f, e);
}

/* Flapping counts contested claims on the identity whichever hub they
 * come from; the claim that crosses flap_max is paused for the report and
 * starts the ban, which refuses every claim until it ends, to the ms. */
static void test_flapping_and_bans_span_hubs(void **state) {
  fixture *f = *state;
  f->policy.flap_max = 2;
  f->policy.flap_window_ms = 10000;
  f->policy.flap_ban_ms = 5000;
  vigil__holder *h[6];
  for (int i = 0; i < 6; i++) h[i] = holder(f, i % 2 ? HUB_B : HUB_A, 0);
  assert_int_equal(claim(f, "flappy", h[0]), VIGIL__V_INSTALL);
  f->now += 100;
  assert_int_equal(claim(f, "flappy", h[1]), VIGIL__V_EVICT); /* 1 */
  f->now += 100;
  assert_int_equal(claim(f, "flappy", h[2]), VIGIL__V_EVICT); /* 2 */
  f->now += 100;
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  vigil__holder *other = NULL;
  assert_int_equal(claim_x(f, "flappy", h[3], &x, &other), VIGIL__V_PAUSE);
  assert_int_equal(x.flap_count, 3);
  assert_int_equal(x.flap_refuse, 1);
  assert_ptr_equal(other, h[2]); /* the holder stays */
  vigil__holder_unref(other);
  free(h[3]);
  f->now += 4999;
  vigil__claim_ctx y;
  vigil__claim_ctx_init(&y, &f->policy);
  assert_int_equal(claim_x(f, "flappy", h[4], &y, NULL), VIGIL__V_REFUSE);
  assert_int_equal(y.reason, VIGIL_REASON_IDENTITY_BANNED);
  assert_int_equal(y.rc, VIGIL_EBANNED);
  free(h[4]);
  f->now += 1; /* the ban is over; history starts afresh */
  assert_int_equal(claim(f, "flappy", h[5]), VIGIL__V_EVICT);
  for (int i = 0; i < 6; i++)
    if (i != 3 && i != 4) release(f, h[i]);
  assert_int_equal(vigil__dir_local_count(f->d), 0);
}

static void note_live(fixture *f, const char *id) {
  f->d->ops->note(f->d, id, strlen(id), f->now, vigil__takeover_note_live,
                  &f->policy);
}

/* Live takeovers noted after their evictions: the crossing claim's report
 * names a duplicate identity when at least flap_max of them fall in the
 * window (the window opens at the first and lasts flap_window_ms), and
 * not when one of them was a ghost's. A note on an identity without a
 * record changes nothing. */
static void test_live_takeovers_name_a_duplicate(void **state) {
  fixture *f = *state;
  f->policy.flap_max = 2;
  f->policy.flap_window_ms = 1000;
  f->policy.flap_ban_ms = 0;
  vigil__holder *h[8];
  for (int i = 0; i < 8; i++) h[i] = holder(f, i % 2 ? HUB_B : HUB_A, 0);
  note_live(f, "nobody");
  assert_int_equal(vigil__dir_local_count(f->d), 0);
  assert_int_equal(claim(f, "twin", h[0]), VIGIL__V_INSTALL);
  assert_int_equal(claim(f, "twin", h[1]), VIGIL__V_EVICT);
  note_live(f, "twin");
  f->now += 100;
  assert_int_equal(claim(f, "twin", h[2]), VIGIL__V_EVICT);
  note_live(f, "twin");
  f->now += 100;
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  vigil__holder *other = NULL;
  assert_int_equal(claim_x(f, "twin", h[3], &x, &other), VIGIL__V_PAUSE);
  assert_int_equal(x.flap_count, 3);
  assert_string_equal(x.flap_detail, vigil__duplicate_identity);
  assert_int_equal(claim_x(f, "twin", h[3], &x, &other), VIGIL__V_EVICT);
  vigil__holder_unref(other);
  vigil__holder_unref(other);
  /* A new episode after the window: one live note and one ghost (no
   * note) are not enough. */
  f->now += 2000;
  assert_int_equal(claim(f, "twin", h[4]), VIGIL__V_EVICT);
  note_live(f, "twin");
  f->now += 100;
  assert_int_equal(claim(f, "twin", h[5]), VIGIL__V_EVICT); /* a ghost */
  f->now += 100;
  vigil__claim_ctx y;
  vigil__claim_ctx_init(&y, &f->policy);
  assert_int_equal(claim_x(f, "twin", h[6], &y, &other), VIGIL__V_PAUSE);
  assert_int_equal(y.flap_count, 3);
  assert_null(y.flap_detail);
  vigil__holder_unref(other);
  free(h[6]);
  free(h[7]);
  for (int i = 0; i < 6; i++) release(f, h[i]);
  assert_int_equal(vigil__dir_local_count(f->d), 0);
}

/* Without a ban flapping is reported once per episode and the contest
 * goes on; a ban keeps the record alive while nobody holds it. */
static void test_flapping_report_and_ban_memory(void **state) {
  fixture *f = *state;
  f->policy.flap_max = 1;
  f->policy.flap_window_ms = 1600;
  f->policy.flap_ban_ms = 0;
  vigil__holder *h[4];
  for (int i = 0; i < 4; i++) h[i] = holder(f, i % 2 ? HUB_A : HUB_B, 0);
  assert_int_equal(claim(f, "slow", h[0]), VIGIL__V_INSTALL);
  assert_int_equal(claim(f, "slow", h[1]), VIGIL__V_EVICT);
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  assert_int_equal(claim_x(f, "slow", h[2], &x, NULL), VIGIL__V_PAUSE);
  assert_int_equal(x.flap_count, 2);
  assert_int_equal(x.flap_refuse, 0);
  /* After the report the same claim goes on (counted once). */
  assert_int_equal(claim_x(f, "slow", h[2], &x, NULL), VIGIL__V_EVICT);
  assert_int_equal(claim(f, "slow", h[3]), VIGIL__V_EVICT); /* same episode */
  for (int i = 0; i < 4; i++) release(f, h[i]);
  assert_int_equal(vigil__dir_local_count(f->d), 0);

  f->policy.flap_ban_ms = 1000;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  assert_int_equal(claim(f, "banned", a), VIGIL__V_INSTALL);
  assert_int_equal(claim(f, "banned", b), VIGIL__V_EVICT);
  vigil__holder *c = holder(f, HUB_A, 0);
  assert_int_equal(claim(f, "banned", c), VIGIL__V_PAUSE); /* ban starts */
  free(c);
  release(f, a);
  release(f, b);
  assert_int_equal(vigil__dir_local_count(f->d), 1); /* the ban's record */
  f->now += 1000;
  /* Claims sweep two buckets each: eight of them see all sixteen. */
  for (int i = 0; i < 8; i++) {
    char id[8];
    snprintf(id, sizeof id, "o%d", i);
    vigil__holder *d = holder(f, HUB_B, 0);
    assert_int_equal(claim(f, id, d), VIGIL__V_INSTALL);
    release(f, d);
  }
  assert_int_equal(vigil__dir_local_count(f->d), 0);
}

/* A claim without certificate proof never displaces a live holder that
 * proved the identity, on whichever hub; a proven claim does, and a proven
 * holder that is leaving is no contest. */
static void test_proven_holders_stay_proven(void **state) {
  fixture *f = *state;
  vigil__holder *real = holder(f, HUB_A, 1);
  assert_int_equal(claim(f, "device-1", real), VIGIL__V_INSTALL);
  vigil__holder *spoof = holder(f, HUB_B, 0);
  vigil__claim_ctx x;
  vigil__claim_ctx_init(&x, &f->policy);
  assert_int_equal(claim_x(f, "device-1", spoof, &x, NULL), VIGIL__V_REFUSE);
  assert_int_equal(x.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  assert_string_equal(x.detail, "identity not proven by certificate");
  /* Not counted as flapping, not banned: nothing changed. */
  f->policy.flap_max = 1;
  f->policy.flap_ban_ms = 60000;
  for (int i = 0; i < 3; i++) {
    vigil__claim_ctx_init(&x, &f->policy);
    assert_int_equal(claim_x(f, "device-1", spoof, &x, NULL),
                     VIGIL__V_REFUSE);
    assert_int_equal(x.reason, VIGIL_REASON_TAKEOVER_REJECTED);
  }
  /* A probe (the claimant holds another identity) sees the same. */
  vigil__claim_ctx_init(&x, &f->policy);
  x.probe = 1;
  assert_int_equal(claim_x(f, "device-1", NULL, &x, NULL), VIGIL__V_REFUSE);
  assert_int_equal(x.rc, VIGIL_EREJECTED);
  free(spoof);
  /* The rebooted device proves it too: it takes over. */
  vigil__holder *again = holder(f, HUB_B, 1);
  vigil__claim_ctx_init(&x, &f->policy);
  x.claimant_proven = 1;
  vigil__holder *out = NULL;
  assert_int_equal(claim_x(f, "device-1", again, &x, &out), VIGIL__V_EVICT);
  assert_ptr_equal(out, real);
  vigil__holder_unref(out);
  /* The proven holder leaves: a plain claim takes the identity. */
  f->d->ops->update(f->d, again, 0, 1);
  vigil__holder *plain = holder(f, HUB_A, 0);
  assert_int_equal(claim(f, "device-1", plain), VIGIL__V_INSTALL);
  /* A probe about one's own identity is only "exists". */
  vigil__claim_ctx_init(&x, &f->policy);
  x.probe = 1;
  x.self = plain;
  assert_int_equal(claim_x(f, "device-1", NULL, &x, NULL), VIGIL__V_REFUSE);
  assert_int_equal(x.reason, VIGIL_REASON_NONE);
  assert_int_equal(x.rc, VIGIL_EEXIST);
  release(f, real);
  release(f, again);
  release(f, plain);
}

/* find() names only a conn of the asking hub. */
static void test_find_is_per_hub(void **state) {
  fixture *f = *state;
  vigil_conn *conn = calloc(1, sizeof *conn);
  assert_non_null(conn);
  vigil__holder *a = holder(f, HUB_A, 0);
  a->conn = conn;
  assert_int_equal(claim(f, "dev-5", a), VIGIL__V_INSTALL);
  assert_ptr_equal(f->d->ops->find(f->d, "dev-5", 5, HUB_A), conn);
  assert_null(f->d->ops->find(f->d, "dev-5", 5, HUB_B));
  assert_null(f->d->ops->find(f->d, "dev-6", 5, HUB_A));
  release(f, a);
  assert_null(f->d->ops->find(f->d, "dev-5", 5, HUB_A));
  free(conn);
}

/* A conn standing for a holder, as its hub sees it. */
typedef struct fake_conn {
  vigil_conn c;
  vigil__conn_ext ext;
} fake_conn;

static void fake_hold(fake_conn *fc, vigil__holder *h) {
  memset(fc, 0, sizeof *fc);
  fc->c.state = VIGIL_CONN_OPEN;
  fc->c.ext = &fc->ext;
  fc->ext.holder = h;
  h->conn = &fc->c;
}

/* An eviction closes only the very holder it displaced, while that holder
 * still stays: a late eviction (held back while the identity moved on, and
 * its conn even claimed again on the old hub) never closes the successor,
 * and a second delivery finds nothing. */
static void test_fencing_late_eviction(void **state) {
  fixture *f = *state;
  fake_conn xa, xb, xc;
  vigil__holder *a = holder(f, HUB_A, 0), *b = holder(f, HUB_B, 0);
  vigil__holder *c = holder(f, HUB_A, 0);
  fake_hold(&xa, a);
  fake_hold(&xb, b);
  fake_hold(&xc, c);
  assert_int_equal(claim(f, "dev-7", a), VIGIL__V_INSTALL);
  vigil__holder *old = NULL;
  assert_int_equal(claim_x(f, "dev-7", b, NULL, &old), VIGIL__V_EVICT);
  vigil__evict_msg late = {old, old->epoch, b->epoch, 0, VIGIL_SCOPE_WORKER};
  /* Held back: c on hub A claims next and displaces b. */
  vigil__holder *old2 = NULL;
  assert_int_equal(claim_x(f, "dev-7", c, NULL, &old2), VIGIL__V_EVICT);
  vigil__evict_msg next = {old2, old2->epoch, c->epoch, 0,
                           VIGIL_SCOPE_WORKER};
  /* The late message closes a (its own holder), never c on the same hub,
   * nor b. */
  assert_true(vigil__takeover_fenced_in(&late, &xa.c));
  assert_false(vigil__takeover_fenced_in(&late, &xc.c));
  assert_false(vigil__takeover_fenced_in(&late, &xb.c));
  assert_true(vigil__takeover_fenced_in(&next, &xb.c));
  assert_false(vigil__takeover_fenced_in(&next, &xc.c));
  /* A message whose epochs do not match the holder's is stale. */
  vigil__evict_msg wrong = {old, old->epoch + 1, b->epoch, 0,
                            VIGIL_SCOPE_WORKER};
  assert_false(vigil__takeover_fenced_in(&wrong, &xa.c));
  vigil__evict_msg backwards = {old, old->epoch, old->epoch, 0,
                                VIGIL_SCOPE_WORKER};
  assert_false(vigil__takeover_fenced_in(&backwards, &xa.c));
  /* A conn already leaving finishes its own close. */
  xa.c.state = VIGIL_CONN_CLOSE_WAIT;
  assert_false(vigil__takeover_fenced_in(&late, &xa.c));
  /* Once a closed (its hold released), the message finds nobody. */
  xa.ext.holder = NULL;
  a->conn = NULL;
  assert_false(vigil__takeover_fenced_in(&late, &xa.c));
  vigil__holder_unref(old);
  vigil__holder_unref(old2);
  release(f, a);
  release(f, b);
  release(f, c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_claims_and_epochs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_leaving_holder_is_no_contest,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_oldest_wins_refuses, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_ask_recheck, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_takeovers_name_a_duplicate,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_flapping_and_bans_span_hubs,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_flapping_report_and_ban_memory,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_proven_holders_stay_proven,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_find_is_per_hub, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fencing_late_eviction, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
