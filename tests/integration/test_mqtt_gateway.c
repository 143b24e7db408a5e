/*
 * mqtt_gateway (examples/mqtt_gateway.c) driven over real loopback sockets
 * with hand-built MQTT packets: the keep-alive deadline (silent client
 * dropped at 1.5 x keep-alive), handshake timeout, CONNACK refusals,
 * malformed and oversized input, packets split and coalesced, publish /
 * subscribe fan-out with wildcards, Will messages, and client-id takeover,
 * also across the workers of --workers 2 in a storm of silent reboots.
 * Every log line the gateway wrote is checked as strict logfmt or JSON.
 *
 * The gateway runs as a child process ($MQTT_GATEWAY, set by
 * tests/mqtt.cmake, else VIGIL_BUILD_DIR/examples/mqtt_gateway); the test
 * SKIPs when it was not built.
 */
#include "exproc.h"
#include "linecheck.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqtt_codec.h"
#include "vigil.h"

/* ------------------------------------------------------------------------ */
/* The gateway process                                                       */
/* ------------------------------------------------------------------------ */

typedef struct gw {
  vt_proc p; /* pid, port, and the log file (its stderr) */
  int json;
} gw;

static gw G; /* the shared gateway of most tests */

/* Starts the gateway with extra flags (NULL-terminated); SKIPs if absent.
 * It announces its port on stdout and logs on stderr. */
static void gw_start(gw *g, const char *const *extra) {
  char path[512];
  if (!vt_example_path("mqtt_gateway", "MQTT_GATEWAY", path, sizeof path))
    vt_skip("examples/mqtt_gateway not built");
  memset(g, 0, sizeof *g);
  const char *argv[32] = {path, "--listen", "127.0.0.1:0"};
  int argc = 3;
  for (; extra && *extra; extra++) {
    if (strcmp(*extra, "json") == 0) g->json = 1;
    argv[argc++] = *extra;
  }
  argv[argc] = NULL;
  vt_proc_start(&g->p, argv, 1);
}

/* Every line of the log must be one well-formed line of its format. */
static void gw_check_log_format(const gw *g) {
  FILE *f = fopen(g->p.log, "r");
  assert_non_null(f);
  char line[4096];
  int lines = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    lines++;
    int ok = g->json ? vt_json_valid_object(line)
                     : vt_logfmt_parse(line, NULL, NULL, 0) == 0;
    if (!ok) fail_msg("bad log line: %s", line);
  }
  fclose(f);
  assert_true(lines > 0);
}

/* SIGTERM, then expect a clean exit 0 within 5 s and a well-formed log. */
static void gw_stop(gw *g) {
  if (g->p.pid <= 0) return;
  int status = vt_proc_stop(&g->p);
  gw_check_log_format(g);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  vt_proc_remove_log(&g->p);
}

/* The number after " key=" in a logfmt line, or -1. */
static long field(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, " %s=", key);
  const char *p = strstr(line, pat);
  return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

/* ------------------------------------------------------------------------ */
/* A raw MQTT client                                                         */
/* ------------------------------------------------------------------------ */

