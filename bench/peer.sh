#!/usr/bin/env bash
# Restore from anywhere (issue 17): indexd.BenchmarkPeerRestore restores a
# whole 64 MiB image through the shell from the server whose vtape holds it
# (local, the baseline) and through another server of the same catalog,
# which fetches the frames from the first over mutual TLS (peer). Prints
# the medians, the ratio peer / local and the peer's throughput.
#
#   bash bench/peer.sh [-runs 5] [-benchtime 3x]
#
# Here all three parties (shell, asking server, owning server) share the
# machine's CPUs, so the extra hop's TLS and copies cost the same CPUs as
# the rest; between machines they are the owner's. Exit status 0 when the
# peer restore takes at most 2.5 times the local one, 1 otherwise.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
. "$BENCH/lib.sh"

runs=5 benchtime=3x
bench_args peer.sh "$@"

echo "== restore from anywhere: peer fetch vs local read; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $runs runs of $benchtime"
gobench peer.sh BenchmarkPeerRestore ./index/indexd
local_ns=$(median $(gocol '/local' ns/op))
peer_ns=$(median $(gocol '/peer' ns/op))
local_mbs=$(median $(gocol '/local' MB/s))
peer_mbs=$(median $(gocol '/peer' MB/s))
ratio=$(awk -v a="$peer_ns" -v b="$local_ns" 'BEGIN { printf "%.2f", a / b }')
echo "   median local $local_ns ns/op ($local_mbs MB/s), peer $peer_ns ns/op ($peer_mbs MB/s): ratio peer/local = $ratio"
if awk -v r="$ratio" 'BEGIN { exit !(r <= 2.5) }'; then
  echo "peer.sh: PASS"
else
  echo "peer.sh: FAIL (the peer restore takes more than 2.5 times the local one)"
  exit 1
fi
