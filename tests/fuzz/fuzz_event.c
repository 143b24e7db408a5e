/*
 * libFuzzer target for vigil_event_format (src/event_format.c), built by
 * tests/fuzz/run_fuzz.sh.
 *
 * Input, read front to back (missing bytes read as zero):
 *   u8   format: 0 logfmt, 1 JSON, anything else taken as is (invalid)
 *   u16  buffer size for the truncation check (LE); bit 15 = pass NULL
 *   i32  event type, reason, cause, sys_errno, idle_kind, truncated,
 *        tls_resumed (any value, out of range included)
 *   u64  ts_ms, conn_id, age_ms, bytes_in, bytes_out, other_conn_id;
 *   i64  last_rx_ms, last_tx_ms; u32 retry_ms, evidence, count
 *   u8   presence bits: sockopts, tcp_info, state_counts (each then read
 *        from the input when present, else NULL)
 *   3 strings (peer, identity, detail): u8 tag (0 = NULL), u16 length
 *        (LE), that many bytes + a NUL; an embedded NUL cuts the string
 *   i32  worker, scope, other_worker, peer_class, then the string
 *        other_node (last, in the order they were added to vigil_event, so
 *        older inputs read them as zeros and NULL)
 *
 * Invariants checked (abort on violation):
 * - snprintf semantics: the return value is the full length whatever the
 *   buffer (NULL, 0, 1, tiny, exact); the stored prefix matches the full
 *   line; it is NUL-terminated within buflen; nothing is written past it;
 * - the line is one line: no byte below 0x20 and no DEL anywhere;
 * - JSON: the line is one object that a strict validator accepts (RFC 8259
 *   grammar, valid UTF-8, valid escapes, no raw control characters,
 *   unique keys); strings decode to the input with each ill-formed UTF-8
 *   byte replaced by U+FFFD;
 * - logfmt: key=value pairs separated by single spaces, unique keys,
 *   values quoted exactly when they must be, and the quoted escapes
 *   decode back to the exact input bytes;
 * - "ts" is RFC 3339 UTC with milliseconds and "event" is the type name;
 *   "worker" follows them exactly when the event's worker is >= 0;
 * - a takeover event carries "scope" (its name, or "unknown"), and
 *   "other_worker" exactly when the scope is worker and the index >= 0;
 *   "other_conn" exactly when the scope is not cluster, "other_node"
 *   exactly when it is and other_node is set; other events carry none;
 * - a takeover or close event carries "class" (its name, or "unknown")
 *   exactly when peer_class is not VIGIL_PEER_UNKNOWN, with "evidence"
 *   only next to it; other events carry no class;
 * - a NULL event or unknown format gives VIGIL_EINVAL and an empty buffer.
 */
#include "fuzz_common.h"
#include "vigil.h"

#include <string.h>

/* ---- input reader ------------------------------------------------------ */

typedef struct input {
  const uint8_t *p;
  size_t left;
} input;

static void take(input *in, void *out, size_t n) {
  size_t k = n < in->left ? n : in->left;
  memset(out, 0, n);
  memcpy(out, in->p, k);
  in->p += k;
  in->left -= k;
}

static uint8_t take_u8(input *in) {
  uint8_t v;
  take(in, &v, 1);
  return v;
}

