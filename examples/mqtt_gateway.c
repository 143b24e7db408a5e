/*
 * mqtt_gateway: a small MQTT 3.1.1 server on vigil. Real MQTT clients
 * (mosquitto_sub/pub, paho, device SDKs) connect to it; vigil turns each
 * client's keep-alive into a deadline, its client id into an identity (a
 * reconnecting device takes over its own ghost), and logs every step.
 *
 * Subset (see docs/examples.md, "MQTT gateway"): CONNECT/CONNACK, PUBLISH QoS 0 and
 * 1 (PUBACK) fanned out as QoS 0, SUBSCRIBE/SUBACK with '+'/'#' filters
 * granted at QoS 0, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP, DISCONNECT,
 * Will messages. No QoS 2, no retained messages, no persistent sessions.
 *
 * Session states (one per TCP connection):
 *
 *   accepted ---- CONNECT ok: identify, dead_after = 1.5 x keep-alive, ---> CONNECTED
 *      |          vigil_conn_ready, CONNACK 0                                  |
 *      | CONNECT refused (level, id): CONNACK 0x01/0x02, close                 | PUBLISH, SUBSCRIBE,
 *      | first packet not CONNECT, malformed, handshake timeout: close         | UNSUBSCRIBE, PINGREQ
 *      v                                                                       v
 *    DONE <--- DISCONNECT (no Will) / protocol error / PINGREQ flood / peer gone /
 *              takeover / deadline
 *              (every close but DISCONNECT and shutdown publishes the Will)
 *
 * A session belongs to one connection and dies with it, so a displaced
 * connection's late close can only ever tear down its own session, never
 * the session of the client that took its id over.
 *
 * TLS (--tls-cert/--tls-key, MQTT over TLS as on port 8883): the TLS
 * handshake and CONNECT share the handshake timeout; --identity-from-cert
 * makes the client certificate's CN the identity, and a CONNECT client id
 * that differs from it is refused (takeover_rejected).
 *
 * --metrics HOST:PORT serves Prometheus metrics at /metrics
 * (examples/metrics/metrics_http.h).
 *
 * --workers N: N worker threads on one port (SO_REUSEPORT). A client id
 * takes over its ghost on any worker; PUBLISH and Wills reach every
 * worker's subscribers through their mailboxes; --metrics and
 * --census-every run on the main thread for the whole group.
 *
 * Exit codes: 0 after SIGINT/SIGTERM, 1 when startup fails, 2 bad flags.
 */
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway_log.h"
#include "gateway_options.h"
#include "linelog.h"
#include "metrics_http.h"
#include "mqtt_codec.h"
#include "mqtt_subs.h"
#include "mqtt_topic.h"
#include "vigil.h"
#include <openssl/ssl.h>

#define SHUTDOWN_DEADLINE_MS 5000u
#define MAX_SUBS_PER_SESSION 256u

/* ------------------------------------------------------------------------ */
/* Gateway and sessions                                                      */
/* ------------------------------------------------------------------------ */

/* Process-wide: set before any hub runs, read-only afterwards. */
static struct {
  config cfg;
  vigil_policy policy;
  SSL_CTX *tls;                 /* NULL = plain MQTT */
  vigil_tls_options tls_opts;
  vigil_group *group;           /* --workers N > 1; NULL = one loop */
  uint16_t port;                /* the port bound, joined by workers 1.. */
} app;

/* One gateway per hub: its sessions and their subscriptions. With
 * --workers each worker thread has its own. */
typedef struct gateway {
  const config *cfg;
  vigil_hub *hub;
  int32_t worker;       /* its index in the group; -1 = no group */
  mqtt_subs *subs;
  ev_timer census;      /* one loop only; --workers: main's, below */
  metrics_http *metrics;/* one loop only; --workers: main's, below */
  linelog_watcher log;  /* writes the log lines once per loop iteration */
  uint64_t sessions;    /* live CONNECTed sessions */
  uint64_t publishes;   /* PUBLISH packets received */
  uint64_t deliveries;  /* PUBLISH packets sent to subscribers */
} gateway;

enum { PHASE_AWAIT_CONNECT = 0, PHASE_CONNECTED = 1, PHASE_DONE = 2 };

/* A subscription held by a session, to undo on UNSUBSCRIBE and close. */
typedef struct held_filter {
  uint8_t *p;
  uint16_t len;
} held_filter;

typedef struct session {
  gateway *gw;
  vigil_conn *conn;
  mqtt_parser parser;
  uint8_t phase;
  uint8_t was_connected;
  uint8_t clean_disconnect; /* DISCONNECT received: discard the Will */
  char *client_id;          /* NUL-terminated; "" for anonymous */
  uint16_t keepalive;
  char *will_topic;         /* NULL = no Will */
  uint8_t *will_msg;
  uint16_t will_len;
  held_filter *filters;
  size_t nfilters, cap_filters;
} session;

