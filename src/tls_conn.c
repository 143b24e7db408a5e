/*
 * TLS connections: the handshake, records in and out, close_notify.
 *
 * The TLS layer inside the conn states of close.c:
 *
 *   adopt (HANDSHAKE)
 *     |  SSL_do_handshake: WANT_READ -> EV_READ, WANT_WRITE -> EV_WRITE
 *     |  error -> CLOSED (tls_error, detail = OpenSSL reason)
 *     |  TCP EOF -> CLOSED (peer_closed, detail "eof during handshake")
 *     |  handshake_timeout -> CLOSED at once (no drain)
 *     v
 *   TLS up: certificate identity read (unreadable -> CLOSED, tls_error;
 *     |     ENOMEM -> CLOSED, io_error), "open" (tls_resumed), identity
 *     |     claimed (refused -> closing, see claim_cert_identity),
 *     |     "ready" -> OPEN unless the host runs its own handshake
 *     |  SSL_read -> on_data; vigil_send -> SSL_write (queue = plaintext)
 *     |  peer close_notify -> peer FIN path (CLOSE_WAIT, peer_closed)
 *     |  TCP EOF without close_notify -> peer FIN path, truncated = 1
 *     v
 *   graceful close: queue flushed (FLUSHING)
 *     |  SSL_shutdown: close_notify (WANT_WRITE -> EV_WRITE, retried)
 *     v
 *   shutdown(SHUT_WR) -> DRAINING: raw reads, discarded, until peer FIN
 *
 * OpenSSL's error queue is per thread and shared by every conn of every
 * hub on it: ERR_clear_error() runs before each SSL call and every failure
 * consumes the queue, so one conn's failure never shows up as another's.
 *
 * SSL_read may want to write (a key update to answer) and SSL_write may
 * want to read; the READ_WANTS_WRITE / WRITE_WANTS_READ flags make the io
 * watcher wait for what OpenSSL needs and retry the right call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conn_io.h"
#include "error.h"
#include "sockopt.h"
#include "takeover.h"
#include "tls_internal.h"

/* handshake_timeout for TLS conns whose policy has 0 (HAProxy's
 * `timeout client-hs` plays the same role). */
#define TLS_DEFAULT_HANDSHAKE_MS 10000u
/* SSL_read returns one record (<= 16 KiB) per call: 16 calls read about
 * as much as the plain path's 4 x 64 KiB before yielding. */
#define TLS_READS_PER_EVENT 16

/* ---- setup and teardown ---- */

/* Client role: SNI and the name the server certificate must match. RFC
 * 6066 forbids IP literals in SNI, so those are only verified. */
static int set_server_name(SSL *ssl, const char *name) {
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
  return SSL_set_tlsext_host_name(ssl, name) == 1 &&
         SSL_set1_host(ssl, name) == 1;
}

/* Gives c a copy of its policy with the TLS default handshake bound. */
static int default_handshake_timeout(vigil_conn *c) {
  if (c->policy->handshake_timeout_ms) return VIGIL_OK;
  vigil_policy p = *c->policy;
  p.handshake_timeout_ms = TLS_DEFAULT_HANDSHAKE_MS;
  const vigil_policy *own = vigil__policy_new(&p);
  if (!own) return VIGIL_ENOMEM;
  vigil__conn_use_policy(c, own);
  vigil__policy_unref(own);
  return VIGIL_OK;
}

/* An OpenSSL call failed while setting up a conn: VIGIL_ETLS with
 * OpenSSL's reason recorded (vigil_last_error), or VIGIL_ENOMEM when it
 * queued no error (an allocation). */
static int setup_failed(const char *call) {
  unsigned long e = ERR_peek_error();
  if (!e) return VIGIL_ENOMEM;
  const char *why = ERR_reason_error_string(e);
  return vigil__error_detail(VIGIL_ETLS, call, why ? why : "OpenSSL failure");
}

