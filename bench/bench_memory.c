/*
 * bench_memory: bytes per idle plain-TCP connection, in vigil and in a bare
 * libev server, counted by the allocator and by RSS.
 *
 * One run: a fresh process (so RSS deltas are cold) with a fresh ev_loop,
 * the server side in it, N clients in a forked child (each side holds N fds, under the 20,000-per-process limit).
 * Every client sends "hello\n" once and the server echoes it, so each
 * connection has done a read and a write before it goes idle. Measured
 * around accepting and adopting the N connections:
 *
 *   heap_per_conn     mallinfo2() uordblks + hblkhd delta / N: everything
 *                     the process allocated for them (vigil or the bare struct, the hub's
 *                     conn array, libev's per-fd arrays) including malloc
 *                     chunk overhead
 *   rss_per_conn      VmRSS delta / N (user space only; the kernel's socket
 *                     memory, about 4 KiB of slab per socket, is not in RSS)
 *
 * vigil only, from the hub's own structures (src/hub.h, src/conn.h):
 *   conn_struct       sizeof(struct vigil_conn)
 *   conn_alloc        malloc_usable_size() of a conn (what malloc hands out;
 *                     the median over conns) + ext blocks, per conn
 *   state_per_conn    conn_alloc + the conn's slot in hub->conns (8 B)
 *                     + ext + queued output
 *   array_per_conn    hub->conns capacity * 8 B / N: the slot plus the
 *                     doubling array's slack at this N
 *   idle_buffers      conns holding an output chunk or an ext block after
 *                     going idle (the target is 0: no buffer per idle conn)
 * Targets: state_per_conn <= 256 B, idle_buffers == 0.
 *
 * The bare server ("bare" section) is the design of bench/servers/
 * bare_server.c: one malloc'd ev_io per connection, read, echo, close on
 * EOF. Cited, not measured: nginx ~416 B per connection slot, libuv
 * uv_tcp_t 248 B (field notes).
 *
 * Usage: bench_memory [--quick] [--n N] [--reps R] [--json FILE]
 *   default N = 10000, 3 repetitions (--quick: the same; it takes seconds).
 */
#include "conn.h"
#include "hub.h"

#include <ev.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_REPS 15

typedef struct run_result {
  double heap_per_conn, rss_per_conn, conn_alloc, state_per_conn;
  double array_per_conn; /* hub->conns capacity * 8 / N */
  double seconds;
  long idle_buffers;
  int ok;
} run_result;

/* Bytes in use from malloc: small chunks plus mmap'd blocks (large arrays
 * such as libev's per-fd table and the hub's conn array live there). */
