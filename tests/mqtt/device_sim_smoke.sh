#!/usr/bin/env bash
# Short device_sim run against mqtt_gateway (the long one is manual, see the
# docs/examples.md): 200 devices in silent-reboot mode for 4 s, then 1 s with churn
# stopped. Every abandoned socket must be ended by takeover (a FIN from the
# gateway, since the abandoned socket's kernel still answers: class live),
# and at the end the census of the gateway port must show exactly the live
# devices as ESTABLISHED and no CLOSE_WAIT or orphan. Also checks
# that device_sim refuses more devices than its fd limit holds, and bad
# flags. About 6 s.
#
# Usage: device_sim_smoke.sh PATH/TO/mqtt_gateway PATH/TO/device_sim
# Exit: 0 pass, 1 fail.
set -u

gateway=${1:?usage: $0 GATEWAY DEVICE_SIM}
sim=${2:?usage: $0 GATEWAY DEVICE_SIM}
tmp=$(mktemp -d /tmp/vigil-device-sim-XXXXXX)
pids=()
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
  [ -f "$tmp/report.json" ] && { echo "--- report"; cat "$tmp/report.json"; }
  echo "--- gateway log (last 20 lines)"
  tail -n 20 "$log"
  exit 1
}
# num KEY: a number from the flat JSON report.
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$tmp/report.json"; }

"$gateway" --listen 127.0.0.1:0 >"$tmp/gateway.out" 2>"$log" &
pids+=($!)
gw_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$tmp/gateway.out" 2>/dev/null && break
  sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/gateway.out")
[ -n "$port" ] || fail "gateway did not print its port"

timeout 30 "$sim" --connect "127.0.0.1:$port" --devices 200 --duration 4 \
  --hold 1 --protocol mqtt --mode silent-reboot --churn-ms 300,1500 \
  --keepalive 60 --census --report json --seed 7 >"$tmp/report.json" ||
  fail "device_sim exited $?"
grep -q '^{.*}$' "$tmp/report.json" || fail "no JSON report"

[ "$(num errors)" = 0 ] || fail "errors: $(num errors)"
[ "$(num first_connects)" = 200 ] || fail "first_connects $(num first_connects)"
reboots=$(num reboots)
[ "$reboots" -ge 100 ] || fail "only $reboots reboots in 4 s"
[ "$(num reconnects)" = "$reboots" ] || fail "reconnects != reboots"
# Keep-alive 60 s: only takeover can have ended the ghosts in 5 s. On
# loopback an abandoned socket's kernel still acknowledges everything: no
# loss evidence, so the gateway classes it live and sends FIN (then RST at
# the takeover bound, unless the sim closes first, as it does on FIN).
ended=$(( $(num ghosts_ended_rst) + $(num ghosts_ended_fin) ))
[ "$ended" = "$reboots" ] ||
  fail "ghosts ended by takeover: $ended of $reboots"
grep -q 'event=takeover .*class=live' "$log" ||
  fail "no takeover classed live in the gateway log"
[ "$(num ghosts_open)" = 0 ] || fail "ghosts still open: $(num ghosts_open)"
[ "$(num live)" = 200 ] || fail "live devices: $(num live)"
[ "$(num census_established)" = 200 ] ||
  fail "gateway port ESTABLISHED $(num census_established), want 200 (ghosts?)"
for k in census_close_wait census_fin_wait1 census_fin_wait2 census_orphans; do
  [ "$(num $k)" = 0 ] || fail "$k = $(num $k)"
done
takeovers=$(grep -c 'event=close .*reason=takeover' "$log")
[ "$takeovers" = "$reboots" ] ||
  fail "gateway logged $takeovers takeover closes for $reboots reboots"
echo "ok: 200 devices, $reboots silent reboots, all ghosts ended by takeover;" \
     "p50 $(num p50_ms) ms p99 $(num p99_ms) ms; census ESTABLISHED 200"

# Too many devices for the fd limit: refused with a clear message.
out=$( (ulimit -n 1000; "$sim" --connect "127.0.0.1:$port" --devices 600 \
        --duration 1 --protocol mqtt --mode silent-reboot) 2>&1)
rc=$?
[ $rc = 2 ] || fail "600 silent-reboot devices at ulimit 1000: exit $rc"
grep -q "At most 484 devices fit" <<<"$out" || fail "refusal said: $out"
echo "ok: 600 silent-reboot devices refused at ulimit -n 1000 (484 fit)"

for bad in "--devices 0" "--mode sometimes" "--protocol coap" "--rate 0" \
           "--churn-ms 5,1" "--source-ips 10.0.0.9-10.0.0.1" "--bogus"; do
  # shellcheck disable=SC2086
  "$sim" --connect "127.0.0.1:$port" --devices 1 --duration 1 \
    --protocol mqtt --mode steady $bad >/dev/null 2>&1
  rc=$?
  [ $rc = 2 ] || fail "'$bad' exited $rc, want 2"
done
"$sim" --devices 1 --duration 1 --protocol mqtt --mode steady >/dev/null 2>&1
[ $? = 2 ] || fail "missing --connect accepted"
echo "ok: bad flags exit 2"

kill -TERM "$gw_pid"
wait "$gw_pid" || fail "gateway exit status $?"
echo "PASS"
