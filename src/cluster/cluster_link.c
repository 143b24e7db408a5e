/*
 * A hub's link to the cluster directory (cluster.h): the glue between the
 * in-process directory and the Redis one (redis_dir.h), one per hub, on
 * the hub's loop and thread.
 *
 * A hold's life in the store (this file's state machine, one per identity
 * a conn of this hub holds; the hold is holder->cluster):
 *
 *   local claim installed (cluster_dir, below)
 *     |  store DOWN, or claim() refused (EAGAIN) ------------> UNSENT
 *     v                                                   (epoch 0)
 *   IN FLIGHT -- INSTALLED(epoch) --> RECORDED                |
 *     |  REFUSED_PROVEN: the conn closes (takeover_rejected)  |
 *     |  ERROR: directory_error event; UNSENT until next UP   |
 *     |  TIMEOUT, DISCONNECTED (the store went down): UNSENT  |
 *     |                                                        |
 *   every UP (also a lapsed liveness key): a pass re-asserts each hold,
 *     UNSENT as a claim (epoch 0): KEPT -> RECORDED; FENCED (a newer claim
 *     elsewhere) -> the conn is taken over; a pass cut short by EAGAIN
 *     resumes after PASS_RETRY_S
 *   the conn proves its identity after its claim went out (a claim made
 *     before the TLS handshake finished; the directory's update op):
 *     RECORDED -> an assert at the hold's epoch with the proof (the store
 *     marks the record proven only if it still names this conn at that
 *     epoch; FENCED -> taken over); IN FLIGHT -> the same once INSTALLED
 *     comes back, or, if REFUSED_PROVEN comes back, a claim again with
 *     the proof; UNSENT -> the next pass carries it
 *   an eviction naming this conn, IN FLIGHT or RECORDED at an older epoch
 *     than the claim's (vigil__dir_must_fence) -> taken over, scope cluster
 *   the conn closes: release(identity, epoch), the store's
 *     compare-and-delete; a hold still IN FLIGHT is released when its
 *     answer comes back.
 *
 * Every answer is matched to the conn it names through the local directory
 * (identity -> this hub's holder -> the conn id the request carried), so
 * an answer for a conn that closed or was displaced meanwhile touches
 * nothing but the store's record.
 *
 * Evictions from this node's own claims are dropped: the in-process
 * directory (the group's) already displaced that holder, through the one
 * eviction function (vigil__takeover_evict).
 *
 * Re-entrancy: every callback from the store brackets the hub; host code
 * (events) may close conns or free the hub, which frees this link from
 * inside the store's callback (allowed by redis_dir.h): nothing here
 * touches the link after the bracket's leave.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "close.h"
#include "cluster.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "identity.h"
#include "redis_dir.h"
#include "redis_url.h"
#include "takeover.h"

/* Re-assertions per reassert() call (a batch goes out pipelined). */
#define PASS_BATCH 256
/* A pass the directory refused (EAGAIN: max_pending in flight) resumes
 * after this long. */
#define PASS_RETRY_S 0.05

struct vigil__cluster {
  vigil_hub *hub;
  vigil__redis_dir *rd;
  char node[VIGIL__DIR_NODE_MAX + 1];
  int up;          /* the directory's last on_state */
  int detaching;   /* callbacks from free() change nothing */
  uint64_t gen;    /* UP generation: what a pass has still to send */
  ev_timer retry;  /* a pass cut short by EAGAIN goes on */
};

/* The cluster layer's record of one hold (vigil__holder.cluster). */
typedef struct cl_hold {
  uint64_t epoch;    /* the store's epoch for this hold; 0 = not known */
  uint64_t sent_gen; /* the UP generation it was last sent in */
  uint32_t inflight; /* claims and re-assertions not answered yet */
  uint8_t proven;    /* the local directory's: the certificate proves it */
  uint8_t sent_proven; /* the proof the last request carried */
  size_t len;
  char id[];
} cl_hold;

static int staying(const vigil_conn *c) {
  return c->state == VIGIL_CONN_HANDSHAKE || c->state == VIGIL_CONN_OPEN;
}

static cl_hold *hold_of(const vigil_conn *c) {
  vigil__holder *h = c->ext ? c->ext->holder : NULL;
  return h ? h->cluster : NULL;
}

