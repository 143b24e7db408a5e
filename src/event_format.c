/*
 * vigil_event_format: one event -> one log line, logfmt or JSON.
 *
 * The line is built through an output cursor that behaves like snprintf:
 * it counts every byte the full line needs and stores only what fits, so
 * the same code path measures (buf NULL / buflen 0), truncates, and writes.
 * Nothing is allocated; the only fixed buffers are small locals for
 * numbers, the timestamp and the evidence list.
 *
 * Field order is part of the format (people grep and diff these lines):
 *   ts event [worker] [conn] [peer] [identity] <per-type fields> [detail]
 * A field that does not apply to the event type is left out, never
 * printed as zero. worker comes before conn because conn ids are unique
 * per hub only: in a group, worker=N conn=M names one connection.
 *
 * Escaping:
 *  - logfmt: a value is wrapped in double quotes when it is empty or holds
 *    a space, '=', '"', '\\', a control byte (< 0x20) or DEL; inside the
 *    quotes \" \\ \n \r \t are escaped and other control bytes become
 *    \u00XX. Bytes >= 0x80 pass through untouched (logfmt is byte-oriented;
 *    valid UTF-8 such as "é" stays readable).
 *  - JSON: RFC 8259 string escapes (\" \\ \n \r \t \b \f, \u00XX for other
 *    control bytes and DEL). Every ill-formed UTF-8 byte (stray
 *    continuation, overlong form, surrogate, > U+10FFFF, cut sequence) is
 *    replaced by \ufffd, one replacement per rejected byte, so the output
 *    is always valid JSON in valid UTF-8.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "vigil.h"

typedef struct vigil__out {
  char *buf;
  size_t cap;  /* bytes of buf, including room for the NUL */
  size_t len;  /* bytes the full line needs so far (may exceed cap) */
  vigil_log_format fmt;
  int fields;  /* fields written so far, for separators */
} vigil__out;

/* ---- raw output -------------------------------------------------------- */

/* Appends n bytes: stores what fits before the NUL slot, counts all. */
static void put_bytes(vigil__out *o, const char *s, size_t n) {
  if (o->cap > 0 && o->len < o->cap - 1) {
    size_t room = o->cap - 1 - o->len;
    memcpy(o->buf + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

static void put_char(vigil__out *o, char c) { put_bytes(o, &c, 1); }

static void put_cstr(vigil__out *o, const char *s) {
  put_bytes(o, s, strlen(s));
}

/* Appends the \u00XX escape for a byte below 0x80. */
static void put_u00(vigil__out *o, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
  put_bytes(o, esc, sizeof esc);
}

/* Appends v in decimal. */
static void put_u64_digits(vigil__out *o, uint64_t v) {
  char tmp[20]; /* UINT64_MAX has 20 digits */
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put_bytes(o, tmp + i, sizeof tmp - i);
}

/* ---- escaping ---------------------------------------------------------- */

/* Escape for the common control characters, or 0 when there is none.
 * JSON has \b and \f; logfmt (Go-style %q readers) only the first five. */
static char short_escape(unsigned char c, int json) {
  switch (c) {
  case '"': return '"';
  case '\\': return '\\';
  case '\n': return 'n';
  case '\r': return 'r';
  case '\t': return 't';
  case '\b': return json ? 'b' : 0;
  case '\f': return json ? 'f' : 0;
  default: return 0;
  }
}

/* Appends byte c escaped for a quoted value when it must be, else as is.
 * Only called for c < 0x80. */
static void put_ascii_escaped(vigil__out *o, unsigned char c, int json) {
  char e = short_escape(c, json);
  if (e) {
    char pair[2] = {'\\', e};
    put_bytes(o, pair, 2);
  } else if (c < 0x20 || c == 0x7f) {
    put_u00(o, c);
  } else {
    put_char(o, (char)c);
  }
}

/* Byte classes, one table lookup per byte (a line is mostly strings):
 *   BARE    a logfmt value may hold it unquoted: not a space or control
 *           byte, '=', '"', '\\' or DEL (bytes >= 0x80 pass: UTF-8
 *           stays readable);
 *   QUOTED  copied as is inside logfmt quotes: printable ASCII but '"'
 *           and '\\', and bytes >= 0x80. Inside JSON strings only its
 *           ASCII part is (plain_ascii): JSON checks UTF-8. */
enum { BARE = 1, QUOTED = 2 };
static const unsigned char byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* ' ' '"' */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 3, /* '=' */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 3, 3, 3, /* '\\' */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, /* DEL */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

static int plain_ascii(unsigned char c) {
  return c < 0x80 && (byte_class[c] & QUOTED);
}

/* Runs of bytes that need nothing are copied whole: a log line is mostly
 * such runs, and a call per byte cost more than the rest of the line. */
static void put_logfmt_value(vigil__out *o, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  while (byte_class[p[n]] & BARE) n++; /* NUL is not BARE */
  if (p[n] == '\0' && n > 0) {
    put_bytes(o, s, n);
    return;
  }
  put_char(o, '"');
  while (*p) {
    size_t run = 0;
    while (byte_class[p[run]] & QUOTED) run++;
    put_bytes(o, (const char *)p, run);
    p += run;
    if (*p) put_ascii_escaped(o, *p++, 0);
  }
  put_char(o, '"');
}

/*
 * Length of the well-formed UTF-8 sequence starting at p (at most avail
 * bytes), or 0 if it is ill-formed. The second-byte bounds exclude
 * overlong forms (E0, F0), UTF-16 surrogates (ED) and code points above
 * U+10FFFF (F4), following the Unicode well-formed byte sequence table.
 */
static size_t utf8_seq_len(const unsigned char *p, size_t avail) {
  unsigned char c = p[0], lo = 0x80, hi = 0xbf;
  size_t n;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0)
      lo = 0xa0;
    else if (c == 0xed)
      hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0)
      lo = 0x90;
    else if (c == 0xf4)
      hi = 0x8f;
  } else {
    return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
  }
  if (avail < n || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++) {
    if (p[i] < 0x80 || p[i] > 0xbf)
      return 0;
  }
  return n;
}

