/* One RESP connection on a libev loop; see redis_link.h. */
#include "redis_link.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis_reply.h"
#include "error.h"
#include "redis_text.h"
#include "vigil.h"

enum { LINK_CONNECTING, LINK_OPEN, LINK_CLOSED };

/* Reads per readiness callback before letting other watchers run. */
#define LINK_READS_PER_EVENT 4
#define LINK_READ_CHUNK 16384
/* Unparsed input beyond the largest legitimate reply closes the link. */
#define LINK_SLACK_BYTES 4096
/* Directory replies are flat and small: 8 elements at most. */
#define LINK_MAX_ELEMENTS 16
#define LINK_MAX_VALUES 64
/* An output buffer this large is given back once it drains. */
#define LINK_KEEP_OUT_BYTES 65536

struct vigil__redis_link {
  struct ev_loop *loop;
  vigil__redis_link_options o;
  int state;
  int fd;
  ev_io rio, wio;
  ev_prepare flush;   /* sends what the loop turn queued, before it blocks */
  ev_timer timer;
  uint64_t connect_deadline_ms;
  char *out;
  size_t out_len, out_off, out_cap;
  redisReader *reader;
  vigil__reply_guard guard;
  vigil__redis_cmd *head, *tail;
  size_t pending;
  int depth;          /* link callbacks running */
  int free_requested; /* free() called while depth > 0 */
  char why[192];
};

uint64_t vigil__redis_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(const vigil__redis_link *l) {
  (void)l;
  return vigil__redis_now_ms();
}

#define set_why(l, ...) vigil__textf((l)->why, sizeof (l)->why, 0, __VA_ARGS__)

/* ---- timer: the connect deadline, then the oldest command's ------------ */

static void arm_timer(vigil__redis_link *l) {
  if (ev_is_active(&l->timer) || l->state == LINK_CLOSED) return;
  uint64_t due;
  if (l->state == LINK_CONNECTING)
    due = l->connect_deadline_ms;
  else if (l->head)
    due = l->head->deadline_ms;
  else
    return;
  uint64_t now = now_ms(l);
  ev_timer_set(&l->timer, due > now ? (double)(due - now) / 1000.0 : 0.0,
               0.0);
  ev_timer_start(l->loop, &l->timer);
}

/* ---- closing ------------------------------------------------------------ */

static void stop_io(vigil__redis_link *l) {
  ev_io_stop(l->loop, &l->rio);
  ev_io_stop(l->loop, &l->wio);
  ev_prepare_stop(l->loop, &l->flush);
  ev_timer_stop(l->loop, &l->timer);
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  l->state = LINK_CLOSED;
  l->out_len = l->out_off = 0;
}

/* Resolves every pending command, oldest first, with TIMEOUT when the
 * store stopped answering (all of them waited on it), else CLOSED. The
 * owner may close or free the link from the callbacks: the list is re-read
 * after each one, so a nested close() resolves the rest and this loop
 * ends. */
static void resolve_pending(vigil__redis_link *l, int timed_out) {
  vigil__redis_cmd *c;
  while ((c = l->head) != NULL) {
    l->head = c->next;
    if (!l->head) l->tail = NULL;
    l->pending--;
    c->next = NULL;
    l->o.on_reply(l, c, NULL,
                  timed_out ? VIGIL__LINK_TIMEOUT : VIGIL__LINK_CLOSED,
                  l->o.user);
  }
}

/* A close the link decided: resolve, then tell the owner unless it asked
 * for a free meanwhile. */
static void fail(vigil__redis_link *l, int timed_out) {
  if (l->state == LINK_CLOSED) return;
  stop_io(l);
  resolve_pending(l, timed_out);
  if (!l->free_requested && l->o.on_closed)
    l->o.on_closed(l, l->why, l->o.user);
}

void vigil__redis_link_close(vigil__redis_link *l, const char *why) {
  if (!l) return;
  if (l->state != LINK_CLOSED) {
    stop_io(l);
    snprintf(l->why, sizeof l->why, "%s", why ? why : "closed");
  }
  resolve_pending(l, 0);
}

