"""Python hubs as cluster nodes (vigil.ClusterOptions): two hubs in this
process, two nodes sharing a real redis-server started on an ephemeral
loopback port. A device that comes back through the second node ends its
conn on the first (reason takeover, event scope "cluster"). Skips when
redis-server is missing or libvigil was built without hiredis."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from _util import connect, vigil

REDIS_SERVER = os.environ.get("VIGIL_REDIS_SERVER") or shutil.which(
    "redis-server")


def _built_with_hiredis():
    try:
        vigil.ClusterOptions(url="redis://127.0.0.1:1", node="probe")
    except vigil.VigilError as e:
        if e.name == "VIGIL_ENOTSUP":
            return False
        raise
    return True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Redis:
    """A private redis-server (no persistence) and a blocking connection
    to it for the test's own look at the store."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-py-redis-")
        self.sock = self.reader = None
        for _ in range(5):  # the port may be taken between probe and bind
            self.port = _free_port()
            self.url = "redis://127.0.0.1:%d" % self.port
            if self._spawn():
                return
        raise RuntimeError("cannot start redis-server (see %s)" % self.dir)

    def _spawn(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        if self._wait_ready(5.0):
            return True
        self.stop()
        return False

    def restart(self):
        """Starts it again, empty, on the same port (which may linger a
        moment after the kill: retried)."""
        for _ in range(20):
            if self._spawn():
                return
        raise RuntimeError("cannot restart redis-server on port %d"
                           % self.port)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # exited: port taken
            try:
                self.sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1.0)
                self.reader = self.sock.makefile("rb")
                if self.command("PING") == "PONG":
                    return True
            except (OSError, RuntimeError):
                pass
            self._disconnect()
            time.sleep(0.01)  # polling the server's start to a deadline
        return False

    def command(self, *args):
        """One command; the reply as str, int or None (errors raise)."""
        self.sock.sendall(_resp(*args))
        f = self.reader
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:n].decode()
        raise RuntimeError("redis answered %r" % line)

    def _disconnect(self):
        for f in (self.reader, self.sock):
            if f is not None:
                f.close()
        self.reader = self.sock = None

    def stop(self):
        self._disconnect()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_all(hubs, cond, timeout=5.0):
    """Turns every hub's loop in turn until cond() or the deadline."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return cond()
        for hub in hubs:
            hub.run_once(0.002)
    return True


class Node:
    """A Python hub as cluster node `name`: conns claim the identity their
    peer sends as its first line."""

    def __init__(self, name, url, prefix):
        self.events = []
        self.closed = {}  # conn id -> reason
        self.hub = vigil.Hub(
            on_event=self.events.append,
            cluster=vigil.ClusterOptions(url=url, node=name, prefix=prefix,
                                         command_timeout_ms=500))
        self.listener = self.hub.listen(
            "127.0.0.1", 0, on_data=self._on_data, on_close=self._on_close)

    def _on_data(self, conn, data):
        if conn.identity is None and data.endswith(b"\n"):
            conn.identify(data[:-1])

    def _on_close(self, conn, reason):
        self.closed[conn.id] = reason

    def device(self, identity):
        s = connect(self.listener.port)
        s.sendall(identity.encode() + b"\n")
        return s

    def takeovers(self):
        return [e for e in self.events if e.get("event") == "takeover"]


@unittest.skipUnless(REDIS_SERVER, "redis-server not installed (Debian: "
                     "redis-server; or set VIGIL_REDIS_SERVER)")
@unittest.skipUnless(_built_with_hiredis(), "libvigil built without hiredis "
                     "(VIGIL_ENOTSUP): no cluster directory")
class ClusterTest(unittest.TestCase):
    PREFIX = "vigil-py:"

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.close)
        self.a = Node("py-a", self.redis.url, self.PREFIX)
        self.addCleanup(self.a.hub.close)
        self.b = Node("py-b", self.redis.url, self.PREFIX)
        self.addCleanup(self.b.hub.close)
        self.hubs = [self.a.hub, self.b.hub]
        self.assertTrue(run_all(self.hubs, lambda: self.a.hub.directory_up
                                and self.b.hub.directory_up, 10.0))

    def recorded(self, identity, node, conn_id):
        key = self.PREFIX + "id:" + identity
        return (self.redis.command("HGET", key, "node") == node
                and self.redis.command("HGET", key, "conn") == str(conn_id))

    def test_cross_node_takeover(self):
        first = self.a.device("dev-1")
        self.addCleanup(first.close)
        self.assertTrue(run_all(self.hubs, lambda: self.a.hub.find_identity(
            "dev-1") is not None))
        held = self.a.hub.find_identity("dev-1")
        held_id = held.id
        self.assertTrue(run_all(self.hubs, lambda: self.recorded(
            "dev-1", "py-a", held_id)))
        second = self.b.device("dev-1")
        self.addCleanup(second.close)
        self.assertTrue(run_all(self.hubs, lambda: held_id in self.a.closed))
        self.assertEqual(self.a.closed[held_id], "takeover")
        self.assertEqual(held.reason, "takeover")
        (event,) = self.a.takeovers()
        self.assertEqual(event["scope"], "cluster")
        self.assertEqual(event["other_node"], "py-b")
        self.assertEqual(event["conn"], held_id)
        self.assertIs(event["conn_obj"], held)  # the event comes first
        fresh = self.b.hub.find_identity("dev-1")
        self.assertIsNotNone(fresh)
        self.assertFalse(fresh.closed)
        self.assertTrue(run_all(self.hubs, lambda: self.recorded(
            "dev-1", "py-b", fresh.id)))
        self.assertEqual(self.b.takeovers(), [])
        self.assertEqual(
            self.a.hub.stats()["takeovers_by_scope"]["cluster"], 1)
        self.assertIn('vigil_takeovers_total{scope="cluster"} 1',
                      vigil.metrics(self.a.hub))

    def test_directory_down_and_up(self):
        """The store dies: directory_down, claims go on locally; it comes
        back empty: directory_up, and the held identity is re-asserted."""
        self.assertIs(self.a.hub.directory_up, True)
        self.redis.stop()
        self.assertTrue(run_all(self.hubs, lambda: self.a.hub.directory_up
                                is False))
        (down,) = [e for e in self.a.events
                   if e.get("event") == "directory_down"]
        self.assertIn("127.0.0.1:%d" % self.redis.port, down["detail"])
        dev = self.a.device("dev-2")
        self.addCleanup(dev.close)
        self.assertTrue(run_all(self.hubs, lambda: self.a.hub.find_identity(
            "dev-2") is not None))
        held_id = self.a.hub.find_identity("dev-2").id
        self.redis.restart()
        self.assertTrue(run_all(self.hubs, lambda: self.a.hub.directory_up,
                                10.0))
        ups = [e for e in self.a.events if e.get("event") == "directory_up"]
        self.assertEqual(len(ups), 2)
        self.assertTrue(run_all(self.hubs, lambda: self.recorded(
            "dev-2", "py-a", held_id)))


@unittest.skipUnless(_built_with_hiredis(), "libvigil built without hiredis "
                     "(VIGIL_ENOTSUP): no cluster directory")
class ClusterOptionsTest(unittest.TestCase):
    def test_defaults_and_fields(self):
        o = vigil.ClusterOptions(url="redis://127.0.0.1:6379/2", node="gw-1")
        self.assertEqual(o.command_timeout_ms, 500)
        self.assertEqual(o.liveness_ttl_ms, 10000)
        self.assertIsNone(o.prefix)
        with self.assertRaises(AttributeError):
            o.node = "gw-2"
        self.assertIn("node='gw-1'", repr(o))

    def test_the_library_names_a_bad_field(self):
        cases = [
            (dict(node="bad node"), "node must be 1..64 of [A-Za-z0-9._-]"),
            (dict(node=""), "node must be 1..64"),
            (dict(url="http://x"), "url: "),
            (dict(prefix="a b"), "prefix must be 0..64 printable bytes"),
            (dict(command_timeout_ms=0), "command_timeout_ms must be 1.."),
            (dict(command_timeout_ms=1000, liveness_ttl_ms=2000),
             "liveness_ttl_ms must be 3 x command_timeout_ms (3000).."),
        ]
        for change, message in cases:
            args = dict(url="redis://127.0.0.1", node="n1")
            args.update(change)
            with self.subTest(change=change):
                with self.assertRaises(ValueError) as cm:
                    vigil.ClusterOptions(**args)
                self.assertIn(message, str(cm.exception))

    def test_types(self):
        with self.assertRaises(TypeError):
            vigil.ClusterOptions(url=b"redis://127.0.0.1", node="n1")
        with self.assertRaises(TypeError):
            vigil.ClusterOptions(url="redis://127.0.0.1", node="n1",
                                 command_timeout_ms="500")
        with self.assertRaises(ValueError):
            vigil.ClusterOptions(url="redis://127.0.0.1", node="n1",
                                 liveness_ttl_ms=1 << 32)


class HubWithoutClusterTest(unittest.TestCase):
    def test_directory_up_is_none(self):
        with vigil.Hub() as hub:
            self.assertIsNone(hub.directory_up)
            self.assertIsNone(hub.cluster)

    def test_cluster_must_be_cluster_options(self):
        with self.assertRaises(TypeError):
            vigil.Hub(cluster={"url": "redis://127.0.0.1"})


if __name__ == "__main__":
    unittest.main()
