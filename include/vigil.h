/*
 * vigil: keeps long-lived TCP connections honest.
 *
 * vigil manages connection objects on a libev loop. It applies kernel
 * keepalive and TCP_USER_TIMEOUT, runs application heartbeats and idle and
 * handshake deadlines, finds dead and ghost peers, closes connections in the
 * safe order (flush, shutdown(SHUT_WR), drain, close) or with RST for peers
 * that are confirmed dead, and reports every step as a structured event.
 *
 * Threading: a hub is bound to one ev_loop and is single-threaded. Every
 * function taking a hub or a conn must be called from the thread running
 * that loop. Different hubs on different loops are independent. A group
 * (vigil/group.h) runs one hub per worker thread and lists the few calls
 * that are safe from any thread.
 *
 * Ownership: vigil_adopt() takes ownership of the fd on success only. On
 * error the caller still owns it, untouched. A conn handle stays valid
 * until its on_close callback returns; after that it must not be used.
 *
 * Re-entrancy (the rule, after libuv and hiredis). Host code runs inside
 * vigil in the conn callbacks, the event sink, on_takeover, on_accept, the
 * shutdown done callback and the client callbacks; events are also emitted
 * from inside public calls (vigil_adopt, vigil_close, vigil_conn_identify,
 * vigil_hub_shutdown...). From any of them the host may call any vigil
 * function, including those that close or free the object the callback is
 * about, its listener, its client or the hub itself. Then:
 *  - nothing is freed under running vigil code: vigil_hub_free(),
 *    vigil_listener_close() and vigil_client_free() called while vigil code
 *    is on the stack only record the request; the object goes once control
 *    has left vigil. A hub freed this way is destroyed only once control is
 *    back in the loop, never inside a public call the host made: a handle
 *    that call returns (a conn from vigil_adopt...) stays valid until then,
 *    and calls on it refuse new work (VIGIL_ECLOSED, VIGIL_EINVAL);
 *  - vigil_hub_free() called outside any callback destroys the hub at once
 *    (on_close runs for each conn before it returns);
 *  - on_close runs exactly once per conn and never inside a public call
 *    (except vigil_hub_free above): it comes from the loop, after the
 *    callback chain that closed the conn has returned;
 *  - timers and watchers of a closed or freed object never fire. A freed
 *    hub closes its listeners and detaches its clients (they stop and wait
 *    for vigil_client_free()).
 * The one thing a host must not do is free the ev_loop under a live hub.
 *
 * Stability: error codes, close reasons and event types are only ever
 * appended; their numeric values never change.
 *
 * ABI of the public structs: the option structs (vigil_policy,
 * vigil_hub_options, vigil_adopt_options, vigil_listen_options,
 * vigil_client_options, vigil_client_backoff, vigil_tls_options,
 * vigil_tls_ctx_options, vigil_census_query) and the structs vigil fills
 * (vigil_stats, vigil_event, vigil_sockopts, vigil_tcp_info, the census
 * reports) follow one rule:
 *  - fields are only ever appended: none is removed, reordered or
 *    retyped, so code that names fields keeps compiling and keeps its
 *    meaning (tests/unit/test_abi_layout.c holds every field's place);
 *  - always start an option struct from its *_init() function (or zero
 *    it), which gives every field of the version at hand its default, so
 *    a field added later is off or at its default in code that predates
 *    it;
 *  - appending changes a struct's size, so a program runs with the vigil
 *    version it was built against: a release that changes the layout of a
 *    public struct bumps the SOVERSION (CMake VIGIL_SOVERSION), and the
 *    loader then refuses the mismatch. While the major version is 0 that
 *    is every minor release that changes one (bindings check the major
 *    and minor of vigil_version(), as the Python one does).
 *
 * Field comments: [in] set by the host, [out] filled by vigil,
 * "0 = off" means the feature is disabled by a zero value.
 */
#ifndef VIGIL_H
#define VIGIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
struct ssl_ctx_st;        /* OpenSSL SSL_CTX (vigil/tls.h) */
struct vigil_tls_options; /* vigil/tls.h */

#define VIGIL_VERSION_MAJOR 0
#define VIGIL_VERSION_MINOR 1
#define VIGIL_VERSION_PATCH 0
#define VIGIL_VERSION_STRING "0.1.0"
/* (major << 16) | (minor << 8) | patch */
#define VIGIL_VERSION_HEX                                                    \
  ((VIGIL_VERSION_MAJOR << 16) | (VIGIL_VERSION_MINOR << 8) |                \
   VIGIL_VERSION_PATCH)

#if defined(__GNUC__) && __GNUC__ >= 4
#define VIGIL_EXPORT __attribute__((visibility("default")))
#else
#define VIGIL_EXPORT
#endif

/* Version of the library actually loaded (VIGIL_VERSION_HEX of its build). */
VIGIL_EXPORT unsigned vigil_version(void);
VIGIL_EXPORT const char *vigil_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors: negative codes, stable values, appended only.                    */
/* ------------------------------------------------------------------------ */

typedef enum vigil_err {
  VIGIL_OK = 0,
  VIGIL_EINVAL = -1,      /* invalid argument or policy */
  VIGIL_ENOMEM = -2,      /* out of memory */
  VIGIL_EBADF = -3,       /* fd is not open */
  VIGIL_ENOTSOCK = -4,    /* fd is not a socket */
  VIGIL_ENOTTCP = -5,     /* socket is not a TCP stream socket */
  VIGIL_ENOTCONN = -6,    /* socket is not connected */
  VIGIL_ECLOSED = -7,     /* conn is closing or closed */
  VIGIL_EOVERFLOW = -8,   /* output queue limit would be exceeded */
  VIGIL_ESYS = -9,        /* system call failed; see vigil_last_error() */
  VIGIL_EEXIST = -10,     /* already set / already exists */
  VIGIL_ENOENT = -11,     /* no such object */
  VIGIL_EPERM = -12,      /* not permitted (e.g. needs CAP_NET_ADMIN) */
  VIGIL_ENOTSUP = -13,    /* not supported by this kernel or build */
  VIGIL_ETLS = -14,       /* TLS library error */
  VIGIL_EREJECTED = -15,  /* identity claim rejected (takeover policy) */
  VIGIL_EBANNED = -16,    /* identity is in a flapping cool-down */
  VIGIL_EPROTO = -17,     /* malformed protocol input */
  VIGIL_EAGAIN = -18,     /* try again later */
  VIGIL_ESTATE = -19,     /* call not valid in the conn's current mode */
  VIGIL_EADDR = -20,      /* bad or unresolvable address */
} vigil_err;

