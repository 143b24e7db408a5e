/*
 * The takeover rules (internal; takeover_rules.c): what a claim on an
 * identity may do, given the identity's holder and its history. The judge
 * runs under the directory's lock (directory.h) and is pure: it reads the
 * claim and the holder, updates the identity's flapping memory and returns
 * a verdict; host code (events, ASK) runs in takeover.c between pauses.
 *
 * The rules, in the order they apply:
 *  1. proof: a claim whose certificate does not prove the identity never
 *     displaces a live holder whose certificate does (refused with
 *     takeover_rejected, "identity not proven by certificate"), and does
 *     not count as flapping;
 *  2. a ban refuses every claim until it ends (identity_banned); it does
 *     not close the holder;
 *  3. a holder that is leaving (peer FIN seen, or closing), or none: no
 *     contest, the identity moves to the claimant;
 *  4. flapping: contested claims are counted per identity in a sliding
 *     window of 16 slices (a claim counts for between 15/16 of
 *     flap_window and the whole window, never longer). More than flap_max
 *     of them raise "flapping" once per episode; with flap_ban_ms the claim
 *     that crossed the line starts a ban and is refused. Takeovers whose
 *     displaced conn was classed live (takeover_class.h) are also counted
 *     (vigil__takeover_note_live, after the eviction); when at least
 *     flap_max of them fall in the window, the report names a duplicate
 *     identity: two live conns taking turns, not a rebooting device;
 *  5. the contest, by the claimant's policy: NEWEST_WINS evicts the
 *     holder, OLDEST_WINS refuses the claimant, ASK pauses for the host's
 *     answer (newest wins without a callback) and applies it only to the
 *     holder it was about.
 */
#ifndef VIGIL_TAKEOVER_RULES_H
#define VIGIL_TAKEOVER_RULES_H

#include <stdint.h>

#include "directory.h"
#include "vigil.h"

/* ASK questions one claim may ask before it is refused (the holder kept
 * changing under the host's answers). */
#define VIGIL__ASK_MAX 8u

/* The close detail of a claim refused by rule 1. */
extern const char vigil__not_proven[];

typedef struct vigil__claim_ctx {
  /* the claim */
  const vigil_policy *policy;  /* the claimant's */
  int claimant_proven;         /* its certificate proves the identity */
  int can_ask;                 /* ASK mode has a callback to ask */
  int probe;                   /* rule 1 only; never installs */
  const vigil__holder *self;   /* probe: the claimant's own hold, if any */
  /* the claim's progress across pauses */
  int flap_counted;            /* a claim counts once for flapping */
  const vigil__holder *asked;  /* the host answered about this holder... */
  int answer;                  /* ...this (1: the claimant wins) */
  uint32_t asks;               /* questions asked so far */
  /* the verdict's details */
  vigil_reason reason;         /* REFUSE: the claimant's close reason, NONE
                                  when only a probe ended */
  int rc;                      /* REFUSE: vigil_conn_identify's result */
  const char *detail;          /* REFUSE: close detail or NULL */
  uint32_t flap_count;         /* PAUSE: report flapping with this count;
                                  0 = the pause is an ASK question */
  int flap_refuse;             /* PAUSE for flapping: a ban began, refuse
                                  the claim once it is reported */
  const char *flap_detail;     /* PAUSE for flapping: the report's detail
                                  (vigil__duplicate_identity) or NULL */
} vigil__claim_ctx;

/* The flapping report's detail for a duplicate identity. */
extern const char vigil__duplicate_identity[];

/* A vigil__dir_note (ctx: the displaced conn's policy): one takeover of
 * the identity displaced a live conn at `now`. */
void vigil__takeover_note_live(void *ctx, vigil__id_rules *rules,
                               uint64_t now);

void vigil__claim_ctx_init(vigil__claim_ctx *x, const vigil_policy *p);

/* The judge (vigil__dir_judge) with a vigil__claim_ctx. */
vigil__verdict vigil__takeover_judge(void *ctx, vigil__id_rules *rules,
                                     const vigil__holder *holder,
                                     uint64_t now);

#endif
