#!/usr/bin/env bash
# The two adopted template changes of commit 40f4d26 (seesaw descriptors beside each wgmma, KV loads
# EVICT_FIRST), one lean call (~5 min): the GPU-suite variants and the default grid's kernels compiled on the
# device, the GPU tests of patch_trial.sh's selection over every variant, `mlagen bench --grid default` once,
# then `--grid fp8` if GRIDS names it. Everything lands in $OUT/results.tar.xz.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207s}")
RES=$(mktemp -d)
mkdir -p "$OUT"
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" .; }   # after each step: a cut-off call still brings back what ran
GRIDS=${GRIDS:-default}
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=$PWD/.gpu-cache-s
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv | tee "$RES/gpu.txt"
timeout 140 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants --bench "$GRIDS" \
  > "$RES/prebuild.txt" 2>&1; echo "== prebuild rc $? at ${SECONDS}s"; tail -2 "$RES/prebuild.txt"; pack
TESTS_K="variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks or beyond_one_scan"
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 100 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "$TESTS_K" 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
for grid in ${GRIDS//,/ }; do
  timeout 100 python -m mlagen bench --grid "$grid" --rep-ms 20 --out "$RES" --name "h100-1207s-$grid" 2>&1 \
    | grep -v Warning > "$RES/bench-$grid.txt"; echo "== $grid at ${SECONDS}s"; tail -4 "$RES/bench-$grid.txt"; pack
done
