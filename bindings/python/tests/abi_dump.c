/*
 * Prints the size and field offsets of every struct the Python bindings
 * mirror with ctypes, as one JSON object, so test_abi.py can prove the
 * mirrors (vigil/_types.py, vigil/_ev.py) match what the compiler sees.
 */
#include <ev.h>
#include <stddef.h>
#include <stdio.h>

#include "vigil.h"

static int first_struct = 1, first_field;

static void begin(const char *name, size_t size) {
  printf("%s\"%s\":{\"size\":%zu,\"fields\":{", first_struct ? "" : ",",
         name, size);
  first_struct = 0;
  first_field = 1;
}

static void field(const char *name, size_t offset) {
  printf("%s\"%s\":%zu", first_field ? "" : ",", name, offset);
  first_field = 0;
}

static void end(void) { printf("}}"); }

#define F(type, name) field(#name, offsetof(type, name))

int main(void) {
  printf("{");
  begin("PolicyStruct", sizeof(vigil_policy));
  F(vigil_policy, user_timeout_ms); F(vigil_policy, idle_action);
  F(vigil_policy, abort_dead); F(vigil_policy, output_limit);
  F(vigil_policy, overflow_action); F(vigil_policy, max_frame);
  end();
  begin("SockoptsStruct", sizeof(vigil_sockopts));
  F(vigil_sockopts, user_timeout_ms); F(vigil_sockopts, nodelay);
  end();
  begin("TcpInfoStruct", sizeof(vigil_tcp_info));
  F(vigil_tcp_info, rtt_us); F(vigil_tcp_info, notsent_bytes);
  end();
  begin("EventHead", sizeof(vigil_event));
  F(vigil_event, type); F(vigil_event, ts_ms); F(vigil_event, conn);
  F(vigil_event, conn_id);
  end();
  begin("HubOptionsStruct", sizeof(vigil_hub_options));
  F(vigil_hub_options, tick_ms); F(vigil_hub_options, on_event);
  F(vigil_hub_options, on_takeover); F(vigil_hub_options, census_interval_ms);
  F(vigil_hub_options, ghost_threshold); F(vigil_hub_options, wall_clock);
  F(vigil_hub_options, wall_clock_data);
  F(vigil_hub_options, cluster);
  end();
  begin("ClusterOptionsStruct", sizeof(vigil_cluster_options));
  F(vigil_cluster_options, url); F(vigil_cluster_options, prefix);
  F(vigil_cluster_options, node);
  F(vigil_cluster_options, command_timeout_ms);
  F(vigil_cluster_options, liveness_ttl_ms);
  end();
  begin("ConnCallbacksStruct", sizeof(vigil_conn_callbacks));
  F(vigil_conn_callbacks, on_close); F(vigil_conn_callbacks, on_hello);
  end();
  begin("AdoptOptionsStruct", sizeof(vigil_adopt_options));
  F(vigil_adopt_options, user_data); F(vigil_adopt_options, watch_only);
  F(vigil_adopt_options, tls_ctx); F(vigil_adopt_options, tls);
  end();
  begin("ListenOptionsStruct", sizeof(vigil_listen_options));
  F(vigil_listen_options, port); F(vigil_listen_options, adopt);
  F(vigil_listen_options, on_accept);
  F(vigil_listen_options, emfile_backoff_max_ms);
  end();
  begin("StatsStruct", sizeof(vigil_stats));
  F(vigil_stats, closed); F(vigil_stats, takeovers);
  F(vigil_stats, takeovers_by_scope);
  end();
  begin("HubCensusStruct", sizeof(vigil_hub_census_report));
  F(vigil_hub_census_report, total); F(vigil_hub_census_report, ghosts);
  end();
  begin("CensusQueryStruct", sizeof(vigil_census_query));
  F(vigil_census_query, states); F(vigil_census_query, max_sockets);
  F(vigil_census_query, want_owners);
  end();
  begin("CensusSocketStruct", sizeof(vigil_census_socket));
  F(vigil_census_socket, timer); F(vigil_census_socket, inode);
  F(vigil_census_socket, owner_pid); F(vigil_census_socket, owner_comm);
  F(vigil_census_socket, id);
  end();
  begin("CensusSockidStruct", sizeof(vigil_census_sockid));
  F(vigil_census_sockid, local_port); F(vigil_census_sockid, cookie);
  end();
  begin("CensusStruct", sizeof(vigil_census));
  F(vigil_census, self_counts); F(vigil_census, sockets);
  F(vigil_census, owners_resolved); F(vigil_census, unreadable_processes);
  end();
  begin("EvTimer", sizeof(ev_timer));
  F(ev_timer, data); F(ev_timer, cb); F(ev_timer, at); F(ev_timer, repeat);
  end();
  printf("}\n");
  return 0;
}
