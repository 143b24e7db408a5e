/*
 * TLS 1.3 resumption with and without (EC)DHE (resume_without_dhe): a
 * vigil client conn reconnects to a vigil server conn, and the server's
 * message callback shows what went over the wire: the psk_key_exchange_
 * modes the ClientHello offered, and whether the ServerHello accepted a
 * pre-shared key (pre_shared_key) with or without a key share. psk_ke is
 * "pre_shared_key and no key_share"; psk_dhe_ke carries both.
 *
 * Also: each side alone changes nothing, TLS 1.2 is unaffected, tickets
 * the server cannot use fall back to a full handshake (another ticket
 * key, another hash) and are never offered again, so resumption comes
 * back whether or not the server sends a ticket after declining one, and
 * a resumption that fails anyway costs the client one failed handshake,
 * not a loop of them.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "rowtest.h"
#include "tlsfix.h"

/* ---- what the server saw (its message callback) ---- */

enum { EXT_PSK = 41, EXT_PSK_MODES = 45, EXT_KEY_SHARE = 51 };

typedef struct wire {
  int client_hellos, server_hellos;
  int ch_psk;             /* ClientHello offered a session */
  int ch_mode_ke;         /* psk_key_exchange_modes has psk_ke (0) */
  int ch_mode_dhe_ke;     /* ... psk_dhe_ke (1) */
  int sh_psk;             /* ServerHello accepted the session */
  int sh_key_share;       /* ServerHello carries a key share */
} wire;

static wire seen;

/* Skips n bytes; 0 when they are not there. */
static int skip_bytes(const unsigned char **p, const unsigned char *end,
                      size_t n) {
  if ((size_t)(end - *p) < n) return 0;
  *p += n;
  return 1;
}

/* Skips a vector with a 1- or 2-byte length prefix. */
static int skip_vec(const unsigned char **p, const unsigned char *end,
                    int width) {
  if (end - *p < width) return 0;
  size_t n = width == 1 ? (*p)[0] : ((size_t)(*p)[0] << 8 | (*p)[1]);
  *p += width;
  return skip_bytes(p, end, n);
}

/* Walks a hello's extensions block, recording what the test checks. */
static void scan_extensions(const unsigned char *p, const unsigned char *end,
                            int client) {
  if (end - p < 2) return;
  size_t total = (size_t)p[0] << 8 | p[1];
  p += 2;
  if ((size_t)(end - p) < total) return;
  end = p + total;
  while (end - p >= 4) {
    unsigned type = (unsigned)p[0] << 8 | p[1];
    size_t len = (size_t)p[2] << 8 | p[3];
    p += 4;
    if ((size_t)(end - p) < len) return;
    if (client && type == EXT_PSK) seen.ch_psk = 1;
    if (client && type == EXT_PSK_MODES && len >= 1)
      for (size_t i = 1; i < len && i <= p[0]; i++) {
        if (p[i] == 0) seen.ch_mode_ke = 1;
        if (p[i] == 1) seen.ch_mode_dhe_ke = 1;
      }
    if (!client && type == EXT_PSK) seen.sh_psk = 1;
    if (!client && type == EXT_KEY_SHARE) seen.sh_key_share = 1;
    p += len;
  }
}

static void server_msg(int write_p, int version, int content_type,
                       const void *buf, size_t len, SSL *ssl, void *arg) {
  (void)version, (void)ssl, (void)arg;
  const unsigned char *p = buf, *end = p + len;
  if (content_type != SSL3_RT_HANDSHAKE || len < 4) return;
  int client_hello = !write_p && p[0] == SSL3_MT_CLIENT_HELLO;
  int server_hello = write_p && p[0] == SSL3_MT_SERVER_HELLO;
  if (!client_hello && !server_hello) return;
  if (client_hello) seen.client_hellos++;
  if (server_hello) seen.server_hellos++;
  p += 4;
  if (!skip_bytes(&p, end, 2 + 32) || !skip_vec(&p, end, 1)) return;
  if (client_hello && (!skip_vec(&p, end, 2) || !skip_vec(&p, end, 1)))
    return;
  if (server_hello && !skip_bytes(&p, end, 2 + 1)) return;
  scan_extensions(p, end, client_hello);
}