static void put_json_string(vigil__out *o, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s);
  put_char(o, '"');
  while (left > 0) {
    size_t run = 0;
    while (run < left && plain_ascii(p[run])) run++;
    put_bytes(o, (const char *)p, run);
    p += run;
    left -= run;
    if (left == 0) break;
    size_t n = utf8_seq_len(p, left);
    if (n == 0) {
      put_cstr(o, "\\ufffd");
      n = 1;
    } else if (n == 1) {
      put_ascii_escaped(o, *p, 1);
    } else {
      put_bytes(o, (const char *)p, n);
    }
    p += n;
    left -= n;
  }
  put_char(o, '"');
}

/* ---- fields ------------------------------------------------------------ */

/* Starts a field: separator, then the key and its '=' or ':', in one
 * put. Keys are our own snake_case constants (KEY() gives a literal's
 * length) and never need escaping. */
#define KEY(k) k, sizeof(k) - 1
#define KEY_MAX 40

static void append_key(vigil__out *o, const char *key, size_t klen) {
  char tmp[KEY_MAX + 4];
  size_t n = 0;
  int json = o->fmt == VIGIL_LOG_JSON;
  if (klen > KEY_MAX) klen = KEY_MAX;
  if (o->fields > 0) tmp[n++] = json ? ',' : ' ';
  if (json) tmp[n++] = '"';
  memcpy(tmp + n, key, klen);
  n += klen;
  if (json) tmp[n++] = '"';
  tmp[n++] = json ? ':' : '=';
  put_bytes(o, tmp, n);
  o->fields++;
}

static void append_str(vigil__out *o, const char *key, size_t klen,
                       const char *value) {
  append_key(o, key, klen);
  if (o->fmt == VIGIL_LOG_JSON)
    put_json_string(o, value);
  else
    put_logfmt_value(o, value);
}

/* Numbers are bare in both formats (JSON numbers, unquoted logfmt). */
static void append_u64(vigil__out *o, const char *key, size_t klen,
                       uint64_t v) {
  append_key(o, key, klen);
  put_u64_digits(o, v);
}

static void append_i64(vigil__out *o, const char *key, size_t klen,
                       int64_t v) {
  append_key(o, key, klen);
  if (v < 0) {
    put_char(o, '-');
    /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
    put_u64_digits(o, (uint64_t)0 - (uint64_t)v);
  } else {
    put_u64_digits(o, (uint64_t)v);
  }
}

/* 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can express. */
#define VIGIL__TS_MAX_MS 253402300799999ull

/* Writes v as exactly width decimal digits (zero-padded) at p; returns the
 * position after them. */
static char *fixed_digits(char *p, unsigned v, int width) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

