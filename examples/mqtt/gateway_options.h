/*
 * mqtt_gateway's command line: the flags, their defaults and checks, and
 * what the gateway makes of them before any hub runs.
 * Every function exits the process with EXIT_USAGE (2) and a message on a
 * bad flag, and with 0 after --help.
 */
#ifndef GATEWAY_OPTIONS_H
#define GATEWAY_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "cluster_flags.h"
#include "metrics_http.h"
#include "vigil.h"

#define EXIT_USAGE 2
#define DEFAULT_HANDSHAKE_MS 10000u /* EMQX waits 15 s for CONNECT */
#define DEFAULT_MAX_PACKET (256u * 1024u)

typedef struct config {
  char host[256];
  uint16_t port;
  vigil_log_format log_format;
  uint32_t handshake_ms;
  int ka_idle, ka_intvl, ka_cnt; /* kernel keepalive */
  unsigned census_every_s;       /* 0 = off */
  uint32_t max_packet;
  const char *tls_cert, *tls_key, *tls_ca; /* TLS when tls_cert is set */
  int require_client_cert, identity_from_cert;
  unsigned workers;              /* 1 = one loop; more = a vigil group */
  metrics_http_config metrics;   /* endpoint when metrics.host is set */
  cluster_flags cluster;         /* --cluster, --node, --cluster-prefix */
  const vigil_cluster_options *cluster_options; /* NULL = no cluster */
} config;

/* Fills cfg from the command line, defaults first. */
void gateway_parse_args(int argc, char **argv, config *cfg);
/* The --help text. */
void gateway_usage(FILE *f);
/* Lets one process hold as many connections as the hard limit allows. */
void gateway_raise_fd_limit(void);
/* From the flags: the policy every hub shares and, with --tls-cert, the
 * TLS context and options. Returns 0, or an exit code (EXIT_USAGE for a
 * bad value, 1 otherwise) after printing why. */
int gateway_prepare(const config *cfg, vigil_policy *p,
                    struct ssl_ctx_st **tls, vigil_tls_options *tls_opts);

#endif
