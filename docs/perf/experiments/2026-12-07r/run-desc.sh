#!/usr/bin/env bash
# The seesaw's wgmma descriptors built beside each wgmma (seesaw-desc-beside.patch, README §2): a lean
# same-process A/B for a session with little device time (~4 min): each kernel checked against the float32
# reference, then ROUNDS alternating timings, on the 128/256-row batch-128 cells (the seesaw's, fp8 too). With device time
# to spare, run the full trial instead (A/B, GPU tests with the patch in the tree):
#   OUT=$OUT ROUNDS=5 bash tools/patch_trial.sh docs/perf/experiments/2026-12-07r/seesaw-desc-beside.patch $CELLS
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-desc}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-r}
CELLS=${CELLS:-128,1,128,4096:16384 64,2,128,4096 128,2,128,4096 128,1,128,4096,fp8_e4m3}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
tree=$(mktemp -d)
cp -r templates "$tree/templates"
patch -s -d "$tree/templates" -p1 < docs/perf/experiments/2026-12-07r/seesaw-desc-beside.patch || exit 2
# shellcheck disable=SC2086
VARIANTS="desc-beside=$tree/templates" JOBS=${JOBS:-16} ROUNDS=${ROUNDS:-3} NEW_CACHE=$MLAGEN_CACHE_DIR \
  timeout "${AB_TIMEOUT:-280}" python tools/ab_templates.py $CELLS 2>&1 | grep -v Warning | tee "$OUT/ab.txt" | grep -v "^kernels"
