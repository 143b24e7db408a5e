/*
 * Socket-state census: which TCP sockets exist on this machine, in which
 * kernel state, held by which process. The in-process answer to
 *
 *   netstat -n | awk '/^tcp/ {++S[$NF]} END {for(a in S) print a, S[a]}'
 *
 * It asks the kernel over NETLINK_SOCK_DIAG (inet_diag_req_v2, the same
 * interface `ss` uses): one dump per address family, the state filter
 * applied by the kernel, the port filter applied here. No privilege is
 * needed to count or list sockets; resolving the owners of other users'
 * sockets needs read access to their /proc/[pid]/fd, and destroying a
 * socket needs CAP_NET_ADMIN.
 *
 * Typical use (a hub's ghost check):
 *
 *   vigil_census_query q;
 *   vigil_census *c;
 *   uint16_t port = 1883;
 *   vigil_census_query_init(&q);
 *   q.ports = &port;
 *   q.nports = 1;
 *   q.list_states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT) |
 *                   VIGIL_CENSUS_ORPHAN_STATES;
 *   if (vigil_census_run(&q, &c) == VIGIL_OK) {
 *     ... c->counts[VIGIL_TCP_CLOSE_WAIT], c->orphans, c->sockets ...
 *     vigil_census_free(c);
 *   }
 *
 * Limitations, because of what the kernel reports:
 *  - No socket age. The kernel does not say when a socket entered
 *    CLOSE_WAIT (and CLOSE_WAIT has no timer). To find CLOSE_WAIT sockets
 *    older than some age, keep the first time each one was seen across
 *    successive censuses, keyed by vigil_census_socket.id.cookie (unique
 *    for the socket's lifetime; inodes of closed sockets are reused).
 *  - A census is a snapshot taken over several system calls; sockets that
 *    open or close meanwhile may be missed or counted in either state.
 *  - Connection requests not yet accepted (NEW_SYN_RECV in the kernel) are
 *    reported as SYN_RECV, as ss and netstat do.
 */
#ifndef VIGIL_CENSUS_H
#define VIGIL_CENSUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Bit for one vigil_tcp_state in a state mask (the kernel's TCPF_* bits). */
#define VIGIL_CENSUS_STATE_BIT(s) (1u << (unsigned)(s))
/* Every state a census can report. */
#define VIGIL_CENSUS_ALL_STATES                                              \
  (((1u << VIGIL_TCP_STATE__COUNT) - 1u) & ~1u)
/* States in which a socket whose fd was closed lingers as an orphan. */
#define VIGIL_CENSUS_ORPHAN_STATES                                           \
  (VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_FIN_WAIT1) |                             \
   VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_FIN_WAIT2) |                             \
   VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSING) |                               \
   VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_LAST_ACK))

/* "[ffff:...:ffff]:65535" plus NUL, rounded up. */
#define VIGIL_CENSUS_ADDRSTRLEN 64
/* Linux TASK_COMM_LEN. */
#define VIGIL_CENSUS_COMMLEN 16

typedef enum vigil_census_family {
  VIGIL_CENSUS_FAMILY_ALL = 0, /* IPv4 and IPv6 */
  VIGIL_CENSUS_FAMILY_IPV4 = 1,
  VIGIL_CENSUS_FAMILY_IPV6 = 2,
} vigil_census_family;

typedef enum vigil_census_port_match {
  VIGIL_CENSUS_MATCH_LOCAL = 0,  /* local port in ports[]; like ss
                                    "sport = :P": on a server port this
                                    is the listener and accepted sockets */
  VIGIL_CENSUS_MATCH_EITHER = 1, /* local or peer port in ports[]: also
                                    the client ends of local connections */
} vigil_census_port_match;

/* idiag_timer: which kernel timer is pending on the socket. */
typedef enum vigil_census_timer {
  VIGIL_CENSUS_TIMER_NONE = 0,
  VIGIL_CENSUS_TIMER_RETRANSMIT = 1, /* also loss probe / reorder timer */
  VIGIL_CENSUS_TIMER_KEEPALIVE = 2,  /* also SYN-ACK and FIN_WAIT2 timer */
  VIGIL_CENSUS_TIMER_TIME_WAIT = 3,  /* also orphaned FIN_WAIT2: the kernel
                                        keeps those as TIME_WAIT-like
                                        minisocks for tcp_fin_timeout */
  VIGIL_CENSUS_TIMER_ZERO_WINDOW = 4, /* zero-window probe */
} vigil_census_timer;

