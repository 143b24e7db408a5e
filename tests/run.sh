#!/usr/bin/env bash
# Builds vigil and runs the whole test suite twice:
#   1. release pass:    RelWithDebInfo, warnings are errors   -> build/
#   2. sanitizer pass:  same plus ASan + UBSan                -> build-asan/
# On Debian as root it first installs the packages the suite needs.
# Prints a summary of both passes; exits non-zero if anything failed.
#
# Usage: tests/run.sh [--quick] [--no-install] [-R regex] [-j N]
#                     [--build-dir DIR] [-- extra ctest args]
#   --quick        skip the sanitizer pass
#   --no-install   do not check or install Debian packages
#   -R regex       run only the matching tests (passed to ctest)
#   -j N           run N tests at once (default 2)
#   --build-dir    build directory of the release pass (default build);
#                  the sanitizer pass uses DIR-asan
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

PACKAGES=(build-essential cmake pkg-config libev-dev libcmocka-dev libssl-dev
          openssl nftables iproute2 clang libclang-rt-dev python3 socat
          mosquitto mosquitto-clients netcat-openbsd)
# python/installed pip-installs bindings/python into a venv, offline.
PACKAGES+=(python3-venv python3-pip python3-setuptools python3-wheel)

quick=0
install=1
build_dir=build
test_jobs=2
ctest_extra=()

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
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

# run_pass NAME DIR [cmake args...]: configure, build, test. Never exits;
# sets pass_status[NAME] (0 = ok) and pass_summary[NAME].
declare -A pass_status pass_summary pass_seconds
pass_names=()
run_pass() {
  local name=$1 dir=$2 start=$SECONDS rc=0
  shift 2
  pass_names+=("$name")
  rm -f "$dir/ctest.log" "$dir/Testing/Temporary/LastTest.log"
  log "[$name] configure $dir/"
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DVIGIL_WERROR=ON "$@"; then
    rc=1; pass_summary[$name]="configure failed"
  fi
  if [ $rc -eq 0 ]; then
    log "[$name] build"
    if ! cmake --build "$dir" -j 2; then
      rc=1; pass_summary[$name]="build failed"
    fi
  fi
  if [ $rc -eq 0 ]; then
    log "[$name] ctest"
    # The log is kept so the summary can repeat ctest's own verdict.
    (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$test_jobs" \
        ${ctest_extra[@]+"${ctest_extra[@]}"}) 2>&1 | tee "$dir/ctest.log" || rc=1
    pass_summary[$name]=$(grep -E 'tests passed|No tests were found' \
                          "$dir/ctest.log" | tail -n 1 || true)
    [ -n "${pass_summary[$name]}" ] || pass_summary[$name]="ctest did not finish"
  fi
  pass_status[$name]=$rc
  pass_seconds[$name]=$((SECONDS - start))
}

# Repeats the lines that say which tests failed or were skipped.
report_tests() {
  local dir=$1
  [ -f "$dir/ctest.log" ] || return 0
  awk '/^The following tests (FAILED|did not run):/ { p = 1; print "    " $0; next }
       p && /^[ \t]/ { print "    " $0; next }
       { p = 0 }' "$dir/ctest.log"
  # Skipped tests print "SKIP: <why>"; ctest keeps that only in LastTest.log.
  local last="$dir/Testing/Temporary/LastTest.log"
  [ -f "$last" ] || return 0
  awk '/^[0-9]+\/[0-9]+ Test: / { name = $3 }
       /^SKIP: / { print "    skipped " name ": " substr($0, 7) }' "$last"
}

[ $install -eq 1 ] && install_packages "${PACKAGES[@]}"

run_pass release "$build_dir"
if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_pass asan "$build_dir-asan" -DVIGIL_SANITIZE=ON
fi

failed=0
echo
echo "==================== vigil test summary ===================="
for name in "${pass_names[@]}"; do
  verdict=PASS
  [ "${pass_status[$name]}" -eq 0 ] || { verdict=FAIL; failed=1; }
  dir=$build_dir; [ "$name" = asan ] && dir=$build_dir-asan
  skipped=$(grep -cE '^[[:space:]]+[0-9]+ - .*\(Skipped\)$' "$dir/ctest.log" \
            2>/dev/null || true)
  [ "${skipped:-0}" -eq 0 ] || verdict="$verdict, $skipped SKIPPED"
  printf '%-8s %s  %s  (%ss)\n' "$name" "$verdict" "${pass_summary[$name]}" \
    "${pass_seconds[$name]}"
  report_tests "$dir"
done
[ $quick -eq 1 ] && echo "asan     not run (--quick)"
echo "total time: ${SECONDS}s"
if [ $failed -ne 0 ]; then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all passes OK"
