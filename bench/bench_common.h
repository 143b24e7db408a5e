/*
 * Helpers shared by the bench programs (header-only: bench/CMakeLists.txt
 * turns each bench_*.c into one executable, so shared code lives here as
 * static functions).
 *
 *  - clocks: monotonic ns/ms;
 *  - statistics: median/min/max and nearest-rank percentiles of doubles;
 *  - JSON output: tiny fprintf helpers (the bench results are flat);
 *  - /proc readers: a process's CPU time (sum of its threads'
 *    se.sum_exec_runtime, ns precision; /proc/PID/stat ticks as fallback),
 *    its RSS, the 1-minute load average;
 *  - a client child: a forked process that opens N idle TCP connections
 *    to a loopback port (the server side lives in the bench process, so
 *    each side stays under the 20,000-files-per-process limit).
 */
#ifndef VIGIL_BENCH_COMMON_H
#define VIGIL_BENCH_COMMON_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks -------------------------------------------------------------- */

static inline uint64_t bc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double bc_now_ms(void) { return (double)bc_now_ns() / 1e6; }

/* ---- statistics ---------------------------------------------------------- */

static int bc_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static inline void bc_sort(double *v, size_t n) {
  qsort(v, n, sizeof *v, bc_cmp_double);
}

/* Nearest-rank percentile (p in 0..100) of a SORTED array; 0 if empty. */
static inline double bc_pct_sorted(const double *v, size_t n, double p) {
  if (n == 0) return 0;
  double rank = p / 100.0 * (double)n;
  size_t i = rank <= 1 ? 0 : (size_t)(rank + 0.999999) - 1;
  return v[i < n ? i : n - 1];
}

/* Median of a SORTED array (mean of the middle two for even n). */
static inline double bc_median_sorted(const double *v, size_t n) {
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- JSON ------------------------------------------------------------------ */

/* "name": {"median": m, "min": a, "max": b, "n": n} from unsorted values
 * (copied, not modified). Always followed by the caller's separator. */
static inline void bc_json_stats(FILE *f, const char *name, const double *v,
                                 size_t n) {
  double *s = malloc((n ? n : 1) * sizeof *s);
  if (!s) abort();
  memcpy(s, v, n * sizeof *s);
  bc_sort(s, n);
  fprintf(f, "\"%s\": {\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, "
             "\"n\": %zu}",
          name, bc_median_sorted(s, n), n ? s[0] : 0, n ? s[n - 1] : 0, n);
  free(s);
}

/* ---- /proc --------------------------------------------------------------- */

static inline double bc_loadavg1(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

/* One thread's se.sum_exec_runtime in ns from its sched file; -1 if the
 * file or the field is missing. */
static inline double bc_task_runtime_ns(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[256];
  double v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "se.sum_exec_runtime", 19) == 0) {
      const char *colon = strchr(line, ':');
      if (colon) v = strtod(colon + 1, NULL) * 1e6; /* ms -> ns */
      break;
    }
  fclose(f);
  return v;
}

/* CPU time used so far by process pid (all its live threads), in ns;
 * -1 if the process is gone. Precise (scheduler runtime) when
 * /proc/PID/task/TID/sched exists, else utime+stime in clock ticks. */
static inline double bc_proc_cpu_ns(pid_t pid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (d) {
    double sum = 0;
    int ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p2[320];
      snprintf(p2, sizeof p2, "/proc/%d/task/%s/sched", (int)pid, e->d_name);
      double v = bc_task_runtime_ns(p2);
      if (v >= 0) {
        sum += v;
        ok = 1;
      }
    }
    closedir(d);
    if (ok) return sum;
  }
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* comm may contain spaces */
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &ut, &st) != 2)
    return -1;
  return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of pid in KiB; -1 if unknown. */
static inline long bc_proc_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* ---- a child holding idle client connections ---------------------------- */

typedef struct bc_clients {
  pid_t pid;
  int ctl;    /* parent's end: child writes "ready N\n"; closing it (or
                 killing the child) ends the child */
} bc_clients;

