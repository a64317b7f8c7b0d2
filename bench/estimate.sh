#!/usr/bin/env bash
# Estimate speed of tapir against `find DIR -printf '%s\n'` on a tree of
# many empty files.
#
#   bash bench/estimate.sh [-files 100000] [-runs 5] [-dir DIR]
#
# Exit status 0 when tapir's median is at most 1.5 times find's, 1 when not
# or on error. See bench/README.md for how to read the output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

files=100000 runs=5
while [ $# -gt 0 ]; do
  case $1 in
    -files|--files) files=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/estimate.sh [-files 100000] [-runs 5] [-dir DIR]" >&2; exit 2 ;;
  esac
done

need_tools
build_tools
tree=$(dataset "estimate-$files" -files "$files" -size 0)
ndirs=$(find "$tree" -type d | wc -l)

# Warm the dentry and inode caches.
find "$tree" -printf '%s\n' >/dev/null
"$BIN/estimate" "$tree" >/dev/null

echo
echo "== estimate speed: $tree"
echo "   $files files in $ndirs directories; $(nproc) CPUs; $runs runs each, alternating"
echo "   baseline: find DIR -printf '%s\\n' > /dev/null"
echo "   tapir:    estimate DIR  (client.Estimate, level 0)"
ft=() tt=() inner=()
for i in $(seq "$runs"); do
  t0; find "$tree" -printf '%s\n' >/dev/null; t1; ft+=("$ELAPSED")
  t0; out=$("$BIN/estimate" "$tree"); t1; tt+=("$ELAPSED")
  inner+=("$(field elapsed_s "$out")")
  printf '   run %d  find %6.3f s   tapir %6.3f s   (%s)\n' "$i" "${ft[-1]}" "${tt[-1]}" "${out#estimate: }"
done
fm=$(median "${ft[@]}") tm=$(median "${tt[@]}")
ratio=$(calc %.2f "$tm / $fm")
printf '   find  median %6.3f s\n' "$fm"
printf '   tapir median %6.3f s  (inside client.Estimate: %.3f s)\n' "$tm" "$(median "${inner[@]}")"
if awk "BEGIN { exit !($ratio <= 1.5) }"; then verdict=PASS; fail=0; else verdict=FAIL; fail=1; fi
echo "   ratio tapir/find = $ratio  $verdict (<= 1.50)"
echo
echo "estimate.sh: $verdict"
exit $fail
