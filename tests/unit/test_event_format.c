/*
 * vigil_event_format: exact lines for every event type in logfmt and JSON,
 * escaping of hostile strings, snprintf-style truncation, and bad input.
 *
 * Every JSON line is checked by a strict RFC 8259 parser (including UTF-8
 * well-formedness and duplicate keys) and every logfmt line by a logfmt
 * parser (tests/support/linecheck.c), so a formatter change that breaks
 * parseability fails even where no exact line is pinned.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "linecheck.h"
#include "testutil.h"
#include "vigil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* 1795251600123 ms = 2026-11-21T09:00:00.123Z (1795251600 s is 20778
 * days + 32400 s after the epoch; day 20778 is 2026-11-21). */
#define TS 1795251600123ull
#define TSL "ts=2026-11-21T09:00:00.123Z"
#define TSJ "{\"ts\":\"2026-11-21T09:00:00.123Z\""
/* Events vigil builds outside a group carry worker VIGIL_WORKER_NONE; a
 * hand-built event must say so (0 is worker 0). */
#define NW .worker = VIGIL_WORKER_NONE
#define BASE NW, .ts_ms = TS, .conn_id = 7, .peer = "127.0.0.1:5000"
#define CPL " conn=7 peer=127.0.0.1:5000"
#define CPJ ",\"conn\":7,\"peer\":\"127.0.0.1:5000\""

/* ======================================================================== */
/* Exact lines per event type                                               */
/* ======================================================================== */

static const vigil_sockopts so_default = {
    .keepalive = 1, .keepalive_idle_s = 60, .keepalive_intvl_s = 10,
    .keepalive_cnt = 6, .user_timeout_ms = 120000, .fin_wait2_s = 60,
    .nodelay = 1};

static const vigil_tcp_info ti_stuck = {
    .state = VIGIL_TCP_ESTABLISHED, .rtt_us = 250, .rttvar_us = 125,
    .rto_us = 204000, .unacked = 3, .retransmits = 5, .total_retrans = 9,
    .backoff = 4, .probes = 0, .last_data_sent_ms = 29500,
    .last_data_recv_ms = 30005, .last_ack_recv_ms = 29000, .snd_cwnd = 1,
    .notsent_bytes = 0};

static const vigil_tcp_info ti_close_wait = {
    .state = VIGIL_TCP_CLOSE_WAIT, .rtt_us = 40, .rttvar_us = 20,
    .probes = 2, .last_data_recv_ms = 7, .last_ack_recv_ms = 8};

static const uint32_t census_counts[VIGIL_TCP_STATE__COUNT] = {
    [0] = 1, /* not a kernel state: keyed state_0 */
    [VIGIL_TCP_ESTABLISHED] = 5,
    [VIGIL_TCP_TIME_WAIT] = 7,
    [VIGIL_TCP_CLOSE_WAIT] = 2,
    [VIGIL_TCP_LISTEN] = 1,
    [VIGIL_TCP_NEW_SYN_RECV] = 4294967295u,
};

static const uint32_t census_zero[VIGIL_TCP_STATE__COUNT] = {0};

struct line_case {
  const char *label;
  vigil_event ev;
  const char *logfmt;
  const char *json;
};

