/*
 * Identity from certificates: what a verified peer certificate proves.
 *
 * A device's certificate says who it is; a device id in protocol data (an
 * MQTT client id, a HELLO) is only a claim. This file reads the identity
 * out of the certificate and answers the transport's proof hook (does it
 * prove this id?); the takeover rules built on it (identity_proof) are
 * applied with every claim in identity.c. A field that is there but could
 * not be read or copied is not "none": the conn closes (tls_conn.c), like
 * one whose certificate identity cannot be claimed.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls_internal.h"

static const char NOT_PROVEN[] = "identity not proven by certificate";

/* Reading one certificate field. Each reader returns VIGIL_OK with *out
 * set to a copy of the field, or NULL when the field is absent or refused
 * (empty, or holding a NUL, which would let "a\0b" pass as "a" in C
 * string comparisons); VIGIL_ENOMEM when the copy failed; VIGIL_ETLS when
 * OpenSSL could not read a field that is there (its error stays queued).
 * A failure is never "absent": that would make the conn look
 * certificate-less and let it claim identities its certificate rules
 * out. */

static int copy_clean(const unsigned char *p, int len, char **out) {
  *out = NULL;
  if (len <= 0 || memchr(p, 0, (size_t)len)) return VIGIL_OK;
  char *s = malloc((size_t)len + 1);
  if (!s) return VIGIL_ENOMEM;
  memcpy(s, p, (size_t)len);
  s[len] = '\0';
  *out = s;
  return VIGIL_OK;
}

static int common_name(X509 *cert, char **out) {
  *out = NULL;
  X509_NAME *name = X509_get_subject_name(cert);
  int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (i < 0) return VIGIL_OK;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char *utf8 = NULL;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return VIGIL_ETLS;
  int rc = copy_clean(utf8, len, out);
  OPENSSL_free(utf8);
  return rc;
}

/* The first subjectAltName of a GEN_* type. */
static int first_san(X509 *cert, int type, char **out) {
  *out = NULL;
  int crit = -1; /* stays -1 only when the extension is absent */
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit,
                                         NULL);
  if (!gens) return crit == -1 ? VIGIL_OK : VIGIL_ETLS;
  int rc = VIGIL_OK;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens) && !*out && rc == VIGIL_OK;
       i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type != type) continue;
    /* dNSName, URI and rfc822Name are all IA5Strings. */
    const ASN1_IA5STRING *v = g->d.ia5;
    rc = copy_clean(ASN1_STRING_get0_data(v), ASN1_STRING_length(v), out);
  }
  GENERAL_NAMES_free(gens);
  return rc;
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
  char *id = NULL;
  int rc = VIGIL_OK;
  switch (t->identity_from) {
  case VIGIL_TLS_ID_CN:
    rc = common_name(cert, &id);
    break;
  case VIGIL_TLS_ID_SAN_DNS:
    rc = first_san(cert, GEN_DNS, &id);
    break;
  case VIGIL_TLS_ID_SAN_URI:
    rc = first_san(cert, GEN_URI, &id);
    break;
  case VIGIL_TLS_ID_SAN_EMAIL:
    rc = first_san(cert, GEN_EMAIL, &id);
    break;
  default:
    break;
  }
  X509_free(cert);
  if (rc != VIGIL_OK) return rc;
  t->cert_identity = id;
  ERR_clear_error(); /* lookups of absent fields may queue errors */
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

int vigil__tls_proof(const vigil_conn *c, const void *id, size_t len) {
  const vigil__tls *t = vigil__tls_of(c);
  if (!t) return VIGIL__PROOF_NONE;
  int kind = !t->cert_identity       ? VIGIL__PROOF_NONE
             : proves(t, id, len)    ? VIGIL__PROOF_MATCH
                                     : VIGIL__PROOF_OTHER;
  return kind | ((t->flags & VIGIL__TLS_PROOF) ? VIGIL__PROOF_ENFORCED : 0);
}

int vigil__tls_check_held(vigil_conn *c) {
  const vigil__tls *t = vigil__tls_of(c);
  const vigil__conn_ext *x = c->ext;
  if (!t || !(t->flags & VIGIL__TLS_PROOF) || !t->cert_identity ||
      !x->identity || proves(t, x->identity, x->identity_len))
    return VIGIL_OK;
  return refuse(c);
}
