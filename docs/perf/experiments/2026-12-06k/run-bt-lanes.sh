#!/usr/bin/env bash
# Pages under 64 on the seesaw (issue 4 part 3: page 16 at h_q 128 is 33-36% slower than page 64, page 32 18-20%):
# the TMA warp read a tile's pages one box at a time inside its copy loop, after the wait for the buffer; with
# seesaw-bt-lanes.patch each lane reads one box's page before the wait, and the loop takes it by shuffle.
# 1. A/B against the committed templates, same process: h_q 128 s_q 1, pages 16 and 32, 8k and 16k.
# 2. The GPU tests of the seesaw kernels with the patch (pages 1, 4, 16, 32 among them).
# Results (one tarball) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06k
OUT=${OUT:-out-1206k-btlanes}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
rm -rf /tmp/bt-lanes && cp -r templates /tmp/bt-lanes && (cd /tmp/bt-lanes && patch -s -p1 < "$OLDPWD/$HERE/seesaw-bt-lanes.patch") || exit 1
VARIANTS=btlanes=/tmp/bt-lanes NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=${ROUNDS:-3} REP_MS=20 \
  timeout 120 python tools/ab_templates.py 128,1,128,8192:16384,p16 128,1,128,8192:16384,p32 \
  2>&1 | grep -v Warning > "$RES/ab-btlanes.txt"
echo "ab rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -v "^built" "$RES/ab-btlanes.txt" | tail -6 | cut -c1-60,100-
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
SEESAW=h128_p64_bf16,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h16_p32_q3_causal_fp16_fp8,h32_kv2_p128_q4_causal_fp8
MLAGEN_TEMPLATE_DIR=/tmp/bt-lanes timeout 90 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants \
  > "$RES/prebuild-btlanes.txt" 2>&1
echo "prebuild rc=$? at ${SECONDS}s"
MLAGEN_TEMPLATE_DIR=/tmp/bt-lanes MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} \
  OUT=$RES/suite-btlanes timeout 100 bash tools/gpu-suite.sh \
  -k "variants_against_reference or (opt_in and seesaw) or long_context or split_count or scores_that_jump" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -8
echo "suite done at ${SECONDS}s"
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
