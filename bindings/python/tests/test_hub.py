import socket
import time
import unittest

from _util import connect, recv_until, run_until, tcp_pair, vigil

DEAD_MS = 300
TICK_MS = 10


class EchoServer:
    """A Python echo server on a Hub, recording what happens."""

    def __init__(self, policy=None, **hub_kwargs):
        self.hub = vigil.Hub(policy, tick_ms=TICK_MS, **hub_kwargs)
        self.opened, self.closed, self.pings, self.events = [], [], [], []
        self.last_rx = {}
        self.listener = self.hub.listen(
            "127.0.0.1", 0, on_open=self.opened.append,
            on_data=self.on_data, on_close=self.on_close,
            on_ping_due=self.pings.append, on_event=self.events.append)

    def on_data(self, conn, data):
        self.last_rx[conn.id] = time.monotonic()
        conn.send(data)

    def on_close(self, conn, reason):
        self.closed.append((conn, reason, time.monotonic()))

    def close(self):
        self.hub.close()


class EchoAndHeartbeatTest(unittest.TestCase):
    def setUp(self):
        self.srv = EchoServer(vigil.Policy(ping_interval_ms=100,
                                           dead_after_ms=DEAD_MS))
        self.hub = self.srv.hub
        self.addCleanup(self.srv.close)

    def test_echo_then_silent_client_closed_by_heartbeat(self):
        client = connect(self.srv.listener.port)
        self.addCleanup(client.close)
        client.send(b"hello")
        self.assertEqual(recv_until(self.hub, client, 5), b"hello")
        conn = self.srv.opened[0]
        self.assertEqual(conn.peer, "127.0.0.1:%d" % client.getsockname()[1])
        self.assertEqual(conn.state, "open")
        self.assertIsNone(conn.reason)
        self.assertEqual(conn.tcp_info().state_name, "ESTABLISHED")
        self.assertEqual(conn.sockopts().keepalive, 1)
        # The client now stays silent; the server's pings (kernel-ACKed)
        # must not count as life.
        self.assertTrue(run_until(self.hub, lambda: self.srv.closed, 3))
        closed, reason, at = self.srv.closed[0]
        self.assertIs(closed, conn)
        self.assertEqual(reason, "heartbeat_timeout")
        self.assertEqual(conn.reason, "heartbeat_timeout")
        self.assertEqual(conn.state, "closed")
        latency_ms = (at - self.srv.last_rx[conn.id]) * 1000
        self.assertGreaterEqual(latency_ms, DEAD_MS - TICK_MS)
        self.assertLess(latency_ms, DEAD_MS + 300)  # slack for a loaded CI
        self.assertGreaterEqual(len(self.srv.pings), 1)
        # abort_dead: the dead peer gets RST, not a FIN.
        with self.assertRaises(ConnectionResetError):
            recv_until(self.hub, client, 1 << 20, timeout=1)
        kinds = [e["event"] for e in self.srv.events]
        self.assertEqual(kinds[0], "open")
        self.assertIn("ping_due", kinds)
        self.assertEqual(kinds[-2:], ["dead", "close"])
        close_ev = self.srv.events[-1]
        self.assertEqual(close_ev["reason"], "heartbeat_timeout")
        self.assertEqual(close_ev["conn"], conn.id)
        self.assertIs(close_ev["conn_obj"], conn)
        self.assertEqual(close_ev["bytes_in"], 5)
        self.assertEqual(self.hub.stats()["closed"],
                         {"heartbeat_timeout": 1})

    def test_closed_conn_raises_clear_error(self):
        client = connect(self.srv.listener.port)
        self.addCleanup(client.close)
        self.assertTrue(run_until(self.hub, lambda: self.srv.opened))
        conn = self.srv.opened[0]
        conn.close()  # graceful: our FIN, then wait for the peer's
        self.assertEqual(recv_until(self.hub, client, 1), b"")
        self.assertEqual(conn.state, "draining")
        client.close()
        self.assertTrue(run_until(self.hub, lambda: self.srv.closed))
        self.assertEqual(conn.reason, "closed_by_host")
        with self.assertRaises(TypeError):
            conn.send(5)  # not five NUL bytes
        with self.assertRaisesRegex(vigil.ClosedError, "closed_by_host"):
            conn.send(b"late")
        with self.assertRaises(vigil.ClosedError):
            conn.tcp_info()
        conn.close()  # idempotent
        conn.abort()

    def test_adopt_takes_the_socket(self):
        server, client = tcp_pair()
        self.addCleanup(client.close)
        data = []
        conn = self.hub.adopt(server, vigil.Policy(handshake_timeout_ms=2000),
                              on_data=lambda c, d: data.append(d))
        self.assertEqual(server.fileno(), -1)  # detached: the hub owns it
        self.assertEqual(conn.state, "handshake")
        conn.ready()
        self.assertEqual(conn.state, "open")
        client.sendall(b"abc")
        self.assertTrue(run_until(self.hub, lambda: data == [b"abc"]))
        self.assertIn(conn, self.hub.conns)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            with self.assertRaises(vigil.VigilError) as cm:
                self.hub.adopt(udp)
            self.assertEqual(cm.exception.name, "VIGIL_ENOTTCP")
            self.assertNotEqual(udp.fileno(), -1)  # still ours on error

    def test_identify(self):
        a, b = connect(self.srv.listener.port), connect(
            self.srv.listener.port)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertTrue(run_until(self.hub, lambda: len(self.srv.opened) == 2))
        first, second = self.srv.opened
        self.assertIsNone(first.identity)
        first.identify("dev-1")
        self.assertEqual(first.identity, "dev-1")
        self.assertIs(self.hub.find_identity("dev-1"), first)
        with self.assertRaises(vigil.VigilError) as cm:
            first.identify("dev-2")
        self.assertEqual(cm.exception.name, "VIGIL_EEXIST")
        second.identify(b"dev-1")  # newest wins by default
        self.assertTrue(run_until(self.hub, lambda: first.closed))
        self.assertEqual(first.reason, "takeover")
        self.assertFalse(second.closed)
        self.assertIs(self.hub.find_identity(b"dev-1"), second)
        self.assertIsNone(self.hub.find_identity("nobody"))
        takeovers = [e for e in self.srv.events if e["event"] == "takeover"]
        self.assertEqual(len(takeovers), 1)
        self.assertEqual(takeovers[0]["scope"], "hub")
        # Both peers are alive: the old one is closed gracefully.
        self.assertEqual(takeovers[0]["class"], "live")
        stats = self.hub.stats()
        self.assertEqual(stats["takeovers"], 1)
        self.assertEqual(stats["takeovers_by_scope"],
                         {"hub": 1, "worker": 0, "cluster": 0})
        self.assertEqual(stats["takeovers_by_class"],
                         {"ghost": 0, "live": 1})

    def test_ping_flood_guard_for_the_hosts_own_pings(self):
        server, client = tcp_pair()
        self.addCleanup(client.close)
        client.setblocking(False)
        answers, closed = [], []

        def on_data(conn, data):
            for _ in data:  # every byte is one ping of this protocol
                answers.append(conn.ping_received())
                if answers[-1]:
                    conn.send(b"o")

        conn = self.hub.adopt(
            server, vigil.Policy(ping_min_interval_ms=1000, ping_strikes=2),
            on_data=on_data, on_close=lambda c, r: closed.append(r))
        conn.ready()
        # The first ping is never a strike; two strikes are allowed; the
        # third is one too many.
        for sent in range(1, 5):
            client.send(b"p")
            self.assertTrue(run_until(self.hub,
                                      lambda: len(answers) == sent))
        self.assertEqual(answers, [True, True, True, False])
        # A graceful close: the answers, then our FIN; it ends when the
        # peer closes too.
        self.assertEqual(recv_until(self.hub, client, 4), b"ooo")
        client.close()
        self.assertTrue(run_until(self.hub, lambda: closed == ["ping_flood"]))

    def test_hub_census(self):
        clients = [connect(self.srv.listener.port) for _ in range(3)]
        for c in clients:
            self.addCleanup(c.close)
        self.assertTrue(run_until(self.hub, lambda: len(self.hub.conns) == 3))
        report = self.hub.census()
        self.assertEqual(report["conns"], 3)
        self.assertEqual(report["counts"].get("ESTABLISHED"), 3)
        self.assertEqual(report["counts"].get("LISTEN"), 1)
        self.assertEqual(report["counts"][vigil.TcpState.ESTABLISHED], 3)
        self.assertNotIn(vigil.TcpState.CLOSE_WAIT, report["counts"])
        self.assertEqual(report["ghosts"], 0)


