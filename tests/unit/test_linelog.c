/*
 * The example servers' buffered log lines (examples/linelog): nothing is
 * written until a flush, the loop's prepare flushes once per iteration
 * without keeping the loop alive, a full buffer and an oversized line
 * keep the order, a slow non-blocking reader loses nothing, and lines from
 * four threads never interleave.
 */
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linelog.h"
#include "testutil.h"

/* A temporary file as the log; returns its fd (read back with slurp). */
static int temp_log(char *path, size_t cap) {
  snprintf(path, cap, "/tmp/vigil-linelog-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  linelog_open(fd);
  return fd;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char buf[8 << 20];
  *len = fread(buf, 1, sizeof buf - 1, f);
  buf[*len] = '\0';
  fclose(f);
  return buf;
}

static void test_buffered_until_flush(void **state) {
  (void)state;
  char path[64];
  size_t len;
  int fd = temp_log(path, sizeof path);
  linelog_write("one", 3);
  linelog_printf("two=%d", 2);
  slurp(path, &len);
  assert_int_equal(len, 0);
  linelog_flush();
  assert_string_equal(slurp(path, &len), "one\ntwo=2\n");
  close(fd);
  unlink(path);
}

static void test_prepare_flushes_each_iteration(void **state) {
  (void)state;
  char path[64];
  size_t len;
  int fd = temp_log(path, sizeof path);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  linelog_watcher w;
  linelog_watch(&w, loop);
  linelog_write("before the wait", 15);
  /* The watcher alone does not keep the loop running: ev_run returns
   * after one iteration, whose prepare wrote the line. */
  ev_run(loop, 0);
  assert_string_equal(slurp(path, &len), "before the wait\n");
  linelog_write("at unwatch", 10);
  linelog_unwatch(&w);
  assert_string_equal(slurp(path, &len), "before the wait\nat unwatch\n");
  ev_loop_destroy(loop);
  close(fd);
  unlink(path);
}

static void test_full_buffer_and_long_line_keep_order(void **state) {
  (void)state;
  char path[64];
  size_t len;
  int fd = temp_log(path, sizeof path);
  static char want[1 << 20], line[100000];
  size_t n = 0;
  for (int i = 0; i < 5000; i++) { /* ~90 KiB: the buffer fills once */
    int k = snprintf(line, sizeof line, "line %d of the first batch", i);
    linelog_write(line, (size_t)k);
    memcpy(want + n, line, (size_t)k);
    n += (size_t)k;
    want[n++] = '\n';
  }
  slurp(path, &len);
  assert_true(len > 0 && len < n); /* written when full, the rest held */
  memset(line, 'x', sizeof line); /* longer than the whole buffer */
  linelog_write(line, sizeof line);
  memcpy(want + n, line, sizeof line);
  n += sizeof line;
  want[n++] = '\n';
  linelog_write("last", 4);
  memcpy(want + n, "last\n", 5);
  n += 5;
  linelog_flush();
  char *got = slurp(path, &len);
  assert_int_equal(len, n);
  assert_memory_equal(got, want, n);
  close(fd);
  unlink(path);
}

/* A pipe that is full most of the time, its write end non-blocking. */
typedef struct reader {
  int fd;
  size_t got;
  char *buf;
  size_t cap;
} reader;

static void *slow_reader(void *arg) {
  reader *r = arg;
  for (;;) {
    ssize_t n = read(r->fd, r->buf + r->got, 1024);
    if (n <= 0) return NULL;
    r->got += (size_t)n;
    usleep(100);
  }
}

static void test_nonblocking_slow_reader_loses_nothing(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK), 0);
  fcntl(p[0], F_SETFL, 0); /* the reader blocks; the writer does not */
  fcntl(p[1], F_SETPIPE_SZ, 4096);
  reader r = {p[0], 0, malloc(1 << 20), 1 << 20};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, slow_reader, &r), 0);
  linelog_open(p[1]);
  size_t want = 0;
  for (int i = 0; i < 3000; i++) {
    char line[64];
    int k = snprintf(line, sizeof line, "%06d through a small pipe", i);
    linelog_write(line, (size_t)k);
    want += (size_t)k + 1;
  }
  linelog_flush();
  close(p[1]);
  pthread_join(t, NULL);
  assert_int_equal(r.got, want);
  for (size_t off = 0, i = 0; off < r.got; i++) {
    char expect[64];
    int k = snprintf(expect, sizeof expect, "%06zu through a small pipe\n", i);
    assert_memory_equal(r.buf + off, expect, (size_t)k);
    off += (size_t)k;
  }
  free(r.buf);
  close(p[0]);
}

#define THREADS 4
#define PER_THREAD 20000

static void *writer(void *arg) {
  int id = (int)(intptr_t)arg;
  char line[128];
  for (int i = 0; i < PER_THREAD; i++) {
    int k = snprintf(line, sizeof line,
                     "thread=%d seq=%d padding=..............................",
                     id, i);
    linelog_write(line, (size_t)k);
    if (i % 97 == 0) linelog_flush();
  }
  return NULL;
}

static void test_threads_never_interleave(void **state) {
  (void)state;
  char path[64];
  size_t len;
  int fd = temp_log(path, sizeof path);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  linelog_flush();
  char *got = slurp(path, &len);
  int next[THREADS] = {0};
  for (char *line = got, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    int id, seq, used = 0;
    if (sscanf(line, "thread=%d seq=%d padding=%*[.]%n", &id, &seq, &used) !=
            2 ||
        line[used] != '\0' || id < 0 || id >= THREADS || seq != next[id])
      fail_msg("torn or out-of-order line: '%s'", line);
    next[id]++;
  }
  for (int i = 0; i < THREADS; i++) assert_int_equal(next[i], PER_THREAD);
  close(fd);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buffered_until_flush),
      cmocka_unit_test(test_prepare_flushes_each_iteration),
      cmocka_unit_test(test_full_buffer_and_long_line_keep_order),
      cmocka_unit_test(test_nonblocking_slow_reader_loses_nothing),
      cmocka_unit_test(test_threads_never_interleave),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
