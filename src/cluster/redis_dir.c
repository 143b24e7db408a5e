/* The Redis identity directory; protocol and states in redis_dir.h. */
#include "redis_dir.h"

#include <errno.h>
#include <ev.h>
#include <stddef.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "redis_link.h"
#include "redis_reply.h"
#include "error.h"
#include "redis_text.h"
#include "redis_url.h"

enum { DIR_WAITING, DIR_CONNECTING, DIR_UP, DIR_GONE };

/* What a command in flight is for: a request (on the command connection)
 * or a step of connection upkeep (op->step). */
enum { OP_CLAIM, OP_ASSERT, OP_RELEASE, OP_STEP };

#define container_of(ptr, type, member)                                     \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define DIR_MAX_PENDING_LIMIT 1048576u
/* Output queued on one connection; a reassert batch must fit. */
#define DIR_MAX_OUT_BYTES (64u << 20)

typedef struct dir_op {
  vigil__redis_cmd cmd; /* in a link's FIFO while in flight */
  struct dir_op *next_parked;
  uint8_t kind;
  uint8_t step;      /* OP_STEP: a vigil__dir_step */
  uint8_t eval_sent; /* NOSCRIPT was answered: sent again as EVAL */
  uint8_t proven;
  uint64_t conn_id;
  uint64_t epoch;
  vigil__dir_result_cb cb;
  void *user;
  size_t key_len; /* requests: key = <prefix>id:<identity> */
  char key[];
} dir_op;

struct vigil__redis_dir {
  struct ev_loop *loop;
  vigil__redis_dir_config cfg; /* string fields point at the copies below */
  vigil__redis_dir_callbacks cb;
  vigil__redis_url url;
  char where[300]; /* the URL without credentials, for reasons */
  char prefix[VIGIL__DIR_PREFIX_MAX + 1];
  size_t prefix_len;
  char node[VIGIL__DIR_NODE_MAX + 1];
  size_t node_len;
  char inc[VIGIL__DIR_INC_LEN + 1];
  char sha[41];
  vigil__dir_expect expect; /* what upkeep answers must match */
  char worker_str[12], keep_str[12], ttl_str[12];
  char node_key[VIGIL__DIR_PREFIX_MAX + 5 + VIGIL__DIR_NODE_MAX + 1];
  char channel[VIGIL__DIR_PREFIX_MAX + 6 + VIGIL__DIR_NODE_MAX + 12];
  size_t channel_len;
  vigil__redis_link *cmd, *sub;
  vigil__redis_link *closing; /* failed, still answering its commands */
  int state;
  int reported; /* -1 nothing yet, 0 DOWN, 1 UP */
  int handshake_left;
  vigil__backoff backoff;
  uint64_t rng;
  uint64_t next_at; /* earliest start of the next attempt */
  ev_timer retry;   /* WAITING: the next attempt */
  ev_timer refresh; /* UP: liveness SET and subscriber PING */
  dir_op *parked_head, *parked_tail; /* releases waiting for UP */
  size_t inflight;  /* requests on the command connection */
  int depth;        /* entries from the loop, and free() */
  int freeing;
  vigil__redis_dir_stats st;
  char last_error[400];
};

static uint64_t now_ms(const vigil__redis_dir *d) {
  (void)d;
  return vigil__redis_now_ms();
}

#define note_error(d, ...)                                                   \
  vigil__textf((d)->last_error, sizeof (d)->last_error, 0, __VA_ARGS__)

const char *vigil__dir_status_name(int status) {
  static const char *names[] = {"installed", "refused_proven", "fenced",
                                "error",     "timeout",        "disconnected",
                                "cancelled"};
  if (status < 0 || status >= (int)(sizeof names / sizeof names[0]))
    return "unknown";
  return names[status];
}

/* ---- lifetime ----------------------------------------------------------- */

static void destroy(vigil__redis_dir *d) {
  dir_op *op = d->parked_head;
  while (op) {
    dir_op *next = op->next_parked;
    free(op);
    op = next;
  }
  free(d);
}

static void enter(vigil__redis_dir *d) { d->depth++; }

static void leave(vigil__redis_dir *d) {
  if (--d->depth == 0 && d->freeing) destroy(d);
}

