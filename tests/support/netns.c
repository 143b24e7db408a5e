/*
 * Network-namespace harness for fault tests; see netns.h for the model.
 *
 * Commands run through run_cmd(): fork + execv with an argv array (never a
 * shell), stdout optionally captured, stderr captured and printed with the
 * command line when it fails. Cleanup on signals cannot fork safely, so the
 * registry keeps the /run/netns paths and the handler does what
 * `ip netns delete` does: umount2(MNT_DETACH) + unlink.
 */
#include "netns.h"

#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns"
#define LOCK_PATH "/run/vigiltest-netns.lock"
#define NAME_PREFIX "vigiltest-"
#define REG_MAX 64
#define MAX_ARGS 48
#define PATH_CAP 256

/* ---- tools and commands ------------------------------------------------ */

/* Finds an executable named tool in PATH, then in the sbin/bin directories
 * (ctest may run with a PATH lacking /usr/sbin). 0 and out filled, or -1. */
static int find_tool(const char *tool, char *out, size_t cap) {
  if (strchr(tool, '/')) {
    snprintf(out, cap, "%s", tool);
    return access(out, X_OK) == 0 ? 0 : -1;
  }
  char dirs[1024];
  const char *path = getenv("PATH");
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin:/usr/bin:/bin",
           path ? path : "");
  char *save = NULL;
  for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    if (!*d) continue;
    if ((size_t)snprintf(out, cap, "%s/%s", d, tool) >= cap) continue;
    if (access(out, X_OK) == 0) return 0;
  }
  return -1;
}

static void log_cmd(const char *const argv[], const char *what,
                    const char *err) {
  fprintf(stderr, "netns: %s:", what);
  for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
  fprintf(stderr, "\n");
  if (err && *err) fprintf(stderr, "netns:   stderr: %s", err);
  if (err && *err && err[strlen(err) - 1] != '\n') fprintf(stderr, "\n");
}

/* Appends what is readable on *fd to buf (keeps it NUL-terminated, drops
 * the excess past cap); closes and sets *fd = -1 at EOF. */
static void drain_into(int *fd, char *buf, size_t cap, size_t *used) {
  char tmp[4096];
  ssize_t n = read(*fd, tmp, sizeof tmp);
  if (n < 0 && errno == EINTR) return;
  if (n <= 0) {
    close(*fd);
    *fd = -1;
    return;
  }
  if (!buf || cap == 0) return;
  size_t room = cap - 1 - *used;
  size_t take = (size_t)n < room ? (size_t)n : room;
  memcpy(buf + *used, tmp, take);
  *used += take;
  buf[*used] = '\0';
}

/* Runs argv (argv[0] resolved with find_tool) and waits for it. stdout goes
 * to out when given, else to /dev/null. Quiet: do not log a non-zero exit
 * (for probes whose failure is expected). Returns the exit status, or -1
 * if the command could not be started or died from a signal. */