static void destroy(vigil__redis_link *l) {
  if (l->reader) redisReaderFree(l->reader);
  free(l->out);
  free(l);
}

static void enter(vigil__redis_link *l) { l->depth++; }

/* Returns 1 when the link is gone. */
static int leave(vigil__redis_link *l) {
  if (--l->depth == 0 && l->free_requested) {
    destroy(l);
    return 1;
  }
  return 0;
}

void vigil__redis_link_free(vigil__redis_link *l) {
  if (!l || l->free_requested) return;
  l->free_requested = 1; /* first: no on_closed from the close below */
  vigil__redis_link_close(l, "freed");
  if (l->depth == 0) destroy(l);
}

/* ---- output ------------------------------------------------------------- */

static size_t digits(size_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

size_t vigil__redis_cmd_bytes(int argc, const size_t *argvlen) {
  size_t n = 1 + digits((size_t)argc) + 2; /* *<argc>\r\n */
  for (int i = 0; i < argc; i++)
    n += 1 + digits(argvlen[i]) + 2 + argvlen[i] + 2; /* $<len>\r\n..\r\n */
  return n;
}

int vigil__redis_link_reserve(vigil__redis_link *l, size_t bytes) {
  if (l->state == LINK_CLOSED || l->free_requested) return VIGIL_ECLOSED;
  size_t live = l->out_len - l->out_off;
  if (bytes > l->o.max_out_bytes || live > l->o.max_out_bytes - bytes)
    return VIGIL_EOVERFLOW;
  if (l->out_off && l->out_len + bytes > l->out_cap) {
    memmove(l->out, l->out + l->out_off, live);
    l->out_len = live;
    l->out_off = 0;
  }
  if (l->out_len + bytes <= l->out_cap) return VIGIL_OK;
  size_t cap = l->out_cap ? l->out_cap : 4096;
  while (cap < l->out_len + bytes) cap *= 2;
  char *p = realloc(l->out, cap);
  if (!p) return VIGIL_ENOMEM;
  l->out = p;
  l->out_cap = cap;
  return VIGIL_OK;
}

/* "<type><n>\r\n", exactly the bytes vigil__redis_cmd_bytes counted. */
static void put(vigil__redis_link *l, char type, size_t n) {
  char *p = l->out + l->out_len;
  size_t len = digits(n);
  *p++ = type;
  for (size_t i = len; i-- > 0; n /= 10) p[i] = (char)('0' + n % 10);
  p += len;
  *p++ = '\r';
  *p++ = '\n';
  l->out_len += len + 3;
}

int vigil__redis_link_send(vigil__redis_link *l, vigil__redis_cmd *cmd,
                           int argc, const char **argv,
                           const size_t *argvlen) {
  int rc = vigil__redis_link_reserve(l, vigil__redis_cmd_bytes(argc, argvlen));
  if (rc) return rc;
  put(l, '*', (size_t)argc);
  for (int i = 0; i < argc; i++) {
    put(l, '$', argvlen[i]);
    memcpy(l->out + l->out_len, argv[i], argvlen[i]);
    l->out_len += argvlen[i];
    memcpy(l->out + l->out_len, "\r\n", 2);
    l->out_len += 2;
  }
  cmd->next = NULL;
  cmd->deadline_ms =
      l->state == LINK_OPEN ? now_ms(l) + l->o.command_timeout_ms : 0;
  if (l->tail)
    l->tail->next = cmd;
  else
    l->head = cmd;
  l->tail = cmd;
  l->pending++;
  if (l->state == LINK_OPEN) {
    /* One send for everything this loop turn queued, from the prepare
     * phase, without a trip through epoll for writability: the socket
     * almost always takes it, and the write watcher, started and stopped
     * again before libev applies fd changes, then costs no syscall. A
     * command queued after the flush ran (by a later prepare watcher)
     * goes out when the write watcher fires, as it would without. */
    ev_io_start(l->loop, &l->wio);
    ev_prepare_start(l->loop, &l->flush);
    arm_timer(l);
  }
  return VIGIL_OK;
}

/* Writes what the kernel takes. Returns 0, or -1 after fail(). */
static int flush_out(vigil__redis_link *l) {
  while (l->out_off < l->out_len) {
    ssize_t n = send(l->fd, l->out + l->out_off, l->out_len - l->out_off,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ev_io_start(l->loop, &l->wio); /* the rest when the socket takes it */
        return 0;
      }
      set_why(l, "write to the store failed: %s", strerror(errno));
      fail(l, 0);
      return -1;
    }
    l->out_off += (size_t)n;
  }
  ev_io_stop(l->loop, &l->wio);
  l->out_len = l->out_off = 0;
  if (l->out_cap > LINK_KEEP_OUT_BYTES) {
    free(l->out);
    l->out = NULL;
    l->out_cap = 0;
  }
  return 0;
}