static const struct line_case line_cases[] = {
    {"open with sockopts",
     {.type = VIGIL_EV_OPEN, BASE, .sockopts = &so_default,
      .tls_resumed = -1},
     TSL " event=open" CPL " keepalive=1 keepalive_idle_s=60"
         " keepalive_intvl_s=10 keepalive_cnt=6 user_timeout_ms=120000"
         " fin_wait2_s=60 nodelay=1",
     TSJ ",\"event\":\"open\"" CPJ ",\"keepalive\":1,\"keepalive_idle_s\":60,"
         "\"keepalive_intvl_s\":10,\"keepalive_cnt\":6,"
         "\"user_timeout_ms\":120000,\"fin_wait2_s\":60,\"nodelay\":1}"},
    /* A zero-initialised event has tls_resumed 0: not a TLS conn. */
    {"open zero-initialised",
     {NW, .type = VIGIL_EV_OPEN, .ts_ms = TS, .conn_id = 1},
     TSL " event=open conn=1",
     TSJ ",\"event\":\"open\",\"conn\":1}"},
    /* Worker of a group: printed right after the event name, also for
     * worker 0, which is also what a zero-initialised event says. */
    {"open on worker 3",
     {.type = VIGIL_EV_OPEN, .worker = 3, .ts_ms = TS, .conn_id = 7,
      .peer = "127.0.0.1:5000", .tls_resumed = -1},
     TSL " event=open worker=3" CPL,
     TSJ ",\"event\":\"open\",\"worker\":3" CPJ "}"},
    {"shutdown on worker 0",
     {.type = VIGIL_EV_SHUTDOWN, .ts_ms = TS, .worker = 0,
      .detail = "done"},
     TSL " event=shutdown worker=0 detail=done",
     TSJ ",\"event\":\"shutdown\",\"worker\":0,\"detail\":\"done\"}"},
    {"zero-initialised is worker 0",
     {.type = VIGIL_EV_READY, .ts_ms = TS, .conn_id = 2},
     TSL " event=ready worker=0 conn=2 age_ms=0",
     TSJ ",\"event\":\"ready\",\"worker\":0,\"conn\":2,\"age_ms\":0}"},
    {"worker out of range below -1 is not printed",
     {.type = VIGIL_EV_GHOSTS, .ts_ms = TS, .worker = INT32_MIN, .count = 1},
     TSL " event=ghosts count=1",
     TSJ ",\"event\":\"ghosts\",\"count\":1}"},
    {"open tls resumed",
     {.type = VIGIL_EV_OPEN, BASE, .tls_resumed = 1},
     TSL " event=open" CPL " tls_resumed=1",
     TSJ ",\"event\":\"open\"" CPJ ",\"tls_resumed\":1}"},
    {"open tls full handshake",
     {.type = VIGIL_EV_OPEN, BASE, .tls_resumed = 0, .detail = "tls"},
     TSL " event=open" CPL " tls_resumed=0 detail=tls",
     TSJ ",\"event\":\"open\"" CPJ ",\"tls_resumed\":0,\"detail\":\"tls\"}"},
    {"open tls n/a",
     {.type = VIGIL_EV_OPEN, BASE, .tls_resumed = -1, .detail = "tls"},
     TSL " event=open" CPL " detail=tls",
     TSJ ",\"event\":\"open\"" CPJ ",\"detail\":\"tls\"}"},
    {"ping_due",
     {.type = VIGIL_EV_PING_DUE, BASE, .last_tx_ms = 15000,
      .last_rx_ms = 3, .age_ms = 99},
     TSL " event=ping_due" CPL " last_tx_ms=15000",
     TSJ ",\"event\":\"ping_due\"" CPJ ",\"last_tx_ms\":15000}"},
    {"ping_due never sent, extreme",
     {.type = VIGIL_EV_PING_DUE, BASE, .last_tx_ms = INT64_MIN},
     TSL " event=ping_due" CPL " last_tx_ms=-9223372036854775808",
     TSJ ",\"event\":\"ping_due\"" CPJ
         ",\"last_tx_ms\":-9223372036854775808}"},
    {"idle read, never received",
     {.type = VIGIL_EV_IDLE, BASE, .identity = "dev-42",
      .idle_kind = VIGIL_IDLE_READ, .last_rx_ms = -1, .last_tx_ms = 5},
     TSL " event=idle" CPL " identity=dev-42 idle=read last_rx_ms=-1"
         " last_tx_ms=5",
     TSJ ",\"event\":\"idle\"" CPJ ",\"identity\":\"dev-42\",\"idle\":\"read\","
         "\"last_rx_ms\":-1,\"last_tx_ms\":5}"},
    {"idle all",
     {.type = VIGIL_EV_IDLE, BASE, .idle_kind = VIGIL_IDLE_ALL,
      .last_rx_ms = 60000, .last_tx_ms = 60001},
     TSL " event=idle" CPL " idle=all last_rx_ms=60000 last_tx_ms=60001",
     TSJ ",\"event\":\"idle\"" CPJ ",\"idle\":\"all\",\"last_rx_ms\":60000,"
         "\"last_tx_ms\":60001}"},
    {"dead with tcp_info",
     {.type = VIGIL_EV_DEAD, BASE, .reason = VIGIL_REASON_HEARTBEAT_TIMEOUT,
      .age_ms = 30012, .last_rx_ms = 30005, .last_tx_ms = 12,
      .tcp_info = &ti_stuck},
     TSL " event=dead" CPL " reason=heartbeat_timeout age_ms=30012"
         " last_rx_ms=30005 last_tx_ms=12 tcp_state=ESTABLISHED rtt_us=250"
         " rttvar_us=125 unacked=3 retransmits=5 backoff=4 probes=0"
         " last_data_recv_ms=30005 last_ack_recv_ms=29000",
     TSJ ",\"event\":\"dead\"" CPJ ",\"reason\":\"heartbeat_timeout\","
         "\"age_ms\":30012,\"last_rx_ms\":30005,\"last_tx_ms\":12,"
         "\"tcp_state\":\"ESTABLISHED\",\"rtt_us\":250,\"rttvar_us\":125,"
         "\"unacked\":3,\"retransmits\":5,\"backoff\":4,\"probes\":0,"
         "\"last_data_recv_ms\":30005,\"last_ack_recv_ms\":29000}"},
    {"dead without tcp_info",
     {.type = VIGIL_EV_DEAD, BASE, .reason = VIGIL_REASON_USER_TIMEOUT,
      .age_ms = 900000, .last_rx_ms = 899000, .last_tx_ms = -1},
     TSL " event=dead" CPL " reason=user_timeout age_ms=900000"
         " last_rx_ms=899000 last_tx_ms=-1",
     TSJ ",\"event\":\"dead\"" CPJ ",\"reason\":\"user_timeout\","
         "\"age_ms\":900000,\"last_rx_ms\":899000,\"last_tx_ms\":-1}"},
    {"suspect with all evidence",
     {.type = VIGIL_EV_SUSPECT, BASE, .age_ms = 20000, .last_rx_ms = 15000,
      .last_tx_ms = 10, .tcp_info = &ti_stuck,
      .evidence = VIGIL_SUSPECT_UNACKED_RETRANS | VIGIL_SUSPECT_PROBES |
                  VIGIL_SUSPECT_ACK_SILENCE},
     TSL " event=suspect" CPL " age_ms=20000 last_rx_ms=15000 last_tx_ms=10"
         " tcp_state=ESTABLISHED rtt_us=250 rttvar_us=125 unacked=3"
         " retransmits=5 backoff=4 probes=0 last_data_recv_ms=30005"
         " last_ack_recv_ms=29000"
         " evidence=unacked_retrans,probes,ack_silence",
     TSJ ",\"event\":\"suspect\"" CPJ ",\"age_ms\":20000,"
         "\"last_rx_ms\":15000,\"last_tx_ms\":10,"
         "\"tcp_state\":\"ESTABLISHED\",\"rtt_us\":250,\"rttvar_us\":125,"
         "\"unacked\":3,\"retransmits\":5,\"backoff\":4,\"probes\":0,"
         "\"last_data_recv_ms\":30005,\"last_ack_recv_ms\":29000,"
         "\"evidence\":\"unacked_retrans,probes,ack_silence\"}"},
    {"suspect probes and an unknown bit",
     {.type = VIGIL_EV_SUSPECT, BASE, .age_ms = 1, .last_rx_ms = 2,
      .last_tx_ms = 3, .tcp_info = &ti_close_wait,
      .evidence = VIGIL_SUSPECT_PROBES | 0x100u},
     TSL " event=suspect" CPL " age_ms=1 last_rx_ms=2 last_tx_ms=3"
         " tcp_state=CLOSE_WAIT rtt_us=40 rttvar_us=20 unacked=0"
         " retransmits=0 backoff=0 probes=2 last_data_recv_ms=7"
         " last_ack_recv_ms=8 evidence=probes,0x100",
     TSJ ",\"event\":\"suspect\"" CPJ ",\"age_ms\":1,\"last_rx_ms\":2,"
         "\"last_tx_ms\":3,\"tcp_state\":\"CLOSE_WAIT\",\"rtt_us\":40,"
         "\"rttvar_us\":20,\"unacked\":0,\"retransmits\":0,\"backoff\":0,"
         "\"probes\":2,\"last_data_recv_ms\":7,\"last_ack_recv_ms\":8,"
         "\"evidence\":\"probes,0x100\"}"},
    {"suspect without tcp_info or evidence",
     {.type = VIGIL_EV_SUSPECT, BASE, .age_ms = 5, .last_rx_ms = 4,
      .last_tx_ms = 3},
     TSL " event=suspect" CPL " age_ms=5 last_rx_ms=4 last_tx_ms=3",
     TSJ ",\"event\":\"suspect\"" CPJ ",\"age_ms\":5,\"last_rx_ms\":4,"
         "\"last_tx_ms\":3}"},
    {"peer_fin",
     {.type = VIGIL_EV_PEER_FIN, BASE, .age_ms = 100, .last_rx_ms = 0,
      .last_tx_ms = 50},
     TSL " event=peer_fin" CPL " age_ms=100 last_rx_ms=0 last_tx_ms=50",
     TSJ ",\"event\":\"peer_fin\"" CPJ ",\"age_ms\":100,\"last_rx_ms\":0,"
         "\"last_tx_ms\":50}"},
    {"draining",
     {.type = VIGIL_EV_DRAINING, BASE, .age_ms = 5000, .last_rx_ms = 10,
      .last_tx_ms = 0},
     TSL " event=draining" CPL " age_ms=5000 last_rx_ms=10 last_tx_ms=0",
     TSJ ",\"event\":\"draining\"" CPJ ",\"age_ms\":5000,\"last_rx_ms\":10,"
         "\"last_tx_ms\":0}"},
    /* The line from the format's documentation, byte for byte. */
    {"close heartbeat_timeout",
     {.type = VIGIL_EV_CLOSE, BASE, .reason = VIGIL_REASON_HEARTBEAT_TIMEOUT,
      .age_ms = 30012, .last_rx_ms = 30005, .last_tx_ms = 12,
      .bytes_in = 10, .bytes_out = 20},
     "ts=2026-11-21T09:00:00.123Z event=close conn=7 peer=127.0.0.1:5000"
     " reason=heartbeat_timeout age_ms=30012 last_rx_ms=30005 last_tx_ms=12"
     " bytes_in=10 bytes_out=20",
     "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"event\":\"close\",\"conn\":7,"
     "\"peer\":\"127.0.0.1:5000\",\"reason\":\"heartbeat_timeout\","
     "\"age_ms\":30012,\"last_rx_ms\":30005,\"last_tx_ms\":12,"
     "\"bytes_in\":10,\"bytes_out\":20}"},
    {"close with cause, errno, truncated, detail",
     {.type = VIGIL_EV_CLOSE, BASE, .identity = "dev-42",
      .reason = VIGIL_REASON_DRAIN_TIMEOUT,
      .cause = VIGIL_REASON_IDLE_TIMEOUT, .age_ms = 65000,
      .last_rx_ms = 60000, .last_tx_ms = 5000, .bytes_in = UINT64_MAX,
      .bytes_out = 0, .sys_errno = ETIMEDOUT, .truncated = 1,
      .detail = "no close_notify"},
     TSL " event=close" CPL " identity=dev-42 reason=drain_timeout"
         " cause=idle_timeout age_ms=65000 last_rx_ms=60000"
         " last_tx_ms=5000 bytes_in=18446744073709551615 bytes_out=0"
         " errno=110 errno_name=ETIMEDOUT truncated=1"
         " detail=\"no close_notify\"",
     TSJ ",\"event\":\"close\"" CPJ ",\"identity\":\"dev-42\","
         "\"reason\":\"drain_timeout\",\"cause\":\"idle_timeout\","
         "\"age_ms\":65000,\"last_rx_ms\":60000,\"last_tx_ms\":5000,"
         "\"bytes_in\":18446744073709551615,\"bytes_out\":0,"
         "\"errno\":110,\"errno_name\":\"ETIMEDOUT\",\"truncated\":1,"
         "\"detail\":\"no close_notify\"}"},
    {"close io_error",
     {.type = VIGIL_EV_CLOSE, BASE, .reason = VIGIL_REASON_IO_ERROR,
      .age_ms = 1, .last_rx_ms = -1, .last_tx_ms = -1,
      .sys_errno = ECONNRESET},
     TSL " event=close" CPL " reason=io_error age_ms=1 last_rx_ms=-1"
         " last_tx_ms=-1 bytes_in=0 bytes_out=0 errno=104"
         " errno_name=ECONNRESET",
     TSJ ",\"event\":\"close\"" CPJ ",\"reason\":\"io_error\",\"age_ms\":1,"
         "\"last_rx_ms\":-1,\"last_tx_ms\":-1,\"bytes_in\":0,\"bytes_out\":0,"
         "\"errno\":104,\"errno_name\":\"ECONNRESET\"}"},
    {"close with out-of-range reason",
     {.type = VIGIL_EV_CLOSE, BASE, .reason = (vigil_reason)99},
     TSL " event=close" CPL " reason=unknown age_ms=0 last_rx_ms=0"
         " last_tx_ms=0 bytes_in=0 bytes_out=0",
     TSJ ",\"event\":\"close\"" CPJ ",\"reason\":\"unknown\",\"age_ms\":0,"
         "\"last_rx_ms\":0,\"last_tx_ms\":0,\"bytes_in\":0,\"bytes_out\":0}"},
    {"accept_paused",
     {NW, .type = VIGIL_EV_ACCEPT_PAUSED, .ts_ms = TS, .sys_errno = EMFILE,
      .retry_ms = 50},
     TSL " event=accept_paused errno=24 errno_name=EMFILE retry_ms=50",
     TSJ ",\"event\":\"accept_paused\",\"errno\":24,"
         "\"errno_name\":\"EMFILE\",\"retry_ms\":50}"},
    {"accept_resumed",
     {NW, .type = VIGIL_EV_ACCEPT_RESUMED, .ts_ms = TS, .retry_ms = 50},
     TSL " event=accept_resumed",
     TSJ ",\"event\":\"accept_resumed\"}"},
    {"ready",
     {.type = VIGIL_EV_READY, BASE, .age_ms = 42, .last_rx_ms = 1},
     TSL " event=ready" CPL " age_ms=42",
     TSJ ",\"event\":\"ready\"" CPJ ",\"age_ms\":42}"},
    {"takeover",
     {NW, .type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .conn_id = 9,
      .peer = "[::1]:40000", .identity = "dev-42", .other_conn_id = 7},
     TSL " event=takeover conn=9 peer=[::1]:40000 identity=dev-42"
         " other_conn=7 scope=hub",
     TSJ ",\"event\":\"takeover\",\"conn\":9,\"peer\":\"[::1]:40000\","
         "\"identity\":\"dev-42\",\"other_conn\":7,\"scope\":\"hub\"}"},
    /* The displaced conn lived on another worker of the group. */
    {"takeover across workers",
     {.type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .worker = 1, .conn_id = 9,
      .identity = "dev-42", .other_conn_id = 7, .scope = VIGIL_SCOPE_WORKER,
      .other_worker = 0},
     TSL " event=takeover worker=1 conn=9 identity=dev-42 other_conn=7"
         " scope=worker other_worker=0",
     TSJ ",\"event\":\"takeover\",\"worker\":1,\"conn\":9,"
         "\"identity\":\"dev-42\",\"other_conn\":7,\"scope\":\"worker\","
         "\"other_worker\":0}"},
    /* Classified on this hub: a ghost with every evidence bit. */
    {"takeover of a ghost",
     {NW, .type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .conn_id = 9,
      .other_conn_id = 7, .peer_class = VIGIL_PEER_GHOST,
      .evidence = VIGIL_SUSPECT_UNACKED_RETRANS | VIGIL_SUSPECT_PROBES |
                  VIGIL_SUSPECT_ACK_SILENCE |
                  VIGIL_EVIDENCE_PING_OUTSTANDING | VIGIL_EVIDENCE_SUSPECTED |
                  0x400u},
     TSL " event=takeover conn=9 other_conn=7 scope=hub class=ghost"
         " evidence=unacked_retrans,probes,ack_silence,ping_outstanding,"
         "suspected,0x400",
     TSJ ",\"event\":\"takeover\",\"conn\":9,\"other_conn\":7,"
         "\"scope\":\"hub\",\"class\":\"ghost\",\"evidence\":"
         "\"unacked_retrans,probes,ack_silence,ping_outstanding,suspected,"
         "0x400\"}"},
    /* A live peer has no evidence: class alone. */
    {"takeover of a live peer",
     {NW, .type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .conn_id = 9,
      .other_conn_id = 7, .peer_class = VIGIL_PEER_LIVE},
     TSL " event=takeover conn=9 other_conn=7 scope=hub class=live",
     TSJ ",\"event\":\"takeover\",\"conn\":9,\"other_conn\":7,"
         "\"scope\":\"hub\",\"class\":\"live\"}"},
    {"takeover, class out of range",
     {NW, .type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .conn_id = 9,
      .other_conn_id = 7, .peer_class = (vigil_peer_class)7,
      .evidence = VIGIL_EVIDENCE_SUSPECTED},
     TSL " event=takeover conn=9 other_conn=7 scope=hub class=unknown"
         " evidence=suspected",
     TSJ ",\"event\":\"takeover\",\"conn\":9,\"other_conn\":7,"
         "\"scope\":\"hub\",\"class\":\"unknown\","
         "\"evidence\":\"suspected\"}"},
    {"close of a displaced ghost",
     {.type = VIGIL_EV_CLOSE, BASE, .reason = VIGIL_REASON_TAKEOVER,
      .peer_class = VIGIL_PEER_GHOST,
      .evidence = VIGIL_EVIDENCE_PING_OUTSTANDING},
     TSL " event=close" CPL " reason=takeover age_ms=0 last_rx_ms=0"
         " last_tx_ms=0 bytes_in=0 bytes_out=0 class=ghost"
         " evidence=ping_outstanding",
     TSJ ",\"event\":\"close\"" CPJ ",\"reason\":\"takeover\","
         "\"age_ms\":0,\"last_rx_ms\":0,\"last_tx_ms\":0,\"bytes_in\":0,"
         "\"bytes_out\":0,\"class\":\"ghost\","
         "\"evidence\":\"ping_outstanding\"}"},
    /* Emitted on the displaced conn's node: the claimant is another
     * node's, named by other_node; its conn id is not shown. */
    {"takeover across nodes",
     {.type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .worker = 0, .conn_id = 9,
      .identity = "dev-42", .scope = VIGIL_SCOPE_CLUSTER,
      .other_worker = VIGIL_WORKER_NONE, .other_node = "node-b"},
     TSL " event=takeover worker=0 conn=9 identity=dev-42 scope=cluster"
         " other_node=node-b",
     TSJ ",\"event\":\"takeover\",\"worker\":0,\"conn\":9,"
         "\"identity\":\"dev-42\",\"scope\":\"cluster\","
         "\"other_node\":\"node-b\"}"},
    {"takeover, scope out of range",
     {NW, .type = VIGIL_EV_TAKEOVER, .ts_ms = TS, .conn_id = 9,
      .other_conn_id = 7, .scope = (vigil_takeover_scope)9,
      .other_worker = 3},
     TSL " event=takeover conn=9 other_conn=7 scope=unknown",
     TSJ ",\"event\":\"takeover\",\"conn\":9,\"other_conn\":7,"
         "\"scope\":\"unknown\"}"},
    {"flapping",
     {NW, .type = VIGIL_EV_FLAPPING, .ts_ms = TS, .identity = "dev-42",
      .count = 15, .detail = "banned 300000 ms"},
     TSL " event=flapping identity=dev-42 count=15"
         " detail=\"banned 300000 ms\"",
     TSJ ",\"event\":\"flapping\",\"identity\":\"dev-42\",\"count\":15,"
         "\"detail\":\"banned 300000 ms\"}"},
    {"census",
     {NW, .type = VIGIL_EV_CENSUS, .ts_ms = TS,
      .state_counts = census_counts},
     TSL " event=census state_0=1 established=5 time_wait=7 close_wait=2"
         " listen=1 new_syn_recv=4294967295",
     TSJ ",\"event\":\"census\",\"state_0\":1,\"established\":5,"
         "\"time_wait\":7,\"close_wait\":2,\"listen\":1,"
         "\"new_syn_recv\":4294967295}"},
    {"census all zero",
     {NW, .type = VIGIL_EV_CENSUS, .ts_ms = TS, .state_counts = census_zero},
     TSL " event=census", TSJ ",\"event\":\"census\"}"},
    {"census without counts",
     {NW, .type = VIGIL_EV_CENSUS, .ts_ms = TS},
     TSL " event=census", TSJ ",\"event\":\"census\"}"},
    {"ghosts",
     {NW, .type = VIGIL_EV_GHOSTS, .ts_ms = TS, .count = 12},
     TSL " event=ghosts count=12",
     TSJ ",\"event\":\"ghosts\",\"count\":12}"},
    {"shutdown",
     {NW, .type = VIGIL_EV_SHUTDOWN, .ts_ms = TS, .detail = "started"},
     TSL " event=shutdown detail=started",
     TSJ ",\"event\":\"shutdown\",\"detail\":\"started\"}"},
    {"client",
     {NW, .type = VIGIL_EV_CLIENT, .ts_ms = TS, .peer = "127.0.0.1:9000",
      .detail = "backoff_ms=1600"},
     TSL " event=client peer=127.0.0.1:9000 detail=\"backoff_ms=1600\"",
     TSJ ",\"event\":\"client\",\"peer\":\"127.0.0.1:9000\","
         "\"detail\":\"backoff_ms=1600\"}"},
    {"directory_down",
     {NW, .type = VIGIL_EV_DIRECTORY_DOWN, .ts_ms = TS,
      .detail = "did not answer within 500 ms"},
     TSL " event=directory_down detail=\"did not answer within 500 ms\"",
     TSJ ",\"event\":\"directory_down\","
         "\"detail\":\"did not answer within 500 ms\"}"},
    {"directory_up",
     {NW, .type = VIGIL_EV_DIRECTORY_UP, .ts_ms = TS,
      .detail = "redis://127.0.0.1:6379"},
     TSL " event=directory_up detail=redis://127.0.0.1:6379",
     TSJ ",\"event\":\"directory_up\","
         "\"detail\":\"redis://127.0.0.1:6379\"}"},
    {"directory_error",
     {NW, .type = VIGIL_EV_DIRECTORY_ERROR, .ts_ms = TS, .conn_id = 3,
      .identity = "dev-1", .detail = "the store answered an error: ERR x"},
     TSL " event=directory_error conn=3 identity=dev-1"
         " detail=\"the store answered an error: ERR x\"",
     TSJ ",\"event\":\"directory_error\",\"conn\":3,"
         "\"identity\":\"dev-1\","
         "\"detail\":\"the store answered an error: ERR x\"}"},
    {"unknown event type",
     {.type = (vigil_event_type)0, BASE, .reason = VIGIL_REASON_SHUTDOWN,
      .age_ms = 3},
     TSL " event=unknown" CPL, TSJ ",\"event\":\"unknown\"" CPJ "}"},
    {"epoch",
     {NW, .type = VIGIL_EV_SHUTDOWN},
     "ts=1970-01-01T00:00:00.000Z event=shutdown",
     "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"event\":\"shutdown\"}"},
    /* 951782400000 ms = 2000-02-29T00:00:00Z; +86399999 ms is its last ms. */
    {"leap day",
     {NW, .type = VIGIL_EV_SHUTDOWN,
      .ts_ms = 951782400000ull + 86399999ull},
     "ts=2000-02-29T23:59:59.999Z event=shutdown",
     "{\"ts\":\"2000-02-29T23:59:59.999Z\",\"event\":\"shutdown\"}"},
    {"clock past year 9999 is clamped",
     {NW, .type = VIGIL_EV_SHUTDOWN, .ts_ms = UINT64_MAX},
     "ts=9999-12-31T23:59:59.999Z event=shutdown",
     "{\"ts\":\"9999-12-31T23:59:59.999Z\",\"event\":\"shutdown\"}"},
};