static void send_all(int fd, const void *b, size_t n) {
  assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

static int encode_connect(uint8_t *b, size_t cap, const char *id,
                          uint16_t ka, int clean) {
  mqtt_connect_opts o = {id, ka, clean, NULL};
  int n = mqtt_encode_connect(&o, b, cap);
  assert_true(n > 0);
  return n;
}

/* Connects to port and completes CONNECT/CONNACK 0. */
static int client_at(uint16_t port, const char *id, uint16_t ka) {
  int fd = vt_connect_loopback(port);
  assert_true(fd >= 0);
  uint8_t b[256];
  send_all(fd, b, (size_t)encode_connect(b, sizeof b, id, ka, 1));
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\x20\x02\x00\x00", 4);
  return fd;
}

/* The same on the shared gateway. */
static int client(const char *id, uint16_t ka) {
  return client_at(G.p.port, id, ka);
}

static void subscribe(int fd, uint16_t pid, const char *filter,
                      uint8_t want_code) {
  uint8_t b[256];
  int n = mqtt_encode_subscribe(pid, filter, 0, b, sizeof b);
  send_all(fd, b, (size_t)n);
  uint8_t ack[5];
  assert_int_equal(vt_recv_n(fd, ack, 5, 2000), 5);
  uint8_t want[5] = {0x90, 3, (uint8_t)(pid >> 8), (uint8_t)pid, want_code};
  assert_memory_equal(ack, want, 5);
}

static void publish(int fd, const char *topic, const char *msg, uint8_t qos,
                    uint16_t pid, int retain) {
  mqtt_publish m = {0};
  m.topic.p = (const uint8_t *)topic;
  m.topic.len = (uint16_t)strlen(topic);
  m.payload = (const uint8_t *)msg;
  m.payload_len = (uint32_t)strlen(msg);
  m.qos = qos;
  m.packet_id = pid;
  m.retain = retain;
  uint8_t b[512];
  int n = mqtt_encode_publish(&m, b, sizeof b);
  assert_true(n > 0);
  send_all(fd, b, (size_t)n);
}

/* Expects exactly the QoS 0, RETAIN 0 PUBLISH of topic/msg next. */
static void expect_publish(int fd, const char *topic, const char *msg) {
  uint8_t want[512], got[512];
  mqtt_publish m = {0};
  m.topic.p = (const uint8_t *)topic;
  m.topic.len = (uint16_t)strlen(topic);
  m.payload = (const uint8_t *)msg;
  m.payload_len = (uint32_t)strlen(msg);
  int n = mqtt_encode_publish(&m, want, sizeof want);
  assert_int_equal(vt_recv_n(fd, got, (size_t)n, 2000), (size_t)n);
  assert_memory_equal(got, want, (size_t)n);
}

static void expect_nothing(int fd, uint32_t ms) {
  uint8_t b[16];
  assert_int_equal(vt_recv_n(fd, b, 1, ms), 0);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_silent_client_dropped_at_one_and_a_half_keepalive(void **s) {
  (void)s;
  int fd = client("silent-1", 2);
  uint64_t t0 = vt_now_ms();
  char line[4096];
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 2000, "event=mqtt_connect",
                           "identity=silent-1", NULL));
  assert_int_equal(field(line, "keepalive_s"), 2);
  assert_int_equal(field(line, "dead_after_ms"), 3000);
  /* Silence. A dead peer is reset, not sent a FIN it would never ack. */
  assert_int_equal(vt_wait_closed(fd, 5000), VT_GOT_RST);
  uint64_t took = vt_now_ms() - t0;
  assert_in_range(took, 2950, 3250);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 1000, "event=dead",
                           "identity=silent-1", "reason=heartbeat_timeout",
                           NULL));
  /* dead_after 3000 ms, hub tick 10 ms; slack for a loaded machine. */
  assert_in_range(field(line, "last_rx_ms"), 3000, 3100);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 1000, "event=close",
                           "identity=silent-1", "reason=heartbeat_timeout",
                           NULL));
  close(fd);
}

static void test_pings_keep_a_client_alive(void **s) {
  (void)s;
  int fd = client("pinger", 1); /* dead_after 1500 ms */
  uint8_t ping[2] = {0xC0, 0x00}, pong[2];
  for (int i = 0; i < 6; i++) { /* 6 x 500 ms: twice the deadline */
    usleep(500000);
    send_all(fd, ping, 2);
    assert_int_equal(vt_recv_n(fd, pong, 2, 1000), 2);
    assert_memory_equal(pong, "\xD0\x00", 2);
  }
  char line[4096];
  assert_false(vt_proc_wait_line(&G.p, line, sizeof line, 0, "event=close",
                            "identity=pinger", NULL));
  close(fd);
  /* keep-alive 0: no application deadline at all. */
  fd = client("no-keepalive", 0);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 2000, "event=mqtt_connect",
                           "identity=no-keepalive", NULL));
  assert_int_equal(field(line, "dead_after_ms"), 0);
  close(fd);
}

