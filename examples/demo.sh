#!/usr/bin/env bash
# vigil demo: builds everything, starts examples/echo_server on loopback and
# drives it with four real clients, showing vigil's log lines live:
#
#   healthy   answers every PING until the server stops   -> shutdown
#   silent    connects and never says a word              -> heartbeat_timeout
#   half      sends a line, half-closes, reads the reply  -> peer_closed
#   abrupt    is killed with unread data (kernel RST)     -> peer_reset
#
# Then SIGTERM: the server shuts down gracefully. Ends with a summary of close
# reasons. Stops by itself in about 10 s and leaves no process behind.
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
  libev-dev libcmocka-dev libssl-dev socat
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
( exec 3<>"/dev/tcp/127.0.0.1/$port"
  end=$((SECONDS + 20))
  while [ $SECONDS -lt $end ]; do
    rc=0; read -r -t 1 line <&3 || rc=$?
    if [ $rc -eq 0 ]; then [ "$line" = PING ] && echo PONG >&3
    elif [ $rc -le 128 ]; then break; fi   # EOF: the server said goodbye
  done
  exec 3>&- ) &
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

echo
echo "==================== summary ===================="
echo "close reasons seen by the server:"
grep 'event=close ' "$work/events.log" |
  sed -n 's/.*reason=\([a-z_]*\).*/\1/p' | sort | uniq -c | sed 's/^/  /'
echo "pings asked:   $(grep -c 'event=ping_due' "$work/events.log" || true)"
echo "dead verdicts: $(grep -c 'event=dead ' "$work/events.log" || true)"
expected="heartbeat_timeout peer_closed peer_reset shutdown"
missing=""
for r in $expected; do
  grep -q "event=close .*reason=$r" "$work/events.log" || missing="$missing $r"
done
if [ -n "$missing" ]; then
  echo "demo FAILED: no close with reason:$missing"
  exit 1
fi
echo "demo OK: every client behaviour ended with the expected reason"
