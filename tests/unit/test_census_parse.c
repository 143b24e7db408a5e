/*
 * Census pure logic: the netlink answer parser fed crafted buffers (valid,
 * truncated, errors, bad lengths, every prefix of a valid buffer), record
 * decoding, the collector's filters, state-name parsing and the picks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "census_internal.h"
#include "rowtest.h"
#include "vigil.h"

#define SEQ 4242u

/* A netlink buffer under construction; 4-byte aligned like recv()'s. */
typedef struct nlbuf {
  uint32_t words[4096];
  size_t len;
} nlbuf;

static unsigned char *bytes(nlbuf *b) { return (unsigned char *)b->words; }

/* Appends one message (header + payload), padded to NLMSG_ALIGN. */
static void put_msg(nlbuf *b, uint16_t type, uint32_t seq, const void *payload,
                    size_t plen) {
  struct nlmsghdr h;
  memset(&h, 0, sizeof h);
  h.nlmsg_len = (uint32_t)NLMSG_LENGTH(plen);
  h.nlmsg_type = type;
  h.nlmsg_seq = seq;
  assert_true(b->len + NLMSG_ALIGN(h.nlmsg_len) <= sizeof b->words);
  memcpy(bytes(b) + b->len, &h, sizeof h);
  if (plen) memcpy(bytes(b) + b->len + NLMSG_HDRLEN, payload, plen);
  b->len += NLMSG_ALIGN(h.nlmsg_len);
}

static struct inet_diag_msg diag_msg(int family, int state, const char *src,
                                     uint16_t sport, const char *dst,
                                     uint16_t dport, uint32_t inode) {
  struct inet_diag_msg m;
  memset(&m, 0, sizeof m);
  m.idiag_family = (uint8_t)family;
  m.idiag_state = (uint8_t)state;
  assert_int_equal(inet_pton(family, src, m.id.idiag_src), 1);
  assert_int_equal(inet_pton(family, dst, m.id.idiag_dst), 1);
  m.id.idiag_sport = htons(sport);
  m.id.idiag_dport = htons(dport);
  m.idiag_inode = inode;
  return m;
}

#define v4_msg(...) diag_msg(AF_INET, __VA_ARGS__)
#define v6_msg(...) diag_msg(AF_INET6, __VA_ARGS__)

/* The record most cases use: an ESTABLISHED loopback socket. */
static struct inet_diag_msg est_msg(void) {
  return v4_msg(VIGIL_TCP_ESTABLISHED, "127.0.0.1", 1, "127.0.0.1", 2, 9);
}

static void put_diag(nlbuf *b, const struct inet_diag_msg *m) {
  put_msg(b, SOCK_DIAG_BY_FAMILY, SEQ, m, sizeof *m);
}

static void put_int(nlbuf *b, uint16_t type, int v) {
  put_msg(b, type, SEQ, &v, sizeof v);
}

/* Records decoded by the parser, for assertions. */
typedef struct seen {
  vigil_census_socket s[16];
  int n;
  int fail_at; /* return VIGIL_ENOMEM on this record (1-based); 0 = never */
} seen;

static int record(const struct inet_diag_msg *m, void *ctx) {
  seen *sn = ctx;
  if (sn->fail_at && sn->n + 1 == sn->fail_at) return VIGIL_ENOMEM;
  if (sn->n < 16) vigil__census_decode(m, &sn->s[sn->n]);
  sn->n++;
  return 0;
}

static int parse(nlbuf *b, seen *sn, int *kerr) {
  return vigil__census_parse(bytes(b), b->len, SEQ, record, sn, kerr);
}

/* --- parser: valid answers ------------------------------------------- */

static void test_parse_dump_and_done(void **state) {
  (void)state;
  static nlbuf b;
  seen sn = {0};
  memset(&b, 0, sizeof b);
  struct inet_diag_msg m1 =
      v4_msg(VIGIL_TCP_ESTABLISHED, "127.0.0.1", 1883, "10.1.2.3", 50000, 77);
  m1.idiag_timer = 2;
  m1.idiag_expires = 4500;
  m1.idiag_retrans = 3;
  m1.idiag_rqueue = 10;
  m1.idiag_wqueue = 20;
  m1.idiag_uid = 1000;
  m1.id.idiag_cookie[0] = 0x11223344;
  m1.id.idiag_cookie[1] = 0x55667788;
  struct inet_diag_msg m2 =
      v6_msg(VIGIL_TCP_CLOSE_WAIT, "::1", 1883, "2001:db8::7", 40000, 0);
  put_diag(&b, &m1);
  put_diag(&b, &m2);
  put_int(&b, NLMSG_DONE, 0);
  int kerr = -1;
  assert_int_equal(parse(&b, &sn, &kerr), VIGIL__CENSUS_DONE);
  assert_int_equal(kerr, 0);
  assert_int_equal(sn.n, 2);

  const vigil_census_socket *s = &sn.s[0];
  assert_int_equal(s->family, AF_INET);
  assert_int_equal(s->state, VIGIL_TCP_ESTABLISHED);
  assert_string_equal(s->local, "127.0.0.1:1883");
  assert_string_equal(s->peer, "10.1.2.3:50000");
  assert_int_equal(s->timer, VIGIL_CENSUS_TIMER_KEEPALIVE);
  assert_int_equal(s->expires_ms, 4500);
  assert_int_equal(s->retransmits, 3);
  assert_int_equal(s->rqueue, 10);
  assert_int_equal(s->wqueue, 20);
  assert_int_equal(s->uid, 1000);
  assert_int_equal(s->inode, 77);
  assert_int_equal(s->id.local_port, 1883);
  assert_int_equal(s->id.peer_port, 50000);
  assert_true(s->id.cookie == 0x5566778811223344ull);
  assert_int_equal(s->owner_pid, 0);
  assert_int_equal(s->in_this_process, 0);

  s = &sn.s[1];
  assert_int_equal(s->family, AF_INET6);
  assert_string_equal(s->local, "[::1]:1883");
  assert_string_equal(s->peer, "[2001:db8::7]:40000");
  assert_int_equal(s->inode, 0);
  assert_int_equal(s->expires_ms, 0); /* no timer: no expiry */
}