/* ---- one reconnect: a vigil client conn against a vigil server conn ---- */

typedef struct round_result {
  int opened;   /* both conns reached OPEN */
  int resumed;  /* the server's open event said tls_resumed=1 */
  vigil_reason client_reason;
  wire wire;
} round_result;

typedef struct pair {
  cf_conn *srv, *cli;
} pair;

static int both_open_or_closed(void *arg) {
  pair *p = arg;
  if (p->srv->closed || p->cli->closed) return 1; /* conn is NULL then */
  return vigil_conn_get_state(p->srv->conn) == VIGIL_CONN_OPEN &&
         vigil_conn_get_state(p->cli->conn) == VIGIL_CONN_OPEN;
}

static int both_closed(void *arg) {
  pair *p = arg;
  return p->srv->closed && p->cli->closed;
}

static int pings_in(void *arg) {
  pair *p = arg;
  return p->srv->rx_len >= 4 && p->cli->rx_len >= 4;
}

static void one_round(tf_hub *h, SSL_CTX *sctx, SSL_CTX *cctx,
                      vigil_tls_session *store, round_result *out) {
  memset(out, 0, sizeof *out);
  memset(&seen, 0, sizeof seen);
  SSL_CTX_set_msg_callback(sctx, server_msg);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.session = store;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn srv = {0}, cli = {0};
  assert_int_equal(tf_adopt(h, s, &srv, sctx, 0, NULL, NULL), VIGIL_OK);
  assert_int_equal(tf_adopt(h, c, &cli, cctx, 1, &to, NULL), VIGIL_OK);
  uint64_t sid = vigil_conn_id(srv.conn);
  pair pr = {&srv, &cli};
  assert_true(vt_run_until(h->loop, both_open_or_closed, &pr, 3000));
  if (!srv.closed && !cli.closed) {
    out->opened = 1;
    /* Data both ways on the new keys; the server's TLS 1.3 ticket comes
     * before its data, so the store holds it once "pong" is in. */
    assert_int_equal(vigil_send(cli.conn, "ping", 4), VIGIL_OK);
    assert_int_equal(vigil_send(srv.conn, "pong", 4), VIGIL_OK);
    assert_true(vt_run_until(h->loop, pings_in, &pr, 3000));
    assert_memory_equal(srv.rx, "ping", 4);
    assert_memory_equal(cli.rx, "pong", 4);
    const tf_event *op = tf_last(h, VIGIL_EV_OPEN, sid);
    assert_non_null(op);
    out->resumed = op->tls_resumed;
    assert_int_equal(vigil_conn_tls_resumed(srv.conn), op->tls_resumed);
    srv.close_on_peer_closed = 1;
    vigil_close(cli.conn);
  }
  assert_true(vt_run_until(h->loop, both_closed, &pr, 3000));
  out->client_reason = cli.reason;
  out->wire = seen;
  cf_conn_free(&srv);
  cf_conn_free(&cli);
}

/* ---- what a round must show ---- */

typedef enum want { ANY, NO, YES } want;

typedef struct wants {
  want opened, resumed;
  want ch_psk, ch_mode_ke, ch_mode_dhe_ke; /* the ClientHello */
  want sh_psk, sh_key_share;               /* the ServerHello */
  want one_server_hello;                   /* no HelloRetryRequest */
  want resumable;                          /* the store, after the round */
  vigil_reason client_reason;              /* 0: not checked */
} wants;

typedef enum outcome {
  END,            /* no more steps */
  FULL,           /* a full handshake */
  RESUMED_DHE,    /* psk_dhe_ke: pre_shared_key and a key share */
  RESUMED_NO_DHE, /* psk_ke: pre_shared_key and no key share */
  OPENS,          /* just opens (TLS 1.2: no key share to look at) */
  FAILS,          /* the handshake fails on the client */
  RECOVERS,       /* the rounds of assert_recovers */
} outcome;

