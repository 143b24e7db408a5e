#!/usr/bin/env bash
# vigil-census end to end: bad flags exit 2 with a message, --json is
# valid JSON, --watch/--count and SIGTERM stop it, and the counts for a
# port this script fills agree with `ss`.
#
# usage: test_census_cli.sh /path/to/vigil-census
# A python3 helper holds a listener and a few loopback connections (one
# of them half-closed, to make a CLOSE_WAIT) for at most 60 s; the trap
# stops it, and it resets its sockets on the way out so no TIME_WAIT is
# left behind.
set -u

TOOL=${1:?usage: $0 /path/to/vigil-census}
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v ss >/dev/null || { echo "SKIP: ss (iproute2) missing"; exit 77; }

WORK=$(mktemp -d)
HOLDER_PID=
cleanup() {
  [ -n "$HOLDER_PID" ] && kill -TERM "$HOLDER_PID" 2>/dev/null && wait "$HOLDER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

# --- bad command lines: exit 2 and say why on stderr -----------------------
expect_usage_error() {
  local out err rc
  "$TOOL" "$@" >"$WORK/out" 2>"$WORK/err"
  rc=$?
  err=$(cat "$WORK/err")
  out=$(cat "$WORK/out")
  if [ "$rc" -eq 2 ] && [[ "$err" == vigil-census:* ]] && [ -z "$out" ]; then
    ok "usage error for [$*]: ${err%%$'\n'*}"
  else
    bad "[$*] gave exit $rc, stderr '$err', stdout '$out'"
  fi
}
expect_usage_error --bogus
expect_usage_error -x
expect_usage_error --port
expect_usage_error --port abc
expect_usage_error --port 70000
expect_usage_error --port 65536
expect_usage_error --port 0
expect_usage_error --port -5
expect_usage_error --port 80x
expect_usage_error --port ""
expect_usage_error --port 80,,
expect_usage_error --state NOPE
expect_usage_error --state ESTAB
expect_usage_error --watch 0
expect_usage_error --watch -1
expect_usage_error --watch soon
expect_usage_error --limit -1
expect_usage_error --family 5
expect_usage_error --count 2
expect_usage_error stray-argument

"$TOOL" --help >"$WORK/help" 2>&1 && grep -q -- "--port" "$WORK/help" \
  && ok "--help exits 0 with usage" || bad "--help"

# --- a port with known sockets ----------------------------------------------
NCONN=4
python3 - "$NCONN" >"$WORK/port" <<'EOF' &
import signal, socket, struct, sys, time
n = int(sys.argv[1])
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind(("127.0.0.1", 0))
lst.listen(64)
port = lst.getsockname()[1]
socks = [lst]
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = lst.accept()
    socks += [c, s]
# The first client closes: its server side stays in CLOSE_WAIT.
socks[1].close()
del socks[1]
def stop(*_):
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print(port, flush=True)
time.sleep(60)
stop()
EOF
HOLDER_PID=$!
PORT=
for _ in $(seq 50); do
  PORT=$(head -n1 "$WORK/port" 2>/dev/null)
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { bad "helper did not start"; exit 1; }

# Let the half-close settle (the FIN's ACK may be delayed).
for _ in $(seq 50); do
  [ "$(ss -Htan state fin-wait-2 "( dport = :$PORT )" | wc -l)" -eq 1 ] && break
  sleep 0.1
done

ss_count() { ss -Htan state "$1" "$2" | wc -l; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Text output, local port.
"$TOOL" --port "$PORT" >"$WORK/text" 2>&1; rc=$?
[ "$rc" -eq 0 ] && ok "text run exit 0" || bad "text run exit $rc: $(cat "$WORK/text")"
est_text=$(awk '$1 == "ESTABLISHED" {print $2}' "$WORK/text")
want=$(ss_count established "( sport = :$PORT )")
[ "$est_text" = "$want" ] && [ "$want" -eq $((NCONN - 1)) ] \
  && ok "text ESTABLISHED $est_text = ss $want" \
  || bad "text ESTABLISHED '$est_text', ss $want: $(cat "$WORK/text")"
grep -q "CLOSE_WAIT .*127.0.0.1:$PORT" "$WORK/text" \
  && ok "text lists the CLOSE_WAIT socket" || bad "no CLOSE_WAIT row: $(cat "$WORK/text")"

# JSON is valid, and its counts agree with ss, state by state.
if "$TOOL" --port "$PORT" --json >"$WORK/json" \
   && python3 -c 'import json,sys; json.load(sys.stdin)' <"$WORK/json"; then
  ok "--json parses"
else
  bad "--json output: $(cat "$WORK/json")"
fi
for pair in ESTABLISHED:established LISTEN:listening CLOSE_WAIT:close-wait; do
  name=${pair%%:*}; ssname=${pair##*:}
  got=$(json_field "d['counts']['$name']" <"$WORK/json")
  want=$(ss_count "$ssname" "( sport = :$PORT )")
  [ "$got" = "$want" ] && ok "json $name $got = ss $want" || bad "json $name $got, ss $want"
done
got=$(json_field "sum(1 for s in d['sockets'] if s['state']=='CLOSE_WAIT' and s['peer'].startswith('127.0.0.1:'))" <"$WORK/json")
[ "$got" = 1 ] && ok "json lists the CLOSE_WAIT socket" || bad "json CLOSE_WAIT sockets: $got"
got=$(json_field "d['unreadable_processes']" <"$WORK/json")
[ "$got" = 0 ] && ok "json unreadable_processes present" || bad "unreadable_processes '$got'"

# Either-port matching agrees with ss's sport-or-dport filter.
got=$("$TOOL" --port "$PORT" --either --json | json_field "d['total']")
want=$(ss -Htan "( sport = :$PORT or dport = :$PORT )" | wc -l)
[ "$got" = "$want" ] && ok "--either total $got = ss $want" || bad "--either total $got, ss $want"
got=$("$TOOL" --port "$PORT" --either --json | json_field "d['orphans']")
[ "$got" = 1 ] && ok "--either sees the orphaned FIN_WAIT2" || bad "orphans $got"

# --state filters counts and lists, names as netstat or ss write them.
got=$("$TOOL" --port "$PORT" --state close-wait --json | json_field "d['total'], len(d['sockets'])")
[ "$got" = "1 1" ] && ok "--state close-wait: $got" || bad "--state close-wait: $got"
got=$("$TOOL" --port "$PORT" --state ESTABLISHED --state LISTEN --json | json_field "d['total']")
[ "$got" = "$NCONN" ] && ok "--state ESTABLISHED --state LISTEN: $got" || bad "two states: $got"
got=$("$TOOL" --port "$PORT" --state established --limit 0 --json | json_field "d['total'], len(d['sockets'])")
[ "$got" = "$((NCONN - 1)) 0" ] && ok "--limit 0 counts only" || bad "--limit 0: $got"
got=$("$TOOL" --port "$PORT" --state established --limit 2 --json | json_field "len(d['sockets']), d['sockets_omitted']")
[ "$got" = "2 $((NCONN - 3))" ] && ok "--limit 2 caps the list" || bad "--limit 2: $got"

# Owners: as root the helper is found; as nobody the tool says what it
# could not see and still counts.
got=$("$TOOL" --port "$PORT" --owners --json | json_field "[s['pid'] for s in d['sockets'] if s['state']=='CLOSE_WAIT'][0]")
[ "$got" = "$HOLDER_PID" ] && ok "--owners finds pid $got" || bad "--owners pid $got, want $HOLDER_PID"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null \
   && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$TOOL"; then
  setpriv --reuid=65534 --regid=65534 --clear-groups "$TOOL" --port "$PORT" --owners >"$WORK/nobody" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] && grep -q "could not read the fds of [0-9]* processes" "$WORK/nobody" \
     && grep -q "^  ESTABLISHED *$((NCONN - 1))$" "$WORK/nobody"; then
    ok "as nobody: counts and '$(grep -o 'could not read the fds of [0-9]* processes' "$WORK/nobody")'"
  else
    bad "as nobody (exit $rc): $(cat "$WORK/nobody")"
  fi
else
  echo "skip unprivileged owner check (not root, no setpriv, or tool not reachable by nobody)"
fi

# --watch with --count: N JSON lines, then exit 0.
"$TOOL" --port "$PORT" --json --watch 1 --count 2 >"$WORK/watch"; rc=$?
lines=$(python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l) is not None))' <"$WORK/watch")
[ "$rc" -eq 0 ] && [ "$lines" = 2 ] && ok "--watch 1 --count 2: $lines objects" || bad "--watch/--count rc $rc lines $lines"

# --watch stops on SIGTERM and SIGINT promptly, exit 0.
for sig in TERM INT; do
  "$TOOL" --port "$PORT" --watch 30 >"$WORK/w.$sig" 2>&1 &
  wpid=$!
  sleep 0.3
  start=$(date +%s%N)
  kill -"$sig" "$wpid"
  wait "$wpid"; rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [ "$rc" -eq 0 ] && [ "$ms" -lt 2000 ] && grep -q ESTABLISHED "$WORK/w.$sig" \
    && ok "--watch stops on SIG$sig in ${ms} ms" || bad "--watch SIG$sig: rc $rc after $ms ms"
done

# Whole-machine run works and parses.
"$TOOL" --json | python3 -c 'import json,sys; json.load(sys.stdin)' \
  && ok "machine-wide --json parses" || bad "machine-wide --json"

echo "$FAILS failure(s)"
[ "$FAILS" -eq 0 ]
