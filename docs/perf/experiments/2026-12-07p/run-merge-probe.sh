#!/usr/bin/env bash
# Prepared in the sixteenth session for the next one, one call (~1-2 min): where the many-pieces merge's time goes
# (merge_probe.py: %globaltimer per merge CTA at launch, after griddepcontrol.wait, after its piece count, its
# row's merged LSE (two-pass merge) or its first round of copies (the one-round merge of 2026-12-07q, whichever
# the templates have), its pieces, its store), beside tools/call_breakdown.py's kernel durations, h_q 16 batch 1 / 4.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07p
OUT=${OUT:-out-1207p-merge-probe}
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 100 python tools/call_breakdown.py 16,1,1,32768 16,1,1,131072 16,1,4,32768 2>&1 | grep -v Warning \
  | tee "$RES/breakdown.txt"
rm -rf /tmp/mg && cp -r templates /tmp/mg && python $HERE/merge_probe.py patch /tmp/mg || exit 1
MLAGEN_TEMPLATE_DIR=/tmp/mg MLAGEN_CACHE_DIR=/tmp/c-mg timeout 150 python $HERE/merge_probe.py run \
  1,32768 1,131072 4,32768 2>&1 | grep -v Warning | tee "$RES/merge-probe.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
