"""Finds and loads libvigil.so, checks its version, declares prototypes.

Search order (first hit wins):
  1. $VIGIL_LIBRARY (a path to the .so);
  2. libvigil.so* next to this package (an installed copy);
  3. $VIGIL_BUILD_DIR/libvigil.so (set by ctest);
  4. build/libvigil.so under the repository root (a source checkout);
  5. the system's libvigil.so.<major> (ctypes.util.find_library).
"""
import ctypes as C
import ctypes.util
import glob
import os

from . import _types as T

# The C API version this package was written for. The library must have
# the same major and minor version: struct layouts may grow in a minor.
WRITTEN_FOR = (0, 1, 0)


class LibraryError(ImportError):
    """libvigil could not be found, loaded, or has the wrong version."""


def _candidates():
    env = os.environ.get("VIGIL_LIBRARY")
    if env:
        yield env
        return  # an explicit choice must not silently fall back
    here = os.path.dirname(os.path.abspath(__file__))
    yield from sorted(glob.glob(os.path.join(here, "libvigil.so*")))
    build = os.environ.get("VIGIL_BUILD_DIR")
    if build:
        yield os.path.join(build, "libvigil.so")
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    yield os.path.join(root, "build", "libvigil.so")
    system = ctypes.util.find_library("vigil")
    yield system or "libvigil.so.%d" % WRITTEN_FOR[0]


def check_version(hexver, path):
    """Raises LibraryError unless hexver (VIGIL_VERSION_HEX) matches."""
    found = (hexver >> 16, (hexver >> 8) & 0xFF, hexver & 0xFF)
    if found[:2] != WRITTEN_FOR[:2]:
        raise LibraryError(
            "libvigil at %s is version %d.%d.%d, but this vigil package was "
            "written for %d.%d.x; use the bindings from the same source tree "
            "or set VIGIL_LIBRARY to a matching libvigil.so"
            % ((path,) + found + WRITTEN_FOR[:2]))
    return found


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            lib = C.CDLL(path, use_errno=True)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        lib.vigil_version.restype = C.c_uint
        return lib, path, check_version(lib.vigil_version(), path)
    raise LibraryError(
        "libvigil.so not found. Build it (cmake -S . -B build && cmake "
        "--build build) or set VIGIL_LIBRARY=/path/to/libvigil.so. Tried: "
        + "; ".join(tried))


lib, path, version = _load()

_P = C.c_void_p
_INT = C.c_int
_CSTR = C.c_char_p
_PROTOS = {
    "vigil_version_string": (_CSTR, []),
    "vigil_strerror": (_CSTR, [_INT]),
    "vigil_err_name": (_CSTR, [_INT]),
    "vigil_reason_name": (_CSTR, [_INT]),
    "vigil_conn_state_name": (_CSTR, [_INT]),
    "vigil_idle_kind_name": (_CSTR, [_INT]),
    "vigil_tcp_state_name": (_CSTR, [_INT]),
    "vigil_census_timer_name": (_CSTR, [_INT]),
    "vigil_census_state_parse": (_INT, [_CSTR]),
    "vigil_policy_init": (None, [C.POINTER(T.PolicyStruct)]),
    "vigil_policy_validate": (_INT, [C.POINTER(T.PolicyStruct), C.c_char_p,
                                     C.c_size_t]),
    "vigil_socket_apply_policy": (_INT, [_INT, C.POINTER(T.PolicyStruct)]),
    "vigil_socket_get_opts": (_INT, [_INT, C.POINTER(T.SockoptsStruct)]),
    "vigil_socket_tcp_info": (_INT, [_INT, C.POINTER(T.TcpInfoStruct)]),
    "vigil_event_format": (_INT, [_P, _INT, C.c_char_p, C.c_size_t]),
    "vigil_hub_options_init": (None, [C.POINTER(T.HubOptionsStruct)]),
    "vigil_hub_new": (_INT, [_P, C.POINTER(T.HubOptionsStruct),
                             C.POINTER(_P)]),
    "vigil_hub_free": (None, [_P]),
    "vigil_hub_shutdown": (_INT, [_P, C.c_uint32, T.SHUTDOWN_CB, _P]),
    "vigil_hub_set_policy": (_INT, [_P, C.POINTER(T.PolicyStruct)]),
    "vigil_hub_stats": (None, [_P, C.POINTER(T.StatsStruct)]),
    "vigil_hub_census": (_INT, [_P, C.POINTER(T.HubCensusStruct)]),
    "vigil_hub_find_identity": (_P, [_P, C.c_char_p, C.c_size_t]),
    "vigil_adopt_options_init": (None, [C.POINTER(T.AdoptOptionsStruct)]),
    "vigil_adopt": (_INT, [_P, _INT, C.POINTER(T.AdoptOptionsStruct),
                           C.POINTER(_P)]),
    "vigil_send": (_INT, [_P, C.c_char_p, C.c_size_t]),
    "vigil_close": (_INT, [_P]),
    "vigil_abort": (_INT, [_P]),
    "vigil_conn_fail": (_INT, [_P, _INT]),
    "vigil_conn_ready": (_INT, [_P]),
    "vigil_conn_set_policy": (_INT, [_P, C.POINTER(T.PolicyStruct)]),
    "vigil_conn_identify": (_INT, [_P, C.c_char_p, C.c_size_t]),
    "vigil_conn_identity": (_CSTR, [_P]),
    "vigil_conn_id": (C.c_uint64, [_P]),
    "vigil_conn_peer": (_CSTR, [_P]),
    "vigil_conn_get_state": (_INT, [_P]),
    "vigil_conn_user_data": (_P, [_P]),
    "vigil_conn_queued": (C.c_size_t, [_P]),
    "vigil_conn_sockopts": (_INT, [_P, C.POINTER(T.SockoptsStruct)]),
    "vigil_conn_tcp_info": (_INT, [_P, C.POINTER(T.TcpInfoStruct)]),
    "vigil_listen_options_init": (None, [C.POINTER(T.ListenOptionsStruct)]),
    "vigil_listen": (_INT, [_P, C.POINTER(T.ListenOptionsStruct),
                            C.POINTER(_P)]),
    "vigil_listener_port": (C.c_uint16, [_P]),
    "vigil_listener_close": (None, [_P]),
    "vigil_census_query_init": (None, [C.POINTER(T.CensusQueryStruct)]),
    "vigil_census_run": (_INT, [C.POINTER(T.CensusQueryStruct),
                                C.POINTER(C.POINTER(T.CensusStruct))]),
    "vigil_census_free": (None, [C.POINTER(T.CensusStruct)]),
    "vigil_census_socket_is": (_INT, [C.POINTER(T.CensusSocketStruct),
                                      C.c_uint]),
}


def _declare():
    missing = []
    for name, (restype, argtypes) in _PROTOS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryError("libvigil at %s lacks %s" % (path,
                                                        ", ".join(missing)))


_declare()


def text(value):
    """A C string from the library as str ('' for NULL)."""
    return value.decode("utf-8", "replace") if value else ""