/* vigil's ping-flood guard on MQTT's own ping: four PINGREQs in one
 * segment (the defaults: 10 ms apart at least, 2 strikes) get three
 * PINGRESPs, then the gateway closes with ping_flood. */
static void test_pingreq_flood_closed(void **s) {
  (void)s;
  int fd = client("flooder", 30);
  send_all(fd, "\xC0\x00\xC0\x00\xC0\x00\xC0\x00", 8);
  uint8_t got[8];
  assert_int_equal(vt_recv_n(fd, got, 8, 2000), 6);
  assert_memory_equal(got, "\xD0\x00\xD0\x00\xD0\x00", 6);
  assert_int_equal(vt_wait_closed(fd, 2000), VT_GOT_FIN);
  close(fd); /* the gateway's close completes with our FIN */
  assert_true(vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=close",
                           "identity=flooder", "reason=ping_flood",
                           "detail=\"ping flood: 4 pings in 0 ms", NULL));
}

static void test_handshake_timeout(void **s) {
  (void)s;
  /* Nothing at all, then half a CONNECT: both wait out the 500 ms. */
  for (int partial = 0; partial < 2; partial++) {
    int fd = vt_connect_loopback(G.p.port);
    assert_true(fd >= 0);
    if (partial) send_all(fd, "\x10\x10\x00", 3);
    uint64_t t0 = vt_now_ms();
    assert_int_equal(vt_wait_closed(fd, 3000), VT_GOT_FIN);
    assert_in_range(vt_now_ms() - t0, 450, 900);
    close(fd);
  }
  char line[4096];
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 1000, "event=close",
                           "reason=handshake_timeout", NULL));
}

static void test_first_packet_must_be_connect(void **s) {
  (void)s;
  int fd = vt_connect_loopback(G.p.port);
  send_all(fd, "\xC0\x00", 2); /* PINGREQ */
  assert_int_equal(vt_wait_closed(fd, 2000), VT_GOT_FIN);
  close(fd);
  assert_true(vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=mqtt_protocol_error",
                           "first packet is PINGREQ, not CONNECT", NULL));
}

/* Sends a hand-made CONNECT and returns the CONNACK code, or -1 if the
 * server closed without one. Expects the connection to end either way. */
static int connack_code_for(const uint8_t *pkt, size_t n) {
  int fd = vt_connect_loopback(G.p.port);
  send_all(fd, pkt, n);
  uint8_t ack[4];
  size_t got = vt_recv_n(fd, ack, 4, 2000);
  int code = -1;
  if (got == 4) {
    assert_memory_equal(ack, "\x20\x02\x00", 3);
    code = ack[3];
  } else {
    assert_int_equal(got, 0);
  }
  assert_int_equal(vt_wait_closed(fd, 2000), VT_GOT_FIN);
  close(fd);
  return code;
}

