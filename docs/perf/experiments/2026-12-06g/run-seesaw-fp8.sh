#!/usr/bin/env bash
# The seesaw over fp8 caches (schedule=seesaw, three producer warps converting each latent chunk in
# place): first the GPU tests of its plan variants (drawn problems, long context, score jumps, blocks
# outside the fast dequantization range), then per fp8 grid cell (batch 128, page 64, 4k-16k) the
# planner's plan against the seesaw (tools/sweep_cell.py: each checked against the float32 reference
# first, ceilings measured in the same process), then the bf16-cache twins' planner plans at h_q 16 and
# 32, s_q 1 (issue 7's tokens-per-second cells). Kernels prebuilt with prebuild.py into .gpu-cache-s8.
# Results under $OUT (~6 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206g}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-s8}
MLAGEN_GPU_EXAMPLES=40 OUT=$OUT/suite timeout 170 bash tools/gpu-suite.sh -k "fp8_seesaw" 2>&1 | tail -4
for cell in "128 1" "64 1" "128 2" "64 2" "32 2" "32 1" "16 1" "16 2"; do
  set -- $cell
  timeout 60 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 40 --plan "" \
    --plan schedule=seesaw --h-q "$1" --s-q "$2" --s-k 4096 8192 16384 2>&1 | grep -v Warning \
    | tee "$OUT/sweep-fp8-h$1-q$2.txt" | tail -6
done
for h in 16 32; do
  timeout 50 python tools/sweep_cell.py --rep-ms 20 --check-timeout 40 --plan "" --h-q "$h" --s-q 1 \
    --s-k 4096 8192 16384 2>&1 | grep -v Warning | tee "$OUT/sweep-bf16-h$h-q1.txt" | tail -3
done
