/*
 * Proves the namespace harness itself, without libev or vigil: sockets land
 * in the namespace they were made in, traffic flows across the veth both
 * ways, silence() really blackholes a side (data stays unacknowledged, a
 * new connect hangs) and undoing it restores traffic, ss sees orphans, and
 * namespaces disappear on destroy, on signals and after crashed runs.
 */
#include "netns.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Connected pair: listener and accepted socket in A, client in B. */
struct conn {
  struct vt_netns_pair ns;
  int lfd, sfd, cfd;
  uint16_t port;
};

static void conn_open(struct conn *c) {
  assert_int_equal(vt_netns_pair_create(&c->ns), 0);
  c->port = 0;
  c->lfd = vt_netns_listen(&c->ns, VT_NETNS_A, &c->port);
  assert_true(c->lfd >= 0);
  assert_true(c->port > 0);
  c->cfd = vt_netns_connect(&c->ns, VT_NETNS_B, c->port);
  assert_true(c->cfd >= 0);
  c->sfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(c->sfd >= 0);
}

static void conn_close(struct conn *c) {
  if (c->sfd >= 0) close(c->sfd);
  close(c->cfd);
  close(c->lfd);
  assert_int_equal(vt_netns_pair_destroy(&c->ns), 0);
}

static struct tcp_info info_of(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
  return ti;
}

/* Reads exactly len bytes within timeout_ms; returns the bytes read. */
static size_t read_within(int fd, char *buf, size_t len, int timeout_ms) {
  size_t got = 0;
  uint64_t end = vt_now_ms() + (uint64_t)timeout_ms;
  while (got < len && vt_now_ms() < end) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, (int)(end - vt_now_ms())) <= 0) continue;
    ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
    if (n <= 0) break;
    got += (size_t)n;
  }
  return got;
}

static int netns_listed(const char *name) {
  FILE *f = popen("ip netns list 2>&1", "r");
  assert_non_null(f);
  char line[256];
  int found = 0;
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, name, n) == 0 && (line[n] == ' ' || line[n] == '\n'))
      found = 1;
  pclose(f);
  return found;
}

static int path_exists(const char *name) {
  char path[128];
  struct stat st;
  snprintf(path, sizeof path, "/run/netns/%s", name);
  return stat(path, &st) == 0;
}

static void test_sockets_live_in_their_namespace(void **state) {
  (void)state;
  struct vt_netns_pair p;
  assert_int_equal(vt_netns_pair_create(&p), 0);
  struct sockaddr_in a;
  vt_netns_sockaddr(&p, VT_NETNS_A, 0, &a);

  /* A's address exists only inside A. */
  int here = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(here >= 0);
  assert_int_equal(bind(here, (struct sockaddr *)&a, sizeof a), -1);
  assert_int_equal(errno, EADDRNOTAVAIL);
  close(here);

  int in_a = vt_netns_socket(&p, VT_NETNS_A, AF_INET, SOCK_STREAM, 0);
  assert_true(in_a >= 0);
  assert_int_equal(bind(in_a, (struct sockaddr *)&a, sizeof a), 0);
  close(in_a);

  int in_b = vt_netns_socket(&p, VT_NETNS_B, AF_INET, SOCK_STREAM, 0);
  assert_true(in_b >= 0);
  assert_int_equal(bind(in_b, (struct sockaddr *)&a, sizeof a), -1);
  close(in_b);

  /* enter/leave: sockets made in between belong to B, later ones to us. */
  struct stat before, after;
  assert_int_equal(stat("/proc/thread-self/ns/net", &before), 0);
  assert_int_equal(vt_netns_enter(&p, VT_NETNS_B), 0);
  struct stat inside;
  assert_int_equal(stat("/proc/thread-self/ns/net", &inside), 0);
  assert_true(inside.st_ino != before.st_ino);
  vt_netns_leave();
  assert_int_equal(stat("/proc/thread-self/ns/net", &after), 0);
  assert_true(after.st_ino == before.st_ino);

  assert_int_equal(vt_netns_pair_destroy(&p), 0);
}

