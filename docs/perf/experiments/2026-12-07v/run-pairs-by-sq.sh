#!/usr/bin/env bash
# Twenty-second session: fp8 m-block pairs for the calls whose rows fill them (h_q 64 with two query tokens: 128
# rows per KV head), one kernel per s_q where the plans differ. One call, ~6 min:
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07v/run-pairs-by-sq.sh
# 1. prebuild the GPU suite's variants (three new plan variants: pairs with an empty m-block at odd counts) and
#    the fp8 grid's kernels (every s_q's plan);
# 2. the GPU tests of the fp8, cluster and dispatch cases (the new by-s_q test among them);
# 3. tools/sweep_cell.py, fp8 h_q 64 s_q 2 (8k, 16k; 4k), unpaired against the pair, same process, twice; the
#    bf16 cache's plan for tokens/s; h_q 40 s_q 2 (80 rows, the second m-block 16 real) the same way;
# 4. the whole GPU test file; 5. one `mlagen bench --grid fp8` run (h_q 64 s_q 2 cells now paired).
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207v}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-v} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" --exclude='*.png' .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants --bench fp8 > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; grep -c "^built\|^cached" "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 120 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "dispatches_on_s_q or paired or cluster2 or unpaired" 2>&1 | tail -15 > "$RES/tests-new.txt"
tail -3 "$RES/tests-new.txt"; echo "== new tests at ${SECONDS}s"; pack
for round in 1 2; do
  timeout 150 python tools/sweep_cell.py --h-q 64 --s-q 2 --s-k 4096 8192 16384 --cache fp8_e4m3 --rep-ms 20 \
    --plan cluster=1 --plan "" 2>&1 | grep -v Warning | tee "$RES/sweep-fp8-h64-sq2-r$round.txt"
  echo "== sweep h64 round $round at ${SECONDS}s"; pack
done
timeout 90 python tools/sweep_cell.py --h-q 64 --s-q 2 --s-k 4096 8192 16384 --rep-ms 20 --plan "" 2>&1 | grep -v Warning \
  | tee "$RES/sweep-bf16-h64-sq2.txt"
timeout 120 python tools/sweep_cell.py --h-q 40 --s-q 2 --s-k 4096 16384 --cache fp8_e4m3 --rep-ms 20 \
  --plan cluster=1 --plan "" 2>&1 | grep -v Warning | tee "$RES/sweep-fp8-h40-sq2.txt"
echo "== sweeps at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout ${TESTS_TIMEOUT:-150} python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
timeout 60 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$RES" --name "h100-v-run1" 2>&1 \
  | grep -v Warning > "$RES/bench-run1-fp8.txt"
grep -E "^mlagen at|^target" "$RES/bench-run1-fp8.txt"; echo "== bench at ${SECONDS}s"; pack
