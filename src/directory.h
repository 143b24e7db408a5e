/*
 * The identity directory (internal): who holds each identity, and the
 * takeover rules' memory of it (bans, flapping), behind an ops table so
 * that where the truth lives can change without touching the hubs:
 *
 *   - dir_local.c: in process. A hub alone gets a private one (no lock);
 *     the hubs of a group share one (a mutex), so a claim on any worker
 *     sees every worker's holders;
 *   - a cluster backend (across nodes) implements the same ops.
 *
 * Every claim goes through ops->claim, which runs the caller's judge
 * (takeover_rules.c) on the identity's record under the directory's lock
 * and applies its verdict atomically: nobody can change the holder between
 * the judgement and the install. The judge is pure (no host code, no I/O);
 * anything that needs host code (a flapping event, an ASK callback) makes
 * the judge pause, the caller runs it unlocked and claims again.
 *
 * Holders. A successful claim installs a vigil__holder: the claimant
 * conn's hold on the identity, under an epoch the directory issues (one
 * counter per directory: epochs only grow, per identity too, whatever
 * happens to the record). A holder is shared between threads:
 *   - hub, worker, conn_id are fixed before the claim; epoch at install;
 *   - conn is read and written only on the owning hub's thread;
 *   - staying, proven and entry are read and written under the lock (the
 *     owning thread, which alone writes them, may read them without it);
 *   - refs is atomic: the conn holds one from install until it closes,
 *     and whoever the directory hands a displaced holder to holds one, so
 *     an eviction in flight to another worker still finds the holder (and
 *     its conn pointer, NULL once the conn closed) when it arrives.
 *
 * Lock discipline: the lock is taken on claim, leaving (update), release
 * and find, never on the per-packet path, and never while host code runs.
 */
#ifndef VIGIL_DIRECTORY_H
#define VIGIL_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vigil.h"

/* Identities longer than this are refused (MQTT client ids fit). */
#define VIGIL__ID_MAX_LEN 65535u
/* Slices of the flapping window (takeover_rules.c). */
#define VIGIL__FLAP_SLICES 16u

/* The takeover rules' memory of one identity; takeover_rules.c reads and
 * writes it (under the directory's lock), the directory only stores it,
 * lifts ended bans and keeps a record while a ban runs. */
typedef struct vigil__id_rules {
  uint64_t ban_until;    /* clock ms; 0 = not banned */
  uint64_t slice_head;   /* index (now / slice_ms) of the newest slice */
  uint32_t slice_ms;     /* slice width the counts were taken with */
  uint32_t slices[VIGIL__FLAP_SLICES];
  uint8_t flapping;      /* "flapping" reported for this episode */
  uint32_t live_count;   /* takeovers that displaced a live conn since
                            live_since (a duplicate identity's sign) */
  uint64_t live_since;   /* clock ms of the first of them */
} vigil__id_rules;

typedef struct vigil__holder vigil__holder;
struct vigil__holder {
  vigil_hub *hub;        /* the conn's hub: other threads compare it,
                            never dereference it */
  int32_t worker;        /* its worker, VIGIL_WORKER_NONE outside a group */
  uint64_t conn_id;
  uint64_t epoch;        /* issued at install */
  vigil_conn *conn;      /* [owner thread] NULL once the conn closed */
  uint8_t left;          /* [owner thread] leaving already told */
  uint8_t staying;       /* [lock] the conn is HANDSHAKE or OPEN */
  uint8_t proven;        /* [lock] its certificate proves the identity */
  void *entry;           /* [lock] the record naming it; NULL once it was
                            displaced or released */
  void *cluster;         /* [owner thread] the cluster layer's record of
                            this hold (src/cluster/cluster.c); NULL
                            without a cluster */
  uint32_t refs;         /* atomic */
};

static inline void vigil__holder_ref(vigil__holder *h) {
  __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

static inline void vigil__holder_unref(vigil__holder *h) {
  if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) free(h);
}

/* What a judge decides about a claim. */
typedef enum vigil__verdict {
  VIGIL__V_INSTALL = 0, /* the claimant holds the identity now; a holder
                           that was leaving just loses it */
  VIGIL__V_EVICT = 1,   /* the same, and the live holder it displaced must
                           be closed: handed back in *other */
  VIGIL__V_REFUSE = 2,  /* nothing changes but the rules' memory */
  VIGIL__V_PAUSE = 3,   /* host code must run before the judgement can go
                           on: nothing changes but the rules' memory; the
                           holder (if any) is handed back in *other */
  VIGIL__V_NOMEM = 4,   /* the directory could not make a record */
} vigil__verdict;

/* Judges a claim on the identity's record. holder is the current holder
 * or NULL; now is the claimant hub's clock (ms). Runs under the
 * directory's lock: no host code, nothing that blocks. */
typedef vigil__verdict (*vigil__dir_judge)(void *ctx, vigil__id_rules *rules,
                                           const vigil__holder *holder,
                                           uint64_t now);

/* Updates an identity's rules after the fact (a takeover's verdict on the
 * conn it displaced): runs under the directory's lock, pure. */
typedef void (*vigil__dir_note)(void *ctx, vigil__id_rules *rules,
                                uint64_t now);

typedef struct vigil__dir vigil__dir;

typedef struct vigil__dir_ops {
  /* Runs judge on id's record (created if there is none) and applies its
   * verdict. INSTALL and EVICT make `mine` (refs >= 1, epoch unset) the
   * holder under a fresh epoch. EVICT and PAUSE hand the current holder
   * to the caller in *other with a reference of its own (else *other is
   * NULL). Returns the verdict applied. */
  vigil__verdict (*claim)(vigil__dir *d, const void *id, size_t len,
                          uint64_t now, vigil__dir_judge judge, void *ctx,
                          vigil__holder *mine, vigil__holder **other);
  /* The owner changes what others may judge: h stopped staying (its conn
   * is leaving), or its proof changed. */
  void (*update)(vigil__dir *d, vigil__holder *h, int staying, int proven);
  /* h's conn closed: if h still holds its identity, nobody does now. */
  void (*release)(vigil__dir *d, vigil__holder *h, uint64_t now);
  /* The conn of `hub` holding id, or NULL; on hub's thread. */
  vigil_conn *(*find)(vigil__dir *d, const void *id, size_t len,
                      const vigil_hub *hub);
  void (*destroy)(vigil__dir *d);
  /* Runs note on id's rules if id has a record (nothing otherwise). NULL
   * in a backend that keeps no such memory: callers check. */
  void (*note)(vigil__dir *d, const void *id, size_t len, uint64_t now,
               vigil__dir_note note, void *ctx);
} vigil__dir_ops;

struct vigil__dir {
  const vigil__dir_ops *ops;
};

/* ---- dir_local.c ---- */

/* An in-process directory; shared = 1 puts every operation under a mutex
 * (the hubs of a group), 0 is for one hub alone. NULL on ENOMEM. */
vigil__dir *vigil__dir_local_new(int shared);
/* Records held or banned now (for tests and memory checks). */
size_t vigil__dir_local_count(vigil__dir *d);

#endif
