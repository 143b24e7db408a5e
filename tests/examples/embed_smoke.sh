#!/usr/bin/env bash
# Smoke tests of the small embedding examples (examples/embed_*.c), on
# 127.0.0.1 with ephemeral ports, 6 to 8 s each:
#
#   adopt|watch EXE  embed_adopt or embed_watch (both: dead_after 3000 ms)
#     1. a client's line comes back, and its FIN ends the conn peer_closed;
#     2. a client silent after one line is ended heartbeat_timeout with
#        last_rx_ms 3000..3100 in the close event line, and gets a RST;
#        embed_adopt has pinged it meanwhile (ping_interval 1000 ms);
#     3. the server stops by itself after its run time and exits 0.
#   client EXE GAME_SERVER  two embed_clients (ann@lab, bob@lab) in a
#     game_server room: each prints the other's DATA; the server restarts
#     (SIGTERM: GOODBYE, then a new server on the same port); both
#     reconnect through backoff, exchange again, and exit 0 on time.
#
# Usage: embed_smoke.sh adopt|watch PATH/TO/EXE
#        embed_smoke.sh client PATH/TO/embed_client PATH/TO/game_server
# Exit: 0 pass, 1 fail, 77 skip (no python3).
set -u

mode=${1:?usage: $0 adopt|watch|client EXE [GAME_SERVER]}
exe=${2:?usage: $0 adopt|watch|client EXE [GAME_SERVER]}
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

tmp=$(mktemp -d /tmp/vigil-embed-smoke-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  local f
  echo "FAIL: $*"
  for f in "$tmp"/*; do
    [ -s "$f" ] && { echo "--- ${f##*/} (last 15 lines)"; tail -n 15 "$f"; }
  done
  exit 1
}
pass() { echo "ok: $*"; }
now_ms() { date +%s%3N; }

# wait_until MS COMMAND...: polls COMMAND until it succeeds or MS pass.
wait_until() {
  local until=$(($(now_ms) + $1))
  shift
  while ! "$@"; do
    [ "$(now_ms)" -ge "$until" ] && return 1
    sleep 0.05
  done
}
has() { grep -Eq -- "$2" "$1" 2>/dev/null; }
# exited PID: the process has ended (a reaped or zombie child).
exited() {
  [ ! -e "/proc/$1" ] ||
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
# wait_exit MS PID NAME: fails unless the child ends within MS with status 0.
# A reaped PID leaves the cleanup list: its number may belong to another
# process by the time cleanup runs.
wait_exit() {
  wait_until "$1" exited "$2" || fail "$3 still running after $1 ms"
  wait "$2"
  local rc=$? p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$2" ] || keep+=("$p"); done
  pids=("${keep[@]}")
  [ "$rc" = 0 ] || fail "$3 exited with status $rc"
}
# field LINE KEY: the value of key=value in a logfmt line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# A real client pair for the servers: prints its two local ports, then the
# echo result, how the echo conn ended after its FIN, and how the silent
# conn ended (reset/eof, ms after its last byte, PING lines seen).
peer() {
  python3 - "$1" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])

def read_until(s, want):
    got = b""
    while want not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got

def drain(s):
    """Reads until the server ends the conn: how it ended, what came."""
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return "eof", got
            got += chunk
    except ConnectionResetError:
        return "reset", got
    except socket.timeout:
        return "timeout", got

echo, silent = (socket.create_connection(("127.0.0.1", port), timeout=8)
                for _ in range(2))
print("ports", echo.getsockname()[1], silent.getsockname()[1], flush=True)
echo.sendall(b"hello vigil\n")
ok = b"hello vigil\n" in read_until(echo, b"hello vigil\n")
print("echo", "ok" if ok else "missing", flush=True)
echo.shutdown(socket.SHUT_WR)
print("echo_end", drain(echo)[0], flush=True)
silent.sendall(b"x\n")
read_until(silent, b"x\n")
t0 = time.monotonic()
end, got = drain(silent)
print("silent", end, int((time.monotonic() - t0) * 1000),
      got.count(b"PING\n"), flush=True)
EOF
}

