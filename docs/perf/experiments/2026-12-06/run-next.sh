#!/usr/bin/env bash
# heads_n in column blocks (2026-12-06): more than 32 query rows per KV head split into blocks of 32 over
# CTAs (plan block_m=32, m-blocks reading the same KV tiles side by side). One GPU call, from the project
# root after `. ./.devkit/prelude.sh`, kernels prebuilt into $MLAGEN_CACHE_DIR (prebuild.py beside this file:
#   the cells' default plans, their heads_n plans, the GPU suite's new plan variants):
#   1. tools/sweep_cell.py per cell: the default plan, heads_n, the default again (each first checked
#      against the float32 reference on a small NaN-poisoned problem), 8k and 16k, ceilings measured first;
#   2. the GPU suite's opt-in plan tests of the column-block variants (drawn problems, a 32k sequence,
#      maxima that jump mid-sequence).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-next-out-1206}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
sweep() {
  timeout 120 python tools/sweep_cell.py --s-k 8192 16384 --rep-ms 20 --plan "" --plan schedule=heads_n --plan "" "$@" \
    2>&1 | tee -a "$OUT/sweep.txt" | grep -E "^\[|ceilings|Error|error" | cut -c1-170
  echo "t=$(( $(date +%s) - t0 ))"
}
sweep --h-q 64 --s-q 1 --cache fp8_e4m3
sweep --h-q 32 --s-q 2 --cache fp8_e4m3
sweep --h-q 128 --s-q 1 --cache fp8_e4m3
sweep --h-q 64 --s-q 2 --cache fp8_e4m3
sweep --h-q 64 --s-q 1
sweep --h-q 128 --s-q 1
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-40} OUT=$OUT/suite timeout 240 bash tools/gpu-suite.sh -k "opt_in_plans and headsn" 2>&1 | tail -8
echo "t=$(( $(date +%s) - t0 ))"
