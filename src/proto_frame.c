/*
 * Frame codec on a connection (policy.frame_codec); the wire format is in
 * include/vigil/frame.h.
 *
 * What vigil does with each frame it receives:
 *   DATA     -> on_data, one payload per call (an empty DATA gives NULL, 0)
 *   HELLO    -> on_hello; without one, vigil_conn_identify + vigil_conn_ready
 *               (so handshake_timeout becomes "HELLO within the timeout").
 *               A second HELLO is a protocol error.
 *   PING     -> PONG with the same token, sent by vigil; a ping flood
 *               (faster than ping_min_interval_ms, past ping_strikes:
 *               conn_ping.c) gets no PONG but a graceful close with
 *               ping_flood, so GOODBYE too_many_pings and the hold below
 *   PONG     -> nothing more: every received byte already counts as life
 *   GOODBYE  -> the peer asks us to close first: graceful close with reason
 *               peer_closed, detail "goodbye <code name>[: <text>]"
 *   malformed input -> close with protocol_error, the parser's description
 *               as detail, and a GOODBYE protocol_error telling the peer why
 *
 * Peer-first close (sending side). Whoever closes first keeps TIME_WAIT for
 * 60 s; a server with many short-lived clients should not be the one. So a
 * codec conn closing gracefully for a policy reason (idle, handshake,
 * shutdown, takeover_rejected...), or through vigil_conn_goodbye(), sends
 * GOODBYE and holds its own FIN:
 *
 *   OPEN --GOODBYE queued--> FLUSHING (hold: FIN not sent, still reading)
 *                               |                      |
 *                          peer FIN            drain_timeout since the
 *                               |              last byte we sent
 *                               v                      v
 *            close(): our FIN answers    GOODBYE acked: shutdown(SHUT_WR),
 *            theirs; TIME_WAIT lands     DRAINING as for vigil_close.
 *            on the peer                 Not acked: the peer is gone,
 *                                        drain cut (RST under abort_dead)
 *
 * The hold lives in FLUSHING because that state already reads (and
 * discards) input, has the right deadline (no byte sent for drain_timeout)
 * and refuses host sends. The close machine asks this protocol three
 * questions (protocol.h): before_close (send GOODBYE?), holds_fin (stay
 * in FLUSHING?) and release_fin (the bound passed: go on with the normal
 * close).
 *
 * Memory: the codec state is allocated on a conn's first received byte or
 * first codec call. The parser's heap buffer (only for payloads split across
 * reads) is released once a whole read passes without needing it, and when
 * the conn goes quiet (ping time), so an idle conn holds none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "close.h"
#include "conn.h"
#include "conn_io.h"
#include "conn_ping.h"
#include "hub.h"
#include "hub_conns.h"
#include "proto_frame.h"
#include "protocol.h"
#include "sockopt.h"
#include "takeover.h"

enum {
  GB_NONE = 0, /* no GOODBYE sent */
  GB_SENT = 1, /* sent; close first as usual (protocol error, CLOSE_WAIT) */
  GB_HOLD = 2, /* sent; our FIN waits for the peer's */
  GB_DONE = 3, /* hold released (peer FIN or drain_timeout) */
};

/* Small payloads are framed on the stack and sent in one piece. */
#define STACK_FRAME_MAX 2048

/* Per-conn codec state; `parser` stays the first member so tests may look
 * at it through ext->proto_state. */
typedef struct codec {
  vigil_frame_parser parser;
  uint8_t hello_seen;
  uint8_t goodbye;       /* GB_* */
  uint8_t buf_used;      /* this feed delivered a payload from parser.buf */
  char *detail;          /* owned close detail (goodbye received) */
} codec;

static codec *codec_of(vigil_conn *c) {
  return c->ext && c->ext->proto_state_of == &vigil__protocol_frame
             ? (codec *)c->ext->proto_state
             : NULL;
}

/* Returns the conn's codec state, creating it; NULL on ENOMEM. */
static codec *codec_get(vigil_conn *c) {
  codec *k = codec_of(c);
  if (k) return k;
  vigil__conn_ext *ext = vigil__conn_ext_get(c);
  if (!ext) return NULL;
  k = calloc(1, sizeof *k);
  if (!k) return NULL;
  if (vigil_frame_parser_init(&k->parser, c->policy->max_frame) != VIGIL_OK) {
    free(k);
    return NULL;
  }
  ext->proto_state = k;
  ext->proto_state_of = &vigil__protocol_frame;
  return k;
}

