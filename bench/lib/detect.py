#!/usr/bin/env python3
"""Detect: how late a server notices a peer that vanished (no FIN, no RST),
measured against the bound it was configured with, between two network
namespaces A (servers) and B (clients) joined by a veth pair, the vanished
peer blackholed with nftables in B (drop its port both ways).

Two halves, one after the other in the same namespace pair:
  1. bench_detect (C, one process): vigil with heartbeat, keepalive-only and
     user-timeout policies, and the kernel alone with the same keepalive and
     user-timeout settings (baselines), N trials each.
  2. MQTT, here: mosquitto (Debian) and mqtt_gateway (vigil) in A, the real
     mosquitto_sub in B with -k 5 (bound 1.5 x 5 = 7.5 s; mosquitto_sub
     refuses keep-alives under 5 s). For each trial: wait until the client
     is connected, wait a random 0.3..5 s (so the blackhole lands at every
     phase of its PINGREQ cycle), blackhole its port and kill the client
     (its FIN dies in the blackhole, and it cannot reconnect), read from the
     server's socket how long ago it last received data (tcp_info
     last_data_recv over sock_diag, like `ss -ti` lastrcv), and timestamp
     the server's log line that declares the client dead as it arrives (mosquitto: "exceeded timeout"; gateway:
     the "dead"/"close" event). Overshoot = that time - (last receive +
     7.5 s). Afterwards `ss -tan` in A lists the sockets each server left
     for its dead peers (FIN_WAIT1 and others).
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

KEEPALIVE_S = 5
BOUND_S = 1.5 * KEEPALIVE_S


class LogTap:
    """Reads a server's output lines in a thread, stamping each on arrival."""

    def __init__(self, stream, copy_to):
        self.lines, self.lock = [], threading.Lock()
        self.copy = copy_to
        threading.Thread(target=self._run, args=(stream,), daemon=True).start()

    def _run(self, stream):
        for line in stream:
            t = time.monotonic()
            with self.lock:
                self.lines.append((t, line))
            self.copy.write(f"{t:.3f} {line}")
            self.copy.flush()

    def find(self, pred, after):
        with self.lock:
            for t, line in self.lines:
                if t >= after and pred(line):
                    return t
        return None


