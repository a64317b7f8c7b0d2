#!/usr/bin/env bash
# Resuming a cut dump (issue 18): a ~1 GiB dump cut at three random points
# of its stream and once corrupted (a flipped byte, which TLS rejects),
# through the server's test proxy, with real TLS, agent, holding disk and
# vtape. It runs server.TestResumeCutDump with TAPIR_RESUME_BYTES (go test
# runs it at 24 MiB), which checks that the image completes, restores with
# dd | zstd -dc | tar to the same tree and that tar -t reads it, and prints
# per cut the bytes that had reached the server and were received again
# (check: at most 2 frames of 1 MiB), and what the agent had written into
# the connection past the resume point (socket buffers included).
# Then the same with a client-side encrypted dump (TestResumeCutEncryptedDump:
# the agent's age file resumed at its announced checkpoints, restored with
# dd | age -d | zstd -dc | tar); ENCRYPTED=0 leaves it out.
#
#   bash bench/resume.sh            # 1 GiB
#   SIZE=$((256<<20)) bash bench/resume.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
need_tools
SIZE=${SIZE:-$((1<<30))}
log=$(mktemp "${TMPDIR:-/tmp}/tapir-resume.XXXXXX")
trap 'rm -f "$log"' EXIT
tests=TestResumeCutDump
if [ "${ENCRYPTED:-1}" != 0 ]; then
  tests="$tests TestResumeCutEncryptedDump"
fi
for test in $tests; do
  start=$EPOCHREALTIME
  set +e
  (cd "$REPO" && TAPIR_RESUME_BYTES=$SIZE go test ./server -run "^$test\$" -count=1 -v -timeout 60m) >"$log" 2>&1
  rc=$?
  set -e
  end=$EPOCHREALTIME
  what="a $((SIZE >> 20)) MiB dump"
  [ "$test" = TestResumeCutEncryptedDump ] && what="a $((SIZE >> 20)) MiB client-side encrypted dump"
  echo "resume.sh: $what cut 3 times and corrupted once ($(printf '%.1f' "$(echo "$end - $start" | bc)") s in all)"
  grep -E 'resume_test.go:[0-9]+: (seed|cut [0-9])' "$log" | sed -E 's/^ *resume_test.go:[0-9]+: /  /; s/: client agent .*(connection closed|tls: [a-zA-Z ]+|no progress).*$/  [\1]/'
  grep -E -- '--- (PASS|FAIL)' "$log" || true
  if [ $rc -ne 0 ]; then
    grep -vE 'handler.go|^time=' "$log" | tail -40
    echo "resume.sh: FAIL"
    exit 1
  fi
done
echo "resume.sh: PASS"
