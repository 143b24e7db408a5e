/*
 * Census against real loopback sockets: counts per state for a listener
 * port (local-port and either-port matching), CLOSE_WAIT / orphaned
 * FIN_WAIT2 / TIME_WAIT made on purpose, inodes and in_this_process checked
 * against fstat of our fds, owners, IPv6, agreement with `ss`, and
 * SOCK_DESTROY (works as root, EPERM without CAP_NET_ADMIN).
 *
 * Port matching is by local port unless MATCH_EITHER: for a listener port
 * P, local matching sees the listener and the accepted (server-side)
 * sockets; the client ends have P as their peer port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "vigil.h"

#define NPAIRS 5
#define POLL_MS 3000

typedef struct fixture {
  struct ev_loop *loop;
  int listener;
  uint16_t port;
  int server[NPAIRS];
  int client[NPAIRS];
} fixture;

static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static uint64_t inode_of(int fd) {
  uint64_t ino = 0;
  assert_int_equal(vigil_census_fd_inode(fd, &ino), VIGIL_OK);
  assert_true(ino > 0);
  return ino;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  f->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(f->listener, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->listener, 64), 0);
  f->port = local_port(f->listener);
  for (int i = 0; i < NPAIRS; i++) {
    f->client[i] = vt_connect_loopback(f->port);
    assert_true(f->client[i] >= 0);
    f->server[i] = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
    assert_true(f->server[i] >= 0);
  }
  *state = f;
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (int i = 0; i < NPAIRS; i++) {
    /* RST on close: no TIME_WAIT left behind on the machine. */
    struct linger lg = {1, 0};
    if (f->client[i] >= 0)
      setsockopt(f->client[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (f->server[i] >= 0)
      setsockopt(f->server[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(&f->client[i]);
    close_fd(&f->server[i]);
  }
  close_fd(&f->listener);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

/* Census of our port with the given match mode; fails the test on error. */
static vigil_census *census_port(uint16_t port, vigil_census_port_match m,
                                 vigil_census_family fam, int owners) {
  vigil_census_query q;
  vigil_census *c = NULL;
  vigil_census_query_init(&q);
  q.ports = &port;
  q.nports = 1;
  q.port_match = m;
  q.family = fam;
  q.want_owners = owners;
  int rc = vigil_census_run(&q, &c);
  if (rc != VIGIL_OK) fail_msg("census: %s", vigil_err_name(rc));
  return c;
}

/* Finds the listed socket with this inode, or NULL. */
static const vigil_census_socket *find_inode(const vigil_census *c,
                                             uint64_t inode) {
  for (size_t i = 0; i < c->nsockets; i++)
    if (c->sockets[i].inode == inode) return &c->sockets[i];
  return NULL;
}

/* Finds the listed socket in state st whose local port is p, or NULL. */
static const vigil_census_socket *find_state_port(const vigil_census *c, int st,
                                                  uint16_t p) {
  for (size_t i = 0; i < c->nsockets; i++)
    if ((int)c->sockets[i].state == st && c->sockets[i].id.local_port == p)
      return &c->sockets[i];
  return NULL;
}

static void test_counts_local_and_either(void **state) {
  fixture *f = *state;
  vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL,
                                VIGIL_CENSUS_FAMILY_ALL, 0);
  assert_int_equal(c->counts[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], NPAIRS);
  assert_int_equal(c->total, NPAIRS + 1);
  assert_int_equal(c->self_counts[VIGIL_TCP_ESTABLISHED], NPAIRS);
  assert_int_equal(c->self_counts[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(c->nsockets, NPAIRS + 1);
  assert_int_equal(c->orphans, 0);
  /* Each server fd is listed with its fstat inode, as ours. */
  for (int i = 0; i < NPAIRS; i++) {
    const vigil_census_socket *s = find_inode(c, inode_of(f->server[i]));
    assert_non_null(s);
    assert_int_equal(s->state, VIGIL_TCP_ESTABLISHED);
    assert_int_equal(s->in_this_process, 1);
    assert_int_equal(s->family, AF_INET);
    assert_int_equal(s->id.local_port, f->port);
    assert_int_equal(s->id.peer_port, local_port(f->client[i]));
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)f->port);
    assert_string_equal(s->local, want);
    assert_int_equal(s->uid, getuid());
    assert_true(s->id.cookie != 0);
  }
  const vigil_census_socket *l = find_inode(c, inode_of(f->listener));
  assert_non_null(l);
  assert_int_equal(l->state, VIGIL_TCP_LISTEN);
  assert_int_equal(l->wqueue, 64);                    /* LISTEN: the backlog */
  assert_null(find_inode(c, inode_of(f->client[0]))); /* peer port only */
  assert_int_equal(
      vigil_census_pick(c, VIGIL_CENSUS_PICK_OWN_ESTABLISHED, NULL, 0), NPAIRS);
  vigil_census_free(c);

  c = census_port(f->port, VIGIL_CENSUS_MATCH_EITHER, VIGIL_CENSUS_FAMILY_ALL,
                  0);
  assert_int_equal(c->counts[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], 2 * NPAIRS);
  assert_int_equal(c->self_counts[VIGIL_TCP_ESTABLISHED], 2 * NPAIRS);
  for (int i = 0; i < NPAIRS; i++) {
    const vigil_census_socket *s = find_inode(c, inode_of(f->client[i]));
    assert_non_null(s);
    assert_int_equal(s->id.peer_port, f->port);
    assert_int_equal(s->in_this_process, 1);
  }
  vigil_census_free(c);

  /* IPv4 families only: same; IPv6 only: none of ours. */
  c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL, VIGIL_CENSUS_FAMILY_IPV6,
                  0);
  assert_int_equal(c->total, 0);
  vigil_census_free(c);
}

static void test_cap_counts_only_and_state_filter(void **state) {
  fixture *f = *state;
  vigil_census_query q;
  vigil_census *c;
  vigil_census_query_init(&q);
  q.ports = &f->port;
  q.nports = 1;
  q.max_sockets = 2;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  assert_int_equal(c->total, NPAIRS + 1);
  assert_int_equal(c->nsockets, 2);
  assert_int_equal(c->sockets_omitted, NPAIRS + 1 - 2);
  vigil_census_free(c);

  q.max_sockets = 0;
  q.want_sockets = 0;
  q.want_self = 0;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], NPAIRS);
  assert_int_equal(c->self_counts[VIGIL_TCP_ESTABLISHED], 0);
  assert_int_equal(c->nsockets, 0);
  vigil_census_free(c);

  /* Several ports (kernel filter program with jumps), local and either. */
  uint16_t two[2] = {1, f->port};
  q.ports = two;
  q.nports = 2;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], NPAIRS);
  vigil_census_free(c);
  q.port_match = VIGIL_CENSUS_MATCH_EITHER;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], 2 * NPAIRS);
  assert_int_equal(c->counts[VIGIL_TCP_LISTEN], 1);
  vigil_census_free(c);
  q.ports = &f->port;
  q.nports = 1;
  q.port_match = VIGIL_CENSUS_MATCH_LOCAL;

  /* Kernel-side state filter. */
  q.want_sockets = 1;
  q.states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_LISTEN);
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  assert_int_equal(c->total, 1);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], 0);
  assert_int_equal(c->nsockets, 1);
  assert_int_equal(c->sockets[0].state, VIGIL_TCP_LISTEN);
  vigil_census_free(c);
}