/* --- parser: answers small and broken, one row each ------------------- */

typedef struct parse_case {
  const char *name;
  void (*build)(nlbuf *b);
  int fail_at; /* the record callback fails on this record; 0: never */
  int want;    /* parse result */
  int records; /* records the callback saw */
} parse_case;

static void three_records(nlbuf *b) {
  struct inet_diag_msg m =
      v4_msg(VIGIL_TCP_LISTEN, "0.0.0.0", 80, "0.0.0.0", 0, 5);
  for (int i = 0; i < 3; i++) put_diag(b, &m);
}

static void three_records_and_done(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  for (int i = 0; i < 3; i++) put_diag(b, &m);
  put_int(b, NLMSG_DONE, 0);
}

static void foreign_and_unknown(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_msg(b, SOCK_DIAG_BY_FAMILY, SEQ + 1, &m, sizeof m); /* stale */
  put_msg(b, NLMSG_DONE, SEQ - 1, NULL, 0);               /* stale DONE */
  put_msg(b, NLMSG_NOOP, SEQ, NULL, 0);
  put_msg(b, 0x7777, SEQ, "xyz", 3); /* unknown type, odd length */
  put_diag(b, &m);
  put_int(b, NLMSG_DONE, 0);
}

static void last_message_unpadded(nlbuf *b) {
  put_msg(b, NLMSG_NOOP, SEQ, "ab", 2); /* NLMSG_LENGTH(2) = 18 */
  b->len = NLMSG_LENGTH(2);             /* no trailing pad */
}

static void done_without_payload(nlbuf *b) {
  put_msg(b, NLMSG_DONE, SEQ, NULL, 0);
}

static void error_short_payload(nlbuf *b) {
  put_msg(b, NLMSG_ERROR, SEQ, "\0\0", 2); /* fewer bytes than an int */
}

static void overrun(nlbuf *b) { put_msg(b, NLMSG_OVERRUN, SEQ, NULL, 0); }

static void header_cut_short(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_diag(b, &m);
  b->len = 10;
}

/* nlmsg_len claims more than the buffer holds. */
static void length_past_the_end(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_diag(b, &m);
  b->len -= 8;
}

static void set_first_length(nlbuf *b, uint32_t len) {
  struct nlmsghdr h;
  memcpy(&h, bytes(b), sizeof h);
  h.nlmsg_len = len;
  memcpy(bytes(b), &h, sizeof h);
}

static void length_huge(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_diag(b, &m);
  set_first_length(b, UINT32_MAX);
}

/* A diag record whose payload is shorter than inet_diag_msg. */
static void short_diag_payload(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_msg(b, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof m - 1);
}

/* Trailing garbage shorter than a header after a valid message. */
static void trailing_garbage(nlbuf *b) {
  struct inet_diag_msg m = est_msg();
  put_diag(b, &m);
  b->len += 4;
}

static const parse_case parse_cases[] = {
    {"parse: records without DONE", three_records, 0, VIGIL__CENSUS_MORE, 3},
    {"parse: skips foreign and unknown messages", foreign_and_unknown, 0,
     VIGIL__CENSUS_DONE, 1},
    {"parse: last message unpadded", last_message_unpadded, 0,
     VIGIL__CENSUS_MORE, 0},
    {"parse: DONE without payload", done_without_payload, 0,
     VIGIL__CENSUS_DONE, 0},
    {"parse: ERROR shorter than an int", error_short_payload, 0, VIGIL_EPROTO,
     0},
    {"parse: OVERRUN", overrun, 0, VIGIL_EPROTO, 0},
    {"parse: callback error stops", three_records_and_done, 2, VIGIL_ENOMEM, 1},
    {"parse: header cut short", header_cut_short, 0, VIGIL_EPROTO, 0},
    {"parse: length past the end", length_past_the_end, 0, VIGIL_EPROTO, 0},
    {"parse: length huge", length_huge, 0, VIGIL_EPROTO, 0},
    {"parse: diag payload too short", short_diag_payload, 0, VIGIL_EPROTO, 0},
    /* only the record before the garbage */
    {"parse: trailing garbage", trailing_garbage, 0, VIGIL_EPROTO, 1},
};

