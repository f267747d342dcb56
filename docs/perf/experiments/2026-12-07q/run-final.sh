#!/usr/bin/env bash
# Seventeenth session's last call (~8 min) on main with the adopted merge: the GPU suite, compute-sanitizer on the
# many-pieces merge's test, then the long grid once more at the committed templates.
#   MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07q/run-final.sh
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207q-final}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-f}
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" .; }
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 14 --variants --bench long \
  > "$RES/prebuild.txt" 2>&1; tail -1 "$RES/prebuild.txt"
echo "== prebuild at ${SECONDS}s"
MLAGEN_GPU_EXAMPLES=${EXAMPLES:-40} OUT=$RES/suite timeout ${SUITE_TIMEOUT:-240} bash tools/gpu-suite.sh 2>&1 | tail -4
echo "== suite at ${SECONDS}s"; pack
SKIP_SUITE=1 SANITIZE=1 SANITIZE_TOOLS="memcheck racecheck" SANITIZE_K="many_pieces and (h16_p64_bf16 or h3_p32_q8_causal)" \
  OUT=$RES/sanitizer timeout ${SAN_TIMEOUT:-120} bash tools/gpu-suite.sh 2>&1 \
  | grep -E "exited|passed|failed|ERROR|Error|hazard" | head -20
echo "== sanitizer at ${SECONDS}s"; pack
timeout 90 python -m mlagen bench --grid long --rep-ms 20 --out "$RES" --name h100-1207q-final-long 2>&1 \
  | grep -v Warning > "$RES/long.txt"; rm -f "$RES"/*.png; xz -9 "$RES"/*.json
grep "^mlagen " "$RES/long.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
echo "== long at ${SECONDS}s"; pack
