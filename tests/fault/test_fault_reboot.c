/*
 * Rebooting devices. A device loses power: its connection vanishes
 * without FIN or RST reaching the server (namespace B silenced while its
 * socket is aborted, so even the RST is dropped), then it comes back from
 * the same namespace and claims the same identity while the server still
 * holds the old connection as ESTABLISHED.
 *
 *  - one reboot: the old conn closes with reason takeover within 10 ms of
 *    the identify call, and the new conn serves. The device went away
 *    idle, leaving nothing unanswered: no loss evidence, so the takeover
 *    classes it live and closes it gracefully; our FIN reaches the
 *    rebooted device's kernel, which knows no such connection and answers
 *    RST, so the close ends one round trip after the claim (a ghost with
 *    evidence is reset inside the claim: test_fault_takeover_class.c);
 *  - a reboot loop, 50 cycles over 20 devices with some clean disconnects
 *    mixed in: afterwards the census inside namespace A shows exactly one
 *    ESTABLISHED socket per live device and no CLOSE_WAIT, FIN_WAIT1 or
 *    orphan left by the hub.
 *
 * The device protocol: "ID <name>\n", then anything sent is echoed.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faultfix.h"
#include "testutil.h"

#define NDEV 20
#define CYCLES 50
#define TAKEOVER_MS 10

typedef struct srv_rec {
  char line[80];
  size_t n;
  int identified;
  char name[32];
} srv_rec;

typedef struct world {
  ff_env env;
  vigil_listener *lis;
  uint16_t port;
  uint64_t identified;      /* successful claims */
  uint64_t claim_failed;
  uint64_t t_identify;      /* vt_now_ms() just before the last claim */
  uint64_t t_identified;    /* ... and just after */
  uint64_t closed;
} world;

static world W;

static void srv_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  srv_rec *r = ud;
  if (r->identified) {
    vigil_send(c, data, len);
    return;
  }
  const char *p = data;
  for (size_t i = 0; i < len; i++) {
    if (p[i] != '\n') {
      if (r->n < sizeof r->line - 1) r->line[r->n++] = p[i];
      continue;
    }
    r->line[r->n] = '\0';
    r->identified = 1;
    snprintf(r->name, sizeof r->name, "%s", r->line + 3);
    W.t_identify = vt_now_ms();
    int rc = vigil_conn_identify(c, r->name, strlen(r->name));
    W.t_identified = vt_now_ms();
    if (rc == VIGIL_OK)
      W.identified++;
    else
      W.claim_failed++;
    if (i + 1 < len) vigil_send(c, p + i + 1, len - i - 1);
    return;
  }
}

static void srv_close(vigil_conn *c, vigil_reason reason, void *ud) {
  (void)c;
  (void)reason;
  free(ud);
  W.closed++;
}

static void srv_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l;
  (void)ud;
  srv_rec *r = calloc(1, sizeof *r);
  assert_non_null(r);
  vigil_conn_set_user_data(c, r);
}

static const vigil_conn_callbacks srv_cb = {.on_data = srv_data,
                                            .on_close = srv_close};

static void world_up(void) {
  memset(&W, 0, sizeof W);
  ff_env_up(&W.env, NULL);
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = W.env.ns.addr[VT_NETNS_A];
  lo.adopt.callbacks = &srv_cb;
  lo.on_accept = srv_accept;
  assert_int_equal(vt_netns_enter(&W.env.ns, VT_NETNS_A), 0);
  int rc = vigil_listen(W.env.hub, &lo, &W.lis);
  vt_netns_leave();
  assert_int_equal(rc, VIGIL_OK);
  W.port = vigil_listener_port(W.lis);
}

static int teardown(void **state) {
  (void)state;
  ff_env_down(&W.env);
  return 0;
}

/* Connects a device from B and sends its identity line. */
static int device_connect(const char *name) {
  int fd = vt_netns_connect(&W.env.ns, VT_NETNS_B, W.port);
  assert_true(fd >= 0);
  char line[48];
  snprintf(line, sizeof line, "ID %s\n", name);
  assert_int_equal(gf_send_all(fd, line), 0);
  return fd;
}

/* Power loss: the socket disappears; its RST is dropped while B is
 * silenced, so the server never hears of it. */
static void device_vanish(int fd) {
  struct linger lg = {1, 0};
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(fd);
}

struct count_wait {
  uint64_t want;
};

