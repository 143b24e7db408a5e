/*
 * vigil frame codec: a tiny, versioned, length-prefixed wire format for
 * heartbeats (PING/PONG), identity (HELLO), peer-first close (GOODBYE) and
 * application data (DATA). Hosts use it optionally (policy.frame_codec);
 * this header is the pure codec (no sockets, no loop, no clock), plus, in
 * its last section, the two calls that use it on a vigil connection.
 *
 * Wire format, version 1
 * ----------------------
 * Every frame is an 8-byte header followed by `length` payload bytes.
 * Multi-byte integers are big-endian (network order).
 *
 *   offset  size  field    value in v1
 *   ------  ----  -------  ---------------------------------------------
 *   0       1     magic    0xF7 (VIGIL_FRAME_MAGIC), never changes
 *   1       1     version  0x01 (VIGIL_FRAME_VERSION)
 *   2       1     type     0x01 HELLO, 0x02 PING, 0x03 PONG, 0x04 DATA,
 *                          0x05 GOODBYE; every other value is an error
 *   3       1     flags    0x00; any set bit is an error in v1
 *   4       4     length   payload length, u32 big-endian,
 *                          0..max_frame (max_frame <= 16 MiB)
 *   8       len   payload  per type, below
 *
 *   type     payload                                      length
 *   -------  -------------------------------------------  -----------
 *   HELLO    identity bytes: no NUL byte                   1..255
 *   PING     empty, or an 8-byte opaque token              0 or 8
 *   PONG     empty, or the token of the PING it answers    0 or 8
 *   DATA     opaque application bytes                      0..max_frame
 *   GOODBYE  u16 reason code (vigil_goodbye_code), then    2..255
 *            optional UTF-8 text without NUL (0..253)
 *
 * max_frame bounds every payload, whatever its type; it is a receiver
 * setting (policy.max_frame, 16..16 MiB, default 64 KiB) that both ends
 * agree on out of band. Anything else a v1 receiver sees is a protocol
 * error and ends the stream: there is no resynchronisation.
 *
 * Why this header:
 * - The magic byte 0xF7 can never occur in UTF-8 text and is not a TLS
 *   record type (0x14..0x18), so a wrong-protocol peer (an HTTP, Redis or
 *   telnet client, a TLS ClientHello, a port scanner) is rejected on its
 *   very first byte, before any buffering.
 * - The version has its own byte, so a newer vigil peer is reported as
 *   "version 2 is not supported" rather than as garbage.
 * - Type and flags give cheap, early rejection of random input: after two
 *   fixed bytes, only 5 of 256 types and 1 of 256 flag values are valid.
 * - A 4-byte length keeps the 16 MiB cap expressible (3 bytes stop one
 *   short of it) and the header at 8 bytes, so a heartbeat frame with a
 *   token is 16 bytes on the wire.
 * - Limits are checked on the header alone: an oversized or ill-sized
 *   frame is refused before its payload is read or buffered.
 *
 * Versioning rule: bytes 0 and 1 (magic, version) keep their meaning in
 * every version. A v1 peer rejects every frame whose version is not 1, and
 * every type or flag it does not know, so nothing may be added to v1: a
 * new frame type, a flag, a longer token or a new header layout needs
 * version 2. A v2 may change anything from byte 2 on. A v2 peer that must
 * talk to v1 peers has to speak v1 to them (how it learns which to speak
 * is v2's business); a v1 peer closes the stream with a protocol error
 * such as "version 2 is not supported".
 *
 * Conversation rules (applied by the connection layer, not by the codec,
 * which checks frames one at a time):
 * - Any frame proves the peer is alive.
 * - PING asks for a PONG carrying the same token (0 or 8 bytes), which
 *   lets the sender measure round-trip time.
 * - HELLO claims an identity (vigil_conn_identify); at most once.
 * - GOODBYE says the sender is done and asks the receiver to close first,
 *   so the TIME_WAIT state lands on the receiver (servers send GOODBYE to
 *   clients). The sender sends nothing after it and waits for the
 *   receiver's FIN, bounded by its drain timeout.
 *
 * Codec use:
 *   encode:  n = vigil_frame_encode(VIGIL_FRAME_PING, tok, 8, buf, sizeof buf)
 *   decode:  vigil_frame_parser_init(&p, 65536);
 *            per read: r = vigil_frame_parser_feed(&p, data, len, cb, ud);
 *            r < 0: VIGIL_EPROTO, detail in vigil_frame_parser_error(&p)
 *            on close: vigil_frame_parser_free(&p)
 */
