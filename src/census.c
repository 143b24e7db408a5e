/*
 * Socket-state census: the query, the collector that turns kernel records
 * into counts and a socket list, and vigil_census_run() tying the dump,
 * the self-fd scan and the owner scan together.
 *
 * Order inside vigil_census_run(), and why:
 *   1. scan /proc/self/fd  - before the dump, so every socket the dump
 *                            reports can be checked while it is counted
 *                            (self_counts covers unlisted sockets too);
 *   2. one dump per family - the kernel filters states (idiag_states), we
 *                            filter family and ports here;
 *   3. owner scan          - only for listed sockets, only if asked: it
 *                            reads every fd of every process.
 */
#include <ctype.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "census_internal.h"

#define DEFAULT_MAX_SOCKETS 65536

void vigil_census_query_init(vigil_census_query *q) {
  if (!q) return;
  memset(q, 0, sizeof *q);
  q->port_match = VIGIL_CENSUS_MATCH_LOCAL;
  q->family = VIGIL_CENSUS_FAMILY_ALL;
  q->want_sockets = 1;
  q->max_sockets = DEFAULT_MAX_SOCKETS;
  q->want_self = 1;
}

const char *vigil_census_timer_name(int timer) {
  switch (timer) {
  case VIGIL_CENSUS_TIMER_NONE: return "none";
  case VIGIL_CENSUS_TIMER_RETRANSMIT: return "retransmit";
  case VIGIL_CENSUS_TIMER_KEEPALIVE: return "keepalive";
  case VIGIL_CENSUS_TIMER_TIME_WAIT: return "time_wait";
  case VIGIL_CENSUS_TIMER_ZERO_WINDOW: return "zero_window_probe";
  default: return "unknown";
  }
}

/* Names with separators removed, so "CLOSE_WAIT", "close-wait" and
 * "closewait" all compare equal. */
static const struct {
  const char *squashed;
  vigil_tcp_state state;
} state_names[] = {
    {"ESTABLISHED", VIGIL_TCP_ESTABLISHED},
    {"SYNSENT", VIGIL_TCP_SYN_SENT},
    {"SYNRECV", VIGIL_TCP_SYN_RECV},
    {"FINWAIT1", VIGIL_TCP_FIN_WAIT1},
    {"FINWAIT2", VIGIL_TCP_FIN_WAIT2},
    {"TIMEWAIT", VIGIL_TCP_TIME_WAIT},
    {"CLOSE", VIGIL_TCP_CLOSE},
    {"CLOSED", VIGIL_TCP_CLOSE},
    {"UNCONN", VIGIL_TCP_CLOSE},
    {"CLOSEWAIT", VIGIL_TCP_CLOSE_WAIT},
    {"LASTACK", VIGIL_TCP_LAST_ACK},
    {"LISTEN", VIGIL_TCP_LISTEN},
    {"CLOSING", VIGIL_TCP_CLOSING},
};

int vigil_census_state_parse(const char *name) {
  char sq[16];
  size_t n = 0;
  if (!name) return VIGIL_EINVAL;
  for (const char *p = name; *p; p++) {
    if (*p == '-' || *p == '_') continue;
    if (n + 1 >= sizeof sq) return VIGIL_EINVAL;
    sq[n++] = (char)toupper((unsigned char)*p);
  }
  sq[n] = '\0';
  for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
    if (strcmp(sq, state_names[i].squashed) == 0) return state_names[i].state;
  return VIGIL_EINVAL;
}

/* Is bit for state s in mask? */
static int in_mask(uint32_t mask, int s) {
  return s > 0 && s < 32 && (mask & VIGIL_CENSUS_STATE_BIT(s)) != 0;
}

int vigil__census_collector_init(vigil__census_collector *col,
                                 const vigil_census_query *q,
                                 const vigil__inode_set *self,
                                 vigil_census *out) {
  if (!col || !q || !out) return VIGIL_EINVAL;
  if (q->nports > 0 && !q->ports) return VIGIL_EINVAL;
  if ((unsigned)q->family > VIGIL_CENSUS_FAMILY_IPV6) return VIGIL_EINVAL;
  if ((unsigned)q->port_match > VIGIL_CENSUS_MATCH_EITHER) return VIGIL_EINVAL;
  if ((q->states & ~VIGIL_CENSUS_ALL_STATES) ||
      (q->list_states & ~VIGIL_CENSUS_ALL_STATES))
    return VIGIL_EINVAL;
  memset(col, 0, sizeof *col);
  col->q = q;
  col->states = q->states ? q->states : VIGIL_CENSUS_ALL_STATES;
  col->list_states = q->list_states ? q->list_states : col->states;
  col->self = self;
  col->out = out;
  return VIGIL_OK;
}

