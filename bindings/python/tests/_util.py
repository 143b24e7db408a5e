"""Helpers shared by the binding tests: import path, loop polling, sockets.
No test sleeps a fixed time: they poll until a condition or a deadline.

The tests run against one of two vigil packages:
- the source tree (bindings/python/vigil), the default, put first on
  sys.path here;
- an installed package (pip install), when VIGIL_TEST_INSTALLED=1: then
  nothing is added to sys.path, and importing the source tree instead is an
  error (run_installed.sh, beside this file, runs them so).
"""
import os
import socket
import sys
import time

PACKAGE_SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = os.environ.get("VIGIL_TEST_INSTALLED") == "1"

if not INSTALLED:
    sys.path.insert(0, PACKAGE_SOURCE)

import vigil  # noqa: E402  (after the path fix)

if INSTALLED and os.path.abspath(vigil.__file__).startswith(
        PACKAGE_SOURCE + os.sep):
    raise RuntimeError("VIGIL_TEST_INSTALLED=1 but vigil was imported from "
                       "the source tree: %s" % vigil.__file__)

__all__ = ["vigil", "run_until", "tcp_pair", "recv_until", "connect",
           "python_env", "INSTALLED", "PACKAGE_SOURCE"]


def python_env(**changes):
    """The environment for a child python that must import the same vigil
    package as this process. changes: variables to set (None: unset)."""
    env = dict(os.environ)
    if not INSTALLED:
        env["PYTHONPATH"] = PACKAGE_SOURCE
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_until(hub, cond, timeout=3.0, step=0.02):
    """Runs hub iterations until cond() is true or timeout seconds pass.
    Returns the final cond()."""
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            return cond()
        hub.run_once(min(step, left))
    return True


def tcp_pair():
    """A connected (server_side, client_side) pair of blocking sockets on
    127.0.0.1 with an ephemeral port."""
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        client = socket.create_connection(lst.getsockname())
        server, _ = lst.accept()
    return server, client


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    return s


def recv_until(hub, sock, n, timeout=3.0):
    """Runs the hub while reading from a non-blocking client socket until
    n bytes arrived, EOF, or the deadline. Returns the bytes."""
    buf = bytearray()
    eof = []

    def got():
        try:
            chunk = sock.recv(65536)
            if not chunk:
                eof.append(1)
            buf.extend(chunk)
        except BlockingIOError:
            pass
        return len(buf) >= n or eof

    run_until(hub, got, timeout)
    return bytes(buf)
