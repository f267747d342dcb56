#!/usr/bin/env bash
# Next session's first call (~5 min): the whole GPU test file with the fp8 pairs as DeepSeek-V3 fp8's default (tests
# first), then three `mlagen bench --grid fp8` runs and their medians (issue 7's cells, bf16 twins in the same runs).
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07u/run-final.sh
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207u-final}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-uf} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" --exclude='*.png' .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants --bench fp8 > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout ${TESTS_TIMEOUT:-150} python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
for run in 1 2 3; do
  timeout 60 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$RES" --name "h100-u-run$run" 2>&1 \
    | grep -v Warning > "$RES/bench-run$run-fp8.txt"
  echo "== run $run at ${SECONDS}s"; pack
done
python tools/compare_runs.py "$RES"/h100-u-run*-fp8.json > "$RES/median-fp8.txt" 2>&1
grep -E "^mlagen at|^target" "$RES/median-fp8.txt"; pack
