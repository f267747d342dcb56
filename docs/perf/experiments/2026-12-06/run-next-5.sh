#!/usr/bin/env bash
# The ablations again, with tools/ab_templates.py fixed: mlagen.jit.compile memoised kernels without the
# template hash, so in VARIANTS mode (one cache folder for every template folder) each variant timed the
# base kernel. Same-run A/B: main, `stream` (no conversion, no wgmma), `nocopy` (stream without copies),
# `noconv` (no conversion) on fp8 heads_n h_q 16 and 32, 16k; `nomma` (the seesaw without wgmmas) at
# h_q 128 bf16, 16k. From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206e}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
for v in stream noconv; do cp -r templates "$w/$v" && patch -s -d "$w/$v" -p1 < "$E4/ablate-headsn-$v.patch"; done
cp -r "$w/stream" "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < docs/perf/experiments/2026-12-06/ablate-headsn-stream-nocopy.patch
cp -r templates "$w/nomma" && patch -s -d "$w/nomma" -p1 < "$E4/ablate-seesaw-nomma.patch"
find "$w" -name "*.orig" -delete
JOBS=15 ROUNDS=${ROUNDS:-2} AB_NO_CHECK=stream,nocopy,noconv,nomma \
  VARIANTS=stream=$w/stream,nocopy=$w/nocopy,noconv=$w/noconv,nomma=$w/nomma \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 400 python tools/ab_templates.py \
  16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 128,1,128,16384 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | grep -v "not checked" | tail -8