static void run_parse_case(void **state) {
  const parse_case *pc = *state;
  static nlbuf b;
  memset(&b, 0, sizeof b);
  pc->build(&b);
  seen sn = {.fail_at = pc->fail_at};
  assert_int_equal(parse(&b, &sn, NULL), pc->want);
  assert_int_equal(sn.n, pc->records);
}

/* An empty buffer has nothing to say either; a NULL one with a length is
 * broken. */
static void test_parse_empty(void **state) {
  (void)state;
  seen sn = {0};
  assert_int_equal(vigil__census_parse(NULL, 0, SEQ, record, &sn, NULL),
                   VIGIL__CENSUS_MORE);
  assert_int_equal(vigil__census_parse(NULL, 8, SEQ, record, &sn, NULL),
                   VIGIL_EPROTO);
}

/* nlmsg_len smaller than a header (would loop forever if trusted). */
static void test_parse_length_below_header(void **state) {
  (void)state;
  static nlbuf b;
  struct inet_diag_msg m = est_msg();
  for (uint32_t bad = 0; bad < NLMSG_HDRLEN; bad++) {
    seen sn = {0};
    memset(&b, 0, sizeof b);
    put_diag(&b, &m);
    set_first_length(&b, bad);
    assert_int_equal(parse(&b, &sn, NULL), VIGIL_EPROTO);
  }
}

/* --- parser: kernel errors -------------------------------------------- */

typedef struct error_case {
  uint16_t type;
  int code; /* value carried in the payload */
  int want; /* parse result */
  int want_kerr;
} error_case;

