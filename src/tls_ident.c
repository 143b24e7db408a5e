/*
 * Identity from certificates, and the proof a takeover needs.
 *
 * A device's certificate says who it is; a device id in protocol data
 * (an MQTT client id, a HELLO) is only a claim. With identity_proof:
 *  - a conn whose verified certificate carries an identity may claim that
 *    identity only;
 *  - an identity held by a conn that proved it moves only to another conn
 *    that proves it too: a peer cannot kick a device off by naming it;
 *  - a conn without a certificate identity (no client certificate, or no
 *    such field in it) claims like a plain TCP conn, so a gateway may mix
 *    certificate devices with other clients.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls_internal.h"

static const char NOT_PROVEN[] = "identity not proven by certificate";

/* A copy of an ASN.1 string's bytes, refused if empty or holding a NUL
 * (a NUL would let "a\0b" pass as "a" in C string comparisons). */
static char *copy_clean(const unsigned char *p, int len) {
  if (len <= 0 || memchr(p, 0, (size_t)len)) return NULL;
  char *s = malloc((size_t)len + 1);
  if (!s) return NULL;
  memcpy(s, p, (size_t)len);
  s[len] = '\0';
  return s;
}

static char *common_name(X509 *cert) {
  X509_NAME *name = X509_get_subject_name(cert);
  int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (i < 0) return NULL;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char *utf8 = NULL;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  char *s = len > 0 ? copy_clean(utf8, len) : NULL;
  OPENSSL_free(utf8);
  return s;
}

/* The first subjectAltName of a GEN_* type. */
static char *first_san(X509 *cert, int type) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL,
                                         NULL);
  char *s = NULL;
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !s; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type != type) continue;
    /* dNSName, URI and rfc822Name are all IA5Strings. */
    const ASN1_IA5STRING *v = g->d.ia5;
    s = copy_clean(ASN1_STRING_get0_data(v), ASN1_STRING_length(v));
  }
  GENERAL_NAMES_free(gens);
  return s;
}

int vigil__tls_extract_identity(vigil__tls *t) {
  if (t->identity_from == VIGIL_TLS_ID_NONE || t->cert_identity)
    return VIGIL_OK;
  /* Only a certificate that was actually verified proves anything. */
  if (!(SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) ||
      SSL_get_verify_result(t->ssl) != X509_V_OK)
    return VIGIL_OK;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
#else
  X509 *cert = SSL_get_peer_certificate(t->ssl);
#endif
  if (!cert) return VIGIL_OK;
  switch (t->identity_from) {
  case VIGIL_TLS_ID_CN:
    t->cert_identity = common_name(cert);
    break;
  case VIGIL_TLS_ID_SAN_DNS:
    t->cert_identity = first_san(cert, GEN_DNS);
    break;
  case VIGIL_TLS_ID_SAN_URI:
    t->cert_identity = first_san(cert, GEN_URI);
    break;
  case VIGIL_TLS_ID_SAN_EMAIL:
    t->cert_identity = first_san(cert, GEN_EMAIL);
    break;
  default:
    break;
  }
  X509_free(cert);
  ERR_clear_error(); /* parsing failures just mean "no identity" */
  return VIGIL_OK;
}

static int proves(const vigil__tls *t, const void *id, size_t len) {
  return t && t->cert_identity && strlen(t->cert_identity) == len &&
         memcmp(t->cert_identity, id, len) == 0;
}

static int refuse(vigil_conn *c) {
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (x && !x->detail) x->detail = NOT_PROVEN;
  return VIGIL_EREJECTED;
}

int vigil__tls_claim_check(vigil_conn *c, const void *id, size_t len) {
  const vigil__tls *t = vigil__tls_of(c);
  /* A certificate that names someone else contradicts the claim. A conn
   * without a certificate identity claims like a plain one, below. */
  if (t && (t->flags & VIGIL__TLS_PROOF) && t->cert_identity)
    return proves(t, id, len) ? VIGIL_OK : refuse(c);
  vigil_conn *holder = vigil_hub_find_identity(c->hub, id, len);
  if (!holder || holder == c || (holder->state != VIGIL_CONN_HANDSHAKE &&
                                 holder->state != VIGIL_CONN_OPEN))
    return VIGIL_OK;
  const vigil__tls *h = vigil__tls_of(holder);
  if (!h || !(h->flags & VIGIL__TLS_PROOF) || !proves(h, id, len))
    return VIGIL_OK;
  return proves(t, id, len) ? VIGIL_OK : refuse(c);
}
