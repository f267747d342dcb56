#!/usr/bin/env bash
# After run-rs2.sh (fp8-regs-f16.patch applied): one-acc.patch on top (S^T's four scale groups through one
# float32 accumulator folded as each group completes, so 32 rows fit better; two MMA warpgroups allowed up to
# 32 rows), then same-run sweeps of fp8 s_q 1 at h_q 16 and 32: the default heads_n plan, one MMA warpgroup
# converting, two taking tiles in turn (each plan checked against the float32 reference first).
# Kernels prebuilt into .gpu-cache-rs4 (README.md beside this file). Results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206f}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs4}
grep -q fold_group templates/sm90/_heads_n_regs.py.j2 || patch -s -p1 < docs/perf/experiments/2026-12-06f/one-acc.patch || exit 1
for h in 16 32; do
  timeout 170 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 60 --plan "" \
    --plan loader=fp8_regs --plan loader=fp8_regs,schedule=heads_n,consumer_wgs=2 --h-q $h --s-q 1 \
    --s-k 4096 8192 16384 2>&1 | grep -v Warning | tee "$OUT/sweep-h$h-q1.txt" | tail -8
done
