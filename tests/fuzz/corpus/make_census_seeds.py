#!/usr/bin/env python3
"""Regenerates the sock_diag parser fuzzer's seed corpus in corpus/census/.

Each seed is <config byte><seq u32 LE><port u16 LE> then recv() buffers,
each a u16 LE length and its bytes (see tests/fuzz/fuzz_census.c): config
bits 0-2 fail the callback at that record, 3-4 family (all/v4/v6/all),
5 match local or peer port, 6 list sockets, 7 cap the list at 3.
"""
import os
import socket
import struct

SEQ = 0x1234
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
SOCK_DIAG_BY_FAMILY = 20
ESTABLISHED, FIN_WAIT1, CLOSE_WAIT, LISTEN, NEW_SYN_RECV = 1, 4, 8, 10, 12
EPERM, ENOENT, EINVAL, EPROTO, ENOBUFS = 1, 2, 22, 71, 105

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "census")
os.makedirs(out, exist_ok=True)


def msg(mtype, payload=b"", seq=SEQ, pad=True, length=None):
    """One netlink message; length overrides nlmsg_len (a lying header)."""
    n = 16 + len(payload)
    hdr = struct.pack("<IHHII", n if length is None else length, mtype, 2,
                      seq, 0)
    body = hdr + payload
    if pad:
        body += b"\0" * (-len(body) % 4)
    return body


def diag(family, state, src, sport, dst, dport, inode, timer=0, expires=0,
         rq=0, wq=0, wire_family=None):
    """struct inet_diag_msg (72 bytes) for the given socket; wire_family
    overrides the family byte the kernel would send."""
    alen = 16 if family == socket.AF_INET6 else 4
    s = socket.inet_pton(family, src).ljust(16, b"\0")[:16]
    d = socket.inet_pton(family, dst).ljust(16, b"\0")[:16]
    assert len(socket.inet_pton(family, src)) == alen
    sockid = struct.pack(">HH", sport, dport) + s + d + struct.pack(
        "<III", 0, 0xDEADBEEF, 7)
    head = struct.pack("<BBBB", family if wire_family is None else wire_family,
                       state, timer, 0)
    tail = struct.pack("<IIIII", expires, rq, wq, 1000, inode)
    return msg(SOCK_DIAG_BY_FAMILY, head + sockid + tail)


def code(mtype, err, extra=b""):
    return msg(mtype, struct.pack("<i", err) + extra)


def seed(name, cfg, buffers, port=0, seq=SEQ):
    data = struct.pack("<BIH", cfg, seq, port)
    for b in buffers:
        data += struct.pack("<H", len(b)) + b
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


V4, V6 = socket.AF_INET, socket.AF_INET6
est = diag(V4, ESTABLISHED, "127.0.0.1", 1883, "127.0.0.1", 40000, 11)
cw = diag(V4, CLOSE_WAIT, "10.0.0.1", 1883, "10.0.0.9", 40001, 12)
lst = diag(V4, LISTEN, "0.0.0.0", 1883, "0.0.0.0", 0, 13)
orphan = diag(V4, FIN_WAIT1, "10.0.0.1", 1883, "10.0.0.7", 40002, 0,
              timer=1, expires=200)
synrecv = diag(V4, NEW_SYN_RECV, "10.0.0.1", 1883, "10.0.0.8", 40003, 0,
               timer=2, expires=900)
v6est = diag(V6, ESTABLISHED, "::1", 8883, "2001:db8::1", 50000, 21)
v6cw = diag(V6, CLOSE_WAIT, "fe80::1", 8883, "::ffff:10.0.0.1", 50001, 22)
mine = diag(V4, ESTABLISHED, "127.0.0.1", 5000, "127.0.0.1", 40004, SEQ)
done = code(NLMSG_DONE, 0)

seed("dump_v4", 0x40, [est + cw + lst + done])
seed("dump_v6", 0x50, [v6est + v6cw + done])
seed("dump_all_port", 0x60, [est + v6est + cw + mine + done], port=1883)
seed("multipart", 0xC0, [est + cw + lst,
                         orphan + msg(SOCK_DIAG_BY_FAMILY, b"x" * 72,
                                      seq=SEQ - 1) + synrecv,
                         v6est + done])
seed("self_and_orphans", 0x40, [mine + orphan + synrecv + done])
seed("odd_records", 0x40,
     [diag(V4, 200, "1.2.3.4", 1, "5.6.7.8", 2, 3)
      + diag(V4, ESTABLISHED, "1.2.3.4", 1, "5.6.7.8", 2, 4, wire_family=99)
      + diag(V4, 0, "1.2.3.4", 1, "5.6.7.8", 2, 5, timer=9, expires=1)
      + done])
seed("callback_fails", 0x42, [est + cw + lst + done])
seed("error_eperm", 0x00, [code(NLMSG_ERROR, -EPERM, est[:16])])
seed("error_weird", 0x00, [code(NLMSG_ERROR, -5000)])
# The kernel's own EPROTO is an errno like any other, not a malformed answer.
seed("error_eproto", 0x00, [code(NLMSG_ERROR, -EPROTO, est[:16])])
seed("ack", 0x00, [code(NLMSG_ERROR, 0, est[:16])])
seed("done_enobufs", 0x40, [est + code(NLMSG_DONE, -ENOBUFS)])
seed("done_short", 0x40, [est + msg(NLMSG_DONE)])
seed("noop_unknown", 0x40, [msg(NLMSG_NOOP) + msg(0x99, b"abc") + est + done])
seed("overrun", 0x00, [est + msg(NLMSG_OVERRUN)])
seed("stale_then_done", 0x40, [msg(NLMSG_DONE, b"\0" * 4, seq=SEQ + 1)
                               + est + done])
seed("unpadded_last", 0x40, [est + msg(NLMSG_ERROR, struct.pack("<i", -ENOENT)
                                       + b"z", pad=False)])
seed("lying_length", 0x40, [est + msg(SOCK_DIAG_BY_FAMILY, b"\0" * 72,
                                      length=4000)])
seed("short_length", 0x40, [msg(SOCK_DIAG_BY_FAMILY, b"", length=8)])
seed("short_record", 0x40, [msg(SOCK_DIAG_BY_FAMILY, b"\x02\x01" * 5) + done])
seed("short_error", 0x00, [msg(NLMSG_ERROR, b"\xff\xff")])
seed("trailing_bytes", 0x40, [est + b"\x10\0\0\0"])
seed("truncated_header", 0x40, [est[:10]])
