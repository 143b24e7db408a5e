/*
 * Hierarchical timing wheel (see wheel.h for the contract).
 *
 * Layout. Level L has 64 slots; a slot of level L covers 64^L ticks. A node
 * whose tick is `delta` = expires_tick - current_tick ahead is filed at the
 * level L with 64^L <= delta < 64^(L+1) (level 0 for delta < 64), in slot
 * (expires_tick >> 6L) & 63. When current_tick reaches the start of that
 * 64^L block, the slot "cascades": its nodes are filed again, relative to
 * the new current_tick, at lower levels. A node is therefore touched at most
 * once per level on its way down, and a level-0 slot only ever holds nodes
 * of exactly one tick.
 *
 * Invariants (outside advance()):
 *  - every tick < current_tick has been processed;
 *  - level-0 slot (current_tick & 63) holds the nodes that are due now: their
 *    tick is current_tick, or earlier (armed in the past, or left over when
 *    a budget ran out); they fire on the next advance();
 *  - any other level-0 slot s holds nodes of the one tick in
 *    (current_tick, current_tick + 63] that is congruent to s;
 *  - a level-L slot (L >= 1) cascades at the first 64^L block start strictly
 *    after current_tick whose digit L equals the slot index; every node in
 *    it has expires_tick at or after that block start.
 * Those two "event times" (a level-0 tick, a cascade) are the only moments
 * the wheel has work, which is what advance() jumps between and what
 * next_ms() reports.
 *
 * Lists. Slot lists are NULL-terminated and doubly linked. The head node's
 * prev points at its slot (stored as a node pointer, never dereferenced as
 * one); unlink recognises it by address, so remove() needs no search and
 * the node needs no extra field. linked <=> prev != NULL.
 *
 * Firing. advance() puts a marker node at the front of the slot being
 * fired and fires whatever follows the marker, one node at a time. Nodes a
 * callback arms for the current tick (or the past) are pushed in front of
 * the marker, so they wait for the next advance() instead of looping
 * forever; nodes it arms for a later tick <= now fire in this advance() when
 * that tick is processed; nodes it removes simply leave the list. When the
 * budget runs out the marker is unlinked and the rest stays in the slot.
 * When advance() moves on to a later tick, nodes still in the due slot were
 * armed by callbacks for "now"; they ride along on a held chain and are put
 * back in the due slot of the final tick, so they fire on the next
 * advance() as promised (and a callback that re-arms its node for "now"
 * cannot make one advance() loop). Due nodes fire earliest tick first;
 * within a tick, the most recently armed first. Callbacks must not call
 * advance() on the same wheel, and next_ms() is only exact once advance()
 * has returned (held nodes are invisible to it until then).
 *
 * Cost. insert/remove touch the node and its neighbours. A node's line is
 * read once per cascade on its way down and once when it fires: with
 * deadlines 30-60 s out at a 10 ms tick that is 2-3 list walks per expiry,
 * each a dependent cache miss once the nodes no longer fit in cache (see
 * bench/bench_timers.c).
 */
#include "wheel.h"

#include <string.h>

#define LEVEL_MASK ((uint64_t)VIGIL__WHEEL_SLOTS - 1)
/* Largest distance (in ticks) a node can be filed ahead of current_tick. */
#define SPAN_TICKS ((uint64_t)1 << (VIGIL__WHEEL_BITS * VIGIL__WHEEL_LEVELS))

/* Slot that n->prev designates when n heads a slot list, else NULL. */
static vigil__wheel_list *head_slot(vigil__wheel *w,
                                    const vigil__wheel_node *prev) {
  uintptr_t base = (uintptr_t)&w->slots[0][0];
  uintptr_t off = (uintptr_t)prev - base;
  if (off >= sizeof w->slots)
    return NULL;
  size_t idx = off / sizeof(vigil__wheel_list);
  return &w->slots[idx / VIGIL__WHEEL_SLOTS][idx % VIGIL__WHEEL_SLOTS];
}

