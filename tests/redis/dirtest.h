/*
 * Shared by the Redis directory's integration tests (tests/redis/): a
 * recording "node" around one directory instance, a synchronous hiredis
 * connection for the test's own look at the store, and a fake store (a
 * listener on the test's loop that answers the directory's commands as a
 * script says, garbage included).
 */
#ifndef VIGIL_DIRTEST_H
#define VIGIL_DIRTEST_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "cluster/redis_dir.h"
#include "redisfix.h"
#include "testutil.h"

#define TN_MAX_RESULTS 2048
#define TN_MAX_EVICTIONS 64

typedef struct tn_result {
  vigil__dir_status status;
  char identity[64];
  uint64_t conn_id;
  uint64_t epoch;
  vigil__dir_owner other;
  char detail[200];
  uint64_t at_ms;
} tn_result;

typedef struct tn_eviction {
  vigil__dir_eviction ev; /* identity points at identity below */
  char identity[64];
  uint64_t at_ms;
} tn_eviction;

/* One directory instance and everything it reported. */
typedef struct tnode {
  struct ev_loop *loop;
  vigil__redis_dir *d;
  int ups, downs;
  char reason[400]; /* the last on_state reason */
  int nresults;
  tn_result results[TN_MAX_RESULTS];
  int nevictions;
  tn_eviction evictions[TN_MAX_EVICTIONS];
  /* Test hooks, run from the callbacks. */
  void (*on_state_hook)(struct tnode *n, int up);
  void (*on_result_hook)(struct tnode *n, const vigil__dir_result *r);
  void (*on_evict_hook)(struct tnode *n, const vigil__dir_eviction *ev);
  void *hook_data;
} tnode;

/* A config with test defaults: 2 s command timeout (4 s + slack under
 * valgrind), ttl 3 x that, fast backoff (20 ms .. 200 ms). */
void tn_config(vigil__redis_dir_config *c, const char *url, const char *node,
               uint32_t worker);

/* Creates the directory on loop; asserts success. */
void tn_start(tnode *n, struct ev_loop *loop, const vigil__redis_dir_config *c);
/* Runs the loop until n is UP (asserts it within 10 s). */
void tn_wait_up(tnode *n);
/* Frees the directory (NULL-safe). */
void tn_stop(tnode *n);

/* The result callback: records into the tnode passed as user. */
void tn_on_result(vigil__redis_dir *d, const vigil__dir_result *r, void *user);

/* Claims and runs the loop until the result arrives; returns it. */
const tn_result *tn_claim(tnode *n, const char *identity, uint64_t conn_id,
                          int proven);
/* Runs the loop until n has `count` results (asserts within ms). */
void tn_wait_results(tnode *n, int count, uint32_t ms);
/* Runs the loop until n has `count` evictions; returns 1 or 0. */
int tn_wait_evictions(tnode *n, int count, uint32_t ms);
/* Runs the loop until n->downs >= count; returns 1 or 0. */
int tn_wait_downs(tnode *n, int count, uint32_t ms);
int tn_wait_ups(tnode *n, int count, uint32_t ms);

/* The test's own connection to the store; asserts. */
redisContext *tn_sync(const vt_redis *r);
/* Runs a command on it; asserts a reply (not an error unless allowed). */
redisReply *tn_cmd(redisContext *c, const char *fmt, ...);

/* ---- fake store ---------------------------------------------------------- */

#define FS_MAX_CONNS 16

typedef struct fakestore fakestore;

/* Answers one command (argv as received) by appending bytes to out with
 * fs_reply(); returns 0, or -1 to close the connection. The default answers
 * the directory's handshake like Redis does and EVALSHA with a nil. */
typedef int (*fs_answer_fn)(fakestore *fs, int conn, int argc, char **argv,
                            size_t *lens, void *data);

struct fakestore {
  struct ev_loop *loop;
  int lfd;
  uint16_t port;
  char url[64];
  ev_io accept_io;
  int silent;         /* accept and read, never answer */
  fs_answer_fn answer; /* NULL = fs_default_answer */
  void *data;
  int nconns;
  struct {
    int fd;
    ev_io io;
    void *reader;
    int is_sub; /* sent SUBSCRIBE */
    char channel[160];
  } conns[FS_MAX_CONNS];
  int accepted;
  int commands; /* commands received, all connections */
  char last_cmd[32];
  char set_value[64]; /* SET .. GET answers the previous value, like Redis */
  int has_value;
};

/* Listens on 127.0.0.1, ephemeral port; asserts. */
void fs_start(fakestore *fs, struct ev_loop *loop);
void fs_stop(fakestore *fs);
/* Queues raw bytes to connection conn. */
void fs_write(fakestore *fs, int conn, const void *bytes, size_t len);
void fs_writes(fakestore *fs, int conn, const char *s);
/* The handshake answers of a well-behaved Redis; -1 if argv is not a
 * handshake command. */
int fs_default_answer(fakestore *fs, int conn, int argc, char **argv,
                      size_t *lens, void *data);
/* The connection that subscribed, or -1. */
int fs_sub_conn(const fakestore *fs);
/* Closes connection conn (the store hangs up). */
void fs_close(fakestore *fs, int conn);

#endif
