/*
 * A pure MQTT 3.1.1 packet codec (OASIS standard, 29 October 2014): the
 * fixed header and its Remaining Length, an incremental packet parser,
 * decoders for the packets a server receives and encoders for the packets
 * either side sends. No sockets, no loop, no clock; used by the example
 * gateway (server side) and the device simulator (client side).
 *
 * Fixed header (section 2.2):
 *
 *   byte 1      type (bits 7-4) | flags (bits 3-0)
 *   bytes 2..5  Remaining Length: 1 to 4 bytes, 7 bits each, least
 *               significant group first, bit 7 = "another byte follows";
 *               at most 268,435,455 (0xFF 0xFF 0xFF 0x7F)
 *
 * The flags are fixed per type (MQTT-2.2.2-1/2): 0x2 for PUBREL,
 * SUBSCRIBE and UNSUBSCRIBE, 0 for every other type but PUBLISH, whose
 * flags are DUP, QoS (2 bits, 3 is malformed) and RETAIN. Anything else is
 * malformed and the receiver closes the connection: MQTT has no way to
 * resynchronise a byte stream.
 *
 * Strings (1.5.3) are a u16 big-endian length and that many bytes of
 * well-formed UTF-8 holding no U+0000 (MQTT-1.5.3-1/2); a decoder that
 * finds a bad one reports the packet as malformed.
 */
#ifndef MQTT_CODEC_H
#define MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Control packet types (the high nibble of byte 1). 0 and 15 are reserved. */
typedef enum mqtt_type {
  MQTT_CONNECT = 1,
  MQTT_CONNACK = 2,
  MQTT_PUBLISH = 3,
  MQTT_PUBACK = 4,
  MQTT_PUBREC = 5,
  MQTT_PUBREL = 6,
  MQTT_PUBCOMP = 7,
  MQTT_SUBSCRIBE = 8,
  MQTT_SUBACK = 9,
  MQTT_UNSUBSCRIBE = 10,
  MQTT_UNSUBACK = 11,
  MQTT_PINGREQ = 12,
  MQTT_PINGRESP = 13,
  MQTT_DISCONNECT = 14,
} mqtt_type;

/* "CONNECT", "PUBLISH", ...; "RESERVED" for 0, 15 and anything else. */
const char *mqtt_type_name(int type);

/* Codec results. Decoders return MQTT_OK or one of the negative codes. */
typedef enum mqtt_status {
  MQTT_OK = 0,
  MQTT_EMALFORMED = -1, /* violates the wire format: close, no reply */
  MQTT_EPROTONAME = -2, /* CONNECT protocol name is not MQTT (or MQIsdp):
                           not an MQTT client, close without CONNACK
                           (MQTT-3.1.2-1) */
  MQTT_ELEVEL = -3,     /* CONNECT protocol level is not 4: CONNACK 0x01 */
  MQTT_EBADID = -4,     /* client identifier not acceptable: CONNACK 0x02 */
  MQTT_ENOSPC = -5,     /* encoder: output buffer too small */
  MQTT_ENOMEM = -6,     /* parser: could not buffer a split packet */
  MQTT_EINVAL = -7,     /* bad argument (NULL, value out of range) */
  MQTT_ETOOBIG = -8,    /* packet larger than the parser's max_packet */
} mqtt_status;

/* "ok", "malformed", ...; never NULL. */
const char *mqtt_status_name(int status);

/* CONNACK return codes (3.2.2.3). */
enum {
  MQTT_CONNACK_ACCEPTED = 0x00,
  MQTT_CONNACK_BAD_LEVEL = 0x01,      /* unacceptable protocol version */
  MQTT_CONNACK_ID_REJECTED = 0x02,    /* identifier rejected */
  MQTT_CONNACK_UNAVAILABLE = 0x03,    /* server unavailable */
  MQTT_CONNACK_BAD_CREDENTIALS = 0x04,
  MQTT_CONNACK_NOT_AUTHORIZED = 0x05,
};

/* SUBACK return code for a refused topic filter (3.9.3). */
#define MQTT_SUBACK_FAILURE 0x80u

