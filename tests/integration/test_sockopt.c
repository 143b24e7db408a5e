/*
 * Socket helpers on real loopback sockets: policy options read back from
 * the kernel, TCP_INFO in live states, fd classification, peer strings,
 * abort linger and SO_ERROR.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sockopt.h"
#include "vigil.h"

/* ---- helpers ----------------------------------------------------------- */

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls TCP_INFO until fd reaches state or timeout_ms passes; returns the
 * last state seen. */
static int wait_tcp_state(int fd, int state, uint32_t timeout_ms) {
  uint64_t end = vt_now_ms() + timeout_ms;
  int s;
  while ((s = vt_tcp_state(fd)) != state && vt_now_ms() < end) sleep_ms(1);
  return s;
}

/* tcp_fin_timeout in s: what TCP_LINGER2 reads back when left at 0. */
static int fin_timeout_default(void) {
  FILE *f = fopen("/proc/sys/net/ipv4/tcp_fin_timeout", "r");
  int v = 60;
  if (f) {
    if (fscanf(f, "%d", &v) != 1) v = 60;
    fclose(f);
  }
  return v;
}

/* Sends len bytes one way and reads them on the other (blocking pair). */
static void bounce(int from, int to, size_t len) {
  char buf[4096];
  assert_true(len <= sizeof buf);
  memset(buf, 'v', len);
  assert_int_equal(send(from, buf, len, 0), (ssize_t)len);
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(to, buf + got, len - got, 0);
    assert_true(n > 0);
    got += (size_t)n;
  }
}

static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- apply + read back ------------------------------------------------- */

static void test_apply_defaults(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_policy p;
  vigil_policy_init(&p);
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);

  vigil_sockopts o;
  memset(&o, 0x5A, sizeof o);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.keepalive, 1);
  assert_int_equal(o.keepalive_idle_s, 60);
  assert_int_equal(o.keepalive_intvl_s, 10);
  assert_int_equal(o.keepalive_cnt, 6);
  assert_int_equal(o.user_timeout_ms, 120000); /* AUTO: 60 + 10 * 6 s */
  assert_int_equal(o.fin_wait2_s, fin_timeout_default());
  assert_int_equal(o.nodelay, 1); /* default on */

  /* The untouched end shows the kernel defaults, proving the read-back
   * reads this socket and not a constant. */
  assert_int_equal(vigil_socket_get_opts(c, &o), VIGIL_OK);
  assert_int_equal(o.keepalive, 0);
  assert_int_equal(o.user_timeout_ms, 0);
  close(s);
  close(c);
}

static void test_apply_explicit_then_override(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_idle_s = 5;
  p.keepalive_intvl_s = 2;
  p.keepalive_cnt = 3;
  p.user_timeout_ms = 4321;
  p.fin_wait2_s = 7;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);

  vigil_sockopts o;
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.keepalive, 1);
  assert_int_equal(o.keepalive_idle_s, 5);
  assert_int_equal(o.keepalive_intvl_s, 2);
  assert_int_equal(o.keepalive_cnt, 3);
  assert_int_equal(o.user_timeout_ms, 4321);
  assert_int_equal(o.fin_wait2_s, 7);
  assert_int_equal(o.nodelay, 1);
  /* nodelay 0 turns Nagle back on. */
  p.nodelay = 0;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.nodelay, 0);
  p.nodelay = 1;

  /* AUTO follows the keepalive numbers. */
  p.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.user_timeout_ms, 11000);

  /* An override with the user timeout off and fin_wait2 at the default
   * must undo what the earlier policy set. */
  p.user_timeout_ms = VIGIL_USER_TIMEOUT_OFF;
  p.fin_wait2_s = 0;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.user_timeout_ms, 0);
  assert_int_equal(o.fin_wait2_s, fin_timeout_default());
  assert_int_equal(o.keepalive_idle_s, 5);

  /* Keepalive off: SO_KEEPALIVE cleared, and AUTO then means off too. */
  p.keepalive = 0;
  p.user_timeout_ms = 9000;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.user_timeout_ms, 9000);
  p.user_timeout_ms = VIGIL_USER_TIMEOUT_AUTO;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.keepalive, 0);
  assert_int_equal(o.user_timeout_ms, 0);
  close(s);
  close(c);
}

/* Options set on a listening socket are copied into accepted sockets,
 * which is why the public helpers accept unconnected TCP sockets. */
