#!/usr/bin/env bash
# Sixteenth session, one call (~4-5 min): the decode kernels' set-up before the first copy (prologue.patch:
# find_work in one scan when the batch fits the CTA's threads, heads_n's ring barriers set up one per lane).
#  1. 2026-12-07o's phase probe on the patched templates (compare its work / tma_start with
#     ../2026-12-07o/h100-ahead/phases.txt);
#  2. same-process A/B against the committed templates (tools/ab_templates.py);
#  3. the GPU tests that cut requests (all three schedules, large batches), with the patch in the tree.
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07p
OUT=${OUT:-out-1207p-prologue}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/tmpl-pro && cp -r templates /tmp/tmpl-pro && patch -s -d /tmp/tmpl-pro -p1 < $HERE/prologue.patch || exit 1
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-pro timeout 240 nice -n 19 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --variants \
    > "$RES/prebuild-pro-variants.txt" 2>&1 ) &
rm -rf /tmp/ph && cp -r /tmp/tmpl-pro /tmp/ph && python docs/perf/experiments/2026-12-07o/phase_patch.py /tmp/ph || exit 1
MLAGEN_TEMPLATE_DIR=/tmp/ph MLAGEN_CACHE_DIR=/tmp/c-ph timeout 200 python docs/perf/experiments/2026-12-07o/phase_probe.py \
  --out "$RES" 1,1 1,32768 4,32768 128,4096 2>&1 | grep -v Warning > "$RES/phases-pro.txt"
rm -f "$RES"/*.npz
grep -A4 "^==" "$RES/phases-pro.txt" | grep "==\|work\|tma_start"
echo "== phases at ${SECONDS}s"
VARIANTS=pro=/tmp/tmpl-pro NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=8 ROUNDS=3 timeout 330 python tools/ab_templates.py \
  16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 16,2,1,32768 32,1,1,32768 128,1,1,32768 \
  16,1,128,4096 32,1,128,4096 128,1,128,4096 16,1,128,4096,fp8_e4m3 16,1,1,32768,fp8_e4m3 \
  2>&1 | grep -v Warning > "$RES/ab-pro.txt"
wait
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-pro.txt" | tail -12
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
# the new test of batches beyond one scan, on the committed templates first
MLAGEN_GPU_EXAMPLES=40 timeout 160 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py -k beyond_one_scan 2>&1 \
  | tail -5 > "$RES/tests-base-beyond.txt"; cat "$RES/tests-base-beyond.txt"
patch -s -d templates -p1 < $HERE/prologue.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks or beyond_one_scan" 2>&1 \
  | tail -15 > "$RES/tests-pro.txt"
patch -s -R -d templates -p1 < $HERE/prologue.patch
echo "== tests at ${SECONDS}s"; cat "$RES/tests-pro.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
