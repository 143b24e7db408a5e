/*
 * A worker's mailbox: a FIFO of messages under a mutex, plus an ev_async
 * that wakes the worker's loop (Envoy's dispatcher post does the same: a
 * locked queue and a wake-up).
 *
 * ev_async_send() coalesces: many sends before the loop notices give one
 * callback. So the queue, not the wake-up, holds the messages: each
 * callback takes the whole queue at once and runs it, and a message
 * queued after the take sends a new wake-up that the next callback
 * serves. Nothing is lost however the sends coalesce, and a worker runs
 * at most the messages queued before its callback began, then goes back
 * to its I/O.
 *
 * ev_async_send() is called with the mailbox lock held, and the worker
 * closes the mailbox under the same lock before its loop is destroyed:
 * no sender can touch a destroyed loop.
 */
#include <stdlib.h>

#include "group_internal.h"

int vigil__mailbox_init(vigil__mailbox *mb) {
  mb->state = VIGIL__MB_UNOPENED;
  mb->head = mb->tail = NULL;
  mb->ctl = 0;
  mb->stop_deadline_ms = 0;
  mb->loop = NULL;
  return pthread_mutex_init(&mb->lock, NULL) == 0 ? VIGIL_OK : VIGIL_ESYS;
}

void vigil__mailbox_destroy(vigil__mailbox *mb) {
  /* Posts are refused until a thread opens the mailbox, and the thread
   * runs what is left when it closes it: nothing can be queued here. */
  while (mb->head) {
    vigil__msg *m = mb->head;
    mb->head = m->next;
    free(m);
  }
  pthread_mutex_destroy(&mb->lock);
}

void vigil__mailbox_open(vigil__mailbox *mb, struct ev_loop *loop,
                         void (*cb)(struct ev_loop *, ev_async *, int)) {
  ev_async_init(&mb->wake, cb);
  ev_async_start(loop, &mb->wake);
  pthread_mutex_lock(&mb->lock);
  mb->loop = loop;
  mb->state = VIGIL__MB_OPEN;
  pthread_mutex_unlock(&mb->lock);
}

static int refusal(const vigil__mailbox *mb) {
  return mb->state == VIGIL__MB_UNOPENED ? VIGIL_ESTATE : VIGIL_ECLOSED;
}

int vigil__mailbox_post(vigil__mailbox *mb, vigil_worker_fn fn, void *arg) {
  vigil__msg *m = malloc(sizeof *m);
  if (!m) return VIGIL_ENOMEM;
  m->next = NULL;
  m->fn = fn;
  m->arg = arg;
  pthread_mutex_lock(&mb->lock);
  if (mb->state != VIGIL__MB_OPEN) {
    int rc = refusal(mb);
    pthread_mutex_unlock(&mb->lock);
    free(m);
    return rc;
  }
  if (mb->tail)
    mb->tail->next = m;
  else
    mb->head = m;
  mb->tail = m;
  ev_async_send(mb->loop, &mb->wake);
  pthread_mutex_unlock(&mb->lock);
  return VIGIL_OK;
}

int vigil__mailbox_control(vigil__mailbox *mb, unsigned ctl,
                           uint32_t deadline_ms) {
  pthread_mutex_lock(&mb->lock);
  if (mb->state != VIGIL__MB_OPEN) {
    int rc = refusal(mb);
    pthread_mutex_unlock(&mb->lock);
    return rc;
  }
  if (ctl & VIGIL__CTL_STOP) mb->stop_deadline_ms = deadline_ms;
  mb->ctl |= ctl;
  ev_async_send(mb->loop, &mb->wake);
  pthread_mutex_unlock(&mb->lock);
  return VIGIL_OK;
}

vigil__msg *vigil__mailbox_take(vigil__mailbox *mb, unsigned *ctl,
                                uint32_t *deadline_ms) {
  pthread_mutex_lock(&mb->lock);
  vigil__msg *list = mb->head;
  mb->head = mb->tail = NULL;
  *ctl = mb->ctl;
  *deadline_ms = mb->stop_deadline_ms;
  mb->ctl = 0;
  pthread_mutex_unlock(&mb->lock);
  return list;
}

vigil__msg *vigil__mailbox_close(vigil__mailbox *mb) {
  pthread_mutex_lock(&mb->lock);
  vigil__msg *list = mb->head;
  mb->head = mb->tail = NULL;
  mb->ctl = 0;
  mb->state = VIGIL__MB_CLOSED;
  struct ev_loop *loop = mb->loop;
  mb->loop = NULL;
  pthread_mutex_unlock(&mb->lock);
  if (loop) ev_async_stop(loop, &mb->wake);
  return list;
}

void vigil__mailbox_run(vigil__msg *list, vigil_worker *w) {
  while (list) {
    vigil__msg *m = list;
    list = m->next;
    vigil_worker_fn fn = m->fn;
    void *arg = m->arg;
    free(m);
    fn(w, arg);
  }
}
