#!/usr/bin/env bash
# Where the 128-row seesaw's time goes (issue 4), with the fixed A/B tool: main against the ablations
# nocopy (no KV copies: MMAs and softmax alone), nomma (no wgmma: loads and softmax alone), noqk (no
# Q.K^T wgmma), nopv (no P.V wgmma); then ncu on main, nocopy and noqk (h_q 128, s_q 1, 16k): tensor
# pipe, shared-memory and DRAM utilisation, warp stalls. From the project root after
# `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206b3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
cp -r templates "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < $HERE/ablate-seesaw-nocopy.patch
for v in nomma noqk nopv; do cp -r templates "$w/$v" && patch -s -d "$w/$v" -p1 < $E4/ablate-seesaw-$v.patch; done
find "$w" -name "*.orig" -delete
JOBS=15 ROUNDS=${ROUNDS:-2} AB_NO_CHECK=nocopy,nomma,noqk,nopv \
  VARIANTS=nocopy=$w/nocopy,nomma=$w/nomma,noqk=$w/noqk,nopv=$w/nopv \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 300 python tools/ab_templates.py 128,1,128,16384 128,2,128,8192 2>&1 \
  | tee "$OUT/ab-ablations.txt" | grep -v "^built" | grep -v "not checked" | tail -6
for v in base nocopy noqk; do
  [[ $v == base ]] && unset MLAGEN_TEMPLATE_DIR || export MLAGEN_TEMPLATE_DIR=$w/$v
  timeout 150 ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --clock-control none \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section MemoryWorkloadAnalysis_Tables --section WarpStateStats \
    --metrics l1tex__data_bank_reads.avg.pct_of_peak_sustained_elapsed,l1tex__data_bank_writes.avg.pct_of_peak_sustained_elapsed,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed \
    python tools/profile_cell.py --h-q 128 --s-k 16384 > "$OUT/ncu-$v.txt" 2>&1
  grep -E "Duration|gmma|data_bank|DRAM Throughput|Shared|Stall|Issue Slots|Memory Throughput" "$OUT/ncu-$v.txt" | head -20
done