/* Does the record pass the query's family and port filters? */
static int record_matches(const vigil__census_collector *col,
                          const vigil_census_socket *s) {
  const vigil_census_query *q = col->q;
  if (s->family != AF_INET && s->family != AF_INET6) return 0;
  if (q->family == VIGIL_CENSUS_FAMILY_IPV4 && s->family != AF_INET) return 0;
  if (q->family == VIGIL_CENSUS_FAMILY_IPV6 && s->family != AF_INET6) return 0;
  if (q->nports == 0) return 1;
  for (size_t i = 0; i < q->nports; i++) {
    if (q->ports[i] == s->id.local_port) return 1;
    if (q->port_match == VIGIL_CENSUS_MATCH_EITHER &&
        q->ports[i] == s->id.peer_port)
      return 1;
  }
  return 0;
}

/* Appends s to the socket list (growing it geometrically) and formats its
 * addresses; counts it as omitted past max_sockets. */
static int append_socket(vigil__census_collector *col,
                         const vigil_census_socket *s) {
  vigil_census *out = col->out;
  size_t max = col->q->max_sockets;
  if (max && out->nsockets >= max) {
    out->sockets_omitted++;
    return 0;
  }
  if (out->nsockets == col->cap) {
    size_t cap = col->cap ? col->cap * 2 : 64;
    if (max && cap > max) cap = max;
    vigil_census_socket *v = realloc(out->sockets, cap * sizeof *v);
    if (!v) return VIGIL_ENOMEM;
    out->sockets = v;
    col->cap = cap;
  }
  vigil_census_socket *slot = &out->sockets[out->nsockets++];
  *slot = *s;
  vigil__census_format_text(slot);
  return 0;
}

int vigil__census_collect(const struct inet_diag_msg *m, void *ctx) {
  vigil__census_collector *col = ctx;
  vigil_census *out = col->out;
  vigil_census_socket s;
  vigil__census_decode_fields(m, &s);
  if (!in_mask(col->states, s.state) || !record_matches(col, &s)) return 0;

  out->counts[s.state]++;
  out->total++;
  if (s.inode == 0 && in_mask(VIGIL_CENSUS_ORPHAN_STATES, s.state))
    out->orphans++;
  if (col->self && s.inode && vigil__inode_set_has(col->self, s.inode)) {
    s.in_this_process = 1;
    out->self_counts[s.state]++;
  }
  if (col->q->want_sockets && in_mask(col->list_states, s.state))
    return append_socket(col, &s);
  return 0;
}

/* Largest kernel port filter we send (about 340 port comparisons); longer
 * port lists are filtered in user space only. */
#define MAX_BYTECODE 4096

/* A dump request: the attribute must directly follow the request, which
 * it does since every member is 4-byte aligned (checked below). */
struct dump_request {
  struct nlmsghdr nlh;
  struct inet_diag_req_v2 r;
  struct nlattr attr;
  unsigned char bytecode[MAX_BYTECODE];
};
_Static_assert(offsetof(struct dump_request, attr) ==
                   NLMSG_LENGTH(sizeof(struct inet_diag_req_v2)),
               "bytecode attribute must follow the request");

/* Dumps one family's TCP sockets in the collector's states into it, with
 * the port filter in the kernel when use_bytecode. */
static int dump_family_once(vigil__census_collector *col, int family,
                            int use_bytecode) {
  struct dump_request req;
  memset(&req, 0, offsetof(struct dump_request, bytecode));
  req.nlh.nlmsg_len = NLMSG_LENGTH(sizeof req.r);
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (uint8_t)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = col->states;
  /* Unaccepted connection requests live as NEW_SYN_RECV; we show them as
   * SYN_RECV, so asking for one means asking for both. */
  if (in_mask(col->states, VIGIL_TCP_SYN_RECV))
    req.r.idiag_states |= VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_NEW_SYN_RECV);
  size_t bclen = use_bytecode ? vigil__census_port_bytecode(
                                    col->q, req.bytecode, sizeof req.bytecode)
                              : 0;
  if (bclen) {
    req.attr.nla_type = INET_DIAG_REQ_BYTECODE;
    req.attr.nla_len = (uint16_t)(sizeof req.attr + bclen);
    req.nlh.nlmsg_len = (uint32_t)NLMSG_ALIGN(NLMSG_LENGTH(sizeof req.r) +
                                              sizeof req.attr + bclen);
  }
  return vigil__census_exchange(&req.nlh, vigil__census_collect, col,
                                col->wait_ms);
}

