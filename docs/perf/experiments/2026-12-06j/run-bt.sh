#!/usr/bin/env bash
# The seesaw's TMA warp reading a tile's block-table entry before it waits for the tile's buffer
# (seesaw-bt-early.patch; pages of 64 tokens or more), against the committed templates, same process, on the
# 16-bit cells where FlashMLA leads, two other seesaw cells and two fp8 seesaw cells; then the GPU tests of the
# seesaw kernels (16-bit and fp8) with it. ~5 min. Results (one tarball) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06j
OUT=${OUT:-out-1206j-bt}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-refill}
for v in seesaw-bt-early; do  # one variant
  rm -rf "/tmp/$v" && cp -r templates "/tmp/$v" && (cd "/tmp/$v" && patch -s -p1 < "$OLDPWD/$HERE/$v.patch") || exit 1
done
VARIANTS=bt=/tmp/seesaw-bt-early NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 \
  ROUNDS=${ROUNDS:-3} REP_MS=20 timeout 330 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,1,128,16384,fp8_e4m3 64,1,128,16384,fp8_e4m3 128,2,128,4096:8192:16384 64,2,128,4096:8192:16384 64,1,128,16384 32,2,128,16384 \
  2>&1 | grep -v Warning > "$RES/ab-bt.txt"
echo "ab rc=${PIPESTATUS[0]}"; grep -v "^built" "$RES/ab-bt.txt" | tail -30
# GPU tests of the seesaw kernels (16-bit and fp8) with the variant (its kernels compiled here first)
SEESAW=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16,h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
export MLAGEN_TEMPLATE_DIR=/tmp/seesaw-bt-early
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants > "$RES/prebuild-bt.txt" 2>&1
echo "prebuild rc=$?"
MLAGEN_GPU_VARIANTS=$SEESAW MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} OUT=$RES/suite-bt timeout 240 bash tools/gpu-suite.sh \
  -k "variants_against_reference or fp8_seesaw or (opt_in and seesaw) or long_context or split_count or large_batch or graph_replay" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -8
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
