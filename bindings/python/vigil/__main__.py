"""python -m vigil census [--port N] [--json] ...: the Python face of the
vigil-census tool (same options, text and JSON output)."""
import argparse
import json
import sys
import time

from ._census import census
from .errors import VigilError


def _ports(text):
    try:
        ports = [int(p) for p in text.split(",") if p]
    except ValueError:
        raise argparse.ArgumentTypeError("invalid port list %r" % text)
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError("ports must be 1..65535")
    return ports


def _parser():
    p = argparse.ArgumentParser(prog="python -m vigil")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("census", help="TCP sockets per state, ghosts listed")
    c.add_argument("--port", type=_ports, action="append", default=[],
                   help="local port (repeat or comma-separate)")
    c.add_argument("--either", action="store_true",
                   help="--port also matches the peer port")
    c.add_argument("--state", action="append", default=[],
                   help="only this state, and list it (repeatable)")
    c.add_argument("--family", type=int, choices=(4, 6))
    c.add_argument("--owners", action="store_true",
                   help="find the process holding each listed socket")
    c.add_argument("--limit", type=int, default=100,
                   help="list at most N sockets (0 = counts only)")
    c.add_argument("--json", action="store_true", help="one JSON object")
    c.add_argument("--watch", type=float, metavar="S",
                   help="repeat every S seconds until Ctrl-C")
    c.add_argument("--count", type=int, help="with --watch: N censuses")
    return p


def print_text(c, out=sys.stdout):
    """Human-readable census, as vigil-census prints it."""
    ports = ",".join(str(p) for p in c.ports)
    out.write("%s  %d TCP sockets%s\n" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), c.total,
        " on local port " + ports if ports else ""))
    for state, n in c.counts.items():
        if n:
            out.write("  %-12s %8d\n" % (state, n))
    if c.orphans:
        out.write("  %-12s %8d  (no process holds them)\n"
                  % ("orphans", c.orphans))
    if c.sockets:
        out.write("\n  %-11s %-24s %-24s %-18s %4s %7s %7s  %s\n" % (
            "STATE", "LOCAL", "PEER", "TIMER", "RETR", "RECV-Q", "SEND-Q",
            "OWNER"))
    for s in c.sockets:
        timer = "-" if s.timer == "none" else "%s %.1fs" % (
            s.timer, s.expires_ms / 1000)
        owner = ("(orphan)" if s.orphan else "%d/%s" % (s.pid, s.comm)
                 if s.pid else "(self)" if s.in_this_process else "-")
        out.write("  %-11s %-24s %-24s %-18s %4d %7d %7d  %s\n" % (
            s.state, s.local, s.peer, timer, s.retransmits, s.rqueue,
            s.wqueue, owner))
    if c.sockets_omitted:
        out.write("  ... %d more (raise --limit)\n" % c.sockets_omitted)


def main(argv=None):
    args = _parser().parse_args(argv)
    ports = [p for group in args.port for p in group]
    if args.count is not None and args.watch is None:
        _parser().error("--count needs --watch")
    rounds = 0
    try:
        while True:
            c = census(ports, states=args.state or None,
                                  owners=args.owners, either=args.either,
                                  family=args.family, limit=args.limit)
            if args.json:
                print(json.dumps(c.as_dict()), flush=True)
            else:
                print_text(c)
                sys.stdout.flush()
            rounds += 1
            if args.watch is None or (args.count and rounds >= args.count):
                return 0
            time.sleep(args.watch)
    except ValueError as e:  # a bad --state or --family: usage error
        print("python -m vigil: %s" % e, file=sys.stderr)
        return 2
    except VigilError as e:
        print("python -m vigil: census failed: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
