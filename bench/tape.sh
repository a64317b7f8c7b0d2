#!/usr/bin/env bash
# Taping speed: one holding image written by the scribe onto a vtape and
# onto the fake st drive through FUSE (root only), against
# `dd if=IMAGE of=TARGET bs=256k` onto the same targets, in one invocation.
#
#   bash bench/tape.sh [-size 1GiB] [-runs 3] [-dir DIR]
#
# The FUSE drive streams at an LTO-9's 400 MB/s (fuse-tape, checked) and, for
# information, as fast as the CPUs let it (fuse-fast).
# Exit status 0 when the ratios dd/tapir of vtape and fuse-tape are >= 0.9.
# See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=1GiB runs=3
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/tape.sh [-size 1GiB] [-runs 3] [-dir DIR]" >&2; exit 2 ;;
  esac
done
need_tools
build_tools
work=$(mktemp -d "$CACHE/tape.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"; rm -rf "$BIN"' EXIT

echo
echo "== taping speed: a $size holding image; $(nproc) CPUs; $runs runs each, alternating"
echo "   baseline: dd if=IMAGE of=TARGET bs=256k (conv=fsync on the vtape, like the filemark's fsync)"
echo "   tapir:    the scribe: read-ahead, one record per write, SHA-256 of what was written checked"
out=$("$BIN/tapebench" -work "$work" -size "$size" -runs "$runs")
echo "$out" | grep -v '^tapebench:'
res=$(echo "$out" | grep '^tapebench:')
fail=0
for t in vtape fuse-tape fuse-fast; do
  r=$(field "${t}_ratio" "$res")
  [ -n "$r" ] || { echo "   $t: not measured (no FUSE here?)"; continue; }
  if [ $t = fuse-fast ]; then
    printf '   %-9s dd median %ss, tapir median %ss (%s MiB/s): ratio dd/tapir = %s  (informational: a drive with no speed, CPU-bound)\n' \
      "$t" "$(field "${t}_dd_s" "$res")" "$(field "${t}_tapir_s" "$res")" "$(field "${t}_tapir_mibs" "$res")" "$r"
    continue
  fi
  if awk "BEGIN { exit !($r >= 0.9) }"; then v=PASS; else v=FAIL; fail=1; fi
  printf '   %-9s dd median %ss, tapir median %ss (%s MiB/s): ratio dd/tapir = %s  %s (>= 0.90)\n' \
    "$t" "$(field "${t}_dd_s" "$res")" "$(field "${t}_tapir_s" "$res")" "$(field "${t}_tapir_mibs" "$res")" "$r" "$v"
done
echo
if [ $fail = 0 ]; then echo "tape.sh: PASS"; else echo "tape.sh: FAIL"; fi
exit $fail