/* ---- input -------------------------------------------------------------- */

/* Hands out every complete reply. Returns 0 to go on reading, -1 when the
 * link closed or the owner asked for a free. */
static int drain_replies(vigil__redis_link *l) {
  for (;;) {
    void *obj = NULL;
    if (redisReaderGetReply(l->reader, &obj) != REDIS_OK) {
      set_why(l, "protocol error from the store: %s",
              l->guard.refused[0] ? l->guard.refused : l->reader->errstr);
      fail(l, 0);
      return -1;
    }
    if (!obj) return 0;
    redisReply *r = obj;
    if (l->o.is_push && l->o.is_push(r, l->o.user)) {
      l->o.on_push(l, r, l->o.user);
    } else if (!l->head) {
      set_why(l, "protocol error from the store: a reply (%s) with no "
                 "command waiting for it",
              vigil__redis_reply_type_name(r->type));
      vigil__redis_reply_free(r);
      fail(l, 0);
      return -1;
    } else {
      vigil__redis_cmd *c = l->head;
      l->head = c->next;
      if (!l->head) l->tail = NULL;
      l->pending--;
      c->next = NULL;
      l->o.on_reply(l, c, r, VIGIL__LINK_REPLY, l->o.user);
    }
    vigil__redis_reply_free(r);
    if (l->state == LINK_CLOSED || l->free_requested) return -1;
  }
}

static void read_input(vigil__redis_link *l) {
  char buf[LINK_READ_CHUNK];
  size_t max_unparsed = l->o.max_reply_string + LINK_SLACK_BYTES;
  for (int i = 0; i < LINK_READS_PER_EVENT; i++) {
    ssize_t n = read(l->fd, buf, sizeof buf);
    if (n == 0) {
      set_why(l, "the store closed the connection");
      fail(l, 0);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      set_why(l, "read from the store failed: %s", strerror(errno));
      fail(l, 0);
      return;
    }
    if (redisReaderFeed(l->reader, buf, (size_t)n) != REDIS_OK) {
      set_why(l, "protocol error from the store: %s", l->reader->errstr);
      fail(l, 0);
      return;
    }
    if (drain_replies(l) < 0) return;
    if (l->reader->len - l->reader->pos > max_unparsed) {
      set_why(l, "protocol error from the store: a reply over %zu bytes",
              max_unparsed);
      fail(l, 0);
      return;
    }
    if ((size_t)n < sizeof buf) return;
  }
}

/* ---- watchers ----------------------------------------------------------- */

