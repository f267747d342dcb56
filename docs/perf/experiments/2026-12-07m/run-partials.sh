#!/usr/bin/env bash
# Prepared (thirteenth session): split requests' partial rows stored in the output's dtype instead of float32
# (partials-16bit.patch; docs/design/split-partials-traffic.md): half the bytes the decode kernel writes for cut
# requests and the combine reads back (~34 MB of float32 at batch 128 with 128 or 256 rows per KV head).
#  1. same-process A/B of the templates part (partials-16bit-templates.patch) on batch-128 cells and two
#     batch-1 cells, each kernel checked against the float32 reference first;
#  2. the GPU tests that cut requests (drawn problems with drawn part counts, long requests beside short ones,
#     score jumps) with the whole patch applied to this host's tree (templates and the runtime's argument types).
# One call, ~5 min. One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07m
OUT=${OUT:-out-1207m-partials}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/tmpl-p16 && cp -r templates /tmp/tmpl-p16 && patch -s -d /tmp/tmpl-p16 -p1 < $HERE/partials-16bit-templates.patch
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 8 --bench default > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-p16 timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 7 --bench default \
    > "$RES/prebuild-p16.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
VARIANTS=p16=/tmp/tmpl-p16 NEW_CACHE=$MLAGEN_CACHE_DIR ROUNDS=3 timeout 300 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:16384 64,2,128,4096:16384 16,1,128,4096 32,1,128,4096 16,1,1,32768 \
  128,1,1,32768 2>&1 | grep -v Warning > "$RES/ab-partials.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-partials.txt" | tail -12
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -p1 < $HERE/partials-16bit.patch
timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants > "$RES/prebuild-variants.txt" 2>&1
echo "prebuild variants rc=$? at ${SECONDS}s"
MLAGEN_GPU_EXAMPLES=40 timeout 240 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch" 2>&1 | tail -15 > "$RES/tests-partials.txt"
echo "== tests at ${SECONDS}s"; cat "$RES/tests-partials.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
