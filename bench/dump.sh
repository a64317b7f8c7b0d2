#!/usr/bin/env bash
# Dump speed and memory of tapir against `tar | zstd -1 -T0`.
#
#   bash bench/dump.sh [-size 1GiB] [-seed 1] [-runs 3] [-largest 1GiB] [-dir DIR]
#
# -size     bytes of the generated dump tree (small files + a few large ones)
# -largest  size of the single-file tree of the memory-vs-largest-file
#           check (compared with a single 100 MiB file); 0 skips the check
# -dir      dataset cache (default $TAPIR_BENCH_DIR or /tmp/tapir-bench)
#
# Exit status 0 when every check passed, 1 when one failed or on error.
# See bench/README.md for how to read the output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=1GiB seed=1 runs=3 largest=1GiB
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -seed|--seed) seed=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -largest|--largest) largest=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/dump.sh [-size 1GiB] [-seed 1] [-runs 3] [-largest 1GiB] [-dir DIR]" >&2; exit 2 ;;
  esac
done
LIMIT_MIB=128

need_tools
build_tools
tree=$(dataset "dump-$size-seed$seed" -size "$size" -seed "$seed")
read -r nfiles bytes < <(find "$tree" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { print n + 0, s + 0 }')
mib=$(calc %.1f "$bytes / 1048576")

# Warm the page cache (caches are never dropped) with one untimed baseline
# run, which also tells the size of its output. (A plain `tar -cf - DIR
# >/dev/null` would not do: GNU tar notices its archive is /dev/null and
# reads no file data.)
zbytes=$(tar -cf - -C "$tree" . | zstd -q -1 -T0 | wc -c)

baseline() { tar -cf - -C "$tree" . | zstd -q -1 -T0 >/dev/null; }

echo
echo "== dump speed: $tree"
echo "   $nfiles files, $mib MiB of file data; $(nproc) CPUs; $runs runs each, alternating"
echo "   baseline: tar -cf - -C DIR . | zstd -1 -T0 > /dev/null"
echo "   tapir:    dumpnull DIR  (client.Dump, zstd level 1, 1 MiB frames, payload to io.Discard)"
bt=() tt=() rss=()
for i in $(seq "$runs"); do
  t0; baseline; t1; bt+=("$ELAPSED")
  t0; out=$("$BIN/dumpnull" "$tree"); t1; tt+=("$ELAPSED")
  rss+=("$(field peak_rss_kib "$out")")
  printf '   run %d  baseline %7.3f s   tapir %7.3f s   tapir peak RSS %6.1f MiB\n' \
    "$i" "${bt[-1]}" "${tt[-1]}" "$(calc %.1f "${rss[-1]} / 1024")"
done
echo "   last tapir run: ${out#dumpnull: }"
printf '   output: baseline %.1f MiB, tapir %.1f MiB (payload incl. seek table)\n' \
  "$(calc %.1f "$zbytes / 1048576")" "$(calc %.1f "$(field payload_bytes "$out") / 1048576")"
bm=$(median "${bt[@]}") tm=$(median "${tt[@]}")
ratio=$(calc %.2f "$bm / $tm")
maxrss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
maxrss_mib=$(calc %.1f "$maxrss / 1024")
fail=0
printf '   baseline median %7.3f s  %7.1f MiB/s\n' "$bm" "$(calc %.1f "$mib / $bm")"
printf '   tapir    median %7.3f s  %7.1f MiB/s\n' "$tm" "$(calc %.1f "$mib / $tm")"
if awk "BEGIN { exit !($ratio >= 1.0) }"; then verdict=PASS; else verdict=FAIL; fail=1; fi
echo "   speed ratio baseline/tapir = $ratio  $verdict (>= 1.00: tapir at least as fast as tar | zstd)"
if [ "$maxrss" -lt $((LIMIT_MIB * 1024)) ]; then verdict=PASS; else verdict=FAIL; fail=1; fi
echo "   tapir peak RSS (max of $runs runs) = $maxrss_mib MiB  $verdict (< $LIMIT_MIB MiB)"

if [ "$largest" != 0 ]; then
  echo
  echo "== memory vs largest file: one 100MiB file, then one $largest file"
  small=$(dataset one-100MiB-seed$seed -size 0 -largest 100MiB -seed "$seed")
  big=$(dataset "one-$largest-seed$seed" -size 0 -largest "$largest" -seed "$seed")
  r=()
  for t in "$small" "$big"; do
    tar -cf - -C "$t" . | cat >/dev/null
    t0; out=$("$BIN/dumpnull" "$t"); t1
    r+=("$(field peak_rss_kib "$out")")
    printf '   one file of %6.1f MiB: tapir peak RSS %6.1f MiB   %7.3f s   %s\n' \
      "$(calc %.1f "$(field tar_bytes "$out") / 1048576")" "$(calc %.1f "${r[-1]} / 1024")" "$ELAPSED" "$t"
  done
  growth=$(calc %.1f "(${r[1]} - ${r[0]}) / 1024")
  if [ $((r[1] - r[0])) -le $((16 * 1024)) ] && [ "${r[1]}" -lt $((LIMIT_MIB * 1024)) ]; then verdict=PASS; else verdict=FAIL; fail=1; fi
  echo "   peak RSS growth from 100MiB to $largest file = $growth MiB  $verdict (<= 16 MiB, and < $LIMIT_MIB MiB)"
fi
echo
if [ $fail = 0 ]; then echo "dump.sh: PASS"; else echo "dump.sh: FAIL"; fi
exit $fail