#define MQTT_PROTOCOL_LEVEL 4u        /* MQTT 3.1.1 */
#define MQTT_MAX_REMAINING 268435455u /* largest Remaining Length */
#define MQTT_VARINT_MAX 4u            /* Remaining Length bytes, at most */
#define MQTT_FIXED_HEADER_MAX 5u      /* type byte + 4 length bytes */
/* Longest client identifier this codec accepts. The standard requires
 * servers to take 1..23 characters [0-9a-zA-Z] and allows more; 128 bytes
 * fits UUIDs, MAC-derived and prefixed device names, and keeps every id
 * usable as a log field and a vigil identity. */
#define MQTT_CLIENT_ID_MAX 128u

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */
/* ------------------------------------------------------------------------ */

/* A string inside a packet: not NUL-terminated, valid while the packet is. */
typedef struct mqtt_str {
  const uint8_t *p;
  uint16_t len;
} mqtt_str;

/* 1 if s[0..len) is well-formed UTF-8 (no overlong forms, no surrogates
 * U+D800..U+DFFF, nothing above U+10FFFF) without U+0000; else 0. */
int mqtt_utf8_valid(const uint8_t *s, size_t len);

/* ------------------------------------------------------------------------ */
/* Remaining Length                                                          */
/* ------------------------------------------------------------------------ */

/* Writes v (0..MQTT_MAX_REMAINING) as 1..4 bytes to out; returns the byte
 * count, or MQTT_EINVAL if v is too large. */
int mqtt_varint_encode(uint32_t v, uint8_t out[MQTT_VARINT_MAX]);

/* Bytes mqtt_varint_encode writes for v (0 if v is too large). */
unsigned mqtt_varint_size(uint32_t v);

/* ------------------------------------------------------------------------ */
/* Incremental parser                                                        */
/* ------------------------------------------------------------------------ */

/* One complete packet. body is the variable header + payload (Remaining
 * Length bytes), valid only during the callback; NULL when len is 0. */
typedef struct mqtt_packet {
  uint8_t type;  /* mqtt_type */
  uint8_t flags; /* low nibble of byte 1 */
  uint32_t len;
  const uint8_t *body;
} mqtt_packet;

/* Called once per complete packet in stream order. Return 0 to go on,
 * non-zero to make mqtt_parser_feed() return right after this packet. */
typedef int (*mqtt_packet_cb)(void *user_data, const mqtt_packet *pkt);

/*
 * Parser state; embed it, fields are private. A body that arrives whole in
 * one feed is delivered from the caller's bytes; only a body split across
 * feeds is copied into a heap buffer, sized to that body and released as
 * soon as it is delivered, so an idle connection holds no buffer.
 */
typedef struct mqtt_parser {
  uint32_t max_packet; /* largest Remaining Length accepted */
  uint64_t packets;    /* delivered so far */
  int err;             /* sticky: 0 or a negative mqtt_status */
  uint8_t state;       /* type byte, length, body, failed */
  uint8_t first;       /* byte 1 of the packet being received */
  uint8_t len_bytes;   /* Remaining Length bytes seen */
  uint8_t in_callback;
  uint32_t remaining;  /* Remaining Length of the packet being received */
  uint32_t have;       /* body bytes gathered in buf */
  uint8_t *buf;
  char error[96];
} mqtt_parser;

/* Prepares p for packets whose Remaining Length is at most max_packet
 * (1..MQTT_MAX_REMAINING). Allocates nothing. MQTT_OK or MQTT_EINVAL. */
int mqtt_parser_init(mqtt_parser *p, uint32_t max_packet);

