#!/usr/bin/env bash
# vigil demo: builds everything, then shows vigil at work on loopback, with
# its log lines live. Four acts, about 45 s, no process left behind:
#
# 1. examples/echo_server driven by four real clients:
#      healthy   answers every PING until the server stops   -> shutdown
#      silent    connects and never says a word              -> heartbeat_timeout
#      half      sends a line, half-closes, reads the reply  -> peer_closed
#      abrupt    is killed with unread data (kernel RST)     -> peer_reset
# 2. examples/mqtt_gateway with device_sim fleets of steady, flapping and
#    silently rebooting MQTT devices: reboot ghosts end by takeover.
# 3. examples/game_server with players on vigil's frame protocol, in the
#    same three modes.
# 4. a cluster: Redis and two mqtt_gateway nodes of 2 workers each; devices
#    reboot silently and come back through either node (device_sim picks
#    one at random, as a load balancer would): ghosts on the other node
#    end by cross-node takeover. Skipped without redis-server.
# It ends with a census table of each server's port: no CLOSE_WAIT, no
# orphans, ESTABLISHED equal to the live devices.
# Usage: examples/demo.sh [--no-install] [--no-build]
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
# shellcheck source=tests/deps.sh
. tests/deps.sh

install=1 build=1
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    *) echo "demo.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done
[ $install -eq 1 ] && install_packages build-essential cmake pkg-config \
  libev-dev libcmocka-dev libssl-dev socat iproute2 libhiredis-dev \
  redis-server
if [ $build -eq 1 ]; then
  log "building (build/)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j 2 >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\033[1;36m--- %s\033[0m\n' "$*" >&2; }

log "starting echo_server: ping every 1 s, dead after 3 s, keepalive 5,1,3"
build/examples/echo_server --listen 127.0.0.1:0 --ping-interval 1000 \
  --dead-after 3000 --keepalive 5,1,3 --drain-timeout 1000 \
  --close-wait-grace 1500 --log logfmt \
  >"$work/stdout" 2> >(tee "$work/events.log" >&2) &
server=$!
pids+=("$server")
for _ in $(seq 100); do
  grep -q '^listening on' "$work/stdout" 2>/dev/null && break
  sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/stdout")
[ -n "$port" ] || { echo "server did not start" >&2; exit 1; }
say "server listening on 127.0.0.1:$port"

# healthy: answers each PING with PONG; on the server's FIN it closes too.
# (No read timeout: one equal to the ping period would split lines.)
( exec 3<>"/dev/tcp/127.0.0.1/$port"
  while read -r line <&3; do
    if [ "$line" = PING ]; then echo PONG >&3; fi
  done
  exec 3>&- ) 2>/dev/null &
pids+=($!)
say "healthy client connected: it answers PING with PONG"

# silent: connects, then says nothing (its kernel still ACKs everything).
( exec 4<>"/dev/tcp/127.0.0.1/$port"; sleep 12 ) &
pids+=($!)
say "silent client connected: it will never send a byte"

# half: sends a line, half-closes (shutdown SHUT_WR), still reads the reply.
sleep 0.5
say "half-close client: sends 'hello', sends FIN, keeps reading"
printf 'hello\n' | socat -t 3 - "TCP:127.0.0.1:$port" >"$work/half.out" &
pids+=($!)

# abrupt: leaves unread data in its receive queue and is killed: RST.
( exec 5<>"/dev/tcp/127.0.0.1/$port"; printf 'hi\n' >&5; sleep 30 ) &
abrupt=$!
pids+=("$abrupt")
sleep 1.5
say "killing the abrupt client (kill -9): its kernel answers with RST"
{ pkill -9 -P "$abrupt" sleep; kill -9 "$abrupt"; wait "$abrupt"; } 2>/dev/null || true
say "half-close client received: $(tr '\n' ' ' <"$work/half.out")"

sleep 4
say "SIGTERM: graceful shutdown of whatever is still open"
kill -TERM "$server" 2>/dev/null || true
for _ in $(seq 60); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done

act1_reasons=$(grep 'event=close ' "$work/events.log" |
  sed -n 's/.*reason=\([a-z_]*\).*/\1/p' | sort | uniq -c | sed 's/^/    /')
act1_missing=""
for r in heartbeat_timeout peer_closed peer_reset shutdown; do
  grep -q "event=close .*reason=$r" "$work/events.log" || act1_missing="$act1_missing $r"
done

# Prints the interesting lines of a log as they come: at most $2 lines per
# event kind (and close reason), so a fleet does not flood the screen.
live() {
  awk -v cap="$2" -v tag="$3" '
    { k = ""; if (match($0, /event=[a-z_]+/)) k = substr($0, RSTART + 6, RLENGTH - 6)
      if (k == "close" && match($0, /reason=[a-z_]+/)) k = k "/" substr($0, RSTART + 7, RLENGTH - 7)
      if (k == "" || k == "open" || k == "ping_due" || k == "ready" || k == "peer_fin" || k == "draining") next
      if (++n[k] <= cap) { printf "%s %s\n", tag, $0; fflush() }
      else if (n[k] == cap + 1) { printf "%s ... (more %s lines not shown)\n", tag, k; fflush() } }' "$1"
}

