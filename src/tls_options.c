/*
 * The TLS option initialisers. They are part of every build, with or
 * without TLS (VIGIL_TLS), so hosts and bindings can fill the structs the
 * same way either way.
 */
#include <string.h>

#include "tls_options.h"
#include "vigil.h"

#define SESSION_TIMEOUT_DEFAULT_S 7200u

void vigil_tls_options_init(vigil_tls_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->identity_proof = 1;
}

void vigil_tls_ctx_options_init(vigil_tls_ctx_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->min_version = VIGIL__TLS1_2;
  o->tickets = 1;
  o->session_timeout_s = SESSION_TIMEOUT_DEFAULT_S;
}