static void push_front(vigil__wheel_list *slot, vigil__wheel_node *n) {
  n->prev = (vigil__wheel_node *)(void *)slot;
  n->next = slot->head;
  if (slot->head)
    slot->head->prev = n;
  slot->head = n;
}

/* Unlinks a linked node (or the firing marker); leaves it unlinked. */
static void unlink_node(vigil__wheel *w, vigil__wheel_node *n) {
  vigil__wheel_list *slot = head_slot(w, n->prev);
  if (slot)
    slot->head = n->next;
  else
    n->prev->next = n->next;
  if (n->next)
    n->next->prev = n->prev;
  n->next = NULL;
  n->prev = NULL;
}

/* Level for a distance in ticks: floor(log2(delta) / 6), 0 for delta < 64. */
static unsigned level_for(uint64_t delta) {
  if (delta < VIGIL__WHEEL_SLOTS)
    return 0;
  unsigned msb = 63u - (unsigned)__builtin_clzll(delta);
  return msb / VIGIL__WHEEL_BITS;
}

/* Files an unlinked node by its expires_tick, relative to current_tick;
 * ticks in the past are filed as due now, ticks beyond the span at its end. */
static void file_node(vigil__wheel *w, vigil__wheel_node *n) {
  uint64_t cur = w->current_tick;
  if (n->expires_tick < cur)
    n->expires_tick = cur;
  else if (n->expires_tick - cur >= SPAN_TICKS)
    n->expires_tick = cur + SPAN_TICKS - 1;
  unsigned level = level_for(n->expires_tick - cur);
  uint64_t slot = (n->expires_tick >> (level * VIGIL__WHEEL_BITS)) & LEVEL_MASK;
  push_front(&w->slots[level][slot], n);
}

/* Smallest event tick (level-0 tick or cascade) after current_tick that is
 * <= limit, or UINT64_MAX if there is none. At most levels*64 slot reads. */
static uint64_t next_event(const vigil__wheel *w, uint64_t limit) {
  uint64_t cur = w->current_tick;
  uint64_t best = UINT64_MAX;
  for (uint64_t k = 1; k < VIGIL__WHEEL_SLOTS; k++) {
    uint64_t t = cur + k;
    if (t > limit)
      break; /* a cascade may still fall on a block start <= limit */
    if (w->slots[0][t & LEVEL_MASK].head) {
      best = t;
      break;
    }
  }
  for (unsigned level = 1; level < VIGIL__WHEEL_LEVELS; level++) {
    unsigned shift = level * VIGIL__WHEEL_BITS;
    uint64_t block = cur >> shift;
    /* Cascades of this and higher levels start at the next block here. */
    uint64_t first = (block + 1) << shift;
    if (first >= best || first > limit)
      break;
    for (uint64_t k = 1; k <= VIGIL__WHEEL_SLOTS; k++) {
      uint64_t b = block + k;
      if (w->slots[level][b & LEVEL_MASK].head) {
        uint64_t t = b << shift;
        if (t < best)
          best = t;
        break;
      }
    }
  }
  return best <= limit ? best : UINT64_MAX;
}

/* Re-files the nodes of every slot that cascades at tick t (== current). */
static void cascade(vigil__wheel *w, uint64_t t) {
  for (unsigned level = VIGIL__WHEEL_LEVELS - 1; level >= 1; level--) {
    unsigned shift = level * VIGIL__WHEEL_BITS;
    if (t & (((uint64_t)1 << shift) - 1))
      continue;
    vigil__wheel_list *slot = &w->slots[level][(t >> shift) & LEVEL_MASK];
    vigil__wheel_node *n = slot->head;
    slot->head = NULL;
    while (n) {
      vigil__wheel_node *next = n->next;
      file_node(w, n); /* lands at a lower level: never back in `slot` */
      n = next;
    }
  }
}

