/*
 * Identity from client certificates: the conn claims the verified
 * certificate's CN or SAN after the handshake, a second device with the
 * same certified identity takes over, and a peer that merely names
 * another device (from protocol data, on a TLS conn with another
 * certificate or on plain TCP) is refused and closed with
 * takeover_rejected while the real device stays up.
 *
 * Three tables, one runner each: which identity a certificate gives
 * (identity_from), the conns a certificate refuses, and what a conn
 * without a certificate identity may claim next to one that has it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "rowtest.h"
#include "tlsfix.h"

static vigil_tls_options identity_from(vigil_tls_id_source src) {
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = src;
  return to;
}

/* ---- devices and the fixture that owns them ---------------------------- */

typedef struct device {
  SSL_CTX *ctx;
  tf_peer peer;
  cf_conn cc;
} device;

#define MAX_DEVICES 4
#define MAX_PLAIN 2

/* A hub and everything a test connects to it; the teardown frees it all
 * in order (peers, hub, then the records its last on_close calls fill). */
typedef struct idfx {
  const void *row; /* the table row, for row tests */
  tf_hub h;
  int hub_up;
  SSL_CTX *no_tickets;
  device dev[MAX_DEVICES];
  int ndev;
  cf_conn plain[MAX_PLAIN];
  int plain_fd[MAX_PLAIN]; /* the plain conns' peers */
  int nplain;
} idfx;

static int fx_setup(void **state) {
  idfx *x = calloc(1, sizeof *x);
  assert_non_null(x);
  x->row = *state;
  *state = x;
  return 0;
}

static int fx_teardown(void **state) {
  idfx *x = *state;
  for (int i = 0; i < x->ndev; i++) {
    tf_peer_free(&x->dev[i].peer);
    SSL_CTX_free(x->dev[i].ctx);
  }
  for (int i = 0; i < x->nplain; i++)
    if (x->plain_fd[i] >= 0) close(x->plain_fd[i]);
  if (x->hub_up) tf_hub_done(&x->h);
  for (int i = 0; i < x->ndev; i++) cf_conn_free(&x->dev[i].cc);
  for (int i = 0; i < x->nplain; i++) cf_conn_free(&x->plain[i]);
  SSL_CTX_free(x->no_tickets);
  free(x);
  return 0;
}

static tf_hub *fx_hub(idfx *x, const vigil_policy *p) {
  tf_hub_init(&x->h, p);
  x->hub_up = 1;
  return &x->h;
}

/* Client contexts by certificate name: each certificate is issued once
 * per file (key generation and loading are what these tests spend most
 * time on, under valgrind above all). */
#define MAX_CERTS 16
static struct {
  char name[32];
  SSL_CTX *ctx;
} client_ctxs[MAX_CERTS];

static int setup(void **state) {
  memset(client_ctxs, 0, sizeof client_ctxs);
  return tf_setup_ctx(state);
}

static int teardown(void **state) {
  for (int i = 0; i < MAX_CERTS; i++) SSL_CTX_free(client_ctxs[i].ctx);
  return tf_teardown_ctx(state);
}

/* A device with the certificate called name, for cn (and san): issued
 * the first time a name is used, the same certificate after that (the
 * callers keep cn and san the same for a name). */
static device *fx_device(idfx *x, const char *name, const char *cn,
                         const char *san) {
  assert_true(x->ndev < MAX_DEVICES);
  device *d = &x->dev[x->ndev++];
  memset(d, 0, sizeof *d);
  d->peer.fd = -1;
  int i = 0;
  while (i < MAX_CERTS && client_ctxs[i].ctx &&
         strcmp(client_ctxs[i].name, name) != 0)
    i++;
  assert_true(i < MAX_CERTS);
  if (!client_ctxs[i].ctx) {
    char cert[TF_PATH], key[TF_PATH];
    tf_pki_client(&tf_test_pki, name, cn, san, 0, cert, key);
    snprintf(client_ctxs[i].name, sizeof client_ctxs[i].name, "%s", name);
    client_ctxs[i].ctx = tf_client_ctx(&tf_test_pki, cert, key);
  }
  SSL_CTX_up_ref(client_ctxs[i].ctx);
  d->ctx = client_ctxs[i].ctx;
  return d;
}

