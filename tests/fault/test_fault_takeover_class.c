/*
 * Takeover by class over a veth pair (docs/ghosts.md, "Takeover: ghost or
 * live"): the displaced conn's device lives in namespace B, the server in
 * A.
 *
 *  - ghost: B is blackholed (nftables drops everything) while the server
 *    has data in flight to it; once that data is retransmitting, a claim
 *    of the identity classes the old conn ghost and resets it inside the
 *    call, leaving no socket of it in A;
 *  - live: the device reads; 256 KiB queued to it right before the claim
 *    all arrive, then a clean FIN (no reset), and the device's own FIN
 *    ends the close;
 *  - live but never closing: the device reads everything and EOF but keeps
 *    its socket open; the takeover bound (100 ms here) resets it, and A
 *    holds nothing of it afterwards.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "faultfix.h"
#include "testutil.h"

#define PAYLOAD (256 * 1024)
/* The live bound on veth: 4 x srtt is far below the 100 ms floor. */
#define LIVE_BOUND_MS 100
/* One wheel tick (10 ms) and scheduling on a shared 2-core machine. */
#define SLACK_MS 40

static ff_env E;
/* Records the hub writes into until it is freed (in teardown). */
static gf_conn OLD, FRESH;

static int setup(void **state) {
  (void)state;
  memset(&E, 0, sizeof E);
  memset(&OLD, 0, sizeof OLD);
  memset(&FRESH, 0, sizeof FRESH);
  ff_env_up(&E, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  ff_env_down(&E);
  return 0;
}

/* A device in B whose server end is adopted and claims `id`. */
static int device(gf_conn *rec, const char *id) {
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  memset(rec, 0, sizeof *rec);
  assert_int_equal(gf_adopt(E.hub, sfd, rec, NULL), VIGIL_OK);
  assert_int_equal(vigil_conn_identify(rec->c, id, strlen(id)), VIGIL_OK);
  return dfd;
}

static int retransmitting(void *arg) {
  vigil_tcp_info ti;
  return vigil_conn_tcp_info(((gf_conn *)arg)->c, &ti) == VIGIL_OK &&
         ti.retransmits > 0;
}

/* Sockets in A on the test port in the states a displaced conn could
 * leave behind. */
static int leftovers_in_a(void) {
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&E.ns, VT_NETNS_A, E.port, n), 0);
  return n[1] /* ESTABLISHED */ + n[4] /* FIN_WAIT1 */ +
         n[5] /* FIN_WAIT2 */ + n[8] /* CLOSE_WAIT */ + n[9] /* LAST_ACK */ +
         n[11] /* CLOSING */;
}

static void test_blackholed_peer_is_a_ghost(void **state) {
  (void)state;
  gf_conn *old = &OLD, *fresh = &FRESH;
  int dfd = device(old, "dev-g");
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 1), 0);
  assert_int_equal(vigil_send(old->c, "are you there?", 14), VIGIL_OK);
  assert_true(vt_run_until(E.loop, retransmitting, old, 3000));

  /* The device comes back over another path (loopback here). */
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(gf_adopt(E.hub, s, fresh, NULL), VIGIL_OK);
  vigil_conn *oc = old->c;
  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_conn_identify(fresh->c, "dev-g", 5), VIGIL_OK);
  uint64_t t1 = vt_now_ms();
  assert_int_equal(vigil_conn_get_state(oc), VIGIL_CONN_CLOSED);
  const gf_event *tk = gf_find(&E.log, VIGIL_EV_TAKEOVER, 0);
  assert_non_null(tk);
  assert_int_equal(tk->peer_class, VIGIL_PEER_GHOST);
  assert_true(tk->evidence & VIGIL_SUSPECT_UNACKED_RETRANS);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, old->id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(cl->peer_class, VIGIL_PEER_GHOST);
  ff_check_latency("ghost_claim_to_rst", (int64_t)(t1 - t0), 0, 10);
  assert_true(vt_run_until(E.loop, gf_is_closed, old, 1000));
  /* Reset: nothing of it stays in A, not even a FIN_WAIT1 orphan. */
  assert_int_equal(leftovers_in_a(), 0);
  vigil_stats st;
  vigil_hub_stats(E.hub, &st);
  assert_int_equal(st.takeovers_by_class[VIGIL_PEER_GHOST], 1);
  assert_int_equal(vt_netns_silence(&E.ns, VT_NETNS_B, 0), 0);
  close(dfd);
  close(c);
}

typedef struct live_dev {
  ff_peer peer;
  int close_on_eof;
  int closed;
} live_dev;