/* ------------------------------------------------------------------------ */
/* Log lines of the gateway's own (same format as vigil's event lines)       */
/* ------------------------------------------------------------------------ */

/* Starts a line: ts, event and (with --workers) worker, like
 * vigil_event_format. gw NULL: a line of the whole process. */
static void ll_begin(logline *l, const gateway *gw, const char *event) {
  ll_start(l, app.cfg.log_format, gw ? gw->worker : -1, event);
}

/* Adds the connection fields vigil's lines carry: conn, peer, identity. */
static void ll_session(logline *l, const session *s) {
  ll_u64(l, "conn", vigil_conn_id(s->conn));
  ll_str(l, "peer", vigil_conn_peer(s->conn));
  if (s->client_id && s->client_id[0]) ll_str(l, "identity", s->client_id);
}

/* With --workers, on every worker's thread. */
static void on_vigil_event(vigil_hub *hub, const vigil_event *ev, void *ud) {
  char line[LOG_LINE_MAX];
  (void)hub;
  (void)ud;
  int n = vigil_event_format(ev, app.cfg.log_format, line, sizeof line);
  if (n < 0) return;
  linelog_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ------------------------------------------------------------------------ */
/* Session helpers                                                           */
/* ------------------------------------------------------------------------ */

static int send_bytes(session *s, const uint8_t *b, int n) {
  if (n < 0) return n;
  return vigil_send(s->conn, b, (size_t)n);
}

/* Logs why and closes gracefully with reason protocol_error, the detail
 * riding on vigil's close event too; returns 1 (stop parsing). */
static int protocol_error(session *s, const char *fmt, ...) {
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  logline l;
  ll_begin(&l, s->gw, "mqtt_protocol_error");
  ll_session(&l, s);
  ll_str(&l, "detail", detail);
  ll_end(&l);
  s->phase = PHASE_DONE;
  vigil_close_ex(s->conn, VIGIL_REASON_PROTOCOL_ERROR, detail);
  return 1;
}

/* Answers CONNECT with a refusal code, then closes (MQTT-3.2.2-5). */
static int refuse(session *s, uint8_t code, const char *detail) {
  uint8_t b[4];
  send_bytes(s, b, mqtt_encode_connack(0, code, b, sizeof b));
  logline l;
  ll_begin(&l, s->gw, "mqtt_connack_refused");
  ll_session(&l, s);
  ll_u64(&l, "return_code", code);
  ll_str(&l, "detail", detail);
  ll_end(&l);
  s->phase = PHASE_DONE;
  vigil_close(s->conn);
  return 1;
}

static char *dup_bytes(const uint8_t *p, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, p, n);
  d[n] = 0;
  return d;
}

/* Fans one message out to every matching subscriber, as QoS 0 with RETAIN
 * 0 (MQTT-3.3.1-9: messages to an existing subscription never carry it). */
typedef struct fanout {
  const uint8_t *pkt;
  size_t len;
  uint64_t sent;
} fanout;

static void deliver_one(void *who, void *ud) {
  session *t = who;
  fanout *f = ud;
  if (t->phase != PHASE_CONNECTED) return;
  if (vigil_send(t->conn, f->pkt, f->len) == VIGIL_OK) f->sent++;
}

/* Delivers to this gateway's subscribers; returns how many. */
static uint64_t fanout_local(gateway *gw, const uint8_t *topic, size_t tlen,
                             const uint8_t *payload, size_t plen) {
  mqtt_publish out = {0};
  out.topic.p = topic;
  out.topic.len = (uint16_t)tlen;
  out.payload = payload;
  out.payload_len = (uint32_t)plen;
  size_t size = mqtt_publish_size(tlen, 0, plen);
  uint8_t small[512];
  uint8_t *buf = size <= sizeof small ? small : malloc(size);
  if (!buf || mqtt_encode_publish(&out, buf, size) != (int)size) {
    if (buf != small) free(buf);
    return 0;
  }
  fanout f = {buf, size, 0};
  mqtt_subs_match(gw->subs, topic, tlen, deliver_one, &f);
  if (buf != small) free(buf);
  gw->deliveries += f.sent;
  return f.sent;
}

/* --workers: a message reaches the other workers' subscribers through
 * their mailboxes (vigil_group_post) as one shared copy, freed by the last
 * worker to deliver it. Posts from one worker to another run in order, so
 * one publisher's messages keep their order for every subscriber. */
typedef struct relay {
  uint32_t refs;   /* atomic: workers still to deliver it */
  uint16_t tlen;
  uint32_t plen;
  uint8_t bytes[]; /* topic, then payload */
} relay;

