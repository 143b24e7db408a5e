"""Helpers for any TCP socket, including one an asyncio loop owns: apply a
policy's socket options, read them back, read TCP_INFO."""
import ctypes as C
import dataclasses

from . import _types as T
from ._lib import lib, text
from .errors import check
from .policy import Policy, policy_ref
from .tcp_state import TcpState


@dataclasses.dataclass(frozen=True)
class SockOpts:
    """Socket options as the kernel reports them (vigil_sockopts)."""
    keepalive: int
    keepalive_idle_s: int
    keepalive_intvl_s: int
    keepalive_cnt: int
    user_timeout_ms: int
    fin_wait2_s: int
    nodelay: int


@dataclasses.dataclass(frozen=True)
class TcpInfo:
    """A TCP_INFO snapshot (vigil_tcp_info); *_ms fields are ms ago."""
    state: TcpState
    rtt_us: int
    rttvar_us: int
    rto_us: int
    unacked: int
    retransmits: int
    total_retrans: int
    backoff: int
    probes: int
    last_data_sent_ms: int
    last_data_recv_ms: int
    last_ack_recv_ms: int
    snd_cwnd: int
    notsent_bytes: int

    def __post_init__(self):
        object.__setattr__(self, "state", TcpState(self.state))

    @property
    def state_name(self):
        """"ESTABLISHED", "CLOSE_WAIT", ... as netstat prints them."""
        return text(lib.vigil_tcp_state_name(self.state))


def _from_struct(cls, s):
    return cls(**{f.name: getattr(s, f.name)
                  for f in dataclasses.fields(cls)})


def fileno(sock):
    """The fd of a socket object (or anything with fileno()) or an int."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    if fd < 0:
        raise ValueError("socket is closed")
    return fd


def apply_policy(sock, policy=None):
    """Sets keepalive, TCP_USER_TIMEOUT and TCP_LINGER2 from policy (a
    vigil.Policy; None = defaults) on a connected or listening TCP socket.
    The socket stays the caller's."""
    check(lib.vigil_socket_apply_policy(fileno(sock),
                                        policy_ref(policy or Policy())),
          "apply_policy")


def sockopts(sock):
    """The effective keepalive/user-timeout/linger2/nodelay options."""
    s = T.SockoptsStruct()
    check(lib.vigil_socket_get_opts(fileno(sock), C.byref(s)), "sockopts")
    return _from_struct(SockOpts, s)


def tcp_info(sock):
    """A TcpInfo snapshot of the socket."""
    s = T.TcpInfoStruct()
    check(lib.vigil_socket_tcp_info(fileno(sock), C.byref(s)), "tcp_info")
    return _from_struct(TcpInfo, s)