#ifndef VIGIL_FRAME_H
#define VIGIL_FRAME_H

#ifndef VIGIL_H
#include "vigil.h" /* VIGIL_EXPORT, vigil_err, vigil_reason */
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_FRAME_MAGIC 0xF7u
#define VIGIL_FRAME_VERSION 1u
#define VIGIL_FRAME_HEADER_SIZE 8u
/* Bytes on the wire for a payload of len bytes. */
#define VIGIL_FRAME_SIZE(len) (VIGIL_FRAME_HEADER_SIZE + (len))

/* Payload limits. */
#define VIGIL_FRAME_MAX_FRAME_MIN 16u              /* smallest max_frame */
#define VIGIL_FRAME_MAX_FRAME_MAX (16u << 20)      /* largest: 16 MiB */
#define VIGIL_FRAME_MAX_FRAME_DEFAULT 65536u
#define VIGIL_FRAME_IDENTITY_MAX 255u      /* HELLO payload 1..255 */
#define VIGIL_FRAME_TOKEN_SIZE 8u          /* PING/PONG token, optional */
#define VIGIL_FRAME_GOODBYE_MIN 2u         /* the reason code */
#define VIGIL_FRAME_GOODBYE_MAX 255u       /* code + text */
#define VIGIL_FRAME_GOODBYE_TEXT_MAX (VIGIL_FRAME_GOODBYE_MAX - 2u)

/* Frame types; values are the wire values. */
typedef enum vigil_frame_type {
  VIGIL_FRAME_HELLO = 0x01,
  VIGIL_FRAME_PING = 0x02,
  VIGIL_FRAME_PONG = 0x03,
  VIGIL_FRAME_DATA = 0x04,
  VIGIL_FRAME_GOODBYE = 0x05,
} vigil_frame_type;

/* "HELLO", "PING", "PONG", "DATA", "GOODBYE"; "UNKNOWN" otherwise. */
VIGIL_EXPORT const char *vigil_frame_type_name(int type);

/*
 * GOODBYE reason codes (u16 on the wire). 0x0000..0x7FFF belong to vigil
 * and are only ever appended; 0x8000..0xFFFF are free for applications.
 * A receiver must accept codes it does not know.
 */
typedef enum vigil_goodbye_code {
  VIGIL_GOODBYE_NORMAL = 0,            /* done; nothing wrong */
  VIGIL_GOODBYE_GOING_AWAY = 1,        /* sender is leaving (restart,
                                          sleep); reconnect later */
  VIGIL_GOODBYE_SHUTDOWN = 2,          /* server shutting down */
  VIGIL_GOODBYE_HEARTBEAT_TIMEOUT = 3, /* peer was silent too long */
  VIGIL_GOODBYE_IDLE_TIMEOUT = 4,      /* no application traffic */
  VIGIL_GOODBYE_HANDSHAKE_TIMEOUT = 5, /* peer not ready in time */
  VIGIL_GOODBYE_PROTOCOL_ERROR = 6,    /* peer broke the protocol */
  VIGIL_GOODBYE_TAKEOVER = 7,          /* same identity connected anew */
  VIGIL_GOODBYE_TAKEOVER_REJECTED = 8, /* identity already connected */
  VIGIL_GOODBYE_IDENTITY_BANNED = 9,   /* identity flapping; back off */
  VIGIL_GOODBYE_OVERLOADED = 10,       /* server busy; back off */
  VIGIL_GOODBYE_TOO_MANY_PINGS = 11,   /* pings faster than the server
                                          allows; ping less often */
  VIGIL_GOODBYE__COUNT,
  VIGIL_GOODBYE_APPLICATION = 0x8000,  /* first application-defined code */
} vigil_goodbye_code;

