#!/usr/bin/env bash
# FlashMLA timed live beside mlagen on the H100 (first time on this GPU; until now the H100 cells were read
# against the 2026-11-23 table), the fp8 grid at the current templates, the runtime knob parts_per_sm=2 on both
# grids, then the drawn-case GPU suite over every kernel variant. One call, ~9 min. Results under $OUT.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
#   RUNS           live default-grid runs (default 3)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206j-live}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-live}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
# 1. every kernel of the two grids and of the GPU suite, compiled here (15 jobs)
timeout 300 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench default,fp8 --variants \
  > "$OUT/prebuild.txt" 2>&1
echo "prebuild rc=$? $(grep -ci 'fail' "$OUT/prebuild.txt") failure lines"
bench() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  timeout "$limit" python -m mlagen bench --rep-ms 20 --out "$OUT" --name "$name" "$@" 2>&1 | grep -v Warning \
    > "$OUT/$name.txt"
  echo "== $name (rc ${PIPESTATUS[0]})"; tail -3 "$OUT/$name.txt"
}
# 2. the default grid with FlashMLA live, RUNS times
for run in $(seq 1 "${RUNS:-3}"); do
  bench "h100-1206j-live-run$run" 150 --grid default --flashmla "$LIB"
done
# 3. the fp8 grid (each fp8 cell beside its bf16 twin), then both grids with parts_per_sm=2
bench h100-1206j-fp8 150 --grid fp8
bench h100-1206j-pps2-fp8 150 --grid fp8 --plan parts_per_sm=2
bench h100-1206j-pps2-default 120 --grid default --plan parts_per_sm=2
# 4. the drawn-case GPU test over every kernel variant (the fast kernels against the float32 reference)
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} OUT=$OUT/suite timeout 200 \
  bash tools/gpu-suite.sh -k "variants_against_reference" 2>&1 | grep -E "passed|failed" | tail -3
