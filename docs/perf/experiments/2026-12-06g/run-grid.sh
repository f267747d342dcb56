#!/usr/bin/env bash
# The fp8 seesaw as the planner's default above 32 query rows per KV head (commit MLAGEN_COMMIT): first the
# drawn-case GPU test on the fp8 variants whose default changed and the fp8 seesaw tests (a failure stops
# the run), then the same-run sweeps against heads_n on two MMA warpgroups of 32 columns (the previous
# default) at the five fp8 cells above 32 rows, then `mlagen bench --grid fp8` RUNS times (default 3). Kernels prebuilt
# with prebuild_grid.py into .gpu-cache-g2. Results under $OUT (~5 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206g-grid}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-g2}
MLAGEN_GPU_VARIANTS=h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8 \
  MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-80} OUT=$OUT/suite timeout 150 bash tools/gpu-suite.sh -k "variants_against_reference or fp8_seesaw or fp8_blocks_outside" \
  2>&1 | grep -E "passed|failed" | tail -3
grep -q ' passed' "$OUT/suite/gpu-suite.log" && ! grep -q ' failed' "$OUT/suite/gpu-suite.log" \
  || { echo "GPU tests did not pass: nothing more run"; exit 1; }
for cell in ${CELLS:-128,1 64,1 128,2 64,2 32,2}; do
  set -- ${cell/,/ }
  timeout 60 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 40 --plan "" \
    --plan schedule=heads_n,consumer_wgs=2 --h-q "$1" --s-q "$2" --s-k 4096 8192 16384 2>&1 | grep -v Warning \
    | tee "$OUT/sweep-fp8-h$1-q$2.txt" | grep ratio | cut -c1-60,100-190
done
for run in $(seq 1 "${RUNS:-3}"); do
  timeout 90 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$OUT" --name "h100-1206g-run$run" 2>&1 \
    | grep -v Warning > "$OUT/bench-run$run.txt"; tail -2 "$OUT/bench-run$run.txt"
done
