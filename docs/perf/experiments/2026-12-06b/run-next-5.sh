#!/usr/bin/env bash
# How fast is the seesaw on 32-token tiles (issue 4)? If its MMA side alone (nocopy) is as fast as on
# 64-token tiles, a seesaw over four 32-token buffers (the next pair loading during this one) is worth
# building. seesaw-n32.patch lets the planner take block_n=32 for the seesaw and gives buffer 1's P
# tile its own swizzle; main and nocopy are timed at block_n 64 (the default) and 32, each pair in one
# A/B (the n32 kernels are checked against the reference). Applies the patch to this (disposable)
# checkout. From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
OUT=${OUT:-next-out-1206b5}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
patch -s -p1 < $HERE/seesaw-n32.patch || exit 1
w=$(mktemp -d)
cp -r templates "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < $HERE/ablate-seesaw-nocopy.patch
find "$w" templates -name "*.orig" -delete
for plan in "" "schedule=seesaw,block_n=32"; do
  echo "== plan: ${plan:-default}"
  AB_PLAN=$plan JOBS=15 ROUNDS=${ROUNDS:-3} AB_NO_CHECK=nocopy VARIANTS=nocopy=$w/nocopy \
    NEW_CACHE=$MLAGEN_CACHE_DIR timeout 200 python tools/ab_templates.py 128,1,128,16384 128,2,128,8192 2>&1 \
    | tee -a "$OUT/ab-n32.txt" | grep -v "^built" | grep -v "not checked" | tail -4
done
