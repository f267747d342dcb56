#!/usr/bin/env bash
# heads_n's two MMA warpgroups of 32 columns splitting O^T by value dims (mma_split=dims: each S^T and
# softmax for its 32 columns, O^T for 256 value dims of all 64 columns, P^T and rescale factors shared per
# tile) against the rows split (the fp8 default above 32 rows): same-run sweep at fp8 h_q 64 s_q 1, each
# plan checked against the reference first in a child process (a hang is reported, not waited for), then
# the drawn-case and score-jump tests of the four wide variants pinned to dims (MLAGEN_TEST_PLAN).
# headsn-dims.patch (beside this file) is applied to this (disposable) checkout first.
# Prebuild (no GPU; the patch applied to a scratch worktree, the cache folder given as an absolute path):
#   bash tools/with_patch_tree.sh docs/perf/experiments/2026-12-06d/headsn-dims.patch \
#     bash $PWD/docs/perf/experiments/2026-12-06d/run-dims.sh --prebuild $PWD/.gpu-cache-dims
set -uo pipefail
here=$(realpath "$(dirname "$0")")
if [[ ${1:-} == --prebuild ]]; then
  cd "$(git rev-parse --show-toplevel)"   # the scratch worktree with the patch applied
else
  cd "$here/../../../.."
  patch -s -p1 < "$here/headsn-dims.patch" || exit 1
fi
DIMS="schedule=heads_n,consumer_wgs=2,mma_split=dims"
V="h128_p64_fp8 h32_kv2_p128_q4_causal_fp8 h16_p32_q3_causal_fp16_fp8 h40_p64_q2_causal_fp8"
if [[ ${1:-} == --prebuild ]]; then
  cache=$(realpath -m "${2:?cache folder}")
  MLAGEN_CACHE_DIR=$cache python3 -c 'import sys, mlagen.jit; from mlagen.plan import plan_for, parse_knobs
from mlagen.bench import cell_spec
from mlagen.variants import kernel_variants
s = cell_spec(dict(h_q=64, s_q=1, page=64, cache="fp8_e4m3"))
for k in ({}, parse_knobs(sys.argv[1])): print("built", mlagen.jit.build(s, plan_for(s, **k)).identity.name)
for n in sys.argv[2:]: s = kernel_variants()[n]; print("built", mlagen.jit.build(s, plan_for(s, **parse_knobs(sys.argv[1]))).identity.name)' "$DIMS" $V
  find "$cache" \( -name kernel.ptx -o -name kernel.py \) -delete
  exit 0
fi
OUT=${OUT:-out-1206d-dims}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
timeout 100 python tools/sweep_cell.py --h-q 64 --s-q 1 --s-k 8192 16384 --cache fp8_e4m3 --rep-ms 20 \
  --check-timeout 40 --plan "" --plan "$DIMS" --plan "" 2>&1 | grep -v Warning | tee "$OUT/sweep-h64-q1-fp8.txt" | tail -7
grep -q "not timed" "$OUT/sweep-h64-q1-fp8.txt" && { echo "the dims kernel failed or hung: stopping"; exit 1; }
MLAGEN_TEST_PLAN=$DIMS MLAGEN_GPU_VARIANTS=$V MLAGEN_GPU_EXAMPLES=${EXAMPLES:-60} OUT=$OUT/suite timeout 120 \
  bash tools/gpu-suite.sh -k "variants_against_reference or (scores_that_jump and (h128_p64_fp8 or h32_kv2_p128_q4 or h16_p32_q3 or h40_p64))" \
  2>&1 | tail -3
