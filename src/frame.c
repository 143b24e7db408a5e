/*
 * Frame codec: encoder, payload rules and the incremental parser. The wire
 * format and its rationale are documented in include/vigil/frame.h.
 *
 * Parser states:
 *
 *          +----------- frame delivered (or empty payload) ----------+
 *          v                                                         |
 *   HEADER --8 header bytes, all valid--> PAYLOAD --need bytes in--> +
 *      |                                     |
 *      +-- bad header byte / length ---------+-- bad content, ENOMEM --> FAILED
 *
 * FAILED is sticky (err and detail are kept); vigil_frame_parser_free()
 * also parks the parser in FAILED, with err VIGIL_ECLOSED.
 *
 * Invariants: in HEADER, small[0..hdr_len) holds the header bytes seen so
 * far and each has passed its check; in PAYLOAD, have < need (a complete
 * payload is delivered at once) and the gathered bytes live in small[]
 * when need <= 8, else in buf (buf_cap >= need).
 */
#include "vigil.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SSIZE_MAX /* only POSIX defines it */
#define SSIZE_MAX ((ssize_t)(SIZE_MAX / 2))
#endif

enum { ST_HEADER = 0, ST_PAYLOAD = 1, ST_FAILED = 2 };

/* Smallest heap buffer: below this, rounding up costs nothing worth
 * saving and avoids regrowing through 16, 32... */
#define MIN_BUF 64u

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

const char *vigil_frame_type_name(int type) {
  switch (type) {
  case VIGIL_FRAME_HELLO: return "HELLO";
  case VIGIL_FRAME_PING: return "PING";
  case VIGIL_FRAME_PONG: return "PONG";
  case VIGIL_FRAME_DATA: return "DATA";
  case VIGIL_FRAME_GOODBYE: return "GOODBYE";
  }
  return "UNKNOWN";
}

static const char *const goodbye_names[VIGIL_GOODBYE__COUNT] = {
    [VIGIL_GOODBYE_NORMAL] = "normal",
    [VIGIL_GOODBYE_GOING_AWAY] = "going_away",
    [VIGIL_GOODBYE_SHUTDOWN] = "shutdown",
    [VIGIL_GOODBYE_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
    [VIGIL_GOODBYE_IDLE_TIMEOUT] = "idle_timeout",
    [VIGIL_GOODBYE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [VIGIL_GOODBYE_PROTOCOL_ERROR] = "protocol_error",
    [VIGIL_GOODBYE_TAKEOVER] = "takeover",
    [VIGIL_GOODBYE_TAKEOVER_REJECTED] = "takeover_rejected",
    [VIGIL_GOODBYE_IDENTITY_BANNED] = "identity_banned",
    [VIGIL_GOODBYE_OVERLOADED] = "overloaded",
    [VIGIL_GOODBYE_TOO_MANY_PINGS] = "too_many_pings",
};

const char *vigil_goodbye_name(unsigned code) {
  if (code < VIGIL_GOODBYE__COUNT)
    return goodbye_names[code];
  if (code >= VIGIL_GOODBYE_APPLICATION && code <= 0xFFFFu)
    return "application";
  return "unknown";
}

unsigned vigil_goodbye_for_reason(vigil_reason r) {
  switch (r) {
  case VIGIL_REASON_HEARTBEAT_TIMEOUT:
  case VIGIL_REASON_KEEPALIVE_TIMEOUT:
  case VIGIL_REASON_USER_TIMEOUT: return VIGIL_GOODBYE_HEARTBEAT_TIMEOUT;
  case VIGIL_REASON_IDLE_TIMEOUT: return VIGIL_GOODBYE_IDLE_TIMEOUT;
  case VIGIL_REASON_HANDSHAKE_TIMEOUT: return VIGIL_GOODBYE_HANDSHAKE_TIMEOUT;
  case VIGIL_REASON_SHUTDOWN: return VIGIL_GOODBYE_SHUTDOWN;
  case VIGIL_REASON_TAKEOVER: return VIGIL_GOODBYE_TAKEOVER;
  case VIGIL_REASON_TAKEOVER_REJECTED: return VIGIL_GOODBYE_TAKEOVER_REJECTED;
  case VIGIL_REASON_IDENTITY_BANNED: return VIGIL_GOODBYE_IDENTITY_BANNED;
  case VIGIL_REASON_PROTOCOL_ERROR: return VIGIL_GOODBYE_PROTOCOL_ERROR;
  case VIGIL_REASON_PING_FLOOD: return VIGIL_GOODBYE_TOO_MANY_PINGS;
  default: return VIGIL_GOODBYE_NORMAL;
  }
}

/* ------------------------------------------------------------------------ */
/* Payload rules, shared by the encoder and the parser                      */
/* ------------------------------------------------------------------------ */

static int type_known(unsigned type) {
  return type >= VIGIL_FRAME_HELLO && type <= VIGIL_FRAME_GOODBYE;
}

/* 1 if a v1 receiver accepts a payload of len bytes for a known type,
 * max_frame aside. */
static int type_len_ok(unsigned type, uint64_t len) {
  switch (type) {
  case VIGIL_FRAME_HELLO: return len >= 1 && len <= VIGIL_FRAME_IDENTITY_MAX;
  case VIGIL_FRAME_PING:
  case VIGIL_FRAME_PONG: return len == 0 || len == VIGIL_FRAME_TOKEN_SIZE;
  case VIGIL_FRAME_GOODBYE:
    return len >= VIGIL_FRAME_GOODBYE_MIN && len <= VIGIL_FRAME_GOODBYE_MAX;
  default: return len <= VIGIL_FRAME_MAX_FRAME_MAX;
  }
}

/* 1 if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0; /* overlong */
      if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90; /* overlong */
      if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
      return 0;
    }
    if (len - i - 1 < n) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k <= n; k++)
      if ((s[i + k] & 0xC0) != 0x80) return 0;
    i += n + 1;
  }
  return 1;
}

