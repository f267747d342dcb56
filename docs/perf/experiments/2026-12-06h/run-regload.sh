#!/usr/bin/env bash
# Prepared for the next GPU session (not run): seesaw-fp8-regload.patch (docs/design/fp8-seesaw-register-loads.md)
# against the committed templates, on the H100 (~6 min; carry .devkit only, kernels compiled on the host):
#  1. A/B in one process, alternating, every kernel checked against the float32 reference first (a kernel that
#     hangs is reported and left out): fp8 b128 s_k 16384 at h_q 128 s_q 1, h_q 64 s_q 2, h_q 32 s_q 2;
#  2. the drawn-case GPU test on the fp8 variants and the fp8 seesaw tests (page 16 among them: a block-table
#     lookup per row there) with the patched templates;
#  3. ncu's warp sampling of the patched kernel (as run-ncu.sh: the MMA warps' full-barrier waits were 49%).
# Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-regload}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06h
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-regload}
rm -rf /tmp/regload && cp -r templates /tmp/regload && (cd /tmp/regload && patch -s -p1 < "$OLDPWD/$HERE/seesaw-fp8-regload.patch") || exit 1
VARIANTS=regload=/tmp/regload NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=6 ROUNDS=2 REP_MS=20 timeout 240 python tools/ab_templates.py \
  128,1,128,16384,fp8_e4m3 64,2,128,16384,fp8_e4m3 32,2,128,16384,fp8_e4m3 2>&1 | grep -v Warning \
  | tee "$OUT/ab-regload.txt" | grep -v "^built" | tail -8
MLAGEN_TEMPLATE_DIR=/tmp/regload MLAGEN_GPU_VARIANTS=h128_p64_fp8,h40_p64_q2_causal_fp8,h32_kv2_p128_q4_causal_fp8 \
  MLAGEN_GPU_EXAMPLES=${MLAGEN_GPU_EXAMPLES:-60} OUT=$OUT/suite-regload timeout 200 bash tools/gpu-suite.sh \
  -k "variants_against_reference or fp8_seesaw or fp8_blocks_outside" 2>&1 | grep -E "passed|failed" | tail -3
MLAGEN_TEMPLATE_DIR=/tmp/regload timeout 150 ncu --clock-control none --section WarpStateStats --section SourceCounters \
  --section SpeedOfLight -k regex:MLADecodeSm90 --launch-skip 2 --launch-count 1 -f -o "$OUT/regload" \
  python $HERE/ncu_driver.py > "$OUT/ncu-run.txt" 2>&1; tail -2 "$OUT/ncu-run.txt"
ncu -i "$OUT/regload.ncu-rep" --page source --csv --print-source sass > "$OUT/source-sass.csv" 2>/dev/null
grep -E "Duration|Warp Cycles Per Issued" <(ncu -i "$OUT/regload.ncu-rep" --page details 2>&1)
xz -9 "$OUT/source-sass.csv" "$OUT/regload.ncu-rep"
