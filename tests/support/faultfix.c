/* Fixture for the fault tests; see faultfix.h. */
#include "faultfix.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

void ff_require_netns(void) {
  char why[256];
  if (!vt_netns_available(why, sizeof why)) vt_skip(why);
}

void ff_env_up(ff_env *e, const vigil_policy *p) {
  memset(e, 0, sizeof *e);
  e->lfd = -1;
  assert_int_equal(vt_netns_pair_create(&e->ns), 0);
  e->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(e->loop);
  vigil_hub_options o;
  vigil_hub_options_init(&o);
  o.policy = p;
  o.on_event = gf_on_event;
  o.event_data = &e->log;
  assert_int_equal(vigil_hub_new(e->loop, &o, &e->hub), VIGIL_OK);
  e->lfd = vt_netns_listen(&e->ns, VT_NETNS_A, &e->port);
  assert_true(e->lfd >= 0);
}

void ff_env_down(ff_env *e) {
  if (e->hub) vigil_hub_free(e->hub);
  e->hub = NULL;
  if (e->lfd >= 0) close(e->lfd);
  e->lfd = -1;
  if (e->loop) ev_loop_destroy(e->loop);
  e->loop = NULL;
  vt_netns_pair_destroy(&e->ns);
}

int ff_dial(ff_env *e, int *server_fd) {
  int c = vt_netns_connect(&e->ns, VT_NETNS_B, e->port);
  assert_true(c >= 0);
  struct pollfd pf = {.fd = e->lfd, .events = POLLIN};
  assert_int_equal(poll(&pf, 1, 3000), 1);
  *server_fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(*server_fd >= 0);
  return c;
}

static void peer_cb(struct ev_loop *loop, ev_io *w, int revents) {
  ff_peer *p = (ff_peer *)w;
  char buf[4096];
  (void)revents;
  for (;;) {
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      p->bytes += (uint64_t)n;
      p->last_rx_ms = vt_now_ms();
      size_t room = sizeof p->rx - 1 - p->nrx;
      size_t k = (size_t)n < room ? (size_t)n : room;
      memcpy(p->rx + p->nrx, buf, k);
      p->nrx += k;
      p->rx[p->nrx] = '\0';
      if (p->echo && send(p->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        p->last_tx_ms = vt_now_ms();
      continue;
    }
    if (n == 0) {
      p->eof = 1;
    } else if (errno == EAGAIN || errno == EINTR) {
      return;
    } else {
      p->err = errno;
    }
    ev_io_stop(loop, w);
    return;
  }
}

void ff_peer_start(ff_env *e, ff_peer *p, int fd, int echo) {
  memset(p, 0, sizeof *p);
  p->fd = fd;
  p->echo = echo;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  ev_io_init(&p->io, peer_cb, fd, EV_READ);
  ev_io_start(e->loop, &p->io);
}

void ff_peer_stop(ff_env *e, ff_peer *p) { ev_io_stop(e->loop, &p->io); }

void ff_check_latency(const char *name, int64_t v, int64_t lo, int64_t hi) {
  printf("MEASURED %s latency_ms=%" PRId64 " bound_ms=%" PRId64
         " max_ms=%" PRId64 "\n",
         name, v, lo, hi);
  fflush(stdout);
  if (v < lo || v > hi)
    fail_msg("%s: latency %" PRId64 " ms outside [%" PRId64 ", %" PRId64 "]",
             name, v, lo, hi);
}

int ff_hub_census_in_a(ff_env *e, vigil_hub_census_report *r) {
  if (vt_netns_enter(&e->ns, VT_NETNS_A) != 0) return VIGIL_ESYS;
  int rc = vigil_hub_census(e->hub, r);
  vt_netns_leave();
  return rc;
}