/* NULL if a complete payload meets its type's content rules, else a
 * static description of the first fault. Lengths are checked already. */
static const char *content_fault(unsigned type, const uint8_t *p, size_t len) {
  if (type == VIGIL_FRAME_HELLO) {
    if (memchr(p, 0, len)) return "HELLO identity contains a NUL byte";
  } else if (type == VIGIL_FRAME_GOODBYE) {
    const uint8_t *text = p + 2;
    size_t tlen = len - 2;
    if (memchr(text, 0, tlen)) return "GOODBYE text contains a NUL byte";
    if (!utf8_valid(text, tlen)) return "GOODBYE text is not valid UTF-8";
  }
  return NULL;
}

static uint32_t get_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

size_t vigil_frame_header_size(void) { return VIGIL_FRAME_HEADER_SIZE; }

static void put_header(uint8_t *o, unsigned type, uint32_t len) {
  o[0] = VIGIL_FRAME_MAGIC;
  o[1] = VIGIL_FRAME_VERSION;
  o[2] = (uint8_t)type;
  o[3] = 0;
  o[4] = (uint8_t)(len >> 24);
  o[5] = (uint8_t)(len >> 16);
  o[6] = (uint8_t)(len >> 8);
  o[7] = (uint8_t)len;
}

/* Checks what both encoders share, for writing `wrote` bytes: VIGIL_OK or
 * the error to return. */
static int check_encode(unsigned type, size_t len, const void *out,
                        size_t cap, size_t wrote) {
  if (!out || !type_known(type) || !type_len_ok(type, len))
    return VIGIL_EINVAL;
  return cap < wrote ? VIGIL_EOVERFLOW : VIGIL_OK;
}

int vigil_frame_encode(vigil_frame_type type, const void *payload, size_t len,
                       void *out, size_t cap) {
  if (!payload && len > 0) return VIGIL_EINVAL;
  /* len is bounded by type_len_ok before the sum is used */
  size_t total = len <= VIGIL_FRAME_MAX_FRAME_MAX ? VIGIL_FRAME_SIZE(len) : 0;
  int rc = check_encode((unsigned)type, len, out, cap, total);
  if (rc != VIGIL_OK) return rc;
  if (len > 0 && content_fault((unsigned)type, payload, len))
    return VIGIL_EINVAL;
  put_header(out, (unsigned)type, (uint32_t)len);
  if (len > 0)
    memcpy((uint8_t *)out + VIGIL_FRAME_HEADER_SIZE, payload, len);
  return (int)total;
}

int vigil_frame_encode_header(vigil_frame_type type, size_t len, void *out,
                              size_t cap) {
  if (type == VIGIL_FRAME_HELLO || type == VIGIL_FRAME_GOODBYE)
    return VIGIL_EINVAL;
  int rc = check_encode((unsigned)type, len, out, cap, VIGIL_FRAME_HEADER_SIZE);
  if (rc != VIGIL_OK) return rc;
  put_header(out, (unsigned)type, (uint32_t)len);
  return (int)VIGIL_FRAME_HEADER_SIZE;
}

int vigil_frame_encode_goodbye(unsigned code, const char *text, void *out,
                               size_t cap) {
  uint8_t payload[VIGIL_FRAME_GOODBYE_MAX];
  size_t tlen = text ? strlen(text) : 0;
  if (code > 0xFFFFu || tlen > VIGIL_FRAME_GOODBYE_TEXT_MAX)
    return VIGIL_EINVAL;
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (tlen > 0) memcpy(payload + 2, text, tlen);
  return vigil_frame_encode(VIGIL_FRAME_GOODBYE, payload, tlen + 2, out, cap);
}

