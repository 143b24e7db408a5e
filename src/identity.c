/*
 * Identity index and takeover; see vigil_conn_identify in vigil.h.
 *
 * A device that reboots (or loses its path and reconnects) opens a new
 * connection while the server still holds the old one as ESTABLISHED: the
 * old peer is gone but nothing told the server. Claiming an identity on the
 * new connection ends that ghost at once instead of after dead_after or the
 * kernel timeouts (MQTT-3.1.4-2 does the same for client ids).
 *
 * The hub keeps one chained hash table from identity bytes to an entry
 * holding the current holder. Keys come from the network, so the hash is
 * SipHash-2-4 with a per-hub random key: a peer cannot choose identities
 * that all land in one bucket. The table doubles when it holds more
 * entries than buckets, so lookups stay O(1) amortised.
 *
 * A claim on an identity whose holder is live (HANDSHAKE or OPEN) is
 * contested and the policy decides:
 *
 *   NEWEST_WINS  holder closes now with reason takeover (RST under
 *                abort_dead: the displaced peer is presumed dead), event
 *                "takeover" names both conns;
 *   OLDEST_WINS  the claimant closes gracefully with takeover_rejected;
 *   ASK          the hub's on_takeover callback decides (newest wins when
 *                there is no callback).
 *
 * A holder that is already leaving (peer FIN seen, or closing) is not a
 * contest: the identity simply moves to the claimant.
 *
 * Epoch guard: every successful claim gets a fresh epoch, stored in the
 * entry and in the conn. A conn gives its identity back only if the entry
 * still names it with the same epoch, so a displaced or leaving conn whose
 * close completes later can never remove its successor's entry (the race
 * where an old session's late FIN tore down the new one).
 *
 * Flapping: contested claims are counted per identity in a sliding window
 * of 16 slices (a claim counts for between 15/16 of flap_window and the
 * whole window, never longer). More than flap_max of them raise
 * "flapping"; with flap_ban_ms the claim that crossed the line and every
 * claim until the ban ends are refused with identity_banned. A ban refuses
 * claims; it does not close the current holder.
 *
 * Bounded memory: an entry lives while a conn holds the identity or a ban
 * runs. Releases drop idle entries at once; entries whose ban ran out are
 * dropped when next looked up, or by a small sweep (two buckets per claim).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "close.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "identity.h"

/* Identities longer than this are refused (MQTT client ids fit). */
#define ID_MAX_LEN 65535u
#define FLAP_SLICES 16u
#define INITIAL_BUCKETS 16u
#define SWEEP_BUCKETS 2u

typedef struct id_entry id_entry;

struct id_entry {
  id_entry *next;
  uint64_t hash;
  vigil_conn *conn;      /* current holder; NULL = none (ban only) */
  uint64_t epoch;        /* holder's epoch; 0 with no holder */
  uint64_t ban_until;    /* hub clock ms; 0 = not banned */
  uint64_t slice_head;   /* index (now / slice_ms) of the newest slice */
  uint32_t slice_ms;     /* slice width the counts were taken with */
  uint32_t slices[FLAP_SLICES];
  uint8_t flapping;      /* "flapping" reported for this episode */
  uint8_t pinned;        /* inside an on_takeover call: do not free */
  size_t len;
  char id[];             /* len bytes + NUL */
};

typedef struct id_index {
  id_entry **buckets;
  size_t mask;           /* bucket count - 1 (a power of two) */
  size_t count;
  size_t sweep_pos;
  uint64_t next_epoch;
  uint64_t key[2];       /* SipHash key */
} id_index;

/* ---- SipHash-2-4 (Aumasson and Bernstein), 64-bit output ---- */

static uint64_t rotl(uint64_t x, unsigned b) {
  return (x << b) | (x >> (64u - b));
}

static uint64_t load_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (unsigned i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8u * i);
  return v;
}

#define SIP_ROUND(v0, v1, v2, v3)                                           \
  do {                                                                       \
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);               \
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                  \
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                  \
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);               \
  } while (0)

