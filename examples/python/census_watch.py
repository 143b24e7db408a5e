#!/usr/bin/env python3
"""Prints the TCP census of a port every few seconds: counts per state,
plus the CLOSE_WAIT and orphaned sockets (the ghosts) with their owners.

    PYTHONPATH=bindings/python python3 examples/python/census_watch.py \\
        --port 1883 --every 5 --count 3
"""
import argparse
import time
import vigil


def show(c, port):
    states = "  ".join("%s=%d" % (s, n) for s, n in c.counts.items() if n)
    print("%s port %d: %d sockets  %s" % (time.strftime("%H:%M:%S"), port,
                                          c.total, states or "-"))
    for s in c.sockets:
        owner = "orphan" if s.orphan else ("%d/%s" % (s.pid, s.comm)
                                           if s.pid else "?")
        print("    %-10s %-22s <- %-22s %s" % (s.state, s.local, s.peer,
                                               owner))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--every", type=float, default=5.0, help="seconds")
    ap.add_argument("--count", type=int, default=0,
                    help="stop after N censuses (0: until Ctrl-C)")
    args = ap.parse_args()
    n = 0
    try:
        while True:
            show(vigil.census([args.port], owners=True), args.port)
            n += 1
            if args.count and n >= args.count:
                break
            time.sleep(args.every)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
