/*
 * Output queue (internal; outqueue.c): bytes vigil_send accepted that the
 * transport could not hand to the kernel yet.
 *
 * A circular singly linked list of chunks keeps the per-connection cost at
 * one pointer (the tail; tail->next is the head) plus the byte count.
 * Small sends coalesce into the tail chunk's spare room, so a burst of
 * tiny messages does not become a burst of allocations. An idle connection
 * holds no chunk at all. The queue only holds bytes: writing them is the
 * transport's business (writev for TCP, SSL_write for TLS).
 */
#ifndef VIGIL_OUTQUEUE_H
#define VIGIL_OUTQUEUE_H

#include <stddef.h>
#include <sys/uio.h>

typedef struct vigil__outchunk vigil__outchunk;

typedef struct vigil__outq {
  vigil__outchunk *tail; /* circular list: tail->next = head; NULL = empty */
  size_t queued;         /* bytes queued */
} vigil__outq;

/* Appends a copy of len bytes. VIGIL_OK or VIGIL_ENOMEM (nothing added). */
int vigil__outq_append(vigil__outq *q, const void *data, size_t len);
/* The first queued bytes: stores their address, returns their length
 * (0 when the queue is empty). A TLS record must be retried with the same
 * bytes, which a chunk's head keeps in place. */
size_t vigil__outq_peek(const vigil__outq *q, const void **data);
/* Fills up to max iovecs with the queued bytes, head first; returns how
 * many were filled (0 when empty). */
int vigil__outq_iov(const vigil__outq *q, struct iovec *iov, int max);
/* Drops n bytes from the head (n <= q->queued). */
void vigil__outq_consume(vigil__outq *q, size_t n);
/* Drops everything. */
void vigil__outq_clear(vigil__outq *q);

#endif
