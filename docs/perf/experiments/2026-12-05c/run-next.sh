#!/usr/bin/env bash
# H100 round (2026-12-05c). The first H100 call in eleven days (../2026-12-05b/, this session) found every
# variant within noise again, but on the H100 the fp8 h_q 16 cell runs at 2.65 TB/s of reads, against the
# bf16 kernel's 3.0: the fp8 kernel looks bound by how its loads use DRAM (64-byte pieces of 656-byte
# rows in nine passes), and the 32-row cell 15% slower still, even without its math. One GPU call (from
# the project root after `. ./.devkit/prelude.sh`; results under $OUT, default ./next-out-1205c):
#   1. same-run A/B at fp8 h_q 16 and 32, 16k: main, the page as ten contiguous 1D bulk copies (`bulk`,
#      ../2026-12-04/ablate-headsn-bulk.patch: values land in the wrong places, so not checked) and `stream`;
#   2. timelines of main and `stream` at h_q 32 (where does the 32-row cell's extra time go?);
#   3. tools/membench/pages.cu on the H100 (the tile's copies alone: 1D pieces, random page order);
#   4. `mlagen bench --grid fp8` (its bf16 twins are the default grid): the issue-7 and issue-4 tables on
#      the H100 at this commit, twice where the call has time (kernels prebuilt into $MLAGEN_CACHE_DIR).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1205c}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
t0=$(date +%s)
w=$(mktemp -d)
cp -r templates "$w/bulk" && patch -s -d "$w/bulk" -p1 < $E4/ablate-headsn-bulk.patch
cp -r templates "$w/stream" && patch -s -d "$w/stream" -p1 < $E4/ablate-headsn-stream.patch
JOBS=15 ROUNDS=3 AB_NO_CHECK=bulk,stream VARIANTS=bulk=$w/bulk,stream=$w/stream \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 200 python tools/ab_templates.py \
  16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | tail -4
echo "t=$(( $(date +%s) - t0 ))"
cp -r templates "$w/tl" && python tools/timeline_patch.py "$w/tl"
cp -r "$w/stream" "$w/tls" && python tools/timeline_patch.py "$w/tls"
for v in tl tls; do
  MLAGEN_TEMPLATE_DIR=$w/$v timeout 100 python tools/timeline_cell.py --h-q 32 --s-k 16384 --cache fp8_e4m3 \
    2>&1 | tee "$OUT/timeline32-$v.txt" | tail -14
done
echo "t=$(( $(date +%s) - t0 ))"
nvcc -O3 -arch=sm_90a -o /tmp/pages tools/membench/pages.cu && timeout 90 /tmp/pages 2>&1 | tee "$OUT/pages.txt" | tail -30
echo "t=$(( $(date +%s) - t0 ))"
for run in 1 2 3; do
  (( run > 1 && $(date +%s) - t0 > 600 - 170 )) && break
  timeout 200 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$w/bench" --name "h100-fp8-1205c-run$run" 2>&1 \
    | tee -a "$OUT/bench.txt" | grep -E "ceilings|fp8_e4m3|^\[" | tail -3
  echo "t=$(( $(date +%s) - t0 ))"
done
tar -C "$w/bench" -cf "$OUT/bench.tar" .