static void frame_free(vigil_conn *c) {
  codec *k = codec_of(c);
  if (!k) return;
  vigil_frame_parser_free(&k->parser);
  free(k->detail);
  free(k);
  c->ext->proto_state = NULL;
  c->ext->proto_state_of = NULL;
}

/* 1 once the conn must not be handed more frames. */
static int stopped(vigil_conn *c) {
  return vigil__closing(c) || c->state == VIGIL_CONN_CLOSED ||
         c->hub->free_requested;
}

/* Closes for malformed input. The detail points into the parser, which
 * lives until the conn is freed, i.e. past on_close. */
static void protocol_error(vigil_conn *c, codec *k) {
  if (c->ext) c->ext->detail = vigil_frame_parser_error(&k->parser);
  vigil__conn_close(c, VIGIL_REASON_PROTOCOL_ERROR, VIGIL__CLOSE_GRACEFUL);
}

/* GOODBYE received: keep "goodbye <name>[: <text>]" as the close detail
 * and close first, as the peer asked. */
static void peer_goodbye(vigil_conn *c, codec *k, const vigil_frame *f) {
  unsigned code = 0;
  const char *text = NULL;
  size_t tlen = 0;
  vigil_frame_goodbye_decode(f->payload, f->len, &code, &text, &tlen);
  const char *name = vigil_goodbye_name(code);
  size_t cap = strlen(name) + tlen + 24;
  free(k->detail);
  k->detail = malloc(cap);
  if (k->detail) {
    if (tlen)
      snprintf(k->detail, cap, "goodbye %s: %.*s", name, (int)tlen, text);
    else
      snprintf(k->detail, cap, "goodbye %s", name);
    c->ext->detail = k->detail;
  }
  vigil__conn_close(c, VIGIL_REASON_PEER_CLOSED, VIGIL__CLOSE_GRACEFUL);
}

/* HELLO: the host's on_hello, or identify + ready when there is none. */
static void hello(vigil_conn *c, codec *k, const vigil_frame *f) {
  if (k->hello_seen) {
    c->ext->detail = "second HELLO: an identity is claimed only once";
    vigil__conn_close(c, VIGIL_REASON_PROTOCOL_ERROR, VIGIL__CLOSE_GRACEFUL);
    return;
  }
  k->hello_seen = 1;
  if (c->hooks->cb.on_hello) {
    c->hooks->cb.on_hello(c, f->payload, f->len, c->user_data);
    return;
  }
  if (vigil__identify(c, f->payload, f->len) == VIGIL_OK &&
      c->state == VIGIL_CONN_HANDSHAKE)
    vigil__conn_ready(c);
}

/* Parser callback: one valid frame. Non-zero stops the parser. */
static int on_frame(void *ud, const vigil_frame *f) {
  vigil_conn *c = ud;
  codec *k = codec_of(c);
  if (f->len > VIGIL_FRAME_TOKEN_SIZE && f->payload == k->parser.buf)
    k->buf_used = 1;
  switch (f->type) {
  case VIGIL_FRAME_DATA:
    if (c->hooks->cb.on_data) c->hooks->cb.on_data(c, f->payload, f->len, c->user_data);
    break;
  case VIGIL_FRAME_HELLO:
    hello(c, k, f);
    break;
  case VIGIL_FRAME_PING: {
    /* A flood is not answered: the conn closes with ping_flood and
     * GOODBYE too_many_pings instead (stopped() ends the parse). */
    int rc = vigil__conn_ping_received(c);
    if (rc == VIGIL_ENOMEM) {
      c->sys_errno = ENOMEM;
      vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_ABORT);
    }
    if (rc != VIGIL_OK) break;
    uint8_t pong[VIGIL_FRAME_SIZE(VIGIL_FRAME_TOKEN_SIZE)];
    int n = vigil_frame_encode(VIGIL_FRAME_PONG, f->payload, f->len, pong,
                               sizeof pong);
    if (n > 0) vigil__conn_send(c, pong, (size_t)n);
    break;
  }
  case VIGIL_FRAME_PONG:
    break;
  case VIGIL_FRAME_GOODBYE:
    peer_goodbye(c, k, f);
    return 1; /* the peer sends nothing after GOODBYE */
  }
  return stopped(c);
}

