/* Subscription registry; see mqtt_subs.h. */
#include "mqtt_subs.h"

#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"

/* One filter and the subscribers holding it. */
typedef struct entry {
  struct entry *next; /* hash chain, or the wildcard list */
  uint8_t *filter;
  size_t len;
  void **who;
  size_t n, cap;
} entry;

struct mqtt_subs {
  entry **buckets; /* exact filters; power-of-two count */
  size_t nbuckets;
  size_t nexact;
  entry *wild;     /* filters with wildcards */
  size_t nwild;
  size_t pairs;
};

/* FNV-1a: short topic strings, no adversarial-collision concern beyond
 * what a demo gateway needs. */
static size_t hash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return (size_t)h;
}

mqtt_subs *mqtt_subs_new(void) {
  mqtt_subs *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->nbuckets = 64;
  s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
  if (!s->buckets) {
    free(s);
    return NULL;
  }
  return s;
}

static void entry_free(entry *e) {
  free(e->filter);
  free(e->who);
  free(e);
}

void mqtt_subs_free(mqtt_subs *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nbuckets; i++) {
    while (s->buckets[i]) {
      entry *e = s->buckets[i];
      s->buckets[i] = e->next;
      entry_free(e);
    }
  }
  while (s->wild) {
    entry *e = s->wild;
    s->wild = e->next;
    entry_free(e);
  }
  free(s->buckets);
  free(s);
}

/* The list head an entry for this filter belongs to. */
static entry **head_for(mqtt_subs *s, const uint8_t *f, size_t len) {
  if (mqtt_topic_has_wildcard(f, len)) return &s->wild;
  return &s->buckets[hash(f, len) & (s->nbuckets - 1)];
}

/* The link pointing at the entry for filter f, or at the list's end. */
static entry **find(entry **head, const uint8_t *f, size_t len) {
  entry **pp = head;
  while (*pp && ((*pp)->len != len || memcmp((*pp)->filter, f, len) != 0))
    pp = &(*pp)->next;
  return pp;
}

/* Doubles the hash table when exact filters outnumber buckets. */
static void maybe_grow(mqtt_subs *s) {
  if (s->nexact <= s->nbuckets) return;
  size_t n = s->nbuckets * 2;
  entry **b = calloc(n, sizeof *b);
  if (!b) return; /* chains just get longer */
  for (size_t i = 0; i < s->nbuckets; i++) {
    while (s->buckets[i]) {
      entry *e = s->buckets[i];
      s->buckets[i] = e->next;
      size_t k = hash(e->filter, e->len) & (n - 1);
      e->next = b[k];
      b[k] = e;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
}

int mqtt_subs_add(mqtt_subs *s, const uint8_t *f, size_t len, void *who) {
  entry **pp = find(head_for(s, f, len), f, len);
  entry *e = *pp;
  if (!e) {
    e = calloc(1, sizeof *e);
    if (!e) return -1;
    e->filter = malloc(len ? len : 1);
    if (!e->filter) {
      free(e);
      return -1;
    }
    memcpy(e->filter, f, len);
    e->len = len;
    *pp = e; /* appended at the chain's end */
    if (mqtt_topic_has_wildcard(f, len))
      s->nwild++;
    else
      s->nexact++;
  }
  for (size_t i = 0; i < e->n; i++)
    if (e->who[i] == who) return 0;
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 4;
    void **w = realloc(e->who, cap * sizeof *w);
    if (!w) return -1; /* an empty new entry is harmless */
    e->who = w;
    e->cap = cap;
  }
  e->who[e->n++] = who;
  s->pairs++;
  maybe_grow(s);
  return 1;
}

int mqtt_subs_remove(mqtt_subs *s, const uint8_t *f, size_t len, void *who) {
  entry **pp = find(head_for(s, f, len), f, len);
  entry *e = *pp;
  if (!e) return 0;
  for (size_t i = 0; i < e->n; i++) {
    if (e->who[i] != who) continue;
    e->who[i] = e->who[--e->n]; /* order does not matter */
    s->pairs--;
    if (e->n == 0) {
      *pp = e->next;
      if (mqtt_topic_has_wildcard(f, len))
        s->nwild--;
      else
        s->nexact--;
      entry_free(e);
    }
    return 1;
  }
  return 0;
}

size_t mqtt_subs_match(const mqtt_subs *s, const uint8_t *t, size_t len,
                       mqtt_subs_cb cb, void *ud) {
  size_t hits = 0;
  entry *e = *find(&s->buckets[hash(t, len) & (s->nbuckets - 1)], t, len);
  if (e) {
    for (size_t i = 0; i < e->n; i++) cb(e->who[i], ud);
    hits += e->n;
  }
  for (e = s->wild; e; e = e->next) {
    if (!mqtt_topic_match(e->filter, e->len, t, len)) continue;
    for (size_t i = 0; i < e->n; i++) cb(e->who[i], ud);
    hits += e->n;
  }
  return hits;
}

size_t mqtt_subs_filters(const mqtt_subs *s) { return s->nexact + s->nwild; }
size_t mqtt_subs_pairs(const mqtt_subs *s) { return s->pairs; }