static void test_connack_refusals(void **s) {
  (void)s;
  /* MQTT 3.1 (MQIsdp, level 3), and MQTT with level 3 or 5: 0x01. */
  static const uint8_t v31[] = "\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x0a\x00\x01x";
  static const uint8_t lv3[] = "\x10\x0d\x00\x04MQTT\x03\x02\x00\x0a\x00\x01x";
  static const uint8_t lv5[] = "\x10\x0d\x00\x04MQTT\x05\x02\x00\x0a\x00\x01x";
  assert_int_equal(connack_code_for(v31, sizeof v31 - 1), 1);
  assert_int_equal(connack_code_for(lv3, sizeof lv3 - 1), 1);
  assert_int_equal(connack_code_for(lv5, sizeof lv5 - 1), 1);
  /* Empty client id with clean session 0 (MQTT-3.1.3-8): 0x02. */
  static const uint8_t noid[] = "\x10\x0c\x00\x04MQTT\x04\x00\x00\x0a\x00\x00";
  assert_int_equal(connack_code_for(noid, sizeof noid - 1), 2);
  /* A client id with a control character: 0x02. */
  uint8_t b[256];
  int n = encode_connect(b, sizeof b, "bad\x01id", 10, 1);
  assert_int_equal(connack_code_for(b, (size_t)n), 2);
  /* Not MQTT at all: closed without a CONNACK (MQTT-3.1.2-1). */
  static const uint8_t http[] = "\x10\x0c\x00\x04HTTP\x04\x02\x00\x0a\x00\x00";
  assert_int_equal(connack_code_for(http, sizeof http - 1), -1);
  /* An empty id with clean session 1 is accepted, without an identity. */
  n = encode_connect(b, sizeof b, "", 10, 1);
  int fd = vt_connect_loopback(G.p.port);
  send_all(fd, b, (size_t)n);
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\x20\x02\x00\x00", 4);
  close(fd);
  assert_true(vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=mqtt_connack_refused",
                           "return_code=1", "protocol level 5", NULL));
  assert_true(vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=mqtt_connack_refused",
                           "return_code=2", "MQTT-3.1.3-8", NULL));
}

/* Sends bytes after a good CONNECT; expects a close and the detail. */
static void expect_protocol_error(const void *bytes, size_t n,
                                  const char *detail) {
  int fd = client("bad-actor", 30);
  send_all(fd, bytes, n);
  assert_int_equal(vt_wait_closed(fd, 2000), VT_GOT_FIN);
  close(fd);
  if (!vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=mqtt_protocol_error", detail,
                    NULL))
    fail_msg("no protocol error line with '%s'", detail);
}

static void test_malformed_input_closes(void **s) {
  (void)s;
  expect_protocol_error("\x30\xff\xff\xff\xff\x7f", 6,
                        "Remaining Length longer than 4 bytes");
  expect_protocol_error("\xF0\x00", 2, "reserved packet type 15");
  expect_protocol_error("\x80\x06\x00\x01\x00\x01t\x00", 8,
                        "SUBSCRIBE with flags 0x0 (must be 0x2)");
  expect_protocol_error("\x36\x05\x00\x01t\x00\x01", 7, "PUBLISH with QoS 3");
  /* --max-packet 1024: refused on the header, the body never sent. */
  expect_protocol_error("\x30\x81\x10", 3,
                        "PUBLISH of 2049 bytes exceeds max_packet 1024");
  uint8_t b[256];
  int n = encode_connect(b, sizeof b, "again", 10, 1);
  expect_protocol_error(b, (size_t)n, "second CONNECT (MQTT-3.1.0-2)");
  expect_protocol_error("\x34\x05\x00\x01t\x00\x01", 7,
                        "QoS 2 PUBLISH is not supported");
  expect_protocol_error("\x20\x02\x00\x00", 4,
                        "CONNACK is sent by servers, not clients");
  expect_protocol_error("\x40\x02\x00\x01", 4, "unexpected PUBACK");
  expect_protocol_error("\x30\x03\x00\x01+", 5, "malformed PUBLISH");
  expect_protocol_error("\xC0\x01\x00", 3, "PINGREQ with a body");
}

static void test_split_and_coalesced_packets(void **s) {
  (void)s;
  int fd = vt_connect_loopback(G.p.port);
  uint8_t b[256];
  int n = encode_connect(b, sizeof b, "trickle", 10, 1);
  for (int i = 0; i < n; i++) { /* one byte per segment */
    send_all(fd, b + i, 1);
    usleep(5000);
  }
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\x20\x02\x00\x00", 4);
  /* Three PINGREQs and a SUBSCRIBE in one segment. */
  uint8_t burst[64];
  memcpy(burst, "\xC0\x00\xC0\x00\xC0\x00", 6);
  int k = mqtt_encode_subscribe(9, "x/y", 0, burst + 6, sizeof burst - 6);
  send_all(fd, burst, 6 + (size_t)k);
  uint8_t got[11];
  assert_int_equal(vt_recv_n(fd, got, 11, 2000), 11);
  assert_memory_equal(got, "\xD0\x00\xD0\x00\xD0\x00\x90\x03\x00\x09\x00",
                      11);
  close(fd);
}