static void frame_bytes(vigil_conn *c, const void *data, size_t len) {
  codec *k = codec_get(c);
  if (!k) {
    c->sys_errno = ENOMEM;
    vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_ABORT);
    return;
  }
  /* A policy change takes effect at a frame boundary. */
  if (k->parser.max_frame != c->policy->max_frame &&
      vigil_frame_parser_idle(&k->parser)) {
    vigil_frame_parser_free(&k->parser);
    vigil_frame_parser_init(&k->parser, c->policy->max_frame);
  }
  k->buf_used = 0;
  ssize_t r = vigil_frame_parser_feed(&k->parser, data, len, on_frame, c);
  if (r == VIGIL_EPROTO) {
    protocol_error(c, k);
    return;
  }
  if (r == VIGIL_ENOMEM) {
    c->sys_errno = ENOMEM;
    vigil__conn_close(c, VIGIL_REASON_IO_ERROR, VIGIL__CLOSE_ABORT);
    return;
  }
  /* A buffer not needed for a whole read is released: frames split across
   * reads keep reusing it, a conn back to small frames gives it up. */
  if (!k->buf_used && vigil_frame_parser_idle(&k->parser))
    vigil_frame_parser_trim(&k->parser);
}

static void frame_ping(vigil_conn *c) {
  if (c->state != VIGIL_CONN_OPEN && c->state != VIGIL_CONN_HANDSHAKE) return;
  codec *k = codec_get(c);
  /* Ping time means nothing was sent for ping_interval: a good moment to
   * drop a parser buffer left over from the last burst. */
  if (k && vigil_frame_parser_idle(&k->parser))
    vigil_frame_parser_trim(&k->parser);
  /* The token is our clock, so a host watching frames can derive RTT. */
  uint64_t now = c->hub->now_ms;
  uint8_t tok[VIGIL_FRAME_TOKEN_SIZE];
  for (int i = 7; i >= 0; i--, now >>= 8) tok[i] = (uint8_t)now;
  uint8_t ping[VIGIL_FRAME_SIZE(VIGIL_FRAME_TOKEN_SIZE)];
  int n = vigil_frame_encode(VIGIL_FRAME_PING, tok, sizeof tok, ping,
                             sizeof ping);
  if (n > 0) vigil__conn_send(c, ping, (size_t)n);
}

/* ---- peer-first close hooks (the close machine, close.h) ---- */

/* Queues GOODBYE code/text; VIGIL_OK or the send's error. */
static int send_goodbye(vigil_conn *c, unsigned code, const char *text) {
  uint8_t buf[VIGIL_FRAME_SIZE(VIGIL_FRAME_GOODBYE_MAX)];
  int n = vigil_frame_encode_goodbye(code, text, buf, sizeof buf);
  if (n < 0) return n;
  return vigil__conn_send(c, buf, (size_t)n);
}

static void frame_before_close(vigil_conn *c) {
  if ((c->flags & VIGIL__F_WATCH_ONLY) || (c->flags & VIGIL__F_PEER_FIN))
    return; /* a peer that sent FIN already closed first */
  vigil_reason r = (vigil_reason)c->reason;
  /* vigil_close() is the plain shutdown-send-first close, and a peer that
   * closed (FIN or GOODBYE) needs no GOODBYE back. */
  if (r == VIGIL_REASON_CLOSED_BY_HOST || r == VIGIL_REASON_PEER_CLOSED)
    return;
  codec *k = codec_get(c);
  if (!k || k->goodbye != GB_NONE) return;
  const char *text = NULL;
  if (r == VIGIL_REASON_PROTOCOL_ERROR && c->ext) text = c->ext->detail;
  if (send_goodbye(c, vigil_goodbye_for_reason(r), text) != VIGIL_OK) return;
  /* A peer that broke the protocol may not speak it at all: tell it why,
   * but do not wait for it to close first. */
  k->goodbye = r == VIGIL_REASON_PROTOCOL_ERROR ? GB_SENT : GB_HOLD;
}

static int frame_holds_fin(vigil_conn *c) {
  codec *k = codec_of(c);
  if (!k || k->goodbye != GB_HOLD || (c->flags & VIGIL__F_PEER_FIN)) return 0;
  vigil__conn_update_io(c); /* keep reading: the peer's FIN is the signal */
  vigil__conn_schedule(c);  /* FLUSHING's drain deadline bounds the wait */
  return 1;
}