static void test_apply_errors(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  vigil_policy p;
  vigil_policy_init(&p);

  assert_int_equal(vigil_socket_apply_policy(s, NULL), VIGIL_EINVAL);
  p.keepalive_cnt = 0;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_EINVAL);
  vigil_policy_init(&p);

  assert_int_equal(vigil_socket_apply_policy(-1, &p), VIGIL_EBADF);
  int pf[2];
  assert_int_equal(pipe(pf), 0);
  assert_int_equal(vigil_socket_apply_policy(pf[0], &p), VIGIL_ENOTSOCK);
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(u >= 0);
  assert_int_equal(vigil_socket_apply_policy(u, &p), VIGIL_ENOTTCP);

  vigil_sockopts o;
  vigil_tcp_info ti;
  assert_int_equal(vigil_socket_get_opts(s, NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_socket_tcp_info(s, NULL), VIGIL_EINVAL);
  assert_int_equal(vigil_socket_get_opts(pf[1], &o), VIGIL_ENOTSOCK);
  assert_int_equal(vigil_socket_tcp_info(u, &ti), VIGIL_ENOTTCP);
  assert_int_equal(vigil_socket_tcp_info(-5, &ti), VIGIL_EBADF);

  close(pf[0]);
  close(pf[1]);
  close(u);
  close(s);
  close(c);
}

/* ---- TCP_INFO ---------------------------------------------------------- */

static void test_tcp_info_established(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  for (int i = 0; i < 5; i++) {
    bounce(c, s, 100);
    bounce(s, c, 100);
  }
  /* The client may still hold a delayed ACK for our last segment; its
   * reply carries that ACK, then wait (bounded) for the rest. */
  bounce(c, s, 100);
  vigil_tcp_info ti;
  uint64_t end = vt_now_ms() + 1000;
  for (;;) {
    memset(&ti, 0x5A, sizeof ti);
    assert_int_equal(vigil_socket_tcp_info(s, &ti), VIGIL_OK);
    if (ti.unacked == 0 || vt_now_ms() >= end) break;
    sleep_ms(1);
  }
  assert_int_equal(ti.state, VIGIL_TCP_ESTABLISHED);
  assert_string_equal(vigil_tcp_state_name(ti.state), "ESTABLISHED");
  assert_true(ti.rtt_us > 0);
  assert_true(ti.rto_us >= 200000); /* Linux TCP_RTO_MIN is 200 ms */
  assert_int_equal(ti.unacked, 0);  /* every byte was read and acked */
  assert_int_equal(ti.retransmits, 0);
  assert_int_equal(ti.probes, 0);
  assert_true(ti.snd_cwnd > 0);
  assert_int_equal(ti.notsent_bytes, 0);
  assert_true(ti.last_data_recv_ms < 5000);
  assert_true(ti.last_data_sent_ms < 5000);
  close(s);
  close(c);
}

static void test_tcp_info_half_close(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  bounce(c, s, 10);
  /* Client half-closes: server sees CLOSE_WAIT, client FIN_WAIT2. */
  assert_int_equal(shutdown(c, SHUT_WR), 0);
  assert_int_equal(wait_tcp_state(s, VIGIL_TCP_CLOSE_WAIT, 2000),
                   VIGIL_TCP_CLOSE_WAIT);
  vigil_tcp_info ti;
  assert_int_equal(vigil_socket_tcp_info(s, &ti), VIGIL_OK);
  assert_int_equal(ti.state, VIGIL_TCP_CLOSE_WAIT);
  assert_string_equal(vigil_tcp_state_name(ti.state), "CLOSE_WAIT");
  /* Still connected: the peer is known until we close. */
  assert_int_equal(vigil__sock_classify(s), VIGIL_OK);

  assert_int_equal(wait_tcp_state(c, VIGIL_TCP_FIN_WAIT2, 2000),
                   VIGIL_TCP_FIN_WAIT2);
  assert_int_equal(vigil_socket_tcp_info(c, &ti), VIGIL_OK);
  assert_string_equal(vigil_tcp_state_name(ti.state), "FIN_WAIT2");

  /* The server closes too: its FIN moves the client, which closed first,
   * to TIME_WAIT. That state lives in a separate kernel mini-socket; the
   * fd's own socket is finished and reads CLOSE. */
  close(s);
  int st = wait_tcp_state(c, VIGIL_TCP_CLOSE, 2000);
  assert_int_equal(st, VIGIL_TCP_CLOSE);
  close(c);
}

