/*
 * Frame codec: wire layout, encoder checks, incremental parsing across any
 * split, protocol errors with their descriptions, stop-from-callback, and
 * buffer reuse (no allocation per frame).
 */
#include "rowtest.h"
#include "vigil.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9E3779B97F4A7C15ull; }
static uint32_t rng(void) { /* xorshift64*: deterministic per seed */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Records delivered frames as a byte log: type, u32 len, payload. Two
 * parses delivered the same frames iff their logs are equal. */
typedef struct rec {
  size_t n;
  uint8_t *log;
  size_t log_len, log_cap;
  size_t stop_at;             /* return non-zero on frame #stop_at (1-based) */
  const uint8_t *lo, *hi;     /* input range, to count zero-copy payloads */
  size_t zero_copy;
  vigil_frame_parser *parser; /* for callbacks that act on the parser */
  int action;                 /* 1 = free parser, 2 = re-entrant feed */
  ssize_t reentry_rc;
  const uint8_t *buf_seen;    /* parser buffer when a payload came from it */
  size_t buf_changes;
} rec;

static void rec_init(rec *r) { memset(r, 0, sizeof *r); }
static void rec_free(rec *r) { free(r->log); }

static void log_put(rec *r, const void *b, size_t n) {
  if (r->log_len + n > r->log_cap) {
    r->log_cap = (r->log_len + n) * 2 + 64;
    r->log = realloc(r->log, r->log_cap);
    assert_non_null(r->log);
  }
  memcpy(r->log + r->log_len, b, n);
  r->log_len += n;
}

static int on_frame(void *ud, const vigil_frame *f) {
  rec *r = ud;
  uint8_t hdr[5] = {(uint8_t)f->type, (uint8_t)(f->len >> 24),
                    (uint8_t)(f->len >> 16), (uint8_t)(f->len >> 8),
                    (uint8_t)f->len};
  if (f->len == 0) assert_null(f->payload);
  else assert_non_null(f->payload);
  log_put(r, hdr, sizeof hdr);
  if (f->len) log_put(r, f->payload, f->len);
  if (f->len && f->payload >= r->lo && f->payload < r->hi) r->zero_copy++;
  if (r->parser && r->parser->buf && f->payload == r->parser->buf) {
    if (r->buf_seen && r->buf_seen != f->payload) r->buf_changes++;
    r->buf_seen = f->payload;
  }
  r->n++;
  if (r->action == 1) {
    vigil_frame_parser_free(r->parser);
    return 0; /* the parser must stop by itself */
  }
  if (r->action == 2)
    r->reentry_rc = vigil_frame_parser_feed(r->parser, "x", 1, on_frame, r);
  return r->stop_at && r->n == r->stop_at;
}

/* Appends one encoded frame to buf at *len (cap checked). */
static void put(uint8_t *buf, size_t *len, size_t cap, vigil_frame_type t,
                const void *payload, size_t plen) {
  int n = vigil_frame_encode(t, payload, plen, buf + *len, cap - *len);
  assert_int_equal(n, (int)VIGIL_FRAME_SIZE(plen));
  *len += (size_t)n;
}

/* A random but valid frame of a random type appended to buf. */
static void put_random(uint8_t *buf, size_t *len, size_t cap,
                       uint32_t max_data) {
  uint8_t p[1024];
  assert_true(max_data < sizeof p);
  size_t n;
  vigil_frame_type t = (vigil_frame_type)(1 + rng() % 5);
  switch (t) {
  case VIGIL_FRAME_HELLO:
    n = 1 + rng() % VIGIL_FRAME_IDENTITY_MAX;
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(1 + rng() % 255);
    break;
  case VIGIL_FRAME_PING:
  case VIGIL_FRAME_PONG:
    n = (rng() & 1) ? VIGIL_FRAME_TOKEN_SIZE : 0;
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng();
    break;
  case VIGIL_FRAME_GOODBYE:
    n = 2 + rng() % 40;
    p[0] = (uint8_t)rng();
    p[1] = (uint8_t)rng();
    for (size_t i = 2; i < n; i++) p[i] = (uint8_t)('a' + rng() % 26);
    break;
  default:
    n = rng() % (max_data + 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng();
    break;
  }
  put(buf, len, cap, t, p, n);
}

/* Feeds data in chunks whose sizes come from next_chunk; returns the last
 * feed result (or the total consumed when every feed took all). */
static ssize_t feed_chunks(vigil_frame_parser *p, const uint8_t *data,
                           size_t len, rec *r, size_t (*next_chunk)(void)) {
  size_t pos = 0;
  while (pos < len) {
    size_t n = next_chunk();
    if (n > len - pos) n = len - pos;
    ssize_t rc = vigil_frame_parser_feed(p, data + pos, n, on_frame, r);
    if (rc < 0) return rc;
    assert_int_equal(rc, n);
    pos += n;
  }
  return (ssize_t)pos;
}

/* A fresh parser (max_frame) fed all of data at once, recording into a
 * fresh r (payloads inside data count as zero-copy); it takes it all. */
static void parse_whole(vigil_frame_parser *p, uint32_t max_frame,
                        const uint8_t *data, size_t len, rec *r) {
  rec_init(r);
  r->lo = data;
  r->hi = data + len;
  assert_int_equal(vigil_frame_parser_init(p, max_frame), VIGIL_OK);
  assert_int_equal(vigil_frame_parser_feed(p, data, len, on_frame, r),
                   (ssize_t)len);
}

/* The same in chunks whose sizes come from next_chunk. */
static void parse_chunked(vigil_frame_parser *p, uint32_t max_frame,
                          const uint8_t *data, size_t len, rec *r,
                          size_t (*next_chunk)(void)) {
  rec_init(r);
  assert_int_equal(vigil_frame_parser_init(p, max_frame), VIGIL_OK);
  assert_int_equal(feed_chunks(p, data, len, r, next_chunk), (ssize_t)len);
}

static size_t chunk_one(void) { return 1; }
static size_t chunk_random(void) { return 1 + rng() % 37; }
static size_t chunk_seven(void) { return 7; }

/* ------------------------------------------------------------------------ */
/* Wire format and encoder                                                  */
/* ------------------------------------------------------------------------ */

static void test_wire_layout_is_pinned(void **state) {
  (void)state;
  const uint8_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t out[32];
  const uint8_t want[16] = {0xF7, 0x01, 0x02, 0x00, 0, 0, 0, 8,
                            1,    2,    3,    4,    5, 6, 7, 8};
  assert_int_equal(vigil_frame_encode(VIGIL_FRAME_PING, tok, 8, out, sizeof out),
                   16);
  assert_memory_equal(out, want, 16);

  const uint8_t bye[11] = {0xF7, 0x01, 0x05, 0x00, 0, 0, 0, 3, 0x00, 0x07, 'x'};
  assert_int_equal(vigil_frame_encode_goodbye(VIGIL_GOODBYE_TAKEOVER, "x", out,
                                              sizeof out),
                   11);
  assert_memory_equal(out, bye, 11);

  /* length is big-endian over all four bytes */
  assert_int_equal(vigil_frame_encode_header(VIGIL_FRAME_DATA, 0x010203, out,
                                             8),
                   8);
  const uint8_t big[8] = {0xF7, 0x01, 0x04, 0x00, 0x00, 0x01, 0x02, 0x03};
  assert_memory_equal(out, big, 8);
  assert_int_equal(vigil_frame_header_size(), 8);
  assert_int_equal(sizeof(vigil_frame_parser) % 8, 0);
}

/* Encodes type/payload, feeds it whole, expects exactly that frame back. */
static void round_trip(vigil_frame_type t, const uint8_t *payload, size_t n,
                       uint32_t max_frame) {
  size_t cap = VIGIL_FRAME_SIZE(n);
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  assert_int_equal(vigil_frame_encode(t, payload, n, buf, cap), (int)cap);
  vigil_frame_parser p;
  rec r;
  parse_whole(&p, max_frame, buf, cap, &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.log_len, 5 + n);
  assert_int_equal(r.log[0], t);
  assert_int_equal(((size_t)r.log[1] << 24 | (size_t)r.log[2] << 16 |
                    (size_t)r.log[3] << 8 | r.log[4]),
                   n);
  if (n) assert_memory_equal(r.log + 5, payload, n);
  assert_int_equal(r.zero_copy, n ? 1 : 0);
  assert_int_equal(p.allocs, 0);
  assert_true(vigil_frame_parser_idle(&p));
  assert_int_equal(p.frames, 1);

  /* the same frame byte by byte */
  rec r2;
  parse_chunked(&p, max_frame, buf, cap, &r2, chunk_one);
  assert_int_equal(r2.n, 1);
  assert_int_equal(r2.log_len, r.log_len);
  assert_memory_equal(r2.log, r.log, r.log_len);
  vigil_frame_parser_free(&p);
  rec_free(&r);
  rec_free(&r2);
  free(buf);
}

static void test_round_trip_every_type_and_size(void **state) {
  (void)state;
  const uint32_t max = VIGIL_FRAME_MAX_FRAME_DEFAULT;
  uint8_t *big = malloc(max);
  assert_non_null(big);
  for (uint32_t i = 0; i < max; i++) big[i] = (uint8_t)(i * 31 + 7);
  uint8_t ident[255];
  for (int i = 0; i < 255; i++) ident[i] = (uint8_t)(1 + i % 255);
  uint8_t bye[255] = {0x80, 0x01};
  memset(bye + 2, 'z', sizeof bye - 2);

  round_trip(VIGIL_FRAME_HELLO, ident, 1, max);
  round_trip(VIGIL_FRAME_HELLO, ident, 2, max);
  round_trip(VIGIL_FRAME_HELLO, ident, 255, max);
  round_trip(VIGIL_FRAME_PING, NULL, 0, max);
  round_trip(VIGIL_FRAME_PING, big, 8, max);
  round_trip(VIGIL_FRAME_PONG, NULL, 0, max);
  round_trip(VIGIL_FRAME_PONG, big, 8, max);
  round_trip(VIGIL_FRAME_DATA, NULL, 0, max);
  round_trip(VIGIL_FRAME_DATA, big, 1, max);
  round_trip(VIGIL_FRAME_DATA, big, max, max);
  round_trip(VIGIL_FRAME_DATA, big, 16, VIGIL_FRAME_MAX_FRAME_MIN);
  round_trip(VIGIL_FRAME_GOODBYE, bye, 2, max);
  round_trip(VIGIL_FRAME_GOODBYE, bye, 3, max);
  round_trip(VIGIL_FRAME_GOODBYE, bye, 255, max);
  free(big);
}

static const uint8_t zero_token[8], zero_bytes[16];
static const uint8_t hello_nul[3] = {'a', 0, 'b'};
static uint8_t out300[300];

/* What the encoders refuse: bad types and payloads a v1 receiver would
 * reject. */
static void test_encoder_errors(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int type;
    const void *payload;
    size_t len;
    uint8_t *out;
  } frames[] = {
      {"type 0", 0, NULL, 0, out300},
      {"type 6", 6, NULL, 0, out300},
      {"type 255", 255, NULL, 0, out300},
      {"HELLO empty", VIGIL_FRAME_HELLO, NULL, 0, out300},
      {"HELLO of 256 bytes", VIGIL_FRAME_HELLO, out300, 256, out300},
      {"HELLO with a NUL", VIGIL_FRAME_HELLO, hello_nul, 3, out300},
      {"PING token of 4", VIGIL_FRAME_PING, zero_token, 4, out300},
      {"PONG token of 16", VIGIL_FRAME_PONG, zero_bytes, 16, out300},
      {"GOODBYE of 1 byte", VIGIL_FRAME_GOODBYE, zero_token, 1, out300},
      {"GOODBYE text with a NUL", VIGIL_FRAME_GOODBYE, zero_bytes, 3,
       out300},
      {"DATA without its payload", VIGIL_FRAME_DATA, NULL, 1, out300},
      {"no output buffer", VIGIL_FRAME_DATA, zero_token, 0, NULL},
  };
  for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
    vt_row_int_equal(frames[i].name,
                     vigil_frame_encode(frames[i].type, frames[i].payload,
                                        frames[i].len, frames[i].out, 300),
                     VIGIL_EINVAL);
  static const struct {
    const char *name;
    int type;
    size_t len, cap;
  } headers[] = {
      {"header of type 9", 9, 0, 300},
      {"DATA header over the largest max_frame", VIGIL_FRAME_DATA,
       VIGIL_FRAME_MAX_FRAME_MAX + 1u, 8},
      {"DATA header of SIZE_MAX", VIGIL_FRAME_DATA, SIZE_MAX, 8},
      {"HELLO header", VIGIL_FRAME_HELLO, 3, 8},
      {"GOODBYE header", VIGIL_FRAME_GOODBYE, 3, 8},
  };
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
    vt_row_int_equal(headers[i].name,
                     vigil_frame_encode_header(headers[i].type,
                                               headers[i].len, out300,
                                               headers[i].cap),
                     VIGIL_EINVAL);
  assert_int_equal(vigil_frame_encode_goodbye(0x10000, NULL, out300, 300),
                   VIGIL_EINVAL);
  char longtext[255];
  memset(longtext, 'a', 254);
  longtext[254] = 0;
  assert_int_equal(vigil_frame_encode_goodbye(1, longtext, out300, 300),
                   VIGIL_EINVAL);
  longtext[253] = 0; /* exactly VIGIL_FRAME_GOODBYE_TEXT_MAX */
  assert_int_equal(vigil_frame_encode_goodbye(1, longtext, out300, 300), 263);
}

/* Every too-small cap: EOVERFLOW and nothing written. */
static void test_encoder_overflow(void **state) {
  (void)state;
  uint8_t out[300];
  for (size_t cap = 0; cap < 16; cap++) {
    memset(out, 0xAA, sizeof out);
    assert_int_equal(
        vigil_frame_encode(VIGIL_FRAME_PING, zero_token, 8, out, cap),
        VIGIL_EOVERFLOW);
    assert_int_equal(out[0], 0xAA);
  }
  assert_int_equal(
      vigil_frame_encode(VIGIL_FRAME_PING, zero_token, 8, out, 16), 16);
  assert_int_equal(vigil_frame_encode_header(VIGIL_FRAME_DATA, 100, out, 7),
                   VIGIL_EOVERFLOW);
  assert_int_equal(vigil_frame_encode_goodbye(1, "bye", out, 12),
                   VIGIL_EOVERFLOW);
}

static void test_goodbye_text_must_be_utf8(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int ok;
  } cases[] = {
      {"", 1},
      {"plain ascii", 1},
      {"h\xC3\xA9llo", 1},            /* é */
      {"\xE2\x82\xAC", 1},            /* € */
      {"\xF0\x9D\x84\x9E", 1},        /* U+1D11E */
      {"\xF4\x8F\xBF\xBF", 1},        /* U+10FFFF */
      {"\xC0\x80", 0},                /* overlong NUL */
      {"\xC1\xBF", 0},                /* overlong */
      {"\xE0\x80\x80", 0},            /* overlong */
      {"\xED\xA0\x80", 0},            /* surrogate */
      {"\xF0\x80\x80\x80", 0},        /* overlong */
      {"\xF4\x90\x80\x80", 0},        /* above U+10FFFF */
      {"\xF5\x80\x80\x80", 0},
      {"\xE2\x82", 0},                /* truncated */
      {"\x80", 0},                    /* lone continuation */
      {"a\xE2\x28\xA1", 0},           /* bad continuation */
      {"\xF7", 0},                    /* our magic byte */
  };
  uint8_t out[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int n = vigil_frame_encode_goodbye(3, cases[i].text, out, sizeof out);
    if (cases[i].ok) {
      assert_int_equal(n, 10 + (int)strlen(cases[i].text));
      unsigned code = 99;
      const char *text = NULL;
      size_t tl = 99;
      assert_int_equal(vigil_frame_goodbye_decode(out + 8, (size_t)n - 8, &code,
                                                  &text, &tl),
                       VIGIL_OK);
      assert_int_equal(code, 3);
      assert_int_equal(tl, strlen(cases[i].text));
      assert_memory_equal(text, cases[i].text, tl);
    } else {
      assert_int_equal(n, VIGIL_EINVAL);
    }
  }
  assert_int_equal(vigil_frame_goodbye_decode(out, 1, NULL, NULL, NULL),
                   VIGIL_EPROTO);
}

