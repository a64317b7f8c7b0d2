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
bench_args ingest.sh "$@"

echo "== ingest check: decompress + tar names + index match vs decompress only; $(nproc) CPUs; $runs runs of $benchtime"
gobench ingest.sh BenchmarkIngest ./server
base=$(median $(gocol 'decode-only' ns/op))
check=$(median $(gocol '/check' ns/op))
mbs=$(median $(gocol '/check' MB/s))
ratio=$(awk -v a="$check" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
echo "   median decode-only $base ns/op, check $check ns/op: ratio check/decode-only = $ratio; check at $mbs MB/s of payload"
if awk -v m="$mbs" 'BEGIN { exit !(m >= 400) }'; then
  echo "ingest.sh: PASS"
else
  echo "ingest.sh: FAIL (under 400 MB/s)"
  exit 1
fi
