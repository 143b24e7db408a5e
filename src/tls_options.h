/* TLS option defaults, built with or without TLS (internal;
 * tls_options.c). No OpenSSL here. */
#ifndef VIGIL_TLS_OPTIONS_H
#define VIGIL_TLS_OPTIONS_H

/* TLS1_2_VERSION and TLS1_3_VERSION (checked against OpenSSL's in
 * tls_ctx.c). */
#define VIGIL__TLS1_2 0x0303
#define VIGIL__TLS1_3 0x0304

#endif