/* Human-readable text for a vigil_err; never NULL. */
VIGIL_EXPORT const char *vigil_strerror(int err);
/* Stable symbolic name, e.g. "VIGIL_EINVAL"; never NULL. */
VIGIL_EXPORT const char *vigil_err_name(int err);

/*
 * Why a call failed, when a system call or OpenSSL said so. vigil records
 * it, per thread, wherever it returns an error that came from one: a
 * socket option the kernel refused (vigil_adopt, vigil_conn_set_policy,
 * vigil_socket_apply_policy), the checks of an adopted fd, a listener's
 * socket/bind/listen, the census's netlink and /proc reads, OpenSSL
 * refusing a certificate or key. A call that fails an argument check
 * leaves the record as it was; any other vigil call may replace it, so
 * read it right after the call that returned the error (its code says
 * which error it describes). errno is still set as before.
 */
typedef struct vigil_error_info {
  int code;            /* the vigil_err that call returned; VIGIL_OK = none
                          recorded yet on this thread */
  int sys_errno;       /* errno of the failed call; 0 for OpenSSL */
  const char *call;    /* the call, e.g. "setsockopt TCP_KEEPIDLE",
                          "bind", "SSL_CTX_use_PrivateKey_file"; "" = none */
  const char *message; /* e.g. "setsockopt TCP_KEEPIDLE: Invalid argument" */
} vigil_error_info;

/* The calling thread's last recorded error; never NULL. The record and its
 * strings are valid until the next vigil call on this thread. */
VIGIL_EXPORT const vigil_error_info *vigil_last_error(void);

/* ------------------------------------------------------------------------ */
/* Close reasons: exactly one per connection. Names are the log names.      */
/* ------------------------------------------------------------------------ */

typedef enum vigil_reason {
  VIGIL_REASON_NONE = 0,
  VIGIL_REASON_CLOSED_BY_HOST = 1,     /* vigil_close()/vigil_abort() */
  VIGIL_REASON_PEER_CLOSED = 2,        /* peer sent FIN (or close_notify) */
  VIGIL_REASON_PEER_RESET = 3,         /* ECONNRESET / EPIPE from peer */
  VIGIL_REASON_HEARTBEAT_TIMEOUT = 4,  /* nothing received for dead_after */
  VIGIL_REASON_KEEPALIVE_TIMEOUT = 5,  /* ETIMEDOUT, nothing unacked */
  VIGIL_REASON_USER_TIMEOUT = 6,       /* ETIMEDOUT with data unacked */
  VIGIL_REASON_IDLE_TIMEOUT = 7,       /* read/write/all idle, action close */
  VIGIL_REASON_HANDSHAKE_TIMEOUT = 8,  /* not ready within handshake_timeout */
  VIGIL_REASON_DRAIN_TIMEOUT = 9,      /* graceful close cut: no peer FIN */
  VIGIL_REASON_CLOSE_WAIT_TIMEOUT = 10,/* host did not close after peer FIN */
  VIGIL_REASON_IO_ERROR = 11,          /* other errno; see event sys_errno */
  VIGIL_REASON_OUTPUT_OVERFLOW = 12,   /* output_limit exceeded */
  VIGIL_REASON_SHUTDOWN = 13,          /* hub shutdown or hub free */
  VIGIL_REASON_TAKEOVER = 14,          /* displaced by a newer same identity */
  VIGIL_REASON_TAKEOVER_REJECTED = 15, /* refused: identity held (oldest_wins) */
  VIGIL_REASON_IDENTITY_BANNED = 16,   /* identity in flapping cool-down */
  VIGIL_REASON_PROTOCOL_ERROR = 17,    /* malformed frames */
  VIGIL_REASON_TLS_ERROR = 18,         /* OpenSSL failure */
  VIGIL_REASON_PING_FLOOD = 19,        /* pings faster than
                                          ping_min_interval_ms, past
                                          ping_strikes */
  VIGIL_REASON__COUNT
} vigil_reason;

/* Room reserved for close reasons in vigil_stats.closed: reasons are
 * appended without changing that struct's layout. */
#define VIGIL_REASON_CAPACITY 32

/* Log name, e.g. "heartbeat_timeout"; never NULL ("unknown" if invalid). */
VIGIL_EXPORT const char *vigil_reason_name(vigil_reason r);

/* ------------------------------------------------------------------------ */
/* Policy                                                                    */
/* ------------------------------------------------------------------------ */

/* user_timeout_ms special values */
#define VIGIL_USER_TIMEOUT_OFF 0
#define VIGIL_USER_TIMEOUT_AUTO (-1) /* (idle + intvl * cnt) * 1000 */

/* suspect_after_ms special value: dead_after_ms / 2 */
#define VIGIL_SUSPECT_AUTO UINT32_MAX

/* Upper bound for every *_ms duration field (24 h). */
#define VIGIL_MAX_DURATION_MS 86400000u

typedef enum vigil_idle_action {
  VIGIL_IDLE_NOTIFY = 0, /* on_idle callback + "idle" event, stay open */
  VIGIL_IDLE_CLOSE = 1,  /* graceful close with idle_timeout */
} vigil_idle_action;

typedef enum vigil_overflow_action {
  VIGIL_OVERFLOW_FAIL = 0,  /* vigil_send returns VIGIL_EOVERFLOW */
  VIGIL_OVERFLOW_CLOSE = 1, /* conn closes with output_overflow (RST) */
} vigil_overflow_action;

typedef enum vigil_takeover_mode {
  VIGIL_TAKEOVER_NEWEST_WINS = 0, /* old conn closes with takeover */
  VIGIL_TAKEOVER_OLDEST_WINS = 1, /* new conn closes takeover_rejected */
  VIGIL_TAKEOVER_ASK = 2,         /* hub on_takeover callback decides */
} vigil_takeover_mode;

/* Where a takeover's two conns lived: the "takeover" event's scope, the
 * per-scope counters of vigil_stats and the scope label of the takeover
 * metrics. Only ever appended. */
typedef enum vigil_takeover_scope {
  VIGIL_SCOPE_HUB = 0,     /* both on one hub */
  VIGIL_SCOPE_WORKER = 1,  /* two workers of one group (vigil/group.h) */
  VIGIL_SCOPE_CLUSTER = 2, /* two nodes (a cluster directory) */
  VIGIL_SCOPE__COUNT
} vigil_takeover_scope;

/* Room reserved for scopes in vigil_stats.takeovers_by_scope. */
#define VIGIL_SCOPE_CAPACITY 4

/* Log name: "hub", "worker", "cluster"; "unknown" if invalid. */
VIGIL_EXPORT const char *vigil_scope_name(vigil_takeover_scope s);

