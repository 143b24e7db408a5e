#include "groupfix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

void gx_fail(gx *f, int line) {
  int none = 0;
  __atomic_compare_exchange_n(&f->failed_line, &none, line, 0,
                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

uint32_t gx_load(const uint32_t *counter) {
  return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static uint32_t bump(uint32_t *counter) {
  return __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
}

uint32_t gx_total_accepts(gx *f) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < f->workers; i++) n += gx_load(&f->accepts[i]);
  return n;
}

static int32_t worker_of(vigil_hub *hub) {
  vigil_worker *w = vigil_hub_worker(hub);
  return w ? (int32_t)vigil_worker_index(w) : VIGIL_WORKER_NONE;
}

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  gx *f = ud;
  int32_t idx = worker_of(hub);
  GX_CHECK(f, ev->worker == idx);
  char line[1024], want[32];
  vigil_event_format(ev, VIGIL_LOG_LOGFMT, line, sizeof line);
  int n = snprintf(want, sizeof want, " worker=%d", (int)idx);
  const char *at = strstr(line, want);
  GX_CHECK(f, at != NULL && (at[n] == ' ' || at[n] == '\0'));
  pthread_mutex_lock(&f->lock);
  if (idx >= 0 && idx < GX_MAXW) f->events_per_worker[idx]++;
  if (ev->type == VIGIL_EV_SHUTDOWN && ev->detail &&
      strcmp(ev->detail, "done") == 0)
    f->shutdown_done_events++;
  if (ev->type == VIGIL_EV_TAKEOVER && f->ntakeover < GX_MAX_TAKEOVERS) {
    gx_takeover *t = &f->takeovers[f->ntakeover++];
    t->worker = ev->worker;
    t->conn_id = ev->conn_id;
    t->other_conn = ev->other_conn_id;
    t->scope = ev->scope;
    t->other_worker = ev->other_worker;
  }
  if (ev->type == VIGIL_EV_CLOSE && f->nclose < GX_MAX_CLOSES) {
    gx_close *c = &f->closes[f->nclose++];
    c->worker = ev->worker;
    c->conn_id = ev->conn_id;
    c->reason = ev->reason;
    c->cause = ev->cause;
    const char *colon = ev->peer ? strrchr(ev->peer, ':') : NULL;
    c->peer_port = colon ? (uint16_t)atoi(colon + 1) : 0;
    c->at = vt_now_ms();
  }
  pthread_mutex_unlock(&f->lock);
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  gx *f = ud;
  (void)l;
  int32_t idx = worker_of(vigil_conn_hub(c));
  GX_CHECK(f, idx >= 0 && idx < (int32_t)f->workers);
  if (idx >= 0 && idx < GX_MAXW) bump(&f->accepts[idx]);
}

static void on_data(vigil_conn *c, const void *d, size_t n, void *ud) {
  gx *f = ud;
  if (f->data_hook) f->data_hook(f, c, d, n);
}

static void on_close(vigil_conn *c, vigil_reason r, void *ud) {
  gx *f = ud;
  (void)c;
  (void)r;
  bump(&f->on_close_calls);
}

static const vigil_conn_callbacks conn_cb = {
    .on_data = on_data, .on_close = on_close};

static int listen_on_port(gx *f, vigil_hub *hub, uint32_t index) {
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  /* Setups run one at a time in index order: worker 0's port is known. */
  lo.port = index == 0 ? 0 : f->port;
  lo.reuseport = 1;
  lo.adopt.callbacks = &conn_cb;
  lo.adopt.user_data = f;
  lo.on_accept = on_accept;
  lo.accept_data = f;
  vigil_listener *l;
  int rc = vigil_listen(hub, &lo, &l);
  if (rc == VIGIL_OK && index == 0) f->port = vigil_listener_port(l);
  return rc;
}

