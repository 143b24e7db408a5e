#!/usr/bin/env python3
"""Storm: thousands of devices reconnecting (device_sim --mode flap) for a
fixed time against each server, in a private network namespace.

Servers (each started fresh for every repetition, repetitions interleaved
so a busy moment on the shared machine hits every server alike):
  vigil protocol  game_server (vigil, full policy: heartbeat, dead_after,
                  handshake timeout, keepalive, user timeout, takeover),
                  bare_server (libev accept/read/close: the upper bound),
                  node_server.js (Node.js net, setKeepAlive + setTimeout)
  MQTT            mqtt_gateway (vigil), mosquitto (Debian), bare_server
Every server logs what it normally logs, to a file.

Per run: connections per second (device_sim's ready connections / its
elapsed time), p50/p99 connect-to-ready latency (device_sim), server CPU
time per 1,000 connections (/proc/PID/task/*/sched before/after), server
CPU utilisation (is the server or the load generator the bottleneck?),
accepts per second over time (the namespace's TCP PassiveOpens counter,
sampled twice a second: only this run's traffic lives there), ghosts
once the devices have left (vigil-census on the server port: CLOSE_WAIT +
orphans + ESTABLISHED; polled until zero or the settle time passes), and,
in the full run, system calls per connection from one extra 3 s run per
server under `strace -f -c` (not timed).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

SRC_IPS = "127.0.0.2-127.0.0.9"


REDIS_PORT = 16379  # inside the storm's private namespace


def cluster_unavailable(ex):
    """Why the --cluster run cannot happen, or None."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    # A bad node name fails validation either way; the message says which.
    r = subprocess.run([f"{ex}/mqtt_gateway", "--cluster", "redis://127.0.0.1:1",
                        "--node", "bad/name"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if "no cluster directory" in r.stderr:
        return "built without hiredis"
    return None


def start_redis(a, ns):
    """A redis-server in the namespace for the --cluster run."""
    log = open(os.path.join(a.logs, "storm-redis.log"), "w")
    proc = bl.track(subprocess.Popen(bl.in_ns(ns, [
        "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", a.logs]),
        stdout=log, stderr=subprocess.STDOUT))
    time.sleep(0.5)
    return proc


def targets(a):
    ex, here = a.examples, a.servers
    node = shutil.which("node") or shutil.which("nodejs")
    t = [
        ("vigil_game_server", "vigil", "vigil",
         [f"{ex}/game_server", "--listen", "127.0.0.1:0"], None),
        ("bare_libev", "vigil", "bare",
         [f"{a.bare}", "--listen", "127.0.0.1:0"], None),
        ("node", "vigil", "node",
         [node or "node", f"{here}/node_server.js", "--listen", "127.0.0.1:0"],
         None if node else "node is not installed"),
        ("vigil_mqtt_gateway", "mqtt", "vigil",
         [f"{ex}/mqtt_gateway", "--listen", "127.0.0.1:0"], None),
        # The same two vigil servers as a group of two workers (SO_REUSEPORT
        # listeners on one port). On a 2-core machine the workers share the
        # cores with device_sim: this shows the group's overhead as much as
        # its gain.
        ("vigil_game_server_w2", "vigil", "vigil",
         [f"{ex}/game_server", "--listen", "127.0.0.1:0", "--workers", "2"],
         None),
        ("vigil_mqtt_gateway_w2", "mqtt", "vigil",
         [f"{ex}/mqtt_gateway", "--listen", "127.0.0.1:0", "--workers", "2"],
         None),
        # The gateway with --cluster: every claim also goes to a Redis
        # directory (a redis-server inside the namespace): what the cluster
        # costs the server per connection.
        ("vigil_mqtt_gateway_cluster", "mqtt", "vigil",
         [f"{ex}/mqtt_gateway", "--listen", "127.0.0.1:0", "--cluster",
          f"redis://127.0.0.1:{REDIS_PORT}", "--node", "storm"],
         cluster_unavailable(ex)),
        ("mosquitto", "mqtt", "mosquitto", None,
         None if shutil.which("mosquitto") else "mosquitto is not installed"),
        ("bare_libev_mqtt", "mqtt", "bare",
         [f"{a.bare}", "--listen", "127.0.0.1:0"], None),
    ]
    if a.quick:  # the MQTT upper bound adds little to a quick look
        t = [x for x in t if x[0] != "bare_libev_mqtt"]
    return t


def mosquitto_argv(a, port, tag):
    conf = os.path.join(a.logs, f"mosquitto-storm-{tag}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                "persistence false\nlog_dest stdout\nmax_connections -1\n")
    return ["mosquitto", "-c", conf]


def parse_strace(path):
    """strace -c summary: {syscall: calls} (and "total")."""
    calls = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) in (5, 6) and p[3].isdigit():
                    calls[p[-1]] = int(p[3])
    except OSError:
        pass
    return calls


def one_run(a, ns, name, proto, argv, rep, trace=False):
    log = os.path.join(a.logs, f"storm-{name}-{rep}.log")
    port = None
    if name == "mosquitto":
        port = 18830 + rep
        argv = mosquitto_argv(a, port, rep)
    # game_server wants HELLO "name@room" (8 seats a room): "d@r<n>" gives
    # every device a room of its own.
    ids = ["--id-prefix", "d@r"] if name.startswith("vigil_game_server") else []
    srv = bl.Server(name, argv, ns, log, port=port)
    try:
        time.sleep(0.1)
        c0, o0 = bl.cpu_ns(srv.pid), bl.passive_opens(srv.pid)
        d0 = bl.listen_drops(srv.pid)
        tracer = None
        if trace:  # syscalls per connection (slows the server: not timed)
            tpath = log + ".strace"
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", tpath, "-p", str(srv.pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        t0 = time.monotonic()
        sim = bl.track(subprocess.Popen(bl.in_ns(ns, [
            a.device_sim, "--connect", f"127.0.0.1:{srv.port}",
            "--devices", str(a.devices), "--duration", str(3 if trace else a.duration),
            "--protocol", proto, "--mode", "flap", "--rate", str(a.rate),
            "--churn-ms", "10,10", "--keepalive", "60",
            "--source-ips", SRC_IPS, "--report", "json"] + ids),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        series, last_o, last_t = [], o0, t0
        while sim.poll() is None:
            time.sleep(0.05)
            t = time.monotonic()
            if t - last_t >= 0.5:  # accept-rate sample
                o = bl.passive_opens(srv.pid)
                if o is not None and last_o is not None:
                    series.append([round(t - t0, 2), round((o - last_o) / (t - last_t), 1)])
                last_o, last_t = o, t
            if t - t0 > a.duration + 30:
                sim.kill()
        out, err = sim.communicate()
        c1, d1 = bl.cpu_ns(srv.pid), bl.listen_drops(srv.pid)
        if tracer:
            tracer.send_signal(signal.SIGINT)
            try:
                tracer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tracer.kill()
        try:
            r = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"device_sim gave no report: {err[-300:]}")
        # Ghosts once every device has left.
        ghosts, census, settle = None, None, None
        t_end = time.monotonic()
        while True:
            census = bl.census(a.census, ns, srv.port)
            if census is not None:
                ghosts = bl.ghosts_of(census)
                if ghosts == 0:
                    settle = time.monotonic() - t_end
                    break
            if time.monotonic() - t_end > a.settle:
                break
            time.sleep(0.1)
        conns = r.get("connects", 0)
        el = r.get("elapsed_s") or a.duration
        cpu_s = (c1 - c0) / 1e9 if c0 is not None and c1 is not None else None
        res = {
            "conn_per_s": round(conns / el, 1) if el else None,
            "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
            "max_ms": r.get("max_ms"),
            "cpu_s": round(cpu_s, 4) if cpu_s is not None else None,
            "cpu_ms_per_1000": round(cpu_s * 1e6 / conns, 2) if cpu_s and conns else None,
            "server_cpu_util_pct": round(cpu_s / el * 100, 1) if cpu_s and el else None,
            "connects": conns, "errors": r.get("errors"),
            "listen_drops": d1 - d0 if d0 is not None and d1 is not None else None,
            "ghosts": ghosts, "ghost_settle_s": round(settle, 2) if settle is not None else None,
            "census_counts": census["counts"] if census else None,
            "census_orphans": census.get("orphans") if census else None,
            "rate_series": series, "loadavg_1m": bl.loadavg()[0],
        }
        if tracer:
            calls = parse_strace(tpath)
            if conns and calls.get("total"):
                top = sorted(((k, v) for k, v in calls.items() if k != "total"),
                             key=lambda kv: -kv[1])[:8]
                res["syscalls_per_conn"] = round(calls["total"] / conns, 1)
                res["top_syscalls_per_conn"] = {k: round(v / conns, 2) for k, v in top}
        return res
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--examples", required=True)
    ap.add_argument("--census", required=True)
    ap.add_argument("--bare", required=True)
    ap.add_argument("--servers", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma list of server names (testing)")
    ap.add_argument("--reps", type=int, help="override (testing)")
    ap.add_argument("--duration", type=int, help="override, seconds (testing)")
    a = ap.parse_args()
    a.device_sim = os.path.join(a.examples, "device_sim")
    a.reps = a.reps or 3
    a.duration = a.duration or (2 if a.quick else 10)  # whole seconds
    a.devices = 4000
    a.rate = 40000
    a.settle = 2.0 if a.quick else 4.0
    why = bl.have_root_netns()
    if why:
        return bl.skipped("storm", why, a.out)
    if not os.access(a.device_sim, os.X_OK):
        return bl.skipped("storm", "examples/device_sim is not built (not landed?)", a.out)
    if not os.access(a.census, os.X_OK):
        return bl.skipped("storm", "vigil-census is not built", a.out)
    tg = targets(a)
    if a.only:
        tg = [t for t in tg if t[0] in a.only.split(",")]
    runnable = [t for t in tg if t[4] is None]
    ns = bl.netns_single("storm")
    redis = start_redis(a, ns) if any(t[0] == "vigil_mqtt_gateway_cluster"
                                      for t in runnable) else None
    traced = 0 if a.quick or not shutil.which("strace") else len(runnable)
    prog = bl.Progress("storm", len(runnable) * a.reps + traced, a.duration + 1.5)
    runs = {t[0]: [] for t in runnable}
    errors = {}
    for rep in range(a.reps):
        for name, proto, kind, argv, _ in runnable:
            prog.step(f"{name} ({proto}) rep {rep + 1}/{a.reps}, {a.duration} s")
            try:
                runs[name].append(one_run(a, ns, name, proto, argv, rep))
            except Exception as e:  # one broken server must not end the run
                errors.setdefault(name, []).append(str(e)[:300])
                bl.log(f"  storm: {name} rep {rep + 1} failed: {str(e)[:200]}")
    traces = {}
    if not a.quick and shutil.which("strace"):
        # One extra traced run per server: how many system calls a
        # connection costs each of them (strace slows the server, so these
        # runs are not part of the rates above).
        for name, proto, kind, argv, _ in runnable:
            prog.step(f"{name}: syscalls per connection (strace -c, not timed)")
            try:
                r = one_run(a, ns, name, proto, argv, 9, trace=True)
                if "syscalls_per_conn" in r:
                    traces[name] = {"syscalls_per_conn": r["syscalls_per_conn"],
                                    "top": r["top_syscalls_per_conn"]}
            except Exception as e:
                bl.log(f"  storm: {name} traced run failed: {str(e)[:200]}")
    if redis:
        redis.kill()
        redis.wait()
    bl.netns_delete(ns)
    out = {"config": {"devices": a.devices, "duration_s": a.duration,
                      "reps": a.reps, "mode": "flap", "churn_ms": "10,10",
                      "rate_cap": a.rate, "source_ips": SRC_IPS,
                      "load_generator": "examples/device_sim (one process)",
                      "netns": "private namespace, loopback"},
           "servers": {}}
    for name, proto, kind, argv, why in tg:
        if why:
            out["servers"][name] = {"protocol": proto, "skipped": why}
            continue
        rs = runs[name]
        if not rs:
            out["servers"][name] = {"protocol": proto,
                                    "skipped": "; ".join(errors.get(name, ["no run"]))}
            continue
        agg = {"protocol": proto, "kind": kind, "reps": len(rs)}
        for k in ("conn_per_s", "p50_ms", "p99_ms", "cpu_ms_per_1000",
                  "server_cpu_util_pct", "ghosts", "errors", "listen_drops",
                  "loadavg_1m"):
            agg[k] = bl.stats([r.get(k) for r in rs])
        agg["ghosts_max"] = max((r["ghosts"] for r in rs if r["ghosts"] is not None),
                                default=None)
        # The rate series of the median-rate repetition, for the plot.
        med = sorted(rs, key=lambda r: r["conn_per_s"] or 0)[len(rs) // 2]
        agg["rate_series"] = med["rate_series"]
        agg["last_census"] = {"counts": rs[-1]["census_counts"],
                              "orphans": rs[-1]["census_orphans"]}
        if name in errors:
            agg["failed_reps"] = errors[name]
        if name in traces:
            agg["syscalls"] = traces[name]
        out["servers"][name] = agg

    def med(n, k):
        s = out["servers"].get(n, {})
        return (s.get(k) or {}).get("median") if isinstance(s.get(k), dict) else None

    ratios = {}
    for v, base in (("vigil_game_server", "bare_libev"),
                    ("vigil_mqtt_gateway", "bare_libev_mqtt")):
        if med(v, "conn_per_s") and med(base, "conn_per_s"):
            ratios[f"{v}_vs_{base}_rate"] = round(med(v, "conn_per_s") / med(base, "conn_per_s"), 3)
        if med(v, "cpu_ms_per_1000") and med(base, "cpu_ms_per_1000"):
            ratios[f"{v}_vs_{base}_cpu_ms_per_1000"] = round(
                med(v, "cpu_ms_per_1000") / med(base, "cpu_ms_per_1000"), 3)
    for v, other in (("vigil_game_server", "node"), ("vigil_mqtt_gateway", "mosquitto"),
                     ("vigil_game_server", "mosquitto"),
                     ("vigil_game_server_w2", "vigil_game_server"),
                     ("vigil_mqtt_gateway_w2", "vigil_mqtt_gateway"),
                     ("vigil_mqtt_gateway_cluster", "vigil_mqtt_gateway")):
        for k in ("conn_per_s", "p99_ms", "cpu_ms_per_1000"):
            if med(v, k) and med(other, k):
                ratios[f"{v}_vs_{other}_{k}"] = round(med(v, k) / med(other, k), 3)
    out["ratios"] = ratios
    tgt = {}
    if "vigil_game_server_vs_bare_libev_rate" in ratios:
        tgt["rate_ge_90pct_of_bare"] = ratios["vigil_game_server_vs_bare_libev_rate"] >= 0.9
    if "vigil_game_server_vs_bare_libev_cpu_ms_per_1000" in ratios:
        tgt["game_cpu_le_1_3x_bare"] = \
            ratios["vigil_game_server_vs_bare_libev_cpu_ms_per_1000"] <= 1.3
    # SYNs dropped because the accept queue overflowed: each costs a client
    # a 1 s retransmission. No more than the bare server at the same load
    # (the MQTT bare run in the full mode, else the vigil-protocol one).
    bare_drops = {"vigil_game_server": med("bare_libev", "listen_drops"),
                  "vigil_mqtt_gateway": med("bare_libev_mqtt", "listen_drops")
                  if med("bare_libev_mqtt", "conn_per_s") else med("bare_libev", "listen_drops")}
    for v, bd in bare_drops.items():
        vd = med(v, "listen_drops")
        if vd is not None and bd is not None:
            tgt[f"{v}_syn_drops_le_bare"] = vd <= bd
    if "vigil_mqtt_gateway_vs_bare_libev_mqtt_rate" in ratios:
        tgt["gateway_rate_ge_90pct_of_bare_mqtt"] = \
            ratios["vigil_mqtt_gateway_vs_bare_libev_mqtt_rate"] >= 0.9
    for v, other in (("vigil_mqtt_gateway", "mosquitto"), ("vigil_game_server", "node")):
        r, p, c = (ratios.get(f"{v}_vs_{other}_{k}") for k in ("conn_per_s", "p99_ms", "cpu_ms_per_1000"))
        if None not in (r, p, c):
            tgt[f"{v}_ahead_of_{other}"] = {"rate": r >= 1, "p99": p <= 1, "cpu_per_conn": c <= 1}
    gh = [out["servers"][n].get("ghosts_max")
          for n in ("vigil_game_server", "vigil_mqtt_gateway",
                    "vigil_game_server_w2", "vigil_mqtt_gateway_w2")
          if isinstance(out["servers"].get(n), dict)]
    if gh and None not in gh:
        tgt["vigil_ghosts_zero"] = max(gh) == 0
    # A group of two workers against one: no more CPU per connection than
    # 10 % over one worker's, and no more SYNs dropped at a full accept
    # queue.
    for n in ("vigil_game_server", "vigil_mqtt_gateway"):
        w2 = f"{n}_w2"
        c = ratios.get(f"{w2}_vs_{n}_cpu_ms_per_1000")
        if c is not None:
            tgt[f"{w2}_cpu_within_10pct"] = c <= 1.10
        d2, d1 = med(w2, "listen_drops"), med(n, "listen_drops")
        if d2 is not None and d1 is not None:
            tgt[f"{w2}_drops_le_one_worker"] = d2 <= d1
    # The cluster directory: server CPU per 1,000 connections within 20 %
    # of the same gateway without it.
    c = ratios.get("vigil_mqtt_gateway_cluster_vs_vigil_mqtt_gateway_cpu_ms_per_1000")
    if c is not None:
        tgt["vigil_mqtt_gateway_cluster_cpu_within_20pct"] = c <= 1.20
    out["targets"] = tgt
    bl.write_json(a.out, {"storm": out})


if __name__ == "__main__":
    main()
