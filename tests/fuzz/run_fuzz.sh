#!/usr/bin/env bash
# Builds the frame codec fuzzer with clang + libFuzzer + ASan/UBSan and runs
# it on the seed corpus for a bounded time.
#
#   run_fuzz.sh [build_dir] [seconds]
#
# build_dir defaults to ./build-fuzz; seconds to 20. VIGIL_FUZZ_SECONDS, if
# set, wins over the argument (so `VIGIL_FUZZ_SECONDS=300 ctest -R fuzz`
# runs longer). CC may name another clang.
#
# Exit: 0 clean, 77 skip (no clang or no libFuzzer runtime), 1 build
# failure, 2 (or any other non-zero) the fuzzer found a crash or broken
# invariant; the reproducer is saved under build_dir/fuzz-frame-artifacts/
# and replays with: build_dir/fuzz_frame <file>.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$PWD/build-fuzz}
seconds=${VIGIL_FUZZ_SECONDS:-${2:-20}}
cc=${CC:-clang}
case $cc in *clang*) ;; *) cc=clang ;; esac

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: clang with libFuzzer not found ($cc is not installed)"
  exit 77
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined)

# Probe: can this clang link a libFuzzer target at all?
probe=$build/fuzz-probe.c
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$probe"
if ! "$cc" "${flags[@]}" "$probe" -o "$build/fuzz-probe" >"$build/fuzz-probe.log" 2>&1; then
  echo "SKIP: clang with libFuzzer not found ($cc cannot link -fsanitize=fuzzer; see $build/fuzz-probe.log)"
  exit 77
fi

bin=$build/fuzz_frame
if ! "$cc" "${flags[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
     -I "$root/include" "$here/fuzz_frame.c" "$root/src/frame.c" -o "$bin"; then
  echo "FAIL: could not build $bin"
  exit 1
fi

# Work on a copy of the seeds so new inputs never land in the source tree.
corpus=$build/fuzz-frame-corpus
artifacts=$build/fuzz-frame-artifacts
mkdir -p "$corpus" "$artifacts"
cp "$here"/corpus/frame/* "$corpus"/

echo "fuzzing frame codec for ${seconds}s (corpus $corpus)"
set +e
# -error_exitcode: libFuzzer's default, 77, would read as a ctest skip.
"$bin" -max_total_time="$seconds" -timeout=10 -error_exitcode=2 -rss_limit_mb=2048 \
  -max_len=70000 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" 2>"$build/fuzz-frame.log"
rc=$?
set -e
tail -n 25 "$build/fuzz-frame.log"
if [ $rc -ne 0 ]; then
  echo "FAIL: fuzzer exited $rc; reproducers in $artifacts/ (full log $build/fuzz-frame.log)"
  [ $rc -eq 77 ] && rc=2 # never report a crash as a skip
  exit $rc
fi
echo "PASS: no crash in ${seconds}s"