static const wants presets[] = {
    [FULL] = {.opened = YES, .resumed = NO, .sh_psk = NO, .sh_key_share = YES},
    [RESUMED_DHE] = {.opened = YES, .resumed = YES, .ch_psk = YES,
                     .sh_psk = YES, .sh_key_share = YES,
                     .one_server_hello = YES},
    [RESUMED_NO_DHE] = {.opened = YES, .resumed = YES, .ch_mode_ke = YES,
                        .ch_mode_dhe_ke = YES, .sh_psk = YES,
                        .sh_key_share = NO, .one_server_hello = YES},
    [OPENS] = {.opened = YES},
    [FAILS] = {.opened = NO, .client_reason = VIGIL_REASON_TLS_ERROR},
};

static void check(const char *what, int step, int got, want w) {
  if (w == ANY) return;
  if (got != (w == YES)) print_error("step %d: %s is %d\n", step, what, got);
  assert_int_equal(got, w == YES);
}

/* The outcome's wants, then those the step adds (any not ANY). */
static void expect(const round_result *r, vigil_tls_session *store,
                   int step, outcome o, const wants *more) {
  const wants *w = &presets[o];
  for (int pass = 0; pass < 2; pass++, w = more) {
    if (!w) break;
    check("opened", step, r->opened, w->opened);
    check("resumed", step, r->resumed, w->resumed);
    check("ch_psk", step, r->wire.ch_psk, w->ch_psk);
    check("ch_mode_ke", step, r->wire.ch_mode_ke, w->ch_mode_ke);
    check("ch_mode_dhe_ke", step, r->wire.ch_mode_dhe_ke, w->ch_mode_dhe_ke);
    check("sh_psk", step, r->wire.sh_psk, w->sh_psk);
    check("sh_key_share", step, r->wire.sh_key_share, w->sh_key_share);
    check("one server hello", step, r->wire.server_hellos == 1,
          w->one_server_hello);
    check("resumable", step, vigil_tls_session_resumable(store) != 0,
          w->resumable);
    if (w->client_reason) assert_int_equal(r->client_reason, w->client_reason);
  }
}

/* After a full handshake that was not the resumption the client offered,
 * the store holds the server's new ticket, or nothing until one comes:
 * the next reconnect never offers the declined session again. Within two
 * more reconnects it resumes, whether or not the server sent a ticket
 * after declining (see README, "Cheap reconnects"). */
static void assert_recovers(tf_hub *h, SSL_CTX *sctx, SSL_CTX *cctx,
                            vigil_tls_session *store, int step) {
  static const wants declined_one_gone = {.ch_psk = NO};
  round_result r;
  for (int i = 0; i < 2; i++) {
    one_round(h, sctx, cctx, store, &r);
    if (r.resumed) break;
    expect(&r, store, step, FULL, &declined_one_gone);
  }
  expect(&r, store, step, RESUMED_NO_DHE, NULL);
  one_round(h, sctx, cctx, store, &r);
  expect(&r, store, step, RESUMED_NO_DHE, NULL); /* the chain goes on */
}

/* ---- scenarios: reconnects, one step each ---- */

typedef enum server { MAIN, ROTATED, NO_TICKETS } server;
typedef enum change { NOTHING, SHA256_ONLY, OTHER_SESSION_ID_CONTEXT } change;

typedef struct step {
  outcome expect;
  server on;    /* the server's context (each made with srv_without_dhe):
                   the first, another one (new ticket keys: a restart or
                   a rotation), or one without tickets */
  change first; /* made to a context before the step */
  wants more;   /* checked beyond what the outcome says */
} step;

typedef struct scenario {
  const char *name;
  int srv_without_dhe, cli_without_dhe; /* resume_without_dhe per side */
  int tls12;                            /* the client stops at TLS 1.2 */
  int needs_callbacks;                  /* OpenSSL < 3.3 only */
  step steps[6];
} scenario;