int vigil_frame_goodbye_decode(const uint8_t *payload, size_t len,
                               unsigned *code, const char **text,
                               size_t *text_len) {
  if (!payload || len < VIGIL_FRAME_GOODBYE_MIN) return VIGIL_EPROTO;
  if (code) *code = (unsigned)payload[0] << 8 | payload[1];
  if (text) *text = (const char *)payload + 2;
  if (text_len) *text_len = len - 2;
  return VIGIL_OK;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

int vigil_frame_parser_init(vigil_frame_parser *p, uint32_t max_frame) {
  if (!p || max_frame < VIGIL_FRAME_MAX_FRAME_MIN ||
      max_frame > VIGIL_FRAME_MAX_FRAME_MAX)
    return VIGIL_EINVAL;
  memset(p, 0, sizeof *p);
  p->max_frame = max_frame;
  p->state = ST_HEADER;
  return VIGIL_OK;
}

static void release_buf(vigil_frame_parser *p) {
  free(p->buf);
  p->buf = NULL;
  p->buf_cap = 0;
}

/* Parks p in FAILED with err and a formatted description; returns err.
 * The buffer goes at once: a failed stream never needs it again. */
__attribute__((format(printf, 3, 4))) static int
fail(vigil_frame_parser *p, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->detail, sizeof p->detail, fmt, ap);
  va_end(ap);
  p->err = err;
  p->state = ST_FAILED;
  release_buf(p);
  return err;
}

/* Checks the first n (1..8) header bytes at h, each field as soon as its
 * bytes are present. VIGIL_OK, or VIGIL_EPROTO with p failed. */
static int check_header(vigil_frame_parser *p, const uint8_t *h, size_t n) {
  if (h[0] != VIGIL_FRAME_MAGIC) {
    const char *hint = "";
    if (h[0] == 0x16)
      hint = " (TLS handshake?)";
    else if (h[0] >= 0x20 && h[0] < 0x7F)
      hint = " (HTTP or other text?)";
    return fail(p, VIGIL_EPROTO, "bad magic byte 0x%02X, expected 0x%02X%s",
                h[0], VIGIL_FRAME_MAGIC, hint);
  }
  if (n < 2) return VIGIL_OK;
  if (h[1] != VIGIL_FRAME_VERSION)
    return fail(p, VIGIL_EPROTO, "version %u is not supported (we speak %u)",
                h[1], VIGIL_FRAME_VERSION);
  if (n < 3) return VIGIL_OK;
  if (!type_known(h[2]))
    return fail(p, VIGIL_EPROTO, "frame type 0x%02X is unknown", h[2]);
  if (n < 4) return VIGIL_OK;
  if (h[3] != 0)
    return fail(p, VIGIL_EPROTO, "flags 0x%02X are set; version 1 allows none",
                h[3]);
  if (n < VIGIL_FRAME_HEADER_SIZE) return VIGIL_OK;

  uint32_t len = get_be32(h + 4);
  /* DATA has no rule of its own: max_frame (<= the encoder's cap) bounds it */
  if (h[2] != VIGIL_FRAME_DATA && !type_len_ok(h[2], len)) {
    switch (h[2]) {
    case VIGIL_FRAME_HELLO:
      return fail(p, VIGIL_EPROTO,
                  "HELLO length %u is invalid: identity must be 1..%u bytes",
                  len, VIGIL_FRAME_IDENTITY_MAX);
    case VIGIL_FRAME_GOODBYE:
      return fail(p, VIGIL_EPROTO,
                  "GOODBYE length %u is invalid: must be %u..%u bytes", len,
                  VIGIL_FRAME_GOODBYE_MIN, VIGIL_FRAME_GOODBYE_MAX);
    default: /* PING, PONG */
      return fail(p, VIGIL_EPROTO,
                  "%s length %u is invalid: token must be 0 or %u bytes",
                  vigil_frame_type_name(h[2]), len, VIGIL_FRAME_TOKEN_SIZE);
    }
  }
  if (len > p->max_frame)
    return fail(p, VIGIL_EPROTO, "payload length %u exceeds max_frame %u", len,
                p->max_frame);
  return VIGIL_OK;
}

/* Where the payload of the current frame is gathered: small[] for tokens,
 * else the heap buffer, grown (only ever before its first byte is
 * gathered) to the next power of two. NULL with p failed on ENOMEM. */
static uint8_t *gather_buffer(vigil_frame_parser *p) {
  if (p->need <= sizeof p->small) return p->small;
  if (p->buf_cap >= p->need) return p->buf;
  uint32_t cap = MIN_BUF;
  while (cap < p->need) cap <<= 1;
  if (cap > p->max_frame) cap = p->max_frame;
  release_buf(p); /* have == 0 here: nothing to keep */
  p->buf = malloc(cap);
  if (!p->buf) {
    fail(p, VIGIL_ENOMEM, "out of memory buffering a %u-byte payload",
         p->need);
    return NULL;
  }
  p->buf_cap = cap;
  p->allocs++;
  return p->buf;
}

