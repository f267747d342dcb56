#!/usr/bin/env bash
# The committed templates (fp8-sx.patch applied, commit MLAGEN_COMMIT) on the H100, then
# seesaw-fp8-pairs.patch against them (~7 min):
#  1. every kernel compiled on the GPU host (prebuild.py, JOBS=15);
#  2. the drawn-case GPU test on the fp8 variants (seesaw and heads_n), the fp8 seesaw tests and the
#     blocks outside the fast dequantization range, with the committed templates (a failure stops the run);
#  3. A/B, same process, alternating: the committed templates against seesaw-fp8-pairs.patch (a warp
#     converts the two chunks that share a scale, reading and checking the scales once), fp8 batch 128
#     s_k 16384 at h_q 128 s_q 1, h_q 64 s_q 2, h_q 32 s_q 2 (the seesaw's cells);
#  4. the GPU tests of 2. with the pairs templates;
#  5. `mlagen bench --grid fp8`, RUNS times (default 2).
# Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206h-final}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06h
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-final}
rm -rf /tmp/pairs && cp -r templates /tmp/pairs && (cd /tmp/pairs && patch -s -p1 < "$OLDPWD/$HERE/seesaw-fp8-pairs.patch") || exit 1
JOBS=15 PAIRS_TMPL=/tmp/pairs timeout 200 python $HERE/prebuild.py "$MLAGEN_CACHE_DIR" > "$OUT/prebuild.txt" 2>&1
echo "prebuild: $(grep -c '^built\|^cached' "$OUT/prebuild.txt") kernels, $(grep -c FAILED "$OUT/prebuild.txt") failed"
SUITE_VARIANTS=h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8,h16_p32_q3_causal_fp16_fp8
MLAGEN_GPU_VARIANTS=$SUITE_VARIANTS MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-80} OUT=$OUT/suite timeout 150 \
  bash tools/gpu-suite.sh -k "variants_against_reference or fp8_seesaw or fp8_blocks_outside" 2>&1 | grep -E "passed|failed" | tail -3
grep -q ' passed' "$OUT/suite/gpu-suite.log" && ! grep -q ' failed' "$OUT/suite/gpu-suite.log" \
  || { echo "GPU tests did not pass: nothing more run"; exit 1; }
VARIANTS=pairs=/tmp/pairs NEW_CACHE=$MLAGEN_CACHE_DIR ROUNDS=2 REP_MS=20 timeout 150 python tools/ab_templates.py \
  128,1,128,16384,fp8_e4m3 64,2,128,16384,fp8_e4m3 32,2,128,16384,fp8_e4m3 2>&1 | grep -v Warning \
  | tee "$OUT/ab-pairs.txt" | grep -v "^built" | tail -8
MLAGEN_TEMPLATE_DIR=/tmp/pairs MLAGEN_GPU_VARIANTS=$SUITE_VARIANTS MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-80} \
  OUT=$OUT/suite-pairs timeout 120 bash tools/gpu-suite.sh -k "variants_against_reference or fp8_seesaw or fp8_blocks_outside" \
  2>&1 | grep -E "passed|failed" | tail -3
for run in $(seq 1 "${RUNS:-2}"); do
  timeout 90 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$OUT" --name "h100-1206h-run$run" 2>&1 \
    | grep -v Warning > "$OUT/bench-run$run.txt"; tail -2 "$OUT/bench-run$run.txt"
done