/* Formats ev into a fresh heap buffer of exactly the measured size. */
static char *format_alloc(const vigil_event *ev, vigil_log_format fmt) {
  int n = vigil_event_format(ev, fmt, NULL, 0);
  assert_true(n > 0);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(vigil_event_format(ev, fmt, buf, (size_t)n + 1), n);
  assert_int_equal(strlen(buf), (size_t)n);
  return buf;
}

static void test_exact_lines(void **state) {
  (void)state;
  for (size_t i = 0; i < N(line_cases); i++) {
    const struct line_case *c = &line_cases[i];
    char *l = format_alloc(&c->ev, VIGIL_LOG_LOGFMT);
    char *j = format_alloc(&c->ev, VIGIL_LOG_JSON);
    if (strcmp(l, c->logfmt) != 0)
      fail_msg("%s (logfmt):\n got  %s\n want %s", c->label, l, c->logfmt);
    if (strcmp(j, c->json) != 0)
      fail_msg("%s (json):\n got  %s\n want %s", c->label, j, c->json);
    if (vt_logfmt_parse(l, NULL, NULL, 0) != 0)
      fail_msg("%s: not valid logfmt: %s", c->label, l);
    if (!vt_json_valid_object(j))
      fail_msg("%s: not valid JSON: %s", c->label, j);
    assert_null(strchr(l, '\n'));
    assert_null(strchr(j, '\n'));
    free(l);
    free(j);
  }
}

