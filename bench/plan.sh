#!/usr/bin/env bash
# Planner speed: plans one night of 10,000 DLEs with 90 days of history
# each (planner.BenchmarkPlan10000) and judges the median against the goal
# of 1 s per plan.
#
#   bash bench/plan.sh [-runs 5] [-benchtime 3x]
#
# Exit status 0 when the median is under 1 s, 1 when not or on error.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")

runs=5 benchtime=3x
while [ $# -gt 0 ]; do
  case $1 in
    -runs|--runs) runs=$2; shift 2 ;;
    -benchtime|--benchtime) benchtime=$2; shift 2 ;;
    *) echo "usage: bash bench/plan.sh [-runs 5] [-benchtime 3x]" >&2; exit 2 ;;
  esac
done

echo "== planner speed: 10,000 DLEs, 90 days of history each; $(nproc) CPUs; $runs runs of $benchtime"
out=$(cd "$REPO" && go test -run '^$' -bench '^BenchmarkPlan10000$' -benchtime "$benchtime" -count "$runs" ./planner 2>&1) || {
  echo "$out"
  echo "plan.sh: FAIL (the benchmark did not run)"
  exit 1
}
grep '^BenchmarkPlan10000' <<<"$out" | sed 's/^/   /'
nsops=$(awk '/^BenchmarkPlan10000/ { for (i = 1; i < NF; i++) if ($(i+1) == "ns/op") print $i }' <<<"$out")
if [ -z "$nsops" ]; then
  echo "$out"
  echo "plan.sh: FAIL (no ns/op in the output)"
  exit 1
fi
median=$(sort -g <<<"$nsops" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
secs=$(awk -v n="$median" 'BEGIN { printf "%.3f", n / 1e9 }')
echo "   median: $median ns/op = $secs s per plan (goal: under 1 s)"
if awk -v n="$median" 'BEGIN { exit !(n < 1e9) }'; then
  echo "plan.sh: PASS"
else
  echo "plan.sh: FAIL ($secs s per plan, goal 1 s)"
  exit 1
fi