/* Dumps one family. A kernel that rejects our filter program (EINVAL from
 * its audit, before any record is sent) gets the request again without it:
 * the user-space filter alone is correct, just slower. */
static int dump_family(vigil__census_collector *col, int family) {
  uint32_t total_before = col->out->total;
  int rc = dump_family_once(col, family, 1);
  if (rc == VIGIL_EINVAL && col->out->total == total_before)
    rc = dump_family_once(col, family, 0);
  return rc < 0 ? rc : VIGIL_OK;
}

int vigil_census_run(const vigil_census_query *q, vigil_census **out) {
  return vigil__census_run(q, VIGIL__CENSUS_WAIT_MS, out);
}

int vigil__census_run(const vigil_census_query *q, uint32_t wait_ms,
                      vigil_census **out) {
  vigil__census_collector col;
  vigil__inode_set self = {0};
  if (!out) return VIGIL_EINVAL;
  *out = NULL;
  vigil_census *c = calloc(1, sizeof *c);
  if (!c) return VIGIL_ENOMEM;
  int rc = vigil__census_collector_init(&col, q, NULL, c);
  col.wait_ms = wait_ms;
  if (rc == VIGIL_OK && q->want_self) {
    rc = vigil__census_self_inodes(&self);
    col.self = &self;
  }
  if (rc == VIGIL_OK && q->family != VIGIL_CENSUS_FAMILY_IPV6)
    rc = dump_family(&col, AF_INET);
  if (rc == VIGIL_OK && q->family != VIGIL_CENSUS_FAMILY_IPV4) {
    rc = dump_family(&col, AF_INET6);
    /* A kernel without IPv6 diag support has no IPv6 sockets either: when
     * both families were asked for, that is an empty answer. */
    if (q->family == VIGIL_CENSUS_FAMILY_ALL &&
        (rc == VIGIL_ENOENT || rc == VIGIL_ENOTSUP))
      rc = VIGIL_OK;
  }
  if (rc == VIGIL_OK && q->want_owners && q->want_sockets)
    rc = vigil__census_resolve_owners(c);
  int saved = errno;
  vigil__inode_set_free(&self);
  if (rc != VIGIL_OK) {
    vigil_census_free(c);
    errno = saved;
    return rc;
  }
  *out = c;
  return VIGIL_OK;
}

void vigil_census_free(vigil_census *c) {
  if (!c) return;
  free(c->sockets);
  free(c);
}

int vigil_census_socket_is(const vigil_census_socket *s, unsigned pick) {
  if (!s) return 0;
  if ((pick & VIGIL_CENSUS_PICK_CLOSE_WAIT) && s->state == VIGIL_TCP_CLOSE_WAIT)
    return 1;
  if ((pick & VIGIL_CENSUS_PICK_ORPHANS) && s->inode == 0 &&
      in_mask(VIGIL_CENSUS_ORPHAN_STATES, s->state))
    return 1;
  if ((pick & VIGIL_CENSUS_PICK_OWN_ESTABLISHED) &&
      s->state == VIGIL_TCP_ESTABLISHED && s->in_this_process)
    return 1;
  if ((pick & VIGIL_CENSUS_PICK_TIME_WAIT) && s->state == VIGIL_TCP_TIME_WAIT)
    return 1;
  return 0;
}

size_t vigil_census_pick(const vigil_census *c, unsigned pick,
                         const vigil_census_socket **out, size_t cap) {
  size_t n = 0;
  if (!c) return 0;
  for (size_t i = 0; i < c->nsockets; i++) {
    if (!vigil_census_socket_is(&c->sockets[i], pick)) continue;
    if (out && n < cap) out[n] = &c->sockets[i];
    n++;
  }
  return n;
}

int vigil_census_fd_inode(int fd, uint64_t *inode) {
  struct stat st;
  if (!inode) return VIGIL_EINVAL;
  *inode = 0;
  if (fd < 0 || fstat(fd, &st) < 0) return VIGIL_EBADF;
  if (!S_ISSOCK(st.st_mode)) return VIGIL_ENOTSOCK;
  *inode = (uint64_t)st.st_ino;
  return VIGIL_OK;
}
