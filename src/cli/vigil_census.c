/*
 * vigil-census: TCP socket states on this machine in one call, with the
 * ghost sockets (CLOSE_WAIT never closed, orphans) listed. Replaces
 *
 *   netstat -n | awk '/^tcp/ {++S[$NF]} END {for(a in S) print a, S[a]}'
 *
 * Sample output (illustrative numbers and addresses, exact layout: a
 * broker on port 1883 whose peers vanished; --owners as root):
 *
 *   $ vigil-census --port 1883 --either --owners
 *   2026-11-21 09:16:19  5137 TCP sockets on local or peer port 1883
 *     LISTEN              1
 *     ESTABLISHED      4980
 *     CLOSE_WAIT         12
 *     FIN_WAIT1           3
 *     FIN_WAIT2           1
 *     TIME_WAIT         140
 *     orphans             4  (no process holds them)
 *
 *     STATE       LOCAL                    PEER                     TIMER              RETR  RECV-Q  SEND-Q  OWNER
 *     CLOSE_WAIT  10.0.0.5:1883            10.0.3.17:44540          -                     0       1       0  27685/broker
 *     FIN_WAIT1   10.0.0.5:1883            10.0.9.2:51002           retransmit 3.2s       5       0    1460  (orphan)
 *     FIN_WAIT2   10.0.0.5:1883            10.0.4.40:60120          time_wait 59.6s       0       0       0  (orphan)
 *     ...
 *
 * Without root, --owners cannot read other users' /proc/[pid]/fd; counts
 * are complete and a last line says what was not seen:
 *
 *   note: could not read the fds of 123 processes (permission denied);
 *   their sockets show no owner. Run as root to see all.
 *
 * --json prints one object per census (one per line with --watch):
 *
 *   {"ts_ms":1795252579000,"ports":[1883],"total":5137,
 *    "counts":{"LISTEN":1,"SYN_SENT":0,...,"CLOSE":0},"orphans":4,
 *    "sockets":[{"family":"ipv4","state":"CLOSE_WAIT",
 *      "local":"10.0.0.5:1883","peer":"10.0.3.17:44540","timer":"none",
 *      "expires_ms":0,"retransmits":0,"rqueue":1,"wqueue":0,"uid":1000,
 *      "inode":25468,"orphan":false,"pid":27685,"comm":"broker"},...],
 *    "sockets_omitted":0,"owners_resolved":true,"unreadable_processes":0}
 *
 * Exit codes: 0 ok, 1 the census failed, 2 bad command line.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "vigil.h"

#define MAX_PORTS 64
#define DEFAULT_LIMIT 100
#define EXIT_USAGE 2

typedef struct options {
  uint16_t ports[MAX_PORTS];
  size_t nports;
  uint32_t states; /* 0 = all */
  vigil_census_family family;
  int either; /* match peer ports too */
  int json;
  long watch_s; /* 0 = once */
  long count;   /* rounds with --watch; 0 = until a signal */
  int owners;
  long limit;
} options;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: vigil-census [options]\n"
      "Counts TCP sockets per state (like netstat | awk, via sock_diag) and\n"
      "lists the notable ones: CLOSE_WAIT and FIN_WAIT1, FIN_WAIT2,\n"
      "CLOSING, LAST_ACK (orphans when no process holds them).\n"
      "\n"
      "  --port N       only sockets whose local port is N (repeat or\n"
      "                 comma-separate for several)\n"
      "  --either       --port also matches the peer port\n"
      "  --state S      only sockets in state S and list them (repeatable;\n"
      "                 ESTABLISHED, CLOSE_WAIT, close-wait, FIN_WAIT1...)\n"
      "  --family 4|6   only IPv4 or IPv6 sockets\n"
      "  --owners       find the process holding each listed socket\n"
      "                 (reads /proc/*/fd; needs root for other users)\n"
      "  --limit N      list at most N sockets (default %d; 0 = counts only)\n"
      "  --json         one JSON object per census\n"
      "  --watch S      repeat every S seconds until SIGINT/SIGTERM\n"
      "  --count N      with --watch: stop after N censuses\n"
      "  --help         this text\n",
      DEFAULT_LIMIT);
}

/* Prints a usage error and exits 2. */
static void die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "vigil-census: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'vigil-census --help'.\n");
  exit(EXIT_USAGE);
}

/* Parses a whole decimal string in [min, max]; exits 2 otherwise. */
static long parse_number(const char *s, long min, long max, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < min || v > max) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid %s '%%s': expected %ld..%ld", what, min,
             max);
    die_usage(msg, s);
  }
  return v;
}

/* Applies fn to each comma-separated item of list; an empty item ("",
 * "80,,81") is a usage error rather than silently ignored. */
static void for_each_item(const char *list, options *o,
                          void (*fn)(const char *, options *)) {
  char item[64];
  const char *p = list;
  for (;;) {
    size_t n = strcspn(p, ",");
    if (n == 0) die_usage("empty item in list '%s'", list);
    if (n >= sizeof item) die_usage("list item too long in '%s'", list);
    memcpy(item, p, n);
    item[n] = '\0';
    fn(item, o);
    if (p[n] == '\0') break;
    p += n + 1;
  }
}

