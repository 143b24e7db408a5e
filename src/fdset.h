/*
 * A set of fds that any thread adds to and removes from without a lock
 * (internal; fdset.c): a group's record of which fds are its workers'
 * conns, so that a census on any thread counts every worker's conns as
 * vigil's, not as leaked. A conn's fd is added at adoption and removed
 * before close(), so a number the kernel hands out again is never taken
 * for a conn; the census maps fds to socket inodes with the /proc/self/fd
 * scan it makes anyway, so the set costs no system call per conn.
 *
 * One bit per fd, in chunks of 65536 fds allocated on first use (an fd
 * table grows as the process opens files); the chunk table covers the
 * hard RLIMIT_NOFILE at creation. An fd past it, or one whose chunk
 * could not be allocated, is not recorded: a census may then count its
 * socket as leaked, never the other way round.
 */
#ifndef VIGIL_FDSET_H
#define VIGIL_FDSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct vigil__fdset {
  uint64_t **chunks; /* [atomic] chunk i: fds i * 65536 .. + 65535 */
  size_t nchunks;    /* [const] */
} vigil__fdset;

/* VIGIL_OK or VIGIL_ENOMEM. */
int vigil__fdset_init(vigil__fdset *s);
void vigil__fdset_destroy(vigil__fdset *s);
void vigil__fdset_add(vigil__fdset *s, int fd);
void vigil__fdset_del(vigil__fdset *s, int fd);
int vigil__fdset_has(const vigil__fdset *s, int fd);
/* Calls fn(fd, arg) for each fd in the set (a snapshot word by word:
 * fds added or removed meanwhile may or may not be seen); returns how
 * many. */
size_t vigil__fdset_each(const vigil__fdset *s, void (*fn)(int fd, void *arg),
                         void *arg);

#endif
