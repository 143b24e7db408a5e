/*
 * libFuzzer target for the sock_diag reply parser (src/census_parse.c)
 * and what consumes its records (decoding, the census collector), built
 * by tests/fuzz/run_fuzz.sh.
 *
 * Input: byte 0 = config, bytes 1-4 = the request's sequence number
 * (little endian), bytes 5-6 = a port for the query's filter (0 = none),
 * then the answer as recv() buffers, each a little-endian u16 length and
 * that many bytes (a short last buffer takes what is left). Buffers are
 * parsed in order until one ends the answer, as vigil__census_exchange
 * does; each is copied to its own allocation of exactly its length so any
 * read past it is caught.
 *   config bits 0-2  the record callback fails (VIGIL_ENOMEM) at this
 *                    record (0: never)
 *   config bits 3-4  query family: all, IPv4, IPv6, all
 *   config bit  5    port filter matches local or peer port
 *   config bit  6    list sockets (want_sockets), capped at 3 when bit 7
 *
 * Invariants checked (abort on violation):
 * - the parser's verdict and the records it delivers match a reference
 *   walk written with the kernel's NLMSG_OK/NLMSG_NEXT macros;
 * - each record handed to the callback equals the payload bytes;
 * - results are one of the documented ones; *kerr is set exactly for
 *   kernel errors and maps to the result; kerr NULL changes nothing;
 * - decoded records format as "a.b.c.d:port" / "[v6]:port", always
 *   NUL-terminated; the collector's counts add up and its list obeys the
 *   query; the picks only return listed sockets that match.
 */
#include "fuzz_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <string.h>

#include "census_internal.h"

/* ---- reference walk ---------------------------------------------------- */

#define MAX_RECORDS 1024

typedef struct ref_result {
  int rc;                      /* expected vigil__census_parse result */
  int kerr;                    /* expected *kerr */
  size_t nrecords;             /* records the callback is given */
  size_t offset[MAX_RECORDS];  /* where each record's payload starts */
} ref_result;

static int ref_kernel_error(int code, int *kerr) {
  if (code >= 0 || code <= -4096) {
    *kerr = EPROTO;
    return VIGIL_EPROTO;
  }
  *kerr = -code;
  return vigil__census_map_errno(-code);
}

/* Walks buf with NLMSG_OK/NLMSG_NEXT; fail_at (1-based, 0 = never) is the
 * record at which the callback returns VIGIL_ENOMEM. */
static void ref_parse(const unsigned char *buf, size_t len, uint32_t seq,
                      size_t fail_at, size_t seen_before, ref_result *r) {
  memset(r, 0, sizeof *r);
  r->rc = VIGIL__CENSUS_MORE;
  int left = (int)len; /* the macros work on int */
  const struct nlmsghdr *h = (const void *)buf;
  struct nlmsghdr hdr;
  for (;;) {
    if (left <= 0) return; /* consumed (the last may lack padding) */
    if (left < (int)sizeof hdr) {
      r->rc = VIGIL_EPROTO;
      return;
    }
    memcpy(&hdr, h, sizeof hdr);
    /* NLMSG_OK compares the u32 length with the int left (positive here). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
    int ok = NLMSG_OK(&hdr, left);
#pragma GCC diagnostic pop
    if (!ok) {
      r->rc = VIGIL_EPROTO;
      return;
    }
    const unsigned char *data = (const unsigned char *)h + NLMSG_HDRLEN;
    size_t plen = NLMSG_PAYLOAD(&hdr, 0);
    int code = 0;
    if (hdr.nlmsg_seq == seq) {
      switch (hdr.nlmsg_type) {
      case NLMSG_DONE:
        if (plen >= sizeof code) memcpy(&code, data, sizeof code);
        r->rc = code < 0 ? ref_kernel_error(code, &r->kerr)
                         : VIGIL__CENSUS_DONE;
        return;
      case NLMSG_ERROR:
        if (plen < sizeof code) {
          r->rc = VIGIL_EPROTO;
          return;
        }
        memcpy(&code, data, sizeof code);
        r->rc = code == 0 ? VIGIL__CENSUS_ACK : ref_kernel_error(code, &r->kerr);
        return;
      case NLMSG_OVERRUN:
        r->rc = VIGIL_EPROTO;
        return;
      case SOCK_DIAG_BY_FAMILY:
        if (plen < sizeof(struct inet_diag_msg)) {
          r->rc = VIGIL_EPROTO;
          return;
        }
        CHECK(r->nrecords < MAX_RECORDS);
        r->offset[r->nrecords++] = (size_t)(data - buf);
        if (fail_at && seen_before + r->nrecords == fail_at) {
          r->rc = VIGIL_ENOMEM;
          return;
        }
        break;
      default: break; /* NLMSG_NOOP and unknown types */
      }
    }
    /* NLMSG_NEXT, with len as an int that may go negative. */
    h = (const void *)((const unsigned char *)h + NLMSG_ALIGN(hdr.nlmsg_len));
    left -= (int)NLMSG_ALIGN(hdr.nlmsg_len);
  }
}