/* "normal", "going_away", "heartbeat_timeout", ...; "application" for
 * 0x8000..0xFFFF; "unknown" for unassigned vigil codes. Never NULL. */
VIGIL_EXPORT const char *vigil_goodbye_name(unsigned code);

/* The GOODBYE code that tells the peer why this side closes with reason r
 * (takeover -> TAKEOVER, heartbeat_timeout -> HEARTBEAT_TIMEOUT, host close
 * -> NORMAL...); NORMAL for reasons with no closer match. */
VIGIL_EXPORT unsigned vigil_goodbye_for_reason(vigil_reason r);

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

/* VIGIL_FRAME_HEADER_SIZE, for bindings that cannot use the macro. */
VIGIL_EXPORT size_t vigil_frame_header_size(void);

/*
 * Writes one frame (header + payload) to out. Returns the bytes written,
 * VIGIL_FRAME_SIZE(len), or:
 *   VIGIL_EINVAL     unknown type; payload that a v1 receiver would reject
 *                    (HELLO empty, over 255 bytes or with a NUL; PING/PONG
 *                    not 0 or 8 bytes; GOODBYE under 2 or over 255 bytes,
 *                    or text that is not UTF-8 or holds a NUL); len over
 *                    VIGIL_FRAME_MAX_FRAME_MAX; payload NULL with len > 0;
 *                    out NULL.
 *   VIGIL_EOVERFLOW  cap < VIGIL_FRAME_SIZE(len); out is left untouched.
 * The receiver's max_frame may be lower than the encoder's limit: hosts
 * must agree on it.
 */
VIGIL_EXPORT int vigil_frame_encode(vigil_frame_type type, const void *payload,
                                    size_t len, void *out, size_t cap);

/*
 * Writes only the 8-byte header, for sending a large DATA payload straight
 * from the host's buffer (writev) without copying it. Valid for PING, PONG
 * and DATA, whose payload content is not checked; HELLO and GOODBYE must
 * go through vigil_frame_encode, which checks it (VIGIL_EINVAL). Returns
 * VIGIL_FRAME_HEADER_SIZE or the errors of vigil_frame_encode.
 */
VIGIL_EXPORT int vigil_frame_encode_header(vigil_frame_type type, size_t len,
                                           void *out, size_t cap);

/*
 * Writes a GOODBYE frame. text may be NULL (no text); otherwise a
 * NUL-terminated UTF-8 string of at most VIGIL_FRAME_GOODBYE_TEXT_MAX
 * bytes. Returns bytes written, VIGIL_EINVAL or VIGIL_EOVERFLOW.
 */
VIGIL_EXPORT int vigil_frame_encode_goodbye(unsigned code, const char *text,
                                            void *out, size_t cap);

/*
 * Splits a delivered GOODBYE payload. *text points into payload and is NOT
 * NUL-terminated (*text_len bytes, possibly 0). Returns VIGIL_OK, or
 * VIGIL_EPROTO if len < 2 (never for payloads the parser delivered).
 * text and text_len may be NULL.
 */
VIGIL_EXPORT int vigil_frame_goodbye_decode(const uint8_t *payload,
                                            size_t len, unsigned *code,
                                            const char **text,
                                            size_t *text_len);

/* ------------------------------------------------------------------------ */
/* Incremental parser                                                        */
/* ------------------------------------------------------------------------ */

/* One delivered frame. payload is valid only during the callback; it is
 * NULL when len is 0. */
typedef struct vigil_frame {
  vigil_frame_type type;
  uint32_t len;
  const uint8_t *payload;
} vigil_frame;

