#!/usr/bin/env bash
# Prepared for the next device session (compiled here, not run): the eleventh session's two unrun seesaw patches.
#  - seesaw-bt-lanes.patch: pages under 64, each lane of the TMA warp reads one box's page before the buffer wait
#    (issue 4 part 3: page 16 at h_q 128 is 33-36% slower than page 64, page 32 18-20%).
#  - seesaw-qk-behind-pv.patch: warpgroup A issues the next tile a's Q.K^T behind its P.V of tile b, one wgmma group
#    per chunk group, and frees buffer 1's rest between them (as FlashMLA's warpgroup 0 does); no wait, release and
#    loop between the two on the tensor cores. Same spills as the base, no serialised wgmma (ptxas).
# 1. A/B of each against the committed templates, same process (bt-lanes on pages 16/32, qk-behind on the cells
#    where FlashMLA leads plus pages 16 and one 64-row control).
# 2. The GPU tests of the seesaw kernels with each patch. ~6 min. Results (one tarball) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06k
OUT=${OUT:-out-1206k-next}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
for v in bt-lanes qk-behind-pv; do
  rm -rf "/tmp/$v" && cp -r templates "/tmp/$v" && (cd "/tmp/$v" && patch -s -p1 < "$OLDPWD/$HERE/seesaw-$v.patch") || exit 1
done
VARIANTS=btlanes=/tmp/bt-lanes,qkbehind=/tmp/qk-behind-pv NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=${ROUNDS:-3} REP_MS=20 \
  timeout 150 python tools/ab_templates.py 128,1,128,8192:16384,p16 128,1,128,8192:16384,p32 \
  2>&1 | grep -v Warning > "$RES/ab-pages.txt"
echo "ab pages rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -v "^built" "$RES/ab-pages.txt" | tail -6
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
VARIANTS=qkbehind=/tmp/qk-behind-pv NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=${ROUNDS:-3} REP_MS=20 \
  timeout 180 python tools/ab_templates.py 128,1,128,4096:8192:16384 128,2,128,4096:8192:16384 \
  64,2,128,4096:8192:16384 64,1,128,16384 \
  2>&1 | grep -v Warning > "$RES/ab-qkbehind.txt"
echo "ab qk-behind rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -v "^built" "$RES/ab-qkbehind.txt" | tail -12
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
SEESAW=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
for v in bt-lanes qk-behind-pv; do
  MLAGEN_TEMPLATE_DIR=/tmp/$v timeout 90 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants \
    > "$RES/prebuild-$v.txt" 2>&1
  echo "prebuild $v rc=$? at ${SECONDS}s"
  MLAGEN_TEMPLATE_DIR=/tmp/$v MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} \
    OUT=$RES/suite-$v timeout 100 bash tools/gpu-suite.sh \
    -k "variants_against_reference or fp8_seesaw or (opt_in and seesaw) or long_context or split_count or scores_that_jump" \
    2>&1 | grep -E "passed|failed|FAILED|Error" | tail -6
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
ls -la "$OUT"
