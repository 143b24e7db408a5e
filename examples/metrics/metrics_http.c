/*
 * metrics_http: GET /metrics on a vigil hub; see metrics_http.h.
 *
 * A request's life, one per connection:
 *
 *   accepted --bytes--> reading --GET /metrics--> answered --client FIN--> closed
 *      |                  |  |                        |     (peer_closed)
 *      |                  |  +--any other request,    +--request timeout:
 *      |                  |     buffer full: error,      closed
 *      |                  |     vigil_close at once      (handshake_timeout)
 *      |                  +--request timeout: closed (handshake_timeout)
 *      +--too many open: RST
 *
 * The connection never leaves vigil's HANDSHAKE state (nothing calls
 * vigil_conn_ready), so the policy's handshake_timeout_ms bounds the
 * connection's whole life however slowly its bytes trickle in: activity
 * does not extend it. After a metrics response the client closes first,
 * as HTTP clients do on "Connection: close", so the TIME_WAIT of every
 * scrape stays with the scraper instead of piling up on the server's
 * port. After an error the server closes at once: vigil's graceful close
 * flushes the response, then drains what the client still sends (nothing
 * is kept) until its FIN or linger_max_ms.
 */
#include "metrics_http.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After our FIN: how long a scraper may take to close, and to do
 * anything at all. */
#define DRAIN_MS 2000u
#define LINGER_MS 5000u

struct metrics_http {
  vigil_hub *hub;
  vigil_group *group;     /* serves the group's metrics; NULL = hub's */
  int own_hub;            /* the hub was made for the endpoint */
  vigil_listener *listener;
  vigil_policy policy;
  uint16_t port;
  char address[272];      /* "HOST:PORT" */
  unsigned open;          /* metrics conns with a request buffer */
  char *body;             /* the last exposition, reused across scrapes */
  size_t body_cap;
  int census_taken;
  uint64_t census_at_ms;  /* hub clock */
};

typedef struct request {
  metrics_http *m;
  size_t len;
  size_t scanned;         /* bytes already searched for the blank line */
  int answered;
  char buf[METRICS_HTTP_MAX_REQUEST];
} request;

void metrics_http_config_init(metrics_http_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->timeout_ms = METRICS_HTTP_TIMEOUT_MS;
}

/* "HOST:PORT" or "[V6]:PORT". */
static int parse_host_port(metrics_http_config *cfg, const char *v) {
  const char *colon = strrchr(v, ':');
  char *end;
  if (!colon || colon == v || !colon[1]) return -1;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || port > 65535 || colon[1] == '-') return -1;
  const char *h = v;
  size_t hlen = (size_t)(colon - v);
  if (h[0] == '[') {
    if (hlen < 3 || h[hlen - 1] != ']') return -1;
    h++;
    hlen -= 2;
  }
  if (hlen >= sizeof cfg->host) return -1;
  memcpy(cfg->host, h, hlen);
  cfg->host[hlen] = '\0';
  cfg->port = (uint16_t)port;
  return 0;
}

int metrics_http_flag(metrics_http_config *cfg, const char *flag,
                      const char *value, char *err, size_t errlen) {
  int is_listen = strcmp(flag, "--metrics") == 0;
  if (!is_listen && strcmp(flag, "--metrics-timeout") != 0) return 0;
  if (!value) {
    snprintf(err, errlen, "%s needs a value", flag);
    return -1;
  }
  if (is_listen) {
    if (parse_host_port(cfg, value) == 0) return 1;
    snprintf(err, errlen, "--metrics '%s' is not HOST:PORT", value);
    return -1;
  }
  char *end;
  unsigned long ms = strtoul(value, &end, 10);
  if (!*value || *end || value[0] == '-' || ms < 1 ||
      ms > VIGIL_MAX_DURATION_MS) {
    snprintf(err, errlen, "--metrics-timeout '%s' is not 1..%u ms", value,
             VIGIL_MAX_DURATION_MS);
    return -1;
  }
  cfg->timeout_ms = (uint32_t)ms;
  return 1;
}

/* ---- responses ---- */

/* Queues the response; close_now: close after it (errors), else wait for
 * the client to close. */