# census PORT NAME: one row of the final table.
census_rows=()
census_row() {
  local port=$1 name=$2 json
  json=$(build/vigil-census --port "$port" --json 2>/dev/null) || return 0
  census_rows+=("$(printf '%-14s %6s %11s %10s %10s %10s %8s' "$name" "$port" \
    "$(echo "$json" | grep -o '"ESTABLISHED":[0-9]*' | cut -d: -f2 || true)" \
    "$(echo "$json" | grep -o '"CLOSE_WAIT":[0-9]*' | cut -d: -f2 || true)" \
    "$(echo "$json" | grep -o '"FIN_WAIT1":[0-9]*' | cut -d: -f2 || true)" \
    "$(echo "$json" | grep -o '"FIN_WAIT2":[0-9]*' | cut -d: -f2 || true)" \
    "$(echo "$json" | grep -o '"orphans":[0-9]*' | cut -d: -f2 || true)")")
}

start_server() { # start_server NAME LOGFILE PORTFILE CMD...: port on stdout
  local name=$1 logf=$2 portf=$3
  shift 3
  "$@" >"$logf" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -qE 'listening on' "$logf" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$logf" | head -n 1 >"$portf"
}

log "act 2: MQTT gateway with 120 devices: 60 steady, 30 flapping, 30 rebooting silently"
start_server mqtt "$work/mqtt.log" "$work/mqtt.port" \
  build/examples/mqtt_gateway --listen 127.0.0.1:0 --handshake-timeout 3000 --census-every 2
mport=$(cat "$work/mqtt.port")
[ -n "$mport" ] || { echo "mqtt_gateway did not start" >&2; exit 1; }
say "mqtt_gateway listening on 127.0.0.1:$mport (keep-alive 2 s -> dead_after 3 s)"
( tail -n +1 -f "$work/mqtt.log" | live /dev/stdin 3 "[mqtt]" ) &
pids+=($!)
sim() { # sim NAME ARGS...: a device_sim fleet, report to $work/NAME.txt
  local name=$1; shift
  build/examples/device_sim "$@" >"$work/$name.txt" 2>&1 &
  pids+=($!)
}
sim mq-steady --connect "127.0.0.1:$mport" --protocol mqtt --mode steady \
  --devices 60 --duration 8 --keepalive 2 --id-prefix steady- --hold 2
sim mq-flap --connect "127.0.0.1:$mport" --protocol mqtt --mode flap \
  --devices 30 --duration 8 --keepalive 2 --churn-ms 500,2000 --id-prefix flap- --hold 2
sim mq-reboot --connect "127.0.0.1:$mport" --protocol mqtt --mode silent-reboot \
  --devices 30 --duration 8 --keepalive 2 --churn-ms 500,2000 --id-prefix reboot- --hold 2
sleep 9
census_row "$mport" mqtt_gateway
wait_sims() { for f in "$@"; do for _ in $(seq 80); do grep -q . "$work/$f.txt" 2>/dev/null && break; sleep 0.1; done; done; }

log "act 3: game server with 18 players: 6 steady, 6 flapping, 6 rebooting silently"
start_server game "$work/game.log" "$work/game.port" \
  build/examples/game_server --listen 127.0.0.1:0 --ping-interval 1000 --dead-after 3000 --rejoin-window 5000
gport=$(cat "$work/game.port")
[ -n "$gport" ] || { echo "game_server did not start" >&2; exit 1; }
say "game_server listening on 127.0.0.1:$gport"
( tail -n +1 -f "$work/game.log" | live /dev/stdin 3 "[game]" ) &
pids+=($!)
sim gm-steady --connect "127.0.0.1:$gport" --protocol vigil --mode steady \
  --devices 6 --duration 7 --ping-ms 1000 --id-prefix steady- --id-suffix @hall --hold 2
sim gm-flap --connect "127.0.0.1:$gport" --protocol vigil --mode flap \
  --devices 6 --duration 7 --ping-ms 1000 --churn-ms 500,2000 --id-prefix flap- --id-suffix @arena --hold 2
sim gm-reboot --connect "127.0.0.1:$gport" --protocol vigil --mode silent-reboot \
  --devices 6 --duration 7 --ping-ms 1000 --churn-ms 500,2000 --id-prefix reboot- --id-suffix @den --hold 2
sleep 8
census_row "$gport" game_server
wait_sims mq-steady mq-flap mq-reboot gm-steady gm-flap gm-reboot
kill -TERM "$(pgrep -f "mqtt_gateway --listen 127.0.0.1:0 --handshake" | head -n 1)" 2>/dev/null || true
kill -TERM "$(pgrep -f "game_server --listen 127.0.0.1:0" | head -n 1)" 2>/dev/null || true
sleep 0.5

