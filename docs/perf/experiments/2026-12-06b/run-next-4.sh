#!/usr/bin/env bash
# Does the 128-row seesaw's time follow its shared-memory traffic (issue 4)? Same-run A/B of main against
#   qkrs0: ablation (wrong by design): every Q.K^T k-step takes its A operand from Q chunk 0 held in
#          registers, so Q.K^T reads no Q from shared memory (73.7 KB less per tile, same MMA work);
#   qreg1: Q's RoPE chunk held in registers for the whole segment (correct; 8 KB less per tile);
# built by seesaw_q_registers.py; then where each kernel's local-memory spills are (cuobjdump).
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
OUT=${OUT:-next-out-1206b4}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
python $HERE/seesaw_q_registers.py "$w/qkrs0" zero >/dev/null
python $HERE/seesaw_q_registers.py "$w/qreg1" chunks:8 >/dev/null
JOBS=15 ROUNDS=${ROUNDS:-3} AB_NO_CHECK=qkrs0 VARIANTS=qkrs0=$w/qkrs0,qreg1=$w/qreg1 \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout 300 python tools/ab_templates.py 128,1,128,16384 128,2,128,8192 2>&1 \
  | tee "$OUT/ab-qreg.txt" | grep -v "^built" | grep -v "not checked" | tail -6
for d in "$MLAGEN_CACHE_DIR"/kernels/mla_h128*q1*; do
  cuobjdump -sass "$d/kernel.o" > "$OUT/$(basename "$d").sass" 2>/dev/null || { echo "no cuobjdump"; break; }
  echo "$(basename "$d"): $(grep -c 'STL' "$OUT/$(basename "$d").sass") STL, $(grep -c 'LDL' "$OUT/$(basename "$d").sass") LDL, $(grep -c 'HGMMA' "$OUT/$(basename "$d").sass") HGMMA"
done
