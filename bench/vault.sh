#!/usr/bin/env bash
# Vault speed: tapir vault copying one level-0 image of a generated tree
# from its vtape onto a copy volume (a separate process: catalog, label,
# header check, write, SHA-256 against the catalog, the copy recorded)
# against the floor of copying the same bytes: dd of=COPY conv=fsync.
# The ratio of the medians tapir/baseline is the goal.
#
#   bash bench/vault.sh [-size 1GiB] [-seed 1] [-runs 3] [-dir DIR]
#
# Exit status 0 when the check passed, 1 when it failed or on error.
# See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=1GiB seed=1 runs=3
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -seed|--seed) seed=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/vault.sh [-size 1GiB] [-seed 1] [-runs 3] [-dir DIR]" >&2; exit 2 ;;
  esac
done
GOAL=2.0

need_tools
build_tools
(cd "$REPO" && go build -o "$BIN/tapir" ./cmd/tapir)
tree=$(dataset "dump-$size-seed$seed" -size "$size" -seed "$seed")
work=$(mktemp -d "${TMPDIR:-/tmp}/tapir-vault.XXXXXX")
trap 'rm -rf "$BIN" "$work"' EXIT

echo
echo "== vault copy: $tree"
echo "   tapir:    tapir vault -c CONFIG (one image, vtape to copy vtape)"
echo "   baseline: dd if=VTAPEFILE of=COPY bs=256k conv=fsync"
"$BIN/vaultbench" -tree "$tree" -tapir "$BIN/tapir" -work "$work" -runs "$runs" >"$work/out"
sed '$d' "$work/out"
out=$(tail -1 "$work/out")
tm=$(field tapir_median "$out") bm=$(field baseline_median "$out") ratio=$(field ratio "$out")
if awk "BEGIN { exit !($ratio <= $GOAL) }"; then verdict=PASS; fail=0; else verdict=FAIL; fail=1; fi
echo "   tapir median $tm s ($(field tapir_mib_s "$out") MiB/s), baseline median $bm s; ratio tapir/baseline = $ratio  $verdict (<= $GOAL)"
exit $fail
