"""Finds and loads libvigil, checks its version, declares prototypes.

Search order; the first library that loads and has the right version wins:
  1. $VIGIL_LIBRARY, a path. When it is set nothing else is tried: an
     explicit choice must not silently fall back to another copy.
  2. libvigil.so* inside this package directory (a bundled copy).
  3. Only when this package runs from a source checkout
     (bindings/python/vigil): $VIGIL_BUILD_DIR/libvigil.so, then
     build/libvigil.so at the top of the checkout.
  4. The system loader: libvigil.so.<major> (LD_LIBRARY_PATH, ld.so.cache,
     /usr/lib), then the library ctypes.util.find_library("vigil") names.
  5. Prefixes `cmake --install` writes to, which the loader only knows once
     ldconfig has run (or never, for a venv): sys.prefix, then /usr/local;
     in each lib/<multiarch>, lib and lib64.
"""
import ctypes as C
import ctypes.util
import glob
import os
import sys
import sysconfig

from . import _types as T
from ._version import __version__

# The library must have the same major and minor version: struct layouts
# may grow in a minor.
WRITTEN_FOR = tuple(int(part) for part in __version__.split("."))
SONAME = "libvigil.so.%d" % WRITTEN_FOR[0]
# In a search order: ask ctypes.util.find_library, when this is reached (it
# may spawn ldconfig or gcc, so only then).
FIND_LIBRARY = "ctypes.util.find_library('vigil')"
PREFIXES = (sys.prefix, "/usr/local")
_HERE = os.path.dirname(os.path.abspath(__file__))


class LibraryError(ImportError):
    """libvigil could not be found, loaded, or has the wrong version."""


def source_checkout(package_dir):
    """The top of the vigil source tree holding package_dir, or None when
    the package is installed (site-packages) or copied elsewhere."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(package_dir)))
    if (os.path.isfile(os.path.join(top, "include", "vigil.h"))
            and os.path.isfile(os.path.join(top, "bindings", "python",
                                            "pyproject.toml"))):
        return top
    return None


def _libdirs():
    multiarch = sysconfig.get_config_var("MULTIARCH")  # x86_64-linux-gnu
    return ([os.path.join("lib", multiarch)] if multiarch else []) + [
        "lib", "lib64"]


def search_order(environ=os.environ, package_dir=_HERE, prefixes=PREFIXES):
    """Yields the libraries to try, in order: paths, bare names for the
    system loader, or FIND_LIBRARY."""
    explicit = environ.get("VIGIL_LIBRARY")
    if explicit:
        yield explicit
        return
    yield from sorted(glob.glob(os.path.join(package_dir, "libvigil.so*")))
    top = source_checkout(package_dir)
    if top:
        if environ.get("VIGIL_BUILD_DIR"):
            yield os.path.join(environ["VIGIL_BUILD_DIR"], "libvigil.so")
        yield os.path.join(top, "build", "libvigil.so")
    yield SONAME
    yield FIND_LIBRARY
    for prefix in dict.fromkeys(prefixes):  # in order, without repeats
        for libdir in _libdirs():
            yield os.path.join(prefix, libdir, SONAME)


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


class _LinkMap(C.Structure):
    """The public head of glibc's struct link_map (<link.h>)."""
    _fields_ = [("l_addr", C.c_void_p), ("l_name", C.c_char_p)]


_RTLD_DI_LINKMAP = 2


def loaded_path(handle, name):
    """The file the loader chose for a dlopen handle (dlinfo), so a bare
    name like libvigil.so.0 reports where it was found; name if the C
    library cannot tell."""
    dlinfo = getattr(C.CDLL(None), "dlinfo", None)
    if dlinfo is None:
        return name
    dlinfo.argtypes = [C.c_void_p, C.c_int, C.c_void_p]
    link_map = C.POINTER(_LinkMap)()
    if dlinfo(handle, _RTLD_DI_LINKMAP, C.byref(link_map)) != 0 \
            or not link_map or not link_map.contents.l_name:
        return name
    return os.fsdecode(link_map.contents.l_name)


def load(candidates, explicit=False):
    """(lib, path, version) of the first candidate that loads and matches;
    LibraryError listing every attempt otherwise. explicit: the candidates
    are only $VIGIL_LIBRARY (the message then says so)."""
    tried = []
    for name in candidates:
        if name == FIND_LIBRARY:
            found = ctypes.util.find_library("vigil")
            if not found or found == SONAME:  # nothing new to try
                tried.append("%s: %s" % (name, "%s, as above" % found
                                         if found else "nothing found"))
                continue
            name = found
        if os.sep in name and not os.path.exists(name):
            tried.append("%s: no such file" % name)
            continue
        try:
            lib = C.CDLL(name, use_errno=True)
        except OSError as e:
            tried.append(str(e) if name in str(e) else "%s: %s" % (name, e))
            continue
        path = loaded_path(lib._handle, name)
        try:
            lib.vigil_version.restype = C.c_uint
            return lib, path, check_version(lib.vigil_version(), path)
        except AttributeError:
            tried.append("%s: not libvigil (no vigil_version)" % path)
        except LibraryError as e:
            tried.append(str(e))
    raise LibraryError(not_found_message(tried, explicit))


def not_found_message(tried, explicit):
    lines = ["cannot load libvigil: no usable %s (version %d.%d.x) found. "
             "Tried, in order:" % ((SONAME,) + WRITTEN_FOR[:2])]
    lines += ["  %d. %s" % (i, why) for i, why in enumerate(tried, 1)]
    if explicit:
        lines.append("VIGIL_LIBRARY is set, so nothing else was tried.")
    lines.append(
        "Install the C library (cmake --install build, then ldconfig), or "
        "set VIGIL_LIBRARY to the path of %s." % SONAME)
    return "\n".join(lines)


lib, path, version = load(search_order(),
                         explicit=bool(os.environ.get("VIGIL_LIBRARY")))

_P = C.c_void_p
_INT = C.c_int
_CSTR = C.c_char_p
_PROTOS = {
    "vigil_version_string": (_CSTR, []),
    "vigil_strerror": (_CSTR, [_INT]),
    "vigil_err_name": (_CSTR, [_INT]),
    "vigil_reason_name": (_CSTR, [_INT]),
    "vigil_scope_name": (_CSTR, [_INT]),
    "vigil_peer_class_name": (_CSTR, [_INT]),
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
    "vigil_metrics_write": (_INT, [_P, C.c_char_p, C.c_size_t]),
    "vigil_hub_find_identity": (_P, [_P, C.c_char_p, C.c_size_t]),
    "vigil_cluster_options_init": (None,
                                   [C.POINTER(T.ClusterOptionsStruct)]),
    "vigil_cluster_options_validate": (_INT, [
        C.POINTER(T.ClusterOptionsStruct), C.c_char_p, C.c_size_t]),
    "vigil_hub_directory_up": (_INT, [_P]),
    "vigil_adopt_options_init": (None, [C.POINTER(T.AdoptOptionsStruct)]),
    "vigil_adopt": (_INT, [_P, _INT, C.POINTER(T.AdoptOptionsStruct),
                           C.POINTER(_P)]),
    "vigil_send": (_INT, [_P, C.c_char_p, C.c_size_t]),
    "vigil_close": (_INT, [_P]),
    "vigil_abort": (_INT, [_P]),
    "vigil_conn_fail": (_INT, [_P, _INT]),
    "vigil_conn_ready": (_INT, [_P]),
    "vigil_conn_ping_received": (_INT, [_P]),
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
