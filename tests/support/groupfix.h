/*
 * Fixture for the group tests: a group whose workers listen on one port
 * (worker 0 binds an ephemeral port, the others join it with
 * SO_REUSEPORT), and recorders for setups, teardowns, accepts, closes and
 * events that worker threads fill concurrently.
 *
 * cmocka's assertions may only fail on the test's own thread, so code on
 * worker threads records the first failed check (GX_CHECK) and the test
 * asserts on it with gx_assert_clean().
 */
#ifndef VIGIL_TEST_GROUPFIX_H
#define VIGIL_TEST_GROUPFIX_H

#include <pthread.h>
#include <stdint.h>

#include "vigil.h"

#define GX_MAXW 8
#define GX_MAX_CLOSES 512

typedef struct gx gx;

#define GX_MAX_TAKEOVERS 512

typedef struct gx_takeover {
  int32_t worker;       /* the claimant's worker (the event's) */
  uint64_t conn_id;     /* the claimant */
  uint64_t other_conn;  /* the displaced conn */
  vigil_takeover_scope scope;
  int32_t other_worker;
} gx_takeover;

typedef struct gx_close {
  int32_t worker;       /* the close event's worker field */
  uint64_t conn_id;
  vigil_reason reason;
  vigil_reason cause;
  uint16_t peer_port;   /* the client's local port */
  uint64_t at;          /* vt_now_ms() */
} gx_close;

struct gx {
  vigil_group *g;
  uint32_t workers;
  vigil_policy policy;
  int listen;            /* bool: setups listen (default 1) */
  int fail_setup_at;     /* worker whose setup fails; -1 = none */
  int fail_setup_rc;     /* what it returns */
  /* Runs at the end of each setup on the worker's thread. */
  void (*setup_hook)(gx *f, vigil_worker *w);
  /* Runs in teardown on the worker's thread. */
  void (*teardown_hook)(gx *f, vigil_worker *w);
  /* on_data of accepted conns; NULL = ignore the bytes. */
  void (*data_hook)(gx *f, vigil_conn *c, const void *d, size_t n);
  vigil_takeover_cb on_takeover; /* the hubs' ASK callback (data: f) */
  uint16_t port;         /* worker 0's listener port */

  /* Filled by worker threads (atomics, or under lock). */
  int failed_line;       /* first GX_CHECK that failed; 0 = none */
  uint32_t setups, teardowns, in_setup;
  uint32_t setup_order[GX_MAXW];
  pthread_t setup_thread[GX_MAXW];
  uint32_t accepts[GX_MAXW];
  uint32_t on_close_calls;
  pthread_mutex_t lock;  /* guards the event records below */
  gx_close closes[GX_MAX_CLOSES];
  uint32_t nclose;
  uint32_t events_per_worker[GX_MAXW];
  gx_takeover takeovers[GX_MAX_TAKEOVERS];
  uint32_t ntakeover;
  uint32_t shutdown_done_events;
};

/* Records the first failed check of a worker thread. */
void gx_fail(gx *f, int line);
#define GX_CHECK(f, cond)                                                   \
  do {                                                                      \
    if (!(cond)) gx_fail((f), __LINE__);                                    \
  } while (0)

/* Defaults: listen, no failing setup, vigil_policy_init(). */
void gx_init(gx *f, uint32_t workers);
/* Creates f->g with the fixture's callbacks; asserts success. */
void gx_new(gx *f);
/* gx_new, then vigil_group_start; asserts both. */
void gx_start(gx *f);
/* Stops the group (1 s deadline), joins it, asserts that no worker-side
 * check failed, and frees the group and the fixture. */
void gx_finish(gx *f);
/* Asserts (test thread) that no worker-side check failed. */
void gx_assert_clean(gx *f);
void gx_done(gx *f);

/* Atomic reads of counters the workers bump. */
uint32_t gx_load(const uint32_t *counter);
uint32_t gx_total_accepts(gx *f);

/* Stats of the group: fills total (and per_worker, GX_MAXW entries). */
void gx_stats(gx *f, vigil_stats *total, vigil_stats *per_worker);

/* Connects n blocking clients to 127.0.0.1:f->port; asserts success. */
void gx_connect(gx *f, int *fds, int n);
/* The local port of a connected socket. */
uint16_t gx_local_port(int fd);
/* The recorded close of the conn whose peer is the client on port, or
 * NULL (call under no lock; copies are stable once join returned). */
const gx_close *gx_find_close(gx *f, uint16_t peer_port);
/* A copy of the recorded takeover whose displaced conn is other_conn on
 * other_worker's hub (its close shows where it lived); 0 if none. */
int gx_find_takeover(gx *f, int32_t other_worker, uint64_t other_conn,
                     gx_takeover *out);

/* ---- conns placed on a chosen worker ---- */

/* A loopback pair whose server end is adopted on a chosen worker (the
 * adoption is posted to its mailbox), optionally claiming an identity
 * right after. Fields marked atomic are read with gx_atomic(). */
typedef struct gx_placed {
  gx *f;
  uint32_t worker;
  int server_fd, client_fd;
  const char *claim;   /* identity to claim; NULL = none */
  vigil_conn *conn;    /* [worker] */
  uint64_t conn_id;    /* [atomic] */
  int claim_rc;        /* [atomic] */
  int done;            /* [atomic] the posted step ran */
  int closed;          /* [atomic] on_close ran */
  int reason;          /* [atomic] */
} gx_placed;

int gx_atomic(const int *v);
/* Adopts a fresh pair's server end on `worker` with the given options
 * (NULL = plain; callbacks and user_data are the fixture's), claims id
 * unless NULL, and waits for it. */
void gx_place(gx *f, gx_placed *p, uint32_t worker, const char *id,
              const vigil_adopt_options *ao);
/* Claims id on p's conn from its worker; returns the call's result. */
int gx_claim_on(gx *f, gx_placed *p, const char *id);
/* Waits until p's on_close ran; returns its reason, or -1 on timeout. */
int gx_wait_closed(gx_placed *p, uint32_t timeout_ms);
/* Closes p's client end (idempotent). */
void gx_placed_done(gx_placed *p);
/* What a client socket sees within timeout_ms: -errno (-ECONNRESET), 1
 * for EOF, 0 for nothing. */
int gx_client_end(int fd, uint32_t timeout_ms);

#endif
