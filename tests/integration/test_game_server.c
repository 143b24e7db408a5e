/*
 * game_server (examples/game_server.c) over real loopback sockets, with
 * players speaking frames by hand:
 *  - vigil's ping-flood guard: with --min-ping-interval 100, a player
 *    pinging every millisecond is sent GOODBYE too_many_pings and closed
 *    with ping_flood (the server's close event says how fast it pinged),
 *    while a player pinging every 500 ms, at the same time, is never
 *    touched;
 *  - rooms: 8 seats, the 9th player refused with GOODBYE overloaded,
 *    notices heard in the room only, a seat freed by a player leaving
 *    given to the next.
 *
 * The server runs as a child process; the test SKIPs when the examples
 * were not built.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exproc.h"
#include "linecheck.h"
#include "testutil.h"
#include "vigil.h"

/* One player: a raw socket speaking frames by hand. */
typedef struct player {
  int fd;
  uint32_t ping_every_ms;
  uint64_t next_ping;
  vigil_frame_parser p;
  int pings, pongs, goodbyes;
  unsigned goodbye_code;
  int datas;
  char data[128]; /* the last DATA, NUL-terminated */
  int eof;
} player;

static void send_frame(player *pl, vigil_frame_type t, const void *d,
                       size_t len) {
  uint8_t b[64];
  int n = vigil_frame_encode(t, d, len, b, sizeof b);
  assert_true(n > 0);
  assert_int_equal(send(pl->fd, b, (size_t)n, MSG_NOSIGNAL), n);
}

static int on_frame(void *ud, const vigil_frame *f) {
  player *pl = ud;
  if (f->type == VIGIL_FRAME_PONG) pl->pongs++;
  if (f->type == VIGIL_FRAME_DATA) {
    pl->datas++;
    size_t n = f->len < sizeof pl->data - 1 ? f->len : sizeof pl->data - 1;
    memcpy(pl->data, f->payload, n);
    pl->data[n] = '\0';
  }
  if (f->type == VIGIL_FRAME_PING) /* the server's heartbeat */
    send_frame(pl, VIGIL_FRAME_PONG, f->payload, f->len);
  if (f->type == VIGIL_FRAME_GOODBYE) {
    pl->goodbyes++;
    vigil_frame_goodbye_decode(f->payload, f->len, &pl->goodbye_code, NULL,
                               NULL);
    /* A vigil peer closes first when told GOODBYE. */
    shutdown(pl->fd, SHUT_WR);
  }
  return 0;
}

static void player_join(player *pl, uint16_t port, const char *id,
                        uint32_t every_ms) {
  memset(pl, 0, sizeof *pl);
  pl->fd = vt_connect_loopback(port);
  assert_true(pl->fd >= 0);
  pl->ping_every_ms = every_ms;
  vigil_frame_parser_init(&pl->p, 65536);
  send_frame(pl, VIGIL_FRAME_HELLO, id, strlen(id));
  pl->next_ping = vt_now_ms();
}

/* Sends the ping that is due, if the player still pings. */
static void player_tick(player *pl, uint64_t now) {
  if (pl->goodbyes || pl->eof || now < pl->next_ping) return;
  send_frame(pl, VIGIL_FRAME_PING, NULL, 0);
  pl->pings++;
  pl->next_ping = now + pl->ping_every_ms;
}

static void player_read(player *pl) {
  uint8_t b[4096];
  int eof = 0;
  long n = vt_read_avail(pl->fd, b, sizeof b, &eof);
  if (n > 0)
    assert_true(vigil_frame_parser_feed(&pl->p, b, (size_t)n, on_frame, pl) ==
                n);
  if (eof) pl->eof = 1;
}

static void player_leave(player *pl) {
  vigil_frame_parser_free(&pl->p);
  close(pl->fd);
}