static int configure(vigil_conn *c, vigil__tls *t,
                     const vigil_adopt_options *o,
                     const vigil_tls_options *to) {
  t->ssl = SSL_new(o->tls_ctx);
  if (!t->ssl) return setup_failed("SSL_new");
  BIO *bio = vigil__tls_bio_new(c);
  if (!bio) return VIGIL_ENOMEM;
  SSL_set_bio(t->ssl, bio, bio);
  /* Partial writes let the queue advance record by record; a retry after
   * WANT_WRITE may present the same bytes from the queue's copy (another
   * address, possibly a longer run); idle conns keep no record buffers
   * (about 34 KiB per conn otherwise). */
  SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
  /* Client-initiated renegotiation costs the server a handshake per
   * request: a cheap CPU attack, and nothing vigil's users need. */
  SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION);
  t->identity_from = (uint8_t)to->identity_from;
  if (to->identity_proof && to->identity_from != VIGIL_TLS_ID_NONE)
    t->flags |= VIGIL__TLS_PROOF;
  if (to->app_handshake) t->flags |= VIGIL__TLS_APP_HS;
  if (!o->tls_client) {
    SSL_set_accept_state(t->ssl);
    return VIGIL_OK;
  }
  SSL_set_connect_state(t->ssl);
  /* The client speaks first: the first writability sends ClientHello. */
  t->flags |= VIGIL__TLS_CLIENT | VIGIL__TLS_HS_WANT_WRITE;
  if (o->tls_sni && !set_server_name(t->ssl, o->tls_sni))
    return setup_failed("SSL_set1_host");
  if (to->session) {
    t->session = to->session;
    vigil__tls_session_ref(t->session);
    SSL_SESSION *s = vigil__tls_session_get(t->session);
    if (s && SSL_set_session(t->ssl, s) != 1)
      return setup_failed("SSL_set_session");
    if (s && SSL_SESSION_up_ref(s)) t->offered = s;
  }
  return VIGIL_OK;
}

int vigil__tls_adopt(vigil_conn *c, const vigil_adopt_options *o) {
  vigil_tls_options defaults;
  const vigil_tls_options *to = o->tls;
  if (!to) {
    vigil_tls_options_init(&defaults);
    to = &defaults;
  }
  if (o->watch_only || to->identity_from < VIGIL_TLS_ID_NONE ||
      to->identity_from > VIGIL_TLS_ID_SAN_EMAIL ||
      (to->session && !o->tls_client))
    return VIGIL_EINVAL;
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  vigil__tls *t = x ? calloc(1, sizeof *t) : NULL;
  if (!t) return VIGIL_ENOMEM;
  x->tls = t;
  c->tp = &vigil__transport_tls; /* from here on its free releases t */
  c->flags |= VIGIL__F_TP_HANDSHAKE;
  ERR_clear_error();
  int rc = configure(c, t, o, to);
  if (rc == VIGIL_OK) rc = default_handshake_timeout(c);
  ERR_clear_error();
  return rc; /* on error the caller frees c, and with it t */
}

static void tls_free(vigil_conn *c) {
  vigil__tls *t = vigil__tls_of(c);
  if (!t) return;
  if (t->ssl) SSL_free(t->ssl); /* frees the BIO; the fd is not its */
  if (t->stored) SSL_SESSION_free(t->stored);
  if (t->offered) SSL_SESSION_free(t->offered);
  vigil_tls_session_free(t->session);
  free(t->cert_identity);
  if (c->ext->detail == t->detail) c->ext->detail = NULL;
  c->ext->tls = NULL;
  free(t);
}

/* ---- errors ---- */

void vigil__tls_set_error_detail(vigil_conn *c, const char *what) {
  vigil__tls *t = vigil__tls_of(c);
  unsigned long e = ERR_peek_error();
  if (t && !c->ext->detail) {
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char code[32];
    if (!reason && e) {
      snprintf(code, sizeof code, "error:%08lX", e);
      reason = code;
    }
    if (!reason) reason = what;
    long v = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (v != X509_V_OK)
      snprintf(t->detail, sizeof t->detail, "%s: %s", reason,
               X509_verify_cert_error_string(v));
    else
      snprintf(t->detail, sizeof t->detail, "%s", reason);
    c->ext->detail = t->detail;
  }
  ERR_clear_error();
}

