#!/usr/bin/env bash
# Where the 128-row seesaw's warps wait, with and without KV loads (issue 4): first the pair timeline
# (tools/timeline_seesaw.py: per pair, each load's trip from issue to "seen full", each warpgroup's
# steps) of main at h_q 128 s_q 1 16k and s_q 2 8k, then ncu's per-instruction warp-stall samples of
# main and of the `nocopy` ablation (h_q 128, s_q 1, 16k), summarised by tools/sass_hotspots.py. Its
# hottest instructions name the waits (a full barrier's try-wait: data not landed; a named barrier: the
# other warpgroup; a wgmma wait: the tensor pipe) that the loads add.
# The pair loop's bounds in the SASS: `python -m mlagen.sass ENTRY/kernel.o` (main at 00b1abb:
# 0x52c0-0xd100). From the project root after `. ./.devkit/prelude.sh`; results under $OUT (the CSVs
# are ~2 MB each; the summaries are what matter).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
OUT=${OUT:-next-out-1206b8}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
cp -r templates "$w/tls" && python tools/timeline_seesaw.py patch "$w/tls" >/dev/null
for cell in "--s-q 1 --s-k 16384" "--s-q 2 --s-k 8192"; do
  MLAGEN_TEMPLATE_DIR=$w/tls timeout 120 python tools/timeline_seesaw.py run --h-q 128 $cell \
    2>&1 | tee -a "$OUT/timeline-h128.txt" | grep -v Warning
done
cp -r templates "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < $HERE/ablate-seesaw-nocopy.patch
for v in main nocopy; do
  [[ $v == main ]] && unset MLAGEN_TEMPLATE_DIR || export MLAGEN_TEMPLATE_DIR=$w/$v
  timeout 200 ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --clock-control none \
    --section SourceCounters --section WarpStateStats --metrics group:smsp__pcsamp_warp_stall_reasons \
    --export "$w/$v" -f python tools/profile_cell.py --h-q 128 --s-k 16384 > "$OUT/ncu-$v.log" 2>&1
  ncu --import "$w/$v.ncu-rep" --page source --csv --print-source sass > "$w/$v.csv" 2>/dev/null
  python tools/sass_hotspots.py "$w/$v.csv" --top 25 > "$OUT/hotspots-$v.txt" 2>&1
  head -30 "$OUT/hotspots-$v.txt"
done
