#!/usr/bin/env bash
# The catalog at scale (issue 17): bench/cmd/catalogscale generates a DLE's
# dump cycle of ROWS file-index rows (fulls and level-1 incrementals, deep
# trees, one 100,000-entry directory) into a new catalog and measures the
# ingest rate, the bytes per file version on disk, ls of the 100,000-entry
# directory through a real index server over mutual TLS (median of RUNS, a
# new session each) and find of a name across all dumps of the DLE
# (FindVersions, median). SQLite always; PostgreSQL too when
# TAPIR_BENCH_POSTGRES names a server (a DSN; a database is created and
# dropped there) or scripts/pg can start a private one.
#
#   ROWS=50000000 PG_ROWS=10000000 RUNS=11 bash bench/catalog.sh
#
# Goals: <= 60 B per file version (SQLite; Bareos documents 250-350 B),
# ls <= 100 ms, find <= 1 s (both backends). The baseline, in the same
# invocation: ListDir of the directory in the newest full, the index rows
# of one image read straight from the catalog, against the view's ls
# (every image of the chain, deletions applied, over TLS). Exit status 0
# when every goal is met, 1 otherwise.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
. "$BENCH/lib.sh"

ROWS=${ROWS:-50000000}
PG_ROWS=${PG_ROWS:-$((ROWS < 10000000 ? ROWS : 10000000))}
RUNS=${RUNS:-11}
build_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/tapir-catalog-bench.XXXXXX")
pgdir=""
cleanup() {
  [ -n "$pgdir" ] && bash "$REPO/scripts/pg" stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$work" "$BIN"
}
trap cleanup EXIT
avail=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
need=$((ROWS / 1024 * 200 / 1024 + 1)) # MiB, at 200 B a row
if [ "$((avail / 1024))" -lt "$need" ]; then
  echo "catalog.sh: FAIL ($work has $((avail / 1024)) MiB free; $ROWS rows need about $need MiB)"
  exit 1
fi

fail=0
check() { # NAME VALUE OP LIMIT UNIT
  if awk -v v="$2" -v l="$4" "BEGIN { exit !(v $3 l) }"; then
    echo "   $1: $2 $5 (goal $3 $4 $5): PASS"
  else
    echo "   $1: $2 $5 (goal $3 $4 $5): FAIL"
    fail=1
  fi
}

bench() { # BACKEND DB ROWS
  echo "== catalog at scale, $1: $3 rows; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs"
  local out
  out=$("$BIN/catalogscale" -db "$2" -rows "$3" -runs "$RUNS" -work "$work" | tee >(cat >&2) | grep '^catalogscale:') || {
    echo "catalog.sh: FAIL (catalogscale on $1 did not finish)"
    fail=1
    return
  }
  local rate bpv ls base find pat
  rate=$(field ingest_rows_per_s "$out")
  bpv=$(field bytes_per_version "$out")
  ls=$(field ls_median_ms "$out")
  base=$(field ls_baseline_ms "$out")
  find=$(field find_median_ms "$out")
  pat=$(field find_pattern_median_ms "$out")
  echo "   ingest: $rate rows/s; listings recorded in $(field listings_s "$out") s beside $(field ingest_s "$out") s of index"
  if [ "$1" = sqlite ]; then
    check "bytes per file version" "$bpv" "<=" 60 B
  else
    echo "   bytes per file version: $bpv B (no goal on PostgreSQL)"
  fi
  echo "   ratio Bareos (250 B) / tapir = $(calc %.2f "250 / $bpv")"
  check "ls of $(field ls_entries "$out") entries through the index server, median" "$ls" "<=" 100 ms
  echo "   ratio ls / ListDir of the full (baseline $base ms) = $(calc %.2f "$ls / $base")"
  check "find of a name across all dumps, median" "$find" "<=" 1000 ms
  echo "   find of a 6-character prefix pattern (1,000 versions): median $pat ms"
}

bench sqlite "$work/catalog.db" "$ROWS"
rm -f "$work"/catalog.db*

dsn=${TAPIR_BENCH_POSTGRES:-}
if [ -z "$dsn" ] && [ -f "$REPO/scripts/pg" ]; then
  pgdir=$work/pg
  mkdir -p "$pgdir"
  chmod 755 "$work" "$pgdir"
  dsn=$(bash "$REPO/scripts/pg" start "$pgdir" 2>/dev/null) || { echo "   (no PostgreSQL: scripts/pg could not start one; skipped)"; dsn=""; pgdir=""; }
fi
if [ -n "$dsn" ]; then
  bench postgres "$dsn" "$PG_ROWS"
fi
echo
if [ $fail = 0 ]; then echo "catalog.sh: PASS"; else echo "catalog.sh: FAIL (see above)"; fi
exit $fail
