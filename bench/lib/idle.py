#!/usr/bin/env python3
"""Idle: as many idle connections as one server process may hold (20,000
files per process here, so 19,900 connections; 5,000 in --quick), each
with a heartbeat every H = 1 s and 30 s, in a private network namespace.

Servers (one bench_idle client fleet each, 4 client processes over source
addresses 127.0.0.2-9), side by side at 30 s and in --quick, one at a time
at 1 s in the full run:
  vigil_echo_server   examples/echo_server, --ping-interval 2H
                      --dead-after 3H: the clients send a "PING" line every
                      H and the server echoes it (its own ping is only a
                      backstop). game_server is not used here: its session
                      lookups are linear, so 20,000 HELLOs take a minute;
  vigil_mqtt_gateway  MQTT keep-alive H (dead_after = 1.5 H);
  mosquitto           MQTT keep-alive H (Debian's broker).
Every client heartbeats at a uniform random phase, so the load is flat at
once and a window shorter than H still sees N/H heartbeats per second.
Measured per server (bench_idle): CPU % of one core over each window
(median of the windows), scaled per 10,000 connections, and RSS per
connection.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def start_server(a, ns, name, hb, log):
    if name == "vigil_echo_server":
        argv = [f"{a.examples}/echo_server", "--listen", "127.0.0.1:0",
                "--ping-interval", str(2 * hb), "--dead-after", str(3 * hb)]
        return bl.Server(name, argv, ns, log)
    if name == "vigil_mqtt_gateway":
        return bl.Server(name, [f"{a.examples}/mqtt_gateway", "--listen", "127.0.0.1:0"],
                         ns, log)
    port = 18900 + hb // 1000
    conf = os.path.join(a.logs, f"mosquitto-idle-{hb}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                "persistence false\nlog_dest stdout\nmax_connections -1\n")
    return bl.Server(name, ["mosquitto", "-c", conf], ns, log, port=port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--examples", required=True)
    ap.add_argument("--bench-idle", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    conns = 5000 if a.quick else 19900
    windows = 3
    plan = [(1000, 2 if a.quick else 10), (30000, 2 if a.quick else 30)]
    why = bl.have_root_netns()
    if why:
        return bl.skipped("idle", why, a.out)
    servers = [("vigil_echo_server", "line"), ("vigil_mqtt_gateway", "mqtt")]
    skipped = {}
    if shutil.which("mosquitto"):
        servers.append(("mosquitto", "mqtt"))
    else:
        skipped["mosquitto"] = "mosquitto is not installed"
    ns = bl.netns_single("idle")
    # At 30 s the three fleets together send ~2,000 heartbeats/s: side by
    # side is fine. At 1 s, 3 x 19,900 heartbeats/s would saturate two
    # cores and make servers drop clients (1.5 s MQTT bound), so the full
    # run measures one server at a time there (5 s windows).
    steps = []
    for hb, win in plan:
        if a.quick or hb >= 10000:
            steps.append((hb, win, servers))
        else:
            steps += [(hb, 5, [sv]) for sv in servers]
    prog = bl.Progress("idle", len(steps), 15 if a.quick else 40)
    results, modes = {}, {}
    for hb, win, group in steps:
        together = len(group) > 1
        prog.step(f"heartbeat {hb} ms: {conns} connections to "
                  + (f"each of {len(group)} servers side by side" if together else group[0][0])
                  + f", {windows} windows of {win} s")
        started, jobs = [], []
        try:
            for name, proto in group:
                modes[f"hb_{hb}ms"] = {"side_by_side": together, "window_s": win}
                log = os.path.join(a.logs, f"idle-{name}-{hb}.log")
                try:
                    srv = start_server(a, ns, name, hb, log)
                except Exception as e:  # the others still run
                    results.setdefault(name, {})[f"hb_{hb}ms"] = {"skipped": str(e)[:300]}
                    continue
                started.append(srv)
                out = os.path.join(a.logs, f"idle-{name}-{hb}.json")
                cmd = bl.in_ns(ns, [a.bench_idle, "--connect", f"127.0.0.1:{srv.port}",
                                    "--protocol", proto, "--conns", str(conns),
                                    "--procs", "4", "--heartbeat-ms", str(hb),
                                    "--window-s", str(win), "--windows", str(windows),
                                    "--server-pid", str(srv.pid),
                                    "--source-ips", "127.0.0.2-127.0.0.9",
                                    "--label", f"{name} hb={hb}ms", "--json", out])
                errf = open(os.path.join(a.logs, f"idle-{name}-{hb}.err"), "w")
                jobs.append((name, out, errf, bl.track(subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=errf))))
            for name, out, errf, p in jobs:
                try:
                    p.wait(timeout=windows * win + 200)
                except subprocess.TimeoutExpired:
                    p.kill()
                errf.close()
                try:
                    with open(out) as f:
                        r = json.load(f)
                    r["side_by_side"] = together
                    results.setdefault(name, {})[f"hb_{hb}ms"] = r
                except (OSError, ValueError):
                    results.setdefault(name, {})[f"hb_{hb}ms"] = {
                        "skipped": f"bench_idle failed (exit {p.returncode})"}
        except Exception as e:
            for name, _ in group:
                results.setdefault(name, {}).setdefault(f"hb_{hb}ms", {"skipped": str(e)[:300]})
        finally:
            for srv in started:
                srv.stop()
        time.sleep(1)
    bl.netns_delete(ns)
    out = {"config": {"connections": conns, "client_procs": 4, "windows": windows,
                      "window_s": {k: v["window_s"] for k, v in modes.items()},
                      "side_by_side": {k: v["side_by_side"] for k, v in modes.items()},
                      "note": ("quick mode: 5,000 and 2 s windows"
                               if a.quick else "20,000 files per process less the server's own")},
           "servers": results}
    for name, why in skipped.items():
        out["servers"][name] = {"skipped": why}

    def get(n, hb, k):
        r = results.get(n, {}).get(f"hb_{hb}ms", {})
        v = r.get(k)
        return v.get("median") if isinstance(v, dict) else v

    ratios, targets = {}, {}
    for hb, _ in plan:
        for v in ("vigil_echo_server", "vigil_mqtt_gateway"):
            for k in ("cpu_pct_per_10k", "rss_per_conn_bytes"):
                x, y = get(v, hb, k), get("mosquitto", hb, k)
                if x is not None and y:
                    ratios[f"{v}_vs_mosquitto_{k}_hb_{hb}ms"] = round(x / y, 3)
    for v in ("vigil_echo_server", "vigil_mqtt_gateway"):
        x = get(v, 30000, "cpu_pct_per_10k")
        if x is not None:
            targets[f"{v}_under_2pct_per_10k_at_30s"] = x < 2.0
    out["ratios"], out["targets"] = ratios, targets
    bl.write_json(a.out, {"idle": out})


if __name__ == "__main__":
    main()
