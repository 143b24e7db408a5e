/*
 * The examples' /metrics endpoint (examples/metrics/metrics_http.c) on a
 * real hub and loopback clients: a scrape gets the exposition with the
 * Prometheus content type and leaves TIME_WAIT to the client; other paths,
 * methods and malformed requests get 404/405/400/505; a slowloris is cut at
 * the request deadline however it trickles; a 100 KiB request line is
 * refused (414) while the process's heap stays flat (every malloc, calloc,
 * realloc and free of the test and of the static vigil library goes
 * through the counting wrappers below); over-long headers get 431; beyond
 * METRICS_HTTP_MAX_CONNS at once, connections are reset; flag parsing.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics_http.h"
#include "promcheck.h"
#include "testutil.h"
#include "vigil.h"

/* ---- heap accounting (linked with --wrap, see tests/metrics.cmake) ---- */

static long long heap_live, heap_peak;

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static void heap_add(void *p, long long sign) {
  if (!p) return;
  heap_live += sign * (long long)malloc_usable_size(p);
  if (heap_live > heap_peak) heap_peak = heap_live;
}

void *__wrap_malloc(size_t n) {
  void *p = __real_malloc(n);
  heap_add(p, 1);
  return p;
}

void *__wrap_calloc(size_t k, size_t n) {
  void *p = __real_calloc(k, n);
  heap_add(p, 1);
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  long long before = p ? (long long)malloc_usable_size(p) : 0;
  void *q = __real_realloc(p, n);
  if (q || n == 0) heap_live -= before;
  heap_add(q, 1);
  return q;
}

void __wrap_free(void *p) {
  heap_add(p, -1);
  __real_free(p);
}

/* ---- fixture ---- */

#define TIMEOUT_MS 300u
#define MAX_CLOSES 64

typedef struct fixture {
  struct ev_loop *loop;
  vigil_hub *hub;
  metrics_http *http;
  vigil_reason closes[MAX_CLOSES];
  int nclosed;
} fixture;

static void on_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  fixture *f = ud;
  (void)hub;
  if (ev->type == VIGIL_EV_CLOSE && f->nclosed < MAX_CLOSES)
    f->closes[f->nclosed++] = ev->reason;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->loop = ev_loop_new(EVFLAG_AUTO);
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.on_event = on_event;
  o.event_data = f;
  assert_int_equal(vigil_hub_new(f->loop, &o, &f->hub), VIGIL_OK);
  metrics_http_config cfg;
  metrics_http_config_init(&cfg);
  char err[256];
  assert_int_equal(metrics_http_flag(&cfg, "--metrics", "127.0.0.1:0", err,
                                     sizeof err), 1);
  cfg.timeout_ms = TIMEOUT_MS;
  assert_int_equal(metrics_http_start(f->hub, &cfg, &f->http, err, sizeof err),
                   VIGIL_OK);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  vigil_hub_free(f->hub);
  metrics_http_free(f->http);
  ev_loop_destroy(f->loop);
  free(f);
  return 0;
}

