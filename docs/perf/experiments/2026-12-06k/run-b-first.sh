#!/usr/bin/env bash
# Warpgroup B of the seesaw multiplying tile b's values before tile a's (seesaw-b-first.patch): buffer 1's right
# half, the group the next tile b waits for first, is freed early (the stall profile of run-grid-stalls.sh shows
# B waiting on it for ~9.5% of all samples at h_q 128, s_q 2). Against the committed templates, same process, on
# the 16-bit cells where FlashMLA leads, two other seesaw cells and two fp8 seesaw cells; then the GPU tests of
# the seesaw kernels (16-bit and fp8) with it, the score-jump test of every variant (which takes the rare
# mid-way rescale), and the same score-jump test with that rescale removed
# (seesaw-b-first-no-midway-rescale.patch), which must fail. PARTS picks the parts (default "ab tests broken":
# ~8 min, more than one call allows: the first call ran PARTS="ab broken"). Results (one tarball) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06k
OUT=${OUT:-out-1206k-bfirst}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
rm -rf /tmp/b-first && cp -r templates /tmp/b-first && (cd /tmp/b-first && patch -s -p1 < "$OLDPWD/$HERE/seesaw-b-first.patch") || exit 1
rm -rf /tmp/b-first-broken && cp -r /tmp/b-first /tmp/b-first-broken \
  && (cd /tmp/b-first-broken && patch -s -p1 < "$OLDPWD/$HERE/seesaw-b-first-no-midway-rescale.patch") || exit 1
PARTS=${PARTS:-ab tests broken}
if [[ " $PARTS " == *" ab "* ]]; then
VARIANTS=bfirst=/tmp/b-first NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 \
  ROUNDS=${ROUNDS:-3} REP_MS=20 timeout 330 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:8192:16384 64,2,128,4096:8192:16384 64,1,128,16384 32,2,128,16384 \
  128,1,128,16384,fp8_e4m3 64,1,128,16384,fp8_e4m3 \
  2>&1 | grep -v Warning > "$RES/ab-bfirst.txt"
echo "ab rc=${PIPESTATUS[0]}"; grep -v "^built" "$RES/ab-bfirst.txt" | tail -30
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
fi
if [[ " $PARTS " == *" tests "* ]]; then
SEESAW=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
export MLAGEN_TEMPLATE_DIR=/tmp/b-first
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants > "$RES/prebuild-bfirst.txt" 2>&1
echo "prebuild rc=$?"
MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} OUT=$RES/suite-bfirst timeout 240 bash tools/gpu-suite.sh \
  -k "variants_against_reference or fp8_seesaw or (opt_in and seesaw) or long_context or split_count or large_batch or graph_replay or scores_that_jump" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -8
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
fi
if [[ " $PARTS " == *" broken "* ]]; then
# the mutation: the same score-jump test on the seesaw variants without the mid-way rescale must fail
export MLAGEN_TEMPLATE_DIR=/tmp/b-first-broken
T=tests/gpu/test_decode_gpu.py::test_scores_that_jump_mid_sequence
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider "$T[h128_p64_q2_causal]" "$T[h128_p64_fp8]" \
  > "$RES/suite-broken.txt" 2>&1
echo "broken (must fail): rc=$?"; grep -E "passed|failed|FAILED|Error" "$RES/suite-broken.txt" | tail -4
# and the same two with the patch as it is, which must pass
export MLAGEN_TEMPLATE_DIR=/tmp/b-first
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider "$T[h128_p64_q2_causal]" "$T[h128_p64_fp8]" \
  > "$RES/suite-jump-bfirst.txt" 2>&1
echo "b-first (must pass): rc=$?"; grep -E "passed|failed|FAILED|Error" "$RES/suite-jump-bfirst.txt" | tail -4
fi
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