/* Days since 1970-01-01 as a proleptic Gregorian date (y, 1..12, 1..31),
 * counting in 400-year eras of 146,097 days from 0000-03-01 so that leap
 * days fall at the end of each counted year (H. Hinnant, "chrono-
 * compatible low-level date algorithms"). Pure arithmetic: gmtime_r takes
 * the time zone lock and costs about 1,000 instructions, once per event
 * line. days >= 0 here (ts_ms is unsigned). */
static void civil_from_days(uint64_t days, unsigned *y, unsigned *m,
                            unsigned *d) {
  uint64_t z = days + 719468; /* days from 0000-03-01 */
  uint64_t era = z / 146097;
  unsigned doe = (unsigned)(z - era * 146097);                /* 0..146096 */
  unsigned yoe =
      (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);      /* 0..365 */
  unsigned mp = (5 * doy + 2) / 153;                           /* March = 0 */
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (unsigned)(era * 400 + yoe) + (*m <= 2);
}

/* ts as UTC RFC 3339 with milliseconds. A timestamp past year 9999 (a
 * broken clock) is clamped so the field always parses as RFC 3339. */
static void append_ts(vigil__out *o, uint64_t ts_ms) {
  char tmp[sizeof "YYYY-MM-DDTHH:MM:SS.mmmZ"];
  char *p = tmp;
  if (ts_ms > VIGIL__TS_MAX_MS)
    ts_ms = VIGIL__TS_MAX_MS;
  uint64_t secs = ts_ms / 1000;
  unsigned sod = (unsigned)(secs % 86400), y, mon, day;
  civil_from_days(secs / 86400, &y, &mon, &day);
  p = fixed_digits(p, y, 4);
  *p++ = '-';
  p = fixed_digits(p, mon, 2);
  *p++ = '-';
  p = fixed_digits(p, day, 2);
  *p++ = 'T';
  p = fixed_digits(p, sod / 3600, 2);
  *p++ = ':';
  p = fixed_digits(p, sod / 60 % 60, 2);
  *p++ = ':';
  p = fixed_digits(p, sod % 60, 2);
  *p++ = '.';
  p = fixed_digits(p, (unsigned)(ts_ms % 1000), 3);
  *p++ = 'Z';
  *p = '\0';
  append_str(o, KEY("ts"), tmp);
}

/* ---- field groups ------------------------------------------------------ */

static void append_ages(vigil__out *o, const vigil_event *ev) {
  append_u64(o, KEY("age_ms"), ev->age_ms);
  append_i64(o, KEY("last_rx_ms"), ev->last_rx_ms);
  append_i64(o, KEY("last_tx_ms"), ev->last_tx_ms);
}

/* errno as a number, plus its symbolic name where libc can tell it. */
static void append_errno(vigil__out *o, int err) {
  append_i64(o, KEY("errno"), err);
#if defined(__GLIBC__) &&                                                    \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = err != 0 ? strerrorname_np(err) : NULL;
  if (name != NULL)
    append_str(o, KEY("errno_name"), name);
#endif
}

static void append_sockopts(vigil__out *o, const vigil_sockopts *so) {
  append_i64(o, KEY("keepalive"), so->keepalive);
  append_i64(o, KEY("keepalive_idle_s"), so->keepalive_idle_s);
  append_i64(o, KEY("keepalive_intvl_s"), so->keepalive_intvl_s);
  append_i64(o, KEY("keepalive_cnt"), so->keepalive_cnt);
  append_u64(o, KEY("user_timeout_ms"), so->user_timeout_ms);
  append_i64(o, KEY("fin_wait2_s"), so->fin_wait2_s);
  append_i64(o, KEY("nodelay"), so->nodelay);
}

static void append_tcp_info(vigil__out *o, const vigil_tcp_info *ti) {
  append_str(o, KEY("tcp_state"), vigil_tcp_state_name(ti->state));
  append_u64(o, KEY("rtt_us"), ti->rtt_us);
  append_u64(o, KEY("rttvar_us"), ti->rttvar_us);
  append_u64(o, KEY("unacked"), ti->unacked);
  append_u64(o, KEY("retransmits"), ti->retransmits);
  append_u64(o, KEY("backoff"), ti->backoff);
  append_u64(o, KEY("probes"), ti->probes);
  append_u64(o, KEY("last_data_recv_ms"), ti->last_data_recv_ms);
  append_u64(o, KEY("last_ack_recv_ms"), ti->last_ack_recv_ms);
}

/* evidence as "unacked_retrans,probes,ack_silence" (the bits that are
 * set, in bit order). Bits this version does not know are appended as one
 * hex token so they are not lost. Left out when no bit is set. */