static gateway *gateways[VIGIL_GROUP_MAX_WORKERS]; /* [i]: worker i's */

static void relay_unref(relay *r) {
  if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) free(r);
}

/* On the receiving worker's thread. */
static void relay_deliver(vigil_worker *w, void *arg) {
  relay *r = arg;
  gateway *gw = gateways[vigil_worker_index(w)];
  if (gw) fanout_local(gw, r->bytes, r->tlen, r->bytes + r->tlen, r->plen);
  relay_unref(r);
}

/* Hands the message to every other worker; returns how many took it. */
static uint32_t relay_to_others(gateway *gw, const uint8_t *topic,
                                size_t tlen, const uint8_t *payload,
                                size_t plen) {
  uint32_t n = app.group ? vigil_group_workers(app.group) : 1;
  if (n < 2) return 0;
  relay *r = malloc(sizeof *r + tlen + plen);
  if (!r) return 0;
  r->refs = n - 1;
  r->tlen = (uint16_t)tlen;
  r->plen = (uint32_t)plen;
  memcpy(r->bytes, topic, tlen);
  if (plen) memcpy(r->bytes + tlen, payload, plen);
  uint32_t taken = 0;
  for (uint32_t i = 0; i < n; i++) {
    if ((int32_t)i == gw->worker) continue;
    if (vigil_group_post(app.group, i, relay_deliver, r) == VIGIL_OK)
      taken++;
    else
      relay_unref(r); /* that worker has exited */
  }
  return taken;
}

/* Publishes to every subscriber: this gateway's now, the other workers'
 * through their mailboxes. Returns the local deliveries. */
static uint64_t publish(gateway *gw, const uint8_t *topic, size_t tlen,
                        const uint8_t *payload, size_t plen,
                        uint32_t *relayed) {
  uint32_t taken = relay_to_others(gw, topic, tlen, payload, plen);
  if (relayed) *relayed = taken;
  return fanout_local(gw, topic, tlen, payload, plen);
}

/* ------------------------------------------------------------------------ */
/* Packets                                                                   */
/* ------------------------------------------------------------------------ */

/* Deadline from keep-alive (MQTT-3.1.2-24): 1.5 x keep-alive, capped at
 * vigil's 24 h maximum; 0 = the client asked for no keep-alive. */
static uint32_t dead_after_for(uint16_t keepalive_s) {
  uint64_t ms = (uint64_t)keepalive_s * 1500u;
  return ms > VIGIL_MAX_DURATION_MS ? VIGIL_MAX_DURATION_MS : (uint32_t)ms;
}

static int handle_connect(session *s, const mqtt_packet *pkt) {
  mqtt_connect c;
  int rc = mqtt_decode_connect(pkt->body, pkt->len, &c);
  switch (rc) {
  case MQTT_OK: break;
  case MQTT_ELEVEL: {
    char why[96];
    snprintf(why, sizeof why, "protocol level %u (this server speaks 4, "
             "MQTT 3.1.1)", c.level);
    return refuse(s, MQTT_CONNACK_BAD_LEVEL, why);
  }
  case MQTT_EBADID:
    return refuse(s, MQTT_CONNACK_ID_REJECTED,
                  c.client_id.len == 0
                      ? "empty client id with clean session 0 (MQTT-3.1.3-8)"
                      : "client id too long or holds control characters");
  case MQTT_EPROTONAME:
    return protocol_error(s, "CONNECT protocol name is not MQTT");
  default:
    return protocol_error(s, "malformed CONNECT");
  }
  s->client_id = dup_bytes(c.client_id.p, c.client_id.len);
  if (!s->client_id) return protocol_error(s, "out of memory");
  if (c.will) {
    s->will_topic = dup_bytes(c.will_topic.p, c.will_topic.len);
    s->will_msg = (uint8_t *)dup_bytes(c.will_msg, c.will_len);
    s->will_len = c.will_len;
    if (!s->will_topic || !s->will_msg)
      return protocol_error(s, "out of memory");
  }
  s->keepalive = c.keepalive;
  /* The client id is the identity: a second CONNECT with the same id
   * closes the first connection (MQTT-3.1.4-2). Anonymous clients get no
   * identity, so they can never displace anyone. */
  if (c.client_id.len > 0) {
    rc = vigil_conn_identify(s->conn, c.client_id.p, c.client_id.len);
    /* --identity-from-cert: the certificate already claimed this id (a
     * different one is EREJECTED). */
    if (rc == VIGIL_EEXIST) rc = VIGIL_OK;
    if (rc != VIGIL_OK) {
      /* EREJECTED / EBANNED: vigil already closes this conn. */
      logline l;
      ll_begin(&l, s->gw, "mqtt_identity_refused");
      ll_session(&l, s);
      ll_str(&l, "error", vigil_err_name(rc));
      ll_end(&l);
      s->phase = PHASE_DONE;
      return 1;
    }
  }
  vigil_policy p = *vigil_conn_policy(s->conn);
  p.dead_after_ms = dead_after_for(c.keepalive);
  rc = vigil_conn_set_policy(s->conn, &p);
  if (rc != VIGIL_OK)
    return protocol_error(s, "policy: %s", vigil_strerror(rc));
  vigil_conn_ready(s->conn);
  uint8_t b[4];
  send_bytes(s, b, mqtt_encode_connack(0, MQTT_CONNACK_ACCEPTED, b, sizeof b));
  s->phase = PHASE_CONNECTED;
  s->was_connected = 1;
  s->gw->sessions++;
  logline l;
  ll_begin(&l, s->gw, "mqtt_connect");
  ll_session(&l, s);
  ll_u64(&l, "keepalive_s", c.keepalive);
  ll_u64(&l, "dead_after_ms", p.dead_after_ms);
  ll_u64(&l, "clean_session", (uint64_t)c.clean_session);
  if (s->will_topic) ll_str(&l, "will_topic", s->will_topic);
  ll_end(&l);
  return 0;
}