void vigil__redis_dir_free(vigil__redis_dir *d) {
  if (!d || d->freeing) return;
  enter(d);
  d->freeing = 1;
  d->state = DIR_GONE;
  ev_timer_stop(d->loop, &d->retry);
  ev_timer_stop(d->loop, &d->refresh);
  vigil__redis_link *links[3] = {d->cmd, d->sub, d->closing};
  d->cmd = d->sub = d->closing = NULL;
  for (int i = 0; i < 3; i++)
    vigil__redis_link_free(links[i]); /* requests resolve CANCELLED */
  leave(d);
}

/* ---- requests ------------------------------------------------------------ */

static dir_op *new_op(vigil__redis_dir *d, int kind, const void *identity,
                      size_t len) {
  size_t key_len = identity ? d->prefix_len + 3 + len : 0;
  dir_op *op = calloc(1, sizeof *op + key_len + 1);
  if (!op) return NULL;
  op->kind = (uint8_t)kind;
  if (identity) {
    memcpy(op->key, d->prefix, d->prefix_len);
    memcpy(op->key + d->prefix_len, "id:", 3);
    memcpy(op->key + d->prefix_len + 3, identity, len);
    op->key_len = key_len;
  }
  return op;
}

/* The script's argv for a request; bufs hold the decimals. */
static int script_args(const vigil__redis_dir *d, const dir_op *op,
                       const char **argv, size_t *lens, char conn[24],
                       char epoch[24]) {
  static const char *ops[] = {"claim", "assert", "release"};
  int n = 0;
  snprintf(conn, 24, "%llu", (unsigned long long)op->conn_id);
  snprintf(epoch, 24, "%llu", (unsigned long long)op->epoch);
#define ARG(p, l) (argv[n] = (p), lens[n] = (l), n++)
  if (op->eval_sent) {
    ARG("EVAL", 4);
    ARG(vigil__dir_script, vigil__dir_script_len);
  } else {
    ARG("EVALSHA", 7);
    ARG(d->sha, 40);
  }
  ARG("1", 1);
  ARG(op->key, op->key_len);
  ARG(ops[op->kind], strlen(ops[op->kind]));
  ARG(d->prefix, d->prefix_len);
  ARG(d->node, d->node_len);
  ARG(d->inc, VIGIL__DIR_INC_LEN);
  ARG(d->worker_str, strlen(d->worker_str));
  ARG(conn, strlen(conn));
  ARG(op->proven ? "1" : "0", 1);
  ARG(epoch, strlen(epoch));
  ARG(d->keep_str, strlen(d->keep_str));
#undef ARG
  return n;
}

#define SCRIPT_ARGC 13

static size_t script_bytes(const vigil__redis_dir *d, const dir_op *op) {
  const char *argv[SCRIPT_ARGC];
  size_t lens[SCRIPT_ARGC];
  char conn[24], epoch[24];
  int n = script_args(d, op, argv, lens, conn, epoch);
  return vigil__redis_cmd_bytes(n, lens);
}

static int send_script(vigil__redis_dir *d, dir_op *op) {
  const char *argv[SCRIPT_ARGC];
  size_t lens[SCRIPT_ARGC];
  char conn[24], epoch[24];
  int n = script_args(d, op, argv, lens, conn, epoch);
  if (!d->cmd) return VIGIL_EAGAIN;
  return vigil__redis_link_send(d->cmd, &op->cmd, n, argv, lens);
}

static void park_release(vigil__redis_dir *d, dir_op *op) {
  if (d->st.releases_parked >= d->cfg.max_pending) {
    d->st.releases_dropped++;
    note_error(d, "release dropped: %u releases already wait for the store",
               (unsigned)d->cfg.max_pending);
    free(op);
    return;
  }
  op->next_parked = NULL;
  if (d->parked_tail)
    d->parked_tail->next_parked = op;
  else
    d->parked_head = op;
  d->parked_tail = op;
  d->st.releases_parked++;
}

static void send_parked(vigil__redis_dir *d) {
  while (d->parked_head && d->inflight < d->cfg.max_pending) {
    dir_op *op = d->parked_head;
    if (send_script(d, op) != VIGIL_OK) return;
    d->parked_head = op->next_parked;
    if (!d->parked_head) d->parked_tail = NULL;
    d->st.releases_parked--;
    d->inflight++;
  }
}

