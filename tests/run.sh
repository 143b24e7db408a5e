#!/usr/bin/env bash
# Builds vigil and runs the test suite in five passes:
#   1. release pass:   RelWithDebInfo, warnings are errors   -> build/
#                      then the build without TLS (-DVIGIL_TLS=OFF: no
#                      OpenSSL at all), its unit, lint and core tests
#                      (pass "no-tls")                        -> build-notls/
#   2. sanitizer pass: same plus ASan + UBSan                -> build-asan/
#   3. tsan pass:      the tests labelled tsan (the group tests, whose
#                      vigil code runs on several threads; tests/tsan.cmake)
#                      under ThreadSanitizer                 -> build-tsan/
#   4. memcheck pass:  the memcheck/ tests (tests/memcheck.cmake) on the
#                      release build: core, listener, client, TLS, group and
#                      unit tests under valgrind, which sees faults inside
#                      libev and OpenSSL that ASan cannot. SKIP without
#                      valgrind.
# On Debian as root it first installs the packages the suite needs.
# Prints a summary of the passes; exits non-zero if anything failed.
#
# Usage: tests/run.sh [--quick] [--no-tsan] [--no-memcheck] [--no-install]
#                     [-R regex] [-j N] [--build-dir DIR] [-- ctest args]
#   --quick        release pass only (no sanitizer, tsan or memcheck pass)
#   --no-tsan      skip the tsan pass
#   --no-memcheck  skip the memcheck pass
#   --no-install   do not check or install Debian packages
#   -R regex       run only the matching tests (passed to ctest)
#   -j N           run N tests at once (default 2)
#   --build-dir    build directory of the release and memcheck passes
#                  (default build); the sanitizer passes use DIR-asan and
#                  DIR-tsan, the build without TLS DIR-notls
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

PACKAGES=(build-essential cmake pkg-config libev-dev libcmocka-dev libssl-dev
          openssl nftables iproute2 clang libclang-rt-dev python3 socat
          mosquitto mosquitto-clients netcat-openbsd valgrind)
# The metrics tests check expositions with promtool and scrape the examples
# with a real Prometheus server and curl.
PACKAGES+=(prometheus curl)
# The Redis identity directory (src/cluster) and its tests.
PACKAGES+=(libhiredis-dev redis-server)
# python/installed pip-installs bindings/python into a venv, offline.
PACKAGES+=(python3-venv python3-pip python3-setuptools python3-wheel)
# docs/man/* renders the manual pages with groff.
PACKAGES+=(groff-base)

quick=0
tsan=1
memcheck=1
install=1
build_dir=build
test_jobs=2
ctest_extra=()

usage() { sed -n '2,26s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-tsan) tsan=0 ;;
    --no-memcheck) memcheck=0 ;;
    --no-install) install=0 ;;
    -R) [ $# -ge 2 ] || usage 2; ctest_extra+=(-R "$2"); shift ;;
    -j) [ $# -ge 2 ] || usage 2; test_jobs=$2; shift ;;
    --build-dir) [ $# -ge 2 ] || usage 2; build_dir=${2%/}; shift ;;
    -h|--help) usage 0 ;;
    --) shift; ctest_extra+=("$@"); break ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage 2 ;;
  esac
  shift
done

log() { printf '\n==> %s\n' "$*"; }

# Shared with examples/demo.sh: install_packages PKG... installs what is
# missing, running `apt-get update` only if something is.
# shellcheck source=tests/deps.sh
. tests/deps.sh

# Each pass keeps its logs in its build directory under its own name, so
# the release and memcheck passes can share one: ctest-NAME.log (ctest's
# output, whose verdict the summary repeats) and lasttest-NAME.log (ctest's
# LastTest.log, the only place skipped tests' "SKIP: <why>" lines stay).
# pass_status[NAME] is 0 (ok), 1 (failed) or 2 (skipped); pass_built[NAME]
# is 1 once its build directory is built.
declare -A pass_status pass_summary pass_seconds pass_dir pass_built
pass_names=()