static void append_evidence(vigil__out *o, uint32_t bits) {
  static const struct {
    uint32_t bit;
    const char *name;
  } known[] = {
      {VIGIL_SUSPECT_UNACKED_RETRANS, "unacked_retrans"},
      {VIGIL_SUSPECT_PROBES, "probes"},
      {VIGIL_SUSPECT_ACK_SILENCE, "ack_silence"},
      {VIGIL_EVIDENCE_PING_OUTSTANDING, "ping_outstanding"},
      {VIGIL_EVIDENCE_SUSPECTED, "suspected"},
  };
  char tmp[128];
  size_t n = 0;
  uint32_t rest = bits;
  if (bits == 0)
    return;
  tmp[0] = '\0';
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    if (bits & known[i].bit) {
      n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%s%s", n ? "," : "",
                            known[i].name);
      rest &= ~known[i].bit;
    }
  }
  if (rest != 0)
    snprintf(tmp + n, sizeof tmp - n, "%s0x%x", n ? "," : "", (unsigned)rest);
  append_str(o, KEY("evidence"), tmp);
}

/* A takeover's verdict on the displaced conn: class=ghost|live and its
 * evidence; left out when the class is not known here (unknown). */
static void append_class(vigil__out *o, const vigil_event *ev) {
  if (ev->peer_class == VIGIL_PEER_UNKNOWN)
    return;
  append_str(o, KEY("class"), vigil_peer_class_name(ev->peer_class));
  append_evidence(o, ev->evidence);
}

/* One field per non-zero kernel state count, keyed by the lowercase state
 * name (established=, close_wait=, ...); an index the kernel does not
 * name is keyed state_<n>. */
