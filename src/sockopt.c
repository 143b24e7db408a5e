/*
 * Socket options, TCP_INFO and fd classification.
 *
 * The public helpers here work on any TCP socket the host owns, connected
 * or not: keepalive options set on a listening socket are inherited by the
 * sockets it accepts, and TCP_INFO on a reset socket (state CLOSE, no peer
 * any more) is exactly the evidence a post-mortem wants. So they accept
 * VIGIL_ENOTCONN from the classifier and refuse only what is not TCP.
 */
#include "sockopt.h"

#include "error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel's own header, not <netinet/tcp.h>: glibc's struct tcp_info
 * stops at tcpi_total_retrans and lacks tcpi_notsent_bytes. */
#include <linux/tcp.h>

/* getsockopt() of one int option; VIGIL_OK or a mapped error, recorded
 * with the option's name (vigil_last_error). */
static int get_int_named(int fd, int level, int name, const char *call,
                         int *out) {
  socklen_t len = sizeof *out;
  *out = 0;
  if (getsockopt(fd, level, name, out, &len) < 0)
    return vigil__error_sys(call, errno);
  return VIGIL_OK;
}

/* setsockopt() of one int option; VIGIL_OK or a mapped error, recorded
 * with the option's name. */
static int set_int_named(int fd, int level, int name, const char *call,
                         int value) {
  if (setsockopt(fd, level, name, &value, sizeof value) < 0)
    return vigil__error_sys(call, errno);
  return VIGIL_OK;
}

#define get_int(fd, level, name, out)                                       \
  get_int_named(fd, level, name, "getsockopt " #name, out)
#define set_int(fd, level, name, value)                                     \
  set_int_named(fd, level, name, "setsockopt " #name, value)

int vigil__sock_classify(int fd) {
  struct sockaddr_storage ss;
  return vigil__sock_classify_peer(fd, &ss);
}

int vigil__sock_classify_peer(int fd, struct sockaddr_storage *peer) {
  if (fd < 0) {
    errno = EBADF;
    return vigil__error_set(VIGIL_EBADF, "fcntl F_GETFD", EBADF);
  }
  if (fcntl(fd, F_GETFD) < 0) return vigil__error_sys("fcntl F_GETFD", errno);

  int type, domain, proto, rc;
  rc = get_int(fd, SOL_SOCKET, SO_TYPE, &type);
  if (rc != VIGIL_OK) return rc; /* ENOTSOCK for pipes and files */
  if (type != SOCK_STREAM) return VIGIL_ENOTTCP;
  rc = get_int(fd, SOL_SOCKET, SO_DOMAIN, &domain);
  if (rc != VIGIL_OK) return rc;
  if (domain != AF_INET && domain != AF_INET6) return VIGIL_ENOTTCP;
  /* MPTCP sockets are AF_INET stream sockets too, but TCP_INFO and the
   * TCP_* options do not mean the same there. */
  rc = get_int(fd, SOL_SOCKET, SO_PROTOCOL, &proto);
  if (rc != VIGIL_OK) return rc;
  if (proto != IPPROTO_TCP) return VIGIL_ENOTTCP;

  socklen_t len = sizeof *peer;
  memset(peer, 0, sizeof *peer);
  if (getpeername(fd, (struct sockaddr *)peer, &len) < 0)
    return vigil__error_sys("getpeername", errno);
  return VIGIL_OK;
}

/* Classifies fd for the public helpers: a TCP socket with or without a
 * peer is fine (see the file comment). */
static int require_tcp(int fd) {
  int rc = vigil__sock_classify(fd);
  return rc == VIGIL_ENOTCONN ? VIGIL_OK : rc;
}

int vigil__sock_set_nonblock(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return vigil__error_sys("fcntl F_GETFL", errno);
  if (flags & O_NONBLOCK) return VIGIL_OK;
  if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return vigil__error_sys("fcntl F_SETFL", errno);
  return VIGIL_OK;
}

int vigil__sock_snapshot(int fd, vigil__sock_state *st) {
  st->fl = fcntl(fd, F_GETFL);
  if (st->fl < 0) return vigil__error_sys("fcntl F_GETFL", errno);
  return vigil__sock_get_opts(fd, &st->opts);
}

/* Writes one int option back, ignoring failure (and recording none: the
 * error being reported is the one that made us restore). */
static void put_int(int fd, int level, int name, int value) {
  (void)setsockopt(fd, level, name, &value, sizeof value);
}

/* Best effort: this runs on an error path, and every value written was
 * just read from this socket. TCP_LINGER2 reads back tcp_fin_timeout
 * when unset; writing that value back keeps the same timeout. */
void vigil__sock_restore(int fd, const vigil__sock_state *st) {
  int saved = errno;
  const vigil_sockopts *o = &st->opts;
  put_int(fd, SOL_SOCKET, SO_KEEPALIVE, o->keepalive);
  put_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o->keepalive_idle_s);
  put_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o->keepalive_intvl_s);
  put_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o->keepalive_cnt);
  put_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)o->user_timeout_ms);
  put_int(fd, IPPROTO_TCP, TCP_NODELAY, o->nodelay);
  put_int(fd, IPPROTO_TCP, TCP_LINGER2, o->fin_wait2_s);
  (void)fcntl(fd, F_SETFL, st->fl);
  errno = saved;
}