static uint64_t siphash24(const uint64_t key[2], const void *data,
                          size_t len) {
  const unsigned char *p = data;
  uint64_t v0 = key[0] ^ 0x736f6d6570736575ull;
  uint64_t v1 = key[1] ^ 0x646f72616e646f6dull;
  uint64_t v2 = key[0] ^ 0x6c7967656e657261ull;
  uint64_t v3 = key[1] ^ 0x7465646279746573ull;
  size_t full = len & ~(size_t)7;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m = load_le64(p + i);
    v3 ^= m;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t last = (uint64_t)(len & 0xff) << 56;
  for (size_t i = 0; i < (len & 7); i++)
    last |= (uint64_t)p[full + i] << (8u * i);
  v3 ^= last;
  SIP_ROUND(v0, v1, v2, v3);
  SIP_ROUND(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; i++) SIP_ROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ---- */

/* Random SipHash key; falls back to clock, pid and an address if the
 * kernel's generator is unavailable (still unpredictable enough to keep
 * a remote peer from precomputing collisions). */
static void seed_key(uint64_t key[2]) {
  if (getrandom(key, 2 * sizeof key[0], GRND_NONBLOCK) ==
      (ssize_t)(2 * sizeof key[0]))
    return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
  key[1] = (uint64_t)(uintptr_t)key ^ ((uint64_t)ts.tv_sec << 32);
}

/* The hub's index, created on first use; NULL on ENOMEM. */
static id_index *index_get(vigil_hub *hub) {
  if (hub->identities) return hub->identities;
  id_index *idx = calloc(1, sizeof *idx);
  if (!idx) return NULL;
  idx->buckets = calloc(INITIAL_BUCKETS, sizeof *idx->buckets);
  if (!idx->buckets) {
    free(idx);
    return NULL;
  }
  idx->mask = INITIAL_BUCKETS - 1;
  idx->next_epoch = 1;
  seed_key(idx->key);
  hub->identities = idx;
  return idx;
}

static id_entry *find(const id_index *idx, uint64_t h, const void *id,
                      size_t len) {
  for (id_entry *e = idx->buckets[h & idx->mask]; e; e = e->next)
    if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
      return e;
  return NULL;
}

/* Doubles the bucket array; on ENOMEM the table just stays denser. */
static void grow(id_index *idx) {
  size_t n = (idx->mask + 1) * 2;
  id_entry **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i <= idx->mask; i++) {
    id_entry *e = idx->buckets[i];
    while (e) {
      id_entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(idx->buckets);
  idx->buckets = b;
  idx->mask = n - 1;
  idx->sweep_pos = 0;
}

/* A new, unlinked-holder entry for id; NULL on ENOMEM. */
static id_entry *insert(id_index *idx, uint64_t h, const void *id,
                        size_t len) {
  id_entry *e = calloc(1, sizeof *e + len + 1);
  if (!e) return NULL;
  e->hash = h;
  e->len = len;
  memcpy(e->id, id, len);
  e->id[len] = '\0';
  size_t b = h & idx->mask;
  e->next = idx->buckets[b];
  idx->buckets[b] = e;
  if (++idx->count > idx->mask + 1) grow(idx);
  return e;
}

static void unlink_free(id_index *idx, id_entry *e) {
  id_entry **pp = &idx->buckets[e->hash & idx->mask];
  while (*pp && *pp != e) pp = &(*pp)->next;
  if (*pp) *pp = e->next;
  idx->count--;
  free(e);
}

/* Ends a ban that ran out: the identity starts with a clean history. */
static void expire_ban(id_entry *e, uint64_t now) {
  if (!e->ban_until || e->ban_until > now) return;
  e->ban_until = 0;
  e->flapping = 0;
  memset(e->slices, 0, sizeof e->slices);
}

/* Frees e if nothing needs it any more: no holder, no running ban. */
static void maybe_drop(id_index *idx, id_entry *e, uint64_t now) {
  expire_ban(e, now);
  if (!e->conn && !e->ban_until && !e->pinned) unlink_free(idx, e);
}

/* Looks at a couple of buckets for entries whose ban ran out. */
static void sweep(id_index *idx, uint64_t now) {
  for (unsigned i = 0; i < SWEEP_BUCKETS; i++) {
    size_t b = idx->sweep_pos++ & idx->mask;
    id_entry *e = idx->buckets[b];
    while (e) {
      id_entry *next = e->next;
      maybe_drop(idx, e, now);
      e = next;
    }
  }
}

/* ---- flapping ---- */

/* Records one contested claim at `now` and returns how many fall inside
 * the window. Slices older than the window are cleared as time moves. */
static uint32_t flap_record(id_entry *e, const vigil_policy *p, uint64_t now) {
  uint32_t n = p->flap_window_ms < FLAP_SLICES ? p->flap_window_ms
                                               : FLAP_SLICES;
  uint32_t width = p->flap_window_ms / n;
  if (width != e->slice_ms) { /* policy changed: start over */
    memset(e->slices, 0, sizeof e->slices);
    e->slice_ms = width;
    e->slice_head = now / width;
  }
  uint64_t k = now / width;
  if (k - e->slice_head >= n) {
    memset(e->slices, 0, sizeof e->slices);
  } else {
    for (uint64_t s = e->slice_head + 1; s <= k; s++) e->slices[s % n] = 0;
  }
  e->slice_head = k;
  e->slices[k % n]++;
  uint32_t sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += e->slices[i];
  return sum;
}

/* ---- claims ---- */

/* Live and staying: a contest is only against such a holder. */
static int staying(const vigil_conn *c) {
  return c->state == VIGIL_CONN_HANDSHAKE || c->state == VIGIL_CONN_OPEN;
}

/* Makes c the holder of e under a fresh epoch. */
static void install(id_index *idx, id_entry *e, vigil_conn *c) {
  e->conn = c;
  e->epoch = idx->next_epoch++;
  c->ext->epoch = e->epoch;
}

static void emit(vigil_hub *hub, vigil_event_type type, vigil_conn *c,
                 uint64_t other, uint32_t count) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, c);
  ev.other_conn_id = other;
  ev.count = count;
  vigil__event_send(hub, &ev);
}

