/*
 * TLS 1.3 resumption without (EC)DHE (psk_ke), for resume_without_dhe.
 *
 * RFC 8446 offers two ways to resume: psk_dhe_ke (the ticket's secret
 * plus a fresh key exchange, so resumed sessions keep forward secrecy)
 * and psk_ke (the ticket's secret alone: no public-key work at all).
 * SSL_OP_ALLOW_NO_DHE_KEX lets a client offer psk_ke, but an OpenSSL
 * client always offers psk_dhe_ke as well, with a key share, and an
 * OpenSSL server before 3.3 takes psk_dhe_ke whenever it is offered with
 * a usable key share. 3.3 added SSL_OP_PREFER_NO_DHE_KEX for exactly
 * this; where it exists, vigil uses it and none of what follows.
 *
 * Before 3.3 the server takes psk_ke only when it resumes and finds no
 * key share or supported group it could use: then, and only then, RFC
 * 8446 lets it proceed without a key exchange (no HelloRetryRequest is
 * possible without a shared group). So, per connection:
 *
 *   ClientHello callback   note whether the client offers psk_ke and
 *                          does not list NO_SHARE_GROUP
 *   ticket decrypt callback  (runs before OpenSSL looks at the key
 *                          shares) if the ticket will certainly be
 *                          accepted, narrow this SSL's groups to
 *                          NO_SHARE_GROUP, which the client does not
 *                          offer: OpenSSL then finds no shared group and
 *                          resumes with psk_ke
 *
 * Certainly accepted means every check OpenSSL 3.0-3.2 makes after the
 * callback passes: decrypted, TLS 1.3 on both, same handshake hash as
 * the cipher suite just chosen, not (nearly) expired, vigil's session id
 * context, no early-data replay check. A narrowed SSL whose ticket was
 * then refused anyway could not fall back to a full handshake (no shared
 * group), hence the strict checks; should it happen, the fatal alert
 * makes the client's OpenSSL drop that session, so it fails once only.
 *
 * Full handshakes and clients that do not offer psk_ke are untouched.
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/tls1.h>

#include "tls_internal.h"

#ifndef SSL_OP_PREFER_NO_DHE_KEX

/* A named group that TLS 1.3 peers do not offer (secp256k1 is TLS 1.2
 * only in OpenSSL 3.x, and absent from common clients' lists); the
 * ClientHello callback checks the client's list anyway. */
#define NO_SHARE_GROUP_NAME "secp256k1"
#define NO_SHARE_GROUP_ID 0x0016u
/* Tickets this close to their end are resumed with (EC)DHE: OpenSSL's
 * own expiry check runs a moment later, against another time(). */
#define EXPIRY_MARGIN_S 2
#define PSK_KE_MODE 0 /* RFC 8446 4.2.9: psk_ke(0), psk_dhe_ke(1) */

static CRYPTO_ONCE index_once = CRYPTO_ONCE_STATIC_INIT;
static int offer_index = -1; /* SSL ex_data: client offers psk_ke */