static int identified_reaches(void *arg) {
  return W.identified + W.claim_failed >= ((struct count_wait *)arg)->want;
}

struct close_wait {
  uint64_t conn_id;
};

static int closed_event(void *arg) {
  return gf_find(&W.env.log, VIGIL_EV_CLOSE,
                 ((struct close_wait *)arg)->conn_id) != NULL;
}

/* Sends msg from device fd and waits for the echo. */
static void assert_echo(int fd, const char *msg) {
  assert_int_equal(gf_send_all(fd, msg), 0);
  char buf[64] = {0};
  size_t got = 0, len = strlen(msg);
  uint64_t end = vt_now_ms() + 2000;
  while (got < len && vt_now_ms() < end) {
    long n = vt_read_avail(fd, buf + got, sizeof buf - 1 - got, NULL);
    if (n > 0) got += (size_t)n;
    vt_run_until(W.env.loop, NULL, NULL, 2);
  }
  assert_string_equal(buf, msg);
}

static void test_reboot_takeover(void **state) {
  (void)state;
  world_up();
  int d = device_connect("dev-07");
  struct count_wait cw = {1};
  assert_true(vt_run_until(W.env.loop, identified_reaches, &cw, 2000));
  vigil_conn *old = vigil_hub_find_identity(W.env.hub, "dev-07", 6);
  assert_non_null(old);
  uint64_t old_id = vigil_conn_id(old);
  assert_echo(d, "before\n");

  /* Power loss, a short reboot, back online. */
  assert_int_equal(vt_netns_silence(&W.env.ns, VT_NETNS_B, 1), 0);
  device_vanish(d);
  vt_run_until(W.env.loop, NULL, NULL, 200);
  assert_int_equal(vt_netns_silence(&W.env.ns, VT_NETNS_B, 0), 0);
  assert_ptr_equal(vigil_hub_find_identity(W.env.hub, "dev-07", 6), old);
  assert_int_equal(vigil_conn_get_state(old), VIGIL_CONN_OPEN);
  vigil_tcp_info ti;
  assert_int_equal(vigil_conn_tcp_info(old, &ti), VIGIL_OK);
  assert_int_equal(ti.state, VIGIL_TCP_ESTABLISHED); /* the ghost */

  d = device_connect("dev-07");
  cw.want = 2;
  assert_true(vt_run_until(W.env.loop, identified_reaches, &cw, 2000));
  assert_int_equal(W.claim_failed, 0);
  vigil_conn *now = vigil_hub_find_identity(W.env.hub, "dev-07", 6);
  assert_non_null(now);
  assert_true(vigil_conn_id(now) != old_id);

  struct close_wait clw = {old_id};
  assert_true(vt_run_until(W.env.loop, closed_event, &clw, 1000));
  const gf_event *cl = gf_find(&W.env.log, VIGIL_EV_CLOSE, old_id);
  assert_non_null(cl);
  assert_int_equal(cl->reason, VIGIL_REASON_TAKEOVER);
  assert_int_equal(cl->peer_class, VIGIL_PEER_LIVE);
  const gf_event *tk = gf_find(&W.env.log, VIGIL_EV_TAKEOVER, 0);
  assert_non_null(tk);
  assert_int_equal(tk->other_conn_id, old_id);
  assert_int_equal(tk->conn_id, vigil_conn_id(now));
  assert_int_equal(tk->peer_class, VIGIL_PEER_LIVE);
  ff_check_latency("reboot_takeover", (int64_t)(cl->t_ms - W.t_identify), 0,
                   TAKEOVER_MS);
  assert_echo(d, "after reboot\n");
  vigil_stats st;
  vigil_hub_stats(W.env.hub, &st);
  assert_int_equal(st.takeovers, 1);
  assert_int_equal(st.open, 1);
  close(d);
}

static int all_settled(void *arg) {
  (void)arg;
  vigil_stats st;
  vigil_hub_stats(W.env.hub, &st);
  return st.open == NDEV;
}