/* Every event type has a case above in both formats. */
static void test_every_type_covered(void **state) {
  (void)state;
  for (int t = 1; t < VIGIL_EV__COUNT; t++) {
    int found = 0;
    for (size_t i = 0; i < N(line_cases); i++)
      found |= (int)line_cases[i].ev.type == t;
    if (!found)
      fail_msg("event type %d (%s) has no exact-line case", t,
               vigil_event_name((vigil_event_type)t));
  }
}

/* ======================================================================== */
/* Escaping                                                                 */
/* ======================================================================== */

struct escape_case {
  const char *label;
  const char *in;
  const char *logfmt; /* rendered value */
  const char *json;   /* rendered value */
  const char *json_decoded; /* what a JSON parser reads back; NULL = in */
};

static const struct escape_case escape_cases[] = {
    {"plain", "abc,def:ghi/1", "abc,def:ghi/1", "\"abc,def:ghi/1\"", NULL},
    {"empty", "", "\"\"", "\"\"", NULL},
    {"space", "a b", "\"a b\"", "\"a b\"", NULL},
    {"quote", "say \"hi\"", "\"say \\\"hi\\\"\"", "\"say \\\"hi\\\"\"",
     NULL},
    {"backslash", "C:\\dir", "\"C:\\\\dir\"", "\"C:\\\\dir\"", NULL},
    {"equals", "k=v", "\"k=v\"", "\"k=v\"", NULL},
    {"newline", "line1\nline2", "\"line1\\nline2\"", "\"line1\\nline2\"",
     NULL},
    {"cr", "a\rb", "\"a\\rb\"", "\"a\\rb\"", NULL},
    {"tab", "a\tb", "\"a\\tb\"", "\"a\\tb\"", NULL},
    {"backspace formfeed", "\b\f", "\"\\u0008\\u000c\"", "\"\\b\\f\"", NULL},
    {"ctrl-a", "x\x01y", "\"x\\u0001y\"", "\"x\\u0001y\"", NULL},
    {"escape byte", "\x1b[0m", "\"\\u001b[0m\"", "\"\\u001b[0m\"", NULL},
    {"del", "x\x7fy", "\"x\\u007fy\"", "\"x\\u007fy\"", NULL},
    {"utf-8 e-acute", "caf\xc3\xa9", "caf\xc3\xa9", "\"caf\xc3\xa9\"", NULL},
    {"utf-8 4-byte", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80",
     "\"\xf0\x9f\x98\x80\"", NULL},
    {"utf-8 with space", "\xc3\xa9 \xc3\xa9", "\"\xc3\xa9 \xc3\xa9\"",
     "\"\xc3\xa9 \xc3\xa9\"", NULL},
    {"invalid 0xff", "a\xff" "b", "a\xff" "b", "\"a\\ufffdb\"",
     "a\xef\xbf\xbd" "b"},
    {"stray continuation", "\x80", "\x80", "\"\\ufffd\"", "\xef\xbf\xbd"},
    {"overlong slash", "\xc0\xaf", "\xc0\xaf", "\"\\ufffd\\ufffd\"",
     "\xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong 3-byte", "\xe0\x80\xaf", "\xe0\x80\xaf",
     "\"\\ufffd\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate", "\xed\xa0\x80", "\xed\xa0\x80",
     "\"\\ufffd\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"above U+10FFFF", "\xf4\x90\x80\x80", "\xf4\x90\x80\x80",
     "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"cut sequence at end", "ok\xe2\x82", "ok\xe2\x82",
     "\"ok\\ufffd\\ufffd\"", "ok\xef\xbf\xbd\xef\xbf\xbd"},
    {"cut sequence before ascii", "\xe2\x82z", "\xe2\x82z",
     "\"\\ufffd\\ufffdz\"", "\xef\xbf\xbd\xef\xbf\xbdz"},
    {"everything", "a b=\"c\\\n\t\x01\x7f\xc3\xa9",
     "\"a b=\\\"c\\\\\\n\\t\\u0001\\u007f\xc3\xa9\"",
     "\"a b=\\\"c\\\\\\n\\t\\u0001\\u007f\xc3\xa9\"", NULL},
};

