"""examples/python/device_server.py as two cluster nodes: a device that
says HELLO to node a, then again through node b (its first connection
left open and silent, as a rebooted device's ghost), ends its first
connection on node a by cross-node takeover. Skips as test_cluster does
(no redis-server, or libvigil built without hiredis) and when the example
is not beside the tests (a copy of the tests without the repository)."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from _util import python_env
from test_cluster import REDIS_SERVER, Redis, _built_with_hiredis

EXAMPLE = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples",
    "python", "device_server.py"))


class Server:
    """One device_server.py process; its stdout lines collected by a
    thread (the listening line, then one JSON event per line)."""

    def __init__(self, url, node):
        self.lines = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, EXAMPLE, "--port", "0", "--cluster", url,
             "--node", node],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=python_env(), text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self.wait(lambda l: l.startswith("listening on "))
        if not line:
            raise RuntimeError("device_server did not start: %s"
                               % self.text())
        self.port = int(line.rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def text(self):
        with self.lock:
            return "\n".join(self.lines)

    def events(self):
        out = []
        with self.lock:
            for line in self.lines:
                if line.startswith("{"):
                    out.append(json.loads(line))
        return out

    def wait(self, match, timeout=10.0):
        """The first line that matches, polling to the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for line in self.lines:
                    if match(line):
                        return line
            if self.proc.poll() is not None:
                time.sleep(0.05)  # let the reader take the last lines
                with self.lock:
                    return next((l for l in self.lines if match(l)), None)
            time.sleep(0.02)
        return None

    def wait_event(self, pred, timeout=10.0):
        def match(line):
            return line.startswith("{") and pred(json.loads(line))
        line = self.wait(match, timeout)
        return json.loads(line) if line else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def hello(port, identity):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"HELLO " + identity.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"WELCOME\n"):
        chunk = s.recv(64)
        if not chunk:
            raise AssertionError("closed before WELCOME: %r" % buf)
        buf += chunk
    return s


@unittest.skipUnless(REDIS_SERVER, "redis-server not installed (Debian: "
                     "redis-server; or set VIGIL_REDIS_SERVER)")
@unittest.skipUnless(_built_with_hiredis(), "libvigil built without hiredis "
                     "(Debian: libhiredis-dev)")
@unittest.skipUnless(os.path.exists(EXAMPLE), "examples/python not here")
class ExampleClusterTest(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.close)
        self.a = Server(self.redis.url, "a")
        self.addCleanup(self.a.stop)
        self.b = Server(self.redis.url, "b")
        self.addCleanup(self.b.stop)

    def test_device_moves_to_another_node(self):
        for node in (self.a, self.b):
            self.assertIsNotNone(node.wait_event(
                lambda e: e["event"] == "directory_up"), node.text())
        first = hello(self.a.port, "dev-1")
        self.addCleanup(first.close)
        self.assertIsNotNone(self.a.wait_event(
            lambda e: e["event"] == "open"), self.a.text())
        # Node a's claim reached the store before the device moves.
        deadline = time.monotonic() + 5.0
        while (self.redis.command("HGET", "vigil:id:dev-1", "node") != "a"
               and time.monotonic() < deadline):
            time.sleep(0.02)
        self.assertEqual(
            self.redis.command("HGET", "vigil:id:dev-1", "node"), "a")
        started = time.monotonic()
        second = hello(self.b.port, "dev-1")
        self.addCleanup(second.close)
        # Node a closes the first connection: a takeover of scope cluster
        # naming node b; the device's old socket sees its end.
        closed = self.a.wait_event(
            lambda e: e["event"] == "close" and e.get("reason") == "takeover",
            timeout=5.0)
        self.assertIsNotNone(closed, self.a.text())
        took = self.a.wait_event(lambda e: e["event"] == "takeover")
        self.assertIsNotNone(took, self.a.text())
        self.assertEqual(took["scope"], "cluster")
        self.assertEqual(took.get("other_node"), "b")
        first.settimeout(5)
        try:
            while first.recv(64):
                pass
        except ConnectionResetError:
            pass  # a ghost is reset; a live peer gets FIN: both end it
        self.assertLess(time.monotonic() - started, 5.0)
        # The device stays on node b.
        second.sendall(b"still here\n")
        second.settimeout(5)
        self.assertEqual(second.recv(64), b"ACK still here\n")


if __name__ == "__main__":
    unittest.main()
