#!/usr/bin/env bash
# Is the row split's fp8 loss shared-memory bandwidth (docs/design/heads-n-role-split.md)? ncu on fp8
# h_q 32 s_q 1 16k, heads_n with one MMA warpgroup (the default) and with two splitting the rows:
# shared-memory wavefronts and bank conflicts, the LSU/MIO pipes and the tensor pipe, per kernel.
# Prebuild (no GPU needed; or let the GPU host compile the two, ~20 s):
#   MLAGEN_CACHE_DIR=.gpu-cache-smem python -c 'import mlagen.jit; from mlagen.bench import cell_spec;
#   from mlagen.plan import plan_for; s = cell_spec(dict(h_q=32, s_q=1, page=64, cache="fp8_e4m3"));
#   [mlagen.jit.build(s, plan_for(s, **k)) for k in ({}, dict(schedule="heads_n", consumer_wgs=2))]'
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT (~1 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206c-smem}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
METRICS=l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,\
smsp__inst_executed_pipe_lsu.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,\
sm__memory_throughput.avg.pct_of_peak_sustained_elapsed,l1tex__throughput.avg.pct_of_peak_sustained_active,\
gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
for v in "one:" "rows:schedule=heads_n,consumer_wgs=2"; do
  name=${v%%:*}; plan=${v#*:}
  timeout 150 ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --metrics "$METRICS" \
    python tools/profile_cell.py --h-q 32 --s-k 16384 --cache fp8_e4m3 --plan "$plan" > "$OUT/ncu-$name.txt" 2>&1
  grep -E "plan|wavefronts|conflicts|pipe_lsu|tensor|throughput|duration" "$OUT/ncu-$name.txt" | grep -v "==PROF"
done
