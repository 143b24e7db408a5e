/*
 * libFuzzer target for the example MQTT 3.1.1 codec (examples/mqtt/),
 * built by tests/fuzz/run_fuzz.sh. The byte stream goes through
 * mqtt_parser_feed the way the gateway sees it (one feed per recv, split
 * anywhere), and every packet that comes out goes through the decoder the
 * gateway would use for it, then back through the encoders.
 *
 * Input: byte 0 = config, byte 1 = k, bytes 2..k+1 = chunk lengths, the
 * rest = the byte stream.
 *   config bits 0-1  max_packet: 16, 300, 256 KiB (the gateway's
 *                    default), MQTT_MAX_REMAINING
 *   config bits 2-4  stop after this many packets in the stopping run
 *                    (0: never), then resume with the remaining bytes
 *   config bit  5    at the stop, also mqtt_parser_free() the parser from
 *                    inside the callback and resume on a fresh one
 *   k (mod 16)       number of chunk-length bytes; chunk i is
 *                    len[i % k] + 1 bytes; k = 0 feeds one byte at a time
 *
 * Invariants checked (abort on violation):
 * - one feed, fuzzer-chosen chunks and stop-and-resume deliver the same
 *   packets and end with the same result and error description; feed
 *   never reports more bytes than it was given; errors are sticky; a feed
 *   from inside the callback is refused with MQTT_EINVAL;
 * - every packet has a valid type and fixed-header flags, fits
 *   max_packet, and a body that arrived whole is not copied;
 * - a packet re-serialised with mqtt_varint_encode parses back the same;
 * - each decoder's verdict matches a reference decoder written from the
 *   normative statements in mqtt_codec.h (CONNECT, PUBLISH, SUBSCRIBE,
 *   UNSUBSCRIBE, packet ids, CONNACK), and what decodes re-encodes to the
 *   same bytes wherever an encoder can express it;
 * - the gateway's SUBACK size formula matches mqtt_encode_suback;
 * - mqtt_utf8_valid and mqtt_topic_match agree with reference versions.
 */
#include "fuzz_common.h"
#include "mqtt_codec.h"
#include "mqtt_topic.h"

#include <string.h>

static const uint32_t max_packets[4] = {16, 300, 256u * 1024u,
                                        MQTT_MAX_REMAINING};

/* ---- reference checks (written from the header and the standard) ------- */

/* 1 if s is a valid MQTT string body: UTF-8 without U+0000. */
static int ref_mqtt_utf8(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = ref_utf8_decode(s + i, len - i, &cp);
    if (n == 0 || cp == 0) return 0;
    i += n;
  }
  return 1;
}

/* 1 if the (valid) string holds U+0001..U+001F or U+007F..U+009F. */
static int ref_has_control(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = ref_utf8_decode(s + i, len - i, &cp);
    CHECK(n > 0);
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return 1;
    i += n;
  }
  return 0;
}

static int ref_topic_name(const uint8_t *t, size_t len) {
  if (len == 0) return 0;
  return memchr(t, '+', len) == NULL && memchr(t, '#', len) == NULL;
}

/* A cursor over a body; ok drops to 0 when a read runs past the end. */
typedef struct cursor {
  const uint8_t *p;
  size_t left;
  int ok;
} cursor;

static unsigned cur_u8(cursor *c) {
  if (!c->ok || c->left < 1) return c->ok = 0, 0;
  c->left--;
  return *c->p++;
}

static unsigned cur_u16(cursor *c) {
  unsigned hi = cur_u8(c), lo = cur_u8(c);
  return hi << 8 | lo;
}

/* Length-prefixed bytes into *s and *n; 0 if cut. */
static int cur_bin(cursor *c, const uint8_t **s, size_t *n) {
  *n = cur_u16(c);
  if (!c->ok || c->left < *n) return c->ok = 0, 0;
  *s = c->p;
  c->p += *n;
  c->left -= *n;
  return 1;
}

static int cur_str(cursor *c, const uint8_t **s, size_t *n) {
  return cur_bin(c, s, n) && ref_mqtt_utf8(*s, *n);
}