/* What a takeover found the displaced conn's peer to be (docs/ghosts.md):
 * the "takeover" event's and the displaced conn's "close" event's class,
 * the class label of vigil_takeovers_by_class_total. A ghost (evidence of
 * a gone path) is reset at once; a live peer (no such evidence) is closed
 * gracefully within a short bound, so its in-flight data is delivered.
 * Only ever appended. */
typedef enum vigil_peer_class {
  VIGIL_PEER_UNKNOWN = 0, /* not classified here (the displaced conn lives
                             on another worker or node: its own close
                             event carries the class) */
  VIGIL_PEER_GHOST = 1,
  VIGIL_PEER_LIVE = 2,
  VIGIL_PEER__COUNT
} vigil_peer_class;

/* Room reserved for classes in vigil_stats.takeovers_by_class. */
#define VIGIL_PEER_CAPACITY 4

/* Log name: "unknown", "ghost", "live"; "unknown" if invalid. */
VIGIL_EXPORT const char *vigil_peer_class_name(vigil_peer_class c);

/*
 * A plain struct. Always start from vigil_policy_init() so fields added in
 * later versions get their defaults. Durations in ms unless the name says
 * _s. docs/policy.md gives each default's source.
 */
typedef struct vigil_policy {
  /* Kernel keepalive: SO_KEEPALIVE + TCP_KEEPIDLE/KEEPINTVL/KEEPCNT. */
  int keepalive;             /* bool; default 1 */
  int keepalive_idle_s;      /* 1..32767; default 60 */
  int keepalive_intvl_s;     /* 1..32767; default 10 */
  int keepalive_cnt;         /* 1..127; default 6 */
  /* TCP_USER_TIMEOUT: VIGIL_USER_TIMEOUT_OFF, _AUTO, or 1..INT32_MAX ms.
   * Default AUTO: keepalive alone never fires while data is unacked. */
  int64_t user_timeout_ms;

  /* Application heartbeat. */
  uint32_t ping_interval_ms; /* nothing sent this long -> on_ping_due; 0=off */
  uint32_t dead_after_ms;    /* nothing received this long -> dead; 0=off */
  uint32_t suspect_after_ms; /* rx silence before tcp_info is read;
                                VIGIL_SUSPECT_AUTO (default) = dead_after/2;
                                0 = off */
  int suspect_ping;          /* bool: ask for a ping at once when suspect */

  /* Netty-style idle deadlines; 0 = off. */
  uint32_t read_idle_ms;
  uint32_t write_idle_ms;
  uint32_t all_idle_ms;
  vigil_idle_action idle_action; /* default VIGIL_IDLE_NOTIFY */

  /* From adoption until vigil_conn_ready(); 0 = off (conn is ready at
   * adoption). */
  uint32_t handshake_timeout_ms;

  /* Closing. */
  uint32_t drain_timeout_ms;    /* after our FIN, wait for peer FIN; also
                                   bounds a flush that makes no progress;
                                   0 = close right after our FIN; 5000 */
  uint32_t linger_max_ms;       /* cap on the whole graceful close; 0 = no
                                   cap (then drain_timeout_ms > 0); 30000 */
  uint32_t close_wait_grace_ms; /* after peer FIN, host has this long; 5000 */
  int fin_wait2_s;              /* TCP_LINGER2: 0 = kernel default, 1..120 */
  int abort_dead;               /* bool: RST confirmed-dead peers; 1 */

  /* Output queue beyond what the kernel accepted, in bytes; 1..1 GiB. */
  size_t output_limit;                   /* default 4 MiB */
  vigil_overflow_action overflow_action; /* default VIGIL_OVERFLOW_CLOSE */

  /* Identity takeover (vigil_conn_identify). */
  vigil_takeover_mode takeover;  /* default NEWEST_WINS */
  uint32_t flap_max;             /* takeovers per window before "flapping";
                                    0 = off (default); EMQX uses 15 */
  uint32_t flap_window_ms;       /* default 60000 */
  uint32_t flap_ban_ms;          /* refuse identity this long after flapping;
                                    0 = only report; default 300000 */

  /* Frame codec (vigil/frame.h); 0 = codec off (default). */
  int frame_codec;               /* bool */
  uint32_t max_frame;            /* max frame payload, 16..16 MiB; 65536 */

  /* TCP_NODELAY (bool; default 1, as nginx's tcp_nodelay): heartbeats and
   * game messages are small, and Nagle holding one back behind the peer's
   * delayed ACK costs ~40 ms. */
  int nodelay;

  /* Ping-flood guard (gRPC's ping strikes). A ping from the peer (the
   * frame codec's PING, or the host protocol's own ping reported with
   * vigil_conn_ping_received()) that comes less than ping_min_interval_ms
   * after the previous one is a strike; a ping at or past the interval
   * clears the strikes. One strike more than ping_strikes closes the conn
   * with reason ping_flood (the codec sends GOODBYE too_many_pings first).
   * 0 in either field = off. Defaults 10 ms and 2: gRPC's 5-minute minimum
   * suits browsers, not devices and games, whose pings measure RTT up to
   * tens of times a second; a flood (a client looping on PING) comes every
   * few microseconds and is cut on its third early ping, while anything at
   * 100 Hz or slower is never touched. */
  uint32_t ping_min_interval_ms; /* 0..86400000; default 10 */
  uint32_t ping_strikes;         /* 0..1000; default 2 */

  /* The longest a flow may stay idle on the network path before a NAT or
   * load balancer drops it (AWS NLB: 350 s; many home NATs: 60-300 s);
   * 0 = unknown (default). When set, validation refuses a policy whose
   * first keepalive probe or first application ping would come later, or
   * that sends neither, because such flows would die silently. */
  uint32_t path_idle_max_s;      /* 0..86400; default 0 */
} vigil_policy;

VIGIL_EXPORT void vigil_policy_init(vigil_policy *p);

/*
 * Checks every field. Returns VIGIL_OK, or VIGIL_EINVAL and writes a
 * message naming the first bad field and its allowed range, e.g.
 * "keepalive_cnt = 0 is out of range: allowed 1..127 (TCP_KEEPCNT)".
 * msg may be NULL.
 */
VIGIL_EXPORT int vigil_policy_validate(const vigil_policy *p, char *msg,
                                       size_t msglen);

/* The effective TCP_USER_TIMEOUT in ms for a policy (0 = not set). */
VIGIL_EXPORT uint32_t vigil_policy_user_timeout(const vigil_policy *p);

/* ------------------------------------------------------------------------ */
/* Socket-level helpers (work on any TCP socket, no hub needed)             */
/* ------------------------------------------------------------------------ */