/* Moves e from its live holder to c and closes the holder. */
static void take_over(vigil_hub *hub, id_index *idx, id_entry *e,
                      vigil_conn *c) {
  vigil_conn *old = e->conn;
  install(idx, e, c);
  hub->stats.takeovers++;
  emit(hub, VIGIL_EV_TAKEOVER, c, old->id, 0);
  /* The old peer is presumed gone (rebooted device): RST under abort_dead
   * so no FIN_WAIT1 orphan retransmits to it. */
  vigil__conn_close(old, VIGIL_REASON_TAKEOVER, VIGIL__CLOSE_DEAD);
  vigil__metrics_observe_takeover(hub);
}

/* Refuses c's claim: it closes gracefully, so output it queued before
 * the claim still reaches the peer. */
static int refuse(vigil_conn *c, vigil_reason reason, int rc) {
  vigil__conn_close(c, reason, VIGIL__CLOSE_GRACEFUL);
  return rc;
}

/* Is c's claim on e contested by another live, staying holder? */
static int contested(const id_entry *e, const vigil_conn *c) {
  return e->conn && e->conn != c && staying(e->conn);
}

/* Did the host close c from a callback we just made? */
static int claimant_gone(const vigil_hub *hub, const vigil_conn *c) {
  return hub->free_requested || c->state == VIGIL_CONN_CLOSED ||
         vigil__closing(c) || c->state == VIGIL_CONN_CLOSE_WAIT;
}

/* Counts a contested claim; reports and, with a ban, refuses the claim
 * that crosses flap_max. Returns VIGIL_OK to go on with the contest.
 * e is pinned while the event runs: the host may close either conn. */
