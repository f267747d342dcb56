#!/usr/bin/env bash
# Timelines of `nocopy` (stream without any copy: the bare handoffs between the TMA warp, the converting
# warps and the MMA warpgroup) at fp8 h_q 16 and 32, 16k: which role is busy all the time?
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206d}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
cp -r templates "$w/tlnc" && patch -s -d "$w/tlnc" -p1 < "$E4/ablate-headsn-stream.patch" \
  && patch -s -d "$w/tlnc" -p1 < docs/perf/experiments/2026-12-06/ablate-headsn-stream-nocopy.patch
find "$w" -name "*.orig" -delete
python tools/timeline_patch.py "$w/tlnc"
for h in 16 32; do
  MLAGEN_TEMPLATE_DIR=$w/tlnc timeout 100 python tools/timeline_cell.py --h-q $h --s-k 16384 --cache fp8_e4m3 \
    2>&1 | tee "$OUT/timeline-nocopy-h$h.txt" | tail -24
done