static void test_publish_subscribe_fanout(void **s) {
  (void)s;
  int a = client("sub-a", 30), b = client("sub-b", 30), c = client("pub-c", 30);
  subscribe(a, 1, "t/+", 0);
  subscribe(b, 2, "t/x", 0);
  subscribe(b, 3, "a/#/b", MQTT_SUBACK_FAILURE); /* invalid filter */
  subscribe(b, 4, "$SYS/#", 0);
  /* QoS 1 and RETAIN from the publisher; subscribers get QoS 0, RETAIN 0,
   * the publisher its PUBACK. */
  publish(c, "t/x", "hello", 1, 77, 1);
  uint8_t puback[4];
  assert_int_equal(vt_recv_n(c, puback, 4, 2000), 4);
  assert_memory_equal(puback, "\x40\x02\x00\x4d", 4);
  expect_publish(a, "t/x", "hello");
  expect_publish(b, "t/x", "hello");
  /* Deeper topics do not match '+'; exact and '$' topics reach only b. */
  publish(c, "t/x/deep", "no", 0, 0, 0);
  publish(c, "$SYS/load", "1.0", 0, 0, 0);
  expect_publish(b, "$SYS/load", "1.0");
  expect_nothing(a, 200);
  /* After UNSUBSCRIBE, a gets nothing more. */
  uint8_t unsub[64];
  int n = mqtt_encode_unsubscribe(5, "t/+", unsub, sizeof unsub);
  send_all(a, unsub, (size_t)n);
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(a, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\xB0\x02\x00\x05", 4);
  publish(c, "t/x", "again", 0, 0, 0);
  expect_publish(b, "t/x", "again");
  expect_nothing(a, 200);
  expect_nothing(c, 100);
  close(a);
  close(b);
  close(c);
}

/* CONNECT with a Will (built by hand: the codec's client side has none). */
static int client_with_will(const char *id, const char *topic,
                            const char *msg) {
  uint8_t body[256], pkt[260];
  size_t n = 0;
  size_t il = strlen(id), tl = strlen(topic), ml = strlen(msg);
  memcpy(body, "\x00\x04MQTT\x04\x06\x00\x1e", 10); /* clean + will, ka 30 */
  n = 10;
  body[n++] = 0;
  body[n++] = (uint8_t)il;
  memcpy(body + n, id, il);
  n += il;
  body[n++] = 0;
  body[n++] = (uint8_t)tl;
  memcpy(body + n, topic, tl);
  n += tl;
  body[n++] = 0;
  body[n++] = (uint8_t)ml;
  memcpy(body + n, msg, ml);
  n += ml;
  pkt[0] = 0x10;
  pkt[1] = (uint8_t)n;
  memcpy(pkt + 2, body, n);
  int fd = vt_connect_loopback(G.p.port);
  send_all(fd, pkt, n + 2);
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  assert_memory_equal(ack, "\x20\x02\x00\x00", 4);
  return fd;
}

static void test_will_published_unless_disconnect(void **s) {
  (void)s;
  int watcher = client("watcher", 30);
  subscribe(watcher, 1, "status/#", 0);
  /* Connection lost without DISCONNECT: the Will goes out. */
  int w1 = client_with_will("w1", "status/w1", "gone");
  close(w1);
  expect_publish(watcher, "status/w1", "gone");
  assert_true(vt_proc_wait_line(&G.p, NULL, 0, 1000, "event=mqtt_will",
                           "identity=w1", "reason=peer_closed",
                           "delivered=1", NULL));
  /* DISCONNECT first: the Will is discarded (MQTT-3.14.4-3). */
  int w2 = client_with_will("w2", "status/w2", "gone");
  send_all(w2, "\xE0\x00", 2);
  assert_int_equal(vt_wait_closed(w2, 2000), VT_GOT_FIN);
  close(w2);
  expect_nothing(watcher, 300);
  close(watcher);
}

static void test_takeover_closes_the_old_connection(void **s) {
  (void)s;
  char line[4096];
  int old = client("twin", 30);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 2000, "event=mqtt_connect",
                           "identity=twin", NULL));
  long old_id = field(line, "conn");
  subscribe(old, 1, "twin/old", 0);
  int fresh = client("twin", 30);
  /* The old connection shows no loss evidence (a live client that reads):
   * closed cleanly (MQTT-3.1.4-2), a FIN, not a reset. */
  assert_int_equal(vt_wait_closed(old, 2000), VT_GOT_FIN);
  close(old);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 1000, "event=takeover",
                           "identity=twin", "class=live", NULL));
  assert_int_equal(field(line, "other_conn"), old_id);
  char want[64];
  snprintf(want, sizeof want, "event=close conn=%ld ", old_id);
  assert_true(vt_proc_wait_line(&G.p, line, sizeof line, 1000, want,
                           "reason=takeover", "identity=twin", "class=live",
                           NULL));
  /* The new session is intact: its subscription and pings work, and the
   * old session's subscription went away with it. */
  subscribe(fresh, 2, "twin/cmd", 0);
  int c = client("commander", 30);
  publish(c, "twin/cmd", "reboot", 0, 0, 0);
  expect_publish(fresh, "twin/cmd", "reboot");
  publish(c, "twin/old", "stale", 0, 0, 0);
  expect_nothing(fresh, 200);
  send_all(fresh, "\xC0\x00", 2);
  uint8_t pong[2];
  assert_int_equal(vt_recv_n(fresh, pong, 2, 1000), 2);
  close(fresh);
  close(c);
}

