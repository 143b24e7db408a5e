/*
 * The in-process identity directory (directory.h): one chained hash table
 * from identity bytes to a record naming the holder and keeping the
 * takeover rules' memory. A hub alone has a private one; the hubs of a
 * group share one under a mutex.
 *
 * Keys come from the network, so the hash is SipHash-2-4 with a random
 * key per directory: a peer cannot choose identities that all land in one
 * bucket. The table doubles when it holds more records than buckets, so
 * every operation is O(1) amortised.
 *
 * Bounded memory: a record lives while a conn holds the identity or a ban
 * runs. A release drops an idle record at once; records whose ban ran out
 * are dropped when next looked up, or by a small sweep (two buckets per
 * claim).
 *
 * Lock: `shared` directories take their mutex around every operation;
 * nothing inside calls out except the judge, which is pure.
 */
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "directory.h"

#define INITIAL_BUCKETS 16u
#define SWEEP_BUCKETS 2u

typedef struct record record;
struct record {
  record *next;
  uint64_t hash;
  vigil__holder *holder; /* NULL = none (a ban only) */
  vigil__id_rules rules;
  size_t len;
  char id[]; /* len bytes + NUL */
};

typedef struct local_dir {
  vigil__dir base;
  int shared;
  pthread_mutex_t lock;
  record **buckets;
  size_t mask; /* bucket count - 1 (a power of two) */
  size_t count;
  size_t sweep_pos;
  uint64_t next_epoch;
  uint64_t key[2]; /* SipHash key */
} local_dir;

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

/* ---- the table ---- */

static void lock(local_dir *d) {
  if (d->shared) pthread_mutex_lock(&d->lock);
}

static void unlock(local_dir *d) {
  if (d->shared) pthread_mutex_unlock(&d->lock);
}

static record *find(const local_dir *d, uint64_t h, const void *id,
                    size_t len) {
  for (record *r = d->buckets[h & d->mask]; r; r = r->next)
    if (r->hash == h && r->len == len && memcmp(r->id, id, len) == 0)
      return r;
  return NULL;
}

/* Doubles the bucket array; on ENOMEM the table just stays denser. */
static void grow(local_dir *d) {
  size_t n = (d->mask + 1) * 2;
  record **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i <= d->mask; i++) {
    record *r = d->buckets[i];
    while (r) {
      record *next = r->next;
      r->next = b[r->hash & (n - 1)];
      b[r->hash & (n - 1)] = r;
      r = next;
    }
  }
  free(d->buckets);
  d->buckets = b;
  d->mask = n - 1;
  d->sweep_pos = 0;
}

/* A new record without a holder; NULL on ENOMEM. */
static record *insert(local_dir *d, uint64_t h, const void *id, size_t len) {
  record *r = calloc(1, sizeof *r + len + 1);
  if (!r) return NULL;
  r->hash = h;
  r->len = len;
  memcpy(r->id, id, len);
  r->id[len] = '\0';
  size_t b = h & d->mask;
  r->next = d->buckets[b];
  d->buckets[b] = r;
  if (++d->count > d->mask + 1) grow(d);
  return r;
}

static void unlink_free(local_dir *d, record *r) {
  record **pp = &d->buckets[r->hash & d->mask];
  while (*pp && *pp != r) pp = &(*pp)->next;
  if (*pp) *pp = r->next;
  d->count--;
  free(r);
}

/* Ends a ban that ran out: the identity starts with a clean history. */
static void expire_ban(record *r, uint64_t now) {
  if (!r->rules.ban_until || r->rules.ban_until > now) return;
  memset(&r->rules, 0, sizeof r->rules);
}

/* Frees r if nothing needs it any more: no holder, no running ban. */
static void drop_if_idle(local_dir *d, record *r, uint64_t now) {
  expire_ban(r, now);
  if (!r->holder && !r->rules.ban_until) unlink_free(d, r);
}

/* Looks at a couple of buckets for records whose ban ran out. */
static void sweep(local_dir *d, uint64_t now) {
  for (unsigned i = 0; i < SWEEP_BUCKETS; i++) {
    size_t b = d->sweep_pos++ & d->mask;
    record *r = d->buckets[b];
    while (r) {
      record *next = r->next;
      drop_if_idle(d, r, now);
      r = next;
    }
  }
}

