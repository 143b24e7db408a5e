/*
 * SOCK_DESTROY: ask the kernel to abort a TCP socket found by a census,
 * whoever holds it (what `ss -K` does). The kernel looks the socket up by
 * its 4-tuple, checks the cookie, then calls tcp_abort(): the owner's next
 * call fails with ECONNABORTED and the peer gets an RST.
 *
 * Needs CONFIG_INET_DIAG_DESTROY (else EOPNOTSUPP) and CAP_NET_ADMIN in
 * the socket's network namespace (else EPERM).
 */
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "census_internal.h"

#ifndef SOCK_DESTROY
#define SOCK_DESTROY 21 /* linux/sock_diag.h since 4.5 */
#endif

int vigil_census_destroy(const vigil_census_socket *s) {
  if (!s || (s->family != AF_INET && s->family != AF_INET6))
    return VIGIL_EINVAL;
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DESTROY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.r.sdiag_family = (uint8_t)s->family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = VIGIL_CENSUS_ALL_STATES;
  size_t alen = s->family == AF_INET6 ? 16 : 4;
  memcpy(req.r.id.idiag_src, s->id.local_addr, alen);
  memcpy(req.r.id.idiag_dst, s->id.peer_addr, alen);
  req.r.id.idiag_sport = htons(s->id.local_port);
  req.r.id.idiag_dport = htons(s->id.peer_port);
  req.r.id.idiag_if = s->id.ifindex;
  /* The cookie makes sure we abort this socket, not a newer one that
   * reused the same 4-tuple. */
  req.r.id.idiag_cookie[0] = (uint32_t)s->id.cookie;
  req.r.id.idiag_cookie[1] = (uint32_t)(s->id.cookie >> 32);

  int rc =
      vigil__census_exchange(&req.nlh, NULL, NULL, VIGIL__CENSUS_WAIT_MS);
  if (rc == VIGIL__CENSUS_ACK) return VIGIL_OK;
  if (rc >= 0) return VIGIL_EPROTO; /* a DONE where an ack was due */
  return rc;
}