class HandlerTest(unittest.TestCase):
    def test_peer_closed_idle_and_hub_events(self):
        hub = vigil.Hub(vigil.Policy(read_idle_ms=100), tick_ms=TICK_MS)
        self.addCleanup(hub.close)
        idle, closed = [], []

        def on_peer_closed(conn):
            conn.send(b"last words")  # allowed in CLOSE_WAIT
            conn.close()
        port = hub.listen("127.0.0.1", 0, on_peer_closed=on_peer_closed,
                          on_idle=lambda c, kind: idle.append(kind),
                          on_close=lambda c, r: closed.append(r)).port
        client = connect(port)
        self.addCleanup(client.close)
        self.assertTrue(run_until(hub, lambda: idle))
        self.assertEqual(idle[0], "read")
        client.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_until(hub, client, 100), b"last words")
        self.assertTrue(run_until(hub, lambda: closed))
        self.assertEqual(closed, ["peer_closed"])


class CallbackErrorTest(unittest.TestCase):
    def setUp(self):
        self.hub = vigil.Hub()
        self.addCleanup(self.hub.close)
        self.closed = []

    def listen(self, **handlers):
        handlers.setdefault("on_close", lambda c, r: self.closed.append(r))
        return self.hub.listen("127.0.0.1", 0, **handlers).port

    def test_on_data_exception_closes_with_io_error(self):
        def on_data(conn, data):
            if data == b"boom":
                raise RuntimeError("boom")
            conn.send(data)
        port = self.listen(on_data=on_data)
        bad = connect(port)
        self.addCleanup(bad.close)
        with self.assertLogs("vigil", "ERROR") as logs:
            bad.send(b"boom")
            self.assertTrue(run_until(self.hub, lambda: self.closed))
        self.assertEqual(self.closed, ["io_error"])
        self.assertIn("RuntimeError: boom", "\n".join(logs.output))
        err = self.hub.errors[0]
        self.assertEqual(err.callback, "on_data")
        self.assertIsInstance(err.exception, RuntimeError)
        self.assertEqual(err.conn.reason, "io_error")
        with self.assertRaises(ConnectionResetError):
            recv_until(self.hub, bad, 1, timeout=1)
        # The loop keeps serving others.
        good = connect(port)
        self.addCleanup(good.close)
        good.send(b"ok")
        self.assertEqual(recv_until(self.hub, good, 2), b"ok")

    def test_on_open_on_close_on_event_exceptions(self):
        seen = []
        self.hub.on_error = seen.append

        def on_event(ev):
            if ev["event"] == "open":
                raise ValueError("event sink bug")

        def on_close(conn, reason):
            self.closed.append(reason)
            raise KeyError("on_close bug")
        port = self.listen(on_open=lambda c: 1 / 0, on_close=on_close,
                           on_event=on_event)
        client = connect(port)
        self.addCleanup(client.close)
        with self.assertLogs("vigil", "ERROR"):
            self.assertTrue(run_until(self.hub, lambda: self.closed))
        self.assertEqual(self.closed, ["io_error"])  # from on_open, not event
        self.assertEqual([e.callback for e in seen],
                         ["on_event", "on_open", "on_close"])
        self.assertEqual(list(self.hub.errors), seen)

    def test_keyboard_interrupt_propagates(self):
        def on_data(conn, data):
            raise KeyboardInterrupt
        port = self.listen(on_data=on_data)
        client = connect(port)
        self.addCleanup(client.close)
        client.send(b"x")
        with self.assertRaises(KeyboardInterrupt):
            run_until(self.hub, lambda: False, 3)
        self.assertEqual(self.closed, [])  # not a connection failure
        client.send(b"y")  # the hub still works afterwards
        with self.assertRaises(KeyboardInterrupt):
            run_until(self.hub, lambda: False, 3)


