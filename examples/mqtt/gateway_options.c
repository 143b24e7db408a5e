/* mqtt_gateway's command line (see gateway_options.h). */
#include "gateway_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mqtt_codec.h"
#include "vigil.h"

void gateway_usage(FILE *f) {
  fprintf(f,
      "usage: mqtt_gateway [options]\n"
      "A small MQTT 3.1.1 server on vigil: keep-alive x 1.5 becomes the\n"
      "connection's deadline, the client id its identity (a second CONNECT\n"
      "with the same id takes over), and every vigil event is logged to\n"
      "stderr.\n"
      "\n"
      "  --listen HOST:PORT       address to listen on (default\n"
      "                           127.0.0.1:1883; [::1]:1883 for IPv6;\n"
      "                           port 0 = ephemeral, printed on stdout)\n"
      "  --log logfmt|json        log line format (default logfmt)\n"
      "  --handshake-timeout MS   CONNECT must arrive within MS after the\n"
      "                           TCP accept (default %u; 0 = no limit)\n"
      "  --keepalive I,N,C        kernel keepalive idle s, interval s, probe\n"
      "                           count (default 60,10,6)\n"
      "  --census-every S         log a socket census of the port every S s\n"
      "  --max-packet BYTES       largest packet accepted (default %u)\n"
      "  --tls-cert FILE          speak MQTT over TLS with this certificate\n"
      "  --tls-key FILE           ...and this private key (PEM)\n"
      "  --tls-ca FILE            verify client certificates against FILE\n"
      "  --require-client-cert    refuse clients without a certificate\n"
      "  --identity-from-cert     the certificate CN is the client's\n"
      "                           identity; another client id is refused\n"
      "  --workers N              N threads (1..256), each with its own\n"
      "                           loop, listener (SO_REUSEPORT, one port)\n"
      "                           and sessions; PUBLISH and Wills reach\n"
      "                           subscribers on every worker, and a\n"
      "                           client id takes over its connection on\n"
      "                           any worker (default 1)\n"
      METRICS_HTTP_USAGE
      CLUSTER_FLAGS_USAGE
      "  --help                   this text\n",
      DEFAULT_HANDSHAKE_MS, DEFAULT_MAX_PACKET);
}

/* Prints a usage error and exits 2. */
static void die_usage(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "mqtt_gateway: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'mqtt_gateway --help'.\n");
  exit(EXIT_USAGE);
}

/* Parses a whole decimal number in [min, max]; exits 2 otherwise. */
static long parse_long(const char *s, long min, long max, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    die_usage("%s '%s' is not a number in %ld..%ld", what, s, min, max);
  return v;
}

/* "HOST:PORT" or "[V6]:PORT" into cfg->host and cfg->port. */
static void parse_listen(const char *arg, config *cfg) {
  const char *colon = strrchr(arg, ':');
  if (!colon || colon == arg || !colon[1])
    die_usage("--listen '%s' is not HOST:PORT", arg);
  const char *h = arg;
  size_t hlen = (size_t)(colon - arg);
  if (h[0] == '[') {
    if (hlen < 3 || h[hlen - 1] != ']')
      die_usage("--listen '%s': IPv6 hosts are written [ADDR]:PORT", arg);
    h++;
    hlen -= 2;
  }
  if (hlen >= sizeof cfg->host) die_usage("--listen '%s': host too long", arg);
  memcpy(cfg->host, h, hlen);
  cfg->host[hlen] = 0;
  cfg->port = (uint16_t)parse_long(colon + 1, 0, 65535, "--listen port");
}

static void parse_keepalive(const char *arg, config *cfg) {
  char buf[64];
  if (strlen(arg) >= sizeof buf) die_usage("--keepalive '%s' too long", arg);
  strcpy(buf, arg);
  char *idle = strtok(buf, ","), *intvl = strtok(NULL, ","),
       *cnt = strtok(NULL, ",");
  if (!idle || !intvl || !cnt || strtok(NULL, ","))
    die_usage("--keepalive '%s' is not IDLE,INTVL,CNT", arg);
  cfg->ka_idle = (int)parse_long(idle, 1, 32767, "--keepalive idle");
  cfg->ka_intvl = (int)parse_long(intvl, 1, 32767, "--keepalive interval");
  cfg->ka_cnt = (int)parse_long(cnt, 1, 127, "--keepalive count");
}