/* SO_LINGER {1,0} turns close() into RST: the peer sees ECONNRESET and its
 * socket drops straight to CLOSE, with no FIN exchange. */
static void test_abort_linger_rst(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  bounce(s, c, 10);
  assert_int_equal(vigil__sock_set_abort_linger(s), VIGIL_OK);
  struct linger lg;
  socklen_t len = sizeof lg;
  assert_int_equal(getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len), 0);
  assert_int_equal(lg.l_onoff, 1);
  assert_int_equal(lg.l_linger, 0);
  close(s);

  struct pollfd pfd = {.fd = c, .events = POLLIN};
  assert_int_equal(poll(&pfd, 1, 2000), 1);
  assert_true(pfd.revents & (POLLERR | POLLHUP));
  assert_int_equal(vigil__sock_error(c), ECONNRESET);
  assert_int_equal(vigil__sock_error(c), 0); /* reading cleared it */

  /* A reset socket has no peer but still answers TCP_INFO. */
  assert_int_equal(vigil__sock_classify(c), VIGIL_ENOTCONN);
  vigil_tcp_info ti;
  assert_int_equal(vigil_socket_tcp_info(c, &ti), VIGIL_OK);
  assert_int_equal(ti.state, VIGIL_TCP_CLOSE);
  assert_string_equal(vigil_tcp_state_name(ti.state), "CLOSE");
  char peer[VIGIL__PEER_STRLEN];
  assert_int_equal(vigil__sock_peer_string(c, peer, sizeof peer),
                   VIGIL_ENOTCONN);
  assert_string_equal(peer, "?");
  close(c);
}

static void test_sock_error_refused(void **state) {
  (void)state;
  /* Find a free port by binding and closing without listening. */
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(t, (struct sockaddr *)&a, sizeof a), 0);
  a.sin_port = htons(local_port(t));

  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(vigil__sock_set_nonblock(c), VIGIL_OK);
  int rc = connect(c, (struct sockaddr *)&a, sizeof a);
  if (rc < 0) assert_true(errno == EINPROGRESS || errno == ECONNREFUSED);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd pfd = {.fd = c, .events = POLLOUT};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_int_equal(vigil__sock_error(c), ECONNREFUSED);
  }
  assert_int_equal(vigil__sock_error(c), 0);
  close(c);
  close(t);

  /* A healthy socket has no pending error; a bad fd reports EBADF. */
  int s, k;
  assert_int_equal(vt_tcp_pair(&s, &k), 0);
  assert_int_equal(vigil__sock_error(s), 0);
  assert_int_equal(vigil__sock_error(-1), EBADF);
  close(s);
  close(k);
}

static void test_set_nonblock(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  int before = fcntl(s, F_GETFL);
  assert_false(before & O_NONBLOCK);
  assert_int_equal(vigil__sock_set_nonblock(s), VIGIL_OK);
  assert_int_equal(fcntl(s, F_GETFL), before | O_NONBLOCK);
  assert_int_equal(vigil__sock_set_nonblock(s), VIGIL_OK); /* idempotent */
  char b;
  assert_int_equal(recv(s, &b, 1, 0), -1);
  assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
  assert_int_equal(vigil__sock_set_nonblock(-1), VIGIL_EBADF);
  close(s);
  close(c);
}

/* ---- classification ---------------------------------------------------- */

