#!/usr/bin/env bash
# heads_n with the next tile's S^T ahead of this tile's O^T (headsn-softmax-overlap.patch): the softmax of
# tile t + 1 runs while O^T(t) is on the tensor cores. ncu of the fp8 h_q 32 cell (h100-ncu32/) had the MMA
# warpgroup busy ~85% of its samples, mostly in its own serial chain S^T -> softmax -> O^T. On the H100
# (~7 min; carry .devkit only, kernels compiled on the host):
#  1. A/B in one process, alternating, every kernel checked against the float32 reference first: the
#     committed templates against the patch (ov) on heads_n's cells: fp8 h_q 16 and 32 s_q 1 (4k, 8k,
#     16k) and h_q 16 s_q 2 (16k), bf16 h_q 16 s_q 1, h_q 32 s_q 1 (two MMA warpgroups), h_q 16 s_q 2 (16k);
#  2. the GPU tests of every heads_n variant (the drawn cases, the opt-in heads_n plans with their long
#     contexts and score jumps, the split counts over two MMA warpgroups, the fp8 blocks outside the fast
#     range) with the patched templates.
# Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-overlap}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06i
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-ov}
rm -rf /tmp/ov && cp -r templates /tmp/ov && (cd /tmp/ov && patch -s -p1 < "$OLDPWD/$HERE/headsn-softmax-overlap.patch") || exit 1
HEADS_N=h16_p64_bf16,h3_p32_q8_causal,h1_p64_q8_causal_nolse,h16_p16_q2_causal_fp8,h8_l512r0_p64_nolse_fp8,h3_p32_q8_causal_fp8,h16_kv2_p128_q3_causal_fp16_fp8,h16_kv2_ropehead_p16_q2_fp16,h32_kv2_p64_q2_causal
# the GPU tests' kernels with the patched templates, in parallel, while nothing else runs
MLAGEN_TEMPLATE_DIR=/tmp/ov HEADS_N=$HEADS_N timeout 200 python -c "
import os
from concurrent.futures import ProcessPoolExecutor
def one(item):
    name, knobs = item
    from mlagen.jit import build
    from mlagen.plan import plan_for
    from mlagen.variants import kernel_variants
    spec = kernel_variants()[name]
    return build(spec, plan_for(spec, **knobs)).identity.name
from mlagen.variants import plan_variants
items = [(n, {}) for n in os.environ['HEADS_N'].split(',')]
items += [(base, knobs) for name, (base, knobs) in plan_variants().items() if 'headsn' in name]
with ProcessPoolExecutor(15) as pool:
    print(*pool.map(one, items), sep='\n')" > "$OUT/suite-build.txt" 2>&1; tail -1 "$OUT/suite-build.txt"
VARIANTS=ov=/tmp/ov NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=2 REP_MS=20 timeout 330 python tools/ab_templates.py \
  16,1,128,4096:8192:16384,fp8_e4m3 32,1,128,4096:8192:16384,fp8_e4m3 16,2,128,16384,fp8_e4m3 \
  16,1,128,16384 32,1,128,16384 16,2,128,16384 2>&1 | grep -v Warning \
  | tee "$OUT/ab-overlap.txt" | grep -v "^built" | tail -14
MLAGEN_TEMPLATE_DIR=/tmp/ov MLAGEN_GPU_VARIANTS=$HEADS_N MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} \
  OUT=$OUT/suite-ov timeout 240 bash tools/gpu-suite.sh -k "variants_against_reference or (opt_in_plans and headsn) \
  or split_count or (scores_that_jump and (h16_p64_bf16 or h3_p32 or h16_kv2 or h32_kv2 or h16_p16_q2_causal_fp8)) \
  or (fp8_blocks_outside and h16_p16)" 2>&1 | grep -E "passed|failed|Error" | tail -4
