#!/usr/bin/env bash
# Runs both benchmarks: bash bench/all.sh [dump.sh flags...]
# The flags go to dump.sh; estimate.sh runs with its defaults. Both run
# even if the first fails; the exit status is 1 if either failed.
set -euo pipefail
here=$(dirname "$0")
fail=0
bash "$here/dump.sh" "$@" || fail=1
bash "$here/estimate.sh" || fail=1
echo
if [ $fail = 0 ]; then echo "all.sh: PASS"; else echo "all.sh: FAIL (see above)"; fi
exit $fail
