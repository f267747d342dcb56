#!/usr/bin/env bash
# The default grid three times and the fp8 grid once with heads_n's two MMA warpgroups (16-bit default
# at 32 query rows). Prebuild as for run-suite.sh. Results (JSON + PNG) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206c-grids}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
for run in ${RUNS:-1 2 3}; do
  for g in ${GRIDS:-default}; do
    timeout 150 python -m mlagen bench --grid $g --rep-ms 20 --out "$OUT" --name "h100-1206c-run$run-$g" 2>&1 \
      | grep -v Warning | tail -28
  done
done
[[ -n ${FP8:-1} ]] && timeout 150 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$OUT" --name h100-1206c-run1-fp8 \
  2>&1 | grep -v Warning | tail -30