static void add_port(const char *s, options *o) {
  if (o->nports == MAX_PORTS)
    die_usage("too many ports (at most 64) at '%s'", s);
  o->ports[o->nports++] = (uint16_t)parse_number(s, 1, 65535, "port");
}

static void add_state(const char *s, options *o) {
  int st = vigil_census_state_parse(s);
  if (st < 0)
    die_usage("unknown state '%s' (use ESTABLISHED, SYN_SENT, SYN_RECV, "
              "FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, "
              "LISTEN, CLOSING)",
              s);
  o->states |= VIGIL_CENSUS_STATE_BIT(st);
}

static void parse_args(int argc, char **argv, options *o) {
  enum {
    O_PORT = 1,
    O_STATE,
    O_FAMILY,
    O_EITHER,
    O_JSON,
    O_WATCH,
    O_COUNT,
    O_OWNERS,
    O_LIMIT,
    O_HELP
  };
  static const struct option longopts[] = {
      {"port", required_argument, NULL, O_PORT},
      {"state", required_argument, NULL, O_STATE},
      {"family", required_argument, NULL, O_FAMILY},
      {"either", no_argument, NULL, O_EITHER},
      {"json", no_argument, NULL, O_JSON},
      {"watch", required_argument, NULL, O_WATCH},
      {"count", required_argument, NULL, O_COUNT},
      {"owners", no_argument, NULL, O_OWNERS},
      {"limit", required_argument, NULL, O_LIMIT},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  o->limit = DEFAULT_LIMIT;
  opterr = 0; /* we print our own messages */
  for (;;) {
    int c = getopt_long(argc, argv, ":", longopts, NULL);
    if (c == -1) break;
    switch (c) {
    case O_PORT: for_each_item(optarg, o, add_port); break;
    case O_STATE: for_each_item(optarg, o, add_state); break;
    case O_FAMILY: {
      long f = parse_number(optarg, 4, 6, "family");
      if (f == 5) die_usage("invalid family '%s': expected 4 or 6", optarg);
      o->family = f == 4 ? VIGIL_CENSUS_FAMILY_IPV4 : VIGIL_CENSUS_FAMILY_IPV6;
      break;
    }
    case O_EITHER: o->either = 1; break;
    case O_JSON: o->json = 1; break;
    case O_WATCH:
      o->watch_s = parse_number(optarg, 1, 86400, "--watch seconds");
      break;
    case O_COUNT:
      o->count = parse_number(optarg, 1, LONG_MAX, "--count");
      break;
    case O_OWNERS: o->owners = 1; break;
    case O_LIMIT:
      o->limit = parse_number(optarg, 0, 10000000, "--limit");
      break;
    case O_HELP: usage(stdout); exit(0);
    case ':': die_usage("option '%s' needs a value", argv[optind - 1]); break;
    default: die_usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
  if (o->count && !o->watch_s) die_usage("%s needs --watch", "--count");
}

/* States in the order they are printed: the life of a connection. */
static const vigil_tcp_state print_order[] = {
    VIGIL_TCP_LISTEN,      VIGIL_TCP_SYN_SENT,   VIGIL_TCP_SYN_RECV,
    VIGIL_TCP_ESTABLISHED, VIGIL_TCP_CLOSE_WAIT, VIGIL_TCP_LAST_ACK,
    VIGIL_TCP_FIN_WAIT1,   VIGIL_TCP_FIN_WAIT2,  VIGIL_TCP_CLOSING,
    VIGIL_TCP_TIME_WAIT,   VIGIL_TCP_CLOSE,
};
#define NPRINT (sizeof print_order / sizeof print_order[0])

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Owner column text for s. */
static void owner_text(const vigil_census_socket *s, char *buf, size_t cap) {
  if (s->inode == 0)
    snprintf(buf, cap, "(orphan)");
  else if (s->owner_pid)
    snprintf(buf, cap, "%d/%s", (int)s->owner_pid, s->owner_comm);
  else if (s->in_this_process)
    snprintf(buf, cap, "(self)");
  else
    snprintf(buf, cap, "-");
}

static void print_text(const options *o, const vigil_census *c) {
  char when[32];
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  printf("%s  %u TCP sockets", when, c->total);
  if (o->nports) {
    printf(" on %s port", o->either ? "local or peer" : "local");
    for (size_t i = 0; i < o->nports; i++)
      printf("%s%u", i ? "," : " ", (unsigned)o->ports[i]);
  }
  printf("\n");
  for (size_t i = 0; i < NPRINT; i++) {
    int s = print_order[i];
    if (c->counts[s])
      printf("  %-12s %8u\n", vigil_tcp_state_name(s), c->counts[s]);
  }
  if (c->orphans)
    printf("  %-12s %8u  (no process holds them)\n", "orphans", c->orphans);
  if (c->nsockets) {
    printf("\n  %-11s %-24s %-24s %-18s %4s %7s %7s  %s\n", "STATE", "LOCAL",
           "PEER", "TIMER", "RETR", "RECV-Q", "SEND-Q", "OWNER");
    for (size_t i = 0; i < c->nsockets; i++) {
      const vigil_census_socket *s = &c->sockets[i];
      char timer[32], owner[48];
      if (s->timer == VIGIL_CENSUS_TIMER_NONE)
        snprintf(timer, sizeof timer, "-");
      else
        snprintf(timer, sizeof timer, "%s %.1fs",
                 vigil_census_timer_name(s->timer), s->expires_ms / 1000.0);
      owner_text(s, owner, sizeof owner);
      printf("  %-11s %-24s %-24s %-18s %4u %7u %7u  %s\n",
             vigil_tcp_state_name(s->state), s->local, s->peer, timer,
             s->retransmits, s->rqueue, s->wqueue, owner);
    }
  }
  if (c->sockets_omitted)
    printf("  ... %zu more (raise --limit)\n", c->sockets_omitted);
  if (c->owners_resolved && c->unreadable_processes)
    printf("note: could not read the fds of %u processes (permission "
           "denied); their sockets show no owner. Run as root to see all.\n",
           c->unreadable_processes);
}

/* Writes s as a JSON string; bytes outside printable ASCII are escaped so
 * the output is valid whatever a process named itself. */
static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void print_json(const options *o, const vigil_census *c) {
  printf("{\"ts_ms\":%llu,\"ports\":[", (unsigned long long)wall_ms());
  for (size_t i = 0; i < o->nports; i++)
    printf("%s%u", i ? "," : "", (unsigned)o->ports[i]);
  printf("],\"total\":%u,\"counts\":{", c->total);
  for (size_t i = 0; i < NPRINT; i++)
    printf("%s\"%s\":%u", i ? "," : "", vigil_tcp_state_name(print_order[i]),
           c->counts[print_order[i]]);
  printf("},\"orphans\":%u,\"sockets\":[", c->orphans);
  for (size_t i = 0; i < c->nsockets; i++) {
    const vigil_census_socket *s = &c->sockets[i];
    printf("%s{\"family\":\"%s\",\"state\":\"%s\",\"local\":", i ? "," : "",
           s->family == AF_INET6 ? "ipv6" : "ipv4",
           vigil_tcp_state_name(s->state));
    json_string(s->local);
    printf(",\"peer\":");
    json_string(s->peer);
    printf(",\"timer\":\"%s\",\"expires_ms\":%u,\"retransmits\":%u,"
           "\"rqueue\":%u,\"wqueue\":%u,\"uid\":%u,\"inode\":%llu,"
           "\"orphan\":%s,\"pid\":%d,\"comm\":",
           vigil_census_timer_name(s->timer), s->expires_ms, s->retransmits,
           s->rqueue, s->wqueue, s->uid, (unsigned long long)s->inode,
           s->inode ? "false" : "true", (int)s->owner_pid);
    json_string(s->owner_comm);
    printf("}");
  }
  printf("],\"sockets_omitted\":%zu,\"owners_resolved\":%s,"
         "\"unreadable_processes\":%u}\n",
         c->sockets_omitted, c->owners_resolved ? "true" : "false",
         c->unreadable_processes);
}

/* One census and its output; returns 0 or 1 (census failed). */
static int census_once(const options *o) {
  vigil_census_query q;
  vigil_census *c;
  vigil_census_query_init(&q);
  q.ports = o->ports;
  q.nports = o->nports;
  q.port_match =
      o->either ? VIGIL_CENSUS_MATCH_EITHER : VIGIL_CENSUS_MATCH_LOCAL;
  q.states = o->states;
  q.family = o->family;
  q.want_self = 0; /* our own process holds nothing of interest */
  q.want_owners = o->owners;
  q.want_sockets = o->limit > 0;
  q.max_sockets = (size_t)o->limit;
  /* With --state, list what was asked for; else the ghosts. */
  q.list_states = o->states ? o->states
                            : VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT) |
                                  VIGIL_CENSUS_ORPHAN_STATES;
  int rc = vigil_census_run(&q, &c);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "vigil-census: census failed: %s%s%s\n", vigil_err_name(rc),
            rc == VIGIL_ESYS ? ": " : "",
            rc == VIGIL_ESYS ? strerror(errno) : "");
    return 1;
  }
  if (o->json)
    print_json(o, c);
  else
    print_text(o, c);
  fflush(stdout);
  vigil_census_free(c);
  return 0;
}

/* Sleeps seconds, returning early once a stop signal arrived. */
static void sleep_interruptible(long seconds) {
  struct timespec left = {.tv_sec = seconds, .tv_nsec = 0};
  while (!stop_requested && nanosleep(&left, &left) < 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  options o;
  parse_args(argc, argv, &o);
  if (!o.watch_s) return census_once(&o);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal; /* no SA_RESTART: nanosleep returns */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  for (long round = 1; !stop_requested; round++) {
    if (census_once(&o) != 0) return 1;
    if (o.count && round >= o.count) break;
    if (!o.json) printf("\n");
    sleep_interruptible(o.watch_s);
  }
  return 0;
}
