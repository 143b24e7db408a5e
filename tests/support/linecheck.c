/*
 * Strict checkers for log lines: an RFC 8259 JSON parser (UTF-8
 * well-formedness and duplicate keys included) and a logfmt parser. They
 * are written independently of src/event_format.c so the formatter's
 * tests do not trust the formatter's own escaping rules.
 */
#include <string.h>

#include "linecheck.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ======================================================================== */
/* Strict JSON checker                                                      */
/* ======================================================================== */

typedef struct jp {
  const char *s;
  size_t pos, len;
} jp;

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length or 0
 * if ill-formed (overlong, surrogate, > U+10FFFF, cut, bad continuation).
 * Written from the code point side, independently of the formatter. */
static size_t utf8_check(const unsigned char *s, size_t n) {
  unsigned cp;
  size_t len;
  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0) {
    len = 2;
    cp = s[0] & 0x1f;
  } else if ((s[0] & 0xf0) == 0xe0) {
    len = 3;
    cp = s[0] & 0x0f;
  } else if ((s[0] & 0xf8) == 0xf0) {
    len = 4;
    cp = s[0] & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void jp_ws(jp *p) {
  while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) != NULL)
    p->pos++;
}

/* Parses a string; decodes it into out (cap bytes, may be NULL). Only
 * \u escapes below U+0080 and U+FFFD are decoded (all the formatter may
 * emit); others are accepted but decoded as '?'. Returns 0 or -1. */
static int jp_string(jp *p, char *out, size_t cap) {
  size_t o = 0;
#define JP_OUT(ch)                                                           \
  do {                                                                       \
    if (out && o + 1 < cap) out[o] = (char)(ch);                             \
    o++;                                                                     \
  } while (0)
  if (p->pos >= p->len || p->s[p->pos] != '"')
    return -1;
  p->pos++;
  while (p->pos < p->len) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '"') {
      p->pos++;
      if (out && cap) out[o < cap ? o : cap - 1] = '\0';
      return 0;
    }
    if (c < 0x20)
      return -1; /* raw control characters are not allowed */
    if (c == '\\') {
      if (p->pos + 1 >= p->len)
        return -1;
      char e = p->s[p->pos + 1];
      static const char esc[] = "\"\\/bfnrt", dec[] = "\"\\/\b\f\n\r\t";
      const char *m = strchr(esc, e);
      if (e != '\0' && m != NULL) {
        JP_OUT(dec[m - esc]);
        p->pos += 2;
      } else if (e == 'u') {
        unsigned cp = 0;
        if (p->pos + 6 > p->len)
          return -1;
        for (int i = 2; i < 6; i++) {
          int h = hex_digit(p->s[p->pos + i]);
          if (h < 0)
            return -1;
          cp = cp * 16 + (unsigned)h;
        }
        if (cp < 0x80) {
          JP_OUT(cp);
        } else if (cp == 0xfffd) {
          JP_OUT(0xef);
          JP_OUT(0xbf);
          JP_OUT(0xbd);
        } else {
          JP_OUT('?');
        }
        p->pos += 6;
      } else {
        return -1;
      }
      continue;
    }
    size_t n = utf8_check((const unsigned char *)p->s + p->pos,
                          p->len - p->pos);
    if (n == 0)
      return -1;
    for (size_t i = 0; i < n; i++)
      JP_OUT(p->s[p->pos + i]);
    p->pos += n;
  }
  return -1;
#undef JP_OUT
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jp_number(jp *p) {
  const char *s = p->s;
  size_t i = p->pos;
  if (i < p->len && s[i] == '-') i++;
  if (i < p->len && s[i] == '0') {
    i++;
  } else if (i < p->len && s[i] >= '1' && s[i] <= '9') {
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  } else {
    return -1;
  }
  if (i < p->len && s[i] == '.') {
    size_t d = ++i;
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return -1;
  }
  if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
    size_t d = i;
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return -1;
  }
  p->pos = i;
  return 0;
}

static int jp_value(jp *p, int depth);

/* Object with unique keys. */
static int jp_object(jp *p, int depth) {
  char keys[64][48];
  size_t nkeys = 0;
  p->pos++; /* '{' */
  jp_ws(p);
  if (p->pos < p->len && p->s[p->pos] == '}') {
    p->pos++;
    return 0;
  }
  for (;;) {
    char key[48];
    jp_ws(p);
    if (jp_string(p, key, sizeof key) != 0)
      return -1;
    for (size_t i = 0; i < nkeys; i++)
      if (strcmp(keys[i], key) == 0)
        return -1; /* duplicate key */
    if (nkeys < N(keys))
      strcpy(keys[nkeys++], key);
    jp_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
      return -1;
    p->pos++;
    if (jp_value(p, depth + 1) != 0)
      return -1;
    jp_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->s[p->pos] == '}') {
      p->pos++;
      return 0;
    }
    return -1;
  }
}

