#!/usr/bin/env bash
# The wide fp8 heads_n layout with padded columns, two new GPU-suite variants: 48 rows (fp16 queries, three
# causal tokens, 32-token pages) in one CTA of 64 columns, and 80 rows in two column blocks of 64. The
# drawn-case test restricted to them (MLAGEN_GPU_VARIANTS), their score-jump tests, then memcheck and
# racecheck on the second's score-jump test.
# Prebuild (no GPU): bash docs/perf/experiments/2026-12-06d/run-padded-wide.sh --prebuild .gpu-cache-v
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206d-padded}
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
V="h16_p32_q3_causal_fp16_fp8 h40_p64_q2_causal_fp8"
if [[ ${1:-} == --prebuild ]]; then
  cache=$(realpath -m "${2:?cache folder}")
  MLAGEN_CACHE_DIR=$cache python3 -c 'import sys, mlagen.jit; from mlagen.plan import plan_for
from mlagen.variants import kernel_variants
for n in sys.argv[1:]: s = kernel_variants()[n]; print("built", mlagen.jit.build(s, plan_for(s)).identity.name)' $V
  find "$cache" \( -name kernel.ptx -o -name kernel.py \) -delete
  exit 0
fi
MLAGEN_GPU_VARIANTS=$V MLAGEN_GPU_EXAMPLES=${EXAMPLES:-80} OUT=$OUT/suite timeout 200 bash tools/gpu-suite.sh \
  -k "variants_against_reference or (scores_that_jump and (h16_p32_q3_causal_fp16_fp8 or h40_p64_q2_causal_fp8))" \
  2>&1 | tail -4
SKIP_SUITE=1 SANITIZE=1 SANITIZE_TOOLS="memcheck racecheck" SANITIZE_K="scores_that_jump and h40_p64_q2_causal_fp8" \
  OUT=$OUT/sanitizer timeout 150 bash tools/gpu-suite.sh 2>&1 | grep -E "exited|passed|failed|ERROR|hazard" | head
