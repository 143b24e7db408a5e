"""vigil.ClusterOptions: a hub as one node of a cluster (vigil/cluster.h).

With cluster options, a hub shares one identity directory in Redis with
the other nodes: a device that comes back through another node ends its
ghost on the first one at once (a "takeover" event with scope "cluster"
and other_node naming the claiming node). The guide is docs/cluster.md.
"""
import ctypes as C

from . import _types as T
from ._lib import lib
from .errors import ENOTSUP, VigilError

_UINT32_MAX = 0xFFFFFFFF


class ClusterOptions:
    """vigil_cluster_options, immutable and checked by the library's own
    vigil_cluster_options_validate: a bad value raises ValueError with its
    message, which names the field and what it allows. A library built
    without hiredis raises VigilError with code VIGIL_ENOTSUP.

    url: "redis://[[user]:password@]host[:port][/db]" or
         "unix://[[user]:password@]/path[?db=N]" (required);
    node: this node's name, 1..64 of [A-Za-z0-9._-], unique in the cluster
         (required);
    prefix: key and channel prefix, None = "vigil:";
    command_timeout_ms, liveness_ttl_ms: None = the library's defaults
         (500 and 10000)."""

    __slots__ = ("_struct", "_keep", "url", "node", "prefix",
                 "command_timeout_ms", "liveness_ttl_ms")

    def __init__(self, url, node, prefix=None, command_timeout_ms=None,
                 liveness_ttl_ms=None):
        s = T.ClusterOptionsStruct()
        lib.vigil_cluster_options_init(C.byref(s))
        keep = []  # the bytes s points into

        def text(name, value, optional=False):
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise TypeError("%s must be a str%s, not %s"
                                % (name, " or None" if optional else "",
                                   type(value).__name__))
            b = value.encode("utf-8")
            keep.append(b)
            return b

        def number(name, value):
            if value is None:
                return getattr(s, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("%s must be an int, not %s"
                                % (name, type(value).__name__))
            if not 0 <= value <= _UINT32_MAX:
                raise ValueError("%s = %d is out of range for its C type "
                                 "(uint32)" % (name, value))
            return value

        s.url = text("url", url)
        s.node = text("node", node)
        s.prefix = text("prefix", prefix, optional=True)
        s.command_timeout_ms = number("command_timeout_ms",
                                      command_timeout_ms)
        s.liveness_ttl_ms = number("liveness_ttl_ms", liveness_ttl_ms)
        msg = C.create_string_buffer(256)
        rc = lib.vigil_cluster_options_validate(C.byref(s), msg, len(msg))
        if rc == ENOTSUP:
            raise VigilError(rc, "ClusterOptions: libvigil was built "
                                 "without hiredis, so it has no cluster "
                                 "directory")
        if rc != 0:
            raise ValueError(msg.value.decode("utf-8", "replace"))
        set_ = object.__setattr__
        set_(self, "_struct", s)
        set_(self, "_keep", keep)
        set_(self, "url", url)
        set_(self, "node", node)
        set_(self, "prefix", prefix)
        set_(self, "command_timeout_ms", s.command_timeout_ms)
        set_(self, "liveness_ttl_ms", s.liveness_ttl_ms)

    def __setattr__(self, name, value):
        raise AttributeError("ClusterOptions is immutable")

    def __repr__(self):
        return ("vigil.ClusterOptions(url=%r, node=%r, prefix=%r, "
                "command_timeout_ms=%d, liveness_ttl_ms=%d)"
                % (self.url, self.node, self.prefix, self.command_timeout_ms,
                   self.liveness_ttl_ms))

    def _ref(self):
        """A pointer for C calls; valid while this object lives."""
        return C.pointer(self._struct)


def cluster_ref(cluster):
    """C pointer for optional ClusterOptions (None = no cluster)."""
    if cluster is None:
        return None
    if not isinstance(cluster, ClusterOptions):
        raise TypeError("cluster must be a vigil.ClusterOptions, not %s"
                        % type(cluster).__name__)
    return cluster._ref()