static int handle_publish(session *s, const mqtt_packet *pkt) {
  mqtt_publish m;
  if (mqtt_decode_publish(pkt->flags, pkt->body, pkt->len, &m) != MQTT_OK)
    return protocol_error(s, "malformed PUBLISH");
  if (m.qos == 2)
    return protocol_error(s, "QoS 2 PUBLISH is not supported (use 0 or 1)");
  s->gw->publishes++;
  publish(s->gw, m.topic.p, m.topic.len, m.payload, m.payload_len, NULL);
  if (m.qos == 1) {
    uint8_t b[4];
    send_bytes(s, b, mqtt_encode_ack(MQTT_PUBACK, m.packet_id, b, sizeof b));
  }
  return 0;
}

/* Records a filter in the session; 0 on success, -1 without memory. */
static int hold_filter(session *s, const mqtt_str *f) {
  if (s->nfilters == s->cap_filters) {
    size_t cap = s->cap_filters ? s->cap_filters * 2 : 4;
    held_filter *n = realloc(s->filters, cap * sizeof *n);
    if (!n) return -1;
    s->filters = n;
    s->cap_filters = cap;
  }
  uint8_t *copy = (uint8_t *)dup_bytes(f->p, f->len);
  if (!copy) return -1;
  s->filters[s->nfilters].p = copy;
  s->filters[s->nfilters].len = f->len;
  s->nfilters++;
  return 0;
}

/* Subscribes one filter; returns the SUBACK code (granted QoS 0 or
 * failure). Every subscription is granted at QoS 0: the gateway only
 * sends QoS 0 (a server may grant less than requested, 3.8.4). */
static uint8_t subscribe_one(session *s, const mqtt_str *f) {
  if (!mqtt_topic_filter_valid(f->p, f->len)) return MQTT_SUBACK_FAILURE;
  if (s->nfilters >= MAX_SUBS_PER_SESSION) return MQTT_SUBACK_FAILURE;
  int added = mqtt_subs_add(s->gw->subs, f->p, f->len, s);
  if (added < 0) return MQTT_SUBACK_FAILURE;
  if (added == 1 && hold_filter(s, f) != 0) {
    mqtt_subs_remove(s->gw->subs, f->p, f->len, s);
    return MQTT_SUBACK_FAILURE;
  }
  return 0;
}

static int handle_subscribe(session *s, const mqtt_packet *pkt) {
  uint16_t pid;
  mqtt_filter_iter it;
  if (mqtt_decode_subscribe(pkt->body, pkt->len, &pid, &it) != MQTT_OK)
    return protocol_error(s, "malformed SUBSCRIBE");
  size_t n = 0;
  mqtt_filter_iter count = it;
  mqtt_str f;
  while (mqtt_filter_next(&count, &f, NULL)) n++;
  uint8_t *codes = malloc(n);
  if (!codes) return protocol_error(s, "out of memory");
  mqtt_str first = {NULL, 0};
  for (size_t i = 0; mqtt_filter_next(&it, &f, NULL); i++) {
    if (i == 0) first = f;
    codes[i] = subscribe_one(s, &f);
  }
  size_t size = 1 + mqtt_varint_size((uint32_t)(2 + n)) + 2 + n;
  uint8_t *b = malloc(size);
  int w = b ? mqtt_encode_suback(pid, codes, n, b, size) : MQTT_ENOMEM;
  if (w > 0) send_bytes(s, b, w);
  logline l;
  ll_begin(&l, s->gw, "mqtt_subscribe");
  ll_session(&l, s);
  ll_u64(&l, "filters", n);
  ll_strn(&l, "first", (const char *)first.p, first.len);
  ll_u64(&l, "first_code", codes[0]);
  ll_end(&l);
  free(b);
  free(codes);
  return w > 0 ? 0 : protocol_error(s, "out of memory");
}