/* ---- options ---- */

static void to_config(const vigil_cluster_options *o, uint32_t worker,
                      vigil__redis_dir_config *c) {
  vigil__redis_dir_config_init(c);
  c->url = o->url;
  c->prefix = o->prefix;
  c->node = o->node;
  c->worker = worker;
  c->command_timeout_ms = o->command_timeout_ms;
  c->liveness_ttl_ms = o->liveness_ttl_ms;
}

int vigil__cluster_check(const vigil_cluster_options *o, char *msg,
                         size_t msglen) {
  if (!o) {
    if (msg && msglen) snprintf(msg, msglen, "cluster options are NULL");
    return VIGIL_EINVAL;
  }
  /* The URL parser's messages name the URL's part: say it is the url. */
  vigil__redis_url url;
  char why[200];
  if (vigil__redis_url_parse(o->url, &url, why, sizeof why) != 0) {
    if (msg && msglen) snprintf(msg, msglen, "url: %s", why);
    return VIGIL_EINVAL;
  }
  vigil__redis_dir_config c;
  to_config(o, 0, &c);
  return vigil__redis_dir_config_check(&c, msg, msglen);
}

/* ---- events ---- */

static void emit(vigil_hub *hub, vigil_event_type type, vigil_conn *c,
                 const char *detail) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, type, hub, c);
  ev.detail = detail;
  vigil__event_send(hub, &ev);
}

/* c, held here, lost its identity to a newer claim on node `claimer`
 * (NULL if the store did not say): the takeover event, then the one
 * eviction function. arrival_us: when this node learned it. */
static void take_over(vigil_hub *hub, vigil_conn *c, const char *claimer,
                      uint64_t arrival_us) {
  if (vigil__hub_wants_events(hub)) {
    vigil_event ev;
    vigil__event_init(&ev, VIGIL_EV_TAKEOVER, hub, c);
    ev.scope = VIGIL_SCOPE_CLUSTER;
    ev.other_node = claimer;
    vigil__event_send(hub, &ev);
  }
  /* The event's sink may have closed c or freed the hub. */
  if (!hub->free_requested && staying(c))
    vigil__takeover_evict(c, VIGIL_SCOPE_CLUSTER, arrival_us);
}

static const char refused_detail[] =
    "identity proven by certificate on another node";

/* A live holder on another node proved the identity with a certificate
 * and c did not: c closes as a refused local claim does (gracefully, so
 * what it queued before the claim still goes out). */
static void reject(vigil_conn *c) {
  if (!staying(c)) return;
  vigil__conn_ext *x = vigil__conn_ext_get(c);
  if (x && !x->detail) x->detail = refused_detail;
  vigil__conn_close(c, VIGIL_REASON_TAKEOVER_REJECTED, VIGIL__CLOSE_GRACEFUL);
}

/* ---- answers ---- */

static void arm_retry(vigil__cluster *cl) {
  if (!ev_is_active(&cl->retry)) {
    ev_timer_set(&cl->retry, PASS_RETRY_S, 0.0);
    ev_timer_start(cl->hub->loop, &cl->retry);
  }
}

static void send_claim(vigil__cluster *cl, uint64_t conn_id, cl_hold *hold);
static void send_proof(vigil__cluster *cl, uint64_t conn_id, cl_hold *hold);

static void apply_result(vigil__cluster *cl, const vigil__dir_result *r) {
  vigil_hub *hub = cl->hub;
  vigil_conn *c = vigil__identity_holder(hub, r->identity, r->identity_len);
  cl_hold *hold = c && c->id == r->conn_id ? hold_of(c) : NULL;
  if (!hold) {
    /* The conn closed (or lost the identity here) before the store
     * answered: take back what the store just recorded for it. */
    if (r->status == VIGIL__DIR_INSTALLED)
      vigil__redis_dir_release(cl->rd, r->identity, r->identity_len,
                               r->epoch);
    return;
  }
  if (hold->inflight) hold->inflight--;
  switch (r->status) {
  case VIGIL__DIR_INSTALLED:
    if (r->epoch > hold->epoch) hold->epoch = r->epoch;
    send_proof(cl, c->id, hold); /* proven while the claim was out */
    break;
  case VIGIL__DIR_REFUSED_PROVEN:
    /* Refused without the proof that came meanwhile: a proven claim may
     * displace a proven holder, as in the local directory. */
    if (hold->proven && !hold->sent_proven)
      send_claim(cl, c->id, hold);
    else
      reject(c);
    break;
  case VIGIL__DIR_FENCED:
    if (staying(c))
      take_over(hub, c, r->other.present ? r->other.node : NULL,
                vigil__monotonic_us());
    break;
  case VIGIL__DIR_ERROR:
    emit(hub, VIGIL_EV_DIRECTORY_ERROR, c, r->detail);
    break;
  default:
    /* TIMEOUT and DISCONNECTED take the directory down: the next UP
     * re-asserts the hold. CANCELLED: the link is going. */
    hold->sent_gen = 0;
    break;
  }
}

