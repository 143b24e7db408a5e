/* MQTT topic name/filter validation and matching; see mqtt_topic.h. */
#include "mqtt_topic.h"

#include <string.h>

int mqtt_topic_name_valid(const uint8_t *t, size_t len) {
  if (!t || len == 0) return 0;
  return !mqtt_topic_has_wildcard(t, len);
}

int mqtt_topic_has_wildcard(const uint8_t *f, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (f[i] == '+' || f[i] == '#') return 1;
  return 0;
}

int mqtt_topic_filter_valid(const uint8_t *f, size_t len) {
  if (!f || len == 0) return 0;
  size_t level_start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && f[i] != '/') continue;
    /* Level [level_start, i): a wildcard must be the whole level. */
    size_t n = i - level_start;
    const uint8_t *lv = f + level_start;
    for (size_t k = 0; k < n; k++) {
      if (lv[k] != '+' && lv[k] != '#') continue;
      if (n != 1) return 0;
      if (lv[k] == '#' && i != len) return 0; /* '#' only at the end */
    }
    level_start = i + 1;
  }
  return 1;
}

/* End of the level starting at p: the next '/' or end. */
static const uint8_t *level_end(const uint8_t *p, const uint8_t *end) {
  const uint8_t *s = memchr(p, '/', (size_t)(end - p));
  return s ? s : end;
}

int mqtt_topic_match(const uint8_t *f, size_t flen, const uint8_t *t,
                     size_t tlen) {
  if (flen == 0 || tlen == 0) return 0;
  if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return 0;
  const uint8_t *fp = f, *fend = f + flen;
  const uint8_t *tp = t, *tend = t + tlen;
  for (;;) {
    const uint8_t *fe = level_end(fp, fend);
    size_t fl = (size_t)(fe - fp);
    if (fl == 1 && fp[0] == '#') return 1;
    const uint8_t *te = level_end(tp, tend);
    size_t tl = (size_t)(te - tp);
    if (!(fl == 1 && fp[0] == '+') && (fl != tl || memcmp(fp, tp, fl) != 0))
      return 0;
    int f_last = fe == fend, t_last = te == tend;
    if (f_last && t_last) return 1;
    if (t_last) /* "a/#" also matches "a": only "/#" may remain */
      return fend - fe == 2 && fe[1] == '#';
    if (f_last) return 0;
    fp = fe + 1;
    tp = te + 1;
  }
}
