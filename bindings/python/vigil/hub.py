"""vigil.Hub: a vigil hub on its own libev loop, driven from Python.

Lifetimes. C calls back through ctypes function objects that the Hub keeps
for its whole life; they reach the Hub through a weak reference, so
neither they nor Conn/Listener objects keep a dropped Hub alive. Live Conn
objects are kept by the Hub (keyed by C pointer), so dropping your own
references to them changes nothing. When the C side frees conns (on_close,
hub close) their Python objects are marked closed before the pointer dies.

Errors in callbacks. An exception from a per-connection handler (on_open,
on_data, on_ping_due, on_idle, on_peer_closed, on_hello) is logged on the
"vigil" logger, stored in hub.errors and passed to on_error; the conn is
then closed with RST and reason io_error (vigil_conn_fail). Exceptions
from on_close, on_event, on_takeover and on_error are only reported.
KeyboardInterrupt/SystemExit stop the loop and propagate from run().
"""
import collections
import ctypes as C
import json
import logging
import warnings
import weakref

from . import _ev
from . import _types as T
from ._lib import lib, text
from .cluster import cluster_ref
from .conn import Conn
from .errors import EINVAL, VigilError, check
from .policy import policy_ref
from .sockets import fileno
from .tcp_state import StateCounts, TcpState

log = logging.getLogger("vigil")

CallbackError = collections.namedtuple("CallbackError",
                                       "callback conn exception")

_HANDLERS = ("on_open", "on_data", "on_close", "on_ping_due", "on_idle",
             "on_peer_closed", "on_hello", "on_event")
Handlers = collections.namedtuple("Handlers", _HANDLERS,
                                  defaults=(None,) * len(_HANDLERS))
_NO_HANDLERS = Handlers()
_LOG_JSON = 1


def _trampoline(ref, method):
    """A C-callable function forwarding to ref().method while it lives."""
    def call(*args):
        hub = ref()
        if hub is None:
            return 0
        hub._in_cb += 1
        try:
            return getattr(hub, method)(*args)
        except BaseException as e:  # never let ctypes swallow it silently
            hub._interrupted(e)
            return 0
        finally:
            hub._in_cb -= 1
    return call


class Listener:
    """A listening socket whose accepted conns are adopted by the hub."""

    def __init__(self, hub, ptr, key):
        self._hub = weakref.ref(hub)
        self._ptr = ptr
        self._key = key
        self.port = lib.vigil_listener_port(ptr)

    def close(self):
        hub = self._hub()
        if self._ptr is None or hub is None or hub._hub is None:
            self._ptr = None
            return
        lib.vigil_listener_close(self._ptr)
        hub._listeners.pop(self._key, None)
        hub._handlers.pop(self._key, None)
        self._ptr = None

    def __repr__(self):
        return "<vigil.Listener port %d%s>" % (
            self.port, "" if self._ptr else " closed")


