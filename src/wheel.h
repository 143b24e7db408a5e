/*
 * Hierarchical timing wheel for connection deadlines (internal).
 *
 * Why a wheel: a server holds tens of thousands of connections, each with a
 * handful of deadlines (heartbeat, idle, handshake, drain...). vigil keeps
 * ONE wheel node per connection, armed at the connection's earliest
 * deadline. Activity on a connection only stores a timestamp; the node is
 * not touched. When the node fires, the owner recomputes the real deadlines
 * from the timestamps and re-arms (libev manual, "Be smart about timeouts",
 * strategy 4). So a packet costs a store, and a tick costs work only for
 * the nodes that expire.
 *
 * Contract:
 *  - Time is integer milliseconds on a monotonic clock, passed in as `now`.
 *    The wheel never reads a clock (pure; unit tests drive it).
 *  - A node armed for `when_ms` fires in the first vigil__wheel_advance()
 *    whose now_ms >= B, where B = the first multiple of tick_ms that is
 *    >= when_ms. So it never fires early, and fires within one tick of
 *    when_ms provided advance() is called at vigil__wheel_next_ms().
 *  - when_ms in the past fires on the next advance().
 *  - insert() on a linked node re-arms it (remove + insert). remove() on an
 *    unlinked node is a no-op. Both O(1).
 *  - advance() may be given a budget `max`; it stops after firing that many
 *    nodes, leaving the rest due (vigil__wheel_next_ms() then returns a time
 *    <= now). Callbacks may insert or remove any node, including the one
 *    being fired and nodes due in the same advance.
 *  - Deadlines beyond the wheel's span are clamped to its end; the node
 *    fires early there and the owner simply re-arms (it always recomputes).
 */
#ifndef VIGIL_WHEEL_H
#define VIGIL_WHEEL_H

#include <stddef.h>
#include <stdint.h>

#define VIGIL__WHEEL_BITS 6                       /* 64 slots per level */
#define VIGIL__WHEEL_SLOTS (1u << VIGIL__WHEEL_BITS)
#define VIGIL__WHEEL_LEVELS 5                     /* 2^30 ticks of span */

typedef struct vigil__wheel_node {
  struct vigil__wheel_node *next;
  struct vigil__wheel_node *prev;
  uint64_t expires_tick; /* absolute tick at which it fires */
} vigil__wheel_node;

typedef struct vigil__wheel_list {
  vigil__wheel_node *head;
} vigil__wheel_list;

typedef struct vigil__wheel {
  uint32_t tick_ms;
  uint64_t current_tick;  /* every tick < current_tick has been processed */
  size_t count;           /* linked nodes */
  vigil__wheel_list slots[VIGIL__WHEEL_LEVELS][VIGIL__WHEEL_SLOTS];
} vigil__wheel;

typedef void (*vigil__wheel_fire_fn)(vigil__wheel_node *node, void *ctx);

void vigil__wheel_init(vigil__wheel *w, uint32_t tick_ms, uint64_t now_ms);
void vigil__wheel_node_init(vigil__wheel_node *n);
int vigil__wheel_linked(const vigil__wheel_node *n);
void vigil__wheel_insert(vigil__wheel *w, vigil__wheel_node *n,
                         uint64_t when_ms);
void vigil__wheel_remove(vigil__wheel *w, vigil__wheel_node *n);
/* Fires due nodes; returns how many fired (<= max; max 0 = no limit). */
size_t vigil__wheel_advance(vigil__wheel *w, uint64_t now_ms, size_t max,
                            vigil__wheel_fire_fn fire, void *ctx);
/* Earliest time at which advance() may have work: a lower bound that is
 * never later than the true next expiry (UINT64_MAX when empty). */
uint64_t vigil__wheel_next_ms(const vigil__wheel *w);
size_t vigil__wheel_count(const vigil__wheel *w);

#endif