static int check_flapping(vigil_hub *hub, id_index *idx, id_entry *e,
                          vigil_conn *c, uint64_t now) {
  const vigil_policy *p = c->policy;
  uint32_t n = flap_record(e, p, now);
  if (n <= p->flap_max) {
    e->flapping = 0;
    return VIGIL_OK;
  }
  if (!e->flapping) {
    e->flapping = 1;
    e->pinned = 1;
    emit(hub, VIGIL_EV_FLAPPING, c, e->conn->id, n);
    e->pinned = 0;
  }
  if (p->flap_ban_ms > 0) {
    e->ban_until = now + p->flap_ban_ms;
    if (claimant_gone(hub, c)) return VIGIL_ECLOSED;
    return refuse(c, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED);
  }
  if (claimant_gone(hub, c)) {
    maybe_drop(idx, e, now);
    return VIGIL_ECLOSED;
  }
  return VIGIL_OK;
}

/* ASK mode: 1 if the claimant should win. Pins e across the callback,
 * which may close either conn or claim other identities. */
static int ask_host(vigil_hub *hub, id_entry *e, vigil_conn *c) {
  if (!hub->opts.on_takeover) return 1;
  e->pinned = 1;
  int win = hub->opts.on_takeover(hub, e->conn, c, hub->opts.takeover_data);
  e->pinned = 0;
  return win != 0;
}

/* Resolves a claim by c on entry e (exists, not banned). */
static int resolve(vigil_hub *hub, id_index *idx, id_entry *e, vigil_conn *c,
                   uint64_t now) {
  const vigil_policy *p = c->policy;
  if (contested(e, c) && p->flap_max > 0) {
    int rc = check_flapping(hub, idx, e, c, now);
    if (rc != VIGIL_OK) return rc;
  }
  if (!contested(e, c)) {
    install(idx, e, c);
    return VIGIL_OK;
  }
  int new_wins = 1;
  if (p->takeover == VIGIL_TAKEOVER_OLDEST_WINS) {
    new_wins = 0;
  } else if (p->takeover == VIGIL_TAKEOVER_ASK) {
    new_wins = ask_host(hub, e, c);
    if (claimant_gone(hub, c)) {
      maybe_drop(idx, e, now);
      return VIGIL_ECLOSED;
    }
    /* The callback may have closed the holder: re-judge the contest. */
    if (!contested(e, c)) {
      install(idx, e, c);
      return VIGIL_OK;
    }
  }
  if (!new_wins)
    return refuse(c, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_EREJECTED);
  take_over(hub, idx, e, c);
  return VIGIL_OK;
}

/* Stores the claimed identity on c (shown in its events even when the
 * claim is refused); epoch 0 until it holds the identity. */
static int copy_to_conn(vigil_conn *c, const void *id, size_t len) {
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (!x) return VIGIL_ENOMEM;
  char *copy = malloc(len + 1);
  if (!copy) return VIGIL_ENOMEM;
  memcpy(copy, id, len);
  copy[len] = '\0';
  x->identity = copy;
  x->identity_len = len;
  x->epoch = 0;
  return VIGIL_OK;
}

static int claim(vigil_hub *hub, vigil_conn *c, const void *id, size_t len) {
  id_index *idx = index_get(hub);
  if (!idx) return VIGIL_ENOMEM;
  uint64_t now = vigil__hub_clock(hub);
  sweep(idx, now);
  uint64_t h = siphash24(idx->key, id, len);
  id_entry *e = find(idx, h, id, len);
  if (e) expire_ban(e, now);
  if (!e) {
    e = insert(idx, h, id, len);
    if (!e) return VIGIL_ENOMEM;
  }
  if (copy_to_conn(c, id, len) != VIGIL_OK) {
    maybe_drop(idx, e, now);
    return VIGIL_ENOMEM;
  }
  if (e->ban_until)
    return refuse(c, VIGIL_REASON_IDENTITY_BANNED, VIGIL_EBANNED);
  return resolve(hub, idx, e, c, now);
}

/* ---- certificate proof ---- */

static const char NOT_PROVEN[] = "identity not proven by certificate";

static int proof_of(const vigil_conn *c, const void *id, size_t len) {
  return c->tp->proof ? c->tp->proof(c, id, len) : VIGIL__PROOF_NONE;
}

