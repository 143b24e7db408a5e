/* See clusternode.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clusternode.h"
#include "testutil.h"

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static cn_conn *slot_of(cnode *n, vigil_conn *c) {
  for (int i = n->ncn - 1; i >= 0; i--)
    if (n->conns[i].conn == c) return &n->conns[i];
  return NULL;
}

static cn_conn *slot_new(cnode *n, vigil_conn *c) {
  assert_true(n->ncn < CN_MAX_CONNS);
  cn_conn *s = &n->conns[n->ncn++];
  memset(s, 0, sizeof *s);
  s->conn = c;
  s->id = vigil_conn_id(c);
  s->claim_rc = 1;
  return s;
}

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  cnode *n = ud;
  cn_conn *s = slot_of(n, c);
  if (!s) s = slot_new(n, c);
  if (s->claim_rc != 1) return;
  const char *p = data;
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '\n') {
      s->identity[s->got] = '\0';
      s->claim_rc = vigil_conn_identify(c, s->identity, s->got);
      return;
    }
    if (s->got + 1 < sizeof s->identity) s->identity[s->got++] = p[i];
  }
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  cnode *n = ud;
  cn_conn *s = slot_of(n, c);
  if (!s) return;
  s->closed = 1;
  s->reason = reason;
  s->closed_us = mono_us();
  s->conn = NULL;
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  cnode *n = ud;
  (void)l;
  if (!n->early_claim) return;
  cn_conn *s = slot_new(n, c);
  snprintf(s->identity, sizeof s->identity, "%s", n->early_claim);
  s->got = strlen(s->identity);
  s->claim_rc = vigil_conn_identify(c, s->identity, s->got);
}

static const vigil_conn_callbacks callbacks = {
    .on_data = on_data, .on_close = on_close};

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  cnode *n = ud;
  (void)hub;
  switch (ev->type) {
  case VIGIL_EV_DIRECTORY_UP:
    n->ups++;
    break;
  case VIGIL_EV_DIRECTORY_DOWN:
    n->downs++;
    snprintf(n->last_down, sizeof n->last_down, "%s",
             ev->detail ? ev->detail : "");
    break;
  case VIGIL_EV_DIRECTORY_ERROR:
    n->errors++;
    snprintf(n->last_error, sizeof n->last_error, "%s",
             ev->detail ? ev->detail : "");
    break;
  case VIGIL_EV_TAKEOVER:
    if (ev->scope != VIGIL_SCOPE_CLUSTER) break;
    n->takeovers++;
    snprintf(n->last_other_node, sizeof n->last_other_node, "%s",
             ev->other_node ? ev->other_node : "");
    break;
  case VIGIL_EV_READY: {
    /* TLS: the conn exists before any data; record it. */
    if (ev->conn && !slot_of(n, ev->conn)) slot_new(n, ev->conn);
    break;
  }
  default:
    break;
  }
  if (ev->type == VIGIL_EV_OPEN && ev->conn && !slot_of(n, ev->conn))
    slot_new(n, ev->conn);
}

void cn_start(cnode *n, const char *name, const char *url,
              uint32_t command_timeout_ms, void *tls_ctx) {
  cn_start_policy(n, name, url, command_timeout_ms, tls_ctx, NULL);
}

void cn_start_policy(cnode *n, const char *name, const char *url,
                     uint32_t command_timeout_ms, void *tls_ctx,
                     const vigil_policy *policy) {
  memset(n, 0, sizeof *n);
  snprintf(n->name, sizeof n->name, "%s", name);
  n->tls_ctx = tls_ctx;
  n->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_cluster_options co;
  vigil_cluster_options_init(&co);
  co.url = url;
  co.node = name;
  if (command_timeout_ms) {
    co.command_timeout_ms = command_timeout_ms;
    co.liveness_ttl_ms = 3 * command_timeout_ms > 10000
                             ? 3 * command_timeout_ms
                             : 10000;
  }
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.on_event = on_event;
  ho.event_data = n;
  ho.cluster = &co;
  ho.policy = policy;
  assert_int_equal(vigil_hub_new(n->loop, &ho, &n->hub), VIGIL_OK);
  /* The listener keeps pointing at these options. */
  vigil_tls_options_init(&n->tls_opts);
  n->tls_opts.identity_from = VIGIL_TLS_ID_CN;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.adopt.callbacks = &callbacks;
  lo.adopt.user_data = n;
  lo.on_accept = on_accept;
  lo.accept_data = n;
  if (tls_ctx) {
    lo.adopt.tls_ctx = tls_ctx;
    lo.adopt.tls = &n->tls_opts;
  }
  assert_int_equal(vigil_listen(n->hub, &lo, &n->listener), VIGIL_OK);
  n->port = vigil_listener_port(n->listener);
}

void cn_stop(cnode *n) {
  if (!n->loop) return;
  vigil_hub_free(n->hub);
  ev_loop_destroy(n->loop);
  n->loop = NULL;
}

int cn_run_until(cnode **nodes, int nn, int (*pred)(void *), void *arg,
                 uint32_t timeout_ms, void (*extra)(void *),
                 void *extra_arg) {
  uint64_t end = vt_now_ms() + timeout_ms;
  for (;;) {
    if (pred && pred(arg)) return 1;
    if (vt_now_ms() >= end) return 0;
    for (int i = 0; i < nn; i++)
      if (nodes[i]->loop) ev_run(nodes[i]->loop, EVRUN_NOWAIT);
    if (extra) extra(extra_arg);
    usleep(200); /* polls; the loops' own waits are on other fds */
  }
}

void cn_run_for(cnode **nodes, int nn, uint32_t ms) {
  cn_run_until(nodes, nn, NULL, NULL, ms, NULL, NULL);
}

int cn_device(cnode *n, const char *identity) {
  int fd = vt_connect_loopback(n->port);
  assert_true(fd >= 0);
  char line[80];
  int len = snprintf(line, sizeof line, "%s\n", identity);
  assert_int_equal(write(fd, line, (size_t)len), len);
  return fd;
}

cn_conn *cn_find(cnode *n, const char *identity) {
  for (int i = n->ncn - 1; i >= 0; i--)
    if (strcmp(n->conns[i].identity, identity) == 0) return &n->conns[i];
  return NULL;
}

int cn_open_count(const cnode *n) {
  int k = 0;
  for (int i = 0; i < n->ncn; i++) k += !n->conns[i].closed;
  return k;
}

typedef struct wait_arg {
  const int *counter;
  int count;
} wait_arg;

static int reached(void *arg) {
  wait_arg *w = arg;
  return *w->counter >= w->count;
}

int cn_wait_ups(cnode **nodes, int nn, cnode *n, int count, uint32_t ms) {
  wait_arg w = {&n->ups, count};
  return cn_run_until(nodes, nn, reached, &w, ms, NULL, NULL);
}

int cn_wait_downs(cnode **nodes, int nn, cnode *n, int count, uint32_t ms) {
  wait_arg w = {&n->downs, count};
  return cn_run_until(nodes, nn, reached, &w, ms, NULL, NULL);
}
