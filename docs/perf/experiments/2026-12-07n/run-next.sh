#!/usr/bin/env bash
# Prepared (fourteenth session) for the next device session, one call, ~6 min: dynamic tiles in heads_n
# (dynamic-tiles.patch + dynamic-tiles-runtime.patch; README §4): the CTAs whose whole share lies inside one cut
# request take that share's tiles one at a time from a counter, instead of a fixed range each.
#  1. same-process A/B (each kernel checked against the float32 reference first, in a child process with a
#     timeout: a hang is reported, not fatal) on the small-batch long cells and on batch-128 cells;
#  2. the GPU tests that cut requests (drawn problems and part counts, long requests beside short ones, score
#     jumps, large batches), with the patched templates in this host's tree, then the tree restored.
# Then, same machine if it is still warm: run-waves.sh (waves of CTAs, and the per-CTA spans and SMs).
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07n
OUT=${OUT:-out-1207n-next}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-d}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
# the runtime part: zeroed piece records (word 3 is the counter; the base kernels never read it)
grep -q "torch.zeros(batch \* 4" mlagen/runtime.py || patch -s -p1 < $HERE/dynamic-tiles-runtime.patch || exit 1
rm -rf /tmp/tmpl-dyn && cp -r templates /tmp/tmpl-dyn && patch -s -d /tmp/tmpl-dyn -p1 < $HERE/dynamic-tiles.patch || exit 1
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 6 --bench default,long > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-dyn timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 9 --variants \
    > "$RES/prebuild-dyn-variants.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
VARIANTS=dyn=/tmp/tmpl-dyn NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=2 timeout 260 python tools/ab_templates.py \
  16,1,1,32768:65536:131072 16,1,4,32768:131072 16,1,8,32768 16,2,1,32768 32,1,1,32768:131072 \
  16,1,128,4096:16384 32,1,128,4096 2>&1 | grep -v Warning > "$RES/ab-dyn.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-dyn.txt" | tail -14
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
patch -s -d templates -p1 < $HERE/dynamic-tiles.patch || exit 1
MLAGEN_GPU_EXAMPLES=40 timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py \
  -k "variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay" 2>&1 \
  | tail -15 > "$RES/tests-dyn.txt"
echo "== tests at ${SECONDS}s"; cat "$RES/tests-dyn.txt"
patch -s -R -d templates -p1 < $HERE/dynamic-tiles.patch
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