/* Puts the odd string in peer, identity and detail of a close event and
 * checks each rendering, parseability and the decoded round trip. */
static void test_escaping(void **state) {
  (void)state;
  for (size_t i = 0; i < N(escape_cases); i++) {
    const struct escape_case *c = &escape_cases[i];
    vigil_event ev = {NW, .type = VIGIL_EV_CLOSE, .ts_ms = TS, .conn_id = 3,
                      .peer = c->in, .identity = c->in,
                      .reason = VIGIL_REASON_PROTOCOL_ERROR,
                      .detail = c->in};
    char want[1024], got_val[256];

    snprintf(want, sizeof want,
             TSL " event=close conn=3 peer=%s identity=%s"
                 " reason=protocol_error age_ms=0 last_rx_ms=0"
                 " last_tx_ms=0 bytes_in=0 bytes_out=0 detail=%s",
             c->logfmt, c->logfmt, c->logfmt);
    char *l = format_alloc(&ev, VIGIL_LOG_LOGFMT);
    if (strcmp(l, want) != 0)
      fail_msg("%s (logfmt):\n got  %s\n want %s", c->label, l, want);
    if (vt_logfmt_parse(l, "detail", got_val, sizeof got_val) != 0)
      fail_msg("%s: not valid logfmt: %s", c->label, l);
    assert_string_equal(got_val, c->in); /* logfmt is lossless */

    snprintf(want, sizeof want,
             TSJ ",\"event\":\"close\",\"conn\":3,\"peer\":%s,"
                 "\"identity\":%s,\"reason\":\"protocol_error\","
                 "\"age_ms\":0,\"last_rx_ms\":0,\"last_tx_ms\":0,"
                 "\"bytes_in\":0,\"bytes_out\":0,\"detail\":%s}",
             c->json, c->json, c->json);
    char *j = format_alloc(&ev, VIGIL_LOG_JSON);
    if (strcmp(j, want) != 0)
      fail_msg("%s (json):\n got  %s\n want %s", c->label, j, want);
    if (!vt_json_valid_object(j))
      fail_msg("%s: not valid JSON: %s", c->label, j);
    assert_int_equal(vt_json_get_string(j, "identity", got_val, sizeof got_val),
                     0);
    assert_string_equal(got_val, c->json_decoded ? c->json_decoded : c->in);
    free(l);
    free(j);
  }
}