static int frame_release_fin(vigil_conn *c) {
  codec *k = codec_of(c);
  if (!k || k->goodbye != GB_HOLD || c->state != VIGIL_CONN_FLUSHING ||
      c->outq.queued > 0)
    return 0;
  /* A peer that did not even acknowledge the GOODBYE is gone: a FIN now
   * would only retransmit; leave it to the drain cut (RST). */
  vigil_tcp_info ti;
  if (vigil__sock_tcp_info(c->io.fd, &ti) == VIGIL_OK && ti.unacked > 0)
    return 0;
  k->goodbye = GB_DONE;
  if (!c->ext->detail) c->ext->detail = "no FIN after GOODBYE: closed first";
  return 1;
}

const vigil__protocol vigil__protocol_frame = {
    .name = "frame",
    .on_bytes = frame_bytes,
    .ping = frame_ping,
    .before_close = frame_before_close,
    .holds_fin = frame_holds_fin,
    .release_fin = frame_release_fin,
    .free = frame_free,
};

/* ---- public API (include/vigil/frame.h) ---- */

int vigil__frame_send_data(vigil_conn *c, const void *payload, size_t len) {
  if (!c->policy->frame_codec) return VIGIL_ESTATE;
  if (len > c->policy->max_frame) return VIGIL_EINVAL;
  if (len <= STACK_FRAME_MAX) {
    uint8_t buf[VIGIL_FRAME_SIZE(STACK_FRAME_MAX)];
    int n = vigil_frame_encode(VIGIL_FRAME_DATA, payload, len, buf, sizeof buf);
    if (n < 0) return n;
    return vigil__conn_send(c, buf, (size_t)n);
  }
  /* Large payloads go as header + payload without a copy. The limit is
   * checked for both together first, so the payload send cannot be
   * refused after the header went out. */
  int rc = vigil__conn_check_send(c, VIGIL_FRAME_SIZE(len));
  if (rc != VIGIL_OK) return rc;
  uint8_t hdr[VIGIL_FRAME_HEADER_SIZE];
  int n = vigil_frame_encode_header(VIGIL_FRAME_DATA, len, hdr, sizeof hdr);
  if (n < 0) return n;
  rc = vigil__conn_send(c, hdr, sizeof hdr);
  if (rc != VIGIL_OK) return rc;
  return vigil__conn_send(c, payload, len);
}

int vigil_send_data(vigil_conn *c, const void *payload, size_t len) {
  if (!c || (!payload && len)) return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = vigil__frame_send_data(c, payload, len);
  vigil__hub_leave(hub);
  return rc;
}

int vigil_conn_goodbye(vigil_conn *c, unsigned code, const char *text) {
  if (!c || code > 0xFFFFu) return VIGIL_EINVAL;
  if (!c->policy->frame_codec || (c->flags & VIGIL__F_WATCH_ONLY))
    return VIGIL_ESTATE;
  if (c->state == VIGIL_CONN_CLOSED || vigil__closing(c)) return VIGIL_ECLOSED;
  uint8_t probe[VIGIL_FRAME_SIZE(VIGIL_FRAME_GOODBYE_MAX)];
  if (vigil_frame_encode_goodbye(code, text, probe, sizeof probe) < 0)
    return VIGIL_EINVAL;
  vigil_hub *hub = c->hub;
  vigil__hub_enter(hub);
  int rc = VIGIL_OK;
  codec *k = codec_get(c);
  if (!k) {
    rc = VIGIL_ENOMEM;
    goto out;
  }
  rc = send_goodbye(c, code, text);
  if (rc != VIGIL_OK) goto out;
  if (c->state == VIGIL_CONN_CLOSE_WAIT) {
    /* The peer already closed first; GOODBYE is only information. */
    k->goodbye = GB_SENT;
    vigil__conn_close(c, VIGIL_REASON_PEER_CLOSED, VIGIL__CLOSE_GRACEFUL);
  } else if (c->state != VIGIL_CONN_CLOSED) {
    k->goodbye = GB_HOLD;
    vigil__conn_close(c, VIGIL_REASON_CLOSED_BY_HOST, VIGIL__CLOSE_GRACEFUL);
  }
out:
  vigil__hub_leave(hub);
  return rc;
}