static int ref_connect(const uint8_t *b, size_t len) {
  cursor c = {b, len, 1};
  const uint8_t *s;
  size_t n;
  if (!cur_str(&c, &s, &n)) return MQTT_EMALFORMED;
  int v31 = n == 6 && memcmp(s, "MQIsdp", 6) == 0;
  if (!v31 && !(n == 4 && memcmp(s, "MQTT", 4) == 0)) return MQTT_EPROTONAME;
  unsigned level = cur_u8(&c);
  if (!c.ok) return MQTT_EMALFORMED;
  if (v31 || level != 4) return MQTT_ELEVEL;
  unsigned flags = cur_u8(&c);
  cur_u16(&c);
  if (!c.ok) return MQTT_EMALFORMED;
  unsigned reserved = flags & 1, clean = flags & 2, will = flags & 4,
           will_qos = (flags >> 3) & 3, will_retain = flags & 0x20,
           password = flags & 0x40, user = flags & 0x80;
  if (reserved || will_qos == 3 || (!will && (will_qos || will_retain)) ||
      (password && !user))
    return MQTT_EMALFORMED;
  const uint8_t *id;
  size_t id_len;
  if (!cur_str(&c, &id, &id_len)) return MQTT_EMALFORMED;
  if (will && (!cur_str(&c, &s, &n) || !ref_topic_name(s, n) ||
               !cur_bin(&c, &s, &n)))
    return MQTT_EMALFORMED;
  if (user && !cur_str(&c, &s, &n)) return MQTT_EMALFORMED;
  if (password && !cur_bin(&c, &s, &n)) return MQTT_EMALFORMED;
  if (c.left != 0) return MQTT_EMALFORMED;
  if (id_len == 0 && !clean) return MQTT_EBADID;
  if (id_len > MQTT_CLIENT_ID_MAX || ref_has_control(id, id_len))
    return MQTT_EBADID;
  return MQTT_OK;
}

static int ref_publish(uint8_t flags, const uint8_t *b, size_t len) {
  unsigned qos = (flags >> 1) & 3;
  if (qos == 3 || ((flags & 8) && qos == 0)) return MQTT_EMALFORMED;
  cursor c = {b, len, 1};
  const uint8_t *t;
  size_t n;
  if (!cur_str(&c, &t, &n) || !ref_topic_name(t, n)) return MQTT_EMALFORMED;
  if (qos > 0 && (cur_u16(&c) == 0 || !c.ok)) return MQTT_EMALFORMED;
  return MQTT_OK;
}

/* SUBSCRIBE (with_qos) or UNSUBSCRIBE body; *nfilters on success. */
static int ref_filters(const uint8_t *b, size_t len, int with_qos,
                       size_t *nfilters) {
  cursor c = {b, len, 1};
  if (cur_u16(&c) == 0 || !c.ok) return MQTT_EMALFORMED;
  size_t count = 0;
  while (c.left > 0) {
    const uint8_t *f;
    size_t n;
    if (!cur_str(&c, &f, &n)) return MQTT_EMALFORMED;
    if (with_qos) {
      unsigned q = cur_u8(&c);
      if (!c.ok || q > 2) return MQTT_EMALFORMED;
    }
    count++;
  }
  *nfilters = count;
  return count ? MQTT_OK : MQTT_EMALFORMED;
}

/* Topic matching per section 4.7, level by level. */
#define REF_MAX_LEVELS 64
static size_t split_levels(const uint8_t *s, size_t len, const uint8_t **lv,
                           size_t *lvlen) {
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= len && n < REF_MAX_LEVELS; i++) {
    if (i < len && s[i] != '/') continue;
    lv[n] = s + start;
    lvlen[n++] = i - start;
    start = i + 1;
  }
  return n;
}

