/*
 * Parsing of sock_diag (inet_diag) netlink answers. Pure functions: they
 * read a buffer and write structs, no system calls, so the unit tests can
 * feed them crafted and broken buffers.
 *
 * Wire format of one recv() buffer: a sequence of netlink messages, each a
 * struct nlmsghdr followed by its payload, each starting at an
 * NLMSG_ALIGN()ed offset. A dump answer is SOCK_DIAG_BY_FAMILY messages
 * (payload: struct inet_diag_msg, then attributes we did not ask for),
 * ended by NLMSG_DONE. A failure is NLMSG_ERROR carrying -errno; an
 * acknowledged request (NLM_F_ACK) is NLMSG_ERROR carrying 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <string.h>

#include "census_internal.h"
#include "error.h"

int vigil__census_map_errno(int err) {
  switch (err) {
  case EPERM:
  case EACCES: return VIGIL_EPERM;
  case EOPNOTSUPP:
  case EPROTONOSUPPORT:
  case EAFNOSUPPORT: return VIGIL_ENOTSUP;
  case ENOENT:
  case ESTALE: /* SOCK_DESTROY: same 4-tuple, different cookie */
    return VIGIL_ENOENT;
  case ENOMEM:
  case ENOBUFS: return VIGIL_ENOMEM;
  case EINVAL: return VIGIL_EINVAL;
  default: errno = err; return VIGIL_ESYS;
  }
}

int vigil__census_sys(const char *call, int err) {
  int code = vigil__census_map_errno(err);
  vigil__error_set(code, call, err);
  errno = err;
  return code;
}

/* Turns a kernel error code carried in a message (negative errno, as
 * NLMSG_ERROR and NLMSG_DONE carry it) into our result. */
static int kernel_error(int neg_errno, int *kerr) {
  /* Not an errno (positive, or beyond the kernel's -4095; INT_MIN cannot
   * even be negated): the answer is malformed. A real -EPROTO from the
   * kernel is mapped like any other errno. */
  if (!(neg_errno < 0 && neg_errno > -4096)) {
    if (kerr) *kerr = EPROTO;
    return VIGIL_EPROTO;
  }
  if (kerr) *kerr = -neg_errno;
  return vigil__census_sys("sock_diag", -neg_errno);
}

int vigil__census_parse(const void *buf, size_t len, uint32_t seq,
                        vigil__census_msg_fn fn, void *ctx, int *kerr) {
  const unsigned char *p = buf;
  size_t off = 0;
  if (kerr) *kerr = 0;
  if (!buf && len) return VIGIL_EPROTO;
  while (off < len) {
    struct nlmsghdr h;
    size_t left = len - off;
    if (left < NLMSG_HDRLEN) return VIGIL_EPROTO; /* truncated header */
    memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left) return VIGIL_EPROTO;
    const unsigned char *payload = p + off + NLMSG_HDRLEN;
    size_t plen = h.nlmsg_len - NLMSG_HDRLEN;
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    /* The last message of a buffer may omit its alignment padding. */
    off = step < left ? off + step : len;
    if (h.nlmsg_seq != seq) continue; /* not an answer to our request */

    switch (h.nlmsg_type) {
    case NLMSG_NOOP: break;
    case NLMSG_DONE: {
      /* Since 4.x a DONE may carry the dump's final error code. */
      int code = 0;
      if (plen >= sizeof code) memcpy(&code, payload, sizeof code);
      if (code < 0) return kernel_error(code, kerr);
      return VIGIL__CENSUS_DONE;
    }
    case NLMSG_ERROR: {
      int code;
      if (plen < sizeof code) return VIGIL_EPROTO;
      memcpy(&code, payload, sizeof code);
      if (code == 0) return VIGIL__CENSUS_ACK;
      return kernel_error(code, kerr);
    }
    case NLMSG_OVERRUN: return VIGIL_EPROTO;
    case SOCK_DIAG_BY_FAMILY: {
      struct inet_diag_msg m;
      if (plen < sizeof m) return VIGIL_EPROTO;
      memcpy(&m, payload, sizeof m);
      if (fn) {
        int rc = fn(&m, ctx);
        if (rc < 0) return rc;
      }
      break;
    }
    default: break; /* unknown types are skipped, as netlink allows */
    }
  }
  return VIGIL__CENSUS_MORE;
}

void vigil__census_format_addr(int family, const void *addr, uint16_t port,
                               char *buf, size_t cap) {
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, addr, text, sizeof text))
    snprintf(text, sizeof text, "?");
  if (family == AF_INET6)
    snprintf(buf, cap, "[%s]:%u", text, (unsigned)port);
  else
    snprintf(buf, cap, "%s:%u", text, (unsigned)port);
}

void vigil__census_decode_fields(const struct inet_diag_msg *m,
                                 vigil_census_socket *out) {
  memset(out, 0, sizeof *out);
  out->family = m->idiag_family;
  out->state = (vigil_tcp_state)m->idiag_state;
  /* Pending connection requests are reported as SYN_RECV by ss/netstat. */
  if (m->idiag_state == VIGIL_TCP_NEW_SYN_RECV) out->state = VIGIL_TCP_SYN_RECV;
  out->timer = (vigil_census_timer)m->idiag_timer;
  out->expires_ms =
      out->timer == VIGIL_CENSUS_TIMER_NONE ? 0 : m->idiag_expires;
  out->retransmits = m->idiag_retrans;
  out->rqueue = m->idiag_rqueue;
  out->wqueue = m->idiag_wqueue;
  out->uid = m->idiag_uid;
  out->inode = m->idiag_inode;

  vigil_census_sockid *id = &out->id;
  size_t alen = m->idiag_family == AF_INET6 ? 16 : 4;
  memcpy(id->local_addr, m->id.idiag_src, alen);
  memcpy(id->peer_addr, m->id.idiag_dst, alen);
  id->local_port = ntohs(m->id.idiag_sport);
  id->peer_port = ntohs(m->id.idiag_dport);
  id->ifindex = m->id.idiag_if;
  id->cookie = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1]
                                                     << 32;
}

void vigil__census_format_text(vigil_census_socket *s) {
  int fam = s->family == AF_INET6 ? AF_INET6 : AF_INET;
  vigil__census_format_addr(fam, s->id.local_addr, s->id.local_port, s->local,
                            sizeof s->local);
  vigil__census_format_addr(fam, s->id.peer_addr, s->id.peer_port, s->peer,
                            sizeof s->peer);
}

void vigil__census_decode(const struct inet_diag_msg *m,
                          vigil_census_socket *out) {
  vigil__census_decode_fields(m, out);
  vigil__census_format_text(out);
}
