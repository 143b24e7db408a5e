"""Shared helpers for the benchmark drivers (python3 standard library only).

- progress lines with a time-left estimate;
- a private network namespace ("lo" up) or a veth pair of namespaces,
  removed again on exit and on SIGINT/SIGTERM, so load never touches the
  host's loopback and the kernel counters read are ours alone;
- servers started under `ip netns exec` with their output in a log file
  (ip execs the command, so the Popen pid is the server's pid);
- /proc readers: a process's CPU time (scheduler runtime of all its
  threads, ns), its RSS, its namespace's TCP PassiveOpens counter;
- socket census of a port through the vigil-census tool;
- median/min/max of repetitions.
"""
import atexit
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

_namespaces = []
_children = []


def log(msg):
    print(msg, flush=True)


def fmt_s(s):
    s = max(0, int(round(s)))
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """Prints "<name> [i/n] what (elapsed, about T left)" lines."""

    def __init__(self, name, steps, est_step_s):
        self.name, self.n, self.est = name, max(1, steps), est_step_s
        self.i, self.t0 = 0, time.monotonic()

    def step(self, what):
        self.i += 1
        el = time.monotonic() - self.t0
        done = self.i - 1
        per = el / done if done else self.est
        left = per * (self.n - done)
        log(f"  {self.name} [{self.i}/{self.n}] {what} "
            f"({fmt_s(el)} elapsed, about {fmt_s(left)} left)")


def stats(values):
    """{"median", "min", "max", "n"} of the numbers in values (None skipped)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(v), 4), "min": round(min(v), 4),
            "max": round(max(v), 4), "n": len(v)}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def have_root_netns():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "`ip netns` is not available"
    return None


def _run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def _cleanup():
    for p in _children:
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        except Exception:
            pass
    for ns in list(_namespaces):
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        _namespaces.remove(ns)


def _on_signal(sig, frame):
    _cleanup()
    sys.exit(128 + sig)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def track(proc):
    """Registers a child process for cleanup at exit."""
    _children.append(proc)
    return proc


def netns_single(tag):
    """Creates namespace vigilbench-<pid>-<tag> with lo up; returns its name.
    The whole 127.0.0.0/8 is local on lo, so 127.0.0.2-9 work as sources."""
    name = f"vigilbench-{os.getpid()}-{tag}"
    _run("ip", "netns", "add", name)
    _namespaces.append(name)
    _run("ip", "-n", name, "link", "set", "lo", "up")
    return name


def netns_pair(tag, subnet_octet=200):
    """Two namespaces A and B joined by a veth pair: A is
    198.18.<octet>.1, B 198.18.<octet>.2. Returns (a, b, addr_a, addr_b)."""
    a = f"vigilbench-{os.getpid()}-{tag}a"
    b = f"vigilbench-{os.getpid()}-{tag}b"
    for n in (a, b):
        _run("ip", "netns", "add", n)
        _namespaces.append(n)
    va, vb = f"vb{os.getpid() % 100000}{tag}a"[:15], f"vb{os.getpid() % 100000}{tag}b"[:15]
    _run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
    _run("ip", "link", "set", va, "netns", a)
    _run("ip", "link", "set", vb, "netns", b)
    addr_a, addr_b = f"198.18.{subnet_octet}.1", f"198.18.{subnet_octet}.2"
    _run("ip", "-n", a, "addr", "add", f"{addr_a}/24", "dev", va)
    _run("ip", "-n", b, "addr", "add", f"{addr_b}/24", "dev", vb)
    for n, dev in ((a, va), (b, vb)):
        _run("ip", "-n", n, "link", "set", dev, "up")
        _run("ip", "-n", n, "link", "set", "lo", "up")
    return a, b, addr_a, addr_b


def netns_delete(name):
    if name in _namespaces:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        _namespaces.remove(name)


def in_ns(ns, argv):
    return (["ip", "netns", "exec", ns] + list(argv)) if ns else list(argv)


class Server:
    """A server process under `ip netns exec`, output in logfile. The port
    comes from the first "listening on HOST:PORT" line in its output, or is
    given (fixed-port servers such as mosquitto)."""

    def __init__(self, name, argv, ns, logfile, port=None, env=None,
                 timeout=10.0):
        self.name, self.logfile = name, logfile
        self.logf = open(logfile, "w")
        self.proc = track(subprocess.Popen(in_ns(ns, argv), stdout=self.logf,
                                           stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env))
        self.pid = self.proc.pid
        self.port = port
        deadline = time.monotonic() + timeout
        pat = re.compile(r"listening on \[?[0-9a-fA-F.:]+\]?:(\d+)")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start: "
                                   f"{self.tail()}")
            if port is not None:
                if self._port_open(ns, port):
                    return
            else:
                with open(logfile, errors="replace") as f:
                    m = pat.search(f.read())
                if m:
                    self.port = int(m.group(1))
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{name} did not start listening: {self.tail()}")

    @staticmethod
    def _port_open(ns, port):
        r = subprocess.run(in_ns(ns, ["ss", "-Htln", f"sport = :{port}"]),
                           capture_output=True, text=True)
        return bool(r.stdout.strip())

    def tail(self, n=400):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self, keep_bytes=256 * 1024):
        """Stops the server (SIGTERM, SIGKILL after 8 s) and trims its log
        to the last keep_bytes: a storm logs hundreds of MB of events."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        try:
            size = os.path.getsize(self.logfile)
            if keep_bytes and size > keep_bytes:
                with open(self.logfile, "rb") as f:
                    f.seek(size - keep_bytes)
                    tail = f.read()
                with open(self.logfile, "wb") as f:
                    f.write(b"[... %d bytes trimmed ...]\n" % (size - keep_bytes) + tail)
        except OSError:
            pass