static void test_json_log_format(void **s) {
  (void)s;
  gw j;
  static const char *const extra[] = {"--log", "json", "--census-every", "1",
                                      NULL};
  gw_start(&j, extra);
  int fd = vt_connect_loopback(j.p.port);
  uint8_t b[256];
  send_all(fd, b, (size_t)encode_connect(b, sizeof b, "json \"q\"", 7, 1));
  uint8_t ack[4];
  assert_int_equal(vt_recv_n(fd, ack, 4, 2000), 4);
  char line[4096], v[64];
  assert_true(vt_proc_wait_line(&j.p, line, sizeof line, 2000,
                           "\"event\":\"mqtt_connect\"", NULL));
  assert_true(vt_json_valid_object(line));
  assert_int_equal(vt_json_get_string(line, "identity", v, sizeof v), 0);
  assert_string_equal(v, "json \"q\"");
  assert_true(strstr(line, "\"dead_after_ms\":10500") != NULL);
  /* The census line counts this connection as established. */
  assert_true(vt_proc_wait_line(&j.p, line, sizeof line, 3000,
                           "\"event\":\"mqtt_census\"", NULL));
  assert_true(strstr(line, "\"established\":1") != NULL);
  assert_true(strstr(line, "\"sessions\":1") != NULL);
  assert_true(strstr(line, "\"ghosts\":0") != NULL);
  close(fd);
  gw_stop(&j);
}

/* --workers 2: the kernel spreads the clients over two workers, and a
 * PUBLISH still reaches every subscriber, wherever each one landed (the
 * other worker's through its mailbox). Lines say which worker wrote them;
 * SIGTERM stops both workers and the process exits 0. */
#define WORKER_SUBS 8

