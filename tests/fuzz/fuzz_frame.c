/*
 * libFuzzer target for the frame codec (built by tests/fuzz/run_fuzz.sh).
 *
 * Input: byte 0 = config, byte 1 = seed, the rest = the byte stream.
 *   config bits 0-1  max_frame: 16, 64, 300, 65536
 *   config bits 2-4  stop after this many frames in the stopping run
 *                    (0: never), then resume with the remaining bytes
 *   config bits 5-6  largest chunk: 1, 7, 64, 4096 bytes
 *   config bit  7    trim the parser buffer after every chunk
 *
 * Invariants checked (abort on violation):
 * - whole-input, chunked and stop-and-resume parses deliver the same
 *   frames and end with the same result and error description;
 * - every delivered frame obeys the v1 rules (type, length, content) and
 *   max_frame; feed never reports more bytes than it was given;
 * - errors are sticky: later feeds return the same error, deliver nothing
 *   and keep the description;
 * - the encoder accepts a frame iff the parser accepts its bytes, and
 *   decode(encode(x)) == x;
 * - GOODBYE text is checked against the reference UTF-8 validator in
 *   fuzz_common.h.
 */
#include "fuzz_common.h"
#include "vigil.h"

#include <string.h>

static const uint32_t max_frames[4] = {16, 64, 300, 65536};
static const size_t max_chunks[4] = {1, 7, 64, 4096};

typedef struct digest {
  uint64_t hash; /* FNV-1a over type, length and payload of every frame */
  size_t frames;
  size_t stop_at; /* 1-based frame number to stop at; 0 = never */
  uint32_t max_frame;
} digest;

static void mix(digest *d, const void *b, size_t n) {
  d->hash = fuzz_fnv(d->hash, b, n);
}

/* Checks one delivered frame against the v1 rules and adds it to d. */
static int on_frame(void *ud, const vigil_frame *f) {
  digest *d = ud;
  CHECK(f->type >= VIGIL_FRAME_HELLO && f->type <= VIGIL_FRAME_GOODBYE);
  CHECK(f->len <= d->max_frame);
  CHECK((f->len == 0) == (f->payload == NULL));
  switch (f->type) {
  case VIGIL_FRAME_HELLO:
    CHECK(f->len >= 1 && f->len <= VIGIL_FRAME_IDENTITY_MAX);
    CHECK(memchr(f->payload, 0, f->len) == NULL);
    break;
  case VIGIL_FRAME_PING:
  case VIGIL_FRAME_PONG:
    CHECK(f->len == 0 || f->len == VIGIL_FRAME_TOKEN_SIZE);
    break;
  case VIGIL_FRAME_GOODBYE: {
    unsigned code;
    const char *text;
    size_t tlen;
    CHECK(f->len >= 2 && f->len <= VIGIL_FRAME_GOODBYE_MAX);
    CHECK(vigil_frame_goodbye_decode(f->payload, f->len, &code, &text,
                                     &tlen) == VIGIL_OK);
    CHECK(code <= 0xFFFF && tlen == f->len - 2u);
    CHECK(memchr(text, 0, tlen) == NULL);
    CHECK(ref_utf8_ok((const uint8_t *)text, tlen));
    CHECK(vigil_goodbye_name(code) != NULL);
    break;
  }
  default:
    break;
  }
  uint8_t hdr[5] = {(uint8_t)f->type, (uint8_t)(f->len >> 24),
                    (uint8_t)(f->len >> 16), (uint8_t)(f->len >> 8),
                    (uint8_t)f->len};
  mix(d, hdr, sizeof hdr);
  if (f->len) mix(d, f->payload, f->len);
  d->frames++;
  return d->stop_at != 0 && d->frames == d->stop_at;
}

typedef struct outcome {
  digest d;
  ssize_t rc;         /* consumed total, or the error */
  char detail[80];
} outcome;

static void outcome_start(outcome *o, uint32_t max_frame, size_t stop_at) {
  memset(o, 0, sizeof *o);
  o->d.hash = FUZZ_FNV_START;
  o->d.max_frame = max_frame;
  o->d.stop_at = stop_at;
}

