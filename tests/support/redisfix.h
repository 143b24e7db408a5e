/*
 * A real redis-server for tests: started on a free loopback port (and a
 * unix socket) with a private temp dir, no persistence (--save ''
 * --appendonly no), answered PING before the test goes on, and killed at
 * teardown. Killing and restarting on the same port simulates a store that
 * crashes and comes back empty. A test that needs it SKIPs (exit 77) when
 * redis-server is missing.
 *
 * Talks to redis-server with nothing but sockets and RESP (no hiredis), so
 * it builds with the rest of the test support whatever the configuration.
 */
#ifndef VIGIL_REDISFIX_H
#define VIGIL_REDISFIX_H

#include <stdint.h>
#include <sys/types.h>

typedef struct vt_redis {
  pid_t pid;          /* 0 while not running */
  uint16_t port;
  char dir[64];       /* private temp dir (log, unix socket) */
  char sock[128];     /* unix socket path */
  char url[96];       /* "redis://127.0.0.1:<port>" */
  char unix_url[160]; /* "unix://<sock>" */
  const char *extra[16]; /* extra redis-server arguments, NULL-ended */
} vt_redis;

/* Starts redis-server with extra arguments (NULL-ended; may be NULL, e.g.
 * {"--requirepass", "s3cret", NULL}); SKIPs the test if redis-server is
 * not installed. Returns 0 once it answers, -1 on failure. */
int vt_redis_start(vt_redis *r, const char *const *extra);

/* SIGKILL and reap (no-op when not running). */
void vt_redis_kill(vt_redis *r);

/* Starts it again on the same port and socket (empty: no persistence).
 * Returns 0 once it answers, -1 on failure. */
int vt_redis_restart(vt_redis *r);

/* Sends sig (SIGSTOP, SIGCONT...) to the server. */
int vt_redis_signal(vt_redis *r, int sig);

/* Kills the server and removes its temp dir. */
void vt_redis_stop(vt_redis *r);

/* 1 if redis-server can be found (PATH or VIGIL_REDIS_SERVER). */
int vt_redis_available(void);

#endif
