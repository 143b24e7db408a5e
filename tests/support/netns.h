/*
 * Network-namespace harness for fault tests.
 *
 * A pair is two namespaces, A and B, joined by a veth link:
 *
 *     netns "vigiltest-<pid>-<n>-a"            netns "vigiltest-<pid>-<n>-b"
 *     vt0  198.18.<n>.1/24  <---- veth ---->  vt0  198.18.<n>.2/24
 *
 * The whole test stays in ONE process with ONE libev loop: a socket belongs
 * to the namespace it was created in, so vt_netns_socket() briefly switches
 * the calling thread into A or B, creates the socket and switches back. The
 * server (a vigil hub) then adopts sockets living in A while its peer lives
 * in B, and vt_netns_silence() blackholes one side with nftables (netem is
 * not available on our kernels; nft drop rules are).
 *
 * Every pair created in the process is destroyed at exit and on SIGINT,
 * SIGTERM, SIGABRT and SIGHUP, also after a failed cmocka assertion.
 * Namespaces left by a killed run (their pid is gone) are removed by the
 * next vt_netns_pair_create().
 *
 * Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for setns), `ip` and `nft`.
 * Call vt_netns_available() first and vt_skip() with its reason.
 */
#ifndef VIGIL_TEST_NETNS_H
#define VIGIL_TEST_NETNS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

enum vt_netns_side { VT_NETNS_A = 0, VT_NETNS_B = 1 };

#define VT_NETNS_NAME_MAX 48

struct vt_netns_pair {
  char name[2][VT_NETNS_NAME_MAX]; /* namespace names, index = side */
  char addr[2][16];                /* dotted IPv4 address of each side */
  struct in_addr in[2];            /* same, binary */
  int index;                       /* n in the names and 198.18.<n>.x */
  int silenced[2];                 /* bool: drop rules installed */
  int live;                        /* bool: created and not destroyed */
};

/* 1 if fault tests can run here: CAP_NET_ADMIN, `ip` and `nft` present, and
 * a probe pair can be created and entered. Otherwise 0 and a reason in why.
 * The probe runs once per process; the answer is cached. */
int vt_netns_available(char *why, size_t len);

/* Creates namespaces A and B, the veth link, addresses, links and lo up.
 * Removes stale vigiltest-* namespaces of dead processes first.
 * Returns 0, or -1 after printing what failed (nothing is left behind). */
int vt_netns_pair_create(struct vt_netns_pair *p);

/* Deletes both namespaces (the veth goes with them). Idempotent. Sockets
 * still open keep the kernel namespace alive until they are closed, but the
 * names are gone at once. Returns 0, or -1 if `ip netns delete` failed. */
int vt_netns_pair_destroy(struct vt_netns_pair *p);

/* socket(domain, type | SOCK_CLOEXEC, proto) created inside side's
 * namespace. The calling thread is back in its own namespace on return.
 * Returns the fd or -1 (errno set). */
int vt_netns_socket(struct vt_netns_pair *p, int side, int domain, int type,
                    int proto);

/* Moves the calling thread into side's namespace so that code which makes
 * its own sockets (vigil_listen, vigil client connect) makes them there.
 * Pair every successful enter with vt_netns_leave(). Returns 0 or -1. */
int vt_netns_enter(struct vt_netns_pair *p, int side);
/* Returns the calling thread to the namespace it had at first create.
 * Aborts if that fails: continuing in the wrong namespace would make every
 * later result meaningless. */
void vt_netns_leave(void);

/* Fills *out with side's address and port (host order). */
void vt_netns_sockaddr(const struct vt_netns_pair *p, int side, uint16_t port,
                       struct sockaddr_in *out);

/* Blocking TCP listener bound to side's address. *port = 0 picks an
 * ephemeral port; the bound port is stored back. Returns fd or -1. */
int vt_netns_listen(struct vt_netns_pair *p, int side, uint16_t *port);

/* TCP connect from from_side to the other side's address:to_port. Waits at
 * most 3 s for the handshake (a silenced peer never answers). Returns a
 * connected blocking fd, or -1 (errno ETIMEDOUT on timeout). */
int vt_netns_connect(struct vt_netns_pair *p, int from_side, uint16_t to_port);

/* on = 1: installs `table inet vigiltest` in side's namespace with input
 * and output chains (policy accept) that drop everything, so side neither
 * receives nor sends: a peer that vanished without FIN or RST.
 * on = 0: deletes the table. Idempotent. Returns 0 or -1. */
int vt_netns_silence(struct vt_netns_pair *p, int side, int on);

/* Runs argv (argv[0] looked up in PATH and the sbin directories) inside
 * side's namespace via `ip netns exec`. If out is given, stdout is captured
 * there (NUL-terminated, truncated to cap). Returns the exit status, or -1
 * if it could not run. */
int vt_netns_run(struct vt_netns_pair *p, int side, const char *const argv[],
                 char *out, size_t cap);

/* Counts TCP sockets in side's namespace whose local or remote port is
 * port, per kernel state: counts[TCP_ESTABLISHED], counts[TCP_FIN_WAIT1]...
 * (values from <netinet/tcp.h>, 1..11); counts[0] is the total. Uses
 * `ss -Htan` inside the namespace, so it sees orphaned sockets too (those
 * no fd refers to any more). Returns 0 or -1. */
#define VT_TCP_STATE_SLOTS 12
int vt_netns_tcp_states(struct vt_netns_pair *p, int side, uint16_t port,
                        int counts[VT_TCP_STATE_SLOTS]);

#endif
