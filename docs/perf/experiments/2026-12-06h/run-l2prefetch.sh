#!/usr/bin/env bash
# Prepared for the next GPU session (not run): seesaw-l2prefetch.patch, the seesaw's TMA warp asking L2 for the
# KV rows of the pair PREFETCH_PAIRS ahead (cp.async.bulk.prefetch.L2, one per page piece of a tile), so that a
# buffer's reload after its release comes from L2. ncu showed the MMA warpgroups of both the 16-bit seesaw's
# 128-row cells (issue 4: below FlashMLA) and the fp8 seesaw waiting for reloads. On the H100 (~7 min; carry
# .devkit only, kernels compiled on the host):
#  1. A/B in one process, alternating, every kernel checked against the float32 reference first: committed
#     templates against the patch at distance 1 (pf1) and 2 (pf2), bf16 b128 at the cells below FlashMLA
#     (h_q 128 s_q 1 and 2, h_q 64 s_q 2; 4k, 8k, 16k) and fp8 b128 s_k 16384 at h_q 128 s_q 1 and h_q 64 s_q 2;
#  2. the drawn-case GPU test on the seesaw variants with pf1's templates.
# Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-l2prefetch}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06h
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-l2pf}
for v in pf1 pf2; do
  rm -rf "/tmp/$v" && cp -r templates "/tmp/$v" && (cd "/tmp/$v" && patch -s -p1 < "$OLDPWD/$HERE/seesaw-l2prefetch.patch") || exit 1
done
sed -i 's/^PREFETCH_PAIRS = 1$/PREFETCH_PAIRS = 2/' /tmp/pf2/sm90/_seesaw.py.j2
grep -q '^PREFETCH_PAIRS = 2$' /tmp/pf2/sm90/_seesaw.py.j2 || { echo "pf2: PREFETCH_PAIRS not set"; exit 1; }
VARIANTS=pf1=/tmp/pf1,pf2=/tmp/pf2 NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=2 REP_MS=20 timeout 360 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:8192:16384 64,2,128,4096:8192:16384 \
  128,1,128,16384,fp8_e4m3 64,2,128,16384,fp8_e4m3 2>&1 | grep -v Warning \
  | tee "$OUT/ab-l2prefetch.txt" | grep -v "^built" | tail -16
SUITE=h128_p64_bf16,h128_p64_q2_causal,h126_kv2_p64_q2,h63_ropehead_p32,h128_p64_fp8,h40_p64_q2_causal_fp8
# the suite's kernels with pf1's templates, in parallel (the suite would compile them one by one)
MLAGEN_TEMPLATE_DIR=/tmp/pf1 SUITE=$SUITE timeout 120 python -c "
import os
from concurrent.futures import ProcessPoolExecutor
def one(name):
    from mlagen.jit import build
    from mlagen.plan import plan_for
    from mlagen.variants import kernel_variants
    spec = kernel_variants()[name]
    return build(spec, plan_for(spec)).identity.name
with ProcessPoolExecutor(8) as pool:
    print(*pool.map(one, os.environ['SUITE'].split(',')), sep='\n')" > "$OUT/suite-build.txt" 2>&1
MLAGEN_TEMPLATE_DIR=/tmp/pf1 MLAGEN_GPU_VARIANTS=$SUITE \
  MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} OUT=$OUT/suite-pf1 timeout 200 bash tools/gpu-suite.sh \
  -k "variants_against_reference" 2>&1 | grep -E "passed|failed" | tail -3
