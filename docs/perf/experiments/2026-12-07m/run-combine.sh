#!/usr/bin/env bash
# Thirteenth session: where a small-batch call's fixed ~20-28 us go (decode kernel, gap, combine; per-kernel
# times by torch.profiler), at the committed templates and with the many-pieces combine cut into column slices
# (combine-slices.patch; -pdl: also launched as a programmatic dependent); then a same-process A/B of both
# patches on the long grid's cells (each kernel checked against the float32 reference first). One tarball.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07m
OUT=${OUT:-out-1207m}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-m}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
for v in slices slices-pdl; do
  rm -rf /tmp/tmpl-$v && cp -r templates /tmp/tmpl-$v && patch -s -d /tmp/tmpl-$v -p1 < $HERE/combine-$v.patch
done
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --bench long > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-slices timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 4 --bench long > "$RES/prebuild-s.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-slices-pdl timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 4 --bench long > "$RES/prebuild-sp.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
CELLS="16,1,1,1024 16,1,1,32768 16,1,1,131072 16,1,4,32768 16,1,8,32768 128,1,1,1024 128,1,1,32768 128,1,8,32768 16,1,128,4096"
for v in base slices; do
  dir=; [ $v != base ] && dir=/tmp/tmpl-$v
  MLAGEN_TEMPLATE_DIR=$dir timeout 120 python tools/call_breakdown.py --json "$RES/breakdown-$v.json" $CELLS 2>&1 \
    | grep -v Warning > "$RES/breakdown-$v.txt"
  echo "== breakdown $v at ${SECONDS}s"; cat "$RES/breakdown-$v.txt"
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
VARIANTS=slices=/tmp/tmpl-slices,slices-pdl=/tmp/tmpl-slices-pdl NEW_CACHE=$MLAGEN_CACHE_DIR timeout 240 \
  python tools/ab_templates.py 16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 128,1,1,32768 128,1,8,32768 2>&1 | grep -v Warning > "$RES/ab.txt"
echo "== ab at ${SECONDS}s"; tail -30 "$RES/ab.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
# the GPU tests that reach the many-pieces combine (a long request beside short ones; five requests cut
# over every SM), every kernel variant, with combine-slices.patch applied to this host's templates
patch -s -d templates -p1 < $HERE/combine-slices.patch
timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants > "$RES/prebuild-variants.txt" 2>&1
echo "prebuild variants rc=$? at ${SECONDS}s"
MLAGEN_GPU_EXAMPLES=20 timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "long_context or scores_that_jump" 2>&1 | tail -15 > "$RES/tests-slices.txt"
echo "== tests at ${SECONDS}s"; cat "$RES/tests-slices.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
