#!/usr/bin/env bash
# Takeover by class with real MQTT clients against examples/mqtt_gateway
# (docs/ghosts.md, "Takeover: ghost or live"):
#   1. live, loopback: a small python client subscribed to a topic is
#      displaced by mosquitto_sub with the same client id right after a
#      message was published to it: it reads the message, then EOF (a clean
#      FIN, no ECONNRESET); the gateway logs the takeover and the close with
#      class=live;
#   2. live, two mosquitto_sub with the same id: the takeover line says
#      class=live and the displaced one answers our FIN (its close carries
#      no "no FIN within the takeover bound" detail);
#   3. ghost, network namespaces: the gateway in A, a client in B; B is
#      blackholed (nftables drop) and a message published to the client
#      is left unacknowledged and retransmitting; a mosquitto_sub in A
#      with the same id takes over: class=ghost with evidence
#      unacked_retrans, closed in the same millisecond as the claim.
#      Skipped (the rest still runs) without root, ip or nft.
# About 3 s. Every process and namespace made here is removed on exit.
#
# Usage: takeover_class.sh PATH/TO/mqtt_gateway
# Exit: 0 pass, 1 fail, 77 skip (no mosquitto clients or python3).
set -u

gateway=${1:?usage: $0 PATH/TO/mqtt_gateway}
for tool in mosquitto_sub mosquitto_pub python3; do
  command -v "$tool" >/dev/null ||
    { echo "SKIP: $tool not installed (Debian: mosquitto-clients, python3)"; exit 77; }
done
[ -x "$gateway" ] || { echo "SKIP: $gateway not built"; exit 77; }

tmp=$(mktemp -d /tmp/vigil-takeover-class-XXXXXX)
pids=()
ns_a=vigiltest-$$-900-a
ns_b=vigiltest-$$-900-b
made_ns=0
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$made_ns" = 1 ]; then
    ip netns delete "$ns_a" 2>/dev/null
    ip netns delete "$ns_b" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 20 lines)"
    tail -n 20 "$f"
  done
  exit 1
}
pass() { echo "ok: $*"; }
now_ms() { date +%s%3N; }

