/*
 * The one place the census talks to the kernel: a request on a fresh
 * NETLINK_SOCK_DIAG socket, answers read until the request is complete.
 * A fresh socket per request keeps stale answers from an interrupted
 * earlier request out, and costs one socket() call.
 *
 * The socket is non-blocking and every wait goes through poll() with the
 * caller's bound, so a census on an event loop can never stall it for
 * longer than that bound per read, whatever the kernel does.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "census_internal.h"

/* Big enough for any dump chunk the kernel builds (it sizes them to the
 * reader's buffer, up to 32 KiB by default); MSG_TRUNC catches the rest. */
#define CENSUS_RECV_BUF (64 * 1024)

static uint32_t next_seq(void) {
  /* Any value works on a fresh socket; vary it so stale data never
   * matches by accident. */
  static uint32_t seq;
  return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) ^ (uint32_t)getpid();
}

/* Opens a non-blocking sock_diag socket; returns fd or a negative
 * vigil_err. */
static int open_diag_socket(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  NETLINK_SOCK_DIAG);
  if (fd < 0) return vigil__census_sys("socket AF_NETLINK", errno);
  return fd;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until fd is readable: 0, VIGIL_EAGAIN after wait_ms, or a mapped
 * error. EINTR keeps the original deadline. */
static int wait_readable(int fd, uint32_t wait_ms) {
  uint64_t deadline = mono_ms() + wait_ms;
  for (;;) {
    uint64_t now = mono_ms();
    int left = now >= deadline ? 0 : (int)(deadline - now);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, left);
    if (n > 0) return 0;
    if (n == 0) return VIGIL_EAGAIN;
    if (errno != EINTR) return vigil__census_sys("poll", errno);
  }
}

/* Sends the whole message to the kernel; 0 or a negative vigil_err. */
static int send_request(int fd, struct nlmsghdr *req) {
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel,
                       sizeof kernel);
    if (n == (ssize_t)req->nlmsg_len) return 0;
    if (n >= 0) return vigil__census_sys("sendto (short)", EIO);
    if (errno != EINTR) return vigil__census_sys("sendto", errno);
  }
}

int vigil__census_exchange(struct nlmsghdr *req, vigil__census_msg_fn fn,
                           void *ctx, uint32_t wait_ms) {
  int fd = open_diag_socket();
  if (fd < 0) return fd;
  unsigned char *buf = malloc(CENSUS_RECV_BUF);
  if (!buf) {
    close(fd);
    return VIGIL_ENOMEM;
  }
  req->nlmsg_seq = next_seq();
  req->nlmsg_pid = 0;
  int rc = send_request(fd, req);
  while (rc == 0) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = CENSUS_RECV_BUF};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        rc = wait_readable(fd, wait_ms);
        continue;
      }
      rc = vigil__census_sys("recvmsg", errno);
      break;
    }
    if (n == 0 || (msg.msg_flags & MSG_TRUNC)) {
      rc = VIGIL_EPROTO;
      break;
    }
    /* Only the kernel (port id 0) answers; ignore anything else. */
    if (msg.msg_namelen >= sizeof from && from.nl_pid != 0) continue;
    rc = vigil__census_parse(buf, (size_t)n, req->nlmsg_seq, fn, ctx, NULL);
  }
  free(buf);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}