static uint16_t take_u16(input *in) {
  uint8_t b[2];
  take(in, b, 2);
  return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t take_u32(input *in) {
  uint8_t b[4];
  take(in, b, 4);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
         (uint32_t)b[3] << 24;
}

static uint64_t take_u64(input *in) {
  uint64_t lo = take_u32(in);
  return lo | (uint64_t)take_u32(in) << 32;
}

/* A string as the host might pass it: NULL, or bytes up to a NUL. */
static char *take_str(input *in) {
  if (take_u8(in) == 0) return NULL;
  size_t n = take_u16(in);
  if (n > in->left) n = in->left;
  char *s = malloc(n + 1);
  CHECK(s != NULL);
  take(in, s, n);
  s[n] = '\0';
  return s;
}

/* ---- decoded values ---------------------------------------------------- */

#define MAX_FIELDS 64

/* The fields of one parsed line; values decoded (unescaped). */
typedef struct fields {
  size_t n;
  char key[MAX_FIELDS][32];
  uint8_t *val[MAX_FIELDS];
  size_t len[MAX_FIELDS];
  int is_string[MAX_FIELDS];
} fields;

static void fields_free(fields *f) {
  for (size_t i = 0; i < f->n; i++) free(f->val[i]);
  f->n = 0;
}

/* Adds a key; aborts on a duplicate. Returns its index. */
static size_t field_add(fields *f, const uint8_t *key, size_t klen) {
  CHECK(f->n < MAX_FIELDS && klen > 0 && klen < sizeof f->key[0]);
  char k[32];
  memcpy(k, key, klen);
  k[klen] = '\0';
  for (size_t i = 0; i < f->n; i++) CHECK(strcmp(f->key[i], k) != 0);
  memcpy(f->key[f->n], k, klen + 1);
  f->val[f->n] = NULL;
  f->len[f->n] = 0;
  f->is_string[f->n] = 0;
  return f->n++;
}

static int field_find(const fields *f, const char *key) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->key[i], key) == 0) return (int)i;
  return -1;
}

/* ---- strict JSON validator --------------------------------------------- */

typedef struct jp {
  const uint8_t *s;
  size_t n, i;
  int depth;
} jp;

static int j_peek(const jp *j) { return j->i < j->n ? j->s[j->i] : -1; }

static void j_ws(jp *j) {
  while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
                         j->s[j->i] == '\n' || j->s[j->i] == '\r'))
    j->i++;
}

static int j_lit(jp *j, const char *lit) {
  size_t n = strlen(lit);
  if (j->n - j->i < n || memcmp(j->s + j->i, lit, n) != 0) return 0;
  j->i += n;
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int j_hex4(jp *j, uint32_t *v) {
  *v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(j_peek(j));
    if (h < 0) return 0;
    *v = *v << 4 | (uint32_t)h;
    j->i++;
  }
  return 1;
}

static size_t put_utf8(uint8_t *out, uint32_t cp) {
  if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* A string; its decoded bytes go to out (room for n bytes) if not NULL. */
static int j_string(jp *j, uint8_t *out, size_t *olen) {
  size_t o = 0;
  if (j_peek(j) != '"') return 0;
  j->i++;
  for (;;) {
    int c = j_peek(j);
    if (c < 0) return 0; /* unterminated */
    if (c == '"') {
      j->i++;
      break;
    }
    if (c < 0x20) return 0; /* raw control character */
    uint8_t tmp[4];
    size_t tn;
    if (c == '\\') {
      j->i++;
      int e = j_peek(j);
      j->i++;
      uint32_t cp;
      switch (e) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (!j_hex4(j, &cp)) return 0;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* lone low half */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (!j_lit(j, "\\u") || !j_hex4(j, &lo) || lo < 0xDC00 ||
              lo > 0xDFFF)
            return 0; /* a high half must pair */
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        break;
      default: return 0;
      }
      tn = put_utf8(tmp, cp);
    } else {
      uint32_t cp;
      tn = ref_utf8_decode(j->s + j->i, j->n - j->i, &cp);
      if (tn == 0) return 0; /* ill-formed UTF-8 */
      memcpy(tmp, j->s + j->i, tn);
      j->i += tn;
    }
    if (out) memcpy(out + o, tmp, tn);
    o += tn;
  }
  if (olen) *olen = o;
  return 1;
}

static int j_digits(jp *j) {
  size_t start = j->i;
  while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
  return j->i > start;
}

static int j_number(jp *j) {
  if (j_peek(j) == '-') j->i++;
  if (j_peek(j) == '0') j->i++;
  else if (!j_digits(j)) return 0;
  if (j_peek(j) == '.') {
    j->i++;
    if (!j_digits(j)) return 0;
  }
  if (j_peek(j) == 'e' || j_peek(j) == 'E') {
    j->i++;
    if (j_peek(j) == '+' || j_peek(j) == '-') j->i++;
    if (!j_digits(j)) return 0;
  }
  return 1;
}

static int j_object(jp *j, fields *top);

