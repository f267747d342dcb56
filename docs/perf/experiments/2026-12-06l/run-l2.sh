#!/usr/bin/env bash
# Twelfth session: seesaw-l2-ahead.patch (each chunk group's copies followed by a TMA prefetch into L2 of the same
# chunks of the tile that group loads next, two tiles on; non-fp8, no cluster) against the committed templates
# (which now hold seesaw-bt-lanes.patch), same process, on the 128-row pages 16/32/64 cells and the other
# 128/256-row and 64-row seesaw cells; qk-behind-pv (eleventh session) rides along on the same cells. Then the GPU
# tests of the seesaw kernels with the prefetch. One tarball under $OUT. ~4 min.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06l
OUT=${OUT:-out-1206l-l2}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-l}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
rm -rf /tmp/l2-ahead /tmp/qk-behind && cp -r templates /tmp/l2-ahead && cp -r templates /tmp/qk-behind
(cd /tmp/l2-ahead && patch -s -p1 < "$OLDPWD/$HERE/seesaw-l2-ahead.patch") || exit 1
(cd /tmp/qk-behind && patch -s -p1 < "$OLDPWD/docs/perf/experiments/2026-12-06k/seesaw-qk-behind-pv.patch") || exit 1
VARIANTS=l2ahead=/tmp/l2-ahead,qkbehind=/tmp/qk-behind NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 ROUNDS=${ROUNDS:-3} REP_MS=20 \
  timeout 300 python tools/ab_templates.py 128,1,128,8192:16384,p16 128,1,128,8192:16384,p32 128,1,128,4096:8192:16384 \
  128,2,128,8192:16384 64,2,128,16384 64,1,128,16384 \
  2>&1 | grep -v Warning > "$RES/ab-l2.txt"
echo "ab rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -v "^built" "$RES/ab-l2.txt" | tail -14
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
SEESAW=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
MLAGEN_TEMPLATE_DIR=/tmp/l2-ahead timeout 90 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants \
  > "$RES/prebuild-l2.txt" 2>&1
echo "prebuild rc=$? at ${SECONDS}s"
MLAGEN_TEMPLATE_DIR=/tmp/l2-ahead MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} \
  OUT=$RES/suite-l2 timeout 100 bash tools/gpu-suite.sh \
  -k "variants_against_reference or fp8_seesaw or (opt_in and seesaw) or long_context or split_count or scores_that_jump" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -6
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
