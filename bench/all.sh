#!/usr/bin/env bash
# Runs every benchmark: bash bench/all.sh [dump.sh flags...]
# The flags go to dump.sh; the others run with their defaults. All run even
# if one fails; the exit status is 1 if any failed.
set -euo pipefail
here=$(dirname "$0")
fail=0
bash "$here/dump.sh" "$@" || fail=1
bash "$here/estimate.sh" || fail=1
bash "$here/stall.sh" || fail=1
bash "$here/plan.sh" || fail=1
for b in restore.sh tape.sh night.sh ingest.sh drives.sh peer.sh resume.sh vault.sh; do
  [ -f "$here/$b" ] && { bash "$here/$b" || fail=1; }
done
# The catalog at scale, small here so that all.sh stays quick (catalog.sh
# alone defaults to 50 million rows).
ROWS=${CATALOG_ROWS:-2000000} bash "$here/catalog.sh" || fail=1
echo
if [ $fail = 0 ]; then echo "all.sh: PASS"; else echo "all.sh: FAIL (see above)"; fi
exit $fail