/* Poll predicate: a census (either port) shows want[s] sockets in each
 * state s with want[s] >= 0. Transitions are not instant even on loopback:
 * the ACK of a FIN may be delayed, keeping the closer in FIN_WAIT1. */
typedef struct ghost_wait {
  uint16_t port;
  int want[VIGIL_TCP_STATE__COUNT];
} ghost_wait;

static void wait_init(ghost_wait *w, uint16_t port) {
  w->port = port;
  for (int s = 0; s < VIGIL_TCP_STATE__COUNT; s++) w->want[s] = -1;
}

static int census_shows(void *arg) {
  ghost_wait *w = arg;
  vigil_census *c = census_port(w->port, VIGIL_CENSUS_MATCH_EITHER,
                                VIGIL_CENSUS_FAMILY_ALL, 0);
  int ok = 1;
  for (int s = 0; s < VIGIL_TCP_STATE__COUNT; s++)
    if (w->want[s] >= 0 && c->counts[s] != (uint32_t)w->want[s]) ok = 0;
  vigil_census_free(c);
  return ok;
}

static void test_close_wait_orphan_time_wait(void **state) {
  fixture *f = *state;
  uint16_t cport = local_port(f->client[0]);
  uint64_t server_ino = inode_of(f->server[0]);

  /* Client closes first: its socket becomes an orphan in FIN_WAIT2, the
   * server side sits in CLOSE_WAIT until we close it. */
  close_fd(&f->client[0]);
  ghost_wait w;
  wait_init(&w, f->port);
  w.want[VIGIL_TCP_CLOSE_WAIT] = 1;
  w.want[VIGIL_TCP_FIN_WAIT2] = 1;
  assert_true(vt_run_until(f->loop, census_shows, &w, POLL_MS));
  vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_EITHER,
                                VIGIL_CENSUS_FAMILY_ALL, 0);
  assert_int_equal(c->counts[VIGIL_TCP_CLOSE_WAIT], 1);
  assert_int_equal(c->counts[VIGIL_TCP_FIN_WAIT2], 1);
  assert_int_equal(c->counts[VIGIL_TCP_ESTABLISHED], 2 * (NPAIRS - 1));
  assert_int_equal(c->orphans, 1);

  const vigil_census_socket *cw[4], *orph[4];
  assert_int_equal(vigil_census_pick(c, VIGIL_CENSUS_PICK_CLOSE_WAIT, cw, 4),
                   1);
  assert_int_equal(cw[0]->inode, server_ino);
  assert_int_equal(cw[0]->in_this_process, 1);
  assert_int_equal(cw[0]->id.peer_port, cport);
  assert_int_equal(cw[0]->timer, VIGIL_CENSUS_TIMER_NONE); /* no timeout */
  assert_int_equal(vigil_census_pick(c, VIGIL_CENSUS_PICK_ORPHANS, orph, 4), 1);
  assert_int_equal(orph[0]->state, VIGIL_TCP_FIN_WAIT2);
  assert_int_equal(orph[0]->inode, 0);
  assert_int_equal(orph[0]->id.local_port, cport);
  assert_int_equal(orph[0]->in_this_process, 0);
  assert_true(orph[0]->timer != VIGIL_CENSUS_TIMER_NONE);
  assert_true(orph[0]->expires_ms > 0 && orph[0]->expires_ms <= 60000);
  vigil_census_free(c);

  /* Server closes too: the client (active closer) goes to TIME_WAIT. */
  close_fd(&f->server[0]);
  wait_init(&w, f->port);
  w.want[VIGIL_TCP_TIME_WAIT] = 1;
  w.want[VIGIL_TCP_LAST_ACK] = 0;
  w.want[VIGIL_TCP_CLOSE_WAIT] = 0;
  w.want[VIGIL_TCP_FIN_WAIT2] = 0;
  assert_true(vt_run_until(f->loop, census_shows, &w, POLL_MS));
  c = census_port(f->port, VIGIL_CENSUS_MATCH_EITHER, VIGIL_CENSUS_FAMILY_ALL,
                  0);
  assert_int_equal(c->counts[VIGIL_TCP_CLOSE_WAIT], 0);
  assert_int_equal(c->counts[VIGIL_TCP_FIN_WAIT2], 0);
  const vigil_census_socket *tw =
      find_state_port(c, VIGIL_TCP_TIME_WAIT, cport);
  assert_non_null(tw);
  assert_int_equal(tw->inode, 0);
  assert_int_equal(tw->timer, VIGIL_CENSUS_TIMER_TIME_WAIT);
  assert_true(tw->expires_ms > 0 && tw->expires_ms <= 60000);
  assert_int_equal(vigil_census_pick(c, VIGIL_CENSUS_PICK_TIME_WAIT, NULL, 0),
                   1);
  assert_int_equal(vigil_census_pick(c, VIGIL_CENSUS_PICK_ORPHANS, NULL, 0),
                   0); /* TIME_WAIT is not an orphan */
  vigil_census_free(c);
  /* A local-port census of the server port does not see the client's
   * TIME_WAIT. */
  c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL, VIGIL_CENSUS_FAMILY_ALL,
                  0);
  assert_int_equal(c->counts[VIGIL_TCP_TIME_WAIT], 0);
  vigil_census_free(c);
}

