#!/usr/bin/env bash
# Builds one libFuzzer target with clang + libFuzzer + ASan/UBSan and runs
# it on its seed corpus for a bounded time.
#
#   run_fuzz.sh target [build_dir] [seconds]
#
# target: frame   the frame codec            (fuzz_frame.c,  src/frame.c)
#         mqtt    the example MQTT codec     (fuzz_mqtt.c,   examples/mqtt/)
#         census  the sock_diag reply parser (fuzz_census.c, src/census*.c)
#         event   the event line formatter   (fuzz_event.c,  src/event_format.c)
#
# build_dir defaults to ./build-fuzz; seconds to 20. VIGIL_FUZZ_SECONDS, if
# set, wins over the argument, so a long run is e.g.
#   VIGIL_FUZZ_SECONDS=600 tests/fuzz/run_fuzz.sh mqtt /tmp/fz
# or `VIGIL_FUZZ_SECONDS=600 ctest -R fuzz/ --timeout 700`. CC may name
# another clang. Several targets may share build_dir and run at once.
#
# Exit: 0 clean, 77 skip (no clang or no libFuzzer runtime), 1 build
# failure or bad usage, 2 (or any other non-zero) the fuzzer found a crash
# or broken invariant; the reproducer is saved under
# build_dir/fuzz-<target>-artifacts/ and replays with:
#   build_dir/fuzz_<target> <file>
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${1:-}
build=${2:-$PWD/build-fuzz}
seconds=${VIGIL_FUZZ_SECONDS:-${3:-20}}
cc=${CC:-clang}
case $cc in *clang*) ;; *) cc=clang ;; esac

# Per target: library sources, include directories, largest input.
case $target in
  frame)
    sources=("$root/src/frame.c")
    includes=("$root/include")
    max_len=70000 ;;
  mqtt)
    sources=("$root/examples/mqtt/mqtt_codec.c" "$root/examples/mqtt/mqtt_topic.c")
    includes=("$root/examples/mqtt")
    max_len=70000 ;;
  census)
    # census.c (the collector the parser feeds) links against the rest of
    # the census; only the pure parts are ever called.
    # error.c: the census records failed calls (vigil_last_error).
    sources=("$root"/src/census*.c "$root/src/names.c" "$root/src/error.c")
    includes=("$root/include" "$root/src")
    max_len=16384 ;;
  event)
    # sockopt.c: vigil_tcp_state_name (and what it links against)
    sources=("$root/src/event_format.c" "$root/src/names.c" "$root/src/sockopt.c"
             "$root/src/policy.c" "$root/src/error.c")
    includes=("$root/include")
    max_len=8192 ;;
  *)
    echo "usage: $0 frame|mqtt|census|event [build_dir] [seconds]" >&2
    exit 1 ;;
esac

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: clang with libFuzzer not found ($cc is not installed)"
  exit 77
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined)

# Probe: can this clang link a libFuzzer target at all? (One probe per
# target: ctest may run two targets at once in the same build_dir.)
probe=$build/fuzz-probe-$target
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$probe.c"
if ! "$cc" "${flags[@]}" "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
  echo "SKIP: clang with libFuzzer not found ($cc cannot link -fsanitize=fuzzer; see $probe.log)"
  exit 77
fi

bin=$build/fuzz_$target
if ! "$cc" "${flags[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
     "${includes[@]/#/-I}" "$here/fuzz_$target.c" "${sources[@]}" -o "$bin"; then
  echo "FAIL: could not build $bin"
  exit 1
fi

# Work on a copy of the seeds so new inputs never land in the source tree.
corpus=$build/fuzz-$target-corpus
artifacts=$build/fuzz-$target-artifacts
log=$build/fuzz-$target.log
mkdir -p "$corpus" "$artifacts"
cp "$here/corpus/$target"/* "$corpus"/

echo "fuzzing $target for ${seconds}s (corpus $corpus)"
set +e
# -error_exitcode: libFuzzer's default, 77, would read as a ctest skip.
"$bin" -max_total_time="$seconds" -timeout=10 -error_exitcode=2 -rss_limit_mb=2048 \
  -max_len="$max_len" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" 2>"$log"
rc=$?
set -e
tail -n 25 "$log"
if [ $rc -ne 0 ]; then
  echo "FAIL: fuzzer exited $rc; reproducers in $artifacts/ (full log $log)"
  [ $rc -eq 77 ] && rc=2 # never report a crash as a skip
  exit $rc
fi
echo "PASS: no crash in ${seconds}s"
