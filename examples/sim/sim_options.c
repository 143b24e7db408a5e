/* device_sim command line; see sim_options.h. */
#include "sim_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
      "usage: device_sim --connect HOST:PORT[,HOST:PORT...] --devices N\n"
      "                  --duration S\n"
      "                  --protocol mqtt|vigil --mode steady|flap|silent-reboot\n"
      "                  [options]\n"
      "Simulates N reconnecting devices on one event loop. With several\n"
      "servers each connection picks one at random, as a load balancer in\n"
      "front of a cluster would (the census then covers every port).\n"
      "\n"
      "  --rate R            new connections per second (default 2000)\n"
      "  --source-ips A-B    bind each connection to one of these IPv4\n"
      "                      addresses (round robin), e.g. 127.0.0.2-127.0.0.9\n"
      "                      or a comma list; more ephemeral ports\n"
      "  --report text|json  final report format (default text)\n"
      "  --ping-ms MS        heartbeat period (default: 3/4 of --keepalive\n"
      "                      for mqtt, 10000 for vigil)\n"
      "  --keepalive S       MQTT CONNECT keep-alive in s (default 60)\n"
      "  --churn-ms MIN,MAX  flap / silent-reboot: uptime before a device\n"
      "                      leaves, uniform in [MIN, MAX] (default 2000,20000)\n"
      "  --seed N            random seed (default 1)\n"
      "  --connect-timeout MS  give up on a connect/handshake (default 10000)\n"
      "  --hold S            after --duration, stop churning and keep the\n"
      "                      connections S more seconds (for an outside\n"
      "                      census), then report (default 0)\n"
      "  --census            report a socket census of the server port (the\n"
      "                      server must run on this machine) before closing\n"
      "  --id-prefix P       identity prefix (default \"dev-\")\n"
      "  --id-suffix S       identity suffix (default \"\")\n"
      "  --id-offset K       first device number (default 0); give each\n"
      "                      process its own range\n"
      "  --help              this text\n");
}

void sim_die_usage(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "device_sim: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'device_sim --help'.\n");
  exit(SIM_EXIT_USAGE);
}

static long long parse_num(const char *s, long long min, long long max,
                           const char *what) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    sim_die_usage("%s '%s' is not a number in %lld..%lld", what, s, min, max);
  return v;
}

static void parse_hostport(const char *arg, sim_target *t) {
  const char *colon = strrchr(arg, ':');
  if (!colon || colon == arg || !colon[1])
    sim_die_usage("--connect '%s' is not HOST:PORT", arg);
  const char *h = arg;
  size_t n = (size_t)(colon - arg);
  if (h[0] == '[' && n >= 3 && h[n - 1] == ']') {
    h++;
    n -= 2;
  }
  if (n >= sizeof t->host) sim_die_usage("--connect '%s': host too long", arg);
  memcpy(t->host, h, n);
  t->host[n] = 0;
  t->port = (uint16_t)parse_num(colon + 1, 1, 65535, "--connect port");
}

/* --connect A or A,B,...: several servers behind one imagined balancer. */
static void parse_targets(const char *arg, sim_options *o) {
  char buf[SIM_MAX_TARGETS * 300];
  if (strlen(arg) >= sizeof buf) sim_die_usage("--connect: too long");
  snprintf(buf, sizeof buf, "%s", arg);
  o->ntargets = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    if (o->ntargets == SIM_MAX_TARGETS)
      sim_die_usage("--connect: at most %d servers", SIM_MAX_TARGETS);
    parse_hostport(tok, &o->targets[o->ntargets++]);
  }
  if (o->ntargets == 0) sim_die_usage("--connect '%s' is not HOST:PORT", arg);
  snprintf(o->host, sizeof o->host, "%s", o->targets[0].host);
  o->port = o->targets[0].port;
}

