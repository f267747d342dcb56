#!/usr/bin/env bash
# fp8 with more than 32 query rows per KV head on heads_n with two MMA warpgroups of 32 columns (registers
# 72/216), the planner's new default there: a 40-second probe, the GPU tests of the two suite variants
# whose default it is (h128_p64_fp8: two column blocks of 64; h32_kv2_p128_q4_causal_fp8: 64 rows of two KV
# heads, Q loaded without TMA) and their pinned plans (the split schedule, registers 56/224, column blocks
# of 32), memcheck and racecheck on the score-jump test of the second, then the fp8 grid once.
# Prebuild (no GPU; see the README beside this file): .gpu-cache-d
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT (~6 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206d}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
timeout 60 python tools/sweep_cell.py --h-q 128 --s-q 1 --s-k 8192 --cache fp8_e4m3 --rep-ms 5 --plan "" \
  --check-timeout 40 2>&1 | grep -v Warning | tail -2 | tee "$OUT/probe.txt"
grep -q "not timed" "$OUT/probe.txt" && { echo "the default fp8 kernel failed or hung: stopping"; exit 1; }
K="h128_p64_fp8 or h32_kv2_p128_q4_causal_fp8"
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-80} OUT=$OUT/suite timeout 240 bash tools/gpu-suite.sh -k "$K" 2>&1 | tail -4
SKIP_SUITE=1 SANITIZE=1 SANITIZE_TOOLS="memcheck racecheck" SANITIZE_K="scores_that_jump and h32_kv2_p128_q4_causal_fp8" \
  OUT=$OUT/sanitizer timeout 150 bash tools/gpu-suite.sh 2>&1 | grep -E "exited|passed|failed|ERROR|hazard" | head
timeout 200 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$OUT" --name h100-1206d-run1-fp8 2>&1 \
  | grep -v Warning | tail -30