static int run_cmd_q(const char *const argv[], char *out, size_t cap,
                     int quiet) {
  char exe[PATH_CAP];
  if (find_tool(argv[0], exe, sizeof exe) < 0) {
    if (!quiet) log_cmd(argv, "command not found", NULL);
    return -1;
  }
  int outp[2] = {-1, -1}, errp[2] = {-1, -1};
  if (pipe2(errp, O_CLOEXEC) < 0) return -1;
  if (out && pipe2(outp, O_CLOEXEC) < 0) {
    close(errp[0]);
    close(errp[1]);
    return -1;
  }
  if (out && cap) out[0] = '\0';
  pid_t pid = fork();
  if (pid < 0) {
    close(errp[0]);
    close(errp[1]);
    if (out) {
      close(outp[0]);
      close(outp[1]);
    }
    return -1;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls between fork and exec. */
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(out ? outp[1] : devnull, 1);
    dup2(errp[1], 2);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  close(errp[1]);
  if (out) close(outp[1]);
  char err[2048] = "";
  size_t err_used = 0, out_used = 0;
  int ofd = out ? outp[0] : -1, efd = errp[0];
  while (ofd >= 0 || efd >= 0) {
    struct pollfd pf[2] = {{.fd = ofd, .events = POLLIN},
                           {.fd = efd, .events = POLLIN}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ofd >= 0 && pf[0].revents) drain_into(&ofd, out, cap, &out_used);
    if (efd >= 0 && pf[1].revents) drain_into(&efd, err, sizeof err, &err_used);
  }
  if (ofd >= 0) close(ofd);
  if (efd >= 0) close(efd);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (rc != 0 && !quiet) {
    char what[64];
    snprintf(what, sizeof what, "command failed (%s %d)",
             WIFEXITED(st) ? "exit" : "signal",
             WIFEXITED(st) ? rc : WTERMSIG(st));
    log_cmd(argv, what, err);
  }
  return rc;
}

static int run_cmd(const char *const argv[], char *out, size_t cap) {
  return run_cmd_q(argv, out, cap, 0);
}

/* ---- registry and emergency cleanup ------------------------------------ */

/* Copies, not pointers: a failed cmocka test longjmps out of the frame that
 * held its struct vt_netns_pair. owner guards against forked children
 * deleting their parent's namespaces from inherited handlers. */
static struct {
  pid_t owner;
  int used;
  char path[2][sizeof NETNS_DIR + VT_NETNS_NAME_MAX];
} g_reg[REG_MAX];

static int g_orig_ns = -1;   /* fd of the namespace we started in */
static int g_next_index;     /* n of the next pair */
static int g_hooks_installed;
static struct sigaction g_old_act[4];
static const int g_signals[4] = {SIGINT, SIGTERM, SIGABRT, SIGHUP};

/* Async-signal-safe: what `ip netns delete` does. */
static void reg_remove_paths(int slot) {
  for (int s = 0; s < 2; s++) {
    umount2(g_reg[slot].path[s], MNT_DETACH);
    unlink(g_reg[slot].path[s]);
  }
}

static void cleanup_all(void) {
  pid_t me = getpid();
  for (int i = 0; i < REG_MAX; i++)
    if (g_reg[i].used && g_reg[i].owner == me) {
      reg_remove_paths(i);
      g_reg[i].used = 0;
    }
}

static void on_fatal_signal(int sig) {
  int saved = errno;
  cleanup_all();
  for (int i = 0; i < 4; i++)
    if (g_signals[i] == sig) sigaction(sig, &g_old_act[i], NULL);
  errno = saved;
  raise(sig); /* delivered when this handler returns, with the old action */
}

static void install_hooks(void) {
  if (g_hooks_installed) return;
  g_hooks_installed = 1;
  atexit(cleanup_all);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 4; i++) sigaction(g_signals[i], &sa, &g_old_act[i]);
}

static int reg_add(const struct vt_netns_pair *p) {
  for (int i = 0; i < REG_MAX; i++)
    if (!g_reg[i].used) {
      for (int s = 0; s < 2; s++)
        snprintf(g_reg[i].path[s], sizeof g_reg[i].path[s], NETNS_DIR "/%s",
                 p->name[s]);
      g_reg[i].owner = getpid();
      g_reg[i].used = 1;
      return 0;
    }
  return -1;
}

static void reg_del(const struct vt_netns_pair *p) {
  char path[sizeof NETNS_DIR + VT_NETNS_NAME_MAX];
  snprintf(path, sizeof path, NETNS_DIR "/%s", p->name[0]);
  for (int i = 0; i < REG_MAX; i++)
    if (g_reg[i].used && strcmp(g_reg[i].path[0], path) == 0) g_reg[i].used = 0;
}

/* Deletes vigiltest-<pid>-* namespaces whose process is gone (a run killed
 * by SIGKILL, e.g. a ctest timeout, cannot clean up after itself). */
static void remove_stale(void) {
  DIR *d = opendir(NETNS_DIR);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, NAME_PREFIX, strlen(NAME_PREFIX)) != 0) continue;
    char *end = NULL;
    long pid = strtol(e->d_name + strlen(NAME_PREFIX), &end, 10);
    if (pid <= 0 || !end || *end != '-' || pid == getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    const char *argv[] = {"ip", "netns", "delete", e->d_name, NULL};
    if (run_cmd(argv, NULL, 0) == 0)
      fprintf(stderr, "netns: removed stale namespace %s\n", e->d_name);
  }
  closedir(d);
}

/* ---- entering namespaces ----------------------------------------------- */