static const scenario scenarios[] = {
    {.name = "default keeps DHE",
     .steps = {{FULL, .more = {.ch_mode_ke = NO, .ch_mode_dhe_ke = YES,
                               .resumable = YES}},
               {RESUMED_DHE, .more = {.ch_mode_ke = NO, /* only psk_dhe_ke */
                                      .ch_mode_dhe_ke = YES}}}},
    /* Each resumption issues the next ticket: a chain of them all psk_ke. */
    {.name = "both sides resume without DHE",
     .srv_without_dhe = 1,
     .cli_without_dhe = 1,
     .steps = {{FULL}, {RESUMED_NO_DHE}, {RESUMED_NO_DHE}, {RESUMED_NO_DHE}}},
    /* The client does not offer psk_ke. */
    {.name = "server alone changes nothing",
     .srv_without_dhe = 1,
     .steps = {{FULL, .more = {.ch_mode_ke = NO, .ch_mode_dhe_ke = YES,
                               .resumable = YES}},
               {RESUMED_DHE, .more = {.ch_mode_ke = NO}}}},
    /* The server does not prefer it. */
    {.name = "client alone changes nothing",
     .cli_without_dhe = 1,
     .steps = {{FULL, .more = {.ch_mode_ke = YES, .ch_mode_dhe_ke = YES,
                               .resumable = YES}},
               {RESUMED_DHE, .more = {.ch_mode_ke = YES}}}},
    {.name = "TLS 1.2 unaffected",
     .srv_without_dhe = 1,
     .cli_without_dhe = 1,
     .tls12 = 1,
     .steps = {{OPENS, .more = {.resumed = NO}},
               {OPENS, .more = {.resumed = YES}}}}, /* a TLS 1.2 ticket */
    /* Tickets the server will not resume lead to full handshakes, never
     * to a failed one, and resumption comes back: a ticket from another
     * server context, and a ticket whose hash the chosen cipher suite
     * does not match. The default suite is TLS_AES_256_GCM_SHA384; a
     * client now limited to a SHA-256 suite still offers the SHA-384
     * ticket. OpenSSL servers before the fix for openssl/openssl#18549
     * (3.0.19 among them) send no new ticket after declining it; later
     * ones do. */
    {.name = "unusable tickets fall back to full",
     .srv_without_dhe = 1,
     .cli_without_dhe = 1,
     .steps = {{FULL},
               {FULL, ROTATED, .more = {.ch_psk = YES}}, /* not decrypted */
               {RECOVERS, ROTATED},
               {FULL, ROTATED, SHA256_ONLY, .more = {.ch_psk = YES}},
               {RECOVERS, ROTATED}}},
    /* A server that declines the offered session and issues no ticket
     * (here: tickets off): the store forgets the declined session instead
     * of offering it on every reconnect; back on a server that issues
     * tickets, resumption returns. */
    {.name = "declined session is forgotten",
     .steps = {{FULL, .more = {.resumable = YES}},
               {FULL, NO_TICKETS, .more = {.ch_psk = YES, .resumable = NO}},
               {FULL, NO_TICKETS, .more = {.ch_psk = NO}},
               {FULL},
               {RESUMED_DHE}}},
    /* The documented misuse: changing the session id context of a server
     * context made with resume_without_dhe under OpenSSL < 3.3. The
     * ticket passes vigil's checks but OpenSSL refuses it after the key
     * shares were set aside, so that handshake fails; after the fatal
     * alert the client no longer offers the session and the next
     * reconnect is a full handshake, not the same failure again. */
    {.name = "failed resumption fails once",
     .srv_without_dhe = 1,
     .cli_without_dhe = 1,
     .needs_callbacks = 1,
     .steps = {{FULL},
               {FAILS, MAIN, OTHER_SESSION_ID_CONTEXT,
                .more = {.resumable = NO}},
               {FULL, .more = {.ch_psk = NO}}}}, /* nothing offered */
};

