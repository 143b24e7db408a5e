/*
 * vigil built without TLS (cmake -DVIGIL_TLS=OFF): no OpenSSL at all. The
 * TLS API stays, so the ABI is the same in both builds: what would need
 * OpenSSL returns VIGIL_ENOTSUP (or NULL, -1, 0: "not TLS"), and adopting
 * with a tls_ctx fails with VIGIL_ENOTSUP. See vigil/tls.h.
 */
#include <stdio.h>

#include "conn.h"
#include "transport.h"
#include "vigil.h"

const int vigil__tls_available = 0;

static const char WHY[] = "vigil was built without TLS (VIGIL_TLS=OFF)";

static int unsupported(struct ssl_ctx_st **out, char *err, size_t errlen) {
  if (out) *out = NULL;
  if (err && errlen) snprintf(err, errlen, "%s", WHY);
  return VIGIL_ENOTSUP;
}

int vigil__tls_adopt(vigil_conn *c, const vigil_adopt_options *o) {
  (void)c;
  (void)o;
  return VIGIL_ENOTSUP;
}

int vigil_tls_server_ctx_new(const char *cert_file, const char *key_file,
                             const char *ca_file, int require_client_cert,
                             const vigil_tls_ctx_options *o,
                             struct ssl_ctx_st **out, char *err,
                             size_t errlen) {
  (void)cert_file;
  (void)key_file;
  (void)ca_file;
  (void)require_client_cert;
  (void)o;
  return unsupported(out, err, errlen);
}

int vigil_tls_client_ctx_new(const char *ca_file, const char *cert_file,
                             const char *key_file,
                             const vigil_tls_ctx_options *o,
                             struct ssl_ctx_st **out, char *err,
                             size_t errlen) {
  (void)ca_file;
  (void)cert_file;
  (void)key_file;
  (void)o;
  return unsupported(out, err, errlen);
}

int vigil_tls_session_new(vigil_tls_session **out) {
  if (out) *out = NULL;
  return VIGIL_ENOTSUP;
}

void vigil_tls_session_free(vigil_tls_session *s) { (void)s; }

int vigil_tls_session_resumable(const vigil_tls_session *s) {
  (void)s;
  return 0;
}

void vigil_tls_session_clear(vigil_tls_session *s) { (void)s; }

struct ssl_st *vigil_conn_ssl(vigil_conn *c) {
  (void)c;
  return NULL;
}

int vigil_conn_tls_resumed(vigil_conn *c) {
  (void)c;
  return -1;
}

const char *vigil_conn_tls_identity(vigil_conn *c) {
  (void)c;
  return NULL;
}
