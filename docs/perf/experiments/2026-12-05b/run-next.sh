#!/usr/bin/env bash
# What the fp8ring test (../2026-12-05/) left: the ring depth is not the limit (5 tiles in flight as
# fast as 2), and the TMA warp never waits for a slot (~90 cycles), yet slots sit empty ~3 us before
# their next copy. So the TMA warp itself is slow between copies. One GPU call (run from the project
# root on the GPU host after `. ./.devkit/prelude.sh`; results under $OUT, default ./next-out-1205b):
#   1. same-run A/B at h_q 16 and 32, 16k, fp8 (and bf16 h_q 16): main with its tile's copies issued
#      back to back after all slot waits (`batch`), main with the block table read a tile ahead (`bt1`),
#      main with an L2 evict-first policy on the cache copies (`ef`),
#      all three checked against the reference, and ablations
#      (no check): `stream`, `stream` + no block-table read (`snobt`), main + no block-table read
#      (`nobt`), `stream` + batched issue (`sbatch`);
#   2. timelines (tools/timeline_cell.py, now with the TMA warp's issue-to-next-wait gaps and each
#      CTA's mean pace) of main and `stream`, fp8 16 rows, raw stamps saved;
#   3. cluster=2 against cluster=1 at h_q 128 (from ../2026-12-04/run-next.sh).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
E4=docs/perf/experiments/2026-12-04
E=docs/perf/experiments/2026-12-05b
OUT=${OUT:-next-out-1205b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
t0=$(date +%s)
w=$(mktemp -d)
cp -r templates "$w/batch" && patch -s -d "$w/batch" -p1 < $E4/headsn-batched-tma-issue.patch
cp -r templates "$w/stream" && patch -s -d "$w/stream" -p1 < $E4/ablate-headsn-stream.patch
cp -r "$w/stream" "$w/snobt" && patch -s -d "$w/snobt" -p1 < $E/ablate-headsn-stream-nobt.patch
cp -r templates "$w/bt1" && patch -s -d "$w/bt1" -p1 < $E/headsn-bt-ahead.patch
cp -r templates "$w/nobt" && patch -s -d "$w/nobt" -p1 < $E/ablate-headsn-stream-nobt.patch
cp -r "$w/stream" "$w/sbatch" && patch -s -d "$w/sbatch" -p1 < $E4/headsn-batched-tma-issue.patch
cp -r templates "$w/ef" && patch -s -d "$w/ef" -p1 < $E/headsn-kv-evict-first.patch
# SHORT=1 (a call with less device time left): the two correct variants and the two main ablations,
# the main timeline only, no cluster sweep
if [[ ${SHORT:-0} == 1 ]]; then
  variants=bt1=$w/bt1,ef=$w/ef,stream=$w/stream,nobt=$w/nobt; no_check=stream,nobt; timelines=tl
else
  variants=batch=$w/batch,bt1=$w/bt1,ef=$w/ef,stream=$w/stream,snobt=$w/snobt,nobt=$w/nobt,sbatch=$w/sbatch
  no_check=stream,snobt,nobt,sbatch; timelines="tl tls"
fi
JOBS=15 ROUNDS=3 AB_NO_CHECK=$no_check VARIANTS=$variants \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 330 python tools/ab_templates.py \
  16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 16,1,128,16384 2>&1 | tee "$OUT/ab.txt" | grep -v "^ *$" | tail -8
echo "t=$(( $(date +%s) - t0 ))"
cp -r templates "$w/tl" && python tools/timeline_patch.py "$w/tl"
cp -r "$w/stream" "$w/tls" && python tools/timeline_patch.py "$w/tls"
for v in $timelines; do
  MLAGEN_TEMPLATE_DIR=$w/$v timeout 100 python tools/timeline_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 \
    --save "$OUT/stamps-$v.npy" 2>&1 | tee "$OUT/timeline-$v.txt" | tail -16
done
echo "t=$(( $(date +%s) - t0 ))"
# the cluster sweep only where the call has time left (a call may run 600 s)
[[ ${SHORT:-0} != 1 ]] && (( $(date +%s) - t0 < 380 )) && timeout 150 python tools/sweep_cell.py --h-q 128 --s-q 1 --s-k 8192 16384 --plan cluster=1 --plan cluster=2 2>&1 | tee "$OUT/cluster2.txt" | tail -8
echo "t=$(( $(date +%s) - t0 ))"