# configure_and_build NAME DIR [cmake args...]: returns non-zero and sets
# pass_summary[NAME] when either step fails.
configure_and_build() {
  local name=$1 dir=$2
  shift 2
  pass_built[$name]=0
  log "[$name] configure $dir/"
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DVIGIL_WERROR=ON "$@"; then
    pass_summary[$name]="configure failed"; return 1
  fi
  log "[$name] build"
  if ! cmake --build "$dir" -j 2; then
    pass_summary[$name]="build failed"; return 1
  fi
  pass_built[$name]=1
}

# run_ctest NAME DIR [ctest args...]: runs ctest in DIR with the options
# given to this script; returns non-zero when a test failed and sets
# pass_summary[NAME] to ctest's verdict.
run_ctest() {
  local name=$1 dir=$2 rc=0
  shift 2
  local out="$dir/ctest-$name.log" last="$dir/Testing/Temporary/LastTest.log"
  rm -f "$last"
  log "[$name] ctest"
  (cd "$dir" && ctest --output-on-failure -j "$test_jobs" "$@" \
      ${ctest_extra[@]+"${ctest_extra[@]}"}) 2>&1 | tee "$out" || rc=1
  [ -f "$last" ] && cp "$last" "$dir/lasttest-$name.log"
  pass_summary[$name]=$(grep -E 'tests passed|No tests were found' "$out" |
                        tail -n 1 || true)
  [ -n "${pass_summary[$name]}" ] || pass_summary[$name]="ctest did not finish"
  return $rc
}

# begin_pass NAME DIR: registers the pass and drops the logs of its last run.
begin_pass() {
  pass_names+=("$1"); pass_dir[$1]=$2
  rm -f "$2/ctest-$1.log" "$2/lasttest-$1.log"
}

# run_pass NAME DIR [cmake args...]: configure, build, and run every test
# but the memcheck/ ones. Never exits.
run_pass() {
  local name=$1 dir=$2 start=$SECONDS rc=0
  shift 2
  begin_pass "$name" "$dir"
  if ! configure_and_build "$name" "$dir" "$@"; then
    rc=1
  elif ! run_ctest "$name" "$dir" --no-tests=error -LE '^memcheck$'; then
    rc=1
  fi
  pass_status[$name]=$rc
  pass_seconds[$name]=$((SECONDS - start))
}

# run_notls_pass DIR: vigil built without TLS must build (library, tools,
# tests; no examples or benchmarks, which use OpenSSL themselves) and pass
# the tests that do not need TLS. Kept cheap: unit, lint and the core
# integration tests, not the slow re-entrancy sweep or the census tests
# (the release pass runs those on the same code).
NOTLS_TESTS='^(unit|lint)/|^integration/test_(core_|codec_conn|client|errors|takeover|sockopt|suspect)'
run_notls_pass() {
  local name=no-tls dir=$1 start=$SECONDS rc=0
  begin_pass "$name" "$dir"
  if ! configure_and_build "$name" "$dir" -DVIGIL_TLS=OFF \
         -DVIGIL_BUILD_EXAMPLES=OFF -DVIGIL_BUILD_BENCH=OFF \
         -DVIGIL_MEMCHECK=OFF; then
    rc=1
  elif ! run_ctest "$name" "$dir" --no-tests=ignore -R "$NOTLS_TESTS"; then
    rc=1
  fi
  pass_status[$name]=$rc
  pass_seconds[$name]=$((SECONDS - start))
}

