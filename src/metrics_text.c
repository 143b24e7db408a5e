/*
 * Prometheus text exposition format, version 0.0.4, for metrics snapshots.
 *
 * The format, as Prometheus reads it:
 *  - one sample per line: name{label="value",...} value, '\n' after every
 *    line including the last;
 *  - every line of one metric family forms one uninterrupted group,
 *    opened by its "# HELP name text" and "# TYPE name type" lines; a
 *    family is never repeated, so with several series (one per worker)
 *    the loop is family first, series second;
 *  - label values escape backslash, double quote and line feed as \\, \"
 *    and \n; HELP text escapes backslash and line feed;
 *  - a histogram "x" is the samples x_bucket{le="bound"} (cumulative
 *    counts, ending with le="+Inf", which equals x_count), x_sum, x_count.
 *
 * Families whose value is not known are left out rather than printed as 0
 * (a census that never ran, a cluster backend that does not exist): a
 * zero would read as "measured, none". Families with labels that are
 * known print every label value, zeros included, so a rate() or an alert
 * on a reason that has not happened yet has a series to work on.
 *
 * Output goes to a caller buffer with snprintf semantics: the text is
 * produced once, counting what did not fit, so a caller can size a buffer
 * from the return value; nothing is allocated.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

typedef struct out {
  char *buf;
  size_t cap;
  size_t len; /* whole text so far, also what did not fit */
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->len < o->cap) {
    size_t room = o->cap - o->len;
    memcpy(o->buf + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

static void put_str(out *o, const char *s) { put(o, s, strlen(s)); }

/* NUL-terminates what fits (snprintf semantics). */
static void finish(out *o) {
  if (o->cap == 0) return;
  o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
}

/* label: also escape '"' (label values); otherwise HELP text. */
static void put_escaped(out *o, const char *s, int label) {
  for (; *s; s++) {
    if (*s == '\\')
      put(o, "\\\\", 2);
    else if (*s == '\n')
      put(o, "\\n", 2);
    else if (*s == '"' && label)
      put(o, "\\\"", 2);
    else
      put(o, s, 1);
  }
}

size_t vigil__metrics_escape_label(const char *value, char *buf, size_t len) {
  out o = {buf, len, 0};
  put_escaped(&o, value, 1);
  finish(&o);
  return o.len;
}

/* Seconds from microseconds, exactly, without a trailing zero: "0.0025",
 * "1", "0.00001". */
static void format_seconds(uint64_t us, char *buf, size_t len) {
  uint64_t whole = us / 1000000u, frac = us % 1000000u;
  if (frac == 0) {
    snprintf(buf, len, "%" PRIu64, whole);
    return;
  }
  int n = snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, whole, frac);
  while (n > 0 && (size_t)n < len && buf[n - 1] == '0') buf[--n] = '\0';
}

/* ---- sample lines ---- */

typedef struct line {
  out *o;
  int nlabels;
} line;

static void line_label(line *l, const char *key, const char *value) {
  put_str(l->o, l->nlabels++ ? "," : "{");
  put_str(l->o, key);
  put(l->o, "=\"", 2);
  put_escaped(l->o, value, 1);
  put(l->o, "\"", 1);
}

/* Starts name+suffix with the worker label first when there is one. */
static line line_start(out *o, const char *name, const char *suffix,
                       int worker) {
  line l = {o, 0};
  put_str(o, name);
  if (suffix) put_str(o, suffix);
  if (worker >= 0) {
    char num[16];
    snprintf(num, sizeof num, "%d", worker);
    line_label(&l, "worker", num);
  }
  return l;
}

static void line_value(line *l, const char *value) {
  if (l->nlabels) put(l->o, "}", 1);
  put(l->o, " ", 1);
  put_str(l->o, value);
  put(l->o, "\n", 1);
}

static void line_u64(line *l, uint64_t v) {
  char num[24];
  snprintf(num, sizeof num, "%" PRIu64, v);
  line_value(l, num);
}

/* name{worker,key=value} v, the common one-label sample. */
static void sample(out *o, const char *name, int worker, const char *key,
                   const char *value, uint64_t v) {
  line l = line_start(o, name, NULL, worker);
  if (key) line_label(&l, key, value);
  line_u64(&l, v);
}

static void histogram(out *o, const char *name, int worker, const char *key,
                      const char *value, const vigil__histogram *h,
                      const vigil__hist_spec *spec) {
  char secs[32];
  for (size_t i = 0; i <= spec->nbounds; i++) {
    line l = line_start(o, name, "_bucket", worker);
    if (key) line_label(&l, key, value);
    if (i < spec->nbounds)
      format_seconds(spec->bounds_us[i], secs, sizeof secs);
    else
      strcpy(secs, "+Inf");
    line_label(&l, "le", secs);
    line_u64(&l, vigil__hist_cumulative(h, i));
  }
  line l = line_start(o, name, "_sum", worker);
  if (key) line_label(&l, key, value);
  format_seconds(h->sum_us, secs, sizeof secs);
  line_value(&l, secs);
  l = line_start(o, name, "_count", worker);
  if (key) line_label(&l, key, value);
  line_u64(&l, h->count);
}

/* ---- families ---- */

typedef const vigil__metrics_snapshot snapshot;

static void build_info(out *o, const char *name, int w, snapshot *s) {
  (void)s;
  sample(o, name, w, "version", vigil_version_string(), 1);
}

static void conns_open(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, s->stats.open);
}

