#include "dirtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- recording node ------------------------------------------------------ */

void tn_config(vigil__redis_dir_config *c, const char *url, const char *node,
               uint32_t worker) {
  vigil__redis_dir_config_init(c);
  c->url = url;
  c->node = node;
  c->worker = worker;
  c->command_timeout_ms = 2000 + vt_slack_ms(200);
  c->liveness_ttl_ms = 3 * c->command_timeout_ms;
  c->backoff.initial_ms = 20;
  c->backoff.max_ms = 200;
  c->backoff.min_connect_timeout_ms = 2000;
}

static void on_state(vigil__redis_dir *d, int up, const char *reason,
                     void *user) {
  tnode *n = user;
  if (up)
    n->ups++;
  else
    n->downs++;
  snprintf(n->reason, sizeof n->reason, "%s", reason);
  if (n->on_state_hook) n->on_state_hook(n, up);
}

void tn_on_result(vigil__redis_dir *d, const vigil__dir_result *r,
                  void *user) {
  tnode *n = user;
  assert_true(n->nresults < TN_MAX_RESULTS);
  tn_result *t = &n->results[n->nresults++];
  memset(t, 0, sizeof *t);
  t->status = r->status;
  snprintf(t->identity, sizeof t->identity, "%.*s", (int)r->identity_len,
           (const char *)r->identity);
  t->conn_id = r->conn_id;
  t->epoch = r->epoch;
  t->other = r->other;
  if (r->detail) snprintf(t->detail, sizeof t->detail, "%s", r->detail);
  t->at_ms = vt_now_ms();
  if (n->on_result_hook) n->on_result_hook(n, r);
}

static void on_evict(vigil__redis_dir *d, const vigil__dir_eviction *ev,
                     void *user) {
  tnode *n = user;
  assert_true(n->nevictions < TN_MAX_EVICTIONS);
  tn_eviction *t = &n->evictions[n->nevictions++];
  t->ev = *ev;
  snprintf(t->identity, sizeof t->identity, "%.*s", (int)ev->identity_len,
           (const char *)ev->identity);
  t->ev.identity = t->identity;
  t->at_ms = vt_now_ms();
  if (n->on_evict_hook) n->on_evict_hook(n, ev);
}

void tn_start(tnode *n, struct ev_loop *loop,
              const vigil__redis_dir_config *c) {
  char err[256];
  vigil__redis_dir_callbacks cb = {on_state, on_evict, n};
  memset(n, 0, sizeof *n);
  n->loop = loop;
  int rc = vigil__redis_dir_new(loop, c, &cb, &n->d, err, sizeof err);
  if (rc) fprintf(stderr, "vigil__redis_dir_new: %s\n", err);
  assert_int_equal(rc, 0);
}

static int is_up(void *arg) { return vigil__redis_dir_is_up(((tnode *)arg)->d); }

void tn_wait_up(tnode *n) {
  if (!vt_run_until(n->loop, is_up, n, 10000 + vt_slack_ms(0)))
    fprintf(stderr, "not up: %s\n", vigil__redis_dir_last_error(n->d));
  assert_true(vigil__redis_dir_is_up(n->d));
}

void tn_stop(tnode *n) {
  vigil__redis_dir_free(n->d);
  n->d = NULL;
}

typedef struct count_wait {
  const int *value;
  int want;
} count_wait;

static int reached(void *arg) {
  count_wait *w = arg;
  return *w->value >= w->want;
}

static int wait_count(struct ev_loop *loop, const int *value, int want,
                      uint32_t ms) {
  count_wait w = {value, want};
  return vt_run_until(loop, reached, &w, ms);
}

void tn_wait_results(tnode *n, int count, uint32_t ms) {
  assert_true(wait_count(n->loop, &n->nresults, count, ms));
}

int tn_wait_evictions(tnode *n, int count, uint32_t ms) {
  return wait_count(n->loop, &n->nevictions, count, ms);
}

int tn_wait_downs(tnode *n, int count, uint32_t ms) {
  return wait_count(n->loop, &n->downs, count, ms);
}

int tn_wait_ups(tnode *n, int count, uint32_t ms) {
  return wait_count(n->loop, &n->ups, count, ms);
}

const tn_result *tn_claim(tnode *n, const char *identity, uint64_t conn_id,
                          int proven) {
  int before = n->nresults;
  assert_int_equal(vigil__redis_dir_claim(n->d, identity, strlen(identity),
                                          conn_id, proven, tn_on_result, n),
                   0);
  tn_wait_results(n, before + 1, 5000 + vt_slack_ms(1000));
  return &n->results[before];
}

/* ---- the test's own view of the store ---------------------------------- */

redisContext *tn_sync(const vt_redis *r) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
  assert_non_null(c);
  if (c->err) fprintf(stderr, "redisConnect: %s\n", c->errstr);
  assert_int_equal(c->err, 0);
  return c;
}

redisReply *tn_cmd(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r) fprintf(stderr, "redisCommand: %s\n", c->errstr);
  assert_non_null(r);
  return r;
}

/* ---- fake store ---------------------------------------------------------- */

