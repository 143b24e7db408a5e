/*
 * Output queue: bytes vigil_send accepted that the kernel did not take yet.
 *
 * A circular singly linked list of chunks keeps the per-connection cost at
 * one pointer (the tail; tail->next is the head). Small sends coalesce into
 * the tail chunk's spare room, so a burst of tiny messages does not become
 * a burst of allocations. An idle connection holds no chunk at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn.h"
#include "outqueue.h"

#define OUTCHUNK_MIN 4096
#define OUTQ_IOV 16

struct vigil__outchunk {
  vigil__outchunk *next;
  size_t cap;
  size_t start; /* first unsent byte */
  size_t end;   /* one past the last queued byte */
  char data[];
};

int vigil__outq_append(vigil_conn *c, const void *data, size_t len) {
  vigil__outchunk *tail = c->outq_tail;
  if (tail && tail->cap - tail->end > 0) {
    size_t room = tail->cap - tail->end;
    size_t n = len < room ? len : room;
    memcpy(tail->data + tail->end, data, n);
    tail->end += n;
    data = (const char *)data + n;
    len -= n;
    c->queued += n;
  }
  if (len == 0) return VIGIL_OK;
  size_t cap = len > OUTCHUNK_MIN ? len : OUTCHUNK_MIN;
  vigil__outchunk *ch = malloc(sizeof *ch + cap);
  if (!ch) return VIGIL_ENOMEM;
  ch->cap = cap;
  ch->start = 0;
  ch->end = len;
  memcpy(ch->data, data, len);
  if (tail) {
    ch->next = tail->next;
    tail->next = ch;
  } else {
    ch->next = ch;
  }
  c->outq_tail = ch;
  c->queued += len;
  return VIGIL_OK;
}

/* Drops fully sent chunks from the head. */
static void consume(vigil_conn *c, size_t n);

/* TLS (tls_conn.c) feeds SSL_write one chunk at a time: a record must be
 * retried with the same bytes, which a chunk's head keeps in place. */
size_t vigil__outq_peek(vigil_conn *c, const void **data) {
  if (!c->outq_tail) return 0;
  vigil__outchunk *head = c->outq_tail->next;
  *data = head->data + head->start;
  return head->end - head->start;
}

void vigil__outq_consume(vigil_conn *c, size_t n) { consume(c, n); }

static void consume(vigil_conn *c, size_t n) {
  c->queued -= n;
  while (n > 0 && c->outq_tail) {
    vigil__outchunk *head = c->outq_tail->next;
    size_t avail = head->end - head->start;
    if (n < avail) {
      head->start += n;
      return;
    }
    n -= avail;
    if (head == c->outq_tail) {
      c->outq_tail = NULL;
    } else {
      c->outq_tail->next = head->next;
    }
    free(head);
  }
}

long vigil__outq_write(vigil_conn *c) {
  long total = 0;
  while (c->outq_tail) {
    struct iovec iov[OUTQ_IOV];
    int n = 0;
    vigil__outchunk *ch = c->outq_tail->next;
    for (;;) {
      iov[n].iov_base = ch->data + ch->start;
      iov[n].iov_len = ch->end - ch->start;
      n++;
      if (ch == c->outq_tail || n == OUTQ_IOV) break;
      ch = ch->next;
    }
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    /* MSG_NOSIGNAL: a peer reset must be an EPIPE return, not a SIGPIPE
     * that kills the host process. */
    ssize_t w = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    consume(c, (size_t)w);
    total += w;
  }
  return total;
}

void vigil__outq_clear(vigil_conn *c) {
  while (c->outq_tail) {
    vigil__outchunk *head = c->outq_tail->next;
    if (head == c->outq_tail)
      c->outq_tail = NULL;
    else
      c->outq_tail->next = head->next;
    free(head);
  }
  c->queued = 0;
}
