#!/usr/bin/env python3
"""Merges the per-benchmark JSON parts into results.json and writes
report.md with one table per benchmark (vigil, baselines, ratios), the
machine description, a targets summary and three gnuplot PNGs: connection
rate over time in the storm, CDF of detection overshoot, timer cost against
connection count. python3 standard library + gnuplot (optional: without it
the report says so and lists the data files).

  report.py --parts DIR --out DIR
"""
import argparse
import glob
import json
import os
import shutil
import subprocess

SECTIONS = ["timers", "memory", "storm", "idle", "detect", "stall", "tls", "takeover"]


def load_parts(parts):
    res = {}
    for path in sorted(glob.glob(os.path.join(parts, "*.json"))):
        try:
            with open(path) as f:
                res.update(json.load(f))
        except (OSError, ValueError) as e:
            name = os.path.basename(path)[:-5]
            res[name] = {"skipped": f"unreadable result file: {e}"}
    for s in SECTIONS:
        res.setdefault(s, {"skipped": "did not run"})
    return res


def f(x, digits=3):
    """Compact number: 3 significant digits, thousands separators."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, (int, float)):
        return str(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def med(d, k):
    v = d.get(k) if isinstance(d, dict) else None
    if isinstance(v, dict):
        return v.get("median")
    return v


def mmm(d, k):
    """"median (min–max)" of a stats dict."""
    v = d.get(k) if isinstance(d, dict) else None
    if not isinstance(v, dict):
        return f(v)
    if v.get("n", 0) <= 1 or v.get("min") == v.get("max"):
        return f(v.get("median"))
    return f"{f(v['median'])} ({f(v['min'])}–{f(v['max'])})"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def skipped(sec):
    return isinstance(sec, dict) and "skipped" in sec and len(sec) <= 2


# ---- plots -----------------------------------------------------------------

def gnuplot(script, out_dir):
    if not shutil.which("gnuplot"):
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=out_dir,
                       capture_output=True)
    return r.returncode == 0


def plot_storm(res, out):
    st = res["storm"]
    if skipped(st):
        return None
    series = [(n, s["rate_series"]) for n, s in st.get("servers", {}).items()
              if isinstance(s, dict) and s.get("rate_series")]
    if not series:
        return None
    plots = []
    for n, ser in series:
        dat = f"storm_rate_{n}.dat"
        with open(os.path.join(out, dat), "w") as fh:
            fh.writelines(f"{t} {r}\n" for t, r in ser)
        plots.append(f"'{dat}' using 1:2 with linespoints title '{n.replace('_', ' ')}'")
    script = ("set terminal pngcairo size 900,480 noenhanced\nset output 'storm_rate.png'\n"
              "set title 'Storm: accepted connections per second (PassiveOpens, 0.5 s samples)'\n"
              "set xlabel 'seconds since the load started'\nset ylabel 'connections / s'\n"
              "set key outside right\nset grid\nset yrange [0:*]\n"
              "plot " + ", ".join(plots) + "\n")
    return "storm_rate.png" if gnuplot(script, out) else None


def plot_detect(res, out):
    d = res["detect"]
    if skipped(d):
        return None
    curves = []
    for group in ("vigil", "mqtt"):
        for n, v in (d.get(group) or {}).items():
            if isinstance(v, dict) and v.get("samples_ms"):
                if n.startswith("kernel_"):
                    label = n[7:] + " (kernel alone)"
                elif group == "vigil":
                    label = "vigil " + n
                else:
                    label = n
                curves.append((label.replace("_", " "), sorted(v["samples_ms"])))
    if not curves:
        return None
    plots = []
    for i, (name, xs) in enumerate(curves):
        dat = f"detect_cdf_{i}.dat"
        with open(os.path.join(out, dat), "w") as fh:
            fh.write(f"{max(xs[0], 0.1)} 0\n")
            for k, x in enumerate(xs):
                fh.write(f"{max(x, 0.1)} {(k + 1) / len(xs)}\n")
        plots.append(f"'{dat}' using 1:2 with steps lw 2 title '{name}'")
    script = ("set terminal pngcairo size 900,480 noenhanced\nset output 'detect_cdf.png'\n"
              "set title 'Detection overshoot past the configured bound (CDF)'\n"
              "set xlabel 'overshoot, ms (log; values <= 0.1 ms drawn at 0.1)'\n"
              "set ylabel 'fraction of trials'\nset logscale x\nset key outside right\n"
              "set grid\nset yrange [0:1.05]\n"
              "plot " + ", ".join(plots) + "\n")
    return "detect_cdf.png" if gnuplot(script, out) else None


TIMER_KEYS = [("refresh_ns", "vigil refresh (timestamp store)"),
              ("wheel_expire_rearm_ns", "vigil wheel expiry + lazy re-arm"),
              ("ev_again_ns", "libev ev_timer_again"),
              ("ev_stop_set_start_ns", "libev stop+set+start"),
              ("ev_expire_rearm_ns", "libev heap expiry + re-arm")]


def timer_ns(t):
    out = []
    for k, v in t.items():
        if k.startswith("n_") and isinstance(v, dict):
            try:
                out.append((int(k[2:]), v))
            except ValueError:
                pass
    return sorted(out)


def plot_timers(res, out):
    t = res["timers"]
    if skipped(t):
        return None
    ns = timer_ns(t)
    if not ns:
        return None
    with open(os.path.join(out, "timers.dat"), "w") as fh:
        for n, v in ns:
            fh.write(f"{n} " + " ".join(f(med(v, k)) if med(v, k) is not None else "NaN"
                                        for k, _ in TIMER_KEYS).replace(",", "") + "\n")
    plots = [f"'timers.dat' using 1:{i + 2} with linespoints lw 2 title '{label}'"
             for i, (_, label) in enumerate(TIMER_KEYS)]
    script = ("set terminal pngcairo size 900,480 noenhanced\nset output 'timers.png'\n"
              "set title 'Cost per operation against connection count (median)'\n"
              "set xlabel 'connections'\nset ylabel 'ns per operation'\n"
              "set logscale xy\nset key outside right\nset grid\n"
              "plot " + ", ".join(plots) + "\n")
    return "timers.png" if gnuplot(script, out) else None


# ---- sections ----------------------------------------------------------------

def sec_timers(t):
    md = ["## 1. Timers (bench_timers)\n"]
    if skipped(t):
        return md + [f"Skipped: {t['skipped']}\n"]
    rows = []
    for n, v in timer_ns(t):
        r = v.get("ratios", {})
        rows.append([f"{n:,}", mmm(v, "refresh_ns"), mmm(v, "ev_again_ns"),
                     mmm(v, "ev_stop_set_start_ns"), f(r.get("refresh_vs_ev_again")),
                     mmm(v, "wheel_expire_rearm_ns"), mmm(v, "ev_expire_rearm_ns"),
                     f(r.get("wheel_expire_rearm_vs_ev_expire_rearm")),
                     f(v.get("loadavg_before"))])
    md.append("ns per operation, median (min–max) of the repetitions, thread CPU time. "
              "Ratio = libev / vigil (how many times cheaper vigil is).\n")
    md.append(table(["connections", "vigil refresh", "libev ev_timer_again",
                     "libev stop+set+start", "ratio (again/refresh)",
                     "vigil expiry+re-arm", "libev expiry+re-arm", "ratio", "load 1m"], rows))
    tg = [f"{n:,}: {json.dumps(v.get('targets'))}" for n, v in timer_ns(t) if v.get("targets")]
    if tg:
        md.append("Targets as bench_timers evaluates them: " + "; ".join(tg) + "\n")
    return md


def sec_memory(m):
    md = ["## 2. Memory per idle connection (bench_memory)\n"]
    if skipped(m):
        return md + [f"Skipped: {m['skipped']}\n"]
    c, v, b = m.get("config", {}), m.get("vigil", {}), m.get("bare_libev", {})
    cited = m.get("cited", {})
    md.append(f"{c.get('connections'):,} idle plain-TCP connections (each did one read and one "
              f"write), server in the bench process, clients in a child; each repetition in a "
              f"fresh process. Load average 1m: {f(c.get('loadavg_1m'))}.\n")
    rows = [
        ["vigil", f"{c.get('conn_struct_bytes')} B struct, {mmm(v, 'conn_alloc_bytes')} B allocated",
         mmm(v, "state_per_conn_bytes"), mmm(v, "heap_per_conn_bytes"),
         mmm(v, "rss_per_conn_bytes"), v.get("idle_buffers")],
        ["bare libev (one malloc'd ev_io)", f"{mmm(b, 'conn_alloc_bytes')} B allocated",
         mmm(b, "state_per_conn_bytes"), mmm(b, "heap_per_conn_bytes"),
         mmm(b, "rss_per_conn_bytes"), b.get("idle_buffers")],
        ["nginx (cited)", "connection slot", cited.get("nginx_conn_slot_bytes"), "–", "–", "–"],
        ["libuv (cited)", "uv_tcp_t", cited.get("libuv_uv_tcp_t_bytes"), "–", "–", "–"],
    ]
    md.append(table(["", "per-connection object", "state per conn (B)",
                     "heap per conn (B)", "RSS per conn (B)", "idle buffers"], rows))
    md.append("state = the allocation plus the conn's 8-byte slot in the hub's array; heap = "
              "everything malloc handed out for the connections (incl. libev's per-fd table and "
              f"the array's doubling slack, {mmm(v, 'conn_array_per_conn_bytes')} B at this N); "
              "RSS = resident set delta. The kernel's ~4 KiB of socket slab per connection is "
              "not included. The hub's one shared read buffer is "
              f"{c.get('hub_read_buffer_bytes', 0) // 1024} KiB per hub, not per connection.\n")
    hv, hb = med(v, "heap_per_conn_bytes"), med(b, "heap_per_conn_bytes")
    if hv and hb:
        md.append(f"Ratio vigil / bare libev heap: {f(hv / hb)}; vigil state / nginx slot: "
                  f"{f(med(v, 'state_per_conn_bytes') / cited.get('nginx_conn_slot_bytes', 416))}.\n")
    return md


STORM_ORDER = ["vigil_game_server", "vigil_game_server_w2", "bare_libev", "node",
               "vigil_mqtt_gateway", "vigil_mqtt_gateway_w2", "vigil_mqtt_gateway_cluster",
               "mosquitto", "bare_libev_mqtt"]


def sec_storm(s, plot):
    md = ["## 3. Reconnect storm (device_sim --mode flap)\n"]
    if skipped(s):
        return md + [f"Skipped: {s['skipped']}\n"]
    c = s.get("config", {})
    md.append(f"{c.get('devices'):,} devices, each connecting, getting ready (vigil: PONG to its "
              f"first PING after HELLO; MQTT: CONNACK), staying {c.get('churn_ms', '').split(',')[0]} ms and "
              f"leaving cleanly, for {c.get('duration_s')} s; {c.get('reps')} repetitions, "
              f"interleaved; private network namespace. Median (min–max).\n")
    rows = []
    servers = s.get("servers", {})
    for n in STORM_ORDER + [k for k in servers if k not in STORM_ORDER]:
        v = servers.get(n)
        if not isinstance(v, dict):
            continue
        if "skipped" in v:
            rows.append([n, v.get("protocol", ""), f"skipped: {v['skipped']}"] + [""] * 7)
            continue
        rows.append([n, v.get("protocol"), mmm(v, "conn_per_s"), mmm(v, "p50_ms"),
                     mmm(v, "p99_ms"), mmm(v, "cpu_ms_per_1000"), mmm(v, "server_cpu_util_pct"),
                     f(v.get("ghosts_max")), mmm(v, "listen_drops"), mmm(v, "loadavg_1m")])
    md.append(table(["server", "protocol", "conn/s", "p50 ready ms", "p99 ready ms",
                     "server CPU ms / 1,000 conns", "server CPU %", "ghosts (max)",
                     "SYNs dropped (accept queue full)", "load 1m"], rows))
    r = s.get("ratios", {})
    if r:
        md.append("Ratios (vigil / other; rate above 1 and p99, CPU below 1 favour vigil): " +
                  ", ".join(f"{k.replace('_', ' ')} = {f(v)}" for k, v in r.items()) + "\n")
    tr = [(n, v["syscalls"]) for n, v in servers.items()
          if isinstance(v, dict) and isinstance(v.get("syscalls"), dict)]
    if tr:
        md.append("System calls per connection (one extra traced run per server, strace -c):\n")
        md.append(table(["server", "syscalls / conn", "top calls / conn"],
                        [[n, f(t["syscalls_per_conn"]),
                          ", ".join(f"{k} {f(v)}" for k, v in t["top"].items())] for n, t in tr]))
    md.append("Server CPU % near 100 means the server was the bottleneck; well below, the one "
              "device_sim process (on the other core) was. Ghosts = CLOSE_WAIT + orphans + "
              "ESTABLISHED on the server port after every device left (vigil-census).\n")
    if plot:
        md.append(f"![connection rate over time]({plot})\n")
    return md


def sec_idle(s):
    md = ["## 4. Idle connections with heartbeats (bench_idle)\n"]
    if skipped(s):
        return md + [f"Skipped: {s['skipped']}\n"]
    c = s.get("config", {})
    sbs = c.get("side_by_side", {})
    md.append(f"{c.get('connections'):,} connections per server ({c.get('note')}), clients in "
              f"{c.get('client_procs')} processes over 127.0.0.2–9, each pinging every H at a "
              f"random phase; CPU over {c.get('windows')} windows per heartbeat ("
              + ", ".join(f"{k.replace('hb_', '').replace('ms', ' ms')}: {v} s windows, servers "
                          f"{'side by side' if sbs.get(k) else 'one at a time'}"
                          for k, v in c.get('window_s', {}).items()) + ").\n")
    rows = []
    for n, per in s.get("servers", {}).items():
        if "skipped" in per:
            rows.append([n, "", f"skipped: {per['skipped']}", "", "", "", ""])
            continue
        for hb, r in sorted(per.items()):
            if "skipped" in r:
                rows.append([n, hb, f"skipped: {r['skipped']}", "", "", "", ""])
                continue
            rows.append([n, hb.replace("hb_", "").replace("ms", " ms"), f(r.get("conns")),
                         mmm(r, "cpu_pct"), mmm(r, "cpu_pct_per_10k"),
                         f(r.get("rss_per_conn_bytes")), f(r.get("drops"))])
    md.append(table(["server", "heartbeat", "connections", "CPU % of a core",
                     "CPU % per 10k conns", "RSS per conn (B)", "dropped by server"], rows))
    r = s.get("ratios", {})
    if r:
        md.append("Ratios vs mosquitto (below 1 favours vigil): " +
                  ", ".join(f"{k.replace('_', ' ')} = {f(v)}" for k, v in r.items()) + "\n")
    md.append("echo_server: the clients send a line every H and it echoes it (vigil's own "
              "ping_interval, 2H, is the backstop); MQTT: PINGREQ/PINGRESP. RSS per connection "
              "is the whole server's (mqtt_gateway keeps a session: client id, subscriptions, "
              "will) on top of vigil's 256 B.\n")
    return md


def sec_detect(d, plot):
    md = ["## 5. Dead-peer detection (namespaces + nftables blackhole)\n"]
    if skipped(d):
        return md + [f"Skipped: {d['skipped']}\n"]
    rows = []
    v = d.get("vigil", {})
    if "skipped" in v:
        rows.append(["vigil", f"skipped: {v['skipped']}"] + [""] * 7)
    for pol in ("heartbeat", "keepalive", "user_timeout", "kernel_keepalive",
                "kernel_user_timeout"):
        x = v.get(pol)
        if not isinstance(x, dict):
            continue
        who = "kernel alone (baseline)" if pol.startswith("kernel") else "vigil"
        left = v.get("left_on_server_port", {})
        lo = "none" if not any(k != "orphans" and c for k, c in left.items()) else \
            ", ".join(f"{k} {c}" for k, c in left.items() if c)
        rows.append([who, pol.replace("kernel_", ""), f(x["bound_ms"]), x["trials"],
                     f(x["overshoot_ms"]["p50"]), f(x["overshoot_ms"]["max"]),
                     f"{x['early']} ({x.get('early_beyond_1ms', '–')} beyond 1 ms)",
                     x["missed"], lo if who == "vigil" else "–"])
    mq = d.get("mqtt", {})
    if "skipped" in mq:
        rows.append(["MQTT", f"skipped: {mq['skipped']}"] + [""] * 7)
    for n, x in mq.items():
        if not isinstance(x, dict) or "bound_ms" not in x:
            continue
        left = x.get("left_on_server_port", {})
        rows.append([n, f"keep-alive {x.get('keepalive_s')} s x 1.5", f(x["bound_ms"]), x["trials"],
                     f(x["overshoot_ms"]["p50"]), f(x["overshoot_ms"]["max"]),
                     f"{x['early']} ({x.get('early_beyond_precision', '–')} beyond ±{f(x.get('precision_ms'))} ms)",
                     x["missed"], ", ".join(f"{k} {c}" for k, c in left.items()) or "none"])
    md.append(table(["server", "policy", "bound ms", "trials", "overshoot p50 ms",
                     "overshoot max ms", "early", "missed", "left on server port"], rows))
    md.append("Overshoot = detection time − bound, where the bound counts from the last "
              "byte the server received (vigil: the client's last send; MQTT: tcp_info "
              "last_data_recv of the broker's socket right after the blackhole, good to the ± shown). The hub tick is "
              "10 ms. vigil stamps receives with the loop's cached, truncated millisecond, so "
              "it may act up to 1 ms before the true bound; \"beyond 1 ms\" counts what that "
              "cannot explain. The kernel rows use the same socket options without vigil.\n")
    if plot:
        md.append(f"![detection overshoot CDF]({plot})\n")
    return md


def sec_stall(s):
    md = ["## 6. Expiry stall: 10,000 deadlines in one tick (bench_stall)\n"]
    if skipped(s):
        return md + [f"Skipped: {s['skipped']}\n"]
    c = s.get("config", {})
    md.append(f"{c.get('connections'):,} connections whose deadlines all fall in the same tick; "
              f"iteration = callback phase of one loop turn (ev_check at EV_MAXPRI to ev_prepare "
              f"at EV_MINPRI). {c.get('reps')} repetitions; target {f(c.get('target_ms'))} ms. "
              f"Load 1m: {f(c.get('loadavg_1m'))}.\n")
    rows = []
    for sc in ("ping", "dead"):
        for b, r in (s.get(sc) or {}).items():
            rows.append([sc, b.replace("batch_", "").replace("_", " ") +
                         (" (unlimited)" if b == "batch_0" else " (default)" if b == "batch_256" else ""),
                         mmm(r, "max_iter_ms"), mmm(r, "max_iter_cpu_ms"), mmm(r, "p999_iter_ms"),
                         mmm(r, "expiry_iters"),
                         mmm(r, "span_ms"), mmm(r, "per_expiry_us"), f(r.get("suggested_batch")),
                         f(r.get("meets_5ms"))])
    md.append(table(["wave", "expire_batch", "longest iteration ms", "its CPU ms", "p99.9 ms",
                     "iterations with expiries", "first→last expiry ms", "µs per expiry",
                     "batch for 5 ms", "meets 5 ms"], rows))
    md.append("ping: every connection's ping_interval elapses (one send each); dead: every "
              "connection's dead_after elapses (RST close + on_close). Few iterations run in a "
              "wave, so p99.9 equals the longest one. Iterations are wall time (what other "
              "connections wait for, preemption on this shared machine included); \"its CPU\" is "
              "the longest iteration in thread CPU time.\n")
    return md


def flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if set(v) >= {"median", "min", "max"}:
                yield key, f"{f(v['median'])} ({f(v['min'])}–{f(v['max'])})"
            else:
                yield from flatten(v, key + ".")
        elif isinstance(v, list):
            yield key, ", ".join(f(x) for x in v[:12])
        else:
            yield key, f(v)


def sec_tls(t):
    """bench_tls's JSON is its own: scalars and nested dicts as key/value
    rows, each list of objects (e.g. "cases") as a table of its own."""
    md = ["## 7. TLS (bench_tls)\n"]
    if skipped(t):
        return md + [f"Skipped: {t['skipped']}\n"]
    scalars = {k: v for k, v in t.items()
               if not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
    if scalars:
        md.append(table(["key", "value"], list(flatten(scalars))))
    for k, v in t.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            rows = [dict(flatten(x)) for x in v]
            cols = []
            for r in rows:
                cols += [c for c in r if c not in cols]
            md.append(f"{k}:\n")
            md.append(table(cols, [[r.get(c, "") for c in cols] for r in rows]))
    return md


def sec_takeover(t):
    md = ["## 8. Takeover latency (bench_takeover)\n"]
    if skipped(t):
        return md + [f"Skipped: {t['skipped']}\n"]
    c = t.get("config", {})
    md.append(f"{c.get('takeovers'):,} takeovers per scope, one at a time, in a group of "
              f"{c.get('workers')} workers: from the claim (vigil_conn_identify) on the new conn to "
              f"the RST of the conn it displaced, on CLOCK_MONOTONIC. hub: both conns on one worker; "
              f"worker: the displaced conn on the other worker (the eviction goes through its "
              f"mailbox). Load 1m: {f(c.get('loadavg_1m'))}.\n")
    rows = []
    scopes = ["hub", "worker"] + (["cluster"] if t.get("cluster") and not skipped(t["cluster"]) else [])
    for scope in scopes:
        r = t.get(scope) or {}
        rows.append([scope, f(r.get("n")), f(r.get("p50_us")), f(r.get("p99_us")),
                     f(r.get("max_us")), f((t.get("mean_us") or {}).get(scope)),
                     f"{r.get('reset_seen')} / {r.get('n')}"])
    md.append(table(["scope", "takeovers", "p50 µs", "p99 µs", "max µs", "mean µs",
                     "displaced clients that saw ECONNRESET"], rows))
    cl = t.get("cluster") or {}
    if skipped(cl):
        md.append(f"Across nodes (cluster): skipped: {cl['skipped']}\n")
    else:
        md.append("cluster: the displaced conn on another node (two groups of one worker sharing a "
                  "loopback redis-server): the claim goes to the store, whose script publishes the "
                  "eviction to the other node. Target p99 <= 5 ms.\n")
    cc = t.get("cluster_claim")
    if cc:
        rc = cc.get("redis_cpu_us_per_claim") or {}
        md.append(f"Cluster directory (bench_cluster_claim): {f(cc.get('pipelined_claims_per_s'))} "
                  f"claims/s pipelined on one connection; redis-server CPU per claim "
                  f"{f(rc.get('sequential'))} µs one at a time, {f(rc.get('pipelined'))} µs pipelined; "
                  f"client CPU per pipelined claim {f(cc.get('client_cpu_us_per_pipelined_claim'))} µs; "
                  f"claim round trip p50 {f((cc.get('latency_ms') or {}).get('p50'))} ms.\n")
    return md


def targets(res):
    rows = []

    def add(bench, what, value, met):
        rows.append([bench, what, value, "met" if met else ("**not met**" if met is not None else "n/a")])

    m = res["memory"]
    if not skipped(m):
        add("memory", "vigil state per connection <= 256 B",
            f"{f(med(m.get('vigil', {}), 'state_per_conn_bytes'))} B",
            m.get("targets", {}).get("state_per_conn_le_256"))
        add("memory", "no I/O buffer held by an idle connection",
            f"{m.get('vigil', {}).get('idle_buffers')} conns with a buffer",
            m.get("targets", {}).get("no_idle_buffers"))
    s = res["storm"]
    if not skipped(s):
        sv, r, tg = s.get("servers", {}), s.get("ratios", {}), s.get("targets", {})
        if "rate_ge_90pct_of_bare" in tg:
            add("storm", "game_server >= 90 % of the bare server's rate",
                f"{f(r.get('vigil_game_server_vs_bare_libev_rate', 0) * 100)} %", tg["rate_ge_90pct_of_bare"])
        if "game_cpu_le_1_3x_bare" in tg:
            add("storm", "game_server CPU per connection <= 1.3x the bare server's",
                f"{f(r.get('vigil_game_server_vs_bare_libev_cpu_ms_per_1000', 0))}x",
                tg["game_cpu_le_1_3x_bare"])
        for v in ("vigil_game_server", "vigil_mqtt_gateway"):
            if f"{v}_syn_drops_le_bare" in tg:
                add("storm", f"{v}: no more SYNs dropped than the bare server",
                    f"{f(med(sv.get(v, {}), 'listen_drops'))}", tg[f"{v}_syn_drops_le_bare"])
        if "gateway_rate_ge_90pct_of_bare_mqtt" in tg:
            add("storm", "mqtt_gateway >= 90 % of the bare server's MQTT rate",
                f"{f(r.get('vigil_mqtt_gateway_vs_bare_libev_mqtt_rate', 0) * 100)} %",
                tg["gateway_rate_ge_90pct_of_bare_mqtt"])
        metric = {"rate": "conn_per_s", "p99": "p99_ms", "cpu_per_conn": "cpu_ms_per_1000"}
        for k, v in tg.items():
            if isinstance(v, dict):
                mine, other = k.split("_ahead_of_")
                for kk, ok in v.items():
                    m = metric[kk]
                    add("storm", f"{mine} ahead of {other}: {kk}",
                        f"{f(med(sv.get(mine, {}), m))} vs {f(med(sv.get(other, {}), m))}", ok)
        if "vigil_ghosts_zero" in tg:
            add("storm", "ghosts after the storm = 0 (vigil servers)", "", tg["vigil_ghosts_zero"])
        for n in ("vigil_game_server", "vigil_mqtt_gateway"):
            w2 = f"{n}_w2"
            if f"{w2}_cpu_within_10pct" in tg:
                add("storm", f"{w2}: server CPU / 1,000 conns within 10 % of one worker",
                    f"{f(med(sv.get(w2, {}), 'cpu_ms_per_1000'))} vs "
                    f"{f(med(sv.get(n, {}), 'cpu_ms_per_1000'))} ms", tg[f"{w2}_cpu_within_10pct"])
            if f"{w2}_drops_le_one_worker" in tg:
                add("storm", f"{w2}: no more SYN drops than one worker",
                    f"{f(med(sv.get(w2, {}), 'listen_drops'))} vs "
                    f"{f(med(sv.get(n, {}), 'listen_drops'))}", tg[f"{w2}_drops_le_one_worker"])
        if "vigil_mqtt_gateway_cluster_cpu_within_20pct" in tg:
            add("storm", "mqtt_gateway --cluster: server CPU / 1,000 conns within 20 % of without",
                f"{f(med(sv.get('vigil_mqtt_gateway_cluster', {}), 'cpu_ms_per_1000'))} vs "
                f"{f(med(sv.get('vigil_mqtt_gateway', {}), 'cpu_ms_per_1000'))} ms",
                tg["vigil_mqtt_gateway_cluster_cpu_within_20pct"])
    i = res["idle"]
    if not skipped(i):
        for k, ok in i.get("targets", {}).items():
            n = k.split("_under")[0]
            val = (i["servers"].get(n, {}).get("hb_30000ms", {}).get("cpu_pct_per_10k") or {}).get("median")
            add("idle", f"{n}: < 2 % of a core per 10k conns at 30 s heartbeat", f"{f(val)} %", ok)
    d = res["detect"]
    if not skipped(d):
        tg = d.get("targets", {})
        hb = (d.get("vigil", {}).get("heartbeat") or {}).get("overshoot_ms", {})
        if "heartbeat_max_overshoot_le_1_tick" in tg:
            add("detect", "heartbeat: max overshoot <= 1 tick (10 ms)", f"{f(hb.get('max'))} ms",
                tg["heartbeat_max_overshoot_le_1_tick"])
            add("detect", "... within 1 tick + the 1 ms clock step", f"{f(hb.get('max'))} ms",
                tg.get("heartbeat_max_overshoot_le_1_tick_plus_1ms_clock"))
        if "never_early" in tg:
            add("detect", "never early (strict)", "", tg["never_early"])
            add("detect", "never early beyond the 1 ms clock step", "", tg.get("never_early_beyond_1ms_clock"))
        for p in ("keepalive", "user_timeout"):
            k = f"{p}_adds_le_1_tick_over_kernel"
            if k in tg:
                v, kv = d["vigil"][p]["overshoot_ms"], d["vigil"][f"kernel_{p}"]["overshoot_ms"]
                add("detect", f"{p}: vigil adds <= 1 tick to the kernel's own latency",
                    f"vigil p50 {f(v['p50'])} ms vs kernel {f(kv['p50'])} ms", tg[k])
                add("detect", f"{p}: max overshoot <= 1 tick (kernel-bound)", f"{f(v['max'])} ms",
                    (v["max"] or 0) <= 10.0)
        if "gateway_beats_mosquitto_max_overshoot" in tg:
            add("detect", "mqtt_gateway's max overshoot below mosquitto's", "",
                tg["gateway_beats_mosquitto_max_overshoot"])
    tk = res["takeover"]
    if not skipped(tk):
        add("takeover", "across workers: claim to RST p99 <= 1 ms",
            f"{f((tk.get('worker') or {}).get('p99_us'))} µs",
            (tk.get("targets") or {}).get("worker_p99_le_1ms"))
        if (tk.get("targets") or {}).get("cluster_p99_le_5ms") is not None:
            add("takeover", "across nodes (Redis): claim to RST p99 <= 5 ms",
                f"{f((tk.get('cluster') or {}).get('p99_us'))} µs",
                tk["targets"]["cluster_p99_le_5ms"])
    st = res["stall"]
    if not skipped(st):
        for sc in ("ping", "dead"):
            r = (st.get(sc) or {}).get("batch_256")
            if r:
                add("stall", f"{sc} wave, default expire_batch: longest iteration <= 5 ms",
                    f"{f(med(r, 'max_iter_ms'))} ms", r.get("meets_5ms"))
    return rows


def headline(res):
    rows = []
    t = res["timers"]
    if not skipped(t):
        big = timer_ns(t)[-1] if timer_ns(t) else None
        if big:
            n, v = big
            rows.append(["timers", f"activity refresh at {n:,} conns",
                         f"{f(med(v, 'refresh_ns'))} ns", f"libev ev_timer_again {f(med(v, 'ev_again_ns'))} ns",
                         f"{f(v.get('ratios', {}).get('refresh_vs_ev_again'))}x cheaper"])
    m = res["memory"]
    if not skipped(m):
        rows.append(["memory", "vigil state per idle conn",
                     f"{f(med(m['vigil'], 'state_per_conn_bytes'))} B",
                     "nginx 416 B, uv_tcp_t 248 B (cited)", "no buffer while idle" if m['vigil'].get('idle_buffers') == 0 else "buffers held"])
    s = res["storm"]
    if not skipped(s):
        sv = s.get("servers", {})
        g, b, mo, gw = (sv.get(k, {}) for k in ("vigil_game_server", "bare_libev", "mosquitto", "vigil_mqtt_gateway"))
        rows.append(["storm", "reconnects / s (vigil protocol)", f(med(g, "conn_per_s")),
                     f"bare libev {f(med(b, 'conn_per_s'))}, Node {f(med(sv.get('node', {}), 'conn_per_s'))}",
                     f"CPU/1k conns {f(med(g, 'cpu_ms_per_1000'))} ms vs bare {f(med(b, 'cpu_ms_per_1000'))} ms"])
        rows.append(["storm", "reconnects / s (MQTT)", f(med(gw, "conn_per_s")),
                     f"mosquitto {f(med(mo, 'conn_per_s'))}",
                     f"CPU/1k conns {f(med(gw, 'cpu_ms_per_1000'))} ms vs {f(med(mo, 'cpu_ms_per_1000'))} ms"])
    i = res["idle"]
    if not skipped(i):
        sv = i.get("servers", {})
        def ipc(n):
            return (sv.get(n, {}).get("hb_30000ms", {}).get("cpu_pct_per_10k") or {}).get("median")
        rows.append(["idle", "CPU % per 10k conns, 30 s heartbeat",
                     f"echo_server {f(ipc('vigil_echo_server'))}, gateway {f(ipc('vigil_mqtt_gateway'))}",
                     f"mosquitto {f(ipc('mosquitto'))}", "target < 2 %"])
    d = res["detect"]
    if not skipped(d):
        hb = (d.get("vigil", {}).get("heartbeat") or {}).get("overshoot_ms", {})
        gw = (d.get("mqtt", {}).get("vigil_mqtt_gateway") or {}).get("overshoot_ms", {})
        mo = d.get("mqtt", {}).get("mosquitto") or {}
        rows.append(["detect", "dead peer found past its bound (max)",
                     f"heartbeat {f(hb.get('max'))} ms; gateway {f(gw.get('max'))} ms",
                     f"mosquitto {f((mo.get('overshoot_ms') or {}).get('max'))} ms",
                     f"mosquitto leaves {', '.join(f'{k} {c}' for k, c in (mo.get('left_on_server_port') or {}).items()) or 'nothing'}"])
    tk = res["takeover"]
    if not skipped(tk):
        h, w = tk.get("hub") or {}, tk.get("worker") or {}
        rows.append(["takeover", "claim to the displaced conn's RST (p50 / p99)",
                     f"across workers {f(w.get('p50_us'))} / {f(w.get('p99_us'))} µs",
                     f"same hub {f(h.get('p50_us'))} / {f(h.get('p99_us'))} µs",
                     "target across workers p99 <= 1 ms; no one publishes one"])
    st = res["stall"]
    if not skipped(st):
        p, p0 = (st.get("ping") or {}).get("batch_256", {}), (st.get("ping") or {}).get("batch_0", {})
        rows.append(["stall", "longest loop turn, 10k pings due at once",
                     f"{f(med(p, 'max_iter_ms'))} ms (expire_batch 256)",
                     f"unbatched {f(med(p0, 'max_iter_ms'))} ms", "target 5 ms"])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = load_parts(a.parts)
    meta = res.pop("meta", {})
    ordered = {"meta": meta}
    for s in SECTIONS:
        ordered[s] = res.pop(s)
    ordered.update(res)
    with open(os.path.join(a.out, "results.json"), "w") as fh:
        json.dump(ordered, fh, indent=1)
    plots = {"storm": plot_storm(ordered, a.out), "detect": plot_detect(ordered, a.out),
             "timers": plot_timers(ordered, a.out)}
    m = meta.get("machine", {})
    md = ["# vigil benchmark report\n",
          f"Mode: **{meta.get('mode', '?')}** · commit `{meta.get('commit', '?')}` · "
          f"started {meta.get('started', '?')} · took {meta.get('duration_s', '?')} s\n",
          f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('mem_gib')} GiB RAM, "
          f"kernel {m.get('kernel')}; load average at start {m.get('loadavg_start')}, at end "
          f"{' '.join(m.get('loadavg_end') or [])}. The machine is shared with other work, so each result "
          f"records the 1-minute load average next to it; compare within a run.\n",
          "## Headline\n",
          table(["benchmark", "measure", "vigil", "baseline", "note"], headline(ordered)),
          "## Targets\n",
          table(["benchmark", "target", "value", "result"], targets(ordered))]
    md += sec_timers(ordered["timers"])
    if plots["timers"]:
        md.append(f"![timer cost against connection count]({plots['timers']})\n")
    md += sec_memory(ordered["memory"])
    md += sec_storm(ordered["storm"], plots["storm"])
    md += sec_idle(ordered["idle"])
    md += sec_detect(ordered["detect"], plots["detect"])
    md += sec_stall(ordered["stall"])
    md += sec_tls(ordered["tls"])
    md += sec_takeover(ordered["takeover"])
    if not shutil.which("gnuplot"):
        md.append("\n_gnuplot is not installed: no plots; the .dat files are in this directory._\n")
    with open(os.path.join(a.out, "report.md"), "w") as fh:
        fh.write("\n".join(md))
    for row in headline(ordered):
        print("  " + " | ".join(str(c) for c in row))


if __name__ == "__main__":
    main()