void fs_write(fakestore *fs, int conn, const void *bytes, size_t len) {
  const char *p = bytes;
  while (len > 0) {
    ssize_t n = send(fs->conns[conn].fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* the directory hung up: fine */
    p += n;
    len -= (size_t)n;
  }
}

void fs_writes(fakestore *fs, int conn, const char *s) {
  fs_write(fs, conn, s, strlen(s));
}

static int arg_is(char **argv, size_t *lens, int i, const char *s) {
  return lens[i] == strlen(s) && strncasecmp(argv[i], s, lens[i]) == 0;
}

int fs_default_answer(fakestore *fs, int conn, int argc, char **argv,
                      size_t *lens, void *data) {
  char buf[256];
  if (arg_is(argv, lens, 0, "AUTH") || arg_is(argv, lens, 0, "SELECT") ||
      arg_is(argv, lens, 0, "CLIENT")) {
    fs_writes(fs, conn, "+OK\r\n");
  } else if (arg_is(argv, lens, 0, "SCRIPT")) {
    char sha[41];
    vigil__dir_script_sha1(sha);
    snprintf(buf, sizeof buf, "$40\r\n%s\r\n", sha);
    fs_writes(fs, conn, buf);
  } else if (arg_is(argv, lens, 0, "SET") && argc >= 3) {
    if (fs->has_value) {
      snprintf(buf, sizeof buf, "$%zu\r\n%s\r\n", strlen(fs->set_value),
               fs->set_value);
      fs_writes(fs, conn, buf);
    } else {
      fs_writes(fs, conn, "$-1\r\n");
    }
    snprintf(fs->set_value, sizeof fs->set_value, "%.*s",
             (int)(lens[2] < 63 ? lens[2] : 63), argv[2]);
    fs->has_value = 1;
  } else if (arg_is(argv, lens, 0, "SUBSCRIBE") && argc == 2) {
    fs->conns[conn].is_sub = 1;
    snprintf(fs->conns[conn].channel, sizeof fs->conns[conn].channel, "%.*s",
             (int)lens[1], argv[1]);
    snprintf(buf, sizeof buf, "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n",
             lens[1], fs->conns[conn].channel);
    fs_writes(fs, conn, buf);
  } else if (arg_is(argv, lens, 0, "PING")) {
    fs_writes(fs, conn, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  } else {
    return -1;
  }
  return 0;
}

void fs_close(fakestore *fs, int i) {
  if (fs->conns[i].fd < 0) return;
  ev_io_stop(fs->loop, &fs->conns[i].io);
  close(fs->conns[i].fd);
  fs->conns[i].fd = -1;
  redisReaderFree(fs->conns[i].reader);
  fs->conns[i].reader = NULL;
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents) {
  fakestore *fs = w->data;
  int i;
  for (i = 0; i < fs->nconns; i++)
    if (&fs->conns[i].io == w) break;
  char buf[16384];
  ssize_t n = read(fs->conns[i].fd, buf, sizeof buf);
  if (n <= 0) {
    fs_close(fs, i);
    return;
  }
  if (fs->silent) return;
  redisReader *r = fs->conns[i].reader;
  redisReaderFeed(r, buf, (size_t)n);
  void *obj;
  while (fs->conns[i].fd >= 0 && redisReaderGetReply(r, &obj) == REDIS_OK &&
         obj) {
    redisReply *cmd = obj;
    char *argv[32];
    size_t lens[32];
    int argc = 0;
    for (size_t k = 0; k < cmd->elements && k < 32; k++) {
      argv[argc] = cmd->element[k]->str;
      lens[argc++] = cmd->element[k]->len;
    }
    fs->commands++;
    snprintf(fs->last_cmd, sizeof fs->last_cmd, "%.*s",
             (int)(argc ? lens[0] : 0), argc ? argv[0] : "");
    int rc = fs->answer ? fs->answer(fs, i, argc, argv, lens, fs->data)
                        : fs_default_answer(fs, i, argc, argv, lens, NULL);
    if (rc < 0 && !fs->answer) fs_writes(fs, i, "$-1\r\n");
    freeReplyObject(cmd);
    if (rc < 0 && fs->answer) fs_close(fs, i);
  }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  fakestore *fs = w->data;
  int fd = accept4(fs->lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  int i;
  for (i = 0; i < fs->nconns; i++)
    if (fs->conns[i].fd < 0) break; /* reuse a closed slot */
  if (i == FS_MAX_CONNS) {
    close(fd);
    return;
  }
  if (i == fs->nconns) fs->nconns++;
  fs->accepted++;
  /* Room for a large answer in one blocking send (the directory reads on
   * the same loop, after this callback). */
  int sndbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  fs->conns[i].fd = fd;
  fs->conns[i].reader = redisReaderCreate();
  fs->conns[i].is_sub = 0;
  ev_io_init(&fs->conns[i].io, on_conn, fd, EV_READ);
  fs->conns[i].io.data = fs;
  ev_io_start(loop, &fs->conns[i].io);
}

void fs_start(fakestore *fs, struct ev_loop *loop) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(fs, 0, sizeof *fs);
  fs->loop = loop;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fs->lfd >= 0);
  assert_int_equal(bind(fs->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fs->lfd, 16), 0);
  assert_int_equal(getsockname(fs->lfd, (struct sockaddr *)&a, &len), 0);
  fs->port = ntohs(a.sin_port);
  snprintf(fs->url, sizeof fs->url, "redis://127.0.0.1:%u",
           (unsigned)fs->port);
  ev_io_init(&fs->accept_io, on_accept, fs->lfd, EV_READ);
  fs->accept_io.data = fs;
  ev_io_start(loop, &fs->accept_io);
}

void fs_stop(fakestore *fs) {
  for (int i = 0; i < fs->nconns; i++) fs_close(fs, i);
  ev_io_stop(fs->loop, &fs->accept_io);
  close(fs->lfd);
}

int fs_sub_conn(const fakestore *fs) {
  for (int i = 0; i < fs->nconns; i++)
    if (fs->conns[i].fd >= 0 && fs->conns[i].is_sub) return i;
  return -1;
}