static void test_classify(void **state) {
  (void)state;
  /* Closed fd: open one, close it, reuse the number at once. */
  int dead = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(dead >= 0);
  close(dead);
  assert_int_equal(vigil__sock_classify(dead), VIGIL_EBADF);
  assert_int_equal(errno, EBADF);
  assert_int_equal(vigil__sock_classify(-1), VIGIL_EBADF);

  int pf[2];
  assert_int_equal(pipe(pf), 0);
  assert_int_equal(vigil__sock_classify(pf[0]), VIGIL_ENOTSOCK);
  assert_int_equal(vigil__sock_classify(pf[1]), VIGIL_ENOTSOCK);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_int_equal(vigil__sock_classify(devnull), VIGIL_ENOTSOCK);

  int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_int_equal(vigil__sock_classify(u), VIGIL_ENOTTCP);
  int ux[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ux), 0);
  assert_int_equal(vigil__sock_classify(ux[0]), VIGIL_ENOTTCP);
  /* Connected or not, a unix stream socket is never TCP. */
  vigil_policy p;
  vigil_policy_init(&p);
  assert_int_equal(vigil_socket_apply_policy(ux[0], &p), VIGIL_ENOTTCP);

  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(vigil__sock_classify(t), VIGIL_ENOTCONN);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(vigil__sock_classify(l), VIGIL_ENOTCONN);
  vigil_tcp_info ti;
  assert_int_equal(vigil_socket_tcp_info(l, &ti), VIGIL_OK);
  assert_int_equal(ti.state, VIGIL_TCP_LISTEN);

  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  assert_int_equal(vigil__sock_classify(s), VIGIL_OK);
  assert_int_equal(vigil__sock_classify(c), VIGIL_OK);

  close(s);
  close(c);
  close(l);
  close(t);
  close(ux[0]);
  close(ux[1]);
  close(u);
  close(devnull);
  close(pf[0]);
  close(pf[1]);
}

static void test_classify_ipv6(void **state) {
  (void)state;
  int s, c;
  if (vt_tcp_pair6(&s, &c) != 0) skip(); /* no ::1 here */
  assert_int_equal(vigil__sock_classify(s), VIGIL_OK);
  assert_int_equal(vigil__sock_classify(c), VIGIL_OK);

  vigil_policy p;
  vigil_policy_init(&p);
  p.keepalive_idle_s = 9;
  assert_int_equal(vigil_socket_apply_policy(s, &p), VIGIL_OK);
  vigil_sockopts o;
  assert_int_equal(vigil_socket_get_opts(s, &o), VIGIL_OK);
  assert_int_equal(o.keepalive_idle_s, 9);
  assert_int_equal(o.user_timeout_ms, (9 + 10 * 6) * 1000);

  char buf[VIGIL__PEER_STRLEN], expect[VIGIL__PEER_STRLEN];
  snprintf(expect, sizeof expect, "[::1]:%u", (unsigned)local_port(c));
  assert_int_equal(vigil__sock_peer_string(s, buf, sizeof buf), VIGIL_OK);
  assert_string_equal(buf, expect);

  int u6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (u6 >= 0) {
    assert_int_equal(vigil__sock_classify(u6), VIGIL_ENOTTCP);
    close(u6);
  }
  close(s);
  close(c);
}

/* ---- peer strings ------------------------------------------------------ */

static void test_peer_string_v4(void **state) {
  (void)state;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  char buf[VIGIL__PEER_STRLEN], expect[VIGIL__PEER_STRLEN];
  snprintf(expect, sizeof expect, "127.0.0.1:%u", (unsigned)local_port(c));
  assert_int_equal(vigil__sock_peer_string(s, buf, sizeof buf), VIGIL_OK);
  assert_string_equal(buf, expect);
  snprintf(expect, sizeof expect, "127.0.0.1:%u", (unsigned)local_port(s));
  assert_int_equal(vigil__sock_peer_string(c, buf, sizeof buf), VIGIL_OK);
  assert_string_equal(buf, expect);

  /* Too small: truncated, terminated, reported. */
  char small[6];
  assert_int_equal(vigil__sock_peer_string(s, small, sizeof small),
                   VIGIL_EOVERFLOW);
  assert_string_equal(small, "127.0");
  assert_int_equal(vigil__sock_peer_string(s, NULL, 10), VIGIL_EINVAL);

  int pf[2];
  assert_int_equal(pipe(pf), 0);
  assert_int_equal(vigil__sock_peer_string(pf[0], buf, sizeof buf),
                   VIGIL_ENOTSOCK);
  assert_string_equal(buf, "?");
  assert_int_equal(vigil__sock_peer_string(-1, buf, sizeof buf),
                   VIGIL_EBADF);
  close(pf[0]);
  close(pf[1]);
  close(s);
  close(c);
}

