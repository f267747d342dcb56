#!/usr/bin/env bash
# The TMA warp loading buffer 1's rest (b's left values, RoPE keys, b's P chunk) before its right half, and B's Q.K^T
# of the next tile b starting on that rest (seesaw-b-rest-first.patch, 16-bit caches): A frees the rest with its last
# P.V of a pair, before B frees the right half with its own, and the TMA warp loaded the right half first, so the
# rest waited for B's release too (B's wait for buffer 1 is 9.5% of all warp samples at h_q 128, s_q 2, 16k).
# 1. A/B against the committed templates, same process, on the cells where FlashMLA leads and one 64-row control.
# 2. The GPU tests of the seesaw kernels with the patch (as run-b-first.sh's "tests" part).
# 3. With the time left (the call's 600 s), one run of issue 4 part 3's grids at the committed templates.
# Results (one tarball, rewritten after each step) under $OUT.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call), for step 3
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06k
OUT=${OUT:-out-1206k-brest}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
DEADLINE=${DEADLINE:-570}
left() { echo $(( DEADLINE - SECONDS )); }
rm -rf /tmp/b-rest && cp -r templates /tmp/b-rest && (cd /tmp/b-rest && patch -s -p1 < "$OLDPWD/$HERE/seesaw-b-rest-first.patch") || exit 1
VARIANTS=brest=/tmp/b-rest NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 \
  ROUNDS=${ROUNDS:-3} REP_MS=20 timeout 200 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:8192:16384 64,2,128,4096:8192:16384 64,1,128,16384 \
  2>&1 | grep -v Warning > "$RES/ab-brest.txt"
echo "ab rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -v "^built" "$RES/ab-brest.txt" | tail -14 | cut -c1-60,100-
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
SEESAW=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
MLAGEN_TEMPLATE_DIR=/tmp/b-rest timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants \
  > "$RES/prebuild-brest.txt" 2>&1
echo "prebuild rc=$? at ${SECONDS}s"
MLAGEN_TEMPLATE_DIR=/tmp/b-rest MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} \
  OUT=$RES/suite-brest timeout $(( $(left) - 150 > 60 ? $(left) - 150 : 60 )) bash tools/gpu-suite.sh \
  -k "variants_against_reference or fp8_seesaw or (opt_in and seesaw) or long_context or split_count or large_batch or graph_replay or scores_that_jump" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -8
echo "suite done at ${SECONDS}s"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
if [[ -n ${FLASHMLA_LIB:-} ]] && (( $(left) > 90 )); then
  GRIDS=pages,dtypes,long
  timeout $(( $(left) / 2 )) python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench "$GRIDS" > "$RES/prebuild-part3.txt" 2>&1
  echo "prebuild part3 rc=$? at ${SECONDS}s"
  timeout $(( $(left) > 20 ? $(left) : 20 )) python -m mlagen bench --grid "$GRIDS" --flashmla "$FLASHMLA_LIB" --rep-ms 20 \
    --out "$RES" --name h100-1206k-part3-run1 2>&1 | grep -v Warning > "$RES/h100-1206k-part3-run1.txt"
  echo "part3 rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep -c "^mlagen" "$RES/h100-1206k-part3-run1.txt"
fi
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
