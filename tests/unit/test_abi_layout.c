/*
 * The ABI rule of vigil.h, held: every field of the public structs keeps
 * the offset and size it had when it was added, so fields are only ever
 * appended (a field removed, reordered or retyped fails here, naming it).
 * A field added at a struct's end goes into this table with the numbers
 * this test prints for it; a release that changes a layout also bumps
 * VIGIL_SOVERSION (CMakeLists.txt).
 *
 * The numbers are those of the x86-64 System V ABI (LP64), where the
 * suite runs; elsewhere the test skips.
 */
#include <stddef.h>
#include <stdio.h>

#include "testutil.h"
#include "vigil.h"

typedef struct field {
  const char *type, *name;
  size_t offset, size;      /* now */
  size_t want_offset, want_size;
} field;

#define F(type, name, off, sz)                                               \
  {#type, #name, offsetof(type, name), sizeof(((type *)0)->name), off, sz}

static const field fields[] = {
    /* vigil_policy */
    F(vigil_policy, keepalive, 0, 4),
    F(vigil_policy, keepalive_idle_s, 4, 4),
    F(vigil_policy, keepalive_intvl_s, 8, 4),
    F(vigil_policy, keepalive_cnt, 12, 4),
    F(vigil_policy, user_timeout_ms, 16, 8),
    F(vigil_policy, ping_interval_ms, 24, 4),
    F(vigil_policy, dead_after_ms, 28, 4),
    F(vigil_policy, suspect_after_ms, 32, 4),
    F(vigil_policy, suspect_ping, 36, 4),
    F(vigil_policy, read_idle_ms, 40, 4),
    F(vigil_policy, write_idle_ms, 44, 4),
    F(vigil_policy, all_idle_ms, 48, 4),
    F(vigil_policy, idle_action, 52, 4),
    F(vigil_policy, handshake_timeout_ms, 56, 4),
    F(vigil_policy, drain_timeout_ms, 60, 4),
    F(vigil_policy, linger_max_ms, 64, 4),
    F(vigil_policy, close_wait_grace_ms, 68, 4),
    F(vigil_policy, fin_wait2_s, 72, 4),
    F(vigil_policy, abort_dead, 76, 4),
    F(vigil_policy, output_limit, 80, 8),
    F(vigil_policy, overflow_action, 88, 4),
    F(vigil_policy, takeover, 92, 4),
    F(vigil_policy, flap_max, 96, 4),
    F(vigil_policy, flap_window_ms, 100, 4),
    F(vigil_policy, flap_ban_ms, 104, 4),
    F(vigil_policy, frame_codec, 108, 4),
    F(vigil_policy, max_frame, 112, 4),
    F(vigil_policy, nodelay, 116, 4),
    F(vigil_policy, ping_min_interval_ms, 120, 4),
    F(vigil_policy, ping_strikes, 124, 4),
    F(vigil_policy, path_idle_max_s, 128, 4),

    /* vigil_hub_options */
    F(vigil_hub_options, policy, 0, 8),
    F(vigil_hub_options, tick_ms, 8, 4),
    F(vigil_hub_options, expire_batch, 12, 4),
    F(vigil_hub_options, on_event, 16, 8),
    F(vigil_hub_options, event_data, 24, 8),
    F(vigil_hub_options, clock, 32, 8),
    F(vigil_hub_options, clock_data, 40, 8),
    F(vigil_hub_options, on_takeover, 48, 8),
    F(vigil_hub_options, takeover_data, 56, 8),
    F(vigil_hub_options, census_interval_ms, 64, 4),
    F(vigil_hub_options, ghost_threshold, 68, 4),
    F(vigil_hub_options, wall_clock, 72, 8),
    F(vigil_hub_options, wall_clock_data, 80, 8),
    F(vigil_hub_options, cluster, 88, 8),

    /* vigil_adopt_options */
    F(vigil_adopt_options, policy, 0, 8),
    F(vigil_adopt_options, callbacks, 8, 8),
    F(vigil_adopt_options, user_data, 16, 8),
    F(vigil_adopt_options, watch_only, 24, 4),
    F(vigil_adopt_options, tls_ctx, 32, 8),
    F(vigil_adopt_options, tls_client, 40, 4),
    F(vigil_adopt_options, tls_sni, 48, 8),
    F(vigil_adopt_options, tls, 56, 8),

    /* vigil_listen_options */
    F(vigil_listen_options, host, 0, 8),
    F(vigil_listen_options, port, 8, 2),
    F(vigil_listen_options, backlog, 12, 4),
    F(vigil_listen_options, reuseport, 16, 4),
    F(vigil_listen_options, adopt, 24, 64),
    F(vigil_listen_options, on_accept, 88, 8),
    F(vigil_listen_options, accept_data, 96, 8),
    F(vigil_listen_options, emfile_backoff_min_ms, 104, 4),
    F(vigil_listen_options, emfile_backoff_max_ms, 108, 4),

    /* vigil_stats */
    F(vigil_stats, open, 0, 8),
    F(vigil_stats, opened, 8, 8),
    F(vigil_stats, closed, 16, 256),
    F(vigil_stats, bytes_in, 272, 8),
    F(vigil_stats, bytes_out, 280, 8),
    F(vigil_stats, accept_paused, 288, 8),
    F(vigil_stats, takeovers, 296, 8),
    F(vigil_stats, takeovers_by_scope, 304, 32),
    F(vigil_stats, takeovers_by_class, 336, 32),

    /* vigil_event */
    F(vigil_event, type, 0, 4),
    F(vigil_event, ts_ms, 8, 8),
    F(vigil_event, conn, 16, 8),
    F(vigil_event, conn_id, 24, 8),
    F(vigil_event, peer, 32, 8),
    F(vigil_event, identity, 40, 8),
    F(vigil_event, reason, 48, 4),
    F(vigil_event, cause, 52, 4),
    F(vigil_event, age_ms, 56, 8),
    F(vigil_event, last_rx_ms, 64, 8),
    F(vigil_event, last_tx_ms, 72, 8),
    F(vigil_event, bytes_in, 80, 8),
    F(vigil_event, bytes_out, 88, 8),
    F(vigil_event, sys_errno, 96, 4),
    F(vigil_event, idle_kind, 100, 4),
    F(vigil_event, retry_ms, 104, 4),
    F(vigil_event, sockopts, 112, 8),
    F(vigil_event, tcp_info, 120, 8),
    F(vigil_event, evidence, 128, 4),
    F(vigil_event, other_conn_id, 136, 8),
    F(vigil_event, count, 144, 4),
    F(vigil_event, state_counts, 152, 8),
    F(vigil_event, truncated, 160, 4),
    F(vigil_event, tls_resumed, 164, 4),
    F(vigil_event, detail, 168, 8),
    F(vigil_event, worker, 176, 4),
    F(vigil_event, scope, 180, 4),
    F(vigil_event, other_worker, 184, 4),
    F(vigil_event, peer_class, 188, 4),
    F(vigil_event, other_node, 192, 8),

    /* vigil_sockopts */
    F(vigil_sockopts, keepalive, 0, 4),
    F(vigil_sockopts, keepalive_idle_s, 4, 4),
    F(vigil_sockopts, keepalive_intvl_s, 8, 4),
    F(vigil_sockopts, keepalive_cnt, 12, 4),
    F(vigil_sockopts, user_timeout_ms, 16, 4),
    F(vigil_sockopts, fin_wait2_s, 20, 4),
    F(vigil_sockopts, nodelay, 24, 4),

    /* vigil_tcp_info */
    F(vigil_tcp_info, state, 0, 4),
    F(vigil_tcp_info, rtt_us, 4, 4),
    F(vigil_tcp_info, rttvar_us, 8, 4),
    F(vigil_tcp_info, rto_us, 12, 4),
    F(vigil_tcp_info, unacked, 16, 4),
    F(vigil_tcp_info, retransmits, 20, 4),
    F(vigil_tcp_info, total_retrans, 24, 4),
    F(vigil_tcp_info, backoff, 28, 4),
    F(vigil_tcp_info, probes, 32, 4),
    F(vigil_tcp_info, last_data_sent_ms, 36, 4),
    F(vigil_tcp_info, last_data_recv_ms, 40, 4),
    F(vigil_tcp_info, last_ack_recv_ms, 44, 4),
    F(vigil_tcp_info, snd_cwnd, 48, 4),
    F(vigil_tcp_info, notsent_bytes, 52, 4),

    /* vigil_hub_census_report */
    F(vigil_hub_census_report, counts, 0, 52),
    F(vigil_hub_census_report, total, 52, 4),
    F(vigil_hub_census_report, nports, 56, 4),
    F(vigil_hub_census_report, conns, 60, 4),
    F(vigil_hub_census_report, close_wait_unowned, 64, 4),
    F(vigil_hub_census_report, close_wait_stale, 68, 4),
    F(vigil_hub_census_report, leaked, 72, 4),
    F(vigil_hub_census_report, orphans, 76, 4),
    F(vigil_hub_census_report, ghosts, 80, 4),

    /* vigil_conn_callbacks */
    F(vigil_conn_callbacks, on_data, 0, 8),
    F(vigil_conn_callbacks, on_ping_due, 8, 8),
    F(vigil_conn_callbacks, on_idle, 16, 8),
    F(vigil_conn_callbacks, on_peer_closed, 24, 8),
    F(vigil_conn_callbacks, on_close, 32, 8),
    F(vigil_conn_callbacks, on_hello, 40, 8),

    /* vigil_error_info */
    F(vigil_error_info, code, 0, 4),
    F(vigil_error_info, sys_errno, 4, 4),
    F(vigil_error_info, call, 8, 8),
    F(vigil_error_info, message, 16, 8),

    /* vigil_census_query */
    F(vigil_census_query, ports, 0, 8),
    F(vigil_census_query, nports, 8, 8),
    F(vigil_census_query, port_match, 16, 4),
    F(vigil_census_query, states, 20, 4),
    F(vigil_census_query, family, 24, 4),
    F(vigil_census_query, want_sockets, 28, 4),
    F(vigil_census_query, list_states, 32, 4),
    F(vigil_census_query, max_sockets, 40, 8),
    F(vigil_census_query, want_self, 48, 4),
    F(vigil_census_query, want_owners, 52, 4),

    /* vigil_client_backoff */
    F(vigil_client_backoff, initial_ms, 0, 4),
    F(vigil_client_backoff, multiplier, 8, 8),
    F(vigil_client_backoff, max_ms, 16, 4),
    F(vigil_client_backoff, jitter, 24, 8),
    F(vigil_client_backoff, min_connect_timeout_ms, 32, 4),

    /* vigil_client_options */
    F(vigil_client_options, host, 0, 8),
    F(vigil_client_options, port, 8, 2),
    F(vigil_client_options, identity, 16, 8),
    F(vigil_client_options, connect_timeout_ms, 24, 4),
    F(vigil_client_options, policy, 32, 8),
    F(vigil_client_options, backoff, 40, 40),
    F(vigil_client_options, on_connected, 80, 8),
    F(vigil_client_options, on_data, 88, 8),
    F(vigil_client_options, on_disconnected, 96, 8),
    F(vigil_client_options, user_data, 104, 8),
    F(vigil_client_options, seed, 112, 8),
    F(vigil_client_options, random, 120, 8),
    F(vigil_client_options, random_data, 128, 8),

    /* vigil_tls_options */
    F(vigil_tls_options, identity_from, 0, 4),
    F(vigil_tls_options, identity_proof, 4, 4),
    F(vigil_tls_options, app_handshake, 8, 4),
    F(vigil_tls_options, session, 16, 8),

    /* vigil_tls_ctx_options */
    F(vigil_tls_ctx_options, min_version, 0, 4),
    F(vigil_tls_ctx_options, tickets, 4, 4),
    F(vigil_tls_ctx_options, session_cache, 8, 4),
    F(vigil_tls_ctx_options, session_timeout_s, 12, 4),
    F(vigil_tls_ctx_options, resume_without_dhe, 16, 4),
};

static void test_fields_keep_their_place(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const field *f = &fields[i];
    if (f->offset == f->want_offset && f->size == f->want_size) continue;
    fprintf(stderr, "%s.%s: offset %zu size %zu, was %zu and %zu\n",
            f->type, f->name, f->offset, f->size, f->want_offset,
            f->want_size);
    bad++;
  }
  assert_int_equal(bad, 0);
}

int main(void) {
#if !defined(__x86_64__) || !defined(__LP64__)
  vt_skip("the recorded layouts are x86-64 LP64");
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields_keep_their_place),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