static void test_owners(void **state) {
  fixture *f = *state;
  char comm[32] = "";
  FILE *cf = fopen("/proc/self/comm", "r");
  assert_non_null(cf);
  assert_non_null(fgets(comm, sizeof comm, cf));
  fclose(cf);
  comm[strcspn(comm, "\n")] = '\0';

  vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL,
                                VIGIL_CENSUS_FAMILY_ALL, 1);
  assert_int_equal(c->owners_resolved, 1);
  for (size_t i = 0; i < c->nsockets; i++) {
    assert_int_equal(c->sockets[i].owner_pid, getpid());
    assert_string_equal(c->sockets[i].owner_comm, comm);
  }
  if (geteuid() == 0) assert_int_equal(c->unreadable_processes, 0);
  vigil_census_free(c);

  if (geteuid() != 0) return;
  /* As nobody, root's processes (the parent test process at least) cannot
   * be read: the census still works and says how many it could not see.
   * A process can always read its own fds, and the child holds copies of
   * every socket, so it is the owner it finds. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    vigil_census_query q;
    vigil_census *cc;
    vigil_census_query_init(&q);
    q.ports = &f->port;
    q.nports = 1;
    q.want_owners = 1;
    if (vigil_census_run(&q, &cc) != VIGIL_OK) _exit(11);
    int ok = cc->counts[VIGIL_TCP_ESTABLISHED] == NPAIRS &&
             cc->unreadable_processes > 0 && cc->owners_resolved;
    for (size_t i = 0; i < cc->nsockets; i++)
      if (cc->sockets[i].owner_pid != getpid()) ok = 0;
    vigil_census_free(cc);
    _exit(ok ? 0 : 12);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* Sockets of this process in state st. The port numbers a test gets are
 * ephemeral, so other processes on the machine may hold sockets on the
 * same number (an IPv4 client's port, say): counts of the whole census
 * would flake; what this process holds does not. */
