"""vigil.census(): TCP socket states on this machine (NETLINK_SOCK_DIAG),
with the notable sockets (CLOSE_WAIT, orphans) listed. The Python face of
the vigil-census tool; see include/vigil/census.h."""
import ctypes as C
import dataclasses
import socket
import time
import typing

from . import _types as T
from ._lib import lib, text
from .errors import check
from .tcp_state import StateCounts, TcpState

# The life of a connection: the order counts are printed in.
STATES = ("LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
          "LAST_ACK", "FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT",
          "CLOSE")
# FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK: where an fd-less socket lingers.
ORPHAN_STATES = ((1 << TcpState.FIN_WAIT1) | (1 << TcpState.FIN_WAIT2)
                 | (1 << TcpState.CLOSING) | (1 << TcpState.LAST_ACK))
LISTED_BY_DEFAULT = (1 << TcpState.CLOSE_WAIT) | ORPHAN_STATES
_FAMILIES = {None: 0, 4: 1, 6: 2, socket.AF_INET: 1, socket.AF_INET6: 2}


@dataclasses.dataclass(frozen=True)
class CensusSocket:
    family: str          # "ipv4" or "ipv6"
    state: str           # "CLOSE_WAIT", ...
    local: str           # "127.0.0.1:1883", "[::1]:1883"
    peer: str
    timer: str           # "none", "retransmit", "keepalive", ...
    expires_ms: int
    retransmits: int
    rqueue: int
    wqueue: int
    uid: int
    inode: int           # 0: orphan, no fd refers to it any more
    orphan: bool
    in_this_process: bool
    pid: int             # owner (census(owners=True)); 0 = unknown
    comm: str
    cookie: int          # kernel socket cookie, stable while it lives


@dataclasses.dataclass(frozen=True)
class Census:
    ts_ms: int
    ports: typing.Tuple[int, ...]
    total: int
    counts: StateCounts       # every state in STATES order
    orphans: int
    self_counts: StateCounts  # held by this process
    sockets: typing.List[CensusSocket]
    sockets_omitted: int
    owners_resolved: bool
    unreadable_processes: int

    def as_dict(self):
        """The vigil-census --json shape."""
        d = dataclasses.asdict(self)
        del d["self_counts"]
        for s in d["sockets"]:
            del s["in_this_process"], s["cookie"]
        d["ports"] = list(self.ports)
        return d


def state_mask(states):
    """A state bit mask from names ("close-wait", "FIN_WAIT1") or ints."""
    mask = 0
    for s in states or ():
        st = s if isinstance(s, int) else lib.vigil_census_state_parse(
            str(s).encode())
        if st <= 0 or st >= T.TCP_STATE_COUNT:
            raise ValueError("unknown TCP state %r" % (s,))
        mask |= 1 << st
    return mask


def _socket(s):
    return CensusSocket(
        family="ipv6" if s.family == socket.AF_INET6 else "ipv4",
        state=text(lib.vigil_tcp_state_name(s.state)),
        local=text(s.local), peer=text(s.peer),
        timer=text(lib.vigil_census_timer_name(s.timer)),
        expires_ms=s.expires_ms, retransmits=s.retransmits,
        rqueue=s.rqueue, wqueue=s.wqueue, uid=s.uid, inode=s.inode,
        orphan=s.inode == 0, in_this_process=bool(s.in_this_process),
        pid=s.owner_pid, comm=text(s.owner_comm), cookie=s.id.cookie)


def census(ports=(), states=None, owners=False, either=False, family=None,
           list_states=None, limit=100):
    """Counts TCP sockets per state. ports: local ports to match (empty =
    all); either: match peer ports too; states: only these states (names
    or numbers), also listed; otherwise CLOSE_WAIT and orphan states are
    listed (list_states overrides); owners: find the pid holding each
    listed socket (scans /proc, costly); limit: max sockets listed."""
    ports = tuple(int(p) for p in ports)
    if any(not 0 < p < 65536 for p in ports):
        raise ValueError("ports must be 1..65535")
    if family not in _FAMILIES:
        raise ValueError("family must be None, 4 or 6")
    q = T.CensusQueryStruct()
    lib.vigil_census_query_init(C.byref(q))
    port_array = (C.c_uint16 * max(len(ports), 1))(*ports)
    q.ports, q.nports = port_array, len(ports)
    q.port_match = 1 if either else 0
    q.states = state_mask(states)
    q.family = _FAMILIES[family]
    q.want_owners = 1 if owners else 0
    q.want_sockets = 0 if limit == 0 else 1
    q.max_sockets = limit or 0
    if list_states is not None:
        q.list_states = state_mask(list_states)
    else:
        q.list_states = q.states or LISTED_BY_DEFAULT
    out = C.POINTER(T.CensusStruct)()
    check(lib.vigil_census_run(C.byref(q), C.byref(out)), "census")
    try:
        c = out.contents
        return Census(
            ts_ms=int(time.time() * 1000), ports=ports, total=c.total,
            counts=StateCounts((n, c.counts[TcpState[n]]) for n in STATES),
            orphans=c.orphans,
            self_counts=StateCounts((n, c.self_counts[TcpState[n]])
                                    for n in STATES),
            sockets=[_socket(c.sockets[i]) for i in range(c.nsockets)],
            sockets_omitted=c.sockets_omitted,
            owners_resolved=bool(c.owners_resolved),
            unreadable_processes=c.unreadable_processes)
    finally:
        lib.vigil_census_free(out)