static int ref_match(const uint8_t *f, size_t flen, const uint8_t *t,
                     size_t tlen) {
  const uint8_t *fl[REF_MAX_LEVELS], *tl[REF_MAX_LEVELS];
  size_t fn[REF_MAX_LEVELS], tn[REF_MAX_LEVELS];
  if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return 0;
  size_t nf = split_levels(f, flen, fl, fn);
  size_t nt = split_levels(t, tlen, tl, tn);
  for (size_t i = 0; i < nf; i++) {
    int plus = fn[i] == 1 && fl[i][0] == '+';
    if (fn[i] == 1 && fl[i][0] == '#') return 1; /* also the parent */
    if (i >= nt) return 0;
    if (!plus && (fn[i] != tn[i] || memcmp(fl[i], tl[i], fn[i]) != 0))
      return 0;
  }
  return nf == nt;
}

/* Levels in s (1 + number of '/'). */
static size_t count_levels(const uint8_t *s, size_t len) {
  size_t n = 1;
  for (size_t i = 0; i < len; i++) n += s[i] == '/';
  return n;
}

/* ---- packet checks ----------------------------------------------------- */

/* Valid filters and topic names seen in this input, for matching. */
#define KEEP 8
typedef struct seen {
  const uint8_t *filter[KEEP];
  size_t filter_len[KEEP];
  size_t nfilters;
  const uint8_t *topic[KEEP];
  size_t topic_len[KEEP];
  size_t ntopics;
} seen;

/* encoded (an encoder's output, n bytes) is first + a Remaining Length +
 * exactly body[0..len). */
static void check_same_packet(const uint8_t *encoded, int n, uint8_t first,
                              const uint8_t *body, uint32_t len) {
  CHECK(n > 0);
  unsigned vlen = mqtt_varint_size(len);
  CHECK(vlen > 0 && (size_t)n == 1 + vlen + len);
  CHECK(encoded[0] == first);
  CHECK(len == 0 || memcmp(encoded + 1 + vlen, body, len) == 0);
}

/* Runs an encoder call (which writes to `out` with capacity `cap`) one
 * byte short of size, where it must refuse, then with exactly size bytes,
 * where it must reproduce the packet `pkt` in scope byte for byte. */
#define ENCODE_BOTH(out, size, call_with_cap)                                \
  do {                                                                       \
    uint8_t *out = malloc(size);                                             \
    CHECK(out != NULL);                                                      \
    size_t cap = (size) - 1;                                                 \
    CHECK((call_with_cap) == MQTT_ENOSPC);                                   \
    cap = (size);                                                            \
    int w_ = (call_with_cap);                                                \
    check_same_packet(out, w_, pkt->type << 4 | pkt->flags, pkt->body,       \
                      pkt->len);                                             \
    free(out);                                                               \
  } while (0)

static size_t packet_size(uint32_t len) {
  return 1 + mqtt_varint_size(len) + len;
}