/* Fires up to `budget` nodes of the due slot; returns how many fired. */
static size_t fire_due(vigil__wheel *w, size_t budget,
                       vigil__wheel_fire_fn fire, void *ctx) {
  vigil__wheel_list *slot = &w->slots[0][w->current_tick & LEVEL_MASK];
  if (!slot->head || budget == 0)
    return 0;
  vigil__wheel_node marker;
  push_front(slot, &marker);
  size_t fired = 0;
  vigil__wheel_node *n;
  while (fired < budget && (n = marker.next) != NULL) {
    unlink_node(w, n);
    w->count--;
    fired++;
    fire(n, ctx);
  }
  unlink_node(w, &marker);
  return fired;
}

void vigil__wheel_init(vigil__wheel *w, uint32_t tick_ms, uint64_t now_ms) {
  memset(w, 0, sizeof *w);
  w->tick_ms = tick_ms ? tick_ms : 1;
  w->current_tick = now_ms / w->tick_ms;
}

void vigil__wheel_node_init(vigil__wheel_node *n) {
  n->next = NULL;
  n->prev = NULL;
  n->expires_tick = 0;
}

int vigil__wheel_linked(const vigil__wheel_node *n) { return n->prev != NULL; }

void vigil__wheel_insert(vigil__wheel *w, vigil__wheel_node *n,
                         uint64_t when_ms) {
  if (n->prev)
    unlink_node(w, n);
  else
    w->count++;
  /* Round up: the node must not fire before when_ms. */
  n->expires_tick = when_ms / w->tick_ms + (when_ms % w->tick_ms != 0);
  file_node(w, n);
}

void vigil__wheel_remove(vigil__wheel *w, vigil__wheel_node *n) {
  if (!n->prev)
    return;
  unlink_node(w, n);
  w->count--;
}

/* Moves the nodes left in the due slot (armed by callbacks for a tick that
 * is being or has been processed) onto the `held` chain, so they stay due
 * while current_tick moves on. The chain is linked through real nodes, so
 * remove() and insert() work on held nodes as on any other. */
static void hold_due(vigil__wheel *w, vigil__wheel_node *held) {
  vigil__wheel_list *slot = &w->slots[0][w->current_tick & LEVEL_MASK];
  vigil__wheel_node *n;
  while ((n = slot->head) != NULL) {
    unlink_node(w, n);
    n->prev = held;
    n->next = held->next;
    if (held->next)
      held->next->prev = n;
    held->next = n;
  }
}

/* Files the held chain into the due slot of the final current_tick. */
static void release_held(vigil__wheel *w, vigil__wheel_node *held) {
  vigil__wheel_list *slot = &w->slots[0][w->current_tick & LEVEL_MASK];
  vigil__wheel_node *n;
  while ((n = held->next) != NULL) {
    unlink_node(w, n);
    n->expires_tick = w->current_tick;
    push_front(slot, n);
  }
}

size_t vigil__wheel_advance(vigil__wheel *w, uint64_t now_ms, size_t max,
                            vigil__wheel_fire_fn fire, void *ctx) {
  uint64_t now_tick = now_ms / w->tick_ms;
  size_t budget = max ? max : SIZE_MAX;
  size_t fired = 0;
  vigil__wheel_node held = {NULL, NULL, 0};
  for (;;) {
    fired += fire_due(w, budget - fired, fire, ctx);
    if (fired == budget || w->current_tick >= now_tick)
      break;
    /* the next tick with work, or now_tick if there is none up to it */
    uint64_t t = w->count ? next_event(w, now_tick) : UINT64_MAX;
    hold_due(w, &held);
    if (t == UINT64_MAX) {
      w->current_tick = now_tick;
      break;
    }
    w->current_tick = t;
    cascade(w, t);
  }
  release_held(w, &held);
  return fired;
}

uint64_t vigil__wheel_next_ms(const vigil__wheel *w) {
  if (w->count == 0)
    return UINT64_MAX;
  uint64_t t = w->current_tick;
  if (!w->slots[0][t & LEVEL_MASK].head)
    t = next_event(w, UINT64_MAX);
  if (t == UINT64_MAX || t > UINT64_MAX / w->tick_ms)
    return UINT64_MAX - 1; /* unreachable in practice; still "not empty" */
  return t * w->tick_ms;
}

size_t vigil__wheel_count(const vigil__wheel *w) { return w->count; }
