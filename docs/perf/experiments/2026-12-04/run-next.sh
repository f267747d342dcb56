#!/usr/bin/env bash
# The experiments this folder's third round left ready, in one GPU call (run from the project root on
# the GPU host, after `. ./.devkit/prelude.sh`; results under $OUT, default ./next-out):
#   1. headsn-batched-tma-issue.patch against main (checked against the reference), fp8 and bf16;
#   2. the heads_n timeline (tools/timeline_cell.py) of main and of the streaming ablation, fp8 16 rows;
#   3. the seesaw with TMA multicast across two m-block CTAs (cluster=2) at h_q 128, against cluster=1.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
t0=$(date +%s)
w=$(mktemp -d)
cp -r templates "$w/batch" && patch -s -d "$w/batch" -p1 < $E/headsn-batched-tma-issue.patch
JOBS=15 ROUNDS=3 VARIANTS=batch=$w/batch NEW_CACHE=$MLAGEN_CACHE_DIR timeout 200 python tools/ab_templates.py \
  16,1,128,4096:16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 16,1,128,16384 2>&1 | tee "$OUT/ab-batch.txt" | grep -v "^ *$" | tail -5
echo "t=$(( $(date +%s) - t0 ))"
cp -r templates "$w/tl" && python tools/timeline_patch.py "$w/tl"
cp -r templates "$w/tls" && patch -s -d "$w/tls" -p1 < $E/ablate-headsn-stream.patch && python tools/timeline_patch.py "$w/tls"
for v in tl tls; do
  MLAGEN_TEMPLATE_DIR=$w/$v timeout 120 python tools/timeline_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 2>&1 | tee "$OUT/timeline-$v.txt" | tail -12
done
MLAGEN_TEMPLATE_DIR=$w/tl timeout 120 python tools/timeline_cell.py --h-q 16 --s-k 16384 2>&1 | tee "$OUT/timeline-tl-bf16.txt" | tail -12
echo "t=$(( $(date +%s) - t0 ))"
timeout 200 python tools/sweep_cell.py --h-q 128 --s-q 1 --s-k 8192 16384 --plan cluster=1 --plan cluster=2 2>&1 | tee "$OUT/cluster2.txt" | tail -8
echo "t=$(( $(date +%s) - t0 ))"