/* Drops a filter from the registry and the session; 1 if it was held. */
static int drop_filter(session *s, const uint8_t *p, size_t len) {
  for (size_t i = 0; i < s->nfilters; i++) {
    held_filter *h = &s->filters[i];
    if (h->len != len || memcmp(h->p, p, len) != 0) continue;
    mqtt_subs_remove(s->gw->subs, h->p, h->len, s);
    free(h->p);
    *h = s->filters[--s->nfilters];
    return 1;
  }
  return 0;
}

static int handle_unsubscribe(session *s, const mqtt_packet *pkt) {
  uint16_t pid;
  mqtt_filter_iter it;
  mqtt_str f;
  if (mqtt_decode_unsubscribe(pkt->body, pkt->len, &pid, &it) != MQTT_OK)
    return protocol_error(s, "malformed UNSUBSCRIBE");
  while (mqtt_filter_next(&it, &f, NULL)) drop_filter(s, f.p, f.len);
  uint8_t b[4];
  send_bytes(s, b, mqtt_encode_ack(MQTT_UNSUBACK, pid, b, sizeof b));
  return 0;
}

static int handle_connected(session *s, const mqtt_packet *pkt) {
  uint8_t b[4];
  switch (pkt->type) {
  case MQTT_PUBLISH: return handle_publish(s, pkt);
  case MQTT_SUBSCRIBE: return handle_subscribe(s, pkt);
  case MQTT_UNSUBSCRIBE: return handle_unsubscribe(s, pkt);
  case MQTT_PINGREQ:
    if (pkt->len != 0) return protocol_error(s, "PINGREQ with a body");
    /* vigil's ping-flood guard: a client looping on PINGREQ is closed
     * with ping_flood instead of answered. */
    if (vigil_conn_ping_received(s->conn) != VIGIL_OK) {
      s->phase = PHASE_DONE;
      return 1;
    }
    send_bytes(s, b, mqtt_encode_empty(MQTT_PINGRESP, b, sizeof b));
    return 0;
  case MQTT_DISCONNECT: {
    if (pkt->len != 0) return protocol_error(s, "DISCONNECT with a body");
    s->clean_disconnect = 1; /* MQTT-3.14.4-3: discard the Will */
    s->phase = PHASE_DONE;
    logline l;
    ll_begin(&l, s->gw, "mqtt_disconnect");
    ll_session(&l, s);
    ll_end(&l);
    /* The client said goodbye first: that is the peer closing. */
    vigil_close_ex(s->conn, VIGIL_REASON_PEER_CLOSED, "mqtt disconnect");
    return 1;
  }
  case MQTT_CONNECT:
    return protocol_error(s, "second CONNECT (MQTT-3.1.0-2)");
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP:
    return protocol_error(s, "unexpected %s: this server sends QoS 0 only",
                          mqtt_type_name(pkt->type));
  default:
    return protocol_error(s, "%s is sent by servers, not clients",
                          mqtt_type_name(pkt->type));
  }
}

static int on_packet(void *ud, const mqtt_packet *pkt) {
  session *s = ud;
  if (s->phase == PHASE_DONE) return 1;
  if (s->phase == PHASE_AWAIT_CONNECT) {
    if (pkt->type != MQTT_CONNECT)
      return protocol_error(s, "first packet is %s, not CONNECT",
                            mqtt_type_name(pkt->type));
    return handle_connect(s, pkt);
  }
  return handle_connected(s, pkt);
}

/* ------------------------------------------------------------------------ */
/* Connection callbacks                                                      */
/* ------------------------------------------------------------------------ */

static void on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  session *s = ud;
  (void)c;
  if (!s || s->phase == PHASE_DONE) return;
  ssize_t r = mqtt_parser_feed(&s->parser, data, len, on_packet, s);
  if (r < 0 && s->phase != PHASE_DONE)
    protocol_error(s, "%s", mqtt_parser_error(&s->parser));
}

static void session_free(session *s) {
  for (size_t i = 0; i < s->nfilters; i++) {
    mqtt_subs_remove(s->gw->subs, s->filters[i].p, s->filters[i].len, s);
    free(s->filters[i].p);
  }
  free(s->filters);
  mqtt_parser_free(&s->parser);
  free(s->client_id);
  free(s->will_topic);
  free(s->will_msg);
  free(s);
}