static int j_value(jp *j) {
  int c = j_peek(j);
  if (c == '"') return j_string(j, NULL, NULL);
  if (c == '{') return j_object(j, NULL);
  if (c == '[') {
    if (++j->depth > 32) return 0;
    j->i++;
    j_ws(j);
    if (j_peek(j) == ']') {
      j->i++;
      j->depth--;
      return 1;
    }
    for (;;) {
      j_ws(j);
      if (!j_value(j)) return 0;
      j_ws(j);
      if (j_peek(j) == ']') break;
      if (j_peek(j) != ',') return 0;
      j->i++;
    }
    j->i++;
    j->depth--;
    return 1;
  }
  if (c == 't') return j_lit(j, "true");
  if (c == 'f') return j_lit(j, "false");
  if (c == 'n') return j_lit(j, "null");
  return j_number(j);
}

/* An object; with top, its keys and string values are recorded. */
static int j_object(jp *j, fields *top) {
  if (j_peek(j) != '{' || ++j->depth > 32) return 0;
  j->i++;
  j_ws(j);
  if (j_peek(j) == '}') {
    j->i++;
    j->depth--;
    return 1;
  }
  for (;;) {
    j_ws(j);
    uint8_t key[64];
    size_t klen, kstart = j->i;
    if (j_peek(j) != '"') return 0;
    if (top) {
      /* our keys are short; measure first so key[] cannot overflow */
      if (!j_string(j, NULL, &klen) || klen >= sizeof key) return 0;
      j->i = kstart;
      j_string(j, key, &klen);
    } else if (!j_string(j, NULL, NULL)) {
      return 0;
    }
    j_ws(j);
    if (j_peek(j) != ':') return 0;
    j->i++;
    j_ws(j);
    if (top) {
      size_t k = field_add(top, key, klen);
      if (j_peek(j) == '"') {
        top->val[k] = malloc(j->n + 1);
        CHECK(top->val[k] != NULL);
        top->is_string[k] = 1;
        if (!j_string(j, top->val[k], &top->len[k])) return 0;
      } else {
        size_t vstart = j->i;
        if (!j_value(j)) return 0;
        top->len[k] = j->i - vstart;
        top->val[k] = malloc(top->len[k] + 1);
        CHECK(top->val[k] != NULL);
        memcpy(top->val[k], j->s + vstart, top->len[k]);
      }
    } else if (!j_value(j)) {
      return 0;
    }
    j_ws(j);
    if (j_peek(j) == '}') break;
    if (j_peek(j) != ',') return 0;
    j->i++;
  }
  j->i++;
  j->depth--;
  return 1;
}

/* 1 if line[0..n) is exactly one JSON object (surrounding whitespace
 * allowed); its top-level fields go to f. */
static int json_valid(const char *line, size_t n, fields *f) {
  jp j = {(const uint8_t *)line, n, 0, 0};
  j_ws(&j);
  if (!j_object(&j, f)) return 0;
  j_ws(&j);
  return j.i == n;
}

/* ---- logfmt reader ----------------------------------------------------- */

/* Bytes that force a logfmt value into quotes (event_format.c's rule). */
static int logfmt_special(uint8_t c) {
  return c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7F;
}

