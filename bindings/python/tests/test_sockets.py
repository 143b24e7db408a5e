import asyncio
import dataclasses
import socket
import time
import unittest

from _util import tcp_pair, vigil


class SocketHelpersTest(unittest.TestCase):
    def setUp(self):
        self.server, self.client = tcp_pair()

    def tearDown(self):
        self.server.close()
        self.client.close()

    def test_apply_policy_reads_back(self):
        p = vigil.Policy(keepalive_idle_s=7, keepalive_intvl_s=3,
                         keepalive_cnt=4, user_timeout_ms=5000,
                         fin_wait2_s=9)
        vigil.apply_policy(self.server, p)
        opts = vigil.sockopts(self.server)
        self.assertEqual(opts, vigil.SockOpts(
            keepalive=1, keepalive_idle_s=7, keepalive_intvl_s=3,
            keepalive_cnt=4, user_timeout_ms=5000, fin_wait2_s=9,
            nodelay=opts.nodelay))
        # The kernel agrees when asked without vigil.
        s = self.server
        self.assertEqual(s.getsockopt(socket.SOL_SOCKET,
                                      socket.SO_KEEPALIVE), 1)
        self.assertEqual(s.getsockopt(socket.IPPROTO_TCP,
                                      socket.TCP_KEEPIDLE), 7)
        self.assertEqual(s.getsockopt(socket.IPPROTO_TCP,
                                      socket.TCP_KEEPINTVL), 3)
        self.assertEqual(s.getsockopt(socket.IPPROTO_TCP,
                                      socket.TCP_KEEPCNT), 4)
        self.assertEqual(s.getsockopt(socket.IPPROTO_TCP, 18), 5000)

    def test_apply_policy_auto_user_timeout_and_fd(self):
        vigil.apply_policy(self.client.fileno())  # default policy, by fd
        opts = vigil.sockopts(self.client)
        # AUTO: (idle + intvl * cnt) * 1000 with the defaults 60, 10, 6.
        self.assertEqual(opts.user_timeout_ms, (60 + 10 * 6) * 1000)
        self.assertEqual(opts.keepalive_idle_s, 60)
        self.assertFalse(self.client._closed)  # still the caller's socket

    def test_tcp_info_fields(self):
        self.client.sendall(b"x" * 1000)
        self.assertEqual(len(self.server.recv(1000, socket.MSG_WAITALL)),
                         1000)
        time.sleep(0.01)
        info = vigil.tcp_info(self.client)
        self.assertIs(info.state, vigil.TcpState.ESTABLISHED)
        self.assertEqual(info.state, 1)  # still the kernel's number
        self.assertEqual(info.state_name, "ESTABLISHED")
        self.assertGreater(info.rtt_us, 0)
        self.assertGreater(info.rto_us, 0)
        self.assertEqual(info.unacked, 0)
        self.assertGreaterEqual(info.last_data_sent_ms, 5)
        self.assertLess(info.last_data_sent_ms, 5000)
        self.assertGreater(info.snd_cwnd, 0)
        self.client.shutdown(socket.SHUT_WR)
        self.assertEqual(self.server.recv(1), b"")
        self.assertEqual(vigil.tcp_info(self.server).state_name,
                         "CLOSE_WAIT")
        self.assertIs(vigil.tcp_info(self.server).state,
                      vigil.TcpState.CLOSE_WAIT)
        # Our FIN's ACK may be delayed a moment: FIN_WAIT1, then FIN_WAIT2.
        deadline = time.monotonic() + 2
        while (vigil.tcp_info(self.client).state_name == "FIN_WAIT1"
               and time.monotonic() < deadline):
            time.sleep(0.005)
        self.assertEqual(vigil.tcp_info(self.client).state_name,
                         "FIN_WAIT2")
        self.assertEqual(vigil.tcp_info(self.client).state, 5)

    def test_asyncio_owned_socket(self):
        policy = vigil.Policy(keepalive_idle_s=11, user_timeout_ms=7000)
        seen = []

        async def handle(reader, writer):
            sock = writer.get_extra_info("socket")  # asyncio's wrapper
            vigil.apply_policy(sock, policy)
            seen.append((vigil.sockopts(sock), vigil.tcp_info(sock)))
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            self.assertEqual(await reader.read(), b"")  # server closed
            writer.close()
            server.close()
            await server.wait_closed()
        asyncio.run(main())
        opts, info = seen[0]
        self.assertEqual((opts.keepalive_idle_s, opts.user_timeout_ms),
                         (11, 7000))
        self.assertEqual(info.state_name, "ESTABLISHED")

    def test_errors(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            with self.assertRaises(vigil.VigilError) as cm:
                vigil.tcp_info(udp)
            self.assertEqual(cm.exception.name, "VIGIL_ENOTTCP")
            with self.assertRaises(vigil.VigilError):
                vigil.apply_policy(udp)
        with self.assertRaises(TypeError):
            vigil.apply_policy(self.server, {"keepalive_cnt": 3})
        closed = socket.socket()
        closed.close()
        with self.assertRaises(ValueError):
            vigil.sockopts(closed)


class TcpStateTest(unittest.TestCase):
    def test_names_and_numbers_are_the_c_librarys(self):
        from vigil._lib import lib, text
        from vigil._types import TCP_STATE_COUNT
        self.assertEqual([int(s) for s in vigil.TcpState],
                         list(range(1, TCP_STATE_COUNT)))
        for state in vigil.TcpState:
            with self.subTest(state=state.name):
                self.assertEqual(text(lib.vigil_tcp_state_name(state)),
                                 state.name)
                self.assertEqual(vigil.TcpState[state.name], state)
        self.assertEqual(vigil.TcpState.CLOSE_WAIT, 8)
        self.assertEqual({vigil.TcpState.LISTEN: "x"}[10], "x")

    def test_unknown_number_keeps_its_value(self):
        # A state a newer kernel adds must not make tcp_info() fail.
        state = vigil.TcpState(13)
        self.assertIsInstance(state, vigil.TcpState)
        self.assertEqual((state.name, state), ("UNKNOWN", 13))
        fields = dict.fromkeys(f.name for f in dataclasses.fields(
            vigil.TcpInfo))
        info = vigil.TcpInfo(**dict(fields, state=99))
        self.assertEqual((info.state, info.state.name, info.state_name),
                         (99, "UNKNOWN", "UNKNOWN"))
        with self.assertRaises(ValueError):
            vigil.TcpState("CLOSE_WAIT")  # names go through TcpState[...]


if __name__ == "__main__":
    unittest.main()