/*
 * A zero linger time makes close() discard unsent data and send RST
 * instead of FIN. The socket is then gone at once: no FIN_WAIT1 waiting on
 * a peer that will never ACK (the orphan a blackholed peer leaves behind
 * with a normal close), and no TIME_WAIT on our side. Use it only for peers
 * already known dead or misbehaving.
 */
int vigil__sock_set_abort_linger(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
    return vigil__error_sys("setsockopt SO_LINGER", errno);
  return VIGIL_OK;
}

/* Writes "?" into buf (when there is room) so log lines never show
 * garbage for an unknown peer. */
static void mark_unknown(char *buf, size_t len) {
  if (!buf || len == 0) return;
  if (len >= 2) {
    buf[0] = '?';
    buf[1] = '\0';
  } else {
    buf[0] = '\0';
  }
}

/* "a.b.c.d:port" into out (room for 22 bytes), NUL-terminated; returns
 * the length. By hand, not inet_ntop + snprintf: those cost about 3,000
 * instructions, and every event of a conn formats its peer (four per
 * connection in a reconnect storm). */
static size_t format_ipv4_port(const unsigned char *a, unsigned port,
                               char *out) {
  char *p = out;
  for (int i = 0; i < 4; i++) {
    unsigned v = a[i];
    if (v >= 100) *p++ = (char)('0' + v / 100);
    if (v >= 10) *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    *p++ = i < 3 ? '.' : ':';
  }
  char digits[5];
  int n = 0;
  do {
    digits[n++] = (char)('0' + port % 10);
    port /= 10;
  } while (port && n < 5);
  while (n) *p++ = digits[--n];
  *p = '\0';
  return (size_t)(p - out);
}

int vigil__sockaddr_format(const struct sockaddr *sa, char *buf, size_t len) {
  if (!buf || len == 0) return VIGIL_EINVAL;
  if (!sa) {
    mark_unknown(buf, len);
    return VIGIL_EINVAL;
  }

  char host[INET6_ADDRSTRLEN];
  int n;
  const unsigned char *v4 = NULL;
  unsigned port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    v4 = (const unsigned char *)&in->sin_addr;
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6 &&
             IN6_IS_ADDR_V4MAPPED(
                 &((const struct sockaddr_in6 *)sa)->sin6_addr)) {
    /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; show
     * them the way an IPv4 listener would. */
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    v4 = &in6->sin6_addr.s6_addr[12];
    port = ntohs(in6->sin6_port);
  }
  if (v4) {
    char text[24];
    size_t tl = format_ipv4_port(v4, port, text);
    size_t keep = tl < len ? tl : len - 1;
    memcpy(buf, text, keep);
    buf[keep] = '\0';
    return tl >= len ? VIGIL_EOVERFLOW : VIGIL_OK;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    port = ntohs(in6->sin6_port);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    if (in6->sin6_scope_id != 0)
      n = snprintf(buf, len, "[%s%%%u]:%u", host,
                   (unsigned)in6->sin6_scope_id, port);
    else
      n = snprintf(buf, len, "[%s]:%u", host, port);
  } else {
    mark_unknown(buf, len);
    return VIGIL_EADDR;
  }
  if (n < 0) {
    mark_unknown(buf, len);
    return VIGIL_ESYS;
  }
  return (size_t)n >= len ? VIGIL_EOVERFLOW : VIGIL_OK;
}