static int setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  gx *f = ud;
  uint32_t index = vigil_worker_index(w);
  GX_CHECK(f, bump(&f->in_setup) == 0); /* one setup at a time */
  uint32_t nth = bump(&f->setups);
  if (nth < GX_MAXW) f->setup_order[nth] = index;
  if (index < GX_MAXW) f->setup_thread[index] = pthread_self();
  GX_CHECK(f, vigil_worker_group(w) == f->g);
  GX_CHECK(f, vigil_group_worker(f->g, index) == w);
  GX_CHECK(f, vigil_worker_hub(w) == hub);
  GX_CHECK(f, vigil_hub_worker(hub) == w);
  GX_CHECK(f, vigil_worker_loop(w) == vigil_hub_loop(hub));
  int rc = VIGIL_OK;
  if (f->listen) rc = listen_on_port(f, hub, index);
  if (rc == VIGIL_OK && (int)index == f->fail_setup_at) rc = f->fail_setup_rc;
  if (f->setup_hook) f->setup_hook(f, w);
  __atomic_fetch_sub(&f->in_setup, 1, __ATOMIC_SEQ_CST);
  return rc;
}

static void teardown(vigil_worker *w, void *ud) {
  gx *f = ud;
  GX_CHECK(f, vigil_worker_hub(w) == NULL); /* the hub went first */
  GX_CHECK(f, vigil_worker_loop(w) != NULL);
  if (f->teardown_hook) f->teardown_hook(f, w);
  bump(&f->teardowns);
}

void gx_init(gx *f, uint32_t workers) {
  memset(f, 0, sizeof *f);
  f->workers = workers;
  f->listen = 1;
  f->fail_setup_at = -1;
  vigil_policy_init(&f->policy);
  pthread_mutex_init(&f->lock, NULL);
}

void gx_new(gx *f) {
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &f->policy;
  ho.on_event = on_event;
  ho.event_data = f;
  ho.on_takeover = f->on_takeover;
  ho.takeover_data = f;
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.workers = f->workers;
  go.hub = &ho;
  go.setup = setup;
  go.teardown = teardown;
  go.user_data = f;
  assert_int_equal(vigil_group_new(&go, &f->g), VIGIL_OK);
}

void gx_start(gx *f) {
  gx_new(f);
  assert_int_equal(vigil_group_start(f->g), VIGIL_OK);
}

void gx_finish(gx *f) {
  assert_int_equal(vigil_group_stop(f->g, 1000), VIGIL_OK);
  assert_int_equal(vigil_group_join(f->g), VIGIL_OK);
  gx_assert_clean(f);
  vigil_group_free(f->g);
  gx_done(f);
}

void gx_assert_clean(gx *f) {
  int line = __atomic_load_n(&f->failed_line, __ATOMIC_SEQ_CST);
  if (line != 0) fail_msg("a check on a worker thread failed at line %d", line);
}

void gx_done(gx *f) { pthread_mutex_destroy(&f->lock); }

void gx_stats(gx *f, vigil_stats *total, vigil_stats *per_worker) {
  assert_int_equal(vigil_group_stats(f->g, total, per_worker, GX_MAXW),
                   (int)f->workers);
}

void gx_connect(gx *f, int *fds, int n) {
  for (int i = 0; i < n; i++) {
    fds[i] = vt_connect_loopback(f->port);
    assert_true(fds[i] >= 0);
  }
}

uint16_t gx_local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  return ntohs(a.sin_port);
}

const gx_close *gx_find_close(gx *f, uint16_t peer_port) {
  const gx_close *found = NULL;
  pthread_mutex_lock(&f->lock);
  for (uint32_t i = 0; i < f->nclose; i++)
    if (f->closes[i].peer_port == peer_port) found = &f->closes[i];
  pthread_mutex_unlock(&f->lock);
  return found;
}

int gx_find_takeover(gx *f, int32_t other_worker, uint64_t other_conn,
                     gx_takeover *out) {
  int found = 0;
  pthread_mutex_lock(&f->lock);
  for (uint32_t i = 0; i < f->ntakeover; i++) {
    const gx_takeover *t = &f->takeovers[i];
    if (t->other_conn != other_conn) continue;
    if (t->scope == VIGIL_SCOPE_HUB ? t->worker != other_worker
                                    : t->other_worker != other_worker)
      continue;
    *out = *t;
    found = 1;
  }
  pthread_mutex_unlock(&f->lock);
  return found;
}

