#!/usr/bin/env bash
# Eleventh session, first call: the tenth session's two prepared scripts in one call (one machine start):
# run-live3.sh (three default-grid runs with FlashMLA live + one fp8-grid run at the committed templates) and
# run-stalls.sh (ncu warp-state sampling per SASS instruction of both kernels at h_q 128, s_q 2, s_k 16384).
# Both share one kernel cache, so the stall profile reuses the grid's compiled cell. Two tarballs under $OUT.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
#   MLAGEN_COMMIT  the commit under test (the GPU host gets no .git)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
J=$HERE/../2026-12-06j
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
mkdir -p "$OUT/grid" "$OUT/stalls"
OUT=$OUT/grid bash "$J/run-live3.sh"
OUT=$OUT/stalls bash "$J/run-stalls.sh"