static void parse_flags(int argc, char **argv, sim_options *o) {
  static const struct option opts[] = {
      {"connect", required_argument, NULL, 'c'},
      {"devices", required_argument, NULL, 'n'},
      {"duration", required_argument, NULL, 'd'},
      {"protocol", required_argument, NULL, 'p'},
      {"mode", required_argument, NULL, 'm'},
      {"rate", required_argument, NULL, 'r'},
      {"source-ips", required_argument, NULL, 's'},
      {"report", required_argument, NULL, 'R'},
      {"ping-ms", required_argument, NULL, 'P'},
      {"seed", required_argument, NULL, 'S'},
      {"keepalive", required_argument, NULL, 'k'},
      {"churn-ms", required_argument, NULL, 'C'},
      {"connect-timeout", required_argument, NULL, 'T'},
      {"hold", required_argument, NULL, 'H'},
      {"census", no_argument, NULL, 'X'},
      {"id-prefix", required_argument, NULL, 'a'},
      {"id-suffix", required_argument, NULL, 'b'},
      {"id-offset", required_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int have_connect = 0, have_devices = 0, have_duration = 0, have_proto = 0,
      have_mode = 0;
  memset(o, 0, sizeof *o);
  o->rate = 2000;
  o->seed = 1;
  o->keepalive_s = 60;
  o->churn_min_ms = 2000;
  o->churn_max_ms = 20000;
  o->connect_timeout_ms = 10000;
  strcpy(o->id_prefix, "dev-");
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'c': parse_targets(optarg, o); have_connect = 1; break;
    case 'n':
      o->devices = (uint32_t)parse_num(optarg, 1, 1000000, "--devices");
      have_devices = 1;
      break;
    case 'd':
      o->duration_s = (uint32_t)parse_num(optarg, 1, 86400, "--duration");
      have_duration = 1;
      break;
    case 'p':
      if (strcmp(optarg, "mqtt") == 0) o->proto = PROTO_MQTT;
      else if (strcmp(optarg, "vigil") == 0) o->proto = PROTO_VIGIL;
      else sim_die_usage("--protocol '%s' is not mqtt or vigil", optarg);
      have_proto = 1;
      break;
    case 'm':
      if (strcmp(optarg, "steady") == 0) o->mode = MODE_STEADY;
      else if (strcmp(optarg, "flap") == 0) o->mode = MODE_FLAP;
      else if (strcmp(optarg, "silent-reboot") == 0) o->mode = MODE_REBOOT;
      else sim_die_usage("--mode '%s' is not steady, flap or silent-reboot",
                     optarg);
      have_mode = 1;
      break;
    case 'r': o->rate = (uint32_t)parse_num(optarg, 1, 1000000, "--rate"); break;
    case 's':
      if (strlen(optarg) >= sizeof o->sources)
        sim_die_usage("--source-ips '%s' too long", optarg);
      strcpy(o->sources, optarg);
      break;
    case 'R':
      if (strcmp(optarg, "json") == 0) o->json = 1;
      else if (strcmp(optarg, "text") == 0) o->json = 0;
      else sim_die_usage("--report '%s' is not text or json", optarg);
      break;
    case 'P':
      o->ping_ms = (uint32_t)parse_num(optarg, 10, 3600000, "--ping-ms");
      break;
    case 'S':
      o->seed = (uint64_t)parse_num(optarg, 0, INT64_MAX, "--seed");
      break;
    case 'k':
      o->keepalive_s = (uint16_t)parse_num(optarg, 0, 65535, "--keepalive");
      break;
    case 'C': {
      char buf[64];
      snprintf(buf, sizeof buf, "%s", optarg);
      char *comma = strchr(buf, ',');
      if (!comma) sim_die_usage("--churn-ms '%s' is not MIN,MAX", optarg);
      *comma = 0;
      o->churn_min_ms = (uint32_t)parse_num(buf, 10, 86400000, "--churn-ms");
      o->churn_max_ms =
          (uint32_t)parse_num(comma + 1, 10, 86400000, "--churn-ms");
      if (o->churn_max_ms < o->churn_min_ms)
        sim_die_usage("--churn-ms '%s': MAX is below MIN", optarg);
      break;
    }
    case 'T':
      o->connect_timeout_ms =
          (uint32_t)parse_num(optarg, 10, 600000, "--connect-timeout");
      break;
    case 'H': o->hold_s = (uint32_t)parse_num(optarg, 0, 3600, "--hold"); break;
    case 'X': o->census = 1; break;
    case 'a':
    case 'b': {
      char *dst = ch == 'a' ? o->id_prefix : o->id_suffix;
      if (strlen(optarg) >= 64) sim_die_usage("identity prefix/suffix too long");
      strcpy(dst, optarg);
      break;
    }
    case 'o':
      o->id_offset = (uint32_t)parse_num(optarg, 0, 4000000000LL, "--id-offset");
      break;
    case 'h': usage(stdout); exit(0);
    default:
      sim_die_usage("unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) sim_die_usage("unexpected argument '%s'", argv[optind]);
  if (!have_connect || !have_devices || !have_duration || !have_proto ||
      !have_mode)
    sim_die_usage("--connect, --devices, --duration, --protocol and --mode are "
              "required");
  if (o->ping_ms == 0) {
    uint32_t ka = o->keepalive_s ? o->keepalive_s : 60;
    o->ping_ms = o->proto == PROTO_MQTT ? ka * 750u : 10000u;
  }
}

/* Parses --source-ips: "A-B" (IPv4 range) or "A,B,C". */
static void parse_sources(sim_options *o) {
  char buf[128];
  if (!o->sources[0]) return;
  if (o->dst.ss_family != AF_INET)
    sim_die_usage("--source-ips needs an IPv4 --connect address");
  snprintf(buf, sizeof buf, "%s", o->sources);
  char *dash = strchr(buf, '-');
  struct in_addr a, b;
  if (dash) {
    *dash = 0;
    if (inet_pton(AF_INET, buf, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1)
      sim_die_usage("--source-ips '%s' is not A-B", o->sources);
    uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
    if (hi < lo || hi - lo >= SIM_MAX_SOURCES)
      sim_die_usage("--source-ips '%s': 1..%d addresses", o->sources,
                SIM_MAX_SOURCES);
    for (uint32_t v = lo; v <= hi; v++) {
      o->src[o->nsrc].sin_family = AF_INET;
      o->src[o->nsrc].sin_addr.s_addr = htonl(v);
      o->nsrc++;
    }
    return;
  }
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (o->nsrc == SIM_MAX_SOURCES || inet_pton(AF_INET, tok, &a) != 1)
      sim_die_usage("--source-ips '%s' is not a list of IPv4 addresses",
                o->sources);
    o->src[o->nsrc].sin_family = AF_INET;
    o->src[o->nsrc].sin_addr = a;
    o->nsrc++;
  }
}

/* Resolves each --connect server (numeric or a name; the first address
 * wins); all must be of one address family (--source-ips binds). */
static void resolve(sim_options *o) {
  for (unsigned i = 0; i < o->ntargets; i++) {
    sim_target *t = &o->targets[i];
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%u", (unsigned)t->port);
    int rc = getaddrinfo(t->host, port, &hints, &res);
    if (rc != 0 || !res)
      sim_die_usage("--connect host '%s': %s", t->host, gai_strerror(rc));
    memcpy(&t->dst, res->ai_addr, res->ai_addrlen);
    t->dstlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (t->dst.ss_family != o->targets[0].dst.ss_family)
      sim_die_usage("--connect: servers of one address family only");
  }
  o->dst = o->targets[0].dst;
  o->dstlen = o->targets[0].dstlen;
}


void sim_options_parse(int argc, char **argv, sim_options *o) {
  parse_flags(argc, argv, o);
  resolve(o);
  parse_sources(o);
}