/* Called once per complete, valid frame, in stream order. Return 0 to go
 * on, non-zero to make vigil_frame_parser_feed() stop right after this
 * frame (e.g. the connection was closed from inside the callback). */
typedef int (*vigil_frame_cb)(void *user_data, const vigil_frame *frame);

/*
 * Parser state, public so hosts can embed it (in their connection struct)
 * without an allocation. Fields marked private may change in any release.
 *
 * Memory: a payload that arrives whole inside one feed() is delivered
 * straight from the caller's bytes (zero-copy). Only a payload split
 * across feeds is copied. Payloads of up to 8 bytes (PING/PONG tokens) are
 * buffered inside the struct. Longer ones go to a heap buffer allocated on
 * the first split frame, sized to the payload rounded up to a power of two
 * (at least 64 bytes, at most max_frame), and kept: a stream of split
 * frames reuses it and allocates again only to grow it (at most once per
 * power of two from 64 bytes to max_frame, 19 times for 16 MiB, until it
 * is trimmed), never per frame. A parser that never sees a long
 * split frame never allocates. The buffer is released by
 * vigil_frame_parser_trim() (when no frame is half-received), which the
 * connection layer calls when the connection goes quiet, so an idle
 * connection holds no I/O buffer; by vigil_frame_parser_free(); and when
 * the stream turns out to be malformed. We did not allocate max_frame at
 * init because 100k idle connections at 64 KiB would hold 6.5 GB for
 * nothing, and did not allocate per split frame because a slow sender of
 * large frames would then pay a malloc/free per frame.
 */
typedef struct vigil_frame_parser {
  uint32_t max_frame;   /* read-only: largest payload accepted */
  uint64_t frames;      /* read-only: frames delivered so far */
  uint32_t allocs;      /* read-only: heap (re)allocations so far */
  /* private */
  int err;              /* sticky: 0, VIGIL_EPROTO, VIGIL_ENOMEM or
                           VIGIL_ECLOSED (after free) */
  uint8_t state;        /* header, payload, failed */
  uint8_t hdr_len;      /* header bytes gathered in small[] */
  uint8_t type;         /* type of the frame being received */
  uint8_t in_callback;  /* guards against re-entrant feed() */
  uint32_t need;        /* payload length of the frame being received */
  uint32_t have;        /* payload bytes gathered so far */
  uint32_t buf_cap;
  uint8_t *buf;         /* heap payload buffer or NULL */
  uint8_t small[8];     /* header bytes, then payloads of <= 8 bytes */
  char detail[72];      /* error description, NUL-terminated */
} vigil_frame_parser;

/* Prepares p to accept payloads up to max_frame bytes
 * (VIGIL_FRAME_MAX_FRAME_MIN..VIGIL_FRAME_MAX_FRAME_MAX). Allocates
 * nothing; cannot fail otherwise. Returns VIGIL_OK or VIGIL_EINVAL. */
VIGIL_EXPORT int vigil_frame_parser_init(vigil_frame_parser *p,
                                         uint32_t max_frame);

/*
 * Parses len bytes, delivering every frame they complete to cb, in order.
 * Frames may be split anywhere across calls, and one call may hold many.
 * Returns:
 *   len             all bytes accepted (a trailing partial frame is kept);
 *   0..len-1        cb returned non-zero: the bytes up to and including
 *                   the frame it was given; nothing after was looked at,
 *                   and the caller may feed the rest later;
 *   VIGIL_EPROTO    malformed input, found as early as possible (a bad
 *                   header byte as soon as it arrives, a bad length on the
 *                   header alone). Frames before the fault were delivered.
 *                   vigil_frame_parser_error() says what was wrong. Sticky:
 *                   every later call returns VIGIL_EPROTO and delivers
 *                   nothing.
 *   VIGIL_ENOMEM    the split-frame buffer could not be allocated (sticky).
 *   VIGIL_ECLOSED   after vigil_frame_parser_free().
 *   VIGIL_EINVAL    p or cb NULL, or data NULL with len > 0.
 *   VIGIL_ESTATE    called from inside this parser's own callback.
 * The callback may call vigil_frame_parser_trim() or _free() on p (then
 * it must not use the payload afterwards); p itself must stay valid until
 * feed returns.
 */