class Broker:
    def __init__(self, name, argv, ns, logpath, port):
        self.name, self.port = name, port
        self.copy = open(logpath, "w")
        self.proc = bl.track(subprocess.Popen(
            bl.in_ns(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, bufsize=1))
        self.tap = LogTap(self.proc.stdout, self.copy)

    def dead_line(self, client_id):
        if self.name == "mosquitto":
            needle = f"Client {client_id} has exceeded timeout"
            return lambda line: needle in line
        def pred(line):
            if f'"{client_id}"' not in line:
                return False
            try:
                ev = json.loads(line)
            except ValueError:
                return False
            return ev.get("event") in ("dead", "close") and ev.get("identity") == client_id
        return pred

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.copy.close()


def ss(ns, *args):
    r = subprocess.run(bl.in_ns(ns, ["ss", "-H"] + list(args)),
                       capture_output=True, text=True)
    return r.stdout


def client_port(ns_b, pid, server_port, deadline):
    pat = re.compile(r":(\d+)\s+\S+:%d\s+users:\(\(\"mosquitto_sub\",pid=%d," % (server_port, pid))
    while time.monotonic() < deadline:
        m = pat.search(ss(ns_b, "-tnp", "state", "established"))
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    return None


probe_lock = threading.Lock()


def run_trial(k, broker, a, res, nft, nft_lock):
    cid = f"det-{broker.name[:4]}-{k}"
    trial = {"client": cid}
    res.append(trial)
    sub = bl.track(subprocess.Popen(bl.in_ns(a.ns_b, [
        "mosquitto_sub", "-h", a.addr_a, "-p", str(broker.port), "-k", str(KEEPALIVE_S),
        "-t", "bench/detect", "-i", cid]), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL))
    try:
        cport = client_port(a.ns_b, sub.pid, broker.port, time.monotonic() + 5)
        if cport is None:
            trial["error"] = "client did not connect"
            return
        time.sleep(random.uniform(0.3, KEEPALIVE_S))
        with nft_lock:
            nft.write(f"add element inet vigilbenchmq ports {{ {cport} }}\n")
            nft.flush()
        t_bh = time.monotonic()
        time.sleep(0.05)  # the rule is in; nothing arrives from here on
        # The device is gone for good: without this, libmosquitto would
        # reconnect from a new (not blackholed) port after its own keep-alive
        # and take the old session over. Its FIN dies in the blackhole.
        sub.kill()
        with probe_lock:
            q0 = time.monotonic()
            lastrcv = a.probe.last_data_recv_ms(broker.port, cport)
            q1 = time.monotonic()
        if lastrcv is None:
            trial["error"] = "no tcp_info for the server socket"
            return
        last_rx = (q0 + q1) / 2 - lastrcv / 1000.0
        # tcpi_last_data_recv has 1 ms steps (jiffies); the dump ran
        # between q0 and q1.
        trial["precision_ms"] = round((q1 - q0) / 2 * 1000 + 1, 1)
        bound = last_rx + BOUND_S
        pred = broker.dead_line(cid)
        t_det = None
        while time.monotonic() < bound + 15:
            t_det = broker.tap.find(pred, t_bh)
            if t_det:
                break
            time.sleep(0.02)
        if t_det is None:
            trial["error"] = "not detected within bound + 15 s"
            return
        trial["overshoot_ms"] = round((t_det - bound) * 1000, 1)
    finally:
        sub.kill()
        sub.wait()


def leftovers(ns, port):
    counts = {}
    for line in ss(ns, "-tan", "state", "all", f"( sport = :{port} )").splitlines():
        st = line.split()[0] if line.split() else ""
        if st and st != "LISTEN":
            counts[st] = counts.get(st, 0) + 1
    return counts


def summarize(name, bound_ms, trials):
    ov = sorted(t["overshoot_ms"] for t in trials if "overshoot_ms" in t)
    errs = [t["error"] for t in trials if "error" in t]
    prec = max((t.get("precision_ms", 0) for t in trials), default=0)
    out = {"bound_ms": bound_ms, "trials": len(trials), "detected": len(ov),
           "missed": len(errs), "early": sum(1 for x in ov if x < 0),
           "early_beyond_precision": sum(1 for t in trials
                                         if t.get("overshoot_ms", 0) < -t.get("precision_ms", 0)),
           "precision_ms": prec,
           "overshoot_ms": {"p50": bl.stats(ov)["median"],
                            "min": ov[0] if ov else None,
                            "max": ov[-1] if ov else None},
           "samples_ms": ov}
    if errs:
        out["errors"] = sorted(set(errs))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--examples", required=True)
    ap.add_argument("--bench-detect", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    trials = 5 if a.quick else 20
    why = bl.have_root_netns()
    if why:
        return bl.skipped("detect", why, a.out)
    if not shutil.which("nft"):
        return bl.skipped("detect", "nft (nftables) is not installed", a.out)
    a.ns_a, a.ns_b, a.addr_a, a.addr_b = bl.netns_pair("det")
    out = {"config": {"trials": trials, "namespaces": "A (servers) <-veth-> B (clients)",
                      "blackhole": "nftables drop of the client's port in B",
                      "loadavg_1m": bl.loadavg()[0]}}
    bl.log(f"  detect: {trials} trials per policy; vigil (heartbeat, keepalive, "
           f"user timeout, kernel baselines)")
    vig_json = os.path.join(a.logs, "detect-vigil.json")
    # The two halves run one after the other: the MQTT half spawns many
    # processes (ip, ss, mosquitto_sub), and on two cores that would show up
    # as scheduling delay in vigil's millisecond figures.
    cdet = bl.track(subprocess.Popen(
        [a.bench_detect, "--ns-a", a.ns_a, "--ns-b", a.ns_b, "--addr-a", a.addr_a,
         "--trials", str(trials), "--json", vig_json],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(a.logs, "detect-vigil.err"), "w")))
    try:
        cdet.wait(timeout=120)
    except subprocess.TimeoutExpired:
        cdet.kill()
    bl.log("  detect: vigil half done; MQTT half (mosquitto, mqtt_gateway)")

    mq = {}
    have_mq = shutil.which("mosquitto") and shutil.which("mosquitto_sub")
    if not have_mq:
        mq = {"skipped": "mosquitto / mosquitto_sub are not installed"}
    else:
        nft = bl.track(subprocess.Popen(bl.in_ns(a.ns_b, ["nft", "-i"]), stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, text=True))
        nft.stdin.write("add table inet vigilbenchmq\n"
                        "add set inet vigilbenchmq ports { type inet_service; }\n"
                        "add chain inet vigilbenchmq in { type filter hook input priority 0; policy accept; }\n"
                        "add chain inet vigilbenchmq out { type filter hook output priority 0; policy accept; }\n"
                        "add rule inet vigilbenchmq in tcp dport @ports drop\n"
                        "add rule inet vigilbenchmq out tcp sport @ports drop\n")
        nft.stdin.flush()
        conf = os.path.join(a.logs, "mosquitto-detect.conf")
        with open(conf, "w") as f:
            f.write(f"listener 1883 {a.addr_a}\nallow_anonymous true\nlog_dest stdout\n"
                    "log_type all\npersistence false\n")
        brokers = []
        a.probe = bl.TcpInfoProbe(a.ns_a)
        try:
            brokers.append(Broker("mosquitto", ["stdbuf", "-oL", "mosquitto", "-c", conf],
                                  a.ns_a, os.path.join(a.logs, "detect-mosquitto.log"), 1883))
            gw = os.path.join(a.examples, "mqtt_gateway")
            if os.access(gw, os.X_OK):
                brokers.append(Broker("vigil_mqtt_gateway",
                                      [gw, "--listen", f"{a.addr_a}:1884", "--log", "json"],
                                      a.ns_a, os.path.join(a.logs, "detect-gateway.log"), 1884))
            time.sleep(0.5)
            results = {b.name: [] for b in brokers}
            lock = threading.Lock()
            threads = []
            for k in range(trials):
                for b in brokers:
                    th = threading.Thread(target=run_trial,
                                          args=(k, b, a, results[b.name], nft.stdin, lock))
                    th.start()
                    threads.append(th)
                    time.sleep(0.3)
            for th in threads:
                th.join(timeout=60)
            for b in brokers:
                mq[b.name] = summarize(b.name, BOUND_S * 1000, results[b.name])
                mq[b.name]["left_on_server_port"] = leftovers(a.ns_a, b.port)
                mq[b.name]["keepalive_s"] = KEEPALIVE_S
        finally:
            for b in brokers:
                b.stop()
            nft.stdin.close()
            nft.wait(timeout=5)
    try:
        with open(vig_json) as f:
            out["vigil"] = json.load(f)["detect_vigil"]
    except (OSError, ValueError, KeyError):
        out["vigil"] = {"skipped": f"bench_detect failed (exit {cdet.returncode})"}
    out["mqtt"] = mq
    # Targets: vigil's own deadline within one tick; never early.
    tg = {}
    v = out["vigil"]
    if "heartbeat" in v:
        tg["heartbeat_max_overshoot_le_1_tick"] = (v["heartbeat"]["overshoot_ms"]["max"] or 0) <= 10.0
        pols = [p for p in ("heartbeat", "keepalive", "user_timeout") if p in v]
        tg["never_early"] = all(v[p]["early"] == 0 for p in pols)
        tg["never_early_beyond_1ms_clock"] = all(v[p]["early_beyond_1ms"] == 0 for p in pols)
        tg["heartbeat_max_overshoot_le_1_tick_plus_1ms_clock"] = (
            (v["heartbeat"]["overshoot_ms"]["max"] or 0) <= 11.0)
        for p in ("keepalive", "user_timeout"):
            kp = v.get(f"kernel_{p}")
            if p in v and kp and kp["overshoot_ms"]["p50"] is not None:
                tg[f"{p}_adds_le_1_tick_over_kernel"] = (
                    v[p]["overshoot_ms"]["p50"] - kp["overshoot_ms"]["p50"]) <= 10.0
    if "vigil_mqtt_gateway" in mq and "mosquitto" in mq:
        g, m = mq["vigil_mqtt_gateway"]["overshoot_ms"], mq["mosquitto"]["overshoot_ms"]
        if g["max"] is not None and m["max"] is not None:
            tg["gateway_beats_mosquitto_max_overshoot"] = g["max"] < m["max"]
    out["targets"] = tg
    bl.netns_delete(a.ns_a)
    bl.netns_delete(a.ns_b)
    bl.write_json(a.out, {"detect": out})


if __name__ == "__main__":
    main()
