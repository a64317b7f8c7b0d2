#!/usr/bin/env bash
# Restore speed, three benchmarks on one generated tree dumped at level 0:
#
#  single: one small file through the index server (tapir recover -e
#          'add FILE; extract') against dd | zstd -dc | tar -x of the image;
#  all:    the whole DLE straight from the catalog (tapir recover -c CONFIG
#          --all) against dd | zstd -dc | tar -xpf - of the same vtape file
#          into the same disk;
#  shell:  the whole DLE through the index server (tapir recover -e
#          'add .; extract') against both of those, in one invocation;
#  crypt:  the same image encrypted with age (client-side encryption)
#          against plain: tapir's single-file restore (through the index
#          server, --identity) and its whole-DLE restore (-c --all
#          --identity), each timed on a plain and on an encrypted image in
#          this invocation; the ratios encrypted/plain of the medians are
#          the goals (single file <= 2, whole DLE <= 1.15).
#
#   bash bench/restore.sh [-what single|all|shell|crypt|both|every] [-size 3GiB] [-seed 1] [-runs 3] [-dir DIR]
#
# -what  both is single and all; every (the default) is all four
#
# -size  bytes of the generated tree dumped at level 0 (half of it is
#        random: 3 GiB of files make an image of about 2 GiB)
# -dir   dataset cache (default $TAPIR_BENCH_DIR or /tmp/tapir-bench)
#
# Exit status 0 when every check passed, 1 when one failed or on error.
# See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=3GiB seed=1 runs=3 what=every
while [ $# -gt 0 ]; do
  case $1 in
    -what|--what) what=$2; shift 2 ;;
    -size|--size) size=$2; shift 2 ;;
    -seed|--seed) seed=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/restore.sh [-what single|all|shell|crypt|both|every] [-size 3GiB] [-seed 1] [-runs 3] [-dir DIR]" >&2; exit 2 ;;
  esac
done
case $what in
  single|all|shell|crypt) parts=$what ;;
  both) parts="single all" ;;
  every) parts="single all shell crypt" ;;
  *) echo "restore.sh: -what is single, all, shell, crypt, both or every, not $what" >&2; exit 2 ;;
esac
want() { [[ " $parts " == *" $1 "* ]]; }
GOAL_S=0.5 GOAL_RATIO=20     # single file
GOAL_ALL=1.0 GOAL_RSS_KIB=131072  # whole DLE: tapir/tar ratio, peak RSS
GOAL_SHELL=1.0 GOAL_SHELL_ALL=1.25  # shell's whole DLE: shell/tar, shell/--all (see bench/README.md)
GOAL_CRYPT_SINGLE=2.0 GOAL_CRYPT_ALL=1.15  # encrypted/plain: single file, whole DLE

need_tools
if want crypt && ! command -v age >/dev/null 2>&1; then
  echo "bench: installing age" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq age >/dev/null
fi
build_tools
(cd "$REPO" && go build -o "$BIN/tapir" ./cmd/tapir)
tree=$(dataset "dump-$size-seed$seed" -size "$size" -seed "$seed")
work=$(mktemp -d "${TMPDIR:-/tmp}/tapir-restore.XXXXXX")
trap 'rm -rf "$BIN" "$work"' EXIT
fail=0

if want single; then
  echo
  echo "== single-file restore: $tree"
  echo "   tapir:    tapir recover -e 'add FILE; extract' (process start, TLS, catalog, frames over the wire)"
  echo "   baseline: dd if=VTAPEFILE bs=32k skip=1 | zstd -dc | tar -xf - ./FILE"
  mkdir -p "$work/single"
  "$BIN/restorebench" -tree "$tree" -tapir "$BIN/tapir" -work "$work/single" -runs "$runs" >"$work/out"
  sed '$d' "$work/out"
  out=$(tail -1 "$work/out")
  tm=$(field tapir_median "$out") bm=$(field baseline_median "$out") ratio=$(field ratio "$out")
  if awk "BEGIN { exit !($tm < $GOAL_S) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   tapir median $tm s  $verdict (< $GOAL_S s)"
  if awk "BEGIN { exit !($ratio >= $GOAL_RATIO) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   baseline median $bm s; ratio baseline/tapir = $ratio  $verdict (>= $GOAL_RATIO)"
fi