static int jp_array(jp *p, int depth) {
  p->pos++; /* '[' */
  jp_ws(p);
  if (p->pos < p->len && p->s[p->pos] == ']') {
    p->pos++;
    return 0;
  }
  for (;;) {
    if (jp_value(p, depth + 1) != 0)
      return -1;
    jp_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->s[p->pos] == ']') {
      p->pos++;
      return 0;
    }
    return -1;
  }
}

static int jp_literal(jp *p, const char *lit) {
  size_t n = strlen(lit);
  if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0)
    return -1;
  p->pos += n;
  return 0;
}

static int jp_value(jp *p, int depth) {
  if (depth > 32)
    return -1;
  jp_ws(p);
  if (p->pos >= p->len)
    return -1;
  switch (p->s[p->pos]) {
  case '{': return jp_object(p, depth);
  case '[': return jp_array(p, depth);
  case '"': return jp_string(p, NULL, 0);
  case 't': return jp_literal(p, "true");
  case 'f': return jp_literal(p, "false");
  case 'n': return jp_literal(p, "null");
  default: return jp_number(p);
  }
}

int vt_json_valid_object(const char *s) {
  jp p = {s, 0, strlen(s)};
  jp_ws(&p);
  if (p.pos >= p.len || s[p.pos] != '{')
    return 0;
  if (jp_value(&p, 0) != 0)
    return 0;
  jp_ws(&p);
  return p.pos == p.len;
}

/* vigil's lines have no nesting, so a flat scan of the top level
 * suffices. */
int vt_json_get_string(const char *s, const char *key, char *out,
                       size_t cap) {
  jp p = {s, 1, strlen(s)};
  if (s[0] != '{')
    return -1;
  for (;;) {
    char k[48];
    jp_ws(&p);
    if (jp_string(&p, k, sizeof k) != 0)
      return -1;
    jp_ws(&p);
    p.pos++; /* ':' */
    jp_ws(&p);
    if (strcmp(k, key) == 0)
      return jp_string(&p, out, cap);
    if (jp_value(&p, 1) != 0)
      return -1;
    jp_ws(&p);
    if (p.pos >= p.len || s[p.pos] != ',')
      return -1;
    p.pos++;
  }
}

/* ======================================================================== */
/* logfmt checker                                                           */
/* ======================================================================== */

int vt_logfmt_parse(const char *line, const char *want_key, char *out,
                    size_t cap) {
  char keys[64][48];
  size_t nkeys = 0;
  const char *p = line;
  if (*p == '\0')
    return -1;
  for (;;) {
    char key[48];
    size_t k = 0, o = 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') {
      if (k + 1 >= sizeof key) return -1;
      key[k++] = *p++;
    }
    key[k] = '\0';
    if (k == 0 || *p++ != '=')
      return -1;
    for (size_t i = 0; i < nkeys; i++)
      if (strcmp(keys[i], key) == 0)
        return -1;
    if (nkeys < N(keys))
      strcpy(keys[nkeys++], key);
    int want = want_key != NULL && strcmp(key, want_key) == 0;
#define LF_OUT(ch)                                                           \
  do {                                                                       \
    if (want && o + 1 < cap) out[o] = (char)(ch);                            \
    o++;                                                                     \
  } while (0)
    if (*p == '"') {
      p++;
      while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c < 0x20 || c == 0x7f)
          return -1;
        if (c == '\\') {
          static const char esc[] = "\"\\nrt", dec[] = "\"\\\n\r\t";
          const char *m = strchr(esc, p[1]);
          if (p[1] != '\0' && m != NULL) {
            LF_OUT(dec[m - esc]);
            p += 2;
          } else if (p[1] == 'u' && p[2] == '0' && p[3] == '0' &&
                     hex_digit(p[4]) >= 0 && hex_digit(p[5]) >= 0) {
            LF_OUT(hex_digit(p[4]) * 16 + hex_digit(p[5]));
            p += 6;
          } else {
            return -1;
          }
        } else {
          LF_OUT(c);
          p++;
        }
      }
      p++;
    } else {
      if (*p == '\0' || *p == ' ')
        return -1; /* an empty value must be quoted */
      while (*p != '\0' && *p != ' ') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '=' || c == '"' || c == '\\')
          return -1;
        LF_OUT(c);
        p++;
      }
    }
#undef LF_OUT
    if (want && cap)
      out[o < cap ? o : cap - 1] = '\0';
    if (*p == '\0')
      return 0;
    if (*p++ != ' ')
      return -1;
  }
}
