/* MQTT 3.1.1 packet codec; see mqtt_codec.h for the wire rules. */
#include "mqtt_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"

const char *mqtt_type_name(int type) {
  static const char *const names[] = {
      "RESERVED",  "CONNECT",   "CONNACK",  "PUBLISH",     "PUBACK",
      "PUBREC",    "PUBREL",    "PUBCOMP",  "SUBSCRIBE",   "SUBACK",
      "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",    "DISCONNECT",
  };
  if (type < 1 || type > MQTT_DISCONNECT) return "RESERVED";
  return names[type];
}

const char *mqtt_status_name(int status) {
  switch (status) {
  case MQTT_OK: return "ok";
  case MQTT_EMALFORMED: return "malformed";
  case MQTT_EPROTONAME: return "unknown_protocol_name";
  case MQTT_ELEVEL: return "unacceptable_protocol_level";
  case MQTT_EBADID: return "identifier_rejected";
  case MQTT_ENOSPC: return "no_space";
  case MQTT_ENOMEM: return "out_of_memory";
  case MQTT_EINVAL: return "invalid_argument";
  case MQTT_ETOOBIG: return "packet_too_large";
  default: return "unknown";
  }
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (1..4) and its code point,
 * or 0 if the bytes there are ill-formed (RFC 3629 table 3-7). */
static size_t utf8_next(const uint8_t *s, size_t len, uint32_t *cp) {
  uint8_t b = s[0];
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  size_t n;
  uint32_t min, v;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2, min = 0x80, v = b & 0x1Fu;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3, min = 0x800, v = b & 0x0Fu;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4, min = 0x10000, v = b & 0x07u;
  } else {
    return 0; /* continuation byte, overlong lead C0/C1, or F5..FF */
  }
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3Fu);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

int mqtt_utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = utf8_next(s + i, len - i, &cp);
    if (n == 0 || cp == 0) return 0; /* MQTT-1.5.3-1, MQTT-1.5.3-2 */
    i += n;
  }
  return 1;
}

/* 1 if s (valid UTF-8) holds a C0 or C1 control character or DEL. */
static int has_control(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp = 0;
    size_t n = utf8_next(s + i, len - i, &cp);
    if (n == 0) return 1;
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return 1;
    i += n;
  }
  return 0;
}

/* ---- Remaining Length -------------------------------------------------- */

int mqtt_varint_encode(uint32_t v, uint8_t out[MQTT_VARINT_MAX]) {
  if (v > MQTT_MAX_REMAINING) return MQTT_EINVAL;
  int n = 0;
  do {
    uint8_t b = (uint8_t)(v & 0x7F);
    v >>= 7;
    out[n++] = (uint8_t)(v ? b | 0x80 : b);
  } while (v);
  return n;
}