/* Hands a request's result to its callback and frees it. */
static void finish(vigil__redis_dir *d, dir_op *op, vigil__dir_result *r) {
  r->identity = op->key + d->prefix_len + 3;
  r->identity_len = op->key_len - d->prefix_len - 3;
  r->conn_id = op->conn_id;
  switch (r->status) {
  case VIGIL__DIR_INSTALLED: d->st.installed++; break;
  case VIGIL__DIR_REFUSED_PROVEN: d->st.refused++; break;
  case VIGIL__DIR_FENCED: d->st.fenced++; break;
  case VIGIL__DIR_ERROR: d->st.errors++; break;
  case VIGIL__DIR_TIMEOUT: d->st.timeouts++; break;
  default: d->st.disconnected++; break;
  }
  op->cb(d, r, op->user);
  free(op);
}

/* The script answered a claim or an assert. */
static void on_verdict(vigil__redis_dir *d, dir_op *op, const redisReply *rep) {
  vigil__dir_result r;
  vigil__dir_verdict v;
  char err[240];
  memset(&r, 0, sizeof r);
  d->inflight--;
  if (vigil__dir_decode_verdict(rep, op->kind == OP_ASSERT, &v, err,
                                sizeof err) < 0) {
    r.status = VIGIL__DIR_ERROR;
    r.detail = err;
    note_error(d, "%s: %s", d->where, err);
  } else {
    r.status = v.kind == VIGIL__DIR_V_REFUSED  ? VIGIL__DIR_REFUSED_PROVEN
               : v.kind == VIGIL__DIR_V_FENCED ? VIGIL__DIR_FENCED
                                               : VIGIL__DIR_INSTALLED;
    r.epoch = v.epoch;
    r.other = v.other;
  }
  finish(d, op, &r);
}

static void on_release(vigil__redis_dir *d, dir_op *op, const redisReply *rep) {
  char err[240];
  d->inflight--;
  int rc = vigil__dir_decode_release(rep, err, sizeof err);
  if (rc < 0) {
    d->st.errors++;
    note_error(d, "%s: release: %s", d->where, err);
  } else if (rc == 0) {
    d->st.releases_stale++;
  }
  free(op);
}

/* The store lost the script (restart, SCRIPT FLUSH): send it whole once. */
static int retry_with_eval(vigil__redis_dir *d, dir_op *op,
                           const redisReply *rep) {
  if (op->eval_sent || !rep || rep->type != REDIS_REPLY_ERROR ||
      rep->len < 8 || memcmp(rep->str, "NOSCRIPT", 8) != 0)
    return 0;
  d->st.noscript++;
  op->eval_sent = 1;
  return send_script(d, op) == VIGIL_OK;
}

/* ---- state -------------------------------------------------------------- */

static uint32_t rand32(vigil__redis_dir *d) { return vigil__rand32(&d->rng); }

static void report(vigil__redis_dir *d, int up, const char *reason) {
  if (d->cb.on_state) d->cb.on_state(d, up, reason, d->cb.user);
}

static void start_retry(vigil__redis_dir *d, uint64_t at) {
  uint64_t now = now_ms(d);
  ev_timer_stop(d->loop, &d->retry);
  ev_timer_set(&d->retry, at > now ? (double)(at - now) / 1000.0 : 0.0, 0.0);
  ev_timer_start(d->loop, &d->retry);
}

/* Any failure: both connections go, DOWN is reported once, and the next
 * attempt is scheduled. Idempotent; called from inside link callbacks.
 * `keep` is a link that closed itself and is still handing out its
 * commands, in order: it is set aside (d->closing) instead of freed, so
 * its remaining requests are answered in order after this one, and freed
 * from its on_closed (or by free()). */
static void drop_keeping(vigil__redis_dir *d, vigil__redis_link *keep,
                         const char *why) {
  if (d->state != DIR_CONNECTING && d->state != DIR_UP) return;
  int was_up = d->state == DIR_UP;
  d->state = DIR_WAITING;
  ev_timer_stop(d->loop, &d->refresh);
  note_error(d, "%s: %s", d->where, why);
  if (d->reported != 0) {
    d->reported = 0;
    d->st.downs++;
    report(d, 0, d->last_error);
    if (d->freeing) return; /* free() closed the connections */
  }
  vigil__redis_link *links[2] = {d->cmd, d->sub};
  d->cmd = d->sub = NULL;
  for (int i = 0; i < 2; i++) {
    if (links[i] && links[i] == keep)
      d->closing = keep;
    else
      vigil__redis_link_free(links[i]); /* requests resolve DISCONNECTED */
  }
  if (d->freeing) return;
  uint64_t at = d->next_at;
  if (was_up) {
    /* Spread a fleet that lost the store at the same moment. */
    vigil__backoff_reset(&d->backoff);
    at = now_ms(d) + vigil__backoff_next(&d->backoff, rand32(d));
  }
  start_retry(d, at);
}

