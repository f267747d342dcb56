#!/usr/bin/env bash
# The bare handoffs: `stream` (no conversion, no wgmma) against `nocopy` (stream, and the TMA warp issues no
# copy: it only arrives on the barriers its copies would complete) and main, fp8 heads_n, 16k: h_q 16, 32
# and 64 (two column blocks). If nocopy keeps the pace, the barrier handoffs set it; if it is much faster,
# the copies' issue does. From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206c}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
cp -r templates "$w/stream" && patch -s -d "$w/stream" -p1 < "$E4/ablate-headsn-stream.patch"
cp -r "$w/stream" "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < docs/perf/experiments/2026-12-06/ablate-headsn-stream-nocopy.patch
find "$w" -name "*.orig" -delete
AB_PLAN=schedule=heads_n JOBS=15 ROUNDS=3 AB_NO_CHECK=stream,nocopy VARIANTS=stream=$w/stream,nocopy=$w/nocopy \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 300 python tools/ab_templates.py \
  16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 64,1,128,16384,fp8_e4m3 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | tail -8
