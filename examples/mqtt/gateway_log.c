/* mqtt_gateway's own log lines; see gateway_log.h. */
#include "gateway_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "linelog.h"

static void ll_raw(logline *l, const char *s, size_t n) {
  if (l->n + n >= sizeof l->buf - 2) n = sizeof l->buf - 2 - l->n;
  memcpy(l->buf + l->n, s, n);
  l->n += n;
}

static void ll_rawc(logline *l, const char *s) { ll_raw(l, s, strlen(s)); }

/* Appends a value, escaped for the format (JSON string / logfmt value). */
static void ll_escaped(logline *l, const char *s, size_t n) {
  int json = l->fmt == VIGIL_LOG_JSON;
  int quote = json || n == 0;
  for (size_t i = 0; i < n && !quote; i++) {
    unsigned char c = (unsigned char)s[i];
    quote = c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7F;
  }
  if (quote) ll_raw(l, "\"", 1);
  for (size_t i = 0; i < n;) {
    size_t run = 0; /* bytes that need no escape go out in one piece */
    while (i + run < n && (unsigned char)s[i + run] >= 0x20 &&
           s[i + run] != 0x7F && s[i + run] != '"' && s[i + run] != '\\')
      run++;
    ll_raw(l, s + i, run);
    i += run;
    if (i == n) break;
    unsigned char c = (unsigned char)s[i++];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      ll_raw(l, esc, 2);
    } else {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      ll_rawc(l, esc);
    }
  }
  if (quote) ll_raw(l, "\"", 1);
}

static void ll_key(logline *l, const char *key) {
  if (l->fmt == VIGIL_LOG_JSON) {
    ll_rawc(l, ",\"");
    ll_rawc(l, key);
    ll_rawc(l, "\":");
  } else {
    ll_rawc(l, " ");
    ll_rawc(l, key);
    ll_rawc(l, "=");
  }
}

void ll_strn(logline *l, const char *key, const char *v, size_t n) {
  ll_key(l, key);
  ll_escaped(l, v, n);
}

void ll_str(logline *l, const char *key, const char *v) {
  ll_strn(l, key, v, strlen(v));
}

void ll_u64(logline *l, const char *key, uint64_t v) {
  char num[24];
  size_t i = sizeof num;
  do {
    num[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  ll_key(l, key);
  ll_raw(l, num + i, sizeof num - i);
}

/* "2026-11-21T09:00:00.123Z" for now. The date and time of day are
 * formatted once a second (per thread): gmtime_r and strftime on every
 * line cost more than the rest of the line. */
static void ll_stamp(char stamp[32]) {
  static __thread time_t last_sec = (time_t)-1;
  static __thread char last[24]; /* "YYYY-MM-DDTHH:MM:SS" */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != last_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(last, sizeof last, "%Y-%m-%dT%H:%M:%S", &tm);
    last_sec = ts.tv_sec;
  }
  unsigned ms = (unsigned)(ts.tv_nsec / 1000000L);
  size_t k = strlen(last);
  memcpy(stamp, last, k);
  stamp[k++] = '.';
  stamp[k++] = (char)('0' + ms / 100);
  stamp[k++] = (char)('0' + ms / 10 % 10);
  stamp[k++] = (char)('0' + ms % 10);
  stamp[k++] = 'Z';
  stamp[k] = '\0';
}

void ll_start(logline *l, vigil_log_format fmt, int32_t worker,
              const char *event) {
  char stamp[32];
  ll_stamp(stamp);
  l->n = 0;
  l->fmt = fmt;
  if (fmt == VIGIL_LOG_JSON) {
    ll_rawc(l, "{\"ts\":\"");
    ll_rawc(l, stamp);
    ll_rawc(l, "\",\"event\":");
    ll_escaped(l, event, strlen(event));
  } else {
    ll_rawc(l, "ts=");
    ll_rawc(l, stamp);
    ll_rawc(l, " event=");
    ll_rawc(l, event);
  }
  if (worker >= 0) ll_u64(l, "worker", (uint64_t)worker);
}

/* Lines go to stderr through linelog: one write per loop iteration. */
void ll_end(logline *l) {
  if (l->fmt == VIGIL_LOG_JSON) ll_raw(l, "}", 1);
  linelog_write(l->buf, l->n);
}
