#!/usr/bin/env bash
# Real MQTT clients (Debian's mosquitto-clients 2.x) against
# examples/mqtt_gateway, on 127.0.0.1 with an ephemeral port:
#   1. mosquitto_sub -k 5 stays connected past 1.5 x keep-alive (7.5 s):
#      its PINGREQs keep the vigil deadline moving;
#   2. a frozen client (SIGSTOP: the kernel still ACKs, the application is
#      silent, a ghost) is dropped with heartbeat_timeout at 7.5 s;
#   3. mosquitto_pub messages (QoS 0 and 1) reach a wildcard subscriber,
#      and only the matching ones;
#   4. a second mosquitto_sub with the same client id takes over: the first
#      connection closes with reason takeover (MQTT-3.1.4-2);
#   5. an MQTT 3.1 client is refused with "unacceptable protocol version".
# mosquitto_sub refuses -k below 5, so the test lasts about 9 s; 1, 2 run
# while 3..5 do. Every process started here is killed on exit.
#
# Usage: mosquitto_clients.sh PATH/TO/mqtt_gateway
# Exit: 0 pass, 1 fail, 77 skip (no mosquitto clients).
set -u

gateway=${1:?usage: $0 PATH/TO/mqtt_gateway}
for tool in mosquitto_sub mosquitto_pub; do
  command -v "$tool" >/dev/null ||
    { echo "SKIP: $tool not installed (Debian package mosquitto-clients)"; exit 77; }
done
[ -x "$gateway" ] || { echo "SKIP: $gateway not built"; exit 77; }

tmp=$(mktemp -d /tmp/vigil-mqtt-clients-XXXXXX)
pids=()
# SIGKILL: a mosquitto_sub whose server is gone ignores SIGTERM while it
# keeps trying to reconnect.
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

log=$tmp/gateway.log
fail() {
  echo "FAIL: $*"
  echo "--- gateway log (last 40 lines)"
  tail -n 40 "$log"
  exit 1
}
pass() { echo "ok: $*"; }
now_ms() { date +%s%3N; }

# wait_log TIMEOUT_MS REGEX: succeeds once a gateway log line matches.
wait_log() {
  local until=$(( $(now_ms) + $1 ))
  while [ "$(now_ms)" -lt "$until" ]; do
    grep -Eq -- "$2" "$log" && return 0
    sleep 0.05
  done
  return 1
}

# field LINE KEY: the value of key=value in a logfmt line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

"$gateway" --listen 127.0.0.1:0 >"$tmp/gateway.out" 2>"$log" &
pids+=($!)
gw_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$tmp/gateway.out" 2>/dev/null && break
  sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/gateway.out")
[ -n "$port" ] || fail "gateway did not print its port"
# sub execs, so `sub ... &` leaves $! naming mosquitto_sub itself (signals
# must reach it, not a subshell); call it only with & or inside $(...).
sub() { exec mosquitto_sub -h 127.0.0.1 -p "$port" "$@"; }
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" "$@"; }

# 1 and 2 start now and are checked at the end.
t0=$(now_ms)
sub -k 5 -i ka1 -t 'ka/#' >/dev/null 2>&1 &
pids+=($!)
ka_pid=$!
sub -k 5 -i frozen -t 'frozen/#' >/dev/null 2>&1 &
pids+=($!)
frozen_pid=$!
wait_log 3000 'event=mqtt_subscribe .*identity=frozen ' ||
  fail "frozen client did not subscribe"
kill -STOP "$frozen_pid"
wait_log 3000 'event=mqtt_connect .*identity=ka1 .*keepalive_s=5 dead_after_ms=7500' ||
  fail "keep-alive 5 did not become dead_after_ms=7500"