static void on_result(vigil__redis_dir *d, const vigil__dir_result *r,
                      void *user) {
  vigil__cluster *cl = user;
  (void)d;
  if (cl->detaching) return;
  vigil_hub *hub = cl->hub;
  vigil__hub_enter_loop(hub);
  apply_result(cl, r);
  vigil__hub_leave(hub); /* may free the hub and this link */
}

/* ---- claims, releases, re-assertion ---- */

static void send_claim(vigil__cluster *cl, uint64_t conn_id, cl_hold *hold) {
  if (!cl->up) return; /* the next UP's pass claims it (epoch 0) */
  int rc = vigil__redis_dir_claim(cl->rd, hold->id, hold->len, conn_id,
                                  hold->proven, on_result, cl);
  if (rc == VIGIL_OK) {
    hold->inflight++;
    hold->sent_gen = cl->gen;
    hold->sent_proven = hold->proven;
    return;
  }
  hold->sent_gen = 0; /* the retry's pass (or the next UP's) sends it */
  if (rc == VIGIL_EAGAIN || rc == VIGIL_ENOMEM) arm_retry(cl);
}

/* Sends n re-assertions; a batch too large for the output limit is split.
 * VIGIL_OK, or the error that stopped it (the rest waits for a retry). */
static int send_batch(vigil__cluster *cl, const vigil__dir_held *held,
                      cl_hold **holds, size_t n) {
  int rc = vigil__redis_dir_reassert(cl->rd, held, n, on_result, cl);
  if (rc == VIGIL_EOVERFLOW && n > 1) {
    size_t half = n / 2;
    rc = send_batch(cl, held, holds, half);
    return rc == VIGIL_OK ? send_batch(cl, held + half, holds + half, n - half)
                          : rc;
  }
  if (rc != VIGIL_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    holds[i]->inflight++;
    holds[i]->sent_gen = cl->gen;
    holds[i]->sent_proven = held[i].proven ? 1 : 0;
  }
  return VIGIL_OK;
}

/* The store was last sent this hold without the proof the local directory
 * now has: an assert of the hold at its epoch, with the proof. The store
 * marks its record proven only if it still names this conn at this epoch
 * (a newer claim fences it: FENCED, and the conn is taken over). A hold
 * whose request is in flight waits for the answer (apply_result); one
 * never recorded is sent whole, proof included, by the next pass. */
static void send_proof(vigil__cluster *cl, uint64_t conn_id, cl_hold *hold) {
  if (!cl->up || hold->inflight || !hold->epoch || !hold->proven ||
      hold->sent_proven)
    return;
  vigil__dir_held held = {hold->id, hold->len, conn_id, hold->epoch, 1};
  if (send_batch(cl, &held, &hold, 1) != VIGIL_OK) {
    hold->sent_gen = 0; /* the retry's pass sends it, proof included */
    arm_retry(cl);
  }
}

/* Re-asserts every identity this hub holds that was not sent since the
 * last UP (an internal walk over the hub's conns). */
