#!/usr/bin/env bash
# The fp8 seesaw (base: the committed templates) against seesaw-fp8-vote.patch (one fast-path decision per
# warp and chunk, then branch-free rows) and ablate-seesaw-fp8-noconv.patch (no conversion at all: wrong
# results, not checked; what the conversion costs), same process, alternating (tools/ab_templates.py), fp8
# batch 128, then the GPU tests of the fp8 seesaw plan variants with the vote patch. Kernels prebuilt into
# .gpu-cache-ab (README.md). Results under $OUT (~3 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206g-ab}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-ab}
for v in vote noconv; do rm -rf "/tmp/$v" && cp -r templates "/tmp/$v"; done
(cd /tmp/vote && patch -s -p1 < "$OLDPWD/docs/perf/experiments/2026-12-06g/seesaw-fp8-vote.patch") || exit 1
(cd /tmp/noconv && patch -s -p1 < "$OLDPWD/docs/perf/experiments/2026-12-06g/ablate-seesaw-fp8-noconv.patch") || exit 1
VARIANTS=vote=/tmp/vote,noconv=/tmp/noconv AB_NO_CHECK=noconv AB_PLAN=schedule=seesaw NEW_CACHE=$MLAGEN_CACHE_DIR \
  ROUNDS=2 REP_MS=20 timeout 240 python tools/ab_templates.py 128,1,128,16384,fp8_e4m3 \
  16,1,128,4096:16384,fp8_e4m3 64,1,128,16384,fp8_e4m3 2>&1 | grep -v Warning | tee "$OUT/ab.txt" | tail -24
MLAGEN_TEMPLATE_DIR=/tmp/vote MLAGEN_GPU_EXAMPLES=40 OUT=$OUT/suite-vote timeout 120 bash tools/gpu-suite.sh -k "fp8_seesaw" 2>&1 \
  | grep -E "passed|failed|Error" | tail -4