unsigned mqtt_varint_size(uint32_t v) {
  if (v > MQTT_MAX_REMAINING) return 0;
  return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

/* ---- parser ------------------------------------------------------------ */

enum { ST_TYPE = 0, ST_LENGTH = 1, ST_BODY = 2, ST_FAILED = 3 };

/* The fixed-header flags a type must carry (MQTT-2.2.2-1); -1 = PUBLISH. */
static int required_flags(unsigned type) {
  switch (type) {
  case MQTT_PUBLISH: return -1;
  case MQTT_PUBREL:
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE: return 0x2;
  default: return 0;
  }
}

int mqtt_parser_init(mqtt_parser *p, uint32_t max_packet) {
  if (!p || max_packet == 0 || max_packet > MQTT_MAX_REMAINING)
    return MQTT_EINVAL;
  memset(p, 0, sizeof *p);
  p->max_packet = max_packet;
  return MQTT_OK;
}

/* Marks the stream failed with err and a description; returns err. */
static int fail(mqtt_parser *p, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(mqtt_parser *p, int err, const char *fmt, ...) {
  va_list ap;
  p->err = err;
  p->state = ST_FAILED;
  free(p->buf);
  p->buf = NULL;
  va_start(ap, fmt);
  vsnprintf(p->error, sizeof p->error, fmt, ap);
  va_end(ap);
  return err;
}

/* Checks byte 1 of a packet; returns 0 or a sticky error. */
static int check_first(mqtt_parser *p, uint8_t first) {
  unsigned type = first >> 4, flags = first & 0x0Fu;
  if (type == 0 || type == 15)
    return fail(p, MQTT_EMALFORMED, "reserved packet type %u (flags 0x%x)",
                type, flags);
  int want = required_flags(type);
  if (want < 0) {
    if (((flags >> 1) & 3u) == 3u)
      return fail(p, MQTT_EMALFORMED, "PUBLISH with QoS 3 (flags 0x%x)",
                  flags);
    return 0;
  }
  if (flags != (unsigned)want)
    return fail(p, MQTT_EMALFORMED, "%s with flags 0x%x (must be 0x%x)",
                mqtt_type_name((int)type), flags, (unsigned)want);
  return 0;
}

/* Hands one packet to cb; returns cb's verdict. The body buffer (if any)
 * is detached first so cb may free the parser. */
static int deliver(mqtt_parser *p, const uint8_t *body, uint32_t len,
                   mqtt_packet_cb cb, void *ud) {
  mqtt_packet pkt = {(uint8_t)(p->first >> 4), (uint8_t)(p->first & 0x0F),
                     len, len ? body : NULL};
  uint8_t *owned = p->buf == body ? p->buf : NULL;
  if (owned) p->buf = NULL;
  p->state = ST_TYPE;
  p->have = 0;
  p->packets++;
  p->in_callback = 1;
  int stop = cb(ud, &pkt);
  p->in_callback = 0;
  free(owned);
  return stop;
}

ssize_t mqtt_parser_feed(mqtt_parser *p, const void *data, size_t len,
                         mqtt_packet_cb cb, void *user_data) {
  if (!p || !cb || (!data && len)) return MQTT_EINVAL;
  if (p->in_callback) return MQTT_EINVAL;
  if (p->err) return p->err;
  const uint8_t *d = data;
  size_t i = 0;
  while (i < len) {
    switch (p->state) {
    case ST_TYPE:
      p->first = d[i++];
      if (check_first(p, p->first)) return p->err;
      p->remaining = 0;
      p->len_bytes = 0;
      p->state = ST_LENGTH;
      break;
    case ST_LENGTH: {
      uint8_t b = d[i++];
      p->remaining |= (uint32_t)(b & 0x7Fu) << (7u * p->len_bytes);
      p->len_bytes++;
      if (b & 0x80u) {
        if (p->len_bytes == MQTT_VARINT_MAX)
          return fail(p, MQTT_EMALFORMED,
                      "Remaining Length longer than %u bytes",
                      MQTT_VARINT_MAX);
        break;
      }
      if (p->remaining > p->max_packet)
        return fail(p, MQTT_ETOOBIG, "%s of %u bytes exceeds max_packet %u",
                    mqtt_type_name(p->first >> 4), (unsigned)p->remaining,
                    (unsigned)p->max_packet);
      size_t avail = len - i;
      if (avail >= p->remaining) { /* whole body here: no copy */
        const uint8_t *body = d + i;
        i += p->remaining;
        if (deliver(p, body, p->remaining, cb, user_data)) return (ssize_t)i;
        break;
      }
      p->buf = malloc(p->remaining);
      if (!p->buf)
        return fail(p, MQTT_ENOMEM, "no memory for a %u-byte packet",
                    (unsigned)p->remaining);
      memcpy(p->buf, d + i, avail);
      p->have = (uint32_t)avail;
      i = len;
      p->state = ST_BODY;
      break;
    }
    case ST_BODY: {
      size_t take = p->remaining - p->have;
      if (take > len - i) take = len - i;
      memcpy(p->buf + p->have, d + i, take);
      p->have += (uint32_t)take;
      i += take;
      if (p->have == p->remaining &&
          deliver(p, p->buf, p->remaining, cb, user_data))
        return (ssize_t)i;
      break;
    }
    default:
      return p->err ? p->err : MQTT_EINVAL;
    }
  }
  return (ssize_t)len;
}

const char *mqtt_parser_error(const mqtt_parser *p) {
  return p && p->err ? p->error : NULL;
}

int mqtt_parser_idle(const mqtt_parser *p) { return p->state == ST_TYPE; }

void mqtt_parser_free(mqtt_parser *p) {
  if (!p) return;
  free(p->buf);
  p->buf = NULL;
  p->state = ST_FAILED;
  p->err = MQTT_EINVAL;
  snprintf(p->error, sizeof p->error, "parser freed");
}

/* ---- decoders ---------------------------------------------------------- */

/* A bounds-checked reader over a packet body. */
typedef struct reader {
  const uint8_t *p;
  const uint8_t *end;
} reader;

/* The parser passes an empty body as NULL; NULL + 0 is undefined
 * behaviour in C, so an empty reader points at a static empty string. */
static reader rd_init(const uint8_t *body, uint32_t len) {
  if (!body) body = (const uint8_t *)"";
  reader r = {body, body + len};
  return r;
}

static int rd_u8(reader *r, uint8_t *v) {
  if (r->p >= r->end) return 0;
  *v = *r->p++;
  return 1;
}

static int rd_u16(reader *r, uint16_t *v) {
  if (r->end - r->p < 2) return 0;
  *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
  r->p += 2;
  return 1;
}

/* Length-prefixed binary data. */
static int rd_bin(reader *r, const uint8_t **data, uint16_t *len) {
  if (!rd_u16(r, len)) return 0;
  if (r->end - r->p < *len) return 0;
  *data = r->p;
  r->p += *len;
  return 1;
}

/* Length-prefixed UTF-8 string (MQTT-1.5.3-1/2). */
static int rd_str(reader *r, mqtt_str *s) {
  return rd_bin(r, &s->p, &s->len) && mqtt_utf8_valid(s->p, s->len);
}

static int str_is(const mqtt_str *s, const char *lit) {
  size_t n = strlen(lit);
  return s->len == n && memcmp(s->p, lit, n) == 0;
}

int mqtt_decode_connect(const uint8_t *body, uint32_t len, mqtt_connect *o) {
  if (!o || (!body && len)) return MQTT_EINVAL;
  memset(o, 0, sizeof *o);
  reader r = rd_init(body, len);
  if (!rd_str(&r, &o->protocol)) return MQTT_EMALFORMED;
  int v31 = str_is(&o->protocol, "MQIsdp");
  if (!v31 && !str_is(&o->protocol, "MQTT")) return MQTT_EPROTONAME;
  if (!rd_u8(&r, &o->level)) return MQTT_EMALFORMED;
  /* MQTT 3.1 clients understand CONNACK 0x01, so they are told, not cut. */
  if (v31 || o->level != MQTT_PROTOCOL_LEVEL) return MQTT_ELEVEL;
  if (!rd_u8(&r, &o->flags) || !rd_u16(&r, &o->keepalive))
    return MQTT_EMALFORMED;
  uint8_t f = o->flags;
  if (f & 0x01u) return MQTT_EMALFORMED; /* reserved, MQTT-3.1.2-3 */
  o->clean_session = (f >> 1) & 1u;
  o->will = (f >> 2) & 1u;
  o->will_qos = (f >> 3) & 3u;
  o->will_retain = (f >> 5) & 1u;
  o->has_password = (f >> 6) & 1u;
  o->has_username = (f >> 7) & 1u;
  if (!o->will && (o->will_qos || o->will_retain))
    return MQTT_EMALFORMED; /* MQTT-3.1.2-13, -15 */
  if (o->will_qos == 3) return MQTT_EMALFORMED; /* MQTT-3.1.2-14 */
  if (o->has_password && !o->has_username)
    return MQTT_EMALFORMED; /* MQTT-3.1.2-22 */
  if (!rd_str(&r, &o->client_id)) return MQTT_EMALFORMED;
  if (o->will) {
    if (!rd_str(&r, &o->will_topic) ||
        !mqtt_topic_name_valid(o->will_topic.p, o->will_topic.len) ||
        !rd_bin(&r, &o->will_msg, &o->will_len))
      return MQTT_EMALFORMED;
  }
  if (o->has_username && !rd_str(&r, &o->username)) return MQTT_EMALFORMED;
  if (o->has_password && !rd_bin(&r, &o->password, &o->password_len))
    return MQTT_EMALFORMED;
  if (r.p != r.end) return MQTT_EMALFORMED; /* trailing bytes */
  const mqtt_str *id = &o->client_id;
  if (id->len == 0 && !o->clean_session) return MQTT_EBADID; /* 3.1.3-8 */
  if (id->len > MQTT_CLIENT_ID_MAX || has_control(id->p, id->len))
    return MQTT_EBADID;
  return MQTT_OK;
}

int mqtt_decode_publish(uint8_t flags, const uint8_t *body, uint32_t len,
                        mqtt_publish *o) {
  if (!o || (!body && len)) return MQTT_EINVAL;
  memset(o, 0, sizeof *o);
  o->qos = (flags >> 1) & 3u;
  o->dup = (flags >> 3) & 1u;
  o->retain = flags & 1u;
  if (o->qos == 3 || (o->dup && o->qos == 0)) return MQTT_EMALFORMED;
  reader r = rd_init(body, len);
  if (!rd_str(&r, &o->topic) ||
      !mqtt_topic_name_valid(o->topic.p, o->topic.len))
    return MQTT_EMALFORMED;
  if (o->qos > 0 && (!rd_u16(&r, &o->packet_id) || o->packet_id == 0))
    return MQTT_EMALFORMED;
  o->payload_len = (uint32_t)(r.end - r.p);
  o->payload = o->payload_len ? r.p : NULL;
  return MQTT_OK;
}

/* Shared by SUBSCRIBE and UNSUBSCRIBE: validates the whole filter list. */
static int decode_filters(const uint8_t *body, uint32_t len, int with_qos,
                          uint16_t *packet_id, mqtt_filter_iter *it) {
  if (!packet_id || !it || (!body && len)) return MQTT_EINVAL;
  reader r = rd_init(body, len);
  if (!rd_u16(&r, packet_id) || *packet_id == 0) return MQTT_EMALFORMED;
  it->p = r.p;
  it->end = r.end;
  it->with_qos = with_qos;
  size_t n = 0;
  while (r.p < r.end) {
    mqtt_str f;
    uint8_t qos;
    if (!rd_str(&r, &f)) return MQTT_EMALFORMED;
    if (with_qos && (!rd_u8(&r, &qos) || (qos & 0xFCu) || qos == 3))
      return MQTT_EMALFORMED;
    n++;
  }
  return n ? MQTT_OK : MQTT_EMALFORMED;
}

int mqtt_decode_subscribe(const uint8_t *body, uint32_t len,
                          uint16_t *packet_id, mqtt_filter_iter *it) {
  return decode_filters(body, len, 1, packet_id, it);
}

int mqtt_decode_unsubscribe(const uint8_t *body, uint32_t len,
                            uint16_t *packet_id, mqtt_filter_iter *it) {
  return decode_filters(body, len, 0, packet_id, it);
}

int mqtt_filter_next(mqtt_filter_iter *it, mqtt_str *filter, uint8_t *qos) {
  reader r = {it->p, it->end};
  uint8_t q = 0;
  if (r.p >= r.end || !rd_bin(&r, &filter->p, &filter->len)) return 0;
  if (it->with_qos && !rd_u8(&r, &q)) return 0;
  if (qos) *qos = q;
  it->p = r.p;
  return 1;
}

int mqtt_decode_packet_id(const uint8_t *body, uint32_t len, uint16_t *id) {
  if (!id || len != 2 || !body) return MQTT_EMALFORMED;
  *id = (uint16_t)((body[0] << 8) | body[1]);
  return *id ? MQTT_OK : MQTT_EMALFORMED;
}

int mqtt_decode_connack(const uint8_t *body, uint32_t len,
                        int *session_present, uint8_t *return_code) {
  if (len != 2 || !body) return MQTT_EMALFORMED;
  if (body[0] & 0xFEu || body[1] > MQTT_CONNACK_NOT_AUTHORIZED)
    return MQTT_EMALFORMED;
  if (body[0] && body[1]) return MQTT_EMALFORMED; /* MQTT-3.2.2-4 */
  if (session_present) *session_present = body[0] & 1u;
  if (return_code) *return_code = body[1];
  return MQTT_OK;
}

/* ---- encoders ---------------------------------------------------------- */

/* A bounds-checked writer; `ok` drops to 0 on the first overflow. */
typedef struct writer {
  uint8_t *p;
  size_t left;
  size_t n;
  int ok;
} writer;

static void wr_bytes(writer *w, const void *b, size_t n) {
  if (!w->ok || n > w->left) {
    w->ok = 0;
    return;
  }
  if (n) memcpy(w->p, b, n);
  w->p += n;
  w->left -= n;
  w->n += n;
}

static void wr_u8(writer *w, uint8_t v) { wr_bytes(w, &v, 1); }

static void wr_u16(writer *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  wr_bytes(w, b, 2);
}

static void wr_str(writer *w, const void *s, size_t n) {
  wr_u16(w, (uint16_t)n);
  wr_bytes(w, s, n);
}

/* Writes byte 1 and the Remaining Length. */
static void wr_header(writer *w, unsigned type, unsigned flags, uint32_t rem) {
  uint8_t v[MQTT_VARINT_MAX];
  int n = mqtt_varint_encode(rem, v);
  wr_u8(w, (uint8_t)(type << 4 | flags));
  wr_bytes(w, v, (size_t)n);
}

static int wr_done(const writer *w) {
  return w->ok ? (int)w->n : MQTT_ENOSPC;
}

static writer wr_init(uint8_t *out, size_t cap) {
  writer w = {out, out ? cap : 0, 0, 1};
  return w;
}

int mqtt_encode_connack(int session_present, uint8_t rc, uint8_t *out,
                        size_t cap) {
  if (rc > MQTT_CONNACK_NOT_AUTHORIZED || (session_present && rc))
    return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_CONNACK, 0, 2);
  wr_u8(&w, session_present ? 1 : 0);
  wr_u8(&w, rc);
  return wr_done(&w);
}

int mqtt_encode_empty(mqtt_type type, uint8_t *out, size_t cap) {
  if (type != MQTT_PINGREQ && type != MQTT_PINGRESP && type != MQTT_DISCONNECT)
    return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, type, 0, 0);
  return wr_done(&w);
}

