/*
 * Internal structures of the hub and its connections.
 *
 * Memory budget: a connection is kept small (target <= 256 bytes of vigil
 * state, no I/O buffer while idle): the read buffer is one per hub, the
 * output queue exists only while the kernel refuses bytes, callbacks are
 * interned per hub, and the peer address is stored compactly.
 */
#ifndef VIGIL_INTERNAL_H
#define VIGIL_INTERNAL_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "deadline.h"
#include "metrics.h"
#include "vigil.h"
#include "wheel.h"

#define vigil__container_of(ptr, type, member)                              \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Size of the hub's shared read buffer. */
#define VIGIL__READ_BUF 65536
/* Reads per readiness callback before yielding to other connections. */
#define VIGIL__READS_PER_EVENT 4

/* Connection flags. */
#define VIGIL__F_WATCH_ONLY 0x01u
#define VIGIL__F_PEER_FIN 0x04u    /* peer's FIN seen */
#define VIGIL__F_SHUT_WR 0x08u     /* our FIN sent */
#define VIGIL__F_WRITING 0x10u     /* io watcher includes EV_WRITE */
#define VIGIL__F_READING 0x20u     /* io watcher includes EV_READ */
#define VIGIL__F_CB_DONE 0x40u     /* on_close delivered */
#define VIGIL__F_ABORTIVE 0x80u    /* close with RST */

typedef struct vigil__outchunk vigil__outchunk;
typedef struct vigil__conn_ext vigil__conn_ext;

/* Compact peer address: formatted on demand (events, accessors). */
typedef struct vigil__addr {
  uint8_t family; /* AF_INET, AF_INET6, 0 = unknown */
  uint8_t pad;
  uint16_t port;  /* host order */
  uint8_t addr[16];
} vigil__addr;

struct vigil_conn {
  ev_io io;                  /* io.fd is the socket; -1 once closed */
  vigil__wheel_node wnode;   /* the one deadline node */
  vigil_hub *hub;
  uint32_t slot;             /* index in hub->conns (live) */
  uint8_t state;             /* vigil_conn_state */
  uint8_t flags;             /* VIGIL__F_* */
  uint8_t quiet;             /* VIGIL__QUIET_* */
  uint8_t reason;            /* vigil_reason once closing */
  uint8_t cause;             /* drain_timeout: the original reason */
  uint8_t pad[3];
  int sys_errno;             /* io_error detail */
  uint64_t id;
  vigil__times t;
  uint64_t bytes_in;
  uint64_t bytes_out;
  const vigil_policy *policy;        /* shared (policy_share.c): a ref */
  const vigil_conn_callbacks *cb;    /* interned in the hub */
  void *user_data;
  vigil__outchunk *outq_tail;        /* circular list: tail->next = head */
  size_t queued;                     /* bytes in outq */
  vigil__addr peer;
  vigil__conn_ext *ext;              /* identity, TLS, codec; NULL if none */
  vigil_conn *next_closed;           /* hub's pending on_close list */
};

/* Optional per-connection state that most connections never need. */
struct vigil__conn_ext {
  char *identity;        /* NUL-terminated copy; NULL = none */
  size_t identity_len;
  uint64_t epoch;        /* identity index epoch (takeover guard) */
  void *tls;             /* TLS state (tls.c) */
  void *codec;           /* frame codec state (conn_codec.c) */
  const char *detail;    /* close detail (protocol error, TLS reason) */
  char *host_detail;     /* owned copy from vigil_close_ex */
  int truncated;         /* TLS: peer closed without close_notify */
};

/* Objects a hub owns besides its conns (listeners, clients). They are
 * linked in hub->owned while alive; released ones wait in hub->graveyard
 * until no vigil code is on the stack. */
typedef enum vigil__owned_kind {
  VIGIL__OWNED_LISTENER = 1,
  VIGIL__OWNED_CLIENT = 2,
} vigil__owned_kind;

typedef struct vigil__owned vigil__owned;
struct vigil__owned {
  vigil__owned *next;
  vigil__owned *prev;
  vigil__owned_kind kind;
  /* The hub is being destroyed: stop every watcher; free the object or
   * detach it (a client stays the host's to free). */
  void (*hub_gone)(vigil__owned *o);
  /* Frees the object (after vigil__hub_release). */
  void (*release)(vigil__owned *o);
};

typedef struct vigil__cbset {
  struct vigil__cbset *next;
  vigil_conn_callbacks cb;
} vigil__cbset;