static void on_close(vigil_conn *c, vigil_reason reason, void *ud) {
  session *s = ud;
  (void)c;
  if (!s) return;
  gateway *gw = s->gw;
  if (s->was_connected) gw->sessions--;
  /* The Will goes out for every end but DISCONNECT (3.1.2.5) and the
   * gateway's own shutdown, where every other session is closing too. */
  if (s->was_connected && s->will_topic && !s->clean_disconnect &&
      reason != VIGIL_REASON_SHUTDOWN) {
    s->phase = PHASE_DONE; /* not to itself */
    uint32_t relayed;
    uint64_t n = publish(gw, (const uint8_t *)s->will_topic,
                         strlen(s->will_topic), s->will_msg, s->will_len,
                         &relayed);
    logline l;
    ll_begin(&l, gw, "mqtt_will");
    ll_session(&l, s);
    ll_str(&l, "reason", vigil_reason_name(reason));
    ll_str(&l, "will_topic", s->will_topic);
    ll_u64(&l, "delivered", n); /* here; the other workers deliver too */
    if (app.group) ll_u64(&l, "relayed_to_workers", relayed);
    ll_end(&l);
  }
  session_free(s);
}

static void on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  gateway *gw = ud;
  (void)l;
  session *s = calloc(1, sizeof *s);
  if (!s) {
    vigil_abort(c);
    return;
  }
  s->gw = gw;
  s->conn = c;
  mqtt_parser_init(&s->parser, gw->cfg->max_packet);
  vigil_conn_set_user_data(c, s);
}

/* ------------------------------------------------------------------------ */
/* Census, signals, main                                                     */
/* ------------------------------------------------------------------------ */

/* Logs the census of the port: kernel state counts plus the ghosts vigil
 * can tell apart (leaked fds, stale CLOSE_WAIT, orphans). With --workers
 * (gw NULL) the group's, from the main thread: every worker's conns. */
static void census_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  gateway *gw = w->data;
  (void)loop;
  (void)revents;
  vigil_hub_census_report r;
  logline l;
  ll_begin(&l, gw, "mqtt_census");
  ll_u64(&l, "port", app.port);
  int rc = gw ? vigil_hub_census(gw->hub, &r)
              : vigil_group_census(app.group, &r);
  if (rc != VIGIL_OK) {
    ll_str(&l, "error", vigil_err_name(rc));
    ll_end(&l);
    return;
  }
  static const int shown[] = {
      VIGIL_TCP_ESTABLISHED, VIGIL_TCP_SYN_RECV,   VIGIL_TCP_CLOSE_WAIT,
      VIGIL_TCP_FIN_WAIT1,   VIGIL_TCP_FIN_WAIT2,  VIGIL_TCP_CLOSING,
      VIGIL_TCP_LAST_ACK,    VIGIL_TCP_TIME_WAIT,
  };
  for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
    char key[32];
    const char *name = vigil_tcp_state_name(shown[i]);
    size_t k = 0;
    for (; name[k] && k < sizeof key - 1; k++)
      key[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32
                                                       : name[k]);
    key[k] = 0;
    ll_u64(&l, key, r.counts[shown[i]]);
  }
  ll_u64(&l, "conns", r.conns);
  ll_u64(&l, "leaked", r.leaked);
  ll_u64(&l, "close_wait_stale", r.close_wait_stale);
  ll_u64(&l, "orphans", r.orphans);
  ll_u64(&l, "ghosts", r.ghosts);
  vigil_stats st;
  if (!gw) { /* the sessions are the workers': count takeovers only */
    vigil_group_stats(app.group, &st, NULL, 0);
    ll_u64(&l, "takeovers", st.takeovers);
    ll_u64(&l, "takeovers_across_workers",
           st.takeovers_by_scope[VIGIL_SCOPE_WORKER]);
    if (app.cfg.cluster_options)
      ll_u64(&l, "takeovers_across_nodes",
             st.takeovers_by_scope[VIGIL_SCOPE_CLUSTER]);
    ll_end(&l);
    return;
  }
  vigil_hub_stats(gw->hub, &st);
  ll_u64(&l, "sessions", gw->sessions);
  ll_u64(&l, "takeovers", st.takeovers);
  if (app.cfg.cluster_options)
    ll_u64(&l, "takeovers_across_nodes",
           st.takeovers_by_scope[VIGIL_SCOPE_CLUSTER]);
  ll_u64(&l, "publishes", gw->publishes);
  ll_u64(&l, "deliveries", gw->deliveries);
  ll_end(&l);
}

/* A gateway on hub: its registry, and its listener (--workers: worker 0
 * binds the port asked for, the others join the port it got). */
