/*
 * MQTT 3.1.1 codec (examples/mqtt/mqtt_codec.c): Remaining Length at every
 * width, fixed-header flag rules for every type, incremental parsing across
 * every split, stop-from-callback, the packet size cap, UTF-8 rules, and
 * the CONNECT/PUBLISH/SUBSCRIBE/UNSUBSCRIBE decoders against the
 * normative statements they implement, plus encoder round trips.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* A growable byte buffer for building packets by hand. */
typedef struct bytes {
  uint8_t d[4096];
  size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  assert_true(b->n + n <= sizeof b->d);
  memcpy(b->d + b->n, p, n);
  b->n += n;
}
static void put8(bytes *b, uint8_t v) { put(b, &v, 1); }
static void put16(bytes *b, uint16_t v) {
  put8(b, (uint8_t)(v >> 8));
  put8(b, (uint8_t)v);
}
static void putstr(bytes *b, const char *s) {
  put16(b, (uint16_t)strlen(s));
  put(b, s, strlen(s));
}

/* Wraps body in a fixed header. */
static void packet(bytes *out, uint8_t first, const bytes *body) {
  uint8_t v[4];
  int n = mqtt_varint_encode((uint32_t)body->n, v);
  assert_true(n > 0);
  out->n = 0;
  put8(out, first);
  put(out, v, (size_t)n);
  put(out, body->d, body->n);
}

/* Records delivered packets as a log: type|flags, u32 len, body. */
typedef struct rec {
  size_t n;
  uint8_t log[16384];
  size_t log_len;
  size_t stop_at;           /* non-zero return on packet #stop_at */
  const uint8_t *lo, *hi;   /* input range, to count zero-copy bodies */
  size_t zero_copy;
  mqtt_parser *parser;
  ssize_t reentry_rc;
  int reenter;
} rec;

static int on_packet(void *ud, const mqtt_packet *pkt) {
  rec *r = ud;
  uint8_t hdr[5] = {(uint8_t)(pkt->type << 4 | pkt->flags),
                    (uint8_t)(pkt->len >> 24), (uint8_t)(pkt->len >> 16),
                    (uint8_t)(pkt->len >> 8), (uint8_t)pkt->len};
  if (pkt->len == 0) assert_null(pkt->body);
  else assert_non_null(pkt->body);
  if (pkt->len <= 8000) {
    assert_true(r->log_len + 5 + pkt->len <= sizeof r->log);
    memcpy(r->log + r->log_len, hdr, 5);
    if (pkt->len) memcpy(r->log + r->log_len + 5, pkt->body, pkt->len);
    r->log_len += 5 + pkt->len;
  }
  if (pkt->body && r->lo && pkt->body >= r->lo && pkt->body < r->hi)
    r->zero_copy++;
  if (r->reenter)
    r->reentry_rc = mqtt_parser_feed(r->parser, "x", 1, on_packet, r);
  r->n++;
  return r->stop_at && r->n == r->stop_at;
}

/* A stream of five packets of different shapes. */
static void sample_stream(bytes *s) {
  bytes body = {.n = 0}, pk;
  s->n = 0;
  putstr(&body, "MQTT");
  put8(&body, 4);
  put8(&body, 0x02);
  put16(&body, 30);
  putstr(&body, "dev-1");
  packet(&pk, 0x10, &body);
  put(s, pk.d, pk.n);
  body.n = 0;
  putstr(&body, "a/b");
  for (int i = 0; i < 300; i++) put8(&body, (uint8_t)i); /* 2-byte length */
  packet(&pk, 0x30, &body);
  put(s, pk.d, pk.n);
  body.n = 0;
  put16(&body, 7);
  putstr(&body, "a/+");
  put8(&body, 0);
  packet(&pk, 0x82, &body);
  put(s, pk.d, pk.n);
  put8(s, 0xC0);
  put8(s, 0x00);
  put8(s, 0xE0);
  put8(s, 0x00);
}

static void feed_ok(mqtt_parser *p, const void *d, size_t n, rec *r) {
  assert_int_equal(mqtt_parser_feed(p, d, n, on_packet, r), (ssize_t)n);
}

/* ------------------------------------------------------------------------ */
/* Remaining Length                                                          */
/* ------------------------------------------------------------------------ */

