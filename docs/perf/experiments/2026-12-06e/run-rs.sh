#!/usr/bin/env bash
# fp8 heads_n with loader="fp8_regs" (the MMA warpgroup converts whole fp8 tiles into RS wgmma operands; no
# converting warps, no 16-bit copy of the tile) against the default heads_n kernel, first probed on one
# cell, then the GPU tests of its plan variants (drawn cases, a long sequence, jumping maxima, scales
# outside the fast range), then same-run sweeps of the fp8 cells with at most 32 rows.
# Needs fp8-regs.patch applied to the tree (on the GPU host: patch -p1 < docs/perf/experiments/2026-12-06e/fp8-regs.patch).
# Prebuild (no GPU): bash tools/with_patch_tree.sh docs/perf/experiments/2026-12-06e/fp8-regs.patch \
#   python docs/perf/experiments/2026-12-06e/prebuild_rs.py $PWD/.gpu-cache-rs
# (kernel.ptx and kernel.py deleted afterwards to fit the carry). From the project root after
# `. ./.devkit/prelude.sh`; results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206e}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs}
grep -q fp8_regs mlagen/plan.py || { echo "apply docs/perf/experiments/2026-12-06e/fp8-regs.patch first"; exit 1; }
sweep() {  # sweep NAME ARGS...: the default heads_n plan against loader=fp8_regs
  local name=$1; shift
  timeout "${SWEEP_TIMEOUT:-150}" python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 60 \
    --plan "" --plan loader=fp8_regs "$@" 2>&1 | grep -v Warning | tee "$OUT/sweep-$name.txt" | tail -8
}
sweep h16-q1 --h-q 16 --s-q 1 --s-k 8192 16384
grep -q "not timed" "$OUT/sweep-h16-q1.txt" && { echo "a kernel failed or hung: stopping"; exit 1; }
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-40} OUT=$OUT/suite timeout 300 bash tools/gpu-suite.sh \
  -k "fp8_rs" 2>&1 | tail -6
sweep h32-q1 --h-q 32 --s-q 1 --s-k 4096 8192 16384
sweep h16-q2 --h-q 16 --s-q 2 --s-k 4096 8192 16384
sweep h16-q1-4k --h-q 16 --s-q 1 --s-k 4096
