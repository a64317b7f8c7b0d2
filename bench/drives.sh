#!/usr/bin/env bash
# Several drives: the images of 4 DLEs flushed from the holding disk onto a
# library of FUSE st drives that each stream at a fixed rate (150 MiB/s, a
# slow LTO), with [changer] tapers = 1 and = 2, in one invocation,
# alternating. The images are put on the holding disk first by a night with
# no usable volume through a real `tapir client` agent (not measured).
#
#   bash bench/drives.sh [-size 256MiB] [-dles 4] [-runs 3] [-rate BYTES/S] [-dir DIR]
#
# Exit status 0 when two drives give >= 1.6x the throughput of one, and
# the drives were reported starved 0 s (the holding disk fed them); 1
# otherwise or on error. Root only (FUSE). See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=256MiB dles=4 runs=3 rate=$((150 << 20))
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -dles|--dles) dles=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -rate|--rate) rate=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/drives.sh [-size 256MiB] [-dles 4] [-runs 3] [-rate BYTES/S] [-dir DIR]" >&2; exit 2 ;;
  esac
done
need_tools
build_tools
(cd "$REPO" && go build -o "$BIN/" ./cmd/tapir)
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/drives.XXXXXX")
trap 'for m in "$work"/*/mnt*; do umount "$m" 2>/dev/null || true; done; rm -rf "$work" "$BIN"' EXIT

echo
echo "== several drives: $dles DLEs of $size flushed from the holding disk; FUSE st drives at $(calc %.0f "$rate / 1048576") MiB/s each; $(nproc) CPUs; $runs runs each, alternating"
echo "   baseline: [changer] tapers = 1 (one drive of the library)"
echo "   tapir:    [changer] tapers = 2 (two drives, each writing whole images to its own volume)"
out=$("$BIN/drivesbench" -tapir "$BIN/tapir" -work "$work" -size "$size" -dles "$dles" -runs "$runs" -rate "$rate")
echo "$out" | grep -v '^drivesbench:'
res=$(echo "$out" | grep '^drivesbench:')
one=$(field one_mibs "$res") two=$(field two_mibs "$res") ratio=$(field ratio "$res")
s1=$(field starved_one_s "$res") s2=$(field starved_two_s "$res") r1=$(field real_one_s "$res") r2=$(field real_two_s "$res")
fail=0
if awk "BEGIN { exit !($ratio >= 1.6) }"; then v=PASS; else v=FAIL; fail=1; fi
printf '   throughput while taping (bytes / the busiest drive'"'"'s time with volumes loaded): one drive %s MiB/s, two drives %s MiB/s (medians): ratio %s  %s (>= 1.60)\n' "$one" "$two" "$ratio" "$v"
printf '   over the whole flush (with its SHA-256 check of every image before taping): one drive %s MiB/s, two drives %s MiB/s: ratio %s  (informational)\n' \
  "$(field one_wall_mibs "$res")" "$(field two_wall_mibs "$res")" "$(field wall_ratio "$res")"
if awk "BEGIN { exit !($s1 < 0.05 && $s2 < 0.05) }"; then v=PASS; else v=FAIL; fail=1; fi
printf '   drive starvation in the report: one drive %s s, two drives %s s  %s (0.0 s: the holding disk fed them)\n' "$s1" "$s2" "$v"
printf '   the fake drives'"'"' own count of their buffer running dry mid-file: one drive %s s, two drives %s s (informational)\n' "$r1" "$r2"
printf '   peak RSS of the bench process (server side): %s KiB\n' "$(field peak_rss_kib "$res")"
echo
if [ $fail = 0 ]; then echo "drives.sh: PASS"; else echo "drives.sh: FAIL"; fi
exit $fail
