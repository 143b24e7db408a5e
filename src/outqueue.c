/* Output queue; see outqueue.h. */
#include "outqueue.h"

#include <stdlib.h>
#include <string.h>

#include "vigil.h"

#define OUTCHUNK_MIN 4096

struct vigil__outchunk {
  vigil__outchunk *next;
  size_t cap;
  size_t start; /* first unsent byte */
  size_t end;   /* one past the last queued byte */
  char data[];
};

int vigil__outq_append(vigil__outq *q, const void *data, size_t len) {
  vigil__outchunk *tail = q->tail;
  if (tail && tail->cap - tail->end > 0) {
    size_t room = tail->cap - tail->end;
    size_t n = len < room ? len : room;
    memcpy(tail->data + tail->end, data, n);
    tail->end += n;
    data = (const char *)data + n;
    len -= n;
    q->queued += n;
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
  q->tail = ch;
  q->queued += len;
  return VIGIL_OK;
}

size_t vigil__outq_peek(const vigil__outq *q, const void **data) {
  if (!q->tail) return 0;
  vigil__outchunk *head = q->tail->next;
  *data = head->data + head->start;
  return head->end - head->start;
}

int vigil__outq_iov(const vigil__outq *q, struct iovec *iov, int max) {
  if (!q->tail) return 0;
  int n = 0;
  vigil__outchunk *ch = q->tail->next;
  for (;;) {
    iov[n].iov_base = ch->data + ch->start;
    iov[n].iov_len = ch->end - ch->start;
    n++;
    if (ch == q->tail || n == max) return n;
    ch = ch->next;
  }
}

/* Unlinks and frees the head chunk. */
static void drop_head(vigil__outq *q) {
  vigil__outchunk *head = q->tail->next;
  if (head == q->tail)
    q->tail = NULL;
  else
    q->tail->next = head->next;
  free(head);
}

void vigil__outq_consume(vigil__outq *q, size_t n) {
  q->queued -= n;
  while (n > 0 && q->tail) {
    vigil__outchunk *head = q->tail->next;
    size_t avail = head->end - head->start;
    if (n < avail) {
      head->start += n;
      return;
    }
    n -= avail;
    drop_head(q);
  }
}

void vigil__outq_clear(vigil__outq *q) {
  while (q->tail) drop_head(q);
  q->queued = 0;
}