static void test_varint_encoding_table(void **state) {
  (void)state;
  static const struct {
    uint32_t v;
    uint8_t n;
    uint8_t b[4];
  } cases[] = {
      {0, 1, {0x00}},
      {127, 1, {0x7F}},
      {128, 2, {0x80, 0x01}},
      {16383, 2, {0xFF, 0x7F}},
      {16384, 3, {0x80, 0x80, 0x01}},
      {2097151, 3, {0xFF, 0xFF, 0x7F}},
      {2097152, 4, {0x80, 0x80, 0x80, 0x01}},
      {268435455, 4, {0xFF, 0xFF, 0xFF, 0x7F}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[4];
    assert_int_equal(mqtt_varint_encode(cases[i].v, out), cases[i].n);
    assert_memory_equal(out, cases[i].b, cases[i].n);
    assert_int_equal(mqtt_varint_size(cases[i].v), cases[i].n);
    /* The parser reads the same bytes back: with max_packet one below the
     * value the error names the decoded length; at the value it is taken. */
    mqtt_parser p;
    rec r = {.n = 0};
    bytes s = {.n = 0};
    put8(&s, 0x30);
    put(&s, cases[i].b, cases[i].n);
    if (cases[i].v > 0) {
      assert_int_equal(mqtt_parser_init(&p, cases[i].v - 1), MQTT_OK);
      assert_int_equal(mqtt_parser_feed(&p, s.d, s.n, on_packet, &r),
                       MQTT_ETOOBIG);
      char want[64];
      snprintf(want, sizeof want, "PUBLISH of %u bytes exceeds max_packet %u",
               cases[i].v, cases[i].v - 1);
      assert_string_equal(mqtt_parser_error(&p), want);
      mqtt_parser_free(&p);
    }
    if (cases[i].v <= 2097152) {
      assert_int_equal(mqtt_parser_init(&p, cases[i].v ? cases[i].v : 1),
                       MQTT_OK);
      feed_ok(&p, s.d, s.n, &r);
      uint8_t *body = calloc(1, cases[i].v + 1);
      body[0] = 0; /* topic length 0: the codec only frames here */
      feed_ok(&p, body, cases[i].v, &r);
      assert_int_equal(r.n, 1);
      assert_int_equal(p.packets, 1);
      assert_true(mqtt_parser_idle(&p));
      free(body);
      mqtt_parser_free(&p);
    }
  }
  uint8_t out[4];
  assert_int_equal(mqtt_varint_encode(268435456u, out), MQTT_EINVAL);
  assert_int_equal(mqtt_varint_size(268435456u), 0);
}

static void test_fifth_length_byte_is_malformed(void **state) {
  (void)state;
  mqtt_parser p;
  rec r = {.n = 0};
  const uint8_t s[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  assert_int_equal(mqtt_parser_init(&p, MQTT_MAX_REMAINING), MQTT_OK);
  /* Found on the fourth length byte, before a fifth arrives. */
  feed_ok(&p, s, 4, &r);
  assert_int_equal(mqtt_parser_feed(&p, s + 4, 1, on_packet, &r),
                   MQTT_EMALFORMED);
  assert_string_equal(mqtt_parser_error(&p),
                      "Remaining Length longer than 4 bytes");
  /* Sticky. */
  assert_int_equal(mqtt_parser_feed(&p, s, 2, on_packet, &r), MQTT_EMALFORMED);
  assert_int_equal(r.n, 0);
  mqtt_parser_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Fixed-header rules                                                        */
/* ------------------------------------------------------------------------ */

static void test_flags_per_type(void **state) {
  (void)state;
  for (unsigned type = 0; type < 16; type++) {
    for (unsigned flags = 0; flags < 16; flags++) {
      int ok;
      if (type == 0 || type == 15)
        ok = 0;
      else if (type == MQTT_PUBLISH)
        ok = ((flags >> 1) & 3u) != 3u;
      else if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE ||
               type == MQTT_UNSUBSCRIBE)
        ok = flags == 2;
      else
        ok = flags == 0;
      mqtt_parser p;
      rec r = {.n = 0};
      uint8_t first = (uint8_t)(type << 4 | flags);
      assert_int_equal(mqtt_parser_init(&p, 100), MQTT_OK);
      /* Rejected on the first byte alone. */
      ssize_t rc = mqtt_parser_feed(&p, &first, 1, on_packet, &r);
      if (ok) {
        assert_int_equal(rc, 1);
        uint8_t zero = 0;
        feed_ok(&p, &zero, 1, &r);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.log[0], first);
      } else {
        assert_int_equal(rc, MQTT_EMALFORMED);
        assert_non_null(mqtt_parser_error(&p));
      }
      mqtt_parser_free(&p);
    }
  }
  /* The description names the type and the rule. */
  mqtt_parser p;
  rec r = {.n = 0};
  uint8_t b = 0x80;
  mqtt_parser_init(&p, 100);
  assert_int_equal(mqtt_parser_feed(&p, &b, 1, on_packet, &r),
                   MQTT_EMALFORMED);
  assert_string_equal(mqtt_parser_error(&p),
                      "SUBSCRIBE with flags 0x0 (must be 0x2)");
  mqtt_parser_free(&p);
  b = 0xF0;
  mqtt_parser_init(&p, 100);
  assert_int_equal(mqtt_parser_feed(&p, &b, 1, on_packet, &r),
                   MQTT_EMALFORMED);
  assert_string_equal(mqtt_parser_error(&p),
                      "reserved packet type 15 (flags 0x0)");
  mqtt_parser_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Incremental parsing                                                       */
/* ------------------------------------------------------------------------ */

static void test_every_split_gives_the_same_packets(void **state) {
  (void)state;
  bytes s;
  sample_stream(&s);
  static rec whole, split;
  mqtt_parser p;
  memset(&whole, 0, sizeof whole);
  mqtt_parser_init(&p, 4096);
  whole.lo = s.d;
  whole.hi = s.d + s.n;
  feed_ok(&p, s.d, s.n, &whole);
  assert_int_equal(whole.n, 5);
  assert_int_equal(whole.zero_copy, 3); /* every non-empty body */
  mqtt_parser_free(&p);

  /* Two pieces, cut at every position. */
  for (size_t cut = 0; cut <= s.n; cut++) {
    memset(&split, 0, sizeof split);
    mqtt_parser_init(&p, 4096);
    feed_ok(&p, s.d, cut, &split);
    feed_ok(&p, s.d + cut, s.n - cut, &split);
    assert_int_equal(split.n, 5);
    assert_int_equal(split.log_len, whole.log_len);
    assert_memory_equal(split.log, whole.log, whole.log_len);
    assert_true(mqtt_parser_idle(&p));
    assert_null(p.buf); /* no buffer kept once a split body is delivered */
    mqtt_parser_free(&p);
  }
  /* Byte by byte. */
  memset(&split, 0, sizeof split);
  mqtt_parser_init(&p, 4096);
  for (size_t i = 0; i < s.n; i++) feed_ok(&p, s.d + i, 1, &split);
  assert_int_equal(split.n, 5);
  assert_memory_equal(split.log, whole.log, whole.log_len);
  mqtt_parser_free(&p);
  /* Several copies of the stream in one feed, then random chunks. */
  bytes big = {.n = 0};
  for (int k = 0; k < 4; k++) put(&big, s.d, s.n);
  uint32_t seed = 12345;
  for (int round = 0; round < 50; round++) {
    memset(&split, 0, sizeof split);
    mqtt_parser_init(&p, 4096);
    size_t off = 0;
    while (off < big.n) {
      seed = seed * 1103515245u + 12345u;
      size_t n = 1 + (seed >> 16) % 97;
      if (n > big.n - off) n = big.n - off;
      feed_ok(&p, big.d + off, n, &split);
      off += n;
    }
    assert_int_equal(split.n, 20);
    for (int k = 0; k < 4; k++)
      assert_memory_equal(split.log + k * whole.log_len, whole.log,
                          whole.log_len);
    mqtt_parser_free(&p);
  }
}

static void test_callback_can_stop_the_parser(void **state) {
  (void)state;
  bytes s;
  sample_stream(&s);
  mqtt_parser p;
  rec r = {.n = 0};
  r.stop_at = 2;
  mqtt_parser_init(&p, 4096);
  ssize_t used = mqtt_parser_feed(&p, s.d, s.n, on_packet, &r);
  assert_int_equal(r.n, 2);
  /* CONNECT (2 + 17 bytes) and PUBLISH (3 + 305 bytes) were consumed. */
  assert_int_equal(used, 19 + 308);
  r.stop_at = 0;
  feed_ok(&p, s.d + used, s.n - (size_t)used, &r);
  assert_int_equal(r.n, 5);
  mqtt_parser_free(&p);
}

static void test_reentry_is_refused_and_size_cap_applies(void **state) {
  (void)state;
  bytes s;
  sample_stream(&s);
  mqtt_parser p;
  rec r = {.n = 0};
  mqtt_parser_init(&p, 4096);
  r.parser = &p;
  r.reenter = 1;
  feed_ok(&p, s.d, 2, &r); /* nothing complete yet */
  feed_ok(&p, s.d + 2, s.n - 2, &r);
  assert_int_equal(r.reentry_rc, MQTT_EINVAL);
  mqtt_parser_free(&p);
  /* max_packet 100: CONNECT fits, the 305-byte PUBLISH does not; the
   * PUBLISH is refused on its header, its body is never read. */
  memset(&r, 0, sizeof r);
  mqtt_parser_init(&p, 100);
  assert_int_equal(mqtt_parser_feed(&p, s.d, s.n, on_packet, &r),
                   MQTT_ETOOBIG);
  assert_int_equal(r.n, 1);
  assert_string_equal(mqtt_parser_error(&p),
                      "PUBLISH of 305 bytes exceeds max_packet 100");
  mqtt_parser_free(&p);
  assert_int_equal(mqtt_parser_init(&p, 0), MQTT_EINVAL);
  assert_int_equal(mqtt_parser_init(&p, MQTT_MAX_REMAINING + 1), MQTT_EINVAL);
  assert_int_equal(mqtt_parser_init(NULL, 10), MQTT_EINVAL);
  mqtt_parser_init(&p, 10);
  assert_int_equal(mqtt_parser_feed(&p, NULL, 1, on_packet, &r), MQTT_EINVAL);
  assert_int_equal(mqtt_parser_feed(&p, "x", 1, NULL, &r), MQTT_EINVAL);
  assert_int_equal(mqtt_parser_feed(&p, NULL, 0, on_packet, &r), 0);
  mqtt_parser_free(&p);
  /* After free, feeding is refused. */
  assert_true(mqtt_parser_feed(&p, "\xC0", 1, on_packet, &r) < 0);
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

static void test_utf8_rules(void **state) {
  (void)state;
  static const struct {
    const char *s;
    size_t n;
    int ok;
  } cases[] = {
      {"", 0, 1},
      {"sensors/temp", 12, 1},
      {"caf\xC3\xA9", 5, 1},             /* U+00E9 */
      {"\xE2\x82\xAC", 3, 1},            /* U+20AC */
      {"\xF0\x9F\x98\x80", 4, 1},        /* U+1F600 */
      {"\xEF\xBB\xBF", 3, 1},            /* BOM is allowed (MQTT-1.5.3-3) */
      {"a\0b", 3, 0},                    /* U+0000, MQTT-1.5.3-2 */
      {"\xC0\x80", 2, 0},                /* overlong NUL */
      {"\xE0\x80\xAF", 3, 0},            /* overlong '/' */
      {"\xED\xA0\x80", 3, 0},            /* surrogate U+D800 */
      {"\xED\xBF\xBF", 3, 0},            /* surrogate U+DFFF */
      {"\xF4\x90\x80\x80", 4, 0},        /* above U+10FFFF */
      {"\xF5\x80\x80\x80", 4, 0},
      {"\x80", 1, 0},                    /* stray continuation */
      {"\xE2\x82", 2, 0},                /* cut sequence */
      {"\xC3(", 2, 0},
      {"\xFF", 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(mqtt_utf8_valid((const uint8_t *)cases[i].s, cases[i].n),
                     cases[i].ok);
}

/* ------------------------------------------------------------------------ */
/* CONNECT                                                                   */
/* ------------------------------------------------------------------------ */

/* Builds a CONNECT body field by field. */
static void connect_body(bytes *b, const char *proto, uint8_t level,
                         uint8_t flags, uint16_t ka, const char *id) {
  b->n = 0;
  putstr(b, proto);
  put8(b, level);
  put8(b, flags);
  put16(b, ka);
  if (id) putstr(b, id);
}

static int decode(const bytes *b, mqtt_connect *c) {
  return mqtt_decode_connect(b->d, (uint32_t)b->n, c);
}

static void test_connect_accepts_a_plain_client(void **state) {
  (void)state;
  bytes b;
  mqtt_connect c;
  connect_body(&b, "MQTT", 4, 0x02, 5, "dev1");
  assert_int_equal(decode(&b, &c), MQTT_OK);
  assert_int_equal(c.level, 4);
  assert_int_equal(c.keepalive, 5);
  assert_int_equal(c.clean_session, 1);
  assert_int_equal(c.client_id.len, 4);
  assert_memory_equal(c.client_id.p, "dev1", 4);
  assert_false(c.will);
  assert_false(c.has_username);
  /* Keep-alive is big-endian and may be 0 or 65535. */
  connect_body(&b, "MQTT", 4, 0x00, 65535, "x");
  assert_int_equal(decode(&b, &c), MQTT_OK);
  assert_int_equal(c.keepalive, 65535);
  assert_int_equal(c.clean_session, 0);
}

static void test_connect_with_will_user_and_password(void **state) {
  (void)state;
  bytes b;
  mqtt_connect c;
  /* will, will QoS 1, will retain, user name, password */
  connect_body(&b, "MQTT", 4, 0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40, 60,
               "dev-7");
  putstr(&b, "devices/dev-7/status");
  put16(&b, 7);
  put(&b, "offline", 7);
  putstr(&b, "alice");
  put16(&b, 3);
  put(&b, "\x00\x01\x02", 3); /* password is binary */
  assert_int_equal(decode(&b, &c), MQTT_OK);
  assert_true(c.will);
  assert_int_equal(c.will_qos, 1);
  assert_true(c.will_retain);
  assert_int_equal(c.will_topic.len, 20);
  assert_int_equal(c.will_len, 7);
  assert_memory_equal(c.will_msg, "offline", 7);
  assert_true(c.has_username);
  assert_int_equal(c.username.len, 5);
  assert_true(c.has_password);
  assert_int_equal(c.password_len, 3);
  /* Every truncation of a valid CONNECT is malformed, never a crash. */
  for (size_t n = 0; n < b.n; n++) {
    int rc = mqtt_decode_connect(b.d, (uint32_t)n, &c);
    assert_true(rc == MQTT_EMALFORMED || rc == MQTT_EPROTONAME);
  }
  /* A trailing byte is malformed too. */
  put8(&b, 0);
  assert_int_equal(decode(&b, &c), MQTT_EMALFORMED);
}

static void test_connect_refusals_in_order(void **state) {
  (void)state;
  static const struct {
    const char *proto;
    uint8_t level, flags;
    const char *id;
    int rc;
    const char *why;
  } cases[] = {
      {"HTTP", 4, 0x02, "a", MQTT_EPROTONAME, "not MQTT: MQTT-3.1.2-1"},
      {"mqtt", 4, 0x02, "a", MQTT_EPROTONAME, "name is case-sensitive"},
      {"MQIsdp", 3, 0x02, "a", MQTT_ELEVEL, "MQTT 3.1 gets CONNACK 0x01"},
      {"MQTT", 3, 0x02, "a", MQTT_ELEVEL, "MQTT-3.1.2-2"},
      {"MQTT", 5, 0x02, "a", MQTT_ELEVEL, "MQTT 5 gets CONNACK 0x01"},
      {"MQTT", 4, 0x03, "a", MQTT_EMALFORMED, "reserved flag, MQTT-3.1.2-3"},
      {"MQTT", 4, 0x0A, "a", MQTT_EMALFORMED, "will QoS w/o will, -3.1.2-13"},
      {"MQTT", 4, 0x22, "a", MQTT_EMALFORMED, "will retain w/o will, -15"},
      {"MQTT", 4, 0x1E, "a", MQTT_EMALFORMED, "will QoS 3, MQTT-3.1.2-14"},
      {"MQTT", 4, 0x42, "a", MQTT_EMALFORMED, "password w/o user, -3.1.2-22"},
      {"MQTT", 4, 0x82, "a", MQTT_EMALFORMED, "user flag, no user field"},
      {"MQTT", 4, 0x00, "", MQTT_EBADID, "empty id + clean 0: 3.1.3-8"},
      {"MQTT", 4, 0x02, "", MQTT_OK, "empty id + clean 1: 3.1.3-6"},
      {"MQTT", 4, 0x02, "tab\there", MQTT_EBADID, "control character"},
      {"MQTT", 4, 0x02, "c1\xC2\x85", MQTT_EBADID, "C1 control U+0085"},
      {"MQTT", 4, 0x02, "del\x7F", MQTT_EBADID, "DEL"},
      {"MQTT", 4, 0x02, "bad\xC3", MQTT_EMALFORMED, "ill-formed UTF-8"},
      {"MQTT", 4, 0x02, "caf\xC3\xA9 ok", MQTT_OK, "UTF-8, spaces allowed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bytes b;
    mqtt_connect c;
    connect_body(&b, cases[i].proto, cases[i].level, cases[i].flags, 10,
                 cases[i].id);
    int rc = decode(&b, &c);
    if (rc != cases[i].rc)
      fail_msg("case %zu (%s): got %s, want %s", i, cases[i].why,
               mqtt_status_name(rc), mqtt_status_name(cases[i].rc));
  }
  /* Identifier length: MQTT_CLIENT_ID_MAX bytes pass, one more does not. */
  char id[MQTT_CLIENT_ID_MAX + 2];
  memset(id, 'a', sizeof id);
  id[MQTT_CLIENT_ID_MAX] = 0;
  bytes b;
  mqtt_connect c;
  connect_body(&b, "MQTT", 4, 0x02, 10, id);
  assert_int_equal(decode(&b, &c), MQTT_OK);
  id[MQTT_CLIENT_ID_MAX] = 'a';
  id[MQTT_CLIENT_ID_MAX + 1] = 0;
  connect_body(&b, "MQTT", 4, 0x02, 10, id);
  assert_int_equal(decode(&b, &c), MQTT_EBADID);
  /* A wildcard will topic cannot be published: malformed. */
  connect_body(&b, "MQTT", 4, 0x06, 10, "w");
  putstr(&b, "a/#");
  put16(&b, 0);
  assert_int_equal(decode(&b, &c), MQTT_EMALFORMED);
}

/* ------------------------------------------------------------------------ */
/* PUBLISH, SUBSCRIBE, UNSUBSCRIBE, acks                                     */
/* ------------------------------------------------------------------------ */

static void test_publish_decoding(void **state) {
  (void)state;
  bytes b = {.n = 0};
  mqtt_publish m;
  putstr(&b, "a/b");
  put(&b, "hello", 5);
  assert_int_equal(mqtt_decode_publish(0x01, b.d, (uint32_t)b.n, &m), MQTT_OK);
  assert_int_equal(m.qos, 0);
  assert_true(m.retain);
  assert_int_equal(m.packet_id, 0);
  assert_int_equal(m.payload_len, 5);
  assert_memory_equal(m.payload, "hello", 5);
  /* QoS 1 takes a packet id before the payload. */
  b.n = 0;
  putstr(&b, "a/b");
  put16(&b, 0x1234);
  assert_int_equal(mqtt_decode_publish(0x02, b.d, (uint32_t)b.n, &m), MQTT_OK);
  assert_int_equal(m.qos, 1);
  assert_int_equal(m.packet_id, 0x1234);
  assert_int_equal(m.payload_len, 0);
  assert_null(m.payload);
  /* Faults. */
  assert_int_equal(mqtt_decode_publish(0x08, b.d, (uint32_t)b.n, &m),
                   MQTT_EMALFORMED); /* DUP with QoS 0: MQTT-3.3.1-2 */
  assert_int_equal(mqtt_decode_publish(0x06, b.d, (uint32_t)b.n, &m),
                   MQTT_EMALFORMED); /* QoS 3 */
  b.n = 0;
  putstr(&b, "a/b");
  put16(&b, 0);
  assert_int_equal(mqtt_decode_publish(0x02, b.d, (uint32_t)b.n, &m),
                   MQTT_EMALFORMED); /* packet id 0: MQTT-2.3.1-1 */
  static const char *bad_topics[] = {"a/+", "#", "", "x\xC0\x80"};
  for (size_t i = 0; i < 4; i++) {
    b.n = 0;
    putstr(&b, bad_topics[i]);
    assert_int_equal(mqtt_decode_publish(0x00, b.d, (uint32_t)b.n, &m),
                     MQTT_EMALFORMED);
  }
  b.n = 0;
  put16(&b, 10); /* topic longer than the body */
  put(&b, "abc", 3);
  assert_int_equal(mqtt_decode_publish(0x00, b.d, (uint32_t)b.n, &m),
                   MQTT_EMALFORMED);
}

static void test_subscribe_and_unsubscribe_decoding(void **state) {
  (void)state;
  bytes b = {.n = 0};
  uint16_t pid = 0;
  mqtt_filter_iter it;
  mqtt_str f;
  uint8_t qos;
  put16(&b, 42);
  putstr(&b, "a/b");
  put8(&b, 0);
  putstr(&b, "c/#");
  put8(&b, 2);
  assert_int_equal(mqtt_decode_subscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_OK);
  assert_int_equal(pid, 42);
  assert_true(mqtt_filter_next(&it, &f, &qos));
  assert_int_equal(f.len, 3);
  assert_memory_equal(f.p, "a/b", 3);
  assert_int_equal(qos, 0);
  assert_true(mqtt_filter_next(&it, &f, &qos));
  assert_memory_equal(f.p, "c/#", 3);
  assert_int_equal(qos, 2);
  assert_false(mqtt_filter_next(&it, &f, &qos));
  /* Faults: QoS 3, reserved bits, no filter, packet id 0, truncation. */
  static const uint8_t bad_qos[] = {3, 0x04, 0x80};
  for (size_t i = 0; i < sizeof bad_qos; i++) {
    b.n = 0;
    put16(&b, 1);
    putstr(&b, "t");
    put8(&b, bad_qos[i]);
    assert_int_equal(mqtt_decode_subscribe(b.d, (uint32_t)b.n, &pid, &it),
                     MQTT_EMALFORMED);
  }
  b.n = 0;
  put16(&b, 1);
  assert_int_equal(mqtt_decode_subscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_EMALFORMED); /* MQTT-3.8.3-3 */
  b.n = 0;
  put16(&b, 0);
  putstr(&b, "t");
  put8(&b, 0);
  assert_int_equal(mqtt_decode_subscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_EMALFORMED);
  b.n = 0;
  put16(&b, 1);
  putstr(&b, "t"); /* QoS byte missing */
  assert_int_equal(mqtt_decode_subscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_EMALFORMED);
  /* UNSUBSCRIBE has no QoS bytes: the same bytes read as one filter. */
  assert_int_equal(mqtt_decode_unsubscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_OK);
  assert_true(mqtt_filter_next(&it, &f, NULL));
  assert_memory_equal(f.p, "t", 1);
  assert_false(mqtt_filter_next(&it, &f, NULL));
  b.n = 0;
  put16(&b, 9);
  assert_int_equal(mqtt_decode_unsubscribe(b.d, (uint32_t)b.n, &pid, &it),
                   MQTT_EMALFORMED); /* MQTT-3.10.3-2 */
  /* Packet ids and CONNACK. */
  uint16_t id;
  assert_int_equal(mqtt_decode_packet_id((const uint8_t *)"\x01\x02", 2, &id),
                   MQTT_OK);
  assert_int_equal(id, 0x0102);
  assert_int_equal(mqtt_decode_packet_id((const uint8_t *)"\0\0", 2, &id),
                   MQTT_EMALFORMED);
  assert_int_equal(mqtt_decode_packet_id((const uint8_t *)"\1", 1, &id),
                   MQTT_EMALFORMED);
  int sp;
  uint8_t rc;
  assert_int_equal(mqtt_decode_connack((const uint8_t *)"\x01\x00", 2, &sp,
                                       &rc), MQTT_OK);
  assert_int_equal(sp, 1);
  assert_int_equal(rc, 0);
  assert_int_equal(mqtt_decode_connack((const uint8_t *)"\x02\x00", 2, &sp,
                                       &rc), MQTT_EMALFORMED);
  assert_int_equal(mqtt_decode_connack((const uint8_t *)"\x00\x06", 2, &sp,
                                       &rc), MQTT_EMALFORMED);
  /* MQTT-3.2.2-4: a refusal carries Session Present 0, as the encoder
   * insists (found by tests/fuzz/fuzz_mqtt.c: the decoder took it). */
  assert_int_equal(mqtt_decode_connack((const uint8_t *)"\x01\x02", 2, &sp,
                                       &rc), MQTT_EMALFORMED);
  assert_int_equal(mqtt_encode_connack(1, 2, (uint8_t[4]){0}, 4),
                   MQTT_EINVAL);
}

/* Decodes a packet the way the gateway does; counts the verdicts. */
static int decode_like_gateway(void *ud, const mqtt_packet *pkt) {
  int *malformed = ud;
  mqtt_connect c;
  mqtt_publish m;
  mqtt_filter_iter it;
  uint16_t id;
  int sp;
  uint8_t code;
  int rc = MQTT_OK;
  switch (pkt->type) {
  case MQTT_CONNECT: rc = mqtt_decode_connect(pkt->body, pkt->len, &c); break;
  case MQTT_CONNACK:
    rc = mqtt_decode_connack(pkt->body, pkt->len, &sp, &code);
    break;
  case MQTT_PUBLISH:
    rc = mqtt_decode_publish(pkt->flags, pkt->body, pkt->len, &m);
    break;
  case MQTT_SUBSCRIBE:
    rc = mqtt_decode_subscribe(pkt->body, pkt->len, &id, &it);
    break;
  case MQTT_UNSUBSCRIBE:
    rc = mqtt_decode_unsubscribe(pkt->body, pkt->len, &id, &it);
    break;
  default: rc = mqtt_decode_packet_id(pkt->body, pkt->len, &id); break;
  }
  if (rc == MQTT_EMALFORMED) ++*malformed;
  return 0;
}

/* The parser hands an empty body over as NULL; every decoder must take
 * that as a short body (found by tests/fuzz/fuzz_mqtt.c: the readers did
 * NULL + 0 pointer arithmetic, undefined behaviour). */
static void test_decoders_take_empty_bodies(void **state) {
  (void)state;
  /* The fuzzer's input: a refused MQTT 3.1 CONNECT, then two body-less
   * PUBLISH packets (DUP, QoS 2). */
  static const uint8_t found[] =
      "\x10\x0f\x00\x06MQIsdp\x03\x01\x00\x00\x00\x2c\x00\x3c\x00\x3c\x00";
  static const uint8_t empty[] = {0x10, 0, 0x20, 0, 0x30, 0, 0x82, 0,
                                  0xA2, 0, 0x40, 0};
  mqtt_parser p;
  int malformed = 0;
  assert_int_equal(mqtt_parser_init(&p, 1024), MQTT_OK);
  assert_int_equal(mqtt_parser_feed(&p, found, sizeof found - 1,
                                    decode_like_gateway, &malformed),
                   (ssize_t)(sizeof found - 1));
  assert_int_equal(malformed, 2); /* CONNECT: ELEVEL; PUBLISH: malformed */
  malformed = 0;
  assert_int_equal(mqtt_parser_feed(&p, empty, sizeof empty,
                                    decode_like_gateway, &malformed),
                   (ssize_t)sizeof empty);
  assert_int_equal(malformed, 6);
  mqtt_parser_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Encoders                                                                  */
/* ------------------------------------------------------------------------ */

/* Checks that every capacity below the size gives ENOSPC. */
#define ASSERT_ENOSPC_BELOW(expr_with_cap, size)                             \
  do {                                                                       \
    for (size_t cap_ = 0; cap_ < (size_t)(size); cap_++) {                   \
      size_t cap = cap_;                                                     \
      assert_int_equal((expr_with_cap), MQTT_ENOSPC);                        \
    }                                                                        \
  } while (0)

static void test_encoders_exact_bytes(void **state) {
  (void)state;
  uint8_t out[512];
  assert_int_equal(mqtt_encode_connack(0, 0, out, sizeof out), 4);
  assert_memory_equal(out, "\x20\x02\x00\x00", 4);
  assert_int_equal(mqtt_encode_connack(0, 2, out, sizeof out), 4);
  assert_memory_equal(out, "\x20\x02\x00\x02", 4);
  assert_int_equal(mqtt_encode_connack(1, 2, out, sizeof out), MQTT_EINVAL);
  assert_int_equal(mqtt_encode_connack(0, 6, out, sizeof out), MQTT_EINVAL);
  ASSERT_ENOSPC_BELOW(mqtt_encode_connack(0, 0, out, cap), 4);
  assert_int_equal(mqtt_encode_empty(MQTT_PINGRESP, out, sizeof out), 2);
  assert_memory_equal(out, "\xD0\x00", 2);
  assert_int_equal(mqtt_encode_empty(MQTT_PINGREQ, out, sizeof out), 2);
  assert_memory_equal(out, "\xC0\x00", 2);
  assert_int_equal(mqtt_encode_empty(MQTT_DISCONNECT, out, sizeof out), 2);
  assert_memory_equal(out, "\xE0\x00", 2);
  assert_int_equal(mqtt_encode_empty(MQTT_CONNACK, out, sizeof out),
                   MQTT_EINVAL);
  assert_int_equal(mqtt_encode_ack(MQTT_UNSUBACK, 0x0102, out, sizeof out), 4);
  assert_memory_equal(out, "\xB0\x02\x01\x02", 4);
  assert_int_equal(mqtt_encode_ack(MQTT_PUBREL, 7, out, sizeof out), 4);
  assert_memory_equal(out, "\x62\x02\x00\x07", 4);
  assert_int_equal(mqtt_encode_ack(MQTT_PUBACK, 0, out, sizeof out),
                   MQTT_EINVAL);
  const uint8_t codes[] = {0, MQTT_SUBACK_FAILURE, 1};
  assert_int_equal(mqtt_encode_suback(9, codes, 3, out, sizeof out), 7);
  assert_memory_equal(out, "\x90\x05\x00\x09\x00\x80\x01", 7);
  const uint8_t bad[] = {3};
  assert_int_equal(mqtt_encode_suback(9, bad, 1, out, sizeof out),
                   MQTT_EINVAL);
  ASSERT_ENOSPC_BELOW(mqtt_encode_suback(9, codes, 3, out, cap), 7);
  assert_int_equal(mqtt_encode_subscribe(3, "a/+", 1, out, sizeof out), 10);
  assert_memory_equal(out, "\x82\x08\x00\x03\x00\x03" "a/+" "\x01", 10);
  assert_int_equal(mqtt_encode_unsubscribe(3, "a/+", out, sizeof out), 9);
  assert_memory_equal(out, "\xA2\x07\x00\x03\x00\x03" "a/+", 9);
}

/* Encoded packets parse back into the same fields. */
typedef struct one {
  mqtt_packet pkt;
  uint8_t body[600];
} one;

static int grab(void *ud, const mqtt_packet *pkt) {
  one *o = ud;
  o->pkt = *pkt;
  assert_true(pkt->len <= sizeof o->body);
  if (pkt->len) memcpy(o->body, pkt->body, pkt->len);
  return 0;
}

static void parse_one(const uint8_t *d, size_t n, one *o) {
  mqtt_parser p;
  mqtt_parser_init(&p, 4096);
  memset(o, 0, sizeof *o);
  assert_int_equal(mqtt_parser_feed(&p, d, n, grab, o), (ssize_t)n);
  assert_int_equal(p.packets, 1);
  mqtt_parser_free(&p);
}

static void test_encoders_round_trip(void **state) {
  (void)state;
  uint8_t out[600];
  one o;
  mqtt_connect_opts co = {"dev-42", 30, 1, NULL};
  int n = mqtt_encode_connect(&co, out, sizeof out);
  assert_int_equal(n, 2 + 10 + 2 + 6);
  ASSERT_ENOSPC_BELOW(mqtt_encode_connect(&co, out, cap), n);
  parse_one(out, (size_t)n, &o);
  assert_int_equal(o.pkt.type, MQTT_CONNECT);
  mqtt_connect c;
  assert_int_equal(mqtt_decode_connect(o.body, o.pkt.len, &c), MQTT_OK);
  assert_int_equal(c.keepalive, 30);
  assert_true(c.clean_session);
  assert_memory_equal(c.client_id.p, "dev-42", 6);
  co.username = "u";
  co.clean_session = 0;
  n = mqtt_encode_connect(&co, out, sizeof out);
  parse_one(out, (size_t)n, &o);
  assert_int_equal(mqtt_decode_connect(o.body, o.pkt.len, &c), MQTT_OK);
  assert_true(c.has_username);
  assert_false(c.clean_session);
  co.client_id = "";
  assert_int_equal(mqtt_encode_connect(&co, out, sizeof out), MQTT_EINVAL);

  /* PUBLISH: QoS 0 and 1, a payload large enough for a 2-byte length. */
  uint8_t payload[300];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)i;
  mqtt_publish m = {0};
  m.topic.p = (const uint8_t *)"t/x";
  m.topic.len = 3;
  m.payload = payload;
  m.payload_len = sizeof payload;
  size_t size = mqtt_publish_size(3, 0, sizeof payload);
  assert_int_equal(size, 1 + 2 + 2 + 3 + 300);
  assert_int_equal(mqtt_encode_publish(&m, out, sizeof out), (int)size);
  ASSERT_ENOSPC_BELOW(mqtt_encode_publish(&m, out, cap), size);
  parse_one(out, size, &o);
  mqtt_publish d;
  assert_int_equal(mqtt_decode_publish(o.pkt.flags, o.body, o.pkt.len, &d),
                   MQTT_OK);
  assert_int_equal(d.payload_len, 300);
  assert_memory_equal(d.payload, payload, 300);
  m.qos = 1;
  m.packet_id = 5;
  m.retain = 1;
  int k = mqtt_encode_publish(&m, out, sizeof out);
  assert_int_equal(k, (int)mqtt_publish_size(3, 1, 300));
  parse_one(out, (size_t)k, &o);
  assert_int_equal(o.pkt.flags, 0x03);
  assert_int_equal(mqtt_decode_publish(o.pkt.flags, o.body, o.pkt.len, &d),
                   MQTT_OK);
  assert_int_equal(d.packet_id, 5);
  /* Rules the encoder enforces. */
  m.packet_id = 0;
  assert_int_equal(mqtt_encode_publish(&m, out, sizeof out), MQTT_EINVAL);
  m.qos = 0;
  m.dup = 1;
  assert_int_equal(mqtt_encode_publish(&m, out, sizeof out), MQTT_EINVAL);
  m.dup = 0;
  m.topic.p = (const uint8_t *)"t/+";
  assert_int_equal(mqtt_encode_publish(&m, out, sizeof out), MQTT_EINVAL);
  assert_int_equal(mqtt_publish_size(70000, 0, 1), 0);
  assert_int_equal(mqtt_publish_size(1, 0, MQTT_MAX_REMAINING), 0);
  assert_string_equal(mqtt_type_name(MQTT_SUBSCRIBE), "SUBSCRIBE");
  assert_string_equal(mqtt_type_name(0), "RESERVED");
  assert_string_equal(mqtt_type_name(15), "RESERVED");
  assert_string_equal(mqtt_status_name(MQTT_EBADID), "identifier_rejected");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varint_encoding_table),
      cmocka_unit_test(test_fifth_length_byte_is_malformed),
      cmocka_unit_test(test_flags_per_type),
      cmocka_unit_test(test_every_split_gives_the_same_packets),
      cmocka_unit_test(test_callback_can_stop_the_parser),
      cmocka_unit_test(test_reentry_is_refused_and_size_cap_applies),
      cmocka_unit_test(test_utf8_rules),
      cmocka_unit_test(test_connect_accepts_a_plain_client),
      cmocka_unit_test(test_connect_with_will_user_and_password),
      cmocka_unit_test(test_connect_refusals_in_order),
      cmocka_unit_test(test_publish_decoding),
      cmocka_unit_test(test_subscribe_and_unsubscribe_decoding),
      cmocka_unit_test(test_decoders_take_empty_bodies),
      cmocka_unit_test(test_encoders_exact_bytes),
      cmocka_unit_test(test_encoders_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