/* A plain TCP conn (no TLS) on the hub; its peer stays in the fixture. */
static cf_conn *fx_plain(idfx *x) {
  assert_true(x->nplain < MAX_PLAIN);
  int i = x->nplain++, s;
  cf_conn *cc = &x->plain[i];
  assert_int_equal(vt_tcp_pair(&s, &x->plain_fd[i]), 0);
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.callbacks = &cf_callbacks;
  ao.user_data = cc;
  assert_int_equal(vigil_adopt(x->h.hub, s, &ao, &cc->conn), VIGIL_OK);
  return cc;
}

/* Adopts a server conn (context ctx, options to) for d; the device's
 * handshake starts with device_go. */
static void device_adopt(tf_hub *h, device *d, SSL_CTX *ctx,
                         const vigil_tls_options *to, int *device_fd) {
  int s;
  assert_int_equal(vt_tcp_pair(&s, device_fd), 0);
  assert_int_equal(tf_adopt(h, s, &d->cc, ctx, 0, to, NULL), VIGIL_OK);
}

static void device_go(tf_hub *h, device *d, int device_fd) {
  tf_peer_init(&d->peer, d->ctx, device_fd, 1, "localhost");
  assert_true(vt_run_until(h->loop, tf_peer_handshaken, &d->peer, 3000));
  assert_true(d->peer.hs_done);
}

/* Connects d to a server conn adopted with to; waits until it is open. */
static void device_connect(tf_hub *h, device *d, const vigil_tls_options *to) {
  int c;
  device_adopt(h, d, tf_test_mtls_sctx, to, &c);
  device_go(h, d, c);
  assert_true(vt_run_until(h->loop, tf_conn_open, &d->cc, 3000));
}

/* d's conn (id) is refused: it closes gracefully, close_notify first,
 * and once the device hangs up it ends with reason (and detail, unless
 * NULL); a conn refused before it was ready never became ready. */
static void expect_refused(tf_hub *h, device *d, uint64_t id,
                           vigil_reason reason, const char *detail,
                           int never_ready) {
  assert_true(vt_run_until(h->loop, tf_peer_closed, &d->peer, 3000));
  assert_int_equal(d->peer.zero_return, 1);
  close(d->peer.fd);
  d->peer.fd = -1;
  assert_true(vt_run_until(h->loop, tf_conn_closed, &d->cc, 2000));
  assert_int_equal(d->cc.reason, reason);
  if (detail)
    assert_string_equal(tf_last(h, VIGIL_EV_CLOSE, id)->detail, detail);
  if (never_ready) assert_null(tf_last(h, VIGIL_EV_READY, id));
}

static const vigil_conn *holder_of(tf_hub *h, const char *identity) {
  return vigil_hub_find_identity(h->hub, identity, strlen(identity));
}

/* ---- which identity a certificate gives -------------------------------- */

#define DEV7_SAN "URI:urn:dev:7,DNS:dev7.example,email:dev7@example.com"

typedef struct source_case {
  const char *name;
  vigil_tls_id_source from;
  const char *san; /* the certificate's SAN (its CN is device-7) */
  const char *want; /* the conn's identity; NULL: none, it claims like a
                       plain conn */
} source_case;

static const source_case sources[] = {
    {"identity from SAN URI", VIGIL_TLS_ID_SAN_URI, DEV7_SAN, "urn:dev:7"},
    {"identity from SAN DNS", VIGIL_TLS_ID_SAN_DNS, DEV7_SAN, "dev7.example"},
    {"identity from SAN email", VIGIL_TLS_ID_SAN_EMAIL, DEV7_SAN,
     "dev7@example.com"},
    {"identity from CN", VIGIL_TLS_ID_CN, DEV7_SAN, "device-7"},
    {"no identity without that SAN", VIGIL_TLS_ID_SAN_URI, NULL, NULL},
};

