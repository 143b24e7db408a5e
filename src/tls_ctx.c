/*
 * SSL_CTX helpers: the server and client contexts most vigil hosts need.
 *
 * Defaults and why:
 *  - TLS 1.2 minimum: older versions are deprecated (RFC 8996).
 *  - Session tickets on, one per handshake: a device reconnecting after a
 *    network blip resumes instead of redoing the public-key work (see
 *    bench/bench_tls.c for the difference). The ticket keys are random
 *    per SSL_CTX, so tickets do not survive a server restart.
 *  - A server-side session cache only on request: tickets need no server
 *    memory, a cache costs an entry per client.
 *  - A session id context is always set: without one, OpenSSL refuses to
 *    resume any session when client certificates are verified.
 *  - No renegotiation (a CPU-exhaustion vector, unused by our users).
 *  - TLS 1.3 resumption keeps its (EC)DHE exchange unless both sides opt
 *    into resume_without_dhe (tls_psk_ke.c): forward secrecy of resumed
 *    sessions is the host's call, not ours.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "error.h"
#include "tls_internal.h"

#define SESSION_TIMEOUT_MAX_S 604800u /* 7 days, TLS 1.3's ticket cap */

/* tls_options.c writes the protocol versions without OpenSSL's header. */
_Static_assert(TLS1_2_VERSION == VIGIL__TLS1_2 &&
                   TLS1_3_VERSION == VIGIL__TLS1_3,
               "TLS version numbers");

static void say(char *err, size_t errlen, const char *what,
                const char *why) {
  if (err && errlen) snprintf(err, errlen, "%s: %s", what, why);
}

/* Reports the first OpenSSL error of `call` about `what` (in err and as
 * the thread's last error), empties the queue. */
static int ssl_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *call,
                    const char *what) {
  unsigned long e = ERR_peek_error();
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, why ? why : "OpenSSL failure");
  if (err && errlen) snprintf(err, errlen, "%s", text);
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return vigil__error_detail(VIGIL_ETLS, call, text);
}

static int check_options(const vigil_tls_ctx_options *o, char *err,
                         size_t errlen) {
  if (o->min_version != TLS1_2_VERSION && o->min_version != TLS1_3_VERSION) {
    say(err, errlen, "min_version", "must be TLS1_2_VERSION or TLS1_3_VERSION");
    return VIGIL_EINVAL;
  }
  if (o->session_timeout_s < 1 ||
      o->session_timeout_s > SESSION_TIMEOUT_MAX_S) {
    say(err, errlen, "session_timeout_s", "out of range: allowed 1..604800");
    return VIGIL_EINVAL;
  }
  return VIGIL_OK;
}

