#!/usr/bin/env bash
# Twenty-third session: calls with fewer query tokens than the spec's max_q on the heads_n kernel compiled for them
# (plan knob q_tokens, mlagen.plan.narrow_heads_n). One call, ~6 min:
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07w/run-narrow.sh
# 1. prebuild the GPU suite's variants, the spec files (every s_q's kernel) and the "mixed" grid's kernels;
# 2. the GPU dispatch tests (Kimi-K2 fp8 MTP; DeepSeek-V3 TP4 MTP over bf16 and fp8 caches: 1-token calls on
#    the narrower heads_n kernel);
# 3. `mlagen bench --grid mixed` with the planner's plans, then with `--plan q_tokens=0` (the spec's own kernel,
#    what ran before), then the planner's again (BENCH_RUNS, default "A1 B A2");
# 4. the whole GPU test file (skipped with NO_SUITE=1, which also prebuilds no suite variants).
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207w}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-w} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results.tar.xz" --exclude='*.png' .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
variants=(--variants); [[ -n "${NO_SUITE:-}" ]] && variants=()
timeout 240 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 "${variants[@]}" --specs specs --bench mixed \
  > "$RES/prebuild.txt" 2>&1
tail -1 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 150 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "dispatches_on_s_q" 2>&1 | tail -15 > "$RES/tests-new.txt"
tail -3 "$RES/tests-new.txt"; echo "== new tests at ${SECONDS}s"; pack
for run in ${BENCH_RUNS:-A1 B A2}; do
  plan=(); [[ $run == B ]] && plan=(--plan q_tokens=0)
  timeout 150 python -m mlagen bench --grid mixed --rep-ms 20 "${plan[@]}" --out "$RES" --name "mixed-$run" 2>&1 \
    | grep -v Warning > "$RES/bench-mixed-$run.txt"
  grep -E "^ceilings|^mlagen " "$RES/bench-mixed-$run.txt" | head -20; echo "== bench $run at ${SECONDS}s"; pack
done
if [[ -z "${NO_SUITE:-}" ]]; then
  MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout ${TESTS_TIMEOUT:-200} python -m pytest -q -p no:cacheprovider \
    tests/gpu/test_decode_gpu.py 2>&1 | tail -15 > "$RES/tests.txt"; tail -3 "$RES/tests.txt"
  echo "== tests at ${SECONDS}s"; pack
fi