# run_tsan_pass DIR: configure and build DIR with ThreadSanitizer (no
# examples or benchmarks) and run the tests labelled tsan. When -R (or
# another ctest filter) selects none of them, the pass is skipped.
run_tsan_pass() {
  local name=tsan dir=$1 start=$SECONDS rc=0 no_tests=error
  begin_pass "$name" "$dir"
  [ ${#ctest_extra[@]} -eq 0 ] || no_tests=ignore
  if ! configure_and_build "$name" "$dir" -DVIGIL_TSAN=ON \
         -DVIGIL_BUILD_EXAMPLES=OFF -DVIGIL_BUILD_BENCH=OFF; then
    rc=1
  elif ! TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
         run_ctest "$name" "$dir" --no-tests=$no_tests -L '^tsan$'; then
    rc=1
  elif ! grep -q 'tests passed' "$dir/ctest-$name.log"; then
    rc=2; pass_summary[$name]="no tsan test matches the filter"
  fi
  pass_status[$name]=$rc
  pass_seconds[$name]=$((SECONDS - start))
}

# run_memcheck_pass DIR: the memcheck/ tests (label memcheck) on the
# release build in DIR, which the release pass configured and built. When
# -R (or another ctest filter) selects no memcheck test, the pass is skipped,
# not failed.
run_memcheck_pass() {
  local name=memcheck dir=$1 start=$SECONDS rc=0 no_tests=error
  begin_pass "$name" "$dir"
  [ ${#ctest_extra[@]} -eq 0 ] || no_tests=ignore
  if ! command -v valgrind >/dev/null; then
    rc=2; pass_summary[$name]="valgrind not found: install valgrind"
  elif [ "${pass_built[release]:-0}" -ne 1 ]; then
    rc=1; pass_summary[$name]="not run: the release build failed"
  fi
  if [ $rc -eq 0 ]; then
    if ! run_ctest "$name" "$dir" --no-tests=$no_tests -L '^memcheck$'; then
      rc=1
    elif ! grep -q 'tests passed' "$dir/ctest-$name.log"; then
      rc=2; pass_summary[$name]="no memcheck test matches the filter"
    fi
  fi
  pass_status[$name]=$rc
  pass_seconds[$name]=$((SECONDS - start))
}

# Repeats the lines that say which tests failed or were skipped.
report_tests() {
  local name=$1 dir=${pass_dir[$1]}
  local out="$dir/ctest-$name.log" last="$dir/lasttest-$name.log"
  [ -f "$out" ] || return 0
  awk '/^The following tests (FAILED|did not run):/ { p = 1; print "    " $0; next }
       p && /^[ \t]/ { print "    " $0; next }
       { p = 0 }' "$out"
  [ -f "$last" ] || return 0
  awk '/^[0-9]+\/[0-9]+ Test: / { name = $3 }
       /^SKIP: / { print "    skipped " name ": " substr($0, 7) }' "$last"
}

[ $install -eq 1 ] && install_packages "${PACKAGES[@]}"

run_pass release "$build_dir" -DVIGIL_MEMCHECK=ON
run_notls_pass "$build_dir-notls"
if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_pass asan "$build_dir-asan" -DVIGIL_SANITIZE=ON
  unset ASAN_OPTIONS UBSAN_OPTIONS
  [ $tsan -eq 0 ] || run_tsan_pass "$build_dir-tsan"
  [ $memcheck -eq 0 ] || run_memcheck_pass "$build_dir"
fi

failed=0
echo
echo "==================== vigil test summary ===================="
for name in "${pass_names[@]}"; do
  case "${pass_status[$name]}" in
    0) verdict=PASS ;;
    2) verdict=SKIP ;;
    *) verdict=FAIL; failed=1 ;;
  esac
  skipped=$(grep -cE '^[[:space:]]+[0-9]+ - .*\(Skipped\)$' \
            "${pass_dir[$name]}/ctest-$name.log" 2>/dev/null || true)
  [ "${skipped:-0}" -eq 0 ] || verdict="$verdict, $skipped SKIPPED"
  printf '%-8s %s  %s  (%ss)\n' "$name" "$verdict" "${pass_summary[$name]}" \
    "${pass_seconds[$name]}"
  report_tests "$name"
done
if [ $quick -eq 1 ]; then
  echo "asan     not run (--quick)"
  echo "tsan     not run (--quick)"
  echo "memcheck not run (--quick)"
else
  [ $tsan -eq 1 ] || echo "tsan     not run (--no-tsan)"
  [ $memcheck -eq 1 ] || echo "memcheck not run (--no-memcheck)"
fi
echo "total time: ${SECONDS}s"
if [ $failed -ne 0 ]; then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all passes OK"