static void drop(vigil__redis_dir *d, const char *why) {
  drop_keeping(d, NULL, why);
}

static void become_up(vigil__redis_dir *d) {
  char reason[360];
  d->state = DIR_UP;
  vigil__backoff_reset(&d->backoff);
  double every = (double)d->cfg.liveness_ttl_ms / 3000.0;
  ev_timer_set(&d->refresh, every, every);
  ev_timer_start(d->loop, &d->refresh);
  send_parked(d);
  d->reported = 1;
  d->st.ups++;
  snprintf(reason, sizeof reason, "%s: up", d->where);
  report(d, 1, reason);
}

/* The store may have handed this node's identities to others. */
static void lapsed(vigil__redis_dir *d, const char *what) {
  char reason[sizeof d->last_error];
  d->st.lapses++;
  snprintf(reason, sizeof reason, "%.200s: %.160s; re-assert held identities",
           d->where, what);
  note_error(d, "%s", reason);
  report(d, 1, reason);
}

/* ---- handshake and upkeep ---------------------------------------------- */

static int send_step(vigil__redis_dir *d, vigil__redis_link *l, int step,
                     int argc, const char **argv) {
  size_t lens[8];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  dir_op *op = new_op(d, OP_STEP, NULL, 0);
  if (!op) return VIGIL_ENOMEM;
  op->step = (uint8_t)step;
  int rc = vigil__redis_link_send(l, &op->cmd, argc, argv, lens);
  if (rc) free(op);
  return rc;
}

static int send_handshake(vigil__redis_dir *d, vigil__redis_link *l,
                          int is_sub) {
  char name[160], db[12];
  int rc = 0, sent = 0;
  snprintf(name, sizeof name, "vigil-dir:%s:%s:%s", d->node, d->worker_str,
           is_sub ? "sub" : "cmd");
  if (d->url.has_password) {
    const char *with_user[] = {"AUTH", d->url.user, d->url.password};
    const char *alone[] = {"AUTH", d->url.password};
    rc = d->url.user[0]
             ? send_step(d, l, VIGIL__DIR_STEP_AUTH, 3, with_user)
             : send_step(d, l, VIGIL__DIR_STEP_AUTH, 2, alone);
    sent += !rc;
  }
  if (!rc && !is_sub && d->url.db) {
    snprintf(db, sizeof db, "%u", (unsigned)d->url.db);
    const char *argv[] = {"SELECT", db};
    rc = send_step(d, l, VIGIL__DIR_STEP_SELECT, 2, argv);
    sent += !rc;
  }
  if (!rc) {
    const char *argv[] = {"CLIENT", "SETNAME", name};
    rc = send_step(d, l, VIGIL__DIR_STEP_SETNAME, 3, argv);
    sent += !rc;
  }
  if (!rc && is_sub) {
    const char *argv[] = {"SUBSCRIBE", d->channel};
    rc = send_step(d, l, VIGIL__DIR_STEP_SUBSCRIBE, 2, argv);
    sent += !rc;
  } else if (!rc) {
    const char *load[] = {"SCRIPT", "LOAD", vigil__dir_script};
    rc = send_step(d, l, VIGIL__DIR_STEP_SCRIPT_LOAD, 3, load);
    sent += !rc;
    const char *set[] = {"SET", d->node_key, d->inc, "PX", d->ttl_str, "GET"};
    if (!rc) rc = send_step(d, l, VIGIL__DIR_STEP_LIVENESS, 6, set);
    sent += !rc;
  }
  d->handshake_left += sent;
  return rc;
}

static void on_step(vigil__redis_dir *d, int step, const redisReply *r) {
  char why[360];
  int rc = vigil__dir_check_answer((vigil__dir_step)step, r, &d->expect, why,
                                   sizeof why);
  if (rc == VIGIL__DIR_ANSWER_WRONG)
    drop(d, why);
  else if (rc == VIGIL__DIR_ANSWER_LAPSED)
    lapsed(d, why);
  else if (step < VIGIL__DIR_STEP_REFRESH && d->state == DIR_CONNECTING &&
           --d->handshake_left == 0)
    become_up(d);
}

