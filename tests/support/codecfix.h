/*
 * Frame-codec test fixture: a hub on a fake clock whose conns record what
 * the host sees (frames, HELLO, close reason and detail), a raw peer that
 * speaks frames by hand on a real loopback socket, and a ready-made pair
 * of the two for cmocka setup/teardown.
 *
 * Sockets are real, time is not: pings, idle closes and the GOODBYE
 * hold's bound happen when a test moves the clock (fx_advance), at exact
 * moments, and never while a test waits for real I/O.
 */
#ifndef VIGIL_CODECFIX_H
#define VIGIL_CODECFIX_H

#include <ev.h>
#include <stdint.h>

#include "testutil.h"
#include "vigil.h"

#define FX_MAX_FRAMES 64

/* What the host saw of one vigil conn (its user_data). */
typedef struct fx_rec {
  vigil_conn *conn;
  int closed;
  vigil_reason reason;
  vigil_reason cause;    /* close event cause (drain_timeout's trigger) */
  char detail[160];      /* close event detail */
  int ndata;             /* on_data calls */
  size_t data_len[FX_MAX_FRAMES];
  char data[FX_MAX_FRAMES][64]; /* first bytes of each payload */
  int big_ok;            /* a large payload matched fx_pattern */
  int hellos;
  char hello[256];
  int pings_due;         /* on_ping_due calls (must stay 0 with the codec) */
  int peer_closed;
  int close_on_data;     /* vigil_close from inside on_data */
} fx_rec;

typedef struct fx_hub {
  struct ev_loop *loop;
  vigil_hub *hub;
  vigil_policy policy;   /* the hub's: codec on, short drain */
  int events[VIGIL_EV__COUNT];
  int foreign_user_data; /* conns' user_data is not an fx_rec */
  uint64_t now;          /* the hub's fake clock */
} fx_hub;

/* The recorder callbacks; fx_cb_auto has no on_hello (vigil identifies). */
extern const vigil_conn_callbacks fx_cb;
extern const vigil_conn_callbacks fx_cb_auto;

/* Byte i of the large payloads tests send (fx_rec.big_ok checks it). */
static inline uint8_t fx_pattern(size_t i) { return (uint8_t)(i * 7u + 3u); }

void fx_init(fx_hub *f);
/* Moves the fake clock and runs what is then due. */
void fx_advance(fx_hub *f, uint64_t ms);
void fx_done(fx_hub *f);
/* Adopts fd with policy p (NULL = the hub's) and callbacks cb (NULL =
 * fx_cb), recording into r; asserts success. */
vigil_conn *fx_adopt(fx_hub *f, int fd, fx_rec *r, const vigil_policy *p,
                     const vigil_conn_callbacks *cb);
/* vt_run_until predicate: the fx_rec's conn got on_close. */
int fx_rec_closed(void *arg);

/* A raw peer: frames by hand, and every frame it received. */
typedef struct fx_raw {
  int fd;
  vigil_frame_parser p;
  int n;
  struct {
    int type;
    uint32_t len;
    uint8_t data[300];
  } f[FX_MAX_FRAMES];
  int eof;
  int want;
} fx_raw;

void fx_raw_init(fx_raw *r, int fd);
/* Runs the loop until the raw peer holds `want` frames (or EOF). */
int fx_raw_wait(fx_hub *f, fx_raw *r, int want, uint32_t ms);
int fx_raw_wait_eof(fx_hub *f, fx_raw *r, uint32_t ms);
void fx_raw_send(fx_raw *r, vigil_frame_type t, const void *p, size_t len);
void fx_raw_send_bytes(fx_raw *r, const void *p, size_t len);
void fx_raw_done(fx_raw *r);
/* The GOODBYE code of received frame i (asserts it is a GOODBYE). */
unsigned fx_raw_goodbye_code(const fx_raw *r, int i);

/* A vigil conn (server side of a loopback pair) and a raw peer. */
void fx_pair(fx_hub *f, fx_rec *r, fx_raw *w, const vigil_policy *p,
             const vigil_conn_callbacks *cb);

/* The shared fixture: one vigil conn and a raw peer. A test's conn
 * differs from the hub's policy as its cmocka prestate (an fx_variant, or
 * NULL) says; fx_conn_teardown closes the peer and checks the conn
 * closed. */
typedef struct fx_variant {
  int codec_off;
  uint32_t ping_interval_ms;
  uint32_t handshake_timeout_ms;
  uint32_t ping_min_interval_ms; /* 0 = the default */
  const vigil_conn_callbacks *cb; /* NULL = fx_cb */
} fx_variant;

typedef struct fx_tc {
  fx_hub f;
  fx_rec r;
  fx_raw w;
} fx_tc;

int fx_conn_setup(void **state);
int fx_conn_teardown(void **state);

#endif
