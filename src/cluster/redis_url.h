/*
 * Where the identity directory's store is: a Redis URL (internal).
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/absolute/path/to/socket[?db=N]
 *
 * host is a name, a dotted IPv4 address or a bracketed IPv6 address
 * ([::1]); port defaults to 6379 and db to 0. user and password may be
 * percent-encoded (%40 for '@', %3A for ':'); a password alone is sent as
 * AUTH password, user and password as AUTH user password (Redis 6 ACL).
 * Userinfo without a ':' is refused rather than guessed at. TLS
 * (rediss://) is not supported.
 *
 * Pure: no I/O, no name resolution (the directory resolves host at each
 * connection attempt).
 */
#ifndef VIGIL_REDIS_URL_H
#define VIGIL_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

#define VIGIL__REDIS_HOST_MAX 255
#define VIGIL__REDIS_PATH_MAX 107 /* sizeof(sun_path) - 1 */
#define VIGIL__REDIS_USER_MAX 128
#define VIGIL__REDIS_PASSWORD_MAX 256
#define VIGIL__REDIS_DB_MAX 2147483647u
#define VIGIL__REDIS_DEFAULT_PORT 6379

typedef struct vigil__redis_url {
  int is_unix;                             /* unix:// */
  char host[VIGIL__REDIS_HOST_MAX + 1];    /* redis://: without brackets */
  uint16_t port;                           /* redis:// */
  char path[VIGIL__REDIS_PATH_MAX + 1];    /* unix:// */
  char user[VIGIL__REDIS_USER_MAX + 1];    /* "" = default user */
  char password[VIGIL__REDIS_PASSWORD_MAX + 1];
  int has_password;                        /* send AUTH */
  uint32_t db;                             /* SELECT when not 0 */
} vigil__redis_url;

/* Parses url into *out. Returns 0, or VIGIL_EINVAL with a message naming
 * the part at fault and what it may be written into err (always
 * NUL-terminated when errlen > 0). */
int vigil__redis_url_parse(const char *url, vigil__redis_url *out, char *err,
                           size_t errlen);

/* The URL without its credentials, for logs and state reasons:
 * "redis://127.0.0.1:6379/2", "unix:///run/redis.sock?db=2". */
void vigil__redis_url_describe(const vigil__redis_url *u, char *buf,
                               size_t len);

#endif