/* Effective socket options, as read back from the kernel. */
typedef struct vigil_sockopts {
  int keepalive;            /* SO_KEEPALIVE */
  int keepalive_idle_s;     /* TCP_KEEPIDLE */
  int keepalive_intvl_s;    /* TCP_KEEPINTVL */
  int keepalive_cnt;        /* TCP_KEEPCNT */
  uint32_t user_timeout_ms; /* TCP_USER_TIMEOUT */
  int fin_wait2_s;          /* TCP_LINGER2 (kernel reports its default) */
  int nodelay;              /* TCP_NODELAY */
} vigil_sockopts;

/* Kernel TCP states, numbered as the kernel numbers them (tcp_states.h). */
typedef enum vigil_tcp_state {
  VIGIL_TCP_ESTABLISHED = 1,
  VIGIL_TCP_SYN_SENT = 2,
  VIGIL_TCP_SYN_RECV = 3,
  VIGIL_TCP_FIN_WAIT1 = 4,
  VIGIL_TCP_FIN_WAIT2 = 5,
  VIGIL_TCP_TIME_WAIT = 6,
  VIGIL_TCP_CLOSE = 7,
  VIGIL_TCP_CLOSE_WAIT = 8,
  VIGIL_TCP_LAST_ACK = 9,
  VIGIL_TCP_LISTEN = 10,
  VIGIL_TCP_CLOSING = 11,
  VIGIL_TCP_NEW_SYN_RECV = 12,
  VIGIL_TCP_STATE__COUNT
} vigil_tcp_state;

/* "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", ... as netstat prints them;
 * "UNKNOWN" otherwise. */
VIGIL_EXPORT const char *vigil_tcp_state_name(int state);

/* A TCP_INFO snapshot. Times are ms ago, as the kernel reports them. */
typedef struct vigil_tcp_info {
  int state;                  /* vigil_tcp_state */
  uint32_t rtt_us;
  uint32_t rttvar_us;
  uint32_t rto_us;
  uint32_t unacked;           /* segments sent and not acked */
  uint32_t retransmits;       /* current consecutive retransmits */
  uint32_t total_retrans;
  uint32_t backoff;
  uint32_t probes;            /* unanswered keepalive / zero-window probes */
  uint32_t last_data_sent_ms;
  uint32_t last_data_recv_ms;
  uint32_t last_ack_recv_ms;
  uint32_t snd_cwnd;
  uint32_t notsent_bytes;
} vigil_tcp_info;

/* Applies keepalive, TCP_USER_TIMEOUT and TCP_LINGER2 from the policy to a
 * TCP socket the host owns (asyncio, another framework...). */
VIGIL_EXPORT int vigil_socket_apply_policy(int fd, const vigil_policy *p);
VIGIL_EXPORT int vigil_socket_get_opts(int fd, vigil_sockopts *out);
VIGIL_EXPORT int vigil_socket_tcp_info(int fd, vigil_tcp_info *out);

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct vigil_hub vigil_hub;
typedef struct vigil_conn vigil_conn;
typedef struct vigil_listener vigil_listener;

/*
 * Connection states. The full diagram is in docs/close.md and src/close.c.
 *
 *   HANDSHAKE --ready--> OPEN --peer FIN--> CLOSE_WAIT --host close--+
 *       |                 |                      |                   |
 *       |               close/policy          grace expires          v
 *       +---------------> FLUSHING --queue empty, SHUT_WR--> DRAINING
 *                                                              |
 *        dead peer / error / abort: straight to CLOSED (RST)   | peer FIN,
 *                                                              v drain cut
 *                                                            CLOSED
 */
typedef enum vigil_conn_state {
  VIGIL_CONN_HANDSHAKE = 0, /* adopted, waiting for vigil_conn_ready() */
  VIGIL_CONN_OPEN = 1,
  VIGIL_CONN_CLOSE_WAIT = 2, /* peer sent FIN; host may still send */
  VIGIL_CONN_FLUSHING = 3,   /* closing: writing out queued output */
  VIGIL_CONN_DRAINING = 4,   /* our FIN sent; reading until peer FIN */
  VIGIL_CONN_CLOSED = 5,     /* on_close delivered or being delivered */
} vigil_conn_state;

VIGIL_EXPORT const char *vigil_conn_state_name(vigil_conn_state s);

typedef enum vigil_idle_kind {
  VIGIL_IDLE_READ = 1,
  VIGIL_IDLE_WRITE = 2,
  VIGIL_IDLE_ALL = 3,
} vigil_idle_kind;

VIGIL_EXPORT const char *vigil_idle_kind_name(vigil_idle_kind k);

/* ------------------------------------------------------------------------ */
/* Events and diagnostics                                                    */
/* ------------------------------------------------------------------------ */

typedef enum vigil_event_type {
  VIGIL_EV_OPEN = 1,           /* adopted: peer, sockopts */
  VIGIL_EV_PING_DUE = 2,       /* nothing sent for ping_interval */
  VIGIL_EV_IDLE = 3,           /* idle_kind */
  VIGIL_EV_DEAD = 4,           /* reason, ages, tcp_info */
  VIGIL_EV_PEER_FIN = 5,       /* peer half-closed */
  VIGIL_EV_DRAINING = 6,       /* our FIN sent, draining */
  VIGIL_EV_CLOSE = 7,          /* reason, cause, age, bytes */
  VIGIL_EV_ACCEPT_PAUSED = 8,  /* EMFILE/ENFILE: sys_errno, retry_ms */
  VIGIL_EV_ACCEPT_RESUMED = 9,
  VIGIL_EV_READY = 10,         /* handshake finished */
  VIGIL_EV_SUSPECT = 11,       /* tcp_info evidence of a gone path */
  VIGIL_EV_TAKEOVER = 12,      /* identity moved: conn + other_conn */
  VIGIL_EV_FLAPPING = 13,      /* identity flapping */
  VIGIL_EV_CENSUS = 14,        /* census counts */
  VIGIL_EV_GHOSTS = 15,        /* census threshold crossed */
  VIGIL_EV_SHUTDOWN = 16,      /* hub shutdown started / finished */
  VIGIL_EV_CLIENT = 17,        /* vigil_client: connect/backoff (detail) */
  VIGIL_EV_DIRECTORY_DOWN = 18,/* cluster directory unreachable (detail:
                                  why) */
  VIGIL_EV_DIRECTORY_UP = 19,  /* cluster directory reachable again; held
                                  identities are being re-asserted */
  VIGIL_EV_DIRECTORY_ERROR = 20, /* the cluster directory answered a claim
                                  with an error or a malformed reply
                                  (detail; conn = the claimant) */
  VIGIL_EV__COUNT
} vigil_event_type;

/* Log name: "open", "ping_due", "idle", "dead", ... */
VIGIL_EXPORT const char *vigil_event_name(vigil_event_type t);