/* Contexts from vigil's helpers, each side opting in or not. */
static SSL_CTX *server_ctx(int without_dhe, int tickets) {
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.resume_without_dhe = without_dhe;
  co.tickets = tickets;
  SSL_CTX *ctx = NULL;
  char err[256] = "";
  int rc = vigil_tls_server_ctx_new(tf_test_pki.server_cert,
                                    tf_test_pki.server_key, NULL, 0, &co,
                                    &ctx, err, sizeof err);
  if (rc != VIGIL_OK) fprintf(stderr, "server ctx: %s\n", err);
  assert_int_equal(rc, VIGIL_OK);
  return ctx;
}

static SSL_CTX *client_ctx(int without_dhe) {
  vigil_tls_ctx_options co;
  vigil_tls_ctx_options_init(&co);
  co.resume_without_dhe = without_dhe;
  SSL_CTX *ctx = NULL;
  assert_int_equal(vigil_tls_client_ctx_new(tf_test_pki.ca, NULL, NULL, &co,
                                            &ctx, NULL, 0),
                   VIGIL_OK);
  return ctx;
}

/* A scenario's hub, store and contexts, freed by the teardown. */
typedef struct resume_fx {
  const scenario *sc;
  tf_hub h;
  vigil_tls_session *store;
  SSL_CTX *servers[3]; /* by enum server, made when first used */
  SSL_CTX *cctx;
} resume_fx;

static int fx_setup(void **state) {
  resume_fx *x = calloc(1, sizeof *x);
  assert_non_null(x);
  x->sc = *state;
  tf_hub_init(&x->h, NULL);
  assert_int_equal(vigil_tls_session_new(&x->store), VIGIL_OK);
  x->cctx = client_ctx(x->sc->cli_without_dhe);
  if (x->sc->tls12) SSL_CTX_set_max_proto_version(x->cctx, TLS1_2_VERSION);
  *state = x;
  return 0;
}

static int fx_teardown(void **state) {
  resume_fx *x = *state;
  /* The host may drop its store while nothing uses it any more. */
  vigil_tls_session_free(x->store);
  tf_hub_done(&x->h);
  for (int i = 0; i < 3; i++) SSL_CTX_free(x->servers[i]);
  SSL_CTX_free(x->cctx);
  free(x);
  return 0;
}

static SSL_CTX *server_for(resume_fx *x, server on) {
  if (!x->servers[on])
    x->servers[on] = server_ctx(x->sc->srv_without_dhe, on != NO_TICKETS);
  return x->servers[on];
}

static void run_scenario(void **state) {
  resume_fx *x = *state;
  const scenario *sc = x->sc;
#ifdef SSL_OP_PREFER_NO_DHE_KEX
  if (sc->needs_callbacks) {
    skip(); /* OpenSSL >= 3.3: no callbacks, nothing to misuse */
    return;
  }
#endif
  for (int i = 0; i < 6 && sc->steps[i].expect != END; i++) {
    const step *st = &sc->steps[i];
    SSL_CTX *sctx = server_for(x, st->on);
    static const unsigned char other[] = "other";
    if (st->first == SHA256_ONLY)
      assert_int_equal(
          SSL_CTX_set_ciphersuites(x->cctx, "TLS_AES_128_GCM_SHA256"), 1);
    if (st->first == OTHER_SESSION_ID_CONTEXT)
      SSL_CTX_set_session_id_context(sctx, other, sizeof other - 1);
    if (st->expect == RECOVERS) {
      assert_recovers(&x->h, sctx, x->cctx, x->store, i);
      continue;
    }
    round_result r;
    one_round(&x->h, sctx, x->cctx, x->store, &r);
    expect(&r, x->store, i, st->expect, &st->more);
  }
}

int main(void) {
  vt_suite s = {0};
  VT_ROWS_SETUP_TEARDOWN(&s, run_scenario, scenarios, fx_setup, fx_teardown);
  return vt_suite_run(&s, tf_setup, tf_teardown);
}