int vigil__sock_peer_string(int fd, char *buf, size_t len) {
  if (!buf || len == 0) return VIGIL_EINVAL;
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &sslen) < 0) {
    int e = errno;
    mark_unknown(buf, len);
    errno = e;
    return vigil__error_sys("getpeername", e);
  }
  return vigil__sockaddr_format((const struct sockaddr *)&ss, buf, len);
}

int vigil__sock_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

/* ---- public helpers ---------------------------------------------------- */

int vigil_socket_apply_policy(int fd, const vigil_policy *p) {
  if (!p || vigil_policy_validate(p, NULL, 0) != VIGIL_OK)
    return VIGIL_EINVAL;
  int rc = require_tcp(fd);
  if (rc != VIGIL_OK) return rc;
  return vigil__sock_apply(fd, p);
}

void vigil__sock_want(const vigil_policy *p, vigil_sockopts *w) {
  w->keepalive = p->keepalive ? 1 : 0;
  w->keepalive_idle_s = p->keepalive ? p->keepalive_idle_s : -1;
  w->keepalive_intvl_s = p->keepalive ? p->keepalive_intvl_s : -1;
  w->keepalive_cnt = p->keepalive ? p->keepalive_cnt : -1;
  w->user_timeout_ms = vigil_policy_user_timeout(p);
  w->nodelay = p->nodelay ? 1 : 0;
  w->fin_wait2_s = p->fin_wait2_s;
}

/* 1 when option value `want` must be written over `have` (-1 = unknown). */
static int differs(int want, int have) { return have < 0 || want != have; }

int vigil__sock_apply_changes(int fd, const vigil_sockopts *w,
                              const vigil_sockopts *have) {
  /* Nothing known; no policy asks for a user timeout of UINT32_MAX. */
  const vigil_sockopts none = {-1, -1, -1, -1, UINT32_MAX, -1, -1};
  const vigil_sockopts *h = have ? have : &none;
  int rc = VIGIL_OK;
  if (differs(w->keepalive, h->keepalive))
    rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, w->keepalive);
  if (rc == VIGIL_OK && w->keepalive) {
    if (differs(w->keepalive_idle_s, h->keepalive_idle_s))
      rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, w->keepalive_idle_s);
    if (rc == VIGIL_OK && differs(w->keepalive_intvl_s, h->keepalive_intvl_s))
      rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, w->keepalive_intvl_s);
    if (rc == VIGIL_OK && differs(w->keepalive_cnt, h->keepalive_cnt))
      rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, w->keepalive_cnt);
  }
  /* Written even when 0: a per-connection override that turns the user
   * timeout off must undo a value an earlier policy set. */
  if (rc == VIGIL_OK && w->user_timeout_ms != h->user_timeout_ms)
    rc = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)w->user_timeout_ms);
  if (rc == VIGIL_OK && differs(w->nodelay, h->nodelay))
    rc = set_int(fd, IPPROTO_TCP, TCP_NODELAY, w->nodelay);
  /* Same for TCP_LINGER2: the kernel reads 0 as "use tcp_fin_timeout",
   * which is what fin_wait2_s = 0 means, so writing it restores the
   * default after an override. */
  if (rc == VIGIL_OK && differs(w->fin_wait2_s, h->fin_wait2_s))
    rc = set_int(fd, IPPROTO_TCP, TCP_LINGER2, w->fin_wait2_s);
  return rc;
}

int vigil__sock_apply(int fd, const vigil_policy *p) {
  vigil_sockopts w;
  vigil__sock_want(p, &w);
  return vigil__sock_apply_changes(fd, &w, NULL);
}

int vigil__sock_carries(int fd, const vigil_sockopts *w) {
  vigil_sockopts got;
  if (vigil__sock_get_opts(fd, &got) != VIGIL_OK) return 0;
  if (got.keepalive != w->keepalive || got.nodelay != w->nodelay ||
      got.user_timeout_ms != w->user_timeout_ms)
    return 0;
  if (w->keepalive && (got.keepalive_idle_s != w->keepalive_idle_s ||
                       got.keepalive_intvl_s != w->keepalive_intvl_s ||
                       got.keepalive_cnt != w->keepalive_cnt))
    return 0;
  /* LINGER2 0 reads back as tcp_fin_timeout: only a set value compares. */
  return w->fin_wait2_s == 0 || got.fin_wait2_s == w->fin_wait2_s;
}