static double heap_bytes(const struct mallinfo2 *m) {
  return (double)m->uordblks + (double)m->hblkhd;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* ---- shared run state --------------------------------------------------- */

static struct {
  struct ev_loop *loop;
  int target;          /* connections expected */
  int adopted;         /* accepted (and adopted, for vigil) */
  int echoed;          /* hellos echoed */
  int child_ready;     /* the client child reported */
  bc_clients clients;
  ev_io ctl_watcher;
  ev_timer timeout;
  int timed_out;
} g;

static void maybe_done(void) {
  if (g.child_ready && g.adopted >= g.target && g.echoed >= g.target)
    ev_break(g.loop, EVBREAK_ALL);
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents) {
  char buf[64];
  ssize_t n = read(w->fd, buf, sizeof buf - 1);
  (void)revents;
  ev_io_stop(loop, w);
  if (n > 0) {
    int done = 0, failed = 0;
    buf[n] = '\0';
    sscanf(buf, "ready %d %d", &done, &failed);
    if (failed) fprintf(stderr, "bench_memory: %d client connects failed\n",
                        failed);
    if (done < g.target) g.target = done;
  }
  g.child_ready = 1;
  maybe_done();
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w, (void)revents;
  g.timed_out = 1;
  ev_break(loop, EVBREAK_ALL);
}

/* Spawns the client child and runs the loop until every connection is in
 * and echoed, or 60 s pass. Returns 0 on success. */
static int drive(uint16_t port) {
  if (bc_clients_spawn(&g.clients, port, g.target, "hello\n") < 0) return -1;
  ev_io_init(&g.ctl_watcher, ctl_cb, g.clients.ctl, EV_READ);
  ev_io_start(g.loop, &g.ctl_watcher);
  ev_timer_init(&g.timeout, timeout_cb, 60.0, 0.0);
  ev_timer_start(g.loop, &g.timeout);
  ev_run(g.loop, 0);
  ev_timer_stop(g.loop, &g.timeout);
  ev_io_stop(g.loop, &g.ctl_watcher);
  return g.timed_out ? -1 : 0;
}

static void reset_state(int n) {
  memset(&g, 0, sizeof g);
  g.target = n;
  g.loop = ev_loop_new(EVFLAG_AUTO);
  if (!g.loop) abort();
}

/* ---- vigil --------------------------------------------------------------- */

static void v_on_data(vigil_conn *c, const void *data, size_t len, void *ud) {
  (void)ud;
  vigil_send(c, data, len);
  g.echoed++;
  maybe_done();
}

static void v_on_accept(vigil_listener *l, vigil_conn *c, void *ud) {
  (void)l, (void)c, (void)ud;
  g.adopted++;
}

static run_result run_vigil(int n) {
  run_result r = {0};
  reset_state(n);
  vigil_hub *hub;
  if (vigil_hub_new(g.loop, NULL, &hub) != VIGIL_OK) return r;
  static const vigil_conn_callbacks cb = {.on_data = v_on_data};
  vigil_listen_options lo;
  vigil_listen_options_init(&lo);
  lo.host = "127.0.0.1";
  lo.backlog = 4096;
  lo.adopt.callbacks = &cb;
  lo.on_accept = v_on_accept;
  vigil_listener *l;
  if (vigil_listen(hub, &lo, &l) != VIGIL_OK) return r;
  struct mallinfo2 m0 = mallinfo2();
  long rss0 = bc_proc_rss_kb(getpid());
  uint64_t t0 = bc_now_ns();
  int rc = drive(vigil_listener_port(l));
  r.seconds = (double)(bc_now_ns() - t0) / 1e9;
  struct mallinfo2 m1 = mallinfo2();
  long rss1 = bc_proc_rss_kb(getpid());
  if (rc == 0 && g.adopted > 0) {
    double conns = hub->nconns;
    double ext = 0;
    long buffers = 0;
    size_t *usable = malloc(hub->nconns * sizeof *usable);
    if (!usable) abort();
    for (uint32_t i = 0; i < hub->nconns; i++) {
      vigil_conn *c = hub->conns[i];
      usable[i] = malloc_usable_size(c);
      if (c->outq.tail || c->outq.queued) buffers++;
      if (c->ext) {
        buffers++;
        ext += (double)malloc_usable_size(c->ext);
      }
    }
    /* The typical chunk (median): a few conns land in a larger recycled
     * chunk, which says nothing about the design. */
    qsort(usable, hub->nconns, sizeof *usable, cmp_size);
    r.conn_alloc = (double)usable[hub->nconns / 2] + ext / conns;
    free(usable);
    r.state_per_conn = r.conn_alloc + sizeof(vigil_conn *);
    r.array_per_conn = (double)hub->cap_conns * sizeof(vigil_conn *) / conns;
    r.idle_buffers = buffers;
    r.heap_per_conn = (heap_bytes(&m1) - heap_bytes(&m0)) / conns;
    r.rss_per_conn = (double)(rss1 - rss0) * 1024.0 / conns;
    r.ok = 1;
  }
  vigil_hub_free(hub);
  bc_clients_stop(&g.clients);
  ev_loop_destroy(g.loop);
  return r;
}

/* ---- bare libev ----------------------------------------------------------- */

typedef struct bare_conn {
  ev_io io;
} bare_conn;

static bare_conn **bare_all;
static int bare_count;

static void bare_read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  char buf[512];
  (void)revents;
  ssize_t n = recv(w->fd, buf, sizeof buf, 0);
  if (n > 0) {
    if (send(w->fd, buf, (size_t)n, MSG_NOSIGNAL) < 0) {
    }
    g.echoed++;
    maybe_done();
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  ev_io_stop(loop, w);
  close(w->fd);
  w->fd = -1;
}

static void bare_accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    bare_conn *c = malloc(sizeof *c);
    if (!c) abort();
    ev_io_init(&c->io, bare_read_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
    bare_all[bare_count++] = c;
    g.adopted++;
  }
}

static run_result run_bare(int n) {
  run_result r = {0};
  reset_state(n);
  /* The bookkeeping array is the bench's, not the server's: allocate it
   * before the first measurement. */
  bare_all = calloc((size_t)n + 16, sizeof *bare_all);
  bare_count = 0;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(lfd, 4096) < 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
    return r;
  ev_io lw;
  ev_io_init(&lw, bare_accept_cb, lfd, EV_READ);
  ev_io_start(g.loop, &lw);
  struct mallinfo2 m0 = mallinfo2();
  long rss0 = bc_proc_rss_kb(getpid());
  uint64_t t0 = bc_now_ns();
  int rc = drive(ntohs(sa.sin_port));
  r.seconds = (double)(bc_now_ns() - t0) / 1e9;
  struct mallinfo2 m1 = mallinfo2();
  long rss1 = bc_proc_rss_kb(getpid());
  if (rc == 0 && bare_count > 0) {
    r.heap_per_conn =
        (heap_bytes(&m1) - heap_bytes(&m0)) / bare_count;
    r.rss_per_conn = (double)(rss1 - rss0) * 1024.0 / bare_count;
    r.conn_alloc = (double)malloc_usable_size(bare_all[0]);
    r.state_per_conn = r.conn_alloc;
    r.ok = 1;
  }
  ev_io_stop(g.loop, &lw);
  close(lfd);
  for (int i = 0; i < bare_count; i++) {
    if (bare_all[i]->io.fd >= 0) {
      ev_io_stop(g.loop, &bare_all[i]->io);
      close(bare_all[i]->io.fd);
    }
    free(bare_all[i]);
  }
  free(bare_all);
  bc_clients_stop(&g.clients);
  ev_loop_destroy(g.loop);
  return r;
}