/* 1 if line is key=value pairs separated by single spaces; fields to f. */
static int logfmt_valid(const char *line, size_t n, fields *f) {
  const uint8_t *s = (const uint8_t *)line;
  size_t i = 0;
  if (n == 0) return 0;
  for (;;) {
    size_t kstart = i;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') ||
                     (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      i++;
    if (i == kstart || i >= n || s[i] != '=') return 0;
    size_t k = field_add(f, s + kstart, i - kstart);
    i++;
    uint8_t *v = malloc(n + 1);
    CHECK(v != NULL);
    f->val[k] = v;
    size_t o = 0;
    if (i < n && s[i] == '"') {
      f->is_string[k] = 1;
      int special = 0;
      for (i++;; i++) {
        if (i >= n) return 0; /* unterminated */
        uint8_t c = s[i];
        if (c == '"') break;
        if (c < 0x20 || c == 0x7F) return 0;
        if (c == '\\') {
          if (++i >= n) return 0;
          switch (s[i]) {
          case '"': c = '"'; break;
          case '\\': c = '\\'; break;
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          case 'u': {
            if (n - i < 5 || s[i + 1] != '0' || s[i + 2] != '0') return 0;
            int hi = hexval(s[i + 3]), lo = hexval(s[i + 4]);
            if (hi < 0 || lo < 0) return 0;
            c = (uint8_t)(hi << 4 | lo);
            /* only bytes without a short escape are spelled \u00XX */
            if (!(c < 0x20 || c == 0x7F) || c == '\n' || c == '\r' ||
                c == '\t')
              return 0;
            i += 4;
            break;
          }
          default: return 0;
          }
        }
        special |= logfmt_special(c);
        v[o++] = c;
      }
      i++;
      if (o > 0 && !special) return 0; /* quoted without need */
    } else {
      while (i < n && s[i] != ' ') {
        if (logfmt_special(s[i])) return 0;
        v[o++] = s[i++];
      }
      if (o == 0) return 0; /* an empty value must be quoted */
    }
    f->len[k] = o;
    if (i == n) return 1;
    if (s[i] != ' ') return 0;
    i++;
  }
}

/* ---- field checks ------------------------------------------------------ */

/* What the JSON writer promises for s: each ill-formed byte -> U+FFFD. */
static size_t json_sanitised(const char *s, uint8_t *out) {
  const uint8_t *p = (const uint8_t *)s;
  size_t left = strlen(s), o = 0;
  while (left > 0) {
    uint32_t cp;
    size_t n = ref_utf8_decode(p, left, &cp);
    if (n == 0) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      n = 1;
    } else {
      memcpy(out + o, p, n);
      o += n;
    }
    p += n;
    left -= n;
  }
  return o;
}

/* The string field key carries exactly s (or is absent when s is NULL). */
static void check_string_field(const fields *f, const char *key,
                               const char *s, int json) {
  int k = field_find(f, key);
  if (s == NULL) {
    CHECK(k < 0);
    return;
  }
  CHECK(k >= 0);
  if (json) {
    CHECK(f->is_string[k]);
    uint8_t *want = malloc(3 * strlen(s) + 1);
    CHECK(want != NULL);
    size_t n = json_sanitised(s, want);
    CHECK(f->len[k] == n && memcmp(f->val[k], want, n) == 0);
    free(want);
  } else {
    CHECK(f->len[k] == strlen(s) && memcmp(f->val[k], s, f->len[k]) == 0);
  }
}

