#!/usr/bin/env bash
# A real Prometheus server scrapes mqtt_gateway's /metrics and sees its
# takeovers:
#   1. mqtt_gateway --metrics on ephemeral ports;
#   2. prometheus on a free port, its TSDB in a temp dir, a temporary
#      config scraping the gateway every second;
#   3. device_sim: 20 devices in silent-reboot mode for 3 s, each reboot a
#      reconnect whose client id takes over the abandoned connection;
#   4. Prometheus' HTTP API (/api/v1/query) is polled until
#      vigil_connections_closed_total{reason="takeover"} equals what the
#      gateway reports itself, and the PromQL queries of docs/metrics.md
#      evaluate (the takeover latency p99 to a number).
# Bounded: every wait has a deadline, the whole run stays under 60 s
# (about 12 s here). Every process started here is killed and the temp
# dir removed on exit.
#
# Usage: prometheus_scrape.sh PATH/TO/mqtt_gateway PATH/TO/device_sim
# Exit: 0 pass, 1 fail, 77 skip (prometheus, promtool, curl or python3
# missing).
set -u

gateway=${1:?usage: $0 GATEWAY DEVICE_SIM}
sim=${2:?usage: $0 GATEWAY DEVICE_SIM}
for tool in prometheus promtool curl python3; do
  command -v "$tool" >/dev/null ||
    { echo "SKIP: $tool not installed (Debian packages prometheus, curl, python3)"; exit 77; }
done
[ -x "$gateway" ] && [ -x "$sim" ] || { echo "SKIP: examples not built"; exit 77; }

start=$SECONDS
tmp=$(mktemp -d /tmp/vigil-prometheus-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in gateway.log prometheus.log; do
    [ -f "$tmp/$f" ] && { echo "--- $f (last 15 lines)"; tail -n 15 "$tmp/$f"; }
  done
  exit 1
}
now_ms() { date +%s%3N; }
# wait_for TIMEOUT_MS COMMAND...: succeeds once COMMAND does.
wait_for() {
  local until=$(( $(now_ms) + $1 ))
  shift
  while [ "$(now_ms)" -lt "$until" ]; do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

# 1. The gateway.
"$gateway" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 >"$tmp/gateway.out" \
  2>"$tmp/gateway.log" &
pids+=($!)
gw_pid=$!
got_addresses() { grep -q '^metrics on ' "$tmp/gateway.out"; }
wait_for 5000 got_addresses || fail "gateway did not print its addresses"
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/gateway.out")
metrics=$(sed -n 's#^metrics on http://\([^/]*\)/metrics$#\1#p' "$tmp/gateway.out")

# 2. Prometheus on a port free a moment ago (it cannot take port 0).
prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mqtt_gateway
    static_configs:
      - targets: ['$metrics']
YAML
promtool check config "$tmp/prometheus.yml" >/dev/null 2>&1 ||
  fail "promtool rejects the test's config"
prometheus --config.file="$tmp/prometheus.yml" \
  --web.listen-address="127.0.0.1:$prom_port" \
  --storage.tsdb.path="$tmp/data" --log.level=warn \
  >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$prom_port"
ready() { curl -sf "$api/-/ready" >/dev/null; }
wait_for 20000 ready || fail "prometheus not ready on port $prom_port"

# query PROMQL: prints the first result's value ("" when none); fails when
# Prometheus does not answer with status success.
query() {
  curl -sf "$api/api/v1/query" --data-urlencode "query=$1" |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
if r.get("status") != "success":
    sys.exit(1)
res = r["data"]["result"]
print(res[0]["value"][1] if res else "")'
}
scraped() { [ "$(query 'up{job="mqtt_gateway"}')" = 1 ]; }
wait_for 15000 scraped || fail "prometheus never scraped the gateway (up != 1)"
echo "ok: prometheus on 127.0.0.1:$prom_port scrapes http://$metrics/metrics"

# 3. Takeovers.
timeout 30 "$sim" --connect "127.0.0.1:$port" --devices 20 --duration 3 \
  --hold 1 --protocol mqtt --mode silent-reboot --churn-ms 300,900 \
  --keepalive 60 --report json --seed 11 >"$tmp/report.json" ||
  fail "device_sim exited $?"
want=$(curl -sf "http://$metrics/metrics" |
       sed -n 's/^vigil_connections_closed_total{reason="takeover"} //p')
[ -n "$want" ] && [ "$want" -gt 0 ] || fail "gateway reports no takeovers"

# 4. Prometheus catches up with the gateway.
caught_up() {
  [ "$(query 'vigil_connections_closed_total{reason="takeover"}')" = "$want" ]
}
wait_for 15000 caught_up ||
  fail "prometheus shows $(query 'vigil_connections_closed_total{reason="takeover"}') takeover closes, the gateway $want"
echo "ok: prometheus shows vigil_connections_closed_total{reason=\"takeover\"} $want"
[ "$(query 'vigil_takeovers_total{scope="hub"}')" = "$want" ] ||
  fail "vigil_takeovers_total{scope=\"hub\"} differs from $want"
[ "$(query 'vigil_takeover_latency_seconds_count{scope="hub"}')" = "$want" ] ||
  fail "vigil_takeover_latency_seconds_count differs from $want"

# The queries docs/metrics.md suggests: all must evaluate.
p99=$(query 'histogram_quantile(0.99, sum by (le) (rate(vigil_takeover_latency_seconds_bucket[1m])))') ||
  fail "takeover p99 query failed"
python3 -c "import sys; v = float(sys.argv[1]); sys.exit(0 if 0 < v <= 10 else 1)" "$p99" ||
  fail "takeover latency p99 is '$p99'"
for q in 'sum(vigil_ghosts)' \
         'sum by (reason) (rate(vigil_connections_closed_total[1m]))' \
         'rate(vigil_takeovers_total[1m])' \
         'histogram_quantile(0.99, sum by (le) (rate(vigil_detection_overshoot_seconds_bucket[5m])))' \
         'vigil_census_age_seconds' \
         'vigil_connections_open'; do
  query "$q" >/dev/null || fail "query failed: $q"
done
echo "ok: takeover latency p99 $p99 s; the guide's queries evaluate"

kill -TERM "$gw_pid"
wait "$gw_pid" || fail "gateway exit status $?"
echo "PASS in $((SECONDS - start)) s"