static gateway *gateway_new(vigil_hub *hub, int32_t worker) {
  gateway *gw = calloc(1, sizeof *gw);
  if (!gw) return NULL;
  gw->cfg = &app.cfg;
  gw->hub = hub;
  gw->worker = worker;
  gw->subs = mqtt_subs_new();
  if (!gw->subs) {
    free(gw);
    return NULL;
  }
  linelog_watch(&gw->log, vigil_hub_loop(hub));
  return gw;
}

/* After every session of the gateway is gone. */
static void gateway_free(gateway *gw) {
  linelog_unwatch(&gw->log);
  mqtt_subs_free(gw->subs);
  free(gw);
}

static int gateway_listen(gateway *gw) {
  static const vigil_conn_callbacks cbs = {
      .on_data = on_data,
      .on_close = on_close,
  };
  int first = gw->worker <= 0;
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = app.cfg.host;
  lo.port = first ? app.cfg.port : app.port;
  lo.reuseport = app.cfg.workers > 1;
  lo.adopt.callbacks = &cbs;
  lo.on_accept = on_accept;
  lo.accept_data = gw;
  if (app.tls) {
    lo.adopt.tls_ctx = app.tls;
    lo.adopt.tls = &app.tls_opts;
  }
  vigil_listener *listener;
  int rc = vigil_listen(gw->hub, &lo, &listener);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: cannot listen on %s:%u: %s (%s)\n",
            app.cfg.host, (unsigned)lo.port, vigil_strerror(rc),
            strerror(errno));
    return rc;
  }
  if (first) {
    app.port = vigil_listener_port(listener);
    const char *open = strchr(app.cfg.host, ':') ? "[" : "";
    const char *close = strchr(app.cfg.host, ':') ? "]" : "";
    printf("listening on %s%s%s:%u\n", open, app.cfg.host, close,
           (unsigned)app.port);
    fflush(stdout);
  }
  logline l;
  ll_begin(&l, gw, "mqtt_listen");
  ll_str(&l, "host", app.cfg.host);
  ll_u64(&l, "port", app.port);
  ll_u64(&l, "handshake_timeout_ms", app.cfg.handshake_ms);
  ll_u64(&l, "max_packet", app.cfg.max_packet);
  ll_end(&l);
  return VIGIL_OK;
}

/* --workers: each worker's gateway, made and freed on its own thread. */
static int worker_setup(vigil_worker *w, vigil_hub *hub, void *ud) {
  (void)ud;
  uint32_t i = vigil_worker_index(w);
  gateway *gw = gateway_new(hub, (int32_t)i);
  if (!gw) return VIGIL_ENOMEM;
  int rc = gateway_listen(gw);
  if (rc != VIGIL_OK) {
    gateway_free(gw);
    return rc;
  }
  gateways[i] = gw;
  return VIGIL_OK;
}

static void worker_teardown(vigil_worker *w, void *ud) {
  (void)ud;
  uint32_t i = vigil_worker_index(w);
  gateway_free(gateways[i]);
  gateways[i] = NULL;
}

/* Signals arrive on the main thread (worker threads block them). */
static struct {
  ev_signal sigint, sigterm;
  int stopping;
  gateway *gw;   /* one loop: the gateway; NULL with --workers */
} sig;

