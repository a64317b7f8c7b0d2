#!/usr/bin/env bash
# Single-file restore speed: tapir recover through the index server against
# reading the whole image with dd | zstd -dc | tar -x.
#
#   bash bench/restore.sh [-size 3GiB] [-seed 1] [-runs 3] [-dir DIR]
#
# -size  bytes of the generated tree dumped at level 0 (half of it is
#        random: 3 GiB of files make an image of about 2 GiB)
# -dir   dataset cache (default $TAPIR_BENCH_DIR or /tmp/tapir-bench)
#
# Exit status 0 when both checks passed, 1 when one failed or on error.
# See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=3GiB seed=1 runs=3
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -seed|--seed) seed=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/restore.sh [-size 3GiB] [-seed 1] [-runs 3] [-dir DIR]" >&2; exit 2 ;;
  esac
done
GOAL_S=0.5 GOAL_RATIO=20

need_tools
build_tools
(cd "$REPO" && go build -o "$BIN/tapir" ./cmd/tapir)
tree=$(dataset "dump-$size-seed$seed" -size "$size" -seed "$seed")
work=$(mktemp -d "${TMPDIR:-/tmp}/tapir-restore.XXXXXX")
trap 'rm -rf "$BIN" "$work"' EXIT

echo
echo "== single-file restore: $tree"
echo "   tapir:    tapir recover -e 'add FILE; extract' (process start, TLS, catalog, frames over the wire)"
echo "   baseline: dd if=VTAPEFILE bs=32k skip=1 | zstd -dc | tar -xf - ./FILE"
"$BIN/restorebench" -tree "$tree" -tapir "$BIN/tapir" -work "$work" -runs "$runs" >"$work/out"
sed '$d' "$work/out"
out=$(tail -1 "$work/out")
tm=$(field tapir_median "$out") bm=$(field baseline_median "$out") ratio=$(field ratio "$out")
fail=0
if awk "BEGIN { exit !($tm < $GOAL_S) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
echo "   tapir median $tm s  $verdict (< $GOAL_S s)"
if awk "BEGIN { exit !($ratio >= $GOAL_RATIO) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
echo "   baseline median $bm s; ratio baseline/tapir = $ratio  $verdict (>= $GOAL_RATIO)"
exit $fail