/* ---- link callbacks ---------------------------------------------------- */

static void link_failed(vigil__redis_dir *d, vigil__redis_link *l,
                        dir_op *op, int status, const char *why) {
  if (!d->freeing) drop_keeping(d, l, why);
  if (op->kind == OP_RELEASE) {
    d->inflight--;
    if (d->freeing)
      free(op);
    else
      park_release(d, op);
  } else if (op->kind == OP_CLAIM || op->kind == OP_ASSERT) {
    vigil__dir_result r;
    memset(&r, 0, sizeof r);
    d->inflight--;
    r.status = status == VIGIL__LINK_TIMEOUT ? VIGIL__DIR_TIMEOUT
               : d->freeing                 ? VIGIL__DIR_CANCELLED
                                            : VIGIL__DIR_DISCONNECTED;
    r.detail = d->freeing ? "the directory was freed" : why;
    finish(d, op, &r);
  } else {
    free(op);
  }
}

static void on_link_reply(vigil__redis_link *l, vigil__redis_cmd *cmd,
                          const redisReply *rep, int status, void *user) {
  vigil__redis_dir *d = user;
  dir_op *op = container_of(cmd, dir_op, cmd);
  enter(d);
  if (status != VIGIL__LINK_REPLY) {
    link_failed(d, l, op, status, vigil__redis_link_why(l));
  } else if (op->kind <= OP_RELEASE) {
    if (!retry_with_eval(d, op, rep)) {
      if (op->kind == OP_RELEASE)
        on_release(d, op, rep);
      else
        on_verdict(d, op, rep);
    }
  } else {
    int step = op->step;
    free(op);
    on_step(d, step, rep);
  }
  leave(d);
}

static int link_is_push(const redisReply *r, void *user) {
  return r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0] &&
         r->element[0]->type == REDIS_REPLY_STRING &&
         vigil__redis_reply_is(r->element[0], "message");
}

static void on_link_push(vigil__redis_link *l, const redisReply *r,
                         void *user) {
  vigil__redis_dir *d = user;
  const redisReply *ch = r->element[1], *msg = r->element[2];
  vigil__dir_eviction ev;
  char err[200];
  if (d->freeing) return;
  enter(d);
  if (!ch || ch->type != REDIS_REPLY_STRING || ch->len != d->channel_len ||
      memcmp(ch->str, d->channel, d->channel_len) != 0) {
    snprintf(err, sizeof err, "message on a channel not subscribed to");
  } else if (!msg || msg->type != REDIS_REPLY_STRING) {
    snprintf(err, sizeof err, "message payload must be a string");
  } else if (vigil__dir_parse_eviction(msg->str, msg->len, &ev, err,
                                       sizeof err) < 0) {
    /* err says why */
  } else if (memcmp(ev.holder_inc, d->inc, VIGIL__DIR_INC_LEN) != 0) {
    snprintf(err, sizeof err, "eviction for incarnation %s, not ours",
             ev.holder_inc);
  } else if (ev.worker != d->cfg.worker) {
    snprintf(err, sizeof err, "eviction for worker %u on worker %s's channel",
             (unsigned)ev.worker, d->worker_str);
  } else {
    err[0] = '\0';
    d->st.evictions++;
    if (d->cb.on_evict) d->cb.on_evict(d, &ev, d->cb.user);
  }
  if (err[0]) {
    d->st.evictions_dropped++;
    note_error(d, "%s: eviction dropped: %s", d->where, err);
  }
  leave(d);
}

static void on_link_closed(vigil__redis_link *l, const char *why,
                           void *user) {
  vigil__redis_dir *d = user;
  enter(d);
  if (l == d->closing) {
    d->closing = NULL;
    vigil__redis_link_free(l);
  }
  drop(d, why);
  leave(d);
}

/* ---- attempts ----------------------------------------------------------- */