static int mine_in_state(const vigil_census *c, vigil_tcp_state st) {
  int n = 0;
  for (size_t i = 0; i < c->nsockets; i++)
    n += c->sockets[i].in_this_process && c->sockets[i].state == st;
  return n;
}

static int count_family(const vigil_census *c, int family) {
  int n = 0;
  for (size_t i = 0; i < c->nsockets; i++) n += c->sockets[i].family == family;
  return n;
}

static void test_ipv6(void **state) {
  (void)state;
  int s6, c6;
  if (vt_tcp_pair6(&s6, &c6) != 0) {
    print_message("SKIP: no IPv6 loopback (::1)\n");
    skip();
  }
  uint16_t p6 = local_port(s6);
  vigil_census *c =
      census_port(p6, VIGIL_CENSUS_MATCH_LOCAL, VIGIL_CENSUS_FAMILY_ALL, 0);
  assert_int_equal(mine_in_state(c, VIGIL_TCP_ESTABLISHED), 1);
  const vigil_census_socket *s = find_inode(c, inode_of(s6));
  assert_non_null(s);
  assert_int_equal(s->family, AF_INET6);
  char want[64];
  snprintf(want, sizeof want, "[::1]:%u", (unsigned)p6);
  assert_string_equal(s->local, want);
  assert_int_equal(s->in_this_process, 1);
  vigil_census_free(c);

  c = census_port(p6, VIGIL_CENSUS_MATCH_LOCAL, VIGIL_CENSUS_FAMILY_IPV4, 0);
  assert_int_equal(count_family(c, AF_INET6), 0);
  assert_int_equal(count_family(c, AF_INET), (int)c->nsockets);
  vigil_census_free(c);
  c = census_port(p6, VIGIL_CENSUS_MATCH_EITHER, VIGIL_CENSUS_FAMILY_IPV6, 0);
  assert_int_equal(mine_in_state(c, VIGIL_TCP_ESTABLISHED), 2);
  assert_int_equal(count_family(c, AF_INET), 0);
  vigil_census_free(c);
  struct linger lg = {1, 0};
  setsockopt(c6, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c6);
  close(s6);
}

/* ss prints states as ESTAB, CLOSE-WAIT, FIN-WAIT-2...; vigil's parser
 * takes those too, except ESTAB. */
static int ss_state(const char *name) {
  if (strcmp(name, "ESTAB") == 0) return VIGIL_TCP_ESTABLISHED;
  if (strcmp(name, "UNCONN") == 0) return VIGIL_TCP_CLOSE;
  return vigil_census_state_parse(name);
}

