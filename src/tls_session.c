/*
 * Client session stores: the session a reconnect offers to resume.
 *
 * A store is reference-counted (the host and each conn using it hold a
 * reference) so the host may free it while a conn is still up. Like a
 * hub, a store belongs to one loop thread: the counts are not atomic.
 *
 * A session the server declined is forgotten (tls_conn.c): servers do
 * not always issue a new ticket after declining one (OpenSSL releases
 * without the fix for openssl/openssl#18549, 3.0.19 among them, send
 * none after a TLS 1.3 ticket whose hash does not match the suite they
 * chose), and a client that kept offering the declined session would
 * never resume again.
 */
#include <stdlib.h>

#include "tls_internal.h"

struct vigil_tls_session {
  SSL_SESSION *sess; /* newest resumable session; NULL = none */
  unsigned refs;
};

int vigil_tls_session_new(vigil_tls_session **out) {
  if (!out) return VIGIL_EINVAL;
  *out = calloc(1, sizeof **out);
  if (!*out) return VIGIL_ENOMEM;
  (*out)->refs = 1;
  return VIGIL_OK;
}

void vigil__tls_session_ref(vigil_tls_session *s) { s->refs++; }

void vigil_tls_session_free(vigil_tls_session *s) {
  if (!s || --s->refs > 0) return;
  if (s->sess) SSL_SESSION_free(s->sess);
  free(s);
}

int vigil_tls_session_resumable(const vigil_tls_session *s) {
  return s && s->sess && SSL_SESSION_is_resumable(s->sess);
}

void vigil_tls_session_clear(vigil_tls_session *s) {
  if (!s || !s->sess) return;
  SSL_SESSION_free(s->sess);
  s->sess = NULL;
}

SSL_SESSION *vigil__tls_session_get(const vigil_tls_session *s) {
  return s->sess;
}

void vigil__tls_session_put(vigil_tls_session *s, SSL_SESSION *sess) {
  SSL_SESSION_up_ref(sess);
  if (s->sess) SSL_SESSION_free(s->sess);
  s->sess = sess;
}

void vigil__tls_session_drop(vigil_tls_session *s, const SSL_SESSION *sess) {
  if (s->sess == sess) vigil_tls_session_clear(s);
}
