#!/usr/bin/env bash
# A tool's manual page: it renders with no groff warning at all (-ww), and
# its OPTIONS section documents exactly the long options the tool's --help
# lists, no more and no fewer.
#
# usage: check_man.sh PAGE.1 /path/to/tool
# Exit: 0 ok, 1 a warning or an option mismatch, 77 skip (no groff).
set -u

PAGE=${1:?usage: $0 PAGE.1 TOOL}
TOOL=${2:?usage: $0 PAGE.1 TOOL}
command -v groff >/dev/null || { echo "SKIP: groff missing (Debian: groff-base)"; exit 77; }

FAILS=0
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

# 1. No warnings, at the default line length (so "cannot break line" and
#    "cannot adjust line" count too).
warnings=$(groff -man -ww -z "$PAGE" 2>&1 >/dev/null)
if [ $? -ne 0 ] || [ -n "$warnings" ]; then
  bad "groff -man -ww reports:"
  printf '%s\n' "$warnings"
else
  echo "ok   $PAGE renders without warnings"
fi

# 2. Options. The page is rendered as plain ASCII on very long lines (no
#    wrapping, no hyphenation), and the option tags of the OPTIONS section
#    are the lines indented by exactly 7 columns that start with "--".
help=$("$TOOL" --help) || bad "$TOOL --help exited $?"
want=$(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
[ -n "$want" ] || bad "$TOOL --help lists no long option"
have=$(groff -man -Tascii -P-cbou -rLL=250n -rHY=0 "$PAGE" 2>/dev/null |
  awk '/^[A-Z][A-Z ]*$/ { in_options = ($0 == "OPTIONS"); next }
       in_options && /^       --[a-z]/ { print $1 }' | sort -u)
[ -n "$have" ] || bad "no option tags found in the OPTIONS section of $PAGE"

missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
extra=$(comm -13 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
[ -z "$missing" ] || bad "options in --help but not in the page's OPTIONS:" $missing
[ -z "$extra" ] || bad "options in the page's OPTIONS but not in --help:" $extra
[ -n "$missing$extra" ] || echo "ok   OPTIONS documents the $(printf '%s\n' "$want" | wc -l) long options of --help:" $want

if [ "$FAILS" -ne 0 ]; then
  echo "$FAILS check(s) failed"
  exit 1
fi
echo "all checks passed"
