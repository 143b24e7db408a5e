#!/usr/bin/env bash
# The /metrics endpoint of echo_server, game_server and mqtt_gateway
# (--metrics HOST:PORT, examples/metrics/metrics_http.c): each serves an
# exposition that `promtool check metrics` accepts, with the Prometheus
# content type, including the census gauges a scrape brings; 404 for other
# paths; and the process starts and stops cleanly with the flag. About
# 2 s.
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

# check NAME BINARY: starts the example, scrapes it, stops it.
check() {
  local name=$1 bin=$2 out=$tmp/$1.out addr="" pid
  [ -x "$bin" ] || fail "$bin not built"
  "$bin" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 >"$out" 2>&1 &
  pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    addr=$(sed -n 's#.*metrics on http://\([^/]*\)/metrics$#\1#p' "$out")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || fail "$name did not print its metrics address: $(cat "$out")"
  curl -sS -D "$tmp/$name.headers" -o "$tmp/$name.prom" \
    "http://$addr/metrics" || fail "$name: curl failed"
  grep -q '^HTTP/1.1 200 OK' "$tmp/$name.headers" || fail "$name: not 200"
  grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' \
    "$tmp/$name.headers" || fail "$name: wrong content type"
  promtool check metrics <"$tmp/$name.prom" >"$tmp/$name.lint" 2>&1 ||
    fail "$name: promtool check metrics: $(cat "$tmp/$name.lint")"
  grep -q '^vigil_sockets{state="listen"} 2$' "$tmp/$name.prom" ||
    fail "$name: no census of its two listeners in the metrics"
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
