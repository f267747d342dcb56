#!/usr/bin/env bash
# heads_n on two MMA warpgroups of 32 columns (64 query rows per CTA; one producer warpgroup, three
# converting warps) for issue 7's 64-row fp8 cells, which run the split schedule at 0.33-0.41:
# headsn-wide.patch applied to this (disposable) checkout, then
#   1. the GPU suite's heads_n plan variants and the split-count test pinned to heads_n; memcheck and
#      racecheck on the latter (17 parts);
#   2. tools/sweep_cell.py: default plan, two warpgroups of 32 at registers 56/224 and 72/216, default again.
# First a 40-second probe of one wide kernel: on 2026-12-06 the first build of this layout (64/224,
# over the CTA's 64,512-register launch allocation) hung in setmaxnreg and cost a whole 600-second call.
# Prebuild: bash docs/perf/experiments/2026-12-06c/prebuild_wide.sh .gpu-cache-wide
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206c-wide}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
patch -s -p1 < docs/perf/experiments/2026-12-06c/headsn-wide.patch || exit 1
WIDE="schedule=heads_n,consumer_wgs=2"
timeout 40 python tools/sweep_cell.py --h-q 64 --s-q 1 --s-k 8192 --cache fp8_e4m3 --rep-ms 5 --plan "$WIDE" 2>&1 \
  | grep -v Warning | tail -2
(( PIPESTATUS[0] == 124 )) && { echo "the wide kernel did not finish in 40 s: stopping"; exit 1; }
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-60} OUT=$OUT/suite timeout 200 bash tools/gpu-suite.sh -k "opt_in_plans and headsn" 2>&1 | tail -3
MLAGEN_TEST_PLAN=schedule=heads_n SANITIZE=1 SANITIZE_TOOLS="memcheck racecheck" SANITIZE_K="split_count and 17" \
  OUT=$OUT/split timeout 150 bash tools/gpu-suite.sh -k split_count 2>&1 | grep -E "exited|passed|failed|SUMMARY" | head
for cell in "64 1 fp8_e4m3" "32 2 fp8_e4m3" "128 1 fp8_e4m3"; do
  set -- $cell
  timeout 120 python tools/sweep_cell.py --h-q $1 --s-q $2 --s-k 8192 16384 --cache $3 --rep-ms 30 \
    --plan "" --plan "$WIDE" --plan "$WIDE,producer_regs=72,consumer_regs=216" --plan "" 2>&1 \
    | grep -v Warning | tee "$OUT/sweep-h$1-q$2-$3.txt" | tail -8
  (( PIPESTATUS[0] == 124 )) && echo "h$1 s_q$2 $3: TIMED OUT (a hang?)"
done
timeout 90 python tools/sweep_cell.py --h-q 64 --s-q 1 --s-k 8192 16384 --rep-ms 30 --plan "" --plan "$WIDE" --plan "" \
  2>&1 | grep -v Warning | tee "$OUT/sweep-h64-q1-bf16.txt" | tail -6