/* "none", "retransmit", "keepalive", "time_wait", "zero_window_probe";
 * "unknown" otherwise. Never NULL. */
VIGIL_EXPORT const char *vigil_census_timer_name(int timer);

/* Parses a state name as netstat or ss spell it, case-insensitively, with
 * '-' or '_' separators optional: "ESTABLISHED", "close-wait",
 * "FIN_WAIT1", "fin-wait-1", "time_wait", "SYN_RECV". Returns the
 * vigil_tcp_state, or VIGIL_EINVAL for NULL or an unknown name. */
VIGIL_EXPORT int vigil_census_state_parse(const char *name);

/*
 * What to count. A plain struct: always start from vigil_census_query_init()
 * so fields added later get their defaults. The caller keeps ports[] alive
 * during vigil_census_run().
 */
typedef struct vigil_census_query {
  const uint16_t *ports;  /* [in] port filter (host order); NULL/0 = all */
  size_t nports;
  vigil_census_port_match port_match; /* default MATCH_LOCAL */
  uint32_t states;        /* VIGIL_CENSUS_STATE_BIT mask; 0 = all */
  vigil_census_family family; /* default FAMILY_ALL */
  int want_sockets;       /* bool: list sockets, not only counts; 1 */
  uint32_t list_states;   /* which counted states to list; 0 = all of
                             them. E.g. count everything but list only
                             CLOSE_WAIT and orphans. */
  size_t max_sockets;     /* cap on the list; 0 = no cap; default 65536.
                             Counts always cover every matched socket. */
  int want_self;          /* bool: mark sockets this process holds (scan
                             of /proc/self/fd); default 1 */
  int want_owners;        /* bool: find the pid/comm holding each listed
                             socket by scanning every /proc/[pid]/fd;
                             costly (one readlink per fd on the machine);
                             default 0 */
} vigil_census_query;

VIGIL_EXPORT void vigil_census_query_init(vigil_census_query *q);

/* Identity of a socket as the kernel knows it (inet_diag_sockid). Enough to
 * find the same socket again, e.g. for vigil_census_destroy(). */
typedef struct vigil_census_sockid {
  uint8_t local_addr[16]; /* network order; IPv4 uses the first 4 bytes */
  uint8_t peer_addr[16];
  uint16_t local_port;    /* host order */
  uint16_t peer_port;
  uint32_t ifindex;       /* bound interface; 0 = none */
  uint64_t cookie;        /* kernel socket cookie, unique while it lives */
} vigil_census_sockid;

/* One socket. All fields [out]. */
typedef struct vigil_census_socket {
  int family;             /* AF_INET or AF_INET6 */
  vigil_tcp_state state;
  char local[VIGIL_CENSUS_ADDRSTRLEN]; /* "127.0.0.1:1883", "[::1]:1883" */
  char peer[VIGIL_CENSUS_ADDRSTRLEN];  /* "0.0.0.0:0" / "[::]:0" if none */
  vigil_census_timer timer;
  uint32_t expires_ms;    /* until the timer fires; 0 with TIMER_NONE */
  uint32_t retransmits;   /* retransmits (timer 1) or probes (2, 4) */
  uint32_t rqueue;        /* bytes unread; LISTEN: accept queue length */
  uint32_t wqueue;        /* bytes unacked; LISTEN: accept backlog */
  uint32_t uid;           /* owner uid of the socket */
  uint64_t inode;         /* 0 = orphan: no fd refers to it any more */
  int in_this_process;    /* bool: an fd of this process holds it
                             (query.want_self) */
  pid_t owner_pid;        /* a process holding an fd on it; 0 = unknown or
                             not resolved (query.want_owners) */
  char owner_comm[VIGIL_CENSUS_COMMLEN]; /* its comm; "" if unknown */
  vigil_census_sockid id;
} vigil_census_socket;