static void test_workers_publish_to_every_subscriber(void **s) {
  (void)s;
  gw two;
  static const char *const extra[] = {"--workers", "2", NULL};
  gw_start(&two, extra);
  int subs[WORKER_SUBS];
  for (int i = 0; i < WORKER_SUBS; i++) {
    char id[16];
    snprintf(id, sizeof id, "sub-%d", i);
    subs[i] = client_at(two.p.port, id, 30);
    subscribe(subs[i], 1, "w/+", 0);
  }
  int pub = client_at(two.p.port, "pub", 30);
  publish(pub, "w/x", "one", 0, 0, 0);
  publish(pub, "w/x", "two", 0, 0, 0);
  for (int i = 0; i < WORKER_SUBS; i++) {
    expect_publish(subs[i], "w/x", "one"); /* in the publisher's order */
    expect_publish(subs[i], "w/x", "two");
  }
  assert_true(vt_proc_wait_line(&two.p, NULL, 0, 2000, "event=mqtt_connect",
                           " worker=", "identity=pub", NULL));
  assert_true(vt_proc_wait_line(&two.p, NULL, 0, 2000, "event=open", " worker=",
                           NULL));
  for (int i = 0; i < WORKER_SUBS; i++) close(subs[i]);
  close(pub);
  gw_stop(&two);
}

/* The reboot storm across workers: 200 devices connect to a gateway with
 * two workers, then reconnect with the same client ids while their first
 * sockets stay open and silent. The kernel puts each new connection on
 * either worker, wherever its ghost is. The first sockets' kernel still
 * acknowledges everything (no loss evidence): each gets a clean FIN, and
 * since none closes, the takeover bound resets it. Within 1 s the port
 * holds exactly the 200 new ESTABLISHED sockets and nothing of the first
 * ones (no FIN_WAIT orphan; no ghost, by the kernel's count and the
 * gateway's own census of the group). */
#define STORM_DEVICES 200

/* The sockets on port (its own side) in state st. */
static int state_on(uint16_t port, vigil_tcp_state st) {
  vigil_census_query q;
  vigil_census_query_init(&q);
  q.ports = &port;
  q.nports = 1;
  q.want_sockets = 0;
  vigil_census *c = NULL;
  assert_int_equal(vigil_census_run(&q, &c), VIGIL_OK);
  int n = (int)c->counts[st];
  vigil_census_free(c);
  return n;
}

static int established_on(uint16_t port) {
  return state_on(port, VIGIL_TCP_ESTABLISHED);
}

/* Nothing of a displaced conn left on port: only `want` ESTABLISHED. */
static int only_established(uint16_t port, int want) {
  return established_on(port) == want &&
         state_on(port, VIGIL_TCP_FIN_WAIT1) == 0 &&
         state_on(port, VIGIL_TCP_FIN_WAIT2) == 0 &&
         state_on(port, VIGIL_TCP_CLOSE_WAIT) == 0;
}

typedef struct storm_port {
  uint16_t port;
} storm_port;

static int storm_settled(void *arg) {
  return only_established(((storm_port *)arg)->port, STORM_DEVICES);
}