static void test_reboot_loop_leaves_no_ghosts(void **state) {
  (void)state;
  world_up();
  uint64_t t0 = vt_now_ms();
  int dev[NDEV];
  char name[NDEV][16];
  for (int i = 0; i < NDEV; i++) {
    snprintf(name[i], sizeof name[i], "dev-%02d", i);
    dev[i] = device_connect(name[i]);
  }
  struct count_wait cw = {NDEV};
  assert_true(vt_run_until(W.env.loop, identified_reaches, &cw, 3000));

  unsigned seed = 12345;
  uint64_t reboots = 0, clean = 0;
  for (int cycle = 0; cycle < CYCLES; cycle++) {
    int down[NDEV] = {0};
    assert_int_equal(vt_netns_silence(&W.env.ns, VT_NETNS_B, 1), 0);
    for (int i = 0; i < NDEV; i++) {
      if (rand_r(&seed) % 3 != 0) continue; /* a third reboot per cycle */
      device_vanish(dev[i]);
      down[i] = 1;
      reboots++;
    }
    assert_int_equal(vt_netns_silence(&W.env.ns, VT_NETNS_B, 0), 0);
    /* One device per cycle leaves cleanly (FIN) and comes back. */
    int leaver = (int)(rand_r(&seed) % NDEV);
    if (!down[leaver]) {
      close(dev[leaver]);
      down[leaver] = 1;
      clean++;
    }
    for (int i = 0; i < NDEV; i++)
      if (down[i]) dev[i] = device_connect(name[i]);
    cw.want = W.identified + W.claim_failed;
    for (int i = 0; i < NDEV; i++) cw.want += (uint64_t)down[i];
    assert_true(vt_run_until(W.env.loop, identified_reaches, &cw, 3000));
    assert_true(vt_run_until(W.env.loop, all_settled, NULL, 3000));
  }
  assert_int_equal(W.claim_failed, 0);
  for (int i = 0; i < NDEV; i++)
    assert_non_null(vigil_hub_find_identity(W.env.hub, name[i], 6));
  assert_echo(dev[0], "alive 0\n");
  assert_echo(dev[NDEV - 1], "alive 19\n");

  vigil_stats st;
  vigil_hub_stats(W.env.hub, &st);
  printf("MEASURED reboot_loop reboots=%llu clean=%llu takeovers=%llu "
         "peer_reset=%llu peer_closed=%llu elapsed_ms=%llu\n",
         (unsigned long long)reboots, (unsigned long long)clean,
         (unsigned long long)st.takeovers,
         (unsigned long long)st.closed[VIGIL_REASON_PEER_RESET],
         (unsigned long long)st.closed[VIGIL_REASON_PEER_CLOSED],
         (unsigned long long)(vt_now_ms() - t0));
  assert_int_equal(st.open, NDEV);
  assert_int_equal(st.takeovers, st.closed[VIGIL_REASON_TAKEOVER]);
  /* Every ghost ended by a takeover (or, should the device's new port
   * collide with its old one, by the RST its SYN provokes). */
  assert_int_equal(st.closed[VIGIL_REASON_TAKEOVER] +
                       st.closed[VIGIL_REASON_PEER_RESET],
                   reboots);
  assert_true(st.takeovers * 10 >= reboots * 9);
  assert_int_equal(st.closed[VIGIL_REASON_PEER_CLOSED], clean);

  /* The kernel's view inside A: one ESTABLISHED socket per device. */
  vigil_hub_census_report r;
  assert_int_equal(ff_hub_census_in_a(&W.env, &r), VIGIL_OK);
  assert_int_equal(r.nports, 1);
  assert_int_equal(r.counts[VIGIL_TCP_ESTABLISHED], NDEV);
  assert_int_equal(r.counts[VIGIL_TCP_CLOSE_WAIT], 0);
  assert_int_equal(r.counts[VIGIL_TCP_FIN_WAIT1], 0);
  assert_int_equal(r.orphans, 0);
  assert_int_equal(r.leaked, 0);
  assert_int_equal(r.ghosts, 0);
  int n[VT_TCP_STATE_SLOTS];
  assert_int_equal(vt_netns_tcp_states(&W.env.ns, VT_NETNS_A, W.port, n), 0);
  assert_int_equal(n[VIGIL_TCP_ESTABLISHED], NDEV);
  assert_int_equal(n[VIGIL_TCP_LISTEN], 1);
  assert_int_equal(n[0], NDEV + 1);
  assert_true(vt_now_ms() - t0 < 30000);
  for (int i = 0; i < NDEV; i++) close(dev[i]);
}

int main(void) {
  ff_require_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_reboot_takeover, teardown),
      cmocka_unit_test_teardown(test_reboot_loop_leaves_no_ghosts, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
