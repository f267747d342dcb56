#!/usr/bin/env bash
# One GPU call's trial of a template patch: same-process A/B on bench cells, optional per-kernel
# durations, then the GPU tests with the patch in the tree (the tree restored after).
#
#   OUT=$OUT bash tools/patch_trial.sh PATCH CELL [CELL ...]
#
# PATCH applies to a copy of templates/ (`patch -p1`, as docs/perf/experiments/ writes them). Results
# go to $OUT/results.tar.xz: ab.txt (tools/ab_templates.py: each kernel checked against the float32
# reference, then timed alternately, ROUNDS rounds, default 3), breakdown.txt where BREAKDOWN names
# cells for tools/call_breakdown.py, tests.txt (tests/gpu/test_decode_gpu.py -k "$TESTS_K"; the
# cut-request tests by default), prebuild.txt (the GPU-suite variants compiled with the patch beside the
# A/B, so the tests find them). AB_ONLY=1: the A/B (and breakdown) only, for a call with little device
# time; AB_TIMEOUT: the A/B's limit in seconds (default 330). On a GPU host without a registry, source
# .devkit/prelude.sh first.
set -uo pipefail
cd "$(dirname "$0")/.."
if (( $# < 2 )); then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
patch_file=$1
shift
[[ -f $patch_file ]] || { echo "patch_trial: no such patch: $patch_file" >&2; exit 2; }
OUT=${OUT:-out-patch-trial}
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
TESTS_K=${TESTS_K:-variants_against_reference or long_context or scores_that_jump or split_count or large_batch or graph_replay or fp8_blocks or beyond_one_scan}
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" .; }
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
tree=$(mktemp -d)
cp -r templates "$tree/templates"
patch -s -d "$tree/templates" -p1 < "$patch_file" || { echo "patch_trial: $patch_file does not apply" >&2; exit 2; }
if [[ ${AB_ONLY:-0} != 1 ]]; then
  ( MLAGEN_TEMPLATE_DIR=$tree/templates timeout 240 nice -n 19 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" \
      --jobs 8 --variants > "$RES/prebuild.txt" 2>&1 ) &
fi
VARIANTS="$(basename "$patch_file" .patch)=$tree/templates" JOBS=${JOBS:-8} ROUNDS=${ROUNDS:-3} \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout "${AB_TIMEOUT:-330}" python tools/ab_templates.py "$@" 2>&1 | grep -v Warning > "$RES/ab.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab.txt" | tail -$(( $# + 4 ))
if [[ -n ${BREAKDOWN:-} ]]; then
  MLAGEN_TEMPLATE_DIR=$tree/templates timeout 100 python tools/call_breakdown.py $BREAKDOWN 2>&1 \
    | grep -v Warning > "$RES/breakdown.txt"; cat "$RES/breakdown.txt"
fi
wait
pack
[[ ${AB_ONLY:-0} == 1 ]] && exit 0
patch -s -d templates -p1 < "$patch_file" || exit 1
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 150 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "$TESTS_K" 2>&1 | tail -15 > "$RES/tests.txt"
patch -s -R -d templates -p1 < "$patch_file"
echo "== tests at ${SECONDS}s"; cat "$RES/tests.txt"
pack
