#include "testutil.h"

#include "hub.h" /* vigil__hub_run_due: tests drive a fake clock */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t vt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t vt_fake_clock(void *data) { return *(uint64_t *)data; }

void vt_advance(struct ev_loop *loop, struct vigil_hub *hub,
                uint64_t *fake_now, uint64_t ms) {
  *fake_now += ms;
  vigil__hub_run_due(hub);
  ev_run(loop, EVRUN_NOWAIT);
}

static int pair_on(int family, int *server_fd, int *client_fd) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) return -1;
  if (bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 4) < 0 ||
      getsockname(l, (struct sockaddr *)&ss, &len) < 0) {
    close(l);
    return -1;
  }
  int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0) {
    if (c >= 0) close(c);
    close(l);
    return -1;
  }
  int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  close(l);
  if (s < 0) {
    close(c);
    return -1;
  }
  *server_fd = s;
  *client_fd = c;
  return 0;
}

int vt_tcp_pair(int *server_fd, int *client_fd) {
  return pair_on(AF_INET, server_fd, client_fd);
}

int vt_tcp_pair6(int *server_fd, int *client_fd) {
  return pair_on(AF_INET6, server_fd, client_fd);
}

int vt_connect_loopback(uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) return -1;
  if (connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
    close(c);
    return -1;
  }
  return c;
}

static void wake_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop; (void)w; (void)revents;
}

int vt_run_until(struct ev_loop *loop, int (*pred)(void *), void *arg,
                 uint32_t timeout_ms) {
  uint64_t end = vt_now_ms() + timeout_ms;
  /* A short repeating timer guarantees ev_run(ONCE) returns regularly even
   * when nothing else is active. */
  ev_timer guard;
  ev_timer_init(&guard, wake_cb, 0.005, 0.005);
  ev_timer_start(loop, &guard);
  int ok = 0;
  for (;;) {
    if (pred && pred(arg)) {
      ok = 1;
      break;
    }
    if (vt_now_ms() >= end) break;
    ev_run(loop, EVRUN_ONCE);
  }
  ev_timer_stop(loop, &guard);
  return ok;
}

int vt_wait_until(int (*pred)(void *), void *arg, uint32_t timeout_ms) {
  uint64_t end = vt_now_ms() + timeout_ms;
  for (;;) {
    if (pred(arg)) return 1;
    if (vt_now_ms() >= end) return 0;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

int vt_thread_count(const char *prefix) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* the thread just exited */
    if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
    fclose(f);
    if (!prefix || strncmp(comm, prefix, strlen(prefix)) == 0) n++;
  }
  closedir(d);
  return n;
}

long vt_read_avail(int fd, void *buf, size_t cap, int *eof) {
  size_t got = 0;
  if (eof) *eof = 0;
  while (got < cap) {
    ssize_t n = recv(fd, (char *)buf + got, cap - got, MSG_DONTWAIT);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    if (n == 0) {
      if (eof) *eof = 1;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return got ? (long)got : -1;
  }
  return (long)got;
}

int vt_tcp_state(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return -1;
  return ti.tcpi_state;
}

int vt_open_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

int vt_have_net_admin(void) {
  /* Capability bit 12 = CAP_NET_ADMIN in the effective set. */
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
  fclose(f);
  return (eff >> 12) & 1u;
}

void vt_skip(const char *why) {
  printf("SKIP: %s\n", why);
  fflush(stdout);
  exit(77);
}

size_t vt_recv_n(int fd, void *buf, size_t n, uint32_t timeout_ms) {
  size_t got = 0;
  uint64_t until = vt_now_ms() + timeout_ms;
  while (got < n) {
    uint64_t now = vt_now_ms();
    if (now >= until) break;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, (int)(until - now)) != 1) break;
    ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

int vt_wait_closed(int fd, uint32_t timeout_ms) {
  uint64_t until = vt_now_ms() + timeout_ms;
  char buf[512];
  for (;;) {
    uint64_t now = vt_now_ms();
    if (now >= until) return VT_STILL_OPEN;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, (int)(until - now)) != 1) return VT_STILL_OPEN;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r == 0) return VT_GOT_FIN;
    if (r < 0) return errno == ECONNRESET ? VT_GOT_RST : VT_STILL_OPEN;
  }
}
