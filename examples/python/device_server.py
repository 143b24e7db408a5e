#!/usr/bin/env python3
"""A device server: devices send "HELLO <id>\n", then any lines; the server
pings idle devices and drops the silent ones after 30 s (RST, no ghosts).
A device that reconnects displaces its old connection (identity takeover).

    PYTHONPATH=bindings/python python3 examples/python/device_server.py
    nc 127.0.0.1 7000   # type: HELLO dev-1

With --cluster redis://HOST:PORT --node NAME, several servers share one
identity directory: a device that comes back through another server ends
its old connection there too (docs/cluster.md).
"""
import argparse
import json
import vigil

POLICY = vigil.Policy(ping_interval_ms=10_000, dead_after_ms=30_000,
                      keepalive_idle_s=20, keepalive_intvl_s=5,
                      keepalive_cnt=3, handshake_timeout_ms=10_000)


def on_data(conn, data):
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("HELLO ") and conn.state == "handshake":
            try:
                conn.identify(line[6:].strip())
            except vigil.VigilError as e:   # rejected, banned, unsupported
                print("identify:", e)
            if not conn.closed:
                conn.ready()
                conn.send(b"WELCOME\n")
        elif line != "PONG":
            conn.send(b"ACK " + line.encode() + b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--cluster", metavar="URL",
                    help="share identities with other nodes through Redis")
    ap.add_argument("--node", default="py-node",
                    help="this node's name in the cluster (unique)")
    args = ap.parse_args()
    cluster = (vigil.ClusterOptions(args.cluster, args.node)
               if args.cluster else None)
    hub = vigil.Hub(POLICY, cluster=cluster, on_event=lambda ev: print(
        json.dumps({k: v for k, v in ev.items() if k != "conn_obj"}),
        flush=True))
    listener = hub.listen(args.host, args.port, on_data=on_data,
                          on_ping_due=lambda conn: conn.send(b"PING\n"))
    print("listening on %s:%d" % (args.host, listener.port), flush=True)
    try:
        hub.run()
    except KeyboardInterrupt:
        hub.shutdown(deadline_ms=2000)   # graceful, bounded
        hub.run()
    hub.close()


if __name__ == "__main__":
    main()