static int resolve(vigil__redis_dir *d, struct sockaddr_storage *ss,
                   socklen_t *len, char *why, size_t whylen) {
  memset(ss, 0, sizeof *ss);
  if (d->url.is_unix) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, d->url.path, strlen(d->url.path) + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                       strlen(d->url.path) + 1);
    return 0;
  }
  struct addrinfo hints, *res = NULL;
  char port[8];
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port, sizeof port, "%u", (unsigned)d->url.port);
  int rc = getaddrinfo(d->url.host, port, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(why, whylen, "cannot resolve %.64s: %s", d->url.host,
             rc ? gai_strerror(rc) : "no address");
    if (res) freeaddrinfo(res);
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static void attempt(vigil__redis_dir *d) {
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  char why[300];
  uint64_t now = now_ms(d);
  d->st.attempts++;
  d->next_at = now + vigil__backoff_next(&d->backoff, rand32(d));
  d->state = DIR_CONNECTING;
  d->handshake_left = 0;
  if (resolve(d, &ss, &sslen, why, sizeof why) < 0) {
    drop(d, why);
    return;
  }
  vigil__redis_link_options o;
  memset(&o, 0, sizeof o);
  o.loop = d->loop;
  o.addr = (struct sockaddr *)&ss;
  o.addrlen = sslen;
  o.connect_timeout_ms = (uint32_t)(
      vigil__backoff_connect_deadline(&d->cfg.backoff, now, d->next_at) - now);
  o.command_timeout_ms = d->cfg.command_timeout_ms;
  o.max_reply_string = VIGIL__DIR_MSG_MAX;
  o.max_out_bytes = DIR_MAX_OUT_BYTES;
  o.on_reply = on_link_reply;
  o.on_closed = on_link_closed;
  o.user = d;
  int rc = vigil__redis_link_new(&o, &d->cmd, why, sizeof why);
  if (rc == 0) {
    o.is_push = link_is_push;
    o.on_push = on_link_push;
    rc = vigil__redis_link_new(&o, &d->sub, why, sizeof why);
  }
  if (rc == 0) {
    rc = send_handshake(d, d->cmd, 0);
    if (rc == 0) rc = send_handshake(d, d->sub, 1);
    if (rc) snprintf(why, sizeof why, "cannot queue the handshake: %s",
                     vigil_strerror(rc));
  }
  if (rc) drop(d, why);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil__redis_dir *d = w->data;
  enter(d);
  attempt(d);
  leave(d);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil__redis_dir *d = w->data;
  enter(d);
  const char *set[] = {"SET", d->node_key, d->inc, "PX", d->ttl_str, "GET"};
  const char *ping[] = {"PING"};
  if (send_step(d, d->cmd, VIGIL__DIR_STEP_REFRESH, 6, set) != VIGIL_OK ||
      send_step(d, d->sub, VIGIL__DIR_STEP_PING, 1, ping) != VIGIL_OK)
    drop(d, "cannot queue the liveness refresh");
  leave(d);
}

/* ---- API ---------------------------------------------------------------- */

void vigil__redis_dir_config_init(vigil__redis_dir_config *c) {
  if (!c) return;
  memset(c, 0, sizeof *c);
  c->command_timeout_ms = 500;
  c->liveness_ttl_ms = 10000;
  c->released_ttl_ms = VIGIL_MAX_DURATION_MS;
  c->backoff.initial_ms = 200;
  c->backoff.multiplier = 1.6;
  c->backoff.max_ms = 5000;
  c->backoff.jitter = 0.2;
  c->backoff.min_connect_timeout_ms = 2000;
  c->max_pending = 65536;
}

#define invalid(err, errlen, ...)                                            \
  vigil__textf(err, errlen, VIGIL_EINVAL, __VA_ARGS__)

static int validate(const vigil__redis_dir_config *c, vigil__redis_url *url,
                    char *err, size_t errlen) {
  if (!c) return invalid(err, errlen, "config must not be NULL");
  int rc = vigil__redis_url_parse(c->url, url, err, errlen);
  if (rc) return rc;
  const char *prefix = c->prefix ? c->prefix : "vigil:";
  if (!vigil__dir_prefix_valid(prefix, strlen(prefix)))
    return invalid(err, errlen,
                   "prefix must be 0..%d printable bytes without spaces",
                   VIGIL__DIR_PREFIX_MAX);
  if (!c->node || !vigil__dir_node_valid(c->node, strlen(c->node)))
    return invalid(err, errlen, "node must be 1..%d of [A-Za-z0-9._-]",
                   VIGIL__DIR_NODE_MAX);
  if (c->command_timeout_ms < 1 ||
      c->command_timeout_ms > VIGIL_MAX_DURATION_MS)
    return invalid(err, errlen, "command_timeout_ms must be 1..%u",
                   VIGIL_MAX_DURATION_MS);
  /* A refresh is sent every ttl/3 and must be answered before the next. */
  uint64_t min_ttl = 3ull * c->command_timeout_ms;
  if (c->liveness_ttl_ms < min_ttl ||
      c->liveness_ttl_ms > VIGIL_MAX_DURATION_MS)
    return invalid(err, errlen,
                   "liveness_ttl_ms must be 3 x command_timeout_ms (%llu).."
                   "%u",
                   (unsigned long long)min_ttl, VIGIL_MAX_DURATION_MS);
  if (c->released_ttl_ms > VIGIL_MAX_DURATION_MS)
    return invalid(err, errlen, "released_ttl_ms must be 0..%u",
                   VIGIL_MAX_DURATION_MS);
  if (!vigil__backoff_valid(&c->backoff))
    return invalid(err, errlen,
                   "backoff must be within vigil_client_backoff's ranges");
  if (c->max_pending < 1 || c->max_pending > DIR_MAX_PENDING_LIMIT)
    return invalid(err, errlen, "max_pending must be 1..%u",
                   DIR_MAX_PENDING_LIMIT);
  return 0;
}

int vigil__redis_dir_config_check(const vigil__redis_dir_config *c,
                                  char *err, size_t errlen) {
  vigil__redis_url url;
  if (err && errlen) err[0] = '\0';
  return validate(c, &url, err, errlen);
}

/* The incarnation must differ between two runs of a node, even across a
 * reboot, so the fallback mixes wall-clock time and the pid (a monotonic
 * clock restarts with the machine). */
static uint64_t incarnation_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s && s)
    return s;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
         ((uint64_t)getpid() << 32);
}

