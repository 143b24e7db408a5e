/* The takeover rules; the rules themselves are listed in takeover_rules.h. */
#include <string.h>

#include "takeover_rules.h"

const char vigil__not_proven[] = "identity not proven by certificate";
const char vigil__duplicate_identity[] =
    "duplicate identity: live conns taking turns";

/* Live takeovers in a window of flap_window_ms that opens at the first of
 * them (coarser than the claims' sliding window: the report only needs
 * to know that most takeovers of an episode were live). */
static uint32_t live_in_window(const vigil__id_rules *r,
                               const vigil_policy *p, uint64_t now) {
  if (r->live_count == 0 || now - r->live_since >= p->flap_window_ms)
    return 0;
  return r->live_count;
}

void vigil__takeover_note_live(void *ctx, vigil__id_rules *r, uint64_t now) {
  const vigil_policy *p = ctx;
  if (p->flap_max == 0) return;
  if (live_in_window(r, p, now) == 0) {
    r->live_count = 0;
    r->live_since = now;
  }
  r->live_count++;
}

void vigil__claim_ctx_init(vigil__claim_ctx *x, const vigil_policy *p) {
  memset(x, 0, sizeof *x);
  x->policy = p;
}

/* Records one contested claim at `now` and returns how many fall inside
 * the window. Slices older than the window are cleared as time moves. */
static uint32_t flap_record(vigil__id_rules *r, const vigil_policy *p,
                            uint64_t now) {
  uint32_t n = p->flap_window_ms < VIGIL__FLAP_SLICES ? p->flap_window_ms
                                                      : VIGIL__FLAP_SLICES;
  uint32_t width = p->flap_window_ms / n;
  if (width != r->slice_ms) { /* policy changed: start over */
    memset(r->slices, 0, sizeof r->slices);
    r->slice_ms = width;
    r->slice_head = now / width;
  }
  uint64_t k = now / width;
  if (k - r->slice_head >= n) {
    memset(r->slices, 0, sizeof r->slices);
  } else {
    for (uint64_t s = r->slice_head + 1; s <= k; s++) r->slices[s % n] = 0;
  }
  r->slice_head = k;
  r->slices[k % n]++;
  uint32_t sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += r->slices[i];
  return sum;
}

static vigil__verdict refuse(vigil__claim_ctx *x, vigil_reason reason,
                             int rc, const char *detail) {
  x->reason = reason;
  x->rc = rc;
  x->detail = detail;
  return VIGIL__V_REFUSE;
}

/* Rule 4; VIGIL__V_INSTALL stands for "go on to the contest". */
static vigil__verdict flapping(vigil__claim_ctx *x, vigil__id_rules *r,
                               uint64_t now) {
  const vigil_policy *p = x->policy;
  if (p->flap_max == 0 || x->flap_counted) return VIGIL__V_INSTALL;
  x->flap_counted = 1;
  uint32_t n = flap_record(r, p, now);
  if (n <= p->flap_max) {
    r->flapping = 0;
    return VIGIL__V_INSTALL;
  }
  int report = !r->flapping;
  r->flapping = 1;
  if (p->flap_ban_ms > 0) r->ban_until = now + p->flap_ban_ms;
  if (report) {
    x->flap_count = n;
    x->flap_refuse = p->flap_ban_ms > 0;
    /* Every contested claim before this one displaced a live conn. */
    x->flap_detail = live_in_window(r, p, now) >= p->flap_max
                         ? vigil__duplicate_identity
                         : NULL;
    return VIGIL__V_PAUSE;
  }
  if (p->flap_ban_ms > 0)
    return refuse(x, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED, NULL);
  return VIGIL__V_INSTALL;
}

/* Rule 5. */
static vigil__verdict contest(vigil__claim_ctx *x,
                              const vigil__holder *holder) {
  switch (x->policy->takeover) {
  case VIGIL_TAKEOVER_OLDEST_WINS:
    return refuse(x, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED, NULL);
  case VIGIL_TAKEOVER_ASK:
    if (x->asked == holder)
      return x->answer ? VIGIL__V_EVICT
                       : refuse(x, VIGIL_REASON_TAKEOVER_REJECTED,
                                VIGIL_EREJECTED, NULL);
    if (!x->can_ask) return VIGIL__V_EVICT;
    if (x->asks >= VIGIL__ASK_MAX)
      return refuse(x, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED,
                    NULL);
    return VIGIL__V_PAUSE;
  default:
    return VIGIL__V_EVICT;
  }
}

vigil__verdict vigil__takeover_judge(void *ctx, vigil__id_rules *rules,
                                     const vigil__holder *holder,
                                     uint64_t now) {
  vigil__claim_ctx *x = ctx;
  x->reason = VIGIL_REASON_NONE;
  x->rc = VIGIL_OK;
  x->detail = NULL;
  x->flap_count = 0;
  x->flap_refuse = 0;
  x->flap_detail = NULL;
  int contested = holder && holder != x->self && holder->staying;
  if (contested && holder->proven && !x->claimant_proven)
    return refuse(x, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED,
                  vigil__not_proven);
  if (x->probe) return refuse(x, VIGIL_REASON_NONE, VIGIL_EEXIST, NULL);
  if (rules->ban_until)
    return refuse(x, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED, NULL);
  if (!contested) return VIGIL__V_INSTALL;
  vigil__verdict v = flapping(x, rules, now);
  if (v != VIGIL__V_INSTALL) return v;
  return contest(x, holder);
}
