/*
 * TLS on vigil connections, through OpenSSL (1.1.1 or 3.x).
 *
 * A conn adopts a connected socket together with an SSL_CTX the host owns
 * (vigil_adopt_options.tls_ctx, server role by default, tls_client = 1 for
 * the client role). vigil runs the non-blocking handshake on the loop,
 * then on_data receives plaintext and vigil_send() encrypts. Everything
 * else (heartbeats, idle deadlines, suspicion, census, takeover) behaves
 * as on plain TCP. In short:
 *
 *  - Handshake. A TLS conn starts in HANDSHAKE, bounded by the policy's
 *    handshake_timeout_ms (10 s when the policy has 0, also for a policy
 *    given later with vigil_conn_set_policy()), counted from adoption:
 *    bytes trickling in do not extend it. When the TLS handshake
 *    completes the conn emits "open" (detail "tls", tls_resumed 0 or 1)
 *    and becomes OPEN ("ready"), unless vigil_tls_options.app_handshake is
 *    set: it then stays in HANDSHAKE, under the same deadline, until the
 *    host calls vigil_conn_ready(). A conn whose TLS handshake never
 *    completes emits no "open", only its "close". A TLS handshake still
 *    running at handshake_timeout is closed at once (no drain: a staller
 *    that trickles bytes must not keep the socket for linger_max).
 *
 *  - Liveness and counters. Every raw byte read counts as life, whether
 *    or not it completes a record. bytes_in/bytes_out count bytes on the
 *    wire (records, handshake, alerts), not plaintext.
 *
 *  - Output. The output queue (output_limit) holds plaintext that
 *    SSL_write has not accepted yet; bytes queued during the handshake go
 *    out when it completes.
 *
 *  - Close. A graceful close flushes the queue, sends close_notify, then
 *    shutdown(SHUT_WR), then drains like plain TCP. A peer's close_notify
 *    is a peer close (on_peer_closed, reason peer_closed). A peer that
 *    ends TCP without close_notify after the handshake is reported as
 *    truncation: reason peer_closed with the close event's truncated = 1,
 *    never as a clean close. Dead peers and aborts get RST with no
 *    close_notify. A peer closing without close_notify after our own
 *    close_notify is normal and not truncation.
 *
 *  - Errors. An OpenSSL failure closes with reason tls_error; the close
 *    event's detail is OpenSSL's reason string for the first error
 *    ("certificate verify failed", "no shared cipher", "wrong version
 *    number", ...), with the X.509 verify result appended for
 *    verification failures. The thread's OpenSSL error queue is cleared
 *    before every SSL call and emptied after every failure, so no error
 *    state leaks from one connection to another or to the host.
 *
 *  - Identity. With vigil_tls_options.identity_from, the identity in the
 *    verified peer certificate (subject CN, or the first SAN of a type) is
 *    claimed with vigil_conn_identify() right after the handshake (before
 *    "ready"), so takeover works by certificate. With identity_proof (the
 *    default), a claim on a conn whose certificate carries an identity
 *    must equal it, and a holder whose identity was proven so can only be
 *    displaced by a claimant that proves the same identity: a peer that
 *    merely claims another device's id is refused with VIGIL_EREJECTED
 *    and closed with takeover_rejected (close detail "identity not proven
 *    by certificate"). A conn without a certificate identity claims like
 *    a plain TCP conn: free and unproven identities only. Claiming the
 *    certificate identity again returns VIGIL_EEXIST (already held).
 *    A conn whose certificate carries an identity never becomes ready
 *    without holding it: if the identity cannot be read or copied (close
 *    reason tls_error, or io_error with errno ENOMEM), if its claim is
 *    refused (takeover_rejected, identity_banned, io_error on ENOMEM, or
 *    takeover_rejected with detail "certificate identity too long" past
 *    65535 bytes), or, under identity_proof, if the host claimed another
 *    identity before the handshake ended (takeover_rejected), it closes.
 *
 *  - Resumption. vigil_tls_server_ctx_new() enables session tickets (and
 *    optionally a server session cache); a client conn given a
 *    vigil_tls_session resumes from it and stores every new session in
 *    it, so reconnects are cheap. A session the server declined is
 *    forgotten after that handshake, so it is not offered again. TLS 1.3
 *    resumption keeps an (EC)DHE exchange unless both contexts set
 *    vigil_tls_ctx_options.resume_without_dhe (read its trade-off).
 *
 * Lifetimes: the SSL_CTX is reference-counted by OpenSSL (each conn holds
 * one reference), but the pointers in vigil_adopt_options are copied by a
 * listener, so the SSL_CTX and the vigil_tls_options must outlive any
 * listener using them. A vigil_tls_session is reference-counted: it may be
 * freed while conns still use it.
 *
 * Memory: each conn sets SSL_MODE_RELEASE_BUFFERS, so an idle TLS conn
 * holds no record buffers; renegotiation is refused
 * (SSL_OP_NO_RENEGOTIATION).
 *
 * Builds without TLS (cmake -DVIGIL_TLS=OFF) leave OpenSSL out entirely.
 * Every function below is still there, so the ABI is the same: the two
 * *_options_init() work as usual; vigil_tls_server_ctx_new(),
 * vigil_tls_client_ctx_new() and vigil_tls_session_new() return
 * VIGIL_ENOTSUP (err says so); vigil_conn_ssl() returns NULL,
 * vigil_conn_tls_resumed() -1, vigil_conn_tls_identity() NULL,
 * vigil_tls_session_resumable() 0, and the session free/clear calls do
 * nothing. vigil_adopt() with a tls_ctx returns VIGIL_ENOTSUP, and so
 * does vigil_listen() with one in its adopt options.
 */