void gateway_parse_args(int argc, char **argv, config *cfg) {
  static const struct option opts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"log", required_argument, NULL, 'f'},
      {"handshake-timeout", required_argument, NULL, 't'},
      {"keepalive", required_argument, NULL, 'k'},
      {"census-every", required_argument, NULL, 'c'},
      {"max-packet", required_argument, NULL, 'm'},
      {"tls-cert", required_argument, NULL, 'C'},
      {"tls-key", required_argument, NULL, 'K'},
      {"tls-ca", required_argument, NULL, 'A'},
      {"require-client-cert", no_argument, NULL, 'R'},
      {"identity-from-cert", no_argument, NULL, 'I'},
      {"workers", required_argument, NULL, 'w'},
      {"metrics", required_argument, NULL, 'M'},
      {"metrics-timeout", required_argument, NULL, 'T'},
      {"cluster", required_argument, NULL, 'X'},
      {"node", required_argument, NULL, 'N'},
      {"cluster-prefix", required_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(cfg, 0, sizeof *cfg);
  strcpy(cfg->host, "127.0.0.1");
  cfg->port = 1883;
  cfg->log_format = VIGIL_LOG_LOGFMT;
  cfg->handshake_ms = DEFAULT_HANDSHAKE_MS;
  cfg->ka_idle = 60;
  cfg->ka_intvl = 10;
  cfg->ka_cnt = 6;
  cfg->max_packet = DEFAULT_MAX_PACKET;
  cfg->workers = 1;
  metrics_http_config_init(&cfg->metrics);
  cluster_flags_init(&cfg->cluster);
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'l': parse_listen(optarg, cfg); break;
    case 'f':
      if (strcmp(optarg, "json") == 0)
        cfg->log_format = VIGIL_LOG_JSON;
      else if (strcmp(optarg, "logfmt") == 0)
        cfg->log_format = VIGIL_LOG_LOGFMT;
      else
        die_usage("--log '%s' is not logfmt or json", optarg);
      break;
    case 't':
      cfg->handshake_ms = (uint32_t)parse_long(
          optarg, 0, VIGIL_MAX_DURATION_MS, "--handshake-timeout");
      break;
    case 'k': parse_keepalive(optarg, cfg); break;
    case 'c':
      cfg->census_every_s =
          (unsigned)parse_long(optarg, 0, 86400, "--census-every");
      break;
    case 'm':
      cfg->max_packet = (uint32_t)parse_long(optarg, 16, MQTT_MAX_REMAINING,
                                             "--max-packet");
      break;
    case 'C': cfg->tls_cert = optarg; break;
    case 'K': cfg->tls_key = optarg; break;
    case 'A': cfg->tls_ca = optarg; break;
    case 'R': cfg->require_client_cert = 1; break;
    case 'I': cfg->identity_from_cert = 1; break;
    case 'w':
      cfg->workers = (unsigned)parse_long(optarg, 1, VIGIL_GROUP_MAX_WORKERS,
                                          "--workers");
      break;
    case 'M':
    case 'T': {
      char why[320];
      if (metrics_http_flag(&cfg->metrics,
                            ch == 'M' ? "--metrics" : "--metrics-timeout",
                            optarg, why, sizeof why) < 0)
        die_usage("%s", why);
      break;
    }
    case 'X':
    case 'N':
    case 'P': {
      char why[320];
      const char *flag = ch == 'X'   ? "--cluster"
                         : ch == 'N' ? "--node"
                                     : "--cluster-prefix";
      if (cluster_flags_parse(&cfg->cluster, flag, optarg, why, sizeof why) <
          0)
        die_usage("%s", why);
      break;
    }
    case 'h': gateway_usage(stdout); exit(0);
    default:
      if (optopt)
        die_usage("option '%s' needs a value or is unknown", argv[optind - 1]);
      die_usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
  char why[400];
  int bad;
  cfg->cluster_options =
      cluster_flags_options(&cfg->cluster, &bad, why, sizeof why);
  if (bad) die_usage("%s", why);
}


void gateway_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int gateway_prepare(const config *cfg, vigil_policy *p,
                    struct ssl_ctx_st **tls, vigil_tls_options *tls_opts) {
  char msg[256];
  vigil_policy_init(p);
  p->keepalive_idle_s = cfg->ka_idle;
  p->keepalive_intvl_s = cfg->ka_intvl;
  p->keepalive_cnt = cfg->ka_cnt;
  p->handshake_timeout_ms = cfg->handshake_ms;
  if (vigil_policy_validate(p, msg, sizeof msg) != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: %s\n", msg);
    return EXIT_USAGE;
  }
  if (!cfg->tls_cert && !cfg->tls_key) return 0;
  int rc = vigil_tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ca,
                                    cfg->require_client_cert, NULL, tls, msg,
                                    sizeof msg);
  if (rc != VIGIL_OK) {
    fprintf(stderr, "mqtt_gateway: TLS: %s\n", msg);
    return rc == VIGIL_EINVAL ? EXIT_USAGE : 1;
  }
  vigil_tls_options_init(tls_opts);
  tls_opts->app_handshake = 1; /* CONNECT completes the handshake */
  if (cfg->identity_from_cert) tls_opts->identity_from = VIGIL_TLS_ID_CN;
  return 0;
}