int mqtt_encode_ack(mqtt_type type, uint16_t packet_id, uint8_t *out,
                    size_t cap) {
  unsigned flags = 0;
  switch (type) {
  case MQTT_PUBREL: flags = 2; break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBCOMP:
  case MQTT_UNSUBACK: break;
  default: return MQTT_EINVAL;
  }
  if (packet_id == 0) return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, type, flags, 2);
  wr_u16(&w, packet_id);
  return wr_done(&w);
}

int mqtt_encode_suback(uint16_t packet_id, const uint8_t *codes, size_t n,
                       uint8_t *out, size_t cap) {
  if (packet_id == 0 || !codes || n == 0 || n > MQTT_MAX_REMAINING - 2)
    return MQTT_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (codes[i] > 2 && codes[i] != MQTT_SUBACK_FAILURE) return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_SUBACK, 0, (uint32_t)(2 + n));
  wr_u16(&w, packet_id);
  wr_bytes(&w, codes, n);
  return wr_done(&w);
}

size_t mqtt_publish_size(size_t topic_len, uint8_t qos, size_t payload_len) {
  if (topic_len > UINT16_MAX || qos > 2) return 0;
  size_t rem = 2 + topic_len + (qos ? 2u : 0u);
  if (payload_len > MQTT_MAX_REMAINING - rem) return 0;
  rem += payload_len;
  return 1 + mqtt_varint_size((uint32_t)rem) + rem;
}