static void run_source(void **state) {
  idfx *x = *state;
  const source_case *sc = x->row;
  tf_hub *h = fx_hub(x, NULL);
  vigil_tls_options to = identity_from(sc->from);
  device *d = fx_device(x, sc->san ? "device-7-san" : "device-7", "device-7",
                        sc->san);
  device_connect(h, d, &to);
  if (sc->want) {
    assert_string_equal(vigil_conn_identity(d->cc.conn), sc->want);
    assert_string_equal(vigil_conn_tls_identity(d->cc.conn), sc->want);
  } else {
    assert_null(vigil_conn_identity(d->cc.conn));
    assert_null(vigil_conn_tls_identity(d->cc.conn));
  }
}

/* ---- conns a certificate refuses --------------------------------------- */

typedef struct refusal {
  const char *name;
  vigil_tls_id_source from; /* the claimant's identity_from */
  uint32_t flap_max;        /* > 0: the hub bans flapping identities */
  const char *holder_cn;    /* a device with this CN connects first, ... */
  int holders;              /* ... this many times (reconnects) */
  const char *cn;           /* the claimant's certificate: its CN, ... */
  size_t uri_len;           /* ... and a URI SAN this long, when not 0 */
  int no_tickets;           /* a server context without session tickets */
  const char *early_claim;  /* claimed before the handshake, or NULL */
  const char *late_claim;   /* claimed once open (refused at once), or NULL */
  vigil_reason reason;
  const char *detail;       /* NULL: not checked */
  const char *freed;        /* the identity the refused conn held: freed,
                               then claimed early by its real owner */
} refusal;

static const refusal refusals[] = {
    /* device-2 names device-1 in its protocol data. */
    {.name = "claim of another device once open",
     .from = VIGIL_TLS_ID_CN,
     .holder_cn = "device-1",
     .holders = 1,
     .cn = "device-2",
     .late_claim = "device-1",
     .reason = VIGIL_REASON_TAKEOVER_REJECTED,
     .detail = "identity not proven by certificate"},
    /* A claim made before the TLS handshake completed (from on_accept,
     * say) meets the certificate once it is known: under identity_proof
     * another identity closes the conn and frees the identity it held,
     * which its real owner then claims early and keeps. */
    {.name = "claim of another device before the handshake",
     .from = VIGIL_TLS_ID_CN,
     .cn = "device-6",
     .early_claim = "device-7",
     .reason = VIGIL_REASON_TAKEOVER_REJECTED,
     .detail = "identity not proven by certificate",
     .freed = "device-7"},
    /* The certificate's identity is in a flapping ban: two takeovers in
     * the window, the second crosses flap_max and bans; the claim made
     * after the handshake is refused, never ready without its identity. */
    {.name = "certificate identity in a flapping ban",
     .from = VIGIL_TLS_ID_CN,
     .flap_max = 1,
     .holder_cn = "device-8",
     .holders = 2,
     .cn = "device-8",
     .reason = VIGIL_REASON_IDENTITY_BANNED},
    /* Longer than any identity may be (65535 bytes): it cannot be
     * claimed, so the conn closes instead of going on without the
     * identity its certificate proves. (Tickets off: OpenSSL cannot fit a
     * session holding such a certificate into one.) */
    {.name = "certificate identity too long",
     .from = VIGIL_TLS_ID_SAN_URI,
     .cn = "device-9",
     .uri_len = 70000,
     .no_tickets = 1,
     .reason = VIGIL_REASON_TAKEOVER_REJECTED,
     .detail = "certificate identity too long"},
};

