#!/usr/bin/env bash
# Prepared in the sixteenth session for the next one, one call (~3 min): the many-pieces merge as a PDL
# dependent behind every schedule (many-pdl-all-schedules.patch): the seesaw and split kernels keep letting their
# dependents launch right after the work split only where the merge is the few-pieces kernel (parts < 4 x batch),
# so the many-pieces merge launches as their CTAs exit, as behind heads_n since 52871b1 (README §4).
#  1. same-process A/B against the committed templates (seesaw cells at batch 1-8, h_q 128 and h_q 64 s_q 2;
#     heads_n and batch-128 cells as controls);
#  2. tools/call_breakdown.py with the patch (the gap between the kernels);
#  3. the GPU tests that reach the merge, with the patch in the tree.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07p
OUT=${OUT:-out-1207p-many-pdl-all}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/tmpl-mpa && cp -r templates /tmp/tmpl-mpa && patch -s -d /tmp/tmpl-mpa -p1 < $HERE/many-pdl-all-schedules.patch || exit 1
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-mpa timeout 240 nice -n 19 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --variants \
    > "$RES/prebuild-mpa-variants.txt" 2>&1 ) &
VARIANTS=mpa=/tmp/tmpl-mpa NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=8 ROUNDS=3 timeout 300 python tools/ab_templates.py \
  128,1,1,32768:131072 128,1,4,32768 128,1,8,32768 64,2,1,32768 128,2,1,32768 128,1,1,32768,fp8_e4m3 \
  16,1,1,32768 128,1,128,4096 64,2,128,4096 2>&1 | grep -v Warning > "$RES/ab-mpa.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-mpa.txt" | tail -11
MLAGEN_TEMPLATE_DIR=/tmp/tmpl-mpa timeout 100 python tools/call_breakdown.py 128,1,1,32768 128,1,4,32768 16,1,1,32768 \
  2>&1 | grep -v Warning > "$RES/breakdown-mpa.txt"; cat "$RES/breakdown-mpa.txt"
wait
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -d templates -p1 < $HERE/many-pdl-all-schedules.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks or beyond_one_scan" 2>&1 \
  | tail -15 > "$RES/tests-mpa.txt"
patch -s -R -d templates -p1 < $HERE/many-pdl-all-schedules.patch
echo "== tests at ${SECONDS}s"; cat "$RES/tests-mpa.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
