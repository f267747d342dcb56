#!/usr/bin/env bash
# The model test prepared on 2026-12-05 (no device machine was lent that day), one GPU call after
# 2026-12-04/run-next.sh (run from the project root on the GPU host, after `. ./.devkit/prelude.sh`;
# results under $OUT, default ./next-out-1205):
#   1. the streaming ablation with its ring re-cut into 4 KB (fp8-sized) slots over the same 200 KB:
#      50 slots = 5 tiles (fp8ring50) and 20 slots = 2 tiles (fp8ring20), against the plain streaming
#      ablation (25 x 8 KB slots = 2.8 tiles), timed without the reference check (ablations);
#   2. the timeline of fp8ring50 (tools/timeline_cell.py with its ring geometry);
#   3. tools/probes/rs_dequant_probe.py: S^T from fp8 bytes by RS wgmma, checked against the reference.
# Reading it: the two-tile slot-reuse model (docs/perf/README.md, third round of 2026-12-04) predicts
# fp8ring50 well under stream's ~2.0 us per tile (towards tools/membench/pages.cu's 1.4-1.5 us) and
# fp8ring20 no faster than stream. If fp8ring50 is no faster either, the ring depth is not the limit
# and the register-dequant design (docs/design/fp8-heads-n-register-dequant.md) would inherit the pace.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
E=docs/perf/experiments/2026-12-05
OUT=${OUT:-next-out-1205}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
t0=$(date +%s)
w=$(mktemp -d)
cp -r templates "$w/stream" && patch -s -d "$w/stream" -p1 < $E4/ablate-headsn-stream.patch
for r in 50 20; do
  cp -r templates "$w/fr$r" && patch -s -d "$w/fr$r" -p1 < $E/ablate-headsn-stream-fp8ring$r.patch
done
JOBS=15 ROUNDS=3 AB_NO_CHECK=stream,fr50,fr20 VARIANTS=stream=$w/stream,fr50=$w/fr50,fr20=$w/fr20 \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 300 python tools/ab_templates.py \
  16,1,128,8192:16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 2>&1 | tee "$OUT/ab-fp8ring.txt" | grep -v "^ *$" | tail -8
echo "t=$(( $(date +%s) - t0 ))"
cp -r "$w/fr50" "$w/tlfr50" && python tools/timeline_patch.py "$w/tlfr50"
MLAGEN_TEMPLATE_DIR=$w/tlfr50 timeout 120 python tools/timeline_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 \
  --ring 50 --tile-chunks 10 2>&1 | tee "$OUT/timeline-fr50.txt" | tail -14
echo "t=$(( $(date +%s) - t0 ))"
# 3. the register-dequant design's fragment mapping on the GPU: S^T from fp8 bytes by RS wgmma against
#    the float64 reference (seconds; tools/probes/rs_dequant_probe.py)
timeout 120 python tools/probes/rs_dequant_probe.py 2>&1 | tee "$OUT/rs-probe.txt" | tail -3
echo "t=$(( $(date +%s) - t0 ))"
