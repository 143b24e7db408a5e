/* Redis URL parsing; see redis_url.h. */
#include "redis_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "redis_text.h"
#include "vigil.h"

/* Every message starts with "redis URL: " (fmt must be a literal). */
#define fail(err, errlen, ...)                                               \
  vigil__textf(err, errlen, VIGIL_EINVAL, "redis URL: " __VA_ARGS__)

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL). Returns the
 * decoded length, -1 on a bad escape or an encoded NUL, -2 when too long. */
static long pct_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      if (c == '\0') return -1;
      i += 2;
    }
    if (o + 1 >= cap) return -2;
    out[o++] = c;
  }
  out[o] = '\0';
  return (long)o;
}

/* user:password, either part may be empty; a password is required. */
static int parse_userinfo(const char *s, size_t n, vigil__redis_url *u,
                          char *err, size_t errlen) {
  const char *colon = memchr(s, ':', n);
  if (!colon)
    return fail(err, errlen,
                "credentials must be written ':password@' or "
                "'user:password@' (no ':' found before '@')");
  size_t ulen = (size_t)(colon - s);
  long r = pct_decode(s, ulen, u->user, sizeof u->user);
  if (r == -2)
    return fail(err, errlen, "user must be at most %d bytes",
                VIGIL__REDIS_USER_MAX);
  if (r < 0) return fail(err, errlen, "user has a bad %%-escape");
  r = pct_decode(colon + 1, n - ulen - 1, u->password, sizeof u->password);
  if (r == -2)
    return fail(err, errlen, "password must be at most %d bytes",
                VIGIL__REDIS_PASSWORD_MAX);
  if (r < 0) return fail(err, errlen, "password has a bad %%-escape");
  if (r == 0)
    return fail(err, errlen, "password must not be empty when '@' is given");
  u->has_password = 1;
  return 0;
}

static int host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int v6_char(char c) {
  return hexval(c) >= 0 || c == ':' || c == '.';
}

