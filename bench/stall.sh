#!/usr/bin/env bash
# Server memory while the drive stalls: one whole night of a 1 GiB tree
# (server in bench/cmd/stallnight, client agent in a separate `tapir client`
# process) with a drive that stalls for 30 s in the middle of an image,
# against the same night with a drive that never stalls, in the same
# invocation.
#
#   bash bench/stall.sh [-size 1GiB] [-stall 30s] [-holding 256MiB] [-dir DIR]
#
# Exit status 0 when the stalled night completed with every DLE on a volume,
# its dump phase lasted at least the stall (the dumpers waited), and the
# server's peak RSS stayed under 128 MiB and within 1.25x the night without
# a stall. See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=1GiB stall=30s hold=256MiB
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -stall|--stall) stall=$2; shift 2 ;;
    -holding|--holding) hold=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    *) echo "usage: bash bench/stall.sh [-size 1GiB] [-stall 30s] [-holding 256MiB] [-dir DIR]" >&2; exit 2 ;;
  esac
done
LIMIT_MIB=128

need_tools
build_tools
(cd "$REPO" && go build -o "$BIN/" ./cmd/tapir)
tree=$(dataset "dump-$size-seed1" -size "$size" -seed 1)
tar -cf - -C "$tree" . | cat >/dev/null   # warm the page cache

night() { # night STALL -> prints the stallnight line
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/tapir-stall.XXXXXX")
  "$BIN/stallnight" -tree "$tree" -work "$work" -tapir "$BIN/tapir" -stall "$1" -holding "$hold"
  rm -rf "$work"
}

echo
echo "== server memory under a stalled drive: $tree ($size), holding $hold"
echo "   baseline: the same night, the drive never stalls"
base=$(night 0)
echo "   baseline: ${base#stallnight: }"
st=$(night "$stall")
echo "   stalled:  ${st#stallnight: }"

brss=$(field peak_rss_kib "$base") srss=$(field peak_rss_kib "$st")
ratio=$(calc %.2f "$srss / $brss")
fail=0
dles=$(field dles "$st") ok=$(field ok "$st")
if [ "$dles" = "$ok" ]; then v=PASS; else v=FAIL; fail=1; fi
echo "   stalled night: $ok of $dles DLEs on a volume  $v"
stalled=$(field stalled_s "$st") dphase=$(field dump_phase_s "$st")
if awk "BEGIN { exit !($stalled > 0 && $dphase >= $stalled) }"; then v=PASS; else v=FAIL; fail=1; fi
echo "   drive stalled ${stalled}s, dump phase ${dphase}s (the dumpers waited for the drive)  $v"
if [ "$srss" -lt $((LIMIT_MIB * 1024)) ] && awk "BEGIN { exit !($ratio <= 1.25) }"; then v=PASS; else v=FAIL; fail=1; fi
printf '   peak RSS: stalled %.1f MiB, baseline %.1f MiB, ratio %s  %s (< %d MiB and <= 1.25)\n' \
  "$(calc %.1f "$srss / 1024")" "$(calc %.1f "$brss / 1024")" "$ratio" "$v" "$LIMIT_MIB"
echo
if [ $fail = 0 ]; then echo "stall.sh: PASS"; else echo "stall.sh: FAIL"; fi
exit $fail