VIGIL_EXPORT ssize_t vigil_frame_parser_feed(vigil_frame_parser *p,
                                             const void *data, size_t len,
                                             vigil_frame_cb cb,
                                             void *user_data);

/* Why the stream was rejected, e.g. "frame type 0x09 is unknown" or
 * "payload length 70000 exceeds max_frame 65536"; NULL if it was not. The
 * text lives in p and stays valid until p is initialised again. */
VIGIL_EXPORT const char *vigil_frame_parser_error(const vigil_frame_parser *p);

/* 1 if no frame is partly received (the stream is at a frame boundary). */
VIGIL_EXPORT int vigil_frame_parser_idle(const vigil_frame_parser *p);

/* Heap bytes the parser holds now (0 when idle and trimmed). */
VIGIL_EXPORT size_t vigil_frame_parser_held(const vigil_frame_parser *p);

/* Releases the heap buffer unless a frame is being gathered into it.
 * Returns the bytes released (0 if none or busy). */
VIGIL_EXPORT size_t vigil_frame_parser_trim(vigil_frame_parser *p);

/* Releases everything. Later feeds return VIGIL_ECLOSED until the parser
 * is initialised again. Safe on a zeroed or already freed parser. */
VIGIL_EXPORT void vigil_frame_parser_free(vigil_frame_parser *p);

/* ------------------------------------------------------------------------ */
/* Frames on a connection (policy.frame_codec = 1)                           */
/* ------------------------------------------------------------------------ */

/*
 * With the codec on, vigil parses what the peer sends: DATA payloads go to
 * on_data one frame per call, HELLO to on_hello (without one, vigil calls
 * vigil_conn_identify and vigil_conn_ready itself), PING is answered with
 * PONG, pings go out at ping_interval by themselves, and GOODBYE closes the
 * conn with reason peer_closed and detail "goodbye <code name>". Malformed
 * input, a frame over policy.max_frame or another protocol version closes
 * it with protocol_error and the parser's description as detail.
 *
 * Graceful closes that vigil decides (idle, handshake, shutdown, takeover
 * and other policy reasons) send GOODBYE first and let the peer close
 * first, as vigil_conn_goodbye does; vigil_close stays the plain
 * shutdown-send-first close.
 */

/* Sends payload as one DATA frame (header and payload are queued together
 * or not at all). VIGIL_ESTATE without the codec, VIGIL_EINVAL if len
 * exceeds policy.max_frame, else as vigil_send. */
VIGIL_EXPORT int vigil_send_data(vigil_conn *c, const void *payload,
                                 size_t len);

/*
 * Peer-first close: sends GOODBYE(code, text) and waits for the peer's FIN
 * before closing, so TIME_WAIT lands on the peer (a vigil peer closes at
 * once on GOODBYE). Input meanwhile is read and discarded; vigil_send
 * returns VIGIL_ECLOSED. If no FIN comes within drain_timeout of the last
 * byte sent, the conn closes first as with vigil_close (close detail "no
 * FIN after GOODBYE: closed first"). Reason closed_by_host (peer_closed in
 * CLOSE_WAIT). text: NULL or UTF-8 of at most VIGIL_FRAME_GOODBYE_TEXT_MAX
 * bytes. Returns VIGIL_OK, VIGIL_EINVAL (code > 0xFFFF, bad text),
 * VIGIL_ESTATE (codec off, watch-only), VIGIL_ECLOSED (already closing) or
 * vigil_send's error.
 */
VIGIL_EXPORT int vigil_conn_goodbye(vigil_conn *c, unsigned code,
                                    const char *text);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_FRAME_H */