# 3. publish / subscribe
sub -i s1 -t 'sensors/+/temp' -C 2 -W 10 -v >"$tmp/s1.out" 2>&1 &
pids+=($!)
s1_pid=$!
wait_log 3000 'event=mqtt_subscribe .*identity=s1 ' || fail "s1 did not subscribe"
pub -i p1 -t sensors/hall/humidity -m 40 || fail "mosquitto_pub failed"
pub -i p2 -t sensors/kitchen/temp -m 21.5 || fail "mosquitto_pub failed"
pub -i p3 -q 1 -t sensors/hall/temp -m 19 || fail "mosquitto_pub -q 1 failed"
for _ in $(seq 100); do kill -0 "$s1_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$s1_pid" 2>/dev/null && fail "subscriber did not get its 2 messages"
printf 'sensors/kitchen/temp 21.5\nsensors/hall/temp 19\n' >"$tmp/s1.want"
cmp -s "$tmp/s1.out" "$tmp/s1.want" ||
  fail "subscriber got: $(cat "$tmp/s1.out")"
pass "mosquitto_pub QoS 0 and 1 reach a '+' subscriber, non-matching topic filtered"

# 4. takeover by client id
sub -i dev1 -t x >/dev/null 2>&1 &
pids+=($!)
wait_log 3000 'event=mqtt_connect .*identity=dev1 ' || fail "dev1 did not connect"
first=$(grep -E 'event=mqtt_connect .*identity=dev1 ' "$log" | head -n 1)
first_conn=$(field "$first" conn)
sub -i dev1 -t x >/dev/null 2>&1 &
pids+=($!)
wait_log 3000 "event=takeover .*identity=dev1 other_conn=$first_conn( |\$)" ||
  fail "no takeover event for dev1 (conn $first_conn)"
wait_log 1000 "event=close conn=$first_conn .*identity=dev1 reason=takeover" ||
  fail "first dev1 connection (conn $first_conn) did not close with reason=takeover"
pass "second mosquitto_sub -i dev1 took over; conn $first_conn closed reason=takeover"
# Both mosquitto_subs reconnect by design and would displace each other
# every second: stop them.
kill "${pids[-1]}" "${pids[-2]}" 2>/dev/null

# 5. MQTT 3.1 is refused with CONNACK 0x01
out=$(sub -V 31 -i old -t x -W 3 2>&1)
rc=$?
[ $rc -ne 0 ] || fail "MQTT 3.1 client was accepted"
grep -q "unacceptable protocol version" <<<"$out" ||
  fail "MQTT 3.1 client saw: $out"
pass "MQTT 3.1 client refused: unacceptable protocol version"

# 2. The frozen client is a ghost: dropped 7.5 s after its last packet.
wait_log 10000 'event=dead .*identity=frozen .*reason=heartbeat_timeout' ||
  fail "frozen client was not dropped"
line=$(grep -E 'event=dead .*identity=frozen ' "$log" | head -n 1)
rx=$(field "$line" last_rx_ms)
[ "$rx" -ge 7500 ] && [ "$rx" -le 7700 ] ||
  fail "frozen client dropped at last_rx_ms=$rx, want 7500..7700"
pass "SIGSTOPped client dropped: heartbeat_timeout at last_rx_ms=$rx"

# 1. ka1 is still there well past 7.5 s.
while [ $(( $(now_ms) - t0 )) -lt 8500 ]; do sleep 0.1; done
kill -0 "$ka_pid" 2>/dev/null || fail "mosquitto_sub -k 5 exited"
grep -Eq 'event=(close|dead) .*identity=ka1 ' "$log" &&
  fail "mosquitto_sub -k 5 was disconnected"
kill "$ka_pid"
wait_log 2000 'event=close .*identity=ka1 ' || fail "ka1 close not logged"
line=$(grep -E 'event=close .*identity=ka1 ' "$log" | head -n 1)
age=$(field "$line" age_ms)
[ "$age" -ge 8000 ] || fail "ka1 lived only $age ms"
pass "mosquitto_sub -k 5 stayed connected $age ms (> 7500) on its PINGREQs"

kill -TERM "$gw_pid"
for _ in $(seq 100); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$gw_pid" 2>/dev/null && fail "gateway ignored SIGTERM"
wait "$gw_pid"
rc=$?
[ $rc -eq 0 ] || fail "gateway exited $rc after SIGTERM"
grep -q 'event=shutdown detail=done' "$log" || fail "no shutdown done line"
pass "gateway shut down cleanly on SIGTERM"
echo "PASS"