/* The checkers themselves must reject what they are there to catch. */
static void test_checkers_reject_bad_lines(void **state) {
  (void)state;
  static const char *bad_json[] = {
      "", "{", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1}x", "{\"a\":\"\x01\"}",
      "{\"a\":\"\xff\"}", "{\"a\":\"\\x\"}", "{\"a\":1,\"a\":2}",
      "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":-}", "{\"a\":1.}", "[1]",
      "{\"a\":\"\\u12\"}", "{a:1}",
  };
  for (size_t i = 0; i < N(bad_json); i++)
    if (vt_json_valid_object(bad_json[i]))
      fail_msg("JSON checker accepted: %s", bad_json[i]);
  assert_true(vt_json_valid_object(
      "{\"a\":[1,-0.5e+3,true,false,null,{}],\"b\":\"\\u00e9\\/\"}"));

  static const char *bad_logfmt[] = {
      "", "a", "a=", "a=b c", "a=b  c=d", "a=b a=c", "a=\"b", "a=b\"c",
      "A=b", "a=\"\\q\"", "a=b\tc=d",
  };
  for (size_t i = 0; i < N(bad_logfmt); i++)
    if (vt_logfmt_parse(bad_logfmt[i], NULL, NULL, 0) == 0)
      fail_msg("logfmt checker accepted: %s", bad_logfmt[i]);
  assert_int_equal(vt_logfmt_parse("a=1 b=\"x y\" c=\"\"", NULL, NULL, 0), 0);
}