static void check_fields(const fields *f, const vigil_event *ev, int json) {
  CHECK(f->n >= 2);
  CHECK(strcmp(f->key[0], "ts") == 0 && strcmp(f->key[1], "event") == 0);
  /* YYYY-MM-DDTHH:MM:SS.mmmZ */
  const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
  CHECK(f->len[0] == strlen(pat));
  for (size_t i = 0; pat[i]; i++) {
    uint8_t c = f->val[0][i];
    CHECK(pat[i] == 'd' ? (c >= '0' && c <= '9') : c == (uint8_t)pat[i]);
  }
  if (ev->ts_ms <= 253402300799999ull) {
    unsigned ms = (unsigned)(ev->ts_ms % 1000);
    char want[4];
    snprintf(want, sizeof want, "%03u", ms);
    CHECK(memcmp(f->val[0] + 20, want, 3) == 0);
  }
  const char *name = vigil_event_name(ev->type);
  CHECK(f->len[1] == strlen(name) && memcmp(f->val[1], name, f->len[1]) == 0);
  check_string_field(f, "peer", ev->peer, json);
  check_string_field(f, "identity", ev->identity, json);
  check_string_field(f, "detail", ev->detail, json);
  /* detail, when present, is the last field */
  if (ev->detail) CHECK(strcmp(f->key[f->n - 1], "detail") == 0);
  int worker = field_find(f, "worker");
  CHECK((worker >= 0) == (ev->worker >= 0));
  if (worker >= 0) {
    char want[16];
    int n = snprintf(want, sizeof want, "%d", (int)ev->worker);
    CHECK(worker == 2);
    CHECK(f->len[worker] == (size_t)n &&
          memcmp(f->val[worker], want, n) == 0);
  }
  int scope = field_find(f, "scope");
  int other = field_find(f, "other_worker");
  CHECK((scope >= 0) == (ev->type == VIGIL_EV_TAKEOVER));
  if (scope >= 0) {
    const char *want = vigil_scope_name(ev->scope);
    CHECK(f->len[scope] == strlen(want) &&
          memcmp(f->val[scope], want, f->len[scope]) == 0);
  }
  CHECK((other >= 0) == (ev->type == VIGIL_EV_TAKEOVER &&
                         ev->scope == VIGIL_SCOPE_WORKER &&
                         ev->other_worker >= 0));
  if (other >= 0) {
    char want[16];
    int n = snprintf(want, sizeof want, "%d", (int)ev->other_worker);
    CHECK(f->len[other] == (size_t)n &&
          memcmp(f->val[other], want, n) == 0);
  }
  int oconn = field_find(f, "other_conn");
  CHECK((oconn >= 0) == (ev->type == VIGIL_EV_TAKEOVER &&
                         ev->scope != VIGIL_SCOPE_CLUSTER));
  CHECK((field_find(f, "other_node") >= 0) ==
        (ev->type == VIGIL_EV_TAKEOVER && ev->scope == VIGIL_SCOPE_CLUSTER &&
         ev->other_node != NULL));
  if (ev->type == VIGIL_EV_TAKEOVER && ev->scope == VIGIL_SCOPE_CLUSTER)
    check_string_field(f, "other_node", ev->other_node, json);
  int cls = field_find(f, "class");
  CHECK((cls >= 0) == ((ev->type == VIGIL_EV_TAKEOVER ||
                        ev->type == VIGIL_EV_CLOSE) &&
                       ev->peer_class != VIGIL_PEER_UNKNOWN));
  if (cls >= 0) {
    const char *want = vigil_peer_class_name(ev->peer_class);
    CHECK(f->len[cls] == strlen(want) &&
          memcmp(f->val[cls], want, f->len[cls]) == 0);
  }
  if (ev->type == VIGIL_EV_TAKEOVER || ev->type == VIGIL_EV_CLOSE)
    CHECK(cls >= 0 || field_find(f, "evidence") < 0);
  int conn = field_find(f, "conn");
  CHECK((conn >= 0) == (ev->conn_id != 0));
  if (conn >= 0) {
    char want[24];
    int n = snprintf(want, sizeof want, "%llu",
                     (unsigned long long)ev->conn_id);
    CHECK(f->len[conn] == (size_t)n && memcmp(f->val[conn], want, n) == 0);
  }
}

/* ---- driver ------------------------------------------------------------ */

static void check_line(const vigil_event *ev, int fmt, const char *line,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)line[i];
    CHECK(c >= 0x20 && c != 0x7F); /* one line: no '\n', '\r' or other */
  }
  fields f;
  memset(&f, 0, sizeof f);
  if (fmt == VIGIL_LOG_JSON) {
    CHECK(json_valid(line, n, &f));
  } else {
    CHECK(logfmt_valid(line, n, &f));
  }
  check_fields(&f, ev, fmt == VIGIL_LOG_JSON);
  fields_free(&f);
}

/* Formats into a buffer of exactly buflen bytes (or NULL) and compares
 * with the full line. */
static void check_truncated(const vigil_event *ev, int fmt, const char *full,
                            int want, size_t buflen, int pass_null) {
  if (pass_null) {
    CHECK(vigil_event_format(ev, (vigil_log_format)fmt, NULL, buflen) ==
          want);
    return;
  }
  /* one guard byte past buflen, checked by hand (ASan also watches) */
  char *buf = malloc(buflen + 1);
  CHECK(buf != NULL);
  memset(buf, 0x5A, buflen + 1);
  CHECK(vigil_event_format(ev, (vigil_log_format)fmt, buf, buflen) == want);
  CHECK((uint8_t)buf[buflen] == 0x5A);
  if (buflen > 0) {
    size_t kept = (size_t)want < buflen - 1 ? (size_t)want : buflen - 1;
    CHECK(buf[kept] == '\0');
    CHECK(memcmp(buf, full, kept) == 0);
    for (size_t i = kept + 1; i < buflen; i++)
      CHECK((uint8_t)buf[i] == 0x5A);
  }
  free(buf);
}