static void test_sockaddr_format(void **state) {
  (void)state;
  char buf[VIGIL__PEER_STRLEN];

  struct sockaddr_in in4;
  memset(&in4, 0, sizeof in4);
  in4.sin_family = AF_INET;
  in4.sin_port = htons(5000);
  inet_pton(AF_INET, "192.0.2.17", &in4.sin_addr);
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in4, buf, sizeof buf),
      VIGIL_OK);
  assert_string_equal(buf, "192.0.2.17:5000");
  /* Every digit count of an octet and of the port (IPv4 is formatted by
   * hand), and a truncated one. */
  static const struct {
    const char *addr;
    uint16_t port;
    const char *text;
  } v4[] = {
      {"0.0.0.0", 0, "0.0.0.0:0"},
      {"255.255.255.255", 65535, "255.255.255.255:65535"},
      {"1.20.100.9", 7, "1.20.100.9:7"},
      {"10.99.199.250", 80, "10.99.199.250:80"},
      {"127.0.0.1", 1883, "127.0.0.1:1883"},
  };
  for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
    inet_pton(AF_INET, v4[i].addr, &in4.sin_addr);
    in4.sin_port = htons(v4[i].port);
    assert_int_equal(
        vigil__sockaddr_format((struct sockaddr *)&in4, buf, sizeof buf),
        VIGIL_OK);
    assert_string_equal(buf, v4[i].text);
  }
  char five[5];
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in4, five, sizeof five),
      VIGIL_EOVERFLOW);
  assert_string_equal(five, "127.");
  in4.sin_port = htons(5000);

  struct sockaddr_in6 in6;
  memset(&in6, 0, sizeof in6);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr);
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in6, buf, sizeof buf),
      VIGIL_OK);
  assert_string_equal(buf, "10.1.2.3:443"); /* mapped shown as IPv4 */

  inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in6, buf, sizeof buf),
      VIGIL_OK);
  assert_string_equal(buf, "[2001:db8::1]:443");

  inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
  in6.sin6_scope_id = 3;
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in6, buf, sizeof buf),
      VIGIL_OK);
  assert_string_equal(buf, "[fe80::1%3]:443");

  /* The longest text fits VIGIL__PEER_STRLEN. */
  inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            &in6.sin6_addr);
  in6.sin6_scope_id = UINT32_MAX;
  in6.sin6_port = htons(65535);
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in6, buf, sizeof buf),
      VIGIL_OK);
  assert_true(strlen(buf) < VIGIL__PEER_STRLEN);
  assert_non_null(strstr(buf, "%4294967295]:65535"));

  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&un, buf, sizeof buf),
      VIGIL_EADDR);
  assert_string_equal(buf, "?");

  assert_int_equal(vigil__sockaddr_format(NULL, buf, sizeof buf),
                   VIGIL_EINVAL);
  assert_string_equal(buf, "?");
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in4, buf, 0), VIGIL_EINVAL);
  char one[1] = {'x'};
  assert_int_equal(
      vigil__sockaddr_format((struct sockaddr *)&in4, one, sizeof one),
      VIGIL_EOVERFLOW);
  assert_int_equal(one[0], '\0');
}

static void test_tcp_state_names(void **state) {
  (void)state;
  static const char *const expect[] = {
      "UNKNOWN",   "ESTABLISHED", "SYN_SENT",   "SYN_RECV",  "FIN_WAIT1",
      "FIN_WAIT2", "TIME_WAIT",   "CLOSE",      "CLOSE_WAIT", "LAST_ACK",
      "LISTEN",    "CLOSING",     "NEW_SYN_RECV",
  };
  assert_int_equal(sizeof expect / sizeof expect[0], VIGIL_TCP_STATE__COUNT);
  for (int i = 0; i < VIGIL_TCP_STATE__COUNT; i++)
    assert_string_equal(vigil_tcp_state_name(i), expect[i]);
  assert_string_equal(vigil_tcp_state_name(-1), "UNKNOWN");
  assert_string_equal(vigil_tcp_state_name(VIGIL_TCP_STATE__COUNT),
                      "UNKNOWN");
  assert_string_equal(vigil_tcp_state_name(255), "UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_apply_defaults),
      cmocka_unit_test(test_apply_explicit_then_override),
      cmocka_unit_test(test_apply_errors),
      cmocka_unit_test(test_tcp_info_established),
      cmocka_unit_test(test_tcp_info_half_close),
      cmocka_unit_test(test_abort_linger_rst),
      cmocka_unit_test(test_sock_error_refused),
      cmocka_unit_test(test_set_nonblock),
      cmocka_unit_test(test_classify),
      cmocka_unit_test(test_classify_ipv6),
      cmocka_unit_test(test_peer_string_v4),
      cmocka_unit_test(test_sockaddr_format),
      cmocka_unit_test(test_tcp_state_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