/* ======================================================================== */
/* Truncation and bad input                                                 */
/* ======================================================================== */

/* For every buflen from 0 to full+1: the return value is the full length,
 * the output is NUL-terminated, is a prefix of the full line, and nothing
 * past buflen is touched. */
static void check_truncation(const vigil_event *ev, vigil_log_format fmt) {
  char *full = format_alloc(ev, fmt);
  size_t n = strlen(full);
  char *buf = malloc(n + 8);
  assert_non_null(buf);
  for (size_t cap = 0; cap <= n + 1; cap++) {
    memset(buf, 'X', n + 8);
    int r = vigil_event_format(ev, fmt, buf, cap);
    assert_int_equal(r, (int)n);
    for (size_t k = cap; k < n + 8; k++)
      assert_int_equal(buf[k], 'X');
    if (cap == 0)
      continue;
    size_t stored = cap - 1 < n ? cap - 1 : n;
    assert_int_equal(buf[stored], '\0');
    assert_memory_equal(buf, full, stored);
  }
  /* buf NULL measures whatever buflen claims. */
  assert_int_equal(vigil_event_format(ev, fmt, NULL, 0), (int)n);
  assert_int_equal(vigil_event_format(ev, fmt, NULL, 4096), (int)n);
  free(buf);
  free(full);
}

