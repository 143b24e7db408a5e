/*
 * A cluster node for tests: a hub with a cluster link (vigil/cluster.h) on
 * its own loop, listening on an ephemeral loopback port, whose conns claim
 * the identity their peer sends as the first line ("dev-1\n"), or, with
 * TLS, the one their certificate names. Several nodes run in one test
 * thread: cn_run_until turns every node's loop in turn.
 */
#ifndef VIGIL_CLUSTERNODE_H
#define VIGIL_CLUSTERNODE_H

#include <ev.h>
#include <stdint.h>

#include "vigil.h"

#define CN_MAX_CONNS 1024

typedef struct cn_conn {
  vigil_conn *conn;      /* NULL once closed */
  uint64_t id;
  char identity[64];
  size_t got;            /* bytes of the first line received */
  int claim_rc;          /* vigil_conn_identify's; 1 = not claimed yet */
  int closed;
  vigil_reason reason;
  uint64_t closed_us;    /* CLOCK_MONOTONIC at on_close */
} cn_conn;

typedef struct cnode {
  struct ev_loop *loop;
  vigil_hub *hub;
  vigil_listener *listener;
  uint16_t port;
  char name[32];
  int ups, downs, errors, takeovers;
  char last_down[256], last_error[256], last_other_node[72];
  int ncn;
  cn_conn conns[CN_MAX_CONNS];
  void *tls_ctx;         /* SSL_CTX for the listener, NULL = plain */
  vigil_tls_options tls_opts;
  /* Set after cn_start: every conn accepted from then on claims this
   * identity at once, before any data (with TLS: before its handshake, so
   * the claim is unproven until the certificate proves it). */
  const char *early_claim;
} cnode;

/* Starts node `name` against url (prefix NULL = default; command timeout
 * ms, 0 = the default). tls_ctx: NULL, or a server SSL_CTX whose conns
 * claim their certificate's CN with identity_proof. */
void cn_start(cnode *n, const char *name, const char *url,
              uint32_t command_timeout_ms, void *tls_ctx);
/* The same with the hub's policy (NULL = defaults). */
void cn_start_policy(cnode *n, const char *name, const char *url,
                     uint32_t command_timeout_ms, void *tls_ctx,
                     const vigil_policy *policy);
void cn_stop(cnode *n);

/* Runs every node's loop in turn until pred(arg) or timeout_ms; extra, if
 * not NULL, runs each turn (e.g. a TLS peer's step). Returns 1 if pred. */
int cn_run_until(cnode **nodes, int n, int (*pred)(void *), void *arg,
                 uint32_t timeout_ms, void (*extra)(void *), void *extra_arg);
/* Runs the nodes for ms (letting the network settle). */
void cn_run_for(cnode **nodes, int n, uint32_t ms);

/* A plain client on n that sends "<identity>\n"; returns its fd. */
int cn_device(cnode *n, const char *identity);
/* The server side of the conn whose claim named identity most recently,
 * or NULL. */
cn_conn *cn_find(cnode *n, const char *identity);
/* Conns of n not closed. */
int cn_open_count(const cnode *n);
/* Waits (all nodes turning) until n is up / down (counts >= count). */
int cn_wait_ups(cnode **nodes, int nn, cnode *n, int count, uint32_t ms);
int cn_wait_downs(cnode **nodes, int nn, cnode *n, int count, uint32_t ms);

#endif