/* Suspicion evidence bits (VIGIL_EV_SUSPECT). */
#define VIGIL_SUSPECT_UNACKED_RETRANS 0x1u /* unacked > 0 and retransmits */
#define VIGIL_SUSPECT_PROBES 0x2u          /* keepalive probes unanswered */
#define VIGIL_SUSPECT_ACK_SILENCE 0x4u     /* last ack far older than RTT */
/* Takeover evidence (VIGIL_EV_TAKEOVER, and VIGIL_EV_CLOSE with reason
 * takeover) uses the three bits above and these; any bit makes the
 * displaced peer a ghost (docs/ghosts.md gives the thresholds). */
#define VIGIL_EVIDENCE_PING_OUTSTANDING 0x8u /* a ping asked, nothing heard
                                                since, for a few RTTs */
#define VIGIL_EVIDENCE_SUSPECTED 0x10u  /* "suspect" raised since last rx */

/*
 * One structured event. Pointers are valid only during the callback.
 * Fields that do not apply to an event type are zero / NULL; the formatter
 * prints only the fields that apply.
 */
typedef struct vigil_event {
  vigil_event_type type;
  uint64_t ts_ms;        /* wall clock, ms since the Unix epoch */
  vigil_conn *conn;      /* NULL for hub-level events */
  uint64_t conn_id;      /* unique per hub, starts at 1; 0 = none */
  const char *peer;      /* "127.0.0.1:5000" or "[::1]:5000"; NULL = none */
  const char *identity;  /* set by vigil_conn_identify; NULL = none */
  vigil_reason reason;   /* close, dead */
  vigil_reason cause;    /* close: the trigger when reason is
                            drain_timeout; else NONE */
  uint64_t age_ms;       /* since adoption */
  int64_t last_rx_ms;    /* ms since last receive; -1 = never */
  int64_t last_tx_ms;    /* ms since last send; -1 = never */
  uint64_t bytes_in;
  uint64_t bytes_out;
  int sys_errno;         /* io_error, accept_paused */
  vigil_idle_kind idle_kind;
  uint32_t retry_ms;     /* accept_paused: next retry */
  const vigil_sockopts *sockopts; /* open: the options in effect, as
                                     vigil set them on the socket (or its
                                     listener, which passed them on);
                                     those the policy leaves to the kernel
                                     (LINGER2 with fin_wait2_s 0, the
                                     keepalive timings with keepalive off)
                                     read back */
  const vigil_tcp_info *tcp_info; /* dead, suspect; NULL if unavailable */
  uint32_t evidence;     /* suspect: VIGIL_SUSPECT_* bits; takeover, close
                            (reason takeover): VIGIL_SUSPECT_* and
                            VIGIL_EVIDENCE_* bits */
  uint64_t other_conn_id;/* takeover: the other connection */
  uint32_t count;        /* flapping: takeovers in window; ghosts: count */
  const uint32_t *state_counts; /* census: VIGIL_TCP_STATE__COUNT entries */
  int truncated;         /* close (TLS): peer closed without close_notify */
  int tls_resumed;       /* open (TLS): -1 n/a, 0 full, 1 resumed */
  const char *detail;    /* free text: protocol error, TLS reason... */
  int32_t worker;        /* index of the group worker whose hub emitted
                            the event (vigil/group.h); VIGIL_WORKER_NONE
                            outside a group. An event built by hand must
                            set it: 0 is worker 0 */
  vigil_takeover_scope scope; /* takeover: where the displaced conn lived
                            (hub: this hub; worker: another worker of
                            the group, other_worker) */
  int32_t other_worker;  /* takeover: the displaced conn's worker;
                            VIGIL_WORKER_NONE outside a group */
  vigil_peer_class peer_class; /* takeover (hub scope), close with
                            reason takeover: what the displaced conn's
                            peer was found to be; evidence holds the
                            VIGIL_SUSPECT_* / VIGIL_EVIDENCE_* bits */
  const char *other_node;/* takeover with scope cluster: the node whose
                            claim displaced conn (vigil/cluster.h). Such
                            an event is emitted on the displaced conn's
                            node: conn is the displaced conn, and
                            other_conn_id 0 (a conn id of another node
                            means nothing here); NULL otherwise */
} vigil_event;

/* vigil_event.worker of a hub that is not in a group. */
#define VIGIL_WORKER_NONE (-1)

typedef void (*vigil_event_cb)(vigil_hub *hub, const vigil_event *ev,
                               void *user_data);

typedef enum vigil_log_format {
  VIGIL_LOG_LOGFMT = 0,
  VIGIL_LOG_JSON = 1,
} vigil_log_format;

/*
 * Renders one event as one line (no trailing newline), like snprintf:
 * returns the length the full line needs; the output is truncated and
 * NUL-terminated when buflen is too small. Field names are stable
 * snake_case: ts event conn peer reason age_ms last_rx_ms ...
 */
VIGIL_EXPORT int vigil_event_format(const vigil_event *ev,
                                    vigil_log_format fmt, char *buf,
                                    size_t buflen);

/* ------------------------------------------------------------------------ */
/* Hub                                                                       */
/* ------------------------------------------------------------------------ */

/* A clock in milliseconds (vigil_hub_options.clock, .wall_clock). */
typedef uint64_t (*vigil_clock_fn)(void *clock_data);

/*
 * ASK-mode takeover decision: return 1 to let the new conn win (the old
 * closes with takeover), 0 to keep the old (the new closes with
 * takeover_rejected). Runs on the claimant's hub (new_conn's thread).
 *
 * In a group (vigil/group.h) the holder may live on another worker: then
 * old_conn is NULL (a conn of another thread must not be touched), and
 * that is how the callback tells; new_conn and the identity
 * (vigil_conn_identity(new_conn)) are known either way. The holder may
 * change while the callback runs (it may close on its own worker, or be
 * displaced by yet another claim), so the answer is checked against the
 * directory afterwards: it applies only if the same holder is still live;
 * if the identity became free, the claim simply succeeds; if another conn
 * holds it now, the callback is asked again about that one (at most 8
 * times in all, after which the claim is refused).
 */
typedef int (*vigil_takeover_cb)(vigil_hub *hub, vigil_conn *old_conn,
                                 vigil_conn *new_conn, void *user_data);