static void test_traffic_flows_both_ways(void **state) {
  (void)state;
  struct conn c;
  conn_open(&c);

  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  assert_int_equal(getpeername(c.sfd, (struct sockaddr *)&peer, &len), 0);
  assert_memory_equal(&peer.sin_addr, &c.ns.in[VT_NETNS_B],
                      sizeof peer.sin_addr);

  char buf[16];
  assert_int_equal(send(c.cfd, "ping", 4, 0), 4);
  assert_int_equal(read_within(c.sfd, buf, 4, 2000), 4);
  assert_memory_equal(buf, "ping", 4);
  assert_int_equal(send(c.sfd, "pong!", 5, 0), 5);
  assert_int_equal(read_within(c.cfd, buf, 5, 2000), 5);
  assert_memory_equal(buf, "pong!", 5);

  /* ss runs inside the namespace: A holds the listener and the accepted
   * socket, B the client; nothing of it is visible in the other. */
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&c.ns, VT_NETNS_A, c.port, n), 0);
  assert_int_equal(n[TCP_LISTEN], 1);
  assert_int_equal(n[TCP_ESTABLISHED], 1);
  assert_int_equal(n[0], 2);
  assert_int_equal(vt_netns_tcp_states(&c.ns, VT_NETNS_B, c.port, n), 0);
  assert_int_equal(n[TCP_ESTABLISHED], 1);
  assert_int_equal(n[0], 1);

  conn_close(&c);
}

static void test_silence_blackholes_and_recovers(void **state) {
  (void)state;
  struct conn c;
  conn_open(&c);
  assert_int_equal(vt_netns_silence(&c.ns, VT_NETNS_B, 1), 0);
  assert_int_equal(vt_netns_silence(&c.ns, VT_NETNS_B, 1), 0); /* idempotent */

  char out[1000], in[1000];
  memset(out, 'x', sizeof out);
  assert_int_equal(send(c.sfd, out, sizeof out, 0), (ssize_t)sizeof out);
  assert_int_equal(send(c.cfd, "up", 2, 0), 2);

  /* Wait for A's first retransmission: proof its segment was lost. */
  uint64_t end = vt_now_ms() + 3000;
  while (info_of(c.sfd).tcpi_total_retrans == 0 && vt_now_ms() < end)
    usleep(10000);
  struct tcp_info ti = info_of(c.sfd);
  assert_true(ti.tcpi_total_retrans >= 1);
  assert_true(ti.tcpi_unacked > 0);
  assert_int_equal(read_within(c.cfd, in, 1, 200), 0);
  assert_int_equal(read_within(c.sfd, in, 1, 1), 0);

  /* A new connect from the silent side never completes. */
  int nc = vt_netns_socket(&c.ns, VT_NETNS_B, AF_INET,
                           SOCK_STREAM | SOCK_NONBLOCK, 0);
  assert_true(nc >= 0);
  struct sockaddr_in a;
  vt_netns_sockaddr(&c.ns, VT_NETNS_A, c.port, &a);
  assert_int_equal(connect(nc, (struct sockaddr *)&a, sizeof a), -1);
  assert_int_equal(errno, EINPROGRESS);
  struct pollfd pf = {.fd = nc, .events = POLLOUT};
  uint64_t t0 = vt_now_ms();
  assert_int_equal(poll(&pf, 1, 1000), 0);
  assert_true(vt_now_ms() - t0 >= 990);
  assert_int_equal(vt_tcp_state(nc), TCP_SYN_SENT);

  /* Lifting the silence lets retransmissions through. */
  assert_int_equal(vt_netns_silence(&c.ns, VT_NETNS_B, 0), 0);
  assert_int_equal(read_within(c.cfd, in, sizeof in, 6000), sizeof in);
  assert_memory_equal(in, out, sizeof in);
  assert_int_equal(read_within(c.sfd, in, 2, 6000), 2);
  assert_memory_equal(in, "up", 2);
  end = vt_now_ms() + 3000;
  while (info_of(c.sfd).tcpi_unacked > 0 && vt_now_ms() < end) usleep(5000);
  assert_int_equal(info_of(c.sfd).tcpi_unacked, 0);

  pf.revents = 0;
  assert_int_equal(poll(&pf, 1, 6000), 1);
  int err = -1;
  socklen_t el = sizeof err;
  assert_int_equal(getsockopt(nc, SOL_SOCKET, SO_ERROR, &err, &el), 0);
  assert_int_equal(err, 0);
  assert_int_equal(vt_tcp_state(nc), TCP_ESTABLISHED);
  close(nc);

  conn_close(&c);
}