class LifetimeTest(unittest.TestCase):
    def test_gc_with_live_connections(self):
        import gc
        srv = EchoServer()
        self.addCleanup(srv.close)
        srv.opened = []  # the server keeps no Conn references at all
        srv.listener = None
        port = srv.hub._listeners.popitem()[1].port
        clients = [connect(port) for _ in range(20)]
        self.assertTrue(run_until(srv.hub,
                                  lambda: len(srv.hub.conns) == 20))
        gc.collect()
        for i, c in enumerate(clients):
            c.send(b"%d" % i)
        for i, c in enumerate(clients):
            self.assertEqual(recv_until(srv.hub, c, len(b"%d" % i)),
                             b"%d" % i)
        gc.collect()
        for c in clients:
            c.close()
        self.assertTrue(run_until(srv.hub, lambda: len(srv.closed) == 20))
        self.assertEqual({r for _, r, _ in srv.closed}, {"peer_closed"})
        self.assertEqual(srv.hub.conns, [])

    def test_dropped_hub_closes_its_conns(self):
        import weakref
        hub = vigil.Hub()
        server, client = tcp_pair()
        self.addCleanup(client.close)
        conn = hub.adopt(server)
        listener = hub.listen("127.0.0.1", 0)
        ref = weakref.ref(hub)
        with self.assertWarns(ResourceWarning):
            del hub  # no reference cycles: freed at once
        self.assertIsNone(ref())
        self.assertEqual((conn.closed, conn.reason), (True, "shutdown"))
        with self.assertRaises(vigil.ClosedError):
            conn.send(b"x")
        listener.close()  # harmless after the hub is gone

    def test_close_hub_inside_callbacks(self):
        hub = vigil.Hub()
        closed = []
        port = hub.listen("127.0.0.1", 0, on_data=lambda c, d: hub.close(),
                          on_close=lambda c, r: closed.append(r)).port
        a, b = connect(port), connect(port)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertTrue(run_until(hub, lambda: len(hub.conns) == 2))
        a.send(b"x")
        run_until(hub, lambda: hub._hub is None)
        self.assertEqual(closed, ["shutdown", "shutdown"])
        self.assertEqual(hub.conns, [])
        with self.assertRaises(RuntimeError):
            hub.run_once(0)
        # Closing inside on_open while adopt() runs outside the loop.
        hub2 = vigil.Hub()
        server, client = tcp_pair()
        self.addCleanup(client.close)
        conn = hub2.adopt(server, on_open=lambda c: hub2.close())
        self.assertEqual(conn.reason, "shutdown")
        del hub2
        # ... and inside the "open" event, while vigil_adopt is on the stack.
        hub3 = vigil.Hub(on_event=lambda ev: hub3.close())
        server, client = tcp_pair()
        self.addCleanup(client.close)
        conn = hub3.adopt(server)
        self.assertEqual((conn.closed, conn.reason), (True, "shutdown"))
        self.assertEqual(hub3._loop.ptr, None)
        hub3.on_event = None

    def test_run_stop_and_shutdown(self):
        srv = EchoServer()
        self.addCleanup(srv.close)
        client = connect(srv.listener.port)
        self.addCleanup(client.close)
        self.assertTrue(run_until(srv.hub, lambda: srv.opened))
        srv.opened[0].send(b"bye")
        srv.hub.shutdown(deadline_ms=1000)  # done: stop() ends run()
        t0 = time.monotonic()
        srv.hub.run()
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual([r for _, r, _ in srv.closed], ["shutdown"])
        self.assertEqual(recv_until(srv.hub, client, 4), b"bye")

    def test_bad_hub_arguments(self):
        with self.assertRaises(ValueError):
            vigil.Hub(tick_ms=0)
        with self.assertRaises(TypeError):
            vigil.Hub(policy={"dead_after_ms": 1})
        with vigil.Hub() as hub:
            with self.assertRaises(TypeError):
                hub.listen("127.0.0.1", 0, on_dta=print)
            with self.assertRaises(vigil.VigilError):
                hub.listen("256.0.0.1", 0)


if __name__ == "__main__":
    unittest.main()
