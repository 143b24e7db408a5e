/* The clocks a hub reads when the host injects none (internal; clock.c). */
#ifndef VIGIL_CLOCK_H
#define VIGIL_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in ms: deadlines. Not ev_now(): that follows the wall
 * clock, and a clock step would fire or postpone every deadline at once. */
uint64_t vigil__monotonic_ms(void);
/* CLOCK_MONOTONIC in us, real even when a hub's clock is injected: what
 * a latency across threads (a takeover's claim on one worker, its close
 * on another) is measured with. */
uint64_t vigil__monotonic_us(void);
/* CLOCK_REALTIME in ms since the Unix epoch: events' ts_ms. */
uint64_t vigil__wall_ms(void);

#endif
