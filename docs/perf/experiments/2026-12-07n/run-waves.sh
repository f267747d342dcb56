#!/usr/bin/env bash
# Fourteenth session, one call (~4 min): does a small-batch call lose its tail to slow SMs, and do more waves of
# CTAs (the existing runtime knob parts_per_sm: 2 to 4 CTAs per SM, run one after another, the block scheduler
# handing the later ones to the SMs that finish first) win that back on the long grid?
#  1. `mlagen bench --grid long --plan parts_per_sm=W` for W = 1..4, twice in alternating order;
#  2. balance_probe.py: per-CTA spans and SMs of six stamped calls per cell (h_q 16).
# One tarball under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07n
OUT=${OUT:-out-1207n-waves}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-w}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
GPU=h100; grep -q H200 "$RES/gpu.txt" && GPU=h200
rm -rf /tmp/tl0 && cp -r templates /tmp/tl0 && TL_T0=0 TL_NT=4 python tools/timeline_patch.py /tmp/tl0
( timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 12 --bench long > "$RES/prebuild.txt" 2>&1 ) &
wait; echo "prebuild at ${SECONDS}s"
for round in $(seq 1 ${ROUNDS:-2}); do
  order=${WAVES:-1 2 3 4}; [ $round = 2 ] && order=$(echo $order | tr " " "\n" | tac | tr "\n" " ")
  for w in $order; do
    name=$GPU-1207n-waves$w-r$round
    timeout 100 python -m mlagen bench --grid long --plan parts_per_sm=$w --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
      | grep -v Warning > "$RES/$name.txt"
    rm -f "$RES"/*.png
    echo "== parts_per_sm=$w round $round at ${SECONDS}s"; grep "^mlagen " "$RES/$name.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
  done
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
TL_T0=0 TL_NT=4 MLAGEN_TEMPLATE_DIR=/tmp/tl0 MLAGEN_CACHE_DIR=/tmp/c-tl timeout 200 python $HERE/balance_probe.py \
  --out "$RES" 1,32768 1,65536 1,131072 4,32768 8,32768 128,4096 2>&1 | grep -v Warning | tee "$RES/probe.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
