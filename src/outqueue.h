/* Output queue: bytes accepted but not yet taken by the kernel (internal;
 * outqueue.c). */
#ifndef VIGIL_OUTQUEUE_H
#define VIGIL_OUTQUEUE_H

#include <stddef.h>

#include "vigil.h"

int vigil__outq_append(vigil_conn *c, const void *data, size_t len);
/* Writes as much as the socket takes: returns bytes written, or -1 with
 * errno set (EAGAIN is not an error: returns what was written). */
long vigil__outq_write(vigil_conn *c);
void vigil__outq_clear(vigil_conn *c);
/* The first queued bytes: stores their address, returns their length
 * (0 when the queue is empty). SSL_write takes the queue one chunk at a
 * time. */
size_t vigil__outq_peek(vigil_conn *c, const void **data);
/* Drops n bytes from the head (n <= vigil_conn_queued). */
void vigil__outq_consume(vigil_conn *c, size_t n);

#endif
