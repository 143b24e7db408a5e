/*
 * linelog: log lines for the example servers, written once per loop
 * iteration instead of once per line.
 *
 * A reconnect storm logs several lines per connection (open, ready,
 * close, the host's own), and one write(2) per line was a fifth of a
 * server's system calls. Lines are appended to one process-wide buffer
 * instead, and written out:
 *  - by an ev_prepare on every loop that logs (linelog_watch), just before
 *    the loop waits for I/O: a line reaches the file within the loop
 *    iteration that produced it, before the process sleeps;
 *  - at once when the buffer fills;
 *  - at exit (atexit), and whenever linelog_flush() is called, e.g.
 *    before writing to the same stream another way.
 * Lines are never lost (partial writes and EINTR are retried; EAGAIN
 * waits for the fd) and never interleave: every line is appended whole
 * under one lock, and a flush writes whole lines under it, so worker
 * threads (--workers) sharing the stream keep each line intact and in
 * the order it was logged. A line longer than the buffer is written on
 * its own. Lost only if the process is killed (SIGKILL) or crashes: at
 * most the lines of the current loop iteration.
 */
#ifndef VIGIL_EXAMPLES_LINELOG_H
#define VIGIL_EXAMPLES_LINELOG_H

#include <ev.h>
#include <stddef.h>

/* Lines go to fd (1 or 2); call once, before the first line. */
void linelog_open(int fd);

/* Appends one line (without its '\n': linelog adds it). Thread-safe. */
void linelog_write(const char *line, size_t len);

/* printf-style linelog_write; lines over 4 KiB are cut. */
void linelog_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Writes out every buffered line now. Thread-safe. */
void linelog_flush(void);

/* The flush before a loop waits: one per loop that logs, started on the
 * loop's own thread. It does not keep ev_run from returning. */
typedef struct linelog_watcher {
  ev_prepare prepare;
  struct ev_loop *loop;
} linelog_watcher;

void linelog_watch(linelog_watcher *w, struct ev_loop *loop);
/* Stops it and flushes; call before the loop is destroyed. */
void linelog_unwatch(linelog_watcher *w);

#endif
