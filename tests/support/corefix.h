/*
 * Core test fixture: a hub on a private libev loop, a recorder for every
 * connection callback and event, and helpers to wait for them.
 *
 * Times the recorder keeps (closed_at, first_ping_at, an event's at) are
 * the hub's clock: real monotonic ms with cf_hub_init, the fake clock's ms
 * with cf_hub_init_clock, where the test drives time (cf_advance) and a
 * deadline closes at an exact fake time.
 */
#ifndef VIGIL_COREFIX_H
#define VIGIL_COREFIX_H

#include <ev.h>
#include <stdint.h>

#include "testutil.h"
#include "vigil.h"

#define CF_MAX_EVENTS 256

typedef struct cf_conn {
  vigil_conn *conn;
  int closed;            /* on_close calls (must end at 1) */
  vigil_reason reason;
  uint64_t closed_at;    /* hub clock at on_close */
  int peer_closed;       /* on_peer_closed calls */
  int pings;             /* on_ping_due calls */
  uint64_t first_ping_at;
  int idles[4];          /* by vigil_idle_kind */
  size_t rx_len;
  char *rx;              /* everything received */
  size_t rx_cap;
  /* behaviour knobs for re-entrancy tests */
  int reply_on_peer_closed;  /* send "bye\n" then close */
  int close_on_peer_closed;
  int send_ping_on_due;      /* answer on_ping_due with "PING\n" */
  void (*hook)(struct cf_conn *cc, const char *where);
} cf_conn;

typedef struct cf_event {
  vigil_event_type type;
  uint64_t conn_id;
  vigil_reason reason;
  vigil_reason cause;
  uint64_t at;           /* hub clock */
  int has_sockopts;
  vigil_sockopts sockopts;
  int has_tcp_info;
} cf_event;

typedef struct cf_hub {
  struct ev_loop *loop;
  vigil_hub *hub;
  cf_event events[CF_MAX_EVENTS];
  int nevents;
  char last_line[1024];  /* last event formatted as logfmt */
  uint64_t now;          /* the fake clock (cf_hub_init_clock) */
} cf_hub;

extern const vigil_conn_callbacks cf_callbacks;

/* Creates loop + hub with the given policy (NULL = defaults). */
void cf_hub_init(cf_hub *h, const vigil_policy *p, uint32_t tick_ms);
/* The same on a fake clock starting at CF_EPOCH ms, with a 1 ms tick so
 * that a deadline fires at the exact ms it falls on. */
#define CF_EPOCH 1000000u
void cf_hub_init_clock(cf_hub *h, const vigil_policy *p);
/* Moves the fake clock by ms and runs what is due (vt_advance). */
void cf_advance(cf_hub *h, uint64_t ms);
void cf_hub_done(cf_hub *h);
/* Adopts fd with the fixture callbacks; asserts success. */
vigil_conn *cf_adopt(cf_hub *h, int fd, cf_conn *cc,
                     const vigil_policy *p);
/* Runs the loop until cc->closed or timeout; returns 1 if closed. */
int cf_wait_closed(cf_hub *h, cf_conn *cc, uint32_t timeout_ms);
/* Number of recorded events of a type. */
int cf_count(const cf_hub *h, vigil_event_type t);
/* Last recorded event of a type, or NULL. */
const cf_event *cf_last(const cf_hub *h, vigil_event_type t);
void cf_conn_free(cf_conn *cc);

#endif