static void respond(vigil_conn *c, request *r, const char *status,
                    const char *extra, const char *type, const char *body,
                    size_t len, int head, int close_now) {
  char hdr[512];
  int n = snprintf(hdr, sizeof hdr,
                   "HTTP/1.1 %s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "%s"
                   "Connection: close\r\n"
                   "\r\n",
                   status, type, len, extra ? extra : "");
  r->answered = 1;
  int rc = vigil_send(c, hdr, (size_t)n);
  if (rc == VIGIL_OK && !head && len > 0) rc = vigil_send(c, body, len);
  if (close_now || rc != VIGIL_OK)
    vigil_close(c); /* flushes first: the response reaches the client */
}

static void respond_error(vigil_conn *c, request *r, const char *status,
                          const char *extra) {
  char body[96];
  int n = snprintf(body, sizeof body, "%s\n", status);
  respond(c, r, status, extra, "text/plain; charset=utf-8", body, (size_t)n,
          0, 1);
}

/* A census of the hub's (or the group's) ports at most every
 * METRICS_HTTP_CENSUS_EVERY_MS, for the census gauges; a failed one leaves
 * the last in place (its age is a metric of its own). */
static void maybe_census(metrics_http *m) {
  uint64_t now = vigil_hub_now(m->hub);
  if (m->census_taken && now - m->census_at_ms < METRICS_HTTP_CENSUS_EVERY_MS)
    return;
  vigil_hub_census_report report;
  if (m->group)
    vigil_group_census(m->group, &report);
  else
    vigil_hub_census(m->hub, &report);
  m->census_taken = 1;
  m->census_at_ms = now;
}

static int write_metrics(metrics_http *m) {
  return m->group ? vigil_group_metrics_write(m->group, m->body, m->body_cap)
                  : vigil_metrics_write(m->hub, m->body, m->body_cap);
}

/* The exposition in m->body, grown when it no longer fits; its length, or
 * a negative vigil_err. */
static int render(metrics_http *m) {
  int n = write_metrics(m);
  if (n < 0 || (size_t)n < m->body_cap) return n;
  size_t cap = (size_t)n + (size_t)n / 4 + 1;
  char *grown = realloc(m->body, cap);
  if (!grown) return VIGIL_ENOMEM;
  m->body = grown;
  m->body_cap = cap;
  return write_metrics(m);
}

static void serve_metrics(vigil_conn *c, request *r, int head) {
  metrics_http *m = r->m;
  maybe_census(m);
  int n = render(m);
  if (n < 0) {
    respond_error(c, r, "500 Internal Server Error", NULL);
    return;
  }
  respond(c, r, "200 OK", NULL, VIGIL_METRICS_CONTENT_TYPE, m->body,
          (size_t)n, head, 0);
}

/* ---- requests ---- */

static int token_is(const char *p, size_t n, const char *word) {
  return n == strlen(word) && memcmp(p, word, n) == 0;
}

/* Answers a complete request line ("METHOD SP TARGET SP VERSION"); the
 * headers are read but not needed. */
static void answer(vigil_conn *c, request *r, size_t line_len) {
  const char *line = r->buf, *end = r->buf + line_len;
  if (line_len > 0 && end[-1] == '\r') end--;
  const char *sp1 = memchr(line, ' ', (size_t)(end - line));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
  if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 ||
      memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1))) {
    respond_error(c, r, "400 Bad Request", NULL);
    return;
  }
  const char *version = sp2 + 1;
  if ((size_t)(end - version) != 8 || memcmp(version, "HTTP/1.", 7) != 0) {
    respond_error(c, r, "505 HTTP Version Not Supported", NULL);
    return;
  }
  int head = token_is(line, (size_t)(sp1 - line), "HEAD");
  if (!head && !token_is(line, (size_t)(sp1 - line), "GET")) {
    respond_error(c, r, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    return;
  }
  const char *path = sp1 + 1;
  size_t plen = (size_t)(sp2 - path);
  const char *query = memchr(path, '?', plen);
  if (query) plen = (size_t)(query - path);
  if (!token_is(path, plen, "/metrics")) {
    respond_error(c, r, "404 Not Found", NULL);
    return;
  }
  serve_metrics(c, r, head);
}

/* Offset just past the blank line ending the headers, or 0. Accepts bare
 * LF line ends as well as CRLF (RFC 9112 2.2). */
