#!/usr/bin/env bash
# Twenty-first session: the fp8 seesaw over a 2-CTA cluster (`cluster=2`: each CTA of an m-block pair loads and
# converts half of every tile's latent chunks into both CTAs' buffers, st.async into the peer's). One call, ~5 min:
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07u/run-fp8-cluster.sh
# 1. prebuild the GPU suite's variants (the two new fp8 cluster=2 plans among them);
# 2. tools/sweep_cell.py, fp8 h_q 128 s_q 1 and 2 (128 and 256 rows per KV head), heuristic plan against cluster=2
#    (each plan checked against the float32 reference in a child process first: a hang is reported, not waited for),
#    and the bf16 cache's heuristic plan for tokens/s;
# 3. the GPU tests of the fp8 and cluster variants.
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207u}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-u}
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 110 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
for sq in 1 2; do
  timeout 150 python tools/sweep_cell.py --h-q 128 --s-q $sq --s-k 4096 16384 --cache fp8_e4m3 --rep-ms 20 \
    --plan "" --plan cluster=2 2>&1 | grep -v Warning | tee "$RES/sweep-fp8-h128-sq$sq.txt"
  echo "== sweep s_q $sq at ${SECONDS}s"; pack
done
timeout 90 python tools/sweep_cell.py --h-q 128 --s-q 1 --s-k 4096 16384 --rep-ms 20 --plan "" 2>&1 | grep -v Warning \
  | tee "$RES/sweep-bf16-h128-sq1.txt"
echo "== bf16 at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout ${TESTS_TIMEOUT:-150} python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "fp8 or cluster" 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
echo "== tests at ${SECONDS}s"; pack