static void test_agrees_with_ss(void **state) {
  fixture *f = *state;
  if (system("command -v ss >/dev/null 2>&1") != 0) {
    print_message("SKIP: ss (iproute2) not installed\n");
    skip();
  }
  /* A mix of states: one CLOSE_WAIT/FIN_WAIT2 pair, one TIME_WAIT. */
  close_fd(&f->client[1]);
  close_fd(&f->client[2]);
  ghost_wait w;
  wait_init(&w, f->port);
  w.want[VIGIL_TCP_CLOSE_WAIT] = 2;
  w.want[VIGIL_TCP_FIN_WAIT2] = 2;
  assert_true(vt_run_until(f->loop, census_shows, &w, POLL_MS));
  close_fd(&f->server[2]);
  wait_init(&w, f->port);
  w.want[VIGIL_TCP_TIME_WAIT] = 1;
  w.want[VIGIL_TCP_CLOSE_WAIT] = 1;
  w.want[VIGIL_TCP_FIN_WAIT2] = 1;
  w.want[VIGIL_TCP_LAST_ACK] = 0;
  assert_true(vt_run_until(f->loop, census_shows, &w, POLL_MS));

  uint32_t ss_counts[VIGIL_TCP_STATE__COUNT] = {0};
  char cmd[160];
  snprintf(cmd, sizeof cmd,
           "ss -Htan '( sport = :%u or dport = :%u )' 2>/dev/null",
           (unsigned)f->port, (unsigned)f->port);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[512];
  int lines = 0;
  while (fgets(line, sizeof line, p)) {
    char st[32];
    if (sscanf(line, "%31s", st) != 1) continue;
    int s = ss_state(st);
    if (s < 0) fail_msg("ss state '%s' unknown", st);
    ss_counts[s]++;
    lines++;
  }
  assert_int_equal(pclose(p), 0);
  assert_true(lines >= 2 * NPAIRS - 1);

  vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_EITHER,
                                VIGIL_CENSUS_FAMILY_ALL, 0);
  for (int s = 1; s < VIGIL_TCP_STATE__COUNT; s++)
    if (c->counts[s] != ss_counts[s])
      fail_msg("state %d: census %u, ss %u", s, c->counts[s], ss_counts[s]);
  assert_int_equal(c->total, (uint32_t)lines);
  assert_int_equal(c->counts[VIGIL_TCP_CLOSE_WAIT], 1);
  assert_int_equal(c->counts[VIGIL_TCP_FIN_WAIT2], 1);
  assert_int_equal(c->counts[VIGIL_TCP_TIME_WAIT], 1);
  vigil_census_free(c);
}

static void test_destroy(void **state) {
  fixture *f = *state;
  if (!vt_have_net_admin()) {
    vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL,
                                  VIGIL_CENSUS_FAMILY_ALL, 0);
    const vigil_census_socket *s = find_inode(c, inode_of(f->server[3]));
    assert_non_null(s);
    assert_int_equal(vigil_census_destroy(s), VIGIL_EPERM);
    vigil_census_free(c);
    print_message("SKIP: destroy success path needs CAP_NET_ADMIN\n");
    skip();
  }
  vigil_census *c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL,
                                VIGIL_CENSUS_FAMILY_ALL, 0);
  const vigil_census_socket *s = find_inode(c, inode_of(f->server[3]));
  assert_non_null(s);
  vigil_census_socket victim = *s;
  vigil_census_free(c);

  /* Without CAP_NET_ADMIN (dropped in a child): EPERM. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) _exit(10);
    d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
    d[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
    if (syscall(SYS_capset, &h, d) != 0) _exit(11);
    int rc = vigil_census_destroy(&victim);
    _exit(rc == VIGIL_EPERM ? 0 : 12);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  char b;
  assert_int_equal(recv(f->server[3], &b, 1, MSG_DONTWAIT), -1);
  assert_int_equal(errno, EAGAIN); /* still alive */

  /* With it: the socket is aborted, its next read says ECONNABORTED and
   * the peer sees a reset. */
  assert_int_equal(vigil_census_destroy(&victim), VIGIL_OK);
  assert_int_equal(recv(f->server[3], &b, 1, MSG_DONTWAIT), -1);
  assert_int_equal(errno, ECONNABORTED);
  assert_int_equal(recv(f->client[3], &b, 1, 0), -1);
  assert_int_equal(errno, ECONNRESET);

  /* Gone now: a second destroy finds nothing. */
  assert_int_equal(vigil_census_destroy(&victim), VIGIL_ENOENT);
  /* Same 4-tuple, wrong cookie: refused, the live socket survives. */
  c = census_port(f->port, VIGIL_CENSUS_MATCH_LOCAL, VIGIL_CENSUS_FAMILY_ALL,
                  0);
  s = find_inode(c, inode_of(f->server[4]));
  assert_non_null(s);
  victim = *s;
  vigil_census_free(c);
  victim.id.cookie ^= 1;
  assert_int_equal(vigil_census_destroy(&victim), VIGIL_ENOENT);
  assert_int_equal(recv(f->server[4], &b, 1, MSG_DONTWAIT), -1);
  assert_int_equal(errno, EAGAIN);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_counts_local_and_either, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cap_counts_only_and_state_filter,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_wait_orphan_time_wait, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_owners, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
      cmocka_unit_test_setup_teardown(test_agrees_with_ss, setup, teardown),
      cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