/* With identity_proof (vigil/tls.h), a certificate says who a peer is and
 * a claim in protocol data is only a claim:
 *  - a conn whose certificate proves an identity may claim only that one;
 *  - an identity held by a conn that proved it moves only to another conn
 *    that proves it too: a peer cannot kick a device off by naming it;
 *  - a conn that proves nothing claims like any plain TCP conn.
 * Returns VIGIL_OK, or VIGIL_EREJECTED after setting the close detail. */
static int proof_check(vigil_conn *c, const void *id, size_t len) {
  int mine = proof_of(c, id, len);
  int kind = mine & VIGIL__PROOF_KIND;
  if ((mine & VIGIL__PROOF_ENFORCED) && kind != VIGIL__PROOF_NONE) {
    if (kind == VIGIL__PROOF_MATCH) return VIGIL_OK;
  } else {
    vigil_conn *holder = vigil_hub_find_identity(c->hub, id, len);
    if (!holder || holder == c || !staying(holder)) return VIGIL_OK;
    int theirs = proof_of(holder, id, len);
    if (!(theirs & VIGIL__PROOF_ENFORCED) ||
        (theirs & VIGIL__PROOF_KIND) != VIGIL__PROOF_MATCH ||
        kind == VIGIL__PROOF_MATCH)
      return VIGIL_OK;
  }
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (x && !x->detail) x->detail = NOT_PROVEN;
  return VIGIL_EREJECTED;
}

/* ---- public API ---- */

int vigil_conn_identify(vigil_conn *c, const void *id, size_t len) {
  if (!c || !id || len == 0 || len > ID_MAX_LEN) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  /* A conn whose peer already said goodbye must not displace a live one. */
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c) ||
      c->state == VIGIL_CONN_CLOSE_WAIT || hub->free_requested)
    return VIGIL_ECLOSED;
  vigil__hub_enter(hub);
  uint64_t outer_claim = vigil__metrics_claim_begin(hub);
  /* Certificate proof (tls_ident.c) comes first: a claim that a TLS
   * identity contradicts closes the conn even if it already holds one. */
  int rc = proof_check(c, id, len);
  if (rc != VIGIL_OK)
    vigil__conn_close(c, VIGIL_REASON_TAKEOVER_REJECTED,
                      VIGIL__CLOSE_GRACEFUL);
  else if (c->ext && c->ext->identity)
    rc = VIGIL_EEXIST;
  else
    rc = claim(hub, c, id, len);
  vigil__metrics_claim_end(hub, outer_claim);
  vigil__hub_leave(hub);
  return rc;
}

const char *vigil_conn_identity(vigil_conn *c) {
  return c && c->ext ? c->ext->identity : NULL;
}

vigil_conn *vigil_hub_find_identity(vigil_hub *hub, const void *id,
                                    size_t len) {
  if (!hub || !id || len == 0 || !hub->identities) return NULL;
  id_index *idx = hub->identities;
  id_entry *e = find(idx, siphash24(idx->key, id, len), id, len);
  return e ? e->conn : NULL;
}

void vigil__identity_release(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  if (!c->ext || !c->ext->identity || !c->ext->epoch || !hub->identities)
    return;
  id_index *idx = hub->identities;
  id_entry *e = find(idx, siphash24(idx->key, c->ext->identity,
                                    c->ext->identity_len),
                     c->ext->identity, c->ext->identity_len);
  uint64_t epoch = c->ext->epoch;
  c->ext->epoch = 0;
  /* Epoch guard: a successor holds the entry now; leave it alone. */
  if (!e || e->conn != c || e->epoch != epoch) return;
  e->conn = NULL;
  e->epoch = 0;
  maybe_drop(idx, e, hub->now_ms);
}

void vigil__identity_hub_free(vigil_hub *hub) {
  id_index *idx = hub->identities;
  if (!idx) return;
  for (size_t i = 0; i <= idx->mask; i++) {
    id_entry *e = idx->buckets[i];
    while (e) {
      id_entry *next = e->next;
      free(e);
      e = next;
    }
  }
  free(idx->buckets);
  free(idx);
  hub->identities = NULL;
}