#ifndef VIGIL_TLS_H
#define VIGIL_TLS_H

#ifndef VIGIL_H
#include "vigil.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* OpenSSL's types, declared so this header does not need OpenSSL's. */
struct ssl_ctx_st; /* SSL_CTX */
struct ssl_st;     /* SSL */

/* Which field of the verified peer certificate is the conn's identity. */
typedef enum vigil_tls_id_source {
  VIGIL_TLS_ID_NONE = 0,      /* certificates carry no identity */
  VIGIL_TLS_ID_CN = 1,        /* subject commonName */
  VIGIL_TLS_ID_SAN_DNS = 2,   /* first subjectAltName dNSName */
  VIGIL_TLS_ID_SAN_URI = 3,   /* first subjectAltName URI */
  VIGIL_TLS_ID_SAN_EMAIL = 4, /* first subjectAltName rfc822Name */
} vigil_tls_id_source;

/* A client's stored session, reused across reconnects. */
typedef struct vigil_tls_session vigil_tls_session;

/* Per-conn TLS options (vigil_adopt_options.tls); start from
 * vigil_tls_options_init(). */
typedef struct vigil_tls_options {
  vigil_tls_id_source identity_from; /* claim this identity after the
                                        handshake; default NONE */
  int identity_proof;      /* bool, default 1; only with identity_from:
                              claims must match the certificate identity,
                              and a proven holder is displaced only by
                              proof */
  int app_handshake;       /* bool, default 0: after TLS, stay in
                              HANDSHAKE until vigil_conn_ready() */
  vigil_tls_session *session; /* client role: resume from it and store new
                                 sessions in it; NULL = none */
} vigil_tls_options;

VIGIL_EXPORT void vigil_tls_options_init(vigil_tls_options *o);

/* ---- contexts ---------------------------------------------------------- */

typedef struct vigil_tls_ctx_options {
  int min_version;           /* TLS1_2_VERSION (0x0303, default) or
                                TLS1_3_VERSION (0x0304) */
  int tickets;               /* bool: session tickets; default 1 */
  uint32_t session_cache;    /* server: entries in a server-side session
                                cache; 0 = off (default: tickets only) */
  uint32_t session_timeout_s;/* session lifetime, 1..604800; 7200 */
  int resume_without_dhe;    /* bool, default 0: TLS 1.3 resumption
                                without a key exchange; see below */
} vigil_tls_ctx_options;

