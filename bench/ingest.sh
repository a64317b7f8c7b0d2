#!/usr/bin/env bash
# The server's check of a dump as it flows (issue 12: clean relative names,
# the tar stream matching the agent's index): server.BenchmarkIngest reads
# a 2,000-file zstd payload (about 40 MiB) with the check and, as the
# baseline in the same invocation, only decompresses it. Prints the
# medians and the ratio check / decode-only, and the check's throughput.
#
#   bash bench/ingest.sh [-runs 5] [-benchtime 5x]
#
# Exit status 0 when the check runs at 400 MB/s of payload or more (an
# LTO-9 drive's top speed: the check never holds up a night), 1 otherwise.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
. "$BENCH/lib.sh"

runs=5 benchtime=5x
while [ $# -gt 0 ]; do
  case $1 in
    -runs|--runs) runs=$2; shift 2 ;;
    -benchtime|--benchtime) benchtime=$2; shift 2 ;;
    *) echo "usage: bash bench/ingest.sh [-runs 5] [-benchtime 5x]" >&2; exit 2 ;;
  esac
done

echo "== ingest check: decompress + tar names + index match vs decompress only; $(nproc) CPUs; $runs runs of $benchtime"
out=$(cd "$REPO" && go test -run '^$' -bench '^BenchmarkIngest$' -benchtime "$benchtime" -count "$runs" ./server 2>&1) || {
  echo "$out"
  echo "ingest.sh: FAIL (the benchmark did not run)"
  exit 1
}
grep '^BenchmarkIngest' <<<"$out" | sed 's/^/   /'
col() { awk -v want="$1" -v unit="$2" '$1 ~ want { for (i = 1; i < NF; i++) if ($(i+1) == unit) print $i }' <<<"$out"; }
base=$(median $(col 'decode-only' ns/op))
check=$(median $(col '/check' ns/op))
mbs=$(median $(col '/check' MB/s))
ratio=$(awk -v a="$check" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
echo "   median decode-only $base ns/op, check $check ns/op: ratio check/decode-only = $ratio; check at $mbs MB/s of payload"
if awk -v m="$mbs" 'BEGIN { exit !(m >= 400) }'; then
  echo "ingest.sh: PASS"
else
  echo "ingest.sh: FAIL (under 400 MB/s)"
  exit 1
fi
