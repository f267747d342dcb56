#!/usr/bin/env bash
# Prepared (fifteenth session) for the next device session, one call, ~7 min (README §5): the heads_n TMA warp
# reads the next tile's block-table entries half a tile ahead (bt-ahead.patch; 16-bit and fp8 caches), and, for
# 16-bit caches, dynamic tiles whose
# counter ticket is taken a tile ahead (dynamic-tiles-ahead.patch: ../2026-12-07n/dynamic-tiles.patch without
# the atomic and the block-table read between a ring slot's release and its next copy).
#  0. run-phases.sh's steps 1-2 first (SKIP_LONG=1): where the kernel's fixed time goes (README §4);
#  1. same-process A/B, both variants against the committed templates (each kernel checked against the
#     float32 reference first, in a child process with a timeout);
#  2. the GPU tests that cut requests with each patch in the tree, then the tree restored.
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07o
OUT=${OUT:-out-1207o-ahead}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-a}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
SKIP_LONG=1 OUT=$RES bash $HERE/run-phases.sh > "$RES/phases-call.txt" 2>&1
( cd "$RES" && tar xJf results.tar.xz && rm results.tar.xz ); tail -40 "$RES/phases-call.txt"
# the dynamic variant needs zeroed piece records (word 3 is the counter; the base kernels never read it)
grep -q "torch.zeros(batch \* 4" mlagen/runtime.py || patch -s -p1 < docs/perf/experiments/2026-12-07n/dynamic-tiles-runtime.patch || exit 1
for v in bt dyn2; do
  p=$HERE/bt-ahead.patch; [ $v = dyn2 ] && p=$HERE/dynamic-tiles-ahead.patch
  rm -rf /tmp/tmpl-$v && cp -r templates /tmp/tmpl-$v && patch -s -d /tmp/tmpl-$v -p1 < $p || exit 1
done
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 4 --bench default,long,fp8 > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-bt timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 6 --variants \
    > "$RES/prebuild-bt-variants.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-dyn2 timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 6 --variants \
    > "$RES/prebuild-dyn2-variants.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
VARIANTS=bt=/tmp/tmpl-bt,dyn2=/tmp/tmpl-dyn2 NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=2 timeout 300 python tools/ab_templates.py \
  16,1,1,32768:65536:131072 16,1,4,32768:131072 16,1,8,32768 16,2,1,32768 32,1,1,32768:131072 \
  16,1,128,4096:16384 32,1,128,4096 16,1,128,4096:16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 16,1,1,32768,fp8_e4m3 \
  2>&1 | grep -v Warning > "$RES/ab-ahead.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-ahead.txt" | tail -14
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
for v in bt dyn2; do
  p=$HERE/bt-ahead.patch; [ $v = dyn2 ] && p=$HERE/dynamic-tiles-ahead.patch
  patch -s -d templates -p1 < $p || exit 1
  MLAGEN_GPU_EXAMPLES=40 timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
    -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks" 2>&1 \
    | tail -15 > "$RES/tests-$v.txt"
  patch -s -R -d templates -p1 < $p
  echo "== tests $v at ${SECONDS}s"; cat "$RES/tests-$v.txt"
done
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
