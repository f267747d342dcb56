#!/usr/bin/env bash
# Sixteenth session, one call (~5 min): the merge kernels' grids and a batch-1 merge on eight CTAs per row.
#  1. prebuild: the GPU-suite variants with both patches, the A/B kernels (base, rows, rows8);
#  2. same-process A/B (tools/ab_templates.py) of combine-rows.patch (the combine grids cover s_q x heads
#     per KV head rows, not the m-blocks' 64-row padding) and rows + combine-slices8.patch (SplitCombineMany
#     on 8 CTAs per row, 64 columns each);
#  3. ncu (--set full) of the many-pieces merge at h_q 16 batch 1 32k (base and rows8) and of the
#     few-pieces merge at h_q 16 batch 128 4k (base and rows);
#  4. the GPU tests that reach both merges, with both patches in the tree, then the tree restored.
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07p
OUT=${OUT:-out-1207p-combine}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/tmpl-rows /tmp/tmpl-rows8
cp -r templates /tmp/tmpl-rows && patch -s -d /tmp/tmpl-rows -p1 < $HERE/combine-rows.patch || exit 1
cp -r /tmp/tmpl-rows /tmp/tmpl-rows8 && patch -s -d /tmp/tmpl-rows8 -p1 < $HERE/combine-slices8.patch || exit 1
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-rows8 timeout 240 nice -n 19 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --variants \
    > "$RES/prebuild-rows8-variants.txt" 2>&1 ) &
CELLS="16,1,1,32768:65536:131072 16,1,4,32768:131072 16,1,8,32768 16,2,1,32768 32,1,1,32768 128,1,1,32768:131072
  128,1,4,32768 16,1,128,4096 32,1,128,4096 128,1,128,4096"
VARIANTS=rows=/tmp/tmpl-rows,rows8=/tmp/tmpl-rows8 NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=8 ROUNDS=2 timeout 360 \
  python tools/ab_templates.py $CELLS 2>&1 | grep -v Warning > "$RES/ab-combine.txt"
wait
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-combine.txt" | tail -16
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
for v in base rows8; do
  tdir=""; [ $v = rows8 ] && tdir=/tmp/tmpl-rows8
  MLAGEN_TEMPLATE_DIR=$tdir timeout 60 ncu --kernel-name regex:SplitCombineMany --launch-skip 2 --launch-count 1 --set full \
    python tools/profile_cell.py --h-q 16 --s-k 32768 --batch 1 > "$RES/ncu-many-$v.txt" 2>&1
  grep -E "Duration|Elapsed Cycles|Registers Per|Achieved Occupancy|Memory Throughput|L2 Hit|Grid Size" "$RES/ncu-many-$v.txt" | head -12
done
for v in base rows; do
  tdir=""; [ $v = rows ] && tdir=/tmp/tmpl-rows
  MLAGEN_TEMPLATE_DIR=$tdir timeout 60 ncu --kernel-name regex:SplitCombine_ --launch-skip 2 --launch-count 1 --set full \
    python tools/profile_cell.py --h-q 16 --s-k 4096 --batch 128 > "$RES/ncu-few-$v.txt" 2>&1
  grep -E "Duration|Grid Size|Achieved Occupancy" "$RES/ncu-few-$v.txt" | head -6
done
echo "== ncu at ${SECONDS}s"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -d templates -p1 < $HERE/combine-rows.patch && patch -s -d templates -p1 < $HERE/combine-slices8.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks" 2>&1 \
  | tail -15 > "$RES/tests-rows8.txt"
patch -s -R -d templates -p1 < $HERE/combine-slices8.patch; patch -s -R -d templates -p1 < $HERE/combine-rows.patch
echo "== tests at ${SECONDS}s"; cat "$RES/tests-rows8.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