server_test() {
  local log=$tmp/server.err out=$tmp/server.out peer_out=$tmp/peer.out
  "$exe" 127.0.0.1 0 6 >"$out" 2>"$log" &
  local server_pid=$!
  pids+=("$server_pid")
  wait_until 3000 has "$out" '^port=[0-9]+$' || fail "no port=N line"
  local port
  port=$(sed -n 's/^port=//p' "$out")
  pass "$mode listens on port $port"

  peer "$port" >"$peer_out" 2>"$tmp/peer.err" &
  pids+=($!)
  wait_until 3000 has "$peer_out" '^ports ' || fail "peer did not connect"
  local echo_port silent_port
  read -r _ echo_port silent_port <"$peer_out"

  wait_until 2000 has "$peer_out" '^echo ok$' || fail "no echo"
  wait_until 2000 has "$log" \
    "event=close .*peer=127.0.0.1:$echo_port .*reason=peer_closed" ||
    fail "echo conn did not close with reason=peer_closed after its FIN"
  has "$peer_out" '^echo_end eof$' || fail "echo conn did not get EOF"
  pass "echo, and the client's FIN ends its conn with peer_closed"

  wait_until 4500 has "$log" \
    "event=close .*peer=127.0.0.1:$silent_port .*reason=heartbeat_timeout" ||
    fail "silent conn not closed with heartbeat_timeout"
  local line rx
  line=$(grep -E "event=close .*peer=127.0.0.1:$silent_port " "$log")
  rx=$(field "$line" last_rx_ms)
  [ "$rx" -ge 3000 ] && [ "$rx" -le 3100 ] ||
    fail "silent conn closed at last_rx_ms=$rx, bound 3000 (+100 slack)"
  wait_until 2000 has "$peer_out" '^silent ' || fail "peer did not finish"
  local how ms pings
  read -r _ how ms pings < <(grep '^silent ' "$peer_out")
  [ "$how" = reset ] || fail "silent peer saw '$how', expected a RST"
  if [ "$mode" = adopt ] && [ "$pings" -lt 2 ]; then
    fail "silent peer got $pings PING lines in 3 s, expected 2 or more"
  fi
  pass "silent conn: heartbeat_timeout at last_rx_ms=$rx; the peer saw" \
    "a RST ${ms} ms after its last byte, and $pings PING lines"

  wait_exit 5000 "$server_pid" "$mode"
  pass "$mode stopped by itself with exit 0"
}

client_test() {
  local game=${3:?usage: $0 client EXE GAME_SERVER}
  local flags=(--ping-interval 1000 --dead-after 3000)
  "$game" --listen 127.0.0.1:0 "${flags[@]}" \
    >"$tmp/game1.out" 2>"$tmp/game1.err" &
  local game_pid=$!
  pids+=("$game_pid")
  wait_until 3000 has "$tmp/game1.err" 'listening on .*:[0-9]+$' ||
    fail "game_server did not print its port"
  local port
  port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/game1.err")

  local name other client_pids=() run_s=8
  local started_ms=$(($(date +%s%N) / 1000000))
  for name in ann bob; do
    "$exe" 127.0.0.1 "$port" "$name@lab" "$run_s" \
      >"$tmp/$name.out" 2>"$tmp/$name.err" &
    client_pids+=($!)
    pids+=($!)
  done
  for name in ann bob; do
    other=$([ "$name" = ann ] && echo bob || echo ann)
    wait_until 4000 has "$tmp/$name.out" "^recv $other: reading [0-9]+$" ||
      fail "$name did not receive $other's DATA"
  done
  pass "ann and bob exchange DATA through game_server on port $port"

  kill -TERM "$game_pid"
  wait_exit 5000 "$game_pid" "game_server (SIGTERM)"
  for name in ann bob; do
    wait_until 2000 has "$tmp/$name.out" '^disconnected ' ||
      fail "$name did not see the server go"
  done
  pass "server stopped: both clients saw" \
    "'$(grep -m1 '^disconnected' "$tmp/ann.out")'"

  "$game" --listen "127.0.0.1:$port" "${flags[@]}" \
    >"$tmp/game2.out" 2>"$tmp/game2.err" &
  pids+=($!)
  wait_until 3000 has "$tmp/game2.err" 'listening on' ||
    fail "game_server did not restart on port $port"
  # recv_again FILE OTHER: OTHER's DATA arrived after the second connect.
  recv_again() {
    awk -v re="^recv $2: reading" '/^connected /{n++} n == 2 && $0 ~ re {f=1}
                                   END {exit !f}' "$1"
  }
  for name in ann bob; do
    other=$([ "$name" = ann ] && echo bob || echo ann)
    wait_until 5000 recv_again "$tmp/$name.out" "$other" ||
      fail "$name did not reconnect and hear $other again"
    has "$tmp/$name.err" 'event=client .*detail="backoff [0-9]+ms"' ||
      fail "$name reconnected without a backoff event"
  done
  backoff() { grep -om1 'backoff [0-9]*ms' "$tmp/$1.err"; }
  pass "both reconnected (ann: $(backoff ann), bob: $(backoff bob))" \
    "and exchange DATA again"

  # The clients stop on their own run_s after they started: wait for that
  # moment, measured from their start (a loaded machine may have spent most
  # of it in the steps above), plus 3 s.
  local now_ms=$(($(date +%s%N) / 1000000))
  local left=$((started_ms + run_s * 1000 + 3000 - now_ms))
  [ "$left" -gt 3000 ] || left=3000
  for i in 0 1; do
    wait_exit "$left" "${client_pids[$i]}" "embed_client #$i"
  done
  pass "both clients stopped by themselves with exit 0"
}

case $mode in
adopt | watch) server_test ;;
client) client_test "$@" ;;
*) echo "usage: $0 adopt|watch|client EXE [GAME_SERVER]"; exit 2 ;;
esac
