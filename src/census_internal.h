/* Internal pieces of the socket census, split so the pure parts (netlink
 * parsing, decoding, filtering) can be unit-tested with crafted buffers. */
#ifndef VIGIL_CENSUS_INTERNAL_H
#define VIGIL_CENSUS_INTERNAL_H

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

/* Non-error results of vigil__census_parse(). */
#define VIGIL__CENSUS_MORE 0 /* buffer consumed; the answer continues */
#define VIGIL__CENSUS_DONE 1 /* NLMSG_DONE seen: the dump is complete */
#define VIGIL__CENSUS_ACK 2  /* NLMSG_ERROR with error 0 (request acked) */

/* Called for each inet_diag_msg record; a negative return stops parsing
 * and is returned by vigil__census_parse(). */
typedef int (*vigil__census_msg_fn)(const struct inet_diag_msg *m, void *ctx);

/*
 * Walks one recv() buffer of a sock_diag answer. Every length is checked
 * before use and records are copied out, so any byte string is safe.
 * Messages whose sequence number is not seq are skipped (stale answers).
 * Returns VIGIL__CENSUS_MORE / _DONE / _ACK, the callback's negative
 * value, VIGIL_EPROTO for a malformed buffer, or for a kernel error the
 * mapped vigil_err with the kernel's errno in *kerr (kerr may be NULL).
 */
int vigil__census_parse(const void *buf, size_t len, uint32_t seq,
                        vigil__census_msg_fn fn, void *ctx, int *kerr);

/* How long a census waits for each part of the kernel's answer: the
 * kernel builds a dump while it is read, so data is normally there at
 * once; the bound only matters for a kernel that stops answering. The
 * census command-line tool may wait long; a hub's census runs on its loop
 * and gives up quickly. */
#define VIGIL__CENSUS_WAIT_MS 10000u
#define VIGIL__CENSUS_LOOP_WAIT_MS 100u

/* Sends req (a complete netlink message; its seq and pid are set here) on
 * a fresh non-blocking NETLINK_SOCK_DIAG socket and parses the answers
 * with fn until the kernel finishes, waiting at most wait_ms for each
 * read. Returns VIGIL__CENSUS_DONE or _ACK, or a negative vigil_err
 * (VIGIL_EAGAIN when the kernel did not answer within wait_ms). */
int vigil__census_exchange(struct nlmsghdr *req, vigil__census_msg_fn fn,
                           void *ctx, uint32_t wait_ms);

/* vigil_census_run with a bound on each wait for the kernel. */
int vigil__census_run(const vigil_census_query *q, uint32_t wait_ms,
                      vigil_census **out);

/* Maps a positive errno from the kernel to a vigil_err (and sets errno
 * for VIGIL_ESYS). */
int vigil__census_map_errno(int err);
/* The same for a failed call, recorded for vigil_last_error() with the
 * call's name; errno is err. */
int vigil__census_sys(const char *call, int err);

/* Fills the kernel-derived fields of out from m (queue sizes, timer, ids)
 * but not the address strings. Leaves in_this_process/owner zero. */
void vigil__census_decode_fields(const struct inet_diag_msg *m,
                                 vigil_census_socket *out);
/* Fills s->local and s->peer from s->family and s->id. Formatting is most
 * of the user-space cost of a census, so only listed sockets get it. */
void vigil__census_format_text(vigil_census_socket *s);
/* decode_fields + format_text. */
void vigil__census_decode(const struct inet_diag_msg *m,
                          vigil_census_socket *out);

/* Kernel-side port filter for a dump: writes inet_diag bytecode matching
 * q's ports (local, or local or peer) into buf and returns its length, or
 * 0 when there is nothing to filter or it does not fit in cap. */
size_t vigil__census_port_bytecode(const vigil_census_query *q, void *buf,
                                   size_t cap);

/* "addr:port" for IPv4, "[addr]:port" for IPv6 into buf (cap >= 
 * VIGIL_CENSUS_ADDRSTRLEN). */
void vigil__census_format_addr(int family, const void *addr, uint16_t port,
                               char *buf, size_t cap);

/* Sorted set of socket inodes, for "is this socket ours" lookups. */
typedef struct vigil__inode_set {
  uint64_t *v;
  size_t n;
  size_t cap;
} vigil__inode_set;

int vigil__inode_set_add(vigil__inode_set *s, uint64_t inode);
void vigil__inode_set_sort(vigil__inode_set *s);
int vigil__inode_set_has(const vigil__inode_set *s, uint64_t inode);
void vigil__inode_set_free(vigil__inode_set *s);

/* Parses "socket:[12345]" (a /proc/.../fd link target) into *inode;
 * returns 1 on success, 0 for anything else. */
int vigil__census_link_inode(const char *link, size_t len, uint64_t *inode);

/* Adds the inode of every socket fd of this process to set. */
int vigil__census_self_inodes(vigil__inode_set *set);
/* Adds the inodes of this process's socket fds for which keep(fd, ctx)
 * says 1, and sorts the set. */
int vigil__census_fd_inodes(int (*keep)(int fd, void *ctx), void *ctx,
                            vigil__inode_set *set);

/* Fills owner_pid/owner_comm of the listed sockets in c by scanning
 * /proc/[pid]/fd; counts unreadable processes. */
int vigil__census_resolve_owners(vigil_census *c);

/*
 * The accumulator one dump feeds: applies the query's family and port
 * filter, counts, and appends listed sockets. Exposed so unit tests can
 * feed parsed buffers straight into it.
 */
typedef struct vigil__census_collector {
  const vigil_census_query *q;
  uint32_t states;              /* effective count mask */
  uint32_t list_states;         /* effective list mask */
  const vigil__inode_set *self; /* NULL = want_self off */
  vigil_census *out;
  size_t cap; /* allocated entries in out->sockets */
  uint32_t wait_ms; /* per wait for the kernel's answer */
} vigil__census_collector;

/* Checks q and prepares col to fill out (which must be zeroed). */
int vigil__census_collector_init(vigil__census_collector *col,
                                 const vigil_census_query *q,
                                 const vigil__inode_set *self,
                                 vigil_census *out);
/* vigil__census_msg_fn adding one record to the collector. */
int vigil__census_collect(const struct inet_diag_msg *m, void *ctx);

#endif