/* Checks the content of the complete current payload and hands the frame
 * to cb. Returns 0 to go on, 1 to stop (cb asked, or freed p), or
 * VIGIL_EPROTO. The parser is reset for the next header before cb runs,
 * so cb sees a parser at a frame boundary. */
static int deliver(vigil_frame_parser *p, const uint8_t *payload,
                   vigil_frame_cb cb, void *user_data) {
  vigil_frame f = {(vigil_frame_type)p->type, p->need,
                   p->need ? payload : NULL};
  const char *fault = f.len ? content_fault(p->type, payload, f.len) : NULL;
  if (fault) return fail(p, VIGIL_EPROTO, "%s", fault);
  p->state = ST_HEADER;
  p->hdr_len = 0;
  p->need = 0;
  p->have = 0;
  p->frames++;
  p->in_callback = 1;
  int stop = cb(user_data, &f);
  p->in_callback = 0;
  return stop != 0 || p->err != 0;
}

ssize_t vigil_frame_parser_feed(vigil_frame_parser *p, const void *data,
                                size_t len, vigil_frame_cb cb,
                                void *user_data) {
  if (!p || !cb || (!data && len > 0) || len > (size_t)SSIZE_MAX)
    return VIGIL_EINVAL;
  if (p->in_callback) return VIGIL_ESTATE;
  if (p->err) return p->err;

  const uint8_t *in = data;
  size_t pos = 0;
  while (pos < len) {
    size_t avail = len - pos;
    int rc;
    if (p->state == ST_HEADER) {
      const uint8_t *h;
      if (p->hdr_len == 0 && avail >= VIGIL_FRAME_HEADER_SIZE) {
        h = in + pos; /* whole header in the input: check it in place */
        rc = check_header(p, h, VIGIL_FRAME_HEADER_SIZE);
        pos += VIGIL_FRAME_HEADER_SIZE;
      } else {
        size_t take = VIGIL_FRAME_HEADER_SIZE - p->hdr_len;
        if (take > avail) take = avail;
        memcpy(p->small + p->hdr_len, in + pos, take);
        p->hdr_len = (uint8_t)(p->hdr_len + take);
        pos += take;
        h = p->small;
        rc = check_header(p, h, p->hdr_len);
        if (rc == VIGIL_OK && p->hdr_len < VIGIL_FRAME_HEADER_SIZE)
          break; /* input exhausted mid-header */
      }
      if (rc != VIGIL_OK) return rc;
      p->type = h[2];
      p->need = get_be32(h + 4);
      p->have = 0;
      p->state = ST_PAYLOAD;
      if (p->need == 0) {
        rc = deliver(p, NULL, cb, user_data);
        if (rc < 0) return rc;
        if (rc > 0) return (ssize_t)pos;
      }
      continue;
    }

    /* ST_PAYLOAD */
    if (p->have == 0 && avail >= p->need) {
      const uint8_t *payload = in + pos; /* zero-copy */
      pos += p->need;
      rc = deliver(p, payload, cb, user_data);
    } else {
      uint8_t *dst = gather_buffer(p);
      if (!dst) return p->err;
      size_t take = p->need - p->have;
      if (take > avail) take = avail;
      memcpy(dst + p->have, in + pos, take);
      p->have += (uint32_t)take;
      pos += take;
      if (p->have < p->need) break; /* input exhausted mid-payload */
      rc = deliver(p, dst, cb, user_data);
    }
    if (rc < 0) return rc;
    if (rc > 0) return (ssize_t)pos;
  }
  return (ssize_t)pos;
}

const char *vigil_frame_parser_error(const vigil_frame_parser *p) {
  if (!p || (p->err != VIGIL_EPROTO && p->err != VIGIL_ENOMEM)) return NULL;
  return p->detail;
}

int vigil_frame_parser_idle(const vigil_frame_parser *p) {
  return p && p->err == 0 && p->state == ST_HEADER && p->hdr_len == 0;
}

size_t vigil_frame_parser_held(const vigil_frame_parser *p) {
  return p && p->buf ? p->buf_cap : 0;
}

size_t vigil_frame_parser_trim(vigil_frame_parser *p) {
  if (!p || !p->buf) return 0;
  if (p->state == ST_PAYLOAD && p->need > sizeof p->small && p->have > 0)
    return 0; /* a split frame is being gathered into buf */
  size_t released = p->buf_cap;
  release_buf(p);
  return released;
}

void vigil_frame_parser_free(vigil_frame_parser *p) {
  if (!p) return;
  release_buf(p);
  p->err = VIGIL_ECLOSED;
  p->state = ST_FAILED;
  p->detail[0] = '\0';
}
