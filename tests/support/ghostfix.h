/*
 * Fixture for the ghost, takeover and census tests: an event recorder for
 * a hub's on_event, and a per-connection record filled by vigil
 * callbacks (bytes received, optional echo, close reason and time).
 */
#ifndef VIGIL_TEST_GHOSTFIX_H
#define VIGIL_TEST_GHOSTFIX_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

#define GF_MAX_EVENTS 4096

typedef struct gf_event {
  vigil_event_type type;
  uint64_t t_ms;        /* vt_now_ms() when recorded */
  uint64_t conn_id;
  uint64_t other_conn_id;
  vigil_reason reason;
  uint32_t count;
  uint32_t evidence;
  vigil_peer_class peer_class;
  int64_t last_rx_ms;
  int has_tcp_info;
  vigil_tcp_info tcp_info;
  int has_counts;
  uint32_t state_counts[VIGIL_TCP_STATE__COUNT];
  char identity[64];
  char detail[192];
} gf_event;

/* Events in order; per-type totals keep counting past GF_MAX_EVENTS. */
typedef struct gf_log {
  gf_event ev[GF_MAX_EVENTS];
  size_t n;
  size_t per_type[VIGIL_EV__COUNT];
  int print;            /* bool: also print each event as logfmt */
} gf_log;

/* vigil_event_cb: event_data must be a gf_log. */
void gf_on_event(vigil_hub *hub, const vigil_event *ev, void *log);
/* The last recorded event of type (for conn_id, or any if 0); NULL. */
const gf_event *gf_find(const gf_log *log, vigil_event_type type,
                        uint64_t conn_id);

typedef struct gf_conn {
  vigil_conn *c;
  uint64_t id;
  int echo;             /* bool: send back what arrives */
  char rx[1024];
  size_t nrx;           /* bytes kept in rx (total may be larger) */
  uint64_t bytes;
  uint64_t last_rx_ms;  /* vt_now_ms() of the last on_data */
  int pings;            /* on_ping_due calls */
  int ping_sends;       /* bool: on_ping_due sends "p" */
  int hold_close_wait;  /* bool: stay in CLOSE_WAIT after the peer's FIN
                           (else on_peer_closed closes at once) */
  int peer_closed;      /* on_peer_closed calls */
  int closed;
  vigil_reason reason;
  uint64_t closed_ms;   /* vt_now_ms() in on_close */
} gf_conn;

/* Callbacks recording into the gf_conn passed as user_data. */
const vigil_conn_callbacks *gf_callbacks(void);
/* Adopts fd with gf_callbacks and rec as user data (policy may be NULL).
 * Returns the vigil_adopt result. */
int gf_adopt(vigil_hub *hub, int fd, gf_conn *rec, const vigil_policy *p);
/* Predicates for vt_run_until. */
int gf_is_closed(void *rec);
/* Sends all of s on a blocking fd; returns 0 or -1. */
int gf_send_all(int fd, const char *s);

#endif