def cpu_ns(pid):
    """CPU time of all live threads of pid in ns (scheduler runtime);
    falls back to utime+stime ticks. None if the process is gone."""
    total, ok = 0.0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/sched") as f:
                    for line in f:
                        if line.startswith("se.sum_exec_runtime"):
                            total += float(line.split(":")[1]) * 1e6
                            ok = True
                            break
            except OSError:
                pass
    except OSError:
        return None
    if ok:
        return total
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def passive_opens(pid):
    """TCP PassiveOpens of pid's network namespace (accepted connections)."""
    try:
        with open(f"/proc/{pid}/net/snmp") as f:
            lines = [l.split() for l in f if l.startswith("Tcp:")]
        hdr, val = lines[0], lines[1]
        return int(val[hdr.index("PassiveOpens")])
    except (OSError, IndexError, ValueError):
        return None


def listen_drops(pid):
    """TcpExt ListenDrops of pid's namespace: SYNs dropped because an accept
    queue was full (each costs the client a 1 s SYN retransmission)."""
    try:
        with open(f"/proc/{pid}/net/netstat") as f:
            lines = [l.split() for l in f if l.startswith("TcpExt:")]
        hdr, val = lines[0], lines[1]
        return int(val[hdr.index("ListenDrops")])
    except (OSError, IndexError, ValueError):
        return None


def census(census_bin, ns, port):
    """vigil-census counts on a local port inside ns: dict with "counts"
    (state -> n) and "orphans"; None if the tool failed."""
    r = subprocess.run(in_ns(ns, [census_bin, "--port", str(port), "--json",
                                  "--limit", "0"]),
                       capture_output=True, text=True)
    if r.returncode:
        return None
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def ghosts_of(c, live_clients=0):
    """Ghosts as the storm counts them: CLOSE_WAIT + orphans + ESTABLISHED
    beyond the clients still connected."""
    k = c["counts"]
    return (k.get("CLOSE_WAIT", 0) + c.get("orphans", 0) +
            max(0, k.get("ESTABLISHED", 0) - live_clients))


class TcpInfoProbe:
    """Reads tcp_info of sockets in another network namespace over
    NETLINK_SOCK_DIAG (what `ss -ti` does, without starting a process, so
    the sample time is known to well under a millisecond). The netlink
    socket is created inside the namespace (setns through ctypes, then
    back): a socket keeps the namespace it was created in."""

    def __init__(self, ns):
        import ctypes
        import socket as so
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        mine = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(target, clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                self.sock = so.socket(so.AF_NETLINK, so.SOCK_RAW, 4)  # SOCK_DIAG
            finally:
                if libc.setns(mine, clone_newnet) != 0:
                    os._exit(70)  # stuck in the wrong namespace: stop at once
        finally:
            os.close(mine)
            os.close(target)

    def last_data_recv_ms(self, sport, dport):
        """tcpi_last_data_recv of the ESTABLISHED IPv4 socket sport->dport,
        or None."""
        import struct
        req = struct.pack("=BBBBI", 2, 6, 1 << (2 - 1), 0, 1 << 1)  # AF_INET, TCP, INFO, ESTABLISHED
        req += bytes(48)  # any socket id: the dump is filtered below
        hdr = struct.pack("=IHHII", 16 + len(req), 20, 0x301, 1, 0)
        self.sock.send(hdr + req)
        found = None
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if typ == 3:  # NLMSG_DONE
                    return found
                if typ == 2 or ln < 16:  # NLMSG_ERROR
                    return found
                body = off + 16
                sp, dp = struct.unpack_from(">HH", data, body + 4)
                if sp == sport and dp == dport:
                    a = body + 72
                    while a + 4 <= off + ln:
                        alen, atype = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        if atype == 2 and alen >= 4 + 56:  # INET_DIAG_INFO
                            found = struct.unpack_from("=I", data, a + 4 + 52)[0]
                        a += (alen + 3) & ~3
                off += (ln + 3) & ~3


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def skipped(section, reason, path):
    write_json(path, {section: {"skipped": reason}})
    log(f"  {section}: skipped: {reason}")
