"""vigil.metrics(): a hub's metrics as Prometheus text (exposition format
0.0.4), from the C library's vigil_metrics_write(). Every metric, its type,
labels and unit are listed in include/vigil/metrics.h and docs/metrics.md.
"""
import ctypes as C

from ._lib import lib
from .errors import check

# The HTTP Content-Type to serve the text with (VIGIL_METRICS_CONTENT_TYPE);
# vigil.METRICS_CONTENT_TYPE (vigil.metrics is the function).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A hub's exposition is about 6 KB: one call is enough at first.
_FIRST_SIZE = 16384


def metrics(hub):
    """The metrics of a vigil.Hub as Prometheus text (str), e.g. to serve
    at /metrics with vigil.METRICS_CONTENT_TYPE. Call it from the hub's
    thread."""
    ptr = hub._c("metrics")
    size = _FIRST_SIZE
    while True:
        buf = C.create_string_buffer(size)
        n = check(lib.vigil_metrics_write(ptr, buf, size), "metrics")
        if n < size:
            return buf.raw[:n].decode("utf-8")
        size = n + 1  # it grew past the buffer: once more, big enough