typedef struct vigil_hub_options {
  const vigil_policy *policy; /* copied; NULL = vigil_policy_init() */
  uint32_t tick_ms;           /* deadline granularity, 1..1000; 10 */
  uint32_t expire_batch;      /* max expiries handled per loop iteration
                                 before yielding to I/O; 0 = unlimited;
                                 default 256: at 5-12 us per expiry
                                 (a ping or an RST close) that keeps a
                                 loop turn near 3 ms when 10,000
                                 deadlines fall in one tick */
  vigil_event_cb on_event;    /* diagnostics sink; NULL = none */
  void *event_data;
  vigil_clock_fn clock;       /* monotonic ms for every deadline; NULL =
                                 CLOCK_MONOTONIC (not ev_now(), which
                                 follows the wall clock's steps). Tests
                                 inject a fake one */
  void *clock_data;
  vigil_takeover_cb on_takeover; /* for VIGIL_TAKEOVER_ASK */
  void *takeover_data;
  uint32_t census_interval_ms;/* periodic census: census/ghosts events
                                 and the census metrics (vigil/metrics.h);
                                 0 = off */
  uint32_t ghost_threshold;   /* ghosts event when census finds more */
  vigil_clock_fn wall_clock;  /* ms since the Unix epoch for events' ts_ms;
                                 NULL = CLOCK_REALTIME */
  void *wall_clock_data;
  const struct vigil_cluster_options *cluster; /* an identity directory
                                 across nodes (vigil/cluster.h), copied;
                                 NULL = none (default). VIGIL_EINVAL if
                                 invalid, VIGIL_ENOTSUP in a build without
                                 hiredis */
} vigil_hub_options;

VIGIL_EXPORT void vigil_hub_options_init(vigil_hub_options *o);

/* One hub per ev_loop. Returns VIGIL_OK and *out, or an error (an invalid
 * policy gives VIGIL_EINVAL; the message is available through
 * vigil_policy_validate). */
VIGIL_EXPORT int vigil_hub_new(struct ev_loop *loop,
                               const vigil_hub_options *opts,
                               vigil_hub **out);

/* Closes every connection at once (on_close with reason shutdown, plain
 * close), closes listeners, detaches clients and frees the hub. Safe from
 * a callback: the free is deferred until control is back in the loop (see
 * Re-entrancy at the top). */
VIGIL_EXPORT void vigil_hub_free(vigil_hub *hub);

typedef void (*vigil_shutdown_cb)(vigil_hub *hub, void *user_data);

/* Stops listeners, closes every connection gracefully (reason shutdown),
 * aborts what is still open after deadline_ms, then calls done (which may
 * free the hub). */
VIGIL_EXPORT int vigil_hub_shutdown(vigil_hub *hub, uint32_t deadline_ms,
                                    vigil_shutdown_cb done, void *user_data);

VIGIL_EXPORT struct ev_loop *vigil_hub_loop(vigil_hub *hub);
/* The policy for conns adopted from now on; valid until the next
 * vigil_hub_set_policy(). */
VIGIL_EXPORT const vigil_policy *vigil_hub_policy(vigil_hub *hub);
/* Replaces the default policy for conns adopted from now on (and for
 * listeners without a policy of their own, at their next accept). Live
 * conns keep the policy they were adopted with: their socket options,
 * frame codec and output limit were set up for it; change a live conn's
 * policy with vigil_conn_set_policy(). */
VIGIL_EXPORT int vigil_hub_set_policy(vigil_hub *hub, const vigil_policy *p);
/* The hub's notion of now (monotonic ms). */
VIGIL_EXPORT uint64_t vigil_hub_now(vigil_hub *hub);

typedef struct vigil_stats {
  uint64_t open;       /* connections open now */
  uint64_t opened;     /* adopted since hub creation */
  uint64_t closed[VIGIL_REASON_CAPACITY]; /* per reason (entries past
                                             VIGIL_REASON__COUNT are 0) */
  uint64_t bytes_in;
  uint64_t bytes_out;
  uint64_t accept_paused; /* times accepting was paused */
  uint64_t takeovers;     /* conns of this hub displaced by a newer claim
                             of their identity (closed with reason
                             takeover): the sum of takeovers_by_scope */
  uint64_t takeovers_by_scope[VIGIL_SCOPE_CAPACITY]; /* by where the
                             claim was made: [VIGIL_SCOPE_HUB] on this
                             hub, [VIGIL_SCOPE_WORKER] on another worker
                             of the group (entries past VIGIL_SCOPE__COUNT
                             are 0) */
  uint64_t takeovers_by_class[VIGIL_PEER_CAPACITY]; /* the same by what
                             the displaced conn's peer was found to be:
                             [VIGIL_PEER_GHOST] reset at once,
                             [VIGIL_PEER_LIVE] closed gracefully within
                             the takeover bound (docs/ghosts.md) */
} vigil_stats;

VIGIL_EXPORT void vigil_hub_stats(vigil_hub *hub, vigil_stats *out);

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

typedef struct vigil_conn_callbacks {
  /* Bytes received (vigil-owned I/O mode). */
  void (*on_data)(vigil_conn *c, const void *data, size_t len, void *ud);
  /* Nothing sent for ping_interval: send the protocol's ping now. */
  void (*on_ping_due)(vigil_conn *c, void *ud);
  /* An idle deadline passed with idle_action NOTIFY. */
  void (*on_idle)(vigil_conn *c, vigil_idle_kind kind, void *ud);
  /* Peer sent FIN. The host may still send, then must vigil_close()
   * within close_wait_grace. */
  void (*on_peer_closed)(vigil_conn *c, void *ud);
  /* Exactly once. The handle is invalid after this returns. */
  void (*on_close)(vigil_conn *c, vigil_reason reason, void *ud);
  /* Frame codec only (policy.frame_codec): the peer's HELLO identity.
   * With the codec on, on_data receives DATA payloads, one frame per call;
   * PING/PONG/GOODBYE are handled by vigil. */
  void (*on_hello)(vigil_conn *c, const void *id, size_t len, void *ud);
} vigil_conn_callbacks;

typedef struct vigil_adopt_options {
  const vigil_policy *policy;      /* NULL = hub policy; copied */
  const vigil_conn_callbacks *callbacks; /* copied; NULL = none */
  void *user_data;                 /* passed to every callback */
  int watch_only;   /* bool: host does its own I/O; vigil applies options,
                       keeps deadlines, probes and closes. The host reports
                       activity with vigil_conn_touch_rx/tx and EOF with
                       vigil_conn_peer_eof, and must stop its own watchers
                       in on_close. */
  /* TLS (vigil/tls.h); tls_ctx NULL = plain TCP. Not with watch_only. */
  struct ssl_ctx_st *tls_ctx; /* host's SSL_CTX; each conn takes a ref */
  int tls_client;             /* bool: client role; default server */
  const char *tls_sni;        /* client: server name sent (SNI) and
                                 verified; an IP literal is verified as an
                                 IP address and not sent; copied */
  const struct vigil_tls_options *tls; /* NULL = vigil_tls_options_init() */
} vigil_adopt_options;

