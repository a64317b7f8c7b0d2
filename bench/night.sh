#!/usr/bin/env bash
# The whole night, agent and server as separate processes, against
# `tar -cf - DIR | zstd -1 -T0 > FILE; sync` on the same tree.
#
#   bash bench/night.sh [-size 512MiB] [-seed 1] [-runs 3] [-dir DIR] [-profile DIR]
#
# A `tapir client` agent (loopback, mutual TLS with a CA made by `tapir ca
# init` / `tapir ca issue`) and `tapir dump -c FILE` (one DLE: the tree;
# holding disk, then a disk changer of vtapes). Each run, alternating: the
# baseline; a level-0 night on a fresh site; then, after touching 1 % of the
# files, a level-1 night of the same site; then a level-0 night on a fresh
# site whose dumptype encrypts on the client (encrypt = "client", one age
# recipient made by age-keygen), against the plain level-0 night.
#
# -profile DIR  writes CPU profiles (TAPIR_CPUPROFILE): DIR/agent.prof (the
#               agent's whole life), DIR/server-l0.prof and DIR/server-l1.prof
#               (the last run's nights); read them with
#               go tool pprof -top BINARY FILE (the binary is DIR/tapir).
#
# Exit status 0 when every goal was met (night <= 1.3x the baseline, level 1
# <= 1 s, encrypted night <= 1.15x the plain one, peak RSS of agent and
# server < 128 MiB), 1 otherwise or on error.
# See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

size=512MiB seed=1 runs=3 prof=""
while [ $# -gt 0 ]; do
  case $1 in
    -size|--size) size=$2; shift 2 ;;
    -seed|--seed) seed=$2; shift 2 ;;
    -runs|--runs) runs=$2; shift 2 ;;
    -dir|--dir) CACHE=$2; shift 2 ;;
    -profile|--profile) prof=$2; shift 2 ;;
    *) echo "usage: bash bench/night.sh [-size 512MiB] [-seed 1] [-runs 3] [-dir DIR] [-profile DIR]" >&2; exit 2 ;;
  esac
done
LIMIT_MIB=128 GOAL_RATIO=1.3 GOAL_L1=1.0 GOAL_ENC=1.15

need_tools
build_tools
(cd "$REPO" && go build -o "$BIN/" ./cmd/tapir)
T=$BIN/tapir
if [ -n "$prof" ]; then
  mkdir -p "$prof"
  prof=$(cd "$prof" && pwd)
  cp "$T" "$prof/tapir"
fi
tree=$(dataset "dump-$size-seed$seed" -size "$size" -seed "$seed")
read -r nfiles bytes < <(find "$tree" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %d\n", n, s }')
mib=$(calc %.1f "$bytes / 1048576")

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/tapir-night.XXXXXX")
AGENT_PID=""
cleanup() {
  if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK" "$BIN"
}
trap cleanup EXIT

# The CA, the server's certificate (backup) and the client's (localhost).
"$T" ca init --dir "$WORK/tls" --org bench --server backup >/dev/null
"$T" ca issue --dir "$WORK/tls" localhost >/dev/null

# The agent: a separate process for the whole benchmark, on a free port
# that it names in its log.
(
  [ -z "$prof" ] || export TAPIR_CPUPROFILE=$prof/agent.prof
  exec "$T" client --listen 127.0.0.1:0 --ca "$WORK/tls/ca.crt" --cert "$WORK/tls/localhost.crt" \
    --key "$WORK/tls/localhost.key" --state-dir "$WORK/agent-state" --nice 0 --ionice 0 --log-level info \
    2>"$WORK/agent.log"
) &
AGENT_PID=$!
addr=""
for _ in $(seq 200); do
  addr=$(sed -n 's/.*client agent listening.* addr=\([^ ]*\).*/\1/p' "$WORK/agent.log")
  [ -n "$addr" ] && break
  kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "night.sh: the agent does not say where it listens" >&2; exit 1; }

# The key of the encrypted nights (the server gets only its recipient).
age-keygen -o "$WORK/night.key" 2>/dev/null
recipient=$(age-keygen -y "$WORK/night.key")