static void test_parse_kernel_errors(void **state) {
  (void)state;
  static const error_case cases[] = {
      {NLMSG_ERROR, 0, VIGIL__CENSUS_ACK, 0},
      {NLMSG_ERROR, -EPERM, VIGIL_EPERM, EPERM},
      {NLMSG_ERROR, -EACCES, VIGIL_EPERM, EACCES},
      {NLMSG_ERROR, -EOPNOTSUPP, VIGIL_ENOTSUP, EOPNOTSUPP},
      {NLMSG_ERROR, -ENOENT, VIGIL_ENOENT, ENOENT},
      {NLMSG_ERROR, -ENOMEM, VIGIL_ENOMEM, ENOMEM},
      {NLMSG_ERROR, -EINVAL, VIGIL_EINVAL, EINVAL},
      {NLMSG_ERROR, -EBUSY, VIGIL_ESYS, EBUSY},
      /* A real EPROTO from the kernel is its errno, not a malformed
       * answer: mapped like any other. */
      {NLMSG_ERROR, -EPROTO, VIGIL_ESYS, EPROTO},
      {NLMSG_ERROR, 5, VIGIL_EPROTO, EPROTO},       /* positive: nonsense */
      {NLMSG_ERROR, INT_MIN, VIGIL_EPROTO, EPROTO}, /* not an errno */
      {NLMSG_ERROR, -100000, VIGIL_EPROTO, EPROTO},
      {NLMSG_DONE, -EPERM, VIGIL_EPERM, EPERM}, /* dump failed late */
      {NLMSG_DONE, 0, VIGIL__CENSUS_DONE, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static nlbuf b;
    seen sn = {0};
    memset(&b, 0, sizeof b);
    /* A record before the error is delivered; the error still wins. */
    struct inet_diag_msg m = est_msg();
    put_diag(&b, &m);
    put_int(&b, cases[i].type, cases[i].code);
    int kerr = -1;
    int rc = parse(&b, &sn, &kerr);
    if (rc != cases[i].want || kerr != cases[i].want_kerr)
      fail_msg("case %zu: rc %d kerr %d, want %d %d", i, rc, kerr,
               cases[i].want, cases[i].want_kerr);
    assert_int_equal(sn.n, 1);
  }
}

/* Every prefix of a valid answer, at every (mis)alignment, gives a
 * defined result: MORE at message boundaries, EPROTO inside a message,
 * never a crash (ASan/UBSan builds check the reads). */
static void test_parse_every_prefix(void **state) {
  (void)state;
  static nlbuf b;
  static unsigned char shifted[sizeof b.words + 8];
  memset(&b, 0, sizeof b);
  struct inet_diag_msg m = v6_msg(VIGIL_TCP_FIN_WAIT2, "::1", 7, "::1", 8, 0);
  put_diag(&b, &m);
  put_diag(&b, &m);
  put_int(&b, NLMSG_DONE, 0);
  size_t one = NLMSG_ALIGN(NLMSG_LENGTH(sizeof m));
  for (size_t shift = 0; shift < 4; shift++) {
    memcpy(shifted + shift, bytes(&b), b.len);
    for (size_t len = 0; len <= b.len; len++) {
      seen sn = {0};
      int rc =
          vigil__census_parse(shifted + shift, len, SEQ, record, &sn, NULL);
      if (len == 0 || len == one || len == 2 * one)
        assert_int_equal(rc, VIGIL__CENSUS_MORE);
      else if (len == b.len)
        assert_int_equal(rc, VIGIL__CENSUS_DONE);
      else
        assert_int_equal(rc, VIGIL_EPROTO);
    }
  }
}

/* Random buffers: only defined results. */
static void test_parse_random_bytes(void **state) {
  (void)state;
  static nlbuf b;
  srand(12345);
  for (int round = 0; round < 2000; round++) {
    seen sn = {0};
    size_t len = (size_t)(rand() % 512);
    for (size_t i = 0; i < len; i++) bytes(&b)[i] = (unsigned char)rand();
    if (len >= NLMSG_HDRLEN && round % 2) {
      /* Plausible header so parsing gets past the first check. */
      struct nlmsghdr h;
      memcpy(&h, bytes(&b), sizeof h);
      h.nlmsg_len = (uint32_t)(rand() % (int)(len + 1));
      h.nlmsg_seq = SEQ;
      h.nlmsg_type = (uint16_t)(rand() % 2 ? SOCK_DIAG_BY_FAMILY
                                           : NLMSG_ERROR + rand() % 3);
      memcpy(bytes(&b), &h, sizeof h);
    }
    int rc = vigil__census_parse(bytes(&b), len, SEQ, record, &sn, NULL);
    assert_true(rc == VIGIL__CENSUS_MORE || rc == VIGIL__CENSUS_DONE ||
                rc == VIGIL__CENSUS_ACK || (rc < 0 && rc >= VIGIL_EADDR));
  }
}

/* --- decode ----------------------------------------------------------- */

static void test_decode_special_cases(void **state) {
  (void)state;
  vigil_census_socket s;
  struct inet_diag_msg m = v6_msg(VIGIL_TCP_NEW_SYN_RECV, "::ffff:127.0.0.1",
                                  443, "::ffff:127.0.0.2", 65535, 0);
  m.idiag_timer = 0;
  m.idiag_expires = 999; /* meaningless without a timer */
  vigil__census_decode(&m, &s);
  assert_int_equal(s.state, VIGIL_TCP_SYN_RECV);
  assert_string_equal(s.local, "[::ffff:127.0.0.1]:443");
  assert_string_equal(s.peer, "[::ffff:127.0.0.2]:65535");
  assert_int_equal(s.expires_ms, 0);

  char buf[VIGIL_CENSUS_ADDRSTRLEN];
  uint8_t full[16];
  memset(full, 0xff, sizeof full);
  vigil__census_format_addr(AF_INET6, full, 65535, buf, sizeof buf);
  assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
  vigil__census_format_addr(AF_INET, full, 0, buf, sizeof buf);
  assert_string_equal(buf, "255.255.255.255:0");
}

/* --- collector -------------------------------------------------------- */

typedef struct coll_fixture {
  vigil_census_query q;
  vigil_census out;
  vigil__census_collector col;
} coll_fixture;

/* Feeds the standard record set into a collector built from q. */
static void feed_standard(coll_fixture *f, const vigil__inode_set *self) {
  static nlbuf b;
  memset(&b, 0, sizeof b);
  memset(&f->out, 0, sizeof f->out);
  struct inet_diag_msg recs[] = {
      v4_msg(VIGIL_TCP_LISTEN, "0.0.0.0", 1883, "0.0.0.0", 0, 100),
      v4_msg(VIGIL_TCP_ESTABLISHED, "127.0.0.1", 1883, "127.0.0.1", 40001, 101),
      v4_msg(VIGIL_TCP_ESTABLISHED, "127.0.0.1", 40001, "127.0.0.1", 1883, 102),
      v4_msg(VIGIL_TCP_CLOSE_WAIT, "127.0.0.1", 1883, "127.0.0.1", 40002, 103),
      v4_msg(VIGIL_TCP_FIN_WAIT2, "127.0.0.1", 40002, "127.0.0.1", 1883, 0),
      v6_msg(VIGIL_TCP_FIN_WAIT1, "::1", 1883, "::1", 40003, 0),
      v6_msg(VIGIL_TCP_FIN_WAIT2, "::1", 1883, "::1", 40004, 104),
      v6_msg(VIGIL_TCP_TIME_WAIT, "::1", 1883, "::1", 40005, 0),
      v4_msg(VIGIL_TCP_NEW_SYN_RECV, "127.0.0.1", 1883, "127.0.0.1", 40006, 0),
      v4_msg(VIGIL_TCP_ESTABLISHED, "127.0.0.1", 8080, "127.0.0.1", 40007, 105),
  };
  for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
    put_diag(&b, &recs[i]);
  put_int(&b, NLMSG_DONE, 0);
  assert_int_equal(vigil__census_collector_init(&f->col, &f->q, self, &f->out),
                   VIGIL_OK);
  assert_int_equal(vigil__census_parse(bytes(&b), b.len, SEQ,
                                       vigil__census_collect, &f->col, NULL),
                   VIGIL__CENSUS_DONE);
}

/* Each case: a query (from the defaults) over the standard records, the
 * total it must count, and what else it must give (check). */
typedef struct collect_case {
  const char *name;
  void (*query)(vigil_census_query *q); /* NULL: the defaults */
  int self; /* inodes 105, 101 and 999 are this process's */
  uint32_t total;
  void (*check)(const vigil_census *out); /* NULL: nothing more */
} collect_case;

static const uint16_t port_1883[] = {1883};

/* Local port only: the server side. */
static void local_port(vigil_census_query *q) {
  q->ports = port_1883;
  q->nports = 1;
}

static void either_port(vigil_census_query *q) {
  local_port(q);
  q->port_match = VIGIL_CENSUS_MATCH_EITHER;
}

static void ipv6(vigil_census_query *q) {
  q->family = VIGIL_CENSUS_FAMILY_IPV6;
}

static void states_listing_close_wait(vigil_census_query *q) {
  q->states = VIGIL_CENSUS_ORPHAN_STATES |
              VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT) |
              VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_ESTABLISHED);
  q->list_states = VIGIL_CENSUS_STATE_BIT(VIGIL_TCP_CLOSE_WAIT);
}