/*
 * Parses len bytes, delivering each packet they complete to cb. Packets
 * may be split anywhere and one call may hold many. Returns:
 *   len              every byte accepted (a partial packet is kept);
 *   0..len-1         cb returned non-zero: the bytes up to the end of the
 *                    packet it was given;
 *   MQTT_EMALFORMED  reserved type, wrong fixed-header flags, or a fifth
 *                    Remaining Length byte; checked byte by byte, before
 *                    the body is read;
 *   MQTT_ETOOBIG     Remaining Length above max_packet, known as soon as
 *                    the length is;
 *   MQTT_ENOMEM      the split-body buffer could not be allocated;
 *   MQTT_EINVAL      p or cb NULL, data NULL with len > 0, or a call from
 *                    inside cb.
 * Errors other than EINVAL are sticky; mqtt_parser_error() says what was
 * wrong.
 */
ssize_t mqtt_parser_feed(mqtt_parser *p, const void *data, size_t len,
                         mqtt_packet_cb cb, void *user_data);

/* Why the stream was rejected, e.g. "SUBSCRIBE with flags 0x0 (must be
 * 0x2)"; NULL if it was not. */
const char *mqtt_parser_error(const mqtt_parser *p);

/* 1 if no packet is partly received. */
int mqtt_parser_idle(const mqtt_parser *p);

/* Releases the buffer; the parser must be initialised again before use. */
void mqtt_parser_free(mqtt_parser *p);

/* ------------------------------------------------------------------------ */
/* Decoders (server side)                                                    */
/* ------------------------------------------------------------------------ */

typedef struct mqtt_connect {
  mqtt_str protocol;   /* "MQTT" (3.1.1) or "MQIsdp" (3.1) */
  uint8_t level;       /* 4 for 3.1.1 */
  uint8_t flags;       /* raw Connect Flags byte */
  uint16_t keepalive;  /* seconds; 0 = no keep-alive */
  int clean_session;
  mqtt_str client_id;  /* may be empty (clean_session 1 only) */
  int will;            /* a Will Message is present */
  uint8_t will_qos;
  int will_retain;
  mqtt_str will_topic;
  const uint8_t *will_msg; /* binary, may be empty */
  uint16_t will_len;
  int has_username;
  mqtt_str username;
  int has_password;
  const uint8_t *password; /* binary */
  uint16_t password_len;
} mqtt_connect;

/*
 * Decodes a CONNECT body (3.1). Checks, in the order a server must act on
 * them: protocol name (MQTT_EPROTONAME), level (MQTT_ELEVEL, answered with
 * CONNACK 0x01), reserved flag bit and the Will/User Name/Password flag
 * rules (MQTT-3.1.2-3, -11, -13, -14, -15, -22: MQTT_EMALFORMED), every
 * string and field the flags announce, no trailing bytes, then the client
 * identifier: empty with clean_session 0 (MQTT-3.1.3-8), longer than
 * MQTT_CLIENT_ID_MAX, or holding a control character (U+0001..U+001F,
 * U+007F..U+009F, which 1.5.3 lets servers refuse) gives MQTT_EBADID.
 * On MQTT_ELEVEL and MQTT_EBADID the fields decoded so far are filled in.
 */
int mqtt_decode_connect(const uint8_t *body, uint32_t len, mqtt_connect *out);

typedef struct mqtt_publish {
  uint8_t qos;
  int dup;
  int retain;
  mqtt_str topic;
  uint16_t packet_id;      /* 0 for QoS 0 */
  const uint8_t *payload;  /* may be NULL when payload_len is 0 */
  uint32_t payload_len;
} mqtt_publish;

/* Decodes a PUBLISH given its fixed-header flags (3.3). MQTT_EMALFORMED
 * for QoS 3, DUP with QoS 0 (MQTT-3.3.1-2), an empty, non-UTF-8 or
 * wildcard topic (MQTT-3.3.2-2), a zero packet id (MQTT-2.3.1-1) or a body
 * too short for its fields. */
int mqtt_decode_publish(uint8_t flags, const uint8_t *body, uint32_t len,
                        mqtt_publish *out);

/* Walks the topic filters of a decoded SUBSCRIBE or UNSUBSCRIBE. */
typedef struct mqtt_filter_iter {
  const uint8_t *p;
  const uint8_t *end;
  int with_qos;
} mqtt_filter_iter;

