/*
 * The identity index: one per hub, from identity bytes to the entry
 * naming the conn that holds the identity (see takeover.c for who may).
 *
 * One chained hash table. Keys come from the network, so the hash is
 * SipHash-2-4 with a per-hub random key: a peer cannot choose identities
 * that all land in one bucket. The table doubles when it holds more
 * entries than buckets, so lookups stay O(1) amortised.
 *
 * Epoch guard: every successful claim gets a fresh epoch, stored in the
 * entry and in the conn. A conn gives its identity back only if the entry
 * still names it with the same epoch, so a displaced or leaving conn whose
 * close completes later can never remove its successor's entry (the race
 * where an old session's late FIN tore down the new one).
 *
 * Bounded memory: an entry lives while a conn holds the identity or a ban
 * runs. Releases drop idle entries at once; entries whose ban ran out are
 * dropped when next looked up, or by a small sweep (two buckets per
 * lookup that creates).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "hub.h"
#include "identity.h"

#define INITIAL_BUCKETS 16u
#define SWEEP_BUCKETS 2u

typedef struct id_index {
  vigil__id_entry **buckets;
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

static vigil__id_entry *find(const id_index *idx, uint64_t h, const void *id,
                      size_t len) {
  for (vigil__id_entry *e = idx->buckets[h & idx->mask]; e; e = e->next)
    if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
      return e;
  return NULL;
}

/* Doubles the bucket array; on ENOMEM the table just stays denser. */
static void grow(id_index *idx) {
  size_t n = (idx->mask + 1) * 2;
  vigil__id_entry **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i <= idx->mask; i++) {
    vigil__id_entry *e = idx->buckets[i];
    while (e) {
      vigil__id_entry *next = e->next;
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
static vigil__id_entry *insert(id_index *idx, uint64_t h, const void *id,
                        size_t len) {
  vigil__id_entry *e = calloc(1, sizeof *e + len + 1);
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

static void unlink_free(id_index *idx, vigil__id_entry *e) {
  vigil__id_entry **pp = &idx->buckets[e->hash & idx->mask];
  while (*pp && *pp != e) pp = &(*pp)->next;
  if (*pp) *pp = e->next;
  idx->count--;
  free(e);
}

/* Ends a ban that ran out: the identity starts with a clean history. */
static void expire_ban(vigil__id_entry *e, uint64_t now) {
  if (!e->ban_until || e->ban_until > now) return;
  e->ban_until = 0;
  e->flapping = 0;
  memset(e->slices, 0, sizeof e->slices);
}

/* Frees e if nothing needs it any more: no holder, no running ban. */
static void maybe_drop(id_index *idx, vigil__id_entry *e, uint64_t now) {
  expire_ban(e, now);
  if (!e->conn && !e->ban_until && !e->pinned) unlink_free(idx, e);
}

/* Looks at a couple of buckets for entries whose ban ran out. */
static void sweep(id_index *idx, uint64_t now) {
  for (unsigned i = 0; i < SWEEP_BUCKETS; i++) {
    size_t b = idx->sweep_pos++ & idx->mask;
    vigil__id_entry *e = idx->buckets[b];
    while (e) {
      vigil__id_entry *next = e->next;
      maybe_drop(idx, e, now);
      e = next;
    }
  }
}


/* ---- the index's interface ---- */

vigil__id_entry *vigil__identity_entry(vigil_hub *hub, const void *id,
                                       size_t len, uint64_t now) {
  id_index *idx = index_get(hub);
  if (!idx) return NULL;
  sweep(idx, now);
  uint64_t h = siphash24(idx->key, id, len);
  vigil__id_entry *e = find(idx, h, id, len);
  if (e) {
    expire_ban(e, now);
    return e;
  }
  return insert(idx, h, id, len);
}

void vigil__identity_install(vigil_hub *hub, vigil__id_entry *e,
                             vigil_conn *c) {
  id_index *idx = hub->identities;
  e->conn = c;
  e->epoch = idx->next_epoch++;
  c->ext->epoch = e->epoch;
}

void vigil__identity_drop_idle(vigil_hub *hub, vigil__id_entry *e,
                               uint64_t now) {
  maybe_drop(hub->identities, e, now);
}

vigil_conn *vigil__identity_holder(vigil_hub *hub, const void *id,
                                   size_t len) {
  id_index *idx = hub->identities;
  if (!idx) return NULL;
  vigil__id_entry *e = find(idx, siphash24(idx->key, id, len), id, len);
  return e ? e->conn : NULL;
}

void vigil__identity_release(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  if (!c->ext || !c->ext->identity || !c->ext->epoch || !hub->identities)
    return;
  id_index *idx = hub->identities;
  vigil__id_entry *e = find(idx, siphash24(idx->key, c->ext->identity,
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
    vigil__id_entry *e = idx->buckets[i];
    while (e) {
      vigil__id_entry *next = e->next;
      free(e);
      e = next;
    }
  }
  free(idx->buckets);
  free(idx);
  hub->identities = NULL;
}
