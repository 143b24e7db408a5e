#!/usr/bin/env bash
# The /metrics endpoint of echo_server, game_server and mqtt_gateway
# (--metrics HOST:PORT, examples/metrics/metrics_http.c): each serves an
# exposition that `promtool check metrics` accepts, with the Prometheus
# content type, including the census gauges a scrape brings; 404 for other
# paths; and the process starts and stops cleanly with the flag. Then the
# same with --workers 2: the group's metrics, a worker label on each
# worker's series, the group's census of the shared port. About 4 s.
#
# Usage: examples_metrics.sh ECHO_SERVER GAME_SERVER MQTT_GATEWAY
# Exit: 0 pass, 1 fail, 77 skip (no promtool or curl).
set -u

for tool in promtool curl; do
  command -v "$tool" >/dev/null ||
    { echo "SKIP: $tool not installed (Debian packages prometheus, curl)"; exit 77; }
done

tmp=$(mktemp -d /tmp/vigil-examples-metrics-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# check NAME BINARY [WORKERS]: starts the example (with --workers WORKERS
# when given), scrapes it, stops it.
check() {
  local name=$1 bin=$2 workers=${3:-} addr="" pid
  local f=$tmp/$1${3:-}
  local out=$f.out
  local extra=()
  [ -x "$bin" ] || fail "$bin not built"
  [ -n "$workers" ] && extra=(--workers "$workers") && name="$name --workers $workers"
  "$bin" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 ${extra[@]+"${extra[@]}"} \
    >"$out" 2>&1 &
  pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    addr=$(sed -n 's#.*metrics on http://\([^/]*\)/metrics$#\1#p' "$out")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || fail "$name did not print its metrics address: $(cat "$out")"
  curl -sS -D "$f.headers" -o "$f.prom" \
    "http://$addr/metrics" || fail "$name: curl failed"
  grep -q '^HTTP/1.1 200 OK' "$f.headers" || fail "$name: not 200"
  grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' \
    "$f.headers" || fail "$name: wrong content type"
  promtool check metrics <"$f.prom" >"$f.lint" 2>&1 ||
    fail "$name: promtool check metrics: $(cat "$f.lint")"
  # One hub: its listener and the endpoint's; a group: the workers' two
  # listeners on the shared port (the endpoint is the main thread's).
  grep -q '^vigil_sockets{state="listen"} 2$' "$f.prom" ||
    fail "$name: no census of its two listeners in the metrics"
  if [ -n "$workers" ]; then
    grep -q '^vigil_connections_open{worker="1"} ' "$f.prom" ||
      fail "$name: no series of worker 1"
    grep -q '^vigil_connections_open ' "$f.prom" &&
      fail "$name: a series without its worker"
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/other")
  [ "$code" = 404 ] || fail "$name: /other gave $code"
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && fail "$name did not stop on SIGTERM"
  wait "$pid" || fail "$name exited $?"
  echo "ok: $name --metrics serves a promtool-clean exposition"
}

check echo_server "${1:?usage: $0 ECHO_SERVER GAME_SERVER MQTT_GATEWAY}"
check game_server "${2:?}"
check mqtt_gateway "${3:?}"
check echo_server "$1" 2
check game_server "$2" 2
check mqtt_gateway "$3" 2