if want all; then
  echo
  echo "== whole-DLE restore: $tree"
  echo "   tapir:    tapir recover -c CONFIG --host H --path P --all --to DIR (catalog, vtape, decompression, extraction)"
  echo "   baseline: dd if=VTAPEFILE bs=256k iflag=skip_bytes skip=32768 | zstd -dc | tar -xpf - -C DIR"
  mkdir -p "$work/all"
  "$BIN/restorebench" -all -tree "$tree" -tapir "$BIN/tapir" -work "$work/all" -runs "$runs" >"$work/out"
  sed '$d' "$work/out"
  out=$(tail -1 "$work/out")
  tm=$(field tapir_median "$out") bm=$(field baseline_median "$out") ratio=$(field ratio "$out") rss=$(field peak_rss_kib "$out")
  if awk "BEGIN { exit !($ratio <= $GOAL_ALL) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   tapir median $tm s, baseline median $bm s; ratio tapir/baseline = $ratio  $verdict (<= $GOAL_ALL)"
  if [ "$rss" -lt "$GOAL_RSS_KIB" ]; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   tapir recover peak RSS $rss KiB  $verdict (< $GOAL_RSS_KIB KiB)"
fi
if want shell; then
  echo
  echo "== whole-DLE restore by the recover shell: $tree"
  echo "   tapir shell: tapir recover --server ... -e 'add .; extract' (index server in the benchmark process: plan, frames over TLS, decompression and extraction in the shell)"
  echo "   tapir --all: tapir recover -c CONFIG --host H --path P --all --to DIR"
  echo "   baseline:    dd if=VTAPEFILE bs=256k iflag=skip_bytes skip=32768 | zstd -dc | tar -xpf - -C DIR"
  mkdir -p "$work/shell"
  "$BIN/restorebench" -shell -tree "$tree" -tapir "$BIN/tapir" -work "$work/shell" -runs "$runs" >"$work/out"
  sed '$d' "$work/out"
  out=$(tail -1 "$work/out")
  sm=$(field shell_median "$out") am=$(field all_median "$out") bm=$(field baseline_median "$out")
  rb=$(field ratio_baseline "$out") ra=$(field ratio_all "$out") rss=$(field shell_rss_kib "$out")
  echo "   medians: shell $sm s, --all $am s, baseline $bm s; CPU of the tapir process: shell $(field shell_cpu "$out") s, --all $(field all_cpu "$out") s"
  if awk "BEGIN { exit !($rb <= $GOAL_SHELL) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   ratio shell/baseline = $rb  $verdict (<= $GOAL_SHELL)"
  if awk "BEGIN { exit !($ra <= $GOAL_SHELL_ALL) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   ratio shell/--all = $ra  $verdict (<= $GOAL_SHELL_ALL)"
  if [ "$rss" -lt "$GOAL_RSS_KIB" ]; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   tapir recover shell peak RSS $rss KiB  $verdict (< $GOAL_RSS_KIB KiB)"
fi
if want crypt; then
  echo
  echo "== encrypted (age) against plain: $tree"
  echo "   single: tapir recover -e 'add FILE; extract' [--identity KEY] (index server sends the age chunks of the file's frames)"
  echo "   all:    tapir recover -c CONFIG --host H --path P --all --to DIR [--identity KEY]"
  for kind in single all; do
    flag=""; [ $kind = all ] && flag=-all
    for enc in plain encrypted; do
      eflag=""; [ $enc = encrypted ] && eflag=-encrypt
      mkdir -p "$work/crypt-$kind-$enc"
      echo "   -- $kind, $enc image"
      "$BIN/restorebench" $flag $eflag -tree "$tree" -tapir "$BIN/tapir" -work "$work/crypt-$kind-$enc" -runs "$runs" >"$work/out"
      sed '$d' "$work/out"
      out=$(tail -1 "$work/out")
      eval "m_${kind}_$enc=$(field tapir_median "$out")"
      echo "      tapir median $(field tapir_median "$out") s (baseline $(field baseline_median "$out") s)"
      rm -rf "$work/crypt-$kind-$enc"
    done
  done
  rs=$(awk "BEGIN { printf \"%.3f\", $m_single_encrypted / $m_single_plain }")
  ra=$(awk "BEGIN { printf \"%.3f\", $m_all_encrypted / $m_all_plain }")
  if awk "BEGIN { exit !($rs <= $GOAL_CRYPT_SINGLE) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   single file: encrypted $m_single_encrypted s, plain $m_single_plain s; ratio encrypted/plain = $rs  $verdict (<= $GOAL_CRYPT_SINGLE)"
  if awk "BEGIN { exit !($ra <= $GOAL_CRYPT_ALL) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   whole DLE:   encrypted $m_all_encrypted s, plain $m_all_plain s; ratio encrypted/plain = $ra  $verdict (<= $GOAL_CRYPT_ALL)"
fi
exit $fail
