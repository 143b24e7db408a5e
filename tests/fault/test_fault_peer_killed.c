/*
 * The device process dies (kill -9). Its kernel is alive and closes the
 * socket for it: with nothing unread it sends FIN (peer_closed), with
 * bytes it never read it sends RST (peer_reset, RFC 1122 4.2.2.13). Either
 * way the server must notice promptly: within 200 ms of the kill, which
 * covers one veth round trip, the child's teardown by the kernel and the
 * loop's wake-up on a shared 2-core machine.
 *
 * The device socket is created in namespace B by this process, then
 * handed to a forked child that only holds it; the parent drops its copy
 * so the child's death is the socket's last close.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faultfix.h"
#include "testutil.h"

#define PROMPT_MS 200

static ff_env E;
static pid_t child = -1;

static int teardown(void **state) {
  (void)state;
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
  }
  ff_env_down(&E);
  return 0;
}

/* Forks a child that holds dfd until killed; the parent loses dfd. */
static void hand_to_child(int dfd, int sfd) {
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(sfd);
    close(E.lfd);
    close(ready[0]);
    if (write(ready[1], "r", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char r;
  assert_int_equal(read(ready[0], &r, 1), 1);
  close(ready[0]);
  close(dfd);
}

static void kill_child(void) {
  assert_int_equal(kill(child, SIGKILL), 0);
  int st;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFSIGNALED(st));
  child = -1;
}

static void run_case(const char *name, int unread, vigil_reason want) {
  ff_env_up(&E, NULL);
  int sfd;
  int dfd = ff_dial(&E, &sfd);
  assert_int_equal(gf_send_all(dfd, "hello from the device"), 0);
  hand_to_child(dfd, sfd);
  gf_conn srv = {0};
  assert_int_equal(gf_adopt(E.hub, sfd, &srv, NULL), VIGIL_OK);
  vt_run_until(E.loop, NULL, NULL, 50);
  assert_int_equal(srv.bytes, 21);
  if (unread) {
    /* The device never reads this: its close becomes an RST. */
    assert_int_equal(vigil_send(srv.c, "config v2", 9), VIGIL_OK);
    vt_run_until(E.loop, NULL, NULL, 30);
  }
  assert_false(srv.closed);
  uint64_t t_kill = vt_now_ms();
  kill_child();
  assert_true(vt_run_until(E.loop, gf_is_closed, &srv, 2000));
  assert_int_equal(srv.reason, want);
  const gf_event *cl = gf_find(&E.log, VIGIL_EV_CLOSE, srv.id);
  assert_non_null(cl);
  ff_check_latency(name, (int64_t)(cl->t_ms - t_kill), 0, PROMPT_MS);
}

static void test_killed_idle_device_sends_fin(void **state) {
  (void)state;
  run_case("peer_killed_fin", 0, VIGIL_REASON_PEER_CLOSED);
}

static void test_killed_device_with_unread_data_resets(void **state) {
  (void)state;
  run_case("peer_killed_rst", 1, VIGIL_REASON_PEER_RESET);
}

int main(void) {
  ff_require_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_killed_idle_device_sends_fin, teardown),
      cmocka_unit_test_teardown(test_killed_device_with_unread_data_resets,
                                teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