static void check_format(const vigil_event *ev, int fmt, size_t buflen,
                         int pass_null) {
  int want = vigil_event_format(ev, (vigil_log_format)fmt, NULL, 0);
  if (fmt != VIGIL_LOG_LOGFMT && fmt != VIGIL_LOG_JSON) {
    CHECK(want == VIGIL_EINVAL);
    char b[4] = "xyz";
    CHECK(vigil_event_format(ev, (vigil_log_format)fmt, b, sizeof b) ==
          VIGIL_EINVAL);
    CHECK(b[0] == '\0');
    return;
  }
  CHECK(want >= 0);
  char *full = malloc((size_t)want + 1);
  CHECK(full != NULL);
  CHECK(vigil_event_format(ev, (vigil_log_format)fmt, full,
                           (size_t)want + 1) == want);
  CHECK(full[want] == '\0' && strlen(full) == (size_t)want);
  check_line(ev, fmt, full, (size_t)want);
  check_truncated(ev, fmt, full, want, buflen, pass_null);
  check_truncated(ev, fmt, full, want, (size_t)want, 0);
  check_truncated(ev, fmt, full, want, 1, 0);
  check_truncated(ev, fmt, full, want, 0, 0);
  free(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input in = {data, size};
  int fmt = (int)take_u8(&in);
  if (fmt > 1 && fmt < 0xF0) fmt &= 1; /* mostly valid formats */
  else if (fmt >= 0xF0) fmt = (int)take_u32(&in);
  uint16_t b = take_u16(&in);
  size_t buflen = b & 0x7FFF;
  int pass_null = b >> 15;

  vigil_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = (vigil_event_type)take_u32(&in);
  ev.reason = (vigil_reason)take_u32(&in);
  ev.cause = (vigil_reason)take_u32(&in);
  ev.sys_errno = (int)take_u32(&in);
  ev.idle_kind = (vigil_idle_kind)take_u32(&in);
  ev.truncated = (int)take_u32(&in);
  ev.tls_resumed = (int)take_u32(&in);
  ev.ts_ms = take_u64(&in);
  ev.conn_id = take_u64(&in);
  ev.age_ms = take_u64(&in);
  ev.bytes_in = take_u64(&in);
  ev.bytes_out = take_u64(&in);
  ev.other_conn_id = take_u64(&in);
  ev.last_rx_ms = (int64_t)take_u64(&in);
  ev.last_tx_ms = (int64_t)take_u64(&in);
  ev.retry_ms = take_u32(&in);
  ev.evidence = take_u32(&in);
  ev.count = take_u32(&in);
  uint8_t present = take_u8(&in);
  vigil_sockopts so;
  vigil_tcp_info ti;
  uint32_t counts[VIGIL_TCP_STATE__COUNT];
  if (present & 1) {
    take(&in, &so, sizeof so);
    ev.sockopts = &so;
  }
  if (present & 2) {
    take(&in, &ti, sizeof ti);
    ev.tcp_info = &ti;
  }
  if (present & 4) {
    take(&in, counts, sizeof counts);
    ev.state_counts = counts;
  }
  char *peer = take_str(&in), *identity = take_str(&in),
       *detail = take_str(&in);
  ev.peer = peer;
  ev.identity = identity;
  ev.detail = detail;
  ev.worker = (int32_t)take_u32(&in);
  ev.scope = (vigil_takeover_scope)take_u32(&in);
  ev.other_worker = (int32_t)take_u32(&in);
  ev.peer_class = (vigil_peer_class)(int32_t)take_u32(&in);
  char *other_node = take_str(&in);
  ev.other_node = other_node;

  check_format(&ev, fmt, buflen, pass_null);
  /* the other format too, when this one was valid */
  if (fmt == VIGIL_LOG_LOGFMT || fmt == VIGIL_LOG_JSON)
    check_format(&ev, !fmt, buflen, pass_null);

  char nul[2] = "x";
  CHECK(vigil_event_format(NULL, VIGIL_LOG_JSON, nul, sizeof nul) ==
        VIGIL_EINVAL);
  CHECK(nul[0] == '\0');
  free(peer);
  free(identity);
  free(detail);
  free(other_node);
  return 0;
}
