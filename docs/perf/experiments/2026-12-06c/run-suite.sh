#!/usr/bin/env bash
# The GPU suite with heads_n's two MMA warpgroups as the 16-bit default at 32 query rows, then
# compute-sanitizer (memcheck, synccheck, racecheck) on the split-count test of both two-warpgroup
# shapes (h_q 128 s_q 2 pinned to heads_n: column blocks, Q by TMA; h_q 32 with two KV heads: Q loaded
# by both warpgroups), 17 parts, lengths 700/64/0/5000/129 (partial last tiles).
# Prebuild: python tools/prebuild.py --cache .gpu-cache-r2 --jobs 2 --variants --bench default,fp8
# From the project root: MLAGEN_CACHE_DIR=$PWD/.gpu-cache-r2 OUT=$OUT bash docs/perf/experiments/2026-12-06c/run-suite.sh
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206c-suite}
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-100} OUT=$OUT/suite timeout ${SUITE_TIMEOUT:-330} bash tools/gpu-suite.sh 2>&1 | tail -4
MLAGEN_TEST_PLAN=schedule=heads_n SKIP_SUITE=1 SANITIZE=1 SANITIZE_TOOLS="memcheck synccheck racecheck" \
  SANITIZE_K="split_count and 17" OUT=$OUT/sanitizer timeout ${SAN_TIMEOUT:-220} bash tools/gpu-suite.sh 2>&1 \
  | grep -E "exited|passed|failed|ERROR|Error|hazard" | head -20