/* Records how the parse ended and checks that the error is sticky. */
static void outcome_end(outcome *o, vigil_frame_parser *p, ssize_t rc) {
  o->rc = rc;
  const char *why = vigil_frame_parser_error(p);
  if (rc < 0) {
    CHECK(rc == VIGIL_EPROTO);
    CHECK(why != NULL && why[0] != '\0');
    snprintf(o->detail, sizeof o->detail, "%s", why);
    size_t before = o->d.frames;
    static const uint8_t ping[8] = {0xF7, 1, 2, 0, 0, 0, 0, 0};
    CHECK(vigil_frame_parser_feed(p, ping, sizeof ping, on_frame, &o->d) ==
          rc);
    CHECK(o->d.frames == before);
    CHECK(strcmp(vigil_frame_parser_error(p), o->detail) == 0);
    CHECK(vigil_frame_parser_held(p) == 0);
  } else {
    CHECK(why == NULL);
  }
  vigil_frame_parser_free(p);
}

static uint32_t rng_next(uint32_t *s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

/* Parses the stream in pseudo-random chunks (and, if asked, trims the
 * buffer between them), stopping and resuming as d.stop_at says. */
static void parse_chunked(outcome *o, const uint8_t *s, size_t len,
                          uint32_t max_frame, size_t max_chunk, int trim,
                          uint32_t seed) {
  vigil_frame_parser p;
  CHECK(vigil_frame_parser_init(&p, max_frame) == VIGIL_OK);
  size_t pos = 0;
  ssize_t rc = 0;
  while (pos < len) {
    size_t n = 1 + rng_next(&seed) % max_chunk;
    if (n > len - pos) n = len - pos;
    rc = vigil_frame_parser_feed(&p, s + pos, n, on_frame, &o->d);
    if (rc < 0) break;
    CHECK((size_t)rc <= n);
    if ((size_t)rc < n) {
      /* stopped by the callback, right after the stop frame */
      CHECK(o->d.stop_at != 0 && o->d.frames == o->d.stop_at);
      CHECK(vigil_frame_parser_idle(&p));
      o->d.stop_at = 0;
    }
    pos += (size_t)rc;
    if (trim) {
      size_t held = vigil_frame_parser_held(&p);
      size_t released = vigil_frame_parser_trim(&p);
      CHECK(released == 0 || released == held);
    }
  }
  if (rc >= 0) {
    CHECK(pos == len);
    rc = (ssize_t)pos;
  }
  outcome_end(o, &p, rc);
}

/* Encoder vs parser agreement on one frame derived from the input. */
static void round_trip(vigil_frame_type type, const uint8_t *payload,
                       size_t n) {
  static uint8_t out[VIGIL_FRAME_SIZE(512)];
  vigil_frame_parser p;
  outcome o;
  outcome_start(&o, 65536, 0);
  CHECK(vigil_frame_parser_init(&p, 65536) == VIGIL_OK);
  int w = vigil_frame_encode(type, payload, n, out, sizeof out);
  if (w >= 0) {
    CHECK((size_t)w == VIGIL_FRAME_SIZE(n));
    CHECK(vigil_frame_parser_feed(&p, out, (size_t)w, on_frame, &o.d) == w);
    CHECK(o.d.frames == 1);
    digest want = {FUZZ_FNV_START, 0, 0, 65536};
    vigil_frame f = {type, (uint32_t)n, n ? payload : NULL};
    on_frame(&want, &f);
    CHECK(want.hash == o.d.hash);
    /* header-only encoding matches, for the types that allow it */
    uint8_t hdr[8];
    int hw = vigil_frame_encode_header(type, n, hdr, sizeof hdr);
    if (type == VIGIL_FRAME_HELLO || type == VIGIL_FRAME_GOODBYE)
      CHECK(hw == VIGIL_EINVAL);
    else
      CHECK(hw == 8 && memcmp(hdr, out, 8) == 0);
    /* a too-small buffer is refused and left alone */
    out[0] = 0;
    CHECK(vigil_frame_encode(type, payload, n, out, (size_t)w - 1) ==
          VIGIL_EOVERFLOW);
    CHECK(out[0] == 0);
  } else {
    /* the encoder refused: a receiver must refuse the same bytes */
    CHECK(w == VIGIL_EINVAL);
    uint8_t hdr[8] = {VIGIL_FRAME_MAGIC, VIGIL_FRAME_VERSION, (uint8_t)type,
                      0, 0, 0, (uint8_t)(n >> 8), (uint8_t)n};
    ssize_t rc = vigil_frame_parser_feed(&p, hdr, 8, on_frame, &o.d);
    if (rc == 8) rc = vigil_frame_parser_feed(&p, payload, n, on_frame, &o.d);
    CHECK(rc == VIGIL_EPROTO);
    CHECK(o.d.frames == 0);
  }
  vigil_frame_parser_free(&p);
}

/* GOODBYE helpers agree with each other. */
static void goodbye_trip(unsigned code, const uint8_t *b, size_t n) {
  char text[VIGIL_FRAME_GOODBYE_TEXT_MAX + 2];
  uint8_t out[VIGIL_FRAME_SIZE(VIGIL_FRAME_GOODBYE_MAX)];
  if (n > VIGIL_FRAME_GOODBYE_TEXT_MAX + 1) n = VIGIL_FRAME_GOODBYE_TEXT_MAX + 1;
  memcpy(text, b, n);
  text[n] = '\0';
  size_t tlen = strlen(text);
  int w = vigil_frame_encode_goodbye(code, text, out, sizeof out);
  int valid = code <= 0xFFFF && tlen <= VIGIL_FRAME_GOODBYE_TEXT_MAX &&
              ref_utf8_ok((const uint8_t *)text, tlen);
  CHECK(valid == (w >= 0));
  if (w < 0) {
    CHECK(w == VIGIL_EINVAL);
    return;
  }
  CHECK((size_t)w == VIGIL_FRAME_SIZE(2 + tlen));
  unsigned got;
  const char *t;
  size_t tl;
  CHECK(vigil_frame_goodbye_decode(out + 8, (size_t)w - 8, &got, &t, &tl) ==
        VIGIL_OK);
  CHECK(got == code && tl == tlen && memcmp(t, text, tl) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const uint8_t cfg = data[0], seed = data[1];
  const uint8_t *s = data + 2;
  const size_t len = size - 2;
  const uint32_t max_frame = max_frames[cfg & 3];
  const size_t stop_at = (cfg >> 2) & 7;
  const size_t max_chunk = max_chunks[(cfg >> 5) & 3];
  const int trim = cfg >> 7;

  /* reference: everything in one feed */
  outcome whole;
  outcome_start(&whole, max_frame, 0);
  vigil_frame_parser p;
  CHECK(vigil_frame_parser_init(&p, max_frame) == VIGIL_OK);
  ssize_t rc = vigil_frame_parser_feed(&p, s, len, on_frame, &whole.d);
  CHECK(rc < 0 || (size_t)rc == len);
  outcome_end(&whole, &p, rc);

  outcome chunked;
  outcome_start(&chunked, max_frame, 0);
  parse_chunked(&chunked, s, len, max_frame, max_chunk, trim, seed);

  outcome stopped;
  outcome_start(&stopped, max_frame, stop_at);
  parse_chunked(&stopped, s, len, max_frame, max_chunk * 2, !trim, seed + 1u);

  const outcome *runs[2] = {&chunked, &stopped};
  for (int i = 0; i < 2; i++) {
    CHECK(runs[i]->rc == whole.rc);
    CHECK(runs[i]->d.frames == whole.d.frames);
    CHECK(runs[i]->d.hash == whole.d.hash);
    CHECK(strcmp(runs[i]->detail, whole.detail) == 0);
  }

  size_t n = len < 300 ? len : 300;
  round_trip((vigil_frame_type)(seed % 7), s, n); /* includes bad types */
  round_trip(VIGIL_FRAME_PING, s, n < 9 ? n : 9);
  goodbye_trip((unsigned)seed << 8 | cfg, s, len);
  goodbye_trip(0x10000u + seed, s, len); /* out of u16 range: refused */
  return 0;
}