static char *cstr(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  CHECK(s != NULL);
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static int within(const uint8_t *p, size_t n, const mqtt_packet *pkt) {
  return n == 0 || (p >= pkt->body && p + n <= pkt->body + pkt->len);
}

static void check_connect(const mqtt_packet *pkt) {
  mqtt_connect c;
  int rc = mqtt_decode_connect(pkt->body, pkt->len, &c);
  CHECK(rc == ref_connect(pkt->body, pkt->len));
  if (rc == MQTT_EBADID || rc == MQTT_OK)
    CHECK(within(c.client_id.p, c.client_id.len, pkt));
  if (rc != MQTT_OK) return;
  CHECK(c.level == MQTT_PROTOCOL_LEVEL && c.protocol.len == 4);
  CHECK(c.client_id.len <= MQTT_CLIENT_ID_MAX);
  CHECK(c.client_id.len > 0 || c.clean_session);
  CHECK(c.will || (!c.will_qos && !c.will_retain && !c.will_topic.len));
  CHECK(!c.will || ref_topic_name(c.will_topic.p, c.will_topic.len));
  CHECK(within(c.will_topic.p, c.will_topic.len, pkt));
  CHECK(within(c.will_msg, c.will_len, pkt));
  CHECK(within(c.username.p, c.username.len, pkt));
  CHECK(within(c.password, c.password_len, pkt));
  CHECK(c.has_username || !c.has_password);
  if (c.will || c.has_password) return; /* the client encoder has neither */
  char *id = cstr(c.client_id.p, c.client_id.len);
  char *user = c.has_username ? cstr(c.username.p, c.username.len) : NULL;
  mqtt_connect_opts o = {id, c.keepalive, c.clean_session, user};
  ENCODE_BOTH(out, packet_size(pkt->len), mqtt_encode_connect(&o, out, cap));
  free(user);
  free(id);
}

static void check_publish(const mqtt_packet *pkt, seen *sn) {
  mqtt_publish m;
  int rc = mqtt_decode_publish(pkt->flags, pkt->body, pkt->len, &m);
  CHECK(rc == ref_publish(pkt->flags, pkt->body, pkt->len));
  if (rc != MQTT_OK) return;
  CHECK(m.qos <= 2 && (m.qos == 0) == (m.packet_id == 0));
  CHECK(within(m.topic.p, m.topic.len, pkt));
  CHECK(m.payload_len == pkt->len - 2u - m.topic.len - (m.qos ? 2u : 0u));
  CHECK((m.payload == NULL) == (m.payload_len == 0));
  CHECK(within(m.payload, m.payload_len, pkt));
  size_t size = mqtt_publish_size(m.topic.len, m.qos, m.payload_len);
  CHECK(size == packet_size(pkt->len));
  ENCODE_BOTH(out, size, mqtt_encode_publish(&m, out, cap));
  if (sn->ntopics < KEEP) {
    sn->topic[sn->ntopics] = m.topic.p;
    sn->topic_len[sn->ntopics++] = m.topic.len;
  }
}

/* The gateway's SUBACK: one code per filter, sized by its formula. */
static void check_suback(uint16_t pid, const uint8_t *codes, size_t n) {
  size_t size = 1 + mqtt_varint_size((uint32_t)(2 + n)) + 2 + n;
  uint8_t *b = malloc(size);
  CHECK(b != NULL);
  CHECK(mqtt_encode_suback(pid, codes, n, b, size) == (int)size);
  CHECK(b[0] == MQTT_SUBACK << 4);
  size_t v = 1 + mqtt_varint_size((uint32_t)(2 + n));
  CHECK(b[v] == pid >> 8 && b[v + 1] == (pid & 0xFF));
  CHECK(memcmp(b + v + 2, codes, n) == 0);
  free(b);
}

static void check_filters(const mqtt_packet *pkt, int with_qos, seen *sn) {
  uint16_t pid = 0;
  mqtt_filter_iter it;
  size_t want = 0;
  int rc = with_qos ? mqtt_decode_subscribe(pkt->body, pkt->len, &pid, &it)
                    : mqtt_decode_unsubscribe(pkt->body, pkt->len, &pid, &it);
  CHECK(rc == ref_filters(pkt->body, pkt->len, with_qos, &want));
  if (rc != MQTT_OK) return;
  CHECK(pid != 0);
  /* Walk the list, rebuilding the body from what the iterator says. */
  uint8_t *rebuilt = malloc(pkt->len);
  uint8_t *codes = malloc(want);
  CHECK(rebuilt != NULL && codes != NULL);
  size_t r = 0, n = 0;
  rebuilt[r++] = (uint8_t)(pid >> 8);
  rebuilt[r++] = (uint8_t)pid;
  mqtt_str f;
  uint8_t qos = 0xFF;
  while (mqtt_filter_next(&it, &f, with_qos ? &qos : NULL)) {
    CHECK(n < want && within(f.p, f.len, pkt));
    CHECK(ref_mqtt_utf8(f.p, f.len));
    CHECK(r + 2u + f.len + (with_qos ? 1u : 0u) <= pkt->len);
    rebuilt[r++] = (uint8_t)(f.len >> 8);
    rebuilt[r++] = (uint8_t)f.len;
    memcpy(rebuilt + r, f.p, f.len);
    r += f.len;
    if (with_qos) {
      CHECK(qos <= 2);
      rebuilt[r++] = qos;
    }
    int valid = mqtt_topic_filter_valid(f.p, f.len);
    codes[n++] = valid ? 0 : MQTT_SUBACK_FAILURE;
    if (valid && f.len > 0 && sn->nfilters < KEEP) {
      sn->filter[sn->nfilters] = f.p;
      sn->filter_len[sn->nfilters++] = f.len;
    }
  }
  CHECK(n == want && r == pkt->len && memcmp(rebuilt, pkt->body, r) == 0);
  if (with_qos) check_suback(pid, codes, n);
  /* The client encoders take one non-empty filter. */
  if (n == 1 && pkt->len > 4u + (with_qos ? 1u : 0u)) {
    char *filter = cstr(pkt->body + 4, r - 4 - (with_qos ? 1u : 0u));
    if (with_qos)
      ENCODE_BOTH(out, packet_size(pkt->len),
                  mqtt_encode_subscribe(pid, filter, qos, out, cap));
    else
      ENCODE_BOTH(out, packet_size(pkt->len),
                  mqtt_encode_unsubscribe(pid, filter, out, cap));
    free(filter);
  }
  free(codes);
  free(rebuilt);
}

static void check_packet_id(const mqtt_packet *pkt) {
  uint16_t id = 0;
  int rc = mqtt_decode_packet_id(pkt->body, pkt->len, &id);
  int ok = pkt->len == 2 && (pkt->body[0] | pkt->body[1]) != 0;
  CHECK(rc == (ok ? MQTT_OK : MQTT_EMALFORMED));
  if (rc == MQTT_OK)
    ENCODE_BOTH(out, 4, mqtt_encode_ack(pkt->type, id, out, cap));
}

static void check_connack(const mqtt_packet *pkt) {
  int sp = -1;
  uint8_t code = 0xFF;
  int rc = mqtt_decode_connack(pkt->body, pkt->len, &sp, &code);
  /* MQTT-3.2.2-4: a refusal carries Session Present 0. */
  int ok = pkt->len == 2 && pkt->body[0] <= 1 && pkt->body[1] <= 5 &&
           !(pkt->body[0] && pkt->body[1]);
  CHECK(rc == (ok ? MQTT_OK : MQTT_EMALFORMED));
  if (rc == MQTT_OK)
    ENCODE_BOTH(out, 4, mqtt_encode_connack(sp, code, out, cap));
}

/* A packet re-serialised from its parts parses back the same. */
static int one_packet(void *ud, const mqtt_packet *pkt) {
  const mqtt_packet *want = ud;
  CHECK(pkt->type == want->type && pkt->flags == want->flags);
  CHECK(pkt->len == want->len);
  CHECK(pkt->len == 0 || memcmp(pkt->body, want->body, pkt->len) == 0);
  return 0;
}

static void check_reserialised(const mqtt_packet *pkt, uint32_t max_packet) {
  uint8_t hdr[MQTT_FIXED_HEADER_MAX];
  hdr[0] = (uint8_t)(pkt->type << 4 | pkt->flags);
  int v = mqtt_varint_encode(pkt->len, hdr + 1);
  CHECK(v > 0 && (unsigned)v == mqtt_varint_size(pkt->len));
  mqtt_parser p;
  CHECK(mqtt_parser_init(&p, max_packet) == MQTT_OK);
  mqtt_packet want = *pkt;
  CHECK(mqtt_parser_feed(&p, hdr, 1u + (size_t)v, one_packet, &want) ==
        1 + v);
  CHECK(mqtt_parser_idle(&p) == (pkt->len == 0));
  if (pkt->len)
    CHECK(mqtt_parser_feed(&p, pkt->body, pkt->len, one_packet, &want) ==
          (ssize_t)pkt->len);
  CHECK(mqtt_parser_idle(&p) && p.packets == 1);
  mqtt_parser_free(&p);
}

/* Every check that depends only on the packet, done once per input. */
static void check_decoders(const mqtt_packet *pkt, uint32_t max_packet,
                           seen *sn) {
  check_reserialised(pkt, max_packet);
  switch (pkt->type) {
  case MQTT_CONNECT: check_connect(pkt); break;
  case MQTT_CONNACK: check_connack(pkt); break;
  case MQTT_PUBLISH: check_publish(pkt, sn); break;
  case MQTT_SUBSCRIBE: check_filters(pkt, 1, sn); break;
  case MQTT_UNSUBSCRIBE: check_filters(pkt, 0, sn); break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP:
  case MQTT_UNSUBACK: check_packet_id(pkt); break;
  case MQTT_PINGREQ:
  case MQTT_PINGRESP:
  case MQTT_DISCONNECT:
    if (pkt->len == 0)
      ENCODE_BOTH(out, 2, mqtt_encode_empty(pkt->type, out, cap));
    break;
  default: break; /* SUBACK: no decoder, the gateway refuses it */
  }
}

/* ---- parse runs -------------------------------------------------------- */

typedef struct run {
  mqtt_parser *p;
  uint32_t max_packet;
  uint64_t hash; /* FNV-1a over first byte, length and body of each */
  size_t packets;
  size_t stop_at; /* 1-based packet number to stop at; 0 = never */
  int free_at_stop;
  int freed;
  const uint8_t *lo, *hi; /* set for the one-feed run: bodies not copied */
  seen *sn;               /* set for the one-feed run: decode everything */
  ssize_t rc;             /* bytes accepted in total, or the error */
  char detail[sizeof ((mqtt_parser *)0)->error];
} run;

static int on_packet(void *ud, const mqtt_packet *pkt) {
  run *r = ud;
  CHECK(pkt->type >= MQTT_CONNECT && pkt->type <= MQTT_DISCONNECT);
  if (pkt->type == MQTT_PUBLISH)
    CHECK(((pkt->flags >> 1) & 3) != 3);
  else if (pkt->type == MQTT_PUBREL || pkt->type == MQTT_SUBSCRIBE ||
           pkt->type == MQTT_UNSUBSCRIBE)
    CHECK(pkt->flags == 2);
  else
    CHECK(pkt->flags == 0);
  CHECK(pkt->len <= r->max_packet);
  CHECK((pkt->len == 0) == (pkt->body == NULL));
  /* no feeding from inside the callback */
  CHECK(mqtt_parser_feed(r->p, "\xC0\x00", 2, on_packet, r) == MQTT_EINVAL);
  if (r->lo && pkt->len)
    CHECK(pkt->body >= r->lo && pkt->body + pkt->len <= r->hi);
  if (r->sn) check_decoders(pkt, r->max_packet, r->sn);
  uint8_t hdr[5] = {(uint8_t)(pkt->type << 4 | pkt->flags),
                    (uint8_t)(pkt->len >> 24), (uint8_t)(pkt->len >> 16),
                    (uint8_t)(pkt->len >> 8), (uint8_t)pkt->len};
  r->hash = fuzz_fnv(r->hash, hdr, sizeof hdr);
  if (pkt->len) r->hash = fuzz_fnv(r->hash, pkt->body, pkt->len);
  r->packets++;
  if (r->stop_at == 0 || r->packets != r->stop_at) return 0;
  if (r->free_at_stop) {
    mqtt_parser_free(r->p);
    r->freed = 1;
  }
  return 1;
}

static void run_start(run *r, mqtt_parser *p, uint32_t max_packet) {
  memset(r, 0, sizeof *r);
  r->p = p;
  r->max_packet = max_packet;
  r->hash = FUZZ_FNV_START;
  CHECK(mqtt_parser_init(p, max_packet) == MQTT_OK);
}

/* Records how the run ended and checks that an error is sticky. */
static void run_end(run *r, ssize_t rc) {
  r->rc = rc;
  const char *why = mqtt_parser_error(r->p);
  if (rc < 0) {
    CHECK(rc == MQTT_EMALFORMED || rc == MQTT_ETOOBIG);
    CHECK(why != NULL && why[0] != '\0');
    snprintf(r->detail, sizeof r->detail, "%s", why);
    size_t before = r->packets;
    CHECK(mqtt_parser_feed(r->p, "\xC0\x00", 2, on_packet, r) == rc);
    CHECK(r->packets == before);
    CHECK(strcmp(mqtt_parser_error(r->p), r->detail) == 0);
  } else {
    CHECK(why == NULL);
  }
  mqtt_parser_free(r->p);
}

/* Feeds s in the chunks the input asks for, stopping and resuming as
 * r->stop_at says. */
static void feed_chunks(run *r, const uint8_t *s, size_t len,
                        const uint8_t *chunks, size_t k, size_t shift) {
  size_t pos = 0, i = shift;
  ssize_t rc = 0;
  while (pos < len) {
    size_t n = k ? (size_t)chunks[i++ % k] + 1 : 1;
    if (n > len - pos) n = len - pos;
    size_t off = 0;
    while (off < n) { /* resume after a stop within this chunk */
      rc = mqtt_parser_feed(r->p, s + pos + off, n - off, on_packet, r);
      if (rc < 0) break;
      CHECK((size_t)rc <= n - off);
      off += (size_t)rc;
      if (off < n || (r->stop_at && r->packets == r->stop_at)) {
        CHECK(r->stop_at != 0 && r->packets == r->stop_at);
        r->stop_at = 0;
        if (r->freed) {
          CHECK(mqtt_parser_feed(r->p, "\xC0\x00", 2, on_packet, r) ==
                MQTT_EINVAL);
          CHECK(mqtt_parser_init(r->p, r->max_packet) == MQTT_OK);
          r->freed = 0;
        }
        CHECK(mqtt_parser_idle(r->p));
      }
    }
    if (rc < 0) break;
    pos += n;
  }
  run_end(r, rc < 0 ? rc : (ssize_t)pos);
}

static void check_topics(const seen *sn) {
  for (size_t i = 0; i < sn->nfilters; i++) {
    if (count_levels(sn->filter[i], sn->filter_len[i]) >= REF_MAX_LEVELS)
      continue;
    for (size_t j = 0; j < sn->ntopics; j++) {
      if (count_levels(sn->topic[j], sn->topic_len[j]) >= REF_MAX_LEVELS)
        continue;
      CHECK(mqtt_topic_match(sn->filter[i], sn->filter_len[i], sn->topic[j],
                             sn->topic_len[j]) ==
            ref_match(sn->filter[i], sn->filter_len[i], sn->topic[j],
                      sn->topic_len[j]));
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const uint8_t cfg = data[0];
  const size_t k = data[1] % 16u;
  if (size < 2 + k) return 0;
  const uint8_t *chunks = data + 2;
  const uint8_t *s = data + 2 + k;
  const size_t len = size - 2 - k;
  const uint32_t max_packet = max_packets[cfg & 3];

  /* reference: one feed, every packet decoded */
  mqtt_parser p;
  seen sn;
  memset(&sn, 0, sizeof sn);
  run whole;
  run_start(&whole, &p, max_packet);
  whole.lo = s;
  whole.hi = s + len;
  whole.sn = &sn;
  ssize_t rc = mqtt_parser_feed(&p, s, len, on_packet, &whole);
  CHECK(rc < 0 || (size_t)rc == len);
  run_end(&whole, rc);
  check_topics(&sn);

  run chunked;
  run_start(&chunked, &p, max_packet);
  feed_chunks(&chunked, s, len, chunks, k, 0);

  run stopped;
  run_start(&stopped, &p, max_packet);
  stopped.stop_at = (cfg >> 2) & 7;
  stopped.free_at_stop = (cfg >> 5) & 1;
  feed_chunks(&stopped, s, len, chunks, k, 1);

  const run *runs[2] = {&chunked, &stopped};
  for (int i = 0; i < 2; i++) {
    CHECK(runs[i]->rc == whole.rc);
    CHECK(runs[i]->packets == whole.packets);
    CHECK(runs[i]->hash == whole.hash);
    CHECK(strcmp(runs[i]->detail, whole.detail) == 0);
  }

  size_t n = len < 256 ? len : 256;
  CHECK(mqtt_utf8_valid(s, n) == ref_mqtt_utf8(s, n));
  return 0;
}