/*
 * resume_without_dhe: cheap TLS 1.3 reconnects, at the cost of forward
 * secrecy for resumed sessions. Opt in only if you accept that cost.
 *
 * By default a resumed TLS 1.3 handshake still runs a fresh (EC)DHE key
 * exchange (RFC 8446 psk_dhe_ke): it skips the certificate signature but
 * not the key exchange, so with ECDSA keys it saves little. With
 * resume_without_dhe set on BOTH the server and the client context, a
 * resumption uses psk_ke instead: no public-key operation at all; the
 * traffic keys come only from the ticket's resumption secret (and the
 * hello randoms). Full handshakes, TLS 1.2 and peers that do not opt in
 * are unaffected (each side alone changes nothing).
 *
 * The trade-off:
 *  - Resumed sessions have no forward secrecy. Whoever obtains the
 *    server's ticket key (memory dump, a leaked key file if the host
 *    installs its own keys) or a client's stored session can decrypt
 *    every recorded session resumed from those tickets, and each one
 *    resumed after them, since every resumption issues the next ticket.
 *    Full handshakes keep forward secrecy.
 *  - Keep ticket lifetimes short (session_timeout_s) and rotate ticket
 *    keys: vigil's server contexts hold random ticket keys that live as
 *    long as the SSL_CTX, so recreating the server context regularly
 *    (say daily) bounds the exposure; clients then do one full handshake.
 *  - It suits fleets of devices that reconnect all at once after a
 *    network blip, where server CPU per reconnect decides whether the
 *    fleet comes back in seconds or minutes, and where the data's
 *    confidentiality horizon is short. Do not use it for traffic that
 *    must stay secret even if the server is later compromised.
 *
 * OpenSSL 3.3 and later prefer psk_ke with SSL_OP_PREFER_NO_DHE_KEX.
 * Before 3.3 an OpenSSL server always picks psk_dhe_ke when a client
 * offers both (OpenSSL clients always do), so the server context installs
 * a ClientHello callback and a ticket decryption callback
 * (SSL_CTX_set_client_hello_cb, SSL_CTX_set_session_ticket_cb) that make
 * it choose psk_ke for tickets it will certainly accept: do not replace
 * them, and do not change the context's session id context. There it
 * takes effect with tickets (the default), not with a server session
 * cache alone. If such a resumption fails anyway, the handshake ends with
 * a fatal alert, after which OpenSSL no longer offers that session: the
 * next reconnect is a full handshake, not the same failure again.
 */

VIGIL_EXPORT void vigil_tls_ctx_options_init(vigil_tls_ctx_options *o);

/*
 * A server SSL_CTX: certificate chain and key (PEM files), TLS 1.2
 * minimum, session tickets on. With ca_file, client certificates are
 * requested and verified against it; require_client_cert makes one
 * mandatory (it needs ca_file). o may be NULL (defaults). Returns VIGIL_OK
 * and *out (free it with SSL_CTX_free), VIGIL_EINVAL for bad arguments or
 * VIGIL_ETLS; err (may be NULL) then says why, e.g.
 * "key.pem: key values mismatch".
 */
VIGIL_EXPORT int vigil_tls_server_ctx_new(const char *cert_file,
                                          const char *key_file,
                                          const char *ca_file,
                                          int require_client_cert,
                                          const vigil_tls_ctx_options *o,
                                          struct ssl_ctx_st **out, char *err,
                                          size_t errlen);

/*
 * A client SSL_CTX that verifies the server against ca_file (NULL = the
 * system's default trust store), optionally presenting a client
 * certificate (cert_file and key_file, both or neither). The server name
 * checked is vigil_adopt_options.tls_sni. Same returns as above.
 */
VIGIL_EXPORT int vigil_tls_client_ctx_new(const char *ca_file,
                                          const char *cert_file,
                                          const char *key_file,
                                          const vigil_tls_ctx_options *o,
                                          struct ssl_ctx_st **out, char *err,
                                          size_t errlen);

/* ---- client sessions --------------------------------------------------- */

/* An empty session store; VIGIL_OK, VIGIL_EINVAL or VIGIL_ENOMEM. */
VIGIL_EXPORT int vigil_tls_session_new(vigil_tls_session **out);
/* Drops the host's reference; conns using it keep theirs. NULL is fine. */
VIGIL_EXPORT void vigil_tls_session_free(vigil_tls_session *s);
/* 1 when it holds a session the next handshake can offer. */
VIGIL_EXPORT int vigil_tls_session_resumable(const vigil_tls_session *s);
/* Forgets the stored session (e.g. after a server key change). */
VIGIL_EXPORT void vigil_tls_session_clear(vigil_tls_session *s);

/* ---- per-connection accessors ------------------------------------------ */

/* The conn's SSL (peer certificate, cipher...), or NULL for plain TCP.
 * Do not read, write or shut it down: vigil drives it. */
VIGIL_EXPORT struct ssl_st *vigil_conn_ssl(vigil_conn *c);
/* -1 for plain TCP or before the TLS handshake completed, 0 for a full
 * handshake, 1 for a resumed session. */
VIGIL_EXPORT int vigil_conn_tls_resumed(vigil_conn *c);
/* The identity found in the verified peer certificate (per identity_from),
 * or NULL. */
VIGIL_EXPORT const char *vigil_conn_tls_identity(vigil_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_TLS_H */
