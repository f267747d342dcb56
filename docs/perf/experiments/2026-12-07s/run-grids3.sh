#!/usr/bin/env bash
# The issue-4/7 check as the issues state it: three `mlagen bench` runs of every grid on one machine (median of
# three, ratio against the roofline measured in each run), then the GPU tests over every variant. One call, ~7 min:
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<the commit sent> OUT=$OUT bash docs/perf/experiments/2026-12-07s/run-grids3.sh
# MLAGEN_COMMIT: the device copy's git metadata can be stale (the nineteenth session's JSON named the session's first
# commit), so name the commit sent. GRIDS (default: every grid), RUNS (default 3). Results: $OUT/results.tar.xz,
# packed after each step; summary lines (targets) on stdout.
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207s-grids3}")
RES=$(mktemp -d)
mkdir -p "$OUT"
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" --exclude='*.png' .; }
GRIDS=${GRIDS:-default,long,pages,dtypes,mtp4,fp8}
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=$PWD/.gpu-cache-g3 MLAGEN_COMMIT
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv | tee "$RES/gpu.txt"
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants --bench "$GRIDS" \
  > "$RES/prebuild.txt" 2>&1; echo "== prebuild rc $? at ${SECONDS}s"; tail -1 "$RES/prebuild.txt"; pack
for run in $(seq 1 "${RUNS:-3}"); do
  for grid in ${GRIDS//,/ }; do
    timeout 60 python -m mlagen bench --grid "$grid" --rep-ms 20 --out "$RES" --name "h100-g3-run$run" 2>&1 \
      | grep -v Warning > "$RES/bench-run$run-$grid.txt"
  done
  echo "== run $run at ${SECONDS}s"; pack
done
for grid in ${GRIDS//,/ }; do
  python tools/compare_runs.py "$RES"/h100-g3-run*-"$grid".json > "$RES/median-$grid.txt" 2>&1
  grep -E "^mlagen at|^target" "$RES/median-$grid.txt" | sed "s/^/$grid: /"
done
pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 150 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py 2>&1 | tail -15 > "$RES/tests.txt"; tail -2 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