static void shutdown_done(vigil_hub *hub, void *ud) {
  (void)hub;
  ev_break((struct ev_loop *)ud, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  if (sig.stopping) { /* second signal: stop waiting */
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  sig.stopping = 1;
  logline l;
  ll_begin(&l, NULL, "mqtt_shutdown");
  ll_str(&l, "signal", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
  if (app.group) {
    vigil_stats st; /* the workers' sessions are theirs: count conns */
    vigil_group_stats(app.group, &st, NULL, 0);
    ll_u64(&l, "conns", st.open);
    ll_end(&l);
    vigil_group_stop(app.group, SHUTDOWN_DEADLINE_MS);
    ev_break(loop, EVBREAK_ALL); /* main joins the workers */
    return;
  }
  ev_timer_stop(loop, &sig.gw->census);
  ll_u64(&l, "sessions", sig.gw->sessions);
  ll_end(&l);
  if (vigil_hub_shutdown(sig.gw->hub, SHUTDOWN_DEADLINE_MS, shutdown_done,
                         loop) != VIGIL_OK)
    ev_break(loop, EVBREAK_ALL);
}

static void start_signals(struct ev_loop *loop) {
  ev_signal_init(&sig.sigint, signal_cb, SIGINT);
  ev_signal_init(&sig.sigterm, signal_cb, SIGTERM);
  ev_signal_start(loop, &sig.sigint);
  ev_signal_start(loop, &sig.sigterm);
}

/* The /metrics endpoint: on the gateway's hub, or with --workers (gw
 * NULL) on the main loop, serving the group's metrics. */
static int start_metrics(gateway *gw, struct ev_loop *loop,
                         metrics_http **out) {
  char why[320];
  int rc = gw ? metrics_http_start(gw->hub, &app.cfg.metrics, out, why,
                                   sizeof why)
              : metrics_http_start_group(loop, app.group, &app.cfg.metrics,
                                         out, why, sizeof why);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: %s\n", why);
    return 1;
  }
  const char *address = metrics_http_address(*out);
  printf("metrics on http://%s/metrics\n", address);
  fflush(stdout);
  logline l;
  ll_begin(&l, gw, "mqtt_metrics_listen");
  ll_str(&l, "address", address);
  ll_u64(&l, "request_timeout_ms", app.cfg.metrics.timeout_ms);
  ll_end(&l);
  return 0;
}

/* --census-every: a census line every S seconds on loop. */
static void start_census(struct ev_loop *loop, ev_timer *t, gateway *gw) {
  ev_init(t, census_cb);
  t->data = gw;
  if (!app.cfg.census_every_s) return;
  double every = (double)app.cfg.census_every_s;
  ev_timer_set(t, every, every);
  ev_timer_start(loop, t);
}

/* One loop: the gateway runs on the main thread. */
static int run_one(struct ev_loop *loop, const vigil_hub_options *ho) {
  vigil_hub *hub;
  int rc = vigil_hub_new(loop, ho, &hub);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: hub: %s\n", vigil_strerror(rc));
    return 1;
  }
  gateway *gw = gateway_new(hub, -1);
  if (!gw || gateway_listen(gw) != VIGIL_OK ||
      (app.cfg.metrics.host[0] &&
       start_metrics(gw, loop, &gw->metrics) != 0)) {
    vigil_hub_free(hub);
    if (gw) {
      metrics_http_free(gw->metrics);
      gateway_free(gw);
    }
    return 1;
  }
  sig.gw = gw;
  start_signals(loop);
  start_census(loop, &gw->census, gw);
  ev_run(loop, 0);
  ev_timer_stop(loop, &gw->census);
  vigil_hub_free(hub); /* every session ends here */
  metrics_http_free(gw->metrics); /* after the hub: its conns were closed */
  gateway_free(gw);
  return 0;
}

/* --workers N: a vigil group; the main thread only waits for signals. */
static int run_workers(struct ev_loop *loop, const vigil_hub_options *ho) {
  vigil_group_options go;
  vigil_group_options_init(&go);
  go.workers = app.cfg.workers;
  go.hub = ho;
  go.setup = worker_setup;
  go.teardown = worker_teardown;
  int rc = vigil_group_new(&go, &app.group);
  if (rc == VIGIL_OK && (rc = vigil_group_start(app.group)) != VIGIL_OK)
    vigil_group_free(app.group);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: workers: %s\n", vigil_strerror(rc));
    return 1;
  }
  /* The main thread serves the group's metrics and takes its census; its
   * lines go out once per iteration of its loop too. */
  linelog_watcher log;
  linelog_watch(&log, loop);
  metrics_http *metrics = NULL;
  ev_timer census;
  rc = app.cfg.metrics.host[0] ? start_metrics(NULL, loop, &metrics) : 0;
  if (rc == 0) {
    start_signals(loop);
    start_census(loop, &census, NULL);
    ev_run(loop, 0);
    ev_timer_stop(loop, &census);
  }
  linelog_unwatch(&log);
  metrics_http_free(metrics); /* stops taking scrapes before the stop */
  vigil_group_stop(app.group, SHUTDOWN_DEADLINE_MS); /* EEXIST after a
                                                        signal's */
  vigil_group_join(app.group);
  vigil_group_free(app.group);
  return rc;
}

int main(int argc, char **argv) {
  gateway_parse_args(argc, argv, &app.cfg);
  signal(SIGPIPE, SIG_IGN);
  gateway_raise_fd_limit();
  /* Log lines go through linelog; stderr's own lines (errors) are whole
   * lines too. */
  linelog_open(2);
  setvbuf(stderr, NULL, _IOLBF, 0);
  int rc = gateway_prepare(&app.cfg, &app.policy, &app.tls, &app.tls_opts);
  if (rc != 0) return rc;
  struct ev_loop *loop = ev_default_loop(0);
  if (!loop) {
    fprintf(stderr, "mqtt_gateway: no event loop\n");
    return 1;
  }
  vigil_hub_options ho;
  vigil_hub_options_init(&ho);
  ho.policy = &app.policy;
  ho.on_event = on_vigil_event;
  ho.cluster = app.cfg.cluster_options; /* --cluster */
  rc = app.cfg.workers > 1 ? run_workers(loop, &ho) : run_one(loop, &ho);
  SSL_CTX_free(app.tls);
  ev_loop_destroy(loop);
  return rc;
}
