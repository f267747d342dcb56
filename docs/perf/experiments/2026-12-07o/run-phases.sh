#!/usr/bin/env bash
# Fifteenth session, one call (~2 min): where the heads_n decode kernel's fixed ~10 us go (README §2).
#  1. tools/call_breakdown.py on the committed kernels: each kernel's duration (CUPTI) for one-token requests,
#     batch 1 and 4 at 32k, batch 128 at 4k (h_q 16);
#  2. phase_probe.py with phase_patch.py's stamps: per CTA, kernel entry, work split, TMA start, Q ready,
#     first tile full, last copy, last tile full, epilogue, end (%globaltimer), same cells.
# The CTAs' own time (first entry to last end) against the CUPTI duration says how much lies outside them.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07o
OUT=${OUT:-out-1207o-phases}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
rm -rf /tmp/ph && cp -r templates /tmp/ph && python $HERE/phase_patch.py /tmp/ph || exit 1
timeout 150 python tools/call_breakdown.py 16,1,1,1 16,1,132,1 16,1,1,32768 16,1,4,32768 16,1,128,4096 \
  --json "$RES/breakdown.json" 2>&1 | grep -v Warning | tee "$RES/breakdown.txt"
echo "== breakdown at ${SECONDS}s"
MLAGEN_TEMPLATE_DIR=/tmp/ph MLAGEN_CACHE_DIR=/tmp/c-ph timeout 200 python $HERE/phase_probe.py --out "$RES" \
  1,1 132,1 1,32768 1,131072 4,32768 128,4096 2>&1 | grep -v Warning | tee "$RES/phases.txt"
echo "== phases at ${SECONDS}s"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
ls -la "$OUT"
[ -n "${SKIP_LONG:-}" ] && exit 0   # (a short call: steps 1-2 only)
# 3. the long grid once more at the committed templates (with the fifteenth session's two W=1 runs of
#    run-waves.sh: a median of three on the same H100)
( timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 12 --bench long > "$RES/prebuild.txt" 2>&1 )
timeout 100 python -m mlagen bench --grid long --rep-ms 20 --out "$RES" --name h100-1207o-long-r3 2>&1 \
  | grep -v Warning > "$RES/long-r3.txt"; rm -f "$RES"/*.png
grep "^mlagen " "$RES/long-r3.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
echo "== long at ${SECONDS}s"
tar -C "$RES" -cJf "$OUT/results.tar.xz" .