/* ---- record checks ----------------------------------------------------- */

/* s is "a.b.c.d:port" (IPv4) or "[v6]:port", NUL-terminated in cap. */
static void check_addr_text(const char *s, size_t cap, int family,
                            const uint8_t *addr, uint16_t port) {
  const char *nul = memchr(s, '\0', cap);
  CHECK(nul != NULL);
  const char *colon = strrchr(s, ':');
  CHECK(colon != NULL);
  char want_port[8];
  snprintf(want_port, sizeof want_port, "%u", (unsigned)port);
  CHECK(strcmp(colon + 1, want_port) == 0);
  char host[VIGIL_CENSUS_ADDRSTRLEN];
  size_t hlen = (size_t)(colon - s);
  uint8_t back[16];
  if (family == AF_INET6) {
    CHECK(hlen >= 2 && s[0] == '[' && colon[-1] == ']');
    memcpy(host, s + 1, hlen - 2);
    host[hlen - 2] = '\0';
    CHECK(inet_pton(AF_INET6, host, back) == 1);
    CHECK(memcmp(back, addr, 16) == 0);
  } else {
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    CHECK(inet_pton(AF_INET, host, back) == 1);
    CHECK(memcmp(back, addr, 4) == 0);
  }
}

typedef struct ctx {
  const unsigned char *buf; /* the buffer being parsed */
  const ref_result *ref;
  size_t in_buffer;         /* records delivered from this buffer */
  size_t seen;              /* records delivered in all */
  size_t fail_at;
  vigil__census_collector *col; /* NULL: decode only */
} ctx;

static int on_record(const struct inet_diag_msg *m, void *ud) {
  ctx *c = ud;
  CHECK(c->in_buffer < c->ref->nrecords);
  const unsigned char *at = c->buf + c->ref->offset[c->in_buffer++];
  CHECK(memcmp(m, at, sizeof *m) == 0);
  c->seen++;
  if (c->fail_at && c->seen == c->fail_at) return VIGIL_ENOMEM;

  vigil_census_socket s;
  vigil__census_decode(m, &s);
  int fam = m->idiag_family == AF_INET6 ? AF_INET6 : AF_INET;
  check_addr_text(s.local, sizeof s.local, fam, s.id.local_addr,
                  s.id.local_port);
  check_addr_text(s.peer, sizeof s.peer, fam, s.id.peer_addr, s.id.peer_port);
  CHECK(s.state != VIGIL_TCP_NEW_SYN_RECV);
  CHECK(s.timer != VIGIL_CENSUS_TIMER_NONE || s.expires_ms == 0);
  return c->col ? vigil__census_collect(m, c->col) : 0;
}

/* ---- collector checks -------------------------------------------------- */

static int state_in(uint32_t mask, int st) {
  return st > 0 && st < 32 && (mask & VIGIL_CENSUS_STATE_BIT(st)) != 0;
}

static void check_census(const vigil_census *out, const vigil_census_query *q,
                         const vigil__census_collector *col) {
  uint64_t sum = 0;
  for (int st = 0; st < VIGIL_TCP_STATE__COUNT; st++) {
    CHECK(out->counts[st] == 0 || state_in(col->states, st));
    CHECK(out->self_counts[st] <= out->counts[st]);
    sum += out->counts[st];
  }
  CHECK(sum == out->total);
  CHECK(out->orphans <= out->total);
  CHECK(out->nsockets + out->sockets_omitted <= out->total);
  CHECK(q->want_sockets || out->nsockets == 0);
  CHECK(!q->max_sockets || out->nsockets <= q->max_sockets);
  for (size_t i = 0; i < out->nsockets; i++) {
    const vigil_census_socket *s = &out->sockets[i];
    CHECK(s->family == AF_INET || s->family == AF_INET6);
    CHECK(q->family != VIGIL_CENSUS_FAMILY_IPV4 || s->family == AF_INET);
    CHECK(q->family != VIGIL_CENSUS_FAMILY_IPV6 || s->family == AF_INET6);
    CHECK(state_in(col->list_states, (int)s->state));
    if (q->nports)
      CHECK(s->id.local_port == q->ports[0] ||
            (q->port_match == VIGIL_CENSUS_MATCH_EITHER &&
             s->id.peer_port == q->ports[0]));
    check_addr_text(s->local, sizeof s->local, s->family, s->id.local_addr,
                    s->id.local_port);
    check_addr_text(s->peer, sizeof s->peer, s->family, s->id.peer_addr,
                    s->id.peer_port);
  }
  const vigil_census_socket *picked[4];
  for (unsigned pick = 0; pick < 16; pick++) {
    size_t n = vigil_census_pick(out, pick, picked, 4);
    CHECK(n <= out->nsockets);
    for (size_t i = 0; i < n && i < 4; i++) {
      CHECK(picked[i] >= out->sockets && picked[i] < out->sockets + out->nsockets);
      CHECK(vigil_census_socket_is(picked[i], pick));
    }
  }
}

