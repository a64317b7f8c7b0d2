# Shared by bench/dump.sh and bench/estimate.sh (sourced, not run).
# Requires bash 5 (EPOCHREALTIME).

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
CACHE=${TAPIR_BENCH_DIR:-/tmp/tapir-bench}

# need_tools installs, with apt-get and only when missing, what the
# baselines and the timing use: zstd, GNU tar, GNU find, /usr/bin/time.
need_tools() {
  local need=()
  command -v zstd >/dev/null 2>&1 || need+=(zstd)
  tar --version 2>/dev/null | grep -q 'GNU tar' || need+=(tar)
  find --version 2>/dev/null | grep -q 'GNU findutils' || need+=(findutils)
  [ -x /usr/bin/time ] || need+=(time)
  command -v age-keygen >/dev/null 2>&1 || need+=(age)
  if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}" >&2
    local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# build_tools builds bench/cmd/* into $BIN (a temporary directory removed
# on exit).
build_tools() {
  BIN=$(mktemp -d "${TMPDIR:-/tmp}/tapir-bench-bin.XXXXXX")
  trap 'rm -rf "$BIN"' EXIT
  (cd "$REPO" && go build -o "$BIN/" ./bench/cmd/...)
}

# dataset NAME GENDATA-FLAGS... prints the path of a tree made by gendata
# with those flags, under $CACHE/NAME/tree. The tree is reused when the
# marker $CACHE/NAME/params says it was made with the same flags by the
# same generator source; otherwise it is made again.
dataset() {
  local name=$1; shift
  local dir=$CACHE/$name
  local want
  want="gendata $* $(cat "$BENCH"/gen/gen.go | sha256sum | cut -c1-16)"
  if [ -d "$dir/tree" ] && [ "$(cat "$dir/params" 2>/dev/null)" = "$want" ]; then
    echo "bench: reusing $dir/tree ($want)" >&2
  else
    echo "bench: generating $dir/tree (gendata $*)" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    "$BIN/gendata" "$@" "$dir/tree" >&2
    echo "$want" >"$dir/params"
  fi
  echo "$dir/tree"
}

# Timing: t0; COMMAND; t1 sets $ELAPSED to the seconds between the calls.
t0() { T0=$EPOCHREALTIME; }
t1() { ELAPSED=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'); }

# median NUMBERS... prints their median.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# field NAME LINE prints the value of NAME=value in LINE.
field() { sed -n "s/.*[ :]$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# calc FORMAT ARGS... prints printf FORMAT of the awk expressions ARGS,
# e.g. calc %.2f "3 / 2".
calc() {
  local fmt=$1; shift
  local IFS=,
  awk "BEGIN { printf \"$fmt\", $* }"
}

# bench_args SCRIPT "$@" sets $runs and $benchtime from -runs N and
# -benchtime T (defaults: as set before the call).
bench_args() {
  local script=$1; shift
  while [ $# -gt 0 ]; do
    case $1 in
      -runs|--runs) runs=$2; shift 2 ;;
      -benchtime|--benchtime) benchtime=$2; shift 2 ;;
      *) echo "usage: bash bench/$script [-runs $runs] [-benchtime $benchtime]" >&2; exit 2 ;;
    esac
  done
}

# gobench SCRIPT NAME PKG runs the Go benchmark NAME of PKG $runs times for
# $benchtime, prints its result lines and keeps the output in $GOBENCH; when
# it does not run, prints why and exits 1.
gobench() {
  GOBENCH=$(cd "$REPO" && go test -run '^$' -bench "^$2\$" -benchtime "$benchtime" -count "$runs" "$3" 2>&1) || {
    echo "$GOBENCH"
    echo "$1: FAIL (the benchmark did not run)"
    exit 1
  }
  grep "^$2" <<<"$GOBENCH" | sed 's/^/   /'
}

# gocol PATTERN UNIT prints the values of UNIT ("ns/op", "MB/s") on the
# lines of $GOBENCH whose name matches PATTERN.
gocol() { awk -v want="$1" -v unit="$2" '$1 ~ want { for (i = 1; i < NF; i++) if ($(i+1) == unit) print $i }' <<<"$GOBENCH"; }