/* Validates a SUBSCRIBE body (3.8): packet id non-zero, at least one
 * filter (MQTT-3.8.3-3), each a UTF-8 string followed by a QoS byte whose
 * reserved bits are 0 and whose QoS is 0..2 (MQTT-3-8.3-4). Wildcard
 * syntax is not checked here (a bad filter is refused in SUBACK, not by
 * closing). Sets *packet_id and an iterator over the filters. */
int mqtt_decode_subscribe(const uint8_t *body, uint32_t len,
                          uint16_t *packet_id, mqtt_filter_iter *it);

/* Same for UNSUBSCRIBE (3.10): packet id, at least one filter
 * (MQTT-3.10.3-2), no QoS bytes. */
int mqtt_decode_unsubscribe(const uint8_t *body, uint32_t len,
                            uint16_t *packet_id, mqtt_filter_iter *it);

/* Next filter of a validated list: returns 1 and the filter (and its
 * requested QoS when qos is not NULL, SUBSCRIBE only), or 0 at the end. */
int mqtt_filter_next(mqtt_filter_iter *it, mqtt_str *filter, uint8_t *qos);

/* Decodes the 2-byte packet id of PUBACK, PUBREC, PUBREL, PUBCOMP or
 * UNSUBACK; MQTT_EMALFORMED if len is not 2 or the id is 0. */
int mqtt_decode_packet_id(const uint8_t *body, uint32_t len, uint16_t *id);

/* Decodes a CONNACK body (client side): exactly 2 bytes, reserved bits of
 * the acknowledge flags 0, return code 0..5, and Session Present 0 when
 * the return code refuses the connection (MQTT-3.2.2-4). */
int mqtt_decode_connack(const uint8_t *body, uint32_t len,
                        int *session_present, uint8_t *return_code);

/* ------------------------------------------------------------------------ */
/* Encoders: return bytes written, MQTT_ENOSPC or MQTT_EINVAL               */
/* ------------------------------------------------------------------------ */

/* CONNACK: session_present (0/1) and a return code (0..5). 4 bytes. */
int mqtt_encode_connack(int session_present, uint8_t return_code,
                        uint8_t *out, size_t cap);

/* PINGREQ, PINGRESP or DISCONNECT: 2 bytes. */
int mqtt_encode_empty(mqtt_type type, uint8_t *out, size_t cap);

/* PUBACK, PUBREC, PUBCOMP, UNSUBACK (flags 0) or PUBREL (flags 0x2) with a
 * non-zero packet id: 4 bytes. */
int mqtt_encode_ack(mqtt_type type, uint16_t packet_id, uint8_t *out,
                    size_t cap);

/* SUBACK with n (>= 1) return codes, each 0..2 or MQTT_SUBACK_FAILURE. */
int mqtt_encode_suback(uint16_t packet_id, const uint8_t *codes, size_t n,
                       uint8_t *out, size_t cap);

/* Bytes a PUBLISH needs, or 0 if it cannot be encoded (too large). */
size_t mqtt_publish_size(size_t topic_len, uint8_t qos, size_t payload_len);

/* PUBLISH: topic must be a valid topic name; packet_id non-zero iff
 * qos > 0; dup only with qos > 0. */
int mqtt_encode_publish(const mqtt_publish *pub, uint8_t *out, size_t cap);

/* What a client puts in CONNECT (this codec's client side is minimal: no
 * Will, optional user name). */
typedef struct mqtt_connect_opts {
  const char *client_id; /* NUL-terminated; "" allowed with clean_session */
  uint16_t keepalive;
  int clean_session;
  const char *username;  /* NULL = none */
} mqtt_connect_opts;

int mqtt_encode_connect(const mqtt_connect_opts *o, uint8_t *out, size_t cap);

/* SUBSCRIBE (one filter) or UNSUBSCRIBE (qos ignored). */
int mqtt_encode_subscribe(uint16_t packet_id, const char *filter, uint8_t qos,
                          uint8_t *out, size_t cap);
int mqtt_encode_unsubscribe(uint16_t packet_id, const char *filter,
                            uint8_t *out, size_t cap);

#endif