/* ---- driver ------------------------------------------------------------ */

static int known_result(int rc) {
  switch (rc) {
  case VIGIL__CENSUS_MORE:
  case VIGIL__CENSUS_DONE:
  case VIGIL__CENSUS_ACK:
  case VIGIL_EPROTO:
  case VIGIL_EPERM:
  case VIGIL_ENOTSUP:
  case VIGIL_ENOENT:
  case VIGIL_ENOMEM:
  case VIGIL_EINVAL:
  case VIGIL_ESYS: return 1;
  default: return 0;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 7) return 0;
  const uint8_t cfg = data[0];
  uint32_t seq = (uint32_t)data[1] | (uint32_t)data[2] << 8 |
                 (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
  uint16_t port = (uint16_t)(data[5] | data[6] << 8);
  const size_t fail_at = cfg & 7;

  vigil_census_query q;
  vigil_census_query_init(&q);
  static const vigil_census_family fams[4] = {
      VIGIL_CENSUS_FAMILY_ALL, VIGIL_CENSUS_FAMILY_IPV4,
      VIGIL_CENSUS_FAMILY_IPV6, VIGIL_CENSUS_FAMILY_ALL};
  q.family = fams[(cfg >> 3) & 3];
  q.ports = &port;
  q.nports = port ? 1 : 0;
  q.port_match = (cfg >> 5) & 1 ? VIGIL_CENSUS_MATCH_EITHER
                                : VIGIL_CENSUS_MATCH_LOCAL;
  q.want_sockets = (cfg >> 6) & 1;
  q.max_sockets = (cfg >> 7) ? 3 : 0;
  q.want_self = 0;
  /* "This process" holds the sockets whose inode is the sequence number. */
  vigil__inode_set self = {0};
  CHECK(vigil__inode_set_add(&self, seq) == VIGIL_OK);
  vigil__inode_set_sort(&self);
  vigil_census *out = calloc(1, sizeof *out);
  CHECK(out != NULL);
  vigil__census_collector col;
  CHECK(vigil__census_collector_init(&col, &q, &self, out) == VIGIL_OK);

  ctx c = {0};
  c.fail_at = fail_at;
  c.col = &col;
  size_t pos = 7;
  int rc = VIGIL__CENSUS_MORE;
  while (pos < size && rc == VIGIL__CENSUS_MORE) {
    size_t n = data[pos];
    if (pos + 1 < size) n |= (size_t)data[pos + 1] << 8;
    pos += 2;
    if (pos > size) pos = size;
    if (n > size - pos) n = size - pos;
    /* An exact-size copy: ASan sees any read past the buffer. */
    unsigned char *buf = malloc(n ? n : 1);
    CHECK(buf != NULL);
    if (n) memcpy(buf, data + pos, n);
    pos += n;

    ref_result *ref = malloc(sizeof *ref);
    CHECK(ref != NULL);
    ref_parse(buf, n, seq, fail_at, c.seen, ref);
    c.buf = buf;
    c.ref = ref;
    c.in_buffer = 0;
    int kerr = -1;
    errno = 0;
    rc = vigil__census_parse(buf, n, seq, on_record, &c, &kerr);
    CHECK(known_result(rc));
    CHECK(rc == ref->rc);
    CHECK(kerr == ref->kerr);
    CHECK(c.in_buffer == ref->nrecords);
    if (kerr != 0 && kerr != EPROTO)
      CHECK(vigil__census_map_errno(kerr) == rc);
    /* Without a callback or kerr the verdict is the one the reference
     * gives when no record fails. */
    ref_parse(buf, n, seq, 0, 0, ref);
    CHECK(vigil__census_parse(buf, n, seq, NULL, NULL, NULL) == ref->rc);
    free(ref);
    free(buf);
  }
  check_census(out, &q, &col);
  vigil_census_free(out);
  vigil__inode_set_free(&self);
  return 0;
}