/* Runs fn(n) in a forked process, so every repetition starts from a cold
 * heap and RSS, and returns its result ({0} if the process failed). */
static run_result run_isolated(run_result (*fn)(int), int n) {
  run_result r = {0};
  int p[2];
  if (pipe(p) < 0) return r;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    close(p[0]);
    r = fn(n);
    _exit(write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
  }
  close(p[1]);
  if (read(p[0], &r, sizeof r) != (ssize_t)sizeof r) memset(&r, 0, sizeof r);
  close(p[0]);
  waitpid(pid, NULL, 0);
  return r;
}

/* ---- output --------------------------------------------------------------- */

static void emit_section(FILE *f, const char *name, const run_result *rs,
                         int reps) {
  double v[MAX_REPS];
  fprintf(f, "    \"%s\": {", name);
#define STAT(field, key, sep)                                                \
  do {                                                                       \
    for (int i = 0; i < reps; i++) v[i] = rs[i].field;                       \
    bc_json_stats(f, key, v, (size_t)reps);                                  \
    fputs(sep, f);                                                           \
  } while (0)
  STAT(heap_per_conn, "heap_per_conn_bytes", ", ");
  STAT(rss_per_conn, "rss_per_conn_bytes", ", ");
  STAT(conn_alloc, "conn_alloc_bytes", ", ");
  STAT(state_per_conn, "state_per_conn_bytes", ", ");
  STAT(array_per_conn, "conn_array_per_conn_bytes", ", ");
  STAT(seconds, "setup_seconds", "");
#undef STAT
  long buffers = 0;
  for (int i = 0; i < reps; i++) buffers += rs[i].idle_buffers;
  fprintf(f, ", \"idle_buffers\": %ld}", buffers);
}

int main(int argc, char **argv) {
  int n = 10000, reps = 3;
  const char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) continue; /* same work: seconds */
    else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else {
      fprintf(stderr, "usage: bench_memory [--quick] [--n N] [--reps R] "
                      "[--json FILE]\n");
      return 2;
    }
  }
  if (n < 100 || n > 19000 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "bench_memory: n must be 100..19000, reps 1..%d\n",
            MAX_REPS);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  double load = bc_loadavg1();
  run_result rv[MAX_REPS], rb[MAX_REPS];
  for (int i = 0; i < reps; i++) {
    rv[i] = run_isolated(run_vigil, n);
    rb[i] = run_isolated(run_bare, n);
    if (!rv[i].ok || !rb[i].ok) {
      fprintf(stderr, "bench_memory: repetition %d failed (%s)\n", i + 1,
              !rv[i].ok ? "vigil" : "bare");
      return 1;
    }
    printf("memory rep %d/%d: vigil heap %.0f B/conn (state %.0f B, struct "
           "%zu B), rss %.0f B/conn; bare heap %.0f B/conn, rss %.0f "
           "B/conn\n",
           i + 1, reps, rv[i].heap_per_conn, rv[i].state_per_conn,
           sizeof(struct vigil_conn), rv[i].rss_per_conn,
           rb[i].heap_per_conn, rb[i].rss_per_conn);
    fflush(stdout);
  }
  FILE *f = json ? fopen(json, "w") : stdout;
  if (!f) {
    perror(json);
    return 1;
  }
  double state[MAX_REPS];
  for (int i = 0; i < reps; i++) state[i] = rv[i].state_per_conn;
  bc_sort(state, (size_t)reps);
  long buffers = 0;
  for (int i = 0; i < reps; i++) buffers += rv[i].idle_buffers;
  fprintf(f, "{\"memory\": {\n    \"config\": {\"connections\": %d, "
             "\"reps\": %d, \"loadavg_1m\": %.2f, \"conn_struct_bytes\": "
             "%zu, \"hub_read_buffer_bytes\": %d},\n",
          n, reps, load, sizeof(struct vigil_conn), VIGIL__READ_BUF);
  emit_section(f, "vigil", rv, reps);
  fputs(",\n", f);
  emit_section(f, "bare_libev", rb, reps);
  fprintf(f, ",\n    \"cited\": {\"nginx_conn_slot_bytes\": 416, "
             "\"libuv_uv_tcp_t_bytes\": 248, \"kernel_slab_per_socket_bytes\": "
             "4096},\n    \"targets\": {\"state_per_conn_le_256\": %s, "
             "\"no_idle_buffers\": %s}\n}}\n",
          bc_median_sorted(state, (size_t)reps) <= 256 ? "true" : "false",
          buffers == 0 ? "true" : "false");
  if (f != stdout) fclose(f);
  return 0;
}
