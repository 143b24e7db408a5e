/*
 * Proven identities stay proven across the workers of a group: a device
 * whose client certificate proves its identity holds it on one worker,
 * and a claim without that proof on another worker (plain TCP naming it)
 * is refused while the device stays up; the same device rebooted, proving
 * it again, takes over across workers. A claim made before the handshake
 * becomes proven once the certificate confirms it, and that too is seen
 * from the other worker.
 */
#include <string.h>
#include <unistd.h>

#include "groupfix.h"
#include "tlsfix.h"

typedef struct device {
  char cert[TF_PATH], key[TF_PATH];
  SSL_CTX *ctx;
  tf_peer peer;
  gx_placed p;
} device;

static void device_make(device *d, const char *name, const char *cn) {
  memset(d, 0, sizeof *d);
  tf_pki_client(&tf_test_pki, name, cn, NULL, 0, d->cert, d->key);
  d->ctx = tf_client_ctx(&tf_test_pki, d->cert, d->key);
  d->peer.fd = -1;
}

/* ---- the server conn's state, read on its worker ---- */

typedef struct probe {
  gx_placed *p;
  int state;  /* [atomic] */
  int done;   /* [atomic] */
} probe;

static void probe_fn(vigil_worker *w, void *arg) {
  probe *q = arg;
  (void)w;
  int st = gx_atomic(&q->p->closed) ? VIGIL_CONN_CLOSED
                                    : (int)vigil_conn_get_state(q->p->conn);
  __atomic_store_n(&q->state, st, __ATOMIC_SEQ_CST);
  __atomic_store_n(&q->done, 1, __ATOMIC_SEQ_CST);
}

static int probed(void *arg) { return gx_atomic(&((probe *)arg)->done); }

/* Waits until d's server conn is OPEN (its handshake, and the claim of
 * its certificate's identity, are done). */
static void wait_open(gx *f, device *d) {
  uint64_t end = vt_now_ms() + 3000;
  for (;;) {
    probe q = {&d->p, -1, 0};
    assert_int_equal(vigil_group_post(f->g, d->p.worker, probe_fn, &q),
                     VIGIL_OK);
    assert_true(vt_wait_until(probed, &q, 2000));
    if (gx_atomic(&q.state) == VIGIL_CONN_OPEN) return;
    assert_true(gx_atomic(&q.state) == VIGIL_CONN_HANDSHAKE);
    assert_true(vt_now_ms() < end);
    tf_peer_step(&d->peer);
  }
}

/* A TLS conn for d on `worker` (identity from the certificate's CN;
 * early_claim, unless NULL, claimed before the handshake), through the
 * handshake, OPEN. */
static void device_connect(gx *f, device *d, uint32_t worker,
                           const char *early_claim) {
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = VIGIL_TLS_ID_CN;
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.tls_ctx = tf_test_mtls_sctx;
  ao.tls = &to;
  gx_place(f, &d->p, worker, early_claim, &ao);
  tf_peer_init(&d->peer, d->ctx, d->p.client_fd, 1, "localhost");
  d->p.client_fd = -1; /* the peer owns it now */
  assert_true(vt_wait_until(tf_peer_handshaken, &d->peer, 3000));
  assert_true(d->peer.hs_done);
  wait_open(f, d);
}

static void device_done(device *d) {
  tf_peer_free(&d->peer);
  SSL_CTX_free(d->ctx);
}

static void group_up(gx *f) {
  gx_init(f, 2);
  f->listen = 0;
  gx_start(f);
}

/* A plain conn on `worker` names id: refused, closed takeover_rejected. */
static void expect_spoof_refused(gx *f, uint32_t worker, const char *id) {
  gx_placed spoof;
  gx_place(f, &spoof, worker, id, NULL);
  assert_int_equal(gx_atomic(&spoof.claim_rc), VIGIL_EREJECTED);
  gx_placed_done(&spoof); /* completes its graceful close */
  assert_int_equal(gx_wait_closed(&spoof, 2000),
                   VIGIL_REASON_TAKEOVER_REJECTED);
}

static void test_proven_identity_across_workers(void **state) {
  (void)state;
  gx f;
  group_up(&f);
  device real, rebooted;
  device_make(&real, "gdev1a", "device-1");
  device_make(&rebooted, "gdev1b", "device-1");
  device_connect(&f, &real, 0, NULL);
  /* Naming device-1 from another worker without its certificate. */
  expect_spoof_refused(&f, 1, "device-1");
  assert_false(gx_atomic(&real.p.closed));
  /* The rebooted device proves it: it takes over across workers. */
  device_connect(&f, &rebooted, 1, NULL);
  assert_int_equal(gx_wait_closed(&real.p, 2000), VIGIL_REASON_TAKEOVER);
  gx_takeover t;
  assert_true(gx_find_takeover(&f, 0, real.p.conn_id, &t));
  assert_int_equal(t.scope, VIGIL_SCOPE_WORKER);
  assert_int_equal(t.conn_id, rebooted.p.conn_id);
  /* And the new holder is as proven as the old one. */
  expect_spoof_refused(&f, 0, "device-1");
  assert_false(gx_atomic(&rebooted.p.closed));
  device_done(&real);
  device_done(&rebooted);
  gx_finish(&f);
}

/* The host claims device-3 before the handshake (unproven yet); the
 * certificate then proves it, and the directory learns: a plain claim
 * from the other worker is refused. */
static void test_early_claim_becomes_proven(void **state) {
  (void)state;
  gx f;
  group_up(&f);
  device d;
  device_make(&d, "gdev3", "device-3");
  device_connect(&f, &d, 0, "device-3");
  assert_int_equal(gx_atomic(&d.p.claim_rc), VIGIL_OK);
  expect_spoof_refused(&f, 1, "device-3");
  assert_false(gx_atomic(&d.p.closed));
  device_done(&d);
  gx_finish(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_proven_identity_across_workers),
      cmocka_unit_test(test_early_claim_becomes_proven),
  };
  return cmocka_run_group_tests(tests, tf_setup_ctx, tf_teardown_ctx);
}