/* host[:port][/db] */
static int parse_tcp(const char *s, vigil__redis_url *u, char *err,
                     size_t errlen) {
  const char *end = s + strlen(s);
  const char *slash = memchr(s, '/', (size_t)(end - s));
  const char *hp_end = slash ? slash : end;
  const char *host = s, *host_end, *port = NULL;
  if (memchr(s, '?', (size_t)(end - s)) || memchr(s, '#', (size_t)(end - s)))
    return fail(err, errlen, "redis:// takes no '?query' or '#fragment'");
  if (*s == '[') {
    const char *close = memchr(s, ']', (size_t)(hp_end - s));
    if (!close)
      return fail(err, errlen, "IPv6 host must be closed with ']'");
    host = s + 1;
    host_end = close;
    if (host_end == host)
      return fail(err, errlen, "IPv6 host must not be empty");
    for (const char *p = host; p < host_end; p++)
      if (!v6_char(*p))
        return fail(err, errlen,
                    "IPv6 host may hold only hex digits, ':' and '.'");
    if (close + 1 < hp_end) {
      if (close[1] != ':')
        return fail(err, errlen, "expected ':port' after ']'");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(s, ':', (size_t)(hp_end - s));
    host_end = colon ? colon : hp_end;
    if (colon) port = colon + 1;
    if (host_end == host) return fail(err, errlen, "host must not be empty");
    for (const char *p = host; p < host_end; p++)
      if (!host_char(*p))
        return fail(err, errlen,
                    "host may hold only letters, digits, '.', '-' and '_' "
                    "(IPv6 goes in brackets)");
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen > VIGIL__REDIS_HOST_MAX)
    return fail(err, errlen, "host must be at most %d bytes",
                VIGIL__REDIS_HOST_MAX);
  memcpy(u->host, host, hlen);
  u->host[hlen] = '\0';
  u->port = VIGIL__REDIS_DEFAULT_PORT;
  if (port) {
    uint64_t v;
    size_t plen = (size_t)(hp_end - port);
    if (vigil__redis_parse_u64(port, plen, 65535, &v) < 0 || v == 0)
      return fail(err, errlen, "port must be 1..65535, got \"%.*s\"",
                  (int)(plen > 32 ? 32 : plen), port);
    u->port = (uint16_t)v;
  }
  if (slash && slash[1]) {
    uint64_t v;
    size_t dlen = (size_t)(end - slash - 1);
    if (vigil__redis_parse_u64(slash + 1, dlen, VIGIL__REDIS_DB_MAX, &v) < 0)
      return fail(err, errlen, "db must be 0..%u, got \"%.*s\"",
                  VIGIL__REDIS_DB_MAX, (int)(dlen > 32 ? 32 : dlen),
                  slash + 1);
    u->db = (uint32_t)v;
  }
  return 0;
}

/* /path[?db=N] */
static int parse_unix(const char *s, vigil__redis_url *u, char *err,
                      size_t errlen) {
  if (*s != '/')
    return fail(err, errlen,
                "unix:// needs an absolute socket path (unix:///path)");
  const char *q = strchr(s, '?');
  size_t plen = q ? (size_t)(q - s) : strlen(s);
  if (plen > VIGIL__REDIS_PATH_MAX)
    return fail(err, errlen, "socket path must be at most %d bytes",
                VIGIL__REDIS_PATH_MAX);
  memcpy(u->path, s, plen);
  u->path[plen] = '\0';
  if (!q) return 0;
  if (strncmp(q + 1, "db=", 3) != 0)
    return fail(err, errlen, "unix:// takes only the query '?db=N'");
  uint64_t v;
  const char *d = q + 4;
  size_t dlen = strlen(d);
  if (vigil__redis_parse_u64(d, dlen, VIGIL__REDIS_DB_MAX, &v) < 0)
    return fail(err, errlen, "db must be 0..%u, got \"%.*s\"",
                VIGIL__REDIS_DB_MAX, (int)(dlen > 32 ? 32 : dlen), d);
  u->db = (uint32_t)v;
  return 0;
}

int vigil__redis_url_parse(const char *url, vigil__redis_url *out, char *err,
                           size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!url || !out) return fail(err, errlen, "URL must not be NULL");
  vigil__redis_url u;
  memset(&u, 0, sizeof u);
  const char *rest;
  if (strncasecmp(url, "redis://", 8) == 0) {
    rest = url + 8;
  } else if (strncasecmp(url, "unix://", 7) == 0) {
    rest = url + 7;
    u.is_unix = 1;
  } else if (strncasecmp(url, "rediss://", 9) == 0) {
    return fail(err, errlen, "TLS (rediss://) is not supported");
  } else {
    return fail(err, errlen,
                "scheme must be redis:// or unix://, got \"%.16s\"", url);
  }
  for (const char *p = rest; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return fail(err, errlen, "no spaces or control characters allowed");
  /* The userinfo ends at the last '@' before the host/path: a password may
   * hold '@' only percent-encoded, but a unix path may hold '@' freely. */
  const char *at = NULL;
  if (u.is_unix) {
    const char *slash = strchr(rest, '/');
    const char *a = strchr(rest, '@');
    if (a && (!slash || a < slash)) at = a;
  } else {
    const char *stop = strpbrk(rest, "/?#");
    size_t n = stop ? (size_t)(stop - rest) : strlen(rest);
    for (size_t i = 0; i < n; i++)
      if (rest[i] == '@') at = rest + i;
  }
  if (at) {
    int rc = parse_userinfo(rest, (size_t)(at - rest), &u, err, errlen);
    if (rc) return rc;
    rest = at + 1;
  }
  int rc = u.is_unix ? parse_unix(rest, &u, err, errlen)
                     : parse_tcp(rest, &u, err, errlen);
  if (rc) return rc;
  *out = u;
  return 0;
}

void vigil__redis_url_describe(const vigil__redis_url *u, char *buf,
                               size_t len) {
  if (!buf || !len) return;
  if (u->is_unix) {
    if (u->db)
      snprintf(buf, len, "unix://%s?db=%u", u->path, (unsigned)u->db);
    else
      snprintf(buf, len, "unix://%s", u->path);
  } else {
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(buf, len, "redis://%s%s%s:%u/%u", v6 ? "[" : "", u->host,
             v6 ? "]" : "", (unsigned)u->port, (unsigned)u->db);
  }
}
