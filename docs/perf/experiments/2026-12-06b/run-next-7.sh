#!/usr/bin/env bash
# heads_n with two MMA warpgroups splitting the query rows (issue 7's 32-row cells: fp8 h_q 32 s_q 1 and
# h_q 16 s_q 2 at 0.72-0.76 on the H100, with the MMA warpgroup's work ~11% over the bare loads):
# headsn-2wg.patch (opt-in plan `schedule=heads_n,consumer_wgs=2`; the default heads_n kernels' PTX is
# unchanged by it, checked on the CPU) applied to this (disposable) checkout, then
#   1. the GPU suite's four two-warpgroup plan variants against the float32 reference;
#   2. tools/sweep_cell.py: the default plan, two warpgroups, the default again (each checked first).
# Prebuild on a machine without a GPU: bash docs/perf/experiments/2026-12-06b/prebuild_2wg.sh .gpu-cache-2wg
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
OUT=${OUT:-next-out-1206b7}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
patch -s -p1 < $HERE/headsn-2wg.patch || exit 1
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-60} OUT=$OUT/suite timeout 300 bash tools/gpu-suite.sh -k "opt_in_plans and 2wg" 2>&1 | tail -3
for cell in "32 1 fp8_e4m3" "16 2 fp8_e4m3" "32 1" "16 2"; do
  set -- $cell
  timeout 150 python tools/sweep_cell.py --h-q $1 --s-q $2 --s-k 8192 16384 ${3:+--cache $3} --rep-ms 30 \
    --plan "" --plan "schedule=heads_n,consumer_wgs=2" --plan "" 2>&1 | tee "$OUT/sweep-h$1-q$2-${3:-bf16}.txt" | tail -6
  (( PIPESTATUS[0] == 124 )) && echo "h$1 s_q$2 ${3:-bf16}: TIMED OUT (a hang?)"
done
