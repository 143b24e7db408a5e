/*
 * TLS connection state (internal). See vigil/tls.h for the behaviour and
 * tls_conn.c for the state machine.
 *
 * The core sees none of this: it drives a TLS conn through the transport
 * hooks (transport.h) and never includes OpenSSL.
 */
#ifndef VIGIL_TLS_INTERNAL_H
#define VIGIL_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "close.h"
#include "conn.h"
#include "outqueue.h"
#include "policy_share.h"
#include "tls_options.h"
#include "transport.h"

/* vigil__tls.flags */
#define VIGIL__TLS_CLIENT 0x0001u        /* client role */
#define VIGIL__TLS_HS_DONE 0x0002u       /* TLS handshake finished */
#define VIGIL__TLS_HS_WANT_WRITE 0x0004u /* handshake waits for POLLOUT */
#define VIGIL__TLS_READ_WANTS_WRITE 0x0008u  /* SSL_read: WANT_WRITE */
#define VIGIL__TLS_WRITE_WANTS_READ 0x0010u  /* SSL_write: WANT_READ */
#define VIGIL__TLS_NOTIFY_PENDING 0x0020u /* close_notify not fully written */
#define VIGIL__TLS_NOTIFY_SENT 0x0040u   /* our close_notify is out */
#define VIGIL__TLS_NOTIFY_RCVD 0x0080u   /* peer's close_notify seen */
#define VIGIL__TLS_FATAL 0x0100u         /* SSL failed: no SSL_shutdown */
#define VIGIL__TLS_APP_HS 0x0200u        /* host's own handshake follows */
#define VIGIL__TLS_PROOF 0x0400u         /* identity_proof */
#define VIGIL__TLS_EOF 0x0800u           /* the BIO read EOF */

typedef struct vigil__tls {
  SSL *ssl;
  vigil_tls_session *session; /* client: a reference to the host's store */
  SSL_SESSION *stored;        /* last session put in the store (a ref) */
  SSL_SESSION *offered;       /* session offered for resumption, until
                                 the handshake ends (a ref) */
  char *cert_identity;        /* from the verified peer cert; NULL = none */
  int bio_errno;              /* errno of the BIO's last failed call */
  uint16_t flags;             /* VIGIL__TLS_* */
  uint8_t identity_from;      /* vigil_tls_id_source */
  char detail[128];           /* close detail (ext->detail points here) */
} vigil__tls;

static inline vigil__tls *vigil__tls_of(const vigil_conn *c) {
  return c->ext ? (vigil__tls *)c->ext->tls : NULL;
}

/* ---- tls_conn.c ---- */
/* The TLS transport (transport.h); vigil__tls_adopt makes it a conn's. */
extern const vigil__transport vigil__transport_tls;
/* Records an OpenSSL failure (first queued error, then the queue is
 * emptied) as the close detail; `what` is used when the queue is empty. */
void vigil__tls_set_error_detail(vigil_conn *c, const char *what);

/* ---- tls_bio.c ---- */
/* A socket BIO on c->io.fd (set at adoption before any I/O) that sends
 * with MSG_NOSIGNAL and counts raw bytes as conn activity. NULL on
 * ENOMEM. */
BIO *vigil__tls_bio_new(vigil_conn *c);

/* ---- tls_ident.c ---- */
/* Extracts the identity of the verified peer certificate into
 * t->cert_identity (NULL when unverified, absent, empty or holding a NUL).
 * VIGIL_OK, VIGIL_ENOMEM, or VIGIL_ETLS when OpenSSL could not read the
 * field (its error stays queued); on error t->cert_identity stays NULL
 * and the conn must not go on as certificate-less. */
int vigil__tls_extract_identity(vigil__tls *t);
/* The transport's proof hook: what c's certificate proves about id. */
int vigil__tls_proof(const vigil_conn *c, const void *id, size_t len);
/* The identity c already holds (claimed before its certificate was
 * known) against that certificate: VIGIL_OK when it is the certificate's
 * own, when there is nothing to compare or identity_proof is off; else
 * VIGIL_EREJECTED after setting the close detail, and the caller closes
 * c with takeover_rejected. */
int vigil__tls_check_held(vigil_conn *c);

/* ---- tls_ctx.c ---- */
/* The session id context of vigil's server contexts (tickets carry it). */
#define VIGIL__TLS_SID_CTX "vigil"

/* ---- tls_psk_ke.c ---- */
/* resume_without_dhe on ctx: allows psk_ke (both roles) and makes a
 * server prefer it when resuming TLS 1.3. VIGIL_OK, VIGIL_ENOMEM or
 * VIGIL_ETLS. */
int vigil__tls_psk_ke_setup(SSL_CTX *ctx, int server);

/* ---- tls_session.c ---- */
void vigil__tls_session_ref(vigil_tls_session *s);
SSL_SESSION *vigil__tls_session_get(const vigil_tls_session *s);
/* Replaces the stored session (takes its own reference). */
void vigil__tls_session_put(vigil_tls_session *s, SSL_SESSION *sess);
/* Forgets sess if it is still the stored session (another conn may have
 * stored a newer one meanwhile). */
void vigil__tls_session_drop(vigil_tls_session *s, const SSL_SESSION *sess);

#endif