static SSL_CTX *server_ctx_without_tickets(void) {
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.tickets = 0;
  SSL_CTX *ctx = NULL;
  assert_int_equal(vigil_tls_server_ctx_new(tf_test_pki.server_cert,
                                            tf_test_pki.server_key,
                                            tf_test_pki.ca, 1, &co, &ctx,
                                            NULL, 0),
                   VIGIL_OK);
  return ctx;
}

/* The claimant's certificate for r: CN, and a URI SAN of uri_len bytes. */
static device *refusal_claimant(idfx *x, const refusal *r) {
  if (!r->uri_len) return fx_device(x, r->cn, r->cn, NULL);
  char *san = malloc(8 + r->uri_len + 1);
  assert_non_null(san);
  memcpy(san, "URI:urn:", 8);
  memset(san + 8, 'x', r->uri_len);
  san[8 + r->uri_len] = '\0';
  device *d = fx_device(x, "long-uri", r->cn, san);
  free(san);
  return d;
}

static void run_refusal(void **state) {
  idfx *x = *state;
  const refusal *r = x->row;
  vigil_policy p;
  vigil_policy_init(&p);
  p.flap_max = r->flap_max;
  p.flap_window_ms = 60000;
  p.flap_ban_ms = 60000;
  tf_hub *h = fx_hub(x, r->flap_max ? &p : NULL);
  vigil_tls_options holder_to = identity_from(VIGIL_TLS_ID_CN);
  device *holder = NULL;
  for (int i = 0; i < r->holders; i++) {
    holder = fx_device(x, r->holder_cn, r->holder_cn, NULL);
    device_connect(h, holder, &holder_to);
  }
  device *d = refusal_claimant(x, r);
  SSL_CTX *ctx = tf_test_mtls_sctx;
  if (r->no_tickets) ctx = x->no_tickets = server_ctx_without_tickets();
  vigil_tls_options to = identity_from(r->from);
  int c;
  device_adopt(h, d, ctx, &to, &c);
  uint64_t id = vigil_conn_id(d->cc.conn);
  if (r->early_claim)
    assert_int_equal(vigil_conn_identify(d->cc.conn, r->early_claim,
                                         strlen(r->early_claim)),
                     VIGIL_OK);
  if (r->late_claim) {
    device_go(h, d, c);
    assert_true(vt_run_until(h->loop, tf_conn_open, &d->cc, 3000));
    assert_string_equal(vigil_conn_identity(d->cc.conn), r->cn);
    assert_int_equal(vigil_conn_identify(d->cc.conn, r->late_claim,
                                         strlen(r->late_claim)),
                     VIGIL_EREJECTED);
  } else {
    tf_peer_init(&d->peer, d->ctx, c, 1, "localhost");
  }
  expect_refused(h, d, id, r->reason, r->detail, !r->late_claim);
  if (r->freed) {
    assert_null(holder_of(h, r->freed));
    /* The real owner, claimed early with what its certificate says: the
     * certificate's own identity stays. */
    device *owner = fx_device(x, r->freed, r->freed, NULL);
    device_adopt(h, owner, tf_test_mtls_sctx, &holder_to, &c);
    assert_int_equal(vigil_conn_identify(owner->cc.conn, r->freed,
                                         strlen(r->freed)),
                     VIGIL_OK);
    device_go(h, owner, c);
    assert_true(vt_run_until(h->loop, tf_conn_open, &owner->cc, 3000));
    assert_string_equal(vigil_conn_identity(owner->cc.conn), r->freed);
    assert_ptr_equal(holder_of(h, r->freed), owner->cc.conn);
  }
  if (holder) { /* the identity's holder never noticed */
    assert_int_equal(holder->cc.closed, 0);
    assert_int_equal(vigil_conn_get_state(holder->cc.conn), VIGIL_CONN_OPEN);
    assert_ptr_equal(holder_of(h, r->holder_cn), holder->cc.conn);
    assert_int_equal(tf_count(h, VIGIL_EV_TAKEOVER), r->holders - 1);
  }
}