static void test_names(void **state) {
  (void)state;
  static const struct {
    int type;
    const char *name;
  } types[] = {
      {VIGIL_FRAME_HELLO, "HELLO"}, {VIGIL_FRAME_PING, "PING"},
      {VIGIL_FRAME_PONG, "PONG"},   {VIGIL_FRAME_DATA, "DATA"},
      {VIGIL_FRAME_GOODBYE, "GOODBYE"}, {0, "UNKNOWN"},
      {-1, "UNKNOWN"},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    assert_string_equal(vigil_frame_type_name(types[i].type), types[i].name);
  for (unsigned c = 0; c < VIGIL_GOODBYE__COUNT; c++) {
    assert_non_null(vigil_goodbye_name(c));
    assert_string_not_equal(vigil_goodbye_name(c), "unknown");
  }
  static const struct {
    unsigned code;
    const char *name;
  } codes[] = {
      {VIGIL_GOODBYE_NORMAL, "normal"},
      {VIGIL_GOODBYE_GOING_AWAY, "going_away"},
      {VIGIL_GOODBYE_HEARTBEAT_TIMEOUT, "heartbeat_timeout"},
      {VIGIL_GOODBYE_OVERLOADED, "overloaded"},
      {VIGIL_GOODBYE_TOO_MANY_PINGS, "too_many_pings"},
      {VIGIL_GOODBYE__COUNT, "unknown"},
      {0x8000, "application"},
      {0xFFFF, "application"},
      {0x10000, "unknown"},
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    assert_string_equal(vigil_goodbye_name(codes[i].code), codes[i].name);

  static const struct {
    vigil_reason r;
    unsigned code;
  } map[] = {
      {VIGIL_REASON_CLOSED_BY_HOST, VIGIL_GOODBYE_NORMAL},
      {VIGIL_REASON_HEARTBEAT_TIMEOUT, VIGIL_GOODBYE_HEARTBEAT_TIMEOUT},
      {VIGIL_REASON_IDLE_TIMEOUT, VIGIL_GOODBYE_IDLE_TIMEOUT},
      {VIGIL_REASON_HANDSHAKE_TIMEOUT, VIGIL_GOODBYE_HANDSHAKE_TIMEOUT},
      {VIGIL_REASON_SHUTDOWN, VIGIL_GOODBYE_SHUTDOWN},
      {VIGIL_REASON_PING_FLOOD, VIGIL_GOODBYE_TOO_MANY_PINGS},
      {VIGIL_REASON_TAKEOVER, VIGIL_GOODBYE_TAKEOVER},
      {VIGIL_REASON_TAKEOVER_REJECTED, VIGIL_GOODBYE_TAKEOVER_REJECTED},
      {VIGIL_REASON_IDENTITY_BANNED, VIGIL_GOODBYE_IDENTITY_BANNED},
      {VIGIL_REASON_PROTOCOL_ERROR, VIGIL_GOODBYE_PROTOCOL_ERROR},
      {VIGIL_REASON_OUTPUT_OVERFLOW, VIGIL_GOODBYE_NORMAL},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    assert_int_equal(vigil_goodbye_for_reason(map[i].r), map[i].code);
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

static void test_init_bounds(void **state) {
  (void)state;
  vigil_frame_parser p;
  assert_int_equal(vigil_frame_parser_init(&p, 15), VIGIL_EINVAL);
  assert_int_equal(vigil_frame_parser_init(&p, VIGIL_FRAME_MAX_FRAME_MAX + 1),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_frame_parser_init(NULL, 1024), VIGIL_EINVAL);
  assert_int_equal(vigil_frame_parser_init(&p, 16), VIGIL_OK);
  assert_int_equal(vigil_frame_parser_init(&p, VIGIL_FRAME_MAX_FRAME_MAX),
                   VIGIL_OK);
  assert_int_equal(p.max_frame, VIGIL_FRAME_MAX_FRAME_MAX);
  assert_int_equal(vigil_frame_parser_held(&p), 0);
  assert_true(vigil_frame_parser_idle(&p));
  assert_null(vigil_frame_parser_error(&p));
  rec r;
  rec_init(&r);
  assert_int_equal(vigil_frame_parser_feed(&p, NULL, 0, on_frame, &r), 0);
  assert_int_equal(vigil_frame_parser_feed(&p, NULL, 3, on_frame, &r),
                   VIGIL_EINVAL);
  assert_int_equal(vigil_frame_parser_feed(&p, "x", 1, NULL, &r), VIGIL_EINVAL);
  assert_int_equal(vigil_frame_parser_feed(NULL, "x", 1, on_frame, &r),
                   VIGIL_EINVAL);
  /* EINVAL is not sticky */
  assert_null(vigil_frame_parser_error(&p));
  vigil_frame_parser_free(&p);
  vigil_frame_parser_free(&p); /* twice is fine */
  assert_int_equal(vigil_frame_parser_feed(&p, "x", 1, on_frame, &r),
                   VIGIL_ECLOSED);
  assert_int_equal(r.n, 0);
}

/* Whole-buffer, byte-at-a-time and random-split parses of one long mixed
 * stream deliver the same frames in the same order. */
static void test_any_split_delivers_the_same_frames(void **state) {
  (void)state;
  const size_t cap = 1u << 20;
  uint8_t *s = malloc(cap);
  assert_non_null(s);
  size_t len = 0;
  rng_seed(42);
  for (int i = 0; i < 600; i++) put_random(s, &len, cap, 700);

  vigil_frame_parser p;
  rec whole;
  parse_whole(&p, 1024, s, len, &whole);
  assert_int_equal(whole.n, 600);
  assert_int_equal(p.frames, 600);
  assert_int_equal(p.allocs, 0); /* everything zero-copy */
  assert_int_equal(vigil_frame_parser_held(&p), 0);
  assert_true(vigil_frame_parser_idle(&p));
  vigil_frame_parser_free(&p);

  rec bytes;
  parse_chunked(&p, 1024, s, len, &bytes, chunk_one);
  assert_int_equal(bytes.n, whole.n);
  assert_int_equal(bytes.log_len, whole.log_len);
  assert_memory_equal(bytes.log, whole.log, whole.log_len);
  assert_true(vigil_frame_parser_idle(&p));
  vigil_frame_parser_free(&p);

  for (uint64_t seed = 1; seed <= 20; seed++) {
    rec split;
    rng_seed(seed);
    parse_chunked(&p, 1024, s, len, &split, chunk_random);
    assert_int_equal(split.n, whole.n);
    assert_int_equal(split.log_len, whole.log_len);
    assert_memory_equal(split.log, whole.log, whole.log_len);
    vigil_frame_parser_free(&p);
    rec_free(&split);
  }
  rec_free(&whole);
  rec_free(&bytes);
  free(s);
}

static void test_many_frames_in_one_read(void **state) {
  (void)state;
  uint8_t s[16 * 1000 + 8];
  size_t len = 0;
  for (uint32_t i = 0; i < 1000; i++) {
    uint8_t tok[8] = {0, 0, 0, 0, (uint8_t)(i >> 24), (uint8_t)(i >> 16),
                      (uint8_t)(i >> 8), (uint8_t)i};
    put(s, &len, sizeof s, VIGIL_FRAME_PING, tok, 8);
  }
  put(s, &len, sizeof s, VIGIL_FRAME_PONG, NULL, 0);
  vigil_frame_parser p;
  rec r;
  parse_whole(&p, 64, s, len, &r);
  assert_int_equal(r.n, 1001);
  assert_int_equal(r.zero_copy, 1000);
  /* tokens in order: the 500th frame carries 499 */
  const uint8_t *f500 = r.log + 499 * 13;
  assert_int_equal(f500[0], VIGIL_FRAME_PING);
  assert_int_equal(f500[5 + 6] << 8 | f500[5 + 7], 499);
  vigil_frame_parser_free(&p);
  rec_free(&r);
}

typedef struct bad_case {
  const char *name;
  uint8_t bytes[24];
  size_t len;
  uint32_t max_frame;
  const char *want;
  size_t frames_before; /* valid frames delivered before the fault */
} bad_case;

static const bad_case bad_cases[] = {
    {"malformed: http", "GET / HTTP/1.1\r\n", 16, 1024,
     "bad magic byte 0x47, expected 0xF7 (HTTP or other text?)", 0},
    {"malformed: tls", {0x16, 0x03, 0x01, 0x02, 0x00}, 5, 1024,
     "bad magic byte 0x16, expected 0xF7 (TLS handshake?)", 0},
    {"malformed: zeros", {0}, 8, 1024, "bad magic byte 0x00, expected 0xF7", 0},
    {"malformed: version", {0xF7, 0x02, 0x02, 0, 0, 0, 0, 0}, 8, 1024,
     "version 2 is not supported", 0},
    {"malformed: version0", {0xF7, 0x00}, 2, 1024, "version 0 is not supported", 0},
    {"malformed: type9", {0xF7, 0x01, 0x09, 0, 0, 0, 0, 0}, 8, 1024,
     "frame type 0x09 is unknown", 0},
    {"malformed: type0", {0xF7, 0x01, 0x00}, 3, 1024, "frame type 0x00 is unknown", 0},
    {"malformed: flags", {0xF7, 0x01, 0x02, 0x01, 0, 0, 0, 0}, 8, 1024,
     "flags 0x01 are set; version 1 allows none", 0},
    {"malformed: oversize", {0xF7, 0x01, 0x04, 0, 0x00, 0x01, 0x11, 0x70}, 8, 65536,
     "payload length 70000 exceeds max_frame 65536", 0},
    {"malformed: oversize_by_one", {0xF7, 0x01, 0x04, 0, 0, 0, 0x04, 0x01}, 8, 1024,
     "payload length 1025 exceeds max_frame 1024", 0},
    {"malformed: huge", {0xF7, 0x01, 0x04, 0, 0xFF, 0xFF, 0xFF, 0xFF}, 8, 1024,
     "payload length 4294967295 exceeds max_frame 1024", 0},
    {"malformed: hello_over_max_frame", {0xF7, 0x01, 0x01, 0, 0, 0, 0, 17}, 8, 16,
     "payload length 17 exceeds max_frame 16", 0},
    {"malformed: hello_empty", {0xF7, 0x01, 0x01, 0, 0, 0, 0, 0}, 8, 1024,
     "HELLO length 0 is invalid: identity must be 1..255 bytes", 0},
    {"malformed: hello_long", {0xF7, 0x01, 0x01, 0, 0, 0, 1, 0}, 8, 1024,
     "HELLO length 256 is invalid", 0},
    {"malformed: ping_len", {0xF7, 0x01, 0x02, 0, 0, 0, 0, 5}, 8, 1024,
     "PING length 5 is invalid: token must be 0 or 8 bytes", 0},
    {"malformed: pong_len", {0xF7, 0x01, 0x03, 0, 0, 0, 0, 9}, 8, 1024,
     "PONG length 9 is invalid", 0},
    {"malformed: goodbye_short", {0xF7, 0x01, 0x05, 0, 0, 0, 0, 1}, 8, 1024,
     "GOODBYE length 1 is invalid: must be 2..255 bytes", 0},
    {"malformed: goodbye_long", {0xF7, 0x01, 0x05, 0, 0, 0, 1, 0}, 8, 1024,
     "GOODBYE length 256 is invalid", 0},
    {"malformed: hello_nul", {0xF7, 0x01, 0x01, 0, 0, 0, 0, 3, 'a', 0, 'b'}, 11, 1024,
     "HELLO identity contains a NUL byte", 0},
    {"malformed: goodbye_utf8", {0xF7, 0x01, 0x05, 0, 0, 0, 0, 4, 0, 1, 0xC0, 0x80}, 12,
     1024, "GOODBYE text is not valid UTF-8", 0},
    {"malformed: goodbye_nul", {0xF7, 0x01, 0x05, 0, 0, 0, 0, 3, 0, 1, 0}, 11, 1024,
     "GOODBYE text contains a NUL byte", 0},
    {"malformed: after_valid", {0xF7, 0x01, 0x02, 0, 0, 0, 0, 0, 0xF7, 0x01, 0x03, 0, 0,
                     0, 0, 0, 'G'},
     17, 1024, "bad magic byte 0x47", 2},
};

/* Feeds a bad case with the given chunking; returns the error. */
static ssize_t feed_bad(const bad_case *c, vigil_frame_parser *p, rec *r,
                        int bytewise) {
  vigil_frame_parser_init(p, c->max_frame);
  ssize_t rc = 0;
  if (!bytewise)
    return vigil_frame_parser_feed(p, c->bytes, c->len, on_frame, r);
  for (size_t i = 0; i < c->len && rc >= 0; i++)
    rc = vigil_frame_parser_feed(p, c->bytes + i, 1, on_frame, r);
  return rc;
}

/* Malformed input is rejected with a reason, fed whole and byte by
 * byte, and the error sticks. */
static void run_bad_case(void **state) {
  const bad_case *c = *state;
  for (int bytewise = 0; bytewise <= 1; bytewise++) {
    vigil_frame_parser p;
    rec r;
    rec_init(&r);
    ssize_t rc = feed_bad(c, &p, &r, bytewise);
    const char *why = vigil_frame_parser_error(&p);
    if (rc != VIGIL_EPROTO || !why || !strstr(why, c->want))
      fail_msg("bytewise %d: rc %zd, detail \"%s\", want \"%s\"", bytewise,
               rc, why ? why : "(null)", c->want);
    assert_true(strlen(why) < sizeof p.detail - 1); /* never truncated */
    assert_int_equal(r.n, c->frames_before);
    /* sticky: valid input afterwards is refused and not delivered */
    uint8_t ping[8];
    vigil_frame_encode(VIGIL_FRAME_PING, NULL, 0, ping, sizeof ping);
    assert_int_equal(vigil_frame_parser_feed(&p, ping, 8, on_frame, &r),
                     VIGIL_EPROTO);
    assert_int_equal(r.n, c->frames_before);
    assert_string_equal(vigil_frame_parser_error(&p), why);
    assert_int_equal(vigil_frame_parser_held(&p), 0);
    assert_false(vigil_frame_parser_idle(&p));
    vigil_frame_parser_free(&p);
    rec_free(&r);
  }
}

/* A wrong protocol is refused on its first byte, a bad version on its
 * second, and an oversized frame on its header, before any payload. */
static void test_faults_found_as_early_as_possible(void **state) {
  (void)state;
  vigil_frame_parser p;
  rec r;
  rec_init(&r);
  vigil_frame_parser_init(&p, 1024);
  assert_int_equal(vigil_frame_parser_feed(&p, "G", 1, on_frame, &r),
                   VIGIL_EPROTO);

  vigil_frame_parser_init(&p, 1024);
  assert_int_equal(vigil_frame_parser_feed(&p, "\xF7", 1, on_frame, &r), 1);
  assert_int_equal(vigil_frame_parser_feed(&p, "\x03", 1, on_frame, &r),
                   VIGIL_EPROTO);

  /* header of a 1 GB frame, no payload yet: refused, nothing allocated */
  uint8_t hdr[8];
  vigil_frame_parser_init(&p, 65536);
  memcpy(hdr, "\xF7\x01\x04\x00\x40\x00\x00\x00", 8);
  assert_int_equal(vigil_frame_parser_feed(&p, hdr, 7, on_frame, &r), 7);
  assert_int_equal(vigil_frame_parser_feed(&p, hdr + 7, 1, on_frame, &r),
                   VIGIL_EPROTO);
  assert_non_null(strstr(vigil_frame_parser_error(&p),
                         "payload length 1073741824 exceeds max_frame 65536"));
  assert_int_equal(p.allocs, 0);

  /* a 17-byte frame with max_frame 16, refused by its header */
  vigil_frame_parser_init(&p, 16);
  assert_int_equal(vigil_frame_encode_header(VIGIL_FRAME_DATA, 17, hdr, 8), 8);
  assert_int_equal(vigil_frame_parser_feed(&p, hdr, 8, on_frame, &r),
                   VIGIL_EPROTO);
  assert_int_equal(r.n, 0);
  rec_free(&r);
}

static void test_callback_can_stop_the_parser(void **state) {
  (void)state;
  uint8_t s[256];
  size_t len = 0, ends[5];
  const uint8_t tok[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  put(s, &len, sizeof s, VIGIL_FRAME_HELLO, "dev-1", 5);
  ends[0] = len;
  put(s, &len, sizeof s, VIGIL_FRAME_PING, NULL, 0);
  ends[1] = len;
  put(s, &len, sizeof s, VIGIL_FRAME_PING, tok, 8);
  ends[2] = len;
  put(s, &len, sizeof s, VIGIL_FRAME_DATA, "payload-bytes-here", 18);
  ends[3] = len;
  put(s, &len, sizeof s, VIGIL_FRAME_GOODBYE, "\x00\x02", 2);
  ends[4] = len;

  rec all;
  vigil_frame_parser p;
  parse_whole(&p, 1024, s, len, &all);

  /* stop at each frame in turn, then feed the rest: same frames overall */
  for (size_t k = 1; k <= 5; k++) {
    rec r;
    rec_init(&r);
    r.stop_at = k;
    vigil_frame_parser_init(&p, 1024);
    ssize_t rc = vigil_frame_parser_feed(&p, s, len, on_frame, &r);
    assert_int_equal(rc, (ssize_t)ends[k - 1]);
    assert_int_equal(r.n, k);
    assert_true(vigil_frame_parser_idle(&p));
    r.stop_at = 0;
    assert_int_equal(vigil_frame_parser_feed(&p, s + rc, len - (size_t)rc,
                                             on_frame, &r),
                     (ssize_t)(len - (size_t)rc));
    assert_int_equal(r.log_len, all.log_len);
    assert_memory_equal(r.log, all.log, all.log_len);
    rec_free(&r);
  }

  /* stop on a frame completed by a later chunk: the count is this chunk's
   * bytes up to that frame's end */
  rec r;
  rec_init(&r);
  r.stop_at = 4;
  vigil_frame_parser_init(&p, 1024);
  size_t cut = ends[2] + 10; /* inside the DATA frame */
  assert_int_equal(vigil_frame_parser_feed(&p, s, cut, on_frame, &r),
                   (ssize_t)cut);
  assert_int_equal(r.n, 3);
  assert_int_equal(vigil_frame_parser_feed(&p, s + cut, len - cut, on_frame, &r),
                   (ssize_t)(ends[3] - cut));
  assert_int_equal(r.n, 4);
  rec_free(&r);
  rec_free(&all);
  vigil_frame_parser_free(&p);
}

static void test_callback_may_free_but_not_reenter(void **state) {
  (void)state;
  uint8_t s[64];
  size_t len = 0;
  put(s, &len, sizeof s, VIGIL_FRAME_PING, NULL, 0);
  put(s, &len, sizeof s, VIGIL_FRAME_PING, NULL, 0);

  vigil_frame_parser p;
  rec r;
  rec_init(&r);
  r.parser = &p;
  r.action = 1; /* free from inside the callback */
  vigil_frame_parser_init(&p, 1024);
  assert_int_equal(vigil_frame_parser_feed(&p, s, len, on_frame, &r), 8);
  assert_int_equal(r.n, 1);
  assert_int_equal(vigil_frame_parser_feed(&p, s + 8, 8, on_frame, &r),
                   VIGIL_ECLOSED);
  rec_free(&r);

  rec_init(&r);
  r.parser = &p;
  r.action = 2; /* re-entrant feed */
  vigil_frame_parser_init(&p, 1024);
  assert_int_equal(vigil_frame_parser_feed(&p, s, len, on_frame, &r),
                   (ssize_t)len);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.reentry_rc, VIGIL_ESTATE);
  rec_free(&r);
  vigil_frame_parser_free(&p);
}

/* A long stream of split frames reuses one buffer: one allocation in all,
 * the same pointer every time, and trim hands it back when idle. */
static void test_split_frames_reuse_one_buffer(void **state) {
  (void)state;
  const size_t nframes = 10000, cap = nframes * VIGIL_FRAME_SIZE(100);
  uint8_t *s = malloc(cap);
  assert_non_null(s);
  uint8_t payload[100];
  size_t len = 0;
  for (size_t i = 0; i < nframes; i++) {
    memset(payload, (int)(i & 0xFF), sizeof payload);
    put(s, &len, cap, VIGIL_FRAME_DATA, payload, sizeof payload);
  }
  vigil_frame_parser p;
  rec r;
  rec_init(&r);
  r.parser = &p;
  vigil_frame_parser_init(&p, 65536);
  /* 7-byte reads: no payload ever arrives whole */
  assert_int_equal(feed_chunks(&p, s, len, &r, chunk_seven), (ssize_t)len);
  assert_int_equal(r.n, nframes);
  assert_int_equal(p.allocs, 1);
  assert_non_null(r.buf_seen);
  assert_int_equal(r.buf_changes, 0);
  assert_int_equal(vigil_frame_parser_held(&p), 128); /* 100 -> 2^7 */

  /* payloads are intact: frame i is 100 bytes of (i & 0xFF) */
  const uint8_t *f = r.log + 5 * 9999 + 100 * 9999;
  assert_int_equal(f[5], 9999 & 0xFF);
  assert_int_equal(f[104], 9999 & 0xFF);

  /* trim refuses while a split frame is in the buffer, then releases */
  assert_int_equal(vigil_frame_parser_feed(&p, s, 50, on_frame, &r), 50);
  assert_false(vigil_frame_parser_idle(&p));
  assert_int_equal(vigil_frame_parser_trim(&p), 0);
  assert_int_equal(vigil_frame_parser_feed(&p, s + 50, 58, on_frame, &r), 58);
  assert_true(vigil_frame_parser_idle(&p));
  assert_int_equal(vigil_frame_parser_trim(&p), 128);
  assert_int_equal(vigil_frame_parser_held(&p), 0);
  assert_int_equal(vigil_frame_parser_trim(&p), 0);
  vigil_frame_parser_free(&p);
  rec_free(&r);
  free(s);
}

/* Tokens (<= 8 bytes) split byte by byte never touch the heap; growing
 * frame sizes allocate once per power of two, capped at max_frame. */
static void test_small_payloads_and_growth(void **state) {
  (void)state;
  uint8_t s[4096];
  size_t len = 0;
  const uint8_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (int i = 0; i < 200; i++)
    put(s, &len, sizeof s, (i & 1) ? VIGIL_FRAME_PONG : VIGIL_FRAME_PING, tok,
        8);
  vigil_frame_parser p;
  rec r;
  parse_chunked(&p, 1024, s, len, &r, chunk_one);
  assert_int_equal(r.n, 200);
  assert_int_equal(p.allocs, 0);
  assert_int_equal(vigil_frame_parser_held(&p), 0);
  rec_free(&r);

  const size_t cap = 1u << 20;
  uint8_t *big = calloc(1, cap);
  uint8_t *payload = calloc(1, 3000);
  assert_non_null(big);
  assert_non_null(payload);
  len = 0;
  for (size_t n = 9; n <= 3000; n += 7)
    put(big, &len, cap, VIGIL_FRAME_DATA, payload, n);
  parse_chunked(&p, 2000 + 1000, big, len, &r, chunk_seven);
  /* 64, 128, 256, 512, 1024, 2048, then capped at 3000 */
  assert_int_equal(p.allocs, 7);
  assert_int_equal(vigil_frame_parser_held(&p), 3000);
  vigil_frame_parser_free(&p);
  rec_free(&r);
  free(big);
  free(payload);
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wire_layout_is_pinned),
      cmocka_unit_test(test_round_trip_every_type_and_size),
      cmocka_unit_test(test_encoder_errors),
      cmocka_unit_test(test_encoder_overflow),
      cmocka_unit_test(test_goodbye_text_must_be_utf8),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_init_bounds),
      cmocka_unit_test(test_any_split_delivers_the_same_frames),
      cmocka_unit_test(test_many_frames_in_one_read),
      cmocka_unit_test(test_faults_found_as_early_as_possible),
      cmocka_unit_test(test_callback_can_stop_the_parser),
      cmocka_unit_test(test_callback_may_free_but_not_reenter),
      cmocka_unit_test(test_split_frames_reuse_one_buffer),
      cmocka_unit_test(test_small_payloads_and_growth),
  };
  vt_suite s = {0};
  VT_TESTS(&s, tests);
  VT_ROWS(&s, run_bad_case, bad_cases);
  return vt_suite_run(&s, NULL, NULL);
}