# site [encrypt]: a fresh configuration, holding disk and vtapes under
# $WORK/site; with an argument, the DLE's dumptype encrypts on the client.
site() {
  local enc=${1:-}
  rm -rf "$WORK/site"
  mkdir -p "$WORK/site/vtapes" "$WORK/site/holding"
  cat >"$WORK/site/tapir.toml" <<EOF
org = "bench"
statedir = "$WORK/site/state"
dumpcycle = 7
tapecycle = 1
[tls]
ca = "$WORK/tls/ca.crt"
cert = "$WORK/tls/backup.crt"
key = "$WORK/tls/backup.key"
[changer]
type = "disk"
path = "$WORK/site/vtapes"
slots = 10
tapetype = "big"
[tapetype.big]
length = "100 GiB"
blocksize = "256 KiB"
[[holding]]
path = "$WORK/site/holding"
use = "$((4 * bytes + (1 << 30)))"
[host.localhost]
address = "$addr"
[[dle]]
host = "localhost"
path = "$tree"
EOF
  if [ -n "$enc" ]; then
    printf '[dumptype.default]\nencrypt = "client"\nrecipients = ["%s"]\n' "$recipient" >>"$WORK/site/tapir.toml"
  fi
}

# agent_cpu prints the agent's CPU seconds so far (user + system).
TCK=$(getconf CLK_TCK)
agent_cpu() { awk -v t="$TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$AGENT_PID/stat"; }

