#!/usr/bin/env bash
# Prepared for the next device session (thirteenth session's follow-up), one call, ~6 min:
#  1. the many-pieces combine with deeper copy rounds (combine-batch16/32.patch: 16 / 32 pieces per warp per round
#     where the row is cut into column slices; 132 pieces in 3 / 2 rounds instead of 5): same-process A/B on the
#     small-batch cells (each kernel checked against the float32 reference first), and the per-kernel breakdown;
#  2. the default and long grids, three runs each with FlashMLA live, at the committed templates (issue 4's record
#     with the column-sliced combine; the long grid was last timed beside FlashMLA at ddf1ff7).
#   MLAGEN_COMMIT  the commit under test (the GPU host gets no .git)
#   FLASHMLA_XZ    tools/flashmla_ref/build.sh's library, xz-compressed (carried inside .devkit)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07m
OUT=${OUT:-out-1207m-next}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-n}
LIB=/tmp/libflashmla_ref.so
xz -dc "${FLASHMLA_XZ:?set FLASHMLA_XZ}" > $LIB || exit 1
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
for n in 16 32; do
  rm -rf /tmp/tmpl-b$n && cp -r templates /tmp/tmpl-b$n && patch -s -d /tmp/tmpl-b$n -p1 < $HERE/combine-batch$n.patch
done
( timeout 240 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 10 --bench default,long > "$RES/prebuild.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-b16 timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 3 --bench long > "$RES/prebuild-b16.txt" 2>&1 ) &
( MLAGEN_TEMPLATE_DIR=/tmp/tmpl-b32 timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 3 --bench long > "$RES/prebuild-b32.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
VARIANTS=b16=/tmp/tmpl-b16,b32=/tmp/tmpl-b32 NEW_CACHE=$MLAGEN_CACHE_DIR timeout 200 \
  python tools/ab_templates.py 16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 128,1,1,32768:131072 128,1,8,32768 2>&1 \
  | grep -v Warning > "$RES/ab-batch.txt"
echo "== ab at ${SECONDS}s"; grep -v "^kernels" "$RES/ab-batch.txt" | tail -8
# the decode kernel's fixed time: one request of one token (one CTA works, the rest exit after the work split),
# 132 requests of one token (one tile per CTA, nothing to merge), then the small-batch cells
# (and, at the committed templates, the batch-128 cells with 128 and 256 rows: how long their merge of ~65 cut
# requests' fp32 partials, 34 MB, takes after the decode grid)
SMALL="16,1,1,1 16,1,132,1 16,1,1,1024 16,1,1,32768 16,1,1,131072 128,1,1,1 128,1,132,1 128,1,1,32768"
for v in base b32; do
  dir=; cells=$SMALL; [ $v != base ] && dir=/tmp/tmpl-$v
  [ $v = base ] && cells="$SMALL 128,1,128,4096 128,2,128,4096 64,2,128,4096"
  MLAGEN_TEMPLATE_DIR=$dir timeout 100 python tools/call_breakdown.py --json "$RES/breakdown-$v.json" $cells 2>&1 \
    | grep -v Warning > "$RES/breakdown-$v.txt"
  cat "$RES/breakdown-$v.txt"
done
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
for run in 1 2 3; do
  name=h100-1207m-next-run$run
  timeout 150 python -m mlagen bench --grid default,long --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep "^target\|at or above" "$RES/$name.txt"
  [ $run = 1 ] || rm -f "$RES"/*run$run*.png   # the first run's charts are kept; the JSON has every number
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
# 3. a CTA's first four tiles in the heads_n pipeline (clock64 stamps, tools/timeline_patch.py with its window moved
#    to the start): how long the first chunks take to land, at batch 1 (five tiles a CTA) and batch 128 at 4k
rm -rf /tmp/tl0 && cp -r templates /tmp/tl0 && TL_T0=0 TL_NT=4 python tools/timeline_patch.py /tmp/tl0
for cell in "--batch 1 --s-k 32768" "--batch 128 --s-k 4096"; do
  echo "== h_q 16 $cell" >> "$RES/timeline-first.txt"
  TL_T0=0 TL_NT=4 MLAGEN_TEMPLATE_DIR=/tmp/tl0 timeout 90 python tools/timeline_cell.py --h-q 16 $cell 2>&1 \
    | grep -v Warning >> "$RES/timeline-first.txt"
done
tail -40 "$RES/timeline-first.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