static int open_orig_ns(void) {
  if (g_orig_ns >= 0) return 0;
  g_orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  return g_orig_ns >= 0 ? 0 : -1;
}

int vt_netns_enter(struct vt_netns_pair *p, int side) {
  if (!p || !p->live || (side != VT_NETNS_A && side != VT_NETNS_B) ||
      open_orig_ns() < 0) {
    errno = EINVAL;
    return -1;
  }
  char path[sizeof NETNS_DIR + VT_NETNS_NAME_MAX];
  snprintf(path, sizeof path, NETNS_DIR "/%s", p->name[side]);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = setns(fd, CLONE_NEWNET);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

void vt_netns_leave(void) {
  if (g_orig_ns < 0) return;
  if (setns(g_orig_ns, CLONE_NEWNET) < 0) {
    perror("netns: cannot return to the original network namespace");
    abort();
  }
}

int vt_netns_socket(struct vt_netns_pair *p, int side, int domain, int type,
                    int proto) {
  if (vt_netns_enter(p, side) < 0) return -1;
  int fd = socket(domain, type | SOCK_CLOEXEC, proto);
  int saved = errno;
  vt_netns_leave();
  errno = saved;
  return fd;
}

/* ---- pairs --------------------------------------------------------------- */

/* Serializes pair creation across test processes (ctest -j): the first
 * `ip netns add` on a machine turns /run/netns into a shared mount, and two
 * doing that at once can stack mounts; stale removal must not race either.
 * Returns the lock fd (close() releases it), or -1 if locking is impossible
 * (then we go on unserialized). */
static int lock_machine(void) {
  int fd = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) {
      close(fd);
      return -1;
    }
  return fd;
}

/* Waits until vt0 in side reports operstate UP: the kernel activates the
 * device's qdisc in the same linkwatch step, and before that every packet
 * is dropped, which would cost the first connect a 1 s SYN retransmit. */
static int wait_link_up(struct vt_netns_pair *p, int side) {
  const char *argv[] = {"ip", "-n", p->name[side], "-o", "link", "show",
                        "dev", "vt0", NULL};
  char out[1024];
  uint64_t end = vt_now_ms() + 3000;
  do {
    if (run_cmd(argv, out, sizeof out) != 0) return -1;
    if (strstr(out, "state UP")) return 0;
    usleep(2000);
  } while (vt_now_ms() < end);
  fprintf(stderr, "netns: vt0 in %s did not come up: %s", p->name[side], out);
  return -1;
}

