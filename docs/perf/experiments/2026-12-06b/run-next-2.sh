#!/usr/bin/env bash
# The seesaw with B's Q.K^T of tile b deferred (issue 4's 128-row cells), same-run A/B against main:
#   bdefer:  B multiplies a's P first and only then computes S for tile b, whose buffer was freed last
#            (at the end of the previous pair): b gets A's Q.K^T, softmax and a's P.V to land in;
#   bdefer2: as bdefer, but b's Q.K^T is issued before a's P.V (during A's softmax of a).
# Each variant is checked against the float32 reference first. From the project root after
# `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
OUT=${OUT:-next-out-1206b2}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
cp -r templates "$w/bdefer" && patch -s -d "$w/bdefer" -p1 < $HERE/seesaw-b-deferred.patch
cp -r "$w/bdefer" "$w/bdefer2" && patch -s -d "$w/bdefer2" -p1 < $HERE/seesaw-b-deferred-qk-first.patch
find "$w" -name "*.orig" -delete
JOBS=15 ROUNDS=${ROUNDS:-3} VARIANTS=bdefer=$w/bdefer,bdefer2=$w/bdefer2 \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout ${AB_TIMEOUT:-400} python tools/ab_templates.py \
  128,1,128,4096:16384 128,2,128,8192 64,2,128,8192:16384 32,2,128,16384 2>&1 | tee "$OUT/ab-bdefer.txt" | grep -v "^built" | tail -14
