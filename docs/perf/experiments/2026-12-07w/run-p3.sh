#!/usr/bin/env bash
# Twenty-third session: heads_n over an fp8 cache with three producer warpgroups (eleven converting warps instead of
# seven; registers 88 / 232, plan knobs producer_regs=88,consumer_regs=232) against the default two (136 / 232).
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-07w/run-p3.sh
# First the GPU suite's plan variants pinning it; then tools/sweep_cell.py (each plan checked against the float32 reference first, NaN-poisoned tails, lengths 0 and
# non-multiples of the page), batch 128, page 64: fp8 h_q 16 s_q 1 (the issue-7 tokens/s cells) twice, alternating,
# with the bf16 cache's plan for tokens/s; fp8 h_q 32 s_q 1 once (ptxas spills 112 / 200 B there at 128 registers).
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1207w}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-w} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results-p3.tar.xz" .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
P3=producer_regs=88,consumer_regs=232
# the GPU suite's two plan variants pinning it (drawn cases against the reference)
MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-40} timeout 150 python -m pytest -q -p no:cacheprovider \
  tests/gpu/test_decode_gpu.py -k "opt_in_plans and fp8_p3" 2>&1 | tail -15 > "$RES/tests-p3.txt"
tail -3 "$RES/tests-p3.txt"; echo "== p3 tests at ${SECONDS}s"; pack
sweep_h16() {
  timeout 150 python tools/sweep_cell.py --h-q 16 --s-k 4096 8192 16384 --cache fp8_e4m3 --rep-ms 20 \
    --plan "" --plan "$P3" 2>&1 | grep -v Warning | tee "$RES/sweep-fp8-h16-r$1.txt"
  echo "== sweep h16 round $1 at ${SECONDS}s"; pack
}
sweep_h16 1
timeout 90 python tools/sweep_cell.py --h-q 16 --s-k 4096 8192 16384 --rep-ms 20 --plan "" 2>&1 | grep -v Warning \
  | tee "$RES/sweep-bf16-h16.txt"
[[ -n "${P3_SHORT:-}" ]] && exit 0  # P3_SHORT=1: one round at 16 rows, for a short device budget
timeout 120 python tools/sweep_cell.py --h-q 32 --s-k 8192 16384 --cache fp8_e4m3 --rep-ms 20 \
  --plan "" --plan "$P3" 2>&1 | grep -v Warning | tee "$RES/sweep-fp8-h32.txt"
echo "== sweeps at ${SECONDS}s"; pack
sweep_h16 2
