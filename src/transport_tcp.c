/*
 * The plain TCP transport: direct system calls on the conn's socket.
 *
 * MSG_NOSIGNAL on every send: a peer reset must be an EPIPE return, not a
 * SIGPIPE that kills the host process.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "close.h"
#include "conn.h"
#include "outqueue.h"
#include "transport.h"

/* Queue chunks written per sendmsg. */
#define OUTQ_IOV 16

static ssize_t tcp_read(vigil_conn *c, void *buf, size_t cap) {
  for (;;) {
    ssize_t n = recv(c->io.fd, buf, cap, 0);
    if (n > 0) {
      vigil__conn_note_rx(c, (size_t)n);
      return n;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return VIGIL__IO_AGAIN;
    vigil__conn_io_failed(c, errno);
    return VIGIL__IO_CLOSED;
  }
}

static int tcp_write_queue(vigil_conn *c) {
  vigil__outq *q = &c->outq;
  while (q->queued > 0) {
    struct iovec iov[OUTQ_IOV];
    struct msghdr msg = {0};
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)vigil__outq_iov(q, iov, OUTQ_IOV);
    ssize_t w = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      vigil__conn_io_failed(c, errno);
      return VIGIL__IO_CLOSED;
    }
    if (w == 0) break; /* not for a stream socket; never spin on it */
    vigil__outq_consume(q, (size_t)w);
    vigil__conn_note_tx(c, (size_t)w);
  }
  return 0;
}

static ssize_t tcp_send(vigil_conn *c, const void *data, size_t len) {
  if (c->outq.queued > 0) return 0; /* behind queued bytes */
  ssize_t w;
  do
    w = send(c->io.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    vigil__conn_io_failed(c, errno);
    return VIGIL_ECLOSED;
  }
  if (w > 0) vigil__conn_note_tx(c, (size_t)w);
  return w;
}

const vigil__transport vigil__transport_tcp = {
    .name = "tcp",
    .read = tcp_read,
    .write_queue = tcp_write_queue,
    .send = tcp_send,
    .reads_per_event = 4,
    .short_read_drains = 1,
};
