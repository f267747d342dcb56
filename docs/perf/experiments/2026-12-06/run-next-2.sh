#!/usr/bin/env bash
# Is the fp8 heads_n pace (~2.2 us per CTA-tile at N = 32 whether the bytes come from DRAM or, for the
# second column block, from L2) set by the conversion and MMAs or by the pipeline skeleton? Same-run A/B
# of main against `stream` (no conversion, no wgmma) and `noconv` (no conversion) on heads_n, fp8, 16k:
# h_q 64 in two column blocks (AB_PLAN=schedule=heads_n) and h_q 32 (one block, the default plan).
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
for v in stream noconv; do cp -r templates "$w/$v" && patch -s -d "$w/$v" -p1 < "$E4/ablate-headsn-$v.patch"; done
AB_PLAN=schedule=heads_n JOBS=15 ROUNDS=3 AB_NO_CHECK=stream,noconv VARIANTS=stream=$w/stream,noconv=$w/noconv \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 300 python tools/ab_templates.py \
  64,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | tail -6
