#!/usr/bin/env bash
# Twenty-second session, second call (~6 min): what the paired kernels had not been through yet.
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07v/run-final.sh
# 1. prebuild the GPU suite's variants, the spec files' kernels (every s_q's plan) and the fp8 grid's;
# 2. tests/gpu/test_embed_gpu.py: the C exports (DeepSeek-V3 fp8's is the paired kernel since 9ff40dd, never run
#    through its C example), the torch op, the tiny model;
# 3. compute-sanitizer memcheck and synccheck on pairs with an empty m-block (s_q 1) and without (s_q 2): fp8 at
#    40 rows per token, bf16 multicast at two KV heads of 63 rows;
# 4. two more `mlagen bench --grid fp8` runs (the first is in h100-pairs/), for medians of three.
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207v-final}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-vf} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" --exclude='*.png' .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 150 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants --specs specs --bench fp8 > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_embed_gpu.py 2>&1 | tail -15 > "$RES/tests-embed.txt"
tail -3 "$RES/tests-embed.txt"; echo "== embed tests at ${SECONDS}s"; pack
san() {  # tool variant s_q lens plan
  timeout 90 compute-sanitizer --tool "$1" --error-exitcode 9 python tools/sanitize_one.py "$2" --plan "$5" \
    --s-q "$3" --lens "$4" --parts 3 > "$RES/san-$1-$2-sq$3.txt" 2>&1
  echo "$1 $2 s_q $3 ($5): rc $? $(grep -E '^ok:|ERROR SUMMARY|RACECHECK SUMMARY' "$RES/san-$1-$2-sq$3.txt" | tail -1 | cut -c1-80)"
}
for tool in memcheck synccheck; do
  for sq in 1 2; do
    san $tool h40_p64_q2_causal_fp8 $sq 300,0,70 cluster=2
    san $tool h126_kv2_p64_q2 $sq 300,0,70 cluster=2
  done
done | tee "$RES/sanitizer.txt"
echo "== sanitizer at ${SECONDS}s"; pack
for run in 2 3; do
  timeout 60 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$RES" --name "h100-v-run$run" 2>&1 \
    | grep -v Warning > "$RES/bench-run$run-fp8.txt"
  echo "== bench run $run at ${SECONDS}s"; pack
done
