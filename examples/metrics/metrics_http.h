/*
 * metrics_http: GET /metrics over HTTP/1.x for the examples, served from
 * the example's own vigil hub on its own loop (vigil_metrics_write()).
 *
 * The metrics connections are vigil conns like any other, held to the
 * same rules: the whole request must arrive within the request timeout
 * (the policy's handshake_timeout_ms: a slowloris is cut), a request is at
 * most METRICS_HTTP_MAX_REQUEST bytes (more: 414 or 431, then close;
 * nothing grows), one request per connection (Connection: close), and at
 * most METRICS_HTTP_MAX_CONNS at once (more are reset). They appear in
 * the hub's own metrics too: a scrape is one connection opened and closed.
 *
 *   GET|HEAD /metrics  200, Content-Type VIGIL_METRICS_CONTENT_TYPE
 *   other paths        404
 *   other methods      405 (Allow: GET, HEAD)
 *   malformed          400; not HTTP/1.x: 505
 *
 * Each scrape also takes a census of the hub's ports when the last one
 * this module took is at least METRICS_HTTP_CENSUS_EVERY_MS old, so the
 * vigil_sockets and vigil_ghosts gauges follow the scrapes without a
 * census timer (and scraping faster cannot make censuses more frequent).
 */
#ifndef METRICS_HTTP_H
#define METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

#define METRICS_HTTP_MAX_REQUEST 8192u
#define METRICS_HTTP_MAX_CONNS 16u
#define METRICS_HTTP_TIMEOUT_MS 5000u
#define METRICS_HTTP_CENSUS_EVERY_MS 5000u

/* The flags, for the examples' usage texts. */
#define METRICS_HTTP_USAGE                                                   \
  "  --metrics HOST:PORT      serve Prometheus metrics at\n"                 \
  "                           http://HOST:PORT/metrics (port 0 = ephemeral)\n" \
  "  --metrics-timeout MS     the whole HTTP request must arrive within MS\n" \
  "                           (default 5000)\n"

typedef struct metrics_http_config {
  char host[256];       /* "" = no endpoint */
  uint16_t port;
  uint32_t timeout_ms;  /* request deadline */
} metrics_http_config;

void metrics_http_config_init(metrics_http_config *cfg);

/* Parses the metrics flags: returns 1 when flag is one (value used), 0 when
 * it is not, -1 when its value is bad (why, NUL-terminated, in err). */
int metrics_http_flag(metrics_http_config *cfg, const char *flag,
                      const char *value, char *err, size_t errlen);

typedef struct metrics_http metrics_http;

/* Listens on cfg's address for the hub. VIGIL_OK and *out, or an error
 * with its text in err. */
int metrics_http_start(vigil_hub *hub, const metrics_http_config *cfg,
                       metrics_http **out, char *err, size_t errlen);
/* The same for a group (vigil/group.h) of workers: the endpoint runs on
 * a hub of its own on loop (a thread of the host's, typically the main
 * one) and serves vigil_group_metrics_write(); the scrape's census is
 * vigil_group_census(). The group must outlive the endpoint. */
int metrics_http_start_group(struct ev_loop *loop, vigil_group *group,
                             const metrics_http_config *cfg,
                             metrics_http **out, char *err, size_t errlen);
/* The port listened on (useful with port 0). */
uint16_t metrics_http_port(const metrics_http *m);
/* "HOST:PORT" as listened on ("[::1]:9100" for IPv6), for log lines. */
const char *metrics_http_address(const metrics_http *m);
/* Frees the endpoint. Call after vigil_hub_free(): the hub closes the
 * listener and the open metrics conns (whose on_close still uses m). An
 * endpoint of a group frees its own hub here. */
void metrics_http_free(metrics_http *m);

#endif
