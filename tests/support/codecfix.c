/* See codecfix.h. */
#include "codecfix.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the recorder ------------------------------------------------------- */

static void on_data(vigil_conn *c, const void *d, size_t len, void *ud) {
  fx_rec *r = ud;
  if (r->ndata < FX_MAX_FRAMES) {
    r->data_len[r->ndata] = len;
    if (len) memcpy(r->data[r->ndata], d, len < 63 ? len : 63);
  }
  if (len > 1000) {
    int ok = 1;
    for (size_t i = 0; i < len; i++)
      if (((const uint8_t *)d)[i] != fx_pattern(i)) ok = 0;
    r->big_ok = ok;
  }
  r->ndata++;
  if (r->close_on_data) vigil_close(c);
}

static void on_hello(vigil_conn *c, const void *id, size_t len, void *ud) {
  fx_rec *r = ud;
  (void)c;
  r->hellos++;
  memcpy(r->hello, id, len < 255 ? len : 255);
  r->hello[len < 255 ? len : 255] = '\0';
}

static void on_ping_due(vigil_conn *c, void *ud) {
  (void)c;
  ((fx_rec *)ud)->pings_due++;
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  fx_rec *r = ud;
  (void)c;
  r->closed++;
  r->reason = reason;
  r->conn = NULL;
}

const vigil_conn_callbacks fx_cb = {
    .on_data = on_data,
    .on_ping_due = on_ping_due,
    .on_close = on_close,
    .on_hello = on_hello,
};
const vigil_conn_callbacks fx_cb_auto = {
    .on_data = on_data,
    .on_close = on_close, /* no on_hello: vigil identifies */
};

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  fx_hub *f = ud;
  (void)hub;
  f->events[ev->type]++;
  if (ev->type == VIGIL_EV_CLOSE && ev->conn && !f->foreign_user_data) {
    fx_rec *r = vigil_conn_user_data(ev->conn);
    if (r) {
      r->cause = ev->cause;
      snprintf(r->detail, sizeof r->detail, "%s",
               ev->detail ? ev->detail : "");
    }
  }
}

/* ---- the hub ------------------------------------------------------------ */

void fx_init(fx_hub *f) {
  memset(f, 0, sizeof *f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_policy_init(&f->policy);
  f->policy.frame_codec = 1;
  f->policy.drain_timeout_ms = 300;
  f->policy.linger_max_ms = 2000;
  f->now = 1000000;
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = &f->policy;
  o.on_event = on_event;
  o.event_data = f;
  o.tick_ms = 1; /* deadlines at the exact fake ms */
  o.clock = vt_fake_clock;
  o.clock_data = &f->now;
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
}

void fx_advance(fx_hub *f, uint64_t ms) {
  vt_advance(f->loop, f->hub, &f->now, ms);
}

void fx_done(fx_hub *f) {
  vigil_hub_free(f->hub);
  ev_loop_destroy(f->loop);
}

vigil_conn *fx_adopt(fx_hub *f, int fd, fx_rec *r, const vigil_policy *p,
                     const vigil_conn_callbacks *cb) {
  vigil_adopt_options ao;
  vigil_adopt_options_init(&ao);
  ao.policy = p;
  ao.callbacks = cb ? cb : &fx_cb;
  ao.user_data = r;
  memset(r, 0, sizeof *r);
  assert_int_equal(vigil_adopt(f->hub, fd, &ao, &r->conn), VIGIL_OK);
  return r->conn;
}

int fx_rec_closed(void *arg) { return ((fx_rec *)arg)->closed > 0; }

/* ---- the raw peer ------------------------------------------------------- */

static int raw_frame(void *ud, const vigil_frame *fr) {
  fx_raw *r = ud;
  if (r->n < FX_MAX_FRAMES) {
    r->f[r->n].type = fr->type;
    r->f[r->n].len = fr->len;
    if (fr->len)
      memcpy(r->f[r->n].data, fr->payload, fr->len < 300 ? fr->len : 300);
  }
  r->n++;
  return 0;
}

void fx_raw_init(fx_raw *r, int fd) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
  vigil_frame_parser_init(&r->p, VIGIL_FRAME_MAX_FRAME_MAX);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int raw_poll(void *arg) {
  fx_raw *r = arg;
  uint8_t buf[65536];
  int eof = 0;
  long n = vt_read_avail(r->fd, buf, sizeof buf, &eof);
  if (n > 0) assert_true(vigil_frame_parser_feed(&r->p, buf, (size_t)n,
                                                 raw_frame, r) == n);
  if (eof) r->eof = 1;
  return r->n >= r->want || r->eof;
}

int fx_raw_wait(fx_hub *f, fx_raw *r, int want, uint32_t ms) {
  r->want = want;
  vt_run_until(f->loop, raw_poll, r, ms);
  return r->n >= want;
}

int fx_raw_wait_eof(fx_hub *f, fx_raw *r, uint32_t ms) {
  r->want = 1 << 30;
  vt_run_until(f->loop, raw_poll, r, ms);
  return r->eof;
}

void fx_raw_send(fx_raw *r, vigil_frame_type t, const void *p, size_t len) {
  uint8_t buf[4096];
  int n = vigil_frame_encode(t, p, len, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(send(r->fd, buf, (size_t)n, MSG_NOSIGNAL), n);
}

void fx_raw_send_bytes(fx_raw *r, const void *p, size_t len) {
  assert_int_equal(send(r->fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

void fx_raw_done(fx_raw *r) {
  vigil_frame_parser_free(&r->p);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

unsigned fx_raw_goodbye_code(const fx_raw *r, int i) {
  assert_true(i < r->n && i < FX_MAX_FRAMES);
  assert_int_equal(r->f[i].type, VIGIL_FRAME_GOODBYE);
  unsigned code = 0;
  assert_int_equal(vigil_frame_goodbye_decode(r->f[i].data, r->f[i].len,
                                              &code, NULL, NULL),
                   VIGIL_OK);
  return code;
}

void fx_pair(fx_hub *f, fx_rec *r, fx_raw *w, const vigil_policy *p,
             const vigil_conn_callbacks *cb) {
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  fx_adopt(f, s, r, p, cb);
  fx_raw_init(w, c);
}

/* ---- the shared fixture ------------------------------------------------- */

int fx_conn_setup(void **state) {
  const fx_variant *v = *state;
  fx_tc *t = calloc(1, sizeof *t);
  assert_non_null(t);
  fx_init(&t->f);
  vigil_policy p = t->f.policy;
  if (v) {
    p.frame_codec = !v->codec_off;
    p.ping_interval_ms = v->ping_interval_ms;
    p.handshake_timeout_ms = v->handshake_timeout_ms;
    if (v->ping_min_interval_ms)
      p.ping_min_interval_ms = v->ping_min_interval_ms;
  }
  fx_pair(&t->f, &t->r, &t->w, &p, v ? v->cb : NULL);
  *state = t;
  return 0;
}

int fx_conn_teardown(void **state) {
  fx_tc *t = *state;
  fx_raw_done(&t->w);
  assert_true(vt_run_until(t->f.loop, fx_rec_closed, &t->r, 1000));
  fx_done(&t->f);
  free(t);
  return 0;
}