static void test_ss_sees_orphaned_fin_wait1(void **state) {
  (void)state;
  struct conn c;
  conn_open(&c);
  assert_int_equal(vt_netns_silence(&c.ns, VT_NETNS_B, 1), 0);
  /* Closing with the peer silent: the FIN is never acknowledged, and the
   * socket lives on in the kernel without any fd (the mosquitto leftover
   * from FIELD-NOTES). */
  close(c.sfd);
  c.sfd = -1;
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&c.ns, VT_NETNS_A, c.port, n), 0);
  assert_int_equal(n[TCP_FIN_WAIT1], 1);
  assert_int_equal(n[TCP_LISTEN], 1);
  assert_int_equal(vt_netns_tcp_states(&c.ns, VT_NETNS_B, c.port, n), 0);
  assert_int_equal(n[TCP_ESTABLISHED], 1);
  conn_close(&c);
}

static void test_destroy_removes_namespaces(void **state) {
  (void)state;
  struct vt_netns_pair p;
  assert_int_equal(vt_netns_pair_create(&p), 0);
  assert_true(netns_listed(p.name[VT_NETNS_A]));
  assert_true(netns_listed(p.name[VT_NETNS_B]));
  assert_int_equal(vt_netns_silence(&p, VT_NETNS_A, 1), 0);
  assert_int_equal(vt_netns_pair_destroy(&p), 0);
  assert_false(netns_listed(p.name[VT_NETNS_A]));
  assert_false(netns_listed(p.name[VT_NETNS_B]));
  assert_int_equal(vt_netns_pair_destroy(&p), 0);
  assert_int_equal(vt_netns_socket(&p, VT_NETNS_A, AF_INET, SOCK_STREAM, 0),
                   -1);
}

static void test_stale_namespaces_are_removed(void **state) {
  (void)state;
  pid_t dead = fork();
  assert_true(dead >= 0);
  if (dead == 0) _exit(0);
  assert_int_equal(waitpid(dead, NULL, 0), dead);
  char name[64], cmd[128];
  snprintf(name, sizeof name, "vigiltest-%d-0-a", (int)dead);
  snprintf(cmd, sizeof cmd, "ip netns add %s", name);
  assert_int_equal(system(cmd), 0);
  assert_true(path_exists(name));

  struct vt_netns_pair p;
  assert_int_equal(vt_netns_pair_create(&p), 0);
  assert_false(path_exists(name));
  assert_int_equal(vt_netns_pair_destroy(&p), 0);
}

/* A child creates a pair and dies by sig; its handler must delete the
 * child's namespaces and leave the parent's alone. */
static void check_signal_cleanup(int sig) {
  struct vt_netns_pair mine;
  assert_int_equal(vt_netns_pair_create(&mine), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct vt_netns_pair p;
    if (vt_netns_pair_create(&p) != 0) _exit(3);
    if (write(fds[1], &p, sizeof p) != (ssize_t)sizeof p) _exit(4);
    if (sig == SIGABRT) abort();
    raise(sig);
    _exit(5);
  }
  close(fds[1]);
  struct vt_netns_pair child;
  assert_int_equal(read(fds[0], &child, sizeof child), (ssize_t)sizeof child);
  close(fds[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), sig);
  assert_false(path_exists(child.name[VT_NETNS_A]));
  assert_false(path_exists(child.name[VT_NETNS_B]));
  assert_true(path_exists(mine.name[VT_NETNS_A]));
  assert_true(path_exists(mine.name[VT_NETNS_B]));
  assert_int_equal(vt_netns_pair_destroy(&mine), 0);
}

static void test_sigterm_cleans_up(void **state) {
  (void)state;
  check_signal_cleanup(SIGTERM);
}

static void test_sigabrt_cleans_up(void **state) {
  (void)state;
  check_signal_cleanup(SIGABRT);
}

int main(void) {
  char why[256];
  if (!vt_netns_available(why, sizeof why)) vt_skip(why);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sockets_live_in_their_namespace),
      cmocka_unit_test(test_traffic_flows_both_ways),
      cmocka_unit_test(test_silence_blackholes_and_recovers),
      cmocka_unit_test(test_ss_sees_orphaned_fin_wait1),
      cmocka_unit_test(test_destroy_removes_namespaces),
      cmocka_unit_test(test_stale_namespaces_are_removed),
      cmocka_unit_test(test_sigterm_cleans_up),
      cmocka_unit_test(test_sigabrt_cleans_up),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