static size_t headers_end(request *r) {
  size_t from = r->scanned > 3 ? r->scanned - 3 : 0;
  for (size_t i = from; i + 1 < r->len; i++) {
    if (r->buf[i] != '\n') continue;
    if (r->buf[i + 1] == '\n') return i + 2;
    if (i + 2 < r->len && r->buf[i + 1] == '\r' && r->buf[i + 2] == '\n')
      return i + 3;
  }
  r->scanned = r->len;
  return 0;
}

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  request *r = ud;
  if (!r || r->answered) return;
  size_t room = sizeof r->buf - r->len, take = len < room ? len : room;
  memcpy(r->buf + r->len, data, take);
  r->len += take;
  const char *eol = memchr(r->buf, '\n', r->len);
  if (headers_end(r) && eol) {
    answer(c, r, (size_t)(eol - r->buf));
  } else if (r->len == sizeof r->buf) {
    /* Full: refuse without reading further (nothing grows). */
    if (eol)
      respond_error(c, r, "431 Request Header Fields Too Large", NULL);
    else
      respond_error(c, r, "414 URI Too Long", NULL);
  }
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  request *r = ud;
  (void)c, (void)reason;
  if (!r) return;
  r->m->open--;
  free(r);
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  metrics_http *m = ud;
  (void)l;
  request *r = m->open < METRICS_HTTP_MAX_CONNS ? malloc(sizeof *r) : NULL;
  if (!r) {
    vigil_abort(c); /* too many at once (or no memory): RST */
    return;
  }
  r->m = m;
  r->len = r->scanned = 0;
  r->answered = 0;
  m->open++;
  vigil_conn_set_user_data(c, r);
}

/* The endpoint on hub (made for it when own_hub), serving group's
 * metrics, or hub's when group is NULL. */
static int start(vigil_hub *hub, int own_hub, vigil_group *group,
                 const metrics_http_config *cfg, metrics_http **out,
                 char *err, size_t errlen) {
  static const vigil_conn_callbacks cb = {.on_data = on_data,
                                          .on_close = on_close};
  metrics_http *m = calloc(1, sizeof *m);
  if (!m) {
    if (own_hub) vigil_hub_free(hub);
    snprintf(err, errlen, "out of memory");
    return VIGIL_ENOMEM;
  }
  m->hub = hub;
  m->own_hub = own_hub;
  m->group = group;
  vigil_policy_init(&m->policy);
  m->policy.handshake_timeout_ms = cfg->timeout_ms;
  m->policy.drain_timeout_ms = DRAIN_MS;
  m->policy.linger_max_ms = LINGER_MS;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = cfg->host;
  lo.port = cfg->port;
  lo.adopt.policy = &m->policy;
  lo.adopt.callbacks = &cb;
  lo.on_accept = on_accept;
  lo.accept_data = m;
  int rc = vigil_listen(hub, &lo, &m->listener);
  if (rc != VIGIL_OK) {
    snprintf(err, errlen, "metrics: cannot listen on %s:%u: %s", cfg->host,
             (unsigned)cfg->port, vigil_strerror(rc));
    if (own_hub) vigil_hub_free(hub);
    free(m);
    return rc;
  }
  m->port = vigil_listener_port(m->listener);
  int v6 = strchr(cfg->host, ':') != NULL;
  snprintf(m->address, sizeof m->address, "%s%s%s:%u", v6 ? "[" : "",
           cfg->host, v6 ? "]" : "", (unsigned)m->port);
  *out = m;
  return VIGIL_OK;
}

int metrics_http_start(vigil_hub *hub, const metrics_http_config *cfg,
                       metrics_http **out, char *err, size_t errlen) {
  return start(hub, 0, NULL, cfg, out, err, errlen);
}

int metrics_http_start_group(struct ev_loop *loop, vigil_group *group,
                             const metrics_http_config *cfg,
                             metrics_http **out, char *err, size_t errlen) {
  vigil_hub *hub;
  int rc = vigil_hub_new(loop, NULL, &hub);
  if (rc != VIGIL_OK) {
    snprintf(err, errlen, "metrics: hub: %s", vigil_strerror(rc));
    return rc;
  }
  return start(hub, 1, group, cfg, out, err, errlen);
}

uint16_t metrics_http_port(const metrics_http *m) { return m->port; }

const char *metrics_http_address(const metrics_http *m) { return m->address; }

void metrics_http_free(metrics_http *m) {
  if (!m) return;
  if (m->own_hub) vigil_hub_free(m->hub); /* its conns' on_close use m */
  free(m->body);
  free(m);
}
