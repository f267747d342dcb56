#!/usr/bin/env bash
# Prepared in the seventeenth session for the next one, one call (~4 min): the KV tiles' TMA loads with the L2
# policy EVICT_FIRST (kv-evict-first.patch, README §5), so the split partials the decode writes stay in L2 for the
# merge instead of being evicted by the KV stream (h_q 128 batch 128 4k: ~35 MB of partials, merge 14.7 us after
# the decode). A/B on the batch-128 cells behind FlashMLA's table, with memory-bound, fp8 and batch-1 controls;
# kernel durations; the GPU tests with the patch in the tree (tools/patch_trial.sh). ROUNDS=5: the 128/256-row
# cells run under the power cap.
cd "$(dirname "$0")/../../../.."
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
ROUNDS=${ROUNDS:-5} BREAKDOWN="128,1,128,4096 64,2,128,4096 16,1,128,4096" \
  bash tools/patch_trial.sh docs/perf/experiments/2026-12-07q/kv-evict-first.patch \
  128,1,128,4096:16384 64,2,128,4096:16384 128,2,128,4096 16,1,128,4096 16,1,128,4096,fp8_e4m3 \
  128,1,128,4096,fp8_e4m3 16,1,1,32768 128,1,1,32768