int vigil__redis_dir_new(struct ev_loop *loop,
                         const vigil__redis_dir_config *c,
                         const vigil__redis_dir_callbacks *cb,
                         vigil__redis_dir **out, char *err, size_t errlen) {
  vigil__redis_url url;
  if (err && errlen) err[0] = '\0';
  if (!loop || !out) return invalid(err, errlen, "loop and out are required");
  int rc = validate(c, &url, err, errlen);
  if (rc) return rc;
  vigil__redis_dir *d = calloc(1, sizeof *d);
  if (!d) {
    invalid(err, errlen, "out of memory");
    return VIGIL_ENOMEM;
  }
  d->loop = loop;
  d->cfg = *c;
  if (cb) d->cb = *cb;
  d->url = url;
  vigil__redis_url_describe(&url, d->where, sizeof d->where);
  snprintf(d->prefix, sizeof d->prefix, "%s", c->prefix ? c->prefix : "vigil:");
  d->prefix_len = strlen(d->prefix);
  snprintf(d->node, sizeof d->node, "%s", c->node);
  d->node_len = strlen(d->node);
  d->cfg.url = NULL; /* the parsed copy is d->url */
  d->cfg.prefix = d->prefix;
  d->cfg.node = d->node;
  if (vigil__dir_script_sha1(d->sha) < 0) {
    free(d);
    return invalid(err, errlen, "cannot compute the script's SHA-1");
  }
  d->rng = c->seed ? c->seed : incarnation_seed();
  snprintf(d->inc, sizeof d->inc, "%08x%08x", rand32(d), rand32(d));
  /* The workers of one node share a seed, hence the incarnation (one
   * liveness key per node); their reconnect jitter must still differ. */
  d->rng ^= ((uint64_t)c->worker + 1) * 0x9E3779B97F4A7C15ull;
  snprintf(d->worker_str, sizeof d->worker_str, "%u", (unsigned)c->worker);
  snprintf(d->keep_str, sizeof d->keep_str, "%u",
           (unsigned)c->released_ttl_ms);
  snprintf(d->ttl_str, sizeof d->ttl_str, "%u", (unsigned)c->liveness_ttl_ms);
  snprintf(d->node_key, sizeof d->node_key, "%snode:%s", d->prefix, d->node);
  d->channel_len = (size_t)snprintf(d->channel, sizeof d->channel,
                                    "%sevict:%s:%s", d->prefix, d->node,
                                    d->worker_str);
  d->expect.sha = d->sha;
  d->expect.channel = d->channel;
  d->expect.inc = d->inc;
  d->expect.node = d->node;
  d->expect.db = url.db;
  d->reported = -1;
  d->state = DIR_WAITING;
  vigil__backoff_init(&d->backoff, &d->cfg.backoff);
  ev_timer_init(&d->retry, on_retry, 0.0, 0.0);
  ev_timer_init(&d->refresh, on_refresh, 0.0, 0.0);
  d->retry.data = d->refresh.data = d;
  start_retry(d, now_ms(d)); /* first attempt from the loop */
  *out = d;
  return VIGIL_OK;
}