class Hub:
    """A vigil hub with its own libev loop.

    policy: default vigil.Policy for conns (None = library defaults);
    tick_ms: deadline granularity; on_event(event_dict) sees every event;
    on_error(CallbackError) sees callback exceptions; on_takeover(old, new)
    -> bool decides takeover in Takeover.ASK mode; cluster: a
    vigil.ClusterOptions to run the hub as a node of a cluster (identity
    takeover across nodes through Redis; see directory_up)."""

    def __init__(self, policy=None, tick_ms=10, on_event=None, on_error=None,
                 on_takeover=None, census_interval_ms=0, ghost_threshold=0,
                 cluster=None):
        cluster_ptr = cluster_ref(cluster)  # TypeError before any C object
        self._hub = None
        self._loop = _ev.Loop()
        self._conns = {}       # C pointer -> Conn
        self._handlers = {}    # user_data key -> Handlers
        self._listeners = {}   # key -> Listener
        self._next_key = 1
        self._adopting = None  # ptr -> Conn created while vigil_adopt runs
        self._running = False
        self._in_cb = 0        # Python callbacks on the stack
        self._stopping = False
        self._pending_exc = None
        self._evbuf = C.create_string_buffer(2048)
        self.errors = collections.deque(maxlen=100)
        self.on_event, self.on_error = on_event, on_error
        self.on_takeover = on_takeover
        self.policy = policy
        self.cluster = cluster
        ref = weakref.ref(self)
        # C holds these function pointers for the hub's whole life.
        self._cb = {
            "event": T.EVENT_CB(_trampoline(ref, "_c_event")),
            "takeover": T.TAKEOVER_CB(_trampoline(ref, "_c_takeover")),
            "shutdown": T.SHUTDOWN_CB(_trampoline(ref, "_c_shutdown")),
            "accept": T.ACCEPT_CB(_trampoline(ref, "_c_accept")),
        }
        self._conn_cb = {
            "on_data": T.DATA_CB(_trampoline(ref, "_c_data")),
            "on_ping_due": T.CONN_CB(_trampoline(ref, "_c_ping_due")),
            "on_idle": T.IDLE_CB(_trampoline(ref, "_c_idle")),
            "on_peer_closed": T.CONN_CB(_trampoline(ref, "_c_peer_closed")),
            "on_close": T.CLOSE_CB(_trampoline(ref, "_c_close")),
            "on_hello": T.DATA_CB(_trampoline(ref, "_c_hello")),
        }
        opts = T.HubOptionsStruct()
        lib.vigil_hub_options_init(C.byref(opts))
        opts.policy = policy_ref(policy)
        opts.tick_ms = tick_ms
        opts.on_event = self._cb["event"]
        opts.on_takeover = self._cb["takeover"]
        opts.census_interval_ms = census_interval_ms
        opts.ghost_threshold = ghost_threshold
        opts.cluster = cluster_ptr  # copied by vigil_hub_new
        out = C.c_void_p()
        rc = lib.vigil_hub_new(self._loop.ptr, C.byref(opts), C.byref(out))
        if rc != 0:
            self._loop.destroy()
            if rc == EINVAL:
                raise ValueError("invalid hub options (tick_ms must be "
                                 "1..1000)")
            check(rc, "Hub")
        self._hub = out.value

    # ---- loop ----------------------------------------------------------

    def run_once(self, timeout=None):
        """Runs one loop iteration: waits for activity at most timeout
        seconds (None: until something happens; 0: no waiting)."""
        if self._hub is None:
            raise RuntimeError("hub is closed")
        if self._running or self._in_cb:
            raise RuntimeError("run_once() called from inside a callback")
        self._running = True
        try:
            self._loop.run_once(timeout)
        finally:
            self._running = False
            if self._hub is None:
                self._finish_close()
        exc, self._pending_exc = self._pending_exc, None
        if exc is not None:
            raise exc

    def run(self):
        """Runs the loop until stop() or close() (from a callback) or a
        KeyboardInterrupt."""
        self._stopping = False
        while not self._stopping and self._hub is not None:
            self.run_once(1.0)

    def stop(self):
        """Makes run() return after the current iteration."""
        self._stopping = True
        if self._running:
            self._loop.break_()

    def close(self):
        """Closes every conn at once (on_close with reason shutdown), the
        listeners and the hub. Safe inside a callback: the C side finishes
        once the callback has returned into C, so the loop is destroyed
        later (after run_once, or when the Hub is collected)."""
        if self._hub is None:
            return
        hub, self._hub = self._hub, None
        self._stopping = True
        lib.vigil_hub_free(hub)
        if self._running:
            self._loop.break_()
        elif not self._in_cb:
            self._finish_close()

    def _finish_close(self):
        for conn in self._conns.values():
            conn._mark_closed("shutdown")
        self._conns.clear()
        for listener in self._listeners.values():
            listener._ptr = None
        self._listeners.clear()
        self._loop.destroy()

    def shutdown(self, deadline_ms=5000, done=None):
        """Graceful shutdown: stops listeners, closes every conn gracefully
        (reason shutdown), aborts what remains after deadline_ms, then calls
        done() (default: stop(), so run() returns)."""
        self._shutdown_done = done  # no bound method: no reference cycle
        check(lib.vigil_hub_shutdown(self._c("shutdown"), deadline_ms,
                                     self._cb["shutdown"], None), "shutdown")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_hub", None) is not None:
            warnings.warn("unclosed %r" % self, ResourceWarning, source=self)
            self.close()
        elif getattr(self, "_loop", None) is not None:
            self._finish_close()  # close() ran inside a callback

    def __repr__(self):
        return "<vigil.Hub %s, %d conns>" % (
            "closed" if self._hub is None else "open", len(self._conns))

    # ---- conns and listeners --------------------------------------------

    def _c(self, what):
        if self._hub is None:
            raise RuntimeError("%s: hub is closed" % what)
        return self._hub

    def _add_handlers(self, handlers):
        key = self._next_key
        self._next_key += 1
        self._handlers[key] = Handlers(**handlers)
        return key

    def _callbacks_for(self, handlers):
        """The C callback set: on_close always (to retire the Conn), the
        others only when given, since their presence changes what C does
        (no on_peer_closed: a peer FIN closes the conn at once)."""
        cbs = T.ConnCallbacksStruct()
        for name, fn in self._conn_cb.items():
            if name == "on_close" or handlers.get(name) is not None:
                setattr(cbs, name, fn)
        return C.pointer(cbs)

    def listen(self, host="127.0.0.1", port=0, policy=None, backlog=511,
               reuseport=False, **handlers):
        """Listens on host:port (port 0: ephemeral, see .port) and adopts
        every accepted conn. Handlers: on_open(conn), on_data(conn, bytes),
        on_close(conn, reason), on_ping_due(conn), on_idle(conn, kind),
        on_peer_closed(conn), on_hello(conn, identity_bytes),
        on_event(event_dict) for this listener's conns."""
        hub = self._c("listen")
        key = self._add_handlers(handlers)
        o = T.ListenOptionsStruct()
        lib.vigil_listen_options_init(C.byref(o))
        o.host = host.encode() if host else None
        o.port = port
        o.backlog = backlog
        o.reuseport = 1 if reuseport else 0
        o.adopt.policy = policy_ref(policy)
        o.adopt.callbacks = self._callbacks_for(handlers)
        o.adopt.user_data = key
        o.on_accept = self._cb["accept"]
        out = C.c_void_p()
        try:
            check(lib.vigil_listen(hub, C.byref(o), C.byref(out)),
                  "listen %s:%d" % (host, port))
        except BaseException:
            del self._handlers[key]
            raise
        listener = Listener(self, out.value, key)
        self._listeners[key] = listener
        return listener

    def adopt(self, sock, policy=None, **handlers):
        """Adopts a connected TCP socket (socket object or fd). On success
        the hub owns it: a socket object is detached (its fileno() becomes
        -1). Handlers as for listen(); on_open runs before adopt returns."""
        hub = self._c("adopt")
        key = self._add_handlers(handlers)
        o = T.AdoptOptionsStruct()
        lib.vigil_adopt_options_init(C.byref(o))
        o.policy = policy_ref(policy)
        o.callbacks = self._callbacks_for(handlers)
        o.user_data = key
        out = C.c_void_p()
        self._adopting = {}
        try:
            check(lib.vigil_adopt(hub, fileno(sock), C.byref(o),
                                  C.byref(out)), "adopt")
            # A callback may have closed the hub meanwhile: the C conn is
            # then gone, but its Python object was retired by on_close.
            conn = self._adopting.get(out.value)
        finally:
            del self._handlers[key]
            self._adopting = None
        if not isinstance(sock, int):
            sock.detach()
        if self._hub is None:
            if not self._in_cb:
                self._finish_close()
            return conn
        conn = self._conn(out.value, key_handlers=Handlers(**handlers))
        self._call("on_open", conn, conn)
        return conn

    @property
    def conns(self):
        """The live connections."""
        return list(self._conns.values())

    def set_policy(self, policy):
        """Default policy for conns adopted from now on."""
        check(lib.vigil_hub_set_policy(self._c("set_policy"),
                                       policy_ref(policy)), "set_policy")
        self.policy = policy

    def find_identity(self, identity):
        """The live Conn holding an identity (str or bytes), or None."""
        if isinstance(identity, str):
            identity = identity.encode("utf-8")
        ptr = lib.vigil_hub_find_identity(self._c("find_identity"), identity,
                                          len(identity))
        return self._conn(ptr) if ptr else None

    @property
    def directory_up(self):
        """The cluster directory: True while the store is reachable, False
        while not (claims then go on locally), None for a hub without a
        cluster (vigil_hub_directory_up)."""
        up = lib.vigil_hub_directory_up(self._c("directory_up"))
        return None if up < 0 else bool(up)

    def census(self):
        """Census of the hub's ports (vigil_hub_census): counts per state
        and the ghosts no deadline will end (leaked fds, stale CLOSE_WAIT,
        orphans). Costs a sock_diag dump: every few seconds at most."""
        r = T.HubCensusStruct()
        check(lib.vigil_hub_census(self._c("census"), C.byref(r)), "census")
        out = {name: getattr(r, name) for name, _ in r._fields_[1:]}
        out["counts"] = StateCounts((TcpState(i).name, r.counts[i])
                                    for i in range(1, len(r.counts))
                                    if r.counts[i])
        return out

    def stats(self):
        s = T.StatsStruct()
        lib.vigil_hub_stats(self._c("stats"), C.byref(s))
        closed = {text(lib.vigil_reason_name(r)): s.closed[r]
                  for r in range(1, len(s.closed)) if s.closed[r]}
        return {"open": s.open, "opened": s.opened, "closed": closed,
                "bytes_in": s.bytes_in, "bytes_out": s.bytes_out,
                "accept_paused": s.accept_paused, "takeovers": s.takeovers,
                "takeovers_by_scope": {
                    text(lib.vigil_scope_name(k)): s.takeovers_by_scope[k]
                    for k in range(3)},
                "takeovers_by_class": {
                    text(lib.vigil_peer_class_name(k)):
                        s.takeovers_by_class[k]
                    for k in (1, 2)}}

    # ---- dispatch from C --------------------------------------------------

    def _conn(self, ptr, key_handlers=None):
        """The Conn for a C pointer, created on first sight."""
        conn = self._conns.get(ptr)
        if conn is None:
            handlers = key_handlers or self._handlers.get(
                lib.vigil_conn_user_data(ptr), _NO_HANDLERS)
            conn = self._conns[ptr] = Conn(self, ptr, handlers)
            if self._adopting is not None:
                self._adopting[ptr] = conn
        return conn

    def _report(self, callback, conn, exc):
        failure = CallbackError(callback, conn, exc)
        self.errors.append(failure)
        log.error("exception in %s for %r", callback, conn, exc_info=exc)
        if self.on_error is not None:
            try:
                self.on_error(failure)
            except Exception as e:
                log.error("exception in on_error", exc_info=e)

    def _interrupted(self, exc):
        """KeyboardInterrupt & co.: stop the loop, re-raise from run_once."""
        if self._pending_exc is None:
            self._pending_exc = exc
        self._stopping = True
        if self._loop.ptr:
            self._loop.break_()

    def _call(self, name, conn, *args):
        """Runs a conn's handler; an exception fails the conn (io_error)."""
        fn = getattr(conn._handlers, name)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as e:
            self._report(name, conn, e)
            if conn._ptr is not None:
                lib.vigil_conn_fail(conn._ptr, 0)

    def _c_accept(self, listener, ptr, ud):
        conn = self._conn(ptr)
        self._call("on_open", conn, conn)

    def _c_data(self, ptr, data, size, ud):
        conn = self._conn(ptr)
        self._call("on_data", conn, conn, C.string_at(data, size))

    def _c_hello(self, ptr, data, size, ud):
        conn = self._conn(ptr)
        self._call("on_hello", conn, conn, C.string_at(data, size))

    def _c_ping_due(self, ptr, ud):
        conn = self._conn(ptr)
        self._call("on_ping_due", conn, conn)

    def _c_idle(self, ptr, kind, ud):
        conn = self._conn(ptr)
        self._call("on_idle", conn, conn, text(lib.vigil_idle_kind_name(kind)))

    def _c_peer_closed(self, ptr, ud):
        conn = self._conn(ptr)
        self._call("on_peer_closed", conn, conn)

    def _c_close(self, ptr, reason, ud):
        conn = self._conn(ptr)
        del self._conns[ptr]
        conn._mark_closed(text(lib.vigil_reason_name(reason)))
        fn = conn._handlers.on_close
        if fn is not None:
            try:
                fn(conn, conn.reason)
            except Exception as e:
                self._report("on_close", conn, e)

    def _c_event(self, hub, ev, ud):
        conn = self._conn(ev.contents.conn) if ev.contents.conn else None
        conn_fn = conn._handlers.on_event if conn is not None else None
        if self.on_event is None and conn_fn is None:
            return
        n = lib.vigil_event_format(ev, _LOG_JSON, self._evbuf,
                                   len(self._evbuf))
        if n >= len(self._evbuf):
            self._evbuf = C.create_string_buffer(n + 1)
            lib.vigil_event_format(ev, _LOG_JSON, self._evbuf, n + 1)
        for fn in (self.on_event, conn_fn):
            if fn is None:
                continue
            event = json.loads(self._evbuf.value)
            event["conn_obj"] = conn
            try:
                fn(event)
            except Exception as e:
                self._report("on_event", conn, e)

    def _c_takeover(self, hub, old, new, ud):
        if self.on_takeover is None:
            return 1
        try:
            return 1 if self.on_takeover(self._conn(old), self._conn(new)) \
                else 0
        except Exception as e:
            self._report("on_takeover", None, e)
            return 0

    def _c_shutdown(self, hub, ud):
        try:
            if self._shutdown_done is None:
                self.stop()
            else:
                self._shutdown_done()
        except Exception as e:
            self._report("shutdown done", None, e)


__all__ = ["Hub", "Listener", "CallbackError", "VigilError"]
