#!/usr/bin/env bash
# Twentieth session's last call (~2.5 min): the whole GPU test file on the adopted templates (decode grid as a PDL
# dependent), with its new back-to-back test (calls sharing one workspace, eager and in one graph).
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07t/run-final.sh
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207t-final}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-f}
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 110 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout ${TESTS_TIMEOUT:-150} python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
