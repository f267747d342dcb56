#!/usr/bin/env bash
# Prepared (fourteenth session) for the next device session, one call, ~6 min: the warp-per-row combine waits per
# request instead of for the whole decode grid (combine-per-request.patch + dynamic-tiles-runtime.patch for the
# zeroed records; README §6), so at batch 128 the merge of the requests whose pieces are done runs while the last
# decode CTAs still work (it ran ~15 us after the grid at 128 rows per KV head).
#  1. same-process A/B (each kernel checked against the float32 reference first, in a child process with a
#     timeout: a hang is reported, not fatal) on the batch-128 cells and two batch-1 cells;
#  2. the GPU tests that cut requests, and CUDA-graph replay, with the patched templates in this host's tree,
#     then the tree restored. Not to be combined with dynamic-tiles.patch as is (both use ws_meta word 3).
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07n
OUT=${OUT:-out-1207n-cpr}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-c}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
# zeroed piece records: the patched combine waits for this call's record (0 between calls)
grep -q "torch.zeros(batch \* 4" mlagen/runtime.py || patch -s -p1 < $HERE/dynamic-tiles-runtime.patch || exit 1
rm -rf /tmp/tmpl-cpr && cp -r templates /tmp/tmpl-cpr && patch -s -d /tmp/tmpl-cpr -p1 < $HERE/combine-per-request.patch || exit 1
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 6 --bench default,long > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-cpr timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 9 --variants \
    > "$RES/prebuild-cpr-variants.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
VARIANTS=cpr=/tmp/tmpl-cpr NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=3 timeout 280 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:16384 64,2,128,4096:16384 64,1,128,4096 16,1,128,4096 \
  128,1,1,32768 16,1,1,32768 2>&1 | grep -v Warning > "$RES/ab-cpr.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-cpr.txt" | tail -14
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -d templates -p1 < $HERE/combine-per-request.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay" 2>&1 \
  | tail -15 > "$RES/tests-cpr.txt"
echo "== tests at ${SECONDS}s"; cat "$RES/tests-cpr.txt"
patch -s -R -d templates -p1 < $HERE/combine-per-request.patch
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
