/* See linelog.h. */
#include "linelog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 64 KiB holds a busy loop iteration's lines (a few hundred at 13,000
 * connections a second) and is one write. */
#define LINELOG_BUF (64 * 1024)

static struct {
  pthread_mutex_t lock;
  int fd;
  size_t used; /* written under the lock (atomically: prepare_cb peeks) */
  char buf[LINELOG_BUF];
} L = {PTHREAD_MUTEX_INITIALIZER, 2, 0, {0}};

static void set_used(size_t n) {
  __atomic_store_n(&L.used, n, __ATOMIC_RELAXED);
}

/* Writes all of p, whatever it takes; gives up only on a real error
 * (the stream is gone: nothing more can be done with the line). */
static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(L.fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      struct pollfd pfd = {L.fd, POLLOUT, 0};
      poll(&pfd, 1, -1);
    } else if (w < 0 && errno != EINTR) {
      return;
    }
  }
}

/* With the lock held. */
static void flush_locked(void) {
  write_all(L.buf, L.used);
  set_used(0);
}

void linelog_flush(void) {
  pthread_mutex_lock(&L.lock);
  flush_locked();
  pthread_mutex_unlock(&L.lock);
}

void linelog_open(int fd) {
  L.fd = fd;
  atexit(linelog_flush);
}

void linelog_write(const char *line, size_t len) {
  pthread_mutex_lock(&L.lock);
  if (L.used + len + 1 > sizeof L.buf) flush_locked();
  if (len + 1 > sizeof L.buf) {
    write_all(line, len); /* the buffer is empty: order is kept */
    write_all("\n", 1);
  } else {
    memcpy(L.buf + L.used, line, len);
    L.buf[L.used + len] = '\n';
    set_used(L.used + len + 1);
  }
  pthread_mutex_unlock(&L.lock);
}

void linelog_printf(const char *fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  linelog_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents) {
  (void)loop;
  (void)p;
  (void)revents;
  /* The lock-free peek is a hint only: a line appended meanwhile by
   * another thread is written by that thread's own loop. */
  if (__atomic_load_n(&L.used, __ATOMIC_RELAXED) > 0) linelog_flush();
}

void linelog_watch(linelog_watcher *w, struct ev_loop *loop) {
  w->loop = loop;
  ev_prepare_init(&w->prepare, prepare_cb);
  /* Last of the iteration's prepare watchers: lines that vigil's own
   * prepare (on_close delivery) produces go out in the same write. */
  ev_set_priority(&w->prepare, EV_MINPRI);
  ev_prepare_start(loop, &w->prepare);
  ev_unref(loop);
}

void linelog_unwatch(linelog_watcher *w) {
  if (!w->loop) return;
  ev_ref(w->loop);
  ev_prepare_stop(w->loop, &w->prepare);
  w->loop = NULL;
  linelog_flush();
}
