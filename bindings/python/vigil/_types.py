"""ctypes mirrors of the C structs in include/vigil.h, vigil/census.h and
vigil/cluster.h.

Field order and types follow the headers exactly; tests/test_abi.py
compares sizes and offsets against the C compiler's (abi_dump.c).
Enums are int-sized in C and declared c_int here.
"""
import ctypes as C

TCP_STATE_COUNT = 13  # VIGIL_TCP_STATE__COUNT
CENSUS_ADDRSTRLEN = 64
CENSUS_COMMLEN = 16


class PolicyStruct(C.Structure):
    _fields_ = [
        ("keepalive", C.c_int),
        ("keepalive_idle_s", C.c_int),
        ("keepalive_intvl_s", C.c_int),
        ("keepalive_cnt", C.c_int),
        ("user_timeout_ms", C.c_int64),
        ("ping_interval_ms", C.c_uint32),
        ("dead_after_ms", C.c_uint32),
        ("suspect_after_ms", C.c_uint32),
        ("suspect_ping", C.c_int),
        ("read_idle_ms", C.c_uint32),
        ("write_idle_ms", C.c_uint32),
        ("all_idle_ms", C.c_uint32),
        ("idle_action", C.c_int),
        ("handshake_timeout_ms", C.c_uint32),
        ("drain_timeout_ms", C.c_uint32),
        ("linger_max_ms", C.c_uint32),
        ("close_wait_grace_ms", C.c_uint32),
        ("fin_wait2_s", C.c_int),
        ("abort_dead", C.c_int),
        ("output_limit", C.c_size_t),
        ("overflow_action", C.c_int),
        ("takeover", C.c_int),
        ("flap_max", C.c_uint32),
        ("flap_window_ms", C.c_uint32),
        ("flap_ban_ms", C.c_uint32),
        ("frame_codec", C.c_int),
        ("max_frame", C.c_uint32),
        ("nodelay", C.c_int),
        ("ping_min_interval_ms", C.c_uint32),
        ("ping_strikes", C.c_uint32),
        ("path_idle_max_s", C.c_uint32),
    ]


class SockoptsStruct(C.Structure):
    _fields_ = [
        ("keepalive", C.c_int),
        ("keepalive_idle_s", C.c_int),
        ("keepalive_intvl_s", C.c_int),
        ("keepalive_cnt", C.c_int),
        ("user_timeout_ms", C.c_uint32),
        ("fin_wait2_s", C.c_int),
        ("nodelay", C.c_int),
    ]


class TcpInfoStruct(C.Structure):
    _fields_ = [("state", C.c_int)] + [
        (name, C.c_uint32)
        for name in (
            "rtt_us", "rttvar_us", "rto_us", "unacked", "retransmits",
            "total_retrans", "backoff", "probes", "last_data_sent_ms",
            "last_data_recv_ms", "last_ack_recv_ms", "snd_cwnd",
            "notsent_bytes",
        )
    ]


class EventHead(C.Structure):
    """The first fields of vigil_event: only read through a pointer."""
    _fields_ = [
        ("type", C.c_int),
        ("ts_ms", C.c_uint64),
        ("conn", C.c_void_p),
        ("conn_id", C.c_uint64),
    ]


# Callback signatures. Pointers arrive as plain ints (c_void_p).
EVENT_CB = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(EventHead), C.c_void_p)
TAKEOVER_CB = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_void_p,
                          C.c_void_p)
SHUTDOWN_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)
ACCEPT_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_void_p)
DATA_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_size_t, C.c_void_p)
CONN_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)
IDLE_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_void_p)
CLOSE_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_void_p)


class ClusterOptionsStruct(C.Structure):
    """vigil_cluster_options (vigil/cluster.h)."""
    _fields_ = [
        ("url", C.c_char_p),
        ("prefix", C.c_char_p),
        ("node", C.c_char_p),
        ("command_timeout_ms", C.c_uint32),
        ("liveness_ttl_ms", C.c_uint32),
    ]


class HubOptionsStruct(C.Structure):
    _fields_ = [
        ("policy", C.POINTER(PolicyStruct)),
        ("tick_ms", C.c_uint32),
        ("expire_batch", C.c_uint32),
        ("on_event", EVENT_CB),
        ("event_data", C.c_void_p),
        ("clock", C.c_void_p),
        ("clock_data", C.c_void_p),
        ("on_takeover", TAKEOVER_CB),
        ("takeover_data", C.c_void_p),
        ("census_interval_ms", C.c_uint32),
        ("ghost_threshold", C.c_uint32),
        ("wall_clock", C.c_void_p),
        ("wall_clock_data", C.c_void_p),
        ("cluster", C.POINTER(ClusterOptionsStruct)),
    ]