VIGIL_EXPORT void vigil_adopt_options_init(vigil_adopt_options *o);

/*
 * Adopts a connected TCP socket (IPv4 or IPv6). It is made non-blocking.
 * On success vigil owns fd. Errors: VIGIL_EBADF (not open), VIGIL_ENOTSOCK,
 * VIGIL_ENOTTCP (e.g. UDP), VIGIL_ENOTCONN, VIGIL_EINVAL (bad policy or
 * options, or the hub is being freed), VIGIL_ENOMEM, VIGIL_ETLS, VIGIL_ENOTSUP
 * (a tls_ctx in a build without TLS), or the error of a socket option the
 * kernel refused (VIGIL_ENOTSUP...; vigil_last_error() names it). On error
 * the fd is untouched and still the caller's: every check runs before the
 * fd is changed, and if the kernel refuses a socket option, the flags and
 * options already changed are put back.
 */
VIGIL_EXPORT int vigil_adopt(vigil_hub *hub, int fd,
                             const vigil_adopt_options *opts,
                             vigil_conn **out);

/* Queues bytes: writes what the kernel takes now, queues the rest and
 * flushes on writability. VIGIL_ECLOSED once closing started (except in
 * CLOSE_WAIT, where the host may still reply) or the hub is being freed,
 * VIGIL_EOVERFLOW when queued + len would exceed output_limit (any len;
 * the conn closes with output_overflow under overflow_action CLOSE). In
 * watch_only mode returns VIGIL_ESTATE. */
VIGIL_EXPORT int vigil_send(vigil_conn *c, const void *data, size_t len);

/* Graceful close: flush, shutdown(SHUT_WR), drain until peer FIN or
 * drain_timeout/linger_max, close(). Reason closed_by_host (peer_closed if
 * the peer had already closed). Idempotent. */
VIGIL_EXPORT int vigil_close(vigil_conn *c);

/* Graceful close like vigil_close, with a reason the host chooses (e.g.
 * protocol_error for malformed input, peer_closed for a protocol-level
 * goodbye such as MQTT DISCONNECT) and an optional detail for the close
 * event (copied). The first close decision still wins: on a conn already
 * closing this changes nothing. VIGIL_EINVAL for NONE or an unknown
 * reason. */
VIGIL_EXPORT int vigil_close_ex(vigil_conn *c, vigil_reason reason,
                                const char *detail);

/* Abortive close now: RST via SO_LINGER {1,0}; queued output is dropped.
 * Reason closed_by_host. */
VIGIL_EXPORT int vigil_abort(vigil_conn *c);

/* Abortive close now (RST, queued output dropped) with reason io_error and
 * err (an errno value, 0 = none) as the close event's sys_errno. For hosts
 * and bindings whose own handling of the connection failed, e.g. a Python
 * callback that raised: the stream state is unknown, so the peer gets RST.
 * A watch-only host that read or wrote the socket itself passes the errno
 * it got: ECONNRESET and EPIPE close with reason peer_reset, ETIMEDOUT
 * with keepalive_timeout or user_timeout (what the kernel gave up on), as
 * vigil's own I/O would.
 * No effect once closed; a conn already closing keeps its first reason. */
VIGIL_EXPORT int vigil_conn_fail(vigil_conn *c, int err);

/* Marks the handshake done (stops handshake_timeout). VIGIL_ESTATE while
 * the conn's TLS handshake is still running (vigil/tls.h). */
VIGIL_EXPORT int vigil_conn_ready(vigil_conn *c);

/* Per-connection policy override; the socket options that differ from
 * the conn's previous policy are written and deadlines re-evaluated at
 * once. */
VIGIL_EXPORT int vigil_conn_set_policy(vigil_conn *c, const vigil_policy *p);
VIGIL_EXPORT const vigil_policy *vigil_conn_policy(vigil_conn *c);

/* Watch-only mode activity reports (also valid in owned mode). */
VIGIL_EXPORT void vigil_conn_touch_rx(vigil_conn *c, size_t bytes);
VIGIL_EXPORT void vigil_conn_touch_tx(vigil_conn *c, size_t bytes);
/* Watch-only: the host read EOF (peer FIN). */
VIGIL_EXPORT void vigil_conn_peer_eof(vigil_conn *c);

/* The peer sent its protocol's ping (MQTT PINGREQ, a WebSocket ping, a
 * "PING" line...), for hosts whose protocol vigil does not parse (the
 * frame codec counts its own PINGs): feeds the ping-flood guard (policy
 * ping_min_interval_ms, ping_strikes). Call it once per ping, before
 * answering. Returns VIGIL_OK: answer it; VIGIL_ECLOSED: do not answer,
 * this ping was one strike too many and the conn now closes gracefully
 * with reason ping_flood (close event detail e.g. "ping flood: 4 pings in
 * 3 ms (1333/s), minimum interval 100 ms"), or the conn was closing
 * already; VIGIL_EINVAL (c NULL); VIGIL_ENOMEM (the guard's state, a few
 * bytes allocated on a conn's first ping; the conn is untouched). Always
 * VIGIL_OK while open when either policy field is 0. Valid in owned and
 * watch-only mode. */
VIGIL_EXPORT int vigil_conn_ping_received(vigil_conn *c);

/* Identity claim (device id, MQTT client id...). See VIGIL_TAKEOVER_*.
 * Returns VIGIL_OK, VIGIL_EREJECTED (this conn is closing with
 * takeover_rejected), VIGIL_EBANNED (closing with identity_banned) or
 * VIGIL_EEXIST (this conn already has an identity); also VIGIL_EINVAL
 * (NULL, empty or over 65535 bytes), VIGIL_ECLOSED (the conn is closing or
 * its peer already sent FIN: a leaving conn never displaces a live one)
 * and VIGIL_ENOMEM. Under NEWEST_WINS the displaced conn is closed before
 * this returns when it lives on the same hub; in a group (vigil/group.h)
 * a holder on another worker is closed by that worker right after (its
 * mailbox), and only if it still holds the identity at the epoch this
 * claim displaced. Identities, flapping and bans are group-wide. Any
 * bytes are allowed; the identity is kept
 * NUL-terminated, so text views (vigil_conn_identity, events) stop at an
 * embedded NUL and logs escape the rest. */
VIGIL_EXPORT int vigil_conn_identify(vigil_conn *c, const void *id,
                                     size_t len);
/* The identity this conn claimed (also when the claim was refused), or
 * NULL. */
VIGIL_EXPORT const char *vigil_conn_identity(vigil_conn *c);
/* The live conn of this hub holding an identity, or NULL (also when a
 * conn of another worker of the group holds it). */