# wait_file TIMEOUT_MS FILE REGEX: succeeds once a line of FILE matches.
wait_file() {
  local until=$(( $(now_ms) + $1 ))
  while [ "$(now_ms)" -lt "$until" ]; do
    grep -Eq -- "$3" "$2" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# ts_ms LINE: the line's ts as ms since the epoch.
ts_ms() {
  local ts
  ts=$(sed -n 's/^ts=\([^ ]*\) .*/\1/p' <<<"$1")
  date -d "$ts" +%s%3N
}

# An MQTT 3.1.1 client that subscribes and then reports how its connection
# ends: "eof" (FIN), "reset" (ECONNRESET) or "open", and how many times
# the payload "last-words" arrived.
cat >"$tmp/client.py" <<'EOF'
import socket, struct, sys
host, port, cid, topic, wait_s = sys.argv[1:6]
def s16(b):
    return struct.pack(">H", len(b)) + b
s = socket.create_connection((host, int(port)), timeout=5)
body = s16(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + s16(cid.encode())
s.sendall(bytes([0x10, len(body)]) + body)
ack = b""
while len(ack) < 4:
    ack += s.recv(4 - len(ack))
body = struct.pack(">H", 1) + s16(topic.encode()) + b"\x00"
s.sendall(bytes([0x82, len(body)]) + body)
print("ready", flush=True)
s.settimeout(float(wait_s))
data, end = b"", "open"
try:
    while True:
        d = s.recv(65536)
        if not d:
            end = "eof"
            break
        data += d
except ConnectionResetError:
    end = "reset"
except socket.timeout:
    pass
print(end, data.count(b"last-words"), flush=True)
EOF

# start_gateway NAME [ip netns exec NS] ADDR: runs the gateway, sets port.
start_gateway() {
  local name=$1 addr=$2
  shift 2
  "$@" "$gateway" --listen "$addr:0" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening on' "$tmp/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/$name.out")
  [ -n "$port" ] || fail "gateway $name did not print its port"
}

# ---- 1. live: a python client displaced right after a message to it
start_gateway gw 127.0.0.1
log=$tmp/gw.log
python3 "$tmp/client.py" 127.0.0.1 "$port" twin t/twin 3 >"$tmp/py.out" 2>&1 &
pids+=($!)
py_pid=$!
wait_file 3000 "$tmp/py.out" '^ready' || fail "python client did not connect"
wait_file 3000 "$log" 'event=mqtt_subscribe .*identity=twin ' ||
  fail "python client did not subscribe"
py_conn=$(field "$(grep -E 'event=mqtt_connect .*identity=twin ' "$log" | head -n 1)" conn)
mosquitto_pub -h 127.0.0.1 -p "$port" -i pub1 -t t/twin -m last-words ||
  fail "mosquitto_pub failed"
mosquitto_sub -h 127.0.0.1 -p "$port" -i twin -t t/other >/dev/null 2>&1 &
pids+=($!)
sub_pid=$!
wait_file 3000 "$tmp/py.out" '^(eof|reset|open)' ||
  fail "python client did not see its connection end"
read -r end got < <(grep -E '^(eof|reset|open)' "$tmp/py.out")
[ "$end" = eof ] || fail "displaced live client saw '$end', want eof (FIN)"
[ "$got" = 1 ] || fail "displaced live client got the last message $got times"
wait_file 1000 "$log" "event=takeover .*identity=twin other_conn=$py_conn .*class=live" ||
  fail "no takeover line with class=live for conn $py_conn"
wait_file 1000 "$log" "event=close conn=$py_conn .*reason=takeover.*class=live" ||
  fail "conn $py_conn did not close with reason=takeover class=live"
pass "live MQTT client displaced: got the last message, then a clean FIN; class=live"
kill "$sub_pid" 2>/dev/null

# ---- 2. live: two mosquitto_sub with one client id
mosquitto_sub -h 127.0.0.1 -p "$port" -i dup -t x >/dev/null 2>&1 &
pids+=($!)
first_pid=$!
wait_file 3000 "$log" 'event=mqtt_connect .*identity=dup ' || fail "dup did not connect"
first=$(field "$(grep -E 'event=mqtt_connect .*identity=dup ' "$log" | head -n 1)" conn)
mosquitto_sub -h 127.0.0.1 -p "$port" -i dup -t x >/dev/null 2>&1 &
pids+=($!)
second_pid=$!
wait_file 3000 "$log" "event=takeover .*identity=dup other_conn=$first .*class=live" ||
  fail "no takeover line with class=live for mosquitto_sub conn $first"
wait_file 1000 "$log" "event=close conn=$first .*reason=takeover" ||
  fail "mosquitto_sub conn $first did not close with reason=takeover"
line=$(grep -E "event=close conn=$first " "$log" | head -n 1)
grep -q 'class=live' <<<"$line" || fail "close line without class=live: $line"
grep -q 'takeover bound' <<<"$line" &&
  fail "displaced mosquitto_sub did not answer our FIN: $line"
pass "mosquitto_sub displaced by a second one: class=live, closed by its own FIN"
# The two reconnect by design and would take turns: stop them.
kill "$first_pid" "$second_pid" 2>/dev/null

# ---- 3. ghost: a blackholed client in a namespace
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  echo "SKIP part 3: needs root (CAP_NET_ADMIN), ip and nft"
  echo "PASS"
  exit 0
fi
addr_a=198.19.250.1
addr_b=198.19.250.2
ip netns add "$ns_a" && made_ns=1 && ip netns add "$ns_b" &&
  ip -n "$ns_a" link add vt0 type veth peer name vt0 netns "$ns_b" &&
  ip -n "$ns_a" addr add "$addr_a/24" dev vt0 &&
  ip -n "$ns_b" addr add "$addr_b/24" dev vt0 &&
  ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up &&
  ip -n "$ns_a" link set vt0 up && ip -n "$ns_b" link set vt0 up ||
  { echo "SKIP part 3: could not set up network namespaces"; echo "PASS"; exit 0; }
in_a() { ip netns exec "$ns_a" "$@"; }
in_b() { ip netns exec "$ns_b" "$@"; }

start_gateway gwns "$addr_a" ip netns exec "$ns_a"
log=$tmp/gwns.log
in_b python3 "$tmp/client.py" "$addr_a" "$port" ghost t/ghost 5 >"$tmp/ghost.out" 2>&1 &
pids+=($!)
wait_file 3000 "$tmp/ghost.out" '^ready' || fail "ghost client did not connect"
wait_file 3000 "$log" 'event=mqtt_subscribe .*identity=ghost ' ||
  fail "ghost client did not subscribe"
ghost_conn=$(field "$(grep -E 'event=mqtt_connect .*identity=ghost ' "$log" | head -n 1)" conn)
in_b nft 'add table inet vigiltest; add chain inet vigiltest input { type filter hook input priority 0; policy drop; }; add chain inet vigiltest output { type filter hook output priority 0; policy drop; }' ||
  fail "nft could not blackhole namespace B"
in_a mosquitto_pub -h "$addr_a" -p "$port" -i pub2 -t t/ghost -m last-words ||
  fail "mosquitto_pub in A failed"
# The first RTO is 200 ms at least: wait for the retransmission.
sleep 0.6
in_a mosquitto_sub -h "$addr_a" -p "$port" -i ghost -t t/other >/dev/null 2>&1 &
pids+=($!)
wait_file 3000 "$log" "event=takeover .*identity=ghost other_conn=$ghost_conn .*class=ghost" ||
  fail "no takeover line with class=ghost for conn $ghost_conn"
tk=$(grep -E "event=takeover .*other_conn=$ghost_conn " "$log" | head -n 1)
grep -q 'evidence=[^ ]*unacked_retrans' <<<"$tk" ||
  fail "ghost takeover without unacked_retrans evidence: $tk"
wait_file 1000 "$log" "event=close conn=$ghost_conn .*reason=takeover.*class=ghost" ||
  fail "ghost conn $ghost_conn did not close with reason=takeover class=ghost"
cl=$(grep -E "event=close conn=$ghost_conn " "$log" | head -n 1)
gap=$(( $(ts_ms "$cl") - $(ts_ms "$tk") ))
[ "$gap" -le 10 ] || fail "ghost closed $gap ms after the takeover, want <= 10"
pass "blackholed MQTT client: class=ghost evidence=$(field "$tk" evidence), reset $gap ms after the claim"
echo "PASS"