static void test_workers_reboot_storm(void **s) {
  (void)s;
  gw two;
  static const char *const extra[] = {"--workers", "2", "--census-every",
                                      "1", NULL};
  gw_start(&two, extra);
  int first[STORM_DEVICES], second[STORM_DEVICES];
  char id[16];
  for (int i = 0; i < STORM_DEVICES; i++) {
    snprintf(id, sizeof id, "dev-%03d", i);
    first[i] = client_at(two.p.port, id, 60);
  }
  uint64_t t0 = vt_now_ms();
  for (int i = 0; i < STORM_DEVICES; i++) {
    snprintf(id, sizeof id, "dev-%03d", i);
    second[i] = client_at(two.p.port, id, 60);
  }
  uint64_t reconnected = vt_now_ms();
  for (int i = 0; i < STORM_DEVICES; i++) {
    uint64_t now = vt_now_ms();
    int left = t0 + 1000 > now ? (int)(t0 + 1000 - now) : 0;
    int end = vt_wait_closed(first[i], (uint32_t)left);
    if (end == VT_STILL_OPEN)
      fail_msg("device %d's first socket was not closed within 1 s of the "
               "reconnects", i);
  }
  uint64_t fins = vt_now_ms();
  /* The first sockets stay open: the gateway must let go by itself. */
  storm_port sp = {two.p.port};
  assert_true(vt_wait_until(storm_settled, &sp, 2000));
  uint64_t done = vt_now_ms();
  if (done - t0 > 1000)
    fail_msg("the gateway held sockets of displaced conns for %llu ms",
             (unsigned long long)(done - t0));
  printf("reboot storm: %d devices, 2 workers: reconnected in %llu ms, "
         "every first socket got its FIN %llu ms and the gateway held none "
         "of them %llu ms after the first reconnect\n",
         STORM_DEVICES, (unsigned long long)(reconnected - t0),
         (unsigned long long)(fins - t0), (unsigned long long)(done - t0));
  for (int i = 0; i < STORM_DEVICES; i++) close(first[i]);
  for (int i = 0; i < STORM_DEVICES; i++)
    assert_int_equal(vt_wait_closed(second[i], 1), VT_STILL_OPEN);
  assert_int_equal(established_on(two.p.port), STORM_DEVICES);
  /* Takeovers crossed workers (half of them on average) ... */
  assert_true(vt_proc_wait_line(&two.p, NULL, 0, 2000, "event=takeover",
                                "scope=worker", NULL));
  /* ... and the gateway's census of the group sees no ghost. */
  char want[32];
  snprintf(want, sizeof want, " established=%d ", STORM_DEVICES);
  assert_true(vt_proc_wait_line(&two.p, NULL, 0, 3000, "event=mqtt_census",
                                want, " leaked=0 ", " ghosts=0 ", NULL));
  for (int i = 0; i < STORM_DEVICES; i++) close(second[i]);
  gw_stop(&two);
}

static void test_bad_flags_exit_2(void **s) {
  (void)s;
  char path[512], cmd[700];
  if (!vt_example_path("mqtt_gateway", "MQTT_GATEWAY", path, sizeof path))
    vt_skip("examples/mqtt_gateway not built");
  static const char *const bad[] = {
      "--listen nowhere",          "--listen 127.0.0.1:70000",
      "--log xml",                 "--keepalive 1,2",
      "--keepalive 0,10,6",        "--handshake-timeout -1",
      "--max-packet 8",            "--bogus",
      "stray",                     "--workers 0",
      "--workers 257",
      "--node gw-1",               "--cluster http://x",
      "--cluster redis://127.0.0.1:1 --node bad/name",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", path, bad[i]);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
      fail_msg("'%s' did not exit 2", bad[i]);
  }
}

static int setup(void **s) {
  (void)s;
  static const char *const extra[] = {"--handshake-timeout", "500",
                                      "--max-packet", "1024", NULL};
  gw_start(&G, extra);
  return 0;
}

static int teardown(void **s) {
  (void)s;
  gw_stop(&G);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_silent_client_dropped_at_one_and_a_half_keepalive),
      cmocka_unit_test(test_pings_keep_a_client_alive),
      cmocka_unit_test(test_pingreq_flood_closed),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_first_packet_must_be_connect),
      cmocka_unit_test(test_connack_refusals),
      cmocka_unit_test(test_malformed_input_closes),
      cmocka_unit_test(test_split_and_coalesced_packets),
      cmocka_unit_test(test_publish_subscribe_fanout),
      cmocka_unit_test(test_will_published_unless_disconnect),
      cmocka_unit_test(test_takeover_closes_the_old_connection),
      cmocka_unit_test(test_json_log_format),
      cmocka_unit_test(test_workers_publish_to_every_subscriber),
      cmocka_unit_test(test_workers_reboot_storm),
      cmocka_unit_test(test_bad_flags_exit_2),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
