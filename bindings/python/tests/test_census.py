import json
import socket
import subprocess
import sys
import unittest

from _util import python_env, vigil


class CensusTest(unittest.TestCase):
    """Counts on a private ephemeral port: N ESTABLISHED on the server
    side, one listener, and k CLOSE_WAIT (clients closed, server did not)."""

    N, K = 5, 2

    def setUp(self):
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(16)
        self.port = self.lst.getsockname()[1]
        self.clients, self.servers = [], []
        for _ in range(self.N):
            self.clients.append(socket.create_connection(
                ("127.0.0.1", self.port)))
            self.servers.append(self.lst.accept()[0])
        for c in self.clients[:self.K]:
            c.close()  # the server side goes to CLOSE_WAIT
        for s in self.servers[:self.K]:
            self.assertEqual(s.recv(1), b"")

    def tearDown(self):
        for s in self.clients + self.servers + [self.lst]:
            s.close()

    def test_counts_match_what_we_created(self):
        c = vigil.census([self.port])
        self.assertEqual(c.counts["LISTEN"], 1)
        self.assertEqual(c.counts["ESTABLISHED"], self.N - self.K)
        self.assertEqual(c.counts["CLOSE_WAIT"], self.K)
        self.assertEqual(c.total, self.N + 1)
        self.assertEqual(c.self_counts["CLOSE_WAIT"], self.K)
        # A TcpState (or its number) finds the same count as its name.
        CW = vigil.TcpState.CLOSE_WAIT
        self.assertEqual(c.counts[CW], self.K)
        self.assertEqual(c.counts.get(8), self.K)
        self.assertIn(vigil.TcpState.LISTEN, c.counts)
        self.assertEqual(c.self_counts[CW], self.K)
        self.assertEqual(list(c.counts)[:5], ["LISTEN", "SYN_SENT", "SYN_RECV",
                                              "ESTABLISHED", "CLOSE_WAIT"])
        listed = [s for s in c.sockets if s.state == "CLOSE_WAIT"]
        self.assertEqual(len(listed), self.K)  # default: ghosts are listed
        self.assertEqual(len(c.sockets), self.K)
        peers = {"127.0.0.1:%d" % s.getpeername()[1]
                 for s in self.servers[:self.K]}
        self.assertEqual({s.peer for s in listed}, peers)
        for s in listed:
            self.assertTrue(s.in_this_process)
            self.assertFalse(s.orphan)
            self.assertEqual(s.local, "127.0.0.1:%d" % self.port)

    def test_states_filter_and_either(self):
        c = vigil.census([self.port], states=["established"])
        self.assertEqual(c.total, self.N - self.K)
        self.assertEqual(vigil.census([self.port], states=[
            vigil.TcpState.ESTABLISHED]).total, self.N - self.K)
        self.assertEqual(len(c.sockets), self.N - self.K)
        # Client ends have the port as their peer port: counted with either.
        c = vigil.census([self.port], states=["ESTABLISHED"], either=True)
        self.assertEqual(c.total, 2 * (self.N - self.K))
        c = vigil.census([self.port], limit=0)
        self.assertEqual((c.sockets, c.total), ([], self.N + 1))
        with self.assertRaises(ValueError):
            vigil.census([self.port], states=["nonsense"])
        with self.assertRaises(ValueError):
            vigil.census([70000])

    def test_cli_json(self):
        env = python_env()
        out = subprocess.run(
            [sys.executable, "-m", "vigil", "census", "--port",
             str(self.port), "--json"], env=env, check=True,
            capture_output=True, text=True, timeout=30).stdout
        d = json.loads(out)
        self.assertEqual(d["ports"], [self.port])
        self.assertEqual(d["counts"]["CLOSE_WAIT"], self.K)
        self.assertEqual(d["counts"]["LISTEN"], 1)
        self.assertEqual(len(d["sockets"]), self.K)
        self.assertEqual(d["sockets"][0]["state"], "CLOSE_WAIT")
        text = subprocess.run(
            [sys.executable, "-m", "vigil", "census", "--port",
             str(self.port)], env=env, check=True, capture_output=True,
            text=True, timeout=30).stdout
        self.assertRegex(text, r"CLOSE_WAIT +%d" % self.K)
        bad = subprocess.run(
            [sys.executable, "-m", "vigil", "census", "--state", "bogus"],
            env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("bogus", bad.stderr)


if __name__ == "__main__":
    unittest.main()
