#!/usr/bin/env bash
# loader="fp8_regs" with fp16 operands (fp8-regs-f16.patch): e4m3 -> fp16 is one cvt per pair and exact, the scales
# applied in float32 (S^T: one accumulator per scale group) or as fp16 multipliers normalised by a per-warp
# running power of two (O^T), Q's latent part in fp16 times a power of two per segment; with one MMA warpgroup
# and with two taking the tiles in turn (merged at each segment's end). Sweeps of fp8 h_q 16 s_q 1 against the
# default heads_n plan (each plan checked against the float32 reference first, exact dequantization for
# fp8_regs), then the GPU tests of the fp8_regs plan variants.
# Needs fp8-regs-f16.patch applied (patch -s -p1 < docs/perf/experiments/2026-12-06e/fp8-regs-f16.patch); prebuild:
# README.md beside this file. Results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206e-rs2}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs3}
grep -q fp8_exact mlagen/reference.py || { echo "apply docs/perf/experiments/2026-12-06e/fp8-regs-f16.patch first"; exit 1; }
sweep() {
  local name=$1; shift
  timeout 150 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 60 --plan "" \
    --plan loader=fp8_regs --plan loader=fp8_regs,schedule=heads_n,consumer_wgs=2 "$@" 2>&1 | grep -v Warning \
    | tee "$OUT/sweep-$name.txt" | tail -8
}
sweep h16-q1 --h-q 16 --s-q 1 --s-k 4096 8192 16384
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-40} OUT=$OUT/suite timeout 240 bash tools/gpu-suite.sh -k "fp8_rs" 2>&1 | tail -12
