#!/usr/bin/env bash
# vigil benchmark suite: builds in Release, runs every benchmark with its
# baselines, and writes build/bench/{results.json,report.md,*.png}.
#
#   bench/run.sh [--quick] [--no-install] [--only LIST]
#
#   --quick       shorter runs (3 repetitions each, short windows): under
#                 3 minutes on 2 cores; the full run takes under 20
#   --no-install  never call apt-get (otherwise, as root, missing mosquitto,
#                 mosquitto-clients, gnuplot-nox and nodejs are installed)
#   --only LIST   comma list of sections to run (timers,memory,storm,idle,
#                 detect,stall,tls,takeover); the others are reported as
#                 skipped
#
# Sections: 1 timers, 2 memory, 3 storm, 4 idle, 5 detect, 6 stall, 7 tls,
# 8 takeover.
# Load runs only on loopback inside network namespaces this script's
# drivers create (storm, idle, detect need root; without it they report
# {"skipped": reason}). Every load loop is bounded in time.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
INSTALL=1
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --no-install) INSTALL=0 ;;
    --only) ONLY=",$2,"; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
QUICK=""
[ "$MODE" = quick ] && QUICK=--quick

BUILD=$ROOT/build/bench-release
OUT=$ROOT/build/bench
PARTS=$OUT/parts
LOGS=$OUT/logs
LIB=$ROOT/bench/lib
rm -rf "$PARTS" "$LOGS"
rm -f "$OUT"/*.png "$OUT"/*.dat "$OUT"/results.json "$OUT"/report.md
mkdir -p "$PARTS" "$LOGS" "$BUILD"
T0=$(date +%s)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Section estimates in seconds (quick full), for the time-left line.
declare -A EST_Q=([build]=25 [timers]=20 [memory]=10 [storm]=45 [idle]=30 [detect]=15 [stall]=15 [tls]=12 [takeover]=3 [report]=3)
declare -A EST_F=([build]=25 [timers]=50 [memory]=12 [storm]=190 [idle]=170 [detect]=45 [stall]=50 [tls]=80 [takeover]=6 [report]=3)
ORDER=(build timers memory storm idle detect stall tls takeover report)
est() { if [ "$MODE" = quick ]; then echo "${EST_Q[$1]}"; else echo "${EST_F[$1]}"; fi; }
mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
STEP=0
EST_DONE=0
header() { # name what
  local name=$1 left=0 seen=0 now el scale
  STEP=$((STEP + 1))
  now=$(date +%s); el=$((now - T0))
  for s in "${ORDER[@]}"; do
    [ "$s" = "$name" ] && seen=1
    [ $seen = 1 ] && left=$((left + $(est "$s")))
  done
  # Once a minute of estimates is done, scale the rest by how the finished
  # sections compared with their estimates (a busy machine runs slower).
  if [ "$EST_DONE" -ge 60 ] && [ "$el" -gt 0 ]; then
    scale=$(( el * 100 / EST_DONE ))
    [ $scale -lt 50 ] && scale=50
    [ $scale -gt 300 ] && scale=300
    left=$(( left * scale / 100 ))
  fi
  echo
  echo "[$STEP/${#ORDER[@]}] $2  (elapsed $(mmss "$el"), about $(mmss "$left") left)"
}
done_section() { EST_DONE=$((EST_DONE + $(est "$1"))); }
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }
skip_json() { # section reason
  python3 -c 'import json,sys; json.dump({sys.argv[1]: {"skipped": sys.argv[2]}}, open(sys.argv[3], "w"))' \
    "$1" "$2" "$PARTS/$1.json"
  echo "  $1: skipped: $2"
}
# run_part section show-regex cmd...: runs a section's command, showing the
# output lines that match show-regex as progress; a failure or a missing
# result becomes {"skipped": reason} so results.json always has the section.
run_part() {
  local sec=$1 show=$2; shift 2
  if ! wanted "$sec"; then skip_json "$sec" "not selected (--only)"; return; fi
  "$@" 2> "$LOGS/$sec.err" | tee "$LOGS/$sec.log" | grep --line-buffered -E "$show" | sed -u 's/^\([^ ]\)/  \1/'
  local rc=${PIPESTATUS[0]}
  if [ ! -s "$PARTS/$sec.json" ]; then
    skip_json "$sec" "failed (exit $rc): $(tail -n 3 "$LOGS/$sec.err" | tr '\n' ' ' | cut -c1-240)"
  fi
}

echo "vigil benchmarks ($MODE) -> $OUT"
echo "machine: $(nproc) cores, $(uname -r), load average $LOAD_START"

# ---- dependencies -------------------------------------------------------------
need=()
command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v node >/dev/null || command -v nodejs >/dev/null || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >"$LOGS/apt.log" 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOGS/apt.log" 2>&1
      for p in "${need[@]}"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$p" >>"$LOGS/apt.log" 2>&1 ||
          echo "  could not install $p (its baseline will be skipped)"
      done
    fi
  else
    echo "missing: ${need[*]} (not installing; their baselines are skipped)"
  fi
fi

# ---- build ----------------------------------------------------------------------
header build "build (Release) in $BUILD"
targets=(vigil_static vigil-census echo_server game_server mqtt_gateway)
[ -f "$ROOT/examples/device_sim.c" ] && targets+=(device_sim)
for src in "$ROOT"/bench/bench_*.c; do targets+=("$(basename "$src" .c)"); done
if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVIGIL_BUILD_TESTS=OFF \
     -DVIGIL_BUILD_EXAMPLES=ON -DVIGIL_BUILD_BENCH=ON >"$LOGS/build.log" 2>&1; then
  echo "cmake configure failed; see $LOGS/build.log" >&2; tail -n 20 "$LOGS/build.log" >&2; exit 1
fi
# -k: one broken program (an example still in progress) must not stop the rest.
cmake --build "$BUILD" -j2 --target "${targets[@]}" -- -k >>"$LOGS/build.log" 2>&1 ||
  echo "  some targets failed to build (see $LOGS/build.log); their sections are skipped"
if [ ! -f "$BUILD/libvigil.a" ]; then
  echo "the library did not build; see $LOGS/build.log" >&2; tail -n 30 "$LOGS/build.log" >&2; exit 1
fi
cc -O2 -o "$BUILD/bench/bare_server" "$ROOT/bench/servers/bare_server.c" -lev >>"$LOGS/build.log" 2>&1 ||
  echo "  bare_server did not build (see $LOGS/build.log)"
B=$BUILD/bench
EX=$BUILD/examples
done_section build

have() { [ -x "$1" ]; }

# ---- 1 timers ---------------------------------------------------------------------
header timers "timers: vigil's wheel vs libev ev_timer (bench_timers $QUICK)"
if have "$B/bench_timers"; then
  run_part timers '^N = |target' "$B/bench_timers" $QUICK --json "$PARTS/timers.json"
else skip_json timers "bench_timers did not build"; fi
done_section timers

# ---- 2 memory ---------------------------------------------------------------------
header memory "memory: bytes per idle connection, vigil vs bare libev (10,000 conns x 3)"
if have "$B/bench_memory"; then
  run_part memory '^memory rep' "$B/bench_memory" $QUICK --json "$PARTS/memory.json"
else skip_json memory "bench_memory did not build"; fi
done_section memory

# ---- 3 storm ------------------------------------------------------------------------
header storm "storm: reconnecting devices vs game_server, bare libev, Node, mqtt_gateway, mosquitto"
if have "$EX/device_sim" && have "$B/bare_server"; then
  run_part storm '^  ' python3 "$LIB/storm.py" $QUICK --examples "$EX" --census "$BUILD/vigil-census" \
    --bare "$B/bare_server" --servers "$ROOT/bench/servers" --logs "$LOGS" --out "$PARTS/storm.json"
else skip_json storm "examples/device_sim or bench/servers/bare_server did not build"; fi
done_section storm

# ---- 4 idle ---------------------------------------------------------------------------
header idle "idle: heartbeating idle connections, echo_server / mqtt_gateway / mosquitto"
if have "$B/bench_idle"; then
  run_part idle '^  ' python3 "$LIB/idle.py" $QUICK --examples "$EX" --bench-idle "$B/bench_idle" \
    --logs "$LOGS" --out "$PARTS/idle.json"
else skip_json idle "bench_idle did not build"; fi
done_section idle

# ---- 5 detect -------------------------------------------------------------------------
header detect "detect: dead peers behind an nftables blackhole (vigil, kernel, mqtt_gateway, mosquitto)"
if have "$B/bench_detect"; then
  run_part detect '^  ' python3 "$LIB/detect.py" $QUICK --examples "$EX" --bench-detect "$B/bench_detect" \
    --logs "$LOGS" --out "$PARTS/detect.json"
else skip_json detect "bench_detect did not build"; fi
done_section detect

# ---- 6 stall ----------------------------------------------------------------------------
header stall "stall: 10,000 deadlines in one tick, expire_batch 256 (default), 2048, unlimited"
if have "$B/bench_stall"; then
  batches=(--batch 256 --batch 2048 --batch 0)
  run_part stall '^stall rep' "$B/bench_stall" $QUICK "${batches[@]}" --json "$PARTS/stall.json"
else skip_json stall "bench_stall did not build"; fi
done_section stall

# ---- 7 tls --------------------------------------------------------------------------------
header tls "tls: bench_tls (if present)"
if ! wanted tls; then skip_json tls "not selected (--only)"
elif have "$B/bench_tls"; then
  # Its own --quick / default sizes; timeout(1) bounds the section.
  if [ "$MODE" = quick ]; then tls_args=(--quick); tls_limit=120
  else tls_args=(); tls_limit=400; fi
  run_part tls '.' timeout "$tls_limit" "$B/bench_tls" ${tls_args[@]+"${tls_args[@]}"} --json "$PARTS/tls.json"
  if [ -s "$PARTS/tls.json" ]; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d if "tls" in d else {"tls": d}; d["tls"].setdefault("run_sh_args", sys.argv[2]); json.dump(d, open(sys.argv[1], "w"))' \
      "$PARTS/tls.json" "${tls_args[*]-}" || skip_json tls "bench_tls wrote unreadable JSON"
  fi
elif [ -f "$ROOT/bench/bench_tls.c" ]; then skip_json tls "bench_tls did not build"
else skip_json tls "bench/bench_tls.c has not landed"; fi
done_section tls

# ---- 8 takeover -----------------------------------------------------------------------------------
header takeover "takeover: claim to the displaced conn's RST, within a hub, across workers and across nodes"
if have "$B/bench_takeover"; then
  run_part takeover '^  |^takeover' "$B/bench_takeover" $QUICK --json "$PARTS/takeover.json"
  # The cluster directory's own costs: claims/s on one connection and
  # redis-server CPU per claim, folded into the takeover section.
  if have "$B/bench_cluster_claim" && [ -s "$PARTS/takeover.json" ]; then
    if [ "$MODE" = quick ]; then cc_args=(--claims 300 --pipelined 5000); else cc_args=(); fi
    run_part takeover '^  |^bench_cluster' "$B/bench_cluster_claim" "${cc_args[@]}" \
      --json "$PARTS/cluster_claim.json"
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); c=json.load(open(sys.argv[2]))
t["takeover"]["cluster_claim"]=c.get("cluster_claim", c); json.dump(t, open(sys.argv[1], "w"))' \
      "$PARTS/takeover.json" "$PARTS/cluster_claim.json" 2>/dev/null || true
    rm -f "$PARTS/cluster_claim.json"
  fi
else skip_json takeover "bench_takeover did not build"; fi
done_section takeover

# ---- report -----------------------------------------------------------------------------------
header report "report: results.json, report.md, plots"
T1=$(date +%s)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$PARTS/meta.json" "$MODE" "$STARTED" "$((T1 - T0))" "$LOAD_START" "$COMMIT" <<'EOF'
import json, os, platform, sys
path, mode, started, dur, load0, commit = sys.argv[1:7]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({"meta": {"mode": mode, "started": started, "duration_s": int(dur), "commit": commit,
                    "machine": {"cores": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 2**20, 1),
                                "kernel": platform.release(), "loadavg_start": load0,
                                "loadavg_end": open("/proc/loadavg").read().split()[:3]}}},
          open(path, "w"))
EOF
python3 "$LIB/report.py" --parts "$PARTS" --out "$OUT" || echo "report generation failed" >&2
echo
echo "done in $(mmss $(($(date +%s) - T0))): $OUT/report.md, $OUT/results.json"