struct vigil_hub {
  struct ev_loop *loop;
  const vigil_policy *policy;  /* shared; conns adopted now take a ref */
  vigil_hub_options opts;      /* opts.policy is NULL: see `policy` */
  vigil__wheel wheel;
  ev_timer tick;               /* sleeps until the wheel's next expiry */
  ev_check clock_refresh;      /* refreshes now_ms after each poll */
  ev_prepare deliver;          /* delivers pending on_close before polling */
  uint64_t now_ms;             /* cached monotonic now */
  uint64_t armed_at;           /* when the tick timer is due (ms) */
  uint64_t next_conn_id;
  vigil_conn **conns;          /* live conns, dense; conn->slot indexes */
  uint32_t nconns;
  uint32_t cap_conns;
  vigil_conn *closed_head;     /* pending on_close (FIFO) */
  vigil_conn *closed_tail;
  vigil__cbset *cbsets;
  vigil__owned *owned;         /* live listeners and clients */
  vigil__owned *graveyard;     /* released while depth > 0 */
  char *rbuf;                  /* shared read buffer, VIGIL__READ_BUF */
  vigil_stats stats;
  int depth;                   /* nesting of vigil entry points */
  int entered_from_loop;       /* the outermost bracket is a watcher's */
  int free_requested;
  int freeing;
  /* graceful shutdown */
  int shutting_down;
  ev_timer shutdown_timer;
  uint64_t shutdown_deadline;  /* hub clock ms */
  vigil_shutdown_cb shutdown_done;
  void *shutdown_data;
  /* identity index (identity.c) */
  void *identities;
  /* census (hub_census.c) */
  ev_timer census_timer;
  void *census_state;          /* CLOSE_WAIT first-seen table */
  /* metrics beyond stats (metrics_hooks.c) */
  vigil__metrics metrics;
  /* group membership (group_worker.c) */
  int32_t worker_index;        /* stamped on events; -1 outside a group */
  vigil_worker *worker;        /* NULL outside a group */
  void (*on_destroyed)(vigil_hub *hub); /* last act of hub_destroy: the
                                 counters are final; runs no host code */
};

/* ---- policy_share.c ---- */
/* A shared copy of p (vigil_policy_init() defaults for NULL) with one
 * reference; NULL on ENOMEM. */
const vigil_policy *vigil__policy_new(const vigil_policy *p);
const vigil_policy *vigil__policy_ref(const vigil_policy *p);
/* Drops a reference (NULL is ignored). */
void vigil__policy_unref(const vigil_policy *p);

/* ---- hub.c ---- */
uint64_t vigil__hub_clock(vigil_hub *hub);
/* Brackets around vigil code that may run host code (see hub.c): public
 * calls use enter, watcher callbacks enter_loop. */
void vigil__hub_enter(vigil_hub *hub);
void vigil__hub_enter_loop(vigil_hub *hub);
void vigil__hub_leave(vigil_hub *hub);
/* Links o into the hub's owned list / unlinks it. */
void vigil__hub_own(vigil_hub *hub, vigil__owned *o);
void vigil__hub_disown(vigil_hub *hub, vigil__owned *o);
/* Frees an unlinked o now, or once no vigil code is on the stack. */
void vigil__hub_release(vigil_hub *hub, vigil__owned *o);
/* 1 once the conn's hub is going away: the conn takes no new work. */
static inline int vigil__hub_going(const vigil_hub *hub) {
  return hub->free_requested;
}
int vigil__hub_add_conn(vigil_hub *hub, vigil_conn *c);
void vigil__hub_remove_conn(vigil_hub *hub, vigil_conn *c);
void vigil__hub_queue_closed(vigil_hub *hub, vigil_conn *c);
const vigil_conn_callbacks *vigil__hub_intern_cb(vigil_hub *hub,
                                                 const vigil_conn_callbacks *cb);
/* Arms the hub's tick timer for the wheel's next expiry. */
void vigil__hub_rearm(vigil_hub *hub);
/* Makes hub worker `index` of a group: events carry the index, and
 * on_destroyed runs at the end of the hub's destruction. */
void vigil__hub_set_worker(vigil_hub *hub, vigil_worker *w, int32_t index,
                           void (*on_destroyed)(vigil_hub *hub));

/* ---- event_emit.c ---- */
/* Fills the fields every event shares (ts, conn, peer, ages, bytes). */
void vigil__event_init(vigil_event *ev, vigil_event_type type, vigil_hub *hub,
                       vigil_conn *c);
void vigil__event_send(vigil_hub *hub, const vigil_event *ev);
static inline int vigil__hub_wants_events(const vigil_hub *hub) {
  return hub->opts.on_event != NULL;
}
/* Formats c->peer into buf (VIGIL__PEER_STRLEN). */
const char *vigil__conn_peer_str(const vigil_conn *c, char *buf, size_t len);

/* ---- conn.c ---- */
struct sockaddr;
/* Adoption of a connected non-blocking socket whose peer is known (the
 * listener's path): `policy` is a shared policy the conn takes a
 * reference to (opts->policy is not read); on error the fd is untouched
 * and still the caller's. */
int vigil__adopt(vigil_hub *hub, int fd, const struct sockaddr *peer,
                 const vigil_policy *policy, const vigil_adopt_options *opts,
                 vigil_conn **out);
/* May c take len more bytes of output? VIGIL_OK, VIGIL_ESTATE
 * (watch-only), VIGIL_ECLOSED, or VIGIL_EOVERFLOW (after closing c when
 * overflow_action is CLOSE). */
