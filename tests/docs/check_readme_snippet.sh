#!/usr/bin/env bash
# README's embedding example stays a real program: the first ```c block
# under the heading given is extracted and compiled and linked with the
# command given (the project's compiler, warnings as errors, against the
# library just built). It is not run.
#
# usage: check_readme_snippet.sh README.md 'HEADING' CC [ARGS...]
#   runs CC SNIPPET.c ARGS... -o OUT (the source first, so libraries in
#   ARGS come after the code that needs them).
# Exit: 0 it builds, 1 it does not or no such block exists.
set -u

README=${1:?usage: $0 README.md HEADING CC [ARGS...]}
HEADING=${2:?usage: $0 README.md HEADING CC [ARGS...]}
shift 2
[ $# -ge 1 ] || { echo "usage: $0 README.md HEADING CC [ARGS...]"; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

awk -v heading="$HEADING" '
  $0 == heading { under = 1; next }
  under && !inside && /^#/ { exit }   # next heading: no block found
  under && /^```c[ \t]*$/ { inside = 1; next }
  inside && /^```/ { exit }
  inside { print }' "$README" >"$WORK/snippet.c"

lines=$(wc -l <"$WORK/snippet.c")
if [ "$lines" -eq 0 ]; then
  echo "FAIL no \`\`\`c block under '$HEADING' in $README"
  exit 1
fi
echo "extracted $lines lines under '$HEADING'"
cc=$1
shift
if ! "$cc" "$WORK/snippet.c" "$@" -o "$WORK/snippet"; then
  echo "FAIL the snippet does not build with: $cc $*"
  cat -n "$WORK/snippet.c"
  exit 1
fi
echo "ok   the snippet compiles and links"
