#!/usr/bin/env bash
# The 16-bit seesaw with its KV groups refilled by the MMA warpgroups themselves (FlashMLA's way) instead of
# through the TMA warp, against the committed templates, on the cells where FlashMLA leads (and two seesaw
# cells where it does not); then the GPU tests of the 16-bit seesaw kernels with the faster variant. ~6 min.
#   seesaw-self-refill.patch        a warpgroup reloads a chunk group as soon as it has read it for the last
#                                   time in a segment (buffer 1's second group, which holds b's P, after both)
#   seesaw-self-refill-pages.patch  the same, the next tiles' block-table entries read at the start of the pair
# Results (one tarball: a call returns at most 8 files) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06j
OUT=${OUT:-out-1206j-refill}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-refill}
for v in seesaw-self-refill seesaw-self-refill-pages; do
  rm -rf "/tmp/$v" && cp -r templates "/tmp/$v" && (cd "/tmp/$v" && patch -s -p1 < "$OLDPWD/$HERE/$v.patch") || exit 1
done
VARIANTS=refill=/tmp/seesaw-self-refill,pages=/tmp/seesaw-self-refill-pages NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=15 \
  ROUNDS=${ROUNDS:-3} REP_MS=20 timeout 330 python tools/ab_templates.py \
  128,1,128,4096:8192:16384 128,2,128,4096:8192:16384 64,2,128,4096:8192:16384 64,1,128,16384 32,2,128,16384 \
  2>&1 | grep -v Warning > "$RES/ab-refill.txt"
echo "ab rc=${PIPESTATUS[0]}"; grep -v "^built" "$RES/ab-refill.txt" | tail -30
# GPU tests of the 16-bit seesaw kernels with the pages variant (its kernels compiled here first)
SEESAW16=h128_p64_bf16,h128_p64_q2_causal,h16_p1,h64_p16_q4_causal_fp16,h128_p128_fp16,h126_kv2_p64_q2,h63_ropehead_p32,h64_kv2_p4_q2_causal_fp16
export MLAGEN_TEMPLATE_DIR=/tmp/seesaw-self-refill-pages
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants > "$RES/prebuild-pages.txt" 2>&1
echo "prebuild rc=$?"
MLAGEN_GPU_VARIANTS=$SEESAW16 MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} OUT=$RES/suite-pages timeout 240 bash tools/gpu-suite.sh \
  -k "variants_against_reference or (opt_in and seesaw) or long_context or split_count or large_batch or graph_replay" \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -8
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