/* Before every SSL call: no stale error can be mistaken for ours. */
static void ssl_call_begin(vigil__tls *t) {
  ERR_clear_error();
  t->bio_errno = 0;
}

/* The peer ended TCP without close_notify. During the handshake that is
 * a peer giving up (c closes: returns 0); afterwards it is truncation,
 * unless we had already sent our close_notify (then the peer simply did
 * not answer it): returns 1, the caller reports the peer's end. */
static int peer_eof(vigil_conn *c, vigil__tls *t) {
  t->flags |= VIGIL__TLS_FATAL;
  ERR_clear_error();
  if (!(t->flags & VIGIL__TLS_HS_DONE)) {
    if (!c->ext->detail) c->ext->detail = "eof during handshake";
    vigil__conn_close(c, VIGIL_REASON_PEER_CLOSED, VIGIL__CLOSE_NOW);
    return 0;
  }
  if (!(t->flags & VIGIL__TLS_NOTIFY_SENT)) c->ext->truncated = 1;
  return 1;
}

/* An SSL call failed with SSL_get_error() == err: classify and close.
 * Socket errors close like plain TCP (peer_reset, timeouts...). Returns 1
 * when it was the peer's end after the handshake (see peer_eof), which the
 * caller reports; 0 once c is closed. */
static int ssl_failed(vigil_conn *c, vigil__tls *t, int err) {
  t->flags |= VIGIL__TLS_FATAL;
  if (t->bio_errno) {
    ERR_clear_error();
    vigil__conn_io_failed(c, t->bio_errno);
    return 0;
  }
  unsigned long e = ERR_peek_error();
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
  if (err == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
    return peer_eof(c, t); /* OpenSSL 3 */
#endif
  if (err == SSL_ERROR_SYSCALL && e == 0 && (t->flags & VIGIL__TLS_EOF))
    return peer_eof(c, t); /* OpenSSL 1.1.1 */
  vigil__tls_set_error_detail(c, err == SSL_ERROR_SYSCALL
                                     ? "unexpected eof"
                                     : "tls failure");
  vigil__conn_close(c, VIGIL_REASON_TLS_ERROR, VIGIL__CLOSE_NOW);
  return 0;
}

/* ssl_failed where the peer's end is reported at once (handshake,
 * writes). */
static void ssl_failed_report(vigil_conn *c, vigil__tls *t, int err) {
  if (ssl_failed(c, t, err)) vigil__conn_peer_fin(c);
}

/* ---- handshake ---- */

/* Client: keeps the newest resumable session in the host's store. TLS
 * 1.3 tickets arrive after the handshake, each as a new session object,
 * so this runs after reads too; it costs a pointer compare. */
static void store_session(vigil__tls *t) {
  if (!t->session) return;
  SSL_SESSION *s = SSL_get0_session(t->ssl);
  if (!s || s == t->stored || !SSL_SESSION_is_resumable(s)) return;
  SSL_SESSION_up_ref(s);
  if (t->stored) SSL_SESSION_free(t->stored);
  t->stored = s;
  vigil__tls_session_put(t->session, s);
}

/* Client, handshake done: a session offered but not resumed is of no use
 * with this server, so the store forgets it; a ticket the server issues
 * after the full handshake takes its place (store_session). */
static void forget_declined(vigil__tls *t) {
  if (!t->offered) return;
  if (!SSL_session_reused(t->ssl))
    vigil__tls_session_drop(t->session, t->offered);
  SSL_SESSION_free(t->offered);
  t->offered = NULL;
}

/* Records the verified certificate's identity. A certificate whose
 * identity could not be read or copied closes the conn: going on as if
 * it had none would let it claim what its certificate rules out. Returns
 * VIGIL_OK, or an error once c is closed. */
static int record_identity(vigil_conn *c, vigil__tls *t) {
  int rc = vigil__tls_extract_identity(t);
  if (rc == VIGIL_ENOMEM) {
    vigil__conn_fail(c, ENOMEM);
  } else if (rc != VIGIL_OK) {
    vigil__tls_set_error_detail(c, "certificate identity unreadable");
    vigil__conn_close(c, VIGIL_REASON_TLS_ERROR, VIGIL__CLOSE_NOW);
  }
  return rc;
}

/* Claims the certificate's identity for c, still in HANDSHAKE. A conn
 * that cannot hold it does not go on: without its identity it would leave
 * its ghost in place and could be displaced by anyone, and under
 * identity_proof it must not keep an identity its certificate
 * contradicts. */
static void claim_cert_identity(vigil_conn *c, vigil__tls *t) {
  if (!t->cert_identity) return;
  int rc = vigil__identify(c, t->cert_identity, strlen(t->cert_identity));
  switch (rc) {
  case VIGIL_OK:
  case VIGIL_EREJECTED: /* refused: c is closing (takeover_rejected) */
  case VIGIL_EBANNED:   /* refused: c is closing (identity_banned) */
  case VIGIL_ECLOSED:   /* c, or its hub, is closing already */
    return;
  case VIGIL_EEXIST: /* the host claimed one before the handshake ended */
    if (vigil__tls_check_held(c) != VIGIL_OK)
      vigil__conn_close(c, VIGIL_REASON_TAKEOVER_REJECTED,
                        VIGIL__CLOSE_GRACEFUL);
    return;
  case VIGIL_ENOMEM:
    vigil__conn_fail(c, ENOMEM);
    return;
  default: /* VIGIL_EINVAL: longer than an identity may be */
    if (!c->ext->detail) c->ext->detail = "certificate identity too long";
    vigil__conn_close(c, VIGIL_REASON_TAKEOVER_REJECTED,
                      VIGIL__CLOSE_GRACEFUL);
    return;
  }
}

/* The TLS handshake just completed. Returns 1, or -1 if c closed. */
static int handshake_done(vigil_conn *c, vigil__tls *t) {
  t->flags |= VIGIL__TLS_HS_DONE;
  c->flags &= (uint8_t)~VIGIL__F_TP_HANDSHAKE;
  if (record_identity(c, t) != VIGIL_OK) return -1;
  forget_declined(t);
  store_session(t);
  vigil__conn_emit_open(c, "tls", SSL_session_reused(t->ssl) ? 1 : 0);
  if (c->state == VIGIL_CONN_HANDSHAKE) claim_cert_identity(c, t);
  if (c->state == VIGIL_CONN_HANDSHAKE && !(t->flags & VIGIL__TLS_APP_HS))
    vigil__conn_ready(c);
  return c->state == VIGIL_CONN_CLOSED || c->hub->free_requested ? -1 : 1;
}

/* Advances the handshake: 1 = it just completed, 0 = waiting for the
 * socket, -1 = the conn closed. */
static int drive_handshake(vigil_conn *c, vigil__tls *t) {
  ssl_call_begin(t);
  int r = SSL_do_handshake(t->ssl);
  t->flags &= (uint16_t)~VIGIL__TLS_HS_WANT_WRITE;
  if (r == 1) return handshake_done(c, t);
  int err = SSL_get_error(t->ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    if (err == SSL_ERROR_WANT_WRITE) t->flags |= VIGIL__TLS_HS_WANT_WRITE;
    vigil__conn_update_io(c);
    return 0;
  }
  ssl_failed_report(c, t, err);
  return -1;
}

/* ---- records ---- */

/* One SSL_write: bytes accepted, 0 when it must wait, -1 if c closed. */
static int ssl_write(vigil_conn *c, vigil__tls *t, const void *p, size_t n) {
  ssl_call_begin(t);
  int w = SSL_write(t->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
  if (w > 0) return w;
  int err = SSL_get_error(t->ssl, w);
  if (err == SSL_ERROR_WANT_WRITE) return 0;
  if (err == SSL_ERROR_WANT_READ) {
    t->flags |= VIGIL__TLS_WRITE_WANTS_READ;
    return 0;
  }
  ssl_failed_report(c, t, err);
  return -1;
}

/* Feeds queued plaintext to SSL_write, one queue chunk at a time (a
 * retry after WANT_WRITE must present the same bytes). Returns 1 while
 * our close_notify waits for writability, so the close machine retries it
 * once the queue is empty; 0; VIGIL__IO_CLOSED. */
static int tls_write_queue(vigil_conn *c) {
  vigil__tls *t = vigil__tls_of(c);
  t->flags &= (uint16_t)~VIGIL__TLS_WRITE_WANTS_READ;
  while (c->outq.queued > 0) {
    const void *p;
    size_t n = vigil__outq_peek(&c->outq, &p);
    int w = ssl_write(c, t, p, n);
    if (w < 0) return VIGIL__IO_CLOSED;
    if (w == 0) break;
    vigil__outq_consume(&c->outq, (size_t)w);
  }
  return (t->flags & VIGIL__TLS_NOTIFY_PENDING) ? 1 : 0;
}

/* One record's plaintext (raw bytes count as life in the BIO). */
static ssize_t tls_read(vigil_conn *c, void *buf, size_t cap) {
  vigil__tls *t = vigil__tls_of(c);
  t->flags &= (uint16_t)~VIGIL__TLS_READ_WANTS_WRITE;
  ssl_call_begin(t);
  int n = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  if (n > 0) return n;
  int err = SSL_get_error(t->ssl, n);
  switch (err) {
  case SSL_ERROR_WANT_READ:
    store_session(t);
    return VIGIL__IO_AGAIN;
  case SSL_ERROR_WANT_WRITE:
    t->flags |= VIGIL__TLS_READ_WANTS_WRITE;
    vigil__conn_update_io(c);
    return VIGIL__IO_AGAIN;
  case SSL_ERROR_ZERO_RETURN: /* close_notify: the peer's orderly end */
    ERR_clear_error();
    t->flags |= VIGIL__TLS_NOTIFY_RCVD;
    store_session(t);
    return 0;
  default:
    return ssl_failed(c, t, err) ? 0 : VIGIL__IO_CLOSED;
  }
}

static int tls_pending(const vigil_conn *c) {
  return SSL_has_pending(vigil__tls_of(c)->ssl);
}

/* TCP_CORK on or off; 1 if it was set. */
static int cork(int fd, int on) {
  return setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0;
}

/* The handshake step of an io event. Once it completes, what the host
 * queued meanwhile is written at once, then the records are read.
 * Returns the work left for the core (EV_READ), or 0. */
static int handshake_events(vigil_conn *c, vigil__tls *t) {
  /* Bytes the host queued during the handshake leave with its last
   * flight (and TLS 1.3's tickets) in one segment: sent separately,
   * Nagle would hold them for the peer's delayed ACK (40 ms). */
  int fd = c->io.fd;
  int corked = c->outq.queued > 0 && cork(fd, 1);
  int work = 0;
  if (drive_handshake(c, t) > 0 && vigil__conn_flush(c) == 0 &&
      c->state != VIGIL_CONN_DRAINING && !c->hub->free_requested)
    work = EV_READ;
  if (corked && c->io.fd == fd) cork(fd, 0); /* pushes the segment out */
  return work;
}

/* SSL_read may want to write (a key update to answer) and SSL_write may
 * want to read: a readiness retries the call that waited for it. */
static int tls_events(vigil_conn *c, int revents) {
  vigil__tls *t = vigil__tls_of(c);
  if (!(t->flags & VIGIL__TLS_HS_DONE)) return handshake_events(c, t);
  unsigned f = t->flags;
  int work = 0;
  if ((revents & EV_WRITE) ||
      ((revents & EV_READ) && (f & VIGIL__TLS_WRITE_WANTS_READ)))
    work |= EV_WRITE;
  if ((revents & EV_READ) ||
      ((revents & EV_WRITE) && (f & VIGIL__TLS_READ_WANTS_WRITE)))
    work |= EV_READ;
  return work;
}

static int tls_io_want(const vigil_conn *c, int want) {
  const vigil__tls *t = vigil__tls_of(c);
  if (!(t->flags & VIGIL__TLS_HS_DONE)) {
    /* Plaintext cannot move yet: only the handshake's needs count. */
    want &= EV_READ;
    if (t->flags & VIGIL__TLS_HS_WANT_WRITE) want |= EV_WRITE;
    return want;
  }
  if (t->flags & (VIGIL__TLS_READ_WANTS_WRITE | VIGIL__TLS_NOTIFY_PENDING))
    want |= EV_WRITE;
  if ((t->flags & VIGIL__TLS_WRITE_WANTS_READ) &&
      !(c->flags & VIGIL__F_PEER_FIN))
    want |= EV_READ;
  return want;
}

static ssize_t tls_send(vigil_conn *c, const void *data, size_t len) {
  vigil__tls *t = vigil__tls_of(c);
  /* After a TLS failure, or once our close_notify is out, nothing more
   * can be sent on this session. */
  if (t->flags & (VIGIL__TLS_FATAL | VIGIL__TLS_NOTIFY_SENT |
                  VIGIL__TLS_NOTIFY_PENDING))
    return VIGIL_ECLOSED;
  size_t off = 0;
  if (c->outq.queued == 0 && (t->flags & VIGIL__TLS_HS_DONE) &&
      !(t->flags & VIGIL__TLS_WRITE_WANTS_READ)) {
    while (off < len) {
      int w = ssl_write(c, t, (const char *)data + off, len - off);
      if (w < 0) return VIGIL_ECLOSED;
      if (w == 0) break;
      off += (size_t)w;
    }
  }
  return (ssize_t)off;
}

/* ---- close ---- */

/* Our close_notify precedes our FIN, or the peer cannot tell our end from
 * a truncation attack. */
static int tls_close_step(vigil_conn *c) {
  vigil__tls *t = vigil__tls_of(c);
  if (!(t->flags & VIGIL__TLS_HS_DONE) ||
      (t->flags & (VIGIL__TLS_FATAL | VIGIL__TLS_NOTIFY_SENT)))
    return 1;
  ssl_call_begin(t);
  int r = SSL_shutdown(t->ssl);
  if (r >= 0) { /* 0: sent; 1: the peer's had come in already */
    t->flags &= (uint16_t)~VIGIL__TLS_NOTIFY_PENDING;
    t->flags |= VIGIL__TLS_NOTIFY_SENT;
    ERR_clear_error();
    return 1;
  }
  int err = SSL_get_error(t->ssl, r);
  if (err == SSL_ERROR_WANT_WRITE) {
    t->flags |= VIGIL__TLS_NOTIFY_PENDING;
    vigil__conn_update_io(c);
    return 0;
  }
  t->flags |= VIGIL__TLS_FATAL;
  ERR_clear_error();
  if (t->bio_errno) {
    vigil__conn_io_failed(c, t->bio_errno);
    return 0;
  }
  return 1; /* no alert possible: still end TCP in order */
}

const int vigil__tls_available = 1;

const vigil__transport vigil__transport_tls = {
    .name = "tls",
    .events = tls_events,
    .read = tls_read,
    .write_queue = tls_write_queue,
    .send = tls_send,
    .close_step = tls_close_step,
    .pending = tls_pending,
    .io_want = tls_io_want,
    .proof = vigil__tls_proof,
    .free = tls_free,
    .handshake_default_ms = TLS_DEFAULT_HANDSHAKE_MS,
    .reads_per_event = TLS_READS_PER_EVENT,
    .short_read_drains = 0,
};

/* ---- public accessors ---- */

struct ssl_st *vigil_conn_ssl(vigil_conn *c) {
  vigil__tls *t = c ? vigil__tls_of(c) : NULL;
  return t ? t->ssl : NULL;
}

int vigil_conn_tls_resumed(vigil_conn *c) {
  vigil__tls *t = c ? vigil__tls_of(c) : NULL;
  if (!t || !(t->flags & VIGIL__TLS_HS_DONE)) return -1;
  return SSL_session_reused(t->ssl) ? 1 : 0;
}

const char *vigil_conn_tls_identity(vigil_conn *c) {
  vigil__tls *t = c ? vigil__tls_of(c) : NULL;
  return t ? t->cert_identity : NULL;
}
