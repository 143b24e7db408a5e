/*
 * System-call fault injection for tests (after s2n-tls's and SQLite's
 * fault hooks). Every test executable is linked with -Wl,--wrap for the
 * calls below, so calls made by vigil's static library and by the test go
 * through these wrappers. By default a wrapper only calls the real
 * function; a test arms a fault to make the next call(s) fail with an
 * errno, or installs a hook that replaces the call.
 *
 * Faults are per process and not thread-safe: arm them from the test's
 * main thread around the call under test, and disarm with sf_reset().
 */
#ifndef VIGIL_SYSFAULT_H
#define VIGIL_SYSFAULT_H

#include <sys/socket.h>
#include <sys/types.h>

typedef enum sf_call {
  SF_SOCKET,
  SF_SENDTO,
  SF_GETSOCKNAME,
  SF_SETSOCKOPT,
  SF__COUNT
} sf_call;

/* Makes calls number skip+1 .. skip+count of `call` (counting from now)
 * fail with err (count 0 = every call after skip). */
void sf_fail(sf_call call, int err, unsigned skip, unsigned count);
/* setsockopt only: fail only for this level/option (0, 0 = any). */
void sf_fail_setsockopt(int level, int name, int err);
/* Calls of `call` seen since the last sf_reset(). */
unsigned sf_calls(sf_call call);
/* Replaces socket(): return a value (fd or -1 with errno) or -2 to fall
 * through to the real call. */
typedef int (*sf_socket_hook)(int domain, int type, int protocol);
void sf_set_socket_hook(sf_socket_hook hook);
/* Replaces sendto(): same convention (-2 = real call). */
typedef ssize_t (*sf_sendto_hook)(int fd, const void *buf, size_t len,
                                  int flags, const struct sockaddr *to,
                                  socklen_t tolen);
void sf_set_sendto_hook(sf_sendto_hook hook);
/* Disarms every fault and hook and zeroes the counters. */
void sf_reset(void);

#endif
