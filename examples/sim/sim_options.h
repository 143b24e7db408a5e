/*
 * device_sim's command line: flags, defaults, validation, and resolution
 * of the server and source addresses. Bad input prints a message and
 * exits 2 (SIM_EXIT_USAGE); see `device_sim --help`.
 */
#ifndef SIM_OPTIONS_H
#define SIM_OPTIONS_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#define SIM_EXIT_USAGE 2
#define SIM_MAX_SOURCES 256
#define SIM_MAX_TARGETS 16

/* One server of --connect A,B,...: a reconnecting device picks one at
 * random, as a load balancer in front of several nodes would. */
typedef struct sim_target {
  char host[256];
  uint16_t port;
  struct sockaddr_storage dst;
  socklen_t dstlen;
} sim_target;

typedef enum { PROTO_MQTT, PROTO_VIGIL } sim_protocol;
typedef enum { MODE_STEADY, MODE_FLAP, MODE_REBOOT } sim_mode;

typedef struct sim_options {
  char host[256];
  uint16_t port;
  uint32_t devices;
  uint32_t duration_s;
  sim_protocol proto;
  sim_mode mode;
  uint32_t rate;           /* new connections per second */
  char sources[128];       /* --source-ips as given */
  int json;
  uint32_t ping_ms;        /* resolved: never 0 after parsing */
  uint64_t seed;
  uint16_t keepalive_s;    /* MQTT CONNECT keep-alive */
  uint32_t churn_min_ms, churn_max_ms;
  uint32_t connect_timeout_ms;
  uint32_t hold_s;
  uint32_t id_offset;
  char id_prefix[64];
  char id_suffix[64];
  int census;
  /* resolved addresses */
  struct sockaddr_storage dst;
  socklen_t dstlen;
  struct sockaddr_in src[SIM_MAX_SOURCES]; /* bind addresses, round robin */
  unsigned nsrc;
  sim_target targets[SIM_MAX_TARGETS]; /* --connect A,B,...; host, port,
                                          dst above are the first's */
  unsigned ntargets;
} sim_options;

/* Parses argv into o (defaults first), resolves --connect and
 * --source-ips. Exits 0 for --help, 2 for anything invalid. */
void sim_options_parse(int argc, char **argv, sim_options *o);

/* Prints "device_sim: <message>" and a hint, then exits 2. */
void sim_die_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