class ConnCallbacksStruct(C.Structure):
    _fields_ = [
        ("on_data", DATA_CB),
        ("on_ping_due", CONN_CB),
        ("on_idle", IDLE_CB),
        ("on_peer_closed", CONN_CB),
        ("on_close", CLOSE_CB),
        ("on_hello", DATA_CB),
    ]


class AdoptOptionsStruct(C.Structure):
    _fields_ = [
        ("policy", C.POINTER(PolicyStruct)),
        ("callbacks", C.POINTER(ConnCallbacksStruct)),
        ("user_data", C.c_void_p),
        ("watch_only", C.c_int),
        # TLS (vigil/tls.h): not exposed in Python; left NULL/0.
        ("tls_ctx", C.c_void_p),
        ("tls_client", C.c_int),
        ("tls_sni", C.c_char_p),
        ("tls", C.c_void_p),
    ]


class ListenOptionsStruct(C.Structure):
    _fields_ = [
        ("host", C.c_char_p),
        ("port", C.c_uint16),
        ("backlog", C.c_int),
        ("reuseport", C.c_int),
        ("adopt", AdoptOptionsStruct),
        ("on_accept", ACCEPT_CB),
        ("accept_data", C.c_void_p),
        ("emfile_backoff_min_ms", C.c_uint32),
        ("emfile_backoff_max_ms", C.c_uint32),
    ]


class StatsStruct(C.Structure):
    _fields_ = [
        ("open", C.c_uint64),
        ("opened", C.c_uint64),
        ("closed", C.c_uint64 * 32),  # VIGIL_REASON_CAPACITY
        ("bytes_in", C.c_uint64),
        ("bytes_out", C.c_uint64),
        ("accept_paused", C.c_uint64),
        ("takeovers", C.c_uint64),
        ("takeovers_by_scope", C.c_uint64 * 4),  # VIGIL_SCOPE_CAPACITY
        ("takeovers_by_class", C.c_uint64 * 4),  # VIGIL_PEER_CAPACITY
    ]


class HubCensusStruct(C.Structure):
    _fields_ = [("counts", C.c_uint32 * TCP_STATE_COUNT)] + [
        (name, C.c_uint32)
        for name in ("total", "nports", "conns", "close_wait_unowned",
                     "close_wait_stale", "leaked", "orphans", "ghosts")
    ]


class CensusQueryStruct(C.Structure):
    _fields_ = [
        ("ports", C.POINTER(C.c_uint16)),
        ("nports", C.c_size_t),
        ("port_match", C.c_int),
        ("states", C.c_uint32),
        ("family", C.c_int),
        ("want_sockets", C.c_int),
        ("list_states", C.c_uint32),
        ("max_sockets", C.c_size_t),
        ("want_self", C.c_int),
        ("want_owners", C.c_int),
    ]


class CensusSockidStruct(C.Structure):
    _fields_ = [
        ("local_addr", C.c_uint8 * 16),
        ("peer_addr", C.c_uint8 * 16),
        ("local_port", C.c_uint16),
        ("peer_port", C.c_uint16),
        ("ifindex", C.c_uint32),
        ("cookie", C.c_uint64),
    ]


class CensusSocketStruct(C.Structure):
    _fields_ = [
        ("family", C.c_int),
        ("state", C.c_int),
        ("local", C.c_char * CENSUS_ADDRSTRLEN),
        ("peer", C.c_char * CENSUS_ADDRSTRLEN),
        ("timer", C.c_int),
        ("expires_ms", C.c_uint32),
        ("retransmits", C.c_uint32),
        ("rqueue", C.c_uint32),
        ("wqueue", C.c_uint32),
        ("uid", C.c_uint32),
        ("inode", C.c_uint64),
        ("in_this_process", C.c_int),
        ("owner_pid", C.c_int),  # pid_t
        ("owner_comm", C.c_char * CENSUS_COMMLEN),
        ("id", CensusSockidStruct),
    ]


class CensusStruct(C.Structure):
    _fields_ = [
        ("counts", C.c_uint32 * TCP_STATE_COUNT),
        ("total", C.c_uint32),
        ("orphans", C.c_uint32),
        ("self_counts", C.c_uint32 * TCP_STATE_COUNT),
        ("sockets", C.POINTER(CensusSocketStruct)),
        ("nsockets", C.c_size_t),
        ("sockets_omitted", C.c_size_t),
        ("owners_resolved", C.c_int),
        ("unreadable_processes", C.c_uint32),
    ]