/* The device's side: every byte, then EOF; it closes on EOF if asked. */
static int device_done(void *arg) {
  live_dev *d = arg;
  if (d->peer.err) return 1;
  if (!d->peer.eof) return 0;
  if (d->close_on_eof && !d->closed) {
    close(d->peer.fd);
    d->closed = 1;
  }
  return 1;
}

/* A live device, PAYLOAD bytes queued to it, then a claim of its identity
 * from a second device (its fd in *dfd2). Returns the claim's time. */
static uint64_t live_takeover(live_dev *d, gf_conn *old, gf_conn *fresh,
                              int *dfd2) {
  int dfd = device(old, "dev-l");
  ff_peer_start(&E, &d->peer, dfd, 0);
  static char payload[PAYLOAD];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)('a' + i % 26);
  int sfd;
  *dfd2 = ff_dial(&E, &sfd);
  memset(fresh, 0, sizeof *fresh);
  assert_int_equal(gf_adopt(E.hub, sfd, fresh, NULL), VIGIL_OK);
  assert_int_equal(vigil_send(old->c, payload, sizeof payload), VIGIL_OK);
  uint64_t t0 = vt_now_ms();
  assert_int_equal(vigil_conn_identify(fresh->c, "dev-l", 5), VIGIL_OK);
  return t0;
}

static void assert_all_delivered(const live_dev *d) {
  assert_int_equal(d->peer.err, 0); /* no ECONNRESET */
  assert_true(d->peer.eof);          /* a FIN, after... */
  assert_int_equal(d->peer.bytes, PAYLOAD); /* ...every byte */
  assert_memory_equal(d->peer.rx, "abcdefghijklmnopqrstuvwxyz", 26);
  const gf_event *tk = gf_find(&E.log, VIGIL_EV_TAKEOVER, 0);
  assert_non_null(tk);
  assert_int_equal(tk->peer_class, VIGIL_PEER_LIVE);
  assert_int_equal(tk->evidence, 0);
}

static void test_live_peer_gets_every_byte_then_fin(void **state) {
  (void)state;
  static live_dev d;
  memset(&d, 0, sizeof d);
  d.close_on_eof = 1;
  gf_conn *old = &OLD;
  int dfd2;
  uint64_t t0 = live_takeover(&d, old, &FRESH, &dfd2);
  assert_true(vt_run_until(E.loop, device_done, &d, 3000));
  uint64_t t_fin = vt_now_ms();
  assert_all_delivered(&d);
  assert_true(vt_run_until(E.loop, gf_is_closed, old, 1000));
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, old->id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(cl->peer_class, VIGIL_PEER_LIVE);
  assert_string_equal(cl->detail, ""); /* ended by the device's FIN */
  printf("MEASURED live_takeover bytes=%d claim_to_fin_ms=%llu "
         "claim_to_close_ms=%llu\n",
         PAYLOAD, (unsigned long long)(t_fin - t0),
         (unsigned long long)(old->closed_ms - t0));
  ff_check_latency("live_claim_to_clean_close",
                   (int64_t)(old->closed_ms - t0), 0, LIVE_BOUND_MS);
  assert_int_equal(leftovers_in_a(), 1); /* the claimant's conn alone */
  close(dfd2);
}

static void test_live_peer_that_never_closes_is_reset_at_the_bound(
    void **state) {
  (void)state;
  static live_dev d;
  memset(&d, 0, sizeof d);
  gf_conn *old = &OLD;
  int dfd2;
  uint64_t t0 = live_takeover(&d, old, &FRESH, &dfd2);
  assert_true(vt_run_until(E.loop, device_done, &d, 3000));
  assert_all_delivered(&d);
  assert_true(vt_run_until(E.loop, gf_is_closed, old, 2000));
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, old->id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_string_equal(cl->detail, "no FIN within the takeover bound");
  ff_check_latency("live_claim_to_rst_at_bound",
                   (int64_t)(old->closed_ms - t0), LIVE_BOUND_MS,
                   LIVE_BOUND_MS + SLACK_MS + 100);
  /* The device's socket was reset after its EOF. */
  assert_true(vt_tcp_state(d.peer.fd) == VIGIL_TCP_CLOSE);
  assert_int_equal(leftovers_in_a(), 1);
  close(d.peer.fd);
  close(dfd2);
}

int main(void) {
  ff_require_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_blackholed_peer_is_a_ghost, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_live_peer_gets_every_byte_then_fin,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_live_peer_that_never_closes_is_reset_at_the_bound, setup,
          teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