/* In the child: opens n connections to 127.0.0.1:port (at most 256
 * handshakes in flight), sends `hello` (may be NULL) on each, reports
 * "ready <count> <failed>\n" on ctl and holds them until ctl closes or
 * 120 s pass. Never returns. */
static void bc_clients_child(uint16_t port, int n, const char *hello,
                             int ctl) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct pollfd *pf = calloc((size_t)n + 1, sizeof *pf);
  int *fds = calloc((size_t)n, sizeof *fds);
  if (!pf || !fds) _exit(3);
  int opened = 0, done = 0, failed = 0;
  size_t hlen = hello ? strlen(hello) : 0;
  uint64_t deadline = bc_now_ns() + 60ull * 1000000000u;
  /* Connect in waves of 256 non-blocking handshakes. */
  while (opened < n && bc_now_ns() < deadline) {
    int wave = n - opened < 256 ? n - opened : 256;
    for (int i = 0; i < wave; i++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) _exit(4);
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
          errno != EINPROGRESS)
        _exit(5);
      fds[opened + i] = fd;
      pf[i].fd = fd;
      pf[i].events = POLLOUT;
      pf[i].revents = 0;
    }
    int pending = wave;
    while (pending > 0 && bc_now_ns() < deadline) {
      if (poll(pf, (nfds_t)wave, 1000) < 0 && errno != EINTR) _exit(6);
      for (int i = 0; i < wave; i++) {
        if (pf[i].fd < 0 || !pf[i].revents) continue;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(pf[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) failed++;
        else {
          done++;
          if (hlen && send(pf[i].fd, hello, hlen, MSG_NOSIGNAL) < 0) failed++;
        }
        pf[i].fd = -1;
        pending--;
      }
    }
    opened += wave;
  }
  char msg[64];
  int len = snprintf(msg, sizeof msg, "ready %d %d\n", done, failed);
  if (write(ctl, msg, (size_t)len) < 0) _exit(7);
  /* Hold the connections without reading: the benches send at most a few
   * small frames, which the socket buffers absorb. */
  struct pollfd cp = {.fd = ctl, .events = POLLIN};
  while (poll(&cp, 1, 120000) < 0 && errno == EINTR) {
  }
  _exit(0);
}

/* Forks a child holding n idle connections to 127.0.0.1:port. Returns 0
 * and fills *c, or -1. The caller watches c->ctl for "ready D F\n". */
static inline int bc_clients_spawn(bc_clients *c, uint16_t port, int n,
                                   const char *hello) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(sv[0]);
    bc_clients_child(port, n, hello, sv[1]);
  }
  close(sv[1]);
  c->pid = pid;
  c->ctl = sv[0];
  return 0;
}

/* Ends the child (closes ctl, then SIGKILL after 2 s) and reaps it. */
static inline void bc_clients_stop(bc_clients *c) {
  if (c->pid <= 0) return;
  close(c->ctl);
  for (int i = 0; i < 200; i++) {
    if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
      c->pid = 0;
      return;
    }
    usleep(10000);
  }
  kill(c->pid, SIGKILL);
  waitpid(c->pid, NULL, 0);
  c->pid = 0;
}

/* A private redis-server on a free loopback port (no persistence, output
 * to /dev/null): its pid, or -1. VIGIL_REDIS_SERVER names another binary.
 * The caller waits until it answers, kills and reaps it. */
static inline pid_t bc_redis_start(uint16_t *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0)
    return -1;
  close(fd);
  *port = ntohs(a.sin_port);
  char p[8];
  snprintf(p, sizeof p, "%u", (unsigned)*port);
  const char *server = getenv("VIGIL_REDIS_SERVER");
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    closefrom(3);
    execlp(server && *server ? server : "redis-server", "redis-server",
           "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly",
           "no", "--dir", "/tmp", (char *)NULL);
    _exit(127);
  }
  return pid;
}


#endif