static void conns_opened(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, s->stats.opened);
}

static void conns_closed(out *o, const char *name, int w, snapshot *s) {
  for (int r = VIGIL_REASON_NONE + 1; r < VIGIL_REASON__COUNT; r++)
    sample(o, name, w, "reason", vigil_reason_name((vigil_reason)r),
           s->stats.closed[r]);
}

static void takeovers(out *o, const char *name, int w, snapshot *s) {
  for (int k = 0; k < VIGIL_SCOPE__COUNT; k++)
    sample(o, name, w, "scope", vigil_scope_name((vigil_takeover_scope)k),
           s->takeovers[k]);
}

static void takeovers_by_class(out *o, const char *name, int w,
                               snapshot *s) {
  for (int k = VIGIL_PEER_GHOST; k < VIGIL_PEER__COUNT; k++)
    sample(o, name, w, "class", vigil_peer_class_name((vigil_peer_class)k),
           s->stats.takeovers_by_class[k]);
}

/* The hub scope always; the others once they have happened. */
static void takeover_latency(out *o, const char *name, int w, snapshot *s) {
  for (int k = 0; k < VIGIL_SCOPE__COUNT; k++)
    if (k == VIGIL_SCOPE_HUB || s->takeover_latency[k].count > 0)
      histogram(o, name, w, "scope",
                vigil_scope_name((vigil_takeover_scope)k),
                &s->takeover_latency[k], &vigil__takeover_spec);
}

static void overshoot(out *o, const char *name, int w, snapshot *s) {
  histogram(o, name, w, NULL, NULL, &s->dead_overshoot,
            &vigil__overshoot_spec);
}

static void bytes_received(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, s->stats.bytes_in);
}

static void bytes_sent(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, s->stats.bytes_out);
}

static void accept_paused(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, s->stats.accept_paused);
}

/* Every state a census reports (NEW_SYN_RECV is counted as SYN_RECV),
 * named as vigil_tcp_state_name() in lower case: "close_wait". */
static void sockets(out *o, const char *name, int w, snapshot *s) {
  for (int st = VIGIL_TCP_ESTABLISHED; st < VIGIL_TCP_NEW_SYN_RECV; st++) {
    char lower[32];
    const char *n = vigil_tcp_state_name(st);
    size_t k = 0;
    for (; n[k] && k < sizeof lower - 1; k++)
      lower[k] = (char)(n[k] >= 'A' && n[k] <= 'Z' ? n[k] + 32 : n[k]);
    lower[k] = '\0';
    sample(o, name, w, "state", lower, s->census.counts[st]);
  }
}

static void ghosts(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, "kind", "leaked", s->census.leaked);
  sample(o, name, w, "kind", "close_wait_stale", s->census.close_wait_stale);
  sample(o, name, w, "kind", "orphans", s->census.orphans);
}

static void census_age(out *o, const char *name, int w, snapshot *s) {
  char secs[32];
  format_seconds(s->census_age_ms * 1000u, secs, sizeof secs);
  line l = line_start(o, name, NULL, w);
  line_value(&l, secs);
}