static void append_census(vigil__out *o, const uint32_t *counts) {
  for (int st = 0; st < VIGIL_TCP_STATE__COUNT; st++) {
    if (counts[st] == 0)
      continue;
    const char *name = vigil_tcp_state_name(st);
    char key[32];
    if (strcmp(name, "UNKNOWN") == 0) {
      snprintf(key, sizeof key, "state_%d", st);
    } else {
      size_t i = 0;
      for (; name[i] != '\0' && i < sizeof key - 1; i++) {
        char c = name[i];
        key[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
      }
      key[i] = '\0';
    }
    append_u64(o, key, strlen(key), counts[st]);
  }
}

/*
 * tls_resumed is an int whose "n/a" value is -1, but an event built with
 * memset/{0} carries 0 there, which would print a false "tls_resumed=0"
 * on every plain-TCP open. So 1 (resumed) is always printed, while 0
 * (full handshake) is printed only when the producer marks the open event
 * as TLS with detail "tls". -1 and any other value are never printed.
 */
static int tls_resumed_applies(const vigil_event *ev) {
  if (ev->tls_resumed == 1)
    return 1;
  return ev->tls_resumed == 0 && ev->detail != NULL &&
         strcmp(ev->detail, "tls") == 0;
}

/* The fields specific to the event type, in their stable order. */
static void append_type_fields(vigil__out *o, const vigil_event *ev) {
  switch (ev->type) {
  case VIGIL_EV_OPEN:
    if (ev->sockopts != NULL)
      append_sockopts(o, ev->sockopts);
    if (tls_resumed_applies(ev))
      append_i64(o, KEY("tls_resumed"), ev->tls_resumed);
    break;
  case VIGIL_EV_PING_DUE:
    append_i64(o, KEY("last_tx_ms"), ev->last_tx_ms);
    break;
  case VIGIL_EV_IDLE:
    append_str(o, KEY("idle"), vigil_idle_kind_name(ev->idle_kind));
    append_i64(o, KEY("last_rx_ms"), ev->last_rx_ms);
    append_i64(o, KEY("last_tx_ms"), ev->last_tx_ms);
    break;
  case VIGIL_EV_DEAD:
  case VIGIL_EV_SUSPECT:
    /* A suspect conn is not closing yet, so its reason is usually none;
     * print reason only where it carries information. */
    if (ev->type == VIGIL_EV_DEAD || ev->reason != VIGIL_REASON_NONE)
      append_str(o, KEY("reason"), vigil_reason_name(ev->reason));
    append_ages(o, ev);
    if (ev->tcp_info != NULL)
      append_tcp_info(o, ev->tcp_info);
    if (ev->type == VIGIL_EV_SUSPECT)
      append_evidence(o, ev->evidence);
    break;
  case VIGIL_EV_PEER_FIN:
  case VIGIL_EV_DRAINING:
    append_ages(o, ev);
    break;
  case VIGIL_EV_CLOSE:
    append_str(o, KEY("reason"), vigil_reason_name(ev->reason));
    if (ev->cause != VIGIL_REASON_NONE)
      append_str(o, KEY("cause"), vigil_reason_name(ev->cause));
    append_ages(o, ev);
    append_u64(o, KEY("bytes_in"), ev->bytes_in);
    append_u64(o, KEY("bytes_out"), ev->bytes_out);
    if (ev->sys_errno != 0)
      append_errno(o, ev->sys_errno);
    if (ev->truncated)
      append_u64(o, KEY("truncated"), 1);
    append_class(o, ev);
    break;
  case VIGIL_EV_ACCEPT_PAUSED:
    append_errno(o, ev->sys_errno);
    append_u64(o, KEY("retry_ms"), ev->retry_ms);
    break;
  case VIGIL_EV_READY:
    append_u64(o, KEY("age_ms"), ev->age_ms);
    break;
  case VIGIL_EV_TAKEOVER:
    /* Across nodes the claimant's conn id is another node's: not shown. */
    if (ev->scope != VIGIL_SCOPE_CLUSTER)
      append_u64(o, KEY("other_conn"), ev->other_conn_id);
    append_str(o, KEY("scope"), vigil_scope_name(ev->scope));
    /* A worker index says something only across workers; within one hub
     * it is the event's own worker. */
    if (ev->scope == VIGIL_SCOPE_WORKER && ev->other_worker >= 0)
      append_i64(o, KEY("other_worker"), ev->other_worker);
    if (ev->scope == VIGIL_SCOPE_CLUSTER && ev->other_node != NULL)
      append_str(o, KEY("other_node"), ev->other_node);
    append_class(o, ev);
    break;
  case VIGIL_EV_FLAPPING:
  case VIGIL_EV_GHOSTS:
    append_u64(o, KEY("count"), ev->count);
    break;
  case VIGIL_EV_CENSUS:
    if (ev->state_counts != NULL)
      append_census(o, ev->state_counts);
    break;
  case VIGIL_EV_ACCEPT_RESUMED:
  case VIGIL_EV_SHUTDOWN:
  case VIGIL_EV_CLIENT:
  case VIGIL_EV_DIRECTORY_DOWN: /* detail: why */
  case VIGIL_EV_DIRECTORY_UP:
  case VIGIL_EV_DIRECTORY_ERROR:
  default:
    break;
  }
}

/* Writes the NUL after the stored prefix (if there is any room at all). */
static void terminate(vigil__out *o) {
  if (o->cap > 0)
    o->buf[o->len < o->cap - 1 ? o->len : o->cap - 1] = '\0';
}

/*
 * Returns the full line length (excluding the NUL), like snprintf.
 * VIGIL_EINVAL (-1) for a NULL event or an unknown format, with buf[0]
 * set to '\0' when buflen > 0; VIGIL_EOVERFLOW if the line would not fit
 * in an int (only possible with multi-gigabyte strings).
 */
int vigil_event_format(const vigil_event *ev, vigil_log_format fmt,
                       char *buf, size_t buflen) {
  vigil__out o = {buf, buf != NULL ? buflen : 0, 0, fmt, 0};
  if (ev == NULL || (fmt != VIGIL_LOG_LOGFMT && fmt != VIGIL_LOG_JSON)) {
    terminate(&o);
    return VIGIL_EINVAL;
  }
  if (fmt == VIGIL_LOG_JSON)
    put_char(&o, '{');
  append_ts(&o, ev->ts_ms);
  append_str(&o, KEY("event"), vigil_event_name(ev->type));
  if (ev->worker >= 0)
    append_i64(&o, KEY("worker"), ev->worker);
  if (ev->conn_id != 0)
    append_u64(&o, KEY("conn"), ev->conn_id);
  if (ev->peer != NULL)
    append_str(&o, KEY("peer"), ev->peer);
  if (ev->identity != NULL)
    append_str(&o, KEY("identity"), ev->identity);
  append_type_fields(&o, ev);
  if (ev->detail != NULL)
    append_str(&o, KEY("detail"), ev->detail);
  if (fmt == VIGIL_LOG_JSON)
    put_char(&o, '}');
  terminate(&o);
  return o.len > (size_t)INT_MAX ? VIGIL_EOVERFLOW : (int)o.len;
}