/* ---- the ops ---- */

static void install(local_dir *d, record *r, vigil__holder *mine) {
  if (r->holder) r->holder->entry = NULL;
  mine->epoch = d->next_epoch++;
  mine->entry = r;
  r->holder = mine;
}

static vigil__verdict local_claim(vigil__dir *base, const void *id,
                                  size_t len, uint64_t now,
                                  vigil__dir_judge judge, void *ctx,
                                  vigil__holder *mine,
                                  vigil__holder **other) {
  local_dir *d = (local_dir *)base;
  *other = NULL;
  lock(d);
  sweep(d, now);
  uint64_t h = siphash24(d->key, id, len);
  record *r = find(d, h, id, len);
  if (r)
    expire_ban(r, now);
  else if (!(r = insert(d, h, id, len))) {
    unlock(d);
    return VIGIL__V_NOMEM;
  }
  vigil__holder *holder = r->holder;
  vigil__verdict v = judge(ctx, &r->rules, holder, now);
  if ((v == VIGIL__V_EVICT || v == VIGIL__V_PAUSE) && holder) {
    vigil__holder_ref(holder);
    *other = holder;
  } else if (v == VIGIL__V_EVICT) {
    v = VIGIL__V_INSTALL; /* nobody to evict */
  }
  if (v == VIGIL__V_INSTALL || v == VIGIL__V_EVICT)
    install(d, r, mine);
  else
    drop_if_idle(d, r, now);
  unlock(d);
  return v;
}

static void local_update(vigil__dir *base, vigil__holder *h, int staying,
                         int proven) {
  local_dir *d = (local_dir *)base;
  lock(d);
  h->staying = (uint8_t)(staying != 0);
  h->proven = (uint8_t)(proven != 0);
  unlock(d);
}

static void local_release(vigil__dir *base, vigil__holder *h, uint64_t now) {
  local_dir *d = (local_dir *)base;
  lock(d);
  record *r = h->entry;
  /* A displaced holder's record belongs to its successor: leave it. */
  if (r && r->holder == h) {
    r->holder = NULL;
    h->entry = NULL;
    drop_if_idle(d, r, now);
  }
  unlock(d);
}

static vigil_conn *local_find(vigil__dir *base, const void *id, size_t len,
                              const vigil_hub *hub) {
  local_dir *d = (local_dir *)base;
  vigil_conn *c = NULL;
  lock(d);
  record *r = find(d, siphash24(d->key, id, len), id, len);
  /* The conn pointer is the owning hub's: only its own thread reads it. */
  if (r && r->holder && r->holder->hub == hub) c = r->holder->conn;
  unlock(d);
  return c;
}

static void local_note(vigil__dir *base, const void *id, size_t len,
                       uint64_t now, vigil__dir_note note, void *ctx) {
  local_dir *d = (local_dir *)base;
  lock(d);
  record *r = find(d, siphash24(d->key, id, len), id, len);
  if (r) note(ctx, &r->rules, now);
  unlock(d);
}

static void local_destroy(vigil__dir *base) {
  local_dir *d = (local_dir *)base;
  for (size_t i = 0; i <= d->mask; i++) {
    record *r = d->buckets[i];
    while (r) {
      record *next = r->next;
      if (r->holder) r->holder->entry = NULL;
      free(r);
      r = next;
    }
  }
  free(d->buckets);
  if (d->shared) pthread_mutex_destroy(&d->lock);
  free(d);
}

static const vigil__dir_ops local_ops = {
    local_claim, local_update, local_release, local_find, local_destroy,
    local_note,
};

vigil__dir *vigil__dir_local_new(int shared) {
  local_dir *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->buckets = calloc(INITIAL_BUCKETS, sizeof *d->buckets);
  if (!d->buckets || (shared && pthread_mutex_init(&d->lock, NULL) != 0)) {
    free(d->buckets);
    free(d);
    return NULL;
  }
  d->base.ops = &local_ops;
  d->shared = shared;
  d->mask = INITIAL_BUCKETS - 1;
  d->next_epoch = 1;
  seed_key(d->key);
  return &d->base;
}

size_t vigil__dir_local_count(vigil__dir *base) {
  local_dir *d = (local_dir *)base;
  lock(d);
  size_t n = d->count;
  unlock(d);
  return n;
}