static void pass(vigil__cluster *cl) {
  vigil_hub *hub = cl->hub;
  vigil__dir_held held[PASS_BATCH];
  cl_hold *holds[PASS_BATCH];
  size_t n = 0;
  int rc = VIGIL_OK;
  for (uint32_t i = 0; i < hub->nconns && rc == VIGIL_OK; i++) {
    vigil_conn *c = hub->conns[i];
    cl_hold *hold = hold_of(c);
    if (!hold || hold->sent_gen == cl->gen || hold->inflight || !staying(c))
      continue;
    held[n] = (vigil__dir_held){hold->id, hold->len, c->id, hold->epoch,
                                hold->proven};
    holds[n++] = hold;
    if (n == PASS_BATCH) {
      rc = send_batch(cl, held, holds, n);
      n = 0;
    }
  }
  if (rc == VIGIL_OK && n > 0) rc = send_batch(cl, held, holds, n);
  if (rc == VIGIL_EAGAIN || rc == VIGIL_ENOMEM || rc == VIGIL_EOVERFLOW)
    arm_retry(cl);
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  vigil__cluster *cl = t->data;
  (void)loop;
  (void)revents;
  if (!cl->up) return; /* the next UP passes anyway */
  vigil_hub *hub = cl->hub;
  vigil__hub_enter_loop(hub);
  pass(cl);
  vigil__hub_leave(hub);
}

/* ---- the store's callbacks ---- */

static void on_state(vigil__redis_dir *d, int up, const char *reason,
                     void *user) {
  vigil__cluster *cl = user;
  (void)d;
  if (cl->detaching) return;
  vigil_hub *hub = cl->hub;
  cl->up = up;
  if (up) cl->gen++; /* everything held is sent again */
  hub->metrics.generation++; /* a group publishes vigil_directory_up */
  vigil__hub_enter_loop(hub);
  emit(hub, up ? VIGIL_EV_DIRECTORY_UP : VIGIL_EV_DIRECTORY_DOWN, NULL,
       reason);
  if (up && !hub->free_requested) pass(cl);
  vigil__hub_leave(hub);
}

static void on_evict(vigil__redis_dir *d, const vigil__dir_eviction *ev,
                     void *user) {
  vigil__cluster *cl = user;
  (void)d;
  if (cl->detaching || strcmp(ev->claimer, cl->node) == 0) return;
  uint64_t arrival_us = vigil__monotonic_us();
  vigil_hub *hub = cl->hub;
  vigil__hub_enter_loop(hub);
  vigil_conn *c = vigil__identity_holder(hub, ev->identity, ev->identity_len);
  cl_hold *hold = c ? hold_of(c) : NULL;
  /* A hold whose claim is still in flight counts as epoch 0: the store
   * named this conn, so the eviction's claim came after it. */
  uint64_t epoch = hold ? hold->epoch : 0;
  if (c && staying(c) && vigil__dir_must_fence(ev, c->id, epoch))
    take_over(hub, c, ev->claimer, arrival_us);
  vigil__hub_leave(hub);
}

/* ---- the hub's link ---- */

int vigil__cluster_attach(vigil_hub *hub, const vigil_cluster_options *o,
                          uint32_t worker, uint64_t seed) {
  vigil__cluster *cl = calloc(1, sizeof *cl);
  if (!cl) return VIGIL_ENOMEM;
  cl->hub = hub;
  snprintf(cl->node, sizeof cl->node, "%s", o->node ? o->node : "");
  ev_timer_init(&cl->retry, retry_cb, 0.0, 0.0);
  cl->retry.data = cl;
  vigil__redis_dir_config c;
  to_config(o, worker, &c);
  c.seed = seed;
  vigil__redis_dir_callbacks cb = {on_state, on_evict, cl};
  int rc = vigil__redis_dir_new(hub->loop, &c, &cb, &cl->rd, NULL, 0);
  if (rc != VIGIL_OK) {
    free(cl);
    return rc;
  }
  /* A hub alone claims in its own directory: behind this layer. (A
   * group's hubs share the group's, which the group wrapped.) */
  if (!hub->link) {
    vigil__dir *local = vigil__dir_local_new(0);
    hub->own_dir = local ? vigil__dir_cluster_new(local) : NULL;
    if (!hub->own_dir) {
      if (local) local->ops->destroy(local);
      vigil__redis_dir_free(cl->rd);
      free(cl);
      return VIGIL_ENOMEM;
    }
  }
  hub->cluster = cl;
  hub->cluster_detach = vigil__cluster_detach;
  hub->metrics.generation++;
  return VIGIL_OK;
}

