import socket
import subprocess
import unittest

from _util import connect, run_until, vigil


class MetricsTest(unittest.TestCase):
    """vigil.metrics(hub): the C library's Prometheus text for a hub with
    a takeover and a census behind it."""

    def setUp(self):
        self.hub = vigil.Hub()
        self.addCleanup(self.hub.close)
        self.conns = []
        self.listener = self.hub.listen("127.0.0.1", 0,
                                        on_open=self.conns.append)

    def test_text(self):
        clients = [connect(self.listener.port) for _ in range(2)]
        for c in clients:
            self.addCleanup(c.close)
        self.assertTrue(run_until(self.hub, lambda: len(self.conns) == 2, 3))
        self.conns[0].identify("dev")
        self.conns[1].identify("dev")  # takes over: the first is reset
        self.assertTrue(run_until(
            self.hub, lambda: self.conns[0].reason == "takeover", 3))
        self.hub.census()

        text = vigil.metrics(self.hub)
        self.assertIsInstance(text, str)
        self.assertTrue(text.endswith("\n"))
        lines = text.splitlines()
        self.assertIn("# TYPE vigil_connections_closed_total counter", lines)
        self.assertIn('vigil_connections_closed_total{reason="takeover"} 1',
                      lines)
        self.assertIn('vigil_connections_closed_total{reason="tls_error"} 0',
                      lines)
        self.assertIn('vigil_takeovers_total{scope="hub"} 1', lines)
        self.assertIn("vigil_connections_open 1", lines)
        self.assertIn("vigil_connections_opened_total 2", lines)
        self.assertIn('vigil_sockets{state="listen"} 1', lines)
        self.assertIn('vigil_build_info{version="%s"} 1'
                      % vigil.library_version, lines)
        self.assertIn(
            'vigil_takeover_latency_seconds_count{scope="hub"} 1', lines)
        self.assertEqual(vigil.METRICS_CONTENT_TYPE,
                         "text/plain; version=0.0.4; charset=utf-8")

    def test_promtool_accepts_it(self):
        try:
            out = subprocess.run(["promtool", "check", "metrics"],
                                 input=vigil.metrics(self.hub).encode(),
                                 capture_output=True, timeout=30)
        except FileNotFoundError:
            self.skipTest("promtool not installed (Debian package prometheus)")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_closed_hub(self):
        self.hub.close()
        with self.assertRaises(RuntimeError):
            vigil.metrics(self.hub)


if __name__ == "__main__":
    unittest.main()
