/*
 * One RESP connection to the directory's store on a libev loop (internal).
 *
 *   new() ---> CONNECTING --- writable, SO_ERROR 0 ---> OPEN
 *                  |                                      |
 *                  | refused, connect timeout             | EOF, I/O error, protocol
 *                  v                                      v error, command timeout
 *                CLOSED <------- close() / free() by the owner, any state
 *
 * Why not hiredis's async layer: in 0.14.1 (Debian 12) it aborts the
 * process on input a store can send. A reply with no command waiting for
 * it fails assert(REDIS_SUBSCRIBED || REDIS_MONITORING) in
 * redisProcessCallbacks, and in subscribed mode an array whose first
 * element is not a string fails an assert in __redisGetSubscribeCallback
 * (both seen abort here: Debian builds it with asserts on). It has no
 * timeouts, and its REDIS_IN_CALLBACK guard covers reply callbacks only:
 * redisAsyncFree() from onConnect or from onDisconnect frees the context
 * twice or under hiredis's feet (both crash here). This link keeps
 * hiredis for what it is good at, the
 * incremental RESP reader (bounded by redis_reply.h), and does the socket,
 * the pipelining, the timeouts and the lifetime itself.
 *
 * Commands: send() appends one command (RESP array of bulk strings) to the
 * output buffer in any state but CLOSED; bytes go out from the loop, never
 * from inside send(), so commands queued in one loop iteration leave in
 * one write (pipelining). Replies are matched to commands in order. Each
 * sent command is resolved exactly once through on_reply:
 *   VIGIL__LINK_REPLY    with its reply (valid during the callback only);
 *   VIGIL__LINK_TIMEOUT  no reply: the store stopped answering (below);
 *   VIGIL__LINK_CLOSED   no reply: the link closed before the answer.
 * A command's deadline is command_timeout_ms after it was queued, or after
 * the connection opened if it was queued while connecting. When the oldest
 * pending command passes its deadline the link closes, and every pending
 * command is resolved TIMEOUT (each was waiting on the silent store): a
 * later answer would come out of step with the commands behind it.
 *
 * Out-of-band replies (pub/sub messages): when is_push() says so, a reply
 * goes to on_push() and is not matched to a command. Any other reply with
 * no command pending is a protocol error that closes the link.
 *
 * on_closed(why) reports a close the link decided (not the owner's), after
 * every pending command was resolved.
 *
 * Re-entrancy: the owner may call close() or free() from inside any of the
 * callbacks; a free is carried out when the link's callback returns, and
 * after it the link calls nothing (remaining commands are still resolved,
 * during close()). The link never touches owner memory except through the
 * callbacks and the commands the owner queued.
 */
#ifndef VIGIL_REDIS_LINK_H
#define VIGIL_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

struct ev_loop;

typedef struct vigil__redis_link vigil__redis_link;

/* A command in flight; embed it in the owner's request. */
typedef struct vigil__redis_cmd {
  struct vigil__redis_cmd *next;
  uint64_t deadline_ms; /* 0 until the connection is open */
} vigil__redis_cmd;

enum {
  VIGIL__LINK_REPLY = 0,
  VIGIL__LINK_TIMEOUT = 1,
  VIGIL__LINK_CLOSED = 2,
};

typedef struct vigil__redis_link_options {
  struct ev_loop *loop;
  const struct sockaddr *addr; /* resolved address of the store */
  socklen_t addrlen;
  uint32_t connect_timeout_ms;
  uint32_t command_timeout_ms;
  size_t max_reply_string;  /* bytes in one string of a reply */
  size_t max_out_bytes;     /* queued output; send() refuses beyond */
  void (*on_reply)(vigil__redis_link *l, vigil__redis_cmd *cmd,
                   const redisReply *reply, int status, void *user);
  int (*is_push)(const redisReply *reply, void *user); /* may be NULL */
  void (*on_push)(vigil__redis_link *l, const redisReply *reply, void *user);
  void (*on_closed)(vigil__redis_link *l, const char *why, void *user);
  void *user;
} vigil__redis_link_options;

/* Monotonic ms (CLOCK_MONOTONIC) for every deadline here and in the
 * directory: ev_now() follows the wall clock, and a clock step would fire
 * or postpone every command's deadline at once. */
uint64_t vigil__redis_now_ms(void);

/* Starts connecting. Returns 0 with *out set, or a negative vigil_err with
 * the reason in why (no link, no callbacks). */
int vigil__redis_link_new(const vigil__redis_link_options *o,
                          vigil__redis_link **out, char *why, size_t whylen);

/* Bytes one command takes in the output buffer. */
size_t vigil__redis_cmd_bytes(int argc, const size_t *argvlen);

/* Makes room for `bytes` more output, so that sends of that many bytes in
 * all cannot fail until the loop runs. VIGIL_EOVERFLOW beyond
 * max_out_bytes, VIGIL_ENOMEM, VIGIL_ECLOSED. */
int vigil__redis_link_reserve(vigil__redis_link *l, size_t bytes);

/* Queues one command; cmd is resolved exactly once through on_reply,
 * never before send() returns. Errors as reserve (then cmd is not
 * queued and never resolved). */
int vigil__redis_link_send(vigil__redis_link *l, vigil__redis_cmd *cmd,
                           int argc, const char **argv,
                           const size_t *argvlen);

/* Closes the connection now and resolves every pending command with
 * VIGIL__LINK_CLOSED (callbacks run before this returns); `why` becomes
 * the link's reason. on_closed is not called. No effect on pending
 * commands already resolved; idempotent. */
void vigil__redis_link_close(vigil__redis_link *l, const char *why);

/* close() then releases the link (at once, or when the link's running
 * callback returns). NULL is fine. */
void vigil__redis_link_free(vigil__redis_link *l);

/* 1 once connected and until closed. */
int vigil__redis_link_is_open(const vigil__redis_link *l);
/* Why the link closed ("" while it is not closed). */
const char *vigil__redis_link_why(const vigil__redis_link *l);
/* Commands sent and not yet resolved. */
size_t vigil__redis_link_pending(const vigil__redis_link *l);

#endif