void vigil__cluster_detach(vigil_hub *hub) {
  vigil__cluster *cl = hub->cluster;
  if (!cl) return;
  cl->detaching = 1;
  ev_timer_stop(hub->loop, &cl->retry);
  vigil__redis_dir_free(cl->rd);
  hub->cluster = NULL;
  hub->cluster_detach = NULL;
  free(cl);
}

int vigil__cluster_up(const vigil_hub *hub) {
  return hub->cluster ? hub->cluster->up : -1;
}

/* ---- the directory wrapper ---- */

typedef struct cluster_dir {
  vigil__dir base;
  vigil__dir *inner;
} cluster_dir;

/* On the claimant's thread: mine was just installed locally. */
static void claimed(vigil__holder *mine, const void *id, size_t len) {
  vigil__cluster *cl = mine->hub->cluster;
  if (!cl) return;
  cl_hold *hold = calloc(1, sizeof *hold + len);
  if (!hold) return; /* the claim stays local: ghosts elsewhere end by
                        their own deadlines */
  memcpy(hold->id, id, len);
  hold->len = len;
  hold->proven = mine->proven;
  mine->cluster = hold;
  send_claim(cl, mine->conn_id, hold);
}

/* On the owner's thread: h's conn closed. */
static void released(vigil__holder *h) {
  cl_hold *hold = h->cluster;
  if (!hold) return;
  vigil__cluster *cl = h->hub->cluster;
  /* A claim still in flight is released when its answer arrives. */
  if (cl && hold->epoch)
    vigil__redis_dir_release(cl->rd, hold->id, hold->len, hold->epoch);
  h->cluster = NULL;
  free(hold);
}

static vigil__verdict cd_claim(vigil__dir *d, const void *id, size_t len,
                               uint64_t now, vigil__dir_judge judge,
                               void *ctx, vigil__holder *mine,
                               vigil__holder **other) {
  cluster_dir *cd = (cluster_dir *)d;
  vigil__verdict v =
      cd->inner->ops->claim(cd->inner, id, len, now, judge, ctx, mine, other);
  if (mine && (v == VIGIL__V_INSTALL || v == VIGIL__V_EVICT))
    claimed(mine, id, len);
  return v;
}

/* On the owner's thread: h's conn proved its identity after the claim
 * (a claim made before the TLS handshake finished). */
static void proved(vigil__holder *h) {
  cl_hold *hold = h->cluster;
  vigil__cluster *cl = h->hub->cluster;
  if (!hold || !cl || hold->proven) return;
  hold->proven = 1;
  send_proof(cl, h->conn_id, hold);
}

static void cd_update(vigil__dir *d, vigil__holder *h, int staying_now,
                      int proven) {
  cluster_dir *cd = (cluster_dir *)d;
  int newly_proven = proven && !h->proven; /* the owner may read it */
  cd->inner->ops->update(cd->inner, h, staying_now, proven);
  if (newly_proven) proved(h);
}

static void cd_release(vigil__dir *d, vigil__holder *h, uint64_t now) {
  cluster_dir *cd = (cluster_dir *)d;
  released(h);
  cd->inner->ops->release(cd->inner, h, now);
}

static vigil_conn *cd_find(vigil__dir *d, const void *id, size_t len,
                           const vigil_hub *hub) {
  cluster_dir *cd = (cluster_dir *)d;
  return cd->inner->ops->find(cd->inner, id, len, hub);
}

static void cd_destroy(vigil__dir *d) {
  cluster_dir *cd = (cluster_dir *)d;
  cd->inner->ops->destroy(cd->inner);
  free(cd);
}

/* The identity's rules live in the inner directory. */
static void cd_note(vigil__dir *d, const void *id, size_t len, uint64_t now,
                    vigil__dir_note note, void *ctx) {
  cluster_dir *cd = (cluster_dir *)d;
  if (cd->inner->ops->note)
    cd->inner->ops->note(cd->inner, id, len, now, note, ctx);
}

static const vigil__dir_ops cluster_ops = {cd_claim,   cd_update,
                                           cd_release, cd_find,
                                           cd_destroy, cd_note};

vigil__dir *vigil__dir_cluster_new(vigil__dir *inner) {
  cluster_dir *cd = calloc(1, sizeof *cd);
  if (!cd) return NULL;
  cd->base.ops = &cluster_ops;
  cd->inner = inner;
  return &cd->base;
}