static void make_index(void) {
  offer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* 1 when the extension body (a 1-byte length, then modes) offers psk_ke. */
static int offers_psk_ke(const unsigned char *p, size_t n) {
  if (n < 1 || (size_t)p[0] != n - 1) return 0;
  for (size_t i = 1; i < n; i++)
    if (p[i] == PSK_KE_MODE) return 1;
  return 0;
}

/* 1 when the supported_groups body (2-byte length, 2-byte ids) lists id. */
static int lists_group(const unsigned char *p, size_t n, unsigned id) {
  if (n < 2 || ((size_t)p[0] << 8 | p[1]) != n - 2 || n % 2) return 0;
  for (size_t i = 2; i + 1 < n; i += 2)
    if (((unsigned)p[i] << 8 | p[i + 1]) == id) return 1;
  return 0;
}

/* Records on the SSL whether narrowing its groups can yield psk_ke. */
static int on_client_hello(SSL *s, int *alert, void *arg) {
  (void)alert, (void)arg;
  const unsigned char *modes, *groups;
  size_t nmodes, ngroups;
  int ok = SSL_client_hello_get0_ext(s, TLSEXT_TYPE_psk_kex_modes, &modes,
                                     &nmodes) == 1 &&
           offers_psk_ke(modes, nmodes) &&
           SSL_client_hello_get0_ext(s, TLSEXT_TYPE_supported_groups,
                                     &groups, &ngroups) == 1 &&
           !lists_group(groups, ngroups, NO_SHARE_GROUP_ID);
  /* Set every time: a second ClientHello (after HelloRetryRequest)
   * decides afresh. */
  SSL_set_ex_data(s, offer_index, ok ? (void *)s : NULL);
  return SSL_CLIENT_HELLO_SUCCESS;
}

/* 1 when OpenSSL will resume sess on s for sure (see the top comment). */
static int will_resume(SSL *s, SSL_SESSION *sess) {
  if (SSL_version(s) != TLS1_3_VERSION ||
      SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION)
    return 0;
  const SSL_CIPHER *now = SSL_get_pending_cipher(s);
  const SSL_CIPHER *then = SSL_SESSION_get0_cipher(sess);
  const EVP_MD *a = now ? SSL_CIPHER_get_handshake_digest(now) : NULL;
  const EVP_MD *b = then ? SSL_CIPHER_get_handshake_digest(then) : NULL;
  if (!a || !b || EVP_MD_type(a) != EVP_MD_type(b)) return 0;
  long born = SSL_SESSION_get_time(sess), life = SSL_SESSION_get_timeout(sess);
  if ((long)time(NULL) + EXPIRY_MARGIN_S > born + life) return 0;
  unsigned int sid_len;
  const unsigned char *sid = SSL_SESSION_get0_id_context(sess, &sid_len);
  if (sid_len != sizeof VIGIL__TLS_SID_CTX - 1 ||
      memcmp(sid, VIGIL__TLS_SID_CTX, sid_len) != 0)
    return 0;
  if (SSL_get_max_early_data(s) > 0 &&
      !(SSL_get_options(s) & SSL_OP_NO_ANTI_REPLAY))
    return 0;
  return 1;
}

/* OpenSSL's default answers, plus the narrowing for sure resumptions. */
static SSL_TICKET_RETURN on_ticket(SSL *s, SSL_SESSION *sess,
                                   const unsigned char *keyname,
                                   size_t keyname_len,
                                   SSL_TICKET_STATUS status, void *arg) {
  (void)keyname, (void)keyname_len, (void)arg;
  if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
    return SSL_TICKET_RETURN_IGNORE_RENEW; /* keeps OpenSSL's status */
  if (SSL_get_ex_data(s, offer_index) && will_resume(s, sess)) {
    /* On failure the SSL keeps its groups: (EC)DHE as usual. The mark
     * keeps OpenSSL's error queue as the handshake left it. */
    ERR_set_mark();
    SSL_set1_groups_list(s, NO_SHARE_GROUP_NAME);
    ERR_pop_to_mark();
  }
  return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
                                      : SSL_TICKET_RETURN_USE_RENEW;
}

#endif /* !SSL_OP_PREFER_NO_DHE_KEX */

int vigil__tls_psk_ke_setup(SSL_CTX *ctx, int server) {
  SSL_CTX_set_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
  if (!server) return VIGIL_OK;
#ifdef SSL_OP_PREFER_NO_DHE_KEX
  SSL_CTX_set_options(ctx, SSL_OP_PREFER_NO_DHE_KEX);
#else
  if (!CRYPTO_THREAD_run_once(&index_once, make_index) || offer_index < 0)
    return VIGIL_ENOMEM;
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
  if (SSL_CTX_set_session_ticket_cb(ctx, NULL, on_ticket, NULL) != 1)
    return VIGIL_ETLS;
#endif
  return VIGIL_OK;
}