static void test_truncation(void **state) {
  (void)state;
  for (size_t i = 0; i < N(line_cases); i++) {
    check_truncation(&line_cases[i].ev, VIGIL_LOG_LOGFMT);
    check_truncation(&line_cases[i].ev, VIGIL_LOG_JSON);
  }
  /* Escapes and multi-byte sequences straddle every cut point too. */
  vigil_event ev = {NW, .type = VIGIL_EV_CLIENT, .ts_ms = TS,
                    .detail = "a \"b\"\n\x01\xc3\xa9\xff\\"};
  check_truncation(&ev, VIGIL_LOG_LOGFMT);
  check_truncation(&ev, VIGIL_LOG_JSON);
}

/* A long detail is rendered in full: no internal fixed-size limit. */
static void test_long_detail(void **state) {
  (void)state;
  size_t len = 100000;
  char *detail = malloc(len + 1);
  assert_non_null(detail);
  memset(detail, 'd', len);
  detail[len] = '\0';
  vigil_event ev = {NW, .type = VIGIL_EV_SHUTDOWN, .ts_ms = TS,
                    .detail = detail};
  int n = vigil_event_format(&ev, VIGIL_LOG_LOGFMT, NULL, 0);
  assert_int_equal(n, (int)(strlen(TSL " event=shutdown detail=") + len));
  char *line = format_alloc(&ev, VIGIL_LOG_JSON);
  assert_true(vt_json_valid_object(line));
  free(line);
  free(detail);
}

/* NULL event or unknown format: VIGIL_EINVAL (-1) and an empty string. */
static void test_bad_input(void **state) {
  (void)state;
  char buf[16];
  memset(buf, 'X', sizeof buf);
  assert_int_equal(vigil_event_format(NULL, VIGIL_LOG_LOGFMT, buf, sizeof buf),
                   VIGIL_EINVAL);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(buf[1], 'X');
  assert_int_equal(vigil_event_format(NULL, VIGIL_LOG_JSON, NULL, 0),
                   VIGIL_EINVAL);

  vigil_event ev = {NW, .type = VIGIL_EV_SHUTDOWN, .ts_ms = TS};
  memset(buf, 'X', sizeof buf);
  assert_int_equal(
      vigil_event_format(&ev, (vigil_log_format)7, buf, sizeof buf),
      VIGIL_EINVAL);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(vigil_event_format(&ev, (vigil_log_format)-1, NULL, 0),
                   VIGIL_EINVAL);
}

/* Days after 1970-01-01 the timestamp test visits: every day up to 2500
 * (leap years, 2000, 2100, 2400), then every 97th, ending on 9999-12-31. */
#define TS_EVERY_DAY_UNTIL 193893u /* 2500-11-11 */
#define TS_LAST_DAY 2932896u       /* 9999-12-31 */
static uint64_t ts_next_day(uint64_t day) {
  if (day < TS_EVERY_DAY_UNTIL) return day + 1;
  if (day < TS_LAST_DAY && day + 97 > TS_LAST_DAY) return TS_LAST_DAY;
  return day + 97;
}

/* The timestamp is computed without gmtime_r: it must agree with it, at a
 * varying time of day and millisecond. */
static void test_ts_matches_gmtime(void **state) {
  (void)state;
  for (uint64_t day = 0; day <= TS_LAST_DAY; day = ts_next_day(day)) {
    uint64_t sod = (day * 7919u) % 86400u, ms = (day * 31u) % 1000u;
    uint64_t ts = (day * 86400u + sod) * 1000u + ms;
    vigil_event ev = {.type = VIGIL_EV_SHUTDOWN, NW, .ts_ms = ts};
    char line[128], want[64];
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;
    assert_non_null(gmtime_r(&secs, &tm));
    size_t k = strftime(want, sizeof want, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(want + k, sizeof want - k, ".%03uZ ", (unsigned)ms);
    vigil_event_format(&ev, VIGIL_LOG_LOGFMT, line, sizeof line);
    if (strncmp(line, want, strlen(want)) != 0)
      fail_msg("day %llu: '%s', gmtime_r says '%s'", (unsigned long long)day,
               line, want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_checkers_reject_bad_lines),
      cmocka_unit_test(test_exact_lines),
      cmocka_unit_test(test_every_type_covered),
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_long_detail),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_ts_matches_gmtime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