# night PROFILE: one `tapir dump`; sets ELAPSED, NIGHT (the JSON report),
# SRSS (the server's peak RSS in KiB, from /usr/bin/time -v), SCPU and ACPU
# (CPU seconds of the server and of the agent during the night).
night() {
  local p=$1 a0
  a0=$(agent_cpu)
  t0
  NIGHT=$( ( [ -z "$p" ] || export TAPIR_CPUPROFILE=$p
    exec /usr/bin/time -v -o "$WORK/time.txt" "$T" dump -c "$WORK/site/tapir.toml" --format json --log-level warn ) ) || {
    echo "night.sh: tapir dump failed" >&2; echo "$NIGHT" >&2; exit 1; }
  t1
  ACPU=$(calc %.2f "$(agent_cpu) - $a0")
  SRSS=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$WORK/time.txt")
  SCPU=$(awk -F': *' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$WORK/time.txt")
  if ! grep -q '"status": *"ok"' <<<"$NIGHT"; then
    echo "night.sh: the night did not put the DLE on a volume" >&2; echo "$NIGHT" >&2; exit 1
  fi
}
jnum() { grep -o "\"$1\": *[0-9.]*" <<<"$2" | head -1 | sed 's/.*: *//'; }

# touch_one_percent: every 100th file of the tree (in name order) gets a
# new mtime: the level-1 night dumps about 1 % of the files. The bytes stay
# the same, so the cached dataset stays valid.
touch_one_percent() {
  find "$tree" -type f | sort | awk 'NR % 100 == 0' | xargs -r touch
}

baseline() { tar -cf - -C "$tree" . | zstd -q -1 -T0 >"$WORK/baseline.tar.zst"; sync; }
# timed_baseline: baseline, setting ELAPSED and BCPU (CPU seconds of tar and zstd).
timed_baseline() {
  t0
  /usr/bin/time -o "$WORK/btime.txt" -f '%U %S' bash -c 'tar -cf - -C "$1" . | zstd -q -1 -T0 >"$2"; sync' _ "$tree" "$WORK/baseline.tar.zst"
  t1
  BCPU=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/btime.txt")
}

# Warm the page cache (caches are never dropped) and learn the baseline's size.
baseline
zbytes=$(stat -c %s "$WORK/baseline.tar.zst")

echo
echo "== night: $tree"
echo "   $nfiles files, $mib MiB of file data; $(nproc) CPUs (load average now: $(cut -d' ' -f1-3 /proc/loadavg)); $runs runs each, alternating"
echo "   baseline: tar -cf - -C DIR . | zstd -1 -T0 > FILE; sync"
echo "   tapir:    tapir client (separate process, TLS on loopback) + tapir dump -c FILE (holding, then vtape)"
bt=() tt=() lt=() et=() srss=() bc=() tc=()
for i in $(seq "$runs"); do
  rm -f "$WORK/baseline.tar.zst"; sync
  timed_baseline; bt+=("$ELAPSED") bc+=("$BCPU")
  site
  p0="" p1=""
  if [ -n "$prof" ] && [ "$i" = "$runs" ]; then p0=$prof/server-l0.prof p1=$prof/server-l1.prof; fi
  night "$p0"; tt+=("$ELAPSED"); srss+=("$SRSS"); tc+=("$(calc %.2f "$SCPU + $ACPU")")
  cpu0="agent $ACPU + server $SCPU"
  lvl=$(jnum level "$NIGHT") dump_s=$(jnum dump_seconds "$NIGHT") tape_s=$(jnum tape_seconds "$NIGHT")
  [ "$lvl" = 0 ] || { echo "night.sh: the first night was level $lvl, not 0" >&2; exit 1; }
  touch_one_percent
  night "$p1"; lt+=("$ELAPSED"); srss+=("$SRSS")
  l1=$(jnum level "$NIGHT")
  [ "$l1" = 1 ] || { echo "night.sh: the night after the 1 % change was level $l1, not 1" >&2; exit 1; }
  site encrypt
  night ""; et+=("$ELAPSED"); srss+=("$SRSS")
  [ "$(jnum level "$NIGHT")" = 0 ] || { echo "night.sh: the encrypted night was not level 0" >&2; exit 1; }
  cpue="agent $ACPU + server $SCPU"
  printf '   run %d  baseline %7.3f s (CPU %s s)   tapir level 0 %7.3f s (dump %s s, tape %s s; CPU %s s)   level 1 %6.3f s   encrypted level 0 %7.3f s (CPU %s s)   server peak RSS %6.1f MiB\n' \
    "$i" "${bt[-1]}" "${bc[-1]}" "${tt[-1]}" "$dump_s" "$tape_s" "$cpu0" "${lt[-1]}" "${et[-1]}" "$cpue" "$(calc %.1f "${srss[-3]} / 1024")"
done
arss=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$AGENT_PID/status")
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""

bm=$(median "${bt[@]}") tm=$(median "${tt[@]}") lm=$(median "${lt[@]}") em=$(median "${et[@]}")
ratio=$(calc %.2f "$tm / $bm")
maxsrss=$(printf '%s\n' "${srss[@]}" | sort -n | tail -1)
printf '   output: baseline %.1f MiB\n' "$(calc %.1f "$zbytes / 1048576")"
printf '   baseline median       %7.3f s  %7.1f MiB/s\n' "$bm" "$(calc %.1f "$mib / $bm")"
printf '   tapir level 0 median  %7.3f s  %7.1f MiB/s\n' "$tm" "$(calc %.1f "$mib / $tm")"
printf '   tapir level 1 median  %7.3f s\n' "$lm"
printf '   encrypted level 0 median %7.3f s  %7.1f MiB/s\n' "$em" "$(calc %.1f "$mib / $em")"
bcm=$(median "${bc[@]}") tcm=$(median "${tc[@]}")
printf '   CPU (user + system) median: baseline %.2f s, tapir level 0 %.2f s (agent + server), ratio %s\n' \
  "$bcm" "$tcm" "$(calc %.2f "$tcm / $bcm")"
fail=0
if awk "BEGIN { exit !($ratio <= $GOAL_RATIO) }"; then v=PASS; else v=FAIL; fail=1; fi
echo "   night ratio tapir/baseline = $ratio  $v (<= $GOAL_RATIO)"
if awk "BEGIN { exit !($lm <= $GOAL_L1) }"; then v=PASS; else v=FAIL; fail=1; fi
echo "   level 1 after 1 % change = $lm s  $v (<= $GOAL_L1 s)"
eratio=$(calc %.2f "$em / $tm")
if awk "BEGIN { exit !($eratio <= $GOAL_ENC) }"; then v=PASS; else v=FAIL; fail=1; fi
echo "   encrypted night / plain night = $eratio  $v (<= $GOAL_ENC)"
if [ "$arss" -lt $((LIMIT_MIB * 1024)) ]; then v=PASS; else v=FAIL; fail=1; fi
echo "   agent peak RSS (VmHWM, whole benchmark) = $(calc %.1f "$arss / 1024") MiB  $v (< $LIMIT_MIB MiB)"
if [ "$maxsrss" -lt $((LIMIT_MIB * 1024)) ]; then v=PASS; else v=FAIL; fail=1; fi
echo "   server peak RSS (max of $((3 * runs)) nights) = $(calc %.1f "$maxsrss / 1024") MiB  $v (< $LIMIT_MIB MiB)"
if [ -n "$prof" ]; then
  echo "   profiles: $prof/{agent,server-l0,server-l1}.prof (go tool pprof -top $prof/tapir FILE)"
fi
echo
if [ $fail = 0 ]; then echo "night.sh: PASS"; else echo "night.sh: FAIL"; fi
exit $fail
