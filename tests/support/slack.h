/*
 * How much longer a real-time check may wait when the test runs under
 * valgrind (the memcheck pass of tests/run.sh, tests/memcheck.cmake).
 *
 * Under memcheck every instruction runs 10-50x slower, so work between a
 * deadline and the moment the test sees its effect takes longer. Only the
 * upper slack of a check grows: "never early" lower bounds stay exact in
 * every pass, and plain and ASan runs see the exact numbers they always did.
 *
 *   assert_true(took >= bound);                        exact everywhere
 *   assert_true(took <= bound + TICK + vt_slack_ms(25)); 25 ms, or 250 ms
 *                                                        under valgrind
 */
#ifndef VIGIL_SLACK_H
#define VIGIL_SLACK_H

#include <stdint.h>

/* The one factor valgrind's slack is scaled by. */
#define VT_VALGRIND_SLACK_FACTOR 10

/* 1 when this process runs under valgrind: RUNNING_ON_VALGRIND when the
 * valgrind headers were there at build time, else VIGIL_UNDER_VALGRIND=1
 * in the environment (set by every memcheck/ ctest registration). */
int vt_under_valgrind(void);

/* ms, times VT_VALGRIND_SLACK_FACTOR under valgrind. For the upper slack
 * of a real-time check only. */
uint32_t vt_slack_ms(uint32_t ms);

#endif
