#!/usr/bin/env bash
# Correct variants judged "within noise" by VARIANTS-mode A/Bs that timed the base kernel (see run-next-5.sh),
# timed again with the fixed tool, each checked against the reference first: seesaw lazy rescale + mask on
# the last tiles only and the seesaw's next S issued behind the last P.V (h_q 128 bf16, 16k); heads_n's
# next-tile S^T ahead (fp8 h_q 32, 16k). From the project root after `. ./.devkit/prelude.sh`.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206f}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
for v in seesaw-lazy-rescale-mask-last seesaw-s-ahead headsn-st-ahead; do
  cp -r templates "$w/$v" && patch -s -d "$w/$v" -p1 < "$E4/$v.patch"; done
find "$w" -name "*.orig" -delete
JOBS=15 ROUNDS=${ROUNDS:-2} VARIANTS=lazymask=$w/seesaw-lazy-rescale-mask-last,sahead=$w/seesaw-s-ahead,stahead=$w/headsn-st-ahead \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 400 python tools/ab_templates.py \
  128,1,128,16384 32,1,128,16384,fp8_e4m3 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | grep -v "^built" | tail -6
