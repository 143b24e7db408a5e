"""vigil.Conn: one adopted connection. Its C handle is valid until on_close
returns; after that every call but close()/abort() raises ClosedError."""
import ctypes as C
import weakref

from . import _types as T
from ._lib import lib, text
from .errors import ECLOSED, ClosedError, check
from .policy import policy_ref
from .sockets import SockOpts, TcpInfo, _from_struct


class Conn:
    """A connection owned by a Hub. id and peer stay readable after close;
    reason is the close reason's log name ("heartbeat_timeout") once closed,
    else None. Attach your own attributes freely (conn.session = ...)."""

    def __init__(self, hub, ptr, handlers):
        self._ptr = ptr
        self._hub = weakref.ref(hub)
        self._handlers = handlers
        self.id = lib.vigil_conn_id(ptr)
        self.peer = text(lib.vigil_conn_peer(ptr))
        self.reason = None

    def _c(self, what):
        if self._ptr is None:
            raise ClosedError(what, "conn %d closed: %s" % (self.id,
                                                            self.reason))
        return self._ptr

    def _mark_closed(self, reason):
        self._ptr = None
        self.reason = reason

    @property
    def hub(self):
        return self._hub()

    @property
    def closed(self):
        """True once on_close was delivered (or the hub was closed)."""
        return self._ptr is None

    @property
    def state(self):
        """"handshake", "open", "close_wait", "flushing", "draining" or
        "closed" (vigil_conn_state_name)."""
        if self._ptr is None:
            return "closed"
        return text(lib.vigil_conn_state_name(
            lib.vigil_conn_get_state(self._ptr)))

    @property
    def queued(self):
        """Bytes waiting in vigil's output queue."""
        return lib.vigil_conn_queued(self._c("queued"))

    @property
    def identity(self):
        """The identity set by identify(), or None."""
        value = lib.vigil_conn_identity(self._c("identity"))
        return value.decode("utf-8", "replace") if value else None

    def send(self, data):
        """Queues bytes (any bytes-like object); the write is all-or-nothing
        against output_limit. ClosedError once closing started."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()  # bytes-like only: not int
        check(lib.vigil_send(self._c("send"), data, len(data)), "send")

    def close(self):
        """Graceful close: flush, FIN, drain. No-op once closed."""
        if self._ptr is not None:
            check(lib.vigil_close(self._ptr), "close")

    def abort(self):
        """Close with RST now, dropping queued output. No-op once closed."""
        if self._ptr is not None:
            check(lib.vigil_abort(self._ptr), "abort")

    def ready(self):
        """Marks the handshake done (stops handshake_timeout)."""
        check(lib.vigil_conn_ready(self._c("ready")), "ready")

    def ping_received(self):
        """Reports a ping of the host's own protocol, before answering it
        (the policy's ping_min_interval_ms / ping_strikes guard). True:
        answer it. False: do not; that ping was one strike too many and
        the conn is closing with reason ping_flood (or was closing)."""
        rc = lib.vigil_conn_ping_received(self._c("ping_received"))
        if rc == ECLOSED:
            return False
        check(rc, "ping_received")
        return True

    def identify(self, identity):
        """Claims an identity (str or bytes); takeover per the policy.
        VigilError VIGIL_EREJECTED / VIGIL_EBANNED when this conn lost."""
        if isinstance(identity, str):
            identity = identity.encode("utf-8")
        check(lib.vigil_conn_identify(self._c("identify"), identity,
                                      len(identity)), "identify")

    def set_policy(self, policy):
        """Per-connection policy; socket options re-applied at once."""
        check(lib.vigil_conn_set_policy(self._c("set_policy"),
                                        policy_ref(policy)), "set_policy")

    def tcp_info(self):
        s = T.TcpInfoStruct()
        check(lib.vigil_conn_tcp_info(self._c("tcp_info"), C.byref(s)),
              "tcp_info")
        return _from_struct(TcpInfo, s)

    def sockopts(self):
        s = T.SockoptsStruct()
        check(lib.vigil_conn_sockopts(self._c("sockopts"), C.byref(s)),
              "sockopts")
        return _from_struct(SockOpts, s)

    def __repr__(self):
        extra = " reason=%s" % self.reason if self.reason else ""
        return "<vigil.Conn %d %s %s%s>" % (self.id, self.peer, self.state,
                                            extra)