static void directory_up(out *o, const char *name, int w, snapshot *s) {
  sample(o, name, w, NULL, NULL, (uint64_t)s->directory_up);
}

static int has_census(snapshot *s) { return s->has_census; }
static int has_directory(snapshot *s) { return s->directory_up >= 0; }

typedef struct family {
  const char *name;
  const char *type;
  const char *help;
  void (*samples)(out *o, const char *name, int worker, snapshot *s);
  int (*shown)(snapshot *s); /* NULL = always */
} family;

/* The order of the exposition; include/vigil/metrics.h documents each. */
static const family families[] = {
    {"vigil_build_info", "gauge",
     "The vigil library serving these metrics (value 1).", build_info, NULL},
    {"vigil_connections_open", "gauge",
     "Connections adopted and not yet closed, closing ones included.",
     conns_open, NULL},
    {"vigil_connections_opened_total", "counter",
     "Connections adopted since the hub was created.", conns_opened, NULL},
    {"vigil_connections_closed_total", "counter",
     "Connections closed, by close reason (exactly one per connection).",
     conns_closed, NULL},
    {"vigil_takeovers_total", "counter",
     "Connections displaced by a newer claim of their identity, by where "
     "the two connections lived.",
     takeovers, NULL},
    {"vigil_takeovers_by_class_total", "counter",
     "Connections displaced by a newer claim of their identity, by what "
     "their peer was found to be: ghost (reset) or live (closed "
     "gracefully).",
     takeovers_by_class, NULL},
    {"vigil_takeover_latency_seconds", "histogram",
     "Time from an identity claim on the new connection to the close "
     "decision on the connection it displaced.",
     takeover_latency, NULL},
    {"vigil_detection_overshoot_seconds", "histogram",
     "Time from a silent peer's heartbeat bound (last receive + "
     "dead_after) to its close.",
     overshoot, NULL},
    {"vigil_bytes_received_total", "counter",
     "Bytes received on all connections (TLS: decrypted application "
     "bytes).",
     bytes_received, NULL},
    {"vigil_bytes_sent_total", "counter",
     "Bytes sent on all connections (TLS: application bytes before "
     "encryption).",
     bytes_sent, NULL},
    {"vigil_accept_paused_total", "counter",
     "Times accepting was paused because the process or system ran out of "
     "file descriptors.",
     accept_paused, NULL},
    {"vigil_sockets", "gauge",
     "TCP sockets on the hub's ports at the last census, by kernel state, "
     "any owner.",
     sockets, has_census},
    {"vigil_ghosts", "gauge",
     "Sockets on the hub's ports that no vigil deadline will end, at the "
     "last census, by kind.",
     ghosts, has_census},
    {"vigil_census_age_seconds", "gauge",
     "Time since the last successful census of the hub's ports.",
     census_age, has_census},
    {"vigil_directory_up", "gauge",
     "1 while the cluster identity directory is reachable, else 0.",
     directory_up, has_directory},
};

/* A family shows a snapshot when its predicate says so; a census-only
 * snapshot (a group's census) shows in the census families alone. */
static int shows(const family *f, snapshot *s) {
  return f->shown ? f->shown(s) : !s->census_only;
}

static void render_family(out *o, const family *f,
                          const vigil__metrics_series *v, size_t n) {
  size_t shown = 0;
  for (size_t i = 0; i < n; i++) shown += shows(f, v[i].snap);
  if (shown == 0) return;
  put_str(o, "# HELP ");
  put_str(o, f->name);
  put(o, " ", 1);
  put_escaped(o, f->help, 0);
  put_str(o, "\n# TYPE ");
  put_str(o, f->name);
  put(o, " ", 1);
  put_str(o, f->type);
  put(o, "\n", 1);
  for (size_t i = 0; i < n; i++)
    if (shows(f, v[i].snap)) f->samples(o, f->name, v[i].worker, v[i].snap);
}

int vigil__metrics_render(const vigil__metrics_series *v, size_t n, char *buf,
                          size_t len) {
  out o = {buf, buf ? len : 0, 0};
  for (size_t k = 0; k < sizeof families / sizeof families[0]; k++)
    render_family(&o, &families[k], v, n);
  finish(&o);
  return o.len > INT_MAX ? VIGIL_EOVERFLOW : (int)o.len;
}