/* A census result. All fields [out]; free with vigil_census_free(). */
typedef struct vigil_census {
  uint32_t counts[VIGIL_TCP_STATE__COUNT]; /* matched sockets per state */
  uint32_t total;         /* sum of counts */
  uint32_t orphans;       /* matched sockets in ORPHAN_STATES, inode 0 */
  uint32_t self_counts[VIGIL_TCP_STATE__COUNT]; /* of those, held by this
                             process (query.want_self) */
  vigil_census_socket *sockets; /* listed sockets, in kernel order */
  size_t nsockets;
  size_t sockets_omitted; /* listable but beyond max_sockets */
  int owners_resolved;    /* bool: the owner scan ran */
  uint32_t unreadable_processes; /* processes whose fds could not be read
                             (permission): their sockets show no owner */
} vigil_census;

/*
 * Takes a census. Returns VIGIL_OK and *out (free it with
 * vigil_census_free), or:
 *   VIGIL_EINVAL   q or out NULL, ports NULL with nports > 0, bad family,
 *                  port_match, or a state mask outside ALL_STATES;
 *   VIGIL_ENOTSUP  no NETLINK_SOCK_DIAG / inet_diag in this kernel;
 *   VIGIL_EPERM    the kernel refused the dump;
 *   VIGIL_ENOMEM;
 *   VIGIL_EPROTO   the kernel's answer was malformed;
 *   VIGIL_ESYS     another system call failed; see vigil_last_error().
 * *out is NULL on error. Permission problems while resolving owners are
 * not errors: they are counted in unreadable_processes.
 */
VIGIL_EXPORT int vigil_census_run(const vigil_census_query *q,
                                  vigil_census **out);
/* Frees a census; NULL is fine. */
VIGIL_EXPORT void vigil_census_free(vigil_census *c);

/* The lists that matter, as bits for vigil_census_pick(). */
#define VIGIL_CENSUS_PICK_CLOSE_WAIT 0x1u /* CLOSE_WAIT: the peer closed and
                                      the application never did; age is
                                      up to the caller (see above) */
#define VIGIL_CENSUS_PICK_ORPHANS 0x2u  /* ORPHAN_STATES with inode 0 */
#define VIGIL_CENSUS_PICK_OWN_ESTABLISHED 0x4u /* ESTABLISHED, held by this
                                      process: subtract the inodes you
                                      manage to find leaked fds */
#define VIGIL_CENSUS_PICK_TIME_WAIT 0x8u

/* 1 if s belongs to any of the lists in pick, else 0. */
VIGIL_EXPORT int vigil_census_socket_is(const vigil_census_socket *s,
                                        unsigned pick);

/* Stores up to cap pointers to listed sockets belonging to any list in
 * pick (in census order) and returns how many there are in all, like
 * snprintf. out may be NULL when cap is 0. Only listed sockets are
 * considered: query them with list_states covering the states you pick. */
VIGIL_EXPORT size_t vigil_census_pick(const vigil_census *c, unsigned pick,
                                      const vigil_census_socket **out,
                                      size_t cap);

/* The inode of a socket fd (fstat st_ino), to match
 * vigil_census_socket.inode. VIGIL_EBADF, VIGIL_ENOTSOCK, VIGIL_EINVAL
 * (inode NULL). */
VIGIL_EXPORT int vigil_census_fd_inode(int fd, uint64_t *inode);

/*
 * Asks the kernel to abort the socket (SOCK_DESTROY). Its owner's next
 * read or write fails with ECONNABORTED and an RST goes to the peer.
 * Returns:
 *   VIGIL_OK       destroyed;
 *   VIGIL_EPERM    the caller lacks CAP_NET_ADMIN;
 *   VIGIL_ENOTSUP  the kernel was built without CONFIG_INET_DIAG_DESTROY
 *                  (it answers EOPNOTSUPP), or has no sock_diag at all;
 *   VIGIL_ENOENT   no such socket any more (closed, or cookie changed);
 *   VIGIL_EINVAL   s NULL or not an IPv4/IPv6 socket;
 *   VIGIL_ESYS     another failure; see vigil_last_error().
 */
VIGIL_EXPORT int vigil_census_destroy(const vigil_census_socket *s);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_CENSUS_H */
