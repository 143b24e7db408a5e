/*
 * Fixture for the fault tests (tests/fault/test_fault_*.c): a namespace
 * pair, one libev loop, a vigil hub whose conns live in namespace A, and
 * device-side sockets in namespace B driven by the same loop.
 *
 * Every fault test asserts a detection latency against its bound and
 * prints one "MEASURED" line per scenario so runs can be compared.
 */
#ifndef VIGIL_TEST_FAULTFIX_H
#define VIGIL_TEST_FAULTFIX_H

#include <ev.h>
#include <stdint.h>

#include "ghostfix.h"
#include "netns.h"
#include "vigil.h"

typedef struct ff_env {
  struct vt_netns_pair ns;
  struct ev_loop *loop;
  vigil_hub *hub;
  gf_log log;
  int lfd;        /* blocking test listener in A (not vigil's) */
  uint16_t port;
} ff_env;

/* Skips the whole test program (exit 77) when namespaces are unavailable. */
void ff_require_netns(void);

/* Pair, loop, hub (policy copied, NULL = defaults; tick 10 ms) and a test
 * listener in A. Asserts on failure. */
void ff_env_up(ff_env *e, const vigil_policy *p);
/* Frees the hub and loop, closes the listener, deletes the namespaces. */
void ff_env_down(ff_env *e);

/* Connects from B to A's listener and accepts: returns the device (B)
 * fd, blocking, and stores the server (A) fd. Asserts on failure. */
int ff_dial(ff_env *e, int *server_fd);

/* The device end of a connection, read by the loop: echoes what it
 * receives when echo is set, and notes EOF or errors. */
typedef struct ff_peer {
  ev_io io;
  int fd;
  int echo;
  uint64_t bytes;
  uint64_t last_rx_ms;
  uint64_t last_tx_ms;   /* vt_now_ms() of the last echo sent */
  int eof;
  int err;               /* errno of a failed read */
  char rx[256];
  size_t nrx;
} ff_peer;

/* Makes fd non-blocking and starts watching it. */
void ff_peer_start(ff_env *e, ff_peer *p, int fd, int echo);
/* Stops watching (does not close). */
void ff_peer_stop(ff_env *e, ff_peer *p);

/* Prints "MEASURED <name> latency_ms=<v> bound_ms=<lo> max_ms=<hi>" and
 * asserts lo <= v <= hi. */
void ff_check_latency(const char *name, int64_t v, int64_t lo, int64_t hi);

/* Runs the hub census with the thread inside namespace A. */
int ff_hub_census_in_a(ff_env *e, vigil_hub_census_report *r);

#endif
