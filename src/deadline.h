/*
 * Pure deadline evaluation for one connection (internal).
 *
 * A connection keeps only timestamps and a few "already reported" bits.
 * Activity stores a timestamp and clears bits; it never touches the timing
 * wheel. When the connection's wheel node fires, the owner asks this module
 * which deadlines are due at `now` and when the next one falls, handles the
 * due ones, and re-arms the node at `next`. Nothing here reads a clock, so
 * unit tests drive it with plain numbers.
 *
 * Deadlines per state (0 in a policy field = that deadline is off):
 *
 *   HANDSHAKE   handshake: adopted + handshake_timeout
 *               dead:      last_rx + dead_after
 *   OPEN        dead:      last_rx + dead_after
 *               ping:      last_tx + ping_interval      (once per tx silence)
 *               suspect:   last_rx + suspect_after, then checked +
 *                          recheck while silent until evidence is found
 *               idle r/w/a: last_rx / last_tx / max(both) + *_idle
 *                          (once per idle period)
 *   CLOSE_WAIT  close_wait: state_since + close_wait_grace
 *   FLUSHING    linger:    state_since + linger_max
 *               stall:     max(last_tx, state_since) + drain_timeout
 *                          (no byte of queued output left for this long)
 *   DRAINING    linger:    state_since + linger_max
 *               drain:     max(last_rx, last_tx) + drain_timeout
 *                          (last_tx includes the FIN, so this is "no sign of
 *                          life since our FIN", nginx's lingering_timeout)
 *   CLOSED      none
 *
 * For a deadline already reported (its bit set), the earliest moment it can
 * become due again is one period after new activity, so its candidate for
 * `next` is now + period: the node then wakes once per period at most while
 * the connection stays quiet, and never misses a report after activity.
 */
#ifndef VIGIL_DEADLINE_H
#define VIGIL_DEADLINE_H

#include <stdint.h>

#include "vigil.h"

/* "Already reported" bits, cleared by activity. */
#define VIGIL__QUIET_PING 0x01u       /* ping_due asked; cleared by tx */
#define VIGIL__QUIET_SUSPECT 0x02u    /* suspect reported; cleared by rx */
#define VIGIL__QUIET_CHECKED 0x04u    /* tcp_info checked; cleared by rx */
#define VIGIL__QUIET_IDLE_R 0x08u     /* cleared by rx */
#define VIGIL__QUIET_IDLE_W 0x10u     /* cleared by tx */
#define VIGIL__QUIET_IDLE_A 0x20u     /* cleared by rx or tx */
#define VIGIL__QUIET_RX_MASK                                                 \
  (VIGIL__QUIET_SUSPECT | VIGIL__QUIET_CHECKED | VIGIL__QUIET_IDLE_R |       \
   VIGIL__QUIET_IDLE_A)
#define VIGIL__QUIET_TX_MASK                                                 \
  (VIGIL__QUIET_PING | VIGIL__QUIET_IDLE_W | VIGIL__QUIET_IDLE_A)

/* Due bits returned by vigil__deadline_eval. Terminal ones close. */
#define VIGIL__DUE_DEAD 0x001u
#define VIGIL__DUE_HANDSHAKE 0x002u
#define VIGIL__DUE_CLOSE_WAIT 0x004u
#define VIGIL__DUE_DRAIN 0x008u   /* drain or flush stall */
#define VIGIL__DUE_LINGER 0x010u
#define VIGIL__DUE_PING 0x020u
#define VIGIL__DUE_SUSPECT 0x040u
#define VIGIL__DUE_IDLE_R 0x080u
#define VIGIL__DUE_IDLE_W 0x100u
#define VIGIL__DUE_IDLE_A 0x200u
#define VIGIL__DUE_TERMINAL                                                  \
  (VIGIL__DUE_DEAD | VIGIL__DUE_HANDSHAKE | VIGIL__DUE_CLOSE_WAIT |          \
   VIGIL__DUE_DRAIN | VIGIL__DUE_LINGER)

#define VIGIL__NEVER UINT64_MAX

/* The timestamps a connection keeps (monotonic ms). */
typedef struct vigil__times {
  uint64_t adopted;
  uint64_t last_rx;     /* starts at adopted */
  uint64_t last_tx;     /* starts at adopted */
  uint64_t state_since; /* CLOSE_WAIT: peer FIN; FLUSHING/DRAINING: close
                           start */
  uint64_t checked;     /* last suspicion check (with QUIET_CHECKED) */
} vigil__times;

/* The suspect_after in effect (resolves VIGIL_SUSPECT_AUTO); 0 = off. */
uint32_t vigil__suspect_after(const vigil_policy *p);

/* Interval between tcp_info re-checks while a quiet peer is not yet
 * suspect: a quarter of the gap to dead_after, at least 100 ms. */
uint32_t vigil__suspect_recheck(const vigil_policy *p);

/*
 * Returns the VIGIL__DUE_* bits due at `now` and stores in *next the
 * earliest time a deadline not yet due can fall (VIGIL__NEVER if none).
 * `quiet` holds VIGIL__QUIET_* bits; `watch_only` hosts do their own I/O,
 * which changes nothing here but is kept for symmetry with callers.
 */
unsigned vigil__deadline_eval(const vigil_policy *p, vigil_conn_state state,
                              unsigned quiet, const vigil__times *t,
                              uint64_t now, uint64_t *next);

#endif