/* ---- claims of conns without a certificate identity -------------------- */

typedef struct claim_case {
  const char *name;
  int proof;                /* the holder's identity_proof */
  const char *holder_claims; /* the holder names another identity first
                                ("already identified"), or NULL */
  int tls_without_san;      /* the claimant: a TLS conn whose certificate
                               lacks the SAN its options name (else plain
                               TCP) */
  const char *claim;        /* what the claimant says it is */
  int want;                 /* vigil_conn_identify's answer */
  vigil_reason claimant_end; /* 0: the claimant stays open */
  vigil_reason holder_end;   /* 0: the holder stays open and keeps it */
} claim_case;

static const claim_case claims[] = {
    {.name = "plain conn claims a certified identity",
     .proof = 1,
     .claim = "device-1",
     .want = VIGIL_EREJECTED,
     .claimant_end = VIGIL_REASON_TAKEOVER_REJECTED},
    {.name = "TLS conn without that SAN claims a certified identity",
     .proof = 1,
     .tls_without_san = 1,
     .claim = "device-1",
     .want = VIGIL_EREJECTED,
     .claimant_end = VIGIL_REASON_TAKEOVER_REJECTED},
    {.name = "plain conn claims an identity no certificate holds",
     .proof = 1,
     .claim = "sensor-9",
     .want = VIGIL_OK},
    /* identity_proof off: certificates name conns, but a different claim
     * is only "already identified", and a plain claimant may take over. */
    {.name = "plain conn takes over with identity_proof off",
     .proof = 0,
     .holder_claims = "device-4",
     .claim = "device-1",
     .want = VIGIL_OK,
     .holder_end = VIGIL_REASON_TAKEOVER},
};

static void run_claim(void **state) {
  idfx *x = *state;
  const claim_case *cl = x->row;
  tf_hub *h = fx_hub(x, NULL);
  vigil_tls_options to = identity_from(VIGIL_TLS_ID_CN);
  to.identity_proof = cl->proof;
  device *holder = fx_device(x, "device-1", "device-1", NULL);
  device_connect(h, holder, &to);
  if (cl->holder_claims)
    assert_int_equal(vigil_conn_identify(holder->cc.conn, cl->holder_claims,
                                         strlen(cl->holder_claims)),
                     VIGIL_EEXIST);
  device *tls = NULL;
  cf_conn *cc;
  if (cl->tls_without_san) {
    vigil_tls_options uri = identity_from(VIGIL_TLS_ID_SAN_URI);
    tls = fx_device(x, "device-8", "device-8", NULL);
    device_connect(h, tls, &uri);
    cc = &tls->cc;
  } else {
    cc = fx_plain(x);
  }
  uint64_t id = vigil_conn_id(cc->conn);
  assert_int_equal(vigil_conn_identify(cc->conn, cl->claim, strlen(cl->claim)),
                   cl->want);
  if (cl->claimant_end) {
    assert_true(vigil_conn_get_state(cc->conn) >= VIGIL_CONN_FLUSHING);
    if (tls) {
      expect_refused(h, tls, id, cl->claimant_end, NULL, 0);
    } else {
      close(x->plain_fd[0]);
      x->plain_fd[0] = -1;
      assert_true(vt_run_until(h->loop, tf_conn_closed, cc, 2000));
      assert_int_equal(cc->reason, cl->claimant_end);
    }
  } else {
    assert_int_equal(vigil_conn_get_state(cc->conn), VIGIL_CONN_OPEN);
  }
  if (cl->holder_end) {
    assert_true(vt_run_until(h->loop, tf_conn_closed, &holder->cc, 2000));
    assert_int_equal(holder->cc.reason, cl->holder_end);
  } else { /* the real device never noticed */
    assert_int_equal(holder->cc.closed, 0);
    assert_int_equal(vigil_conn_get_state(holder->cc.conn), VIGIL_CONN_OPEN);
    assert_ptr_equal(holder_of(h, "device-1"), holder->cc.conn);
    assert_int_equal(tf_count(h, VIGIL_EV_TAKEOVER), 0);
  }
}