static int client(fixture *f) {
  int fd = vt_connect_loopback(metrics_http_port(f->http));
  assert_true(fd >= 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

typedef struct reader {
  int fd;
  char buf[65536];
  size_t len;
  int eof;
  int err;   /* errno of a failed read (ECONNRESET) */
} reader;

static int read_more(void *arg) {
  reader *r = arg;
  for (;;) {
    if (r->len == sizeof r->buf - 1) return 1;
    ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len);
    if (n > 0) {
      r->len += (size_t)n;
      r->buf[r->len] = '\0';
      continue;
    }
    if (n == 0) r->eof = 1;
    if (n < 0 && errno != EAGAIN) r->err = errno;
    return r->eof || r->err;
  }
}

/* Sends a request on a new connection and reads until pred holds. */
static void exchange_until(fixture *f, const char *req, reader *r,
                           int (*pred)(void *)) {
  memset(r, 0, sizeof *r);
  r->fd = client(f);
  assert_int_equal(write(r->fd, req, strlen(req)), (ssize_t)strlen(req));
  assert_true(vt_run_until(f->loop, pred, r, 3000));
}

/* ... until the server closes. */
static void exchange(fixture *f, const char *req, reader *r) {
  exchange_until(f, req, r, read_more);
}

static int headers_complete(void *arg) {
  reader *r = arg;
  return read_more(r) || strstr(r->buf, "\r\n\r\n") != NULL;
}

static const char *body_of(const reader *r) {
  const char *p = strstr(r->buf, "\r\n\r\n");
  assert_non_null(p);
  return p + 4;
}

static long content_length(const reader *r) {
  const char *p = strstr(r->buf, "\r\nContent-Length: ");
  assert_non_null(p);
  return strtol(p + 18, NULL, 10);
}

static int body_complete(void *arg) {
  reader *r = arg;
  read_more(r);
  const char *p = strstr(r->buf, "\r\n\r\n");
  return p && (long)(r->len - (size_t)(p + 4 - r->buf)) >= content_length(r);
}

static int closes_with(fixture *f, vigil_reason reason) {
  int n = 0;
  for (int i = 0; i < f->nclosed; i++) n += f->closes[i] == reason;
  return n;
}

typedef struct want_closes {
  fixture *f;
  int n;
} want_closes;

static int closed_n(void *arg) {
  want_closes *w = arg;
  return w->f->nclosed >= w->n;
}

static void wait_closes(fixture *f, int n) {
  want_closes w = {f, n};
  assert_true(vt_run_until(f->loop, closed_n, &w, 3000));
}

/* ---- tests ---- */

static void test_scrape(void **state) {
  fixture *f = *state;
  reader r;
  exchange_until(f, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
                 &r, body_complete);
  assert_int_equal(strncmp(r.buf, "HTTP/1.1 200 OK\r\n", 17), 0);
  assert_non_null(strstr(r.buf, "\r\nContent-Type: text/plain; version=0.0.4; "
                                "charset=utf-8\r\n"));
  assert_non_null(strstr(r.buf, "\r\nConnection: close\r\n"));
  const char *body = body_of(&r);
  assert_int_equal(strlen(body), (size_t)content_length(&r));
  assert_non_null(strstr(body, "\nvigil_connections_open 1\n"));
  /* The scrape took a census: the metrics listener is in it. */
  assert_non_null(strstr(body, "\nvigil_sockets{state=\"listen\"} 1\n"));
  /* The server waits for the client to close first (within the request
   * timeout, so before promtool runs: its start alone can take longer). */
  assert_int_equal(f->nclosed, 0);
  assert_int_equal(vt_tcp_state(r.fd), VIGIL_TCP_ESTABLISHED);
  close(r.fd);
  wait_closes(f, 1);
  assert_int_equal(f->closes[0], VIGIL_REASON_PEER_CLOSED);
  char why[4096];
  int rc = vt_promtool_check(body, why, sizeof why);
  if (rc > 0) print_error("promtool: %s\n", why);
  assert_true(rc <= 0);

  /* HEAD: the headers only; a query string is ignored; bare LF lines. */
  exchange_until(f, "HEAD /metrics?x=1 HTTP/1.0\n\n", &r, headers_complete);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_false(read_more(&r)); /* still waiting for us to close */
  assert_int_equal(strncmp(r.buf, "HTTP/1.1 200 OK\r\n", 17), 0);
  assert_true(content_length(&r) > 1000);
  assert_string_equal(body_of(&r), "");
  close(r.fd);
  wait_closes(f, 2);
}

static void test_errors(void **state) {
  fixture *f = *state;
  static const struct {
    const char *req, *status, *extra;
  } cases[] = {
      {"GET /other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n", NULL},
      {"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n", NULL},
      {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 405 Method Not Allowed\r\n", "\r\nAllow: GET, HEAD\r\n"},
      {"DELETE /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n",
       NULL},
      {"HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", NULL},
      {"GET  /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", NULL},
      {"GET /metrics HTTP/2.0\r\n\r\n",
       "HTTP/1.1 505 HTTP Version Not Supported\r\n", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    reader r;
    exchange(f, cases[i].req, &r);
    if (strncmp(r.buf, cases[i].status, strlen(cases[i].status)) != 0)
      print_error("%s -> %s\n", cases[i].req, r.buf);
    assert_int_equal(strncmp(r.buf, cases[i].status, strlen(cases[i].status)),
                     0);
    if (cases[i].extra) assert_non_null(strstr(r.buf, cases[i].extra));
    assert_true(r.eof); /* errors: the server closes at once */
    close(r.fd);
  }
  wait_closes(f, 7);
  assert_int_equal(closes_with(f, VIGIL_REASON_CLOSED_BY_HOST), 7);
}

typedef struct trickle {
  reader r;
  uint64_t next_ms;
  int sent;
} trickle;

/* Sends one more byte of a request that never ends, every 40 ms. */
static int trickle_until_closed(void *arg) {
  trickle *t = arg;
  if (vt_now_ms() >= t->next_ms && !t->r.eof && !t->r.err) {
    if (write(t->r.fd, "x", 1) == 1) t->sent++;
    t->next_ms = vt_now_ms() + 40;
  }
  return read_more(&t->r);
}

static void test_slowloris_cut_at_deadline(void **state) {
  fixture *f = *state;
  /* Silent after a partial request line. */
  reader r;
  memset(&r, 0, sizeof r);
  uint64_t t0 = vt_now_ms();
  r.fd = client(f);
  assert_int_equal(write(r.fd, "GET /metr", 9), 9);
  assert_true(vt_run_until(f->loop, read_more, &r, 3000));
  uint64_t took = vt_now_ms() - t0;
  assert_true(r.eof);
  assert_int_equal(r.len, 0); /* no response: just the close */
  assert_true(took >= TIMEOUT_MS - 1);
  assert_true(took <= TIMEOUT_MS + 10 + vt_slack_ms(100));
  close(r.fd);

  /* Trickling bytes does not move the deadline. */
  trickle t;
  memset(&t, 0, sizeof t);
  t0 = vt_now_ms();
  t.r.fd = client(f);
  assert_true(vt_run_until(f->loop, trickle_until_closed, &t, 3000));
  took = vt_now_ms() - t0;
  assert_true(t.sent >= 5);
  assert_true(took >= TIMEOUT_MS - 1);
  assert_true(took <= TIMEOUT_MS + 10 + vt_slack_ms(100));
  close(t.r.fd);
  wait_closes(f, 2);
  assert_int_equal(closes_with(f, VIGIL_REASON_HANDSHAKE_TIMEOUT), 2);
}

typedef struct flood {
  reader r;
  const char *data;
  size_t len, off;
} flood;

/* Writes what the socket takes, reads what comes back. */
static int flood_until_closed(void *arg) {
  flood *fl = arg;
  while (fl->off < fl->len) {
    ssize_t n = write(fl->r.fd, fl->data + fl->off, fl->len - fl->off);
    if (n <= 0) break;
    fl->off += (size_t)n;
  }
  return read_more(&fl->r);
}

static void refuse_huge(fixture *f, const char *head, size_t filler,
                        const char *status) {
  size_t hl = strlen(head);
  char *req = malloc(hl + filler);
  assert_non_null(req);
  memcpy(req, head, hl);
  memset(req + hl, 'a', filler);
  flood fl;
  memset(&fl, 0, sizeof fl);
  fl.data = req;
  fl.len = hl + filler;
  long long base = heap_live;
  heap_peak = heap_live;
  fl.r.fd = client(f);
  assert_true(vt_run_until(f->loop, flood_until_closed, &fl, 5000));
  /* The server answered before reading everything: kept nothing of it. */
  assert_int_equal(strncmp(fl.r.buf, status, strlen(status)), 0);
  assert_true(fl.r.eof || fl.r.err == ECONNRESET);
  print_message("%.12s: sent %zu of %zu bytes, heap peak +%lld bytes\n",
                status, fl.off, fl.len, heap_peak - base);
  assert_true(heap_peak - base < 32 * 1024);
  close(fl.r.fd);
  free(req);
}

static void test_oversized_requests_refused(void **state) {
  fixture *f = *state;
  refuse_huge(f, "GET /", 100 * 1024, "HTTP/1.1 414 URI Too Long\r\n");
  refuse_huge(f, "GET /metrics HTTP/1.1\r\nX-Big: ", 100 * 1024,
              "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  wait_closes(f, 2);
  assert_int_equal(closes_with(f, VIGIL_REASON_CLOSED_BY_HOST), 2);
}

typedef struct many {
  fixture *f;
  int fds[METRICS_HTTP_MAX_CONNS + 1];
} many;

static int conns_open(void *arg) {
  many *m = arg;
  vigil_stats st;
  vigil_hub_stats(m->f->hub, &st);
  return st.opened >= METRICS_HTTP_MAX_CONNS + 1;
}

static void test_too_many_connections_reset(void **state) {
  fixture *f = *state;
  many m = {.f = f};
  for (unsigned i = 0; i <= METRICS_HTTP_MAX_CONNS; i++) m.fds[i] = client(f);
  assert_true(vt_run_until(f->loop, conns_open, &m, 3000));
  /* Exactly one was reset at once; the others wait for their request. */
  wait_closes(f, 1);
  vt_run_until(f->loop, NULL, NULL, 20);
  assert_int_equal(f->nclosed, 1);
  assert_int_equal(f->closes[0], VIGIL_REASON_CLOSED_BY_HOST);
  int reset = 0;
  for (unsigned i = 0; i <= METRICS_HTTP_MAX_CONNS; i++) {
    reader r;
    memset(&r, 0, sizeof r);
    r.fd = m.fds[i];
    read_more(&r);
    reset += r.err == ECONNRESET;
    close(m.fds[i]);
  }
  assert_int_equal(reset, 1);
  wait_closes(f, METRICS_HTTP_MAX_CONNS + 1);
  /* Room again. */
  reader r;
  exchange(f, "GET /nope HTTP/1.1\r\n\r\n", &r);
  assert_int_equal(strncmp(r.buf, "HTTP/1.1 404", 12), 0);
  close(r.fd);
}

static void test_flags(void **state) {
  (void)state;
  metrics_http_config c;
  metrics_http_config_init(&c);
  char err[256];
  assert_int_equal(c.timeout_ms, METRICS_HTTP_TIMEOUT_MS);
  assert_int_equal(metrics_http_flag(&c, "--listen", "x", err, sizeof err), 0);
  assert_int_equal(metrics_http_flag(&c, "--metrics", "[::1]:9100", err,
                                     sizeof err), 1);
  assert_string_equal(c.host, "::1");
  assert_int_equal(c.port, 9100);
  assert_int_equal(metrics_http_flag(&c, "--metrics-timeout", "750", err,
                                     sizeof err), 1);
  assert_int_equal(c.timeout_ms, 750);
  static const char *bad[][2] = {
      {"--metrics", "9100"},          {"--metrics", ":9100"},
      {"--metrics", "host:"},         {"--metrics", "host:70000"},
      {"--metrics", "[::1:9100"},     {"--metrics", NULL},
      {"--metrics-timeout", "0"},     {"--metrics-timeout", "-5"},
      {"--metrics-timeout", "5s"},    {"--metrics-timeout", "86400001"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_int_equal(metrics_http_flag(&c, bad[i][0], bad[i][1], err,
                                       sizeof err), -1);
    assert_non_null(strstr(err, bad[i][0]));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_scrape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slowloris_cut_at_deadline, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oversized_requests_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_too_many_connections_reset, setup,
                                      teardown),
      cmocka_unit_test(test_flags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
