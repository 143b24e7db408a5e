"""The few libev calls a Hub needs: its own loop, one iteration at a time,
and a wake-up timer that bounds how long an iteration may block.

ev_timer is declared here because ev_timer_init/ev_timer_set are macros;
the layout is libev 4's with priorities enabled (Debian's build), checked
by tests/test_abi.py against the C compiler's view.
"""
import ctypes as C
import ctypes.util

from ._lib import LibraryError

EVFLAG_AUTO = 0
EVRUN_NOWAIT = 1
EVRUN_ONCE = 2
EVBREAK_ALL = 2

TIMER_CB = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int)


class EvTimer(C.Structure):
    _fields_ = [
        ("active", C.c_int),
        ("pending", C.c_int),
        ("priority", C.c_int),
        ("data", C.c_void_p),
        ("cb", TIMER_CB),
        ("at", C.c_double),
        ("repeat", C.c_double),
    ]


def _load():
    names = [ctypes.util.find_library("ev"), "libev.so.4"]
    for name in filter(None, names):
        try:
            return C.CDLL(name)
        except OSError:
            continue
    raise LibraryError("libev (libev.so.4) not found; install libev4")


ev = _load()
_P = C.c_void_p
for _name, _res, _args in (
    ("ev_loop_new", _P, [C.c_uint]),
    ("ev_loop_destroy", None, [_P]),
    ("ev_run", C.c_int, [_P, C.c_int]),
    ("ev_break", None, [_P, C.c_int]),
    ("ev_now_update", None, [_P]),
    ("ev_timer_start", None, [_P, C.POINTER(EvTimer)]),
    ("ev_timer_stop", None, [_P, C.POINTER(EvTimer)]),
):
    _fn = getattr(ev, _name)
    _fn.restype, _fn.argtypes = _res, _args


def _woke(loop, w, revents):
    """The wake-up timer only ends the iteration; nothing to do."""


_WOKE = TIMER_CB(_woke)  # module lifetime: C may call it any time


class Loop:
    """An ev_loop of our own, run one iteration at a time."""

    def __init__(self):
        self.ptr = ev.ev_loop_new(EVFLAG_AUTO)
        if not self.ptr:
            raise OSError("ev_loop_new failed")
        self._timer = EvTimer()
        self._timer.cb = _WOKE

    def run_once(self, timeout):
        """One iteration: None blocks until an event, 0 does not block,
        otherwise blocks at most timeout seconds."""
        if timeout is not None and timeout <= 0:
            ev.ev_run(self.ptr, EVRUN_NOWAIT)
            return
        if timeout is None:
            ev.ev_run(self.ptr, EVRUN_ONCE)
            return
        # The loop's cached time may be stale after a long pause: the timer
        # would then fire early.
        ev.ev_now_update(self.ptr)
        self._timer.at = float(timeout)
        self._timer.repeat = 0.0
        ev.ev_timer_start(self.ptr, C.byref(self._timer))
        try:
            ev.ev_run(self.ptr, EVRUN_ONCE)
        finally:
            ev.ev_timer_stop(self.ptr, C.byref(self._timer))

    def break_(self):
        ev.ev_break(self.ptr, EVBREAK_ALL)

    def destroy(self):
        if self.ptr:
            ev.ev_loop_destroy(self.ptr)
            self.ptr = None
