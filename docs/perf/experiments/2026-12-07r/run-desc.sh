#!/usr/bin/env bash
# The seesaw's wgmma descriptors built beside each wgmma (seesaw-desc-beside.patch, README §2), lean, for a session
# with little device time (~4 min): tools/patch_trial.sh's same-process A/B only (each kernel checked against the
# float32 reference, then ROUNDS alternating timings) on the batch-128 cells the seesaw runs, fp8 too. With device
# time for adoption, leave AB_ONLY unset (adds the GPU tests with the patch in the tree) and ROUNDS=5.
cd "$(dirname "$0")/../../../.."
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-r}
# shellcheck disable=SC2086
AB_ONLY=${AB_ONLY-1} JOBS=${JOBS:-16} AB_TIMEOUT=${AB_TIMEOUT:-280} \
  bash tools/patch_trial.sh docs/perf/experiments/2026-12-07r/seesaw-desc-beside.patch \
  ${CELLS:-128,1,128,4096:16384 64,2,128,4096 128,2,128,4096 128,1,128,4096,fp8_e4m3}