static void test_flooder_cut_calm_player_untouched(void **state) {
  (void)state;
  char path[512];
  if (!vt_example_path("game_server", NULL, path, sizeof path))
    vt_skip("examples/game_server not built");
  const char *argv[] = {path, "--listen", "127.0.0.1:0",
                        "--min-ping-interval", "100", NULL};
  vt_proc gs;
  vt_proc_start(&gs, argv, 2);
  player flood, calm;
  player_join(&flood, gs.port, "flood@r1", 1);
  player_join(&calm, gs.port, "calm@r2", 500);
  /* Three seconds of both: the flooder is cut within milliseconds, the
   * calm player pings six times. */
  uint64_t until = vt_now_ms() + 3000;
  for (uint64_t now; (now = vt_now_ms()) < until || !flood.eof;) {
    assert_true(now < until + 3000); /* the flooder's end must come */
    player_tick(&flood, now);
    player_tick(&calm, now);
    struct pollfd pfd[2] = {{flood.fd, POLLIN, 0}, {calm.fd, POLLIN, 0}};
    poll(pfd, 2, 1);
    if (!flood.eof) player_read(&flood);
    player_read(&calm);
  }
  assert_int_equal(flood.goodbyes, 1);
  assert_int_equal(flood.goodbye_code, VIGIL_GOODBYE_TOO_MANY_PINGS);
  assert_int_equal(flood.pongs, 3); /* the first ping and two strikes */
  assert_int_equal(calm.goodbyes, 0);
  assert_false(calm.eof);
  assert_true(calm.pings >= 6);
  assert_true(calm.pongs >= calm.pings - 1); /* the last may be on its way */

  /* The server's close event: reason and the rate it saw. */
  char line[4096], detail[256];
  assert_true(vt_proc_wait_line(&gs, line, sizeof line, 2000, "event=close",
                                "identity=flood@r1", NULL));
  line[strcspn(line, "\n")] = '\0';
  char reason[64];
  assert_int_equal(vt_logfmt_parse(line, "reason", reason, sizeof reason), 0);
  assert_string_equal(reason, "ping_flood");
  assert_int_equal(vt_logfmt_parse(line, "detail", detail, sizeof detail), 0);
  unsigned n = 0, ms = 0, rate = 0, min = 0;
  if (sscanf(detail, "ping flood: %u pings in %u ms (%u/s), minimum interval "
                     "%u ms", &n, &ms, &rate, &min) != 4)
    fail_msg("close detail: '%s'", detail);
  assert_int_equal(n, 4);
  assert_int_equal(min, 100);
  assert_true(ms < 100);     /* all four inside the minimum interval */
  assert_true(rate >= 30);   /* 4 pings in under 100 ms */
  assert_false(vt_proc_wait_line(&gs, NULL, 0, 0, "event=close",
                                 "identity=calm@r2", NULL));
  player_leave(&flood);
  player_leave(&calm);
  int status = vt_proc_stop(&gs);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  vt_proc_remove_log(&gs);
}

/* Reads what the players got until pred holds or 2 s pass. */
static int players_until(player *pl, int n, int (*pred)(player *, int)) {
  uint64_t until = vt_now_ms() + 2000;
  while (!pred(pl, n) && vt_now_ms() < until) {
    struct pollfd pfd[10];
    for (int i = 0; i < n; i++) pfd[i] = (struct pollfd){pl[i].fd, POLLIN, 0};
    poll(pfd, (nfds_t)n, 10);
    for (int i = 0; i < n; i++)
      if (!pl[i].eof) player_read(&pl[i]);
  }
  return pred(pl, n);
}

/* The first n-1 heard every later join of their room; the last got
 * GOODBYE. */
static int full_room_settled(player *pl, int n) {
  for (int i = 0; i < n - 2; i++)
    if (pl[i].datas < n - 2 - i) return 0;
  return pl[n - 1].goodbyes == 1;
}

static int heard_leave_and_rejoin(player *pl, int n) {
  (void)n;
  return pl[0].datas >= 9 && strcmp(pl[0].data, "* q joined") == 0;
}

static void test_rooms(void **state) {
  (void)state;
  char path[512];
  if (!vt_example_path("game_server", NULL, path, sizeof path))
    vt_skip("examples/game_server not built");
  const char *argv[] = {path, "--listen", "127.0.0.1:0", NULL};
  vt_proc gs;
  vt_proc_start(&gs, argv, 2);
  /* Nine into "full", one into "other": seats 0..7, then "room full". */
  player pl[10];
  for (int i = 0; i < 9; i++) {
    char id[32];
    snprintf(id, sizeof id, "p%d@full", i);
    player_join(&pl[i], gs.port, id, 1000000);
    /* One at a time, so the seats go in order. */
    char want[32];
    snprintf(want, sizeof want, "player=p%d room=full", i);
    if (i < 8)
      assert_true(vt_proc_wait_line(&gs, NULL, 0, 2000, "event=joined", want,
                                    NULL));
  }
  player_join(&pl[9], gs.port, "solo@other", 1000000);
  assert_true(players_until(pl, 9, full_room_settled));
  assert_int_equal(pl[8].goodbye_code, VIGIL_GOODBYE_OVERLOADED);
  assert_string_equal(pl[0].data, "* p7 joined");
  assert_int_equal(pl[0].datas, 7);
  assert_true(vt_proc_wait_line(&gs, NULL, 0, 2000, "event=joined",
                                "player=p7 room=full detail=seat=7", NULL));
  /* p3 leaves (GOODBYE): the room hears it, and seat 3 goes to q. */
  send_frame(&pl[3], VIGIL_FRAME_GOODBYE, "\0\0", 2);
  shutdown(pl[3].fd, SHUT_WR);
  player q;
  assert_true(vt_proc_wait_line(&gs, NULL, 0, 2000, "event=left",
                                "player=p3 room=full", NULL));
  player_join(&q, gs.port, "q@full", 1000000);
  assert_true(players_until(pl, 1, heard_leave_and_rejoin));
  assert_true(vt_proc_wait_line(&gs, NULL, 0, 2000, "event=joined",
                                "player=q room=full detail=seat=3", NULL));
  /* The player alone in "other" heard none of it. */
  player_read(&pl[9]);
  assert_int_equal(pl[9].datas, 0);
  assert_int_equal(pl[9].goodbyes, 0);
  for (int i = 0; i < 10; i++) player_leave(&pl[i]);
  player_leave(&q);
  int status = vt_proc_stop(&gs);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  vt_proc_remove_log(&gs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flooder_cut_calm_player_untouched),
      cmocka_unit_test(test_rooms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