# Act 4: two nodes sharing identities through Redis.
act4=""
if command -v redis-server >/dev/null &&
   grep '^HIREDIS_LIBRARY:FILEPATH=' build/CMakeCache.txt | grep -vq NOTFOUND; then
  log "act 4: a cluster: Redis, two MQTT gateway nodes of 2 workers, 60 devices rebooting silently through either node"
  rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    (exec 6<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
    sleep 0.1
  done
  say "redis-server on 127.0.0.1:$rport"
  for n in a b; do
    start_server "node-$n" "$work/node-$n.log" "$work/node-$n.port" \
      build/examples/mqtt_gateway --listen 127.0.0.1:0 --workers 2 \
      --cluster "redis://127.0.0.1:$rport" --node "node-$n" --census-every 1
    ( tail -n +1 -f "$work/node-$n.log" | grep --line-buffered -E 'directory_|scope=cluster' |
      live /dev/stdin 2 "[node-$n]" ) &
    pids+=($!)
  done
  pa=$(cat "$work/node-a.port") pb=$(cat "$work/node-b.port")
  [ -n "$pa" ] && [ -n "$pb" ] || { echo "a cluster node did not start" >&2; exit 1; }
  say "node-a on 127.0.0.1:$pa, node-b on 127.0.0.1:$pb"
  sim cl-reboot --connect "127.0.0.1:$pa,127.0.0.1:$pb" \
    --protocol mqtt --mode silent-reboot --devices 60 --duration 6 \
    --keepalive 2 --churn-ms 500,2000 --id-prefix node- --hold 3
  sleep 7.5 # the fleet holds its last connections: census them
  census_row "$pa" node-a
  census_row "$pb" node-b
  wait_sims cl-reboot
  act4=ran
  for n in a b; do
    kill -TERM "$(pgrep -f -- "--node node-$n" | head -n 1)" 2>/dev/null || true
  done
  sleep 0.5
else
  log "act 4 skipped: needs redis-server and a build with hiredis (libhiredis-dev)"
fi

echo
echo "==================== summary ===================="
echo "act 1, echo_server close reasons:"
echo "$act1_reasons"
echo "act 2, mqtt_gateway close reasons:"
grep 'event=close ' "$work/mqtt.log" | sed -n 's/.*reason=\([a-z_]*\).*/\1/p' |
  sort | uniq -c | sed 's/^/    /'
echo "act 3, game_server: $(grep -c 'event=join' "$work/game.log" || true) joins," \
  "$(grep -c 'event=takeover' "$work/game.log" || true) takeovers," \
  "$(grep -cE 'event=(away|dead)' "$work/game.log" || true) away, close reasons:"
grep 'event=close ' "$work/game.log" | sed -n 's/.*reason=\([a-z_]*\).*/\1/p' |
  sort | uniq -c | sed 's/^/    /'
echo "device_sim fleets:"
printf '    %-10s %9s %11s %10s %14s %7s\n' fleet connects reconnects p99_ms ghosts_ended errors
for f in mq-steady mq-flap mq-reboot gm-steady gm-flap gm-reboot; do
  field() { grep -o "$1=[0-9.]*" "$work/$f.txt" | head -n 1 | cut -d= -f2; }
  printf '    %-10s %9s %11s %10s %14s %7s\n' "$f" "$(field connects)" \
    "$(field reconnects)" "$(field p99_ms)" \
    "$(( $(field ghosts_ended_rst) + $(field ghosts_ended_fin) ))" "$(field errors)"
done
if [ -n "$act4" ]; then
  clf() { grep -o "$1=[0-9.]*" "$work/cl-reboot.txt" | head -n 1 | cut -d= -f2; }
  cross=0
  for n in a b; do
    c=$(grep -c 'event=takeover.*scope=cluster' "$work/node-$n.log" || true)
    cross=$((cross + c))
  done
  echo "act 4, cluster: $(clf reboots) silent reboots through 2 nodes x 2 workers," \
    "$cross ghosts ended by cross-node takeover;" \
    "ghost end after the device's reconnect (any scope): p50 $(clf ghost_end_p50_ms) ms," \
    "p99 $(clf ghost_end_p99_ms) ms"
fi
echo
echo "census of each server port while its fleet was connected:"
printf '%-14s %6s %11s %10s %10s %10s %8s\n' server port ESTABLISHED CLOSE_WAIT FIN_WAIT1 FIN_WAIT2 orphans
for row in "${census_rows[@]}"; do echo "$row"; done
if [ -n "$act1_missing" ]; then
  echo "demo FAILED: act 1 saw no close with reason:$act1_missing"
  exit 1
fi
if ! grep -q 'reason=takeover' "$work/mqtt.log"; then
  echo "demo FAILED: no reboot ghost was ended by takeover in act 2"
  exit 1
fi
if [ -n "$act4" ]; then
  for n in a b; do
    if ! grep 'event=mqtt_census' "$work/node-$n.log" | tail -n 1 | grep -q ' ghosts=0 '; then
      echo "demo FAILED: node-$n's last census counts ghosts"
      exit 1
    fi
  done
  if [ "$(clf ghosts_open)" != 0 ] || [ "$cross" -eq 0 ] || [ "$(clf errors)" != 0 ]; then
    echo "demo FAILED: act 4 left ghosts open, saw no cross-node takeover, or had errors"
    exit 1
  fi
fi
echo "demo OK"
