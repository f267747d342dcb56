#!/usr/bin/env bash
# fp8_regs with two MMA warpgroups (one-acc.patch on fp8-regs-f16.patch, the "base") against the same with
# vrot.patch (its V loads: odd quads read a token pair's rows in the other order, so a load's 8-thread phase
# spans both bank halves: 2-way bank conflicts instead of 4-way; templates only, applied to a copy in
# /tmp/rot). First the GPU tests of the two-warpgroup plan variants with each, then the default heads_n plan
# against base (sweep_cell), then base against vrot alternately (ab_templates, three rounds), fp8 h_q 16
# s_q 1, 4k-16k; every kernel checked against the float32 reference first. Kernels prebuilt into
# .gpu-cache-rs4 (README.md). Results under $OUT (~3 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206f-vrot}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs4}
grep -q fold_group templates/sm90/_heads_n_regs.py.j2 || { echo "apply fp8-regs-f16.patch and one-acc.patch first"; exit 1; }
rm -rf /tmp/rot && cp -r templates /tmp/rot && (cd /tmp/rot && patch -s -p1 < "$OLDPWD/docs/perf/experiments/2026-12-06f/vrot.patch") || exit 1
MLAGEN_GPU_EXAMPLES=40 OUT=$OUT/suite-base \
  timeout 150 bash tools/gpu-suite.sh -k "fp8_rs2" 2>&1 | tail -3
MLAGEN_TEMPLATE_DIR=/tmp/rot MLAGEN_GPU_EXAMPLES=40 OUT=$OUT/suite-vrot timeout 150 bash tools/gpu-suite.sh -k "fp8_rs2" 2>&1 | tail -3
timeout 120 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 60 --plan "" \
  --plan loader=fp8_regs,schedule=heads_n,consumer_wgs=2 --h-q 16 --s-q 1 --s-k 4096 8192 16384 2>&1 \
  | grep -v Warning | tee "$OUT/sweep-h16-q1.txt" | tail -7
VARIANTS=vrot=/tmp/rot NEW_CACHE=$MLAGEN_CACHE_DIR AB_PLAN=loader=fp8_regs,schedule=heads_n,consumer_wgs=2 ROUNDS=3 REP_MS=20 \
  timeout 200 python tools/ab_templates.py 16,1,128,4096:8192:16384,fp8_e4m3 2>&1 | grep -v Warning \
  | tee "$OUT/ab-vrot.txt" | tail -14
