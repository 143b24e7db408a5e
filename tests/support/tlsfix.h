/*
 * TLS test fixture: a throw-away PKI generated at test time (no key is
 * ever committed), a hub that records every event with its TLS fields, and
 * a raw non-blocking OpenSSL peer driven from vt_run_until predicates, so
 * tests can see exactly what a real TLS stack on the other end sees.
 */
#ifndef VIGIL_TLSFIX_H
#define VIGIL_TLSFIX_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "corefix.h"
#include "testutil.h"
#include "vigil.h"

/* ---- PKI ---------------------------------------------------------------- */

#define TF_PATH 256

/* A CA, a server certificate (CN=localhost, SAN DNS:localhost and
 * IP:127.0.0.1) and a second, untrusted CA, as PEM files in a temp dir. */
typedef struct tf_pki {
  char dir[TF_PATH];
  char ca[TF_PATH];          /* trusted CA certificate */
  char server_cert[TF_PATH];
  char server_key[TF_PATH];
  int rsa_bits;              /* 0 = EC P-256 keys (fast), else RSA */
  void *ca_key, *ca_x509;    /* EVP_PKEY, X509 */
  void *rogue_key, *rogue_x509;
  unsigned serial;
} tf_pki;

/* Creates the PKI (EC keys unless rsa_bits); asserts success. */
void tf_pki_init(tf_pki *p, int rsa_bits);
/* Issues a client certificate named <name>.pem / <name>.key in the PKI
 * dir, signed by the trusted CA (or by the untrusted one when rogue),
 * with subject CN=cn and, when san is not NULL, a subjectAltName such as
 * "URI:urn:dev:7,DNS:dev7.example,email:dev7@example.com". The paths are
 * written to cert/key (TF_PATH bytes each). */
void tf_pki_client(tf_pki *p, const char *name, const char *cn,
                   const char *san, int rogue, char *cert, char *key);
/* Removes the files and the directory. */
void tf_pki_done(tf_pki *p);

/* ---- hub with a TLS-aware event recorder -------------------------------- */

#define TF_MAX_EVENTS 256

typedef struct tf_event {
  vigil_event_type type;
  uint64_t conn_id;
  vigil_reason reason;
  int truncated;
  int tls_resumed;
  int sys_errno;
  char detail[160];
  char identity[64];
  char line[768];          /* logfmt */
} tf_event;

typedef struct tf_hub {
  struct ev_loop *loop;
  vigil_hub *hub;
  tf_event events[TF_MAX_EVENTS];
  int nevents;
} tf_hub;

void tf_hub_init(tf_hub *h, const vigil_policy *p);
/* Same on a fake clock: the hub reads *fake_now (vt_fake_clock), with a
 * 1 ms tick; the test moves it with vt_advance(). */
void tf_hub_init_clock(tf_hub *h, const vigil_policy *p, uint64_t *fake_now);
void tf_hub_done(tf_hub *h);
int tf_count(const tf_hub *h, vigil_event_type t);
/* Last event of a type (for conn_id, or any conn when 0), or NULL. */
const tf_event *tf_last(const tf_hub *h, vigil_event_type t,
                        uint64_t conn_id);

/* Adopts fd with TLS (server role unless client) and the corefix
 * callbacks recording into cc; returns vigil_adopt's code. */
int tf_adopt(tf_hub *h, int fd, cf_conn *cc, SSL_CTX *ctx, int client,
             const vigil_tls_options *to, const vigil_policy *p);

/* ---- raw OpenSSL peer --------------------------------------------------- */

typedef struct tf_peer {
  int fd;
  SSL *ssl;
  int hs_done;
  int failed;              /* SSL error or socket error */
  char error[160];         /* reason string of the failure */
  int zero_return;         /* close_notify received */
  int eof;                 /* TCP EOF without close_notify */
  char *rx;
  size_t rx_len, rx_cap;
} tf_peer;

/* Wraps a connected socket (made non-blocking); asserts success. */
void tf_peer_init(tf_peer *p, SSL_CTX *ctx, int fd, int client,
                  const char *sni);
/* Advances the handshake and reads what is available. */
void tf_peer_step(tf_peer *p);
/* Writes all of data (waiting for the socket when needed, up to 5 s);
 * returns 0 or -1. */
int tf_peer_send(tf_peer *p, const void *data, size_t len);
/* Sends close_notify (best effort). */
void tf_peer_close_notify(tf_peer *p);
/* Frees the SSL and closes the fd. */
void tf_peer_free(tf_peer *p);

/* vt_run_until predicates on a tf_peer (they call tf_peer_step). */
int tf_peer_handshaken(void *peer); /* hs_done or failed */
int tf_peer_closed(void *peer);     /* zero_return, eof or failed */

/* Client/server contexts from the PKI; assert success. */
SSL_CTX *tf_server_ctx(const tf_pki *p, int require_client_cert);
SSL_CTX *tf_client_ctx(const tf_pki *p, const char *cert, const char *key);

/* ---- the fixture every TLS test file shares ----------------------------- */

/* The file's PKI (EC keys): made by tf_setup, removed by tf_teardown, the
 * cmocka group setup and teardown of a TLS test file (or called by its
 * own, which then adds its contexts). */
extern tf_pki tf_test_pki;
int tf_setup(void **state);
int tf_teardown(void **state);
/* The same with the contexts most files use, made from the PKI. */
extern SSL_CTX *tf_test_sctx;      /* a server context */
extern SSL_CTX *tf_test_mtls_sctx; /* one requiring client certificates */
extern SSL_CTX *tf_test_cctx;      /* a client context, no certificate */
int tf_setup_ctx(void **state);
int tf_teardown_ctx(void **state);

/* vt_run_until predicates on a cf_conn: on_close ran; the conn is OPEN. */
int tf_conn_closed(void *cc);
int tf_conn_open(void *cc);

/* A server conn adopted on sctx (policy p; NULL = the hub's) and a raw
 * client peer on cctx (SNI localhost), both through the handshake, the
 * conn OPEN; asserts it all. */
void tf_connect(tf_hub *h, SSL_CTX *sctx, SSL_CTX *cctx, cf_conn *cc,
                tf_peer *peer, const vigil_policy *p);

/* The one-conn fixture of a test: a hub, a server conn (cc) and its raw
 * client (peer), or a vigil client conn (cli) as the other end. */
typedef struct tf_fx {
  tf_hub h;
  uint64_t now; /* the fake clock, when the hub runs on it */
  cf_conn cc, cli;
  tf_peer peer;
  uint64_t id;  /* cc's, once the test sets it */
} tf_fx;

/* A fixture with its hub (policy p; on the fake clock from 1000000 when
 * fake_clock), nothing connected yet. */
tf_fx *tf_fx_new(const vigil_policy *p, int fake_clock);
/* Adopts a server conn (cc, on sctx) over a fresh loopback pair and sets
 * id; the client's socket is peer.fd, no TLS on it yet (tf_peer_init on
 * it starts that). */
void tf_fx_adopt(tf_fx *x, SSL_CTX *sctx);
/* The client hangs up (closes its socket); the server conn then closes,
 * with reason (asserted). */
void tf_fx_hang_up(tf_fx *x, vigil_reason reason);
/* Frees the peer, the hub (whose last on_close calls fill cc and cli),
 * then the records; for cmocka teardowns. */
void tf_fx_free(tf_fx *x);

#endif
