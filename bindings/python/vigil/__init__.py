"""vigil: keeps long-lived TCP connections honest (Python bindings).

Pure standard library over libvigil.so through ctypes. See README.md.

    import vigil
    policy = vigil.Policy(ping_interval_ms=10000, dead_after_ms=30000)
    hub = vigil.Hub(policy)
    hub.listen("0.0.0.0", 1883, on_data=lambda c, data: c.send(data))
    hub.run()
"""
from ._lib import LibraryError
from ._lib import path as library_path
from ._lib import version as _found
from ._census import Census, CensusSocket, census
from .cluster import ClusterOptions
from ._version import __version__
from .conn import Conn
from .errors import ClosedError, VigilError
from .hub import CallbackError, Hub, Listener
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import metrics
from .policy import (SUSPECT_AUTO, USER_TIMEOUT_AUTO, USER_TIMEOUT_OFF,
                     IdleAction, OverflowAction, Policy, Takeover)
from .sockets import SockOpts, TcpInfo, apply_policy, sockopts, tcp_info
from .tcp_state import TcpState

library_version = "%d.%d.%d" % _found

__all__ = [
    "Census", "CensusSocket", "CallbackError", "ClosedError",
    "ClusterOptions", "Conn", "Hub",
    "IdleAction", "LibraryError", "Listener", "METRICS_CONTENT_TYPE",
    "OverflowAction", "Policy", "SUSPECT_AUTO", "SockOpts", "Takeover",
    "TcpInfo", "TcpState", "USER_TIMEOUT_AUTO", "USER_TIMEOUT_OFF",
    "VigilError", "apply_policy", "census", "library_path",
    "library_version", "metrics", "sockopts", "tcp_info",
]
