/* Pure deadline evaluation; see deadline.h for the table of deadlines. */
#include "deadline.h"

uint32_t vigil__suspect_after(const vigil_policy *p) {
  if (p->suspect_after_ms == VIGIL_SUSPECT_AUTO)
    return p->dead_after_ms / 2;
  return p->suspect_after_ms;
}

uint32_t vigil__suspect_recheck(const vigil_policy *p) {
  uint32_t s = vigil__suspect_after(p);
  uint32_t gap = p->dead_after_ms > s ? p->dead_after_ms - s : s;
  uint32_t step = gap / 4;
  return step < 100 ? 100 : step;
}

/* Evaluation state threaded through the helpers below. */
typedef struct eval {
  uint64_t now;
  uint64_t next;
  unsigned due;
} eval;

/* A deadline at `at` (VIGIL__NEVER = none): due now, or a candidate. */
static void consider(eval *e, uint64_t at, unsigned bit) {
  if (at == VIGIL__NEVER) return;
  if (at <= e->now)
    e->due |= bit;
  else if (at < e->next)
    e->next = at;
}

/* A terminal deadline is due only once `period` has fully passed. Stamps
 * are whole milliseconds truncated from the clock, so a stamp can be up to
 * 1 ms older than the event it records; the +1 makes "due" mean "more than
 * period ms since", and a close never comes before its bound. */
static uint64_t after(uint64_t base, uint32_t period) {
  return period ? base + period + 1 : VIGIL__NEVER;
}

static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* A once-per-quiet-period report: due at base + period unless already
 * reported, in which case it can only recur a period after activity. */
static void consider_report(eval *e, unsigned quiet, unsigned quiet_bit,
                            uint64_t base, uint32_t period, unsigned due_bit) {
  if (!period) return;
  if (quiet & quiet_bit) {
    uint64_t again = e->now + period;
    if (again < e->next) e->next = again;
    return;
  }
  consider(e, base + period, due_bit);
}

static void eval_open(eval *e, const vigil_policy *p, unsigned quiet,
                      const vigil__times *t) {
  consider(e, after(t->last_rx, p->dead_after_ms), VIGIL__DUE_DEAD);
  consider_report(e, quiet, VIGIL__QUIET_PING, t->last_tx,
                  p->ping_interval_ms, VIGIL__DUE_PING);

  uint32_t suspect = vigil__suspect_after(p);
  if (suspect && !(quiet & VIGIL__QUIET_SUSPECT)) {
    if (quiet & VIGIL__QUIET_CHECKED) {
      /* Checked and found no evidence yet: look again soon; evidence such
       * as retransmits appears only after an RTO. */
      consider(e, t->checked + vigil__suspect_recheck(p), VIGIL__DUE_SUSPECT);
    } else {
      consider(e, t->last_rx + suspect, VIGIL__DUE_SUSPECT);
    }
  } else if (suspect) {
    uint64_t again = e->now + suspect;
    if (again < e->next) e->next = again;
  }

  consider_report(e, quiet, VIGIL__QUIET_IDLE_R, t->last_rx, p->read_idle_ms,
                  VIGIL__DUE_IDLE_R);
  consider_report(e, quiet, VIGIL__QUIET_IDLE_W, t->last_tx, p->write_idle_ms,
                  VIGIL__DUE_IDLE_W);
  consider_report(e, quiet, VIGIL__QUIET_IDLE_A, max64(t->last_rx, t->last_tx),
                  p->all_idle_ms, VIGIL__DUE_IDLE_A);
}

unsigned vigil__deadline_eval(const vigil_policy *p, vigil_conn_state state,
                              unsigned quiet, const vigil__times *t,
                              uint64_t now, uint64_t *next) {
  eval e = {now, VIGIL__NEVER, 0};
  switch (state) {
  case VIGIL_CONN_HANDSHAKE:
    consider(&e, after(t->adopted, p->handshake_timeout_ms),
             VIGIL__DUE_HANDSHAKE);
    consider(&e, after(t->last_rx, p->dead_after_ms), VIGIL__DUE_DEAD);
    break;
  case VIGIL_CONN_OPEN:
    eval_open(&e, p, quiet, t);
    break;
  case VIGIL_CONN_CLOSE_WAIT:
    /* No rx can follow a FIN, so dead_after would misfire here; the grace
     * period is the only bound. A grace of 0 is handled by the caller
     * (close at once), so "off" never means "forever". */
    consider(&e, after(t->state_since, p->close_wait_grace_ms),
             VIGIL__DUE_CLOSE_WAIT);
    break;
  case VIGIL_CONN_FLUSHING:
    consider(&e, after(t->state_since, p->linger_max_ms), VIGIL__DUE_LINGER);
    consider(&e, after(max64(t->last_tx, t->state_since), p->drain_timeout_ms),
             VIGIL__DUE_DRAIN);
    break;
  case VIGIL_CONN_DRAINING:
    consider(&e, after(t->state_since, p->linger_max_ms), VIGIL__DUE_LINGER);
    consider(&e, after(max64(t->last_rx, t->last_tx), p->drain_timeout_ms),
             VIGIL__DUE_DRAIN);
    break;
  case VIGIL_CONN_CLOSED:
    break;
  }
  *next = e.next;
  return e.due;
}
