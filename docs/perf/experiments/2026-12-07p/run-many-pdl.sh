#!/usr/bin/env bash
# Sixteenth session, one call (~3 min): the many-pieces merge launched as a programmatic dependent of the decode
# kernel, as the few-pieces merge already is (combine-many-pdl.patch; the thirteenth session saw batch-1 calls
# 12-35% slower that way, when heads_n still let its dependents launch right after its work split).
#  1. tools/call_breakdown.py with the patch (the gap between the kernels);
#  2. same-process A/B against the committed templates;
#  3. the GPU tests that reach the merge, with the patch in the tree.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07p
OUT=${OUT:-out-1207p-many-pdl}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/tmpl-mp && cp -r templates /tmp/tmpl-mp && patch -s -d /tmp/tmpl-mp -p1 < $HERE/combine-many-pdl.patch || exit 1
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-mp timeout 240 nice -n 19 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --variants \
    > "$RES/prebuild-mp-variants.txt" 2>&1 ) &
VARIANTS=mp=/tmp/tmpl-mp NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=8 ROUNDS=3 timeout 300 python tools/ab_templates.py \
  16,1,1,32768:65536:131072 16,1,4,32768 16,1,8,32768 16,2,1,32768 32,1,1,32768 128,1,1,32768:131072 128,1,4,32768 \
  16,1,1,32768,fp8_e4m3 2>&1 | grep -v Warning > "$RES/ab-mp.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-mp.txt" | tail -11
MLAGEN_TEMPLATE_DIR=/tmp/tmpl-mp timeout 100 python tools/call_breakdown.py 16,1,1,32768 16,1,4,32768 128,1,1,32768 \
  2>&1 | grep -v Warning > "$RES/breakdown-mp.txt"; cat "$RES/breakdown-mp.txt"
wait
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -d templates -p1 < $HERE/combine-many-pdl.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks or beyond_one_scan" 2>&1 \
  | tail -15 > "$RES/tests-mp.txt"
patch -s -R -d templates -p1 < $HERE/combine-many-pdl.patch
echo "== tests at ${SECONDS}s"; cat "$RES/tests-mp.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