int vt_netns_pair_create(struct vt_netns_pair *p) {
  memset(p, 0, sizeof *p);
  if (g_next_index >= 512) {
    fprintf(stderr, "netns: too many pairs in one process\n");
    return -1;
  }
  if (open_orig_ns() < 0) {
    perror("netns: open /proc/self/ns/net");
    return -1;
  }
  install_hooks();
  int lock = lock_machine();
  remove_stale();

  p->index = g_next_index++;
  for (int s = 0; s < 2; s++) {
    snprintf(p->name[s], sizeof p->name[s], NAME_PREFIX "%d-%d-%c",
             (int)getpid(), p->index, s == VT_NETNS_A ? 'a' : 'b');
    snprintf(p->addr[s], sizeof p->addr[s], "198.%u.%u.%u",
             (unsigned char)(18 + p->index / 256),
             (unsigned char)(p->index % 256), (unsigned char)(s + 1));
    inet_pton(AF_INET, p->addr[s], &p->in[s]);
  }
  if (reg_add(p) < 0) {
    fprintf(stderr, "netns: more than %d live pairs\n", REG_MAX);
    if (lock >= 0) close(lock);
    return -1;
  }
  p->live = 1;

  char cidr[2][24];
  for (int s = 0; s < 2; s++)
    snprintf(cidr[s], sizeof cidr[s], "%s/24", p->addr[s]);
  const char *A = p->name[0], *B = p->name[1];
  /* The veth is made inside A with its peer placed straight into B, so no
   * interface name ever exists in the caller's namespace. */
  const char *const steps[][14] = {
      {"ip", "netns", "add", A, NULL},
      {"ip", "netns", "add", B, NULL},
      {"ip", "-n", A, "link", "add", "vt0", "type", "veth", "peer", "name",
       "vt0", "netns", B, NULL},
      {"ip", "-n", A, "addr", "add", cidr[0], "dev", "vt0", NULL},
      {"ip", "-n", B, "addr", "add", cidr[1], "dev", "vt0", NULL},
      {"ip", "-n", A, "link", "set", "lo", "up", NULL},
      {"ip", "-n", B, "link", "set", "lo", "up", NULL},
      {"ip", "-n", A, "link", "set", "vt0", "up", NULL},
      {"ip", "-n", B, "link", "set", "vt0", "up", NULL},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if (run_cmd(steps[i], NULL, 0) != 0) goto fail;
  if (wait_link_up(p, VT_NETNS_A) < 0 || wait_link_up(p, VT_NETNS_B) < 0)
    goto fail;
  if (lock >= 0) close(lock);
  return 0;
fail:
  fprintf(stderr, "netns: could not create pair %d\n", p->index);
  vt_netns_pair_destroy(p);
  if (lock >= 0) close(lock);
  return -1;
}

int vt_netns_pair_destroy(struct vt_netns_pair *p) {
  if (!p || !p->live) return 0;
  int rc = 0;
  for (int s = 0; s < 2; s++) {
    char path[sizeof NETNS_DIR + VT_NETNS_NAME_MAX];
    snprintf(path, sizeof path, NETNS_DIR "/%s", p->name[s]);
    if (access(path, F_OK) != 0) continue; /* creation stopped early */
    const char *argv[] = {"ip", "netns", "delete", p->name[s], NULL};
    if (run_cmd(argv, NULL, 0) != 0) rc = -1;
  }
  reg_del(p);
  p->live = 0;
  p->silenced[0] = p->silenced[1] = 0;
  return rc;
}

/* ---- sockets ------------------------------------------------------------- */

void vt_netns_sockaddr(const struct vt_netns_pair *p, int side, uint16_t port,
                       struct sockaddr_in *out) {
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(port);
  out->sin_addr = p->in[side & 1];
}

int vt_netns_listen(struct vt_netns_pair *p, int side, uint16_t *port) {
  int fd = vt_netns_socket(p, side, AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  vt_netns_sockaddr(p, side, port ? *port : 0, &a);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  if (port) *port = ntohs(a.sin_port);
  return fd;
}

int vt_netns_connect(struct vt_netns_pair *p, int from_side, uint16_t to_port) {
  int fd = vt_netns_socket(p, from_side, AF_INET, SOCK_STREAM | SOCK_NONBLOCK,
                           0);
  if (fd < 0) return -1;
  struct sockaddr_in a;
  vt_netns_sockaddr(p, !from_side, to_port, &a);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int n;
    do n = poll(&pf, 1, 3000);
    while (n < 0 && errno == EINTR);
    int err = 0;
    socklen_t el = sizeof err;
    if (n == 0)
      err = ETIMEDOUT;
    else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
      err = errno;
    rc = err ? -1 : 0;
    errno = err;
  }
  if (rc < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/* ---- commands inside a namespace ----------------------------------------- */

static int run_in_ns(struct vt_netns_pair *p, int side,
                     const char *const argv[], char *out, size_t cap,
                     int quiet) {
  if (!p || !p->live || (side != VT_NETNS_A && side != VT_NETNS_B)) return -1;
  char exe[PATH_CAP];
  if (find_tool(argv[0], exe, sizeof exe) < 0) {
    fprintf(stderr, "netns: %s not found\n", argv[0]);
    return -1;
  }
  const char *full[MAX_ARGS] = {"ip", "netns", "exec", p->name[side], exe};
  int n = 5;
  for (int i = 1; argv[i]; i++) {
    if (n >= MAX_ARGS - 1) return -1;
    full[n++] = argv[i];
  }
  full[n] = NULL;
  return run_cmd_q(full, out, cap, quiet);
}

int vt_netns_run(struct vt_netns_pair *p, int side, const char *const argv[],
                 char *out, size_t cap) {
  return run_in_ns(p, side, argv, out, cap, 0);
}

int vt_netns_silence(struct vt_netns_pair *p, int side, int on) {
  if (!p || !p->live || (side != VT_NETNS_A && side != VT_NETNS_B)) return -1;
  on = !!on;
  if (p->silenced[side] == on) return 0;
  /* One nft invocation is one transaction: both directions start dropping
   * at the same instant. */
  static const char ruleset[] =
      "add table inet vigiltest; "
      "add chain inet vigiltest input"
      " { type filter hook input priority 0; policy accept; }; "
      "add chain inet vigiltest output"
      " { type filter hook output priority 0; policy accept; }; "
      "add rule inet vigiltest input drop; "
      "add rule inet vigiltest output drop";
  const char *add[] = {"nft", ruleset, NULL};
  const char *del[] = {"nft", "delete table inet vigiltest", NULL};
  if (vt_netns_run(p, side, on ? add : del, NULL, 0) != 0) return -1;
  p->silenced[side] = on;
  return 0;
}

/* ss state names (iproute2 misc/ss.c) by kernel TCP state value. */
static const char *const g_ss_states[VT_TCP_STATE_SLOTS] = {
    "", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
    "TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING"};

/* Port after the last ':' of an ss address column, or -1. */
static long column_port(const char *col) {
  const char *c = strrchr(col, ':');
  if (!c || !c[1]) return -1;
  char *end;
  long v = strtol(c + 1, &end, 10);
  return *end ? -1 : v;
}

int vt_netns_tcp_states(struct vt_netns_pair *p, int side, uint16_t port,
                        int counts[VT_TCP_STATE_SLOTS]) {
  memset(counts, 0, sizeof(int) * VT_TCP_STATE_SLOTS);
  size_t cap = 1 << 20;
  char *out = malloc(cap);
  if (!out) return -1;
  const char *argv[] = {"ss", "-Htan", NULL};
  if (vt_netns_run(p, side, argv, out, cap) != 0) {
    free(out);
    return -1;
  }
  int rc = 0;
  char *save = NULL;
  for (char *line = strtok_r(out, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char st[32], rq[32], sq[32], local[128], peer[128];
    if (sscanf(line, "%31s %31s %31s %127s %127s", st, rq, sq, local, peer) != 5)
      continue;
    if (column_port(local) != port && column_port(peer) != port) continue;
    int found = 0;
    for (int i = 1; i < VT_TCP_STATE_SLOTS; i++)
      if (strcmp(st, g_ss_states[i]) == 0) {
        counts[i]++;
        counts[0]++;
        found = 1;
      }
    if (!found) {
      fprintf(stderr, "netns: unknown ss state '%s'\n", st);
      rc = -1;
    }
  }
  free(out);
  return rc;
}

/* ---- availability ---------------------------------------------------------- */

int vt_netns_available(char *why, size_t len) {
  static int cached = -1;
  static char reason[256];
  if (cached < 0) {
    char exe[PATH_CAP];
    cached = 0;
    if (!vt_have_net_admin())
      snprintf(reason, sizeof reason,
               "fault tests need CAP_NET_ADMIN (run as root)");
    else if (find_tool("ip", exe, sizeof exe) < 0)
      snprintf(reason, sizeof reason, "`ip` (iproute2) not found");
    else if (find_tool("nft", exe, sizeof exe) < 0)
      snprintf(reason, sizeof reason, "`nft` (nftables) not found");
    else if (find_tool("ss", exe, sizeof exe) < 0)
      snprintf(reason, sizeof reason, "`ss` (iproute2) not found");
    else {
      struct vt_netns_pair probe;
      if (vt_netns_pair_create(&probe) < 0) {
        snprintf(reason, sizeof reason,
                 "cannot create a network namespace pair (see stderr)");
      } else {
        int fd = vt_netns_socket(&probe, VT_NETNS_B, AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
          snprintf(reason, sizeof reason, "setns into a test namespace: %s",
                   strerror(errno));
        else if (close(fd), vt_netns_silence(&probe, VT_NETNS_B, 1) < 0 ||
                 vt_netns_silence(&probe, VT_NETNS_B, 0) < 0)
          snprintf(reason, sizeof reason,
                   "nftables rules cannot be installed in a namespace");
        else
          cached = 1;
        vt_netns_pair_destroy(&probe);
      }
    }
  }
  if (why && len) snprintf(why, len, "%s", cached ? "" : reason);
  return cached;
}