int vigil__sock_effective(int fd, vigil_sockopts *so, int fin_default_s) {
  int rc = VIGIL_OK;
  if (!so->keepalive &&
      ((rc = get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &so->keepalive_idle_s)) ||
       (rc = get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                     &so->keepalive_intvl_s)) ||
       (rc = get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &so->keepalive_cnt))))
    return rc;
  if (so->fin_wait2_s == 0) {
    if (fin_default_s > 0)
      so->fin_wait2_s = fin_default_s;
    else
      rc = get_int(fd, IPPROTO_TCP, TCP_LINGER2, &so->fin_wait2_s);
  }
  return rc;
}

int vigil_socket_get_opts(int fd, vigil_sockopts *out) {
  if (!out) return VIGIL_EINVAL;
  memset(out, 0, sizeof *out);
  int rc = require_tcp(fd);
  if (rc != VIGIL_OK) return rc;
  return vigil__sock_get_opts(fd, out);
}

int vigil__sock_get_opts(int fd, vigil_sockopts *out) {
  int rc, ut = 0;
  memset(out, 0, sizeof *out);
  if ((rc = get_int(fd, SOL_SOCKET, SO_KEEPALIVE, &out->keepalive)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &out->keepalive_idle_s)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                    &out->keepalive_intvl_s)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &out->keepalive_cnt)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_LINGER2, &out->fin_wait2_s)) ||
      (rc = get_int(fd, IPPROTO_TCP, TCP_NODELAY, &out->nodelay)))
    return rc;
  out->keepalive = out->keepalive != 0;
  out->nodelay = out->nodelay != 0;
  out->user_timeout_ms = ut > 0 ? (uint32_t)ut : 0;
  return VIGIL_OK;
}

int vigil_socket_tcp_info(int fd, vigil_tcp_info *out) {
  if (!out) return VIGIL_EINVAL;
  memset(out, 0, sizeof *out);
  int rc = require_tcp(fd);
  if (rc != VIGIL_OK) return rc;
  return vigil__sock_tcp_info(fd, out);
}

int vigil__sock_tcp_info(int fd, vigil_tcp_info *out) {
  memset(out, 0, sizeof *out);

  /* Zeroed first: an older kernel copies a shorter struct, and the fields
   * it does not know then read as 0. */
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
    return vigil__error_sys("getsockopt TCP_INFO", errno);

  out->state = ti.tcpi_state;
  out->rtt_us = ti.tcpi_rtt;
  out->rttvar_us = ti.tcpi_rttvar;
  out->rto_us = ti.tcpi_rto;
  out->unacked = ti.tcpi_unacked;
  out->retransmits = ti.tcpi_retransmits;
  out->total_retrans = ti.tcpi_total_retrans;
  out->backoff = ti.tcpi_backoff;
  out->probes = ti.tcpi_probes;
  out->last_data_sent_ms = ti.tcpi_last_data_sent;
  out->last_data_recv_ms = ti.tcpi_last_data_recv;
  out->last_ack_recv_ms = ti.tcpi_last_ack_recv;
  out->snd_cwnd = ti.tcpi_snd_cwnd;
  out->notsent_bytes = ti.tcpi_notsent_bytes;
  return VIGIL_OK;
}

const char *vigil_tcp_state_name(int state) {
  static const char *const names[VIGIL_TCP_STATE__COUNT] = {
      [VIGIL_TCP_ESTABLISHED] = "ESTABLISHED",
      [VIGIL_TCP_SYN_SENT] = "SYN_SENT",
      [VIGIL_TCP_SYN_RECV] = "SYN_RECV",
      [VIGIL_TCP_FIN_WAIT1] = "FIN_WAIT1",
      [VIGIL_TCP_FIN_WAIT2] = "FIN_WAIT2",
      [VIGIL_TCP_TIME_WAIT] = "TIME_WAIT",
      [VIGIL_TCP_CLOSE] = "CLOSE",
      [VIGIL_TCP_CLOSE_WAIT] = "CLOSE_WAIT",
      [VIGIL_TCP_LAST_ACK] = "LAST_ACK",
      [VIGIL_TCP_LISTEN] = "LISTEN",
      [VIGIL_TCP_CLOSING] = "CLOSING",
      [VIGIL_TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
  };
  if (state <= 0 || state >= VIGIL_TCP_STATE__COUNT) return "UNKNOWN";
  return names[state];
}