int vigil__conn_check_send(vigil_conn *c, size_t len);
/* Gives c the shared policy p (takes a reference, drops the old one). */
void vigil__conn_use_policy(vigil_conn *c, const vigil_policy *p);
void vigil__conn_schedule(vigil_conn *c);
void vigil__conn_on_deadline(vigil__wheel_node *n, void *ctx);
void vigil__conn_update_io(vigil_conn *c);
void vigil__conn_free(vigil_conn *c);
/* Writes queued output; returns 0, or -1 when the conn closed. */
int vigil__conn_flush(vigil_conn *c);
/* Classifies a failed I/O errno and closes the conn accordingly. */
void vigil__conn_io_failed(vigil_conn *c, int err);
vigil__conn_ext *vigil__conn_ext_get(vigil_conn *c);
/* Reads the socket (no TLS) until EAGAIN, a budget of reads, EOF or an
 * error; bytes go to the host, or are discarded while closing. */
void vigil__conn_read_plain(vigil_conn *c);
/* Hands received bytes to the host (or the frame codec). */
void vigil__conn_deliver(vigil_conn *c, const void *data, size_t len);
/* Sets the ping bit, emits ping_due and calls on_ping_due. */
void vigil__conn_ask_ping(vigil_conn *c);
/* Emits the "dead" event with a tcp_info snapshot. */
void vigil__conn_report_dead(vigil_conn *c, vigil_reason reason);

static inline vigil_conn_state vigil__state(const vigil_conn *c) {
  return (vigil_conn_state)c->state;
}
static inline int vigil__closing(const vigil_conn *c) {
  return c->state >= VIGIL_CONN_FLUSHING;
}

/* ---- conn_close.c ---- */
typedef enum vigil__close_mode {
  VIGIL__CLOSE_GRACEFUL = 0, /* flush, SHUT_WR, drain, close */
  VIGIL__CLOSE_ABORT = 1,    /* RST now */
  VIGIL__CLOSE_DEAD = 2,     /* RST if abort_dead, else plain close now */
  VIGIL__CLOSE_NOW = 3,      /* plain close now (hub free, errors) */
} vigil__close_mode;

void vigil__conn_close(vigil_conn *c, vigil_reason reason,
                       vigil__close_mode mode);
/* Read path saw EOF. */
void vigil__conn_peer_fin(vigil_conn *c);
/* Output queue drained while FLUSHING. */
void vigil__conn_flushed(vigil_conn *c);
/* A terminal deadline fired (VIGIL__DUE_* terminal bits). */
void vigil__conn_deadline_close(vigil_conn *c, unsigned due);

/* ---- outqueue.c ---- */
int vigil__outq_append(vigil_conn *c, const void *data, size_t len);
/* Writes as much as the socket takes: returns bytes written, or -1 with
 * errno set (EAGAIN is not an error: returns what was written). */
long vigil__outq_write(vigil_conn *c);
void vigil__outq_clear(vigil_conn *c);

/* ---- conn_codec.c (frame codec layer, policy.frame_codec) ---- */
/* Parses received bytes into frames: DATA -> on_data, HELLO -> on_hello,
 * PING -> PONG reply, GOODBYE -> peer-first close. */
void vigil__codec_feed(vigil_conn *c, const void *data, size_t len);
/* Sends a PING frame (ping_interval with the codec on). */
void vigil__codec_send_ping(vigil_conn *c);
/* Releases codec state (parser buffer) at free time. */
void vigil__codec_free(vigil_conn *c);
/* Graceful close starting (reason set, state not yet FLUSHING): sends
 * GOODBYE for policy reasons, to make the peer close first. */
void vigil__codec_before_close(vigil_conn *c);
/* Queue empty in FLUSHING: 1 = keep our FIN until the peer's (GOODBYE). */
int vigil__codec_holds_fin(vigil_conn *c);
/* The hold's drain bound passed: 1 = go on with shutdown(SHUT_WR). */
int vigil__codec_release_fin(vigil_conn *c);

/* ---- identity.c ---- */
void vigil__identity_release(vigil_conn *c);
void vigil__identity_hub_free(vigil_hub *hub);

/* ---- conn_suspect.c ---- */
void vigil__conn_suspect_check(vigil_conn *c);
/* Reads TCP_INFO to tell a keepalive kill from a user-timeout kill. */
vigil_reason vigil__timedout_reason(vigil_conn *c);

/* ---- hub_census.c ---- */
/* Starts the periodic census when opts.census_interval_ms > 0. */
void vigil__hub_census_start(vigil_hub *hub);
/* Stops the census timer and frees the census state (hub_destroy). */
void vigil__hub_census_free(vigil_hub *hub);

/* ---- listener.c ---- */
/* Stores up to cap local ports of the hub's open listeners; returns how
 * many listeners there are. */
size_t vigil__listener_ports(vigil_hub *hub, uint16_t *out, size_t cap);
/* Stops accepting on every listener (graceful shutdown). */
void vigil__listeners_stop(vigil_hub *hub);

#endif