static void become_open(vigil__redis_link *l) {
  l->state = LINK_OPEN;
  ev_timer_stop(l->loop, &l->timer);
  uint64_t deadline = now_ms(l) + l->o.command_timeout_ms;
  for (vigil__redis_cmd *c = l->head; c; c = c->next) c->deadline_ms = deadline;
  ev_io_start(l->loop, &l->rio);
  if (l->out_len == l->out_off) ev_io_stop(l->loop, &l->wio);
  arm_timer(l);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
  vigil__redis_link *l = w->data;
  enter(l);
  if (l->state == LINK_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
      set_why(l, "connect to the store failed: %s", strerror(err));
      fail(l, 0);
      leave(l);
      return;
    }
    become_open(l);
  }
  if (l->state == LINK_OPEN) flush_out(l);
  leave(l);
}

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents) {
  vigil__redis_link *l = w->data;
  ev_prepare_stop(loop, w);
  enter(l);
  if (l->state == LINK_OPEN) flush_out(l);
  leave(l);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  vigil__redis_link *l = w->data;
  enter(l);
  read_input(l);
  leave(l);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil__redis_link *l = w->data;
  uint64_t now = now_ms(l);
  enter(l);
  if (l->state == LINK_CONNECTING && now >= l->connect_deadline_ms) {
    set_why(l, "connect to the store timed out after %u ms",
            (unsigned)l->o.connect_timeout_ms);
    fail(l, 0);
  } else if (l->state == LINK_OPEN && l->head &&
             l->head->deadline_ms <= now) {
    set_why(l, "the store did not answer within %u ms",
            (unsigned)l->o.command_timeout_ms);
    fail(l, 1);
  } else {
    arm_timer(l); /* early wake-up, or the oldest command changed */
  }
  leave(l);
}

/* ---- setup -------------------------------------------------------------- */

int vigil__redis_link_new(const vigil__redis_link_options *o,
                          vigil__redis_link **out, char *why, size_t whylen) {
  if (why && whylen) why[0] = '\0';
  vigil__redis_link *l = calloc(1, sizeof *l);
  if (!l) {
    if (why) snprintf(why, whylen, "out of memory");
    return VIGIL_ENOMEM;
  }
  l->o = *o;
  l->loop = o->loop;
  l->fd = -1;
  l->guard.max_string = o->max_reply_string;
  l->guard.max_elements = LINK_MAX_ELEMENTS;
  l->guard.max_values = LINK_MAX_VALUES;
  l->reader = vigil__redis_reader_new(&l->guard);
  if (!l->reader) {
    free(l);
    if (why) snprintf(why, whylen, "out of memory");
    return VIGIL_ENOMEM;
  }
  int family = o->addr->sa_family;
  l->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0) {
    if (why) snprintf(why, whylen, "socket: %s", strerror(errno));
    destroy(l);
    return VIGIL_ESYS;
  }
  if (family == AF_INET || family == AF_INET6) {
    int one = 1; /* commands are small and latency-bound */
    (void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ev_io_init(&l->rio, on_readable, l->fd, EV_READ);
  ev_io_init(&l->wio, on_writable, l->fd, EV_WRITE);
  ev_prepare_init(&l->flush, on_flush);
  ev_timer_init(&l->timer, on_timer, 0.0, 0.0);
  l->rio.data = l->wio.data = l->flush.data = l->timer.data = l;
  int rc;
  do {
    rc = connect(l->fd, o->addr, o->addrlen);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    become_open(l);
  } else if (errno == EINPROGRESS) {
    /* A unix socket never gets here: its connect() is immediate, and
     * EAGAIN from it means the listen backlog is full. */
    l->state = LINK_CONNECTING;
    l->connect_deadline_ms = now_ms(l) + o->connect_timeout_ms;
    ev_io_start(l->loop, &l->wio);
    arm_timer(l);
  } else {
    if (why) snprintf(why, whylen, "connect to the store failed: %s",
                      strerror(errno));
    close(l->fd);
    destroy(l);
    return VIGIL_ESYS;
  }
  *out = l;
  return VIGIL_OK;
}

int vigil__redis_link_is_open(const vigil__redis_link *l) {
  return l && l->state == LINK_OPEN && !l->free_requested;
}

const char *vigil__redis_link_why(const vigil__redis_link *l) {
  return l->state == LINK_CLOSED ? l->why : "";
}

size_t vigil__redis_link_pending(const vigil__redis_link *l) {
  return l->pending;
}