static int check_identity(const void *identity, size_t len) {
  return identity && len >= 1 && len <= VIGIL__DIR_IDENTITY_MAX;
}

int vigil__redis_dir_claim(vigil__redis_dir *d, const void *identity,
                           size_t len, uint64_t conn_id, int proven,
                           vigil__dir_result_cb cb, void *user) {
  if (!d || !check_identity(identity, len) || !cb) return VIGIL_EINVAL;
  if (d->freeing) return VIGIL_ECLOSED;
  if (d->state != DIR_UP || d->inflight >= d->cfg.max_pending)
    return VIGIL_EAGAIN;
  dir_op *op = new_op(d, OP_CLAIM, identity, len);
  if (!op) return VIGIL_ENOMEM;
  op->conn_id = conn_id;
  op->proven = proven ? 1 : 0;
  op->cb = cb;
  op->user = user;
  int rc = send_script(d, op);
  if (rc) {
    free(op);
    return rc == VIGIL_EOVERFLOW ? VIGIL_EAGAIN : rc;
  }
  d->inflight++;
  d->st.claims++;
  return VIGIL_OK;
}

int vigil__redis_dir_reassert(vigil__redis_dir *d, const vigil__dir_held *h,
                              size_t n, vigil__dir_result_cb cb, void *user) {
  if (!d || (n && !h) || !cb) return VIGIL_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!check_identity(h[i].identity, h[i].identity_len))
      return VIGIL_EINVAL;
  if (d->freeing) return VIGIL_ECLOSED;
  if (d->state != DIR_UP || n > d->cfg.max_pending - d->inflight)
    return VIGIL_EAGAIN;
  if (n == 0) return VIGIL_OK;
  dir_op **ops = calloc(n, sizeof *ops);
  if (!ops) return VIGIL_ENOMEM;
  size_t bytes = 0;
  int rc = VIGIL_OK;
  for (size_t i = 0; i < n && rc == VIGIL_OK; i++) {
    ops[i] = new_op(d, OP_ASSERT, h[i].identity, h[i].identity_len);
    if (!ops[i]) {
      rc = VIGIL_ENOMEM;
      break;
    }
    ops[i]->conn_id = h[i].conn_id;
    ops[i]->epoch = h[i].epoch;
    ops[i]->proven = h[i].proven ? 1 : 0;
    ops[i]->cb = cb;
    ops[i]->user = user;
    bytes += script_bytes(d, ops[i]);
  }
  /* Room first, so that every send below succeeds: all or nothing. */
  if (rc == VIGIL_OK) rc = vigil__redis_link_reserve(d->cmd, bytes);
  if (rc != VIGIL_OK) {
    for (size_t i = 0; i < n; i++) free(ops[i]);
    free(ops);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    send_script(d, ops[i]);
    d->inflight++;
  }
  free(ops);
  return VIGIL_OK;
}

int vigil__redis_dir_release(vigil__redis_dir *d, const void *identity,
                             size_t len, uint64_t epoch) {
  if (!d || !check_identity(identity, len) || epoch == 0)
    return VIGIL_EINVAL;
  if (d->freeing) return VIGIL_ECLOSED;
  dir_op *op = new_op(d, OP_RELEASE, identity, len);
  if (!op) return VIGIL_ENOMEM;
  op->epoch = epoch;
  d->st.releases++;
  if (d->state == DIR_UP && d->inflight < d->cfg.max_pending &&
      send_script(d, op) == VIGIL_OK)
    d->inflight++;
  else
    park_release(d, op);
  return VIGIL_OK;
}

int vigil__redis_dir_is_up(const vigil__redis_dir *d) {
  return d && d->state == DIR_UP;
}

const char *vigil__redis_dir_incarnation(const vigil__redis_dir *d) {
  return d->inc;
}

const char *vigil__redis_dir_last_error(const vigil__redis_dir *d) {
  return d->last_error;
}

void vigil__redis_dir_get_stats(const vigil__redis_dir *d,
                                vigil__redis_dir_stats *out) {
  *out = d->st;
}