int mqtt_encode_publish(const mqtt_publish *pub, uint8_t *out, size_t cap) {
  if (!pub || !mqtt_topic_name_valid(pub->topic.p, pub->topic.len) ||
      pub->qos > 2 || (pub->qos == 0) != (pub->packet_id == 0) ||
      (pub->dup && pub->qos == 0) || (!pub->payload && pub->payload_len))
    return MQTT_EINVAL;
  size_t size = mqtt_publish_size(pub->topic.len, pub->qos, pub->payload_len);
  if (size == 0 || size > INT32_MAX) return MQTT_EINVAL;
  size_t rem = 2 + pub->topic.len + (pub->qos ? 2u : 0u) + pub->payload_len;
  unsigned flags = (pub->dup ? 8u : 0u) | (unsigned)pub->qos << 1 |
                   (pub->retain ? 1u : 0u);
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_PUBLISH, flags, (uint32_t)rem);
  wr_str(&w, pub->topic.p, pub->topic.len);
  if (pub->qos) wr_u16(&w, pub->packet_id);
  wr_bytes(&w, pub->payload, pub->payload_len);
  return wr_done(&w);
}

int mqtt_encode_connect(const mqtt_connect_opts *o, uint8_t *out, size_t cap) {
  if (!o || !o->client_id) return MQTT_EINVAL;
  size_t id_len = strlen(o->client_id);
  size_t user_len = o->username ? strlen(o->username) : 0;
  if (id_len > UINT16_MAX || user_len > UINT16_MAX) return MQTT_EINVAL;
  if (id_len == 0 && !o->clean_session) return MQTT_EINVAL;
  uint32_t rem = (uint32_t)(6 + 1 + 1 + 2 + 2 + id_len +
                            (o->username ? 2 + user_len : 0));
  uint8_t flags = (uint8_t)((o->clean_session ? 0x02u : 0u) |
                            (o->username ? 0x80u : 0u));
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_CONNECT, 0, rem);
  wr_str(&w, "MQTT", 4);
  wr_u8(&w, MQTT_PROTOCOL_LEVEL);
  wr_u8(&w, flags);
  wr_u16(&w, o->keepalive);
  wr_str(&w, o->client_id, id_len);
  if (o->username) wr_str(&w, o->username, user_len);
  return wr_done(&w);
}

int mqtt_encode_subscribe(uint16_t packet_id, const char *filter, uint8_t qos,
                          uint8_t *out, size_t cap) {
  if (packet_id == 0 || !filter || qos > 2) return MQTT_EINVAL;
  size_t n = strlen(filter);
  if (n == 0 || n > UINT16_MAX) return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_SUBSCRIBE, 2, (uint32_t)(2 + 2 + n + 1));
  wr_u16(&w, packet_id);
  wr_str(&w, filter, n);
  wr_u8(&w, qos);
  return wr_done(&w);
}

int mqtt_encode_unsubscribe(uint16_t packet_id, const char *filter,
                            uint8_t *out, size_t cap) {
  if (packet_id == 0 || !filter) return MQTT_EINVAL;
  size_t n = strlen(filter);
  if (n == 0 || n > UINT16_MAX) return MQTT_EINVAL;
  writer w = wr_init(out, cap);
  wr_header(&w, MQTT_UNSUBSCRIBE, 2, (uint32_t)(2 + 2 + n));
  wr_u16(&w, packet_id);
  wr_str(&w, filter, n);
  return wr_done(&w);
}