/* Settings both roles share. */
static void common_setup(SSL_CTX *ctx, const vigil_tls_ctx_options *o) {
  SSL_CTX_set_min_proto_version(ctx, o->min_version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_timeout(ctx, (long)o->session_timeout_s);
  if (!o->tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
}

static int load_identity(SSL_CTX *ctx, const char *cert, const char *key,
                         char *err, size_t errlen) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    return ssl_fail(ctx, err, errlen, "SSL_CTX_use_certificate_chain_file",
                    cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
    return ssl_fail(ctx, err, errlen, "SSL_CTX_use_PrivateKey_file", key);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return ssl_fail(ctx, err, errlen, "SSL_CTX_check_private_key", key);
  return VIGIL_OK;
}

/* The steps both roles share: default options, their check, a fresh
 * context with the common settings. Returns VIGIL_OK and *ctx. */
static int new_ctx(const SSL_METHOD *method, const vigil_tls_ctx_options **o,
                   vigil_tls_ctx_options *defaults, SSL_CTX **ctx, char *err,
                   size_t errlen) {
  if (!*o) {
    vigil_tls_ctx_options_init(defaults);
    *o = defaults;
  }
  int rc = check_options(*o, err, errlen);
  if (rc != VIGIL_OK) return rc;
  ERR_clear_error();
  *ctx = SSL_CTX_new(method);
  if (!*ctx) return ssl_fail(NULL, err, errlen, "SSL_CTX_new", "SSL_CTX_new");
  common_setup(*ctx, *o);
  return VIGIL_OK;
}

int vigil_tls_server_ctx_new(const char *cert_file, const char *key_file,
                             const char *ca_file, int require_client_cert,
                             const vigil_tls_ctx_options *o,
                             struct ssl_ctx_st **out, char *err,
                             size_t errlen) {
  vigil_tls_ctx_options defaults;
  if (out) *out = NULL;
  if (!out || !cert_file || !key_file) {
    say(err, errlen, "server context", "needs cert_file, key_file and out");
    return VIGIL_EINVAL;
  }
  if (require_client_cert && !ca_file) {
    say(err, errlen, "require_client_cert", "needs ca_file to verify with");
    return VIGIL_EINVAL;
  }
  SSL_CTX *ctx;
  int rc = new_ctx(TLS_server_method(), &o, &defaults, &ctx, err, errlen);
  if (rc != VIGIL_OK) return rc;
  if ((rc = load_identity(ctx, cert_file, key_file, err, errlen)) != VIGIL_OK)
    return rc;
  if (ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
      return ssl_fail(ctx, err, errlen, "SSL_CTX_load_verify_locations",
                      ca_file);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names) SSL_CTX_set_client_CA_list(ctx, names); /* takes them */
    SSL_CTX_set_verify(ctx,
                       SSL_VERIFY_PEER | (require_client_cert
                                              ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                              : 0),
                       NULL);
  }
  SSL_CTX_set_session_id_context(ctx,
                                 (const unsigned char *)VIGIL__TLS_SID_CTX,
                                 sizeof VIGIL__TLS_SID_CTX - 1);
  if (o->session_cache) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, (long)o->session_cache);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  /* TLS 1.3 sends tickets after the handshake; one is all a client that
   * keeps the newest session uses, and each costs an encryption. */
  SSL_CTX_set_num_tickets(ctx, (o->tickets || o->session_cache) ? 1 : 0);
  if (o->resume_without_dhe &&
      (rc = vigil__tls_psk_ke_setup(ctx, 1)) != VIGIL_OK) {
    say(err, errlen, "resume_without_dhe", "could not install callbacks");
    SSL_CTX_free(ctx);
    return rc;
  }
  ERR_clear_error();
  *out = ctx;
  return VIGIL_OK;
}

int vigil_tls_client_ctx_new(const char *ca_file, const char *cert_file,
                             const char *key_file,
                             const vigil_tls_ctx_options *o,
                             struct ssl_ctx_st **out, char *err,
                             size_t errlen) {
  vigil_tls_ctx_options defaults;
  if (out) *out = NULL;
  if (!out || (!cert_file) != (!key_file)) {
    say(err, errlen, "client context",
        "needs out, and cert_file and key_file together");
    return VIGIL_EINVAL;
  }
  SSL_CTX *ctx;
  int rc = new_ctx(TLS_client_method(), &o, &defaults, &ctx, err, errlen);
  if (rc != VIGIL_OK) return rc;
  if (cert_file &&
      (rc = load_identity(ctx, cert_file, key_file, err, errlen)) != VIGIL_OK)
    return rc;
  int loaded = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                       : SSL_CTX_set_default_verify_paths(ctx);
  if (loaded != 1)
    return ssl_fail(ctx, err, errlen,
                    ca_file ? "SSL_CTX_load_verify_locations"
                            : "SSL_CTX_set_default_verify_paths",
                    ca_file ? ca_file : "default CA paths");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* Client side: an option bit only, it cannot fail. */
  if (o->resume_without_dhe) vigil__tls_psk_ke_setup(ctx, 0);
  ERR_clear_error();
  *out = ctx;
  return VIGIL_OK;
}