/* ---- conns placed on a chosen worker ---- */

int gx_atomic(const int *v) { return __atomic_load_n(v, __ATOMIC_SEQ_CST); }

static void set_atomic(int *v, int x) {
  __atomic_store_n(v, x, __ATOMIC_SEQ_CST);
}

static void placed_close(vigil_conn *c, vigil_reason r, void *ud) {
  gx_placed *p = ud;
  (void)c;
  set_atomic(&p->reason, (int)r);
  set_atomic(&p->closed, 1);
}

static const vigil_conn_callbacks placed_cb = {.on_close = placed_close};

static void claim_step(gx_placed *p) {
  if (p->claim)
    set_atomic(&p->claim_rc,
               vigil_conn_identify(p->conn, p->claim, strlen(p->claim)));
}

typedef struct place_req {
  gx_placed *p;
  vigil_adopt_options ao;
} place_req;

static void adopt_fn(vigil_worker *w, void *arg) {
  place_req *r = arg;
  gx_placed *p = r->p;
  vigil_hub *hub = vigil_worker_hub(w);
  GX_CHECK(p->f, hub != NULL);
  int rc = hub ? vigil_adopt(hub, p->server_fd, &r->ao, &p->conn)
               : VIGIL_EINVAL;
  GX_CHECK(p->f, rc == VIGIL_OK);
  if (rc == VIGIL_OK) {
    __atomic_store_n(&p->conn_id, vigil_conn_id(p->conn), __ATOMIC_SEQ_CST);
    claim_step(p);
  }
  set_atomic(&p->done, 1);
}

static void claim_fn(vigil_worker *w, void *arg) {
  gx_placed *p = arg;
  (void)w;
  claim_step(p);
  set_atomic(&p->done, 1);
}

static int placed_done_step(void *arg) {
  return gx_atomic(&((gx_placed *)arg)->done);
}

void gx_place(gx *f, gx_placed *p, uint32_t worker, const char *id,
              const vigil_adopt_options *ao) {
  memset(p, 0, sizeof *p);
  p->f = f;
  p->worker = worker;
  p->claim = id;
  assert_int_equal(vt_tcp_pair(&p->server_fd, &p->client_fd), 0);
  place_req r = {p, {0}};
  if (ao)
    r.ao = *ao;
  else
    vigil_adopt_options_init(&r.ao);
  r.ao.callbacks = &placed_cb;
  r.ao.user_data = p;
  assert_int_equal(vigil_group_post(f->g, worker, adopt_fn, &r), VIGIL_OK);
  assert_true(vt_wait_until(placed_done_step, p, 2000));
  gx_assert_clean(f);
}

int gx_claim_on(gx *f, gx_placed *p, const char *id) {
  p->claim = id;
  set_atomic(&p->done, 0);
  assert_int_equal(vigil_group_post(f->g, p->worker, claim_fn, p), VIGIL_OK);
  assert_true(vt_wait_until(placed_done_step, p, 2000));
  return gx_atomic(&p->claim_rc);
}

static int placed_closed(void *arg) {
  return gx_atomic(&((gx_placed *)arg)->closed);
}

int gx_wait_closed(gx_placed *p, uint32_t timeout_ms) {
  if (!vt_wait_until(placed_closed, p, timeout_ms)) return -1;
  return gx_atomic(&p->reason);
}

void gx_placed_done(gx_placed *p) {
  if (p->client_fd >= 0) close(p->client_fd);
  p->client_fd = -1;
}

int gx_client_end(int fd, uint32_t timeout_ms) {
  uint64_t end = vt_now_ms() + timeout_ms;
  for (;;) {
    char buf[64];
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 10) == 1) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return 1;
      if (n < 0 && errno != EAGAIN) return -errno;
    }
    if (vt_now_ms() >= end) return 0;
  }
}