VIGIL_EXPORT vigil_conn *vigil_hub_find_identity(vigil_hub *hub,
                                                 const void *id, size_t len);

VIGIL_EXPORT int vigil_conn_fd(vigil_conn *c);
VIGIL_EXPORT uint64_t vigil_conn_id(vigil_conn *c);
VIGIL_EXPORT const char *vigil_conn_peer(vigil_conn *c);
VIGIL_EXPORT vigil_hub *vigil_conn_hub(vigil_conn *c);
VIGIL_EXPORT vigil_conn_state vigil_conn_get_state(vigil_conn *c);
VIGIL_EXPORT void *vigil_conn_user_data(vigil_conn *c);
VIGIL_EXPORT void vigil_conn_set_user_data(vigil_conn *c, void *ud);
VIGIL_EXPORT size_t vigil_conn_queued(vigil_conn *c);
VIGIL_EXPORT int vigil_conn_sockopts(vigil_conn *c, vigil_sockopts *out);
VIGIL_EXPORT int vigil_conn_tcp_info(vigil_conn *c, vigil_tcp_info *out);

/* ------------------------------------------------------------------------ */
/* Listener helper                                                           */
/* ------------------------------------------------------------------------ */

typedef void (*vigil_accept_cb)(vigil_listener *l, vigil_conn *c,
                                void *user_data);

typedef struct vigil_listen_options {
  const char *host;        /* numeric IPv4/IPv6 or name; NULL = "0.0.0.0" */
  uint16_t port;           /* 0 = ephemeral; see vigil_listener_port */
  int backlog;             /* default 511 */
  int reuseport;           /* bool: SO_REUSEPORT (SO_REUSEADDR always) */
  vigil_adopt_options adopt; /* applied to every accepted conn */
  vigil_accept_cb on_accept; /* after adoption, before any read */
  void *accept_data;
  uint32_t emfile_backoff_min_ms; /* default 50 */
  uint32_t emfile_backoff_max_ms; /* default 2000 */
} vigil_listen_options;

VIGIL_EXPORT void vigil_listen_options_init(vigil_listen_options *o);

/* Binds, listens and accepts on the hub's loop. The policy's socket
 * options (adopt.policy, else the hub's) are set on the listening socket,
 * which Linux copies to every socket it accepts: accepted conns write
 * only the options their policy wants otherwise (after
 * vigil_hub_set_policy, say). On EMFILE/ENFILE it pauses
 * accepting, retries with exponential backoff and emits accept_paused /
 * accept_resumed. Errors: VIGIL_EINVAL, VIGIL_EADDR (bad address, in use),
 * VIGIL_ENOTSUP (SO_REUSEPORT, or a tls_ctx in a build without TLS),
 * VIGIL_ENOMEM, VIGIL_ESYS and mapped errnos of socket()/getsockname();
 * vigil_last_error() names the call that failed. */
VIGIL_EXPORT int vigil_listen(vigil_hub *hub, const vigil_listen_options *o,
                              vigil_listener **out);
VIGIL_EXPORT uint16_t vigil_listener_port(vigil_listener *l);
VIGIL_EXPORT int vigil_listener_fd(vigil_listener *l);
/* Stops accepting and closes the socket now; the handle is freed once no
 * vigil code is on the stack. Conns it accepted are not affected. */
VIGIL_EXPORT void vigil_listener_close(vigil_listener *l);

/* ------------------------------------------------------------------------ */
/* Hub census: ghost sockets on the hub's ports (see vigil/census.h)        */
/* ------------------------------------------------------------------------ */

/*
 * What a census of the hub's ports found. The ports are the local ports of
 * the hub's listeners and live conns; a census sees the network namespace
 * of the calling thread. All fields [out].
 *
 * Ghosts are sockets that no vigil deadline will ever end:
 *  - leaked: ESTABLISHED, held by an fd of this process, but not by any
 *    vigil conn (matched by socket inode): an fd the host forgot;
 *  - close_wait_stale: CLOSE_WAIT, held by this process, not a vigil conn
 *    (vigil's own never outlive close_wait_grace), and first seen by an
 *    earlier census at least the hub policy's close_wait_grace ago. The
 *    kernel keeps no age for CLOSE_WAIT, so the hub remembers the socket
 *    cookies it saw: a pile-up counts from the second census that sees it;
 *  - orphans: FIN_WAIT1, FIN_WAIT2, CLOSING or LAST_ACK with no fd left
 *    (inode 0), typically a FIN sent to a dead peer and retransmitted.
 * TIME_WAIT is normal (it ends by itself after 60 s) and never a ghost.
 */
typedef struct vigil_hub_census_report {
  uint32_t counts[VIGIL_TCP_STATE__COUNT]; /* sockets on the ports, any
                                            owner, per vigil_tcp_state */
  uint32_t total;            /* sum of counts */
  uint32_t nports;           /* distinct local ports examined */
  uint32_t conns;            /* live vigil conns of the hub */
  uint32_t close_wait_unowned; /* CLOSE_WAIT held by this process but by
                                no vigil conn, any age */
  uint32_t close_wait_stale; /* of those, seen for >= close_wait_grace */
  uint32_t leaked;           /* ESTABLISHED, this process, no vigil conn */
  uint32_t orphans;          /* orphan states with no fd */
  uint32_t ghosts;           /* leaked + close_wait_stale + orphans */
} vigil_hub_census_report;

/*
 * Takes a census of the hub's ports now. Costs one sock_diag dump of the
 * machine's TCP sockets, one scan of /proc/self/fd and two system calls
 * per live conn: run it every few seconds at most, not per event. With
 * hub option census_interval_ms the hub runs it on a timer and emits
 * "census" (state counts) and, when ghosts > ghost_threshold, "ghosts".
 * Every successful census, periodic or called, becomes the vigil_sockets
 * and vigil_ghosts metrics (vigil/metrics.h).
 * The census runs on the caller's thread, normally the loop's: it waits at
 * most 100 ms for each part of the kernel's answer (the kernel builds it
 * as it is read, so this only matters if the kernel stops answering) and
 * then gives up with VIGIL_EAGAIN. Returns VIGIL_OK, VIGIL_EINVAL,
 * VIGIL_EAGAIN, or an error of vigil_census_run().
 */
VIGIL_EXPORT int vigil_hub_census(vigil_hub *hub,
                                  vigil_hub_census_report *out);

#ifdef __cplusplus
}
#endif

/* Feature headers: census, frame codec, client, TLS, metrics, groups. */
#include "vigil/census.h"
#include "vigil/frame.h"
#include "vigil/client.h"
#include "vigil/tls.h"
#include "vigil/metrics.h"
#include "vigil/group.h"
#include "vigil/cluster.h"

#endif /* VIGIL_H */
