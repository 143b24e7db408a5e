#!/usr/bin/env python3
"""Regenerates the event formatter fuzzer's seed corpus in corpus/event/.

Layout (see tests/fuzz/fuzz_event.c): u8 format, u16 buffer size (bit 15:
pass NULL), i32 type reason cause sys_errno idle_kind truncated
tls_resumed, u64 ts conn age bytes_in bytes_out other_conn, i64 last_rx
last_tx, u32 retry evidence count, u8 presence bits (sockopts, tcp_info,
state_counts) and those structs, then peer, identity, detail as u8 tag
(0 = NULL), u16 length, bytes, then i32 worker scope other_worker
peer_class. Little endian throughout.
"""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "event")
os.makedirs(out, exist_ok=True)

LOGFMT, JSON = 0, 1
TS = 1700000000123  # 2023-11-14T22:13:20.123Z


def s(text):
    """A present string (bytes or str)."""
    if isinstance(text, str):
        text = text.encode()
    return struct.pack("<BH", 1, len(text)) + text


NULL = b"\0"


def event(name, fmt, etype, buflen=200, reason=0, cause=0, errno=0, idle=0,
          truncated=0, tls_resumed=-1, ts=TS, conn=7, age=1500, bytes_in=10,
          bytes_out=20, other=0, rx=-1, tx=250, retry=0, evidence=0, count=0,
          sockopts=None, tcp_info=None, counts=None, peer=s("127.0.0.1:5000"),
          identity=NULL, detail=NULL, raw_fmt=None, worker=-1, scope=0,
          other_worker=-1, peer_class=0):
    data = struct.pack("<B", fmt if raw_fmt is None else 0xF0)
    if raw_fmt is not None:
        data += struct.pack("<I", raw_fmt)
    data += struct.pack("<H", buflen)
    data += struct.pack("<Iiiiiii", etype & 0xFFFFFFFF, reason, cause, errno,
                        idle, truncated, tls_resumed)
    data += struct.pack("<QQQQQQqq", ts, conn, age, bytes_in, bytes_out,
                        other, rx, tx)
    data += struct.pack("<III", retry, evidence, count)
    present = ((sockopts is not None) | (tcp_info is not None) << 1
               | (counts is not None) << 2)
    data += struct.pack("<B", present)
    if sockopts is not None:
        data += struct.pack("<iiiiIii", *sockopts)
    if tcp_info is not None:
        data += struct.pack("<i13I", *tcp_info)
    if counts is not None:
        data += struct.pack("<13I", *counts)
    data += peer + identity + detail
    data += struct.pack("<iiii", worker, scope, other_worker, peer_class)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


SO = (1, 60, 10, 6, 30000, 60, 1)
TI = (1, 12000, 3000, 204000, 3, 2, 5, 1, 0, 100, 5000, 4800, 10, 0)
COUNTS = (0, 40, 0, 1, 0, 0, 7, 0, 3, 0, 1, 0, 2)

event("open_logfmt", LOGFMT, 1, sockopts=SO, identity=s("dev-1"))
event("open_tls_json", JSON, 1, sockopts=SO, tls_resumed=0, detail=s("tls"))
event("open_resumed", LOGFMT, 1, tls_resumed=1, detail=s("tls"))
event("ping_due", JSON, 2, tx=30000)
event("idle", LOGFMT, 3, idle=3, rx=61000, tx=61000)
event("dead_json", JSON, 4, reason=4, tcp_info=TI, identity=s("sensor/7"))
event("peer_fin", LOGFMT, 5, rx=0)
event("draining", JSON, 6)
event("close_logfmt", LOGFMT, 7, reason=9, cause=4, errno=104, truncated=1,
      detail=s("drain cut after 5000 ms"))
event("close_json_bigs", JSON, 7, reason=11, errno=-5, bytes_in=2**64 - 1,
      rx=-2**63, tx=2**63 - 1, age=2**64 - 1)
event("accept_paused", LOGFMT, 8, errno=24, retry=100, conn=0, peer=NULL)
event("accept_resumed", JSON, 9, conn=0, peer=NULL)
event("ready", LOGFMT, 10)
event("suspect", JSON, 11, tcp_info=TI, evidence=0x7 | 0x80)
event("suspect_logfmt", LOGFMT, 11, reason=0, evidence=0x2)
event("takeover", LOGFMT, 12, other=3, identity=s("dev 1"))
event("takeover_worker", JSON, 12, other=3, identity=s("dev-1"), worker=1,
      scope=1, other_worker=0)
event("takeover_ghost", LOGFMT, 12, other=3, peer_class=1, evidence=0x3F)
event("takeover_live_json", JSON, 12, other=3, peer_class=2)
event("close_takeover_ghost", JSON, 7, reason=14, peer_class=1, evidence=0x8)
event("takeover_class_bad", LOGFMT, 12, other=3, peer_class=9,
      evidence=0x400)
event("takeover_scope_bad", LOGFMT, 12, other=3, worker=0, scope=77,
      other_worker=5)
event("open_worker", LOGFMT, 1, worker=3)
event("flapping", JSON, 13, count=9, identity=s("dev-1"))
event("census", LOGFMT, 14, counts=COUNTS, conn=0, peer=NULL)
event("census_json", JSON, 14, counts=tuple([2**32 - 1] * 13), conn=0,
      peer=NULL)
event("ghosts", JSON, 15, count=120, conn=0, peer=NULL)
event("shutdown", LOGFMT, 16, conn=0, peer=NULL, detail=s("finished"))
event("client", JSON, 17, detail=s("connect failed: ECONNREFUSED, retry in 200 ms"))
event("type_zero", LOGFMT, 0)
event("type_past_end", JSON, 18, reason=999, cause=-1, idle=77)
event("type_negative", LOGFMT, -1, tcp_info=(-7,) + TI[1:])
event("ts_max", JSON, 7, ts=2**64 - 1)
event("ts_zero", LOGFMT, 4, ts=0)
event("escapes_logfmt", LOGFMT, 7,
      detail=s(b'say "hi"\\ a=b\ttab\nnl\rcr\x01\x1f\x7f\x08\x0c end'),
      peer=s(""), identity=s("caf\xc3\xa9".encode("latin-1")))
event("escapes_json", JSON, 7,
      detail=s(b'say "hi"\\ a=b\ttab\nnl\rcr\x01\x1f\x7f\x08\x0c end'),
      peer=s(""), identity=s("/slash/"))
event("bad_utf8_json", JSON, 7,
      detail=s(b"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 | \x80 \xc0\xaf "
               b"\xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf8 \xe2\x82"),
      identity=s(b"\xff\xfe"))
event("bad_utf8_logfmt", LOGFMT, 7, detail=s(b"\xed\xa0\x80 \xc3"))
event("embedded_nul", JSON, 7, detail=s(b"before\0after"), peer=s(b"\0"))
event("tiny_buffer", JSON, 4, buflen=1, detail=s("x" * 100))
event("zero_buffer", LOGFMT, 4, buflen=0)
event("null_buffer", JSON, 4, buflen=0x8000 | 50)
event("bad_format", 0, 7, raw_fmt=7)
event("bad_format_negative", 0, 7, raw_fmt=0xFFFFFFFF)
event("long_detail", LOGFMT, 7, buflen=300, detail=s("y=" * 2000))
