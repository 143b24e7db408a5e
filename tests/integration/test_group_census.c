/*
 * Census of a group's shared port: every worker's census, and the group's
 * own (vigil_group_census, from the test's thread), count the conns of
 * every worker as vigil's, so none is a ghost; a socket on the port that
 * no worker's conn holds (an fd a host kept after vigil closed its conn)
 * is leaked for all of them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "groupfix.h"
#include "testutil.h"

#define CLIENTS 20

static int leaked_fd = -1; /* [atomic] the fd a host "forgot" */

/* "LEAK": the host keeps a second fd of the conn's socket and aborts the
 * conn: vigil closes its own fd, the socket lives on in the host's. */
static void leak_hook(gx *f, vigil_conn *c, const void *d, size_t n) {
  if (n < 4 || memcmp(d, "LEAK", 4) != 0) return;
  int fd = dup(vigil_conn_fd(c));
  GX_CHECK(f, fd >= 0);
  GX_CHECK(f, vigil_abort(c) == VIGIL_OK);
  __atomic_store_n(&leaked_fd, fd, __ATOMIC_SEQ_CST);
}

typedef struct census_req {
  vigil_hub_census_report r;
  uint32_t conns; /* the hub's live conns */
  int rc;
  int done;       /* [atomic] */
} census_req;

static void census_fn(vigil_worker *w, void *arg) {
  census_req *q = arg;
  vigil_hub *hub = vigil_worker_hub(w);
  vigil_stats st;
  vigil_hub_stats(hub, &st);
  q->conns = (uint32_t)st.open;
  q->rc = vigil_hub_census(hub, &q->r);
  __atomic_store_n(&q->done, 1, __ATOMIC_SEQ_CST);
}

static int req_done(void *arg) {
  return __atomic_load_n(&((census_req *)arg)->done, __ATOMIC_SEQ_CST);
}

/* Worker i's own census of its ports (the shared one). */
static void worker_census(gx *f, uint32_t i, census_req *q) {
  memset(q, 0, sizeof *q);
  assert_int_equal(vigil_group_post(f->g, i, census_fn, q), VIGIL_OK);
  assert_true(vt_wait_until(req_done, q, 3000));
  assert_int_equal(q->rc, VIGIL_OK);
}

static int accepted_all(void *arg) {
  return gx_total_accepts(arg) >= CLIENTS;
}

static int leak_made(void *arg) {
  (void)arg;
  return __atomic_load_n(&leaked_fd, __ATOMIC_SEQ_CST) >= 0;
}

static void test_census_counts_every_workers_conns(void **state) {
  (void)state;
  gx f;
  gx_init(&f, 2);
  f.data_hook = leak_hook;
  gx_start(&f);
  int fds[CLIENTS];
  gx_connect(&f, fds, CLIENTS);
  assert_true(vt_wait_until(accepted_all, &f, 3000));
  /* Both workers hold some: the kernel spreads 20 over 2 (2^-19 not). */
  assert_true(gx_load(&f.accepts[0]) > 0 && gx_load(&f.accepts[1]) > 0);

  uint32_t conns = 0;
  for (uint32_t i = 0; i < 2; i++) {
    census_req q;
    worker_census(&f, i, &q);
    assert_int_equal(q.r.leaked, 0);
    assert_int_equal(q.r.ghosts, 0);
    assert_int_equal(q.r.conns, q.conns);
    assert_int_equal(q.r.counts[VIGIL_TCP_ESTABLISHED], CLIENTS);
    conns += q.conns;
  }
  assert_int_equal(conns, CLIENTS);
  vigil_hub_census_report g;
  assert_int_equal(vigil_group_census(f.g, &g), VIGIL_OK);
  assert_int_equal(g.conns, CLIENTS);
  assert_int_equal(g.nports, 1);
  assert_int_equal(g.counts[VIGIL_TCP_ESTABLISHED], CLIENTS);
  assert_int_equal(g.counts[VIGIL_TCP_LISTEN], 2); /* one per worker */
  assert_int_equal(g.leaked, 0);
  assert_int_equal(g.ghosts, 0);

  /* A socket on the port that no conn holds is leaked, for everyone. */
  assert_int_equal(send(fds[0], "LEAK", 4, 0), 4);
  assert_true(vt_wait_until(leak_made, NULL, 3000));
  assert_int_equal(vigil_group_census(f.g, &g), VIGIL_OK);
  assert_int_equal(g.conns, CLIENTS - 1);
  assert_int_equal(g.leaked, 1);
  assert_int_equal(g.ghosts, 1);
  for (uint32_t i = 0; i < 2; i++) {
    census_req q;
    worker_census(&f, i, &q);
    assert_int_equal(q.r.leaked, 1);
  }
  close(__atomic_load_n(&leaked_fd, __ATOMIC_SEQ_CST));
  for (int i = 0; i < CLIENTS; i++) close(fds[i]);
  assert_int_equal(vigil_group_stop(f.g, 1000), VIGIL_OK);
  assert_int_equal(vigil_group_join(f.g), VIGIL_OK);
  gx_assert_clean(&f);
  /* After the workers: nothing of the group is left on its port. */
  assert_int_equal(vigil_group_census(f.g, &g), VIGIL_OK);
  assert_int_equal(g.conns, 0);
  vigil_group_free(f.g);
  gx_done(&f);
}

static void test_group_census_errors(void **state) {
  (void)state;
  vigil_hub_census_report r;
  assert_int_equal(vigil_group_census(NULL, &r), VIGIL_EINVAL);
  gx f;
  gx_init(&f, 1);
  f.listen = 0;
  gx_new(&f);
  assert_int_equal(vigil_group_census(f.g, NULL), VIGIL_EINVAL);
  /* No port at all yet: an empty report. */
  assert_int_equal(vigil_group_census(f.g, &r), VIGIL_OK);
  assert_int_equal(r.nports, 0);
  assert_int_equal(r.total, 0);
  vigil_group_free(f.g);
  gx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_census_counts_every_workers_conns),
      cmocka_unit_test(test_group_census_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
