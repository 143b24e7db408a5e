/*
 * Socket helpers shared by the hub, conn, listener and client (internal).
 *
 * Every function returns a vigil_err. A failed system call is recorded
 * with its name and errno (vigil_last_error, error.h); for a reason with
 * no dedicated code the result is VIGIL_ESYS, and errno is left as the
 * call set it.
 */
#ifndef VIGIL_SOCKOPT_H
#define VIGIL_SOCKOPT_H

#include <stddef.h>
#include <sys/socket.h>

#include "vigil.h"

/*
 * Room for any peer string vigil__sockaddr_format() produces, NUL included:
 * "[" + 45 (longest IPv6 text, INET6_ADDRSTRLEN - 1) + "%" + 10 (scope id)
 * + "]:" + 5 (port) + NUL = 65, rounded up.
 */
#define VIGIL__PEER_STRLEN 72

/*
 * What kind of fd this is, checked in this order:
 *   VIGIL_EBADF     fd is not open (fcntl F_GETFD fails)
 *   VIGIL_ENOTSOCK  not a socket (pipe, file...)
 *   VIGIL_ENOTTCP   a socket, but not AF_INET/AF_INET6 + SOCK_STREAM +
 *                   IPPROTO_TCP (UDP, unix, MPTCP...)
 *   VIGIL_ENOTCONN  TCP, but no peer (unconnected, listening, or reset)
 *   VIGIL_OK        a connected TCP stream socket
 * VIGIL_ESYS (errno set) if a probe fails for another reason.
 */
int vigil__sock_classify(int fd);
/* The same, also storing the peer address (zeroed when there is none). */
int vigil__sock_classify_peer(int fd, struct sockaddr_storage *peer);

/* What adoption changes on a host's fd, so an adoption that fails after
 * touching it can put it back (vigil_adopt leaves the fd as it was). */
typedef struct vigil__sock_state {
  int fl;               /* F_GETFL */
  vigil_sockopts opts;  /* the options vigil__sock_apply writes */
} vigil__sock_state;
int vigil__sock_snapshot(int fd, vigil__sock_state *st);
void vigil__sock_restore(int fd, const vigil__sock_state *st);

/* vigil_socket_apply_policy without its checks, for sockets vigil already
 * knows are TCP and policies already validated: one setsockopt per
 * option, nothing else. */
int vigil__sock_apply(int fd, const vigil_policy *p);

/*
 * Accept storms pay for every system call, so conns skip the options
 * already in place. The option values a policy asks for are kept in the
 * shape vigil_sockopts reads them back:
 *  - vigil__sock_want: what vigil__sock_apply writes for p. With
 *    keepalive off the keepalive timings are not written (-1 there);
 *    fin_wait2_s 0 is written and means the kernel's tcp_fin_timeout.
 *  - vigil__sock_apply_changes: writes the options of want that differ
 *    from have, the values known to be on fd (-1 = unknown; have NULL =
 *    nothing known: all of them). Same errors as vigil__sock_apply.
 *  - vigil__sock_carries: 1 if fd reads back every option want writes
 *    (LINGER2 only when set: 0 reads back as the kernel's default). A
 *    listener checks its first accepted socket with it: Linux copies
 *    these options from the listening socket to the sockets it accepts.
 *  - vigil__sock_effective: completes want into the socket's effective
 *    options by reading back only what the policy leaves to the kernel
 *    (the keepalive timings with keepalive off, TCP_LINGER2 with
 *    fin_wait2_s 0, unless the caller knows the kernel's default,
 *    fin_default_s > 0): the open event's sockopts.
 */
void vigil__sock_want(const vigil_policy *p, vigil_sockopts *w);
int vigil__sock_apply_changes(int fd, const vigil_sockopts *want,
                              const vigil_sockopts *have);
int vigil__sock_carries(int fd, const vigil_sockopts *want);
int vigil__sock_effective(int fd, vigil_sockopts *so, int fin_default_s);
/* The read-backs without the socket-type check, for vigil's own conns:
 * a suspicion check should cost its getsockopt and nothing more. */
int vigil__sock_get_opts(int fd, vigil_sockopts *out);
int vigil__sock_tcp_info(int fd, vigil_tcp_info *out);

/* Sets O_NONBLOCK, keeping the other status flags. */
int vigil__sock_set_nonblock(int fd);

/* SO_LINGER {on, 0 s}: the next close() sends RST instead of FIN. */
int vigil__sock_set_abort_linger(int fd);

/*
 * "127.0.0.1:5000", "[::1]:5000", "[fe80::1%2]:5000" (numeric scope id).
 * IPv4-mapped IPv6 addresses print as IPv4, since that is what the peer
 * actually is. Always NUL-terminates buf when len > 0.
 * Returns VIGIL_OK, VIGIL_EINVAL (NULL arguments or len 0), VIGIL_EADDR
 * (not AF_INET/AF_INET6; buf gets "?") or VIGIL_EOVERFLOW (buf too small;
 * it holds the truncated text).
 */
int vigil__sockaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* The peer address of fd (getpeername) formatted as above. On failure
 * buf gets "?" and the result is VIGIL_EBADF, VIGIL_ENOTSOCK,
 * VIGIL_ENOTCONN, VIGIL_EINVAL or VIGIL_ESYS. */
int vigil__sock_peer_string(int fd, char *buf, size_t len);

/* The pending socket error (SO_ERROR, which reading clears) as a positive
 * errno value, 0 if none; if getsockopt itself fails, its errno. */
int vigil__sock_error(int fd);


#endif
