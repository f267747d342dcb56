#!/usr/bin/env bash
# heads_n with two MMA warpgroups by role (S^T + softmax / O^T, docs/design/heads-n-role-split.md) for
# issue 7's 32-row fp8 cells: headsn-roles.patch applied to this (disposable) checkout, then
#   0. a 40-second probe of one role-split kernel (stop if it hangs);
#   1. the GPU suite's role-split plan variants (fp8 and bf16, two KV heads, column blocks, 16 rows);
#   2. tools/sweep_cell.py: default plan, the role split, default again, each checked first in a child
#      process (--check-timeout).
# Prebuild: bash docs/perf/experiments/2026-12-06c/prebuild_roles.sh .gpu-cache-roles
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT (~3 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206c-roles}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
patch -s -p1 < docs/perf/experiments/2026-12-06c/headsn-roles.patch || exit 1
ROLES="schedule=heads_n,mma_roles=s_o"
timeout 40 python tools/sweep_cell.py --h-q 32 --s-q 1 --s-k 8192 --cache fp8_e4m3 --rep-ms 5 --plan "$ROLES" \
  --check-timeout 30 2>&1 | grep -v Warning | tail -2 | tee "$OUT/probe.txt"
grep -q "not timed" "$OUT/probe.txt" && { echo "the role-split kernel failed or hung: stopping"; exit 1; }
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-60} OUT=$OUT/suite timeout 200 bash tools/gpu-suite.sh -k "opt_in_plans and headsnso" 2>&1 | tail -3
for cell in "32 1 fp8_e4m3" "16 2 fp8_e4m3" "16 1 fp8_e4m3" "32 1"; do
  set -- $cell
  timeout 100 python tools/sweep_cell.py --h-q $1 --s-q $2 --s-k 8192 16384 ${3:+--cache $3} --rep-ms 30 \
    --check-timeout 30 --plan "" --plan "$ROLES" --plan "" 2>&1 | grep -v Warning \
    | tee "$OUT/sweep-h$1-q$2-${3:-bf16}.txt" | tail -7
done