static void counts_only(vigil_census_query *q) { q->want_sockets = 0; }

static void four_sockets(vigil_census_query *q) { q->max_sockets = 4; }

static void all_counted(const vigil_census *out) {
  assert_int_equal(out->counts[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(out->counts[VIGIL_TCP_ESTABLISHED], 3);
  assert_int_equal(out->counts[VIGIL_TCP_SYN_RECV], 1);
  assert_int_equal(out->counts[VIGIL_TCP_NEW_SYN_RECV], 0);
  assert_int_equal(out->counts[VIGIL_TCP_FIN_WAIT2], 2);
  assert_int_equal(out->orphans, 2); /* FIN_WAIT1 + FIN_WAIT2 inode 0 */
  assert_int_equal(out->nsockets, 10);
  assert_int_equal(out->sockets_omitted, 0);
}

static void server_side(const vigil_census *out) {
  assert_int_equal(out->counts[VIGIL_TCP_ESTABLISHED], 1);
  assert_int_equal(out->counts[VIGIL_TCP_FIN_WAIT2], 1);
}

static void both_sides(const vigil_census *out) {
  assert_int_equal(out->counts[VIGIL_TCP_ESTABLISHED], 2);
}

static void close_wait_listed(const vigil_census *out) {
  assert_int_equal(out->nsockets, 1);
  assert_int_equal(out->sockets[0].state, VIGIL_TCP_CLOSE_WAIT);
  assert_string_equal(out->sockets[0].peer, "127.0.0.1:40002");
}

static void none_listed(const vigil_census *out) {
  assert_int_equal(out->nsockets, 0);
  assert_null(out->sockets);
}

static void capped_with_self(const vigil_census *out) {
  assert_int_equal(out->nsockets, 4);
  assert_int_equal(out->sockets_omitted, 6);
  assert_int_equal(out->self_counts[VIGIL_TCP_ESTABLISHED], 2);
  assert_int_equal(out->sockets[1].in_this_process, 1); /* inode 101 */
  assert_int_equal(out->sockets[2].in_this_process, 0);
  /* Picks over the listed sockets. */
  vigil_census c = *out;
  const vigil_census_socket *got[4];
  assert_int_equal(
      vigil_census_pick(&c, VIGIL_CENSUS_PICK_OWN_ESTABLISHED, got, 4), 1);
  assert_int_equal(got[0]->inode, 101);
  assert_int_equal(vigil_census_pick(&c, VIGIL_CENSUS_PICK_CLOSE_WAIT, got, 4),
                   1);
  assert_int_equal(vigil_census_pick(&c, VIGIL_CENSUS_PICK_ORPHANS, NULL, 0),
                   0);
}

static const collect_case collect_cases[] = {
    {"collect: all", NULL, 0, 10, all_counted},
    {"collect: local port", local_port, 0, 7, server_side},
    {"collect: either port", either_port, 0, 10 - 1 /* all but 8080 */,
     both_sides},
    {"collect: IPv6", ipv6, 0, 3, NULL},
    {"collect: states, listing one", states_listing_close_wait, 0, 3 + 1 + 3,
     close_wait_listed},
    {"collect: counts only", counts_only, 0, 10, none_listed},
    {"collect: capped, with our own", four_sockets, 1, 10, capped_with_self},
};

static void run_collect_case(void **state) {
  const collect_case *cc = *state;
  coll_fixture f;
  vigil__inode_set self = {0};
  static const uint64_t mine[] = {105, 101, 999};
  for (size_t i = 0; cc->self && i < 3; i++)
    assert_int_equal(vigil__inode_set_add(&self, mine[i]), VIGIL_OK);
  vigil__inode_set_sort(&self);
  vigil_census_query_init(&f.q);
  if (cc->query) cc->query(&f.q);
  feed_standard(&f, cc->self ? &self : NULL);
  assert_int_equal(f.out.total, cc->total);
  if (cc->check) cc->check(&f.out);
  free(f.out.sockets);
  vigil__inode_set_free(&self);
}

static void bad_ports(vigil_census_query *q) { q->nports = 1; /* NULL */ }
static void bad_family(vigil_census_query *q) {
  q->family = (vigil_census_family)3;
}
static void bad_port_match(vigil_census_query *q) {
  q->port_match = (vigil_census_port_match)7;
}
static void bad_states(vigil_census_query *q) {
  q->states = 1u; /* bit 0 is no state */
}
static void bad_list_states(vigil_census_query *q) {
  q->list_states = 1u << 20;
}

static void test_collect_rejects_bad_query(void **state) {
  (void)state;
  static const struct {
    const char *name;
    void (*query)(vigil_census_query *q);
  } rows[] = {
      {"ports NULL", bad_ports},
      {"family 3", bad_family},
      {"port_match 7", bad_port_match},
      {"states bit 0", bad_states},
      {"list_states bit 20", bad_list_states},
  };
  vigil_census_query q;
  vigil_census out;
  vigil__census_collector col;
  vigil_census *c;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    vigil_census_query_init(&q);
    rows[i].query(&q);
    vt_row_int_equal(rows[i].name,
                     vigil__census_collector_init(&col, &q, NULL, &out),
                     VIGIL_EINVAL);
    c = &out; /* not NULL */
    vt_row_int_equal(rows[i].name, vigil_census_run(&q, &c), VIGIL_EINVAL);
    vt_row_int_equal(rows[i].name, c == NULL, 1);
  }
  assert_int_equal(vigil_census_run(NULL, &c), VIGIL_EINVAL);
  vigil_census_query_init(&q);
  assert_int_equal(vigil_census_run(&q, NULL), VIGIL_EINVAL);
  vigil_census_free(NULL);
}

static void test_collect_query_defaults(void **state) {
  (void)state;
  vigil_census_query q;
  memset(&q, 0xa5, sizeof q);
  vigil_census_query_init(&q);
  assert_null(q.ports);
  assert_int_equal(q.nports, 0);
  assert_int_equal(q.states, 0);
  assert_int_equal(q.list_states, 0);
  assert_int_equal(q.family, VIGIL_CENSUS_FAMILY_ALL);
  assert_int_equal(q.port_match, VIGIL_CENSUS_MATCH_LOCAL);
  assert_int_equal(q.want_sockets, 1);
  assert_int_equal(q.want_self, 1);
  assert_int_equal(q.want_owners, 0);
  assert_int_equal(q.max_sockets, 65536);
}

/* --- names, picks, helpers -------------------------------------------- */

static void test_state_parse(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int want;
  } cases[] = {
      {"ESTABLISHED", VIGIL_TCP_ESTABLISHED},
      {"established", VIGIL_TCP_ESTABLISHED},
      {"ESTAB", VIGIL_EINVAL},
      {"SYN_SENT", VIGIL_TCP_SYN_SENT},
      {"syn-recv", VIGIL_TCP_SYN_RECV},
      {"FIN_WAIT1", VIGIL_TCP_FIN_WAIT1},
      {"fin-wait-1", VIGIL_TCP_FIN_WAIT1},
      {"Fin_Wait2", VIGIL_TCP_FIN_WAIT2},
      {"TIME_WAIT", VIGIL_TCP_TIME_WAIT},
      {"time-wait", VIGIL_TCP_TIME_WAIT},
      {"CLOSE", VIGIL_TCP_CLOSE},
      {"CLOSE_WAIT", VIGIL_TCP_CLOSE_WAIT},
      {"close-wait", VIGIL_TCP_CLOSE_WAIT},
      {"LAST_ACK", VIGIL_TCP_LAST_ACK},
      {"LISTEN", VIGIL_TCP_LISTEN},
      {"closing", VIGIL_TCP_CLOSING},
      {"", VIGIL_EINVAL},
      {"---", VIGIL_EINVAL},
      {"CLOSE_WAITX", VIGIL_EINVAL},
      {"WAIT", VIGIL_EINVAL},
      {"ESTABLISHEDESTABLISHED", VIGIL_EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (vigil_census_state_parse(cases[i].name) != cases[i].want)
      fail_msg("'%s': got %d want %d", cases[i].name,
               vigil_census_state_parse(cases[i].name), cases[i].want);
  assert_int_equal(vigil_census_state_parse(NULL), VIGIL_EINVAL);
}

static void test_timer_names(void **state) {
  (void)state;
  static const struct {
    int timer;
    const char *name;
  } rows[] = {
      {0, "none"},      {1, "retransmit"},        {2, "keepalive"},
      {3, "time_wait"}, {4, "zero_window_probe"}, {5, "unknown"},
      {-1, "unknown"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    assert_string_equal(vigil_census_timer_name(rows[i].timer), rows[i].name);
}

static void test_socket_is(void **state) {
  (void)state;
  static const struct {
    int st;
    uint64_t inode;
    int mine;
    unsigned pick;
    int want;
  } cases[] = {
      {VIGIL_TCP_CLOSE_WAIT, 5, 0, VIGIL_CENSUS_PICK_CLOSE_WAIT, 1},
      {VIGIL_TCP_CLOSE_WAIT, 5, 0, VIGIL_CENSUS_PICK_ORPHANS, 0},
      {VIGIL_TCP_FIN_WAIT1, 0, 0, VIGIL_CENSUS_PICK_ORPHANS, 1},
      {VIGIL_TCP_FIN_WAIT2, 0, 0, VIGIL_CENSUS_PICK_ORPHANS, 1},
      {VIGIL_TCP_CLOSING, 0, 0, VIGIL_CENSUS_PICK_ORPHANS, 1},
      {VIGIL_TCP_LAST_ACK, 0, 0, VIGIL_CENSUS_PICK_ORPHANS, 1},
      {VIGIL_TCP_FIN_WAIT2, 9, 0, VIGIL_CENSUS_PICK_ORPHANS, 0}, /* fd held */
      {VIGIL_TCP_TIME_WAIT, 0, 0, VIGIL_CENSUS_PICK_ORPHANS, 0},
      {VIGIL_TCP_TIME_WAIT, 0, 0, VIGIL_CENSUS_PICK_TIME_WAIT, 1},
      {VIGIL_TCP_ESTABLISHED, 9, 1, VIGIL_CENSUS_PICK_OWN_ESTABLISHED, 1},
      {VIGIL_TCP_ESTABLISHED, 9, 0, VIGIL_CENSUS_PICK_OWN_ESTABLISHED, 0},
      {VIGIL_TCP_ESTABLISHED, 9, 1, 0, 0},
      {VIGIL_TCP_FIN_WAIT1, 0, 0,
       VIGIL_CENSUS_PICK_CLOSE_WAIT | VIGIL_CENSUS_PICK_ORPHANS, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    vigil_census_socket s;
    memset(&s, 0, sizeof s);
    s.state = (vigil_tcp_state)cases[i].st;
    s.inode = cases[i].inode;
    s.in_this_process = cases[i].mine;
    if (vigil_census_socket_is(&s, cases[i].pick) != cases[i].want)
      fail_msg("case %zu", i);
  }
  assert_int_equal(vigil_census_socket_is(NULL, ~0u), 0);
  assert_int_equal(vigil_census_pick(NULL, ~0u, NULL, 0), 0);
}

static void test_link_inode(void **state) {
  (void)state;
  static const struct {
    const char *link;
    int ok;
    uint64_t inode;
  } cases[] = {
      {"socket:[12345]", 1, 12345},
      {"socket:[0]", 1, 0},
      {"socket:[18446744073709551615]", 1, UINT64_MAX},
      {"socket:[18446744073709551616]", 0, 0}, /* overflow */
      {"socket:[]", 0, 0},
      {"socket:[12a]", 0, 0},
      {"socket:[12", 0, 0},
      {"pipe:[12]", 0, 0},
      {"anon_inode:[eventpoll]", 0, 0},
      {"/dev/null", 0, 0},
      {"", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 77;
    int ok = vigil__census_link_inode(cases[i].link, strlen(cases[i].link), &v);
    if (ok != cases[i].ok || (ok && v != cases[i].inode))
      fail_msg("'%s'", cases[i].link);
  }
}

static void test_fd_inode_errors(void **state) {
  (void)state;
  uint64_t ino = 5;
  int p[2];
  assert_int_equal(vigil_census_fd_inode(-1, &ino), VIGIL_EBADF);
  assert_int_equal(ino, 0);
  assert_int_equal(pipe(p), 0);
  assert_int_equal(vigil_census_fd_inode(p[0], &ino), VIGIL_ENOTSOCK);
  close(p[1]);
  assert_int_equal(vigil_census_fd_inode(p[1], &ino), VIGIL_EBADF);
  close(p[0]);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  assert_int_equal(vigil_census_fd_inode(s, NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_census_fd_inode(s, &ino), VIGIL_OK);
  assert_true(ino > 0);
  close(s);
  assert_int_equal(vigil_census_destroy(NULL), VIGIL_EINVAL);
  vigil_census_socket bad;
  memset(&bad, 0, sizeof bad);
  bad.family = AF_UNIX;
  assert_int_equal(vigil_census_destroy(&bad), VIGIL_EINVAL);
}

static void test_errno_map(void **state) {
  (void)state;
  assert_int_equal(vigil__census_map_errno(EPROTONOSUPPORT), VIGIL_ENOTSUP);
  assert_int_equal(vigil__census_map_errno(EAFNOSUPPORT), VIGIL_ENOTSUP);
  assert_int_equal(vigil__census_map_errno(ENOBUFS), VIGIL_ENOMEM);
  errno = 0;
  assert_int_equal(vigil__census_map_errno(ETIMEDOUT), VIGIL_ESYS);
  assert_int_equal(errno, ETIMEDOUT);
}

/* --- kernel port filter ----------------------------------------------- */

/* What the kernel's inet_diag_bc_audit() checks for the ops we emit: every
 * `no` target is on the chain of `yes` jumps (or the end, or 4 past it). */
static int bc_on_yes_chain(const unsigned char *bc, int len, int target) {
  int off = 0;
  while (off < len) {
    if (off == target) return 1;
    struct inet_diag_bc_op op;
    memcpy(&op, bc + off, sizeof op);
    if (op.yes < 4 || op.yes & 3) return 0;
    off += op.yes;
  }
  return off == target;
}

static int bc_audit(const unsigned char *bc, int len) {
  int off = 0;
  while (off < len) {
    struct inet_diag_bc_op op;
    int left = len - off;
    int min_len = (int)sizeof op;
    memcpy(&op, bc + off, sizeof op);
    switch (op.code) {
    case INET_DIAG_BC_S_EQ:
    case INET_DIAG_BC_D_EQ:
      min_len = 2 * (int)sizeof op;
      if (left < min_len) return 0;
      break;
    case INET_DIAG_BC_JMP: break;
    default: return 0;
    }
    if (op.no < min_len || op.no > left + 4 || (op.no & 3)) return 0;
    if (op.no < left && !bc_on_yes_chain(bc, len, off + op.no)) return 0;
    if (op.yes < min_len || op.yes > left + 4 || (op.yes & 3)) return 0;
    off += op.yes;
  }
  return off == len;
}

/* inet_diag_bc_run(): 1 = accept. */
static int bc_run(const unsigned char *bc, int len, uint16_t sport,
                  uint16_t dport) {
  int off = 0;
  while (off < len) {
    struct inet_diag_bc_op op, arg;
    int yes = 1;
    memcpy(&op, bc + off, sizeof op);
    switch (op.code) {
    case INET_DIAG_BC_S_EQ:
      memcpy(&arg, bc + off + sizeof op, sizeof arg);
      yes = sport == arg.no;
      break;
    case INET_DIAG_BC_D_EQ:
      memcpy(&arg, bc + off + sizeof op, sizeof arg);
      yes = dport == arg.no;
      break;
    case INET_DIAG_BC_JMP: yes = 0; break;
    default: fail_msg("unexpected op %d", op.code);
    }
    off += yes ? op.yes : op.no;
  }
  return off == len;
}

static void test_port_bytecode(void **state) {
  (void)state;
  static const uint16_t ports[] = {80, 443, 8883, 65535};
  unsigned char bc[512];
  vigil_census_query q;
  vigil_census_query_init(&q);
  assert_int_equal(vigil__census_port_bytecode(&q, bc, sizeof bc), 0);
  assert_int_equal(vigil__census_port_bytecode(NULL, bc, sizeof bc), 0);

  for (size_t n = 1; n <= 4; n++) {
    for (int either = 0; either <= 1; either++) {
      q.ports = ports;
      q.nports = n;
      q.port_match =
          either ? VIGIL_CENSUS_MATCH_EITHER : VIGIL_CENSUS_MATCH_LOCAL;
      size_t len = vigil__census_port_bytecode(&q, bc, sizeof bc);
      size_t conds = n * (either ? 2 : 1);
      assert_int_equal(len, conds * 8 + (conds - 1) * 4);
      assert_true(bc_audit(bc, (int)len));
      /* Every (sport, dport) combination over listed and other ports. */
      static const uint16_t probe[] = {80, 443, 8883, 65535, 1, 8080};
      for (size_t a = 0; a < 6; a++)
        for (size_t b = 0; b < 6; b++) {
          int want = 0;
          for (size_t i = 0; i < n; i++)
            if (probe[a] == ports[i] || (either && probe[b] == ports[i]))
              want = 1;
          if (bc_run(bc, (int)len, probe[a], probe[b]) != want)
            fail_msg("n=%zu either=%d sport=%u dport=%u", n, either, probe[a],
                     probe[b]);
        }
    }
  }
  /* Does not fit: no filter rather than a truncated one. */
  q.nports = 4;
  assert_int_equal(vigil__census_port_bytecode(&q, bc, 20), 0);
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_dump_and_done),
      cmocka_unit_test(test_parse_empty),
      cmocka_unit_test(test_parse_length_below_header),
      cmocka_unit_test(test_parse_kernel_errors),
      cmocka_unit_test(test_parse_every_prefix),
      cmocka_unit_test(test_parse_random_bytes),
      cmocka_unit_test(test_decode_special_cases),
      cmocka_unit_test(test_collect_rejects_bad_query),
      cmocka_unit_test(test_collect_query_defaults),
      cmocka_unit_test(test_state_parse),
      cmocka_unit_test(test_timer_names),
      cmocka_unit_test(test_socket_is),
      cmocka_unit_test(test_link_inode),
      cmocka_unit_test(test_fd_inode_errors),
      cmocka_unit_test(test_errno_map),
      cmocka_unit_test(test_port_bytecode),
  };
  vt_suite s = {0};
  VT_TESTS(&s, tests);
  VT_ROWS(&s, run_parse_case, parse_cases);
  VT_ROWS(&s, run_collect_case, collect_cases);
  return vt_suite_run(&s, NULL, NULL);
}