/* ---- takeover, app_handshake ------------------------------------------- */

static void test_identity_from_cn_and_takeover(void **state) {
  idfx *x = *state;
  tf_hub *h = fx_hub(x, NULL);
  vigil_tls_options to = identity_from(VIGIL_TLS_ID_CN);
  device *a = fx_device(x, "device-1", "device-1", NULL);
  device *b = fx_device(x, "device-1-rebooted", "device-1", NULL); /* new key */
  device_connect(h, a, &to);
  assert_string_equal(vigil_conn_identity(a->cc.conn), "device-1");
  assert_string_equal(vigil_conn_tls_identity(a->cc.conn), "device-1");
  assert_ptr_equal(holder_of(h, "device-1"), a->cc.conn);
  uint64_t aid = vigil_conn_id(a->cc.conn);
  /* The identity is settled before the conn is ready. */
  const tf_event *rd = tf_last(h, VIGIL_EV_READY, aid);
  assert_string_equal(rd->identity, "device-1");
  /* The same certified identity again: newest wins, as without TLS. */
  device_connect(h, b, &to);
  assert_true(vt_run_until(h->loop, tf_conn_closed, &a->cc, 2000));
  assert_int_equal(a->cc.reason, VIGIL_REASON_TAKEOVER);
  assert_ptr_equal(holder_of(h, "device-1"), b->cc.conn);
  assert_int_equal(tf_count(h, VIGIL_EV_TAKEOVER), 1);
  /* Claiming what the certificate says again is harmless. */
  assert_int_equal(vigil_conn_identify(b->cc.conn, "device-1", 8),
                   VIGIL_EEXIST);
  assert_int_equal(vigil_conn_get_state(b->cc.conn), VIGIL_CONN_OPEN);
}

static int got5(void *arg) { return ((cf_conn *)arg)->rx_len >= 5; }

/* With app_handshake the conn stays in HANDSHAKE after TLS, under the
 * same deadline, until the host says it is ready. */
static void test_app_handshake(void **state) {
  idfx *x = *state;
  tf_hub *h = fx_hub(x, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.app_handshake = 1;
  device *d = fx_device(x, "device-5", "device-5", NULL);
  int c;
  device_adopt(h, d, tf_test_mtls_sctx, &to, &c);
  device_go(h, d, c);
  assert_int_equal(tf_peer_send(&d->peer, "LOGIN", 5), 0);
  assert_true(vt_run_until(h->loop, got5, &d->cc, 2000));
  assert_int_equal(d->cc.rx_len, 5);
  assert_int_equal(tf_count(h, VIGIL_EV_OPEN), 1);
  assert_int_equal(tf_count(h, VIGIL_EV_READY), 0);
  assert_int_equal(vigil_conn_get_state(d->cc.conn), VIGIL_CONN_HANDSHAKE);
  assert_int_equal(vigil_conn_ready(d->cc.conn), VIGIL_OK);
  assert_int_equal(tf_count(h, VIGIL_EV_READY), 1);
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_identity_from_cn_and_takeover,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_app_handshake, fx_setup,
                                      fx_teardown),
  };
  vt_suite s = {0};
  VT_TESTS(&s, tests);
  VT_ROWS_SETUP_TEARDOWN(&s, run_source, sources, fx_setup, fx_teardown);
  VT_ROWS_SETUP_TEARDOWN(&s, run_refusal, refusals, fx_setup, fx_teardown);
  VT_ROWS_SETUP_TEARDOWN(&s, run_claim, claims, fx_setup, fx_teardown);
  return vt_suite_run(&s, setup, teardown);
}
