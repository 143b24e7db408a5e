"""Exceptions carrying the library's stable error codes."""
import ctypes
import os

from ._lib import lib, text

OK = 0
EINVAL = -1
ESYS = -9
ECLOSED = -7
ENOTSUP = -13


class VigilError(Exception):
    """A vigil call failed. code is the negative vigil_err value, name its
    symbolic name ("VIGIL_EINVAL"), errno the system errno for ESYS."""

    def __init__(self, code, what="", errno=0):
        self.code = code
        self.name = text(lib.vigil_err_name(code))
        self.errno = errno
        msg = "%s: %s" % (self.name, text(lib.vigil_strerror(code)))
        if errno:
            msg += " (%s)" % os.strerror(errno)
        if what:
            msg = "%s: %s" % (what, msg)
        super().__init__(msg)


class ClosedError(VigilError):
    """The connection is closing or closed (VIGIL_ECLOSED), or its Python
    object is used after on_close."""

    def __init__(self, what="", detail=""):
        super().__init__(ECLOSED, what)
        if detail:
            self.args = ("%s (%s)" % (self.args[0], detail),)


def check(rc, what=""):
    """Raises the matching exception for a negative vigil_err; returns rc."""
    if rc >= 0:
        return rc
    if rc == ECLOSED:
        raise ClosedError(what)
    raise VigilError(rc, what, ctypes.get_errno() if rc == ESYS else 0)
